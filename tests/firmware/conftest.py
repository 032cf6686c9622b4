"""Keeps the firmware's flat modules (`machine`, `network`, `board`, `agent`, `settings`)
to tests/firmware: its package puts firmware/host and firmware/ on sys.path (see
__init__.py); here they come off again, and the modules imported from them leave
sys.modules, while anything else is collected or run. A test elsewhere then cannot
import the simulated `machine` by accident, nor a top-level `agent` or `settings`."""

import os
import sys

import pytest

from tests import firmware

HERE = os.path.dirname(os.path.abspath(__file__))
_hidden = {}  # name -> module, while out of sys.modules


def _ours(path):
    return path is not None and (str(path) == HERE or str(path).startswith(HERE + os.sep))


def show():
    for path in reversed(firmware.INSERTED):
        if path not in sys.path:
            sys.path.insert(0, path)
    sys.modules.update(_hidden)
    _hidden.clear()


def hide():
    for path in firmware.INSERTED:
        while path in sys.path:
            sys.path.remove(path)
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        # Only the flat modules imported by name from those directories (not, say, a
        # module another test loads from firmware/build under a name of its own).
        if where and os.path.basename(where) == name + ".py" \
                and os.path.dirname(os.path.abspath(where)) in firmware.DIRECTORIES:
            _hidden[name] = sys.modules.pop(name)


# Collecting a test module imports it: the firmware is shown for that time only. (Only a
# Module: pytest may collect another directory's modules between this package's node and
# its report. These hooks run for nodes under tests/firmware, as a conftest's do.)
def pytest_collectstart(collector):
    if isinstance(collector, pytest.Module) and _ours(collector.path):
        show()


def pytest_collectreport(report):
    hide()


hide()  # this conftest loads while pytest still has other directories to collect


@pytest.fixture(autouse=True, scope="package")
def _firmware_importable():
    show()
    yield
    hide()
