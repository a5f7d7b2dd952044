// Builds the extension with esbuild:
//   out/main.js              the extension (Node, CommonJS; `vscode` is provided by the host)
//   out/client.js            the language client, loaded by main.js on first connect
//   out/webview/logs.js      the log viewer page (browser)
//   out/webview/dashboard.js the dashboard page (browser): the ../webview bundle (+ dashboard.css)
//   out-test/*.test.js       unit tests (--tests), run with `node --test out-test/`
// Flags: --production (minify, no source maps), --watch, --tests.
import * as esbuild from "esbuild";
import { readdirSync } from "node:fs";

const production = process.argv.includes("--production");
const watch = process.argv.includes("--watch");
const tests = process.argv.includes("--tests");

const common = { bundle: true, sourcemap: !production, minify: production, logLevel: "warning", target: "es2022" };

const builds = tests
  ? [
      {
        ...common,
        entryPoints: [
          ...readdirSync("test/unit").filter((f) => f.endsWith(".test.ts")).map((f) => `test/unit/${f}`),
          ...readdirSync("../webview/test").filter((f) => f.endsWith(".test.ts")).map((f) => `../webview/test/${f}`),
        ],
        outdir: "out-test",
        platform: "node",
        format: "cjs",
        sourcemap: "inline",
        minify: false,
      },
    ]
  : [
      {
        ...common,
        entryPoints: ["src/main.ts"],
        outfile: "out/main.js",
        platform: "node",
        format: "cjs",
        // ./client (the language client: most of the code) is its own file, required on first connect, so
        // activation neither parses nor evaluates it.
        external: ["vscode", "./client"],
        // The first and last statements of the bundle: main.ts reports how long evaluating it took.
        banner: { js: "\"use strict\";\nglobalThis.__stewardLoadStart = performance.now();" },
        footer: { js: "globalThis.__stewardLoadEnd = performance.now();" },
      },
      { ...common, entryPoints: ["src/client.ts"], outfile: "out/client.js", platform: "node", format: "cjs", external: ["vscode"] },
      {
        ...common,
        entryPoints: { logs: "src/webview/logs.ts", dashboard: "../webview/src/main.ts" },
        outdir: "out/webview",
        platform: "browser",
        format: "iife",
      },
    ];

/** Prints the lines the VS Code task's background problem matcher waits for (.vscode/tasks.json). */
const watchLog = {
  name: "watch-log",
  setup(build) {
    build.onStart(() => console.log("[watch] build started"));
    build.onEnd((r) => {
      for (const e of r.errors) {
        const l = e.location;
        console.log(l ? `✘ [ERROR] ${e.text} [${l.file}:${l.line}:${l.column}]` : `✘ [ERROR] ${e.text}`);
      }
      console.log("[watch] build finished");
    });
  },
};

if (watch) {
  for (const b of builds) await (await esbuild.context({ ...b, plugins: [watchLog] })).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
