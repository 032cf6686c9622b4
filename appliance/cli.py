"""The `appliance` command."""

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
import time

from . import __version__
from . import config as config_module
from .control import ControlError, ControlServer
from .control import request as control_request
from .errors import ApplianceError
from .redact import printable
from .service import Service, summary

log = logging.getLogger("appliance")


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except config_module.ConfigError as error:
        where = " in %s" % error.path if error.path else ""
        print("configuration error%s:" % where, file=sys.stderr)
        for problem in error.problems:
            print("  " + problem, file=sys.stderr)
        return 2
    except ApplianceError as error:
        print("appliance: %s" % error, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser():
    parser = argparse.ArgumentParser(
        prog="appliance",
        description="A home's doors, lights, doorbell and intercom as SIP URIs.",
    )
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    commands = parser.add_subparsers(metavar="COMMAND")

    run = commands.add_parser("run", help="run the agent (the demo home without -c)")
    run.add_argument("-c", "--config", metavar="FILE", help="TOML configuration file")
    run.add_argument("--simulate", action="store_true", default=None,
                     help="simulated pins (gpiozero MockFactory) and null audio")
    run.add_argument("--listen", action="append", metavar="SPEC",
                     help="udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT (repeatable)")
    run.add_argument("--control", metavar="PATH", help="control socket path")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="log every SIP message (DEBUG)")
    run.set_defaults(func=cmd_run)

    check = commands.add_parser("check", help="validate a configuration file")
    check.add_argument("-c", "--config", metavar="FILE", required=True)
    check.set_defaults(func=cmd_check)

    status = commands.add_parser("status", help="show a running agent's state")
    status.add_argument("--control", metavar="PATH")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(func=cmd_status)

    sim = commands.add_parser("sim", help="drive a simulated input of a running agent")
    sim.add_argument("device", metavar="DEVICE")
    sim.add_argument("state", metavar="STATE", help="e.g. open, closed, press")
    sim.add_argument("--control", metavar="PATH")
    sim.set_defaults(func=cmd_sim)

    options = commands.add_parser("options", help="SIP ping: send OPTIONS to a URI")
    options.add_argument("uri", metavar="URI")
    _client_arguments(options, ca=True)
    options.set_defaults(func=cmd_options)

    do = commands.add_parser("do", help="control a device: send DO, print the new state")
    do.add_argument("uri", metavar="URI")
    do.add_argument("command", nargs="*", metavar="COMMAND",
                    help="on, off, toggle, dim 0-100, pulse [SECONDS] or status "
                         "(sent as text/plain)")
    do.add_argument("--json", metavar="OBJECT",
                    help='send this application/json instead, e.g. \'{"state": "ON"}\'')
    _client_arguments(do, ca=True)
    do.set_defaults(func=cmd_do)

    message = commands.add_parser("message", help="send a MESSAGE (text/plain) to a URI")
    message.add_argument("uri", metavar="URI")
    message.add_argument("text", nargs="+", metavar="TEXT",
                         help="the words, joined by spaces (a device takes a command)")
    _client_arguments(message, ca=True)
    message.set_defaults(func=cmd_message)

    subscribe = commands.add_parser(
        "subscribe", help="watch a device: one line per NOTIFY until interrupted")
    subscribe.add_argument("uri", metavar="URI")
    subscribe.add_argument("--event", default="appliance", metavar="PKG",
                           help="event package: appliance (default; state, seq, time), "
                                "presence (what a softphone shows), or another")
    subscribe.add_argument("--expires", type=_seconds, default=600, metavar="S",
                           help="seconds to ask for; refreshed before they run out "
                                "(default 600; 0: print the state once and exit)")
    subscribe.add_argument("--json", action="store_true",
                           help="print each NOTIFY's state as one JSON object per line")
    _client_arguments(subscribe, verbose=False, ca=True)
    subscribe.set_defaults(func=cmd_subscribe)

    discover = commands.add_parser(
        "discover", help="list the agents and devices announced on the LAN (mDNS)")
    discover.add_argument("--timeout", type=float, default=3.0, metavar="S",
                          help="seconds to listen (default 3)")
    discover.add_argument("--json", action="store_true",
                          help="one JSON object per device, a line each")
    discover.set_defaults(func=cmd_discover)

    call = commands.add_parser(
        "call", help="place a call: audio both ways until either side hangs up")
    call.add_argument("uri", metavar="URI", help="e.g. sip:intercom@frontdoor-pi.local")
    sound = call.add_mutually_exclusive_group()
    sound.add_argument("--audio", default="default", metavar="DEVICE",
                       help='"default" (the default sound device), "null" (silence out, '
                            'nothing played), or a sound device\'s name')
    sound.add_argument("--audio-file", metavar="FILE.wav",
                       help="send this WAV file (mono, 16-bit), looped; play nothing")
    call.add_argument("--video", metavar="FILE.h264",
                      help="ask for video too (a camera's, a video intercom's) and write it "
                           "to this file as an H.264 stream: ffplay FILE.h264 shows it")
    call.add_argument("--dtmf", default="", metavar="DIGITS",
                      help="send these digits once answered, e.g. 1234# to open the door")
    call.add_argument("--duration", type=float, metavar="S",
                      help="hang up this many seconds after the answer (default: at Ctrl-C "
                           "or when the other side hangs up)")
    _client_arguments(call, verbose=False, ca=True)
    call.set_defaults(func=cmd_call, timeout=30.0)
    return parser


def _seconds(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError("%r is not a whole number of seconds" % text)
    return int(text)


def _client_arguments(parser, verbose=True, ca=False):
    parser.add_argument("--from", dest="from_uri", metavar="URI",
                        help="From URI (default sip:appliance@<local address>)")
    parser.add_argument("--proxy", metavar="URI", help="send via this proxy")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="seconds to wait for a final response (default 5)")
    parser.add_argument("--listen", action="append", metavar="SPEC",
                        help="local address to send from, e.g. udp:0.0.0.0:5070")
    parser.add_argument("--user", metavar="NAME", help="user name for digest authentication")
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--password", metavar="PASSWORD",
                        help="password for digest authentication (visible to other local "
                             "users in the process list: prefer --password-file)")
    secret.add_argument("--password-file", metavar="FILE",
                        help="file holding the password for digest authentication")
    if verbose:
        parser.add_argument("-v", "--verbose", action="store_true",
                            help="print the whole response")
    if ca:
        parser.add_argument("--ca", metavar="FILE",
                            help="over TLS (sips:), trust the CAs in this PEM file instead "
                                 "of the system's")


# -- run -----------------------------------------------------------------------------------


def _run_overrides(args):
    overrides = {}
    if args.simulate:
        overrides["agent.simulate"] = True
    if args.listen:
        overrides["agent.listen"] = list(args.listen)
    if args.control:
        overrides["agent.control"] = args.control
    return overrides


def cmd_run(args):
    overrides = _run_overrides(args)

    def load():
        if args.config:
            return config_module.load(args.config, overrides=overrides)
        return config_module.demo_config(overrides=overrides)

    config = load()
    _setup_logging(_log_level(args, config))
    _warn(config, args.config)
    return asyncio.run(_run(config, load, args))


def _warnings(config, path):
    """What the config works with but should not: a pin a bus of the board may need,
    passwords other users of the machine can read."""
    from .exposure import secret_warnings
    from .pins import pin_warnings

    return pin_warnings(config) + secret_warnings(path)


def _warn(config, path):
    """The config's warnings, in the log."""
    for warning in _warnings(config, path):
        log.warning("config: %s", warning)


def _log_level(args, config):
    return logging.DEBUG if args.verbose else config.agent.log_level.upper()


class _Formatter(logging.Formatter):
    """The standard line, with the date and time formatted once per second, not per line
    (the agent logs a line per transaction)."""

    _second = None
    _stamp = ""

    def formatTime(self, record, datefmt=None):
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return "%s,%03d" % (self._stamp, record.msecs)


def _setup_logging(level):
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    # The logging HOWTO's optimisations: no caller lookup, no thread or process fields.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    under_systemd = "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not under_systemd:
        fmt = "%(asctime)s " + fmt  # journald stamps lines itself
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])


async def _run(config, load, args):
    """Run the agent until SIGTERM or Ctrl-C; SIGHUP reads the config again (`load()`)."""
    from .agent import Agent

    demo = not args.config
    agent = Agent(config, path=args.config)
    control = ControlServer(agent, config.agent.control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    service = Service()
    reloads = _Reloads(agent, load, args, service)
    loop.add_signal_handler(signal.SIGHUP, reloads.request)
    service.start_watchdog(loop)  # from the start: a start that hangs is restarted too
    try:
        await agent.start()
    except OSError as error:
        raise ApplianceError(
            "cannot listen on %s: %s; pick another with --listen, e.g. udp:0.0.0.0:5070"
            % (", ".join(str(s) for s in config.agent.listen), error.strerror or error)
        ) from None
    try:
        await control.start()
        reloads.open()  # only now: a reload meets a started agent, never one half-way up
        _print_banner(agent, config, demo)
        service.ready(summary(agent.status()))
        status_updates = _every(loop, STATUS_INTERVAL,
                                lambda: service.status(summary(agent.status())))
        # What start-up made (modules, config, devices) lives as long as the agent: keep it
        # out of the collector's full passes, which otherwise stall a NOTIFY fan-out by
        # tens of ms on the edge that triggers one (bench/door_latency).
        gc.collect()
        gc.freeze()
        await stop.wait()
        log.info("stopping")
        status_updates.cancel()
    finally:
        service.stopping()
        await reloads.cancel()  # and none starts while the agent stops
        await control.close()
        await agent.close()
        service.close()
    return 0


STATUS_INTERVAL = 10.0  # seconds between STATUS= lines for `systemctl status`


def _every(loop, interval, function):
    """Call `function` every `interval` seconds; returns a handle whose cancel() stops it."""

    class Repeat:
        handle = None

        def run(self):
            function()
            self.handle = loop.call_later(interval, self.run)

        def cancel(self):
            if self.handle is not None:
                self.handle.cancel()

    repeat = Repeat()
    repeat.handle = loop.call_later(interval, repeat.run)
    return repeat


class _Reloads:
    """SIGHUP: read the config again and hand it to the agent, one reload at a time (a
    signal during a reload runs one more after it). A config that does not load is
    logged, key by key, and the running one stays."""

    def __init__(self, agent, load, args, service):
        self.agent = agent
        self.load = load
        self.args = args
        self.service = service
        self.task = None
        self.again = False
        self.ready = False  # the agent has started
        self.closed = False  # the agent is stopping
        self.waiting = False  # a SIGHUP came during the start

    def open(self):
        self.ready = True
        if self.waiting:
            self.request()

    def request(self):
        if self.closed:
            return
        if not self.ready:
            self.waiting = True
            return
        if self.task is not None and not self.task.done():
            self.again = True
            return
        self.task = asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self):
        self.again = True
        while self.again:
            self.again = False
            log.info("reloading the config%s", " from " + self.args.config
                     if self.args.config else "")
            self.service.reloading()
            try:
                config = self.load()
            except ApplianceError as error:
                log.error("config reload failed; the running config stays:\n  %s",
                          str(error).replace("\n", "\n  "))
                self.agent.reload_failed(str(error))
                self.service.ready("config reload failed: " + str(error).splitlines()[0])
                continue
            logging.getLogger().setLevel(_log_level(self.args, config))
            _warn(config, self.args.config)
            try:
                await self.agent.reload(config)
            except Exception as error:
                log.exception("config reload failed part way: %s", error)
                self.agent.reload_failed(str(error))
            self.service.ready(summary(self.agent.status()))

    async def cancel(self):
        self.closed = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def _print_banner(agent, config, demo):
    lines = ["sip-appliance %s: %s" % (__version__, "demo home, simulated pins" if demo
                                       else config.agent.name)]
    for spec in agent.stack.bound:
        lines.append("  listening on %s:%s:%d" % spec)
    for name, device in agent.devices.items():
        lines.append("  %-10s %-9s %s" % (name, device.type, agent.device_uri(name)))
    if demo:
        user = config.users[0]
        lines.append("  user %s, password %s (demo only)" % (user.name, user.password.reveal()))
    lines.append("  control socket %s" % config.agent.control)
    print("\n".join(lines), flush=True)


# -- check ---------------------------------------------------------------------------------


def cmd_check(args):
    from .media.camera import config_problems as camera_problems
    from .net.tls import config_problems as tls_problems

    config = config_module.load(args.config)
    warnings = _warnings(config, args.config)  # not errors: the config runs as it is
    for warning in warnings:
        print("warning: " + warning, file=sys.stderr)
    # Errors: the [tls] files would stop `run` (or its first TLS connection); a camera's
    # calls would be refused.
    missing = tls_problems(config) + camera_problems(config, probe=True)
    for problem in missing:
        print("%s: %s" % (args.config, problem), file=sys.stderr)
    if missing:
        return 2
    counted = ", %d warning%s" % (len(warnings), "" if len(warnings) == 1 else "s")
    print("%s: OK (%d devices, %d users%s)" % (args.config, len(config.devices),
                                               len(config.users), counted if warnings else ""))
    return 0


# -- status and sim --------------------------------------------------------------------------


def _control_path(args):
    return args.control or os.environ.get("SIP_APPLIANCE_AGENT_CONTROL") \
        or config_module.default_control_path()


def cmd_status(args):
    reply = asyncio.run(control_request(_control_path(args), {"command": "status"}))
    status = reply["status"]
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    agent = status["agent"]
    print("%s %s, up %ss, listening on %s" % (agent["name"], agent["version"],
                                             agent["uptime"], ", ".join(agent["listen"])))
    print("devices:")
    for name, device in status["devices"].items():
        extra = ""
        if "brightness" in device:
            extra = " brightness %d%%" % device["brightness"]
        print("  %-10s %-9s %-9s%s  %s" % (name, device["type"], device["state"], extra,
                                           device["uri"]))
    registrations = status["registrations"]
    print("registrations:%s" % ("" if registrations else " none"))
    for entry in registrations:
        if entry["registered"]:
            state = "registered, expires in %ss" % entry["expires_in"]
        else:
            state = entry["state"]
        if entry["last_error"]:
            retry = entry["next_register_in"]
            state += " (%s%s)" % (entry["last_error"],
                                  "" if retry is None else "; next attempt in %ss" % retry)
        print("  %-10s %s: %s" % (entry["device"], entry["aor"], state))
    nat = status["nat"]
    if nat is None or nat["stun"] is None:
        print("NAT: no STUN server configured")
    else:
        print("NAT: public address %s (STUN %s)%s"
              % (nat["public"] or "not learned yet", nat["stun"],
                 "; " + nat["error"] if nat["error"] else ""))
    keepalive = nat and nat["keepalive"]
    if keepalive:
        answer = keepalive["last_answer_ago"]
        print("keep-alive: %s on %s every %ss, %s%s"
              % (keepalive["method"], nat["flow"], keepalive["interval"], keepalive["state"],
                 "; " + keepalive["error"] if keepalive["error"] else
                 "" if answer is None else "; last answer %ss ago" % answer))
    elif nat and nat["flow"]:
        print("keep-alive: none on %s" % nat["flow"])
    print("subscriptions: %d, calls: %d" % (len(status["subscriptions"]),
                                            len(status["calls"])))
    for call in status["calls"]:
        media = call.get("media") or {}
        print("  %s %s %s %s, %s%s" % (
            call["device"], "from" if call["direction"] == "in" else "to", call["peer"],
            call["state"], "%ss" % call["duration"],
            ", %s %s, RTP in %s out %s lost %s" % (
                media.get("codec"), media.get("direction"), media.get("received"),
                media.get("sent"), media.get("lost")) if media.get("codec") else "")
            + _video_line(media.get("video")))
    print("MQTT: %s" % _mqtt_line(status["mqtt"]))
    sip = status["sip"]
    print("SIP: %d requests, %d rejected, %d dropped, %d transactions open"
          % (sip["requests"], sip["rejected"], sip["dropped"], sip["transactions"]))
    if sip.get("limited") or sip.get("refused"):
        print("  over the limits: %d requests dropped for their rate, %d answered 503%s"
              % (sip["limited"], sip["refused"],
                 "; dropping from " + ", ".join(sip["limited_sources"])
                 if sip.get("limited_sources") else ""))
    loaded = status["config"]
    reloads = loaded["reloads"]
    print("config: %s, loaded %s%s" % (
        loaded["path"] or "demo home", loaded["loaded"],
        " (reloaded %d time%s)" % (reloads, "s" if reloads > 1 else "") if reloads else ""))
    if loaded["error"]:
        print("  last reload failed, the running config stays:\n    %s"
              % loaded["error"].replace("\n", "\n    "))
    return 0


def _video_line(video):
    """", video H264 sendonly from camera, RTP out 812" for a call with video."""
    if not video:
        return ""
    return ", video %s %s from %s, RTP out %s%s" % (
        video["codec"], video["direction"], video["camera"], video["sent"],
        "; " + video["failure"] if video.get("failure") else "")


def _mqtt_line(mqtt):
    if mqtt is None:
        return "not configured"
    broker = mqtt["broker"] + (" (TLS)" if mqtt["tls"] else "")
    counts = "%d published, %d queued%s" % (
        mqtt["published"], mqtt["queued"],
        ", %d dropped" % mqtt["dropped"] if mqtt["dropped"] else "")
    if mqtt["connected"]:
        return "connected to %s for %ss; %s" % (broker, mqtt["up_for"], counts)
    retry = "" if mqtt["retry_in"] is None else "; next try in %ss" % mqtt["retry_in"]
    return "not connected to %s (%s%s); %s" % (broker, mqtt["last_error"] or "connecting",
                                                retry, counts)


def cmd_sim(args):
    try:
        reply = asyncio.run(control_request(
            _control_path(args), {"command": "sim", "device": args.device, "state": args.state}
        ))
    except ControlError as error:
        print("appliance sim: %s" % error, file=sys.stderr)
        return 1
    print("%s: %s" % (args.device, reply["device"]["state"]))
    return 0


# -- client commands ---------------------------------------------------------------------------


def cmd_options(args):
    _device_uri(args)
    from .client import options

    listen = [config_module.parse_listen(spec) for spec in args.listen or ()]
    result = asyncio.run(options(args.uri, from_uri=args.from_uri, proxy=args.proxy,
                                 timeout=args.timeout, listen=listen, ca=args.ca,
                                 **_credentials(args)))
    return _print_result(result, args.verbose)


def cmd_do(args):
    _device_uri(args)
    if args.json is not None:
        if args.command:
            raise ApplianceError("give a COMMAND or --json, not both")
        try:
            json.loads(args.json)
        except ValueError as error:
            raise ApplianceError("--json is not JSON: %s" % error) from None
        content_type, text = "application/json", args.json
    elif args.command:
        content_type, text = "text/plain", " ".join(args.command)
    else:
        raise ApplianceError("give a COMMAND (on, off, toggle, dim 0-100, pulse [SECONDS], "
                             "status) or --json OBJECT")
    result = _send("DO", args, content_type, text)
    status = _print_result(result, args.verbose, fields=("Accept",))
    if status == 0 and not args.verbose:
        line = _state_line(result.response)
        if line:
            print(line)
    return status


def cmd_message(args):
    _device_uri(args)
    result = _send("MESSAGE", args, "text/plain", " ".join(args.text))
    return _print_result(result, args.verbose, fields=("Accept",))


def _send(method, args, content_type, text):
    from .client import send_once

    listen = [config_module.parse_listen(spec) for spec in args.listen or ()]
    return asyncio.run(send_once(
        method, args.uri, from_uri=args.from_uri, proxy=args.proxy, timeout=args.timeout,
        listen=listen, fields=[("Content-Type", content_type)], body=text.encode("utf-8"),
        ca=args.ca, **_credentials(args)))


def _state_line(response):
    """`porch: on, brightness 40` from a DO's JSON state; None for another body."""
    if (response.get("content-type") or "").split(";")[0].strip().lower() \
            != "application/json":
        return None
    try:
        state = json.loads(response.body.decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(state, dict) or "state" not in state:
        return None
    line = "%s: %s" % (state.get("device", "state"), state["state"])
    if isinstance(state.get("brightness"), int):
        line += ", brightness %d" % state["brightness"]
    return printable(line)


def cmd_subscribe(args):
    _device_uri(args)
    from .watch import Watch

    listen = [config_module.parse_listen(spec) for spec in args.listen or ()]
    watch = Watch(args.uri, event=args.event, expires=args.expires, from_uri=args.from_uri,
                  proxy=args.proxy, timeout=args.timeout, listen=listen,
                  json_lines=args.json, ca=args.ca, **_credentials(args))
    return asyncio.run(_watch(watch))


async def _watch(watch):
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, watch.stop)
    return await watch.run()


def cmd_discover(args):
    from .bridges.mdns import browse

    found = asyncio.run(browse(args.timeout))
    if args.json:
        for entry in found:
            print(json.dumps(entry, sort_keys=True))
        return 0
    if not found:
        print("no devices announced on the LAN within %gs" % args.timeout)
        return 1
    for entry in found:
        print("%-12s %-10s %-9s %s  (%s, %s:%d over %s)" % (
            entry["agent"] or "?", entry["name"], entry["type"] or "?", entry["uri"],
            entry["host"], ", ".join(entry["addresses"]) or "?", entry["port"],
            entry["transport"]))
    return 0


def _device_uri(args):
    """A bare device name (`porch`) found on the LAN over mDNS, as a SIP URI."""
    if ":" in args.uri or "@" in args.uri:
        return
    from .bridges.mdns import find

    uri = asyncio.run(find(args.uri))
    if uri is None:
        raise ApplianceError("%r is not a SIP URI, and no device of that name is announced "
                             "on the LAN (mDNS); give a URI such as sip:porch@192.168.1.20, "
                             "or see `appliance discover`" % args.uri)
    args.uri = uri


def cmd_call(args):
    _device_uri(args)
    from .caller import place_call

    if args.dtmf and not all(c in "0123456789*#ABCDabcd" for c in args.dtmf):
        raise ApplianceError("--dtmf takes the digits 0-9, *, # and A-D, not %r" % args.dtmf)
    audio = args.audio_file or args.audio
    listen = [config_module.parse_listen(spec) for spec in args.listen or ()]
    return asyncio.run(place_call(args.uri, audio=audio, proxy=args.proxy,
                                  duration=args.duration, digits=args.dtmf.upper(),
                                  video=args.video, timeout=args.timeout, ca=args.ca,
                                  from_uri=args.from_uri, listen=listen,
                                  **_credentials(args)))


def _credentials(args):
    """username/password keyword arguments from --user and --password(-file)."""
    password = args.password
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as file:
                password = file.read().rstrip("\r\n")
        except OSError as error:
            raise ApplianceError("cannot read --password-file %s: %s"
                                 % (args.password_file, error.strerror)) from None
    if (args.user is None) != (password is None):
        raise ApplianceError("digest authentication needs both --user and --password "
                             "(or --password-file)")
    return {"username": args.user, "password": password}


OPTIONS_FIELDS = ("Allow", "Accept", "Supported", "Allow-Events", "Server")


def _print_result(result, verbose, fields=OPTIONS_FIELDS):
    """The status line (and `fields`, or with `verbose` the whole response); 0 on 2xx."""
    response = result.response
    if response is None:
        print(result.error, file=sys.stderr)
        return 1
    if verbose:
        print(bytes(response).decode("utf-8", "replace").rstrip("\r\n").replace("\r\n", "\n"))
    else:
        print(printable(response.start_line()))
        for name in fields:
            value = response.get(name)
            if value:
                print("%s: %s" % (name, printable(value)))
    return 0 if 200 <= response.status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
