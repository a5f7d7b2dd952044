//! Connection setup and the schema: every pragma and every migration lives here.
//!
//! The schema version is `PRAGMA user_version`; [`MIGRATIONS`]`[i]` takes a database from version `i` to
//! `i + 1`, each in one transaction. A database with a higher version than we know is refused rather than
//! guessed at. Migration 2 adds the metrics history; migration 3 stores log lines in blocks (see
//! [`super::block`]) and converts the rows of older stores.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// How long a connection waits for another one's lock before giving up with SQLITE_BUSY.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One step of the schema: SQL, or Rust for a step that must transform rows.
pub(crate) enum Migration {
    /// Statements run as one batch.
    Sql(&'static str),
    /// A function run inside the step's transaction.
    Rust(fn(&Connection) -> rusqlite::Result<()>),
}

/// The schema, one entry per version step. (Steps 1 and 2 describe the first layout of logs, one row per
/// line; step 3 replaces it with blocks. The choices below were measured on that first layout.)
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
pub(crate) const MIGRATIONS: &[Migration] = &[
    // 0 → 1
    Migration::Sql(
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
    ),
    // 1 → 2: metrics history (see `Store::record_metrics`). One row per series per sample: a module's
    // process tree (`project`, `module`), or the daemon-wide series (`project` = `module` = '': system CPU
    // and memory, and the IPC score). Two resolutions are kept (`resolution_ms`): the raw samples for an
    // hour and one-minute averages for a week; the daemon prunes each as it writes.
    Migration::Sql(
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
    ),
    // 2 → 3: log lines in blocks.
    Migration::Rust(to_blocks),
];

/// The block layout of logs (migration 3). Measured on the 2-core dev VM (1M lines of ~100 bytes, see
/// `examples/store_bench.rs`):
/// - `log_blocks`: one row per block (see [`super::block`]); `id` is the block's first line id, `ts_first` /
///   `ts_last` its first and last line's times (non-decreasing in id order: time ranges become id ranges by
///   binary search, no time index), `levels` one bit per level present (level filters skip blocks).
///   `log_blocks(module_id, id)` serves per-module paging.
/// - The full-text index has one document per block, `detail=none`: it answers "which blocks hold all these
///   words (or prefixes)", and the store finds the lines (and checks phrases) itself in those blocks. That
///   indexes at ~5× the rate of one document per line with positions, in about a tenth of the space.
/// - The index is a series of contentless FTS5 tables (`blocks_fts_N`), each over a range of line ids
///   (`block_index_parts`): retention drops whole expired parts and never deletes from FTS5 (slow).
const BLOCKS_SQL: &str = r#"
    CREATE TABLE log_blocks (
        id          INTEGER PRIMARY KEY,  -- the first line's id; the others follow without gaps
        lines       INTEGER NOT NULL,
        module_id   INTEGER NOT NULL,
        run         INTEGER NOT NULL,
        stream      INTEGER NOT NULL,     -- 1 stdout, 2 stderr
        ts_first    INTEGER NOT NULL,     -- capture times, non-decreasing in id order
        ts_last     INTEGER NOT NULL,
        levels      INTEGER NOT NULL,     -- bit N set: a line of level N (0 unknown, 1 trace … 5 error)
        flags       INTEGER NOT NULL,     -- the lines' flags OR-ed (see block::flag)
        text        TEXT NOT NULL,        -- every line's search text, joined by newlines
        meta        BLOB NOT NULL,        -- per line: time, level, flags (block::encode_meta)
        display     TEXT                  -- display forms of the lines that have one, joined by newlines
    );
    CREATE INDEX log_blocks_module ON log_blocks (module_id, id);
    CREATE TABLE block_index_parts (
        part        INTEGER PRIMARY KEY,
        first_id    INTEGER NOT NULL,     -- line ids
        last_id     INTEGER NOT NULL,
        rows        INTEGER NOT NULL      -- lines
    );
    -- Blocks whose lines are all <= this are in the index; newer ones are the scanned tail.
    INSERT INTO meta (key, value) VALUES ('blocks_indexed_upto', 0);
"#;

/// Migration 3: creates the block tables, moves every line of `logs` into blocks (consecutive lines of one
/// module, run and stream share a block; ids are given anew, in the old order), then drops the old tables.
fn to_blocks(conn: &Connection) -> rusqlite::Result<()> {
    use super::block::{LineMeta, Lines, MAX_LINES, MAX_TEXT_BYTES, encode_meta};
    conn.execute_batch(BLOCKS_SQL)?;
    let mut insert = conn.prepare(
        "INSERT INTO log_blocks (id, lines, module_id, run, stream, ts_first, ts_last, levels, flags, text, meta, display)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    let mut next_id = 1i64;
    let mut write = |key: (i64, i64, i64), lines: &Lines| -> rusqlite::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let n = lines.len() as i64;
        insert.execute(rusqlite::params![
            next_id,
            n,
            key.0,
            key.1,
            key.2,
            lines.meta[0].ts_ms as i64,
            lines.meta[lines.len() - 1].ts_ms as i64,
            lines.levels(),
            lines.flags(),
            lines.text,
            encode_meta(&lines.meta),
            lines.display_column(),
        ])?;
        next_id += n;
        Ok(())
    };
    let mut select =
        conn.prepare("SELECT module_id, run, stream, ts_ms, level, flags, text, display FROM logs ORDER BY id")?;
    let mut rows = select.query([])?;
    let mut current: Option<((i64, i64, i64), Lines)> = None;
    while let Some(r) = rows.next()? {
        let key: (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let (ts, level, flags): (i64, i64, i64) = (r.get(3)?, r.get(4)?, r.get(5)?);
        let (text, display): (String, Option<String>) = (r.get(6)?, r.get(7)?);
        // A search text never holds a newline (the writer of step 1 replaced control characters too).
        let text = text.replace('\n', " ");
        let display = display.map(|d| d.replace('\n', " "));
        let full = current
            .as_ref()
            .is_some_and(|(k, l)| *k != key || l.len() >= MAX_LINES || l.text.len() + text.len() > MAX_TEXT_BYTES);
        if full && let Some((k, l)) = current.take() {
            write(k, &l)?;
        }
        let (_, lines) = current.get_or_insert_with(|| (key, Lines::default()));
        // Old flags (1 escaped, 2 truncated, 4 masked, 8 json) are the block flags' low bits.
        let meta = LineMeta { ts_ms: ts.max(0) as u64, level: level.clamp(0, 5) as u8, flags: (flags & 0x0F) as u8 };
        lines.push(&text, display.as_deref(), meta);
    }
    if let Some((k, l)) = current.take() {
        write(k, &l)?;
    }
    drop(rows);
    let parts: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'logs_fts_[0-9]*' AND sql LIKE 'CREATE VIRTUAL TABLE%'")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for name in parts {
        conn.execute_batch(&format!("DROP TABLE IF EXISTS \"{name}\""))?;
    }
    conn.execute_batch(
        "DROP TABLE logs; DROP TABLE log_index_parts; DELETE FROM meta WHERE key = 'logs_indexed_upto';",
    )?;
    Ok(())
}

/// One part of the log index (`{part}` is replaced by its number): one document per block, rowid = the
/// block's id. Contentless (`content=''`) with `detail=none`: it only tells which blocks hold the words —
/// lines are read from `log_blocks`, matched, scored and highlighted by the store itself — and a part is
/// never deleted from, only dropped whole.
pub(crate) const BLOCK_PART_SQL: &str = "CREATE VIRTUAL TABLE blocks_fts_{part} USING fts5 (text, content='', detail=none, tokenize='unicode61 remove_diacritics 2')";

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
        -- 8 MiB page cache (default 2 MiB): bulk indexing and FTS5 merges re-read recent segments; larger
        -- caches bought little (blocks are written once, in order) and count against the daemon's memory.
        PRAGMA cache_size = -8192;
        -- Checkpoints: the writer checkpoints when the log flow is quiet (see the writer), so that a flood is
        -- written once, to the WAL, while it comes in, and copied into the database afterwards; SQLite's own
        -- checkpoint at 128 MiB of WAL only bounds the file during a long flood (at 16 MiB, checkpoints took
        -- a third of the writer's time during a 1M-line flood). After a checkpoint the WAL file is cut back
        -- to 32 MiB.
        PRAGMA wal_autocheckpoint = 32768;
        PRAGMA journal_size_limit = 33554432;
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
        -- 4 MiB per reader: scans of log blocks stream through the cache and gain nothing from a larger one.
        PRAGMA cache_size = -4096;
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
        let res = conn.execute_batch("BEGIN IMMEDIATE").and_then(|()| {
            match step {
                Migration::Sql(sql) => conn.execute_batch(sql)?,
                Migration::Rust(f) => f(conn)?,
            }
            conn.execute_batch(&format!("PRAGMA user_version = {}; COMMIT;", i + 1))
        });
        if let Err(e) = res {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(StoreError::open(path, e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{LogQuery, SearchQuery, Store};

    /// A store written by a Steward of schema version 2 (one row per log line) opens, and its lines come
    /// back in their order, with their times, levels, flags and display forms, searchable; the old tables
    /// are gone.
    #[test]
    #[allow(clippy::type_complexity)] // the rows as literal tuples read best here
    fn a_version_2_store_is_converted_to_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let t0 = crate::lifecycle::now_ms() as i64 - 60_000;
        {
            let conn = Connection::open(&path).unwrap();
            for step in &MIGRATIONS[..2] {
                let Migration::Sql(sql) = step else { panic!("steps 1 and 2 are SQL") };
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 2;
                 INSERT INTO projects (id, name, created_ms) VALUES (1, 'shop', 0);
                 INSERT INTO modules (id, project_id, name) VALUES (1, 1, 'api'), (2, 1, 'db');
                 CREATE VIRTUAL TABLE logs_fts_1 USING fts5 (text, content='');
                 INSERT INTO log_index_parts VALUES (1, 1, 3, 3);
                 UPDATE meta SET value = 3 WHERE key = 'logs_indexed_upto';",
            )
            .unwrap();
            // Recent times: lines from 1970 would be the retention's to delete while the test looks at them.
            let rows: &[(i64, i64, i64, i64, i64, &str, Option<&str>)] = &[
                (t0, 1, 1, 3, 0, "api started", None),
                (t0 + 1, 1, 1, 5, 0, "api failed badly", Some("\x1b[31mapi failed badly\x1b[0m")),
                (t0 + 2, 2, 1, 3, 8, "{\"msg\":\"db ready\"}", None),
                (t0 + 3, 1, 2, 4, 4, "api password=***", None),
                (t0 + 4, 1, 2, 0, 0, "api again", None),
            ];
            for (i, (ts, module, run, level, flags, text, display)) in rows.iter().enumerate() {
                conn.execute(
                    "INSERT INTO logs (id, ts_ms, module_id, run, stream, level, flags, text, display)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8)",
                    rusqlite::params![i as i64 + 1, ts, module, run, level, flags, text, display],
                )
                .unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        let lines = store.query_logs(&LogQuery { limit: 10, ..Default::default() }).unwrap();
        let got: Vec<(i64, u64, &str, &str, Option<&str>, bool, bool)> = lines
            .iter()
            .map(|l| {
                (
                    l.id,
                    l.ts_ms,
                    l.module.as_str(),
                    l.text.as_str(),
                    l.level.map(|l| l.as_str()),
                    l.masked,
                    l.fields.is_some(),
                )
            })
            .collect();
        let t = t0 as u64;
        assert_eq!(
            got,
            vec![
                (1, t, "api", "api started", Some("info"), false, false),
                (2, t + 1, "api", "api failed badly", Some("error"), false, false),
                (3, t + 2, "db", "{\"msg\":\"db ready\"}", Some("info"), false, true),
                (4, t + 3, "api", "api password=***", Some("warn"), true, false),
                (5, t + 4, "api", "api again", None, false, false),
            ]
        );
        assert_eq!(lines[1].message, "\x1b[31mapi failed badly\x1b[0m");
        assert_eq!((lines[0].run, lines[3].run), (1, 2));
        let hits = store.search(&SearchQuery { text: "failed".into(), ..Default::default() }).unwrap();
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![2]);
        // The same once the converted lines are in the index (the writer does that on its own schedule).
        store.flush_index().unwrap();
        let hits = store.search(&SearchQuery { text: "failed".into(), ..Default::default() }).unwrap();
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![2], "after indexing");
        // New lines continue after the converted ones.
        store
            .log_sink()
            .send(
                &Arc::from("shop"),
                crate::lifecycle::LogLine {
                    module: "api".into(),
                    run: 3,
                    stream: crate::lifecycle::Stream::Stdout,
                    bytes: b"fresh".to_vec(),
                    truncated: false,
                },
            )
            .unwrap();
        store.flush().unwrap();
        assert_eq!(store.last_lines("shop", "api", 1).unwrap()[0].id, 6);
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('logs', 'log_index_parts', 'logs_fts_1')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0, "the old tables are dropped");
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, current_version());
    }
}
