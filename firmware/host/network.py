"""A simulated `network` module: one Wi-Fi station whose link the caller controls.

`WLAN.reachable` says whether a join succeeds (a join completes on the next
isconnected() call); `WLAN.drop()` loses the link; `address` is the one ifconfig() gives.
"""

STA_IF = 0
AP_IF = 1
STAT_IDLE = 0
STAT_CONNECTING = 1
STAT_NO_AP_FOUND = 201
STAT_GOT_IP = 1010

_stations = {}
names = []


def hostname(name=None):
    if name is None:
        return names[-1] if names else "mpy"
    names.append(name)
    return None


class WLAN:
    def __new__(cls, interface=STA_IF):
        if interface not in _stations:
            station = object.__new__(cls)
            station._setup(interface)
            _stations[interface] = station
        return _stations[interface]

    def __init__(self, interface=STA_IF):
        pass

    def _setup(self, interface):
        self.interface = interface
        self.enabled = False
        self.reachable = True
        self.address = "192.0.2.10"
        self.joins = []  # (ssid, password) of every connect()
        self._state = STAT_IDLE

    def active(self, on=None):
        if on is None:
            return self.enabled
        self.enabled = bool(on)
        return None

    def connect(self, ssid, password=None):
        self.joins.append((ssid, password))
        self._state = STAT_CONNECTING

    def isconnected(self):
        if self._state == STAT_CONNECTING:
            self._state = STAT_GOT_IP if self.reachable and self.enabled else STAT_NO_AP_FOUND
        return self._state == STAT_GOT_IP

    def status(self):
        return self._state

    def drop(self):
        self._state = STAT_IDLE

    def ifconfig(self):
        return (self.address, "255.255.255.0", "192.0.2.1", "192.0.2.1")
