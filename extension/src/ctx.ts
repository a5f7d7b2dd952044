// The extension's context: everything that lives as long as the extension (views, status bar, notifier,
// model), and the *client*, which lives as long as one connection to the daemon. Connections come and go
// (the daemon is stopped, restarted, upgraded); the extension stays, shows why it is disconnected, and
// reconnects with backoff. Mirrors rust-analyzer's ctx.ts: separate cleanups for the extension and the
// client.

import * as fs from "node:fs";
import type * as net from "node:net";
import * as vscode from "vscode";
import type { LanguageClient } from "vscode-languageclient/node";
import {
  EVENT,
  IPC,
  LOGS_APPEND,
  PROJECT_OPEN,
  STATUS,
  type EventParams,
  type LogEntry,
  type ProjectStatus,
  type Requests,
} from "../../protocol/ts/steward-protocol";
import { Config } from "./config";
import { type ConnectionState, reconnectDelay, socketPath } from "./logic/connection";
import { StackModel } from "./logic/model";

type ClientModule = typeof import("./client");

/** What one connection owns; disposed together when the connection ends. */
interface ClientSession {
  client: LanguageClient;
  socket: net.Socket;
  disposables: vscode.Disposable[];
}

/** Thrown by `ctx.request` when there is no connection. */
export class NotConnectedError extends Error {
  constructor(readonly state: ConnectionState) {
    super("the Steward daemon is not connected");
  }
}

export class Ctx implements vscode.Disposable {
  readonly config = new Config();
  readonly model = new StackModel();
  readonly output: vscode.LogOutputChannel;

  private readonly extensionDisposables: vscode.Disposable[] = [];
  private session: ClientSession | undefined;
  private connectionState: ConnectionState = { kind: "connecting" };
  private connecting: Promise<void> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectAttempt = 0;
  private refreshTimer: NodeJS.Timeout | undefined;
  private disposed = false;
  private clientModule: ClientModule | undefined;
  /** Realpaths of the workspace's stack files (the projects this window is about). */
  private stackFiles = new Set<string>();
  /** Errors opening a workspace stack file, by path (shown in the tree and tooltips). */
  readonly openErrors = new Map<string, string>();
  private readonly logSinks = new Map<number, (lines: LogEntry[]) => void>();

  private readonly changed = new vscode.EventEmitter<void>();
  /** The model or the connection changed: redraw. */
  readonly onDidChange = this.changed.event;
  private readonly events = new vscode.EventEmitter<EventParams>();
  /** Every `steward/event`, after the model applied it. */
  readonly onEvent = this.events.event;
  private readonly connected = new vscode.EventEmitter<void>();
  /** A (new) connection is ready: log viewers resubscribe. */
  readonly onDidConnect = this.connected.event;

  constructor(readonly extension: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel("Steward", { log: true });
    this.pushExt(this.output, this.changed, this.events, this.connected);
    this.pushExt(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (Config.affectsConnection(e)) {
          this.output.info("steward.path or steward.home changed: reconnecting");
          void this.restartConnection(true);
        }
      }),
    );
    void vscode.commands.executeCommand("setContext", "steward.connection", "connecting");
  }

  /** Registers something to dispose when the extension deactivates. */
  pushExt(...d: vscode.Disposable[]): void {
    this.extensionDisposables.push(...d);
  }

  get state(): ConnectionState {
    return this.connectionState;
  }

  get client(): LanguageClient | undefined {
    return this.session?.client;
  }

  /**
   * The projects this window shows: the workspace's stack files when it has any (even when one failed to
   * open: then the status bar shows its error, not some other stack), else every open project.
   */
  get projects(): ProjectStatus[] {
    return this.stackFiles.size > 0 ? this.model.projects(this.stackFiles) : this.model.projects();
  }

  get workspaceStackFiles(): string[] {
    return [...this.stackFiles];
  }

  /** A typed `steward/*` request; throws `NotConnectedError` when disconnected. */
  async request<M extends keyof Requests>(
    method: M,
    params: Requests[M]["params"],
    token?: vscode.CancellationToken,
  ): Promise<Requests[M]["result"]> {
    const s = this.session;
    if (!s || !this.clientModule) throw new NotConnectedError(this.connectionState);
    return this.clientModule.request(s.client, method, params, token);
  }

  /** Routes `steward/logs/append` for `subscription` to `sink` until the returned disposable is disposed. */
  routeLogs(subscription: number, sink: (lines: LogEntry[]) => void): vscode.Disposable {
    this.logSinks.set(subscription, sink);
    return new vscode.Disposable(() => this.logSinks.delete(subscription));
  }

  /**
   * Connects. `allowStart`: start the daemon when none answers and the workspace has a stack file (and
   * `steward.autoStartDaemon` is on); `"force"`: start it in any case (the Start Daemon command). Concurrent
   * calls share one attempt.
   */
  connect(allowStart: boolean | "force"): Promise<void> {
    if (this.session) return Promise.resolve();
    if (!this.connecting) {
      this.connecting = this.doConnect(allowStart).finally(() => {
        this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  /** Drops the current connection (if any) and connects again. */
  async restartConnection(allowStart: boolean | "force"): Promise<void> {
    this.clearReconnect();
    await this.stopSession();
    this.reconnectAttempt = 0;
    await this.connect(allowStart);
  }

  private setState(s: ConnectionState): void {
    this.connectionState = s;
    void vscode.commands.executeCommand("setContext", "steward.connection", s.kind);
    this.changed.fire();
  }

  private async doConnect(allowStart: boolean | "force"): Promise<void> {
    if (this.disposed) return;
    this.clearReconnect();
    const home = this.config.home;
    if (!home) {
      this.setState({ kind: "stopped", detail: "No home directory: set steward.home or STEWARD_HOME." });
      return;
    }
    this.setState({ kind: "connecting" });
    // Loaded on first use: the language client is most of the code and activation must stay cheap. It is a
    // separate file (out/client.js; build.mjs keeps it out of out/main.js), so `require`, not `import`.
    const m = (this.clientModule ??= require("./client") as ClientModule);
    const sock = socketPath(home);
    let socket: net.Socket;
    try {
      socket = await m.connectSocket(sock);
    } catch (e0) {
      const e = e0 as { kind?: string; detail?: string };
      const wantStart =
        allowStart === "force" || (allowStart && this.config.autoStartDaemon && (await this.hasStackFiles()));
      if (e.kind !== "notRunning" || !wantStart) {
        this.output.info(`not connected: ${e.detail ?? String(e0)}`);
        this.scheduleReconnect(e.detail);
        return;
      }
      const started = await this.startDaemon(m, home, sock);
      if (!started) return;
      socket = started;
    }
    await this.startSession(m, socket);
  }

  /** Starts the daemon and waits (≤ 15 s) for its socket. Sets the state and returns undefined on failure. */
  private async startDaemon(m: ClientModule, home: string, sock: string): Promise<net.Socket | undefined> {
    const binary = this.config.binary;
    this.output.info(`starting the daemon: ${binary} daemon (STEWARD_HOME=${home})`);
    let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
    try {
      ({ exited } = await m.spawnDaemon(binary, home));
    } catch (e0) {
      const e = e0 as { kind: string; detail: string };
      this.output.error(`could not start ${binary}: ${e.detail}`);
      if (e.kind === "notFound") this.setState({ kind: "notFound", binary, detail: e.detail });
      else this.setState({ kind: "stopped", detail: `Could not start ${binary}: ${e.detail}` });
      return undefined;
    }
    let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    void exited.then((x) => (ended = x));
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        return await m.connectSocket(sock);
      } catch {
        // not yet
      }
      // A daemon that exited 1 lost a start race to another one: keep trying the socket until the deadline.
      if (Date.now() > deadline || (ended && ended.code !== 1 && ended.code !== 0)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const tail = m.daemonOutTail(home);
    const detail = `${binary} daemon did not answer on ${sock}${ended ? ` (it exited: ${ended.code ?? ended.signal})` : ""}${tail ? `:\n${tail}` : ""}`;
    this.output.error(detail);
    this.setState({ kind: "stopped", detail });
    return undefined;
  }

  private async startSession(m: ClientModule, socket: net.Socket): Promise<void> {
    const disposables: vscode.Disposable[] = [];
    const session: ClientSession = {
      socket,
      disposables,
      client: m.createClient(socket, this.output, () => this.onClosed(session)),
    };
    this.session = session;
    disposables.push(
      m.onNotification(session.client, EVENT, (ev) => this.handleEvent(ev)),
      m.onNotification(session.client, LOGS_APPEND, (p) => this.logSinks.get(p.subscription)?.(p.lines)),
      m.onNotification(session.client, IPC, (ipc) => {
        if (this.model.applyIpc(ipc)) this.changed.fire();
      }),
    );
    try {
      await session.client.start();
      const status = await m.request(session.client, STATUS, {});
      this.model.setStatus(status, Date.now());
      this.reconnectAttempt = 0;
      this.output.info(`connected to steward ${status.version} (daemon pid ${status.pid}, home ${status.home})`);
      this.setState({ kind: "connected", version: status.version, pid: status.pid });
      await this.openWorkspaceProjects();
      this.connected.fire();
    } catch (e) {
      this.output.error(`the daemon did not complete the handshake: ${(e as Error).message}`);
      if (this.session === session) {
        await this.stopSession();
        this.scheduleReconnect((e as Error).message);
      }
    }
  }

  private onClosed(session: ClientSession): void {
    if (this.session !== session || this.disposed) return;
    this.output.warn("the connection to the daemon closed");
    this.session = undefined;
    // Dispose after the library's close handling has finished (it then is stopped and sends nothing).
    setTimeout(() => this.disposeSession(session), 0);
    this.model.clear();
    this.scheduleReconnect("The connection to the daemon closed.");
  }

  private scheduleReconnect(detail?: string): void {
    if (this.disposed) return;
    this.clearReconnect();
    const delay = reconnectDelay(this.reconnectAttempt++, Math.random());
    this.setState({ kind: "stopped", detail, retryInMs: delay });
    this.reconnectTimer = setTimeout(() => void this.connect(false), delay);
  }

  private clearReconnect(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }

  private async stopSession(): Promise<void> {
    const s = this.session;
    if (!s) return;
    this.session = undefined;
    this.model.clear();
    try {
      await s.client.stop(2000);
    } catch {
      // the connection may be gone already
    }
    this.disposeSession(s);
  }

  private disposeSession(s: ClientSession): void {
    for (const d of s.disposables) d.dispose();
    s.disposables.length = 0;
    s.socket.destroy();
    void s.client.dispose().catch(() => undefined);
    this.changed.fire();
  }

  private handleEvent(ev: EventParams): void {
    const out = this.model.applyEvent(ev, Date.now());
    if (out.changed) this.changed.fire();
    if (out.refresh) this.refreshSoon();
    this.events.fire(ev);
  }

  /** Re-reads `steward/status` shortly (bursts of events cost one request). */
  refreshSoon(delayMs = 150): void {
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      void this.refresh();
    }, delayMs);
  }

  async refresh(): Promise<void> {
    if (!this.session) return;
    try {
      const status = await this.request(STATUS, {});
      this.model.setStatus(status, Date.now());
      this.changed.fire();
    } catch (e) {
      if (!(e instanceof NotConnectedError)) this.output.warn(`steward/status failed: ${(e as Error).message}`);
    }
  }

  /** Finds the workspace's stack files (`steward.toml`, up to 20). */
  async findStackFiles(): Promise<string[]> {
    if (!vscode.workspace.workspaceFolders?.length) return [];
    const uris = await vscode.workspace.findFiles("**/steward.toml", "**/{node_modules,target,.git}/**", 20);
    const paths = uris.map((u) => realpath(u.fsPath)).sort();
    this.stackFiles = new Set(paths);
    void vscode.commands.executeCommand("setContext", "steward.hasStack", paths.length > 0);
    return paths;
  }

  private async hasStackFiles(): Promise<boolean> {
    return (await this.findStackFiles()).length > 0;
  }

  /** Opens every workspace stack file in the daemon (idempotent: an open project is returned as is). */
  async openWorkspaceProjects(): Promise<void> {
    const files = await this.findStackFiles();
    for (const path of files) await this.openProject(path);
    await this.refresh();
  }

  /** Opens one stack file in the daemon, with this window's environment for `${VAR}` (as the CLI does). */
  async openProject(path: string): Promise<ProjectStatus | undefined> {
    try {
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
      const p = await this.request(PROJECT_OPEN, { path, env });
      this.openErrors.delete(path);
      this.stackFiles.add(p.path);
      return p;
    } catch (e) {
      const err = e as { message?: string; data?: { diagnostics?: Array<{ line: number; message: string }> } };
      const first = err.data?.diagnostics?.[0];
      const msg = first ? `line ${first.line}: ${first.message}` : (err.message ?? String(e));
      this.openErrors.set(path, msg);
      this.output.warn(`could not open ${path}: ${msg}`);
      this.changed.fire();
      return undefined;
    }
  }

  /** Watches for stack files appearing in the workspace. */
  watchStackFiles(): void {
    const w = vscode.workspace.createFileSystemWatcher("**/steward.toml", false, true, false);
    this.pushExt(
      w,
      w.onDidCreate(async (u) => {
        await this.findStackFiles();
        if (this.session) await this.openProject(realpath(u.fsPath));
        else await this.connect(true);
        await this.refresh();
      }),
      w.onDidDelete(() => void this.findStackFiles().then(() => this.changed.fire())),
    );
  }

  dispose(): void {
    this.disposed = true;
    this.clearReconnect();
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    void this.stopSession();
    for (const d of this.extensionDisposables.splice(0).reverse()) d.dispose();
  }
}

function realpath(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return p;
  }
}
