//! Every Steward-specific JSON-RPC method and notification: names, params, results, error codes.
//!
//! This file is the protocol. `docs/api.md` documents it (a test checks that every method here is described
//! there and that the doc records this file's current hash) and `protocol/ts/steward-protocol.ts` is generated
//! from it (a test fails when the checked-in file is stale; `UPDATE_TS=1 cargo test -p steward-protocol`
//! rewrites it). Keep to the serde attributes the generator understands: `rename_all = "camelCase"`,
//! `tag`, `rename_all_fields`, `default`, `skip_serializing_if`, `flatten`.
//!
//! Conventions:
//! - Names on the wire are camelCase. Times are milliseconds since the Unix epoch (`…Ms`) or durations in
//!   milliseconds (`…ForMs`, `timeoutMs`).
//! - A project is named by its stack file's absolute path (`ProjectStatus::path`, the id used everywhere,
//!   including in the store) or, when unambiguous among open projects, by its `[project] name`.
//! - Optional params may be left out; a method without required params accepts absent params, `null` or `{}`.
//! - Unknown fields in params are ignored (newer clients can talk to older daemons).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A request: a method name with its params and result types.
pub trait Request {
    /// JSON-RPC method name.
    const METHOD: &'static str;
    /// The `params` object.
    type Params: Serialize + DeserializeOwned + Send + 'static;
    /// The `result` value.
    type Result: Serialize + DeserializeOwned + Send + 'static;
}

/// A notification from the daemon to clients.
pub trait Notification {
    /// JSON-RPC method name.
    const METHOD: &'static str;
    /// The `params` object.
    type Params: Serialize + DeserializeOwned + Send + 'static;
}

// ---------------------------------------------------------------------------------------------------------
// Limits and error codes

/// Version of this protocol; bumped on incompatible changes. Reported by `steward/status`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest header block of one message (bytes up to and including the blank line). Larger → -32700 and the
/// connection is closed.
pub const MAX_HEADER_BYTES: u32 = 8192;

/// Largest `Content-Length` accepted. Larger → -32700 and the connection is closed.
pub const MAX_MESSAGE_BYTES: u32 = 16 * 1024 * 1024;

/// Largest `limit` of `steward/logs/query` and `steward/events/query` (larger values are clamped).
pub const MAX_QUERY_LIMIT: u32 = 5000;

/// JSON-RPC error code: the stack file does not load. `data` is a [`ConfigErrorData`].
pub const ERROR_CONFIG_INVALID: i64 = 1001;
/// JSON-RPC error code: no open project has that path or name (`data.available` lists the open ones).
pub const ERROR_PROJECT_NOT_FOUND: i64 = 1002;
/// JSON-RPC error code: a project name matches several open projects; use the path.
pub const ERROR_PROJECT_AMBIGUOUS: i64 = 1003;
/// JSON-RPC error code: the project has no such module (in its active profile).
pub const ERROR_MODULE_NOT_FOUND: i64 = 1004;
/// JSON-RPC error code: the store failed (disk full, corrupt database, …).
pub const ERROR_STORE: i64 = 1005;
/// JSON-RPC error code: the daemon is shutting down and takes no new work.
pub const ERROR_SHUTTING_DOWN: i64 = 1006;

// ---------------------------------------------------------------------------------------------------------
// Method names

/// Request: the daemon and every open project.
pub const STATUS: &str = "steward/status";
/// Request: load a stack file and start supervising it (nothing is started until `steward/project/up`).
pub const PROJECT_OPEN: &str = "steward/project/open";
/// Request: start every module of a project in dependency order.
pub const PROJECT_UP: &str = "steward/project/up";
/// Request: stop every module of a project (dependents first).
pub const PROJECT_DOWN: &str = "steward/project/down";
/// Request: start one module (and what it requires).
pub const MODULE_START: &str = "steward/module/start";
/// Request: stop one module (its dependents keep running).
pub const MODULE_STOP: &str = "steward/module/stop";
/// Request: restart one module.
pub const MODULE_RESTART: &str = "steward/module/restart";
/// Request: the profiles a project declares and the active one.
pub const PROFILE_LIST: &str = "steward/profile/list";
/// Request: switch a project's profile (only what differs is started, stopped or restarted).
pub const PROFILE_USE: &str = "steward/profile/use";
/// Request: stored log lines, filtered and paged.
pub const LOGS_QUERY: &str = "steward/logs/query";
/// Request: follow log lines matching a filter; they arrive as `steward/logs/append` notifications.
pub const LOGS_SUBSCRIBE: &str = "steward/logs/subscribe";
/// Request: stop following.
pub const LOGS_UNSUBSCRIBE: &str = "steward/logs/unsubscribe";
/// Request: one ranked search over notes, events and logs.
pub const MEMORY_SEARCH: &str = "steward/memory/search";
/// Request: store a note in the memory.
pub const MEMORY_REMEMBER: &str = "steward/memory/remember";
/// Request: one note, whole (search hits carry a snippet).
pub const MEMORY_NOTE: &str = "steward/memory/note";
/// Request: stored events, filtered and paged.
pub const EVENTS_QUERY: &str = "steward/events/query";
/// Request: stop every project and end the daemon.
pub const DAEMON_STOP: &str = "steward/daemon/stop";

/// Notification (daemon → client): a batch of log lines for one subscription.
pub const LOGS_APPEND: &str = "steward/logs/append";
/// Notification (daemon → every initialized client): something happened to a project.
pub const EVENT: &str = "steward/event";

// ---------------------------------------------------------------------------------------------------------
// Shared types

/// A module's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ModuleState {
    /// Known, dependencies not yet checked.
    Installed,
    /// Waiting to be started (or for its requirements to become ready).
    Resolved,
    /// Process spawned, not yet ready.
    Starting,
    /// Process up (and healthy, when it has a probe; see `health`).
    Running,
    /// Stop signal sent, waiting for the process group to exit.
    Stopping,
    /// Stopped on request.
    Stopped,
    /// Exited on its own and will not be restarted.
    Exited,
    /// Gave up (restart loop, could not start, …); see `reason`.
    Failed,
    /// Waiting before the next restart; see `retryInMs`.
    Backoff,
}

/// The last health-check verdict of a running module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Health {
    /// No probe: running means started.
    None,
    /// The last probe passed.
    Healthy,
    /// `retries` consecutive probes failed.
    Unhealthy,
}

/// Severity of a log line or an event, ordered `trace < debug < info < warn < error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Level {
    /// Finest detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Unexpected but not a failure.
    Warn,
    /// A failure.
    Error,
}

/// Which pipe a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// The kinds of entries in the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MemoryKind {
    /// A module's log line.
    Log,
    /// An engine event.
    Event,
    /// A note: remembered by someone, or written automatically for an incident (a crash and its last lines).
    Note,
}

/// The kinds of stored events (the `kind` of [`EventDetail`] that are recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    /// A module changed state.
    Transition,
    /// A process run began.
    RunStarted,
    /// A process run ended.
    RunEnded,
    /// A configuration change (reload, profile switch) was applied.
    ConfigApplied,
    /// A configuration change was rejected; the last good one keeps running.
    ConfigRejected,
}

/// One module of a project, as front ends show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleStatus {
    /// Module name.
    pub name: String,
    /// Lifecycle state.
    pub state: ModuleState,
    /// Whether it should be running (up, or started on its own).
    pub wanted: bool,
    /// Process (and process group) id, while a process exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Current run id, while a process exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    /// Health verdict, when running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Automatic restarts since the project was opened.
    pub restarts: u32,
    /// Milliseconds spent in the current state.
    pub state_for_ms: u64,
    /// How the last run ended, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// Requirements that are not ready yet (why a `resolved` module waits).
    #[serde(default)]
    pub waiting_for: Vec<String>,
    /// Why it failed (`failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Exit code (`exited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal that ended it (`exited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Delay before the next restart (`backoff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Restart attempt within the current window (`backoff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// CPU use of the module's whole process tree over the last sampling interval, percent of one core
    /// (while it has a process and once it was sampled twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Resident memory of the module's whole process tree, bytes (while it has a process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
}

/// One open project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    /// Absolute path of the stack file: the project's id.
    pub path: String,
    /// `[project] name` (or the stack file's directory name).
    pub name: String,
    /// Active profile (none = every module, no overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Whether the stack is meant to be up.
    pub up: bool,
    /// Modules in start order.
    pub modules: Vec<ModuleStatus>,
    /// Errors of the last rejected configuration change (the running stack kept its last good one).
    #[serde(default)]
    pub config_errors: Vec<String>,
    /// When the daemon opened it.
    pub opened_ms: u64,
}

/// A stack-file error, positioned for editors (1-based lines and columns, columns in characters, end
/// exclusive) and for people (`rendered`, rustc-style).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// File the error is in (empty for errors not about a file).
    pub file: String,
    /// Line of the start.
    pub line: u32,
    /// Column of the start.
    pub column: u32,
    /// Line of the end.
    pub end_line: u32,
    /// Column just past the end.
    pub end_column: u32,
    /// Dotted key path (`modules.api.health.interval`), when the error is about a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What would have been accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// A hint ("did you mean `health`?").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The whole error rendered for a terminal.
    pub rendered: String,
}

/// `data` of an [`ERROR_CONFIG_INVALID`] error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigErrorData {
    /// The stack file that was loaded.
    pub path: String,
    /// Every error found.
    pub diagnostics: Vec<Diagnostic>,
}

/// The outcome of a command that may wait (`up`, `down`, module start/stop/restart, profile switch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionResult {
    /// True when the wait ended as wished (or when not waiting: the command was accepted).
    pub ok: bool,
    /// The wait ran out of time (`ok` is false).
    #[serde(default)]
    pub timed_out: bool,
    /// The module that failed while waiting, and why (`ok` is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<ModuleFailure>,
    /// The project afterwards.
    pub project: ProjectStatus,
}

/// Which module failed and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleFailure {
    /// Module name.
    pub module: String,
    /// State it ended in.
    pub state: ModuleState,
    /// Why, in words ("exited with status 1", "restart loop: …").
    pub reason: String,
}

// ---------------------------------------------------------------------------------------------------------
// steward/status

/// Params of `steward/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusParams {
    /// Only this project (path or name); all open projects when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// Result of `steward/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResult {
    /// Daemon version (the `steward` package version).
    pub version: String,
    /// [`PROTOCOL_VERSION`] of the daemon.
    pub protocol_version: u32,
    /// Daemon process id.
    pub pid: u32,
    /// When the daemon started.
    pub started_ms: u64,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Its home directory (`STEWARD_HOME`).
    pub home: String,
    /// Open projects, in the order they were opened.
    pub projects: Vec<ProjectStatus>,
    /// The daemon's IPC score, 0–100 (see [`IpcStats`]; docs/metrics.md has the formula).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc_score: Option<u32>,
    /// The IPC load behind the score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<IpcStats>,
    /// The machine, as last sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemMetrics>,
    /// Alerts that are firing now.
    #[serde(default)]
    pub alerts: Vec<Alert>,
}

/// `steward/status`.
#[derive(Debug)]
pub enum Status {}
impl Request for Status {
    const METHOD: &'static str = STATUS;
    type Params = StatusParams;
    type Result = StatusResult;
}

// ---------------------------------------------------------------------------------------------------------
// steward/project/*

/// Params of `steward/project/open`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenParams {
    /// The stack file, or a directory containing `steward.toml`. Relative paths are resolved against the
    /// daemon's working directory, so clients should send absolute paths.
    pub path: String,
    /// Profile to apply (default: the file's `[project] profile`). When the project is already open and this
    /// differs from its active profile, the profile is switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Variables that `${VAR}` may refer to, on top of the daemon's own environment (these win). Only used
    /// when the project is not open yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
}

/// `steward/project/open`: result is the project. Errors: [`ERROR_CONFIG_INVALID`] with [`ConfigErrorData`].
#[derive(Debug)]
pub enum ProjectOpen {}
impl Request for ProjectOpen {
    const METHOD: &'static str = PROJECT_OPEN;
    type Params = OpenParams;
    type Result = ProjectStatus;
}

/// Params of `steward/project/up`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpParams {
    /// Project path or name.
    pub project: String,
    /// Switch to this profile first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Wait until every module is ready (or exited 0), or one fails (default true).
    #[serde(default = "default_true")]
    pub wait: bool,
    /// How long to wait (default 120000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `steward/project/up`.
#[derive(Debug)]
pub enum ProjectUp {}
impl Request for ProjectUp {
    const METHOD: &'static str = PROJECT_UP;
    type Params = UpParams;
    type Result = ActionResult;
}

/// Params of `steward/project/down`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownParams {
    /// Project path or name.
    pub project: String,
    /// Wait until no module process is left (default true).
    #[serde(default = "default_true")]
    pub wait: bool,
    /// How long to wait (default 120000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `steward/project/down`.
#[derive(Debug)]
pub enum ProjectDown {}
impl Request for ProjectDown {
    const METHOD: &'static str = PROJECT_DOWN;
    type Params = DownParams;
    type Result = ActionResult;
}

// ---------------------------------------------------------------------------------------------------------
// steward/module/*

/// Params of `steward/module/start`, `steward/module/stop` and `steward/module/restart`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleParams {
    /// Project path or name.
    pub project: String,
    /// Module name.
    pub module: String,
    /// Wait until the module is ready (start, restart) or has no process (stop), or fails (default false).
    #[serde(default)]
    pub wait: bool,
    /// How long to wait (default 120000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `steward/module/start`.
#[derive(Debug)]
pub enum ModuleStart {}
impl Request for ModuleStart {
    const METHOD: &'static str = MODULE_START;
    type Params = ModuleParams;
    type Result = ActionResult;
}

/// `steward/module/stop`.
#[derive(Debug)]
pub enum ModuleStop {}
impl Request for ModuleStop {
    const METHOD: &'static str = MODULE_STOP;
    type Params = ModuleParams;
    type Result = ActionResult;
}

/// `steward/module/restart`.
#[derive(Debug)]
pub enum ModuleRestart {}
impl Request for ModuleRestart {
    const METHOD: &'static str = MODULE_RESTART;
    type Params = ModuleParams;
    type Result = ActionResult;
}

// ---------------------------------------------------------------------------------------------------------
// steward/profile/*

/// Params of `steward/profile/list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileListParams {
    /// Project path or name.
    pub project: String,
}

/// One declared profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileInfo {
    /// Profile name.
    pub name: String,
    /// Modules it lists (they also bring what they require); absent = every module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<String>>,
    /// This is the file's `[project] profile`.
    pub is_default: bool,
}

/// Result of `steward/profile/list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileListResult {
    /// Active profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// Declared profiles, by name.
    pub profiles: Vec<ProfileInfo>,
}

/// `steward/profile/list`.
#[derive(Debug)]
pub enum ProfileList {}
impl Request for ProfileList {
    const METHOD: &'static str = PROFILE_LIST;
    type Params = ProfileListParams;
    type Result = ProfileListResult;
}

/// Params of `steward/profile/use`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileUseParams {
    /// Project path or name.
    pub project: String,
    /// Profile to switch to; `null` = the stack file's default (`[project] profile`, or every module when it
    /// names none).
    pub profile: Option<String>,
    /// Wait until the modules of the new profile are ready, when the project is up (default false).
    #[serde(default)]
    pub wait: bool,
    /// How long to wait (default 120000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `steward/profile/use`. Errors: [`ERROR_CONFIG_INVALID`] (e.g. an unknown profile); the running stack
/// is kept.
#[derive(Debug)]
pub enum ProfileUse {}
impl Request for ProfileUse {
    const METHOD: &'static str = PROFILE_USE;
    type Params = ProfileUseParams;
    type Result = ActionResult;
}

// ---------------------------------------------------------------------------------------------------------
// steward/logs/*

/// A stored log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// Row id: increases in arrival order; the paging cursor (`afterId`, `beforeId`).
    pub id: i64,
    /// Capture time.
    pub ts_ms: u64,
    /// Project (stack file path).
    pub project: String,
    /// Module.
    pub module: String,
    /// Process run.
    pub run: u64,
    /// Pipe.
    pub stream: Stream,
    /// Level, parsed (JSON lines) or guessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// The line, secrets masked, ANSI escapes stripped.
    pub text: String,
    /// The line with its ANSI escapes (colours), when it had any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ansi: Option<String>,
    /// The line was longer than the capture limit and was cut.
    #[serde(default)]
    pub truncated: bool,
    /// A secret was masked in it.
    #[serde(default)]
    pub masked: bool,
    /// Fields of a JSON line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Value>,
}

/// Params of `steward/logs/query`. Paging: with `afterId`, the `limit` lines just after it (follow
/// forward); otherwise the `limit` lines just before `beforeId` (or the newest). Always oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQueryParams {
    /// Project path or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Process run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    /// Minimum level (lines of unknown level are left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Words that must all occur (full-text search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Exact, case-sensitive substring (like `grep -F`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grep: Option<String>,
    /// At or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// At or before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Lines with a greater id, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_id: Option<i64>,
    /// Lines with a smaller id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_id: Option<i64>,
    /// Maximum lines (default 100, at most [`MAX_QUERY_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Result of `steward/logs/query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQueryResult {
    /// Lines, oldest first.
    pub lines: Vec<LogEntry>,
}

/// `steward/logs/query`.
#[derive(Debug)]
pub enum LogsQuery {}
impl Request for LogsQuery {
    const METHOD: &'static str = LOGS_QUERY;
    type Params = LogQueryParams;
    type Result = LogQueryResult;
}

/// What a log subscription follows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogFilter {
    /// Project path or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Minimum level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Exact, case-sensitive substring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grep: Option<String>,
}

/// Params of `steward/logs/subscribe`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogSubscribeParams {
    /// Which lines.
    #[serde(default)]
    pub filter: LogFilter,
}

/// Result of `steward/logs/subscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogSubscribeResult {
    /// Subscription id, named by every `steward/logs/append` for it.
    pub subscription: u64,
    /// Id of the newest stored line when the subscription began: every line after it is delivered; query
    /// history with `beforeId: cursor + 1` to get a gap-free, duplicate-free view.
    pub cursor: i64,
}

/// `steward/logs/subscribe`. Batches arrive as `steward/logs/append`, in id order, at most every ~100 ms.
/// A slow client is sent lines later rather than losing them (they come from the store).
#[derive(Debug)]
pub enum LogsSubscribe {}
impl Request for LogsSubscribe {
    const METHOD: &'static str = LOGS_SUBSCRIBE;
    type Params = LogSubscribeParams;
    type Result = LogSubscribeResult;
}

/// Params of `steward/logs/unsubscribe`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogUnsubscribeParams {
    /// Subscription id.
    pub subscription: u64,
}

/// Result of `steward/logs/unsubscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogUnsubscribeResult {
    /// The subscription existed and is gone.
    pub removed: bool,
}

/// `steward/logs/unsubscribe`.
#[derive(Debug)]
pub enum LogsUnsubscribe {}
impl Request for LogsUnsubscribe {
    const METHOD: &'static str = LOGS_UNSUBSCRIBE;
    type Params = LogUnsubscribeParams;
    type Result = LogUnsubscribeResult;
}

/// Params of the `steward/logs/append` notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogAppendParams {
    /// The subscription.
    pub subscription: u64,
    /// New lines, oldest first.
    pub lines: Vec<LogEntry>,
}

/// `steward/logs/append` (notification).
#[derive(Debug)]
pub enum LogsAppend {}
impl Notification for LogsAppend {
    const METHOD: &'static str = LOGS_APPEND;
    type Params = LogAppendParams;
}

// ---------------------------------------------------------------------------------------------------------
// steward/memory/*

/// Params of `steward/memory/search`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemorySearchParams {
    /// Words (all must occur), `"quoted phrases"`, `prefix*`; empty = the most recent entries.
    #[serde(default)]
    pub query: String,
    /// Project path or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Kinds to search (default: all).
    #[serde(default)]
    pub kinds: Vec<MemoryKind>,
    /// Minimum level of logs and events (notes are not filtered by level).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// At or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// At or before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Maximum hits (default 20, at most 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryHit {
    /// What it is.
    pub kind: MemoryKind,
    /// Row id within its kind.
    pub id: i64,
    /// When.
    pub ts_ms: u64,
    /// Project (stack file path; empty for notes not tied to a project).
    pub project: String,
    /// Module, when the entry belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Process run (logs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
    /// Level (logs and events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Excerpt around the match; each matched term is wrapped in U+0001 … U+0002 and `…` marks cuts.
    pub snippet: String,
    /// Higher is better (BM25 relevance weighted by kind, plus recency).
    pub score: f64,
}

/// Result of `steward/memory/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemorySearchResult {
    /// Best first.
    pub hits: Vec<MemoryHit>,
}

/// `steward/memory/search`.
#[derive(Debug)]
pub enum MemorySearch {}
impl Request for MemorySearch {
    const METHOD: &'static str = MEMORY_SEARCH;
    type Params = MemorySearchParams;
    type Result = MemorySearchResult;
}

/// Params of `steward/memory/remember`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RememberParams {
    /// The note (secrets in it are masked).
    pub text: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Project path or name (left out: a note not tied to a project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Module it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Where it comes from: `cli` (default), `editor`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Result of `steward/memory/remember`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RememberResult {
    /// Note id (the note is durably stored when this returns).
    pub id: i64,
}

/// `steward/memory/remember`.
#[derive(Debug)]
pub enum MemoryRemember {}
impl Request for MemoryRemember {
    const METHOD: &'static str = MEMORY_REMEMBER;
    type Params = RememberParams;
    type Result = RememberResult;
}

// ---------------------------------------------------------------------------------------------------------
// steward/memory/note

/// Params of `steward/memory/note`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteParams {
    /// Note id (a `MemoryHit` of kind `note`, or a `RememberResult`).
    pub id: i64,
}

/// A stored note, whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// Note id.
    pub id: i64,
    /// When it was stored.
    pub ts_ms: u64,
    /// Project (stack file path; empty for a note not tied to a project).
    pub project: String,
    /// Module it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The text (secrets masked).
    pub text: String,
    /// Tags (`incident` on the daemon's crash notes).
    pub tags: Vec<String>,
    /// Where it came from: `cli`, `editor`, `incident` (written by the daemon for a crash), `alert`, `resume`, …
    pub source: String,
}

/// Result of `steward/memory/note`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteResult {
    /// The note; absent when no note has that id (never stored, or dropped by retention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Note>,
}

/// `steward/memory/note`.
#[derive(Debug)]
pub enum MemoryNote {}
impl Request for MemoryNote {
    const METHOD: &'static str = MEMORY_NOTE;
    type Params = NoteParams;
    type Result = NoteResult;
}

// ---------------------------------------------------------------------------------------------------------
// steward/events/query

/// Params of `steward/events/query`. Paged like `steward/logs/query`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventQueryParams {
    /// Project path or name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Only these kinds (default: all).
    #[serde(default)]
    pub kinds: Vec<EventKind>,
    /// Minimum level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// At or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// At or before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// Events with a greater id, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_id: Option<i64>,
    /// Events with a smaller id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_id: Option<i64>,
    /// Maximum events (default 100, at most [`MAX_QUERY_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// Row id.
    pub id: i64,
    /// When.
    pub ts_ms: u64,
    /// Project (stack file path).
    pub project: String,
    /// Module, when the event concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Kind.
    pub kind: EventKind,
    /// Error for failures and non-zero exits, warn for backoff, info otherwise.
    pub level: Level,
    /// One line for people.
    pub text: String,
    /// The event's details as the engine recorded them.
    pub payload: serde_json::Value,
}

/// Result of `steward/events/query`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventQueryResult {
    /// Events, oldest first.
    pub events: Vec<EventRecord>,
}

/// `steward/events/query`.
#[derive(Debug)]
pub enum EventsQuery {}
impl Request for EventsQuery {
    const METHOD: &'static str = EVENTS_QUERY;
    type Params = EventQueryParams;
    type Result = EventQueryResult;
}

// ---------------------------------------------------------------------------------------------------------
// steward/daemon/stop

/// Params of `steward/daemon/stop` (none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonStopParams {}

/// Result of `steward/daemon/stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonStopResult {
    /// Process id of the daemon that is stopping (wait for it to exit).
    pub pid: u32,
}

/// `steward/daemon/stop`: answers at once, then stops every project (last opened first), flushes the store
/// and exits 0. Connections are closed at the end.
#[derive(Debug)]
pub enum DaemonStop {}
impl Request for DaemonStop {
    const METHOD: &'static str = DAEMON_STOP;
    type Params = DaemonStopParams;
    type Result = DaemonStopResult;
}

// ---------------------------------------------------------------------------------------------------------
// Metrics, IPC score and alerts

/// Method name of [`Metrics`].
pub const METRICS: &str = "steward/metrics";
/// Method name of [`Alerts`].
pub const ALERTS: &str = "steward/alerts";
/// Method name of the [`IpcChanged`] notification.
pub const IPC: &str = "steward/ipc";

/// The machine, as last sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemMetrics {
    /// When it was sampled.
    pub at_ms: u64,
    /// CPU busy, percent of all cores (absent on platforms without it, and before the second sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Logical CPUs.
    pub cpus: u32,
    /// Total memory, bytes.
    pub mem_total_bytes: u64,
    /// Memory in use (total − available), bytes.
    pub mem_used_bytes: u64,
    /// The volume whose disk is reported (the daemon's home).
    pub disk_path: String,
    /// Its size, bytes.
    pub disk_total_bytes: u64,
    /// Its used space, bytes.
    pub disk_used_bytes: u64,
}

/// The daemon's JSON-RPC traffic over the last sampling interval, and the IPC score it gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpcStats {
    /// The score, 0–100: the largest of the four components.
    pub score: u32,
    /// Messages in and out per second.
    pub messages_per_sec: f64,
    /// Bytes in and out per second.
    pub bytes_per_sec: f64,
    /// Median request latency (handler time), ms; 0 when no request was served.
    pub latency_p50_ms: f64,
    /// 95th-percentile request latency, ms.
    pub latency_p95_ms: f64,
    /// Requests answered with an error, and rejected messages, percent of requests.
    pub error_percent: f64,
    /// Fullest outgoing queue among the sessions, percent of its limit.
    pub queue_fill_percent: f64,
    /// Components of the score, each 0–100 against its budget.
    pub components: IpcComponents,
    /// Totals since the daemon started.
    pub totals: IpcTotals,
    /// Open sessions and their outgoing queues.
    pub sessions: Vec<SessionIpc>,
}

/// The four components of the IPC score, each `min(100, 100 × value / budget)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpcComponents {
    /// Message rate against 5,000 msg/s.
    pub rate: f64,
    /// p95 latency against 50 ms.
    pub latency: f64,
    /// Error share against 5 %.
    pub errors: f64,
    /// Fullest queue against 100 %.
    pub queue: f64,
}

/// Counters since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpcTotals {
    /// Messages received.
    pub messages_in: u64,
    /// Messages sent (responses and notifications).
    pub messages_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Requests handled.
    pub requests: u64,
    /// Requests answered with an error, and messages rejected by the framing.
    pub errors: u64,
}

/// One session's outgoing queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIpc {
    /// Session id.
    pub id: u64,
    /// Peer process id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_pid: Option<i32>,
    /// Queue fill, percent of its limit.
    pub queue_fill_percent: f64,
}

/// One module's latest sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleMetrics {
    /// Project (stack file path).
    pub project: String,
    /// Module.
    pub module: String,
    /// Process group id sampled.
    pub pid: u32,
    /// CPU of the tree, percent of one core (absent until sampled twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// Resident memory of the tree, bytes.
    pub rss_bytes: u64,
    /// Live processes in the tree.
    pub processes: u32,
    /// The module's memory limit, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
}

/// One point of a metrics history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricPoint {
    /// When.
    pub at_ms: u64,
    /// Project; empty for the daemon-wide series (machine CPU and memory, IPC score).
    pub project: String,
    /// Module; empty for the daemon-wide series.
    pub module: String,
    /// CPU, percent of one core (module) or of the machine (daemon-wide).
    pub cpu_percent: f64,
    /// Tree RSS (module) or used memory of the machine (daemon-wide), bytes.
    pub mem_bytes: u64,
    /// IPC score (daemon-wide series).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc_score: Option<f64>,
}

/// Which history `steward/metrics` returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricsResolution {
    /// No history, only the latest samples.
    #[default]
    None,
    /// Every sample (kept in memory for the last hour).
    Raw,
    /// One-minute averages (kept in the store for 7 days).
    Minute,
}

/// Params of `steward/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsParams {
    /// Only this project (path or name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Only this module (with `project`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// History to include (default none).
    #[serde(default)]
    pub history: MetricsResolution,
    /// History from this time on (default: the last hour for `raw`, the last day for `minute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
}

/// Result of `steward/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsResult {
    /// The sampling interval.
    pub interval_ms: u64,
    /// The machine (absent before the first sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemMetrics>,
    /// The IPC load (absent before the first sample).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<IpcStats>,
    /// Every module with a process, latest sample.
    pub modules: Vec<ModuleMetrics>,
    /// History, oldest first (empty unless asked for).
    #[serde(default)]
    pub history: Vec<MetricPoint>,
}

/// `steward/metrics`.
#[derive(Debug)]
pub enum Metrics {}
impl Request for Metrics {
    const METHOD: &'static str = METRICS;
    type Params = MetricsParams;
    type Result = MetricsResult;
}

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AlertLevel {
    /// Worth knowing.
    Info,
    /// Look soon.
    Warning,
    /// Look now.
    Critical,
    /// Something is about to break.
    Emergency,
}

/// One alert: a rule's condition on one subject (the machine, or one module).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Rule: `cpu`, `memory`, `disk`, `ipc`, `moduleCpu`, `moduleMemory`, `restartLoop`, `health`.
    pub rule: String,
    /// Severity (the highest reached while it fired).
    pub level: AlertLevel,
    /// Project, for module alerts (empty for machine-wide ones).
    pub project: String,
    /// Module, for module alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// What is wrong, in words.
    pub message: String,
    /// The value that fired it (percent, or a count).
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// When it fired.
    pub fired_ms: u64,
    /// When it resolved (absent while it fires).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_ms: Option<u64>,
}

/// Params of `steward/alerts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertsParams {
    /// Most resolved alerts to return (default 50, newest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Result of `steward/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertsResult {
    /// Firing now.
    pub active: Vec<Alert>,
    /// Resolved since the daemon started, newest first.
    pub resolved: Vec<Alert>,
}

/// `steward/alerts`.
#[derive(Debug)]
pub enum Alerts {}
impl Request for Alerts {
    const METHOD: &'static str = ALERTS;
    type Params = AlertsParams;
    type Result = AlertsResult;
}

/// `steward/ipc` (notification, to every initialized session): the IPC score changed by 5 points or more
/// (at most once every 5 s).
#[derive(Debug)]
pub enum IpcChanged {}
impl Notification for IpcChanged {
    const METHOD: &'static str = IPC;
    type Params = IpcStats;
}

// ---------------------------------------------------------------------------------------------------------
// steward/event

/// Params of the `steward/event` notification: one thing that happened to a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventParams {
    /// Project (stack file path).
    pub project: String,
    /// Project name.
    pub project_name: String,
    /// When.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub detail: EventDetail,
}

/// What happened, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum EventDetail {
    /// A module changed state.
    Transition {
        /// Module.
        module: String,
        /// State before.
        from: ModuleState,
        /// State after.
        to: ModuleState,
        /// Why, in words ("health check passed", "exited with status 1; restarting in 200ms").
        reason: String,
        /// Run of the new state, when it has a process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<u64>,
        /// Process id, when it has a process.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<u32>,
        /// Health (`running`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        health: Option<Health>,
        /// Exit code (`exited`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// Signal (`exited`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// Delay before the restart (`backoff`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_in_ms: Option<u64>,
    },
    /// A process run began.
    RunStarted {
        /// Module.
        module: String,
        /// Run id.
        run: u64,
        /// Process (group) id.
        pid: u32,
    },
    /// A process run ended (its whole process group is gone).
    RunEnded {
        /// Module.
        module: String,
        /// Run id.
        run: u64,
        /// Exit code; absent when killed by a signal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// Signal that killed it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// Why it ended ("stopped", "exited with status 1", "health check failed …").
        reason: String,
    },
    /// A configuration change (edit of the stack file, profile switch) was applied.
    ConfigApplied {
        /// Active profile.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<String>,
        /// What was started, stopped and restarted.
        summary: String,
    },
    /// A configuration change was rejected; the last good configuration keeps running.
    ConfigRejected {
        /// Every error, rendered.
        errors: Vec<String>,
    },
    /// The daemon opened the project (not recorded in the store).
    ProjectOpened {},
    /// A backup was made (`project` names the project it was limited to; empty when it covered every open
    /// project). Not recorded in the store: the backup's manifest is the record.
    BackupCompleted {
        /// Backup id.
        id: String,
        /// Made by the daemon's schedule (not by a client).
        scheduled: bool,
        /// Files in it.
        files: u32,
        /// Their total size.
        total_bytes: u64,
        /// Bytes stored for the first time (the rest was unchanged since an earlier backup).
        new_bytes: u64,
        /// How long it took.
        duration_ms: u64,
        /// What did not work but did not stop the backup (a failed module hook, …).
        #[serde(default)]
        problems: Vec<String>,
    },
    /// A backup failed and nothing was written; also stored as a note tagged `backup` and `alert`.
    BackupFailed {
        /// Started by the daemon's schedule (not by a client).
        scheduled: bool,
        /// Why.
        error: String,
    },
    /// An alert fired, changed level, or resolved (`project` is empty for machine-wide alerts). Also stored as
    /// a note tagged `alert`, the rule and the level.
    Alert {
        /// Rule (see [`Alert::rule`]).
        rule: String,
        /// `fired`, `escalated` or `resolved`.
        state: String,
        /// Severity; `info` when it resolved.
        level: AlertLevel,
        /// Module, for module alerts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        module: Option<String>,
        /// What happened, in words.
        message: String,
        /// The value measured.
        value: f64,
        /// The threshold.
        threshold: f64,
    },
}

/// `steward/event` (notification, to every initialized session).
#[derive(Debug)]
pub enum Event {}
impl Notification for Event {
    const METHOD: &'static str = EVENT;
    type Params = EventParams;
}

// ---------------------------------------------------------------------------------------------------------
// Editor commands: the code lenses the daemon puts above each `[modules.NAME]` of a stack file name these
// commands, which the editor extension registers.

/// Command of the "▶ Start" code lens. Its one argument is a [`ModuleCommandArgs`].
pub const COMMAND_START_MODULE: &str = "steward.startModule";
/// Command of the "⟳ Restart" code lens. Its one argument is a [`ModuleCommandArgs`].
pub const COMMAND_RESTART_MODULE: &str = "steward.restartModule";
/// Command of the "■ Stop" code lens (shown for modules that have a process). Argument: [`ModuleCommandArgs`].
pub const COMMAND_STOP_MODULE: &str = "steward.stopModule";
/// Command of the "☰ Logs" code lens. Its one argument is a [`ModuleCommandArgs`].
pub const COMMAND_VIEW_LOGS: &str = "steward.viewLogs";

/// The one argument of the code lens commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleCommandArgs {
    /// Absolute path of the stack's root file (`steward.toml`, also for lenses in `modules.d/` files).
    pub project: String,
    /// Module name.
    pub module: String,
}

fn default_true() -> bool {
    true
}

// ---------------------------------------------------------------------------------------------------------
// Operations: backups, store maintenance, health, progress

/// Request: back up the store, the stack files of open projects and their modules' `backup` hooks.
pub const BACKUP_CREATE: &str = "steward/backup/create";
/// Request: store maintenance (vacuum, reindex or prune), with progress.
pub const DB_MAINTAIN: &str = "steward/db/maintain";
/// Request: whether the daemon really works: the store takes writes, every module is in its desired state.
pub const HEALTH: &str = "steward/health";
/// Notification (daemon → client): progress of a long request, as LSP's work-done progress.
pub const PROGRESS: &str = "$/progress";

/// Params of `steward/backup/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupCreateParams {
    /// Only this open project's stack files and hooks (path or name); the store is always included. Every
    /// open project when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Token for `$/progress` notifications about this backup, sent to the calling session only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_done_token: Option<String>,
}

/// How one module's backup hook went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupHookOutcome {
    /// Project (stack file path).
    pub project: String,
    /// Module.
    pub module: String,
    /// It exited 0 and its output is in the backup.
    pub ok: bool,
    /// Why not (exit status and the last lines of its stderr, or the timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it ran.
    pub duration_ms: u64,
}

/// Result of `steward/backup/create`: the backup that was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupSummary {
    /// Backup id (`YYYYMMDDTHHMMSSZ`, UTC).
    pub id: String,
    /// The repository it is in.
    pub dir: String,
    /// When it started.
    pub created_ms: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// Files in it.
    pub files: u32,
    /// Their total size.
    pub total_bytes: u64,
    /// Bytes stored for the first time (the rest was unchanged since an earlier backup).
    pub new_bytes: u64,
    /// Projects whose files are in it (stack file paths).
    pub projects: Vec<String>,
    /// Every module hook that ran.
    pub hooks: Vec<BackupHookOutcome>,
    /// What did not work but did not stop the backup.
    pub problems: Vec<String>,
    /// Backups the retention policy removed afterwards (scheduled backups prune; others do not).
    #[serde(default)]
    pub pruned: Vec<String>,
}

/// `steward/backup/create`: copies the store with SQLite's online backup API (consistent while the daemon
/// writes), then the stack files, then runs the hooks. Progress goes to `workDoneToken`, if given.
#[derive(Debug)]
pub enum BackupCreate {}
impl Request for BackupCreate {
    const METHOD: &'static str = BACKUP_CREATE;
    type Params = BackupCreateParams;
    type Result = BackupSummary;
}

/// What `steward/db/maintain` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DbAction {
    /// Rewrite the database file without its free pages (and truncate the WAL).
    Vacuum,
    /// Rebuild every full-text index from the stored rows.
    Reindex,
    /// Apply the retention policy now.
    Prune,
}

/// Params of `steward/db/maintain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbMaintainParams {
    /// What to do.
    pub action: DbAction,
    /// Only say what would be done.
    #[serde(default)]
    pub dry_run: bool,
    /// Token for `$/progress` notifications, sent to the calling session only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_done_token: Option<String>,
}

/// Result of `steward/db/maintain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbMaintainResult {
    /// What was done.
    pub action: DbAction,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Size of the database file and its WAL before.
    pub file_bytes_before: u64,
    /// … and after.
    pub file_bytes_after: u64,
    /// Bytes in use inside the file before.
    pub used_bytes_before: u64,
    /// … and after.
    pub used_bytes_after: u64,
    /// Log lines deleted (prune; with `dryRun`: that would be).
    pub logs_deleted: u64,
    /// Events deleted (prune; with `dryRun`: that would be).
    pub events_deleted: u64,
    /// Log lines indexed (reindex; with `dryRun`: that would be).
    pub rows_indexed: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// One line for people.
    pub summary: String,
}

/// `steward/db/maintain`. The store's writer does the work: ingestion waits meanwhile (lines queue up,
/// nothing is lost), searches go on.
#[derive(Debug)]
pub enum DbMaintain {}
impl Request for DbMaintain {
    const METHOD: &'static str = DB_MAINTAIN;
    type Params = DbMaintainParams;
    type Result = DbMaintainResult;
}

/// Params of `steward/health` (none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthParams {}

/// The verdict of `steward/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HealthStatus {
    /// Everything works.
    Ok,
    /// The daemon answers but something is wrong (a module failed, the store refuses writes).
    Degraded,
    /// The daemon does not work (shutting down; a client that gets no answer reports this too).
    Down,
}

/// One check of `steward/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckResult {
    /// `socket`, `store`, or `project:<name>`.
    pub name: String,
    /// It passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// Result of `steward/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// The verdict.
    pub status: HealthStatus,
    /// One line: why (the first failed check), or what is fine.
    pub reason: String,
    /// Every check.
    pub checks: Vec<HealthCheckResult>,
    /// Daemon version.
    pub version: String,
    /// Daemon process id.
    pub pid: u32,
    /// Milliseconds since the daemon started.
    pub uptime_ms: u64,
    /// The store's counters, when they could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreCounters>,
}

/// What the store holds and how far its full-text index is behind (part of [`HealthReport`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreCounters {
    /// Log lines stored.
    pub log_lines: u64,
    /// Stored log lines not yet in the full-text index (searches scan them; 0 once indexing caught up).
    pub unindexed_lines: u64,
    /// Bytes in use in the database file.
    pub used_bytes: u64,
    /// Log lines the store could not write since the daemon started (full disk, I/O errors).
    pub dropped_lines: u64,
}

/// `steward/health`.
#[derive(Debug)]
pub enum DaemonHealth {}
impl Request for DaemonHealth {
    const METHOD: &'static str = HEALTH;
    type Params = HealthParams;
    type Result = HealthReport;
}

/// A step of work-done progress, tagged by `kind` (as in LSP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum WorkDoneProgress {
    /// The work starts.
    Begin {
        /// What it is ("Backup", "Reindex").
        title: String,
        /// Always false: Steward's long requests cannot be cancelled.
        #[serde(default)]
        cancellable: bool,
        /// Details.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// 0–100, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percentage: Option<u32>,
    },
    /// The work goes on.
    Report {
        /// What it is doing now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// 0–100, when known (never decreases).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        percentage: Option<u32>,
    },
    /// The work is over (the request's answer follows).
    End {
        /// How it ended.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

/// Params of the `$/progress` notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressParams {
    /// The request's `workDoneToken`; for a scheduled backup `scheduledBackup/<ms>`, sent to every session.
    pub token: String,
    /// The step.
    pub value: WorkDoneProgress,
}

/// `$/progress` (notification).
#[derive(Debug)]
pub enum Progress {}
impl Notification for Progress {
    const METHOD: &'static str = PROGRESS;
    type Params = ProgressParams;
}
