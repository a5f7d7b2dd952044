//! The effective stack: plain data produced by the loader after `extends`, `modules.d/`, `[defaults]`,
//! `env_file`, interpolation and the active profile have been applied. The engine only ever sees this;
//! it never reads TOML.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// A fully loaded, validated stack for one project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stack {
    /// `[project] name`, or the stack file's directory name.
    pub project: String,
    /// Absolute path of the root stack file (identifies the project).
    pub file: PathBuf,
    /// Directory of the root stack file; relative `cwd`s resolve against it.
    pub dir: PathBuf,
    /// Every file that contributed (root, `extends` chain, `modules.d/*.toml`, env files): the watch set.
    pub sources: Vec<PathBuf>,
    /// Modules by name, with the active profile's overrides applied.
    pub modules: BTreeMap<String, ModuleSpec>,
    /// Declared profiles by name.
    pub profiles: BTreeMap<String, ProfileSpec>,
    /// The profile that was applied to `modules` (None = all modules, no overrides).
    pub active_profile: Option<String>,
    /// Every module declared in the stack (active or not) and where, for editors (completion, go to
    /// definition) and for `profile list`.
    pub declared: BTreeMap<String, Origin>,
    /// `[alerts]`: thresholds of the daemon's alert rules.
    pub alerts: AlertsSpec,
}

/// A warning and a critical threshold, percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Warning at or above this.
    pub warning: f64,
    /// Critical at or above this.
    pub critical: f64,
}

/// `[alerts]` (defaults from the operations seeds; see docs/stack-file.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertsSpec {
    /// All rules on or off.
    pub enabled: bool,
    /// Machine CPU, percent of all cores.
    pub cpu: Thresholds,
    /// Machine memory, percent; also a module's tree RSS, percent of its `limits.memory`.
    pub memory: Thresholds,
    /// Disk of the daemon's home volume, percent.
    pub disk: Thresholds,
    /// A module's tree CPU, percent of one core.
    pub module_cpu: Thresholds,
    /// IPC score that raises a warning …
    pub ipc_score: f64,
    /// … when it holds this long, ms.
    pub ipc_for_ms: u64,
    /// An alert resolves when its value falls below the warning threshold minus this.
    pub hysteresis: f64,
    /// Alert when a module stops in a restart loop.
    pub restart_loop: bool,
    /// Alert while a module's health check fails.
    pub health: bool,
    /// Most alert changes published per minute.
    pub max_per_minute: u32,
}

impl Default for AlertsSpec {
    fn default() -> Self {
        AlertsSpec {
            enabled: true,
            cpu: Thresholds { warning: 70.0, critical: 90.0 },
            memory: Thresholds { warning: 80.0, critical: 95.0 },
            disk: Thresholds { warning: 85.0, critical: 95.0 },
            module_cpu: Thresholds { warning: 70.0, critical: 90.0 },
            ipc_score: 80.0,
            ipc_for_ms: 10_000,
            hysteresis: 5.0,
            restart_loop: true,
            health: true,
            max_per_minute: 20,
        }
    }
}

/// One module's effective definition. Two specs that compare equal need no restart on reload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleSpec {
    /// Module id (the key in `[modules.NAME]`).
    pub name: String,
    /// Declared version, for `requires` ranges.
    #[serde(serialize_with = "ser_opt_display")]
    pub version: Option<semver::Version>,
    /// Command line after interpolation.
    pub run: String,
    /// Absolute working directory.
    pub cwd: PathBuf,
    /// Environment added to the daemon's own: defaults < env_file < env < profile env.
    pub env: BTreeMap<String, String>,
    /// Modules this one starts after (and stops before).
    pub requires: Vec<Requirement>,
    /// Endpoints published in the service registry (`${service.NAME}`).
    pub provides: BTreeMap<String, String>,
    /// Readiness/liveness probe.
    pub health: Option<HealthSpec>,
    /// Restart policy and backoff.
    pub restart: RestartSpec,
    /// How to stop the module.
    pub stop: StopSpec,
    /// Globs (relative to `cwd`) whose changes restart the module.
    pub watch: Vec<String>,
    /// Resource limits.
    pub limits: Limits,
    /// Optional backup hook.
    pub backup: Option<BackupSpec>,
    /// Where the module was defined (for diagnostics and editor features).
    pub origin: Origin,
}

/// A `requires` entry: `"db"` or `"db@>=15, <17"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Requirement {
    /// Required module's name.
    pub module: String,
    /// Optional version range the required module's `version` must satisfy.
    #[serde(serialize_with = "ser_opt_display")]
    pub range: Option<semver::VersionReq>,
}

/// A health probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthSpec {
    /// What to check.
    pub check: Probe,
    /// Time between checks.
    pub interval: Duration,
    /// Time one check may take before it counts as failed.
    pub timeout: Duration,
    /// Consecutive failures that make a starting module fail readiness or a running one unhealthy.
    pub retries: u32,
    /// Grace period after spawn during which failures do not count.
    pub start_period: Duration,
}

/// The kind of health check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// Run a command (through `/bin/sh -c`); exit 0 = healthy.
    Exec(String),
    /// HTTP GET; any 2xx = healthy. Only `http://` URLs, normalised by the loader to
    /// `http://HOST:PORT/PATH` (the port is always present; the path is at least `/`).
    Http(String),
    /// TCP connect to `host:port` (IPv6 hosts in brackets: `[::1]:5432`).
    Tcp(String),
}

/// When to restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never restart automatically.
    Never,
    /// Restart when the module exits non-zero, is killed by a signal, fails its health check or its limits.
    OnFailure,
    /// Restart whenever the module exits, including with status 0.
    Always,
}

/// Restart policy with exponential backoff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartSpec {
    /// When to restart.
    pub policy: RestartPolicy,
    /// First delay (`backoff = "100ms..30s"` → 100ms).
    pub backoff_min: Duration,
    /// Cap on the delay (→ 30s).
    pub backoff_max: Duration,
    /// More than this many restarts within `window` → Failed("restart loop").
    pub max_restarts: u32,
    /// Sliding window for counting restarts.
    pub window: Duration,
    /// A run that lasts this long resets the backoff to `backoff_min`.
    pub stable_after: Duration,
}

impl Default for RestartSpec {
    fn default() -> Self {
        RestartSpec {
            policy: RestartPolicy::OnFailure,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            max_restarts: 5,
            window: Duration::from_secs(60),
            stable_after: Duration::from_secs(10),
        }
    }
}

/// How to stop a module.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StopSpec {
    /// Signal sent to the process group first (e.g. libc::SIGTERM).
    pub signal: i32,
    /// Time to wait before SIGKILL of the whole group.
    pub timeout: Duration,
}

impl Default for StopSpec {
    fn default() -> Self {
        StopSpec { signal: libc::SIGTERM, timeout: Duration::from_secs(10) }
    }
}

/// Resource limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Limits {
    /// RSS of the whole process tree, in bytes; enforced by sampling (restart with a reason).
    pub memory: Option<u64>,
    /// RLIMIT_NOFILE set in the child.
    pub open_files: Option<u64>,
}

/// A module's backup hook: `run`'s stdout is saved as `output`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupSpec {
    /// Command whose stdout is the backup (run through `/bin/sh -c` in the module's `cwd` and environment).
    pub run: String,
    /// File name for the output inside the backup.
    pub output: String,
    /// Command that reads a backup on its stdin and puts it back (`steward backup restore --only MODULE`);
    /// without it, a restore writes the file out for you to apply.
    pub restore: Option<String>,
    /// How long `run` (or `restore`) may take before it is killed and counted as failed.
    pub timeout: Duration,
}

impl BackupSpec {
    /// Default [`BackupSpec::timeout`]: 10 minutes.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
}

/// A named profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProfileSpec {
    /// Modules that run in this profile (None = all).
    pub modules: Option<Vec<String>>,
    /// Environment applied to every module in this profile, as written (interpolated per module).
    pub env: BTreeMap<String, String>,
    /// This is `[project] profile`, the profile used when none is asked for.
    pub is_default: bool,
}

/// A place in a source file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// File the definition came from.
    pub file: PathBuf,
    /// 1-based line of the `[modules.NAME]` header (or inline table key).
    pub line: u32,
}

fn ser_opt_display<T: std::fmt::Display, S: serde::Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
