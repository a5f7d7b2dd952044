//! Backup settings from the environment, read the same way by the daemon and by the CLI:
//! `STEWARD_BACKUP_DIR`, `STEWARD_BACKUP_SCHEDULE`, `STEWARD_BACKUP_KEEP`. A bad value is an error naming the
//! variable, never a silent default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use steward_framework::backup::KeepPolicy;

/// Where backups go (default `STEWARD_HOME/backups`).
pub const DIR_ENV: &str = "STEWARD_BACKUP_DIR";
/// `off` (default), `daily`, `hourly`, or a duration like `6h`.
pub const SCHEDULE_ENV: &str = "STEWARD_BACKUP_SCHEDULE";
/// Retention: `last=7,daily=7,weekly=4` (the default).
pub const KEEP_ENV: &str = "STEWARD_BACKUP_KEEP";

/// Every environment variable that configures the daemon (passed on by `steward service install`).
pub const DAEMON_ENV: &[&str] = &[
    DIR_ENV,
    SCHEDULE_ENV,
    KEEP_ENV,
    "STEWARD_RETENTION_SIZE",
    "STEWARD_RETENTION_AGE",
    "STEWARD_LOG",
    "STEWARD_SESSION_IDLE_TIMEOUT_MS",
    "STEWARD_SESSION_QUEUE_LIMIT",
    "STEWARD_METRICS_INTERVAL_MS",
    "STEWARD_HTTP_ADDR",
    "STEWARD_RESUME",
];

/// The backup settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// The repository.
    pub dir: PathBuf,
    /// Time between scheduled backups; None = no scheduled backups.
    pub schedule: Option<Duration>,
    /// What `backup prune` (and every scheduled backup) keeps.
    pub keep: KeepPolicy,
}

impl BackupSettings {
    /// Reads the environment; `home` is `STEWARD_HOME`.
    pub fn from_env(home: &Path) -> Result<BackupSettings, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let dir = match var(DIR_ENV) {
            Some(d) => {
                let p = PathBuf::from(&d);
                if !p.is_absolute() {
                    return Err(format!("{DIR_ENV}={d}: expected an absolute directory"));
                }
                p
            }
            None => home.join("backups"),
        };
        let schedule = match var(SCHEDULE_ENV) {
            None => None,
            Some(v) => parse_schedule(&v).map_err(|e| format!("{SCHEDULE_ENV}={v}: {e}"))?,
        };
        let keep = match var(KEEP_ENV) {
            None => KeepPolicy::default(),
            Some(v) => KeepPolicy::parse(&v)
                .map_err(|e| format!("{KEEP_ENV}={v}: {e} (expected e.g. last=7,daily=7,weekly=4)"))?,
        };
        Ok(BackupSettings { dir, schedule, keep })
    }
}

/// `off`, `daily`, `hourly` or a duration of at least one second.
pub fn parse_schedule(v: &str) -> Result<Option<Duration>, String> {
    match v.trim() {
        "off" | "none" | "never" => Ok(None),
        "daily" | "on" => Ok(Some(Duration::from_secs(86_400))),
        "hourly" => Ok(Some(Duration::from_secs(3_600))),
        other => {
            let d = steward_framework::config::parse_duration(other)
                .map_err(|e| format!("{e} (expected off, daily, hourly or a duration like 6h)"))?;
            if d < Duration::from_secs(1) {
                return Err("the interval must be at least 1s".into());
            }
            Ok(Some(d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(parse_schedule("off"), Ok(None));
        assert_eq!(parse_schedule("daily"), Ok(Some(Duration::from_secs(86_400))));
        assert_eq!(parse_schedule("6h"), Ok(Some(Duration::from_secs(21_600))));
        assert!(parse_schedule("500ms").unwrap_err().contains("at least 1s"));
        assert!(parse_schedule("weekly").unwrap_err().contains("expected off, daily"));
        assert_eq!(parse_schedule("on"), parse_schedule("daily"));
    }

    /// `steward service install` promises to carry every daemon setting of the shell into the service file:
    /// every `STEWARD_*` variable the daemon's code reads must be listed in `DAEMON_ENV`.
    #[test]
    fn daemon_env_lists_every_setting_the_daemon_reads() {
        // Not settings: the home (written separately), test hooks, and what the daemon sets for its modules.
        let not_settings = |k: &str| k == "STEWARD_HOME" || k.starts_with("STEWARD_DEBUG_");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/daemon");
        let mut stack = vec![dir];
        let mut missing = Vec::new();
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("\"STEWARD_") {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if !not_settings(&name) && !DAEMON_ENV.contains(&name.as_str()) {
                        missing.push(format!("{name} ({})", path.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "read by the daemon but not in DAEMON_ENV: {missing:?}");
    }
}
