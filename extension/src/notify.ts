// Notifications: events → notices (logic/notices.ts) → coalesced batches → VS Code messages with actions.

import * as vscode from "vscode";
import type { Ctx } from "./ctx";
import { Coalescer, NoticeTracker, passes, type Batch, type Severity } from "./logic/notices";

/** How long a burst is collected before it is shown (also the floor of crash → notification latency). */
const WINDOW_MS = 150;
/** The same module's crash is announced at most once per this period. */
const COOLDOWN_MS = 30_000;

export class Notifier implements vscode.Disposable {
  private readonly tracker = new NoticeTracker();
  private readonly coalescer: Coalescer;
  private timer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly ctx: Ctx) {
    this.coalescer = new Coalescer({ windowMs: WINDOW_MS, cooldownMs: COOLDOWN_MS, minSeverity: ctx.config.minSeverity });
    this.disposables.push(
      ctx.onEvent((ev) => {
        const n = this.tracker.onEvent(ev);
        if (!n) return;
        const at = this.coalescer.push(n, Date.now());
        if (at !== undefined) this.timer = setTimeout(() => this.flush(), Math.max(0, at - Date.now()));
      }),
      ctx.onDidConnect(() => this.tracker.reset()),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration("steward.notifications.minSeverity")) this.coalescer.setMinSeverity(ctx.config.minSeverity);
      }),
    );
  }

  private flush(): void {
    this.timer = undefined;
    for (const b of this.coalescer.flush(Date.now())) void this.show(b);
  }

  private async show(b: Batch): Promise<void> {
    this.ctx.output.info(`notification (${b.severity}): ${b.message}`);
    const modules = b.notices.filter((n) => n.module).map((n) => ({ project: n.project, module: n.module as string }));
    const actions: string[] = [];
    if ((b.kind === "crash" || b.kind === "failed" || b.kind === "alert") && modules.length > 0) {
      actions.push("View Logs", modules.length > 1 ? "Restart All" : "Restart");
    }
    if (b.kind === "config") actions.push("Open Stack File");
    const choice = await showMessage(b.severity, `Steward: ${b.message}`, actions);
    switch (choice) {
      case "View Logs":
        await vscode.commands.executeCommand("steward.viewLogs", modules.length === 1 ? modules[0] : { project: modules[0].project });
        break;
      case "Restart":
      case "Restart All":
        for (const m of modules) await vscode.commands.executeCommand("steward.restartModule", m);
        break;
      case "Open Stack File":
        await vscode.window.showTextDocument(vscode.Uri.file(b.notices[0].project));
        break;
    }
  }

  /** A long job (up, down, profile switch) finished: said only when it took a while. */
  jobDone(severity: Severity, message: string): void {
    if (!passes(severity, this.ctx.config.minSeverity)) return;
    void showMessage(severity, `Steward: ${message}`, []);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const d of this.disposables) d.dispose();
  }
}

function showMessage(severity: Severity, message: string, actions: string[]): Thenable<string | undefined> {
  switch (severity) {
    case "error":
      return vscode.window.showErrorMessage(message, ...actions);
    case "warning":
      return vscode.window.showWarningMessage(message, ...actions);
    default:
      return vscode.window.showInformationMessage(message, ...actions);
  }
}
