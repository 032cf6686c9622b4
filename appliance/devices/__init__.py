"""Devices behind small interfaces: each wraps gpiozero parts built on an injected pin
factory (MockFactory when simulated), reports a `state` and calls `on_change` when it
changes. gpiozero calls back on its own threads; the agent moves those calls onto the
event loop in one place.
"""

from .base import Device, DeviceError
from .build import build_devices

__all__ = ["Device", "DeviceError", "build_devices"]
