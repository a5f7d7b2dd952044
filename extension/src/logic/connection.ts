// Pure parts of staying connected to the daemon: where its socket is, how long to wait before reconnecting,
// and what the user is told in each state.

import * as path from "node:path";

/**
 * The daemon's home, as `protocol/src/paths.rs` computes it: the `steward.home` setting, else
 * `$STEWARD_HOME`, else `$XDG_DATA_HOME/steward` (absolute values only) or `~/.local/share/steward`
 * (macOS: `~/Library/Application Support/Steward`). Undefined when not even `$HOME` is known.
 */
export function resolveHome(
  setting: string,
  env: Record<string, string | undefined>,
  platform: string,
  userHome: string | undefined,
): string | undefined {
  const expand = (p: string) => (p === "~" || p.startsWith("~/") ? path.join(userHome ?? "", p.slice(1)) : p);
  if (setting.trim() !== "") return path.resolve(expand(setting.trim()));
  if (env.STEWARD_HOME) return env.STEWARD_HOME;
  const home = env.HOME || userHome;
  if (platform === "darwin") return home ? path.join(home, "Library/Application Support/Steward") : undefined;
  const xdg = env.XDG_DATA_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, "steward");
  return home ? path.join(home, ".local/share/steward") : undefined;
}

export function socketPath(home: string): string {
  return path.join(home, "run", "steward.sock");
}

/**
 * Delay before reconnect attempt `attempt` (0-based): 250 ms doubling up to 10 s, with ±20 % jitter so that
 * several windows do not reconnect in lockstep. `random` is in [0, 1).
 */
export function reconnectDelay(attempt: number, random: number): number {
  const base = Math.min(10_000, 250 * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.8 + 0.4 * random));
}

/** What the extension knows about its connection to the daemon. */
export type ConnectionState =
  | { kind: "connecting" }
  | { kind: "connected"; version: string; pid: number }
  | { kind: "stopped"; detail?: string; retryInMs?: number }
  | { kind: "notFound"; binary: string; detail: string };

/** The overall status bar item when not connected. */
export function disconnectedText(s: ConnectionState): { text: string; tooltip: string } {
  switch (s.kind) {
    case "connecting":
      return { text: "$(sync~spin) Steward", tooltip: "Connecting to the Steward daemon…" };
    case "stopped":
      return {
        text: "$(debug-disconnect) Steward: not running",
        tooltip:
          "The Steward daemon is not running. Click to start it." +
          (s.retryInMs !== undefined ? ` (Trying to reconnect in ${Math.ceil(s.retryInMs / 1000)} s.)` : "") +
          (s.detail ? `\n\n${s.detail}` : ""),
      };
    case "notFound":
      return {
        text: "$(warning) Steward: not found",
        tooltip: `The steward binary was not found (${s.binary}): ${s.detail}. Click to configure its path (setting steward.path).`,
      };
    case "connected":
      return { text: "$(check) Steward", tooltip: `Steward ${s.version} (daemon pid ${s.pid})` };
  }
}
