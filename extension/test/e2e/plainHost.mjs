// The dashboard outside VS Code, for tests and benchmarks: a loopback HTTP server serving the host page
// (webview/host.html through webview/host.mjs: the VS Code webview's strict CSP, a fresh nonce per load), the
// built bundle (extension/out/webview/dashboard.{js,css}) and plain-transport.js; a Playwright page wired to a
// transport (any `request(method, params)` function: a real daemon client, or synthetic data), recording
// console errors, page errors and CSP violations; and a real daemon in a private STEWARD_HOME with a JSON-RPC
// client (Microsoft's vscode-jsonrpc) on its socket.

import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { createRequire } from "node:module";
import { hostHtml } from "../../../webview/host.mjs";
import { alive, extDir, stewardBin, waitUntil } from "./harness.mjs";

const require = createRequire(import.meta.url);
const bundleDir = path.join(extDir, "out", "webview");

/**
 * Serves the host page and the bundle on 127.0.0.1; `url` is the page. `transport`: the script defining
 * window.stewardTransport (default plain-transport.js, over the functions `openDashboard` exposes).
 */
export async function startPlainHost({ transport = path.join(path.dirname(new URL(import.meta.url).pathname), "plain-transport.js") } = {}) {
  for (const f of ["dashboard.js", "dashboard.css"]) {
    if (!fs.existsSync(path.join(bundleDir, f))) throw new Error(`missing ${path.join(bundleDir, f)} (cd extension && node build.mjs)`);
  }
  const files = {
    "/dashboard.js": [path.join(bundleDir, "dashboard.js"), "text/javascript"],
    "/dashboard.css": [path.join(bundleDir, "dashboard.css"), "text/css"],
    "/transport.js": [transport, "text/javascript"],
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(hostHtml({ base: "/", transport: "/transport.js" }));
      return;
    }
    if (url.pathname === "/favicon.ico") {
      // Chromium asks for it on its own; no icon, and no 404 in the console.
      res.writeHead(204);
      res.end();
      return;
    }
    const f = files[url.pathname];
    if (!f) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      return;
    }
    res.writeHead(200, { "content-type": f[1], "cache-control": "no-store" });
    res.end(fs.readFileSync(f[0]));
  });
  await new Promise((resolve, reject) => server.once("error", reject).listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(r)) };
}

/**
 * A page showing the dashboard through the plain bridge. `request(method, params)` answers the page's
 * requests; `onAction(name, args)` gets its host actions. Returns the page, `notify(n)` (push a notification),
 * and the lists of console errors, page errors and CSP violations (filled as they happen).
 */
export async function openDashboard(context, url, { request = async (m) => Promise.reject(new Error(`no transport for ${m}`)), onAction = () => {}, colorScheme = "light" } = {}) {
  const page = await context.newPage();
  await page.emulateMedia({ colorScheme });
  const seen = { consoleErrors: [], pageErrors: [], cspViolations: [] };
  page.on("console", (m) => {
    if (m.type() === "error") seen.consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => seen.pageErrors.push(e.message));
  // Which resource a "Failed to load resource" console error was about.
  page.on("response", (r) => {
    if (r.status() >= 400) seen.consoleErrors.push(`(HTTP ${r.status()} for ${r.url()})`);
  });
  // Answers cross as JSON text, as on a real wire (and Playwright's own serialisation of large values is slow).
  await page.exposeFunction("__stewardRequest", async (method, params) => JSON.stringify(await request(method, params)));
  await page.exposeFunction("__stewardAction", (name, args) => onAction(name, args));
  await page.exposeFunction("__stewardCsp", (v) => seen.cspViolations.push(v));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__stewardCsp({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample }),
    );
  });
  await page.goto(url);
  const notify = (n) => page.evaluate((x) => window.__stewardNotify?.(x), n).catch(() => undefined);
  return { page, notify, ...seen };
}

/** A real `steward daemon` in `home`, and a JSON-RPC connection to it (initialized). */
export async function startDaemon(home, extraEnv = {}) {
  const env = { ...process.env, STEWARD_HOME: home, ...extraEnv };
  fs.mkdirSync(home, { recursive: true });
  const out = fs.openSync(path.join(home, "daemon.out"), "a");
  const proc = spawn(stewardBin, ["daemon"], { env, stdio: ["ignore", out, out] });
  fs.closeSync(out);
  const sockPath = path.join(home, "run", "steward.sock");
  const { createMessageConnection, StreamMessageReader, StreamMessageWriter } = require("vscode-jsonrpc/node");
  const sock = await waitUntil(20_000, "the daemon's socket", async () => {
    if (proc.exitCode !== null) throw new Error(`steward daemon exited ${proc.exitCode}: ${fs.readFileSync(path.join(home, "daemon.out"), "utf8")}`);
    if (!fs.existsSync(sockPath)) return undefined;
    const s = net.createConnection(sockPath);
    return new Promise((resolve) => s.once("connect", () => resolve(s)).once("error", () => resolve(undefined)));
  });
  const conn = createMessageConnection(new StreamMessageReader(sock), new StreamMessageWriter(sock));
  conn.listen();
  await conn.sendRequest("initialize", { processId: process.pid, rootUri: null, capabilities: {} });
  await conn.sendNotification("initialized", {});
  return {
    proc,
    conn,
    env,
    request: (method, params) => conn.sendRequest(method, params),
    async stop() {
      await conn.sendRequest("steward/daemon/stop", {}).catch(() => undefined);
      conn.dispose();
      sock.destroy();
      await waitUntil(30_000, "the daemon to exit", () => proc.exitCode !== null || !alive(proc.pid)).catch(() => proc.kill("SIGKILL"));
    },
  };
}
