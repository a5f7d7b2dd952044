// The Dashboard view: a webview in the Steward sidebar. For now it shows live module states (the dashboard
// issue fills it with metrics); it is already a local page under a strict CSP, fed by messages from here.

import * as vscode from "vscode";
import type { Ctx } from "./ctx";
import { overallStatus, stateLabel } from "./logic/format";
import { webviewHtml, webviewOptions } from "./webviewHtml";

export class DashboardView implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly ctx: Ctx) {
    this.disposables.push(
      vscode.window.registerWebviewViewProvider("steward.dashboard", this),
      ctx.onDidChange(() => this.push()),
    );
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = webviewOptions(this.ctx.extension.extensionUri);
    view.webview.html = webviewHtml(view.webview, this.ctx.extension.extensionUri, {
      title: "Steward Dashboard",
      script: "dashboard.js",
      style: "dashboard.css",
      body: `<main id="app" aria-live="polite"></main>`,
    });
    this.disposables.push(
      view.webview.onDidReceiveMessage((m: { type: string; project?: string; module?: string }) => {
        if (m.type === "ready") this.push();
        else if (m.type === "logs" && m.project) void vscode.commands.executeCommand("steward.viewLogs", { project: m.project, module: m.module });
      }),
      view.onDidChangeVisibility(() => view.visible && this.push()),
      view.onDidDispose(() => (this.view = undefined)),
    );
  }

  /** Sends the current state; the page redraws from it. */
  private push(): void {
    if (!this.view?.visible) return;
    const projects = this.ctx.projects;
    void this.view.webview.postMessage({
      type: "state",
      connection: this.ctx.state.kind,
      overall: overallStatus(projects).text.replace(/\$\([^)]*\)\s*/g, ""),
      projects: projects.map((p) => ({
        path: p.path,
        name: p.name,
        profile: p.profile ?? null,
        up: p.up,
        modules: p.modules.map((m) => ({ name: m.name, state: m.state, label: stateLabel(m), restarts: m.restarts, health: m.health ?? null })),
      })),
    });
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
