// Pure formatting: how states, durations and sizes read in the status bar, the Services tree, tooltips and
// notifications. No `vscode` import: unit-tested with node --test (test/unit/format.test.ts).

import type { Health, ModuleState, ModuleStatus, ProjectStatus, StatusResult } from "../../../protocol/ts/steward-protocol";

/**
 * Fields the daemon does not send yet but other issues add (metrics, IPC score). Read as optional so that the
 * UI lights up when they arrive, without a protocol version bump here.
 */
export interface FutureModuleFields {
  /** CPU use of the module's process tree, percent of one core. */
  cpuPercent?: number;
  /** Resident memory of the module's process tree, bytes. */
  rssBytes?: number;
}
export interface FutureProjectFields {
  /** The project's IPC score (DESIGN.md §IPC), when the daemon computes it. */
  ipcScore?: number;
}
export interface FutureStatusFields {
  /** The daemon-wide IPC score, when the daemon computes it. */
  ipcScore?: number;
}

export type ModuleView = ModuleStatus & FutureModuleFields;
export type ProjectView = ProjectStatus & FutureProjectFields;

/** `1.2 s`, `45 s`, `3 m 05 s`, `2 h 10 m`, `3 d 4 h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${String(m % 60).padStart(2, "0")} m`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** Short relative time for lists: `just now`, `12 s ago`, `5 m ago`, `3 h ago`, `2 d ago`. */
export function formatAgo(thenMs: number, nowMs: number): string {
  const d = Math.max(0, nowMs - thenMs);
  if (d < 5_000) return "just now";
  if (d < 60_000) return `${Math.floor(d / 1000)} s ago`;
  if (d < 3_600_000) return `${Math.floor(d / 60_000)} m ago`;
  if (d < 86_400_000) return `${Math.floor(d / 3_600_000)} h ago`;
  return `${Math.floor(d / 86_400_000)} d ago`;
}

/** `512 B`, `1.5 KiB`, `12 MiB`, `1.2 GiB`. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n < 10 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

/** Whether a module counts as "up" for the overall status: running and not unhealthy. */
export function isUp(m: ModuleStatus): boolean {
  return m.state === "running" && m.health !== "unhealthy";
}

/** Whether a module is in trouble: failed, waiting to restart, unhealthy, or exited with an error. */
export function isTrouble(m: ModuleStatus): boolean {
  if (m.state === "failed" || m.state === "backoff") return true;
  if (m.state === "running" && m.health === "unhealthy") return true;
  if (m.state === "exited" && ((m.exitCode !== undefined && m.exitCode !== 0) || m.signal !== undefined)) return true;
  return false;
}

/** One word for a module's condition, as the tree and tooltips show it. */
export function stateLabel(m: Pick<ModuleStatus, "state" | "health" | "exitCode" | "signal"> & { wanted?: boolean }): string {
  switch (m.state) {
    case "running":
      return m.health === "unhealthy" ? "unhealthy" : "running";
    case "exited":
      if (m.signal !== undefined) return `killed (signal ${m.signal})`;
      return m.exitCode !== undefined && m.exitCode !== 0 ? `exited (${m.exitCode})` : "exited";
    case "resolved":
      return m.wanted === false ? "not started" : "waiting";
    case "installed":
      return "not started";
    default:
      return m.state;
  }
}

/** The codicon and theme colour that show a module's state (the tree, the dashboard, tooltips). */
export function stateIcon(m: Pick<ModuleStatus, "state" | "health" | "exitCode" | "signal">): {
  icon: string;
  color?: string;
} {
  switch (m.state) {
    case "running":
      if (m.health === "unhealthy") return { icon: "warning", color: "list.warningForeground" };
      return { icon: "pass-filled", color: "testing.iconPassed" };
    case "starting":
      return { icon: "loading~spin" };
    case "stopping":
      return { icon: "loading~spin" };
    case "backoff":
      return { icon: "history", color: "list.warningForeground" };
    case "failed":
      return { icon: "error", color: "list.errorForeground" };
    case "exited":
      return isTrouble(m as ModuleStatus)
        ? { icon: "error", color: "list.errorForeground" }
        : { icon: "pass", color: "descriptionForeground" };
    case "stopped":
      return { icon: "circle-slash", color: "disabledForeground" };
    case "resolved":
      return { icon: "watch", color: "descriptionForeground" };
    case "installed":
    default:
      return { icon: "circle-large-outline", color: "disabledForeground" };
  }
}

/** A `contextValue` for tree items: `module.running`, `module.stopped`, `module.busy`. Drives inline actions. */
export function moduleContext(m: Pick<ModuleStatus, "state">): string {
  switch (m.state) {
    case "running":
    case "backoff":
      return "module.running";
    case "starting":
    case "stopping":
      return "module.running.busy";
    case "failed":
    case "exited":
    case "stopped":
      return "module.stopped";
    default:
      return "module.idle";
  }
}

/** The Services tree's description of a module: `running · 3 m 05 s · 1 restart · 2.5% · 12 MiB`. */
export function moduleDescription(m: ModuleView, elapsedSinceSnapshotMs = 0): string {
  const parts = [stateLabel(m)];
  if (m.state === "running" || m.state === "starting") {
    parts.push(formatDuration(m.stateForMs + elapsedSinceSnapshotMs));
  } else if (m.state === "backoff" && m.retryInMs !== undefined) {
    parts.push(`retry in ${formatDuration(Math.max(0, m.retryInMs - elapsedSinceSnapshotMs))}`);
  } else if (m.state === "resolved" && m.waitingFor && m.waitingFor.length > 0) {
    parts.push(`for ${m.waitingFor.join(", ")}`);
  }
  if (m.restarts > 0) parts.push(`${m.restarts} restart${m.restarts === 1 ? "" : "s"}`);
  if (m.cpuPercent !== undefined) parts.push(`${m.cpuPercent < 10 ? m.cpuPercent.toFixed(1) : Math.round(m.cpuPercent)}%`);
  if (m.rssBytes !== undefined) parts.push(formatBytes(m.rssBytes));
  return parts.join(" · ");
}

/** The overall status bar item: text (with a codicon) and severity. */
export interface OverallStatus {
  text: string;
  severity: "ok" | "busy" | "warning" | "error" | "idle";
}

/**
 * Overall status of the projects shown: `$(check) 4/4`, `$(error) api failed`, `$(sync~spin) 2/4`,
 * `$(circle-slash) down`. Counts wanted modules (those meant to run).
 */
export function overallStatus(projects: ProjectStatus[]): OverallStatus {
  const modules = projects.flatMap((p) => p.modules);
  if (projects.length === 0) return { text: "$(circle-large-outline) no stack", severity: "idle" };
  const wanted = modules.filter((m) => m.wanted);
  const trouble = modules.filter(isTrouble);
  if (trouble.length > 0) {
    const first = trouble[0];
    const what = first.state === "running" ? "unhealthy" : first.state === "backoff" ? "restarting" : "failed";
    const more = trouble.length > 1 ? ` +${trouble.length - 1}` : "";
    return { text: `$(error) ${first.name} ${what}${more}`, severity: "error" };
  }
  if (wanted.length === 0) return { text: "$(circle-slash) down", severity: "idle" };
  const up = wanted.filter((m) => isUp(m) || (m.state === "exited" && !isTrouble(m))).length;
  if (up === wanted.length) return { text: `$(check) ${up}/${wanted.length}`, severity: "ok" };
  return { text: `$(sync~spin) ${up}/${wanted.length}`, severity: "busy" };
}

/** The IPC item's text: `$(pulse) IPC 12`, or `$(pulse) IPC –` until the daemon reports a score. */
export function ipcText(status: (StatusResult & FutureStatusFields) | undefined, project?: ProjectView): string {
  const score = project?.ipcScore ?? status?.ipcScore;
  return `$(pulse) IPC ${typeof score === "number" && Number.isFinite(score) ? Math.round(score) : "–"}`;
}

/** The IPC item's tooltip: the score's components against their budgets (docs/metrics.md). */
export function ipcTooltip(status: StatusResult | undefined): string {
  const ipc = status?.ipc;
  if (!ipc) return "IPC score: not reported by this daemon yet";
  const c = ipc.components;
  return [
    `IPC score ${ipc.score} (the worst component; 100 = a budget used up)`,
    `rate ${Math.round(c.rate)} · ${ipc.messagesPerSec.toFixed(1)} msg/s of 5,000`,
    `latency ${Math.round(c.latency)} · p95 ${ipc.latencyP95Ms.toFixed(2)} ms of 50 (p50 ${ipc.latencyP50Ms.toFixed(2)} ms)`,
    `errors ${Math.round(c.errors)} · ${ipc.errorPercent.toFixed(1)} % of 5 %`,
    `queue ${Math.round(c.queue)} · fullest session queue ${Math.round(ipc.queueFillPercent)} %`,
  ].join("\n");
}

/** The profile item's text: `$(layers) full`, `$(layers) (all modules)` with no profile. */
export function profileText(project: ProjectStatus | undefined): string {
  if (!project) return "$(layers) –";
  return `$(layers) ${project.profile ?? "(all modules)"}`;
}

/** Escapes text for a MarkdownString (tooltips show module reasons that may contain `*` or `_`). */
export function escapeMarkdown(s: string): string {
  return s.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, (c) => `\\${c}`);
}

/** A Markdown table of a project's modules for the status bar tooltip. */
export function statusTooltip(projects: ProjectStatus[], nowText = ""): string {
  if (projects.length === 0) return "No Steward stack is open in this workspace.";
  const out: string[] = [];
  for (const p of projects) {
    out.push(`**${escapeMarkdown(p.name)}** — profile ${escapeMarkdown(p.profile ?? "(none)")}, ${p.up ? "up" : "down"}`);
    out.push("");
    out.push("| module | state | restarts |");
    out.push("|---|---|---:|");
    for (const m of p.modules) {
      const reason = m.reason ? ` — ${escapeMarkdown(m.reason)}` : "";
      out.push(`| ${escapeMarkdown(m.name)} | ${escapeMarkdown(stateLabel(m))}${reason} | ${m.restarts} |`);
    }
    if (p.configErrors && p.configErrors.length > 0) {
      out.push("");
      out.push(`$(warning) the last edit of the stack file was rejected (${p.configErrors.length} error(s)); the last good configuration keeps running`);
    }
    out.push("");
  }
  if (nowText) out.push(nowText);
  return out.join("\n");
}

/** Splits a memory snippet (terms wrapped in U+0001 … U+0002) into plain text and highlight ranges. */
export function parseSnippet(snippet: string): { text: string; highlights: Array<[number, number]> } {
  let text = "";
  const highlights: Array<[number, number]> = [];
  let open = -1;
  for (const ch of snippet) {
    if (ch === "\u0001") open = text.length;
    else if (ch === "\u0002") {
      if (open >= 0) highlights.push([open, text.length]);
      open = -1;
    } else text += ch === "\n" || ch === "\r" || ch === "\t" ? " " : ch;
  }
  return { text, highlights };
}

/** Health in words, for tooltips. */
export function healthLabel(h: Health | undefined): string {
  return h === "healthy" ? "healthy" : h === "unhealthy" ? "unhealthy" : "no health check";
}

/** All module states, for exhaustiveness checks in tests. */
export const MODULE_STATES: ModuleState[] = [
  "installed",
  "resolved",
  "starting",
  "running",
  "stopping",
  "stopped",
  "exited",
  "failed",
  "backoff",
];
