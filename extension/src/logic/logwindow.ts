// The log viewer's window onto a history that may hold millions of lines: a bounded, id-ordered slice that
// grows at either end as the user scrolls (pages fetched with `steward/logs/query` cursors) or as live lines
// arrive, and drops lines at the far end when it exceeds its cap. Pure; runs inside the webview.

/** The fields of a `LogEntry` the viewer needs (the webview receives whole entries). */
export interface WindowLine {
  id: number;
  tsMs: number;
  module: string;
  level?: string;
  stream?: string;
  text: string;
}

export interface Change {
  /** Lines added at the start (the view keeps its place by scrolling down this many rows). */
  prepended: number;
  /** Lines dropped at the start (the view scrolls up this many rows). */
  droppedFront: number;
  /** Lines added at the end. */
  appended: number;
  /** Lines dropped at the end. */
  droppedBack: number;
}

const NONE: Change = { prepended: 0, droppedFront: 0, appended: 0, droppedBack: 0 };

export class LogWindow<L extends WindowLine = WindowLine> {
  private items: L[] = [];
  /** Older lines than the first one may exist in the store. */
  hasOlder = false;
  /** Newer lines than the last one exist in the store (the window is not at the live end). */
  hasNewer = false;
  /** Live lines arrived while the window was away from the end (scrolling down will fetch them). */
  missedLive = 0;

  constructor(readonly cap: number) {
    if (cap < 2) throw new RangeError(`LogWindow cap must be at least 2, got ${cap}`);
  }

  get lines(): readonly L[] {
    return this.items;
  }
  get length(): number {
    return this.items.length;
  }
  get firstId(): number | undefined {
    return this.items[0]?.id;
  }
  get lastId(): number | undefined {
    return this.items[this.items.length - 1]?.id;
  }

  /** Starts over with `lines` (oldest first). */
  reset(lines: L[], opts: { hasOlder: boolean; hasNewer: boolean }): void {
    this.items = dedupeSorted(lines);
    this.hasOlder = opts.hasOlder;
    this.hasNewer = opts.hasNewer;
    this.missedLive = 0;
    if (this.items.length > this.cap) {
      // Keep the newest: that is where a fresh view looks.
      this.items = this.items.slice(this.items.length - this.cap);
      this.hasOlder = true;
    }
  }

  /** A page of older lines (answer to `beforeId: firstId`, `limit: requested`). */
  addOlder(page: L[], requested: number): Change {
    const first = this.firstId;
    const older = dedupeSorted(page).filter((l) => first === undefined || l.id < first);
    this.hasOlder = page.length >= requested;
    if (older.length === 0) return NONE;
    this.items = older.concat(this.items);
    let droppedBack = 0;
    if (this.items.length > this.cap) {
      droppedBack = this.items.length - this.cap;
      this.items.length = this.cap;
      this.hasNewer = true;
    }
    return { prepended: older.length, droppedFront: 0, appended: 0, droppedBack };
  }

  /** A page of newer lines (answer to `afterId: lastId`, `limit: requested`). */
  addNewer(page: L[], requested: number): Change {
    const last = this.lastId;
    const newer = dedupeSorted(page).filter((l) => last === undefined || l.id > last);
    this.hasNewer = page.length >= requested;
    if (!this.hasNewer) this.missedLive = 0;
    return this.appendTrimmed(newer);
  }

  /** Lines pushed by the subscription. Ignored (counted) while the window is away from the live end. */
  addLive(lines: L[]): Change {
    if (this.hasNewer) {
      this.missedLive += lines.length;
      return NONE;
    }
    const last = this.lastId;
    return this.appendTrimmed(dedupeSorted(lines).filter((l) => last === undefined || l.id > last));
  }

  /** Index of the line with this id, or of the first line after it; -1 when every line is before it. */
  indexOfId(id: number): number {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid].id < id) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.items.length ? lo : -1;
  }

  private appendTrimmed(newer: L[]): Change {
    if (newer.length === 0) return NONE;
    this.items = this.items.concat(newer);
    let droppedFront = 0;
    if (this.items.length > this.cap) {
      droppedFront = this.items.length - this.cap;
      this.items = this.items.slice(droppedFront);
      this.hasOlder = true;
    }
    return { prepended: 0, droppedFront, appended: newer.length, droppedBack: 0 };
  }
}

function dedupeSorted<L extends WindowLine>(lines: L[]): L[] {
  const sorted = lines.every((l, i) => i === 0 || lines[i - 1].id < l.id) ? lines : [...lines].sort((a, b) => a.id - b.id);
  return sorted.filter((l, i) => i === 0 || sorted[i - 1].id !== l.id);
}

/** The rows a virtual list renders: `[start, end)` for a viewport, with `overscan` rows either side. */
export function visibleRange(
  scrollTop: number,
  viewportHeight: number,
  rowHeight: number,
  count: number,
  overscan = 20,
): { start: number; end: number } {
  if (rowHeight <= 0 || count === 0) return { start: 0, end: 0 };
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const visible = Math.ceil(Math.max(0, viewportHeight) / rowHeight) + 1;
  return { start: Math.max(0, first - overscan), end: Math.min(count, first + visible + overscan) };
}
