# A MicroPython manifest: freezes the firmware into a MicroPython build of your own, so
# that the modules run from flash (more RAM free, no .mpy files on the board to keep in
# step). firmware/deploy is the simpler way; this one is for a board made once and left.
#
# From a clone of MicroPython (its ports/esp32 or ports/rp2, set up as their README says):
#
#     make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/sip-appliance/firmware/manifest.py
#     make BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/sip-appliance/firmware/manifest.py
#
# then flash the firmware it makes (build-ESP32_GENERIC/firmware.bin with esptool,
# build-RPI_PICO_W/firmware.uf2 onto the Pico W's USB drive) and copy only the config:
#
#     mpremote connect /dev/ttyUSB0 fs cp my.json :config.json + reset
#
# main.py is frozen too, and MicroPython runs a frozen main.py at boot before it looks at
# the filesystem: the board starts the agent with nothing but config.json on it. To leave
# main.py out (and boot from a main.py on the filesystem instead), include this manifest
# from one of your own with `include("/path/to/firmware/manifest.py", main=False)`.
#
# The modules are those firmware/build compiles (tests/test_firmware_tools.py checks it):
# the portable part of the appliance package (the version, the command language, the event
# package bodies) with the whole SIP core, and every firmware module but the host-only
# tools. Paths here are relative to this file, as MicroPython's manifest tools read them.

import os

options.defaults(main=True)  # noqa: F821 - manifest functions: MicroPython's tools give them

# FROZEN_MANIFEST replaces the board's own manifest: include it, for what the firmware
# needs from it (asyncio, and ntptime from the networking bundle). A board's manifest is in
# its folder when it has one (the Pico W's), else the port's serves.
try:
    include("$(BOARD_DIR)/manifest.py")  # noqa: F821
except Exception as error:  # ManifestFileError, which manifests cannot name
    if "Errno 2" not in str(error):  # the board's manifest is there and failed: say so
        raise
    include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821

PORTABLE = ["__init__.py", "commands.py", "packages.py"]  # of appliance/, beside sip/
LEFT_OUT = ["manifest.py", "run_host.py"]  # host-only tools

package(  # noqa: F821
    "appliance",
    files=PORTABLE + ["sip/" + name for name in sorted(os.listdir("../appliance/sip"))
                      if name.endswith(".py")],
    base_path="..",
)
if not options.main:  # noqa: F821
    LEFT_OUT.append("main.py")
for name in sorted(os.listdir(".")):
    if name.endswith(".py") and name not in LEFT_OUT:
        module(name)  # noqa: F821
