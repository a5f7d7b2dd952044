// Steward: Search Memory — a quick pick that queries the daemon as you type (debounced; a newer query
// cancels the one in flight), over notes, events and logs. A log hit opens the log viewer at that line; a
// note or event opens its text.

import * as vscode from "vscode";
import { EVENTS_QUERY, MEMORY_NOTE, MEMORY_SEARCH, type MemoryHit } from "../../protocol/ts/steward-protocol";
import type { Ctx } from "./ctx";
import { formatAgo, parseSnippet } from "./logic/format";

const DEBOUNCE_MS = 120;

interface HitItem extends vscode.QuickPickItem {
  hit?: MemoryHit;
}

const KIND_ICON: Record<MemoryHit["kind"], string> = { log: "output", event: "pulse", note: "note" };

export function searchMemory(ctx: Ctx, onOpenLog: (hit: MemoryHit) => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const qp = vscode.window.createQuickPick<HitItem>();
    qp.title = "Steward: Search Memory";
    qp.placeholder = "Search logs, events and notes (words, \"phrases\", prefix*) — empty shows the latest";
    qp.matchOnDescription = false;
    qp.matchOnDetail = false;
    let seq = 0;
    let timer: NodeJS.Timeout | undefined;
    let inflight: vscode.CancellationTokenSource | undefined;
    const projectNames = new Map(ctx.model.projects().map((p) => [p.path, p.name]));

    const run = async (query: string) => {
      const mine = ++seq;
      inflight?.cancel();
      inflight?.dispose();
      const cts = new vscode.CancellationTokenSource();
      inflight = cts;
      qp.busy = true;
      try {
        const res = await ctx.request(MEMORY_SEARCH, { query, limit: 50 }, cts.token);
        if (mine !== seq) return; // a newer query owns the list
        const now = Date.now();
        qp.items =
          res.hits.length === 0
            ? [{ label: "$(info) Nothing found", alwaysShow: true, description: query ? `for “${query}”` : "" }]
            : res.hits.map((hit) => toItem(hit, now, projectNames));
      } catch (e) {
        if (mine !== seq || cts.token.isCancellationRequested) return;
        qp.items = [{ label: `$(error) ${(e as Error).message}`, alwaysShow: true }];
      } finally {
        if (mine === seq) qp.busy = false;
      }
    };

    qp.onDidChangeValue((v) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => void run(v.trim()), DEBOUNCE_MS);
    });
    qp.onDidAccept(async () => {
      const hit = qp.selectedItems[0]?.hit;
      if (!hit) return;
      qp.hide();
      if (hit.kind === "log") await onOpenLog(hit);
      else await openText(ctx, hit, projectNames);
    });
    qp.onDidHide(() => {
      if (timer) clearTimeout(timer);
      inflight?.cancel();
      inflight?.dispose();
      qp.dispose();
      resolve();
    });
    qp.show();
    void run("");
  });
}

function toItem(hit: MemoryHit, now: number, names: Map<string, string>): HitItem {
  const { text } = parseSnippet(hit.snippet);
  const who = hit.module ?? names.get(hit.project) ?? "";
  return {
    // alwaysShow: the daemon already ranked and filtered (stemming, prefixes); the quick pick must not re-filter.
    alwaysShow: true,
    label: `$(${KIND_ICON[hit.kind]}) ${who ? `${who}: ` : ""}${text.slice(0, 200)}`,
    description: `${hit.kind}${hit.level ? ` · ${hit.level}` : ""} · ${formatAgo(hit.tsMs, now)}`,
    detail: hit.project ? (names.get(hit.project) ?? hit.project) : undefined,
    hit,
  };
}

/** Opens a note's or event's whole text (fetched by id; the hit has only a snippet) in an untitled document. */
async function openText(ctx: Ctx, hit: MemoryHit, names: Map<string, string>): Promise<void> {
  let body = parseSnippet(hit.snippet).text;
  const meta: string[] = [];
  try {
    if (hit.kind === "note") {
      const { note } = await ctx.request(MEMORY_NOTE, { id: hit.id });
      if (note) {
        body = note.text;
        if (note.tags.length) meta.push(`Tags: ${note.tags.join(", ")}`);
        meta.push(`Source: ${note.source}`);
      }
    } else {
      const { events } = await ctx.request(EVENTS_QUERY, { project: hit.project || undefined, beforeId: hit.id + 1, limit: 1 });
      const e = events.find((x) => x.id === hit.id);
      if (e) {
        body = `${e.text}\n\n${JSON.stringify(e.payload, null, 2)}`;
        meta.push(`Kind: ${e.kind}, level ${e.level}`);
      }
    }
  } catch (e) {
    ctx.output.warn(`could not fetch ${hit.kind} ${hit.id}: ${(e as Error).message}; showing the snippet`);
  }
  const header = [
    `${hit.kind === "note" ? "Note" : "Event"} #${hit.id} — ${new Date(hit.tsMs).toLocaleString()}`,
    hit.project ? `Project: ${names.get(hit.project) ?? hit.project}` : undefined,
    hit.module ? `Module: ${hit.module}` : undefined,
    ...meta,
  ].filter(Boolean);
  const doc = await vscode.workspace.openTextDocument({ content: `${header.join("\n")}\n\n${body}\n`, language: "markdown" });
  await vscode.window.showTextDocument(doc, { preview: true });
}
