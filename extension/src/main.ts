// Entry point: activate → context. Activation only registers things and returns; connecting to the daemon
// (and loading the language client, most of the bundle) happens afterwards, so activation stays cheap.

import * as vscode from "vscode";
import { registerCommands } from "./commands";
import { Ctx } from "./ctx";
import { DashboardView } from "./dashboard";
import { LogViewers } from "./logViewer";
import { Notifier } from "./notify";
import { StatusBar } from "./status";
import { ServicesTree } from "./tree";

let ctx: Ctx | undefined;

/** Milliseconds spent in `activate` (extension code only), reported in the output and used by bench/. */
export let activationMs = 0;

export function activate(context: vscode.ExtensionContext): { activationMs: number } {
  const t0 = performance.now();
  ctx = new Ctx(context);
  const logs = new LogViewers(ctx);
  const notifier = new Notifier(ctx);
  ctx.pushExt(logs, notifier, new StatusBar(ctx), new ServicesTree(ctx), new DashboardView(ctx));
  registerCommands(ctx, { logs, notifier });
  ctx.watchStackFiles();
  context.subscriptions.push(ctx);
  activationMs = performance.now() - t0;
  const c = ctx;
  c.output.info(`activated in ${activationMs.toFixed(2)} ms`);
  // Connect after activation returns.
  setTimeout(() => void c.connect(true), 0);
  return { activationMs };
}

export function deactivate(): void {
  ctx?.dispose();
  ctx = undefined;
}
