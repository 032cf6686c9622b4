#!/usr/bin/env node
// The firmware agent's heap after start, measured with gc on the MicroPython
// WebAssembly port (the goal: under 60 KB). firmware/build runs this.
//
//   npm ci --prefix tests/micropython            # once
//   node tests/micropython/heap.mjs [--config FILE] [--mpy DIR]
//
// The repository is mirrored into the port's VFS as run.mjs does (firmware
// flat in /lib, the simulated machine and network beside it). With --mpy, the
// .mpy files of a firmware/build output DIR take the place of the sources, so
// that the code is loaded as a board loads what firmware/deploy copied (the
// port reads mpy-cross's bytecode). Then, on one interpreter:
//   1. the simulated `machine` and `network` are imported (a board has them
//      built in: they are not the firmware's), gc.collect(), gc.mem_alloc():
//      the baseline;
//   2. the firmware's modules and the core they use are imported one by one,
//      leaves first, each measured: `code_and_imports` is the heap the loaded
//      code holds (bytecode, functions, classes, module dicts);
//   3. the settings of firmware/config.example.json (or, while there is none,
//      a door, a dimmable light and a relay with users and a proxy) are read,
//      the devices built on the simulated pins and the Agent started with a
//      `send` that answers each REGISTER with a 200 and a `resolve` that
//      returns literal addresses; a user SUBSCRIBEs (answering the 401) and
//      sends a DO, and the NOTIFYs are answered, so the subscription,
//      transaction, nonce and registration tables are in use;
//      gc.collect(): `agent_state` is what the settings, devices and agent
//      hold then (`agent_state_steps`: what each step added); and
//      `agent_state_idle` the same once the transactions have ended.
// Printed: one JSON object on stdout,
//   {"heap_after_start", "code_and_imports", "agent_state", "agent_state_idle",
//    "agent_state_steps": {step: bytes}, "mem_free", "heap_size", "config",
//    "loaded_from", "modules": {name: bytes}, "scenario": [notes]}
// with every size in bytes; `heap_after_start` = code_and_imports + agent_state.
// A module's figure includes any growth of the interned-string (qstr) pools
// its import caused, so the figures of single modules are uneven; their sum
// is code_and_imports.
// `mem_free` is gc.mem_free() at the end, of a port heap of `heap_size` bytes
// (this port's heap is large and grows on demand: it says nothing of a
// board's). Exit status 1 when the scenario fails, 2 when the port cannot be
// loaded or the arguments are wrong.
//
// The port is 32-bit, as the boards' are, so objects take the sizes they take
// there. From the .py sources the code's figure comes out larger than from the
// .mpy files a board loads; modules frozen into a firmware image
// (firmware/manifest.py) keep their bytecode in flash, and only their
// functions, classes and dicts in the heap.

import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { resolve, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

import { loadPort, mirrorRepository } from "./run.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");
const EXAMPLE = resolve(ROOT, "firmware", "config.example.json");

// Used while firmware/config.example.json does not exist.
const INLINE = {
  wifi: { ssid: "home", password: "wifi-password" },
  agent: { name: "porch-esp32", domain: "home.arpa" },
  proxy: { registrar: "sip:pbx.home.arpa", username: "porch-esp32", password: "pbx-password" },
  users: [{ name: "alice", password: "a long phrase", devices: ["frontdoor", "porch", "garage"] }],
  devices: [
    { name: "frontdoor", type: "door", pin: 4 },
    { name: "porch", type: "light", pin: 2, dimmable: true },
    { name: "garage", type: "relay", pin: 5, pulse: 1 },
  ],
};

// Leaves first, so that each import adds mostly its own module.
const MODULES = [
  "appliance", "appliance.sip", "appliance.sip.errors", "appliance.sip.uri",
  "appliance.sip.headers", "appliance.sip.message", "appliance.sip.hashes",
  "appliance.sip.digest", "appliance.sip.auth", "appliance.sip.events",
  "appliance.sip.transaction", "appliance.sip.uas", "appliance.sip.dialog",
  "appliance.sip.endpoint", "appliance.sip.stun", "appliance.sip.keepalive",
  "appliance.sip.registration", "appliance.sip.subscription", "appliance.commands",
  "appliance.packages", "settings", "board", "agent",
];

// What each step of the scenario adds to agent_state.
const STAGES = {
  settings: "config.json read",
  devices: "devices on pins",
  agent: "Agent()",
  start: "start() with the REGISTERs answered",
  use: "a SUBSCRIBE and a DO served",
};

// Runs inside MicroPython. gc.collect() only frees what nothing on the
// port's stack still points at, and a call from JavaScript leaves stale
// pointers there for a while after it returns: so every figure is taken in
// runPython() calls of their own, after the step it measures has returned
// (see mark() below).
const SCRIPT = String.raw`
import gc, sys, json
import machine, network  # built into a board, not the firmware's: in the baseline

_statuses = []  # of the scenario's SUBSCRIBE and DO
_kept = None  # the _Scenario: its settings, devices and agent are what a board keeps
_had = None
_alloc = 0  # the last gc.mem_alloc() after a collect, for JavaScript to read
_TEXT = ""  # the config.json


def _collect():
    gc.collect()
    return gc.mem_alloc()


def _pulled(name):
    """The modules the last import brought in besides "name", as JSON."""
    return json.dumps(sorted(m for m in sys.modules if m not in _had and m != name))


class _Scenario:
    """The board's start and first requests, one step per method (each called, and
    measured, on its own): settings, devices, agent, start, use. Also the board's
    network: send() answers each REGISTER with a 200 at once, and keeps what goes to the
    phone; resolve() gives literal addresses."""

    PHONE = ("192.0.2.50", 5070)
    NOW = 1000

    def __init__(self, text):
        self.text = text
        self.count = 0
        self.inbox = []
        self.answers = []
        self.settings = self.devices = self.agent = None

    def token(self, n):
        self.count += 1
        return ("%0" + str(n) + "x") % self.count

    def resolve(self, host, port):
        return (host if host.replace(".", "").isdigit() else "192.0.2.1", port)

    def send(self, data, host, port):
        from appliance.sip.errors import ParseError
        from appliance.sip.message import Request, make_response, parse_message

        try:
            message = parse_message(data)
        except ParseError:
            return  # a STUN request or a CRLF keep-alive: unanswered
        if isinstance(message, Request) and message.method == "REGISTER":
            contact = message.get("contact")
            if contact:  # the registrar's 200
                self.answers.append((make_response(message, 200, fields=[
                    ("Contact", "%s;expires=600" % contact)]), (host, port)))
        elif (host, port) == self.PHONE:
            self.inbox.append(message)

    def step_settings(self):
        import settings

        self.settings = settings.parse(self.text)

    def step_devices(self):
        from board import build_devices

        self.devices = build_devices(self.settings["devices"])

    def step_agent(self):
        from agent import Agent

        self.agent = Agent(self.settings, self.devices, self.send, self.token, _half,
                           self.resolve, log=_quiet)

    def step_start(self):
        self.agent.start("192.0.2.10", self.NOW)
        self.settle()

    def settle(self):
        from appliance.sip.message import Request, make_response

        agent = self.agent
        while self.answers:
            message, source = self.answers.pop(0)
            agent.receive(message.to_bytes(), source, self.NOW)
        while self.inbox:
            message = self.inbox.pop(0)
            if isinstance(message, Request):  # a NOTIFY: 200
                agent.receive(make_response(message, 200).to_bytes(), self.PHONE, self.NOW)
            else:
                _statuses.append(message.status)

    def step_use(self):
        """A SUBSCRIBE to the first user's first device and a DO "on" to their first
        output, each answering the 401 first."""
        from appliance.sip.digest import DigestClient, same_credentials

        users = self.settings["users"]
        if not users:
            return
        user = users[0]
        names = [n for n in user["devices"] if n in self.devices]
        outputs = [n for n in names if self.devices[n].type != "door"]
        client = DigestClient(same_credentials(user["name"], user["password"]), self.token)
        if names:
            self.ask(client, user, "SUBSCRIBE", names[0], [
                ("Event", "appliance"), ("Accept", "application/json"), ("Expires", 600),
                ("Contact", "<sip:%s@%s:%d>" % (user["name"], self.PHONE[0], self.PHONE[1]))])
        if outputs:
            self.ask(client, user, "DO", outputs[0], [("Content-Type", "text/plain")], b"on")

    def ask(self, client, user, method, name, fields, body=b""):
        from appliance.sip.message import Request, make_request

        domain = self.settings["agent"]["domain"] or self.settings["agent"]["name"]
        for attempt in (1, 2):
            self.count += 1
            request = make_request(method, "sip:%s@%s" % (name, domain),
                                   "sip:%s@%s" % (user["name"], domain), "phone-tag",
                                   "call-%s-%s" % (method, name), attempt, fields=fields,
                                   body=body)
            request.add_first("Via", "SIP/2.0/UDP %s:%d;branch=z9hG4bK-%d"
                              % (self.PHONE[0], self.PHONE[1], self.count))
            client.authorize(request)
            self.agent.receive(request.to_bytes(), self.PHONE, self.NOW)
            final = [m for m in self.inbox if not isinstance(m, Request)]
            if attempt == 1 and final and final[-1].status == 401:
                client.challenged(final[-1])
                self.inbox[:] = [m for m in self.inbox if isinstance(m, Request)]
                continue
            self.settle()
            return


def _half():
    return 0.5


def _quiet(line):
    pass


def _report():
    settings, devices, agent = _kept.settings, _kept.devices, _kept.agent
    endpoint = agent.endpoint
    notes = ["devices: " + ", ".join("%s (%s)" % (name, devices[name].type)
                                     for name in sorted(devices)),
             "registered %d of %d" % (sum(1 for r in agent.registrations.values()
                                         if r.is_registered(1000)), len(agent.registrations)),
             "SUBSCRIBE and DO answered: %s" % (_statuses,),
             "in use: %d subscription(s), %d server and %d client transaction(s), %d nonce(s)"
             % (len(agent.subscriptions), len(endpoint.server_transactions),
                len(endpoint.client_transactions), agent.auth.nonces_held)]
    return json.dumps({"mem_free": gc.mem_free(), "heap_size": gc.mem_alloc() + gc.mem_free(),
                       "scenario": notes})
`;

// Put the .mpy files under `dir` (a firmware/build output) in /lib, in place
// of the sources mirrored there; returns how many.
function mirrorCompiled(FS, dir, rel = "") {
  let count = 0;
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const path = rel ? `${rel}/${name}` : name;
    if (statSync(join(dir, path)).isDirectory()) {
      count += mirrorCompiled(FS, dir, path);
    } else if (name.endsWith(".mpy")) {
      try {
        FS.unlink(`/lib/${path.slice(0, -4)}.py`); // a .py would be imported first
      } catch (e) {
        // none mirrored (main.py, say, is not imported here)
      }
      const data = readFileSync(join(dir, path));
      FS.writeFile(`/lib/${path}`, new Uint8Array(data.buffer, data.byteOffset, data.length));
      count += 1;
    }
  }
  return count;
}

function usage(message) {
  process.stderr.write(`heap.mjs: ${message}\nusage: node tests/micropython/heap.mjs [--config FILE] [--mpy DIR]\n`);
  process.exit(2);
}

async function main() {
  const args = process.argv.slice(2);
  let config = existsSync(EXAMPLE) ? EXAMPLE : null;
  let compiled = null;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--config" && i + 1 < args.length) config = resolve(args[++i]);
    else if (args[i] === "--mpy" && i + 1 < args.length) compiled = resolve(args[++i]);
    else usage(`unknown argument ${args[i]}`);
  }
  const text = config ? readFileSync(config, "utf8") : JSON.stringify(INLINE);
  const mp = await loadPort();
  mirrorRepository(mp.FS);
  if (compiled !== null) {
    if (!existsSync(join(compiled, "agent.mpy"))) usage(`no agent.mpy in ${compiled}: run firmware/build`);
    mirrorCompiled(mp.FS, compiled);
  }
  const py = (code) => mp.runPython(code);
  // The first collect after a step still finds some of its garbage held (by
  // what the port's stack held during the step): the second, in a call of its
  // own, does not.
  const mark = () => {
    py("_alloc = _collect()");
    py("_alloc = _collect()");
    return mp.globals.get("_alloc");
  };
  const result = { modules: {} };
  try {
    py(SCRIPT);
    mp.globals.set("_TEXT", text);
    const base = mark();
    for (const name of MODULES) {
      py("_had = set(sys.modules)");
      const before = mark();
      py(`__import__(${JSON.stringify(name)})`);
      const after = mark();
      const pulled = JSON.parse(mp.globals.get("_pulled")(name));
      result.modules[pulled.length ? `${name} (with ${pulled.join(", ")})` : name] = after - before;
    }
    py("_had = None");
    const code = mark();
    py("_kept = _Scenario(_TEXT)");
    const steps = {};
    let step = mark();
    for (const [name, label] of Object.entries(STAGES)) {
      py(`_kept.step_${name}()`);
      const now = mark();
      steps[label] = now - step;
      step = now;
    }
    const started = step;
    const report = JSON.parse(mp.globals.get("_report")()); // (its garbage goes at the next mark)
    py("_kept.agent.tick(1000 + 64000)"); // past timers J and K: the transactions end
    const idle = mark();
    Object.assign(result, {
      heap_after_start: started - base,
      code_and_imports: code - base,
      agent_state: started - code,
      agent_state_idle: idle - code,
      agent_state_steps: steps,
    }, report);
  } catch (e) {
    process.stderr.write(`heap.mjs: the scenario failed:\n${e && e.name === "PythonError" ? e.message : e?.stack ?? e}\n`);
    return 1;
  }
  const where = config && relative(ROOT, config);
  result.config = config === null ? "inline (no firmware/config.example.json)"
    : where.startsWith("..") ? config : where;
  result.loaded_from = compiled === null ? "sources (.py)" : `.mpy files of ${relative(ROOT, compiled) || "."}`;
  process.stdout.write(JSON.stringify(result) + "\n");
  return 0;
}

process.exitCode = await main();
