// Which events notify, and how bursts coalesce.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { EventParams } from "../../../protocol/ts/steward-protocol";
import { Coalescer, isCrash, listNames, NoticeTracker, passes, type Notice } from "../../src/logic/notices";

const P = { project: "/w/steward.toml", projectName: "demo", atMs: 0 };
const ev = (e: Record<string, unknown>) => ({ ...P, ...e }) as unknown as EventParams;

test("crashes are runs that ended badly without being asked to", () => {
  assert.equal(isCrash({ signal: 9, reason: "killed by signal 9" }), true);
  assert.equal(isCrash({ exitCode: 1, reason: "exited with status 1" }), true);
  assert.equal(isCrash({ signal: 15, reason: "health check failed: connection refused" }), true);
  assert.equal(isCrash({ exitCode: 0, reason: "exited with status 0" }), false);
  assert.equal(isCrash({ signal: 15, reason: "stopped" }), false);
  assert.equal(isCrash({ signal: 15, reason: "stopped to restart (restart requested)" }), false);
  assert.equal(isCrash({ signal: 15, reason: "removed from the stack" }), false);
});

test("tracker: crash → error, gave up → error, recovered only after trouble, config rejected → warning", () => {
  const t = new NoticeTracker();
  assert.equal(t.onEvent(ev({ kind: "transition", module: "api", from: "starting", to: "running", reason: "", health: "healthy" })), undefined);
  const crash = t.onEvent(ev({ kind: "runEnded", module: "api", run: 1, signal: 9, reason: "killed by signal 9" }));
  assert.deepEqual(
    { kind: crash?.kind, severity: crash?.severity, message: crash?.message },
    { kind: "crash", severity: "error", message: "api crashed: killed by SIGKILL" },
  );
  const rec = t.onEvent(ev({ kind: "transition", module: "api", from: "starting", to: "running", reason: "", health: "healthy" }));
  assert.equal(rec?.kind, "recovered");
  assert.equal(rec?.severity, "info");
  // Recovered once only.
  assert.equal(t.onEvent(ev({ kind: "transition", module: "api", from: "starting", to: "running", reason: "" })), undefined);
  const failed = t.onEvent(ev({ kind: "transition", module: "db", from: "backoff", to: "failed", reason: "restart loop: 5 restarts within 1m" }));
  assert.equal(failed?.message, "db failed: restart loop: 5 restarts within 1m");
  const bad = t.onEvent(ev({ kind: "configRejected", errors: ["a", "b"] }));
  assert.equal(bad?.severity, "warning");
  assert.match(bad?.message ?? "", /rejected \(2 errors\)/);
  assert.equal(t.onEvent(ev({ kind: "runEnded", module: "w", run: 2, exitCode: 3, reason: "exited with status 3" }))?.message, "w crashed: exited with status 3");
  const alert = t.onEvent(ev({ kind: "alert", module: "api", level: "warn", message: "IPC 80: api ↔ db chatty" }));
  assert.equal(alert?.severity, "warning");
  // The daemon's alert events (docs/metrics.md): critical is an error, a resolution is info.
  const crit = t.onEvent(ev({ kind: "alert", rule: "moduleMemory", state: "fired", module: "db", level: "critical", message: "db: memory at 96 % of its limit (critical)", value: 96, threshold: 95 }));
  assert.equal(crit?.severity, "error");
  assert.equal(crit?.module, "db");
  const done = t.onEvent(ev({ kind: "alert", rule: "moduleMemory", state: "resolved", module: "db", level: "info", message: "db: resolved: memory at 96 % of its limit (critical)", value: 10, threshold: 95 }));
  assert.equal(done?.severity, "info");
  assert.equal(t.onEvent(ev({ kind: "projectOpened" })), undefined);
});

test("severity filter", () => {
  assert.equal(passes("info", "info"), true);
  assert.equal(passes("info", "warning"), false);
  assert.equal(passes("error", "warning"), true);
  assert.equal(passes("error", "off"), false);
});

function notice(module: string, kind: Notice["kind"] = "crash", severity: Notice["severity"] = "error"): Notice {
  return { key: `${kind}:${module}`, kind, severity, project: P.project, projectName: "demo", module, message: `${module} ${kind}` };
}

test("ten modules failing at once make one notification", () => {
  const c = new Coalescer({ windowMs: 150, cooldownMs: 30_000, minSeverity: "info" });
  const names = Array.from({ length: 10 }, (_, i) => `m${i}`);
  const at = names.map((n, i) => c.push(notice(n), 1000 + i));
  assert.equal(at[0], 1150, "the first push opens the window");
  assert.ok(at.slice(1).every((x) => x === undefined), "later pushes join it");
  const batches = c.flush(1150);
  assert.equal(batches.length, 1);
  assert.equal(batches[0].notices.length, 10);
  assert.equal(batches[0].message, "10 modules crashed: m0, m1, m2, m3 and 6 more");
  assert.equal(c.hasPending, false);
});

test("a restart loop notifies once per cooldown; kinds and severities stay apart, errors first", () => {
  const c = new Coalescer({ windowMs: 100, cooldownMs: 30_000, minSeverity: "info" });
  c.push(notice("api"), 0);
  c.flush(100);
  assert.equal(c.push(notice("api"), 5_000), undefined, "same crash within the cooldown is dropped");
  assert.equal(c.hasPending, false);
  assert.equal(c.push(notice("api"), 30_200), 30_300, "after the cooldown it shows again");
  c.push(notice("db", "recovered", "info"), 30_210);
  c.push(notice("api", "crash"), 30_220); // duplicate within the window
  const b = c.flush(30_300);
  assert.deepEqual(
    b.map((x) => [x.severity, x.message]),
    [
      ["error", "api crash"],
      ["info", "db recovered"],
    ],
  );
});

test("the minimum severity drops what is below it", () => {
  const c = new Coalescer({ windowMs: 100, cooldownMs: 1000, minSeverity: "error" });
  assert.equal(c.push(notice("db", "recovered", "info"), 0), undefined);
  assert.equal(c.hasPending, false);
  c.setMinSeverity("off");
  assert.equal(c.push(notice("db"), 0), undefined);
  c.setMinSeverity("info");
  assert.equal(c.push(notice("db", "recovered", "info"), 0), 100);
});

test("names are listed readably", () => {
  assert.equal(listNames(["a"]), "a");
  assert.equal(listNames(["a", "b"]), "a and b");
  assert.equal(listNames(["a", "b", "a", "c"]), "a, b and c");
  assert.equal(listNames(["a", "b", "c", "d", "e", "f"]), "a, b, c, d and 2 more");
});

test("backups: a scheduled one says it is done (info), one with problems warns, a failure is an error", () => {
  const t = new NoticeTracker();
  const made = { kind: "backupCompleted", id: "20261125T080000Z", files: 3, totalBytes: 5 * 1024 * 1024, newBytes: 2048, durationMs: 2300 };
  // A manual backup (the CLI printed its result) that went fine: nothing to say here.
  assert.equal(t.onEvent(ev({ ...made, scheduled: false, problems: [] })), undefined);
  const sched = t.onEvent(ev({ ...made, project: "", projectName: "", scheduled: true }));
  assert.deepEqual(
    { kind: sched?.kind, severity: sched?.severity, message: sched?.message },
    { kind: "job", severity: "info", message: "scheduled backup 20261125T080000Z made: 3 files, 5.0 MiB (2.0 KiB new) in 2.3 s" },
  );
  const partial = t.onEvent(ev({ ...made, scheduled: false, problems: ["hook of db: exited with status 1"] }));
  assert.equal(partial?.severity, "warning");
  assert.equal(partial?.message, "backup 20261125T080000Z made with 1 problem: hook of db: exited with status 1");
  const failed = t.onEvent(ev({ kind: "backupFailed", project: "", projectName: "", scheduled: true, error: "/x/backups: Not a directory" }));
  assert.deepEqual(
    { kind: failed?.kind, severity: failed?.severity, message: failed?.message, module: failed?.module },
    { kind: "alert", severity: "error", message: "scheduled backup failed: /x/backups: Not a directory", module: undefined },
  );
  // The `backup` alert that follows says the same: only its resolution is shown.
  const backupAlert = { kind: "alert", rule: "backup", project: "", projectName: "", level: "warning", message: "scheduled backup failed: /x/backups: Not a directory (warning)", value: 1, threshold: 1 };
  assert.equal(t.onEvent(ev({ ...backupAlert, state: "fired" })), undefined);
  assert.equal(t.onEvent(ev({ ...backupAlert, state: "resolved", level: "info" }))?.severity, "info");
  // Through the coalescer: the failure is shown even with minSeverity "error"; the info one is not.
  const c = new Coalescer({ windowMs: 150, cooldownMs: 30_000, minSeverity: "error" });
  assert.equal(c.push(sched as Notice, 0), undefined);
  assert.equal(c.push(failed as Notice, 0), 150);
  assert.deepEqual(c.flush(150).map((b) => b.message), ["scheduled backup failed: /x/backups: Not a directory"]);
});
