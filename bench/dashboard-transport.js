// window.stewardTransport for bench/dashboard.mjs: a synthetic daemon INSIDE the page (so the figures are the
// page's, not a test driver's IPC): 20 modules, one hour of 2 s samples. Every answer goes through
// JSON.stringify + JSON.parse, as a wire would. window.__benchTick() adds one sample tick (2 s of data) and
// pushes a notification. Served by plainHost.mjs as the host page's nonce'd transport script.
"use strict";
(() => {
  const MODULES = 20;
  const INTERVAL = 2000;
  const HOUR = 3_600_000;
  const project = "/bench/steward.toml";
  const names = Array.from({ length: MODULES }, (_, i) => `svc${String(i + 1).padStart(2, "0")}`);
  let now = Date.now();
  const history = [];
  const sample = (t) => {
    const k = Math.round(t / INTERVAL);
    for (let i = 0; i < MODULES; i++) {
      history.push({
        atMs: t,
        project,
        module: names[i],
        cpuPercent: Math.abs(Math.sin(k / 40 + i)) * (10 + 4 * i) + (k % 97 === i ? 60 : 0),
        memBytes: (20 + 5 * i) * 1048576 + ((k * (i + 1) * 65536) % (32 * 1048576)),
      });
    }
    history.push({ atMs: t, project: "", module: "", cpuPercent: 20 + 10 * Math.sin(k / 30), memBytes: 6 * 2 ** 30, ipcScore: Math.round(5 + 4 * Math.sin(k / 10)) });
  };
  /** When the host page's scripts start running (the HTML, CSS and scripts are loaded). */
  window.__benchScriptsAt = performance.now();
  const g0 = performance.now();
  for (let t = now - HOUR + INTERVAL; t <= now; t += INTERVAL) sample(t);
  /** The bench's own cost before the page starts (generating the hour): not the page's. */
  window.__benchGenerateMs = performance.now() - g0;
  const latest = (i) => history[history.length - 1 - MODULES + i];
  const answers = {
    "steward/status": () => ({
      version: "bench",
      protocolVersion: 1,
      pid: 1,
      startedMs: now - HOUR,
      uptimeMs: HOUR,
      home: "/bench",
      ipcScore: 7,
      system: { atMs: now, cpuPercent: 23, cpus: 2, memTotalBytes: 8 * 2 ** 30, memUsedBytes: 6 * 2 ** 30, diskPath: "/", diskTotalBytes: 1e11, diskUsedBytes: 4e10 },
      alerts: [],
      projects: [
        {
          path: project,
          name: "bench",
          profile: "full",
          up: true,
          modules: names.map((name, i) => ({
            name,
            state: "running",
            wanted: true,
            pid: 1000 + i,
            restarts: i % 3,
            stateForMs: HOUR,
            cpuPercent: latest(i).cpuPercent,
            rssBytes: latest(i).memBytes,
          })),
        },
      ],
    }),
    "steward/metrics": (params) => {
      const since = params?.sinceMs ?? now - HOUR;
      let lo = 0;
      let hi = history.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (history[mid].atMs < since) lo = mid + 1;
        else hi = mid;
      }
      return { intervalMs: INTERVAL, modules: [], history: history.slice(lo) };
    },
    "steward/alerts": () => ({ active: [], resolved: [] }),
    "steward/events/query": () => ({
      events: Array.from({ length: 10 }, (_, i) => ({ id: i, tsMs: now - i * 1000, level: "info", text: `${names[i]} running` })),
    }),
  };
  const handlers = [];
  /** [method, bytes of JSON, ms of stringify + parse] per request. */
  window.__benchWire = [];
  window.__benchTick = () => {
    now += INTERVAL;
    sample(now);
    while (history[0].atMs < now - HOUR) history.shift();
    for (const h of handlers) h({ method: "steward/event", params: { kind: "transition" } });
  };
  window.stewardTransport = {
    request: async (method, params) => {
      const f = answers[method];
      if (!f) throw new Error(`bench: unexpected ${method}`);
      // Answers arrive in a later task, as from a real host's IPC (so the page can paint meanwhile).
      await new Promise((r) => setTimeout(r, 0));
      const w0 = performance.now();
      const text = JSON.stringify(f(params));
      const value = JSON.parse(text);
      window.__benchWire.push([method, text.length, performance.now() - w0]);
      return value;
    },
    subscribe: (h) => handlers.push(h),
    action: () => {},
  };
})();
