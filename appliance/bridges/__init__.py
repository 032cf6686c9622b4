"""Bridges from the agent to the home around it: MQTT (and Home Assistant discovery)."""
