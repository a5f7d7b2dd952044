// The language client: one LSP session with the daemon over its Unix socket, carrying both Steward's own
// methods (`steward/*`) and the standard language features for stack files. This module only knows how to
// open a socket, start the daemon and build a client; *when* to do so is ctx.ts's business.

import * as cp from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as vscode from "vscode";
import {
  CloseAction,
  ErrorAction,
  LanguageClient,
  type LanguageClientOptions,
  RevealOutputChannelOn,
  type StreamInfo,
} from "vscode-languageclient/node";
import type { Notifications, Requests } from "../../protocol/ts/steward-protocol";

/** Stack files the daemon serves language features for (diagnostics, hover, code lenses, completion). */
export const DOCUMENT_SELECTOR = [
  { scheme: "file", pattern: "**/steward.toml" },
  { scheme: "file", pattern: "**/modules.d/*.toml" },
];

/** Why a connection attempt failed. */
export type ConnectError =
  | { kind: "notRunning"; detail: string }
  | { kind: "other"; detail: string };

/** Opens the daemon's socket. Resolves with a connected socket, or rejects with a `ConnectError`. */
export function connectSocket(socketPath: string, timeoutMs = 3000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socketPath);
    const timer = setTimeout(() => {
      s.destroy();
      reject({ kind: "other", detail: `no answer from ${socketPath} within ${timeoutMs} ms` } satisfies ConnectError);
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      s.destroy();
      const notRunning = e.code === "ENOENT" || e.code === "ECONNREFUSED";
      reject({ kind: notRunning ? "notRunning" : "other", detail: `${socketPath}: ${e.message}` } satisfies ConnectError);
    });
  });
}

/** Why the daemon could not be started. */
export type StartError = { kind: "notFound"; detail: string } | { kind: "failed"; detail: string };

/**
 * Starts `steward daemon` in the background, detached (its own session, like the CLI does), output appended
 * to `HOME/logs/daemon.out`. Resolves once the process is spawned; the caller then waits for the socket.
 * `exited` settles when the daemon ends (a second daemon for the same home exits 1 at once: harmless).
 */
export function spawnDaemon(
  binary: string,
  home: string,
): Promise<{ pid: number; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }> {
  return new Promise((resolve, reject) => {
    let out: number | undefined;
    try {
      const logs = path.join(home, "logs");
      fs.mkdirSync(logs, { recursive: true, mode: 0o700 });
      out = fs.openSync(path.join(logs, "daemon.out"), "a", 0o600);
    } catch (e) {
      reject({ kind: "failed", detail: `cannot write to ${home}: ${(e as Error).message}` } satisfies StartError);
      return;
    }
    const child = cp.spawn(binary, ["daemon"], {
      cwd: "/",
      env: { ...process.env, STEWARD_HOME: home },
      detached: true,
      stdio: ["ignore", out, out],
    });
    fs.closeSync(out);
    child.once("error", (e: NodeJS.ErrnoException) => {
      const notFound = e.code === "ENOENT" || e.code === "EACCES";
      reject({ kind: notFound ? "notFound" : "failed", detail: e.message } satisfies StartError);
    });
    child.once("spawn", () => {
      child.unref();
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
        child.once("exit", (code, signal) => r({ code, signal })),
      );
      resolve({ pid: child.pid ?? 0, exited });
    });
  });
}

/** The last lines of `HOME/logs/daemon.out`, to say why a started daemon did not answer. */
export function daemonOutTail(home: string, lines = 5): string {
  try {
    const text = fs.readFileSync(path.join(home, "logs", "daemon.out"), "utf8");
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

/**
 * A language client over an already connected socket. Its own restart logic is switched off: a closed
 * connection is reported to `onClosed`, and ctx.ts reconnects with backoff (and shows why), instead of the
 * library's "server crashed 5 times" dialogs.
 */
export function createClient(
  socket: net.Socket,
  output: vscode.OutputChannel,
  onClosed: () => void,
): LanguageClient {
  let handed = false;
  const serverOptions = (): Promise<StreamInfo> => {
    if (handed) return Promise.reject(new Error("this client's socket was used already; make a new client"));
    handed = true;
    return Promise.resolve({ reader: socket, writer: socket });
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: DOCUMENT_SELECTOR,
    outputChannel: output,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    initializationOptions: { client: "vscode" },
    errorHandler: {
      error: () => ({ action: ErrorAction.Continue, handled: true }),
      closed: () => {
        onClosed();
        return { action: CloseAction.DoNotRestart, handled: true };
      },
    },
  };
  return new LanguageClient("steward", "Steward", serverOptions, clientOptions);
}

/** `steward/*` requests, typed by the generated protocol file. */
export function request<M extends keyof Requests>(
  client: LanguageClient,
  method: M,
  params: Requests[M]["params"],
  token?: vscode.CancellationToken,
): Promise<Requests[M]["result"]> {
  return token ? client.sendRequest(method, params, token) : client.sendRequest(method, params);
}

/** `steward/*` notifications from the daemon, typed. */
export function onNotification<M extends keyof Notifications>(
  client: LanguageClient,
  method: M,
  handler: (params: Notifications[M]) => void,
): vscode.Disposable {
  return client.onNotification(method, handler);
}
