// Every command, in one table. Commands that need the daemon get its "not running" variant for free: when
// disconnected they explain why and offer Start / Configure Path instead of failing.

import * as path from "node:path";
import * as vscode from "vscode";
import {
  ERROR_CONFIG_INVALID,
  MEMORY_REMEMBER,
  MODULE_RESTART,
  MODULE_START,
  MODULE_STOP,
  PROFILE_LIST,
  PROFILE_USE,
  PROJECT_DOWN,
  PROJECT_UP,
  type ActionResult,
} from "../../protocol/ts/steward-protocol";
import { type Ctx, NotConnectedError } from "./ctx";
import { formatDuration } from "./logic/format";
import type { Dashboard } from "./dashboard";
import type { LogViewers } from "./logViewer";
import { searchMemory } from "./memorySearch";
import type { Notifier } from "./notify";
import { asModuleArg, pickModule, pickProject } from "./pickers";

/** What commands need besides the context. */
export interface Services {
  logs: LogViewers;
  notifier: Notifier;
  dashboard: Dashboard;
}

interface Command {
  /** Needs a connected daemon (else the "not running" variant runs). */
  daemon: boolean;
  run(ctx: Ctx, s: Services, ...args: unknown[]): unknown;
}

/** Jobs shorter than this end silently; longer ones say they are done. */
const LONG_JOB_MS = 2000;

const COMMANDS: Record<string, Command> = {
  "steward.searchMemory": {
    daemon: true,
    run: (ctx, s) => searchMemory(ctx, (hit) => s.logs.open({ project: hit.project, module: hit.module, aroundId: hit.id })),
  },
  "steward.switchProfile": { daemon: true, run: switchProfile },
  "steward.viewLogs": {
    daemon: true,
    run: async (ctx, s, arg) => {
      const a = asModuleArg(arg);
      if (a.project && !a.module && arg && typeof arg === "object" && !("module" in arg)) {
        await s.logs.open({ project: a.project });
        return;
      }
      const m = await pickModule(ctx, arg, "View Logs");
      if (m) await s.logs.open(m);
    },
  },
  "steward.startModule": { daemon: true, run: (ctx, _s, arg) => moduleAction(ctx, arg, "start") },
  "steward.stopModule": { daemon: true, run: (ctx, _s, arg) => moduleAction(ctx, arg, "stop") },
  "steward.restartModule": { daemon: true, run: (ctx, _s, arg) => moduleAction(ctx, arg, "restart") },
  "steward.up": { daemon: true, run: (ctx, s, arg) => upDown(ctx, s, arg, "up") },
  "steward.down": { daemon: true, run: (ctx, s, arg) => upDown(ctx, s, arg, "down") },
  "steward.rememberSelection": { daemon: true, run: rememberSelection },
  "steward.showDashboard": { daemon: false, run: (_ctx, s) => s.dashboard.showPanel() },
  "steward.openStackFile": { daemon: false, run: openStackFile },
  "steward.startDaemon": { daemon: false, run: (ctx) => ctx.restartConnection("force") },
  "steward.reconnect": { daemon: false, run: (ctx) => ctx.restartConnection(false) },
  "steward.configurePath": {
    daemon: false,
    run: () => vscode.commands.executeCommand("workbench.action.openSettings", "steward.path"),
  },
  "steward.showOutput": { daemon: false, run: (ctx) => ctx.output.show(true) },
  "steward.refresh": { daemon: true, run: (ctx) => ctx.openWorkspaceProjects() },
};

/** Registers the table. */
export function registerCommands(ctx: Ctx, services: Services): void {
  for (const [id, cmd] of Object.entries(COMMANDS)) {
    ctx.pushExt(
      vscode.commands.registerCommand(id, async (...args: unknown[]) => {
        if (cmd.daemon && !ctx.client) {
          if (ctx.state.kind === "connecting") await ctx.connect(false);
          if (!ctx.client) return notRunning(ctx);
        }
        try {
          return await cmd.run(ctx, services, ...args);
        } catch (e) {
          if (e instanceof NotConnectedError) return notRunning(ctx);
          reportError(ctx, id, e);
        }
      }),
    );
  }
}

/** The "daemon not running / not found — Start / Configure path" variant of every daemon command. */
async function notRunning(ctx: Ctx): Promise<void> {
  const s = ctx.state;
  const msg =
    s.kind === "notFound"
      ? `Steward: the steward binary was not found (${s.binary}).`
      : "Steward: the daemon is not running.";
  const actions = s.kind === "notFound" ? ["Configure Path", "Retry"] : ["Start Daemon", "Configure Path"];
  const choice = await vscode.window.showWarningMessage(msg, ...actions);
  if (choice === "Start Daemon" || choice === "Retry") await vscode.commands.executeCommand("steward.startDaemon");
  else if (choice === "Configure Path") await vscode.commands.executeCommand("steward.configurePath");
}

function reportError(ctx: Ctx, command: string, e: unknown): void {
  const err = e as { message?: string; code?: number; data?: { diagnostics?: Array<{ line: number; message: string; file: string }> } };
  let msg = err.message ?? String(e);
  if (err.code === ERROR_CONFIG_INVALID && err.data?.diagnostics?.length) {
    const d = err.data.diagnostics[0];
    msg = `${path.basename(d.file)}:${d.line}: ${d.message}${err.data.diagnostics.length > 1 ? ` (+${err.data.diagnostics.length - 1} more)` : ""}`;
  }
  ctx.output.error(`${command}: ${msg}`);
  void vscode.window.showErrorMessage(`Steward: ${msg}`, "Show Output").then((c) => c && ctx.output.show(true));
}

function describeFailure(r: ActionResult): string {
  if (r.failed) return `${r.failed.module} ${r.failed.state}: ${r.failed.reason}`;
  if (r.timedOut) return "timed out";
  return "did not complete";
}

async function moduleAction(ctx: Ctx, arg: unknown, action: "start" | "stop" | "restart"): Promise<void> {
  const verb = { start: "Start", stop: "Stop", restart: "Restart" }[action];
  const target = await pickModule(ctx, arg, `${verb} Module`);
  if (!target) return;
  const method = ({ start: MODULE_START, stop: MODULE_STOP, restart: MODULE_RESTART } as const)[action];
  const r = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Window, title: `Steward: ${verb.toLowerCase()}ing ${target.module}` },
    () => ctx.request(method, { project: target.project, module: target.module, wait: true, timeoutMs: 60_000 }),
  );
  if (!r.ok) void vscode.window.showErrorMessage(`Steward: ${verb.toLowerCase()} ${target.module}: ${describeFailure(r)}`);
  ctx.refreshSoon(0);
}

async function upDown(ctx: Ctx, s: Services, arg: unknown, which: "up" | "down"): Promise<void> {
  const p = await pickProject(ctx, asModuleArg(arg).project);
  if (!p) return;
  const t0 = Date.now();
  const r = await vscode.window.withProgress(
    {
      location: vscode.ProgressLocation.Notification,
      title: which === "up" ? `Steward: starting ${p.name}…` : `Steward: stopping ${p.name}…`,
    },
    () =>
      which === "up"
        ? ctx.request(PROJECT_UP, { project: p.path, wait: true, timeoutMs: 120_000 })
        : ctx.request(PROJECT_DOWN, { project: p.path, wait: true, timeoutMs: 120_000 }),
  );
  ctx.refreshSoon(0);
  const took = Date.now() - t0;
  if (!r.ok) {
    const choice = await vscode.window.showErrorMessage(
      `Steward: ${which} ${p.name}: ${describeFailure(r)}`,
      ...(r.failed ? ["View Logs"] : []),
    );
    if (choice === "View Logs" && r.failed) await s.logs.open({ project: p.path, module: r.failed.module });
    return;
  }
  if (took >= LONG_JOB_MS) {
    const n = r.project.modules.filter((m) => m.wanted).length;
    s.notifier.jobDone("info", which === "up" ? `${p.name} is up (${n} modules, ${formatDuration(took)})` : `${p.name} is down (${formatDuration(took)})`);
  }
}

async function switchProfile(ctx: Ctx, s: Services, arg: unknown): Promise<void> {
  const p = await pickProject(ctx, asModuleArg(arg).project);
  if (!p) return;
  const list = await ctx.request(PROFILE_LIST, { project: p.path });
  const items: Array<vscode.QuickPickItem & { profile: string | null }> = list.profiles.map((pr) => ({
    label: `${pr.name === list.active ? "$(check) " : ""}${pr.name}`,
    description: pr.modules ? pr.modules.join(", ") : "every module",
    detail: pr.isDefault ? "the stack file's default profile" : undefined,
    profile: pr.name,
  }));
  items.push({ label: `${list.active === undefined ? "$(check) " : ""}(no profile)`, description: "every module, no overrides", profile: null });
  const pick = await vscode.window.showQuickPick(items, { title: `Steward: switch the profile of ${p.name}`, matchOnDescription: true });
  if (!pick || pick.profile === (list.active ?? null)) return;
  const t0 = Date.now();
  const r = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Steward: switching ${p.name} to ${pick.profile ?? "no profile"}…` },
    () => ctx.request(PROFILE_USE, { project: p.path, profile: pick.profile, wait: p.up, timeoutMs: 120_000 }),
  );
  ctx.refreshSoon(0);
  if (!r.ok) void vscode.window.showErrorMessage(`Steward: switch to ${pick.profile}: ${describeFailure(r)}`);
  else if (Date.now() - t0 >= LONG_JOB_MS) s.notifier.jobDone("info", `${p.name} now runs profile ${pick.profile ?? "(none)"}`);
}

async function rememberSelection(ctx: Ctx): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.selection.isEmpty) {
    void vscode.window.showInformationMessage("Steward: select some text to remember first.");
    return;
  }
  const sel = editor.selection;
  const text = editor.document.getText(sel);
  const where = vscode.workspace.asRelativePath(editor.document.uri, false);
  const lines = sel.start.line === sel.end.line ? `${sel.start.line + 1}` : `${sel.start.line + 1}-${sel.end.line + 1}`;
  const project = ctx.projects.length === 1 ? ctx.projects[0].path : undefined;
  const r = await ctx.request(MEMORY_REMEMBER, {
    text: `${text}\n\n— ${where}:${lines}`,
    tags: ["selection"],
    project,
    source: "editor",
  });
  void vscode.window.setStatusBarMessage(`$(bookmark) Steward remembered ${where}:${lines} (note ${r.id})`, 4000);
}

async function openStackFile(ctx: Ctx): Promise<void> {
  const files = new Set([...ctx.workspaceStackFiles, ...ctx.model.projects().map((p) => p.path)]);
  let file: string | undefined;
  if (files.size === 1) file = [...files][0];
  else if (files.size > 1) {
    const pick = await vscode.window.showQuickPick(
      [...files].map((f) => ({ label: vscode.workspace.asRelativePath(f), description: ctx.model.project(f)?.name, file: f })),
      { title: "Steward: open which stack file?" },
    );
    file = pick?.file;
  } else {
    const uris = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { "Stack file": ["toml"] }, title: "Open a Steward stack file" });
    file = uris?.[0]?.fsPath;
    if (file && ctx.client) await ctx.openProject(file);
  }
  if (file) await vscode.window.showTextDocument(vscode.Uri.file(file));
}
