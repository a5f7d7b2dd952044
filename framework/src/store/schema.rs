//! Connection setup and the schema: every pragma and every migration lives here.
//!
//! The schema version is `PRAGMA user_version`; [`MIGRATIONS`]`[i]` takes a database from version `i` to
//! `i + 1`, each in one transaction. A database with a higher version than we know is refused rather than
//! guessed at. Migration 2 adds the metrics history.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// How long a connection waits for another one's lock before giving up with SQLITE_BUSY.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one entry per version step.
///
/// Choices, measured on the 2-core dev VM with `examples/store_bench.rs` and a raw-SQLite harness
/// (1M lines of ~107 bytes; figures vary ±20% run to run):
/// - `logs` keeps the masked, ANSI-stripped `text` (indexed, and displayed when `display` is NULL) and the
///   coloured `display` only when it differs, so the common line is stored once.
/// - Plain row inserts run at ~720k rows/s, ~530k with the `logs(module_id, id)` index; indexing each row
///   into FTS5 as it is inserted capped the whole at ~100k rows/s (tuned: `detail=none`, `columnsize=0`,
///   `automerge=0`, 50k-row transactions, 64 MiB hash: ~165k; one document per 64 lines: ~200k). Hence
///   the writer indexes *after* committing, in bulk `INSERT … SELECT` steps (see `writer.rs`).
/// - The log index is a series of contentless FTS5 tables, each over a range of ids (`log_index_parts`).
///   Deleting rows from one FTS5 index is the slow path of FTS5: with `secure-delete` and merging, so
///   that the bytes really came back, retention ran at ~1,400 rows/s (7 s per 10,000-row step) on a
///   million-row index. Dropping an expired part is instant, and stale entries of a partly expired part
///   cost nothing but space: the join with `logs` skips them. No triggers anywhere: an `AFTER INSERT`
///   trigger was 3× slower than explicit statements.
/// - `detail=full` keeps token positions, so phrase queries (`"connection refused"`, `a:b`, `foo-bar`)
///   work; `detail=column` was no faster here, `detail=none` ~40% faster but cannot answer phrases.
/// - `logs(module_id, id)` is the only secondary index on logs: per-module paging needs it; time ranges
///   are answered by binary search on `id` because the writer keeps `ts_ms` non-decreasing in `id` order.
/// - Modules are rows of their own (`modules`) so a log row carries an integer, not two strings.
/// - Page size: 4, 8 and 16 KiB were within noise of each other; SQLite's default (4 KiB) is kept.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 0 → 1
    r#"
    CREATE TABLE projects (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        created_ms  INTEGER NOT NULL
    );
    CREATE TABLE modules (
        id          INTEGER PRIMARY KEY,
        project_id  INTEGER NOT NULL,
        name        TEXT NOT NULL,
        UNIQUE (project_id, name)
    );
    -- One row per process run. Run ids are unique within one daemon lifetime only, so they are not a key.
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY,
        module_id   INTEGER NOT NULL,
        run         INTEGER NOT NULL,
        pid         INTEGER,
        started_ms  INTEGER NOT NULL,
        ended_ms    INTEGER,
        exit_code   INTEGER,
        signal      INTEGER,
        reason      TEXT
    );
    CREATE INDEX runs_module ON runs (module_id, run);
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY,
        ts_ms       INTEGER NOT NULL,
        project_id  INTEGER NOT NULL,
        module_id   INTEGER,
        kind        TEXT NOT NULL,
        level       INTEGER NOT NULL,
        payload     TEXT NOT NULL,   -- the event as JSON
        text        TEXT NOT NULL    -- one line for people and for search
    );
    CREATE INDEX events_ts ON events (ts_ms);
    CREATE TABLE logs (
        id          INTEGER PRIMARY KEY,
        ts_ms       INTEGER NOT NULL,  -- capture time, non-decreasing in id order
        module_id   INTEGER NOT NULL,
        run         INTEGER NOT NULL,
        stream      INTEGER NOT NULL,  -- 1 stdout, 2 stderr
        level       INTEGER NOT NULL,  -- 0 unknown, 1 trace … 5 error
        flags       INTEGER NOT NULL,  -- 1 escaped, 2 truncated, 4 masked, 8 json
        text        TEXT NOT NULL,     -- masked, ANSI stripped: indexed
        display     TEXT               -- masked, ANSI kept; NULL when equal to text
    );
    CREATE INDEX logs_module ON logs (module_id, id);
    CREATE TABLE notes (
        id          INTEGER PRIMARY KEY,
        ts_ms       INTEGER NOT NULL,
        project_id  INTEGER NOT NULL,
        module_id   INTEGER,
        text        TEXT NOT NULL,
        tags        TEXT NOT NULL,     -- space-separated
        source      TEXT NOT NULL
    );
    CREATE INDEX notes_ts ON notes (ts_ms);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value NOT NULL);
    -- Log rows with id <= this are in logs_fts; newer ones are the unindexed tail (see the writer).
    INSERT INTO meta (key, value) VALUES ('logs_indexed_upto', 0);

    -- The log index is partitioned: part N is the contentless FTS5 table logs_fts_N (see LOG_PART_SQL) over
    -- the log ids first_id..=last_id. Retention never deletes from FTS5; it drops whole expired parts.
    CREATE TABLE log_index_parts (
        part        INTEGER PRIMARY KEY,
        first_id    INTEGER NOT NULL,
        last_id     INTEGER NOT NULL,
        rows        INTEGER NOT NULL
    );
    -- Events and notes are prose: the Porter stemmer lets `exit` find `exited`, `crash` find `crashes`.
    CREATE VIRTUAL TABLE events_fts USING fts5 (
        text, content='events', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
    );
    CREATE VIRTUAL TABLE notes_fts USING fts5 (
        text, tags, content='notes', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2'
    );
    "#,
    // 1 → 2: metrics history (see `Store::record_metrics`). One row per series per sample: a module's
    // process tree (`project`, `module`), or the daemon-wide series (`project` = `module` = '': system CPU
    // and memory, and the IPC score). Two resolutions are kept (`resolution_ms`): the raw samples for an
    // hour and one-minute averages for a week; the daemon prunes each as it writes.
    r#"
    CREATE TABLE metrics (
        ts_ms         INTEGER NOT NULL,
        resolution_ms INTEGER NOT NULL,
        project       TEXT NOT NULL,
        module        TEXT NOT NULL,
        cpu_percent   REAL NOT NULL,     -- percent of one core (modules) or of all cores (system)
        mem_bytes     INTEGER NOT NULL,  -- tree RSS (modules) or used memory (system)
        ipc_score     REAL               -- daemon-wide rows only
    );
    CREATE INDEX metrics_ts ON metrics (resolution_ms, ts_ms);
    "#,
];

/// One part of the log index (`{part}` is replaced by its number). Contentless (`content=''`): matching
/// and ranking need only rowids — rows are read from `logs`, scored and highlighted by the store itself
/// — and a part is never deleted from, only dropped whole.
pub(crate) const LOG_PART_SQL: &str =
    "CREATE VIRTUAL TABLE logs_fts_{part} USING fts5 (text, content='', tokenize='unicode61 remove_diacritics 2')";

/// The schema version this build writes.
pub(crate) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Opens the write connection: creates the file, sets the pragmas, runs migrations. Errors name the path;
/// a file that is not a SQLite database (or is damaged in its header) is [`StoreError::Corrupt`].
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| StoreError::open(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| StoreError::open(path, e))?;
    let mode: String =
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(|e| StoreError::open(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            message: format!("cannot switch to WAL mode (journal_mode is {mode})"),
        });
    }
    conn.execute_batch(
        "
        -- WAL + NORMAL: a commit is durable against a crash of the daemon; against power loss only after the
        -- next checkpoint. Notes commit with synchronous=FULL (see the writer).
        PRAGMA synchronous = NORMAL;
        PRAGMA foreign_keys = OFF;
        PRAGMA temp_store = MEMORY;
        -- 16 MiB page cache (default 2 MiB): bulk indexing and FTS5 merges re-read recent segments; larger
        -- caches bought little and count against the daemon's memory budget.
        PRAGMA cache_size = -16384;
        -- Checkpoint every ~16 MiB of WAL instead of 4 MiB: fewer, larger checkpoints during bursts.
        PRAGMA wal_autocheckpoint = 4096;
        ",
    )
    .map_err(|e| StoreError::open(path, e))?;
    migrate(&conn, path)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Opens a read connection (used by searches and queries on any thread).
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| StoreError::open(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| StoreError::open(path, e))?;
    conn.execute_batch(
        "
        PRAGMA query_only = ON;
        PRAGMA temp_store = MEMORY;
        PRAGMA cache_size = -8192;
        -- No memory-mapped reads: every mapped page a scan touched counted as the daemon's RSS (a grep over
        -- 1M lines took it from 60 to 190 MiB), for ~7 % lower search latency (store_bench p95 11.9 vs
        -- 12.7 ms). Reads go through the OS page cache and SQLite's own cache instead.
        PRAGMA mmap_size = 0;
        ",
    )
    .map_err(|e| StoreError::open(path, e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 =
        conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| StoreError::open(path, e))?;
    if version > current_version() {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found: version, supported: current_version() });
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let sql = format!("BEGIN IMMEDIATE; {step}; PRAGMA user_version = {}; COMMIT;", i + 1);
        if let Err(e) = conn.execute_batch(&sql) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(StoreError::open(path, e));
        }
    }
    Ok(())
}
