// The extension's picture of the daemon: the last `steward/status` plus every `steward/event` since, applied
// in order. Pure (time is an argument), so the state → status logic is unit-tested without a daemon.

import type { EventParams, IpcStats, ModuleStatus, ProjectStatus, StatusResult } from "../../../protocol/ts/steward-protocol";

export interface ApplyOutcome {
  /** Something visible changed (redraw). */
  changed: boolean;
  /**
   * The event says more than it carries (a profile switch, a newly opened project, restart counters):
   * re-read `steward/status` soon.
   */
  refresh: boolean;
}

export class StackModel {
  private status: StatusResult | undefined;
  /** When each module's entry was last brought up to date (status fetch or event), by `project\0module`. */
  private readonly touched = new Map<string, number>();

  /** Replaces everything with a fresh `steward/status`. */
  setStatus(status: StatusResult, nowMs: number): void {
    this.status = structuredClone(status);
    this.touched.clear();
    for (const p of this.status.projects) for (const m of p.modules) this.touched.set(key(p.path, m.name), nowMs);
  }

  clear(): void {
    this.status = undefined;
    this.touched.clear();
  }

  get daemon(): StatusResult | undefined {
    return this.status;
  }

  /** Applies a pushed `steward/ipc` (the score moved): true when the status changed. */
  applyIpc(ipc: IpcStats): boolean {
    if (!this.status) return false;
    const changed = this.status.ipcScore !== ipc.score;
    this.status = { ...this.status, ipcScore: ipc.score, ipc };
    return changed;
  }

  /** Every open project, or only those whose path is in `paths` when it is given. */
  projects(paths?: ReadonlySet<string>): ProjectStatus[] {
    const all = this.status?.projects ?? [];
    return paths ? all.filter((p) => paths.has(p.path)) : all;
  }

  project(path: string): ProjectStatus | undefined {
    return this.status?.projects.find((p) => p.path === path);
  }

  /** Milliseconds a module has been in its state at `nowMs`. */
  stateFor(project: string, m: ModuleStatus, nowMs: number): number {
    const at = this.touched.get(key(project, m.name));
    return m.stateForMs + (at === undefined ? 0 : Math.max(0, nowMs - at));
  }

  /** Applies one pushed event. */
  applyEvent(ev: EventParams, nowMs: number): ApplyOutcome {
    const p = this.status?.projects.find((x) => x.path === ev.project);
    switch (ev.kind) {
      case "projectOpened":
      case "configApplied":
        return { changed: false, refresh: true };
      case "configRejected":
        if (!p) return { changed: false, refresh: true };
        p.configErrors = ev.errors;
        return { changed: true, refresh: false };
      case "transition": {
        const m = p?.modules.find((x) => x.name === ev.module);
        if (!p || !m) return { changed: false, refresh: true };
        const automaticRestart = ev.from === "backoff" && ev.to !== "stopped";
        m.state = ev.to;
        m.stateForMs = 0;
        m.health = ev.health;
        m.pid = ev.pid;
        m.run = ev.run;
        m.exitCode = ev.exitCode;
        m.signal = ev.signal;
        m.retryInMs = ev.retryInMs;
        m.reason = ev.to === "failed" ? ev.reason : undefined;
        if (ev.to === "starting" || ev.to === "running" || ev.to === "backoff") m.wanted = true;
        if (ev.to === "stopped") m.wanted = false;
        this.touched.set(key(p.path, m.name), nowMs);
        // Restart counters are the daemon's: ask for them when a restart happened.
        return { changed: true, refresh: automaticRestart };
      }
      case "runStarted": {
        const m = p?.modules.find((x) => x.name === ev.module);
        if (!p || !m) return { changed: false, refresh: true };
        m.pid = ev.pid;
        m.run = ev.run;
        return { changed: true, refresh: false };
      }
      case "runEnded": {
        const m = p?.modules.find((x) => x.name === ev.module);
        if (!p || !m) return { changed: false, refresh: true };
        m.lastExit = ev.reason;
        return { changed: true, refresh: false };
      }
      default:
        // A kind this version does not know (alerts, metrics, …): let a re-read pick up what it changed.
        return { changed: false, refresh: true };
    }
  }
}

function key(project: string, module: string): string {
  return `${project}\u0000${module}`;
}
