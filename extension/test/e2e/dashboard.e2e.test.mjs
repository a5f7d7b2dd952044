// The dashboard (webview/) end to end OUTSIDE VS Code: headless Chromium (Debian's, driven by playwright-core)
// shows the bundle in the plain host page (webview/host.html: the same strict CSP as the VS Code webview),
// through the plain bridge, whose transport is a real JSON-RPC client (vscode-jsonrpc) on the socket of a real
// `steward daemon` (private STEWARD_HOME) running a small stack of python/sh modules. Steps run in order on
// one page; every wait polls against a deadline. Screenshots (light, dark) go to tests/out/dashboard/.
//
//   (cd extension && node build.mjs) && cargo build -p steward && node --test test/e2e/dashboard.e2e.test.mjs

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { repo, waitUntil } from "./harness.mjs";
import { openDashboard, startDaemon, startPlainHost } from "./plainHost.mjs";

const outDir = path.resolve(process.env.STEWARD_DASHBOARD_OUT || path.join(repo, "tests/out/dashboard"));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "steward-dash-"));
const stackDir = path.join(tmp, "stack");
const stackFile = path.join(stackDir, "steward.toml");
let daemon, host, browser, dash, project;
const actions = [];
const requests = [];

function writeStack() {
  fs.mkdirSync(stackDir, { recursive: true });
  // db holds ~24 MiB (written, so resident) so the memory chart has more than one level; api and worker log.
  fs.writeFileSync(path.join(stackDir, "db.py"), "import time\nb = b'x' * (24 << 20)\nprint('db: ready', flush=True)\ntime.sleep(3600)\n");
  fs.writeFileSync(path.join(stackDir, "api.py"), "import time\nwhile True:\n    print('api: request served', flush=True)\n    time.sleep(1)\n");
  fs.writeFileSync(path.join(stackDir, "worker.sh"), "while :; do echo 'worker: tick'; sleep 1; done\n");
  fs.writeFileSync(
    stackFile,
    `[project]
name = "dash-e2e"

[defaults]
# A 1 s backoff: long enough for the page to show the module between runs.
restart = { policy = "on-failure", backoff = "1s..2s", max_restarts = 10, window = "60s" }

[modules.db]
run = "python3 -u db.py"

[modules.api]
run = "python3 -u api.py"
requires = ["db"]

[modules.worker]
run = "sh worker.sh"
`,
  );
}

async function status() {
  const s = await daemon.request("steward/status", { project });
  return s.projects[0];
}
const mod = async (name) => (await status()).modules.find((m) => m.name === name);

before(async () => {
  writeStack();
  // Samples every 500 ms, so the charts have data within seconds.
  daemon = await startDaemon(path.join(tmp, "home"), { STEWARD_METRICS_INTERVAL_MS: "500" });
  const opened = await daemon.request("steward/project/open", { path: stackFile });
  project = opened.path;
  const up = await daemon.request("steward/project/up", { project, wait: true, timeoutMs: 60_000 });
  assert.ok(up.ok, JSON.stringify(up));
  host = await startPlainHost();
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"],
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  dash = await openDashboard(context, host.url, {
    request: (method, params) => {
      requests.push(method);
      return daemon.request(method, params);
    },
    onAction: (name, args) => actions.push({ name, args }),
  });
  // The daemon's pushes reach the page as the plain transport's notifications.
  for (const method of ["steward/event", "steward/ipc"]) daemon.conn.onNotification(method, (params) => dash.notify({ method, params }));
});

after(async () => {
  await browser?.close().catch(() => undefined);
  await host?.close();
  await daemon?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const row = (name) => dash.page.locator(`tr[data-module="${name}"]`);

test("the page renders the daemon's modules through the plain bridge", async () => {
  for (const m of ["db", "api", "worker"]) {
    await waitUntil(15_000, `${m} running on the page`, async () => (await row(m).getAttribute("data-state")) === "running");
  }
  const h2 = await dash.page.locator("section.project h2").innerText();
  assert.match(h2, /^dash-e2e · /, h2);
  // The host page is the strict one (the same policy as the VS Code webview).
  const csp = await dash.page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute("content");
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'nonce-[^']+'/);
  assert.doesNotMatch(csp, /unsafe-(inline|eval)/);
});

test("killing a module: its row goes through the restart and back to running", async () => {
  const before = await mod("api");
  assert.ok(before.pid > 0, JSON.stringify(before));
  // Every state the row is rendered with, recorded in the page (the page re-renders on each refresh).
  await dash.page.evaluate(() => {
    window.__apiStates = [];
    const app = document.getElementById("app");
    const note = () => {
      const s = app.querySelector('tr[data-module="api"]')?.getAttribute("data-state");
      if (s && window.__apiStates[window.__apiStates.length - 1] !== s) window.__apiStates.push(s);
    };
    new MutationObserver(note).observe(app, { childList: true, subtree: true });
    note();
  });
  process.kill(before.pid, "SIGKILL");
  const states = await waitUntil(20_000, "the api row to leave running and come back", async () => {
    const s = await dash.page.evaluate(() => window.__apiStates);
    const left = s.findIndex((x) => x !== "running");
    return left >= 0 && s.slice(left).includes("running") && s;
  });
  assert.ok(states.some((s) => ["backoff", "exited", "starting", "resolved"].includes(s)), states.join(" → "));
  const after = await mod("api");
  assert.equal(after.state, "running");
  assert.notEqual(after.pid, before.pid);
  assert.equal(after.restarts, before.restarts + 1);
  await waitUntil(10_000, "the restart count on the page", async () =>
    (await row("api").locator("td").nth(3).innerText()) === String(after.restarts),
  );
});

test("the charts have data from the daemon's samples", async () => {
  for (const chart of ["mem", "cpu"]) {
    await waitUntil(20_000, `the ${chart} chart to have points`, async () =>
      Number((await dash.page.locator(`figure[data-chart="${chart}"]`).getAttribute("data-points")) ?? 0) >= 4,
    );
  }
  // One line per running module, drawn (a path with segments), with a legend naming it. A module restarted
  // by the test before this one starts a new line with a single point until its next sample: wait for it.
  const drawn = (d) => /^M[\d.]+,[\d.]+(L[\d.]+,[\d.]+)+$/.test(d.trim());
  let paths = [];
  await waitUntil(20_000, "every module's memory line to have segments", async () => {
    paths = await dash.page.locator('figure[data-chart="mem"] path.line').evaluateAll((ps) => ps.map((p) => p.getAttribute("d") ?? ""));
    return paths.length >= 3 && paths.every(drawn);
  }).catch((e) => assert.fail(`${e.message}\n${paths.join("\n")}`));
  const legend = await dash.page.locator('figure[data-chart="mem"] .legend').innerText();
  assert.match(legend, /\bdb\b/, legend);
});

test("the restart button restarts the module (a new pid, checked through the daemon)", async () => {
  const before = await mod("worker");
  assert.equal(before.state, "running");
  await row("worker").locator('button[aria-label="Restart worker"]').click();
  const after = await waitUntil(20_000, "worker running with a new pid", async () => {
    const m = await mod("worker");
    return m.state === "running" && m.pid !== before.pid && m.pid > 0 && m;
  });
  assert.ok(requests.includes("steward/module/restart"));
  // The old process is gone.
  assert.throws(() => process.kill(before.pid, 0));
  await waitUntil(10_000, "the page to show worker running", async () => (await row("worker").getAttribute("data-state")) === "running");
  assert.ok(after.pid > 0);
});

test("the module name asks the host for its logs", async () => {
  await row("db").locator("a.module").click();
  await waitUntil(5_000, "a logs action", () => actions.some((a) => a.name === "logs" && a.args.module === "db" && a.args.project === project));
});

test("screenshots in light and dark (the page's own palette outside VS Code)", async () => {
  fs.mkdirSync(outDir, { recursive: true });
  const bg = () => dash.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const colours = {};
  for (const scheme of ["light", "dark"]) {
    await dash.page.emulateMedia({ colorScheme: scheme });
    colours[scheme] = await bg();
    const file = path.join(outDir, `dashboard-${scheme}.png`);
    await dash.page.screenshot({ path: file, fullPage: true });
    assert.ok(fs.statSync(file).size > 10_000, `${file} looks empty`);
  }
  assert.equal(colours.light, "rgb(255, 255, 255)");
  assert.equal(colours.dark, "rgb(13, 17, 23)");
  await dash.page.emulateMedia({ colorScheme: "light" });
});

test("no console errors, no page errors, no CSP violations — and the CSP is enforced", async () => {
  assert.deepEqual(dash.pageErrors, []);
  assert.deepEqual(dash.consoleErrors, []);
  assert.deepEqual(dash.cspViolations, []);
  // The listener works and the policy holds: an inline script without the nonce is refused and reported.
  await dash.page.evaluate(() => {
    const s = document.createElement("script");
    s.textContent = "window.__inlineRan = true";
    document.body.append(s);
  });
  await waitUntil(5_000, "the violation to be reported", () => dash.cspViolations.length > 0);
  assert.match(dash.cspViolations[0].directive, /^script-src/);
  assert.equal(await dash.page.evaluate(() => window.__inlineRan ?? false), false);
});
