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
    }
}
