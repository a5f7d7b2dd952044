#!/usr/bin/env node
// The VS Code extension's costs, measured in a real VS Code (code-server + Chromium, the e2e harness):
//
//   1. activation: extension code at activation (bundle evaluation + activate()), as the extension itself
//      reports it, over N window reloads (each reload is a new extension host);
//   2. crash → notification: SIGKILL a demo module, then the error toast is on screen; split into
//      kill → `steward/event` at a plain client (the daemon's share) and the rest (extension + UI);
//   3. log viewer over a 1,000,000-line history: open → first rows on screen, one older page on scroll
//      (fetch + render), and how many rows are in the DOM meanwhile.
//
// Writes bench/results/extension.json and prints a Markdown fragment (for docs/performance.md) to --md.
//
//   node bench/extension.mjs [--quick] [--out FILE] [--md FILE] [--steward BIN] [--rounds N] [--lines N]
//
// Needs: cd extension && npm ci && npm run package; scripts/vscode-deps; a steward binary (release preferred).

import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const quick = args.includes("--quick");
const out = path.resolve(opt("--out", path.join(repo, "bench/results/extension.json")));
const md = opt("--md", undefined);
const rounds = Number(opt("--rounds", quick ? 2 : 5));
const floodLines = Number(opt("--lines", quick ? 100_000 : 1_000_000));
const release = path.join(repo, "target/release/steward");
process.env.STEWARD_BIN = path.resolve(opt("--steward", fs.existsSync(release) ? release : path.join(repo, "target/debug/steward")));
process.env.STEWARD_E2E_OUT ??= path.join(repo, "target/bench/extension");

// Imported after STEWARD_BIN is set: the harness reads it at load.
const { Env, waitUntil } = await import("../extension/test/e2e/harness.mjs");
const require = createRequire(path.join(repo, "extension/package.json"));
const { createMessageConnection, StreamMessageReader, StreamMessageWriter } = require("vscode-jsonrpc/node");

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, min: s[0], median: q(0.5), p90: q(0.9), max: s[s.length - 1] };
};
const r1 = (x) => Math.round(x * 10) / 10;

const PAGE = 500; // steward.logs.pageSize's default
const env = new Env({ name: "bench", settings: { "steward.logs.pageSize": PAGE } });
const errors = [];
const result = {
  machine: {
    nproc: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    kernel: os.release(),
    node: process.version,
    date: new Date().toISOString(),
    commit: (() => {
      try {
        const c = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: repo, encoding: "utf8" }).trim();
        const dirty = execFileSync("git", ["status", "--porcelain"], { cwd: repo, encoding: "utf8" }).trim() !== "";
        return dirty ? `${c} (uncommitted changes)` : c;
      } catch {
        return "unknown";
      }
    })(),
    loadavg: os.loadavg()[0],
    steward: process.env.STEWARD_BIN,
  },
  targets: { activationMs: 50 },
};
const watchdog = setTimeout(() => {
  console.error("bench/extension: watchdog (300 s) — stopping");
  void env.stop().finally(() => process.exit(2));
}, 300_000);

/** A plain client on the daemon socket that timestamps `steward/event` notifications as they arrive. */
async function eventClock() {
  const sock = net.createConnection(path.join(env.home, "run", "steward.sock"));
  await new Promise((resolve, reject) => sock.once("connect", resolve).once("error", reject));
  const conn = createMessageConnection(new StreamMessageReader(sock), new StreamMessageWriter(sock));
  const seen = [];
  conn.onNotification("steward/event", (ev) => seen.push({ ev, at: performance.now() }));
  conn.listen();
  await conn.sendRequest("initialize", { processId: process.pid, rootUri: null, capabilities: {} });
  await conn.sendNotification("initialized", {});
  return { seen, request: (m, p) => conn.sendRequest(m, p), close: () => (conn.dispose(), sock.destroy()) };
}

function activations() {
  return [...env.extensionLog().matchAll(/activated in ([\d.]+) ms \(bundle evaluation ([\d.]+) ms, activate\(\) ([\d.]+) ms\)/g)].map(
    (m) => ({ total: Number(m[1]), load: Number(m[2]), activate: Number(m[3]) }),
  );
}

try {
  await env.start();
  // The flood module writes FLOOD_LINES lines once flood.go exists in the workspace (after the crash rounds, so that
  // ingestion does not load the machine while they run), then idles.
  fs.writeFileSync(
    path.join(env.ws, "bin", "flood.py"),
    [
      "import os, sys, time",
      "while not os.path.exists('flood.go'): time.sleep(0.05)",
      "w = sys.stdout.write",
      "for i in range(int(os.environ['FLOOD_LINES'])): w('flood line %07d lorem ipsum dolor sit amet\\n' % i)",
      "sys.stdout.flush()",
      "time.sleep(86400)",
      "",
    ].join("\n"),
  );
  fs.appendFileSync(env.stackFile, `\n[modules.flood]\nrun = "python3 -u bin/flood.py"\nenv = { FLOOD_LINES = "${floodLines}" }\n`);
  await waitUntil(45_000, "the extension to connect", async () => /\bdown\b|\d+\/\d+/.test(await env.statusBarText()));
  const clock = await eventClock();
  await env.runCommand("Steward: Up (Start the Stack)");
  await waitUntil(90_000, "the stack to be up (5/5)", async () => /\b5\/5\b/.test(await env.statusBarText()));

  // --- 1 + 2: activation and crash → notification, once per window reload --------------------------------
  const crash = [];
  const daemonShare = [];
  for (let round = 0; round < rounds; round++) {
    if (round > 0) {
      const before = activations().length;
      await env.runCommand("Developer: Reload Window");
      await env.page.waitForSelector(".monaco-workbench", { timeout: 60_000 });
      await waitUntil(60_000, "the extension to activate again", () => activations().length > before);
      await waitUntil(60_000, "the status bar after reload", async () => /\b5\/5\b/.test(await env.statusBarText()));
    }
    const st = env.status();
    const api = st.modules.find((m) => m.name === "api");
    const t0 = performance.now();
    process.kill(api.pid, "SIGKILL");
    await env.page
      .locator(".notifications-toasts .notification-toast", { hasText: "api crashed" })
      .first()
      .waitFor({ state: "visible", timeout: 10_000 });
    crash.push(performance.now() - t0);
    const ev = clock.seen.find((s) => s.at >= t0 && s.ev.kind === "runEnded" && s.ev.module === "api");
    if (ev) daemonShare.push(ev.at - t0);
    await waitUntil(30_000, "api to be running again", () => env.status()?.modules.find((m) => m.name === "api")?.state === "running");
    await env.runCommand("Notifications: Clear All Notifications");
  }
  clock.close();
  const acts = activations();
  result.activation = {
    rounds: acts.length,
    totalMs: stats(acts.map((a) => a.total)),
    bundleEvaluationMs: stats(acts.map((a) => a.load)),
    activateCallMs: stats(acts.map((a) => a.activate)),
    firstMs: acts[0]?.total,
  };
  result.crashToNotification = { ms: stats(crash), killToEventMs: stats(daemonShare) };

  // --- 3: the log viewer over a large history --------------------------------------------------------------
  fs.writeFileSync(path.join(env.ws, "flood.go"), "");
  const last = `flood line ${String(floodLines - 1).padStart(7, "0")}`;
  const probe = await eventClock();
  await waitUntil(240_000, `${floodLines.toLocaleString("en")} flood lines stored`, async () => {
    const r = await probe.request("steward/logs/query", { project: env.stackFile, module: "flood", limit: 1 });
    return r.lines[0]?.text.startsWith(last);
  }, 500);
  probe.close();
  const t0 = performance.now();
  await env.runCommand("Steward: View Logs");
  await env.pick("flood");
  const frame = await env.webviewFrame('#module option[value="flood"]:checked');
  await frame.locator(".row .text", { hasText: last }).first().waitFor({ timeout: 30_000 });
  const openMs = performance.now() - t0;
  const count = async () => Number(((await frame.locator("#info").innerText()).match(/^([\d,]+) line/) || [])[1]?.replace(/,/g, "") ?? 0);
  const pages = [];
  for (let i = 0; i < (quick ? 5 : 20); i++) {
    const before = await count();
    const p0 = performance.now();
    await frame.locator("#viewport").evaluate((v) => {
      v.scrollTop = 0;
      v.dispatchEvent(new Event("scroll"));
    });
    await waitUntil(30_000, "an older page", async () => (await count()) > before, 5);
    pages.push(performance.now() - p0);
  }
  result.logViewer = {
    historyLines: floodLines,
    openToFirstRowsMs: r1(openMs),
    olderPageMs: stats(pages),
    linesLoaded: await count(),
    domRows: await frame.locator(".row").count(),
  };
} catch (e) {
  errors.push(String(e?.stack ?? e));
  console.error(e);
  try {
    console.error(`logs: ${env.keepLogs("bench")}`);
  } catch {}
} finally {
  clearTimeout(watchdog);
  await env.stop();
}
result.errors = errors;
result.targets.activationPass = result.activation ? result.activation.totalMs.median <= result.targets.activationMs : false;

fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
console.log(`bench/extension: results in ${out}`);

if (md) {
  const f = (x) => (x === undefined ? "–" : `${r1(x)} ms`);
  const a = result.activation;
  const c = result.crashToNotification;
  const l = result.logViewer;
  const lines = [
    `_Generated by \`bench/run extension\` on ${result.machine.date.slice(0, 16).replace("T", " ")} UTC, commit ${result.machine.commit}._  `,
    `_Machine: ${result.machine.nproc} core(s), ${result.machine.cpu}, Linux ${result.machine.kernel}, Node ${result.machine.node}; load average ${r1(result.machine.loadavg)} when the run began; code-server 4.100.3 (VS Code 1.100.3), Chromium headless._`,
    "",
    "| Figure | median | p90 | max | n | Target |",
    "|---|---:|---:|---:|---:|---|",
  ];
  if (a) {
    lines.push(`| Activation, extension code (bundle evaluation + \`activate()\`) | ${f(a.totalMs.median)} | ${f(a.totalMs.p90)} | ${f(a.totalMs.max)} | ${a.totalMs.n} | ≤ 50 ms: ${result.targets.activationPass ? "pass" : "miss"} |`);
    lines.push(`| … of which bundle evaluation | ${f(a.bundleEvaluationMs.median)} | ${f(a.bundleEvaluationMs.p90)} | ${f(a.bundleEvaluationMs.max)} | ${a.bundleEvaluationMs.n} | |`);
    lines.push(`| … of which \`activate()\` | ${f(a.activateCallMs.median)} | ${f(a.activateCallMs.p90)} | ${f(a.activateCallMs.max)} | ${a.activateCallMs.n} | |`);
  }
  if (c) {
    lines.push(`| Module crash (SIGKILL) → error notification on screen | ${f(c.ms.median)} | ${f(c.ms.p90)} | ${f(c.ms.max)} | ${c.ms.n} | "a few seconds" |`);
    lines.push(`| … of which kill → \`steward/event\` at a client (daemon) | ${f(c.killToEventMs.median)} | ${f(c.killToEventMs.p90)} | ${f(c.killToEventMs.max)} | ${c.killToEventMs.n} | |`);
  }
  if (l) {
    lines.push(`| Log viewer over ${l.historyLines.toLocaleString("en")} lines: command → newest lines on screen | ${f(l.openToFirstRowsMs)} | | | 1 | |`);
    lines.push(`| … one older page (${PAGE} lines) on scroll: fetch + render | ${f(l.olderPageMs.median)} | ${f(l.olderPageMs.p90)} | ${f(l.olderPageMs.max)} | ${l.olderPageMs.n} | |`);
    lines.push("");
    lines.push(`After ${l.olderPageMs.n} pages the window held ${l.linesLoaded.toLocaleString("en")} lines with ${l.domRows} rows in the DOM (only the rows in view, plus 20 either side, are rendered).`);
  }
  if (errors.length) lines.push("", `Errors: ${errors.map((e) => e.split("\n")[0]).join("; ")}`);
  fs.writeFileSync(md, lines.join("\n") + "\n");
}
process.exit(errors.length ? 2 : 0);
