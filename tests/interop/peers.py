"""Real peers the interop tests (and bench/) start and stop: Kamailio as the home proxy,
coturn for STUN, baresip as a softphone, Mosquitto as the MQTT broker.

`Kamailio(workdir, users={"alice": "s3cret"})` fills tests/interop/kamailio/kamailio.cfg.in,
runs `kamailio` in the foreground on 127.0.0.1 and a free port, and stops it on exit; with
`tls=Certificates(...)` it listens on TLS too (its tls module, from the Debian package
kamailio-tls-modules). No pytest here: a missing binary or module raises PeerMissing, which
the tests' fixture turns into a failure in CI.
"""

import errno
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

HOST = "127.0.0.1"

TEMPLATE = Path(__file__).parent / "kamailio" / "kamailio.cfg.in"
KAMAILIO_INSTALL_HINT = "apt-get install kamailio"
KAMAILIO_MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"  # as the template's mpath


class PeerMissing(Exception):
    """A peer's program is not installed; the message says how to install it."""


def free_port(attempts=50):
    """A port number free for both UDP and TCP on HOST (at the time of asking)."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP on %s" % HOST)
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def _port_taken(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


class _Peer:
    """A peer program started in its own process group: stopped with its children on
    exit; `log()` is what it wrote to `log_path`."""

    process = None
    log_path = None

    def __exit__(self, *exc):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self):
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")


class Kamailio(_Peer):
    """The home proxy: a registrar with digest auth for `users`, realm `realm`."""

    def __init__(self, workdir, users, realm="home.arpa", algorithm="MD5", host=HOST,
                 port=None, prefix=(), tls=None):
        """`prefix` runs it elsewhere (["ip", "netns", "exec", NAME]); `host`/`port` are
        where it listens there. `tls` (a Certificates) adds a TLS listener on `tls_port`
        with its server certificate; it asks no client for one."""
        self.binary = shutil.which("kamailio") or (
            "/usr/sbin/kamailio" if os.path.exists("/usr/sbin/kamailio") else None
        )
        if self.binary is None:
            raise PeerMissing("Kamailio (`kamailio`) is not installed; " + KAMAILIO_INSTALL_HINT)
        if tls is not None and not os.path.exists(KAMAILIO_MODULES + "tls.so"):
            raise PeerMissing("Kamailio's tls module is not installed; "
                              "apt-get install kamailio-tls-modules")
        self.tls = tls
        self.tls_port = None
        self.workdir = Path(workdir)
        self.users = dict(users)
        self.realm = realm
        self.algorithm = algorithm
        self.host = host
        self.port = port
        self.prefix = list(prefix)
        self.process = None
        self.log_path = self.workdir / "kamailio.log"

    def _config(self):
        users = "\n".join('    $sht(users=>%s) = "%s";' % item for item in self.users.items())
        text = TEMPLATE.read_text()
        for name, value in (("REALM", self.realm), ("HOST", self.host),
                            ("PORT", str(self.port)), ("TLS_PORT", str(self.tls_port or 0)),
                            ("RUNDIR", str(self.workdir)), ("ALGORITHM", self.algorithm),
                            ("USERS", users)):
            text = text.replace("@%s@" % name, value)
        path = self.workdir / "kamailio.cfg"
        path.write_text(text)
        if self.tls is not None:
            (self.workdir / "tls.cfg").write_text("".join(
                "[%s:default]\nmethod = TLSv1.2+\nverify_certificate = no\n"
                "require_certificate = no\n%s\n" % (side, keys) for side, keys in (
                    ("server", "certificate = %s\nprivate_key = %s\n"
                     % (self.tls.server_cert, self.tls.server_key)),
                    ("client", ""))))
        return path

    def __enter__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()
        if self.tls is not None and self.tls_port is None:
            self.tls_port = free_port()
        config = self._config()
        defines = ["-A", "WITH_TLS"] if self.tls is not None else []
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [*self.prefix, self.binary, "-f", str(config), "-DD", "-E", "-Y",
                 str(self.workdir), "-w", str(self.workdir), *defines],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        ready = self.workdir / "kamailio_ctl"  # its control socket: there once it serves
        while not (ready.exists() and (self.prefix or _port_taken(self.port))):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise AssertionError("Kamailio did not start:\n" + self.log())
            time.sleep(0.05)
        return self

    @property
    def uri(self):
        return "sip:%s:%d" % (self.host, self.port)

    @property
    def tls_uri(self):
        return "sips:%s:%d" % (self.host, self.tls_port)

    def registers(self, aor=None):
        """How many REGISTER requests it has received (for `aor`, a To URI, if given)."""
        lines = [line for line in self.log().splitlines() if "REGISTER for " in line]
        return len([line for line in lines if aor is None or "REGISTER for %s " % aor in line])

    def location(self):
        """The registrar's location table (`kamcmd ul.dump`), as text."""
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        result = subprocess.run(
            [kamcmd, "-s", "unix:%s" % (self.workdir / "kamailio_ctl"), "ul.dump"],
            capture_output=True, text=True, timeout=10,
        )
        return result.stdout + result.stderr



class Coturn(_Peer):
    """coturn as a plain STUN server (`turnserver --stun-only`), e.g. on a lab's WAN host."""

    def __init__(self, workdir, host=HOST, port=3478, prefix=()):
        self.binary = shutil.which("turnserver") or (
            "/usr/bin/turnserver" if os.path.exists("/usr/bin/turnserver") else None
        )
        if self.binary is None:
            raise PeerMissing("coturn (`turnserver`) is not installed; apt-get install coturn")
        self.workdir = Path(workdir)
        self.host = host
        self.port = port
        self.prefix = list(prefix)
        self.process = None
        self.log_path = self.workdir / "turnserver.log"

    def __enter__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [*self.prefix, self.binary, "-n", "--stun-only", "--no-cli", "--no-tls",
             "--no-dtls", "-L", self.host, "-p", str(self.port), "--simple-log",
             "-l", str(self.log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(0.5)  # it binds at once; a failure shows as an exit here
        if self.process.poll() is not None:
            raise AssertionError("turnserver exited:\n" + self.log())
        return self

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)


class Baresip(_Peer):
    """baresip, a stock softphone, headless: one account, one contact, the modules it needs
    (presence for buddies, stdio for commands on its stdin: `command("/message on")`).
    `shown()` is what it printed, colours stripped.

    For calls: `listen` is its SIP address ("127.0.0.1:0": a port of its choosing),
    `modules` are loaded after the usual ones (e.g. "aufile", "sndfile", "rtcpsummary"; media
    encryption, "srtp" with the account's `;mediaenc=srtp-mand`, before them) and
    `settings` ({key: value}) add config lines or replace the usual ones (e.g.
    {"audio_source": "aufile,/path/tone.wav", "snd_path": "/path"})."""

    MODULES = ("stdio", "account", "contact", "menu", "presence", "g711")
    SETTINGS = (("audio_player", "aubridge,nil"), ("audio_source", "aubridge,nil"))
    # Media encryption registers before account.so reads the accounts' `mediaenc`.
    FIRST = ("srtp", "dtls_srtp")

    def __init__(self, workdir, account, contact, listen="127.0.0.1:0", modules=(),
                 settings=None):
        self.binary = shutil.which("baresip")
        if self.binary is None:
            raise PeerMissing("baresip is not installed; apt-get install baresip-core")
        self.workdir = Path(workdir)
        self.account = account
        self.contact = contact
        self.listen = listen
        first = tuple(name for name in modules if name in self.FIRST)
        self.modules = tuple(dict.fromkeys(first + self.MODULES + tuple(modules)))
        self.settings = dict(self.SETTINGS, **(settings or {}))
        self.process = None
        self.log_path = self.workdir / "baresip.out"

    def __enter__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        modules = "".join("module %s.so\n" % name for name in self.modules)
        settings = "".join("%s %s\n" % item for item in self.settings.items())
        (self.workdir / "config").write_text(
            "sip_listen %s\nmodule_path /usr/lib/baresip/modules\n" % self.listen + modules
            + settings)
        (self.workdir / "accounts").write_text(self.account + "\n")
        (self.workdir / "contacts").write_text(self.contact + "\n")
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                [self.binary, "-f", str(self.workdir)], stdin=subprocess.PIPE, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def command(self, line):
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def shown(self):
        return re.sub(r"\x1b\[[0-9;]*m", "", self.log())


class Mosquitto(_Peer):
    """Mosquitto on HOST and a free port; `stop()` and `start()` again on the same port
    (its persistence keeps sessions and retained messages across, as a real one does).
    `users` ({name: password}) turns anonymous access off; `tls` (a Certificates) adds
    TLS with client certificates required."""

    def __init__(self, workdir, users=None, tls=None, host=HOST, prefix=()):
        self.binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
        if self.binary is None:
            raise PeerMissing("Mosquitto (`mosquitto`) is not installed; "
                              "apt-get install mosquitto mosquitto-clients")
        self.workdir = Path(workdir)
        self.users = users
        self.tls = tls
        self.host = host
        self.port = free_port()
        self.prefix = list(prefix)
        self.process = None
        self.log_path = self.workdir / "mosquitto.log"

    def _config(self):
        # Run as whoever runs the tests: as root it would switch to a `mosquitto` user
        # that cannot read the test's files.
        lines = ["user %s" % pwd.getpwuid(os.getuid()).pw_name,
                 "persistence true", "persistence_location %s/" % self.workdir,
                 "log_dest file %s" % self.log_path, "log_type all",
                 "listener %d %s" % (self.port, self.host)]
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            passwords = self.workdir / "passwords"
            passwords.write_text("")
            for name, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwords), name, password],
                               check=True, capture_output=True)
            lines += ["allow_anonymous false", "password_file %s" % passwords]
        if self.tls is not None:
            lines += ["cafile %s" % self.tls.ca, "certfile %s" % self.tls.server_cert,
                      "keyfile %s" % self.tls.server_key, "require_certificate true"]
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def __enter__(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start()
        return self

    def start(self):
        config = self._config()
        self.process = subprocess.Popen(
            [*self.prefix, self.binary, "-c", str(config)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not _accepts(self.host, self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise AssertionError("Mosquitto did not start:\n" + self.log())
            time.sleep(0.05)

    def stop(self):
        """Stop it (SIGTERM: it saves its persistence file first)."""
        self.__exit__(None, None, None)


def _accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Certificates:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, made with
    `openssl` in `workdir`."""

    def __init__(self, workdir, host=HOST):
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.ca, ca_key = workdir / "ca.crt", workdir / "ca.key"
        self.server_cert, self.server_key = workdir / "server.crt", workdir / "server.key"
        self.client_cert, self.client_key = workdir / "client.crt", workdir / "client.key"
        openssl = shutil.which("openssl")
        if openssl is None:
            raise PeerMissing("openssl is not installed; apt-get install openssl")

        def run(*args):
            subprocess.run([openssl, *args], check=True, capture_output=True)

        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=test CA", "-keyout", str(ca_key), "-out", str(self.ca))
        for cert, key, name, extra in (
            (self.server_cert, self.server_key, host, "subjectAltName=IP:%s" % host),
            (self.client_cert, self.client_key, "sip-appliance", "extendedKeyUsage=clientAuth"),
        ):
            request = workdir / (name + ".csr")
            extensions = workdir / (name + ".ext")
            extensions.write_text(extra + "\n")
            run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
                "-keyout", str(key), "-out", str(request))
            run("x509", "-req", "-in", str(request), "-CA", str(self.ca), "-CAkey",
                str(ca_key), "-CAcreateserial", "-days", "2", "-extfile", str(extensions),
                "-out", str(cert))
