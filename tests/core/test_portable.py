"""Every module of the core imports on the interpreter running the tests: on MicroPython,
this is what catches a construct it lacks, even in a module no other test touches."""

import os
import unittest

CORE = __file__.rsplit("/", 3)[0] + "/appliance/sip"


class TestEveryModuleImports(unittest.TestCase):
    def test_import_all(self):
        names = [n[:-3] for n in os.listdir(CORE) if n.endswith(".py") and n != "__init__.py"]
        self.assertIn("endpoint", names)
        for name in sorted(names):
            module = __import__("appliance.sip." + name, None, None, [name])
            self.assertEqual(module.__name__, "appliance.sip." + name)
