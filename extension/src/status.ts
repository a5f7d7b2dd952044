// The three status bar items: overall status, IPC score, active profile. Redrawn when the model changes,
// which happens on pushed `steward/event` notifications (no polling).

import * as vscode from "vscode";
import type { Ctx } from "./ctx";
import { disconnectedText } from "./logic/connection";
import { ipcText, ipcTooltip, overallStatus, profileText, statusTooltip, type ProjectView } from "./logic/format";

export class StatusBar implements vscode.Disposable {
  private readonly overall: vscode.StatusBarItem;
  private readonly ipc: vscode.StatusBarItem;
  private readonly profile: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly ctx: Ctx) {
    this.overall = vscode.window.createStatusBarItem("steward.status", vscode.StatusBarAlignment.Left, 50);
    this.overall.name = "Steward: status";
    this.ipc = vscode.window.createStatusBarItem("steward.ipc", vscode.StatusBarAlignment.Left, 49);
    this.ipc.name = "Steward: IPC score";
    this.profile = vscode.window.createStatusBarItem("steward.profile", vscode.StatusBarAlignment.Left, 48);
    this.profile.name = "Steward: profile";
    this.profile.command = "steward.switchProfile";
    this.disposables.push(this.overall, this.ipc, this.profile, ctx.onDidChange(() => this.render()));
    this.render();
  }

  render(): void {
    const s = this.ctx.state;
    const hasStack = this.ctx.workspaceStackFiles.length > 0;
    if (s.kind !== "connected") {
      const { text, tooltip } = disconnectedText(s);
      this.overall.text = text;
      this.overall.tooltip = tooltip;
      this.overall.command = s.kind === "notFound" ? "steward.configurePath" : s.kind === "stopped" ? "steward.startDaemon" : undefined;
      this.overall.backgroundColor =
        s.kind === "notFound" ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
      this.overall.accessibilityInformation = { label: `Steward: ${tooltip}` };
      // Without a stack in this workspace, a missing daemon is nobody's business.
      if (hasStack || s.kind === "notFound") this.overall.show();
      else this.overall.hide();
      this.ipc.hide();
      this.profile.hide();
      return;
    }
    const projects = this.ctx.projects;
    if (projects.length === 0 && !hasStack) {
      this.overall.hide();
      this.ipc.hide();
      this.profile.hide();
      return;
    }
    const o = overallStatus(projects);
    const errors = [...this.ctx.openErrors.values()];
    this.overall.text = errors.length > 0 && projects.length === 0 ? "$(warning) steward.toml has errors" : o.text;
    const md = new vscode.MarkdownString(
      statusTooltip(projects) + (errors.length > 0 ? `\n\n$(warning) ${errors.join("\n\n")}` : ""),
      true,
    );
    md.isTrusted = false;
    this.overall.tooltip = md;
    this.overall.command = "steward.services.focus";
    this.overall.backgroundColor =
      o.severity === "error" ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
    this.overall.accessibilityInformation = { label: `Steward ${o.text.replace(/\$\([^)]*\)\s*/g, "")}` };
    this.overall.show();

    const primary = projects[0] as ProjectView | undefined;
    this.ipc.text = ipcText(this.ctx.model.daemon, primary);
    this.ipc.tooltip = ipcTooltip(this.ctx.model.daemon);
    this.ipc.show();

    this.profile.text = profileText(primary);
    this.profile.tooltip = primary
      ? `Profile of ${primary.name}: ${primary.profile ?? "none (every module)"} — click to switch`
      : "No stack";
    if (primary) this.profile.show();
    else this.profile.hide();
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}
