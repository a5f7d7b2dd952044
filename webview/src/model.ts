// Pure view logic of the dashboard (no DOM): series from metrics history, SVG paths, number formatting.

import type { MetricPoint } from "../../protocol/ts/steward-protocol";

export interface Series {
  key: string;
  label: string;
  points: [number, number][];
}

/** `12.3 %`. */
export function pct(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? "–" : `${v < 10 ? v.toFixed(1) : Math.round(v)} %`;
}

/** `512 B`, `1.5 KiB`, `12 MiB`. */
export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n) || n < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n < 10 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

/** Groups history into one series per module (and the daemon-wide one), for one field. */
export function seriesOf(history: MetricPoint[], field: "cpu" | "mem" | "ipc"): Series[] {
  const map = new Map<string, Series>();
  for (const pt of history) {
    const daemon = pt.project === "" && pt.module === "";
    if (field === "ipc" && !daemon) continue;
    const key = daemon ? "" : `${pt.project}\u0000${pt.module}`;
    let s = map.get(key);
    if (!s) {
      s = { key, label: daemon ? (field === "ipc" ? "IPC score" : "system") : pt.module, points: [] };
      map.set(key, s);
    }
    const v = field === "cpu" ? pt.cpuPercent : field === "mem" ? pt.memBytes : (pt.ipcScore ?? 0);
    s.points.push([pt.atMs, v]);
  }
  return [...map.values()];
}

/** Downsamples to at most `max` points (bucket maxima, so peaks survive). */
export function downsample(points: [number, number][], max: number): [number, number][] {
  if (points.length <= max) return points;
  const out: [number, number][] = [];
  const step = points.length / max;
  for (let i = 0; i < max; i++) {
    const from = Math.floor(i * step);
    const to = Math.min(points.length, Math.floor((i + 1) * step));
    let best = points[from];
    for (let j = from + 1; j < to; j++) if (points[j][1] > best[1]) best = points[j];
    out.push(best);
  }
  return out;
}

/** An SVG path for `points` scaled into `w × h` over [t0, t1] × [0, yMax]. */
export function linePath(points: [number, number][], w: number, h: number, t0: number, t1: number, yMax: number): string {
  if (points.length === 0) return "";
  const dx = t1 > t0 ? w / (t1 - t0) : 0;
  const dy = yMax > 0 ? h / yMax : 0;
  return points
    .map(([t, v], i) => `${i === 0 ? "M" : "L"}${((t - t0) * dx).toFixed(1)},${(h - Math.min(v, yMax) * dy).toFixed(1)}`)
    .join("");
}

/** A "nice" upper bound for an axis (1, 2, 5 × 10ⁿ at or above `v`). */
export function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * The charts' time window: the last hour, or less while the history is younger (so a few minutes of samples
 * fill the chart instead of a sliver at its right edge). At least a minute; spans round up to whole minutes.
 */
export function timeWindow(oldestMs: number | undefined, now: number): { t0: number; label: string } {
  const HOUR = 3_600_000;
  const age = oldestMs === undefined ? 0 : now - oldestMs;
  const minutes = Math.min(60, Math.max(1, Math.ceil(age / 60_000)));
  return { t0: now - (minutes === 60 ? HOUR : minutes * 60_000), label: minutes === 60 ? "Last hour" : `Last ${minutes} min` };
}
