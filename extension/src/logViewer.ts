// The log viewer: a webview panel per project (and module), live and paged. The webview owns the window
// onto the history (logic/logwindow.ts) and asks for pages; this side only relays its queries and
// subscription to the daemon, with the project fixed, so the page never talks to the daemon itself.

import * as vscode from "vscode";
import { LOGS_QUERY, LOGS_SUBSCRIBE, LOGS_UNSUBSCRIBE, type LogFilter, type LogQueryParams } from "../../protocol/ts/steward-protocol";
import type { Ctx } from "./ctx";
import { escapeHtml, webviewHtml, webviewOptions } from "./webviewHtml";

export interface LogTarget {
  project: string;
  module?: string;
  /** Open with this line (log row id) in view and highlighted. */
  aroundId?: number;
}

/** Messages from the page. */
type FromPage =
  | { type: "ready" }
  | { type: "query"; reqId: number; params: LogQueryParams }
  | { type: "subscribe"; reqId: number; filter: LogFilter };

export class LogViewers implements vscode.Disposable {
  private readonly panels = new Map<string, LogPanel>();
  constructor(private readonly ctx: Ctx) {}

  async open(target: LogTarget): Promise<void> {
    const key = `${target.project}\u0000${target.module ?? ""}`;
    const existing = this.panels.get(key);
    if (existing) {
      existing.reveal(target.aroundId);
      return;
    }
    const panel = new LogPanel(this.ctx, target, () => this.panels.delete(key));
    this.panels.set(key, panel);
  }

  dispose(): void {
    for (const p of [...this.panels.values()]) p.dispose();
  }
}

class LogPanel implements vscode.Disposable {
  private readonly panel: vscode.WebviewPanel;
  private readonly disposables: vscode.Disposable[] = [];
  private subscription: number | undefined;
  private route: vscode.Disposable | undefined;
  private ready = false;
  private disposed = false;

  constructor(
    private readonly ctx: Ctx,
    private readonly target: LogTarget,
    private readonly onDispose: () => void,
  ) {
    const projectName = ctx.model.project(target.project)?.name ?? target.project;
    const title = `Logs: ${target.module ?? projectName}`;
    this.panel = vscode.window.createWebviewPanel("steward.logs", title, vscode.ViewColumn.Active, {
      ...webviewOptions(ctx.extension.extensionUri),
      retainContextWhenHidden: true,
      enableFindWidget: true,
    });
    this.panel.webview.html = webviewHtml(this.panel.webview, ctx.extension.extensionUri, {
      title,
      script: "logs.js",
      style: "logs.css",
      body: `<div id="app" data-title="${escapeHtml(title)}"></div>`,
    });
    this.disposables.push(
      this.panel.onDidDispose(() => this.dispose()),
      this.panel.webview.onDidReceiveMessage((m: FromPage) => void this.onMessage(m)),
      ctx.onDidConnect(() => {
        this.subscription = undefined;
        this.route?.dispose();
        if (this.ready) void this.post({ type: "reconnected" });
      }),
    );
  }

  reveal(aroundId?: number): void {
    this.panel.reveal();
    if (aroundId !== undefined && this.ready) void this.post({ type: "goto", id: aroundId });
  }

  private post(msg: unknown): Thenable<boolean> {
    return this.panel.webview.postMessage(msg);
  }

  private async onMessage(m: FromPage): Promise<void> {
    switch (m.type) {
      case "ready": {
        this.ready = true;
        const p = this.ctx.model.project(this.target.project);
        await this.post({
          type: "init",
          projectName: p?.name ?? this.target.project,
          modules: p?.modules.map((x) => x.name) ?? (this.target.module ? [this.target.module] : []),
          module: this.target.module,
          aroundId: this.target.aroundId,
          pageSize: this.ctx.config.logPageSize,
        });
        return;
      }
      case "query":
        try {
          const res = await this.ctx.request(LOGS_QUERY, { ...m.params, project: this.target.project });
          await this.post({ type: "reply", reqId: m.reqId, lines: res.lines });
        } catch (e) {
          await this.post({ type: "reply", reqId: m.reqId, error: (e as Error).message });
        }
        return;
      case "subscribe":
        try {
          await this.unsubscribe();
          const res = await this.ctx.request(LOGS_SUBSCRIBE, { filter: { ...m.filter, project: this.target.project } });
          this.subscription = res.subscription;
          this.route = this.ctx.routeLogs(res.subscription, (lines) => void this.post({ type: "live", lines }));
          await this.post({ type: "reply", reqId: m.reqId, cursor: res.cursor });
        } catch (e) {
          await this.post({ type: "reply", reqId: m.reqId, error: (e as Error).message });
        }
        return;
    }
  }

  private async unsubscribe(): Promise<void> {
    this.route?.dispose();
    this.route = undefined;
    const sub = this.subscription;
    this.subscription = undefined;
    if (sub !== undefined && this.ctx.client) {
      try {
        await this.ctx.request(LOGS_UNSUBSCRIBE, { subscription: sub });
      } catch {
        // the session may be gone; subscriptions end with it
      }
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    void this.unsubscribe();
    for (const d of this.disposables) d.dispose();
    this.panel.dispose();
    this.onDispose();
  }
}
