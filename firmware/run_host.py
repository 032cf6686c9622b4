#!/usr/bin/env python3
"""Run the firmware on a PC: the board's code on CPython, with simulated pins and a real
UDP socket. For trying a config.json, and for testing the firmware against real peers.

    python3 firmware/run_host.py --config FILE [--listen HOST:PORT]

FILE has the board's config.json format (wifi is not used here). --listen is the address
to bind (default 0.0.0.0 and agent.port); port 0 takes a free one. Via and Contact carry
--advertise, else the listen address, else the address this PC sends from toward the
registrar.

Lines on stdin drive the simulated inputs and ask for the state:

    frontdoor open        frontdoor closed        frontdoor toggle        status

and SIGUSR1 toggles every door. Output pins print as they move ("pin 22 -> 1", or a
share for PWM), and the firmware's log goes to stderr. Ctrl-C (or SIGTERM) unregisters
and ends.
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
# The simulated machine and network modules, the firmware's own modules, and the core,
# found as on the board: machine, board, agent, appliance.sip...
sys.path[:0] = [os.path.join(HERE, "host"), HERE, os.path.dirname(HERE)]

import machine  # noqa: E402 - the simulated one, from firmware/host
import settings as settings_module  # noqa: E402
from loop import Runner  # noqa: E402


def _address(text):
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit():
        raise argparse.ArgumentTypeError("%r is not HOST:PORT" % text)
    return host.strip("[]") or "0.0.0.0", int(port)


def _source_toward(settings):
    """The address this PC sends from toward the registrar (or a public address)."""
    target = ("192.0.2.1", 5060)
    if settings["proxy"] is not None:
        host = settings["proxy"]["registrar"][4:].partition(";")[0]
        host, _, port = host.partition(":")
        target = (host, int(port) if port.isdigit() else 5060)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(target)
        return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


class Console:
    """Reads commands from stdin on a thread of its own; they reach the pins through the
    event loop."""

    def __init__(self, runner, loop, out):
        self.runner = runner
        self.loop = loop
        self.out = out

    def start(self):
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in sys.stdin:
            self.loop.call_soon_threadsafe(self.command, line.strip())

    def command(self, line):
        words = line.split()
        devices = self.runner.devices
        if not words:
            return
        if words == ["status"]:
            self.out(json.dumps({name: device.status() for name, device in devices.items()},
                                sort_keys=True))
            return
        device = devices.get(words[0])
        if len(words) != 2 or device is None or device.type != "door" \
                or words[1] not in ("open", "closed", "close", "toggle"):
            doors = [name for name, d in devices.items() if d.type == "door"] or ["(no door)"]
            self.out("? use: %s open|closed|toggle, or status" % "|".join(doors))
            return
        self.set_door(device, words[1])

    def toggle_doors(self):
        for device in self.runner.devices.values():
            if device.type == "door":
                self.set_door(device, "toggle")

    def set_door(self, door, state):
        if state == "toggle":
            state = "closed" if door.pin.value() == door.open_value else "open"
        door.pin.drive(door.open_value if state == "open" else 1 - door.open_value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a config.json")
    parser.add_argument("--listen", type=_address, help="HOST:PORT to bind")
    parser.add_argument("--advertise", help="the address to put in Via and Contact")
    args = parser.parse_args(argv)
    try:
        settings = settings_module.load(args.config)
    except settings_module.SettingsError as error:
        sys.exit("%s: %s" % (args.config, error))
    listen = args.listen or ("0.0.0.0", settings["agent"]["port"])
    advertise = args.advertise or (listen[0] if listen[0] not in ("0.0.0.0", "")
                                   else _source_toward(settings))

    def out(line):
        print(line, flush=True)

    def log(line):
        print(line, file=sys.stderr, flush=True)

    for entry in settings["devices"]:  # the doors start closed
        if entry["type"] == "door":
            machine.levels[entry["pin"]] = 0 if entry["open_level"] == "high" else 1
    machine.watchers.append(lambda pin, level: out("pin %s -> %s" % (
        pin, level if isinstance(level, int) else "%.2f" % level)))
    runner = Runner(settings, listen=listen, advertise=advertise, log=log)
    try:
        runner.open()
    except OSError as error:
        sys.exit("cannot listen on %s:%d: %s" % (listen[0], listen[1], error))
    return asyncio.run(_serve(runner, out))


async def _serve(runner, out):
    loop = asyncio.get_running_loop()
    console = Console(runner, loop, out)
    console.start()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, runner.stop)
    loop.add_signal_handler(signal.SIGUSR1, console.toggle_doors)
    await runner.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
