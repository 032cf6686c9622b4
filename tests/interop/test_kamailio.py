"""The client side of digest authentication against a real home proxy (Kamailio)."""

import subprocess
import sys

import pytest

from .conftest import ROOT, _agent_env, start_kamailio


def options(kamailio, *extra):
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "options", kamailio.uri, "--timeout", "5",
         "--from", "sip:alice@%s" % kamailio.realm, *extra],
        capture_output=True, text=True, timeout=30, env=_agent_env(), cwd=ROOT,
    )


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_proxy_challenge_answered_with_credentials(tmp_path, algorithm):
    with start_kamailio(tmp_path, {"alice": "s3cret"}, algorithm=algorithm) as kamailio:
        result = options(kamailio, "--user", "alice", "--password", "s3cret")
        assert result.returncode == 0, result.stdout + result.stderr + kamailio.log()
        assert result.stdout.startswith("SIP/2.0 200 OK"), result.stdout


def test_wrong_password_ends_on_the_challenge(tmp_path):
    with start_kamailio(tmp_path, {"alice": "s3cret"}) as kamailio:
        result = options(kamailio, "--user", "alice", "--password", "wrong")
        unauthenticated = options(kamailio)
    assert result.returncode == 1
    assert result.stdout.startswith("SIP/2.0 407 Proxy Authentication Required")
    assert unauthenticated.stdout.startswith("SIP/2.0 407 Proxy Authentication Required")
