"""`appliance options --user/--password` against SIPp as a UAS that challenges with digest
and checks the answer with its own verifyauth (a second implementation of RFC 2617)."""

import errno
import socket
import subprocess
import sys
import time
from pathlib import Path

from .conftest import HOST, ROOT, _agent_env, free_port

SCENARIO = Path(__file__).parent / "scenarios" / "uas_digest.xml"


def start_uas(sipp_binary, workdir, port, password):
    process = subprocess.Popen(
        [sipp_binary, "-sf", str(SCENARIO), "-i", HOST, "-p", str(port), "-t", "u1",
         "-m", "1", "-s", "alice", "-set", "pw", password, "-nr", "-nd",
         "-timeout", "20s", "-timeout_error", "-trace_err"],
        cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # listening once the port is taken
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return process
        if process.poll() is not None:
            raise AssertionError("SIPp exited: %s" % process.stderr.read())
        time.sleep(0.05)
    process.kill()
    raise AssertionError("SIPp did not start listening on %d" % port)


def options(port, *extra):
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "options", "sip:alice@%s:%d" % (HOST, port),
         "--timeout", "5", *extra],
        capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT,
    )


def finish(process):
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def test_right_password_answers_the_challenge(sipp_binary, tmp_path):
    port = free_port()
    uas = start_uas(sipp_binary, tmp_path, port, "s3cret")
    result = options(port, "--user", "alice", "--password", "s3cret")
    assert finish(uas) == 0, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout


def test_password_file_works_and_stays_out_of_the_output(sipp_binary, tmp_path):
    port = free_port()
    secret = tmp_path / "secret"
    secret.write_text("s3cret-from-file\n")
    uas = start_uas(sipp_binary, tmp_path, port, "s3cret-from-file")
    result = options(port, "--user", "alice", "--password-file", str(secret), "-v")
    assert finish(uas) == 0, result.stdout + result.stderr
    assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout
    assert "s3cret-from-file" not in result.stdout + result.stderr


def test_wrong_password_is_refused_and_not_retried_forever(sipp_binary, tmp_path):
    port = free_port()
    uas = start_uas(sipp_binary, tmp_path, port, "s3cret")
    result = options(port, "--user", "alice", "--password", "wrong")
    finish(uas)
    assert result.returncode == 1
    assert result.stdout.startswith("SIP/2.0 403 Forbidden"), result.stdout


def test_without_credentials_the_challenge_is_the_answer(sipp_binary, tmp_path):
    port = free_port()
    uas = start_uas(sipp_binary, tmp_path, port, "s3cret")
    try:
        result = options(port)
    finally:
        uas.kill()
        uas.wait()
    assert result.returncode == 1
    assert result.stdout.startswith("SIP/2.0 401 Unauthorized"), result.stdout
