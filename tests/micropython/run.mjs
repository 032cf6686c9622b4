#!/usr/bin/env node
// Run the portable core's unit tests (tests/core/test_*.py) and the firmware's
// (tests/firmware/test_*.py) on MicroPython.
//
// Usage (from anywhere; paths are resolved from this file, not the cwd):
//   npm ci --prefix tests/micropython            # once
//   node tests/micropython/run.mjs [-v] [test_module ...]
//
// A test module may be named as `test_uri`, `test_uri.py`,
// `tests/core/test_uri.py`, `tests.core.test_uri` (or the same under
// tests/firmware). A bare name is looked up in tests/core, then tests/firmware.
// With no names, every tests/core/test_*.py and tests/firmware/test_*.py is
// run. `-v` prints one line per test.
//
// The MicroPython WebAssembly port gets a copy of the code under /lib (which
// is on its sys.path), keeping the repository layout:
//   appliance/__init__.py, commands.py, packages.py, appliance/sip/**.py,
//   tests/__init__.py, tests/core/**.py, tests/firmware/**.py (but conftest.py),
//   tests/data/** (byte for byte)
// so `import appliance.sip.x`, `import tests.core.test_y` and reading
// `<dir of tests/core>/../data/...` work as they do on CPython. The firmware's
// modules are flat, as on a board's filesystem: firmware/*.py (but the
// host-only run_host.py and manifest.py) and the simulated firmware/host/*.py
// (machine, network) go to /lib itself, so `import agent`, `import board` and
// `import machine` work (the port has no machine module of its own).
//
// The tests are unittest.TestCase classes run by the small driver below (not
// by micropython-lib's unittest.main, whose runner shares one TestCase
// instance between tests and aborts the whole run when a setUp raises).
// micropython-lib's unittest still provides TestCase and its asserts, and its
// TestResult collects subTest failures.
//
// Output: a traceback block per failure/error (a module that fails to import
// counts as one failure), then a last line
//   micropython: N passed, N failed[, N skipped]
// Exit status: 0 if at least one test passed and nothing failed; 1 if tests
// failed or none ran; 2 if the runner itself could not run.
//
// tests/micropython/heap.mjs imports loadPort() and mirrorRepository() from
// here; this file runs the tests only when it is the script node was given.

import { readFileSync, readdirSync, statSync, existsSync } from "node:fs";
import { dirname, join, resolve, relative, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");
const VFS_ROOT = "/lib";
const PACKAGE = "@micropython/micropython-webassembly-pyscript";
const HEAP_BYTES = 64 * 1024 * 1024;
// Number of words (not bytes) for MicroPython's Python-frame stack. Note: the
// Python recursion depth (about 120 frames inside a test) is bounded by the
// port's fixed 32 KiB C stack, not by this.
const PYSTACK_WORDS = 256 * 1024;

// Files mirrored into the VFS: [file or directory relative to ROOT, recurse
// (null: a single file), filter, and where under /lib the files go: "same"
// keeps the repository path, "flat" puts them in /lib itself].
const isPy = (name) => name.endsWith(".py");
const HOST_ONLY = ["run_host.py", "manifest.py"]; // as firmware/build leaves them out
const isFirmwarePy = (name) => isPy(name) && !HOST_ONLY.includes(name);
const MIRROR = [
  ["appliance/__init__.py", null, null, "same"],
  ["appliance/commands.py", null, null, "same"],
  ["appliance/packages.py", null, null, "same"],
  ["appliance/sip", true, isPy, "same"],
  ["tests/__init__.py", null, null, "same"],
  ["tests/core", true, isPy, "same"],
  ["tests/firmware", true, (name) => isPy(name) && name !== "conftest.py", "same"],
  ["tests/data", true, () => true, "same"],
  ["firmware", false, isFirmwarePy, "flat"],
  ["firmware/host", false, isPy, "flat"],
];
// Directories of test modules, in the order they run and bare names are looked up.
const TEST_DIRS = ["core", "firmware"];

function fail(message, code = 2) {
  process.stderr.write(`run.mjs: ${message}\n`);
  process.exit(code);
}

function walk(relDir, recurse, filter, out) {
  const absDir = join(ROOT, relDir);
  if (!existsSync(absDir)) return;
  for (const name of readdirSync(absDir).sort()) {
    if (name === "__pycache__" || name.startsWith(".")) continue;
    const rel = `${relDir}/${name}`;
    const st = statSync(join(ROOT, rel));
    if (st.isDirectory()) {
      if (recurse) walk(rel, recurse, filter, out);
    } else if (st.isFile() && filter(name)) {
      out.push(rel);
    }
  }
}

// [path relative to ROOT, path in the VFS] of every file to mirror.
function filesToMirror() {
  const out = [];
  for (const [rel, recurse, filter, layout] of MIRROR) {
    const found = [];
    if (recurse === null) {
      if (!existsSync(join(ROOT, rel))) fail(`missing ${rel}`);
      found.push(rel);
    } else {
      walk(rel, recurse, filter, found);
    }
    for (const file of found) {
      const name = layout === "flat" ? file.slice(file.lastIndexOf("/") + 1) : file;
      out.push([file, `${VFS_ROOT}/${name}`]);
    }
  }
  return out;
}

function mkdirs(FS, dir) {
  let cur = "";
  for (const part of dir.split("/").filter(Boolean)) {
    cur += "/" + part;
    try {
      FS.mkdir(cur);
    } catch (e) {
      // Already exists (EEXIST); anything else shows up when writing.
    }
  }
}

function mirror(FS, files) {
  for (const [rel, dest] of files) {
    const data = readFileSync(join(ROOT, rel)); // Buffer: raw bytes
    mkdirs(FS, dest.slice(0, dest.lastIndexOf("/")));
    FS.writeFile(dest, new Uint8Array(data.buffer, data.byteOffset, data.length));
  }
}

// Copy the repository's code into the VFS of a loaded port (see the top).
export function mirrorRepository(FS) {
  mirror(FS, filesToMirror());
}

function discover() {
  const out = [];
  for (const sub of TEST_DIRS) {
    const dir = join(ROOT, "tests", sub);
    if (!existsSync(dir)) continue;
    for (const n of readdirSync(dir).filter((n) => /^test_.*\.py$/.test(n)).sort()) {
      out.push(`tests.${sub}.${n.slice(0, -3)}`);
    }
  }
  return out;
}

function moduleFromArg(arg) {
  let name = arg;
  // Accept a path (relative to cwd or the repo root), a dotted name, or a bare name.
  if (name.endsWith(".py") || name.includes("/") || name.includes(sep)) {
    const candidates = [resolve(name), resolve(ROOT, name)];
    const abs = candidates.find((p) => existsSync(p)) ?? candidates[1];
    name = relative(ROOT, abs).split(sep).join("/");
    if (name.endsWith(".py")) name = name.slice(0, -3);
    name = name.split("/").join(".");
  }
  if (!name.includes(".")) {
    const sub = TEST_DIRS.find((d) => existsSync(join(ROOT, "tests", d, `${name}.py`)));
    name = `tests.${sub ?? TEST_DIRS[0]}.${name}`;
  }
  const m = /^tests\.(core|firmware)\.(test_[A-Za-z0-9_]*)$/.exec(name);
  if (!m) fail(`not a tests/core/test_*.py or tests/firmware/test_*.py module: ${arg}`);
  if (!existsSync(join(ROOT, "tests", m[1], `${m[2]}.py`))) {
    fail(`no such test module: tests/${m[1]}/${m[2]}.py`);
  }
  return name;
}

// The test driver, run inside MicroPython. Keep it to the MicroPython subset.
const DRIVER = String.raw`
import sys, io, gc, json, unittest

_LINE1 = "=" * 70
_LINE2 = "-" * 70


def _format(exc):
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    # Drop this driver's own frames (it is compiled as "<stdin>").
    lines = buf.getvalue().split("\n")
    return "\n".join([l for l in lines if not l.startswith('  File "<stdin>"')])


def _call(fn, *args):
    try:
        fn(*args)
    except BaseException as e:
        return e
    return None


class _Run:
    def __init__(self, verbose):
        self.verbose = verbose
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.skip_reason = None
        # Collects subTest failures (SubtestContext reports to it).
        self.ut = unittest.TestResult()

    def report(self, kind, label, text):
        print(_LINE1)
        print("%s: %s" % (kind, label))
        print(_LINE2)
        print(text.rstrip("\n"))
        print()

    def problem(self, where, label, exc):
        # Returns "skip", "FAIL" or "ERROR"; prints the traceback for the latter two.
        if isinstance(exc, unittest.SkipTest):
            if self.skip_reason is None:
                self.skip_reason = exc.args[0] if exc.args else ""
            return "skip"
        kind = "FAIL" if isinstance(exc, AssertionError) else "ERROR"
        self.report(kind, label + where, _format(exc))
        return kind

    def status(self, label, text):
        if self.verbose:
            print("%s ... %s" % (label, text))


def _test_names(cls):
    names = []
    for name in dir(cls):
        if name.startswith("test") and callable(getattr(cls, name, None)):
            names.append(name)
    names.sort()
    return names


def _test_classes(mod):
    classes = []
    for name in sorted(dir(mod)):
        obj = getattr(mod, name, None)
        if (
            isinstance(obj, type)
            and obj is not unittest.TestCase
            and issubclass(obj, unittest.TestCase)
        ):
            classes.append(obj)
    return classes


def _run_test(run, modname, cls, name):
    label = "%s.%s.%s" % (modname, cls.__name__, name)
    ut = run.ut
    n_failures = len(ut.failures)
    n_errors = len(ut.errors)
    outcomes = []
    run.skip_reason = None

    unittest.__current_test__ = (name, "(%s.%s)" % (modname, cls.__name__))
    unittest.__test_result__ = ut
    ut._newFailures = 0
    try:
        try:
            inst = cls()
        except BaseException as e:
            outcomes.append(run.problem(" (creating the TestCase)", label, e))
            inst = None
        if inst is not None:
            set_up = getattr(inst, "setUp", None)
            e = _call(set_up) if set_up is not None else None
            if e is not None:
                outcomes.append(run.problem(" (setUp)", label, e))
            else:
                e = _call(getattr(inst, name))
                if e is not None:
                    outcomes.append(run.problem("", label, e))
                tear_down = getattr(inst, "tearDown", None)
                e = _call(tear_down) if tear_down is not None else None
                if e is not None:
                    outcomes.append(run.problem(" (tearDown)", label, e))
            cleanups = getattr(inst, "doCleanups", None)
            e = _call(cleanups) if cleanups is not None else None
            if e is not None:
                outcomes.append(run.problem(" (cleanup)", label, e))
    finally:
        unittest.__current_test__ = None
        unittest.__test_result__ = None

    # Failures inside "with self.subTest(...)" blocks were recorded by
    # micropython-lib's SubtestContext into ut.failures / ut.errors.
    for kind, lst, start in (("FAIL", ut.failures, n_failures), ("ERROR", ut.errors, n_errors)):
        for details, text in lst[start:]:
            run.report(kind, label + "".join(details[2:]), text)
            outcomes.append(kind)

    if "ERROR" in outcomes or "FAIL" in outcomes:
        run.failed += 1
        run.status(label, "ERROR" if "ERROR" in outcomes else "FAIL")
    elif "skip" in outcomes:
        run.skipped += 1
        run.status(label, "skipped %r" % (run.skip_reason,))
    else:
        run.passed += 1
        run.status(label, "ok")


def _run_class(run, modname, cls):
    label = "%s.%s" % (modname, cls.__name__)
    set_up_class = getattr(cls, "setUpClass", None)
    if set_up_class is not None:
        e = _call(set_up_class)
        if e is not None:
            kind = run.problem(" (setUpClass)", label, e)
            if kind == "skip":
                run.skipped += 1
                run.status(label, "skipped (setUpClass)")
            else:
                run.failed += 1
                run.status(label, kind + " (setUpClass)")
            return
    try:
        for name in _test_names(cls):
            _run_test(run, modname, cls, name)
    finally:
        tear_down_class = getattr(cls, "tearDownClass", None)
        if tear_down_class is not None:
            e = _call(tear_down_class)
            if e is not None and run.problem(" (tearDownClass)", label, e) != "skip":
                run.failed += 1


def _run_module(run, modname):
    try:
        __import__(modname)
        mod = sys.modules[modname]
    except unittest.SkipTest as e:
        # "raise unittest.SkipTest(...)" at module level skips the module.
        run.skipped += 1
        run.status(modname, "skipped %r" % (e.args[0] if e.args else "",))
        return
    except BaseException as e:
        # Typically a CPython-only construct in the core or the test.
        run.report("ERROR", modname + " (import)", _format(e))
        run.failed += 1
        run.status(modname, "ERROR (import)")
        return
    set_up_module = getattr(mod, "setUpModule", None)
    if set_up_module is not None:
        e = _call(set_up_module)
        if e is not None:
            if run.problem(" (setUpModule)", modname, e) == "skip":
                run.skipped += 1
            else:
                run.failed += 1
            return
    for name in sorted(dir(mod)):
        obj = getattr(mod, name, None)
        if name.startswith("test") and callable(obj) and not isinstance(obj, type):
            # pytest would run these on CPython; this runner only runs TestCase tests.
            print("warning: %s.%s is not in a TestCase; not run on MicroPython" % (modname, name))
    try:
        for cls in _test_classes(mod):
            _run_class(run, modname, cls)
    finally:
        tear_down_module = getattr(mod, "tearDownModule", None)
        if tear_down_module is not None:
            e = _call(tear_down_module)
            if e is not None and run.problem(" (tearDownModule)", modname, e) != "skip":
                run.failed += 1
        gc.collect()


def _run_all(modnames_json, verbose):
    run = _Run(verbose)
    modnames = json.loads(modnames_json)
    print(
        "MicroPython %s: %d test module(s); /lib/ in tracebacks is the repository root"
        % (sys.version.split("MicroPython ")[-1], len(modnames))
    )
    for modname in modnames:
        _run_module(run, modname)
    return json.dumps({"passed": run.passed, "failed": run.failed, "skipped": run.skipped})
`;

// The MicroPython WebAssembly port, loaded, printing to this process's
// stdout/stderr; exits with status 2 when the npm package is not installed.
export async function loadPort({ heapsize = HEAP_BYTES, pystack = PYSTACK_WORDS } = {}) {
  let loadMicroPython;
  try {
    ({ loadMicroPython } = await import(PACKAGE));
  } catch (e) {
    fail(`cannot load ${PACKAGE} (${e.code ?? e.message}); install it with: npm ci --prefix tests/micropython`);
  }
  return loadMicroPython({
    heapsize,
    pystack,
    stdout: (line) => process.stdout.write(line + "\n"),
    stderr: (line) => process.stderr.write(line + "\n"),
  });
}

async function main() {
  const args = process.argv.slice(2);
  let verbose = false;
  const names = [];
  for (const arg of args) {
    if (arg === "-v" || arg === "--verbose") verbose = true;
    else if (arg === "-h" || arg === "--help") {
      process.stdout.write("usage: node tests/micropython/run.mjs [-v] [test_module ...]\n");
      return 0;
    } else if (arg.startsWith("-")) fail(`unknown option ${arg}`);
    else names.push(arg);
  }
  const modules = names.length ? [...new Set(names.map(moduleFromArg))] : discover();
  if (modules.length === 0) {
    process.stdout.write("no tests/core/test_*.py or tests/firmware/test_*.py modules found\n" +
      "micropython: 0 passed, 0 failed\n");
    return 1;
  }

  const mp = await loadPort();
  mirrorRepository(mp.FS);

  let summary;
  try {
    mp.runPython(DRIVER);
    const runAll = mp.globals.get("_run_all");
    summary = JSON.parse(runAll(JSON.stringify(modules), verbose));
  } catch (e) {
    // A PythonError escaping the driver, or a WebAssembly abort.
    process.stdout.write(`micropython runner crashed:\n${e && e.name === "PythonError" ? e.message : e?.stack ?? e}\n`);
    process.stdout.write("micropython: 0 passed, 1 failed\n");
    return 2;
  }

  if (summary.failed === 0 && summary.passed === 0) {
    process.stdout.write("no test ran\n");
  }
  let line = `micropython: ${summary.passed} passed, ${summary.failed} failed`;
  if (summary.skipped) line += `, ${summary.skipped} skipped`;
  process.stdout.write(line + "\n");
  return summary.failed === 0 && summary.passed > 0 ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = await main();
}
