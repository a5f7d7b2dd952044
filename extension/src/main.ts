// Entry point: activate → context. Activation only registers things and returns; connecting to the daemon
// (and loading the language client, most of the bundle) happens afterwards, so activation stays cheap.

import * as vscode from "vscode";
import { registerCommands } from "./commands";
import { Ctx } from "./ctx";
import { Dashboard } from "./dashboard";
import { LogViewers } from "./logViewer";
import { Notifier } from "./notify";
import { StatusBar } from "./status";
import { ServicesTree } from "./tree";

let ctx: Ctx | undefined;

/** When the bundle began and finished evaluating (its first and last statements; see build.mjs). */
declare const __stewardLoadStart: number | undefined;
declare const __stewardLoadEnd: number | undefined;

/**
 * Milliseconds of extension code at activation: evaluating the bundle plus `activate` itself. Written to
 * the Steward output (bench/extension.mjs reads it from there).
 */
export let activationMs = 0;

export function activate(context: vscode.ExtensionContext): { activationMs: number } {
  const t0 = performance.now();
  // (VS Code may call activate() a while after loading the bundle: that wait is not extension code.)
  const loadMs =
    typeof __stewardLoadStart === "number" && typeof __stewardLoadEnd === "number"
      ? __stewardLoadEnd - __stewardLoadStart
      : Number.NaN;
  ctx = new Ctx(context);
  const logs = new LogViewers(ctx);
  const notifier = new Notifier(ctx);
  const dashboard = new Dashboard(ctx);
  ctx.pushExt(logs, notifier, new StatusBar(ctx), new ServicesTree(ctx), dashboard);
  registerCommands(ctx, { logs, notifier, dashboard });
  ctx.watchStackFiles();
  context.subscriptions.push(ctx);
  const activateMs = performance.now() - t0;
  activationMs = activateMs + (Number.isFinite(loadMs) ? loadMs : 0);
  const c = ctx;
  c.output.info(
    `activated in ${activationMs.toFixed(2)} ms (bundle evaluation ${loadMs.toFixed(2)} ms, activate() ${activateMs.toFixed(2)} ms)`,
  );
  // Connect after activation returns.
  setTimeout(() => void c.connect(true), 0);
  return { activationMs };
}

export function deactivate(): void {
  ctx?.dispose();
  ctx = undefined;
}
