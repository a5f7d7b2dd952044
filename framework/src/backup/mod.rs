//! Backups: a content-addressed repository of snapshots, each described by a manifest.
//!
//! ```text
//! BACKUP_DIR/                    0700 (default STEWARD_HOME/backups)
//!   objects/ab/abcdef…           one file per distinct content, named by its SHA-256 (0600)
//!   snapshots/<id>.json          one manifest per backup: every file's logical path, size, SHA-256
//!   tmp/                         files being written (a crashed backup leaves only this behind)
//!   drills.jsonl                 one line per `steward backup drill` (what it restored, how long it took)
//!   lock                         flock'ed while a backup is written or the repository is pruned
//! ```
//!
//! - **Incremental by construction**: a file whose content is already stored is not stored again; a
//!   snapshot of an unchanged stack costs one manifest. A manifest is written (atomically, after every
//!   object it names is durably in place) last, so a snapshot either exists whole or not at all.
//! - [`repo`]: writing ([`SnapshotWriter`]), listing, verifying, extracting, pruning (with garbage
//!   collection of objects no manifest names any more).
//! - [`retention`]: which snapshots a keep-last/daily/weekly policy keeps (pure).
//! - [`sqlite`]: a consistent copy of a live SQLite database through SQLite's online backup API, and
//!   `PRAGMA integrity_check`.
//!
//! Nothing here knows the daemon or the protocol: the daemon decides *what* goes into a backup (the store,
//! the stack files of open projects, modules' `backup` hook output) and where a restore writes.

pub mod repo;
pub mod retention;
pub mod sqlite;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use repo::{
    DrillRecord, FileCheck, NewFile, PruneReport, Repository, SnapshotWriter, VerifyReport, hash_file,
    validate_logical_path,
};
pub use retention::{KeepPolicy, SnapshotTime, local_day_week, select_kept};

/// Version of the manifest format this build writes (and the highest it reads).
pub const MANIFEST_FORMAT: u32 = 1;

/// Errors of the backup repository. Each names the file or snapshot concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file-system error.
    #[error("{path}: {source}")]
    Io {
        /// Path concerned.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// No snapshot matches the id (or prefix) given.
    #[error("no backup {id:?} in {dir} ({hint})")]
    NotFound {
        /// What was asked for.
        id: String,
        /// The repository.
        dir: PathBuf,
        /// What exists.
        hint: String,
    },
    /// Several snapshots match a prefix.
    #[error("{id:?} matches several backups ({candidates}); give more of the id")]
    Ambiguous {
        /// What was asked for.
        id: String,
        /// The matches.
        candidates: String,
    },
    /// A manifest cannot be read.
    #[error("manifest {path} is unreadable: {message}")]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A stored file does not match its manifest entry.
    #[error("{logical}: {problem} (object {object})")]
    Corrupt {
        /// Logical path in the backup.
        logical: String,
        /// The object file.
        object: PathBuf,
        /// What does not match.
        problem: String,
    },
    /// Another process is writing to or pruning the repository.
    #[error("the backup repository {dir} is busy (another backup or prune holds {lock})")]
    Busy {
        /// The repository.
        dir: PathBuf,
        /// Its lock file.
        lock: PathBuf,
    },
    /// A logical path that would escape the backup or the restore target.
    #[error("invalid path in a backup: {0:?} (expected a relative path without `..`)")]
    BadPath(String),
    /// SQLite failed while copying or checking a database.
    #[error("{path}: {message}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        message: String,
    },
}

/// Result alias.
pub type Result<T, E = BackupError> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.into();
    move |source| BackupError::Io { path, source }
}

/// What a file in a backup is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FileKind {
    /// The store (SQLite database), copied with the online backup API.
    Store,
    /// A stack file: the root file, its `extends` chain, `modules.d/*.toml`, env files.
    Config,
    /// The output of a module's `backup` hook.
    Module,
}

/// Why a backup was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    /// `steward backup create`.
    Manual,
    /// The daemon's schedule.
    Scheduled,
    /// The files a restore replaced, kept before it overwrote them.
    PreRestore,
}

impl Trigger {
    /// The word for people.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Scheduled => "scheduled",
            Trigger::PreRestore => "pre-restore",
        }
    }
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// Where the file lives inside the backup (and under `restore --to DIR`): `store.db`,
    /// `projects/<slug>/config/<relative path>`, `projects/<slug>/modules/<module>/<output>`.
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// The project (its stack file's path), for config and module files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The module, for hook output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Where the file was taken from (absolute), which is where an in-place restore puts it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lower-case hex (also the object's name).
    pub sha256: String,
    /// Unix permission bits.
    pub mode: u32,
}

/// A project whose files are in a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectEntry {
    /// Stack file path (the project's id).
    pub id: String,
    /// `[project] name`.
    pub name: String,
    /// Directory name used inside the backup (`projects/<slug>/…`).
    pub slug: String,
}

/// How a module's backup hook went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookRecord {
    /// Project id.
    pub project: String,
    /// Module.
    pub module: String,
    /// The command (secrets masked).
    pub command: String,
    /// It exited 0 and its output is in the backup.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it ran.
    pub duration_ms: u64,
}

/// A backup's manifest (`snapshots/<id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Id: UTC time `YYYYMMDDTHHMMSSZ`, with `-N` appended when several are made in one second.
    pub id: String,
    /// When the backup started (ms since the epoch).
    pub created_ms: u64,
    /// Version of the Steward that made it.
    pub steward_version: String,
    /// Host name.
    pub host: String,
    /// Why it was made.
    pub trigger: Trigger,
    /// `STEWARD_HOME` of the daemon that made it.
    pub home: String,
    /// Projects whose files are included.
    pub projects: Vec<ProjectEntry>,
    /// Every file.
    pub files: Vec<FileEntry>,
    /// Every module hook that ran.
    #[serde(default)]
    pub hooks: Vec<HookRecord>,
    /// Problems that did not stop the backup (a failed hook, a stack file that vanished).
    #[serde(default)]
    pub problems: Vec<String>,
    /// Sum of the files' sizes.
    pub total_bytes: u64,
    /// Bytes of content stored for the first time by this backup (the rest was already there).
    pub new_bytes: u64,
    /// How long it took.
    pub duration_ms: u64,
}

impl Manifest {
    /// The store entry, if the backup has one.
    pub fn store(&self) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.kind == FileKind::Store)
    }
}

// -----------------------------------------------------------------------------------------------------------
// Time, without a date library: UTC civil dates from days since the epoch (H. Hinnant's algorithm).

/// (year, month 1–12, day 1–31) of a day number (days since 1970-01-01).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD HH:MM:SS` UTC of a time in ms since the epoch.
pub fn format_utc(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// The snapshot id of a time: `YYYYMMDDTHHMMSSZ` (UTC).
pub fn id_for(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", s / 3600, s % 3600 / 60, s % 60)
}

/// A directory name for a project inside a backup: its name (letters, digits, `-`, `_`, `.`; others become
/// `_`) and 8 hex digits of the SHA-256 of its stack file's path, so two projects of the same name differ.
pub fn project_slug(name: &str, id: &str) -> String {
    use sha2::Digest;
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    let clean = clean.trim_start_matches('.');
    let hash = sha2::Sha256::digest(id.as_bytes());
    let hex: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", if clean.is_empty() { "project" } else { clean })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(format_utc(1_700_000_000_123), "2023-11-14 22:13:20");
        assert_eq!(id_for(1_700_000_000_123), "20231114T221320Z");
    }

    #[test]
    fn slugs() {
        let a = project_slug("shop api", "/a/steward.toml");
        let b = project_slug("shop api", "/b/steward.toml");
        assert!(a.starts_with("shop_api-"), "{a}");
        assert_ne!(a, b);
        assert!(project_slug("../..", "/x").starts_with("_..-") || !project_slug("../..", "/x").contains('/'));
        assert_eq!(project_slug("", "/x").split('-').next(), Some("project"));
    }
}
