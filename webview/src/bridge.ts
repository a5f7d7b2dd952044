// The host bridge: how the dashboard reaches the daemon. The page never talks to the daemon itself; a host
// relays a fixed set of requests and pushes notifications. Two implementations:
//   - VsCodeBridge: inside a VS Code webview (postMessage ↔ the extension ↔ the daemon);
//   - PlainBridge: a browser or Tauri window, over a transport the host page provides
//     (`window.stewardTransport = { request(method, params), subscribe(onNotification) }`).

/**
 * Methods a host relays (anything else is refused by the host). The one list: the tray's build script reads
 * it from this file (tray-app/build.rs), so keep it a plain array of string literals.
 */
export const RELAYED = [
  "steward/status",
  "steward/metrics",
  "steward/alerts",
  "steward/events/query",
  "steward/module/start",
  "steward/module/stop",
  "steward/module/restart",
] as const;
export type RelayedMethod = (typeof RELAYED)[number];

export interface Notification {
  method: string;
  params: unknown;
}

export interface HostBridge {
  request(method: RelayedMethod, params: unknown): Promise<unknown>;
  /** Pushed daemon notifications (`steward/event`, `steward/ipc`). */
  onNotification(handler: (n: Notification) => void): void;
  /** Host-side actions that are not daemon requests (open the log viewer, the memory search). */
  action(name: "logs" | "search", args?: Record<string, unknown>): void;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/** Messages between the page and the VS Code extension. */
export type ToHost =
  | { type: "ready" }
  | { type: "request"; id: number; method: RelayedMethod; params: unknown }
  | { type: "action"; name: string; args?: Record<string, unknown> };
export type FromHost =
  | { type: "response"; id: number; result?: unknown; error?: string }
  | { type: "notification"; method: string; params: unknown };

export class VsCodeBridge implements HostBridge {
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private handlers: ((n: Notification) => void)[] = [];

  constructor(
    private readonly post: (m: ToHost) => void,
    listen: (cb: (m: FromHost) => void) => void,
  ) {
    listen((m) => {
      if (m.type === "response") {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve(m.result);
      } else if (m.type === "notification") {
        for (const h of this.handlers) h({ method: m.method, params: m.params });
      }
    });
    post({ type: "ready" });
  }

  request(method: RelayedMethod, params: unknown): Promise<unknown> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.post({ type: "request", id, method, params });
    });
  }

  onNotification(handler: (n: Notification) => void): void {
    this.handlers.push(handler);
  }

  action(name: "logs" | "search", args?: Record<string, unknown>): void {
    this.post({ type: "action", name, args });
  }
}

export interface PlainTransport {
  request(method: string, params: unknown): Promise<unknown>;
  subscribe(onNotification: (n: Notification) => void): void;
  action?(name: string, args?: Record<string, unknown>): void;
}

export class PlainBridge implements HostBridge {
  constructor(private readonly t: PlainTransport) {}

  request(method: RelayedMethod, params: unknown): Promise<unknown> {
    if (!(RELAYED as readonly string[]).includes(method)) return Promise.reject(new Error(`not relayed: ${method}`));
    return this.t.request(method, params);
  }

  onNotification(handler: (n: Notification) => void): void {
    this.t.subscribe(handler);
  }

  action(name: "logs" | "search", args?: Record<string, unknown>): void {
    this.t.action?.(name, args);
  }
}
