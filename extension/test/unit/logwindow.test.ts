// The log viewer's window: paging at both ends, live lines, the cap, and the virtual list's range.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LogWindow, visibleRange, type WindowLine } from "../../src/logic/logwindow";

const line = (id: number): WindowLine => ({ id, tsMs: id, module: "m", text: `line ${id}` });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => line(from + i));
const ids = (w: LogWindow) => w.lines.map((l) => l.id);

test("paging older and newer keeps order, drops duplicates and knows when an end is reached", () => {
  const w = new LogWindow(1000);
  w.reset(range(901, 1000), { hasOlder: true, hasNewer: false });
  let ch = w.addOlder(range(801, 900), 100);
  assert.deepEqual(ch, { prepended: 100, droppedFront: 0, appended: 0, droppedBack: 0 });
  assert.equal(w.hasOlder, true);
  ch = w.addOlder([...range(750, 800), line(801)], 100); // short page (+ an overlap): the start of history
  assert.equal(ch.prepended, 51);
  assert.equal(w.hasOlder, false);
  assert.equal(w.firstId, 750);
  assert.equal(w.lastId, 1000);
  assert.deepEqual(ids(w).slice(0, 3), [750, 751, 752]);
  assert.ok(ids(w).every((id, i, a) => i === 0 || a[i - 1] < id));
});

test("the cap drops lines at the far end and remembers that they exist", () => {
  const w = new LogWindow(250);
  w.reset(range(1001, 1200), { hasOlder: true, hasNewer: false });
  const ch = w.addOlder(range(901, 1000), 100);
  assert.deepEqual(ch, { prepended: 100, droppedFront: 0, appended: 0, droppedBack: 50 });
  assert.equal(w.length, 250);
  assert.equal(w.lastId, 1150);
  assert.equal(w.hasNewer, true, "lines beyond the window are now below it");
  // Scrolling down fetches them back and drops from the top.
  const ch2 = w.addNewer(range(1151, 1200), 100);
  assert.deepEqual(ch2, { prepended: 0, droppedFront: 50, appended: 50, droppedBack: 0 });
  assert.equal(w.hasNewer, false, "a short page means the live end");
  assert.equal(w.hasOlder, true);
  assert.equal(w.firstId, 951);
});

test("live lines join at the live end only; away from it they are counted", () => {
  const w = new LogWindow(100);
  w.reset(range(1, 10), { hasOlder: false, hasNewer: false });
  assert.equal(w.addLive([line(9), line(10), line(11), line(12)]).appended, 2, "overlap with history is dropped");
  assert.equal(w.lastId, 12);
  w.reset(range(1, 10), { hasOlder: false, hasNewer: true });
  assert.equal(w.addLive(range(50, 54)).appended, 0);
  assert.equal(w.missedLive, 5);
  assert.equal(w.lastId, 10);
  w.addNewer(range(11, 20), 100);
  assert.equal(w.missedLive, 0);
  assert.equal(w.hasNewer, false);
});

test("a million-line stream through a small window stays bounded", () => {
  const w = new LogWindow(20_000);
  w.reset([], { hasOlder: false, hasNewer: false });
  for (let start = 1; start <= 1_000_000; start += 5000) w.addLive(range(start, start + 4999));
  assert.equal(w.length, 20_000);
  assert.equal(w.firstId, 980_001);
  assert.equal(w.lastId, 1_000_000);
  assert.equal(w.hasOlder, true);
  assert.equal(w.indexOfId(990_000), 9_999);
  assert.equal(w.indexOfId(1), 0);
  assert.equal(w.indexOfId(2_000_000), -1);
});

test("reset keeps the newest lines when given more than the cap; unsorted input is sorted", () => {
  const w = new LogWindow(5);
  w.reset([line(3), line(1), line(2), line(5), line(4), line(6), line(6)], { hasOlder: false, hasNewer: false });
  assert.deepEqual(ids(w), [2, 3, 4, 5, 6]);
  assert.equal(w.hasOlder, true);
  assert.throws(() => new LogWindow(1), /cap must be at least 2/);
});

test("visible range: the rows in view plus overscan, clamped", () => {
  assert.deepEqual(visibleRange(0, 100, 20, 1000, 5), { start: 0, end: 11 });
  assert.deepEqual(visibleRange(2000, 100, 20, 1000, 5), { start: 95, end: 111 });
  assert.deepEqual(visibleRange(19_990, 100, 20, 1000, 5), { start: 994, end: 1000 });
  assert.deepEqual(visibleRange(0, 100, 20, 0), { start: 0, end: 0 });
  assert.deepEqual(visibleRange(-50, 100, 0, 10), { start: 0, end: 0 });
});
