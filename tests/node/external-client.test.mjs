// Steward's daemon driven by a client the project did not write: Microsoft's `vscode-jsonrpc` (the library
// under VS Code's language clients), over the real socket of the real `steward daemon` binary.
//
// Builds nothing: the binary comes from $STEWARD_BIN (scripts/test sets it), else ../../target/debug/steward.
// Every wait polls against a deadline; there are no fixed sleeps.
//
//   cargo build -p steward && (cd tests/node && npm ci && node --test)

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { createRequire } from "node:module";

// `require`, not `import`: the subpath is `vscode-jsonrpc/node.js` up to 8.x but `vscode-jsonrpc/node` (an
// exports map) from 9.x, and CommonJS resolution finds either, so a version bump needs no change here.
const { createMessageConnection, StreamMessageReader, StreamMessageWriter } =
  createRequire(import.meta.url)("vscode-jsonrpc/node");

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const bin = path.resolve(here, process.env.STEWARD_BIN || "../../target/debug/steward");
const demo = path.join(repo, "examples/demo/steward.toml");

/** Polls `cond` (sync or async) every 10 ms until it is truthy or `ms` pass; returns its value. */
async function waitUntil(ms, what, cond) {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Whether something accepts connections on the Unix socket at `p`. */
function accepts(p) {
  return new Promise((resolve) => {
    const s = net.createConnection(p);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Alive and not a zombie. */
function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

// --- state shared with the cleanup -------------------------------------------------------------------------
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "steward-node-"));
const home = path.join(tmp, "home");
let daemon; // ChildProcess
let daemonExit; // Promise<{code, signal}>
let conn; // MessageConnection
let modulePids = [];

function daemonLog() {
  try {
    return fs.readFileSync(path.join(home, "logs", "daemon.log"), "utf8").split("\n").slice(-40).join("\n");
  } catch {
    return "(no daemon.log)";
  }
}

after(async () => {
  if (conn) conn.dispose();
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    daemon.kill("SIGKILL");
    await daemonExit;
  }
  for (const pid of modulePids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("vscode-jsonrpc drives the daemon: handshake, status, demo up, crash event, memory, stop", { timeout: 180_000 }, async (t) => {
  assert.ok(fs.existsSync(bin), `no steward binary at ${bin} (build it, or set STEWARD_BIN)`);
  const version = execFileSync(bin, ["--version"], { encoding: "utf8" }).trim().split(/\s+/).pop();
  const protocolVersion = Number(
    /export const PROTOCOL_VERSION = (\d+);/.exec(
      fs.readFileSync(path.join(repo, "protocol/ts/steward-protocol.ts"), "utf8"),
    )[1],
  );

  // 1. `steward daemon` in the foreground, in a private home, the demo on free ports.
  const ports = {
    DEMO_DB_PORT: String(await freePort()),
    DEMO_QUEUE_PORT: String(await freePort()),
    DEMO_API_PORT: String(await freePort()),
  };
  daemon = spawn(bin, ["daemon"], {
    env: { ...process.env, STEWARD_HOME: home, STEWARD_LOG: "debug", ...ports },
    stdio: ["ignore", "ignore", "ignore"],
  });
  daemonExit = new Promise((resolve) => daemon.once("exit", (code, signal) => resolve({ code, signal })));
  const socketPath = path.join(home, "run", "steward.sock");
  await waitUntil(20_000, "the daemon's socket", async () => {
    if (daemon.exitCode !== null || daemon.signalCode !== null) {
      throw new Error(`the daemon exited (${daemon.exitCode ?? daemon.signalCode}):\n${daemonLog()}`);
    }
    return fs.existsSync(socketPath) && (await accepts(socketPath));
  });

  // 2. Connect and shake hands, LSP style.
  const sock = net.createConnection(socketPath);
  await new Promise((resolve, reject) => sock.once("connect", resolve).once("error", reject));
  conn = createMessageConnection(new StreamMessageReader(sock), new StreamMessageWriter(sock));
  const events = [];
  let onEvent = () => {};
  conn.onNotification("steward/event", (ev) => {
    events.push({ ev, at: performance.now() });
    onEvent();
  });
  conn.listen();
  const init = await conn.sendRequest("initialize", { processId: process.pid, rootUri: null, capabilities: {} });
  assert.equal(init.serverInfo?.name, "steward", JSON.stringify(init));
  assert.equal(init.serverInfo?.version, version, JSON.stringify(init));
  await conn.sendNotification("initialized", {});

  // 3. Status, then the demo: open (with the ports, also through `env`) and up until every module is ready.
  const status = await conn.sendRequest("steward/status", {});
  assert.equal(status.version, version);
  assert.equal(status.protocolVersion, protocolVersion);
  assert.equal(status.pid, daemon.pid);
  assert.equal(status.home, home);
  assert.deepEqual(status.projects, []);

  const opened = await conn.sendRequest("steward/project/open", { path: demo, env: ports });
  assert.equal(opened.name, "demo");
  assert.equal(opened.path, fs.realpathSync(demo));
  const up = await conn.sendRequest("steward/project/up", { project: opened.path, wait: true, timeoutMs: 90_000 });
  assert.ok(up.ok, `up failed:\n${JSON.stringify(up, null, 2)}\n${daemonLog()}`);
  const mods = up.project.modules;
  assert.deepEqual(mods.map((m) => m.name).sort(), ["api", "db", "queue", "worker"]);
  for (const m of mods) {
    assert.equal(m.state, "running", JSON.stringify(m));
    assert.ok(m.health === undefined || m.health === "none" || m.health === "healthy", JSON.stringify(m));
  }
  modulePids = mods.map((m) => m.pid);
  const worker = (await conn.sendRequest("steward/status", { project: "demo" })).projects[0].modules.find(
    (m) => m.name === "worker",
  );
  assert.ok(worker.pid > 0, JSON.stringify(worker));

  // 4. SIGKILL the worker: its `runEnded` event must reach this client at once.
  const isCrash = ({ ev }) => ev.kind === "runEnded" && ev.module === "worker" && ev.signal === 9;
  const crashed = new Promise((resolve) => {
    onEvent = () => {
      const hit = events.find(isCrash);
      if (hit) resolve(hit);
    };
  });
  const t0 = performance.now();
  process.kill(worker.pid, "SIGKILL");
  let timer;
  const hit = await Promise.race([
    crashed,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("no steward/event for the killed worker within 10 s")), 10_000);
    }),
  ]).finally(() => clearTimeout(timer));
  const latency = hit.at - t0;
  console.log(`steward/event (runEnded) for the killed worker arrived ${latency.toFixed(1)} ms after the kill`);
  t.diagnostic(`crash event latency: ${latency.toFixed(1)} ms`);
  assert.equal(hit.ev.project, opened.path);
  assert.equal(hit.ev.projectName, "demo");
  assert.equal(hit.ev.exitCode, undefined);
  assert.ok(latency < 2000, `latency ${latency} ms`);

  // 5. The crash became an incident note quoting the worker's last line ("worker: polling …").
  const note = await waitUntil(10_000, "an incident note for the crash", async () => {
    const r = await conn.sendRequest("steward/memory/search", {
      query: "worker SIGKILL",
      project: "demo",
      kinds: ["note"],
    });
    return r.hits[0];
  });
  assert.equal(note.module, "worker", JSON.stringify(note));
  // The whole note by id (hits carry a snippet): the incident, tagged, quoting the worker's log.
  const whole = await conn.sendRequest("steward/memory/note", { id: note.id });
  assert.equal(whole.note?.id, note.id, JSON.stringify(whole));
  assert.ok(whole.note.tags.includes("incident"), JSON.stringify(whole.note.tags));
  assert.equal(whole.note.source, "incident");
  assert.match(whole.note.text, /worker: polling/, whole.note.text);
  assert.deepEqual(await conn.sendRequest("steward/memory/note", { id: note.id + 1_000_000 }), {});
  const polling = await conn.sendRequest("steward/memory/search", {
    query: "polling",
    project: "demo",
    module: "worker",
    kinds: ["note"],
  });
  assert.ok(polling.hits.length > 0, "the incident note does not quote the worker's last line");
  assert.ok(
    polling.hits.every((h) => h.module === "worker" && h.snippet.includes("\u0001")),
    JSON.stringify(polling.hits),
  );

  // 6. Stop the daemon through the API: it answers with its pid, stops the stack and exits 0.
  const before = await conn.sendRequest("steward/status", {});
  modulePids = [...new Set([...modulePids, ...before.projects.flatMap((p) => p.modules.map((m) => m.pid)).filter(Boolean)])];
  const stopped = await conn.sendRequest("steward/daemon/stop", {});
  assert.equal(stopped.pid, daemon.pid);
  let stopTimer;
  const exit = await Promise.race([
    daemonExit,
    new Promise((_, reject) => {
      stopTimer = setTimeout(() => reject(new Error(`the daemon did not exit in 60 s:\n${daemonLog()}`)), 60_000);
    }),
  ]).finally(() => clearTimeout(stopTimer));
  assert.deepEqual(exit, { code: 0, signal: null }, daemonLog());
  const leftovers = modulePids.filter(alive);
  assert.deepEqual(leftovers, [], "module processes outlived the daemon");
});

test("a client that declares window.workDoneProgress creates the token of a scheduled backup before any $/progress", { timeout: 120_000 }, async () => {
  // A second daemon, in its own home, backing up every second.
  const home2 = path.join(tmp, "home-progress");
  const d = spawn(bin, ["daemon"], {
    env: { ...process.env, STEWARD_HOME: home2, STEWARD_BACKUP_SCHEDULE: "1s" },
    stdio: ["ignore", "ignore", "ignore"],
  });
  const exited = new Promise((resolve) => d.once("exit", resolve));
  try {
    const socketPath = path.join(home2, "run", "steward.sock");
    await waitUntil(20_000, "the second daemon's socket", async () => fs.existsSync(socketPath) && (await accepts(socketPath)));
    const sock = net.createConnection(socketPath);
    await new Promise((resolve, reject) => sock.once("connect", resolve).once("error", reject));
    const c = createMessageConnection(new StreamMessageReader(sock), new StreamMessageWriter(sock));
    const seen = []; // what arrived, in order: ["create", token] and ["progress", token, kind]
    c.onRequest("window/workDoneProgress/create", (params) => {
      seen.push(["create", params.token]);
      return null;
    });
    c.onNotification("$/progress", (params) => seen.push(["progress", params.token, params.value.kind]));
    c.listen();
    await c.sendRequest("initialize", { processId: process.pid, rootUri: null, capabilities: { window: { workDoneProgress: true } } });
    await c.sendNotification("initialized", {});
    const token = await waitUntil(60_000, "a scheduled backup's progress to end", () => {
      const end = seen.find(([what, , kind]) => what === "progress" && kind === "end");
      return end?.[1];
    });
    assert.match(token, /^scheduledBackup\//);
    const created = seen.findIndex(([what, t]) => what === "create" && t === token);
    const first = seen.findIndex(([what, t]) => what === "progress" && t === token);
    assert.ok(created >= 0 && created < first, `create before the first report: ${JSON.stringify(seen)}`);
    assert.equal(seen[first][2], "begin", JSON.stringify(seen));
    c.dispose();
    sock.destroy();
  } finally {
    d.kill("SIGTERM");
    await exited;
  }
});
