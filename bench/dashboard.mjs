#!/usr/bin/env node
// The dashboard page's costs (webview/, the bundle the VS Code sidebar, editor panel and tray window show),
// measured in headless Chromium (Debian's, through playwright-core) in the plain host page (webview/host.html,
// strict CSP) through the plain bridge. The transport (bench/dashboard-transport.js) is a SYNTHETIC daemon in
// the page (this measures the page, not the daemon nor a test driver's IPC): 20 modules, one hour of 2 s
// samples (1,800 per module, 37,800 points in all), answers through JSON text as on a wire.
//
//   1. bundle size: dashboard.js + dashboard.css as packaged (minified), raw and gzip;
//   2. first paint over N fresh page loads: first contentful paint, and the first render with data (the
//      module table and the charts of the whole hour, including fetching it over the bridge);
//   3. frame times while the page re-renders on updates: a new sample tick (2 s of data) and a pushed
//      notification every 250 ms (8× the daemon's rate; the page debounces pushes by 150 ms);
//      requestAnimationFrame deltas p50/p95/max, renders, long tasks.
//
// Writes --out (JSON) and a Markdown fragment for docs/performance.md to --md.
//
//   node bench/dashboard.mjs [--quick] [--out FILE] [--md FILE] [--rounds N] [--seconds S]
//
// Needs: cd extension && npm ci && npm run package (the production bundle in extension/out/webview); Chromium
// (scripts/vscode-deps installs it).

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const quick = args.includes("--quick");
const out = path.resolve(opt("--out", path.join(repo, "bench/results/dashboard.json")));
const md = opt("--md", undefined);
const rounds = Number(opt("--rounds", quick ? 3 : 10));
const seconds = Number(opt("--seconds", quick ? 4 : 15));
const MODULES = 20;

const { startPlainHost, openDashboard } = await import("../extension/test/e2e/plainHost.mjs");
const require = createRequire(path.join(repo, "extension/package.json"));
const { chromium } = require("playwright-core");

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, min: r1(s[0]), p50: r1(q(0.5)), p95: r1(q(0.95)), max: r1(s[s.length - 1]) };
};
const r1 = (x) => Math.round(x * 10) / 10;

// ---- the run ---------------------------------------------------------------------------------------------
const bundleDir = path.join(repo, "extension/out/webview");
const size = (f) => {
  const b = fs.readFileSync(path.join(bundleDir, f));
  return { bytes: b.length, gzip: zlib.gzipSync(b, { level: 9 }).length };
};
const js = size("dashboard.js");
const css = size("dashboard.css");
const minified = !fs.readFileSync(path.join(bundleDir, "dashboard.js"), "utf8").includes("\n  ");

const host = await startPlainHost({ transport: path.join(here, "dashboard-transport.js") });
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"],
});
const result = {
  machine: { nproc: os.cpus().length, cpu: os.cpus()[0]?.model, chromium: browser.version(), loadAvgAtStart: os.loadavg().map(r1) },
  quick,
  modules: MODULES,
  bundle: { js, css, total: js.bytes + css.bytes, totalGzip: js.gzip + css.gzip, minified, targetBytes: 200 * 1024 },
};
const problems = [];
try {
  // 2. first paint, fresh context each time (no cache).
  const fcp = [];
  const firstData = [];
  let wire = [];
  const generate = [];
  const wireMs = [];
  const scriptsAt = [];
  for (let r = 0; r < rounds; r++) {
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    await context.addInitScript(() => {
      const seen = () => document.querySelector("tr[data-module]") && document.querySelector('figure[data-chart="mem"] path.line');
      new MutationObserver((_, obs) => {
        if (seen()) {
          window.__firstData = performance.now();
          obs.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    });
    const d = await openDashboard(context, host.url);
    const t = await d.page.waitForFunction(() => window.__firstData && performance.getEntriesByName("first-contentful-paint")[0] && {
      fcp: performance.getEntriesByName("first-contentful-paint")[0].startTime,
      data: window.__firstData,
    }, undefined, { timeout: 30_000 });
    const v = await t.jsonValue();
    fcp.push(v.fcp);
    wire = await d.page.evaluate(() => window.__benchWire);
    generate.push(await d.page.evaluate(() => window.__benchGenerateMs));
    scriptsAt.push(await d.page.evaluate(() => window.__benchScriptsAt));
    wireMs.push(wire.find(([m]) => m === "steward/metrics")?.[2] ?? 0);
    firstData.push(v.data);
    problems.push(...d.consoleErrors, ...d.pageErrors, ...d.cspViolations.map((x) => `CSP: ${JSON.stringify(x)}`));
    await context.close();
  }
  const firstHistory = wire.find(([m]) => m === "steward/metrics")?.[1] ?? 0;
  result.firstPaint = { rounds, historyPoints: (MODULES + 1) * 1800, firstMetricsAnswerBytes: firstHistory, fcpMs: stats(fcp), firstRenderWithDataMs: stats(firstData), targetMs: 300,
    // Inside firstRenderWithDataMs: the bench generating the hour in the page (not the page's cost), and the
    // history answer's JSON stringify + parse (a wire's cost; in VS Code it is the relay's).
    benchGenerateMs: stats(generate), historyJsonMs: stats(wireMs),
    pageOnlyMs: stats(firstData.map((x, i) => x - generate[i] - wireMs[i])),
    // Navigation start → the page's scripts run (HTML, CSS, transport and bundle loaded from loopback).
    loadedMs: stats(scriptsAt),
    // The page's own work for the first render: from its scripts running to the render, minus the two above.
    pageWorkMs: stats(firstData.map((x, i) => x - scriptsAt[i] - generate[i] - wireMs[i])) };

  // 3. frame times under updates.
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const d = await openDashboard(context, host.url);
  await d.page.waitForSelector('figure[data-chart="mem"] path.line', { timeout: 30_000 });
  await d.page.evaluate(() => {
    window.__renders = 0;
    new MutationObserver((recs) => {
      if (recs.some((r) => r.target.id === "app")) window.__renders++;
    }).observe(document.getElementById("app"), { childList: true });
    window.__longTasks = [];
    new PerformanceObserver((l) => window.__longTasks.push(...l.getEntries().map((e) => e.duration))).observe({ type: "longtask" });
  });
  const frames = await d.page.evaluate(
    (ms) =>
      new Promise((resolve) => {
        const deltas = [];
        let last;
        const end = performance.now() + ms;
        const pusher = setInterval(() => window.__benchTick(), 250);
        const f = (t) => {
          if (last !== undefined) deltas.push(t - last);
          last = t;
          if (t < end) requestAnimationFrame(f);
          else {
            clearInterval(pusher);
            resolve({ deltas, renders: window.__renders, longTasks: window.__longTasks });
          }
        };
        requestAnimationFrame(f);
      }),
    seconds * 1000,
  );
  const pointsOnPage = await d.page.locator('figure[data-chart="cpu"]').getAttribute("data-points");
  result.frames = {
    seconds,
    updateEveryMs: 250,
    renders: frames.renders,
    rendersPerSecond: r1(frames.renders / seconds),
    frameMs: stats(frames.deltas),
    over50ms: frames.deltas.filter((x) => x > 50).length,
    longTasks: frames.longTasks.length,
    longestTaskMs: r1(Math.max(0, ...frames.longTasks)),
    cpuChartPointsDrawn: Number(pointsOnPage),
  };
  problems.push(...d.consoleErrors, ...d.pageErrors, ...d.cspViolations.map((x) => `CSP: ${JSON.stringify(x)}`));
  await context.close();
} finally {
  await browser.close();
  await host.close();
}
result.problems = problems;
result.pass = {
  bundle: result.bundle.total <= result.bundle.targetBytes,
  firstPaint: result.firstPaint.fcpMs.p50 <= 300,
  firstRenderPageOnly: result.firstPaint.pageOnlyMs.p50 <= 300,
  noProblems: problems.length === 0,
};
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
console.log(JSON.stringify(result, null, 2));

if (md) {
  const b = result.bundle;
  const fp = result.firstPaint;
  const fr = result.frames;
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  const ok = (x) => (x ? "✓" : "✗ (missed)");
  const lines = [
    `Headless Chromium ${result.machine.chromium}, ${result.machine.nproc} cores (${result.machine.cpu}; load average ${result.machine.loadAvgAtStart[0]} at the start); the plain host page and bridge with a synthetic transport: ${MODULES} modules, one hour of 2 s samples (${fp.historyPoints.toLocaleString("en")} points).`,
    "",
    "| Figure | Value | Target |",
    "|---|---|---|",
    `| bundle (dashboard.js + .css, minified) | ${kb(b.total)} (gzip ${kb(b.totalGzip)}) | ≤ 200 KB ${ok(result.pass.bundle)} |`,
    `| first contentful paint, median / max of ${fp.rounds} loads | ${fp.fcpMs.p50} / ${fp.fcpMs.max} ms | ≤ 300 ms ${ok(result.pass.firstPaint)} |`,
    `| first render with data (table + charts of the hour; the history answer is ${(fp.firstMetricsAnswerBytes / 1048576).toFixed(1)} MB of JSON), median / max | ${fp.firstRenderWithDataMs.p50} / ${fp.firstRenderWithDataMs.max} ms | |`,
    `| of which: generating the synthetic hour (bench) / JSON of the history answer, medians | ${fp.benchGenerateMs.p50} / ${fp.historyJsonMs.p50} ms | |`,
    `| first render with data, without those two (load, requests, table, charts), median / max | ${fp.pageOnlyMs.p50} / ${fp.pageOnlyMs.max} ms | ≤ 300 ms ${ok(fp.pageOnlyMs.p50 <= 300)} |`,
    `| of which: navigation → scripts running (loopback HTTP, fresh profile) / the page's own work (requests, table, downsampling and drawing the hour), medians | ${fp.loadedMs.p50} / ${fp.pageWorkMs.p50} ms | |`,
    `| frame time while re-rendering (update every ${fr.updateEveryMs} ms, ${fr.seconds} s): p50 / p95 / max | ${fr.frameMs.p50} / ${fr.frameMs.p95} / ${fr.frameMs.max} ms | |`,
    `| frames over 50 ms; long tasks (longest) | ${fr.over50ms}; ${fr.longTasks} (${fr.longestTaskMs} ms) | |`,
    `| renders during that time | ${fr.renders} (${fr.rendersPerSecond}/s) | |`,
    "",
    problems.length ? `Console errors / CSP violations: ${problems.length} (see the JSON).` : "No console error and no CSP violation during the runs.",
  ];
  fs.writeFileSync(md, lines.join("\n") + "\n");
}
process.exit(problems.length ? 2 : 0);
