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

export type Field = "cpu" | "mem" | "ipc";

/**
 * Groups history into one series per module (and the daemon-wide one) for every field, in one pass (an hour
 * of 20 modules is ~38k points, re-grouped on every refresh: no per-point key strings).
 */
export function seriesByField(history: MetricPoint[]): Record<Field, Series[]> {
  const out: Record<Field, Series[]> = { cpu: [], mem: [], ipc: [] };
  const projects = new Map<string, Map<string, [Series, Series]>>();
  let daemon: [Series, Series, Series] | undefined;
  for (const pt of history) {
    if (pt.project === "" && pt.module === "") {
      if (!daemon) {
        daemon = [
          { key: "", label: "system", points: [] },
          { key: "", label: "system", points: [] },
          { key: "", label: "IPC score", points: [] },
        ];
        out.cpu.push(daemon[0]);
        out.mem.push(daemon[1]);
        out.ipc.push(daemon[2]);
      }
      daemon[0].points.push([pt.atMs, pt.cpuPercent]);
      daemon[1].points.push([pt.atMs, pt.memBytes]);
      daemon[2].points.push([pt.atMs, pt.ipcScore ?? 0]);
      continue;
    }
    let mods = projects.get(pt.project);
    if (!mods) projects.set(pt.project, (mods = new Map()));
    let s = mods.get(pt.module);
    if (!s) {
      const key = `${pt.project}\u0000${pt.module}`;
      s = [
        { key, label: pt.module, points: [] },
        { key, label: pt.module, points: [] },
      ];
      mods.set(pt.module, s);
      out.cpu.push(s[0]);
      out.mem.push(s[1]);
    }
    s[0].points.push([pt.atMs, pt.cpuPercent]);
    s[1].points.push([pt.atMs, pt.memBytes]);
  }
  return out;
}

/** The series of one field (see `seriesByField`). */
export function seriesOf(history: MetricPoint[], field: Field): Series[] {
  return seriesByField(history)[field];
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
  // One decimal, like toFixed(1) (which is several times slower; this runs for every point of every chart on
  // every refresh). Fixed-point text: no exponent for tiny values.
  const r1 = (x: number) => {
    const n = Math.round(x * 10);
    const a = Math.abs(n);
    return `${n < 0 ? "-" : ""}${Math.floor(a / 10)}.${a % 10}`;
  };
  let d = "";
  for (let i = 0; i < points.length; i++) {
    const [t, v] = points[i];
    d += `${i === 0 ? "M" : "L"}${r1((t - t0) * dx)},${r1(h - Math.min(v, yMax) * dy)}`;
  }
  return d;
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
