// The dashboard page (webview/src/main.ts) as a component, in a simulated DOM (vitest + happy-dom): it renders
// what the host answers, and re-renders when a pushed notification says something changed. The transport is a
// test double (page logic only; the real daemon and Chromium are in test/e2e/dashboard.e2e.test.mjs).
// Run: npm run test:dom (vitest.config.mjs).

import { afterEach, expect, test, vi } from "vitest";
import type { Alert, ModuleStatus, StatusResult } from "../../../protocol/ts/steward-protocol";
import type { Notification, PlainTransport } from "../../../webview/src/bridge";

const project = "/w/steward.toml";

function mod(name: string, over: Partial<ModuleStatus> = {}): ModuleStatus {
  return { name, state: "running", wanted: true, pid: 100, restarts: 0, stateForMs: 65_000, cpuPercent: 1.5, rssBytes: 3 << 20, ...over };
}

function status(modules: ModuleStatus[], alerts: Alert[] = []): StatusResult {
  return {
    version: "t",
    protocolVersion: 1,
    pid: 1,
    startedMs: 0,
    uptimeMs: 1,
    home: "/h",
    ipcScore: 4,
    alerts,
    projects: [{ path: project, name: "demo", profile: "full", up: true, modules }],
  } as unknown as StatusResult;
}

/** A host double: answers from `state`, records requests, pushes notifications. */
function host(initial: StatusResult) {
  const state = { status: initial, alerts: { active: [] as Alert[], resolved: [] as Alert[] } };
  const requests: { method: string; params: unknown }[] = [];
  const handlers: ((n: Notification) => void)[] = [];
  const transport: PlainTransport = {
    request: async (method, params) => {
      requests.push({ method, params });
      switch (method) {
        case "steward/status":
          return state.status;
        case "steward/metrics":
          return { intervalMs: 2000, modules: [], history: [] };
        case "steward/alerts":
          return state.alerts;
        case "steward/events/query":
          return { events: [{ id: 1, tsMs: 0, level: "warn", text: "api crashed" }] };
        default:
          return { ok: true };
      }
    },
    subscribe: (h) => handlers.push(h),
  };
  return { state, requests, transport, push: (n: Notification) => handlers.forEach((h) => h(n)) };
}

async function load(h: ReturnType<typeof host>): Promise<HTMLElement> {
  document.body.innerHTML = `<main id="app"></main>`;
  window.stewardTransport = h.transport;
  vi.resetModules();
  await import("../../../webview/src/main");
  return document.getElementById("app") as HTMLElement;
}

const row = (app: HTMLElement, name: string) => app.querySelector<HTMLTableRowElement>(`tr[data-module="${name}"]`);

afterEach(() => {
  vi.clearAllTimers();
});

test("a status renders one row per module: state, uptime, restarts, CPU, memory, actions", async () => {
  const h = host(status([mod("db"), mod("api", { restarts: 2, cpuPercent: 42 }), mod("worker", { state: "stopped", pid: undefined, stateForMs: 0 })]));
  const app = await load(h);
  await vi.waitFor(() => expect(row(app, "api")).not.toBeNull());
  expect(app.querySelector("section.project h2")?.textContent).toBe("demo · full · up");
  const cells = Array.from((row(app, "api") as HTMLTableRowElement).cells).map((c) => c.textContent);
  expect(cells.slice(0, 6)).toEqual(["api", "running", "1 m", "2", "42 %", "3.0 MiB"]);
  expect(row(app, "db")?.dataset.state).toBe("running");
  // A running module can be restarted or stopped; a stopped one started.
  expect(row(app, "api")?.querySelector('button[aria-label="Restart api"]')).not.toBeNull();
  expect(row(app, "worker")?.dataset.state).toBe("stopped");
  expect(row(app, "worker")?.querySelector('button[aria-label="Start worker"]')).not.toBeNull();
  expect(row(app, "worker")?.querySelector('button[aria-label="Restart worker"]')).toBeNull();
  expect(app.querySelector(".alerts li")?.textContent).toBe("No alert is firing.");
});

test("a pushed notification re-renders: a state change updates the row", async () => {
  const h = host(status([mod("api")]));
  const app = await load(h);
  await vi.waitFor(() => expect(row(app, "api")?.dataset.state).toBe("running"));
  h.state.status = status([mod("api", { state: "backoff", pid: undefined, restarts: 1 })]);
  h.push({ method: "steward/event", params: { kind: "runEnded" } });
  // Within 1 s: the push (debounced 150 ms), not the page's 2 s timer.
  await vi.waitFor(() => expect(row(app, "api")?.dataset.state).toBe("backoff"), { timeout: 1000 });
  expect(row(app, "api")?.classList.contains("state-backoff")).toBe(true);
  expect(Array.from((row(app, "api") as HTMLTableRowElement).cells)[3].textContent).toBe("1");
});

test("a firing alert renders with its level; a resolved one is struck through", async () => {
  const fired: Alert = { rule: "moduleMemory", level: "warning", project, module: "api", message: "api: memory at 86 % of its limit (warning)", value: 86, threshold: 80, firedMs: 1 };
  const h = host(status([mod("api")], [fired]));
  h.state.alerts = {
    active: [fired],
    resolved: [{ ...fired, rule: "moduleCpu", level: "critical", message: "db: CPU at 95 % of a core (critical)", resolvedMs: 2 }],
  };
  const app = await load(h);
  await vi.waitFor(() => expect(app.querySelector(".alerts li.alert")).not.toBeNull());
  const items = Array.from(app.querySelectorAll<HTMLLIElement>(".alerts li.alert"));
  expect(items.map((li) => li.className)).toEqual(["alert level-warning", "alert level-critical resolved"]);
  expect(items[0].querySelector(".badge")?.textContent).toBe("warning");
  expect(items[0].textContent).toContain("api: memory at 86 % of its limit");
});

test("the restart button asks the host for steward/module/restart of that module", async () => {
  const h = host(status([mod("api")]));
  const app = await load(h);
  await vi.waitFor(() => expect(row(app, "api")).not.toBeNull());
  row(app, "api")?.querySelector<HTMLButtonElement>('button[aria-label="Restart api"]')?.click();
  await vi.waitFor(() => expect(h.requests.some((r) => r.method === "steward/module/restart")).toBe(true));
  expect(h.requests.find((r) => r.method === "steward/module/restart")?.params).toEqual({ project, module: "api", wait: false });
});

test("a host error is shown instead of the page", async () => {
  const h = host(status([]));
  h.transport.request = async () => {
    throw new Error("daemon not running");
  };
  const app = await load(h);
  await vi.waitFor(() => expect(app.textContent).toBe("Not connected: daemon not running"));
});
