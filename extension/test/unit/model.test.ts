// Events applied to the last status: what the status bar and the tree show between two status reads.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { EventParams, StatusResult } from "../../../protocol/ts/steward-protocol";
import { StackModel } from "../../src/logic/model";
import { overallStatus } from "../../src/logic/format";

const PATH = "/w/steward.toml";
function status(): StatusResult {
  return {
    version: "0.1.0",
    protocolVersion: 1,
    pid: 1,
    startedMs: 0,
    uptimeMs: 0,
    home: "/h",
    projects: [
      {
        path: PATH,
        name: "demo",
        profile: "full",
        up: true,
        openedMs: 0,
        modules: [
          { name: "db", state: "running", wanted: true, health: "healthy", restarts: 0, stateForMs: 10_000, pid: 10, run: 1 },
          { name: "api", state: "running", wanted: true, health: "healthy", restarts: 0, stateForMs: 9_000, pid: 11, run: 1 },
        ],
      },
    ],
  };
}
const ev = (e: Record<string, unknown>) => ({ project: PATH, projectName: "demo", atMs: 0, ...e }) as unknown as EventParams;

test("a crash and its restart, event by event", () => {
  const m = new StackModel();
  m.setStatus(status(), 1_000);
  assert.equal(overallStatus(m.projects()).text, "$(check) 2/2");

  let out = m.applyEvent(ev({ kind: "runEnded", module: "api", run: 1, signal: 9, reason: "killed by signal 9" }), 2_000);
  assert.deepEqual(out, { changed: true, refresh: false });
  assert.equal(m.project(PATH)?.modules[1].lastExit, "killed by signal 9");

  out = m.applyEvent(ev({ kind: "transition", module: "api", from: "running", to: "backoff", reason: "restarting in 200ms", retryInMs: 200 }), 2_001);
  assert.deepEqual(out, { changed: true, refresh: false });
  assert.equal(overallStatus(m.projects()).text, "$(error) api restarting");
  const api = m.project(PATH)?.modules[1];
  assert.equal(api?.pid, undefined);
  assert.equal(api?.stateForMs, 0);

  out = m.applyEvent(ev({ kind: "transition", module: "api", from: "backoff", to: "starting", reason: "", run: 2, pid: 12 }), 2_300);
  assert.deepEqual(out, { changed: true, refresh: true }, "a restart asks for the daemon's restart counter");
  out = m.applyEvent(ev({ kind: "transition", module: "api", from: "starting", to: "running", reason: "health check passed", run: 2, pid: 12, health: "healthy" }), 2_500);
  assert.equal(overallStatus(m.projects()).text, "$(check) 2/2");
  assert.equal(m.stateFor(PATH, m.project(PATH)!.modules[1], 4_500), 2_000, "time in state advances from the event");
  assert.equal(m.stateFor(PATH, m.project(PATH)!.modules[0], 4_500), 13_500, "and from the snapshot for others");
});

test("events the model cannot apply ask for a refresh", () => {
  const m = new StackModel();
  assert.deepEqual(m.applyEvent(ev({ kind: "transition", module: "api", from: "running", to: "stopped", reason: "" }), 0), {
    changed: false,
    refresh: true,
  });
  m.setStatus(status(), 0);
  assert.equal(m.applyEvent(ev({ kind: "configApplied", profile: "minimal", summary: "stopped worker" }), 0).refresh, true);
  assert.equal(m.applyEvent(ev({ kind: "projectOpened" }), 0).refresh, true);
  assert.equal(m.applyEvent(ev({ kind: "transition", module: "nope", from: "running", to: "stopped", reason: "" }), 0).refresh, true);
  assert.equal(m.applyEvent(ev({ kind: "somethingNew" }), 0).refresh, true);
  const rej = m.applyEvent(ev({ kind: "configRejected", errors: ["line 3: unknown key"] }), 0);
  assert.deepEqual(rej, { changed: true, refresh: false });
  assert.deepEqual(m.project(PATH)?.configErrors, ["line 3: unknown key"]);
});

test("a stop clears 'wanted'; the model is a copy, not the caller's object", () => {
  const s = status();
  const m = new StackModel();
  m.setStatus(s, 0);
  m.applyEvent(ev({ kind: "transition", module: "db", from: "running", to: "stopped", reason: "stopped" }), 1);
  assert.equal(m.project(PATH)?.modules[0].wanted, false);
  assert.equal(s.projects[0].modules[0].state, "running");
  assert.equal(overallStatus(m.projects()).text, "$(check) 1/1");
  assert.equal(m.projects(new Set(["/other"])).length, 0);
  m.clear();
  assert.equal(m.daemon, undefined);
});
