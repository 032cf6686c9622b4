"""The portable SIP core: bytes and integer milliseconds in; messages, events and deadlines out.

Nothing in this package opens a socket, reads a clock, starts a thread or logs: the same files
run on CPython and on MicroPython (firmware/ ships them unchanged).
"""
