"""Tests of the firmware's logic (firmware/*.py), on CPython and on MicroPython.

The firmware's modules are flat, as on a board's filesystem (`import agent`, `import
board`, `import machine`), so they need firmware/host (the simulated `machine` and
`network`), firmware/ and the repository root on sys.path:

- on MicroPython, tests/micropython/run.mjs writes them to /lib, which is on sys.path;
- on CPython, importing this package puts the three directories first on sys.path, and
  tests/firmware/conftest.py takes them off again (with the modules found there) whenever
  a test outside tests/firmware is collected or runs: elsewhere `import machine` fails, as
  it does on a PC.
"""

import sys

# The directories of the firmware's modules, and those of them this package put on
# sys.path (the repository root is usually there already).
DIRECTORIES = []
INSERTED = []
if sys.implementation.name != "micropython":
    import os

    _ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    DIRECTORIES[:] = [os.path.join(_ROOT, "firmware", "host"), os.path.join(_ROOT, "firmware")]
    for _path in reversed(DIRECTORIES + [_ROOT]):
        if _path not in sys.path:
            sys.path.insert(0, _path)
            INSERTED.insert(0, _path)
