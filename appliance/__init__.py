"""sip-appliance: a home's devices as SIP URIs."""

__version__ = "0.1.0"
