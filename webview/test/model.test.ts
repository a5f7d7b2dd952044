// The dashboard's pure logic: series, downsampling, SVG paths, axis bounds, formatting; and the bridge's
// request/response pairing and relay whitelist.
import assert from "node:assert/strict";
import test from "node:test";
import { PlainBridge, type FromHost, type ToHost, VsCodeBridge } from "../src/bridge";
import { bytes, downsample, linePath, niceMax, pct, seriesOf, timeWindow } from "../src/model";

const pt = (atMs: number, project: string, module: string, cpu: number, mem: number, ipc?: number) => ({
  atMs,
  project,
  module,
  cpuPercent: cpu,
  memBytes: mem,
  ipcScore: ipc,
});

test("series per module, daemon-wide series for IPC", () => {
  const h = [pt(1, "", "", 50, 100, 3), pt(1, "/p", "api", 10, 20), pt(2, "/p", "api", 30, 40), pt(2, "", "", 60, 100, 7)];
  const cpu = seriesOf(h, "cpu");
  assert.deepEqual(
    cpu.map((s) => [s.label, s.points]),
    [
      ["system", [[1, 50], [2, 60]]],
      ["api", [[1, 10], [2, 30]]],
    ],
  );
  assert.deepEqual(seriesOf(h, "mem")[1].points, [[1, 20], [2, 40]]);
  const ipc = seriesOf(h, "ipc");
  assert.equal(ipc.length, 1);
  assert.deepEqual(ipc[0].points, [[1, 3], [2, 7]]);
});

test("downsampling keeps peaks and bounds the count", () => {
  const pts: [number, number][] = Array.from({ length: 1800 }, (_, i) => [i, i === 901 ? 99 : 1]);
  const d = downsample(pts, 300);
  assert.equal(d.length, 300);
  assert.ok(d.some(([, v]) => v === 99));
  assert.equal(downsample(pts.slice(0, 10), 300).length, 10);
});

test("paths scale into the box and clamp at the top", () => {
  assert.equal(linePath([], 100, 50, 0, 10, 100), "");
  assert.equal(linePath([[0, 0], [10, 100], [5, 200]], 100, 50, 0, 10, 100), "M0.0,50.0L100.0,0.0L50.0,0.0");
  // One decimal, fixed point, also for points before t0 and tiny values.
  assert.equal(linePath([[-1, 0], [1, 99.96], [3, 0.0001]], 1000, 50, 0, 3000, 100), "M-0.3,50.0L0.3,0.0L1.0,50.0");
  assert.equal(niceMax(0), 1);
  assert.equal(niceMax(73), 100);
  assert.equal(niceMax(120), 200);
  assert.equal(niceMax(3 * 1024 * 1024), 5_000_000);
});

test("formatting", () => {
  assert.equal(pct(undefined), "–");
  assert.equal(pct(5.25), "5.3 %");
  assert.equal(pct(86.4), "86 %");
  assert.equal(bytes(512), "512 B");
  assert.equal(bytes(3 * 1024 * 1024), "3.0 MiB");
  assert.equal(bytes(undefined), "–");
});

test("the VS Code bridge pairs responses with requests and passes notifications", async () => {
  const sent: ToHost[] = [];
  let deliver: (m: FromHost) => void = () => {};
  const b = new VsCodeBridge((m) => sent.push(m), (cb) => (deliver = cb));
  assert.deepEqual(sent[0], { type: "ready" });
  const seen: string[] = [];
  b.onNotification((n) => seen.push(n.method));
  const a = b.request("steward/status", {});
  const c = b.request("steward/metrics", {});
  const [ra, rc] = sent.slice(1) as { id: number }[];
  deliver({ type: "response", id: rc.id, error: "boom" });
  deliver({ type: "response", id: ra.id, result: { ok: 1 } });
  deliver({ type: "notification", method: "steward/event", params: {} });
  assert.deepEqual(await a, { ok: 1 });
  await assert.rejects(c, /boom/);
  assert.deepEqual(seen, ["steward/event"]);
});

test("the plain bridge relays only the dashboard's methods", async () => {
  const calls: string[] = [];
  const b = new PlainBridge({ request: async (m) => (calls.push(m), m), subscribe: () => {} });
  assert.equal(await b.request("steward/alerts", {}), "steward/alerts");
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  await assert.rejects(b.request("steward/daemon/stop" as any, {}), /not relayed/);
  assert.deepEqual(calls, ["steward/alerts"]);
});

test("the charts' window: the history's age in whole minutes (at least one), at most an hour", () => {
  const now = 10_000_000;
  assert.deepEqual(timeWindow(undefined, now), { t0: now - 60_000, label: "Last 1 min" });
  assert.deepEqual(timeWindow(now - 5_000, now), { t0: now - 60_000, label: "Last 1 min" });
  assert.deepEqual(timeWindow(now - 125_000, now), { t0: now - 180_000, label: "Last 3 min" });
  assert.deepEqual(timeWindow(now - 3_600_000, now), { t0: now - 3_600_000, label: "Last hour" });
  assert.deepEqual(timeWindow(now - 9_000_000, now), { t0: now - 3_600_000, label: "Last hour" });
});
