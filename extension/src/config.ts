// Typed access to the `steward.*` settings (package.json `contributes.configuration` declares them). Every
// read goes through here so that a setting's name and default live in one place besides package.json.

import * as os from "node:os";
import * as vscode from "vscode";
import { resolveHome } from "./logic/connection";
import type { MinSeverity } from "./logic/notices";

export class Config {
  private get cfg(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration("steward");
  }

  /** The `steward` binary: a name on PATH or an absolute path (a leading `~/` is expanded). */
  get binary(): string {
    const p = (this.cfg.get<string>("path") ?? "").trim() || "steward";
    return p.startsWith("~/") ? os.homedir() + p.slice(1) : p;
  }

  /** The daemon's home directory, or undefined when no home directory can be found at all. */
  get home(): string | undefined {
    return resolveHome(this.cfg.get<string>("home") ?? "", process.env, process.platform, os.homedir());
  }

  get autoStartDaemon(): boolean {
    return this.cfg.get<boolean>("autoStartDaemon") ?? true;
  }

  get minSeverity(): MinSeverity {
    const v = this.cfg.get<string>("notifications.minSeverity");
    return v === "warning" || v === "error" || v === "off" ? v : "info";
  }

  get logPageSize(): number {
    const n = this.cfg.get<number>("logs.pageSize") ?? 500;
    return Math.min(5000, Math.max(50, Math.floor(n)));
  }

  /** Settings whose change needs a new connection (another binary or home). */
  static affectsConnection(e: vscode.ConfigurationChangeEvent): boolean {
    return e.affectsConfiguration("steward.path") || e.affectsConfiguration("steward.home");
  }
}
