// The dashboard: the ../webview bundle in VS Code, in two places with one host (`DashboardHost`): the Dashboard
// view of the Steward sidebar, and an editor panel (Steward: Show Dashboard). The page talks to the daemon only
// through this relay (its VsCodeBridge): a fixed set of read methods and module actions on this window's
// projects, plus pushed `steward/event`s. It is a local page under a strict CSP.

import * as vscode from "vscode";
import type { Ctx } from "./ctx";
import { RELAYED, type FromHost, type ToHost } from "../../webview/src/bridge";
import { webviewHtml, webviewOptions } from "./webviewHtml";

/** Serves the bundle in one webview (a view's or a panel's) and relays its requests; disposed with it. */
class DashboardHost implements vscode.Disposable {
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly ctx: Ctx,
    private readonly webview: vscode.Webview,
    private readonly visible: () => boolean,
  ) {
    webview.options = webviewOptions(ctx.extension.extensionUri);
    webview.html = webviewHtml(webview, ctx.extension.extensionUri, {
      title: "Steward Dashboard",
      script: "dashboard.js",
      style: "dashboard.css",
      styleInOut: true,
      body: `<main id="app" aria-live="polite"></main>`,
    });
    this.disposables.push(
      webview.onDidReceiveMessage((m: ToHost) => void this.onMessage(m)),
      ctx.onDidChange(() => this.send({ type: "notification", method: "steward/status/changed", params: null })),
    );
  }

  private send(m: FromHost): void {
    if (this.visible()) void this.webview.postMessage(m);
  }

  private async onMessage(m: ToHost): Promise<void> {
    if (m.type === "action") {
      const args = m.args ?? {};
      if (m.name === "logs") void vscode.commands.executeCommand("steward.viewLogs", { project: args.project, module: args.module });
      else if (m.name === "search") void vscode.commands.executeCommand("steward.searchMemory");
      return;
    }
    if (m.type !== "request") return;
    const reply = (r: { result?: unknown; error?: string }) => void this.webview.postMessage({ type: "response", id: m.id, ...r });
    if (!(RELAYED as readonly string[]).includes(m.method)) return reply({ error: `not relayed: ${m.method}` });
    // Module actions only on this window's projects.
    const project = (m.params as { project?: string } | null)?.project;
    if (m.method.startsWith("steward/module/") && !this.ctx.projects.some((p) => p.path === project)) {
      return reply({ error: "not a project of this window" });
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const result = await this.ctx.request(m.method, m.params as any);
      reply({ result });
    } catch (e) {
      reply({ error: (e as Error).message });
    }
  }

  dispose(): void {
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

/** The sidebar's Dashboard view, and the editor panel that Steward: Show Dashboard opens (one at a time). */
export class Dashboard implements vscode.WebviewViewProvider, vscode.Disposable {
  private viewHost: DashboardHost | undefined;
  private panel: vscode.WebviewPanel | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly ctx: Ctx) {
    this.disposables.push(vscode.window.registerWebviewViewProvider("steward.dashboard", this));
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.viewHost?.dispose();
    const host = new DashboardHost(this.ctx, view.webview, () => view.visible);
    this.viewHost = host;
    view.onDidDispose(() => {
      host.dispose();
      if (this.viewHost === host) this.viewHost = undefined;
    });
  }

  /** Opens the dashboard in an editor panel, or brings the open one forward. */
  showPanel(): void {
    if (this.panel) {
      this.panel.reveal();
      return;
    }
    const panel = vscode.window.createWebviewPanel("steward.dashboardPanel", "Steward Dashboard", vscode.ViewColumn.Active, {
      ...webviewOptions(this.ctx.extension.extensionUri),
    });
    panel.iconPath = vscode.Uri.joinPath(this.ctx.extension.extensionUri, "media", "steward.svg");
    const host = new DashboardHost(this.ctx, panel.webview, () => panel.visible);
    this.panel = panel;
    panel.onDidDispose(() => {
      host.dispose();
      this.panel = undefined;
    });
  }

  dispose(): void {
    this.viewHost?.dispose();
    this.panel?.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
