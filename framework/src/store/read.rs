//! Reads: the memory search and the event, note and run queries, on pooled read connections (log lines
//! are read out of their blocks by [`super::logs`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::line::Level;
use super::logs::{self, Scope};
use super::matcher;
use super::schema;
use super::{
    EventQuery, EventRecord, Hit, Kind, MetricRow, MetricsQuery, NoteRecord, Result, RunRecord, SEARCH_CANDIDATES,
    SearchQuery, StoreError, StoreStats,
};

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
pub(crate) struct Names {
    modules: HashMap<i64, (i64, String)>,
    projects: HashMap<i64, String>,
}

impl Names {
    pub(crate) fn load(conn: &Connection) -> Result<Names> {
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

    pub(crate) fn project(&self, id: i64) -> String {
        self.projects.get(&id).cloned().unwrap_or_default()
    }

    pub(crate) fn module(&self, id: Option<i64>) -> Option<String> {
        id.and_then(|id| self.modules.get(&id)).map(|(_, n)| n.clone())
    }

    pub(crate) fn project_of_module(&self, id: i64) -> String {
        self.modules.get(&id).map(|(p, _)| self.project(*p)).unwrap_or_default()
    }

    fn project_id(&self, name: &str) -> Option<i64> {
        self.projects.iter().find(|(_, n)| n.as_str() == name).map(|(id, _)| *id)
    }

    /// Module ids passing the filters: None = no filter; Some(empty) = nothing can match.
    pub(crate) fn module_ids(&self, project: Option<&str>, module: Option<&str>) -> Option<Vec<i64>> {
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
    pub(crate) fn is_all_modules(&self, ids: &[i64]) -> bool {
        ids.len() == self.modules.len()
    }
}

fn in_list(col: &str, ids: &[i64]) -> String {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    format!("{col} IN ({list})")
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

pub(crate) fn is_fts_syntax(e: &rusqlite::Error) -> bool {
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
    if fts.is_none() && !q.text.trim().is_empty() {
        // Only punctuation was typed: nothing can match (rather than "everything").
        return Ok(Vec::new());
    }
    let mut cands = Vec::new();

    // Logs: the indexed part through FTS5, the unindexed tail by scanning (see `logs`).
    if wants(Kind::Log)
        && let Some((lo, hi)) = logs::log_id_range(conn, q.since_ms, q.until_ms)?
    {
        let scope = Scope {
            lo,
            hi,
            modules: module_filter.map(<[i64]>::to_vec),
            run: None,
            level: q.level,
            since_ms: q.since_ms,
            until_ms: q.until_ms,
        };
        for h in logs::search_logs(conn, &names, &scope, &q.text, SEARCH_CANDIDATES)? {
            let (id, ts_ms) = (h.hit.id, h.hit.ts_ms);
            cands.push(Candidate { kind: Kind::Log, id, ts_ms, rel: h.relevance, score: 0.0, hit: Some(h.hit) });
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

fn hit_details(conn: &Connection, names: &Names, fts: Option<&str>, c: &Candidate) -> Result<Option<Hit>> {
    let snippet_sql =
        |table: &str, col: i64, tokens: i64| format!("snippet({table}, {col}, char(1), char(2), '…', {tokens})");
    let hit = match c.kind {
        // Log lines carry their hit from `logs::search_logs`.
        Kind::Log => None,
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
                        snippet: if fts.is_some() { snippet } else { logs::plain_snippet(&snippet) },
                        score: c.score,
                    })
                })
                .optional()?
        }
    };
    Ok(hit)
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
    let (log_rows, unindexed) = logs::line_counts(conn)?;
    Ok(StoreStats {
        log_rows,
        unindexed,
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
