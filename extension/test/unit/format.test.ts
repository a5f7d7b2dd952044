// State → text: what the status bar, the Services tree and tooltips say.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ModuleStatus, ProjectStatus } from "../../../protocol/ts/steward-protocol";
import {
  formatAgo,
  formatBytes,
  formatDuration,
  ipcText,
  ipcTooltip,
  isTrouble,
  MODULE_STATES,
  moduleContext,
  moduleDescription,
  overallStatus,
  parseSnippet,
  profileText,
  stateIcon,
  stateLabel,
  statusTooltip,
} from "../../src/logic/format";

function mod(name: string, over: Partial<ModuleStatus> = {}): ModuleStatus {
  return { name, state: "running", wanted: true, restarts: 0, stateForMs: 0, health: "healthy", ...over };
}
function project(modules: ModuleStatus[], over: Partial<ProjectStatus> = {}): ProjectStatus {
  return { path: "/w/steward.toml", name: "demo", profile: "full", up: true, modules, openedMs: 0, ...over };
}

test("durations read naturally at every scale", () => {
  const cases: Array<[number, string]> = [
    [0, "0 ms"],
    [999, "999 ms"],
    [1_000, "1.0 s"],
    [9_949, "9.9 s"],
    [45_000, "45 s"],
    [185_000, "3 m 05 s"],
    [7_800_000, "2 h 10 m"],
    [273_600_000, "3 d 4 h"],
    [-5, "0 ms"],
    [Number.NaN, "0 ms"],
  ];
  for (const [ms, want] of cases) assert.equal(formatDuration(ms), want, `formatDuration(${ms})`);
});

test("relative times and sizes", () => {
  assert.equal(formatAgo(1000, 3000), "just now");
  assert.equal(formatAgo(0, 42_000), "42 s ago");
  assert.equal(formatAgo(0, 5 * 60_000), "5 m ago");
  assert.equal(formatAgo(0, 3 * 3_600_000), "3 h ago");
  assert.equal(formatAgo(0, 2 * 86_400_000), "2 d ago");
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(12 * 1024 * 1024), "12 MiB");
  assert.equal(formatBytes(-1), "–");
});

test("overall status: all up, starting, failed, unhealthy, down, nothing open", () => {
  assert.deepEqual(overallStatus([project([mod("db"), mod("api")])]), { text: "$(check) 2/2", severity: "ok" });
  assert.deepEqual(overallStatus([project([mod("db"), mod("api", { state: "starting", health: undefined })])]), {
    text: "$(sync~spin) 1/2",
    severity: "busy",
  });
  assert.deepEqual(overallStatus([project([mod("db"), mod("api", { state: "failed", reason: "restart loop" })])]), {
    text: "$(error) api failed",
    severity: "error",
  });
  assert.deepEqual(
    overallStatus([project([mod("db", { health: "unhealthy" }), mod("api", { state: "backoff", retryInMs: 400 })])]),
    { text: "$(error) db unhealthy +1", severity: "error" },
  );
  assert.deepEqual(
    overallStatus([project([mod("db", { state: "resolved", wanted: false, health: undefined })], { up: false })]),
    { text: "$(circle-slash) down", severity: "idle" },
  );
  assert.equal(overallStatus([]).severity, "idle");
  // A module that finished its job (exit 0) counts as done, not as trouble.
  assert.deepEqual(overallStatus([project([mod("db"), mod("migrate", { state: "exited", exitCode: 0, health: undefined })])]), {
    text: "$(check) 2/2",
    severity: "ok",
  });
  assert.equal(overallStatus([project([mod("db", { state: "exited", signal: 9, health: undefined })])]).severity, "error");
});

test("every state has a label, an icon and a context for menus", () => {
  for (const state of MODULE_STATES) {
    const m = mod("x", { state, health: undefined });
    assert.ok(stateLabel(m).length > 0, state);
    assert.ok(stateIcon(m).icon.length > 0, state);
    assert.match(moduleContext(m), /^module\.(running|stopped|idle)/, state);
  }
  assert.equal(stateLabel(mod("x", { state: "exited", exitCode: 3 })), "exited (3)");
  assert.equal(stateLabel(mod("x", { state: "exited", signal: 9 })), "killed (signal 9)");
  assert.equal(stateLabel(mod("x", { state: "resolved", wanted: false })), "not started");
  assert.equal(stateLabel(mod("x", { state: "resolved", wanted: true })), "waiting");
  assert.equal(stateIcon(mod("x", { state: "failed" })).color, "list.errorForeground");
  assert.equal(stateIcon(mod("x", { health: "unhealthy" })).icon, "warning");
  assert.equal(isTrouble(mod("x", { state: "exited", exitCode: 0 })), false);
});

test("the tree's description: uptime advancing since the snapshot, restarts, metrics when reported", () => {
  assert.equal(moduleDescription(mod("api", { stateForMs: 60_000, restarts: 1 }), 5_000), "running · 1 m 05 s · 1 restart");
  assert.equal(moduleDescription(mod("api", { restarts: 2 })), "running · 0 ms · 2 restarts");
  assert.equal(
    moduleDescription(mod("w", { state: "backoff", retryInMs: 2_000, health: undefined }), 500),
    "backoff · retry in 1.5 s",
  );
  assert.equal(moduleDescription(mod("w", { state: "resolved", waitingFor: ["db", "queue"] })), "waiting · for db, queue");
  assert.equal(
    moduleDescription({ ...mod("api", { stateForMs: 2_000 }), cpuPercent: 2.54, rssBytes: 12 * 1024 * 1024 }),
    "running · 2.0 s · 2.5% · 12 MiB",
  );
});

test("IPC shows a dash until the daemon reports a score; profile shows the active one", () => {
  const status = { version: "0", protocolVersion: 1, pid: 1, startedMs: 0, uptimeMs: 0, home: "/h", projects: [] };
  assert.equal(ipcText(status), "$(pulse) IPC –");
  assert.equal(ipcText(undefined), "$(pulse) IPC –");
  assert.equal(ipcText({ ...status, ipcScore: 12.4 }), "$(pulse) IPC 12");
  assert.equal(ipcText(status, { ...project([]), ipcScore: 7 }), "$(pulse) IPC 7");
  assert.match(ipcTooltip(status), /not reported/);
  const ipc = {
    score: 40,
    messagesPerSec: 2000,
    bytesPerSec: 1,
    latencyP50Ms: 1,
    latencyP95Ms: 3,
    errorPercent: 0,
    queueFillPercent: 0,
    components: { rate: 40, latency: 6, errors: 0, queue: 0 },
    totals: { messagesIn: 1, messagesOut: 1, bytesIn: 1, bytesOut: 1, requests: 1, errors: 0 },
    sessions: [],
  };
  const tip = ipcTooltip({ ...status, ipcScore: 40, ipc });
  assert.match(tip, /^IPC score 40/);
  assert.match(tip, /rate 40 · 2000\.0 msg\/s of 5,000/);
  assert.match(tip, /latency 6 · p95 3\.00 ms/);
  assert.equal(ipcText({ ...status, ipcScore: Number.NaN }), "$(pulse) IPC –");
  assert.equal(profileText(project([])), "$(layers) full");
  assert.equal(profileText(project([], { profile: undefined })), "$(layers) (all modules)");
  assert.equal(profileText(undefined), "$(layers) –");
});

test("tooltip: a table per project, escaped, with rejected edits called out", () => {
  const md = statusTooltip([project([mod("db_1"), mod("api", { state: "failed", reason: "exit *1*" })], { configErrors: ["bad"] })]);
  assert.match(md, /\*\*demo\*\* — profile full, up/);
  assert.match(md, /\| db\\_1 \| running \| 0 \|/);
  assert.match(md, /\| api \| failed — exit \\\*1\\\* \| 0 \|/);
  assert.match(md, /rejected \(1 error\(s\)\)/);
  assert.equal(statusTooltip([]), "No Steward stack is open in this workspace.");
});

test("memory snippets: markers become highlight ranges, control characters go", () => {
  assert.deepEqual(parseSnippet("db: \u0001ready\u0002, \u0001listening\u0002 on\n1"), {
    text: "db: ready, listening on 1",
    highlights: [
      [4, 9],
      [11, 20],
    ],
  });
  assert.deepEqual(parseSnippet("no marks"), { text: "no marks", highlights: [] });
  assert.deepEqual(parseSnippet("unclosed \u0001x"), { text: "unclosed x", highlights: [] });
});
