"""What the board runs at power-on: config.json, then the agent, for ever.

A config that cannot be read is printed (on the USB serial console: `mpremote repl`)
every 10 s, key, problem and fix, until it is fixed; nothing is driven meanwhile.
"""

import time

import network
import settings as settings_module
from board import Wifi
from loop import Runner, asyncio

CONFIG = "config.json"


def sync_clock(server):
    """Set the board's clock from NTP, for the `changed` times of events; without it they
    are left out."""
    try:
        import ntptime

        ntptime.host = server
        ntptime.settime()
        print("clock set from %s" % server)
    except Exception as error:
        print("clock not set from %s: %s" % (server, error))


async def run(settings):
    wifi = Wifi(settings["wifi"], network)
    runner = Runner(settings, wifi=wifi)
    if settings["agent"]["ntp"]:
        waited = 0
        while wifi.check(waited) is None and waited < 20000:
            await asyncio.sleep_ms(500)
            waited += 500
        if wifi.address is not None:
            sync_clock(settings["agent"]["ntp"])
    await runner.serve()


def main():
    while True:
        try:
            settings = settings_module.load(CONFIG)
        except settings_module.SettingsError as error:
            print("config.json: %s" % error)
            time.sleep(10)
            continue
        if settings["wifi"] is None:
            print('config.json: wifi: missing; set it, e.g. "wifi": {"ssid": "home", '
                  '"password": "..."}')
            time.sleep(10)
            continue
        break
    try:
        asyncio.run(run(settings))
    except Exception as error:  # a fault outside the guarded agent: start afresh
        print("fatal: %s; restarting the board" % error)
        time.sleep(5)
        import machine

        machine.reset()


main()
