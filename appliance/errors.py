"""The agent's root exception; each package below derives its errors from it."""


class ApplianceError(Exception):
    """Something the agent cannot do, with a message meant for the person running it."""
