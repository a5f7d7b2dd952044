// Quick picks shared by commands: which project, which module, which profile.

import * as vscode from "vscode";
import type { ProjectStatus } from "../../protocol/ts/steward-protocol";
import type { Ctx } from "./ctx";
import { moduleDescription, stateIcon } from "./logic/format";

/** A command argument naming a module (code lenses, tree items, notifications pass this). */
export interface ModuleArg {
  project: string;
  module: string;
}

/** Accepts `{project, module}`-shaped arguments; anything else (a URI from a menu, nothing) is ignored. */
export function asModuleArg(a: unknown): Partial<ModuleArg> {
  if (a && typeof a === "object") {
    const o = a as Record<string, unknown>;
    return {
      project: typeof o.project === "string" ? o.project : undefined,
      module: typeof o.module === "string" ? o.module : undefined,
    };
  }
  return {};
}

/** The project an action is about: given, the only one, or picked. Undefined when cancelled or none. */
export async function pickProject(ctx: Ctx, given?: string): Promise<ProjectStatus | undefined> {
  const projects = ctx.projects;
  if (given) {
    const p = ctx.model.project(given) ?? projects.find((x) => x.name === given);
    if (p) return p;
    // A stack file path not open yet (a code lens in a file the daemon has not opened): open it.
    if (given.endsWith(".toml")) return ctx.openProject(given);
  }
  if (projects.length === 0) {
    void vscode.window.showWarningMessage("Steward: no stack is open. Open a steward.toml first.", "Open Stack File").then(
      (c) => c && vscode.commands.executeCommand("steward.openStackFile"),
    );
    return undefined;
  }
  if (projects.length === 1) return projects[0];
  const pick = await vscode.window.showQuickPick(
    projects.map((p) => ({ label: p.name, description: p.profile ?? "", detail: p.path, project: p })),
    { title: "Steward: which stack?", matchOnDetail: true },
  );
  return pick?.project;
}

/** The module an action is about: given, or picked from the project's modules. */
export async function pickModule(ctx: Ctx, arg: unknown, title: string): Promise<ModuleArg | undefined> {
  const a = asModuleArg(arg);
  const p = await pickProject(ctx, a.project);
  if (!p) return undefined;
  if (a.module) return { project: p.path, module: a.module };
  const now = Date.now();
  const pick = await vscode.window.showQuickPick(
    p.modules.map((m) => ({
      label: `$(${stateIcon(m).icon}) ${m.name}`,
      description: moduleDescription(m, ctx.model.stateFor(p.path, m, now) - m.stateForMs),
      module: m.name,
    })),
    { title: `Steward: ${title} — which module of ${p.name}?`, matchOnDescription: true },
  );
  return pick ? { project: p.path, module: pick.module } : undefined;
}
