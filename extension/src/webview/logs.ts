// The log viewer page (runs in the webview, bundled to out/webview/logs.js). A virtual list: only the rows
// in view are in the DOM, the window holds at most CAP lines, and pages are fetched from the daemon (through
// the extension) as the user scrolls toward either end — so a history of millions of lines costs what one
// screen costs. New lines arrive through a subscription and are shown when the view is at the live end.

import { LogWindow, visibleRange, type WindowLine } from "../logic/logwindow";

declare function acquireVsCodeApi(): { postMessage(msg: unknown): void; getState(): unknown; setState(s: unknown): void };
const vscode = acquireVsCodeApi();

interface Line extends WindowLine {
  truncated?: boolean;
  masked?: boolean;
}

const CAP = 20_000;
const EDGE_ROWS = 30; // fetch the next page when this close to an end

// ---- request/reply with the extension --------------------------------------------------------------------
let nextReq = 1;
const waiting = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
function ask<T>(msg: Record<string, unknown>): Promise<T> {
  const reqId = nextReq++;
  return new Promise<T>((resolve, reject) => {
    waiting.set(reqId, { resolve, reject });
    vscode.postMessage({ ...msg, reqId });
  });
}

// ---- state ---------------------------------------------------------------------------------------------
let win = new LogWindow<Line>(CAP);
let pageSize = 500;
let modules: string[] = [];
let filter: { module?: string; level?: string; grep?: string } = {};
let follow = true;
let highlightId: number | undefined;
let loading = { older: false, newer: false };
let generation = 0; // bumps on every reload; stale replies are dropped
let pendingLive: Line[] | undefined = []; // live lines that arrive before the first page
let rowHeight = 18;

// ---- DOM -----------------------------------------------------------------------------------------------
const app = document.getElementById("app") as HTMLElement;
app.innerHTML = `
<div class="toolbar" role="toolbar" aria-label="Log filters">
  <label>Module <select id="module" aria-label="Module"></select></label>
  <label>Level <select id="level" aria-label="Minimum level">
    <option value="">any</option><option value="trace">trace+</option><option value="debug">debug+</option>
    <option value="info">info+</option><option value="warn">warn+</option><option value="error">error</option>
  </select></label>
  <input id="grep" type="search" placeholder="Filter (exact text)" aria-label="Filter text" spellcheck="false">
  <button id="follow" class="on" type="button" aria-pressed="true" title="Follow new lines">Follow</button>
  <span id="info" class="info" aria-live="polite"></span>
</div>
<div id="viewport" class="viewport" tabindex="0" role="log" aria-label="Log lines">
  <div id="spacer" class="spacer"></div>
  <div id="rows" class="rows"></div>
</div>
<div id="empty" class="empty" hidden>No log lines yet.</div>`;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const moduleSel = $<HTMLSelectElement>("module");
const levelSel = $<HTMLSelectElement>("level");
const grepInput = $<HTMLInputElement>("grep");
const followBtn = $<HTMLButtonElement>("follow");
const info = $<HTMLSpanElement>("info");
const viewport = $<HTMLDivElement>("viewport");
const spacer = $<HTMLDivElement>("spacer");
const rowsEl = $<HTMLDivElement>("rows");
const empty = $<HTMLDivElement>("empty");

function measureRowHeight(): number {
  const probe = document.createElement("div");
  probe.className = "row";
  probe.textContent = "Mg";
  rowsEl.appendChild(probe);
  const h = probe.getBoundingClientRect().height;
  probe.remove();
  return h > 0 ? h : 18;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}
function time(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function render(): void {
  const n = win.length;
  spacer.style.height = `${n * rowHeight}px`;
  empty.hidden = n > 0;
  const { start, end } = visibleRange(viewport.scrollTop, viewport.clientHeight, rowHeight, n);
  rowsEl.style.transform = `translateY(${start * rowHeight}px)`;
  const lines = win.lines;
  const frag = document.createDocumentFragment();
  for (let i = start; i < end; i++) {
    const l = lines[i];
    const row = document.createElement("div");
    row.className = `row lvl-${l.level ?? "none"}${l.id === highlightId ? " highlight" : ""}`;
    row.dataset.id = String(l.id);
    const t = document.createElement("span");
    t.className = "ts";
    t.textContent = time(l.tsMs);
    const m = document.createElement("span");
    m.className = "mod";
    m.textContent = l.module;
    const lv = document.createElement("span");
    lv.className = "lvl";
    lv.textContent = l.level ?? "";
    const tx = document.createElement("span");
    tx.className = "text";
    tx.textContent = l.text + (l.truncated ? " …(truncated)" : "");
    row.append(t, m, lv, tx);
    frag.appendChild(row);
  }
  rowsEl.replaceChildren(frag);
  const parts = [`${n.toLocaleString()} line${n === 1 ? "" : "s"}`];
  if (win.hasOlder) parts.push("more above");
  if (win.hasNewer) parts.push(win.missedLive > 0 ? `${win.missedLive.toLocaleString()}+ new below` : "more below");
  info.textContent = parts.join(" · ");
}

function atBottom(): boolean {
  return viewport.scrollTop + viewport.clientHeight >= viewport.scrollHeight - rowHeight * 2;
}

function scrollToEnd(): void {
  viewport.scrollTop = viewport.scrollHeight;
}

function setFollow(on: boolean): void {
  follow = on;
  followBtn.setAttribute("aria-pressed", String(on));
  followBtn.classList.toggle("on", on);
}

function queryFilter(): Record<string, unknown> {
  const f: Record<string, unknown> = {};
  if (filter.module) f.module = filter.module;
  if (filter.level) f.level = filter.level;
  if (filter.grep) f.grep = filter.grep;
  return f;
}

function showError(msg: string): void {
  info.textContent = `error: ${msg}`;
}

/** (Re)subscribes with the current filter and loads the newest page, or the page around `aroundId`. */
async function reload(aroundId?: number): Promise<void> {
  const gen = ++generation;
  pendingLive = [];
  delete app.dataset.loaded;
  loading = { older: false, newer: false };
  try {
    const { cursor } = await ask<{ cursor: number }>({ type: "subscribe", filter: queryFilter() });
    if (gen !== generation) return;
    if (aroundId === undefined) {
      const { lines } = await ask<{ lines: Line[] }>({ type: "query", params: { ...queryFilter(), beforeId: cursor + 1, limit: pageSize } });
      if (gen !== generation) return;
      win.reset(lines, { hasOlder: lines.length >= pageSize, hasNewer: false });
      highlightId = undefined;
    } else {
      const half = Math.max(50, Math.floor(pageSize / 2));
      const [before, after] = await Promise.all([
        ask<{ lines: Line[] }>({ type: "query", params: { ...queryFilter(), beforeId: aroundId + 1, limit: half } }),
        ask<{ lines: Line[] }>({ type: "query", params: { ...queryFilter(), afterId: aroundId, limit: half } }),
      ]);
      if (gen !== generation) return;
      win.reset(before.lines.concat(after.lines), {
        hasOlder: before.lines.length >= half,
        hasNewer: after.lines.length >= half,
      });
      highlightId = aroundId;
      setFollow(false);
    }
    const live = pendingLive ?? [];
    pendingLive = undefined;
    win.addLive(live);
    app.dataset.loaded = JSON.stringify(queryFilter());
    render();
    if (highlightId !== undefined) {
      const i = win.indexOfId(highlightId);
      if (i >= 0) viewport.scrollTop = Math.max(0, i * rowHeight - viewport.clientHeight / 2 + rowHeight / 2);
      render();
    } else if (follow) {
      scrollToEnd();
      render();
    }
  } catch (e) {
    if (gen === generation) showError((e as Error).message);
  }
}

async function loadOlder(): Promise<void> {
  const first = win.firstId;
  if (loading.older || !win.hasOlder || first === undefined) return;
  loading.older = true;
  const gen = generation;
  try {
    const { lines } = await ask<{ lines: Line[] }>({ type: "query", params: { ...queryFilter(), beforeId: first, limit: pageSize } });
    if (gen !== generation) return;
    const ch = win.addOlder(lines, pageSize);
    viewport.scrollTop += ch.prepended * rowHeight; // keep the same lines in view
    render();
  } catch (e) {
    showError((e as Error).message);
  } finally {
    if (gen === generation) loading.older = false;
  }
}

async function loadNewer(): Promise<void> {
  const last = win.lastId;
  if (loading.newer || !win.hasNewer || last === undefined) return;
  loading.newer = true;
  const gen = generation;
  try {
    const { lines } = await ask<{ lines: Line[] }>({ type: "query", params: { ...queryFilter(), afterId: last, limit: pageSize } });
    if (gen !== generation) return;
    const ch = win.addNewer(lines, pageSize);
    viewport.scrollTop -= ch.droppedFront * rowHeight;
    render();
  } catch (e) {
    showError((e as Error).message);
  } finally {
    if (gen === generation) loading.newer = false;
  }
}

// ---- events --------------------------------------------------------------------------------------------
let lastScrollTop = 0;
let rafPending = false;
viewport.addEventListener("scroll", () => {
  if (rafPending) return;
  rafPending = true;
  requestAnimationFrame(() => {
    rafPending = false;
    const top = viewport.scrollTop;
    const up = top < lastScrollTop;
    lastScrollTop = top;
    if (up && follow && !atBottom()) setFollow(false);
    render();
    if (top < EDGE_ROWS * rowHeight) void loadOlder();
    if (top + viewport.clientHeight > viewport.scrollHeight - EDGE_ROWS * rowHeight) void loadNewer();
  });
});
window.addEventListener("resize", () => render());

followBtn.addEventListener("click", () => {
  const on = !follow;
  setFollow(on);
  if (on) {
    highlightId = undefined;
    if (win.hasNewer) void reload();
    else {
      scrollToEnd();
      render();
    }
  }
});

let grepTimer: ReturnType<typeof setTimeout> | undefined;
grepInput.addEventListener("input", () => {
  if (grepTimer) clearTimeout(grepTimer);
  grepTimer = setTimeout(() => {
    filter.grep = grepInput.value || undefined;
    void reload();
  }, 200);
});
moduleSel.addEventListener("change", () => {
  filter.module = moduleSel.value || undefined;
  void reload();
});
levelSel.addEventListener("change", () => {
  filter.level = levelSel.value || undefined;
  void reload();
});
viewport.addEventListener("keydown", (e) => {
  if (e.key === "End" && !follow) followBtn.click();
});

window.addEventListener("message", (ev: MessageEvent) => {
  const m = ev.data as Record<string, any>;
  switch (m.type) {
    case "init": {
      pageSize = m.pageSize ?? 500;
      modules = m.modules ?? [];
      moduleSel.replaceChildren(
        new Option("all modules", ""),
        ...modules.map((name: string) => new Option(name, name)),
      );
      filter = { module: m.module };
      moduleSel.value = m.module ?? "";
      rowHeight = measureRowHeight();
      void reload(m.aroundId);
      break;
    }
    case "goto":
      void reload(m.id);
      break;
    case "reconnected":
      void reload(highlightId);
      break;
    case "live": {
      const lines = m.lines as Line[];
      if (pendingLive) {
        pendingLive.push(...lines);
        break;
      }
      const wasAtBottom = atBottom();
      const ch = win.addLive(lines);
      if (ch.appended === 0 && ch.droppedFront === 0) {
        if (win.missedLive > 0) render();
        break;
      }
      if (follow || wasAtBottom) {
        render();
        scrollToEnd();
      } else {
        viewport.scrollTop -= ch.droppedFront * rowHeight;
      }
      render();
      break;
    }
    case "reply": {
      const w = waiting.get(m.reqId);
      if (!w) break;
      waiting.delete(m.reqId);
      if (m.error) w.reject(new Error(m.error));
      else w.resolve(m);
      break;
    }
  }
});

vscode.postMessage({ type: "ready" });
