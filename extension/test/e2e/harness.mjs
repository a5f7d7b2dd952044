// End-to-end harness: a real VS Code (code-server, from ~/.cache/steward-ci) with the packaged .vsix
// installed into a fresh profile, driven by Debian's Chromium through playwright-core, against a real
// `steward daemon` (the binary built from this repository) in a private STEWARD_HOME, running a copy of the
// demo stack on free ports. Every wait polls against a deadline; nothing sleeps to synchronise.
//
// Inputs (environment): STEWARD_BIN (default ../../target/debug/steward), CODE_SERVER (default the
// scripts/vscode-deps install), STEWARD_VSIX (default extension/steward.vsix), STEWARD_E2E_OUT (default
// tests/out/e2e: screenshots and, on failure, logs).

import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const extDir = path.resolve(here, "../..");
export const repo = path.resolve(extDir, "..");
export const stewardBin = path.resolve(repo, process.env.STEWARD_BIN || "target/debug/steward");
export const codeServerBin =
  process.env.CODE_SERVER || path.join(os.homedir(), ".cache/steward-ci/code-server-4.100.3/node_modules/.bin/code-server");
export const vsix = path.resolve(process.env.STEWARD_VSIX || path.join(extDir, "steward.vsix"));
export const outDir = path.resolve(process.env.STEWARD_E2E_OUT || path.join(repo, "tests/out/e2e"));

export const THEMES = { dark: "Default Dark Modern", light: "Default Light Modern", hc: "Default High Contrast" };
/** How the Color Theme picker labels them. */
const THEME_LABELS = { "Default Dark Modern": "Dark Modern", "Default Light Modern": "Light Modern", "Default High Contrast": "Dark High Contrast" };

/** Polls `cond` (sync or async) every `every` ms until it returns a truthy value or `ms` pass. */
export async function waitUntil(ms, what, cond, every = 50) {
  const deadline = performance.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ""}`);
    }
    await new Promise((r) => setTimeout(r, every));
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Alive and not a zombie. */
export function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/**
 * One environment: temp dirs, the demo copy, code-server with the extension, a browser page. `start()`
 * returns once the workbench is up. The daemon is started by the extension itself (it finds no daemon and a
 * steward.toml in the workspace).
 */
export class Env {
  constructor({ theme = THEMES.dark, name = "e2e", settings = {} } = {}) {
    this.theme = theme;
    this.settings = settings;
    this.name = name;
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), `steward-${name}-`));
    this.home = path.join(this.tmp, "home");
    this.ws = path.join(this.tmp, "ws");
    this.run = path.join(this.tmp, "run");
    this.stackFile = path.join(this.ws, "steward.toml");
    this.codeServer = undefined;
    this.context = undefined;
    this.page = undefined;
    this.logs = [];
    /** Console errors of every frame: `{text, url}`. */
    this.consoleErrors = [];
  }

  get env() {
    return {
      ...process.env,
      STEWARD_HOME: this.home,
      XDG_CONFIG_HOME: path.join(this.run, "xdg-config"),
      XDG_DATA_HOME: path.join(this.run, "xdg-data"),
      ...this.ports,
    };
  }

  codeServerArgs() {
    return [
      "--config",
      path.join(this.run, "config.yaml"),
      "--user-data-dir",
      path.join(this.run, "ud"),
      "--extensions-dir",
      path.join(this.run, "exts"),
    ];
  }

  /** Installs the .vsix into this fresh profile with code-server's own installer. Returns its output. */
  installExtension() {
    const r = spawnSync(codeServerBin, [...this.codeServerArgs(), "--install-extension", vsix], {
      env: this.env,
      encoding: "utf8",
      timeout: 120_000,
    });
    if (r.status !== 0) throw new Error(`--install-extension failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    const list = spawnSync(codeServerBin, [...this.codeServerArgs(), "--list-extensions", "--show-versions"], {
      env: this.env,
      encoding: "utf8",
      timeout: 60_000,
    });
    return { install: r.stdout + r.stderr, list: list.stdout.trim() };
  }

  writeSettings(extra = {}) {
    const dir = path.join(this.run, "ud", "User");
    fs.mkdirSync(dir, { recursive: true });
    const settings = {
      "security.workspace.trust.enabled": false,
      "workbench.startupEditor": "none",
      "telemetry.telemetryLevel": "off",
      "extensions.autoUpdate": false,
      "extensions.autoCheckUpdates": false,
      "workbench.colorTheme": this.theme,
      "workbench.tips.enabled": false,
      "chat.commandCenter.enabled": false,
      "workbench.secondarySideBar.defaultVisibility": "hidden",
      "steward.path": stewardBin,
      "steward.logs.pageSize": 50,
      ...this.settings,
      ...extra,
    };
    fs.writeFileSync(path.join(dir, "settings.json"), JSON.stringify(settings, null, 2));
  }

  async start() {
    for (const [f, what] of [
      [stewardBin, "the steward binary (cargo build -p steward)"],
      [codeServerBin, "code-server (scripts/vscode-deps)"],
      [vsix, "the packaged extension (cd extension && npm run package)"],
      ["/usr/bin/chromium", "Chromium (scripts/vscode-deps)"],
    ]) {
      if (!fs.existsSync(f)) throw new Error(`missing ${what}: ${f}`);
    }
    this.ports = {
      DEMO_DB_PORT: String(await freePort()),
      DEMO_QUEUE_PORT: String(await freePort()),
      DEMO_API_PORT: String(await freePort()),
    };
    fs.cpSync(path.join(repo, "examples/demo"), this.ws, { recursive: true });
    fs.mkdirSync(this.run, { recursive: true });
    const port = await freePort();
    this.port = port;
    fs.writeFileSync(path.join(this.run, "config.yaml"), `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
    this.installed = this.installExtension();
    this.writeSettings();

    const log = fs.openSync(path.join(this.run, "code-server.log"), "a");
    this.codeServer = spawn(
      codeServerBin,
      [
        ...this.codeServerArgs(),
        "--bind-addr",
        `127.0.0.1:${port}`,
        "--auth",
        "none",
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-workspace-trust",
        "--disable-getting-started-override",
        this.ws,
      ],
      { env: this.env, detached: true, stdio: ["ignore", log, log] },
    );
    fs.closeSync(log);
    await waitUntil(60_000, "code-server to listen", async () => {
      if (this.codeServer.exitCode !== null) throw new Error(`code-server exited:\n${this.codeServerLog()}`);
      const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      return r?.ok;
    });

    this.context = await chromium.launchPersistentContext(path.join(this.run, "chrome-profile"), {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1400, height: 900 },
    });
    this.page = this.context.pages()[0] ?? (await this.context.newPage());
    this.page.on("console", (m) => {
      if (m.type() !== "error") return;
      this.logs.push(`[browser] ${m.text()}`);
      // Every frame's errors, webviews' included (Chromium reports CSP violations here as "Refused to …").
      this.consoleErrors.push({ text: m.text(), url: m.location()?.url ?? "" });
    });
    await this.page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(this.ws)}`);
    await this.page.waitForSelector(".monaco-workbench", { timeout: 60_000 });
    return this;
  }

  codeServerLog() {
    try {
      return fs.readFileSync(path.join(this.run, "code-server.log"), "utf8").split("\n").slice(-40).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** The extension's own output channel, as VS Code writes it to disk. */
  extensionLog() {
    const found = [];
    const walk = (d) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/Steward\.log$/.test(e.name)) found.push(p);
      }
    };
    try {
      walk(path.join(this.run, "ud", "logs"));
    } catch {
      return "";
    }
    return found.map((f) => fs.readFileSync(f, "utf8")).join("\n");
  }

  daemonLog() {
    try {
      return fs.readFileSync(path.join(this.home, "logs", "daemon.log"), "utf8").split("\n").slice(-30).join("\n");
    } catch {
      return "(no daemon.log)";
    }
  }

  /** Runs the CLI against this environment's daemon; returns parsed JSON with `--json`. */
  cli(args, { json = true } = {}) {
    const out = execFileSync(stewardBin, [...args, ...(json ? ["--json"] : [])], {
      env: this.env,
      encoding: "utf8",
      timeout: 60_000,
      cwd: this.ws,
    });
    return json ? JSON.parse(out) : out;
  }

  /** `steward status --json` for the workspace stack, or undefined when the daemon does not know it. */
  status() {
    try {
      const s = this.cli(["status", "-f", this.stackFile]);
      return s.projects?.[0] ?? s;
    } catch {
      return undefined;
    }
  }

  daemonPid() {
    try {
      const pid = Number(fs.readFileSync(path.join(this.home, "run", "steward.lock"), "utf8").trim());
      return pid > 0 && alive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  // ---- the workbench ----------------------------------------------------------------------------------

  async statusBarText() {
    return (await this.page.locator("#workbench\\.parts\\.statusbar").innerText()).replace(/\s+/g, " ");
  }

  /** Runs a command from the palette by its title (`Steward: Up (Start the Stack)`). The palette can close
   *  under the test's hands (a notification or a view taking focus on a loaded machine): then it is opened
   *  again, until the command is clicked or 30 s pass. */
  async runCommand(title) {
    const page = this.page;
    const input = page.locator(".quick-input-widget input");
    // The row whose accessible name is exactly the title (fuzzy matching may rank another command first).
    const rows = page.locator(".quick-input-list .monaco-list-row");
    await waitUntil(30_000, `the command "${title}" to be chosen in the palette`, async () => {
      if (!(await input.isVisible())) {
        await page.keyboard.press("Escape");
        await page.locator(".monaco-workbench").click({ position: { x: 700, y: 400 } }).catch(() => undefined);
        await page.keyboard.press("F1");
        await input.waitFor({ state: "visible", timeout: 5_000 });
      }
      if ((await input.inputValue()) !== `>${title}`) await input.fill(`>${title}`, { timeout: 2_000 });
      const labels = await rows.evaluateAll((els) => els.map((e) => e.getAttribute("aria-label") ?? ""));
      const i = labels.findIndex((l) => l === title || l.startsWith(`${title},`) || l.startsWith(`${title} `));
      if (i < 0) return false;
      await rows.nth(i).click({ timeout: 2_000 });
      return true;
    }, 100);
  }

  /** Switches the colour theme the way a person does: Preferences: Color Theme, then the theme's name. */
  async setTheme(theme) {
    this.theme = theme;
    const label = THEME_LABELS[theme] ?? theme;
    await this.runCommand("Preferences: Color Theme");
    await this.page.locator(".quick-input-widget input").fill(label);
    const row = this.page.locator(".quick-input-widget .quick-input-list .monaco-list-row", { hasText: label }).first();
    await row.waitFor({ state: "visible", timeout: 15_000 });
    await row.click();
  }

  /**
   * Picks the quick-pick row whose text contains `text`, and checks that the pick was taken (the list may be
   * replaced under the pointer while results arrive; then it tries again).
   */
  async pick(text, timeout = 15_000) {
    const widget = this.page.locator(".quick-input-widget");
    const row = widget.locator(".quick-input-list .monaco-list-row", { hasText: text }).first();
    await row.waitFor({ state: "visible", timeout });
    await waitUntil(timeout, `the quick pick row "${text}" to be taken`, async () => {
      if (!(await widget.isVisible())) return true;
      await row.waitFor({ state: "visible", timeout: 2_000 });
      await row.click({ timeout: 2_000 }).catch(() => undefined);
      await widget.waitFor({ state: "hidden", timeout: 1_000 }).catch(() => undefined);
      return !(await widget.isVisible());
    }, 100);
  }

  /** The toasts currently shown. */
  async toasts() {
    return this.page.locator(".notifications-toasts .notification-toast").allInnerTexts();
  }

  /** The frame of a webview whose page has `selector`. */
  async webviewFrame(selector, timeout = 20_000) {
    return waitUntil(timeout, `a webview with ${selector}`, async () => {
      for (const f of this.page.frames()) {
        try {
          if (await f.$(selector)) return f;
        } catch {
          // detached frame
        }
      }
      return undefined;
    }, 100);
  }

  async screenshot(name) {
    fs.mkdirSync(outDir, { recursive: true });
    const file = path.join(outDir, `${name}.png`);
    await this.page.screenshot({ path: file });
    return file;
  }

  /** Keeps the run's logs under the output folder (called on failure). */
  keepLogs(label = this.name) {
    const dir = path.join(outDir, `logs-${label}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "extension.log"), this.extensionLog());
    fs.writeFileSync(path.join(dir, "code-server.log"), this.codeServerLog());
    fs.writeFileSync(path.join(dir, "daemon.log"), this.daemonLog());
    fs.writeFileSync(path.join(dir, "browser.log"), this.logs.join("\n"));
    return dir;
  }

  async stop() {
    try {
      await this.context?.close();
    } catch {}
    if (this.codeServer && this.codeServer.exitCode === null) {
      try {
        process.kill(-this.codeServer.pid, "SIGTERM");
      } catch {}
      await waitUntil(10_000, "code-server to exit", () => this.codeServer.exitCode !== null || this.codeServer.signalCode !== null).catch(() => {
        try {
          process.kill(-this.codeServer.pid, "SIGKILL");
        } catch {}
      });
    }
    // The daemon was started detached by the extension: stop it (it stops the stack), then make sure.
    const pid = this.daemonPid();
    if (pid) {
      spawnSync(stewardBin, ["daemon", "stop"], { env: this.env, timeout: 60_000 });
      await waitUntil(30_000, "the daemon to exit", () => !alive(pid)).catch(() => {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      });
    }
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
