// The Dashboard view: the ../webview bundle in the Steward sidebar. The page talks to the daemon only through
// this relay (its VsCodeBridge): a fixed set of read methods and module actions on this window's projects,
// plus pushed `steward/event`s. It is a local page under a strict CSP.

import * as vscode from "vscode";
import type { Ctx } from "./ctx";
import { RELAYED, type FromHost, type ToHost } from "../../webview/src/bridge";
import { webviewHtml, webviewOptions } from "./webviewHtml";

export class DashboardView implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly ctx: Ctx) {
    this.disposables.push(
      vscode.window.registerWebviewViewProvider("steward.dashboard", this),
      ctx.onDidChange(() => this.send({ type: "notification", method: "steward/status/changed", params: null })),
    );
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = webviewOptions(this.ctx.extension.extensionUri);
    view.webview.html = webviewHtml(view.webview, this.ctx.extension.extensionUri, {
      title: "Steward Dashboard",
      script: "dashboard.js",
      style: "dashboard.css",
      styleInOut: true,
      body: `<main id="app" aria-live="polite"></main>`,
    });
    this.disposables.push(
      view.webview.onDidReceiveMessage((m: ToHost) => void this.onMessage(m)),
      view.onDidDispose(() => (this.view = undefined)),
    );
  }

  private send(m: FromHost): void {
    if (this.view?.visible) void this.view.webview.postMessage(m);
  }

  private async onMessage(m: ToHost): Promise<void> {
    if (m.type === "action") {
      const args = m.args ?? {};
      if (m.name === "logs") void vscode.commands.executeCommand("steward.viewLogs", { project: args.project, module: args.module });
      else if (m.name === "search") void vscode.commands.executeCommand("steward.searchMemory");
      return;
    }
    if (m.type !== "request") return;
    const reply = (r: { result?: unknown; error?: string }) => this.view && void this.view.webview.postMessage({ type: "response", id: m.id, ...r });
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
    for (const d of this.disposables) d.dispose();
  }
}
