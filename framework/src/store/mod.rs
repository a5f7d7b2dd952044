//! The store and the memory: every log line, event, run and note in one SQLite file, searchable.
//!
//! # Shape
//! - [`line`](mod@line) and [`mask`] are pure: bytes → masked, ANSI-stripped, level-tagged text. `block` is
//!   the pure layout of stored lines. Unit-tested alone.
//! - **Log lines are stored in blocks**: the lines one (module, run, stream) printed within one batch are one
//!   row of `log_blocks` (up to thousands of lines); each line keeps an id of its own. One row and one index
//!   document per block instead of per line is what lets the store take a flooding module's output at pipe
//!   speed. Everything outside the store still sees lines.
//! - One **writer thread** owns the write connection (and an exclusive `<db>.lock`: one writer per file).
//!   Everything that changes the database goes through one FIFO queue to it: log lines (from
//!   [`LogSink`]s, a chunk at a time), events ([`Store::record_event`]), notes, flushes and retention
//!   requests. It commits in batches (at most [`StoreOptions::batch_rows`] lines and rows, or
//!   [`StoreOptions::batch_interval`] after the batch's first message, whichever comes first).
//! - **Near-real-time indexing.** Blocks are committed first and added to the FTS5 index afterwards, in bulk
//!   steps, whenever the writer has spare time (after a batch that ended by time, or when the queue is
//!   idle); past [`MAX_UNINDEXED_ROWS`] waiting lines it indexes after every batch, so ingestion slows to the
//!   indexing rate rather than let the tail grow. Searches and queries read the index for indexed blocks and
//!   *scan* the committed-but-unindexed tail (a SIMD pre-filter skips blocks and lines that cannot match),
//!   so a line is searchable the moment `flush()` returns.
//! - The **log index is partitioned** into FTS5 tables of about [`StoreOptions::index_part_rows`] lines:
//!   retention deletes blocks and drops whole expired parts, never deleting from FTS5 (which is slow).
//! - **Retention** runs between batches in steps of about [`RETENTION_STEP_ROWS`] lines, whole blocks at a
//!   time ([`RetentionPolicy`]). Notes are never deleted.
//! - **Reads** use a small pool of their own connections, each query in one read transaction (WAL:
//!   readers never wait for the writer, and see one consistent snapshot of blocks and index watermark), so
//!   any number of threads may search at once; [`Store`] clones share one writer and one pool, and
//!   [`Store::open_read_only`] gives other processes a reader.
//!
//! # Back-pressure
//! Log lines are *processed* (decoded, stripped, masked, parsed) on the caller's thread — in the daemon that
//! is each project's log consumer — a chunk at a time, and then queued. The queue holds about
//! [`StoreOptions::queue_lines`] log lines: when it is full, [`LogSink::send_chunk`] waits until the writer
//! catches up. The module's pipe reader therefore stops reading, the pipe fills, and the *module* blocks on
//! its own writes: back-pressure is per module and nothing is lost. Callers that must never wait use
//! [`LogSink::try_send`] (a full queue is an error they handle, counted in [`StoreStats::rejected`]).
//! Events, notes and flushes are not counted against the cap and never wait for room: the engine and the API
//! never block on log volume (they may wait for their own *reply*: `flush` and `add_note` do). From async
//! code, call `send` where blocking is allowed (e.g. `spawn_blocking`, or a dedicated reader thread), or
//! `try_send` and retry after a short timer.
//!
//! # Time
//! A line's time is its capture time, clamped when its block is written so it never goes below the previous
//! line's: time order equals id order, which lets time ranges become id ranges (binary search over blocks,
//! no time index). After the clock jumps back, new lines carry the previous time until the clock catches up.
//!
//! # Errors in the writer
//! An I/O error, a full disk or any SQLite failure rolls the current batch back, adds its lines and rows to
//! [`StoreStats::dropped`], records [`StoreStats::last_error`] and goes on with the next batch: the writer
//! never panics and never stops because of the disk. `flush()` still returns once everything before it was
//! either committed or counted as dropped. A failed indexing or retention step is retried later.

mod block;
pub mod line;
mod logs;
mod maintain;
pub mod mask;
mod matcher;
mod read;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::lifecycle::{Event, EventKind, LogChunk, LogLine, RunId, Stream, now_ms};

pub use line::{Level, ProcessedLine};
pub use read::{HIGHLIGHT_END, HIGHLIGHT_START, fts_query};

use block::Lines;
use mask::PemState;
use writer::{LogRows, Msg};

/// Errors of the store. Every error that concerns the file names its path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or prepared.
    #[error("cannot open the store at {path}: {message}")]
    Open {
        /// Database file.
        path: PathBuf,
        /// What SQLite or the file system said.
        message: String,
    },
    /// The file exists but is not a usable SQLite database.
    #[error("the store at {path} is corrupt or not a Steward database ({message}); move it aside to start afresh")]
    Corrupt {
        /// Database file.
        path: PathBuf,
        /// What SQLite said.
        message: String,
    },
    /// The database was written by a newer Steward.
    #[error("the store at {path} has schema version {found}; this Steward understands up to {supported}")]
    TooNew {
        /// Database file.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// A query or write failed.
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The log queue is full (only from [`LogSink::try_send`]).
    #[error("the store's log queue is full")]
    QueueFull,
    /// The writer thread has stopped (the store was dropped or shut down).
    #[error("the store's writer has stopped")]
    Closed,
    /// The store was opened with [`Store::open_read_only`].
    #[error("the store is open read-only")]
    ReadOnly,
    /// Another process (or another `Store` in this one) has the file open for writing.
    #[error("the store at {path} is already open for writing by another Steward (lock file {lock})")]
    Locked {
        /// Database file.
        path: PathBuf,
        /// The lock file held by the writer.
        lock: PathBuf,
    },
    /// The writer could not do what was asked (the cause is also in [`StoreStats::last_error`]).
    #[error("store write failed: {0}")]
    Write(String),
    /// A file-system error around the database file.
    #[error("{path}: {source}")]
    Io {
        /// Path concerned.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl StoreError {
    fn open(path: &Path, e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        let corrupt = matches!(e.sqlite_error_code(), Some(NotADatabase | DatabaseCorrupt));
        let message = e.to_string();
        if corrupt {
            StoreError::Corrupt { path: path.to_path_buf(), message }
        } else {
            StoreError::Open { path: path.to_path_buf(), message }
        }
    }
}

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How much log history to keep. Enforced by the writer in steps of at most [`RETENTION_STEP_ROWS`] rows
/// between ingestion batches. Notes are never deleted; events and runs are deleted by age only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    /// Upper bound on the bytes in use in the database file: `(page_count − freelist_count) × page_size`,
    /// less [`StoreStats::reclaimable_bytes`] (the deleted share of partly expired index parts, which is
    /// freed when the part's last row goes — at most one part's worth). The oldest logs are deleted while
    /// it is above. Freed pages are reused, so the file stays at its high-water mark until `db vacuum`.
    /// Default 256 MiB.
    pub max_bytes: u64,
    /// Logs and events older than this are deleted. Default 14 days.
    pub max_age: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy { max_bytes: 256 * 1024 * 1024, max_age: Duration::from_secs(14 * 24 * 3600) }
    }
}

/// About the most log lines one retention step deletes (whole blocks, one short transaction).
pub const RETENTION_STEP_ROWS: usize = 50_000;

/// Log lines (whole blocks) added to the full-text index per indexing step (one transaction, ~0.1 s).
pub const INDEX_STEP_ROWS: usize = 100_000;

/// Above this many unindexed log lines, the writer indexes after every batch, so ingestion slows to the
/// indexing rate instead of letting the scanned tail grow (searches scan at most about this many lines).
pub const MAX_UNINDEXED_ROWS: usize = 2_000_000;

/// Tuning of a store; [`Default`] is what the daemon uses.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// History to keep.
    pub retention: RetentionPolicy,
    /// Log lines the queue holds before [`LogSink::send`] waits (default 16,384 ≈ 2 MB of ~100-byte lines,
    /// about 10 ms of the writer's work; a chunk is let in whole when the queue is below the cap).
    pub queue_lines: usize,
    /// A batch is committed after this many log lines and other rows… (default 50,000)
    pub batch_rows: usize,
    /// …or this long after its first row, whichever comes first (default 50 ms).
    pub batch_interval: Duration,
    /// Hard ceiling on the database file (SQLite `max_page_count`): writes that would grow the file past it
    /// fail as "database or disk is full", exactly like a full disk. None (default) = no ceiling.
    pub hard_max_bytes: Option<u64>,
    /// Log lines per part of the full-text index (default 500,000; parts end on block boundaries). Smaller
    /// parts free space in finer steps; more parts make searches visit more tables.
    pub index_part_rows: usize,
    /// How long committed log blocks may wait before the writer indexes them in its spare time (default 0:
    /// as soon as it has time). Larger values index in fewer, bigger steps; searches are unaffected (they
    /// scan the unindexed tail). Forced indexing (over [`MAX_UNINDEXED_ROWS`]) and
    /// [`Store::flush_index`] do not wait.
    pub index_delay: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            retention: RetentionPolicy::default(),
            queue_lines: 16_384,
            batch_rows: 50_000,
            batch_interval: Duration::from_millis(50),
            hard_max_bytes: None,
            index_part_rows: 500_000,
            index_delay: Duration::ZERO,
        }
    }
}

/// What [`Store::search`] searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Log lines.
    Log,
    /// Engine events (state changes, runs, configuration).
    Event,
    /// Notes: remembered by the user or written for incidents.
    Note,
}

/// A memory search. `text` is plain words (see [`fts_query`] for exactly how it is read); an empty text
/// lists the most recent entries that pass the filters.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Words to find (all of them), `"quoted phrases"`, `prefix*`.
    pub text: String,
    /// Only this project.
    pub project: Option<String>,
    /// Only this module.
    pub module: Option<String>,
    /// Kinds to search; empty = all.
    pub kinds: Vec<Kind>,
    /// Minimum level of logs and events (notes have no level and are not filtered by it).
    pub level: Option<Level>,
    /// Only entries at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Only entries at or before this time.
    pub until_ms: Option<u64>,
    /// Maximum hits; 0 = 50.
    pub limit: usize,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// What it is.
    pub kind: Kind,
    /// Row id within its kind (log id, event id, note id).
    pub id: i64,
    /// When (ms since the epoch).
    pub ts_ms: u64,
    /// Project.
    pub project: String,
    /// Module, when the entry belongs to one.
    pub module: Option<String>,
    /// Process run (logs only).
    pub run: Option<RunId>,
    /// Level (logs and events).
    pub level: Option<Level>,
    /// An excerpt of the entry around the match, with every matched term wrapped in [`HIGHLIGHT_START`]
    /// (`\u{1}`) … [`HIGHLIGHT_END`] (`\u{2}`) and `…` where text was left out. The stored search text
    /// never contains these two control characters, so the markers are unambiguous.
    pub snippet: String,
    /// Higher is better; see [`Store::search`] for the formula.
    pub score: f64,
}

/// Filter and page for [`Store::query_logs`].
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only this project.
    pub project: Option<String>,
    /// Only this module.
    pub module: Option<String>,
    /// Only this run.
    pub run: Option<RunId>,
    /// Minimum level; lines of unknown level are left out when set.
    pub level: Option<Level>,
    /// Words that must occur (full-text, like [`SearchQuery::text`]).
    pub text: Option<String>,
    /// Exact, case-sensitive substring of the (ANSI-stripped) line, like `grep -F`.
    pub grep: Option<String>,
    /// At or after this time.
    pub since_ms: Option<u64>,
    /// At or before this time.
    pub until_ms: Option<u64>,
    /// Page forward: rows with id greater than this, oldest first.
    pub after_id: Option<i64>,
    /// Page backward: rows with id less than this.
    pub before_id: Option<i64>,
    /// Maximum rows; 0 = 100.
    pub limit: usize,
}

/// A stored log line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRecord {
    /// Row id: increasing in arrival order; use it as a paging cursor.
    pub id: i64,
    /// Capture time (ms since the epoch).
    pub ts_ms: u64,
    /// Project.
    pub project: String,
    /// Module.
    pub module: String,
    /// Process run.
    pub run: RunId,
    /// Which pipe.
    pub stream: Stream,
    /// Level, parsed or guessed.
    pub level: Option<Level>,
    /// The line for display: masked, ANSI escapes kept.
    pub message: String,
    /// The line as indexed: masked, ANSI stripped.
    pub text: String,
    /// Fields of a JSON line.
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
    /// Invalid UTF-8 was escaped (`\xNN`, `\\`); [`LogRecord::bytes`] restores the bytes.
    pub escaped: bool,
    /// The line was cut (the text ends with [`line::TRUNCATION_MARKER`]).
    pub truncated: bool,
    /// A secret was masked in it.
    pub masked: bool,
}

impl LogRecord {
    /// The line's bytes as captured (after masking and truncation): exact even for invalid UTF-8.
    pub fn bytes(&self) -> Vec<u8> {
        if self.escaped { line::unescape_bytes(&self.message) } else { self.message.as_bytes().to_vec() }
    }
}

/// Filter and page for [`Store::query_events`].
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this project.
    pub project: Option<String>,
    /// Only this module.
    pub module: Option<String>,
    /// Only these kinds (`transition`, `run_started`, `run_ended`, `config_applied`, `config_rejected`).
    pub kinds: Vec<String>,
    /// Minimum level.
    pub level: Option<Level>,
    /// At or after this time.
    pub since_ms: Option<u64>,
    /// At or before this time.
    pub until_ms: Option<u64>,
    /// Page forward (oldest first).
    pub after_id: Option<i64>,
    /// Page backward.
    pub before_id: Option<i64>,
    /// Maximum rows; 0 = 100.
    pub limit: usize,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    /// Row id.
    pub id: i64,
    /// When.
    pub ts_ms: u64,
    /// Project.
    pub project: String,
    /// Module, if the event concerns one.
    pub module: Option<String>,
    /// Kind (`transition`, `run_ended`, …).
    pub kind: String,
    /// Level: error for failures and non-zero exits, warn for backoff, info otherwise.
    pub level: Level,
    /// One line for people.
    pub text: String,
    /// The event as JSON (the serialized [`EventKind`]).
    pub payload: serde_json::Value,
}

/// A note to remember.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoteInput {
    /// Project.
    pub project: String,
    /// Module it is about, if any.
    pub module: Option<String>,
    /// The text (secrets in it are masked too).
    pub text: String,
    /// Tags (whitespace inside a tag becomes `-`).
    pub tags: Vec<String>,
    /// Where it came from: see [`note_source`].
    pub source: String,
}

/// Conventional values of [`NoteInput::source`].
pub mod note_source {
    /// `steward remember`.
    pub const CLI: &str = "cli";
    /// "Remember selection" in the editor.
    pub const EDITOR: &str = "editor";
    /// Written by [`super::Store::record_incident`].
    pub const INCIDENT: &str = "incident";
    /// Written by the daemon when it fires or resolves an alert.
    pub const ALERT: &str = "alert";
    /// Written by the daemon when it brings back a stack after a crash.
    pub const RESUME: &str = "resume";
}

/// A stored note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoteRecord {
    /// Row id.
    pub id: i64,
    /// When.
    pub ts_ms: u64,
    /// Project.
    pub project: String,
    /// Module.
    pub module: Option<String>,
    /// Text (masked).
    pub text: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Source.
    pub source: String,
}

/// A process run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    /// Project.
    pub project: String,
    /// Module.
    pub module: String,
    /// Run id.
    pub run: RunId,
    /// Process id.
    pub pid: Option<u32>,
    /// Start time.
    pub started_ms: u64,
    /// End time, if ended.
    pub ended_ms: Option<u64>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Signal.
    pub signal: Option<i32>,
    /// Why it ended.
    pub reason: Option<String>,
}

/// Counters and sizes, for `steward doctor` and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Log rows in the database.
    pub log_rows: u64,
    /// Event rows.
    pub event_rows: u64,
    /// Note rows.
    pub note_rows: u64,
    /// Bytes in use: `(page_count − freelist_count) × page_size`.
    pub used_bytes: u64,
    /// Part of `used_bytes` held by index entries of already deleted logs, freed when their index part
    /// expires (retention limits `used_bytes − reclaimable_bytes`).
    pub reclaimable_bytes: u64,
    /// Size of the database file plus its WAL.
    pub file_bytes: u64,
    /// Log rows committed by this process.
    pub written: u64,
    /// Rows lost to write errors (disk full, I/O errors) since open.
    pub dropped: u64,
    /// Lines refused by [`LogSink::try_send`] because the queue was full.
    pub rejected: u64,
    /// Log rows deleted by retention since open.
    pub retained_deleted: u64,
    /// Log lines waiting in the queue.
    pub queued: u64,
    /// Committed log rows not yet in the full-text index (searches scan them directly).
    pub unindexed: u64,
    /// The last write error, if any.
    pub last_error: Option<String>,
}

/// One metrics sample of one series (see [`Store::record_metrics`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    /// When it was taken (the end of the interval for averages).
    pub ts_ms: u64,
    /// The series' resolution: the sampling interval for raw samples, 60,000 for minute averages.
    pub resolution_ms: u64,
    /// Project id; empty for the daemon-wide series.
    pub project: String,
    /// Module name; empty for the daemon-wide series.
    pub module: String,
    /// CPU, percent of one core (a module's tree) or of the whole machine (daemon-wide series).
    pub cpu_percent: f64,
    /// Resident memory of the tree, or the system's used memory, in bytes.
    pub mem_bytes: u64,
    /// The IPC score (daemon-wide series only).
    pub ipc_score: Option<f64>,
}

/// Which metrics history to read (see [`Store::metrics`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsQuery {
    /// Only this resolution.
    pub resolution_ms: u64,
    /// Samples at or after this time.
    pub since_ms: u64,
    /// Only this project (`Some("")` for the daemon-wide series).
    pub project: Option<String>,
    /// Only this module.
    pub module: Option<String>,
}

/// A project the store knows, and its modules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectModules {
    /// Project id (stack file path).
    pub project: String,
    /// Module names, sorted.
    pub modules: Vec<String>,
}

/// What one [`Store::enforce_retention`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// Log rows deleted because they were too old.
    pub logs_by_age: u64,
    /// Log rows deleted to get under the size limit.
    pub logs_by_size: u64,
    /// Events deleted because they were too old.
    pub events_by_age: u64,
    /// Bytes in use afterwards, less the reclaimable ones (what the size limit is compared with).
    pub used_bytes: u64,
}

// -----------------------------------------------------------------------------------------------------------
// Shared state between the handles and the writer

/// Counters written by the writer and read by `stats()`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub rejected: AtomicU64,
    pub retained_deleted: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn set_error(&self, e: &dyn std::fmt::Display) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(e.to_string());
        }
    }
}

/// The cap on queued log lines (see "Back-pressure" above).
#[derive(Debug)]
pub(crate) struct Gate {
    queued: AtomicUsize,
    cap: usize,
    waiters: AtomicUsize,
    closed: AtomicBool,
    lock: Mutex<()>,
    room: Condvar,
}

impl Gate {
    fn new(cap: usize) -> Gate {
        Gate {
            queued: AtomicUsize::new(0),
            cap: cap.max(1),
            waiters: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            lock: Mutex::new(()),
            room: Condvar::new(),
        }
    }

    /// Takes `n` slots, waiting while the queue is full. A chunk is let in whole while the queue is below
    /// the cap, so the queue holds at most the cap plus one chunk per sender.
    fn acquire(&self, n: usize) -> Result<()> {
        if self.queued.load(Ordering::SeqCst) < self.cap {
            self.queued.fetch_add(n, Ordering::SeqCst);
            return Ok(());
        }
        let mut guard = self.lock.lock().map_err(|_| StoreError::Closed)?;
        self.waiters.fetch_add(1, Ordering::SeqCst);
        while self.queued.load(Ordering::SeqCst) >= self.cap && !self.closed.load(Ordering::SeqCst) {
            // The timeout is only a safety net; `release` notifies.
            match self.room.wait_timeout(guard, Duration::from_millis(100)) {
                Ok((g, _)) => guard = g,
                Err(_) => {
                    self.waiters.fetch_sub(1, Ordering::SeqCst);
                    return Err(StoreError::Closed);
                }
            }
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        drop(guard);
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.queued.fetch_add(n, Ordering::SeqCst);
        Ok(())
    }

    fn try_acquire(&self, n: usize) -> bool {
        if self.queued.load(Ordering::SeqCst) < self.cap {
            self.queued.fetch_add(n, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    /// Gives back `n` slots (the writer took `n` lines off the queue, or a send failed).
    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.queued.fetch_sub(n, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.lock.lock();
            self.room.notify_all();
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _g = self.lock.lock();
        self.room.notify_all();
    }
}

/// (project, module, run, stream code).
type StreamKey = (Arc<str>, Arc<str>, RunId, u8);

/// Per-(project, module, run, stream) masking state, shared by all sinks. Only streams inside a private
/// key block have an entry, so the common path never takes the lock.
#[derive(Debug, Default)]
struct PemStates {
    open: AtomicUsize,
    map: Mutex<std::collections::HashMap<StreamKey, PemState>>,
}

impl PemStates {
    /// Processes a chunk's lines with its stream's masking state.
    fn process(&self, project: &Arc<str>, chunk: &LogChunk, ts_ms: u64) -> Lines {
        let mut out = Lines::default();
        let key = || (project.clone(), chunk.module.clone(), chunk.run, writer::stream_code(chunk.stream) as u8);
        if self.open.load(Ordering::Relaxed) == 0 {
            let mut fresh = PemState::default();
            line::process_chunk(chunk, ts_ms, &mut fresh, &mut out);
            if fresh.in_block() {
                // The chunk ended inside a block: remember it for the stream's next lines.
                if let Ok(mut map) = self.map.lock() {
                    map.insert(key(), fresh);
                    self.open.store(map.len(), Ordering::Relaxed);
                }
            }
            return out;
        }
        let Ok(mut map) = self.map.lock() else {
            line::process_chunk(chunk, ts_ms, &mut PemState::default(), &mut out);
            return out;
        };
        let mut state = map.remove(&key()).unwrap_or_default();
        line::process_chunk(chunk, ts_ms, &mut state, &mut out);
        if state.in_block() {
            map.insert(key(), state);
        }
        self.open.store(map.len(), Ordering::Relaxed);
        out
    }

    fn forget_run(&self, project: &str, module: &str, run: RunId) {
        if self.open.load(Ordering::Relaxed) == 0 {
            return;
        }
        if let Ok(mut map) = self.map.lock() {
            map.retain(|(p, m, r, _), _| !(&**p == project && &**m == module && *r == run));
            self.open.store(map.len(), Ordering::Relaxed);
        }
    }
}

/// Takes the exclusive writer lock `<db>.lock` (advisory `flock`, released when the file is closed, also
/// when the process dies).
fn lock_file(path: &Path) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StoreError::Io { path: lock_path.clone(), source })?;
    // SAFETY: flock on a descriptor we own; no memory is shared with the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(StoreError::Locked { path: path.to_path_buf(), lock: lock_path });
        }
        return Err(StoreError::Io { path: lock_path, source: err });
    }
    Ok(file)
}

// -----------------------------------------------------------------------------------------------------------
// Sinks

/// Where module output goes: cheap to clone (one per log consumer), `Send + Sync`.
///
/// Each call processes the lines on the calling thread (well under a microsecond per line for ordinary
/// output), then queues them for the writer. The `send*` calls wait while the queue is full (per-module
/// back-pressure, see the module docs); [`try_send`](LogSink::try_send) never waits.
#[derive(Debug, Clone)]
pub struct LogSink {
    tx: mpsc::Sender<Msg>,
    gate: Arc<Gate>,
    pem: Arc<PemStates>,
    counters: Arc<Counters>,
}

impl LogSink {
    /// Queues the lines of a captured chunk, with the chunk's capture time. Waits while the queue is full.
    pub fn send_chunk(&self, project: &Arc<str>, chunk: &LogChunk) -> Result<()> {
        self.queue(project, chunk, chunk.at_ms, true)
    }

    /// Queues a line captured now. Waits while the queue is full.
    pub fn send(&self, project: &Arc<str>, line: LogLine) -> Result<()> {
        self.send_at(project, line, now_ms())
    }

    /// Queues a line captured at `ts_ms`. Waits while the queue is full. The stored time is clamped so it
    /// never goes below the previous line's (time order = id order; see [`Store::query_logs`]).
    pub fn send_at(&self, project: &Arc<str>, line: LogLine, ts_ms: u64) -> Result<()> {
        self.queue(project, &LogChunk::from_line(&line, ts_ms), ts_ms, true)
    }

    /// Queues a line captured now, or fails at once with [`StoreError::QueueFull`].
    pub fn try_send(&self, project: &Arc<str>, line: LogLine) -> Result<()> {
        let ts = now_ms();
        self.queue(project, &LogChunk::from_line(&line, ts), ts, false)
    }

    fn queue(&self, project: &Arc<str>, chunk: &LogChunk, ts_ms: u64, wait: bool) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let n = chunk.len();
        if wait {
            self.gate.acquire(n)?;
        } else if !self.gate.try_acquire(n) {
            self.counters.rejected.fetch_add(n as u64, Ordering::Relaxed);
            return Err(StoreError::QueueFull);
        }
        let lines = self.pem.process(project, chunk, ts_ms);
        let rows = LogRows {
            project: project.clone(),
            module: chunk.module.clone(),
            run: chunk.run,
            stream: chunk.stream,
            lines,
        };
        self.tx.send(Msg::Logs(rows)).map_err(|_| {
            self.gate.release(n);
            StoreError::Closed
        })
    }
}

// -----------------------------------------------------------------------------------------------------------
// The store

/// The store: a cheap-to-clone handle. The writer thread stops (after committing what it has) when the last
/// clone is dropped; sinks still alive then get [`StoreError::Closed`].
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// None for a read-only store.
    _lock: Option<std::fs::File>,
    read_only: bool,
    tx: mpsc::Sender<Msg>,
    gate: Arc<Gate>,
    pem: Arc<PemStates>,
    counters: Arc<Counters>,
    readers: read::Readers,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// The policy the writer enforces (a copy, for previews).
    retention: Mutex<RetentionPolicy>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Ok(mut w) = self.writer.lock()
            && let Some(handle) = w.take()
        {
            let _ = handle.join();
        }
        self.gate.close();
    }
}

impl Store {
    /// Opens (creating if needed) the store at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, StoreOptions::default())
    }

    /// Opens (creating if needed) the store at `path`. The parent directory is created. Fails with
    /// [`StoreError::Corrupt`] when the file is not a SQLite database, naming the path.
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        }
        // One writer per file: the writer assigns log ids itself, so a second one would collide.
        let lock = lock_file(&path)?;
        let conn = schema::open_writer(&path)?;
        if let Some(max) = options.hard_max_bytes {
            let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            let pages = (max / page_size.max(1) as u64).max(1);
            let _: i64 = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| r.get(0))?;
        }
        let readers = read::Readers::new(path.clone());
        // Fail now, with the path, rather than at the first search.
        readers.with(|_| Ok(()))?;

        let (tx, rx) = mpsc::channel();
        let gate = Arc::new(Gate::new(options.queue_lines));
        let counters = Arc::new(Counters::default());
        let retention = Mutex::new(options.retention);
        let w = writer::Writer::new(conn, options, gate.clone(), counters.clone());
        let handle = std::thread::Builder::new()
            .name("steward-store-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|source| StoreError::Io { path: path.clone(), source })?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                _lock: Some(lock),
                read_only: false,
                tx,
                gate,
                pem: Arc::new(PemStates::default()),
                counters,
                readers,
                writer: Mutex::new(Some(handle)),
                retention,
            }),
        })
    }

    /// Opens an existing store for reading only (searches, queries, stats), next to a writer that may be
    /// running in another process. Every write fails with [`StoreError::ReadOnly`].
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            return Err(StoreError::Open { path, message: "no such file".into() });
        }
        let readers = read::Readers::new(path.clone());
        readers.with(|_| Ok(()))?;
        let (tx, _) = mpsc::channel();
        let gate = Arc::new(Gate::new(1));
        gate.close();
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                _lock: None,
                read_only: true,
                tx,
                gate,
                pem: Arc::new(PemStates::default()),
                counters: Arc::new(Counters::default()),
                readers,
                writer: Mutex::new(None),
                retention: Mutex::new(RetentionPolicy::default()),
            }),
        })
    }

    fn writable(&self) -> Result<()> {
        if self.inner.read_only { Err(StoreError::ReadOnly) } else { Ok(()) }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A sink for module output.
    pub fn log_sink(&self) -> LogSink {
        LogSink {
            tx: self.inner.tx.clone(),
            gate: self.inner.gate.clone(),
            pem: self.inner.pem.clone(),
            counters: self.inner.counters.clone(),
        }
    }

    /// Records an engine event without waiting (events never count against the log queue's cap): every
    /// event becomes a searchable `events` row, and `RunStarted`/`RunEnded` also maintain `runs`.
    pub fn record_event(&self, event: &Event) -> Result<()> {
        self.writable()?;
        if let EventKind::RunEnded { module, run, .. } = &event.kind {
            // A run that ended inside a private key block will print no END marker any more.
            self.inner.pem.forget_run(&event.project, module, *run);
        }
        self.inner.tx.send(Msg::Event(Box::new(event.clone()))).map_err(|_| StoreError::Closed)
    }

    /// Queues metric samples without waiting, and prunes each `(resolution_ms, older_than_ms)` series in the
    /// same transaction.
    pub fn record_metrics(&self, rows: Vec<MetricRow>, prune: Vec<(u64, u64)>) -> Result<()> {
        self.writable()?;
        self.inner.tx.send(Msg::Metrics(rows, prune)).map_err(|_| StoreError::Closed)
    }

    /// Metrics history, oldest first.
    pub fn metrics(&self, query: &MetricsQuery) -> Result<Vec<MetricRow>> {
        self.inner.readers.with(|c| read::metrics(c, query))
    }

    fn request<T>(&self, make: impl FnOnce(mpsc::SyncSender<Result<T>>) -> Msg) -> Result<T> {
        self.writable()?;
        let (reply, rx) = mpsc::sync_channel(1);
        self.inner.tx.send(make(reply)).map_err(|_| StoreError::Closed)?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// Waits until everything queued before this call is committed (and searchable) or, after a write
    /// error, counted in [`StoreStats::dropped`].
    pub fn flush(&self) -> Result<()> {
        self.request(Msg::Flush)
    }

    /// Stores a note and returns its id once it is committed with `synchronous=FULL` (durable even against
    /// power loss). Secrets in the text are masked.
    pub fn add_note(&self, note: NoteInput) -> Result<i64> {
        let mut ids = self.request(|r| Msg::Notes(vec![note], r))?;
        ids.pop().ok_or(StoreError::Closed)
    }

    /// Stores several notes in one durable commit (imports, benchmarks).
    pub fn add_notes(&self, notes: Vec<NoteInput>) -> Result<Vec<i64>> {
        self.request(|r| Msg::Notes(notes, r))
    }

    /// Writes the automatic note for a crash: `"<module> <exit> (run N)"` followed by the module's last 20
    /// log lines (of that run when given), read from the store after a flush. Tagged `incident` and the
    /// module name; source [`note_source::INCIDENT`].
    pub fn record_incident(&self, project: &str, module: &str, run: Option<RunId>, exit: &str) -> Result<i64> {
        self.flush()?;
        let lines = self.query_logs(&LogQuery {
            project: Some(project.to_string()),
            module: Some(module.to_string()),
            run,
            limit: INCIDENT_LINES,
            ..LogQuery::default()
        })?;
        let mut text = match run {
            Some(r) => format!("{module} {exit} (run {r})"),
            None => format!("{module} {exit}"),
        };
        if lines.is_empty() {
            text.push_str("\n\nNo output was captured.");
        } else {
            text.push_str(&format!("\n\nLast {} log lines:\n", lines.len()));
            for l in &lines {
                text.push_str(&l.text);
                text.push('\n');
            }
        }
        self.add_note(NoteInput {
            project: project.to_string(),
            module: Some(module.to_string()),
            text,
            tags: vec!["incident".into(), module.to_string()],
            source: note_source::INCIDENT.into(),
        })
    }

    /// The memory: one ranked search over notes, events and logs.
    ///
    /// Matching: every word of `text` must occur (see [`fts_query`]). For each kind, the newest
    /// [`SEARCH_CANDIDATES`] matches that pass the filters are scored, then the best `limit` overall are
    /// returned, best first, with snippets. Score (higher is better):
    ///
    /// ```text
    /// score     = 3 × relevance + kind_bonus + 3 × 0.5^(age_days / 7)
    /// relevance = bm25 / (best bm25 among the candidates of the same kind)      ∈ [0, 1]; 0 for empty text
    /// bm25      = Okapi BM25 (k1 = 1.2, b = 0.75), as FTS5 computes it
    /// kind_bonus = 1.0 note, 0.5 event, 0 log
    /// ```
    ///
    /// Relevance is normalised per kind because each kind is its own corpus (a word in the only note has an
    /// idf of about 0 there): raw BM25 values of different tables do not compare. So at equal relevance a
    /// newer entry beats an older one, and a note beats an event beats a log of the same age; relevance
    /// and a week of age weigh about the same. Notes and events are scored by FTS5's `bm25()`; log rows are
    /// scored by the store with the same formula, using the index's own statistics and a document
    /// frequency estimated from the newest matches (exact below 1,000 matches), because FTS5 computes the
    /// frequency by walking a term's whole posting list (20 ms for a word in 700,000 lines). Limiting
    /// scoring to the newest matches keeps common words fast; their BM25 barely differs between lines, so
    /// recency decides anyway, and rare words have fewer matches than that and are ranked exactly.
    pub fn search(&self, query: &SearchQuery) -> Result<Vec<Hit>> {
        self.inner.readers.with(|c| read::search(c, query, now_ms()))
    }

    /// Log lines for `steward logs` and viewers, always returned oldest first.
    ///
    /// Paging: with `after_id`, the `limit` rows just after it (follow forward); otherwise the `limit` rows
    /// just before `before_id` (or the newest rows). Time bounds become id bounds by binary search, which is
    /// exact because the writer keeps `ts_ms` non-decreasing in id order.
    pub fn query_logs(&self, query: &LogQuery) -> Result<Vec<LogRecord>> {
        self.inner.readers.with(|c| logs::query_logs(c, query))
    }

    /// The last `n` lines of a module, oldest first.
    pub fn last_lines(&self, project: &str, module: &str, n: usize) -> Result<Vec<LogRecord>> {
        self.query_logs(&LogQuery {
            project: Some(project.to_string()),
            module: Some(module.to_string()),
            limit: n.max(1),
            ..LogQuery::default()
        })
    }

    /// Events, oldest first, paged like [`Store::query_logs`].
    pub fn query_events(&self, query: &EventQuery) -> Result<Vec<EventRecord>> {
        self.inner.readers.with(|c| read::query_events(c, query))
    }

    /// Notes of a project (all projects when None), newest first.
    pub fn notes(&self, project: Option<&str>, limit: usize) -> Result<Vec<NoteRecord>> {
        self.inner.readers.with(|c| read::notes(c, project, limit))
    }

    /// One note by id (whole text; search hits carry only a snippet). None when there is no such note.
    pub fn note(&self, id: i64) -> Result<Option<NoteRecord>> {
        self.inner.readers.with(|c| read::note(c, id))
    }

    /// Process runs of a project (and module), newest first.
    pub fn runs(&self, project: &str, module: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
        self.inner.readers.with(|c| read::runs(c, project, module, limit))
    }

    /// Changes the retention policy (takes effect from the writer's next step).
    pub fn set_retention(&self, policy: RetentionPolicy) -> Result<()> {
        self.writable()?;
        if let Ok(mut r) = self.inner.retention.lock() {
            *r = policy;
        }
        self.inner.tx.send(Msg::SetRetention(policy)).map_err(|_| StoreError::Closed)
    }

    /// Waits until every committed log row is in the full-text index (searches never need this: they scan
    /// the unindexed tail; it is for benchmarks, tests and `steward db reindex`).
    pub fn flush_index(&self) -> Result<()> {
        self.flush()?;
        self.request(Msg::IndexAll)
    }

    /// Runs retention now, step after step, until the store is within its policy (for `steward db prune`
    /// and tests; the writer does the same incrementally on its own).
    pub fn enforce_retention(&self) -> Result<RetentionReport> {
        self.request(Msg::Retention)
    }

    /// The retention policy in force.
    pub fn retention(&self) -> RetentionPolicy {
        self.inner.retention.lock().map(|r| *r).unwrap_or_default()
    }

    /// What [`Store::enforce_retention`] would delete now, without deleting anything (`steward db prune
    /// --dry-run`): exact for age; for size, an estimate from the average row size.
    pub fn retention_preview(&self) -> Result<RetentionReport> {
        self.retention_preview_with(self.retention())
    }

    /// What retention under `policy` would delete now, without deleting anything.
    pub fn retention_preview_with(&self, policy: RetentionPolicy) -> Result<RetentionReport> {
        self.inner.readers.with(|c| maintain::retention_preview(c, policy))
    }

    /// `VACUUM` through the writer (the file shrinks to the pages in use), then a truncating checkpoint.
    /// Ingestion waits meanwhile; reads go on.
    pub fn vacuum(&self) -> Result<()> {
        self.request(Msg::Vacuum)
    }

    /// Rebuilds every full-text index from the rows (repairs a damaged index); `progress(done, total)` is
    /// called from the writer thread after each step. Returns the log rows indexed.
    pub fn reindex(&self, progress: impl FnMut(u64, u64) + Send + 'static) -> Result<u64> {
        self.flush()?;
        self.request(|r| Msg::Reindex(Box::new(progress), r))
    }

    /// Writes a small row in its own transaction through the writer: Ok means the store takes writes now.
    pub fn check_writable(&self) -> Result<()> {
        self.request(Msg::Probe)
    }

    /// Every project the store has rows for, with its modules (for reports).
    pub fn projects(&self) -> Result<Vec<ProjectModules>> {
        self.inner.readers.with(maintain::projects)
    }

    /// Rows the writer could not store (counted in [`StoreStats::dropped`]); an atomic read, cheap enough
    /// for every metrics tick.
    pub fn dropped(&self) -> u64 {
        self.inner.counters.dropped.load(Ordering::Relaxed)
    }

    /// Counters and sizes.
    pub fn stats(&self) -> Result<StoreStats> {
        let c = &self.inner.counters;
        let mut s = self.inner.readers.with(read::sizes)?;
        s.written = c.written.load(Ordering::Relaxed);
        s.dropped = c.dropped.load(Ordering::Relaxed);
        s.rejected = c.rejected.load(Ordering::Relaxed);
        s.retained_deleted = c.retained_deleted.load(Ordering::Relaxed);
        s.queued = self.inner.gate.queued.load(Ordering::Relaxed) as u64;
        s.last_error = c.last_error.lock().ok().and_then(|g| g.clone());
        s.file_bytes = file_len(&self.inner.path) + file_len(&wal_path(&self.inner.path));
        Ok(s)
    }
}

/// The version of the SQLite library the store uses (for diagnostics).
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

/// Lines an incident note quotes.
pub const INCIDENT_LINES: usize = 20;

/// How many of the newest matches of each kind [`Store::search`] scores.
pub const SEARCH_CANDIDATES: usize = 1_000;

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn wal_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}
