//! The writer thread: the only code that changes the database.
//!
//! It takes messages off one FIFO queue and writes them in one open transaction per batch, committed when
//! the batch is full ([`StoreOptions::batch_rows`] lines and rows), old ([`StoreOptions::batch_interval`] after
//! its first message) or when a flush, note or retention request arrives. Write errors roll the batch back
//! and are counted, never raised.
//!
//! Log lines arrive processed, in chunks ([`LogRows`]); consecutive chunks of one (module, run, stream)
//! gather in one block, which is written as a `log_blocks` row when a chunk of another stream arrives, when
//! it is full (see [`block::MAX_LINES`]) or when the batch commits. Line ids therefore follow the order the
//! lines arrived in, and times are clamped so that they never decrease in id order: time ranges become id
//! ranges.
//!
//! Between batches it does the deferrable work, one bounded step at a time:
//! - **indexing**: blocks reach the full-text index in steps of up to [`INDEX_STEP_ROWS`] lines with one
//!   `INSERT … SELECT`. A step runs after a batch that ended by time (the writer is keeping up), whenever the
//!   queue is idle, and — to bound the tail that searches must scan — after *every* batch while more than
//!   [`MAX_UNINDEXED_ROWS`] lines wait (ingestion then runs at the indexing rate).
//! - **retention**: one step when due (every second, or right after a step that deleted something).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use super::block::{self, Lines};
use super::line::Level;
use super::mask::mask_text;
use super::schema;
use super::{
    Counters, Gate, INDEX_STEP_ROWS, MAX_UNINDEXED_ROWS, MetricRow, NoteInput, RETENTION_STEP_ROWS, Result,
    RetentionPolicy, RetentionReport, StoreError, StoreOptions,
};
use crate::lifecycle::{Event, EventKind, RunId, State, Stream, now_ms};

/// During a flood, indexing waits until no log line has arrived for this long (or the tail passes
/// [`MAX_UNINDEXED_ROWS`]): the flood is taken in first, at full speed, and indexed once it stops; the tail is
/// searchable meanwhile.
const INDEX_QUIET: Duration = Duration::from_millis(200);

/// A batch with fewer log lines than this is not a flood: modules that log steadily but slowly never leave a
/// quiet gap, so their lines are indexed once the tail is [`INDEX_STEADY_AGE`] old.
const FLOOD_BATCH_LINES: usize = 2_000;

/// How old the tail may get under steady, slow logging before it is indexed anyway.
const INDEX_STEADY_AGE: Duration = Duration::from_secs(1);

/// A quiet writer checkpoints once this many log lines (or other rows) were committed since the last
/// checkpoint, or [`CHECKPOINT_EVERY`] after it: a module that logs a line a second must not cost a checkpoint
/// (and its fsyncs) a second.
const CHECKPOINT_ROWS: u64 = 20_000;

/// See [`CHECKPOINT_ROWS`].
const CHECKPOINT_EVERY: Duration = Duration::from_secs(300);

/// How often an idle writer looks at retention.
const RETENTION_CHECK_EVERY: Duration = Duration::from_secs(1);

/// With nothing written since the last check, retention (which then can only be about age) is checked this
/// seldom: an idle daemon should not wake up every second to find that nothing expired.
const RETENTION_IDLE_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Slots given back to the gate at a time (fewer atomic operations and wake-ups than one per line).
const RELEASE_CHUNK: usize = 4096;

pub(crate) type Reply<T> = SyncSender<Result<T>>;

/// A message to the writer.
pub(crate) enum Msg {
    /// Processed log lines of one stream.
    Logs(LogRows),
    /// An engine event other than a log line.
    Event(Box<Event>),
    /// Metric samples to insert, and (resolution, older-than) pairs to prune.
    Metrics(Vec<MetricRow>, Vec<(u64, u64)>),
    /// Notes to commit durably.
    Notes(Vec<NoteInput>, Reply<Vec<i64>>),
    /// Commit everything before this, then answer.
    Flush(Reply<()>),
    /// Run retention to completion, then answer.
    Retention(Reply<RetentionReport>),
    /// Index every log row, then answer.
    IndexAll(Reply<()>),
    /// New retention policy.
    SetRetention(RetentionPolicy),
    /// `VACUUM`, then truncate the WAL.
    Vacuum(Reply<()>),
    /// Rebuild every full-text index; the callback gets (log rows indexed, log rows to index).
    Reindex(Box<dyn FnMut(u64, u64) + Send>, Reply<u64>),
    /// A small write in its own transaction (proves the store can be written).
    Probe(Reply<()>),
    /// Commit and stop.
    Shutdown,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Logs(_) => "Logs",
            Msg::Event(_) => "Event",
            Msg::Metrics(..) => "Metrics",
            Msg::Notes(..) => "Notes",
            Msg::Flush(_) => "Flush",
            Msg::Retention(_) => "Retention",
            Msg::IndexAll(_) => "IndexAll",
            Msg::SetRetention(_) => "SetRetention",
            Msg::Vacuum(_) => "Vacuum",
            Msg::Reindex(..) => "Reindex",
            Msg::Probe(_) => "Probe",
            Msg::Shutdown => "Shutdown",
        })
    }
}

/// Processed lines of one stream (one captured chunk) and where they came from.
pub(crate) struct LogRows {
    pub project: Arc<str>,
    pub module: Arc<str>,
    pub run: RunId,
    pub stream: Stream,
    pub lines: Lines,
}

pub(crate) fn stream_code(s: Stream) -> i64 {
    match s {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    }
}

/// Project and module ids already known to exist (cleared on rollback: the rows may be gone).
#[derive(Default)]
struct Ids {
    projects: HashMap<Arc<str>, (i64, HashMap<String, i64>)>,
}

impl Ids {
    fn project(&mut self, conn: &Connection, project: &Arc<str>) -> rusqlite::Result<i64> {
        if let Some((id, _)) = self.projects.get(&**project) {
            return Ok(*id);
        }
        conn.prepare_cached("INSERT OR IGNORE INTO projects (name, created_ms) VALUES (?1, ?2)")?
            .execute(params![&**project, now_ms() as i64])?;
        let id: i64 =
            conn.prepare_cached("SELECT id FROM projects WHERE name = ?1")?.query_row([&**project], |r| r.get(0))?;
        self.projects.insert(project.clone(), (id, HashMap::new()));
        Ok(id)
    }

    fn module(&mut self, conn: &Connection, project: &Arc<str>, module: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.projects.get(&**project).and_then(|(_, m)| m.get(module)) {
            return Ok(*id);
        }
        let pid = self.project(conn, project)?;
        conn.prepare_cached("INSERT OR IGNORE INTO modules (project_id, name) VALUES (?1, ?2)")?
            .execute(params![pid, module])?;
        let id: i64 = conn
            .prepare_cached("SELECT id FROM modules WHERE project_id = ?1 AND name = ?2")?
            .query_row(params![pid, module], |r| r.get(0))?;
        if let Some((_, m)) = self.projects.get_mut(&**project) {
            m.insert(module.to_string(), id);
        }
        Ok(id)
    }
}

/// Everything the writer owns besides the connection (split so statements can borrow the connection while
/// this is mutated).
struct WriterState {
    opts: StoreOptions,
    gate: Arc<Gate>,
    counters: Arc<Counters>,
    ids: Ids,
    /// Time of the last line written: lines never go back in time, so time ranges map to id ranges.
    last_ts: u64,
    last_retention: Instant,
    /// Rows were written since the last retention check.
    written_since_retention: bool,
    /// The last retention step deleted something: do another one soon.
    retention_behind: bool,
    /// Highest line id whose block is in the full-text index (persisted in `meta`).
    indexed_upto: i64,
    /// Highest line id written.
    last_log_id: i64,
    /// After an indexing error, wait before trying again (a full disk should not spin the thread).
    index_retry_at: Option<Instant>,
    /// When the oldest unindexed block was committed (for `index_delay`).
    tail_since: Option<Instant>,
    /// When the last log lines were committed (indexing waits for [`INDEX_QUIET`]).
    last_logs_at: Option<Instant>,
    /// Log lines in the last batch (a flood, or steady logging: see [`FLOOD_BATCH_LINES`]).
    last_batch_lines: usize,
    /// Commits since the last checkpoint (the WAL holds pages the database file does not have yet).
    wal_dirty: bool,
    /// Rows committed since the last checkpoint, and when it was.
    rows_since_checkpoint: u64,
    last_checkpoint: Instant,
    /// A checkpoint left frames behind (a reader held them): the next try waits until then.
    checkpoint_retry_at: Option<Instant>,
}

impl WriterState {
    fn unindexed(&self) -> i64 {
        (self.last_log_id - self.indexed_upto).max(0)
    }
}

pub(crate) struct Writer {
    conn: Connection,
    st: WriterState,
}

/// Why a batch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// `batch_rows` reached: the writer is saturated.
    Full,
    /// `batch_interval` elapsed: the writer is keeping up.
    Time,
    /// A flush, note, retention request or shutdown.
    Message,
    /// Stop the thread.
    Stop,
}

impl Writer {
    pub(crate) fn new(conn: Connection, opts: StoreOptions, gate: Arc<Gate>, counters: Arc<Counters>) -> Writer {
        let last: Option<(i64, i64)> = conn
            .query_row("SELECT id + lines - 1, ts_last FROM log_blocks ORDER BY id DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .ok()
            .flatten();
        let (last_id, last_ts) = last.unwrap_or((0, 0));
        let indexed_upto: i64 =
            conn.query_row("SELECT value FROM meta WHERE key = 'blocks_indexed_upto'", [], |r| r.get(0)).unwrap_or(0);
        // Retention may have deleted every row; the watermark still remembers how far ids went.
        let last_log_id = last_id.max(indexed_upto);
        Writer {
            conn,
            st: WriterState {
                opts,
                gate,
                counters,
                ids: Ids::default(),
                last_ts: last_ts.max(0) as u64,
                last_retention: Instant::now(),
                written_since_retention: false,
                retention_behind: true,
                indexed_upto,
                last_log_id,
                index_retry_at: None,
                tail_since: (last_log_id > indexed_upto).then(Instant::now),
                last_logs_at: None,
                last_batch_lines: 0,
                wal_dirty: true,
                rows_since_checkpoint: 0,
                last_checkpoint: Instant::now(),
                checkpoint_retry_at: None,
            },
        }
    }

    /// The thread's body.
    pub(crate) fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let busy = self.st.retention_behind || self.can_index() || self.can_checkpoint();
            let wait = if busy {
                Duration::ZERO
            } else {
                self.until_index_due()
                    .min(self.until_checkpoint_due())
                    .min(self.retention_every().saturating_sub(self.st.last_retention.elapsed()))
            };
            let first = match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    // Idle: do deferred work, one step, then look at the queue again.
                    if self.can_index() {
                        self.index_step(INDEX_STEP_ROWS);
                    } else if self.can_checkpoint() {
                        self.checkpoint();
                    } else {
                        self.retention_tick();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let (end, rows) = self.batch(first, &rx);
            if end == End::Stop {
                break;
            }
            if self.st.unindexed() > 0 && self.st.tail_since.is_none() {
                self.st.tail_since = Some(Instant::now());
            }
            if self.st.unindexed() > MAX_UNINDEXED_ROWS as i64 {
                self.index_step(rows.max(1_000));
            } else if end == End::Time && self.can_index() {
                self.index_step(INDEX_STEP_ROWS);
            }
            self.retention_tick();
        }
        self.st.gate.close();
    }

    /// Opportunistic indexing is allowed: lines wait, the tail is old enough, no recent error, and no flood
    /// is coming in (no line for [`INDEX_QUIET`], or only a trickle and a tail older than
    /// [`INDEX_STEADY_AGE`]).
    fn can_index(&self) -> bool {
        let tail_age = self.st.tail_since.map_or(Duration::ZERO, |t| t.elapsed());
        let calm = self.st.last_logs_at.is_none_or(|t| t.elapsed() >= INDEX_QUIET)
            || (self.st.last_batch_lines < FLOOD_BATCH_LINES && tail_age >= INDEX_STEADY_AGE);
        self.st.unindexed() > 0
            && self.st.index_retry_at.is_none_or(|t| Instant::now() >= t)
            && self.st.tail_since.is_none_or(|t| t.elapsed() >= self.st.opts.index_delay)
            && calm
    }

    /// The WAL holds enough to copy into the database ([`CHECKPOINT_ROWS`], or anything after
    /// [`CHECKPOINT_EVERY`]), no log line arrived for [`INDEX_QUIET`], and no unfinished checkpoint asked to
    /// wait.
    fn can_checkpoint(&self) -> bool {
        self.until_checkpoint_due().is_zero()
    }

    /// Time until [`Writer::can_checkpoint`] holds (a long time when the WAL is clean).
    fn until_checkpoint_due(&self) -> Duration {
        if !self.st.wal_dirty {
            return RETENTION_IDLE_CHECK_EVERY;
        }
        let quiet = self.st.last_logs_at.map_or(Duration::ZERO, |l| INDEX_QUIET.saturating_sub(l.elapsed()));
        let retry = self.st.checkpoint_retry_at.map_or(Duration::ZERO, |r| r.saturating_duration_since(Instant::now()));
        let enough = if self.st.rows_since_checkpoint >= CHECKPOINT_ROWS {
            Duration::ZERO
        } else {
            CHECKPOINT_EVERY.saturating_sub(self.st.last_checkpoint.elapsed())
        };
        quiet.max(retry).max(enough)
    }

    /// A transaction committed `rows` rows (or index entries, or deletions): the WAL holds pages the
    /// database file does not have yet, for the next quiet checkpoint.
    fn committed(&mut self, rows: u64) {
        self.st.wal_dirty = true;
        self.st.rows_since_checkpoint += rows;
    }

    /// Copies the WAL into the database without waiting for readers (`PASSIVE`); the WAL counts as clean
    /// once every frame was copied.
    fn checkpoint(&mut self) {
        match self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok((_, log, done)) => {
                self.st.wal_dirty = done < log;
                if self.st.wal_dirty {
                    // A reader held some frames back: try again soon. The counters stay as they are, or the
                    // retry would wait for another CHECKPOINT_ROWS rows (or CHECKPOINT_EVERY).
                    self.st.checkpoint_retry_at = Some(Instant::now() + RETENTION_CHECK_EVERY);
                } else {
                    self.st.last_checkpoint = Instant::now();
                    self.st.rows_since_checkpoint = 0;
                    self.st.checkpoint_retry_at = None;
                }
            }
            Err(e) => {
                self.st.checkpoint_retry_at = Some(Instant::now() + RETENTION_CHECK_EVERY);
                tracing::debug!("checkpoint failed: {e}");
            }
        }
    }

    /// Time until the tail may be indexed: old enough, and past a failed step's retry time (a long time when
    /// there is nothing to index).
    fn until_index_due(&self) -> Duration {
        match self.st.tail_since {
            Some(t) if self.st.unindexed() > 0 => {
                let retry =
                    self.st.index_retry_at.map_or(Duration::ZERO, |r| r.saturating_duration_since(Instant::now()));
                let quiet = self.st.last_logs_at.map_or(Duration::ZERO, |l| INDEX_QUIET.saturating_sub(l.elapsed()));
                self.st.opts.index_delay.saturating_sub(t.elapsed()).max(retry).max(quiet)
            }
            _ => RETENTION_IDLE_CHECK_EVERY,
        }
    }

    /// Adds the blocks after the watermark, up to about `limit` lines, to the current part of the full-text
    /// index, in one transaction; starts a new part when the current one is full.
    fn index_step(&mut self, limit: usize) {
        let from = self.st.indexed_upto;
        let part_rows = self.st.opts.index_part_rows.max(1) as i64;
        let res = (|| -> rusqlite::Result<i64> {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let current: Option<(i64, i64)> = self
                .conn
                .query_row("SELECT part, rows FROM block_index_parts ORDER BY part DESC LIMIT 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let (part, rows) = match current {
                Some((p, r)) if r < part_rows => (p, r),
                other => {
                    let p = other.map_or(1, |(p, _)| p + 1);
                    self.conn.execute_batch(&schema::BLOCK_PART_SQL.replace("{part}", &p.to_string()))?;
                    self.conn
                        .prepare_cached(
                            "INSERT INTO block_index_parts (part, first_id, last_id, rows) VALUES (?1, ?2, ?3, 0)",
                        )?
                        .execute(params![p, from + 1, from])?;
                    (p, 0)
                }
            };
            // Whole blocks, until the step's lines are reached (at least one block).
            let take = (limit as i64).min(part_rows - rows).max(1);
            let (mut lines, mut upto_block, mut upto_line) = (0i64, None, from);
            {
                let mut stmt =
                    self.conn.prepare_cached("SELECT id, lines FROM log_blocks WHERE id > ?1 ORDER BY id LIMIT ?2")?;
                let mut found = stmt.query(params![from, take])?;
                while let Some(r) = found.next()? {
                    let (id, n): (i64, i64) = (r.get(0)?, r.get(1)?);
                    upto_block = Some(id);
                    upto_line = id + n - 1;
                    lines += n;
                    if lines >= take {
                        break;
                    }
                }
            }
            let Some(upto_block) = upto_block else {
                // Nothing after the watermark (retention removed it): the index is caught up.
                self.conn
                    .prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'blocks_indexed_upto'")?
                    .execute([self.st.last_log_id])?;
                self.conn.execute_batch("COMMIT")?;
                return Ok(self.st.last_log_id);
            };
            self.conn
                .prepare_cached(&format!(
                    "INSERT INTO blocks_fts_{part} (rowid, text) SELECT id, text FROM log_blocks WHERE id > ?1 AND id <= ?2"
                ))?
                .execute(params![from, upto_block])?;
            self.conn
                .prepare_cached("UPDATE block_index_parts SET last_id = ?2, rows = rows + ?3 WHERE part = ?1")?
                .execute(params![part, upto_line, lines])?;
            self.conn
                .prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'blocks_indexed_upto'")?
                .execute([upto_line])?;
            self.conn.execute_batch("COMMIT")?;
            Ok(upto_line)
        })();
        match res {
            Ok(upto) => {
                self.committed(upto.saturating_sub(from).max(0) as u64);
                self.st.indexed_upto = upto;
                self.st.index_retry_at = None;
                if self.st.unindexed() == 0 {
                    self.st.tail_since = None;
                }
            }
            Err(e) => {
                self.rollback();
                self.st.index_retry_at = Some(Instant::now() + RETENTION_CHECK_EVERY);
                self.st.counters.set_error(&format!("indexing: {e}"));
            }
        }
    }

    fn index_all(&mut self) -> Result<()> {
        while self.st.unindexed() > 0 {
            let before = self.st.indexed_upto;
            self.st.index_retry_at = None;
            self.index_step(INDEX_STEP_ROWS * 5);
            if self.st.indexed_upto == before {
                let err = self.st.counters.last_error.lock().ok().and_then(|g| g.clone());
                return Err(StoreError::Write(err.unwrap_or_else(|| "indexing made no progress".into())));
            }
        }
        Ok(())
    }

    /// `VACUUM` (rewrites the file without its free pages), then a truncating checkpoint so the WAL shrinks
    /// too. Readers keep working; ingestion waits in the queue meanwhile.
    fn vacuum(&mut self) -> Result<()> {
        self.conn.execute_batch("VACUUM")?;
        let _: (i64, i64, i64) =
            self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(())
    }

    /// Drops every part of the log index (also parts no bookkeeping row knows of) and indexes every log block
    /// again, step by step; then rebuilds the event and note indexes. Searches stay correct meanwhile: lines
    /// above the watermark are scanned.
    fn reindex(&mut self, mut progress: Box<dyn FnMut(u64, u64) + Send>) -> Result<u64> {
        let res = (|| -> rusqlite::Result<i64> {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let parts: Vec<String> = self
                .conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'blocks_fts_[0-9]*' AND sql LIKE 'CREATE VIRTUAL TABLE%'")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for name in parts {
                self.conn.execute_batch(&format!("DROP TABLE IF EXISTS \"{name}\""))?;
            }
            self.conn.execute_batch("DELETE FROM block_index_parts")?;
            let min: Option<i64> = self.conn.query_row("SELECT min(id) FROM log_blocks", [], |r| r.get(0))?;
            let watermark = min.map_or(self.st.last_log_id, |m| m - 1);
            self.conn
                .prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'blocks_indexed_upto'")?
                .execute([watermark])?;
            self.conn.execute_batch("COMMIT")?;
            Ok(watermark)
        })();
        let watermark = match res {
            Ok(w) => w,
            Err(e) => {
                self.rollback();
                return Err(e.into());
            }
        };
        self.st.indexed_upto = watermark;
        self.st.tail_since = Some(Instant::now());
        let total = self.st.unindexed().max(0) as u64;
        progress(0, total);
        while self.st.unindexed() > 0 {
            let before = self.st.indexed_upto;
            self.st.index_retry_at = None;
            self.index_step(INDEX_STEP_ROWS);
            if self.st.indexed_upto == before {
                let err = self.st.counters.last_error.lock().ok().and_then(|g| g.clone());
                return Err(StoreError::Write(err.unwrap_or_else(|| "indexing made no progress".into())));
            }
            progress((self.st.indexed_upto - watermark).max(0) as u64, total);
        }
        self.conn.execute_batch(
            "INSERT INTO events_fts (events_fts) VALUES ('rebuild'); INSERT INTO notes_fts (notes_fts) VALUES ('rebuild');",
        )?;
        Ok(total)
    }

    /// One transaction's worth of messages, starting with `first`.
    fn batch(&mut self, first: Msg, rx: &Receiver<Msg>) -> (End, usize) {
        let started = Instant::now();
        let deadline = started + self.st.opts.batch_interval;
        let mut rows = 0usize;
        let mut log_rows = 0u64;
        let mut unreleased = 0usize;
        let mut flushes: Vec<Reply<()>> = Vec::new();
        let mut after: Option<Msg> = None;
        let mut end = End::Time;
        let last_id_before = self.st.last_log_id;
        let mut failed: Option<rusqlite::Error> =
            self.conn.prepare_cached("BEGIN").and_then(|mut b| b.execute([])).err();
        {
            let conn = &self.conn;
            let st = &mut self.st;
            let mut blocks = PendingBlocks::default();
            let mut next = Some(first);
            loop {
                let msg = match next.take() {
                    Some(m) => m,
                    None => {
                        if rows >= st.opts.batch_rows {
                            end = End::Full;
                            break;
                        }
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        // Before waiting, give back the slots taken so far: producers blocked on a full queue
                        // must not wait for the batch to end.
                        match rx.try_recv() {
                            Ok(m) => m,
                            Err(_) => {
                                st.gate.release(unreleased);
                                unreleased = 0;
                                match rx.recv_timeout(deadline - now) {
                                    Ok(m) => m,
                                    Err(RecvTimeoutError::Timeout) => break,
                                    Err(RecvTimeoutError::Disconnected) => {
                                        end = End::Stop;
                                        break;
                                    }
                                }
                            }
                        }
                    }
                };
                match msg {
                    Msg::Logs(chunk) => {
                        let n = chunk.lines.len();
                        unreleased += n;
                        if unreleased >= RELEASE_CHUNK {
                            st.gate.release(unreleased);
                            unreleased = 0;
                        }
                        rows += n;
                        log_rows += n as u64;
                        if failed.is_none()
                            && let Err(e) = blocks.add(conn, st, chunk)
                        {
                            failed = Some(e);
                        }
                    }
                    Msg::Event(ev) => {
                        rows += 1;
                        if failed.is_none()
                            && let Err(e) = insert_event(conn, st, &ev)
                        {
                            failed = Some(e);
                        }
                    }
                    Msg::Metrics(samples, prune) => {
                        rows += samples.len();
                        if failed.is_none()
                            && let Err(e) = insert_metrics(conn, &samples, &prune)
                        {
                            failed = Some(e);
                        }
                    }
                    Msg::Flush(reply) => {
                        flushes.push(reply);
                        end = End::Message;
                        break;
                    }
                    Msg::SetRetention(p) => st.opts.retention = p,
                    other @ (Msg::Notes(..)
                    | Msg::Retention(_)
                    | Msg::IndexAll(_)
                    | Msg::Vacuum(_)
                    | Msg::Reindex(..)
                    | Msg::Probe(_)
                    | Msg::Shutdown) => {
                        after = Some(other);
                        end = End::Message;
                        break;
                    }
                }
            }
            if failed.is_none()
                && let Err(e) = blocks.write_all(conn, st)
            {
                failed = Some(e);
            }
        }
        self.st.gate.release(unreleased);

        if failed.is_none()
            && let Err(e) = self.conn.prepare_cached("COMMIT").and_then(|mut c| c.execute([]))
        {
            failed = Some(e);
        }
        match failed {
            None => {
                self.st.counters.written.fetch_add(log_rows, Ordering::Relaxed);
                self.st.written_since_retention |= rows > 0;
                if rows > 0 {
                    self.committed(rows as u64);
                }
                if log_rows > 0 {
                    self.st.last_logs_at = Some(Instant::now());
                }
                self.st.last_batch_lines = log_rows as usize;
            }
            Some(e) => {
                self.rollback();
                self.st.last_log_id = last_id_before;
                self.st.counters.dropped.fetch_add(rows as u64, Ordering::Relaxed);
                self.st.counters.set_error(&format!("{} rows dropped: {e}", rows));
                tracing::warn!(rows, error = %e, "store: batch dropped");
            }
        }
        for f in flushes {
            let _ = f.send(Ok(()));
        }
        match after {
            Some(Msg::Notes(notes, reply)) => {
                let _ = reply.send(self.write_notes(&notes));
            }
            Some(Msg::Retention(reply)) => {
                let _ = reply.send(self.retention_all());
            }
            Some(Msg::IndexAll(reply)) => {
                let _ = reply.send(self.index_all());
            }
            Some(Msg::Vacuum(reply)) => {
                let _ = reply.send(self.vacuum());
            }
            Some(Msg::Reindex(progress, reply)) => {
                let _ = reply.send(self.reindex(progress));
            }
            Some(Msg::Probe(reply)) => {
                let res = self
                    .conn
                    .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('health_probe_ms', ?1)")
                    .and_then(|mut s| s.execute([now_ms() as i64]))
                    .map(|_| ())
                    .map_err(|e| StoreError::Write(format!("health probe: {e}")));
                let _ = reply.send(res);
            }
            Some(Msg::Shutdown) => end = End::Stop,
            _ => {}
        }
        (end, rows)
    }

    fn rollback(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        // Rows created in the rolled-back transaction are gone.
        self.st.ids = Ids::default();
    }

    /// Notes commit on their own with `synchronous = FULL`: when `add_note` returns, the note survives a
    /// power loss, not just a crash.
    fn write_notes(&mut self, notes: &[NoteInput]) -> Result<Vec<i64>> {
        let res = (|| -> rusqlite::Result<Vec<i64>> {
            self.conn.execute_batch("PRAGMA synchronous = FULL; BEGIN IMMEDIATE")?;
            let mut ids = Vec::with_capacity(notes.len());
            for n in notes {
                let project: Arc<str> = Arc::from(n.project.as_str());
                let project_id = self.st.ids.project(&self.conn, &project)?;
                let module_id = match &n.module {
                    Some(m) => Some(self.st.ids.module(&self.conn, &project, m)?),
                    None => None,
                };
                let text = mask_text(&n.text);
                let tags = n
                    .tags
                    .iter()
                    .map(|t| t.split_whitespace().collect::<Vec<_>>().join("-"))
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                self.conn
                    .prepare_cached(
                        "INSERT INTO notes (ts_ms, project_id, module_id, text, tags, source)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![now_ms() as i64, project_id, module_id, &*text, tags, n.source])?;
                let id = self.conn.last_insert_rowid();
                self.conn
                    .prepare_cached("INSERT INTO notes_fts (rowid, text, tags) VALUES (?1, ?2, ?3)")?
                    .execute(params![id, &*text, tags])?;
                ids.push(id);
            }
            self.conn.execute_batch("COMMIT")?;
            Ok(ids)
        })();
        match &res {
            Ok(ids) => self.committed(ids.len() as u64),
            Err(_) => self.rollback(),
        }
        let _ = self.conn.execute_batch("PRAGMA synchronous = NORMAL");
        res.map_err(|e| {
            self.st.counters.set_error(&format!("note not stored: {e}"));
            StoreError::Sqlite(e)
        })
    }

    // -------------------------------------------------------------------------------------------------------
    // Retention

    /// One step when due: at most [`RETENTION_STEP_ROWS`] rows, in its own short transaction.
    fn retention_tick(&mut self) {
        if !self.retention_due() {
            return;
        }
        self.st.last_retention = Instant::now();
        self.st.written_since_retention = false;
        match self.retention_step() {
            Ok(r) => self.st.retention_behind = r.logs_by_age + r.logs_by_size + r.events_by_age > 0,
            Err(e) => {
                self.rollback();
                self.st.retention_behind = false;
                self.st.counters.set_error(&format!("retention: {e}"));
            }
        }
    }

    fn retention_due(&self) -> bool {
        self.st.retention_behind || self.st.last_retention.elapsed() >= self.retention_every()
    }

    fn retention_every(&self) -> Duration {
        if self.st.written_since_retention { RETENTION_CHECK_EVERY } else { RETENTION_IDLE_CHECK_EVERY }
    }

    fn retention_all(&mut self) -> Result<RetentionReport> {
        let mut total = RetentionReport::default();
        loop {
            let r = match self.retention_step() {
                Ok(r) => r,
                Err(e) => {
                    self.rollback();
                    return Err(e.into());
                }
            };
            total.logs_by_age += r.logs_by_age;
            total.logs_by_size += r.logs_by_size;
            total.events_by_age += r.events_by_age;
            total.used_bytes = r.used_bytes;
            if r.logs_by_age + r.logs_by_size + r.events_by_age == 0 {
                self.st.retention_behind = false;
                return Ok(total);
            }
        }
    }

    /// Deletes by age first (logs, then events), else by size. At most one batch of each.
    fn retention_step(&mut self) -> rusqlite::Result<RetentionReport> {
        let policy = self.st.opts.retention;
        let mut report = RetentionReport::default();
        let cutoff = now_ms().saturating_sub(policy.max_age.as_millis() as u64) as i64;

        // Logs by age: times are non-decreasing in id order, so the old blocks are a prefix. Whole blocks go
        // (a block is old when its last line is), at most about a step's worth of lines.
        let upto = self.blocks_prefix(|_, ts_last| ts_last < cutoff, RETENTION_STEP_ROWS as i64)?;
        if let Some(upto) = upto {
            report.logs_by_age = self.delete_logs_upto(upto)?;
        }

        // Events by age.
        let old_events: Vec<i64> = {
            let mut stmt =
                self.conn.prepare_cached("SELECT id FROM events WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2")?;
            stmt.query_map(params![cutoff, RETENTION_STEP_ROWS as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        if !old_events.is_empty() {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            for id in &old_events {
                self.conn
                    .prepare_cached(
                        "INSERT INTO events_fts (events_fts, rowid, text) SELECT 'delete', id, text FROM events WHERE id = ?1",
                    )?
                    .execute([id])?;
                self.conn.prepare_cached("DELETE FROM events WHERE id = ?1")?.execute([id])?;
            }
            self.conn.execute_batch("COMMIT")?;
            self.committed(old_events.len() as u64);
            report.events_by_age = old_events.len() as u64;
        }

        // Logs by size, only when age did nothing this step (one delete per step). What counts is the bytes
        // that deleting rows can still free: index parts that are partly expired are discounted by the share
        // already deleted (they are freed whole when their last row goes).
        let raw_used = used_bytes(&self.conn)?;
        let used = if raw_used > policy.max_bytes {
            raw_used.saturating_sub(reclaimable_index_bytes(&self.conn)?)
        } else {
            raw_used
        };
        report.used_bytes = used;
        if report.logs_by_age == 0 && used > policy.max_bytes {
            let (lines, first, last): (i64, Option<i64>, Option<i64>) = self.conn.query_row(
                "SELECT coalesce(sum(lines), 0), min(id), max(id + lines - 1) FROM log_blocks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            if let (Some(_), Some(_)) = (first, last) {
                // Delete about as many lines as the excess needs (estimated from the average line's share of
                // the bytes), at least 1% of a step, at most a step.
                let per_line = (used / lines.max(1) as u64).max(1);
                let want = ((used - policy.max_bytes) / per_line + 1)
                    .clamp((RETENTION_STEP_ROWS / 100) as u64, RETENTION_STEP_ROWS as u64);
                if let Some(upto) = self.blocks_prefix(|_, _| true, want as i64)? {
                    report.logs_by_size = self.delete_logs_upto(upto)?;
                    report.used_bytes = used_bytes(&self.conn)?.saturating_sub(reclaimable_index_bytes(&self.conn)?);
                }
            }
        }
        Ok(report)
    }

    /// The oldest blocks that pass `old(lines, ts_last)`, taken in id order while they pass and until about
    /// `max_lines` lines (at least one block): the last one's (block id, last line id); None when the oldest
    /// block does not pass.
    fn blocks_prefix(&self, old: impl Fn(i64, i64) -> bool, max_lines: i64) -> rusqlite::Result<Option<(i64, i64)>> {
        let mut stmt = self.conn.prepare_cached("SELECT id, lines, ts_last FROM log_blocks ORDER BY id")?;
        let mut rows = stmt.query([])?;
        let (mut upto, mut taken) = (None, 0i64);
        while let Some(r) = rows.next()? {
            let (id, lines, ts_last): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            if !old(lines, ts_last) || (taken > 0 && taken + lines > max_lines) {
                break;
            }
            upto = Some((id, id + lines - 1));
            taken += lines;
        }
        Ok(upto)
    }

    /// Deletes the blocks up to and including block `block` (whose last line is `upto`) and drops the index
    /// parts that no longer cover any line; returns the lines deleted.
    fn delete_logs_upto(&mut self, (block, upto): (i64, i64)) -> rusqlite::Result<u64> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let n: i64 = self
            .conn
            .prepare_cached("SELECT coalesce(sum(lines), 0) FROM log_blocks WHERE id <= ?1")?
            .query_row([block], |r| r.get(0))?;
        self.conn.prepare_cached("DELETE FROM log_blocks WHERE id <= ?1")?.execute([block])?;
        let expired: Vec<i64> = self
            .conn
            .prepare_cached("SELECT part FROM block_index_parts WHERE last_id <= ?1")?
            .query_map([upto], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for part in expired {
            self.conn.execute_batch(&format!("DROP TABLE IF EXISTS blocks_fts_{part}"))?;
            self.conn.prepare_cached("DELETE FROM block_index_parts WHERE part = ?1")?.execute([part])?;
        }
        let indexed = self.st.indexed_upto.max(upto);
        self.conn.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'blocks_indexed_upto'")?.execute([indexed])?;
        self.conn.execute_batch("COMMIT")?;
        self.st.indexed_upto = indexed;
        let n = n.max(0) as u64;
        self.committed(n);
        self.st.counters.retained_deleted.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }
}

/// Bytes of index parts whose lines are partly deleted, in proportion to the deleted share: space that is
/// freed when the part expires, and that deleting more lines now would not free.
pub(crate) fn reclaimable_index_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let min_live: Option<i64> = conn.query_row("SELECT min(id) FROM log_blocks", [], |r| r.get(0))?;
    let parts: Vec<(i64, i64, i64)> = conn
        .prepare_cached("SELECT part, first_id, last_id FROM block_index_parts WHERE first_id < ?1")?
        .query_map([min_live.unwrap_or(i64::MAX)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut total = 0u64;
    for (part, first, last) in parts {
        let span = (last - first + 1).max(1) as f64;
        let gone = (min_live.unwrap_or(last + 1) - first).clamp(0, last - first + 1) as f64;
        let mut bytes = 0i64;
        for shadow in ["data", "idx", "docsize"] {
            bytes += conn
                .prepare_cached("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?1 AND aggregate = 1")?
                .query_row([format!("blocks_fts_{part}_{shadow}")], |r| r.get::<_, i64>(0))?;
        }
        total += (bytes as f64 * gone / span) as u64;
    }
    Ok(total)
}

/// `(page_count − freelist_count) × page_size`.
pub(crate) fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.prepare_cached("PRAGMA page_count")?.query_row([], |r| r.get(0))?;
    let free: i64 = conn.prepare_cached("PRAGMA freelist_count")?.query_row([], |r| r.get(0))?;
    let size: i64 = conn.prepare_cached("PRAGMA page_size")?.query_row([], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// The block being filled: consecutive chunks of one (module, run, stream) in arrival order. A chunk of
/// another stream ends it, so lines keep the order they arrived in across streams (a module flooding its
/// pipe sends chunks of hundreds of lines, so its blocks stay large even when others log in between).
#[derive(Default)]
struct PendingBlocks {
    current: Option<Pending>,
}

struct Pending {
    module_id: i64,
    run: RunId,
    stream: u8,
    lines: Lines,
}

impl PendingBlocks {
    /// Adds a chunk's lines to the current block, writing blocks as they fill up: a chunk of another stream,
    /// or one that would take the block past [`block::MAX_LINES`], [`block::MAX_TEXT_BYTES`] or
    /// [`block::MAX_SPAN_MS`], starts a new block.
    fn add(&mut self, conn: &Connection, st: &mut WriterState, chunk: LogRows) -> rusqlite::Result<()> {
        if chunk.lines.is_empty() {
            return Ok(());
        }
        let module_id = st.ids.module(conn, &chunk.project, &chunk.module)?;
        let stream = stream_code(chunk.stream) as u8;
        let mut rest = chunk.lines;
        while !rest.is_empty() {
            let joins = self.current.as_ref().is_some_and(|p| {
                (p.module_id, p.run, p.stream) == (module_id, chunk.run, stream)
                    && p.lines.span_ms(&rest) <= block::MAX_SPAN_MS
            });
            if !joins {
                self.write_all(conn, st)?;
            }
            let p = self.current.get_or_insert_with(|| Pending {
                module_id,
                run: chunk.run,
                stream,
                lines: Lines::default(),
            });
            let used = p.lines.text.len() + usize::from(!p.lines.is_empty());
            let room = rest
                .fitting(block::MAX_LINES.saturating_sub(p.lines.len()), block::MAX_TEXT_BYTES.saturating_sub(used));
            // An empty block takes at least one line, however long.
            let room = if p.lines.is_empty() { room.max(1) } else { room };
            if room == 0 {
                self.write_all(conn, st)?;
                continue;
            }
            let tail = rest.split_off(room);
            p.lines.append(&rest);
            rest = tail;
        }
        Ok(())
    }

    /// Writes the current block, if any.
    fn write_all(&mut self, conn: &Connection, st: &mut WriterState) -> rusqlite::Result<()> {
        match self.current.take() {
            Some(b) => write_block(conn, st, b.module_id, b.run, b.stream, b.lines),
            None => Ok(()),
        }
    }
}

/// Writes one block: its lines get the next ids, and times clamped to never go below the previous line's.
fn write_block(
    conn: &Connection,
    st: &mut WriterState,
    module_id: i64,
    run: RunId,
    stream: u8,
    mut lines: Lines,
) -> rusqlite::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    for m in &mut lines.meta {
        m.ts_ms = m.ts_ms.max(st.last_ts);
        st.last_ts = m.ts_ms;
    }
    let n = lines.len() as i64;
    // Ids are given out here, never by SQLite: after retention deleted the newest rows SQLite would hand out
    // their ids again, and the index watermark (`indexed_upto`) relies on ids only growing.
    let id = st.last_log_id + 1;
    let (first, last) = (lines.meta[0].ts_ms, st.last_ts);
    conn.prepare_cached(
        "INSERT INTO log_blocks (id, lines, module_id, run, stream, ts_first, ts_last, levels, flags, text, meta, display)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        id,
        n,
        module_id,
        run as i64,
        i64::from(stream),
        first as i64,
        last as i64,
        lines.levels(),
        lines.flags(),
        lines.text,
        block::encode_meta(&lines.meta),
        lines.display_column(),
    ])?;
    st.last_log_id += n;
    Ok(())
}

/// Kind name, level, and one line of text for an event.
pub(crate) fn describe(ev: &Event) -> (&'static str, Option<&str>, Level, String) {
    match &ev.kind {
        EventKind::Transition(t) => {
            let level = match &t.to {
                State::Failed { .. } => Level::Error,
                State::Exited { code: Some(c), .. } if *c != 0 => Level::Error,
                State::Exited { signal: Some(_), .. } => Level::Warn,
                State::Backoff { .. } => Level::Warn,
                _ => Level::Info,
            };
            let mut text = format!("{} {} → {}", t.module, t.from.name(), t.to.name());
            match &t.to {
                State::Exited { code: Some(c), .. } => text.push_str(&format!(" (exit code {c})")),
                State::Exited { signal: Some(s), .. } => text.push_str(&format!(" (signal {s})")),
                State::Failed { reason } => text.push_str(&format!(" ({reason})")),
                State::Backoff { delay_ms, attempt } => {
                    text.push_str(&format!(" (attempt {attempt}, retry in {delay_ms} ms)"))
                }
                _ => {}
            }
            if !t.reason.is_empty() {
                text.push_str(": ");
                text.push_str(&t.reason);
            }
            ("transition", Some(t.module.as_str()), level, text)
        }
        EventKind::RunStarted { module, run, pid } => {
            ("run_started", Some(module.as_str()), Level::Info, format!("{module} started (run {run}, pid {pid})"))
        }
        EventKind::RunEnded { module, run, code, signal, reason } => {
            let (level, how) = match (code, signal) {
                (Some(0), _) => (Level::Info, "exited with code 0".to_string()),
                (Some(c), _) => (Level::Error, format!("exited with code {c}")),
                (None, Some(s)) => (Level::Warn, format!("killed by signal {s}")),
                (None, None) => (Level::Warn, "ended".to_string()),
            };
            let mut text = format!("{module} {how} (run {run})");
            if !reason.is_empty() {
                text.push_str(": ");
                text.push_str(reason);
            }
            ("run_ended", Some(module.as_str()), level, text)
        }
        EventKind::ConfigApplied { profile, summary } => {
            let p = profile.as_deref().map(|p| format!(" (profile {p})")).unwrap_or_default();
            ("config_applied", None, Level::Info, format!("configuration applied{p}: {summary}"))
        }
        EventKind::ConfigRejected { errors } => {
            ("config_rejected", None, Level::Error, format!("configuration rejected: {}", errors.join("; ")))
        }
    }
}

fn insert_metrics(conn: &Connection, rows: &[MetricRow], prune: &[(u64, u64)]) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO metrics (ts_ms, resolution_ms, project, module, cpu_percent, mem_bytes, ipc_score)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for r in rows {
        insert.execute(params![
            r.ts_ms as i64,
            r.resolution_ms as i64,
            r.project,
            r.module,
            r.cpu_percent,
            r.mem_bytes as i64,
            r.ipc_score
        ])?;
    }
    let mut delete = conn.prepare_cached("DELETE FROM metrics WHERE resolution_ms = ?1 AND ts_ms < ?2")?;
    for (resolution, before) in prune {
        delete.execute(params![*resolution as i64, *before as i64])?;
    }
    Ok(())
}

fn insert_event(conn: &Connection, st: &mut WriterState, ev: &Event) -> rusqlite::Result<()> {
    let project: Arc<str> = Arc::from(ev.project.as_str());
    let project_id = st.ids.project(conn, &project)?;
    let (kind, module, level, text) = describe(ev);
    let module_id = match module {
        Some(m) => Some(st.ids.module(conn, &project, m)?),
        None => None,
    };
    let text = mask_text(&text);
    let payload = serde_json::to_string(&ev.kind).unwrap_or_else(|_| "{}".into());
    let payload = mask_text(&payload);
    conn.prepare_cached(
        "INSERT INTO events (ts_ms, project_id, module_id, kind, level, payload, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![ev.at_ms as i64, project_id, module_id, kind, level.as_i64(), &*payload, &*text])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO events_fts (rowid, text) VALUES (?1, ?2)")?.execute(params![id, &*text])?;

    match &ev.kind {
        EventKind::RunStarted { run, pid, .. } => {
            conn.prepare_cached("INSERT INTO runs (module_id, run, pid, started_ms) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![module_id, *run as i64, *pid, ev.at_ms as i64])?;
        }
        EventKind::RunEnded { run, code, signal, reason, .. } => {
            let n = conn
                .prepare_cached(
                    "UPDATE runs SET ended_ms = ?3, exit_code = ?4, signal = ?5, reason = ?6
                     WHERE id = (SELECT id FROM runs WHERE module_id = ?1 AND run = ?2 ORDER BY id DESC LIMIT 1)",
                )?
                .execute(params![module_id, *run as i64, ev.at_ms as i64, code, signal, reason])?;
            if n == 0 {
                conn.prepare_cached(
                    "INSERT INTO runs (module_id, run, started_ms, ended_ms, exit_code, signal, reason)
                     VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![module_id, *run as i64, ev.at_ms as i64, code, signal, reason])?;
            }
        }
        _ => {}
    }
    Ok(())
}
