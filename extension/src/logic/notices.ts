// Which events deserve a notification, and how a burst of them becomes few notifications. Pure: time is an
// argument and nothing is shown here (notify.ts shows what `Coalescer.flush` returns).

import type { EventParams } from "../../../protocol/ts/steward-protocol";
import { formatBytes, formatDuration } from "./format";

export type Severity = "info" | "warning" | "error";
export type MinSeverity = Severity | "off";

export type NoticeKind = "crash" | "failed" | "recovered" | "alert" | "config" | "job";

export interface Notice {
  /** Identity for rate limiting: the same key is shown at most once per cooldown. */
  key: string;
  kind: NoticeKind;
  severity: Severity;
  /** Stack file path. */
  project: string;
  projectName: string;
  module?: string;
  /** One sentence, shown as is when the notice is alone. */
  message: string;
}

const RANK: Record<Severity, number> = { info: 0, warning: 1, error: 2 };

/** Whether `s` passes the minimum-severity setting. */
export function passes(s: Severity, min: MinSeverity): boolean {
  return min !== "off" && RANK[s] >= RANK[min];
}

/** How a run ended, in words: `killed by SIGKILL`, `exited with status 3`. */
export function endedHow(ev: { exitCode?: number; signal?: number; reason?: string }): string {
  if (ev.signal !== undefined) return `killed by ${signalName(ev.signal)}`;
  if (ev.exitCode !== undefined) return `exited with status ${ev.exitCode}`;
  return ev.reason ?? "ended";
}

const SIGNALS: Record<number, string> = {
  1: "SIGHUP",
  2: "SIGINT",
  3: "SIGQUIT",
  4: "SIGILL",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  11: "SIGSEGV",
  13: "SIGPIPE",
  14: "SIGALRM",
  15: "SIGTERM",
};
export function signalName(n: number): string {
  return SIGNALS[n] ?? `signal ${n}`;
}

/**
 * Turns events into notices, remembering which modules are in trouble so that "recovered" is said only
 * after a failure.
 */
export class NoticeTracker {
  private readonly troubled = new Set<string>();

  /** The notice an event deserves, if any. */
  onEvent(ev: EventParams): Notice | undefined {
    const base = { project: ev.project, projectName: ev.projectName };
    switch (ev.kind) {
      case "runEnded": {
        if (!isCrash(ev)) return undefined;
        this.troubled.add(tkey(ev.project, ev.module));
        return {
          ...base,
          key: `crash:${ev.project}:${ev.module}`,
          kind: "crash",
          severity: "error",
          module: ev.module,
          message: `${ev.module} crashed: ${endedHow(ev)}${ev.reason && !/^(exited|killed)/.test(ev.reason) ? ` (${ev.reason})` : ""}`,
        };
      }
      case "transition": {
        const k = tkey(ev.project, ev.module);
        if (ev.to === "failed") {
          this.troubled.add(k);
          return {
            ...base,
            key: `failed:${ev.project}:${ev.module}`,
            kind: "failed",
            severity: "error",
            module: ev.module,
            message: `${ev.module} failed: ${ev.reason}`,
          };
        }
        if (ev.to === "running" && ev.health === "unhealthy") {
          this.troubled.add(k);
          return undefined; // the restart that follows (runEnded) says it
        }
        if (ev.to === "running" && this.troubled.has(k)) {
          this.troubled.delete(k);
          return {
            ...base,
            key: `recovered:${ev.project}:${ev.module}`,
            kind: "recovered",
            severity: "info",
            module: ev.module,
            message: `${ev.module} recovered`,
          };
        }
        if (ev.to === "stopped") this.troubled.delete(k);
        return undefined;
      }
      case "backupCompleted": {
        // A long job the user did not start from this window: a scheduled backup says it is done; any backup
        // that left something out (a failed hook) says so, whoever started it.
        const problems = ev.problems ?? [];
        if (!ev.scheduled && problems.length === 0) return undefined;
        const what = `${ev.scheduled ? "scheduled backup" : "backup"} ${ev.id}`;
        return {
          ...base,
          key: `backup:${ev.id}`,
          kind: "job",
          severity: problems.length > 0 ? "warning" : "info",
          message:
            problems.length > 0
              ? `${what} made with ${problems.length} problem${problems.length === 1 ? "" : "s"}: ${problems[0]}`
              : `${what} made: ${ev.files} files, ${formatBytes(ev.totalBytes)} (${formatBytes(ev.newBytes)} new) in ${formatDuration(ev.durationMs)}`,
        };
      }
      case "backupFailed":
        // An alert (docs/operations.md, "Monitoring"): the daemon retries a scheduled one later.
        return {
          ...base,
          key: `backupFailed:${ev.project}`,
          kind: "alert",
          severity: "error",
          message: `${ev.scheduled ? "scheduled backup" : "backup"} failed: ${ev.error}`,
        };
      case "configRejected":
        return {
          ...base,
          key: `config:${ev.project}`,
          kind: "config",
          severity: "warning",
          message: `${ev.projectName}: the stack file change was rejected (${ev.errors.length} error${ev.errors.length === 1 ? "" : "s"}); the last good configuration keeps running`,
        };
      default: {
        // Alerts (docs/metrics.md): fired/escalated at their level, resolutions as info.
        const e = ev as unknown as { kind: string; rule?: string; state?: string; module?: string; message?: string; text?: string; level?: string };
        // A failing backup was just said by its `backupFailed` event; its alert's resolution is news.
        if (e.kind === "alert" && e.rule === "backup" && e.state !== "resolved") return undefined;
        if (e.kind === "alert" && (e.message ?? e.text)) {
          return {
            ...base,
            key: `alert:${ev.project}:${e.module ?? ""}:${e.message ?? e.text}`,
            kind: "alert",
            severity:
              e.level === "error" || e.level === "critical" || e.level === "emergency"
                ? "error"
                : e.level === "info"
                  ? "info"
                  : "warning",
            module: e.module,
            message: (e.message ?? e.text) as string,
          };
        }
        return undefined;
      }
    }
  }

  /** Forget everything (a new daemon). */
  reset(): void {
    this.troubled.clear();
  }
}

/**
 * Whether a run's end is a crash: it ended badly (signal, non-zero status) and nobody asked for it. Requested
 * ends read "stopped", "stopped to restart (…)" or "removed from the stack" (framework core's `RunEnded`).
 */
export function isCrash(ev: { exitCode?: number; signal?: number; reason: string }): boolean {
  const requested = ev.reason === "stopped" || ev.reason.startsWith("stopped to restart") || ev.reason === "removed from the stack";
  const bad = ev.signal !== undefined || (ev.exitCode !== undefined && ev.exitCode !== 0);
  return bad && !requested;
}

function tkey(project: string, module: string): string {
  return `${project}\u0000${module}`;
}

/** One notification to show: a single notice, or several of the same kind and severity merged. */
export interface Batch {
  kind: NoticeKind;
  severity: Severity;
  message: string;
  notices: Notice[];
}

export interface CoalescerOptions {
  /** Notices arriving within this window of the first one are shown together. */
  windowMs: number;
  /** A key shown once is not shown again within this time (a restart loop notifies once, not per crash). */
  cooldownMs: number;
  minSeverity: MinSeverity;
}

/**
 * Collects notices and releases them in batches: no storm when ten modules fail at once, and no repeat for
 * every crash of a restart loop.
 */
export class Coalescer {
  private pending: Notice[] = [];
  private readonly lastShown = new Map<string, number>();
  private flushAt: number | undefined;

  constructor(private opts: CoalescerOptions) {}

  setMinSeverity(min: MinSeverity): void {
    this.opts = { ...this.opts, minSeverity: min };
  }

  /**
   * Queues a notice. Returns the time at which `flush` should be called when this push opened a new window,
   * else undefined (a flush is already due, or the notice was dropped).
   */
  push(n: Notice, nowMs: number): number | undefined {
    if (!passes(n.severity, this.opts.minSeverity)) return undefined;
    const last = this.lastShown.get(n.key);
    if (last !== undefined && nowMs - last < this.opts.cooldownMs) return undefined;
    if (this.pending.some((p) => p.key === n.key)) return undefined;
    this.pending.push(n);
    if (this.flushAt !== undefined) return undefined;
    this.flushAt = nowMs + this.opts.windowMs;
    return this.flushAt;
  }

  /** Releases what is pending as batches, most severe first. */
  flush(nowMs: number): Batch[] {
    const pending = this.pending;
    this.pending = [];
    this.flushAt = undefined;
    const groups = new Map<string, Notice[]>();
    for (const n of pending) {
      this.lastShown.set(n.key, nowMs);
      const g = `${n.severity}/${n.kind}`;
      const list = groups.get(g);
      if (list) list.push(n);
      else groups.set(g, [n]);
    }
    const batches: Batch[] = [];
    for (const notices of groups.values()) {
      const { kind, severity } = notices[0];
      batches.push({ kind, severity, notices, message: batchMessage(kind, notices) });
    }
    batches.sort((a, b) => RANK[b.severity] - RANK[a.severity]);
    // Forget cooldowns long past so the map does not grow without bound.
    for (const [k, t] of this.lastShown) if (nowMs - t > this.opts.cooldownMs) this.lastShown.delete(k);
    return batches;
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }
}

function batchMessage(kind: NoticeKind, notices: Notice[]): string {
  if (notices.length === 1) return notices[0].message;
  const names = listNames(notices.map((n) => n.module ?? n.projectName));
  switch (kind) {
    case "crash":
      return `${notices.length} modules crashed: ${names}`;
    case "failed":
      return `${notices.length} modules failed: ${names}`;
    case "recovered":
      return `${names} recovered`;
    default:
      return `${notices[0].message} (+${notices.length - 1} more)`;
  }
}

/** `a, b and c`; long lists end in `and N more`. */
export function listNames(names: string[], max = 4): string {
  const unique = [...new Set(names)];
  if (unique.length <= 1) return unique[0] ?? "";
  if (unique.length > max) return `${unique.slice(0, max).join(", ")} and ${unique.length - max} more`;
  return `${unique.slice(0, -1).join(", ")} and ${unique[unique.length - 1]}`;
}
