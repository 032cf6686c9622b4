def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "micropython: runs tests/core on MicroPython (WebAssembly port via Node.js); "
        "deselect with -m 'not micropython'",
    )
