//! The operations commands of `steward`: `service`, `health`, `backup`, `db`, `doctor`, `diag`, `report`.
//!
//! Each lives in its own file; this one holds the clap definitions (flattened into the top-level command)
//! and small formatting helpers. Work that must agree with the running daemon (a backup of the live store,
//! store maintenance, health) goes through its API; offline work (listing, verifying, pruning and restoring
//! backups, doctor, diag, report) reads the files directly, so it works when the daemon does not.

pub mod backup;
pub mod db;
pub mod diag;
pub mod doctor;
pub mod progress;
pub mod report;
pub mod service;
pub mod settings;
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use steward_protocol::paths;

use crate::client::{self, Client};

/// The operations subcommands (flattened into the top-level `steward` command).
#[derive(Subcommand)]
pub enum OpsCommand {
    /// Start the daemon at login: a systemd user unit (Linux) or a LaunchAgent (macOS).
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Check that the daemon really works: its socket answers, the store takes writes, every module is in its
    /// desired state. Prints one line (`--json`: every check).
    ///
    /// Never starts a daemon. Exit status: 0 ok, 1 degraded (a module that should run is not running and
    /// healthy — starting, restarting, failed, exited with an error — or the store refuses writes), 2 down (no
    /// daemon answers within 15 s, or it is shutting down).
    Health,
    /// Back up the store, the stack files and modules' data (their `backup` hooks); list, verify, prune,
    /// restore, and rehearse a restore.
    ///
    /// Backups live in `$STEWARD_BACKUP_DIR` (default `$STEWARD_HOME/backups`), content-addressed: an
    /// unchanged file is stored once.
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Store maintenance through the daemon (started if needed): vacuum, reindex, prune (with a progress bar on
    /// a terminal).
    Db {
        #[command(subcommand)]
        action: DbCommand,
    },
    /// Check the installation: the socket, the store's integrity, permissions, stack files, ports, the clock,
    /// disk space, backups. Each check says PASSED, FAILED, WARNING or SKIPPED, with a fix.
    ///
    /// Works without a daemon (it never starts one). When the store is damaged, the fix names the newest
    /// backup with an intact store, and on a terminal doctor offers to restore it. Exit status: 0 no check
    /// failed, 1 a check failed.
    Doctor {
        /// Also check this stack file (default: steward.toml in the current directory or a parent, and every
        /// project the daemon has open).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Diagnostics for a bug report.
    Diag {
        #[command(subcommand)]
        action: DiagAction,
    },
    /// A report over a period: uptime per module, crashes and restarts, alerts, top error messages, backups.
    ///
    /// Read from the store directly (works without a daemon).
    Report {
        /// The period: the last DURATION, in m, h, d or w (e.g. 90m, 24h, 7d, 2w).
        #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_period)]
        since: Duration,
        /// Markdown, or a self-contained HTML page with small charts.
        #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
        format: ReportFormat,
        /// Write to FILE instead of standard output.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// `steward service …`.
#[derive(Subcommand)]
pub enum ServiceAction {
    /// Write the service file and enable it (Linux: `systemctl --user daemon-reload` and `enable --now
    /// steward.service`, without `--now` while a daemon already runs; macOS: `launchctl bootstrap gui/UID
    /// …`). `STEWARD_HOME`, `PATH` and the `STEWARD_*` daemon settings of this shell are written into it.
    Install {
        /// Print the file and the commands instead.
        #[arg(long)]
        dry_run: bool,
        /// Only write the file (do not talk to the service manager).
        #[arg(long)]
        no_enable: bool,
    },
    /// Disable and stop the service (the daemon stops its projects first), then remove the file.
    Uninstall {
        /// Print the commands instead.
        #[arg(long)]
        dry_run: bool,
    },
    /// Whether the service is installed and what the service manager says. Exit status 0 installed, 3 not.
    Status,
}

/// `steward backup …`.
#[derive(Subcommand)]
pub enum BackupAction {
    /// Make a backup now (through the daemon, so the store copy is consistent while it runs).
    ///
    /// Without `--project`: the store and every open project (the project of a steward.toml in the current
    /// directory or a parent is opened first). Exit status 1 when something was left out (a hook failed).
    Create {
        /// Only this project's stack files and hooks: a stack file (opened if needed) or an open project's name.
        #[arg(short, long, value_name = "PROJECT")]
        project: Option<String>,
    },
    /// List the backups, oldest first.
    List,
    /// Check a backup: every file's size and SHA-256, and `PRAGMA integrity_check` on a restored copy of the
    /// store. Every damaged file is named, and the exit status is 1.
    Verify {
        /// Backup id, a unique prefix of one, or `latest` (the default).
        id: Option<String>,
        /// Verify every backup.
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Delete the backups the retention policy does not keep, and the data only they used.
    ///
    /// The policy is `$STEWARD_BACKUP_KEEP` (default last=7,daily=7,weekly=4); flags override it.
    Prune {
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Keep the N newest backups.
        #[arg(long, value_name = "N")]
        keep_last: Option<u32>,
        /// Keep the newest backup of each of the last N days.
        #[arg(long, value_name = "N")]
        keep_daily: Option<u32>,
        /// Keep the newest backup of each of the last N weeks.
        #[arg(long, value_name = "N")]
        keep_weekly: Option<u32>,
    },
    /// Restore a backup, whole or in part, in place or into a directory.
    ///
    /// In place, the store goes back to `$STEWARD_HOME/store.db` (the daemon must be stopped, or pass
    /// `--force` to stop it), stack files to where they were (refused while their project runs, unless
    /// `--force`), a module's data through its `backup.restore` command (else it is written out under
    /// `$STEWARD_HOME/restored/ID/`). Files that are replaced are kept first, in a `pre-restore` backup.
    Restore {
        /// Backup id, a unique prefix of one, or `latest`.
        id: String,
        /// Only `store`, `config` (stack files) or the data of the module named so.
        #[arg(long, value_name = "WHAT")]
        only: Option<String>,
        /// Write everything under DIR instead (DIR/store.db, DIR/projects/…): e.g. a stopped STEWARD_HOME.
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// Stop the daemon (for the store) or overwrite a running project's stack files.
        #[arg(long)]
        force: bool,
    },
    /// Rehearse a restore: restore a backup (default the latest) into a temporary directory, verify it, open
    /// the store, and report how long it took (the recovery time) and how old the backup was (the data a
    /// restore would lose).
    Drill {
        /// Backup id, a unique prefix of one, or `latest` (the default).
        id: Option<String>,
    },
}

/// `steward db …`.
#[derive(Subcommand)]
pub enum DbCommand {
    /// Rewrite the store without its free pages (after retention deleted much) and truncate its WAL.
    Vacuum {
        /// Only say how much it would shrink.
        #[arg(long)]
        dry_run: bool,
    },
    /// Rebuild every full-text index from the stored rows (repairs a damaged index; searches keep working).
    Reindex {
        /// Only say how many lines it would index.
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply the retention policy now (`STEWARD_RETENTION_SIZE`, `STEWARD_RETENTION_AGE` of the daemon).
    Prune {
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `steward diag …`.
#[derive(Subcommand)]
pub enum DiagAction {
    /// Bundle what a bug report needs into a tar.gz: versions, OS, configuration (secrets masked), module
    /// states, recent events and log lines, the daemon's log, store statistics, `steward doctor`. Secrets are
    /// masked everywhere; the values of environment variables are never included (except Steward's own
    /// non-secret settings such as `STEWARD_HOME`).
    Report {
        /// The archive to write (default: steward-diag-YYYYMMDD-HHMMSS.tar.gz in the current directory).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// Log lines per module.
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 200)]
        lines: u32,
    },
}

/// `steward report --format`.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    /// Markdown.
    Md,
    /// One HTML page with inline SVG charts.
    Html,
}

/// `7d`, `2w`, `24h`, `90m`.
fn parse_period(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a period (expected e.g. 24h, 7d or 2w)"))?;
    let secs = match unit {
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("unknown unit `{unit}` in `{s}` (use m, h, d or w)")),
    };
    if n == 0 {
        return Err("the period must be longer than zero".into());
    }
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// Runs an operations subcommand.
pub fn run(cmd: OpsCommand, json: bool) -> ExitCode {
    let home = match client::default_home() {
        Ok(h) => std::path::absolute(&h).unwrap_or(h),
        Err(e) => return fail(2, &e.to_string()),
    };
    match cmd {
        OpsCommand::Service { action: ServiceAction::Install { dry_run, no_enable } } => {
            service::install(&home, dry_run, no_enable, json)
        }
        OpsCommand::Service { action: ServiceAction::Uninstall { dry_run } } => service::uninstall(dry_run, json),
        OpsCommand::Service { action: ServiceAction::Status } => service::status(&home, json),
        OpsCommand::Health => health(&home, json),
        OpsCommand::Backup { action } => backup::run(&home, action, json),
        OpsCommand::Db { action } => db::run(&home, action, json),
        OpsCommand::Doctor { file } => doctor::run(&home, file, json),
        OpsCommand::Diag { action: DiagAction::Report { output, lines } } => diag::run(&home, output, lines, json),
        OpsCommand::Report { since, format, output } => report::run(&home, since, format, output, json),
    }
}

/// Prints `error: msg` and returns the exit status.
pub fn fail(code: u8, msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(code)
}

/// A current-thread runtime for a command that talks to the daemon.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// True while a daemon holds the home's lock.
pub fn daemon_running(home: &Path) -> bool {
    use std::os::unix::io::AsRawFd;
    let Ok(file) = std::fs::File::open(paths::lock_path(home)) else { return false };
    // SAFETY: flock on a descriptor we own; released when `file` is dropped.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

/// Connects to a running daemon without starting one.
pub async fn connect(home: &Path) -> Result<Option<Client>, String> {
    match Client::connect(home).await {
        Ok(c) => Ok(Some(c)),
        Err(client::ClientError::NotRunning { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// `steward health`.
fn health(home: &Path, json: bool) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(2, &e),
    };
    let report = rt.block_on(async {
        let c = connect(home).await?.ok_or_else(|| format!("no daemon is running for {}", home.display()))?;
        let r = tokio::time::timeout(
            Duration::from_secs(15),
            c.request::<steward_protocol::DaemonHealth>(Default::default()),
        )
        .await
        .map_err(|_| "the daemon did not answer within 15 s".to_string())?
        .map_err(|e| e.to_string())?;
        Ok::<_, String>(r)
    });
    match report {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            } else {
                let word = match r.status {
                    steward_protocol::HealthStatus::Ok => "ok",
                    steward_protocol::HealthStatus::Degraded => "degraded",
                    steward_protocol::HealthStatus::Down => "down",
                };
                println!("{word}: {}", r.reason.strip_prefix("ok: ").unwrap_or(&r.reason));
            }
            ExitCode::from(match r.status {
                steward_protocol::HealthStatus::Ok => 0,
                steward_protocol::HealthStatus::Degraded => 1,
                steward_protocol::HealthStatus::Down => 2,
            })
        }
        Err(e) => {
            if json {
                let v = serde_json::json!({"status": "down", "reason": e, "checks": []});
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("down: {e}");
            }
            ExitCode::from(2)
        }
    }
}

/// Local time `YYYY-MM-DD HH:MM`.
pub fn local_time(ms: u64) -> String {
    let t = (ms / 1000) as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return steward_framework::backup::format_utc(ms);
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[i]) }
}

/// `3d04h`, `2h05m`, `4m07s`, `12s`, `350ms`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(parse_period("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_period("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_period("90m"), Ok(Duration::from_secs(5_400)));
        assert!(parse_period("0d").is_err());
        assert!(parse_period("7y").unwrap_err().contains("`y`"));
        assert!(parse_period("soon").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(human_duration(Duration::from_millis(350)), "350ms");
        assert_eq!(human_duration(Duration::from_secs(247)), "4m07s");
        assert_eq!(human_duration(Duration::from_secs(90_000)), "1d01h");
    }
}
