//! The keys the stack file accepts in each table. One list drives both the loader's "unknown key"
//! errors and editors' key completion, so the two cannot disagree.

/// Top-level keys.
pub const TOP_KEYS: &[&str] = &["extends", "project", "defaults", "modules", "profiles", "alerts"];
/// Keys of `[project]`.
pub const PROJECT_KEYS: &[&str] = &["name", "profile"];
/// Keys of `[defaults]`.
pub const DEFAULTS_KEYS: &[&str] = &["restart", "stop", "health", "env"];
/// Keys of `[modules.NAME]`.
pub const MODULE_KEYS: &[&str] = &[
    "run", "version", "cwd", "env", "env_file", "requires", "provides", "health", "restart", "stop", "watch", "limits",
    "backup",
];
/// Keys of a module's `health`.
pub const HEALTH_KEYS: &[&str] = &["exec", "http", "tcp", "interval", "timeout", "retries", "start_period"];
/// Keys of `[defaults] health` (everything but the check).
pub const DEFAULT_HEALTH_KEYS: &[&str] = &["interval", "timeout", "retries", "start_period"];
/// Keys of `restart` when it is a table.
pub const RESTART_KEYS: &[&str] = &["policy", "backoff", "max_restarts", "window", "stable_after"];
/// Values of `restart` / `restart.policy`.
pub const RESTART_POLICIES: &[&str] = &["never", "on-failure", "always"];
/// Keys of `stop`.
pub const STOP_KEYS: &[&str] = &["signal", "timeout"];
/// Keys of `limits`.
pub const LIMITS_KEYS: &[&str] = &["memory", "open_files"];
/// Keys of `backup`.
pub const BACKUP_KEYS: &[&str] = &["run", "output", "restore", "timeout"];
/// Keys of `[profiles.NAME]`.
pub const PROFILE_KEYS: &[&str] = &["modules", "env"];
/// Keys of `[alerts]`.
pub const ALERTS_KEYS: &[&str] = &[
    "enabled",
    "cpu_warning",
    "cpu_critical",
    "memory_warning",
    "memory_critical",
    "disk_warning",
    "disk_critical",
    "module_cpu_warning",
    "module_cpu_critical",
    "ipc_score",
    "ipc_for",
    "hysteresis",
    "restart_loop",
    "health",
    "max_per_minute",
];
