// Steward's protocol extensions, generated from protocol/src/ext.rs by protocol/tests/tidy.rs.
// Do not edit: change ext.rs and run `UPDATE_TS=1 cargo test -p steward-protocol --test tidy`.
// Integers are JSON numbers (ids and times stay below 2^53).

/** Version of this protocol; bumped on incompatible changes. Reported by `steward/status`. */
export const PROTOCOL_VERSION = 1;

/**
 * Largest header block of one message (bytes up to and including the blank line). Larger → -32700 and the
 * connection is closed.
 */
export const MAX_HEADER_BYTES = 8192;

/** Largest `Content-Length` accepted. Larger → -32700 and the connection is closed. */
export const MAX_MESSAGE_BYTES = 16777216;

/** Largest `limit` of `steward/logs/query` and `steward/events/query` (larger values are clamped). */
export const MAX_QUERY_LIMIT = 5000;

/** JSON-RPC error code: the stack file does not load. `data` is a `ConfigErrorData`. */
export const ERROR_CONFIG_INVALID = 1001;

/** JSON-RPC error code: no open project has that path or name (`data.available` lists the open ones). */
export const ERROR_PROJECT_NOT_FOUND = 1002;

/** JSON-RPC error code: a project name matches several open projects; use the path. */
export const ERROR_PROJECT_AMBIGUOUS = 1003;

/** JSON-RPC error code: the project has no such module (in its active profile). */
export const ERROR_MODULE_NOT_FOUND = 1004;

/** JSON-RPC error code: the store failed (disk full, corrupt database, …). */
export const ERROR_STORE = 1005;

/** JSON-RPC error code: the daemon is shutting down and takes no new work. */
export const ERROR_SHUTTING_DOWN = 1006;

/** Request: the daemon and every open project. */
export const STATUS = "steward/status";

/** Request: load a stack file and start supervising it (nothing is started until `steward/project/up`). */
export const PROJECT_OPEN = "steward/project/open";

/** Request: start every module of a project in dependency order. */
export const PROJECT_UP = "steward/project/up";

/** Request: stop every module of a project (dependents first). */
export const PROJECT_DOWN = "steward/project/down";

/** Request: start one module (and what it requires). */
export const MODULE_START = "steward/module/start";

/** Request: stop one module (its dependents keep running). */
export const MODULE_STOP = "steward/module/stop";

/** Request: restart one module. */
export const MODULE_RESTART = "steward/module/restart";

/** Request: the profiles a project declares and the active one. */
export const PROFILE_LIST = "steward/profile/list";

/** Request: switch a project's profile (only what differs is started, stopped or restarted). */
export const PROFILE_USE = "steward/profile/use";

/** Request: stored log lines, filtered and paged. */
export const LOGS_QUERY = "steward/logs/query";

/** Request: follow log lines matching a filter; they arrive as `steward/logs/append` notifications. */
export const LOGS_SUBSCRIBE = "steward/logs/subscribe";

/** Request: stop following. */
export const LOGS_UNSUBSCRIBE = "steward/logs/unsubscribe";

/** Request: one ranked search over notes, events and logs. */
export const MEMORY_SEARCH = "steward/memory/search";

/** Request: store a note in the memory. */
export const MEMORY_REMEMBER = "steward/memory/remember";

/** Request: one note, whole (search hits carry a snippet). */
export const MEMORY_NOTE = "steward/memory/note";

/** Request: stored events, filtered and paged. */
export const EVENTS_QUERY = "steward/events/query";

/** Request: stop every project and end the daemon. */
export const DAEMON_STOP = "steward/daemon/stop";

/** Notification (daemon → client): a batch of log lines for one subscription. */
export const LOGS_APPEND = "steward/logs/append";

/** Notification (daemon → every initialized client): something happened to a project. */
export const EVENT = "steward/event";

/** A module's lifecycle state. */
export type ModuleState =
  /** Known, dependencies not yet checked. */
  | "installed"
  /** Waiting to be started (or for its requirements to become ready). */
  | "resolved"
  /** Process spawned, not yet ready. */
  | "starting"
  /** Process up (and healthy, when it has a probe; see `health`). */
  | "running"
  /** Stop signal sent, waiting for the process group to exit. */
  | "stopping"
  /** Stopped on request. */
  | "stopped"
  /** Exited on its own and will not be restarted. */
  | "exited"
  /** Gave up (restart loop, could not start, …); see `reason`. */
  | "failed"
  /** Waiting before the next restart; see `retryInMs`. */
  | "backoff"
;

/** The last health-check verdict of a running module. */
export type Health =
  /** No probe: running means started. */
  | "none"
  /** The last probe passed. */
  | "healthy"
  /** `retries` consecutive probes failed. */
  | "unhealthy"
;

/** Severity of a log line or an event, ordered `trace < debug < info < warn < error`. */
export type Level =
  /** Finest detail. */
  | "trace"
  /** Debugging detail. */
  | "debug"
  /** Normal operation. */
  | "info"
  /** Unexpected but not a failure. */
  | "warn"
  /** A failure. */
  | "error"
;

/** Which pipe a log line came from. */
export type Stream =
  /** Standard output. */
  | "stdout"
  /** Standard error. */
  | "stderr"
;

/** The kinds of entries in the memory. */
export type MemoryKind =
  /** A module's log line. */
  | "log"
  /** An engine event. */
  | "event"
  /** A note: remembered by someone, or written automatically for an incident (a crash and its last lines). */
  | "note"
;

/** The kinds of stored events (the `kind` of `EventDetail` that are recorded). */
export type EventKind =
  /** A module changed state. */
  | "transition"
  /** A process run began. */
  | "runStarted"
  /** A process run ended. */
  | "runEnded"
  /** A configuration change (reload, profile switch) was applied. */
  | "configApplied"
  /** A configuration change was rejected; the last good one keeps running. */
  | "configRejected"
;

/** One module of a project, as front ends show it. */
export interface ModuleStatus {
  /** Module name. */
  name: string;
  /** Lifecycle state. */
  state: ModuleState;
  /** Whether it should be running (up, or started on its own). */
  wanted: boolean;
  /** Process (and process group) id, while a process exists. */
  pid?: number;
  /** Current run id, while a process exists. */
  run?: number;
  /** Health verdict, when running. */
  health?: Health;
  /** Automatic restarts since the project was opened. */
  restarts: number;
  /** Milliseconds spent in the current state. */
  stateForMs: number;
  /** How the last run ended, in words. */
  lastExit?: string;
  /** Requirements that are not ready yet (why a `resolved` module waits). */
  waitingFor?: string[];
  /** Why it failed (`failed`). */
  reason?: string;
  /** Exit code (`exited`). */
  exitCode?: number;
  /** Signal that ended it (`exited`). */
  signal?: number;
  /** Delay before the next restart (`backoff`). */
  retryInMs?: number;
  /** Restart attempt within the current window (`backoff`). */
  attempt?: number;
  /**
   * CPU use of the module's whole process tree over the last sampling interval, percent of one core
   * (while it has a process and once it was sampled twice).
   */
  cpuPercent?: number;
  /** Resident memory of the module's whole process tree, bytes (while it has a process). */
  rssBytes?: number;
}

/** One open project. */
export interface ProjectStatus {
  /** Absolute path of the stack file: the project's id. */
  path: string;
  /** `[project] name` (or the stack file's directory name). */
  name: string;
  /** Active profile (none = every module, no overrides). */
  profile?: string;
  /** Whether the stack is meant to be up. */
  up: boolean;
  /** Modules in start order. */
  modules: ModuleStatus[];
  /** Errors of the last rejected configuration change (the running stack kept its last good one). */
  configErrors?: string[];
  /** When the daemon opened it. */
  openedMs: number;
}

/**
 * A stack-file error, positioned for editors (1-based lines and columns, columns in characters, end
 * exclusive) and for people (`rendered`, rustc-style).
 */
export interface Diagnostic {
  /** File the error is in (empty for errors not about a file). */
  file: string;
  /** Line of the start. */
  line: number;
  /** Column of the start. */
  column: number;
  /** Line of the end. */
  endLine: number;
  /** Column just past the end. */
  endColumn: number;
  /** Dotted key path (`modules.api.health.interval`), when the error is about a key. */
  key?: string;
  /** What is wrong. */
  message: string;
  /** What would have been accepted. */
  expected?: string;
  /** A hint ("did you mean `health`?"). */
  help?: string;
  /** The whole error rendered for a terminal. */
  rendered: string;
}

/** `data` of an `ERROR_CONFIG_INVALID` error. */
export interface ConfigErrorData {
  /** The stack file that was loaded. */
  path: string;
  /** Every error found. */
  diagnostics: Diagnostic[];
}

/** The outcome of a command that may wait (`up`, `down`, module start/stop/restart, profile switch). */
export interface ActionResult {
  /** True when the wait ended as wished (or when not waiting: the command was accepted). */
  ok: boolean;
  /** The wait ran out of time (`ok` is false). */
  timedOut?: boolean;
  /** The module that failed while waiting, and why (`ok` is false). */
  failed?: ModuleFailure;
  /** The project afterwards. */
  project: ProjectStatus;
}

/** Which module failed and why. */
export interface ModuleFailure {
  /** Module name. */
  module: string;
  /** State it ended in. */
  state: ModuleState;
  /** Why, in words ("exited with status 1", "restart loop: …"). */
  reason: string;
}

/** Params of `steward/status`. */
export interface StatusParams {
  /** Only this project (path or name); all open projects when left out. */
  project?: string;
}

/** Result of `steward/status`. */
export interface StatusResult {
  /** Daemon version (the `steward` package version). */
  version: string;
  /** `PROTOCOL_VERSION` of the daemon. */
  protocolVersion: number;
  /** Daemon process id. */
  pid: number;
  /** When the daemon started. */
  startedMs: number;
  /** Milliseconds since it started. */
  uptimeMs: number;
  /** Its home directory (`STEWARD_HOME`). */
  home: string;
  /** Open projects, in the order they were opened. */
  projects: ProjectStatus[];
  /** The daemon's IPC score, 0–100 (see `IpcStats`; docs/metrics.md has the formula). */
  ipcScore?: number;
  /** The IPC load behind the score. */
  ipc?: IpcStats;
  /** The machine, as last sampled. */
  system?: SystemMetrics;
  /** Alerts that are firing now. */
  alerts?: Alert[];
}

/** Params of `steward/project/open`. */
export interface OpenParams {
  /**
   * The stack file, or a directory containing `steward.toml`. Relative paths are resolved against the
   * daemon's working directory, so clients should send absolute paths.
   */
  path: string;
  /**
   * Profile to apply (default: the file's `[project] profile`). When the project is already open and this
   * differs from its active profile, the profile is switched.
   */
  profile?: string;
  /**
   * Variables that `${VAR}` may refer to, on top of the daemon's own environment (these win). Only used
   * when the project is not open yet.
   */
  env?: Record<string, string>;
}

/** Params of `steward/project/up`. */
export interface UpParams {
  /** Project path or name. */
  project: string;
  /** Switch to this profile first. */
  profile?: string;
  /** Wait until every module is ready (or exited 0), or one fails (default true). */
  wait?: boolean;
  /** How long to wait (default 120000). */
  timeoutMs?: number;
}

/** Params of `steward/project/down`. */
export interface DownParams {
  /** Project path or name. */
  project: string;
  /** Wait until no module process is left (default true). */
  wait?: boolean;
  /** How long to wait (default 120000). */
  timeoutMs?: number;
}

/** Params of `steward/module/start`, `steward/module/stop` and `steward/module/restart`. */
export interface ModuleParams {
  /** Project path or name. */
  project: string;
  /** Module name. */
  module: string;
  /** Wait until the module is ready (start, restart) or has no process (stop), or fails (default false). */
  wait?: boolean;
  /** How long to wait (default 120000). */
  timeoutMs?: number;
}

/** Params of `steward/profile/list`. */
export interface ProfileListParams {
  /** Project path or name. */
  project: string;
}

/** One declared profile. */
export interface ProfileInfo {
  /** Profile name. */
  name: string;
  /** Modules it lists (they also bring what they require); absent = every module. */
  modules?: string[];
  /** This is the file's `[project] profile`. */
  isDefault: boolean;
}

/** Result of `steward/profile/list`. */
export interface ProfileListResult {
  /** Active profile. */
  active?: string;
  /** Declared profiles, by name. */
  profiles: ProfileInfo[];
}

/** Params of `steward/profile/use`. */
export interface ProfileUseParams {
  /** Project path or name. */
  project: string;
  /**
   * Profile to switch to; `null` = the stack file's default (`[project] profile`, or every module when it
   * names none).
   */
  profile: string | null;
  /** Wait until the modules of the new profile are ready, when the project is up (default false). */
  wait?: boolean;
  /** How long to wait (default 120000). */
  timeoutMs?: number;
}

/** A stored log line. */
export interface LogEntry {
  /** Row id: increases in arrival order; the paging cursor (`afterId`, `beforeId`). */
  id: number;
  /** Capture time. */
  tsMs: number;
  /** Project (stack file path). */
  project: string;
  /** Module. */
  module: string;
  /** Process run. */
  run: number;
  /** Pipe. */
  stream: Stream;
  /** Level, parsed (JSON lines) or guessed. */
  level?: Level;
  /** The line, secrets masked, ANSI escapes stripped. */
  text: string;
  /** The line with its ANSI escapes (colours), when it had any. */
  ansi?: string;
  /** The line was longer than the capture limit and was cut. */
  truncated?: boolean;
  /** A secret was masked in it. */
  masked?: boolean;
  /** Fields of a JSON line. */
  fields?: unknown;
}

/**
 * Params of `steward/logs/query`. Paging: with `afterId`, the `limit` lines just after it (follow
 * forward); otherwise the `limit` lines just before `beforeId` (or the newest). Always oldest first.
 */
export interface LogQueryParams {
  /** Project path or name. */
  project?: string;
  /** Module. */
  module?: string;
  /** Process run. */
  run?: number;
  /** Minimum level (lines of unknown level are left out). */
  level?: Level;
  /** Words that must all occur (full-text search). */
  text?: string;
  /** Exact, case-sensitive substring (like `grep -F`). */
  grep?: string;
  /** At or after this time. */
  sinceMs?: number;
  /** At or before this time. */
  untilMs?: number;
  /** Lines with a greater id, oldest first. */
  afterId?: number;
  /** Lines with a smaller id. */
  beforeId?: number;
  /** Maximum lines (default 100, at most `MAX_QUERY_LIMIT`). */
  limit?: number;
}

/** Result of `steward/logs/query`. */
export interface LogQueryResult {
  /** Lines, oldest first. */
  lines: LogEntry[];
}

/** What a log subscription follows. */
export interface LogFilter {
  /** Project path or name. */
  project?: string;
  /** Module. */
  module?: string;
  /** Minimum level. */
  level?: Level;
  /** Exact, case-sensitive substring. */
  grep?: string;
}

/** Params of `steward/logs/subscribe`. */
export interface LogSubscribeParams {
  /** Which lines. */
  filter?: LogFilter;
}

/** Result of `steward/logs/subscribe`. */
export interface LogSubscribeResult {
  /** Subscription id, named by every `steward/logs/append` for it. */
  subscription: number;
  /**
   * Id of the newest stored line when the subscription began: every line after it is delivered; query
   * history with `beforeId: cursor + 1` to get a gap-free, duplicate-free view.
   */
  cursor: number;
}

/** Params of `steward/logs/unsubscribe`. */
export interface LogUnsubscribeParams {
  /** Subscription id. */
  subscription: number;
}

/** Result of `steward/logs/unsubscribe`. */
export interface LogUnsubscribeResult {
  /** The subscription existed and is gone. */
  removed: boolean;
}

/** Params of the `steward/logs/append` notification. */
export interface LogAppendParams {
  /** The subscription. */
  subscription: number;
  /** New lines, oldest first. */
  lines: LogEntry[];
}

/** Params of `steward/memory/search`. */
export interface MemorySearchParams {
  /** Words (all must occur), `"quoted phrases"`, `prefix*`; empty = the most recent entries. */
  query?: string;
  /** Project path or name. */
  project?: string;
  /** Module. */
  module?: string;
  /** Kinds to search (default: all). */
  kinds?: MemoryKind[];
  /** Minimum level of logs and events (notes are not filtered by level). */
  level?: Level;
  /** At or after this time. */
  sinceMs?: number;
  /** At or before this time. */
  untilMs?: number;
  /** Maximum hits (default 20, at most 500). */
  limit?: number;
}

/** One search result. */
export interface MemoryHit {
  /** What it is. */
  kind: MemoryKind;
  /** Row id within its kind. */
  id: number;
  /** When. */
  tsMs: number;
  /** Project (stack file path; empty for notes not tied to a project). */
  project: string;
  /** Module, when the entry belongs to one. */
  module?: string;
  /** Process run (logs). */
  run?: number;
  /** Level (logs and events). */
  level?: Level;
  /** Excerpt around the match; each matched term is wrapped in U+0001 … U+0002 and `…` marks cuts. */
  snippet: string;
  /** Higher is better (BM25 relevance weighted by kind, plus recency). */
  score: number;
}

/** Result of `steward/memory/search`. */
export interface MemorySearchResult {
  /** Best first. */
  hits: MemoryHit[];
}

/** Params of `steward/memory/remember`. */
export interface RememberParams {
  /** The note (secrets in it are masked). */
  text: string;
  /** Tags. */
  tags?: string[];
  /** Project path or name (left out: a note not tied to a project). */
  project?: string;
  /** Module it is about. */
  module?: string;
  /** Where it comes from: `cli` (default), `editor`, … */
  source?: string;
}

/** Result of `steward/memory/remember`. */
export interface RememberResult {
  /** Note id (the note is durably stored when this returns). */
  id: number;
}

/** Params of `steward/memory/note`. */
export interface NoteParams {
  /** Note id (a `MemoryHit` of kind `note`, or a `RememberResult`). */
  id: number;
}

/** A stored note, whole. */
export interface Note {
  /** Note id. */
  id: number;
  /** When it was stored. */
  tsMs: number;
  /** Project (stack file path; empty for a note not tied to a project). */
  project: string;
  /** Module it is about. */
  module?: string;
  /** The text (secrets masked). */
  text: string;
  /** Tags (`incident` on the daemon's crash notes). */
  tags: string[];
  /** Where it came from: `cli`, `editor`, `incident` (written by the daemon for a crash), `alert`, `resume`, … */
  source: string;
}

/** Result of `steward/memory/note`. */
export interface NoteResult {
  /** The note; absent when no note has that id (never stored, or dropped by retention). */
  note?: Note;
}

/** Params of `steward/events/query`. Paged like `steward/logs/query`. */
export interface EventQueryParams {
  /** Project path or name. */
  project?: string;
  /** Module. */
  module?: string;
  /** Only these kinds (default: all). */
  kinds?: EventKind[];
  /** Minimum level. */
  level?: Level;
  /** At or after this time. */
  sinceMs?: number;
  /** At or before this time. */
  untilMs?: number;
  /** Events with a greater id, oldest first. */
  afterId?: number;
  /** Events with a smaller id. */
  beforeId?: number;
  /** Maximum events (default 100, at most `MAX_QUERY_LIMIT`). */
  limit?: number;
}

/** A stored event. */
export interface EventRecord {
  /** Row id. */
  id: number;
  /** When. */
  tsMs: number;
  /** Project (stack file path). */
  project: string;
  /** Module, when the event concerns one. */
  module?: string;
  /** Kind. */
  kind: EventKind;
  /** Error for failures and non-zero exits, warn for backoff, info otherwise. */
  level: Level;
  /** One line for people. */
  text: string;
  /** The event's details as the engine recorded them. */
  payload: unknown;
}

/** Result of `steward/events/query`. */
export interface EventQueryResult {
  /** Events, oldest first. */
  events: EventRecord[];
}

/** Params of `steward/daemon/stop` (none). */
export interface DaemonStopParams {
}

/** Result of `steward/daemon/stop`. */
export interface DaemonStopResult {
  /** Process id of the daemon that is stopping (wait for it to exit). */
  pid: number;
}

/** Method name of `Metrics`. */
export const METRICS = "steward/metrics";

/** Method name of `Alerts`. */
export const ALERTS = "steward/alerts";

/** Method name of the `IpcChanged` notification. */
export const IPC = "steward/ipc";

/** The machine, as last sampled. */
export interface SystemMetrics {
  /** When it was sampled. */
  atMs: number;
  /** CPU busy, percent of all cores (absent on platforms without it, and before the second sample). */
  cpuPercent?: number;
  /** Logical CPUs. */
  cpus: number;
  /** Total memory, bytes. */
  memTotalBytes: number;
  /** Memory in use (total − available), bytes. */
  memUsedBytes: number;
  /** The volume whose disk is reported (the daemon's home). */
  diskPath: string;
  /** Its size, bytes. */
  diskTotalBytes: number;
  /** Its used space, bytes. */
  diskUsedBytes: number;
}

/** The daemon's JSON-RPC traffic over the last sampling interval, and the IPC score it gives. */
export interface IpcStats {
  /** The score, 0–100: the largest of the four components. */
  score: number;
  /** Messages in and out per second. */
  messagesPerSec: number;
  /** Bytes in and out per second. */
  bytesPerSec: number;
  /** Median request latency (handler time), ms; 0 when no request was served. */
  latencyP50Ms: number;
  /** 95th-percentile request latency, ms. */
  latencyP95Ms: number;
  /** Requests answered with an error, and rejected messages, percent of requests. */
  errorPercent: number;
  /** Fullest outgoing queue among the sessions, percent of its limit. */
  queueFillPercent: number;
  /** Components of the score, each 0–100 against its budget. */
  components: IpcComponents;
  /** Totals since the daemon started. */
  totals: IpcTotals;
  /** Open sessions and their outgoing queues. */
  sessions: SessionIpc[];
}

/** The four components of the IPC score, each `min(100, 100 × value / budget)`. */
export interface IpcComponents {
  /** Message rate against 5,000 msg/s. */
  rate: number;
  /** p95 latency against 50 ms. */
  latency: number;
  /** Error share against 5 %. */
  errors: number;
  /** Fullest queue against 100 %. */
  queue: number;
}

/** Counters since the daemon started. */
export interface IpcTotals {
  /** Messages received. */
  messagesIn: number;
  /** Messages sent (responses and notifications). */
  messagesOut: number;
  /** Bytes received. */
  bytesIn: number;
  /** Bytes sent. */
  bytesOut: number;
  /** Requests handled. */
  requests: number;
  /** Requests answered with an error, and messages rejected by the framing. */
  errors: number;
}

/** One session's outgoing queue. */
export interface SessionIpc {
  /** Session id. */
  id: number;
  /** Peer process id, when known. */
  peerPid?: number;
  /** Queue fill, percent of its limit. */
  queueFillPercent: number;
}

/** One module's latest sample. */
export interface ModuleMetrics {
  /** Project (stack file path). */
  project: string;
  /** Module. */
  module: string;
  /** Process group id sampled. */
  pid: number;
  /** CPU of the tree, percent of one core (absent until sampled twice). */
  cpuPercent?: number;
  /** Resident memory of the tree, bytes. */
  rssBytes: number;
  /** Live processes in the tree. */
  processes: number;
  /** The module's memory limit, when it has one. */
  memoryLimitBytes?: number;
}

/** One point of a metrics history. */
export interface MetricPoint {
  /** When. */
  atMs: number;
  /** Project; empty for the daemon-wide series (machine CPU and memory, IPC score). */
  project: string;
  /** Module; empty for the daemon-wide series. */
  module: string;
  /** CPU, percent of one core (module) or of the machine (daemon-wide). */
  cpuPercent: number;
  /** Tree RSS (module) or used memory of the machine (daemon-wide), bytes. */
  memBytes: number;
  /** IPC score (daemon-wide series). */
  ipcScore?: number;
}

/** Which history `steward/metrics` returns. */
export type MetricsResolution =
  /** No history, only the latest samples. */
  | "none"
  /** Every sample (kept in memory for the last hour). */
  | "raw"
  /** One-minute averages (kept in the store for 7 days). */
  | "minute"
;

/** Params of `steward/metrics`. */
export interface MetricsParams {
  /** Only this project (path or name). */
  project?: string;
  /** Only this module (with `project`). */
  module?: string;
  /** History to include (default none). */
  history?: MetricsResolution;
  /** History from this time on (default: the last hour for `raw`, the last day for `minute`). */
  sinceMs?: number;
}

/** Result of `steward/metrics`. */
export interface MetricsResult {
  /** The sampling interval. */
  intervalMs: number;
  /** The machine (absent before the first sample). */
  system?: SystemMetrics;
  /** The IPC load (absent before the first sample). */
  ipc?: IpcStats;
  /** Every module with a process, latest sample. */
  modules: ModuleMetrics[];
  /** History, oldest first (empty unless asked for). */
  history?: MetricPoint[];
}

/** How bad an alert is. */
export type AlertLevel =
  /** Worth knowing. */
  | "info"
  /** Look soon. */
  | "warning"
  /** Look now. */
  | "critical"
  /** Something is about to break. */
  | "emergency"
;

/** One alert: a rule's condition on one subject (the machine, or one module). */
export interface Alert {
  /** Rule: `cpu`, `memory`, `disk`, `ipc`, `moduleCpu`, `moduleMemory`, `restartLoop`, `health`. */
  rule: string;
  /** Severity (the highest reached while it fired). */
  level: AlertLevel;
  /** Project, for module alerts (empty for machine-wide ones). */
  project: string;
  /** Module, for module alerts. */
  module?: string;
  /** What is wrong, in words. */
  message: string;
  /** The value that fired it (percent, or a count). */
  value: number;
  /** The threshold it crossed. */
  threshold: number;
  /** When it fired. */
  firedMs: number;
  /** When it resolved (absent while it fires). */
  resolvedMs?: number;
}

/** Params of `steward/alerts`. */
export interface AlertsParams {
  /** Most resolved alerts to return (default 50, newest first). */
  limit?: number;
}

/** Result of `steward/alerts`. */
export interface AlertsResult {
  /** Firing now. */
  active: Alert[];
  /** Resolved since the daemon started, newest first. */
  resolved: Alert[];
}

/** Params of the `steward/event` notification: one thing that happened to a project. */
export type EventParams = {
  /** Project (stack file path). */
  project: string;
  /** Project name. */
  projectName: string;
  /** When. */
  atMs: number;
} & EventDetail;

/** What happened, tagged by `kind`. */
export type EventDetail =
  /** A module changed state. */
  | {
      kind: "transition";
      /** Module. */
      module: string;
      /** State before. */
      from: ModuleState;
      /** State after. */
      to: ModuleState;
      /** Why, in words ("health check passed", "exited with status 1; restarting in 200ms"). */
      reason: string;
      /** Run of the new state, when it has a process. */
      run?: number;
      /** Process id, when it has a process. */
      pid?: number;
      /** Health (`running`). */
      health?: Health;
      /** Exit code (`exited`). */
      exitCode?: number;
      /** Signal (`exited`). */
      signal?: number;
      /** Delay before the restart (`backoff`). */
      retryInMs?: number;
    }
  /** A process run began. */
  | {
      kind: "runStarted";
      /** Module. */
      module: string;
      /** Run id. */
      run: number;
      /** Process (group) id. */
      pid: number;
    }
  /** A process run ended (its whole process group is gone). */
  | {
      kind: "runEnded";
      /** Module. */
      module: string;
      /** Run id. */
      run: number;
      /** Exit code; absent when killed by a signal. */
      exitCode?: number;
      /** Signal that killed it. */
      signal?: number;
      /** Why it ended ("stopped", "exited with status 1", "health check failed …"). */
      reason: string;
    }
  /** A configuration change (edit of the stack file, profile switch) was applied. */
  | {
      kind: "configApplied";
      /** Active profile. */
      profile?: string;
      /** What was started, stopped and restarted. */
      summary: string;
    }
  /** A configuration change was rejected; the last good configuration keeps running. */
  | {
      kind: "configRejected";
      /** Every error, rendered. */
      errors: string[];
    }
  /** The daemon opened the project (not recorded in the store). */
  | {
      kind: "projectOpened";
    }
  /**
   * A backup was made (`project` names the project it was limited to; empty when it covered every open
   * project). Not recorded in the store: the backup's manifest is the record.
   */
  | {
      kind: "backupCompleted";
      /** Backup id. */
      id: string;
      /** Made by the daemon's schedule (not by a client). */
      scheduled: boolean;
      /** Files in it. */
      files: number;
      /** Their total size. */
      totalBytes: number;
      /** Bytes stored for the first time (the rest was unchanged since an earlier backup). */
      newBytes: number;
      /** How long it took. */
      durationMs: number;
      /** What did not work but did not stop the backup (a failed module hook, …). */
      problems?: string[];
    }
  /** A backup failed and nothing was written; also stored as a note tagged `backup` and `alert`. */
  | {
      kind: "backupFailed";
      /** Started by the daemon's schedule (not by a client). */
      scheduled: boolean;
      /** Why. */
      error: string;
    }
  /**
   * An alert fired, changed level, or resolved (`project` is empty for machine-wide alerts). Also stored as
   * a note tagged `alert`, the rule and the level.
   */
  | {
      kind: "alert";
      /** Rule (see `Alert::rule`). */
      rule: string;
      /** `fired`, `escalated` or `resolved`. */
      state: string;
      /** Severity; `info` when it resolved. */
      level: AlertLevel;
      /** Module, for module alerts. */
      module?: string;
      /** What happened, in words. */
      message: string;
      /** The value measured. */
      value: number;
      /** The threshold. */
      threshold: number;
    }
;

/** Command of the "▶ Start" code lens. Its one argument is a `ModuleCommandArgs`. */
export const COMMAND_START_MODULE = "steward.startModule";

/** Command of the "⟳ Restart" code lens. Its one argument is a `ModuleCommandArgs`. */
export const COMMAND_RESTART_MODULE = "steward.restartModule";

/** Command of the "■ Stop" code lens (shown for modules that have a process). Argument: `ModuleCommandArgs`. */
export const COMMAND_STOP_MODULE = "steward.stopModule";

/** Command of the "☰ Logs" code lens. Its one argument is a `ModuleCommandArgs`. */
export const COMMAND_VIEW_LOGS = "steward.viewLogs";

/** The one argument of the code lens commands. */
export interface ModuleCommandArgs {
  /** Absolute path of the stack's root file (`steward.toml`, also for lenses in `modules.d/` files). */
  project: string;
  /** Module name. */
  module: string;
}

/** Request: back up the store, the stack files of open projects and their modules' `backup` hooks. */
export const BACKUP_CREATE = "steward/backup/create";

/** Request: store maintenance (vacuum, reindex or prune), with progress. */
export const DB_MAINTAIN = "steward/db/maintain";

/** Request: whether the daemon really works: the store takes writes, every module is in its desired state. */
export const HEALTH = "steward/health";

/** Notification (daemon → client): progress of a long request, as LSP's work-done progress. */
export const PROGRESS = "$/progress";

/** Params of `steward/backup/create`. */
export interface BackupCreateParams {
  /**
   * Only this open project's stack files and hooks (path or name); the store is always included. Every
   * open project when left out.
   */
  project?: string;
  /** Token for `$/progress` notifications about this backup, sent to the calling session only. */
  workDoneToken?: string;
}

/** How one module's backup hook went. */
export interface BackupHookOutcome {
  /** Project (stack file path). */
  project: string;
  /** Module. */
  module: string;
  /** It exited 0 and its output is in the backup. */
  ok: boolean;
  /** Why not (exit status and the last lines of its stderr, or the timeout). */
  error?: string;
  /** How long it ran. */
  durationMs: number;
}

/** Result of `steward/backup/create`: the backup that was made. */
export interface BackupSummary {
  /** Backup id (`YYYYMMDDTHHMMSSZ`, UTC). */
  id: string;
  /** The repository it is in. */
  dir: string;
  /** When it started. */
  createdMs: number;
  /** How long it took. */
  durationMs: number;
  /** Files in it. */
  files: number;
  /** Their total size. */
  totalBytes: number;
  /** Bytes stored for the first time (the rest was unchanged since an earlier backup). */
  newBytes: number;
  /** Projects whose files are in it (stack file paths). */
  projects: string[];
  /** Every module hook that ran. */
  hooks: BackupHookOutcome[];
  /** What did not work but did not stop the backup. */
  problems: string[];
  /** Backups the retention policy removed afterwards (scheduled backups prune; others do not). */
  pruned?: string[];
}

/** What `steward/db/maintain` does. */
export type DbAction =
  /** Rewrite the database file without its free pages (and truncate the WAL). */
  | "vacuum"
  /** Rebuild every full-text index from the stored rows. */
  | "reindex"
  /** Apply the retention policy now. */
  | "prune"
;

/** Params of `steward/db/maintain`. */
export interface DbMaintainParams {
  /** What to do. */
  action: DbAction;
  /** Only say what would be done. */
  dryRun?: boolean;
  /** Token for `$/progress` notifications, sent to the calling session only. */
  workDoneToken?: string;
}

/** Result of `steward/db/maintain`. */
export interface DbMaintainResult {
  /** What was done. */
  action: DbAction;
  /** Nothing was changed. */
  dryRun: boolean;
  /** Size of the database file and its WAL before. */
  fileBytesBefore: number;
  /** … and after. */
  fileBytesAfter: number;
  /** Bytes in use inside the file before. */
  usedBytesBefore: number;
  /** … and after. */
  usedBytesAfter: number;
  /** Log lines deleted (prune; with `dryRun`: that would be). */
  logsDeleted: number;
  /** Events deleted (prune; with `dryRun`: that would be). */
  eventsDeleted: number;
  /** Log lines indexed (reindex; with `dryRun`: that would be). */
  rowsIndexed: number;
  /** How long it took. */
  durationMs: number;
  /** One line for people. */
  summary: string;
}

/** Params of `steward/health` (none). */
export interface HealthParams {
}

/** The verdict of `steward/health`. */
export type HealthStatus =
  /** Everything works. */
  | "ok"
  /** The daemon answers but something is wrong (a module failed, the store refuses writes). */
  | "degraded"
  /** The daemon does not work (shutting down; a client that gets no answer reports this too). */
  | "down"
;

/** One check of `steward/health`. */
export interface HealthCheckResult {
  /** `socket`, `store`, or `project:<name>`. */
  name: string;
  /** It passed. */
  ok: boolean;
  /** What was found. */
  detail: string;
}

/** Result of `steward/health`. */
export interface HealthReport {
  /** The verdict. */
  status: HealthStatus;
  /** One line: why (the first failed check), or what is fine. */
  reason: string;
  /** Every check. */
  checks: HealthCheckResult[];
  /** Daemon version. */
  version: string;
  /** Daemon process id. */
  pid: number;
  /** Milliseconds since the daemon started. */
  uptimeMs: number;
  /** The store's counters, when they could be read. */
  store?: StoreCounters;
}

/** What the store holds and how far its full-text index is behind (part of `HealthReport`). */
export interface StoreCounters {
  /** Log lines stored. */
  logLines: number;
  /** Stored log lines not yet in the full-text index (searches scan them; 0 once indexing caught up). */
  unindexedLines: number;
  /** Bytes in use in the database file. */
  usedBytes: number;
  /** Log lines the store could not write since the daemon started (full disk, I/O errors). */
  droppedLines: number;
}

/** A step of work-done progress, tagged by `kind` (as in LSP). */
export type WorkDoneProgress =
  /** The work starts. */
  | {
      kind: "begin";
      /** What it is ("Backup", "Reindex"). */
      title: string;
      /** Always false: Steward's long requests cannot be cancelled. */
      cancellable?: boolean;
      /** Details. */
      message?: string;
      /** 0–100, when known. */
      percentage?: number;
    }
  /** The work goes on. */
  | {
      kind: "report";
      /** What it is doing now. */
      message?: string;
      /** 0–100, when known (never decreases). */
      percentage?: number;
    }
  /** The work is over (the request's answer follows). */
  | {
      kind: "end";
      /** How it ended. */
      message?: string;
    }
;

/** Params of the `$/progress` notification. */
export interface ProgressParams {
  /** The request's `workDoneToken`; for a scheduled backup `scheduledBackup/<ms>`, sent to every session. */
  token: string;
  /** The step. */
  value: WorkDoneProgress;
}

/** Every request: method name → params and result types. */
export interface Requests {
  "steward/status": { params: StatusParams; result: StatusResult };
  "steward/project/open": { params: OpenParams; result: ProjectStatus };
  "steward/project/up": { params: UpParams; result: ActionResult };
  "steward/project/down": { params: DownParams; result: ActionResult };
  "steward/module/start": { params: ModuleParams; result: ActionResult };
  "steward/module/stop": { params: ModuleParams; result: ActionResult };
  "steward/module/restart": { params: ModuleParams; result: ActionResult };
  "steward/profile/list": { params: ProfileListParams; result: ProfileListResult };
  "steward/profile/use": { params: ProfileUseParams; result: ActionResult };
  "steward/logs/query": { params: LogQueryParams; result: LogQueryResult };
  "steward/logs/subscribe": { params: LogSubscribeParams; result: LogSubscribeResult };
  "steward/logs/unsubscribe": { params: LogUnsubscribeParams; result: LogUnsubscribeResult };
  "steward/memory/search": { params: MemorySearchParams; result: MemorySearchResult };
  "steward/memory/remember": { params: RememberParams; result: RememberResult };
  "steward/memory/note": { params: NoteParams; result: NoteResult };
  "steward/events/query": { params: EventQueryParams; result: EventQueryResult };
  "steward/daemon/stop": { params: DaemonStopParams; result: DaemonStopResult };
  "steward/metrics": { params: MetricsParams; result: MetricsResult };
  "steward/alerts": { params: AlertsParams; result: AlertsResult };
  "steward/backup/create": { params: BackupCreateParams; result: BackupSummary };
  "steward/db/maintain": { params: DbMaintainParams; result: DbMaintainResult };
  "steward/health": { params: HealthParams; result: HealthReport };
}

/** Every notification from the daemon: method name → params type. */
export interface Notifications {
  "steward/logs/append": LogAppendParams;
  "steward/ipc": IpcStats;
  "steward/event": EventParams;
  "$/progress": ProgressParams;
}
