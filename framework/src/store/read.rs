//! Reads: the memory search and the log/event queries, on pooled read connections.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::line::{Level, flags};
use super::matcher::{self, Matcher, highlight};
use super::schema;
use super::{
    EventQuery, EventRecord, Hit, Kind, LogQuery, LogRecord, MetricRow, MetricsQuery, NoteRecord, Result, RunRecord,
    SEARCH_CANDIDATES, SearchQuery, StoreError, StoreStats,
};
use crate::lifecycle::Stream;

/// Opens a highlighted term in [`Hit::snippet`].
pub const HIGHLIGHT_START: char = '\u{1}';
/// Closes a highlighted term in [`Hit::snippet`].
pub const HIGHLIGHT_END: char = '\u{2}';

/// Idle read connections kept for reuse.
const POOL_SIZE: usize = 4;

/// A small pool of read connections.
#[derive(Debug)]
pub(crate) struct Readers {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
}

impl Readers {
    pub(crate) fn new(path: PathBuf) -> Readers {
        Readers { path, pool: Mutex::new(Vec::new()) }
    }

    /// Runs `f` on a pooled connection (opening one when none is idle), inside one read transaction so every
    /// statement sees the same snapshot (the index watermark and the rows agree).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.pool.lock().ok().and_then(|mut p| p.pop());
        let conn = match pooled {
            Some(c) => c,
            None => schema::open_reader(&self.path)?,
        };
        conn.execute_batch("BEGIN")?;
        let out = f(&conn);
        if conn.execute_batch("COMMIT").is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        if let Ok(mut p) = self.pool.lock()
            && p.len() < POOL_SIZE
        {
            p.push(conn);
        }
        out
    }
}

/// Turns what a user typed into a safe FTS5 query, or None when nothing searchable is left.
///
/// Every whitespace-separated word becomes a quoted FTS5 string (`"` doubled inside), so operators and
/// punctuation — `-foo`, `a:b`, `NEAR(`, `AND`, `*`, `^`, `(` — are literal text, never syntax; FTS5 then
/// tokenizes inside the quotes, so `a:b` or `foo-bar` is the phrase "a b" / "foo bar". A `"quoted phrase"` is
/// kept as a phrase (an unclosed quote runs to the end). A trailing `*` asks for a prefix match (`conn*`).
/// Words without a letter or digit are dropped. All words must match (implicit AND).
pub fn fts_query(text: &str) -> Option<String> {
    let terms: Vec<String> = matcher::lex(text)
        .into_iter()
        .map(|t| {
            let mut q = String::with_capacity(t.raw.len() + 4);
            q.push('"');
            for c in t.raw.chars() {
                match c {
                    '"' => q.push_str("\"\""),
                    // Control characters are never part of indexed text; keep them out of queries too.
                    c if c.is_control() => q.push(' '),
                    c => q.push(c),
                }
            }
            q.push('"');
            if t.prefix {
                q.push('*');
            }
            q
        })
        .collect();
    if terms.is_empty() { None } else { Some(terms.join(" ")) }
}

/// Names of every module and project, by id (small tables: loaded per query).
struct Names {
    modules: HashMap<i64, (i64, String)>,
    projects: HashMap<i64, String>,
}

impl Names {
    fn load(conn: &Connection) -> Result<Names> {
        let mut projects = HashMap::new();
        let mut stmt = conn.prepare_cached("SELECT id, name FROM projects")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            projects.insert(r.get(0)?, r.get(1)?);
        }
        let mut modules = HashMap::new();
        let mut stmt = conn.prepare_cached("SELECT id, project_id, name FROM modules")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            modules.insert(r.get(0)?, (r.get(1)?, r.get(2)?));
        }
        Ok(Names { modules, projects })
    }

    fn project(&self, id: i64) -> String {
        self.projects.get(&id).cloned().unwrap_or_default()
    }

    fn module(&self, id: Option<i64>) -> Option<String> {
        id.and_then(|id| self.modules.get(&id)).map(|(_, n)| n.clone())
    }

    fn project_of_module(&self, id: i64) -> String {
        self.modules.get(&id).map(|(p, _)| self.project(*p)).unwrap_or_default()
    }

    fn project_id(&self, name: &str) -> Option<i64> {
        self.projects.iter().find(|(_, n)| n.as_str() == name).map(|(id, _)| *id)
    }

    /// Module ids passing the filters: None = no filter; Some(empty) = nothing can match.
    fn module_ids(&self, project: Option<&str>, module: Option<&str>) -> Option<Vec<i64>> {
        if project.is_none() && module.is_none() {
            return None;
        }
        let pid = project.map(|p| self.project_id(p));
        if pid == Some(None) {
            return Some(Vec::new());
        }
        let mut ids: Vec<i64> = self
            .modules
            .iter()
            .filter(|(_, (p, n))| pid.flatten().is_none_or(|pid| *p == pid) && module.is_none_or(|m| m == n))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        Some(ids)
    }

    /// True when the module set is every module there is (the filter can be skipped).
    fn is_all_modules(&self, ids: &[i64]) -> bool {
        ids.len() == self.modules.len()
    }
}

fn in_list(col: &str, ids: &[i64]) -> String {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    format!("{col} IN ({list})")
}

// ---------------------------------------------------------------------------------------------------------
// Time → id

/// Smallest log id whose `ts_ms >= ts`, by binary search on id (valid because the writer keeps `ts_ms`
/// non-decreasing in id order). None when every row is older.
fn first_log_id_at_or_after(conn: &Connection, ts: u64) -> Result<Option<i64>> {
    let bounds: (Option<i64>, Option<i64>) =
        conn.query_row("SELECT min(id), max(id) FROM logs", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (Some(mut lo), Some(max)) = bounds else { return Ok(None) };
    let mut hi = max + 1;
    let mut best = None;
    let mut probe = conn.prepare_cached("SELECT id, ts_ms FROM logs WHERE id >= ?1 ORDER BY id LIMIT 1")?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let Some((id, t)) = probe.query_row([mid], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))).optional()?
        else {
            hi = mid;
            continue;
        };
        if t as u64 >= ts {
            best = Some(id);
            hi = mid;
        } else {
            lo = id + 1;
        }
    }
    Ok(best)
}

/// Inclusive id range of logs within [since, until]; None when empty.
fn log_id_range(conn: &Connection, since: Option<u64>, until: Option<u64>) -> Result<Option<(i64, i64)>> {
    let lo = match since {
        Some(s) => match first_log_id_at_or_after(conn, s)? {
            Some(id) => id,
            None => return Ok(None),
        },
        None => i64::MIN,
    };
    let hi = match until {
        Some(u) => match first_log_id_at_or_after(conn, u.saturating_add(1))? {
            Some(id) => id - 1,
            None => i64::MAX,
        },
        None => i64::MAX,
    };
    Ok(if lo <= hi { Some((lo, hi)) } else { None })
}

// ---------------------------------------------------------------------------------------------------------
// Search

struct Candidate {
    kind: Kind,
    id: i64,
    ts_ms: u64,
    score: f64,
    /// BM25 relevance within its kind (≥ 0).
    rel: f64,
    /// Filled in already (log rows carry their own snippet).
    hit: Option<Hit>,
}

/// Added to a hit's score by kind: at equal relevance and age, a note beats an event beats a log.
fn kind_bonus(kind: Kind) -> f64 {
    match kind {
        Kind::Note => 1.0,
        Kind::Event => 0.5,
        Kind::Log => 0.0,
    }
}

/// `3 × 0.5^(age_days / 7)`: 3 for now, 1.5 a week ago, 0.75 two weeks ago.
fn recency(ts_ms: u64, now_ms: u64) -> f64 {
    let age_days = now_ms.saturating_sub(ts_ms) as f64 / 86_400_000.0;
    3.0 * 0.5f64.powf(age_days / 7.0)
}

/// The formula documented on `Store::search`; `relevance` is already normalised to 0..=1 within its kind.
fn score(kind: Kind, relevance: f64, ts_ms: u64, now_ms: u64) -> f64 {
    3.0 * relevance + kind_bonus(kind) + recency(ts_ms, now_ms)
}

/// Runs a statement whose rows are `(id, bm25, ts_ms)`; an FTS5 query error (which the quoting should make
/// impossible) counts as "no match" rather than an error for the user.
fn collect(conn: &Connection, sql: &str, params: &[Value], kind: Kind, out: &mut Vec<Candidate>) -> Result<()> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params_from_iter(params.iter()), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, f64>(1)?, r.get::<_, i64>(2)?))
    });
    let rows = match rows {
        Ok(r) => r,
        Err(e) if is_fts_syntax(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for row in rows {
        let (id, bm25, ts) = match row {
            Ok(v) => v,
            Err(e) if is_fts_syntax(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let ts = ts.max(0) as u64;
        out.push(Candidate { kind, id, ts_ms: ts, rel: (-bm25).max(0.0), score: 0.0, hit: None });
    }
    Ok(())
}

fn is_fts_syntax(e: &rusqlite::Error) -> bool {
    let s = e.to_string();
    s.contains("fts5") || s.contains("syntax error") || s.contains("unterminated")
}

pub(crate) fn search(conn: &Connection, q: &SearchQuery, now: u64) -> Result<Vec<Hit>> {
    let limit = if q.limit == 0 { 50 } else { q.limit };
    let wants = |k: Kind| q.kinds.is_empty() || q.kinds.contains(&k);
    let names = Names::load(conn)?;
    let module_ids = names.module_ids(q.project.as_deref(), q.module.as_deref());
    if module_ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let module_filter = module_ids.as_deref().filter(|ids| !names.is_all_modules(ids));
    let project_id = match q.project.as_deref() {
        Some(p) => match names.project_id(p) {
            Some(id) => Some(id),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let fts = fts_query(&q.text);
    let cand_limit = SEARCH_CANDIDATES as i64;
    let mut cands = Vec::new();

    // Logs: the indexed part through FTS5, the unindexed tail by scanning.
    if wants(Kind::Log)
        && let Some((lo, hi)) = log_id_range(conn, q.since_ms, q.until_ms)?
    {
        let mut filters = String::new();
        if let Some(ids) = module_filter {
            filters.push_str(&format!(" AND {}", in_list("l.module_id", ids)));
        }
        if let Some(l) = q.level {
            filters.push_str(&format!(" AND l.level >= {}", l.as_i64()));
        }
        if let (Some(m), Some(matcher)) = (&fts, Matcher::new(&q.text)) {
            let indexed = indexed_upto(conn)?;
            let parts = parts_in(conn, i64::MIN, indexed)?;
            let stats = LogStats::load(conn, &matcher, &parts)?;
            let mut rows = scan_tail(conn, &matcher, lo.max(indexed + 1), hi, &filters, SEARCH_CANDIDATES, false)?
                .into_iter()
                .map(|(raw, found)| (raw, Some(found)))
                .collect::<Vec<_>>();
            if lo <= indexed && rows.len() < SEARCH_CANDIDATES {
                let found =
                    indexed_matches(conn, m, lo, hi.min(indexed), &filters, SEARCH_CANDIDATES - rows.len(), false)?;
                rows.extend(found.into_iter().map(|raw| {
                    let f = matcher.find(&raw.text);
                    (raw, f)
                }));
            }
            for (raw, found) in rows {
                let ts = raw.ts_ms.max(0) as u64;
                // FTS5 folds diacritics and the matcher does not: such a row still matched; score it as
                // one occurrence of each term and let FTS5 make its snippet.
                let (rel, snippet) = match &found {
                    Some(f) => (
                        stats.relevance(f),
                        Some(highlight(&raw.text, &f.ranges, HIGHLIGHT_START, HIGHLIGHT_END, SNIPPET_CHARS)),
                    ),
                    None => (
                        stats.relevance(&matcher::Found {
                            ranges: Vec::new(),
                            counts: vec![1; matcher.terms().len()],
                            doc_tokens: 16,
                        }),
                        None,
                    ),
                };
                let score = 0.0;
                let snippet =
                    snippet.unwrap_or_else(|| highlight(&raw.text, &[], HIGHLIGHT_START, HIGHLIGHT_END, SNIPPET_CHARS));
                let hit = Some(Hit {
                    kind: Kind::Log,
                    id: raw.id,
                    ts_ms: ts,
                    project: names.project_of_module(raw.module_id),
                    module: names.module(Some(raw.module_id)),
                    run: Some(raw.run as u64),
                    level: Level::from_i64(raw.level),
                    snippet,
                    score,
                });
                cands.push(Candidate { kind: Kind::Log, id: raw.id, ts_ms: ts, rel, score, hit });
            }
        } else if q.text.trim().is_empty() {
            let params: Vec<Value> = vec![lo.into(), hi.into(), cand_limit.into()];
            let sql = format!(
                "SELECT l.id, 0.0, l.ts_ms FROM logs l WHERE l.id BETWEEN ?1 AND ?2{filters}
                     ORDER BY l.id DESC LIMIT ?3"
            );
            collect(conn, &sql, &params, Kind::Log, &mut cands)?;
        }
    }

    // Events and notes share a shape.
    for (kind, table, fts_table, has_level) in
        [(Kind::Event, "events", "events_fts", true), (Kind::Note, "notes", "notes_fts", false)]
    {
        if !wants(kind) {
            continue;
        }
        let mut filters = String::new();
        let mut params: Vec<Value> = Vec::new();
        if let Some(m) = &fts {
            params.push(Value::Text(m.clone()));
        }
        if let Some(pid) = project_id {
            filters.push_str(&format!(" AND t.project_id = {pid}"));
        }
        if q.module.is_some()
            && let Some(ids) = module_ids.as_deref()
        {
            filters.push_str(&format!(" AND {}", in_list("t.module_id", ids)))
        }
        if let (Some(l), true) = (q.level, has_level) {
            filters.push_str(&format!(" AND t.level >= {}", l.as_i64()));
        }
        if let Some(s) = q.since_ms {
            filters.push_str(&format!(" AND t.ts_ms >= {}", s as i64));
        }
        if let Some(u) = q.until_ms {
            filters.push_str(&format!(" AND t.ts_ms <= {}", u.min(i64::MAX as u64) as i64));
        }
        let sql = match &fts {
            Some(_) => format!(
                "SELECT {fts_table}.rowid, bm25({fts_table}), t.ts_ms FROM {fts_table} CROSS JOIN {table} t
                 ON t.id = {fts_table}.rowid WHERE {fts_table} MATCH ?1{filters}
                 ORDER BY {fts_table}.rowid DESC LIMIT {cand_limit}"
            ),
            None => format!(
                "SELECT t.id, 0.0, t.ts_ms FROM {table} t WHERE 1{filters} ORDER BY t.id DESC LIMIT {cand_limit}"
            ),
        };
        collect(conn, &sql, &params, kind, &mut cands)?;
    }

    if fts.is_none() && !q.text.trim().is_empty() {
        // Only punctuation was typed: nothing can match (rather than "everything").
        return Ok(Vec::new());
    }
    // BM25 values of different tables are not comparable (each has its own document frequencies: a term in
    // the only note has idf ≈ 0 there), so relevance is normalised within each kind before kinds meet.
    for kind in [Kind::Log, Kind::Event, Kind::Note] {
        let best = cands.iter().filter(|c| c.kind == kind).map(|c| c.rel).fold(0.0, f64::max);
        for c in cands.iter_mut().filter(|c| c.kind == kind) {
            let rel = if best > 0.0 { c.rel / best } else { 0.0 };
            c.score = score(kind, rel, c.ts_ms, now);
        }
    }
    cands.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.ts_ms.cmp(&a.ts_ms)).then(b.id.cmp(&a.id)));
    cands.truncate(limit);
    let mut hits = Vec::with_capacity(cands.len());
    for c in cands {
        if let Some(mut h) = c.hit.clone() {
            h.score = c.score;
            hits.push(h);
        } else if let Some(h) = hit_details(conn, &names, fts.as_deref(), &c)? {
            hits.push(h);
        }
    }
    Ok(hits)
}

const SNIPPET_TOKENS: i64 = 24;
const SNIPPET_CHARS: usize = 240;

/// Prefix of a text as the snippet of an entry found without search words.
fn plain_snippet(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn hit_details(conn: &Connection, names: &Names, fts: Option<&str>, c: &Candidate) -> Result<Option<Hit>> {
    let snippet_sql =
        |table: &str, col: i64, tokens: i64| format!("snippet({table}, {col}, char(1), char(2), '…', {tokens})");
    let hit = match c.kind {
        Kind::Log => {
            // Log rows found by words carry their hit already; this is the empty-text listing.
            let sql = "SELECT l.text, l.module_id, l.run, l.level FROM logs l WHERE ?1 IS NOT NULL AND l.id = ?2";
            conn.prepare_cached(sql)?
                .query_row(params![fts.unwrap_or(""), c.id], |r| {
                    let snippet: String = r.get(0)?;
                    let module_id: i64 = r.get(1)?;
                    Ok(Hit {
                        kind: Kind::Log,
                        id: c.id,
                        ts_ms: c.ts_ms,
                        project: names.project_of_module(module_id),
                        module: names.module(Some(module_id)),
                        run: Some(r.get::<_, i64>(2)? as u64),
                        level: Level::from_i64(r.get(3)?),
                        snippet: plain_snippet(&snippet),
                        score: c.score,
                    })
                })
                .optional()?
        }
        Kind::Event | Kind::Note => {
            let (table, fts_table, level_col) = match c.kind {
                Kind::Event => ("events", "events_fts", "t.level"),
                _ => ("notes", "notes_fts", "0"),
            };
            let sql = match fts {
                Some(_) => format!(
                    "SELECT {}, t.project_id, t.module_id, {level_col} FROM {fts_table} CROSS JOIN {table} t
                     ON t.id = {fts_table}.rowid WHERE {fts_table} MATCH ?1 AND {fts_table}.rowid = ?2",
                    snippet_sql(fts_table, -1, SNIPPET_TOKENS * 2)
                ),
                None => format!(
                    "SELECT t.text, t.project_id, t.module_id, {level_col} FROM {table} t
                     WHERE ?1 IS NOT NULL AND t.id = ?2"
                ),
            };
            conn.prepare_cached(&sql)?
                .query_row(params![fts.unwrap_or(""), c.id], |r| {
                    let snippet: String = r.get(0)?;
                    Ok(Hit {
                        kind: c.kind,
                        id: c.id,
                        ts_ms: c.ts_ms,
                        project: names.project(r.get(1)?),
                        module: names.module(r.get(2)?),
                        run: None,
                        level: Level::from_i64(r.get(3)?),
                        snippet: if fts.is_some() { snippet } else { plain_snippet(&snippet) },
                        score: c.score,
                    })
                })
                .optional()?
        }
    };
    Ok(hit)
}

// ---------------------------------------------------------------------------------------------------------
// The unindexed tail

/// Highest log id in the FTS index (rows above it are scanned).
fn indexed_upto(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'logs_indexed_upto'")?
        .query_row([], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0))
}

/// A log row as stored.
struct RawLog {
    id: i64,
    ts_ms: i64,
    module_id: i64,
    run: i64,
    stream: i64,
    level: i64,
    flags: i64,
    text: String,
    display: Option<String>,
}

const LOG_COLS: &str = "l.id, l.ts_ms, l.module_id, l.run, l.stream, l.level, l.flags, l.text, l.display";

fn raw_log(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawLog> {
    Ok(RawLog {
        id: r.get(0)?,
        ts_ms: r.get(1)?,
        module_id: r.get(2)?,
        run: r.get(3)?,
        stream: r.get(4)?,
        level: r.get(5)?,
        flags: r.get(6)?,
        text: r.get(7)?,
        display: r.get(8)?,
    })
}

fn to_record(raw: RawLog, names: &Names) -> LogRecord {
    let fields = if raw.flags & flags::JSON != 0 {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&raw.text).ok()
    } else {
        None
    };
    LogRecord {
        id: raw.id,
        ts_ms: raw.ts_ms.max(0) as u64,
        project: names.project_of_module(raw.module_id),
        module: names.module(Some(raw.module_id)).unwrap_or_default(),
        run: raw.run as u64,
        stream: stream_from(raw.stream),
        level: Level::from_i64(raw.level),
        message: raw.display.unwrap_or_else(|| raw.text.clone()),
        text: raw.text,
        fields,
        escaped: raw.flags & flags::ESCAPED != 0,
        truncated: raw.flags & flags::TRUNCATED != 0,
        masked: raw.flags & flags::MASKED != 0,
    }
}

/// Scans log rows with ids in `[lo, hi]` (newest first unless `ascending`) that pass `filters` (SQL on `l`)
/// and match every term, until `limit` matches. `LIKE` on each term's longest ASCII token skips most
/// non-matching rows inside SQLite; the matcher decides.
fn scan_tail(
    conn: &Connection,
    matcher: &Matcher,
    lo: i64,
    hi: i64,
    filters: &str,
    limit: usize,
    ascending: bool,
) -> Result<Vec<(RawLog, matcher::Found)>> {
    if lo > hi || limit == 0 {
        return Ok(Vec::new());
    }
    let mut params: Vec<Value> = vec![lo.into(), hi.into()];
    let mut like = String::new();
    for p in matcher.like_patterns() {
        params.push(Value::Text(p));
        like.push_str(&format!(" AND l.text LIKE ?{} ESCAPE '\\'", params.len()));
    }
    let order = if ascending { "ASC" } else { "DESC" };
    let sql =
        format!("SELECT {LOG_COLS} FROM logs l WHERE l.id BETWEEN ?1 AND ?2{filters}{like} ORDER BY l.id {order}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let raw = raw_log(r)?;
        if let Some(found) = matcher.find(&raw.text) {
            out.push((raw, found));
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// One part of the log index.
#[derive(Debug, Clone, Copy)]
struct Part {
    part: i64,
    first_id: i64,
    last_id: i64,
}

/// Parts of the log index that hold rows in `[lo, hi]`, oldest first.
fn parts_in(conn: &Connection, lo: i64, hi: i64) -> Result<Vec<Part>> {
    let mut stmt = conn.prepare_cached(
        "SELECT part, first_id, last_id FROM log_index_parts WHERE last_id >= ?1 AND first_id <= ?2 AND rows > 0
         ORDER BY part",
    )?;
    let parts = stmt
        .query_map([lo, hi], |r| Ok(Part { part: r.get(0)?, first_id: r.get(1)?, last_id: r.get(2)? }))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(parts)
}

/// Index matches in `[lo, hi]` that pass `filters`, read from `logs`, across parts in id order, until
/// `limit` rows. Entries of deleted rows find no `logs` row and drop out of the join.
fn indexed_matches(
    conn: &Connection,
    fts: &str,
    lo: i64,
    hi: i64,
    filters: &str,
    limit: usize,
    ascending: bool,
) -> Result<Vec<RawLog>> {
    let mut parts = parts_in(conn, lo, hi)?;
    if !ascending {
        parts.reverse();
    }
    let order = if ascending { "ASC" } else { "DESC" };
    let mut out = Vec::new();
    for p in parts {
        if out.len() >= limit {
            break;
        }
        let t = format!("logs_fts_{}", p.part);
        let sql = format!(
            "SELECT {LOG_COLS} FROM {t} CROSS JOIN logs l ON l.id = {t}.rowid
             WHERE {t} MATCH ?1 AND {t}.rowid BETWEEN ?2 AND ?3{filters}
             ORDER BY {t}.rowid {order} LIMIT ?4"
        );
        let params: Vec<Value> =
            vec![Value::Text(fts.to_string()), lo.into(), hi.into(), ((limit - out.len()) as i64).into()];
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(params.iter()), raw_log);
        match rows.and_then(|r| r.collect::<rusqlite::Result<Vec<_>>>()) {
            Ok(v) => out.extend(v),
            Err(e) if is_fts_syntax(&e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// What BM25 needs to score log rows: the number of indexed rows and their average length (FTS5's own
/// "averages" record), and each term's document frequency.
///
/// FTS5's `bm25()` counts a term's documents by walking its whole posting list — 20 ms for a word in most
/// of a million lines — and `fts5vocab` does the same. Instead the df is *estimated from density*: the
/// newest [`DF_PROBE`] matches of the term are read (fast, newest first) and their share of the id range
/// they span is extrapolated to the index. A term with fewer matches than that is counted exactly. (The
/// index parts are contentless, so `bm25()` and `snippet()` are not available for logs anyway: the store
/// scores and highlights log rows itself, the same way for indexed rows and the unindexed tail.)
struct LogStats {
    idf: Vec<f64>,
    avgdl: f64,
}

/// Matches read per term to estimate its document frequency.
const DF_PROBE: i64 = 1_000;

impl LogStats {
    fn load(conn: &Connection, matcher: &Matcher, parts: &[Part]) -> Result<LogStats> {
        // Each part's "averages" record (id 1 of its data table): varint row count, then token count.
        let (mut n_rows, mut n_tokens) = (0u64, 0u64);
        for p in parts {
            let blob: Option<Vec<u8>> = conn
                .query_row(&format!("SELECT block FROM logs_fts_{}_data WHERE id = 1", p.part), [], |r| r.get(0))
                .optional()?;
            if let Some(b) = blob {
                let (a, used) = sqlite_varint(&b);
                let (t, _) = sqlite_varint(&b[used.min(b.len())..]);
                n_rows += a;
                n_tokens += t;
            }
        }
        let n = n_rows.max(1) as f64;
        let avgdl = if n_rows > 0 { (n_tokens as f64 / n).max(1.0) } else { 16.0 };
        let mut idf = Vec::new();
        for term in matcher.terms() {
            let q = fts_query(&format!("\"{}\"{}", term.raw.replace('"', " "), if term.prefix { "*" } else { "" }));
            let mut df = 0.0;
            if let (Some(q), true) = (q, n_rows > 0) {
                // Newest parts first, until DF_PROBE matches are seen; extrapolate over the ids covered.
                let (mut count, mut covered, mut exact) = (0i64, 0i64, true);
                for p in parts.iter().rev() {
                    let want = DF_PROBE - count;
                    let (c, min): (i64, Option<i64>) = conn
                        .prepare_cached(&format!(
                            "SELECT count(*), min(rowid) FROM (SELECT rowid FROM logs_fts_{0} WHERE logs_fts_{0} MATCH ?1
                             ORDER BY rowid DESC LIMIT ?2)",
                            p.part
                        ))?
                        .query_row(params![q, want], |r| Ok((r.get(0)?, r.get(1)?)))
                        .unwrap_or((0, None));
                    count += c;
                    if c >= want {
                        covered += p.last_id - min.unwrap_or(p.first_id) + 1;
                        exact = false;
                        break;
                    }
                    covered += p.last_id - p.first_id + 1;
                }
                df = if exact { count as f64 } else { (count as f64 / covered.max(1) as f64 * n).min(n) };
            }
            let v = ((n - df + 0.5) / (df + 0.5)).ln();
            idf.push(if v <= 0.0 { 1e-6 } else { v });
        }
        Ok(LogStats { idf, avgdl })
    }

    /// FTS5's bm25 (k1 = 1.2, b = 0.75), positive.
    fn relevance(&self, found: &matcher::Found) -> f64 {
        let dl = found.doc_tokens as f64;
        self.idf
            .iter()
            .zip(&found.counts)
            .map(|(idf, &tf)| {
                let tf = tf as f64;
                idf * (tf * 2.2) / (tf + 1.2 * (0.25 + 0.75 * dl / self.avgdl))
            })
            .sum()
    }
}

/// SQLite's varint (as FTS5 stores it): big-endian 7-bit groups, the 9th byte whole. (value, bytes used).
fn sqlite_varint(b: &[u8]) -> (u64, usize) {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(9) {
        if i == 8 {
            return ((v << 8) | u64::from(byte), 9);
        }
        v = (v << 7) | u64::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    (v, b.len())
}

// ---------------------------------------------------------------------------------------------------------
// Logs

fn stream_from(code: i64) -> Stream {
    if code == 2 { Stream::Stderr } else { Stream::Stdout }
}

pub(crate) fn query_logs(conn: &Connection, q: &LogQuery) -> Result<Vec<LogRecord>> {
    let limit = if q.limit == 0 { 100 } else { q.limit };
    let names = Names::load(conn)?;
    let module_ids = names.module_ids(q.project.as_deref(), q.module.as_deref());
    if module_ids.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let Some((mut lo, mut hi)) = log_id_range(conn, q.since_ms, q.until_ms)? else { return Ok(Vec::new()) };
    if let Some(a) = q.after_id {
        lo = lo.max(a.saturating_add(1));
    }
    if let Some(b) = q.before_id {
        hi = hi.min(b.saturating_sub(1));
    }
    if lo > hi {
        return Ok(Vec::new());
    }
    let forward = q.after_id.is_some();
    let order = if forward { "ASC" } else { "DESC" };

    let mut filters = String::new();
    let params: Vec<Value> = vec![lo.into(), hi.into(), (limit as i64).into()];
    match module_ids.as_deref() {
        Some(ids) if !names.is_all_modules(ids) => {
            if ids.len() == 1 {
                // One module: walk the (module_id, id) index in id order.
                filters.push_str(&format!(" AND l.module_id = {}", ids[0]));
            } else {
                // Several: walk ids in order and test membership (`+` keeps SQLite from sorting the index).
                filters.push_str(&format!(" AND {}", in_list("+l.module_id", ids)));
            }
        }
        _ => {}
    }
    if let Some(r) = q.run {
        filters.push_str(&format!(" AND l.run = {}", r as i64));
    }
    if let Some(l) = q.level {
        filters.push_str(&format!(" AND l.level >= {}", l.as_i64()));
    }
    if let Some(g) = q.grep.as_deref().filter(|g| !g.is_empty()) {
        if g.contains('\0') {
            return Ok(Vec::new()); // stored text never contains NUL
        }
        // A quoted SQL literal (not a parameter) so the same filter text works in every statement below.
        filters.push_str(&format!(" AND instr(l.text, '{}') > 0", g.replace('\'', "''")));
    }
    let text = q.text.as_deref().filter(|t| !t.trim().is_empty());
    let raws: Vec<RawLog> = match text {
        None => {
            let sql = format!(
                "SELECT {LOG_COLS} FROM logs l WHERE l.id BETWEEN ?1 AND ?2{filters} ORDER BY l.id {order} LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            stmt.query_map(params_from_iter(params.iter()), raw_log)?.collect::<rusqlite::Result<_>>()?
        }
        Some(t) => {
            let (Some(m), Some(matcher)) = (fts_query(t), Matcher::new(t)) else { return Ok(Vec::new()) };
            let indexed = indexed_upto(conn)?;
            // Indexed rows come through FTS5, newer rows from the tail scan; in id order either way.
            let fts_part = |lo: i64, hi: i64| -> Result<Vec<RawLog>> {
                if lo > hi {
                    return Ok(Vec::new());
                }
                indexed_matches(conn, &m, lo, hi, &filters, limit, forward)
            };
            let tail_part = |lo: i64, hi: i64, want: usize| -> Result<Vec<RawLog>> {
                Ok(scan_tail(conn, &matcher, lo, hi, &filters, want, forward)?.into_iter().map(|(r, _)| r).collect())
            };
            let split = indexed.clamp(lo.saturating_sub(1), hi);
            let mut out = Vec::new();
            if forward {
                out.extend(fts_part(lo, split)?);
                if out.len() < limit {
                    out.extend(tail_part(split + 1, hi, limit - out.len())?);
                }
            } else {
                out.extend(tail_part(split + 1, hi, limit)?);
                if out.len() < limit {
                    out.extend(fts_part(lo, split)?);
                }
            }
            out.truncate(limit);
            out
        }
    };
    let mut out: Vec<LogRecord> = raws.into_iter().map(|r| to_record(r, &names)).collect();
    if !forward {
        out.reverse();
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// Events, notes, runs, sizes

pub(crate) fn query_events(conn: &Connection, q: &EventQuery) -> Result<Vec<EventRecord>> {
    let limit = if q.limit == 0 { 100 } else { q.limit } as i64;
    let names = Names::load(conn)?;
    let mut filters = String::new();
    let mut params: Vec<Value> = vec![limit.into()];
    if let Some(p) = q.project.as_deref() {
        match names.project_id(p) {
            Some(id) => filters.push_str(&format!(" AND e.project_id = {id}")),
            None => return Ok(Vec::new()),
        }
    }
    if q.module.is_some() {
        match names.module_ids(q.project.as_deref(), q.module.as_deref()) {
            Some(ids) if ids.is_empty() => return Ok(Vec::new()),
            Some(ids) => filters.push_str(&format!(" AND {}", in_list("e.module_id", &ids))),
            None => {}
        }
    }
    if !q.kinds.is_empty() {
        let mut marks = Vec::new();
        for k in &q.kinds {
            params.push(Value::Text(k.clone()));
            marks.push(format!("?{}", params.len()));
        }
        filters.push_str(&format!(" AND e.kind IN ({})", marks.join(",")));
    }
    if let Some(l) = q.level {
        filters.push_str(&format!(" AND e.level >= {}", l.as_i64()));
    }
    if let Some(s) = q.since_ms {
        filters.push_str(&format!(" AND e.ts_ms >= {}", s as i64));
    }
    if let Some(u) = q.until_ms {
        filters.push_str(&format!(" AND e.ts_ms <= {}", u.min(i64::MAX as u64) as i64));
    }
    if let Some(a) = q.after_id {
        filters.push_str(&format!(" AND e.id > {a}"));
    }
    if let Some(b) = q.before_id {
        filters.push_str(&format!(" AND e.id < {b}"));
    }
    let forward = q.after_id.is_some();
    let order = if forward { "ASC" } else { "DESC" };
    let sql = format!(
        "SELECT e.id, e.ts_ms, e.project_id, e.module_id, e.kind, e.level, e.text, e.payload FROM events e
         WHERE 1{filters} ORDER BY e.id {order} LIMIT ?1"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut out = stmt
        .query_map(params_from_iter(params.iter()), |r| {
            let payload: String = r.get(7)?;
            Ok(EventRecord {
                id: r.get(0)?,
                ts_ms: r.get::<_, i64>(1)?.max(0) as u64,
                project: names.project(r.get(2)?),
                module: names.module(r.get(3)?),
                kind: r.get(4)?,
                level: Level::from_i64(r.get(5)?).unwrap_or(Level::Info),
                text: r.get(6)?,
                payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !forward {
        out.reverse();
    }
    Ok(out)
}

pub(crate) fn notes(conn: &Connection, project: Option<&str>, limit: usize) -> Result<Vec<NoteRecord>> {
    let names = Names::load(conn)?;
    let filter = match project {
        Some(p) => match names.project_id(p) {
            Some(id) => format!("WHERE project_id = {id}"),
            None => return Ok(Vec::new()),
        },
        None => String::new(),
    };
    let limit = if limit == 0 { 100 } else { limit } as i64;
    let sql = format!(
        "SELECT id, ts_ms, project_id, module_id, text, tags, source FROM notes {filter} ORDER BY id DESC LIMIT ?1"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let out = stmt
        .query_map([limit], |r| {
            let tags: String = r.get(5)?;
            Ok(NoteRecord {
                id: r.get(0)?,
                ts_ms: r.get::<_, i64>(1)?.max(0) as u64,
                project: names.project(r.get(2)?),
                module: names.module(r.get(3)?),
                text: r.get(4)?,
                tags: tags.split_whitespace().map(str::to_string).collect(),
                source: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(out)
}

pub(crate) fn note(conn: &Connection, id: i64) -> Result<Option<NoteRecord>> {
    let names = Names::load(conn)?;
    let sql = "SELECT id, ts_ms, project_id, module_id, text, tags, source FROM notes WHERE id = ?1";
    let note = conn
        .prepare_cached(sql)?
        .query_row([id], |r| {
            let tags: String = r.get(5)?;
            Ok(NoteRecord {
                id: r.get(0)?,
                ts_ms: r.get::<_, i64>(1)?.max(0) as u64,
                project: names.project(r.get(2)?),
                module: names.module(r.get(3)?),
                text: r.get(4)?,
                tags: tags.split_whitespace().map(str::to_string).collect(),
                source: r.get(6)?,
            })
        })
        .optional()?;
    Ok(note)
}

pub(crate) fn runs(conn: &Connection, project: &str, module: Option<&str>, limit: usize) -> Result<Vec<RunRecord>> {
    let names = Names::load(conn)?;
    let Some(ids) = names.module_ids(Some(project), module) else { return Ok(Vec::new()) };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let limit = if limit == 0 { 100 } else { limit } as i64;
    let sql = format!(
        "SELECT module_id, run, pid, started_ms, ended_ms, exit_code, signal, reason FROM runs
         WHERE {} ORDER BY id DESC LIMIT ?1",
        in_list("module_id", &ids)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let out = stmt
        .query_map([limit], |r| {
            let module_id: i64 = r.get(0)?;
            Ok(RunRecord {
                project: names.project_of_module(module_id),
                module: names.module(Some(module_id)).unwrap_or_default(),
                run: r.get::<_, i64>(1)? as u64,
                pid: r.get::<_, Option<i64>>(2)?.map(|p| p as u32),
                started_ms: r.get::<_, i64>(3)?.max(0) as u64,
                ended_ms: r.get::<_, Option<i64>>(4)?.map(|t| t.max(0) as u64),
                exit_code: r.get(5)?,
                signal: r.get(6)?,
                reason: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(out)
}

/// Row counts and bytes in use (the counters are filled in by the caller).
pub(crate) fn sizes(conn: &Connection) -> Result<StoreStats> {
    let count = |sql: &str| -> Result<u64> { Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))?.max(0) as u64) };
    Ok(StoreStats {
        log_rows: count("SELECT count(*) FROM logs")?,
        unindexed: count(
            "SELECT count(*) FROM logs WHERE id > (SELECT value FROM meta WHERE key = 'logs_indexed_upto')",
        )?,
        event_rows: count("SELECT count(*) FROM events")?,
        note_rows: count("SELECT count(*) FROM notes")?,
        used_bytes: super::writer::used_bytes(conn).map_err(StoreError::from)?,
        reclaimable_bytes: super::writer::reclaimable_index_bytes(conn).map_err(StoreError::from)?,
        file_bytes: 0,
        written: 0,
        dropped: 0,
        rejected: 0,
        retained_deleted: 0,
        queued: 0,
        last_error: None,
    })
}

pub(crate) fn metrics(conn: &Connection, q: &MetricsQuery) -> Result<Vec<MetricRow>> {
    let mut sql = String::from(
        "SELECT ts_ms, resolution_ms, project, module, cpu_percent, mem_bytes, ipc_score FROM metrics
         WHERE resolution_ms = ?1 AND ts_ms >= ?2",
    );
    let mut params: Vec<Value> = vec![(q.resolution_ms as i64).into(), (q.since_ms as i64).into()];
    if let Some(p) = &q.project {
        params.push(p.clone().into());
        sql.push_str(&format!(" AND project = ?{}", params.len()));
    }
    if let Some(m) = &q.module {
        params.push(m.clone().into());
        sql.push_str(&format!(" AND module = ?{}", params.len()));
    }
    sql.push_str(" ORDER BY ts_ms, project, module");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
        Ok(MetricRow {
            ts_ms: r.get::<_, i64>(0)? as u64,
            resolution_ms: r.get::<_, i64>(1)? as u64,
            project: r.get(2)?,
            module: r.get(3)?,
            cpu_percent: r.get(4)?,
            mem_bytes: r.get::<_, i64>(5)?.max(0) as u64,
            ipc_score: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
