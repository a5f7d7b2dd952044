// The Services view: projects and their modules with state icon, uptime, restarts and (when the daemon
// reports them) CPU and memory. Items carry `{project, module}` so the inline and context-menu actions call
// the same commands as the palette and the code lenses.

import * as vscode from "vscode";
import type { Ctx } from "./ctx";
import {
  formatDuration,
  healthLabel,
  moduleContext,
  moduleDescription,
  stateIcon,
  stateLabel,
  type ModuleView,
} from "./logic/format";

export interface ProjectNode {
  type: "project";
  project: string;
}
export interface ModuleNode {
  type: "module";
  project: string;
  module: string;
}
export type Node = ProjectNode | ModuleNode;

export class ServicesTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  readonly view: vscode.TreeView<Node>;
  private readonly disposables: vscode.Disposable[] = [];
  private ticker: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: Ctx) {
    this.view = vscode.window.createTreeView("steward.services", { treeDataProvider: this, showCollapseAll: false });
    this.disposables.push(
      this.view,
      this.emitter,
      ctx.onDidChange(() => this.emitter.fire(undefined)),
      this.view.onDidChangeVisibility(() => this.tick()),
    );
    this.tick();
  }

  /** Uptimes advance while the view is visible: redraw from the model every 10 s (no request is made). */
  private tick(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
    if (this.view.visible) this.ticker = setInterval(() => this.emitter.fire(undefined), 10_000);
  }

  getChildren(node?: Node): Node[] {
    if (this.ctx.state.kind !== "connected") return []; // the welcome view explains why
    const projects = this.ctx.projects;
    if (!node) {
      if (projects.length === 1) return projects[0].modules.map((m) => ({ type: "module", project: projects[0].path, module: m.name }));
      return projects.map((p) => ({ type: "project", project: p.path }));
    }
    if (node.type === "project") {
      const p = this.ctx.model.project(node.project);
      return p ? p.modules.map((m) => ({ type: "module", project: p.path, module: m.name })) : [];
    }
    return [];
  }

  getTreeItem(node: Node): vscode.TreeItem {
    const p = this.ctx.model.project(node.project);
    if (node.type === "project") {
      const item = new vscode.TreeItem(p?.name ?? node.project, vscode.TreeItemCollapsibleState.Expanded);
      item.id = `project:${node.project}`;
      item.description = p ? `${p.profile ?? "all modules"} · ${p.up ? "up" : "down"}` : "";
      item.tooltip = node.project;
      item.iconPath = new vscode.ThemeIcon("layers");
      item.contextValue = "project";
      return item;
    }
    const m = p?.modules.find((x) => x.name === node.module) as ModuleView | undefined;
    const item = new vscode.TreeItem(node.module, vscode.TreeItemCollapsibleState.None);
    item.id = `module:${node.project}:${node.module}`;
    if (!m) return item;
    const elapsed = this.ctx.model.stateFor(node.project, m, Date.now()) - m.stateForMs;
    item.description = moduleDescription(m, elapsed);
    const icon = stateIcon(m);
    item.iconPath = new vscode.ThemeIcon(icon.icon, icon.color ? new vscode.ThemeColor(icon.color) : undefined);
    item.contextValue = moduleContext(m);
    const tip = new vscode.MarkdownString(undefined, true);
    tip.appendMarkdown(`**${node.module}** — ${stateLabel(m)}`);
    if (m.state === "running") tip.appendMarkdown(` (${healthLabel(m.health)})`);
    tip.appendMarkdown(`\n\n`);
    if (m.pid !== undefined) tip.appendMarkdown(`pid ${m.pid}, run ${m.run ?? "?"}  \n`);
    tip.appendMarkdown(`in this state for ${formatDuration(m.stateForMs + elapsed)}  \n`);
    tip.appendMarkdown(`restarts: ${m.restarts}  \n`);
    if (m.lastExit) tip.appendText(`last exit: ${m.lastExit}\n`);
    if (m.reason) tip.appendText(`reason: ${m.reason}\n`);
    if (m.waitingFor?.length) tip.appendText(`waiting for: ${m.waitingFor.join(", ")}\n`);
    item.tooltip = tip;
    item.accessibilityInformation = { label: `${node.module}, ${item.description}` };
    item.command = { command: "steward.viewLogs", title: "View Logs", arguments: [{ project: node.project, module: node.module }] };
    return item;
  }

  getParent(node: Node): Node | undefined {
    if (node.type === "module" && this.ctx.projects.length > 1) return { type: "project", project: node.project };
    return undefined;
  }

  dispose(): void {
    if (this.ticker) clearInterval(this.ticker);
    for (const d of this.disposables) d.dispose();
  }
}
