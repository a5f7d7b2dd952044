// The Steward dashboard (one bundle for the VS Code sidebar, an editor panel and the tray window): overview
// (modules with state, uptime, restarts, CPU, memory, actions), charts (CPU and memory per module, IPC score,
// last hour; hand-written SVG), alerts, recent events. Talks to the daemon only through a HostBridge.

import "./dashboard.css";
import type {
  Alert,
  AlertsResult,
  EventQueryResult,
  MetricPoint,
  MetricsResult,
  ModuleStatus,
  ProjectStatus,
  StatusResult,
} from "../../protocol/ts/steward-protocol";
import { type HostBridge, type FromHost, PlainBridge, type PlainTransport, VsCodeBridge } from "./bridge";
import { bytes, downsample, type Field, linePath, niceMax, pct, type Series, seriesByField, timeWindow } from "./model";

declare function acquireVsCodeApi(): { postMessage(msg: unknown): void };
declare global {
  interface Window {
    stewardTransport?: PlainTransport;
  }
}

function makeBridge(): HostBridge {
  if (typeof acquireVsCodeApi === "function") {
    const api = acquireVsCodeApi();
    return new VsCodeBridge(
      (m) => api.postMessage(m),
      (cb) => window.addEventListener("message", (ev: MessageEvent) => cb(ev.data as FromHost)),
    );
  }
  if (window.stewardTransport) return new PlainBridge(window.stewardTransport);
  throw new Error("no host: expected a VS Code webview or window.stewardTransport");
}

const bridge = makeBridge();
const app = document.getElementById("app") as HTMLElement;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const SVG = "http://www.w3.org/2000/svg";
function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

interface State {
  status?: StatusResult;
  metrics?: MetricsResult;
  alerts?: AlertsResult;
  events?: EventQueryResult;
  error?: string;
  /** The last hour of samples, kept here: each refresh asks only for what is newer. */
  history: MetricPoint[];
}
const st: State = { history: [] };

function uptime(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m`;
  const h = Math.floor(m / 60);
  return h < 24 ? `${h} h ${m % 60} m` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

function actionButton(label: string, title: string, run: () => Promise<unknown>): HTMLButtonElement {
  const b = el("button", "action", label);
  b.title = title;
  b.setAttribute("aria-label", title);
  b.addEventListener("click", () => {
    b.disabled = true;
    run()
      .catch((e: Error) => (st.error = e.message))
      .finally(() => {
        b.disabled = false;
        void refresh();
      });
  });
  return b;
}

function moduleRow(p: ProjectStatus, m: ModuleStatus): HTMLTableRowElement {
  const tr = el("tr", `state-${m.state}${m.health === "unhealthy" ? " unhealthy" : ""}`);
  tr.dataset.module = m.name;
  tr.dataset.state = m.state;
  const name = el("td");
  const link = el("a", "module", m.name);
  link.href = "#";
  link.title = `Logs of ${m.name}`;
  link.addEventListener("click", (e) => {
    e.preventDefault();
    bridge.action("logs", { project: p.path, module: m.name });
  });
  name.append(link);
  const state = el("td", "state");
  state.append(el("span", "dot"), document.createTextNode(m.state === "running" && m.health === "unhealthy" ? "unhealthy" : m.state));
  const running = m.pid !== undefined;
  const acts = el("td", "actions");
  const params = { project: p.path, module: m.name, wait: false };
  if (running) {
    acts.append(
      actionButton("↻", `Restart ${m.name}`, () => bridge.request("steward/module/restart", params)),
      actionButton("■", `Stop ${m.name}`, () => bridge.request("steward/module/stop", params)),
    );
  } else {
    acts.append(actionButton("▶", `Start ${m.name}`, () => bridge.request("steward/module/start", params)));
  }
  tr.append(
    name,
    state,
    el("td", "num", running ? uptime(m.stateForMs) : "–"),
    el("td", "num", String(m.restarts)),
    el("td", "num cpu", pct(m.cpuPercent)),
    el("td", "num mem", bytes(m.rssBytes)),
    acts,
  );
  return tr;
}

const PALETTE = 8;

function chart(title: string, field: Field, all: Series[], fmt: (v: number) => string, t0: number, now: number): HTMLElement {
  const box = el("figure", "chart");
  box.dataset.chart = field;
  box.append(el("figcaption", undefined, title));
  const series = all.filter((s) => field === "ipc" || s.key !== "");
  const W = 300;
  const H = 80;
  let yMax = 0;
  for (const s of series) for (let i = 0; i < s.points.length; i++) if (s.points[i][1] > yMax) yMax = s.points[i][1];
  yMax = field === "ipc" ? 100 : niceMax(yMax);
  const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}, last hour`, preserveAspectRatio: "none" });
  g.append(svg("line", { x1: "0", y1: String(H), x2: String(W), y2: String(H), class: "axis" }));
  let points = 0;
  series.forEach((s, i) => {
    const pts = downsample(s.points, W);
    points += pts.length;
    g.append(svg("path", { d: linePath(pts, W, H, t0, now, yMax), class: `line c${i % PALETTE}` }));
  });
  box.dataset.points = String(points);
  box.append(g);
  const legend = el("div", "legend");
  legend.append(el("span", "muted", `max ${fmt(yMax)}`));
  series.forEach((s, i) => {
    const last = s.points[s.points.length - 1];
    const item = el("span", `key c${i % PALETTE}`, `${s.label} ${last ? fmt(last[1]) : ""}`);
    legend.append(item);
  });
  box.append(legend);
  if (points === 0) box.append(el("p", "muted", "No samples yet."));
  return box;
}

function alertItem(a: Alert): HTMLLIElement {
  const li = el("li", `alert level-${a.level}`);
  li.append(el("span", "badge", a.level), document.createTextNode(` ${a.message}`));
  li.title = new Date(a.firedMs).toLocaleString();
  return li;
}

function render(): void {
  const out: HTMLElement[] = [];
  const s = st.status;
  if (!s) {
    out.push(el("p", "muted", st.error ? `Not connected: ${st.error}` : "Connecting to the Steward daemon…"));
    app.replaceChildren(...out);
    return;
  }
  const head = el("header", "summary");
  const sys = s.system;
  head.append(
    el("span", "ipc", `IPC ${s.ipcScore ?? "–"}`),
    el("span", undefined, `CPU ${pct(sys?.cpuPercent)}`),
    el("span", undefined, `memory ${sys ? pct((100 * sys.memUsedBytes) / Math.max(1, sys.memTotalBytes)) : "–"}`),
    el("span", undefined, `disk ${sys ? pct((100 * sys.diskUsedBytes) / Math.max(1, sys.diskTotalBytes)) : "–"}`),
  );
  if (s.ipc) head.title = `IPC: ${s.ipc.messagesPerSec} msg/s, p95 ${s.ipc.latencyP95Ms} ms, errors ${s.ipc.errorPercent} %`;
  out.push(head);
  if (st.error) out.push(el("p", "error", st.error));

  if (s.projects.length === 0) out.push(el("p", "muted", "No stack is open."));
  for (const p of s.projects) {
    const section = el("section", "project");
    section.append(el("h2", undefined, `${p.name} · ${p.profile ?? "all modules"} · ${p.up ? "up" : "down"}`));
    const table = el("table", "modules");
    const hr = el("tr");
    for (const h of ["Module", "State", "Uptime", "Restarts", "CPU", "Memory", ""]) hr.append(el("th", undefined, h));
    table.append(hr);
    for (const m of p.modules) table.append(moduleRow(p, m));
    section.append(table);
    out.push(section);
  }

  const charts = el("section", "charts");
  const now = Date.now();
  const win = timeWindow(st.history[0]?.atMs, now);
  charts.append(el("h2", undefined, win.label));
  const series = seriesByField(st.history);
  charts.append(
    chart("CPU (% of a core)", "cpu", series.cpu, (v) => pct(v), win.t0, now),
    chart("Memory", "mem", series.mem, (v) => bytes(v), win.t0, now),
    chart("IPC score", "ipc", series.ipc, (v) => String(Math.round(v)), win.t0, now),
  );
  out.push(charts);

  const alerts = el("section", "alerts");
  alerts.append(el("h2", undefined, "Alerts"));
  const active = st.alerts?.active ?? s.alerts ?? [];
  const list = el("ul");
  if (active.length === 0) list.append(el("li", "muted", "No alert is firing."));
  for (const a of active) list.append(alertItem(a));
  for (const a of (st.alerts?.resolved ?? []).slice(0, 5)) {
    const li = alertItem(a);
    li.classList.add("resolved");
    list.append(li);
  }
  alerts.append(list);
  out.push(alerts);

  const events = el("section", "events");
  events.append(el("h2", undefined, "Recent events"));
  const ul = el("ul");
  for (const e of (st.events?.events ?? []).slice(-10).reverse()) {
    ul.append(el("li", `level-${e.level}`, `${new Date(e.tsMs).toLocaleTimeString()}  ${e.text}`));
  }
  events.append(ul);
  const search = el("button", "link", "Search the memory…");
  search.addEventListener("click", () => bridge.action("search"));
  events.append(search);
  out.push(events);
  app.replaceChildren(...out);
}

let refreshing = false;
async function refresh(): Promise<void> {
  if (refreshing) return;
  refreshing = true;
  const hourAgo = Date.now() - 3_600_000;
  const last = st.history[st.history.length - 1];
  const since = last ? Math.max(hourAgo, last.atMs + 1) : hourAgo;
  try {
    const [status, metrics, alerts, events] = await Promise.all([
      bridge.request("steward/status", {}),
      bridge.request("steward/metrics", { history: "raw", sinceMs: since }),
      bridge.request("steward/alerts", { limit: 5 }),
      bridge.request("steward/events/query", { limit: 10 }),
    ]);
    st.status = status as StatusResult;
    st.metrics = metrics as MetricsResult;
    st.history = st.history.filter((pt) => pt.atMs >= hourAgo).concat(st.metrics.history ?? []);
    st.alerts = alerts as AlertsResult;
    st.events = events as EventQueryResult;
    st.error = undefined;
  } catch (e) {
    st.error = (e as Error).message;
  } finally {
    refreshing = false;
  }
  render();
}

let soon: ReturnType<typeof setTimeout> | undefined;
bridge.onNotification(() => {
  if (soon) return;
  soon = setTimeout(() => {
    soon = undefined;
    void refresh();
  }, 150);
});
render();
void refresh();
// Charts follow the sampler; the interval is the daemon's (2 s by default).
setInterval(() => void refresh(), 2000);
