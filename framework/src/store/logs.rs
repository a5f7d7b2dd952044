//! Reading log lines out of their blocks: [`query_logs`] and the log part of the memory search.
//!
//! Every read walks blocks — all of them in an id range, or only those the full-text index names for the
//! search words — newest first or oldest first, and takes the lines that pass its filters. Blocks above the
//! index watermark (the tail) are walked directly; a case-insensitive multi-pattern pre-filter over the
//! block's text ([`TextSearch`]) skips the lines that cannot hold every word before the matcher decides.

use std::ops::ControlFlow;

use aho_corasick::AhoCorasick;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};

use super::block::{self, Block, LineRef, flag};
use super::line::Level;
use super::matcher::{self, Found, Matcher, highlight};
use super::read::{HIGHLIGHT_END, HIGHLIGHT_START, Names, is_fts_syntax};
use super::{Hit, Kind, LogQuery, LogRecord, Result};
use crate::lifecycle::Stream;

/// Characters of a log hit's snippet.
pub(crate) const SNIPPET_CHARS: usize = 240;

// ---------------------------------------------------------------------------------------------------------
// Blocks

const BLOCK_COLS: &str = "b.id, b.module_id, b.run, b.stream, b.lines, b.text, b.meta, b.display";

fn block_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Block> {
    let lines: i64 = r.get(4)?;
    // A block whose meta cannot be read shows no lines rather than failing every read that touches it.
    let meta = match r.get_ref(6)? {
        ValueRef::Blob(b) => block::decode_meta(b, lines.max(0) as usize),
        _ => None,
    }
    .unwrap_or_default();
    Ok(Block {
        id: r.get(0)?,
        module_id: r.get(1)?,
        run: r.get(2)?,
        stream: r.get(3)?,
        text: r.get(5)?,
        meta,
        display: r.get(7)?,
    })
}

/// Which lines a read wants, besides their words: an id range and the filters.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// Line ids, inclusive.
    pub lo: i64,
    pub hi: i64,
    /// Only these modules (None: every module).
    pub modules: Option<Vec<i64>>,
    pub run: Option<i64>,
    pub level: Option<Level>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
}

impl Scope {
    /// Block-level conditions on `b` (lines are checked one by one again by [`Scope::line_ok`]).
    fn block_sql(&self) -> String {
        let mut f = String::new();
        if let Some(ids) = &self.modules {
            if let [one] = ids.as_slice() {
                // One module: walk the (module_id, id) index in id order.
                f.push_str(&format!(" AND b.module_id = {one}"));
            } else {
                // Several: walk ids in order and test membership (`+` keeps SQLite from sorting the index).
                let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
                f.push_str(&format!(" AND +b.module_id IN ({list})"));
            }
        }
        if let Some(r) = self.run {
            f.push_str(&format!(" AND b.run = {r}"));
        }
        if let Some(l) = self.level {
            f.push_str(&format!(" AND (b.levels & {}) != 0", block::levels_at_least(l)));
        }
        f
    }

    fn line_ok(&self, l: &LineRef<'_>) -> bool {
        l.id >= self.lo
            && l.id <= self.hi
            && self.level.is_none_or(|min| l.meta.level >= block::level_code(Some(min)))
            && self.since_ms.is_none_or(|s| l.meta.ts_ms >= s)
            && self.until_ms.is_none_or(|u| l.meta.ts_ms <= u)
    }

    fn with_ids(&self, lo: i64, hi: i64) -> Scope {
        Scope { lo, hi, ..self.clone() }
    }
}

/// One part of the log index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part {
    part: i64,
    first_id: i64,
    last_id: i64,
    /// Lines.
    rows: i64,
}

/// Parts of the log index that hold lines in `[lo, hi]`, oldest first.
fn parts_in(conn: &Connection, lo: i64, hi: i64) -> Result<Vec<Part>> {
    let mut stmt = conn.prepare_cached(
        "SELECT part, first_id, last_id, rows FROM block_index_parts
         WHERE last_id >= ?1 AND first_id <= ?2 AND rows > 0 ORDER BY part",
    )?;
    let parts = stmt
        .query_map([lo, hi], |r| {
            Ok(Part { part: r.get(0)?, first_id: r.get(1)?, last_id: r.get(2)?, rows: r.get(3)? })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(parts)
}

/// Highest line id whose block is in the full-text index (blocks above it are the tail).
pub(crate) fn indexed_upto(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'blocks_indexed_upto'")?
        .query_row([], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0))
}

/// Visits the blocks with lines in `[scope.lo, scope.hi]` that pass the block-level filters — all of them,
/// or with `index`, those its full-text query matches — newest first unless `ascending`, until `visit`
/// breaks. An index query that FTS5 refuses (the quoting should make that impossible) visits nothing.
fn walk(
    conn: &Connection,
    scope: &Scope,
    ascending: bool,
    index: Option<&str>,
    mut visit: impl FnMut(&Block) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    if scope.lo > scope.hi {
        return Ok(ControlFlow::Continue(()));
    }
    // The block holding `lo` may start before it.
    let start: i64 = conn
        .prepare_cached("SELECT max(id) FROM log_blocks WHERE id <= ?1")?
        .query_row([scope.lo], |r| r.get::<_, Option<i64>>(0))?
        .unwrap_or(scope.lo);
    let order = if ascending { "ASC" } else { "DESC" };
    let filters = scope.block_sql();
    let mut run = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<ControlFlow<()>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = match stmt.query(params) {
            Ok(r) => r,
            Err(e) if is_fts_syntax(&e) => return Ok(ControlFlow::Continue(())),
            Err(e) => return Err(e.into()),
        };
        loop {
            let row = match rows.next() {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(ControlFlow::Continue(())),
                Err(e) if is_fts_syntax(&e) => return Ok(ControlFlow::Continue(())),
                Err(e) => return Err(e.into()),
            };
            if visit(&block_row(row)?).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
    };
    match index {
        None => {
            let sql = format!(
                "SELECT {BLOCK_COLS} FROM log_blocks b WHERE b.id BETWEEN ?1 AND ?2{filters} ORDER BY b.id {order}"
            );
            run(&sql, &[&start, &scope.hi])
        }
        Some(fts) => {
            let mut parts = parts_in(conn, scope.lo, scope.hi)?;
            if !ascending {
                parts.reverse();
            }
            for p in parts {
                let t = format!("blocks_fts_{}", p.part);
                let sql = format!(
                    "SELECT {BLOCK_COLS} FROM {t} CROSS JOIN log_blocks b ON b.id = {t}.rowid
                     WHERE {t} MATCH ?1 AND {t}.rowid BETWEEN ?2 AND ?3{filters} ORDER BY {t}.rowid {order}"
                );
                if run(&sql, &[&fts, &start, &scope.hi])?.is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Words

/// A search text applied to blocks: the FTS5 query that finds candidate blocks in the index, the matcher
/// that decides each line, and a pre-filter that skips lines cheaply.
pub(crate) struct TextSearch {
    matcher: Matcher,
    /// Every token of every term, quoted, AND-ed (the index has no positions: phrases are the matcher's).
    fts: String,
    /// Each term's longest ASCII token, found case-insensitively: in a pure-ASCII block a line without all of
    /// them cannot match (in other blocks Unicode case folding and diacritics make bytes an unsafe guide).
    pre: Option<AhoCorasick>,
    /// Bit i set for the i-th pre-filter pattern: what a line must show.
    required: u64,
}

impl TextSearch {
    /// None when the text has nothing searchable.
    pub(crate) fn new(text: &str) -> Option<TextSearch> {
        let matcher = Matcher::new(text)?;
        let mut fts = Vec::new();
        for term in matcher.terms() {
            for (i, tok) in term.tokens.iter().enumerate() {
                let star = if term.prefix && i + 1 == term.tokens.len() { "*" } else { "" };
                fts.push(format!("\"{}\"{star}", tok.replace('"', "\"\"")));
            }
        }
        let needles: Vec<&str> = matcher
            .terms()
            .iter()
            .filter_map(|t| t.tokens.iter().filter(|s| s.is_ascii()).max_by_key(|s| s.len()))
            .map(String::as_str)
            .collect();
        let pre = if needles.is_empty() || needles.len() > 64 {
            None
        } else {
            AhoCorasick::builder().ascii_case_insensitive(true).build(&needles).ok()
        };
        let required = if needles.len() >= 64 { u64::MAX } else { (1u64 << needles.len()) - 1 };
        Some(TextSearch { matcher, fts: fts.join(" "), pre, required })
    }

    pub(crate) fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// Calls `each` with every line of `block` that has all the words (newest first when `descending`),
    /// until it breaks.
    fn matches<'b>(
        &self,
        block: &'b Block,
        descending: bool,
        mut each: impl FnMut(LineRef<'b>, Found) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let candidates: Option<Vec<bool>> = match &self.pre {
            Some(pre) if block.text.is_ascii() => {
                // Most blocks lack a word altogether: one pass over the block says so.
                let mut union = 0u64;
                for m in pre.find_overlapping_iter(&block.text) {
                    union |= 1 << m.pattern().as_usize();
                    if union == self.required {
                        break;
                    }
                }
                if union != self.required {
                    return ControlFlow::Continue(());
                }
                let starts = block::line_starts(&block.text);
                let mut seen = vec![0u64; starts.len()];
                for m in pre.find_overlapping_iter(&block.text) {
                    let line = starts.partition_point(|&s| s <= m.start()).saturating_sub(1);
                    seen[line] |= 1 << m.pattern().as_usize();
                }
                if seen.iter().all(|&s| s != self.required) {
                    return ControlFlow::Continue(());
                }
                Some(seen.into_iter().map(|s| s == self.required).collect())
            }
            _ => None,
        };
        let lines = block.lines();
        let mut visit = |i: usize, line: LineRef<'b>| -> ControlFlow<()> {
            if candidates.as_ref().is_some_and(|c| !c.get(i).copied().unwrap_or(false)) {
                return ControlFlow::Continue(());
            }
            match self.matcher.find(line.text) {
                Some(found) => each(line, found),
                None => ControlFlow::Continue(()),
            }
        };
        if descending {
            let n = block.meta.len();
            for (k, line) in lines.rev().enumerate() {
                visit(n - 1 - k, line)?;
            }
        } else {
            for (i, line) in lines.enumerate() {
                visit(i, line)?;
            }
        }
        ControlFlow::Continue(())
    }
}

/// Visits the lines in `scope` that have all the words of `search`, newest first unless `ascending`: the
/// unindexed tail by scanning, the indexed part through the full-text index, in id order either way.
fn matching_lines(
    conn: &Connection,
    scope: &Scope,
    search: &TextSearch,
    ascending: bool,
    mut each: impl FnMut(&Block, LineRef<'_>, Found) -> ControlFlow<()>,
) -> Result<()> {
    let indexed = indexed_upto(conn)?;
    let split = indexed.clamp(scope.lo.saturating_sub(1), scope.hi);
    let (index_scope, tail_scope) = (scope.with_ids(scope.lo, split), scope.with_ids(split + 1, scope.hi));
    let mut visit = |b: &Block, scope: &Scope| {
        search.matches(b, !ascending, |line, found| {
            if scope.line_ok(&line) { each(b, line, found) } else { ControlFlow::Continue(()) }
        })
    };
    if ascending {
        if walk(conn, &index_scope, true, Some(&search.fts), |b| visit(b, &index_scope))?.is_continue() {
            let _ = walk(conn, &tail_scope, true, None, |b| visit(b, &tail_scope))?;
        }
    } else if walk(conn, &tail_scope, false, None, |b| visit(b, &tail_scope))?.is_continue() {
        let _ = walk(conn, &index_scope, false, Some(&search.fts), |b| visit(b, &index_scope))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Time → id

/// Id of the first line of the first block whose last line is at or after `ts` (valid because times are
/// non-decreasing in id order), by binary search over blocks. None when every line is older.
fn first_block_at_or_after(conn: &Connection, ts: u64) -> Result<Option<(i64, i64)>> {
    let bounds: (Option<i64>, Option<i64>) =
        conn.query_row("SELECT min(id), max(id) FROM log_blocks", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (Some(mut lo), Some(max)) = bounds else { return Ok(None) };
    let mut hi = max + 1;
    let mut best = None;
    let mut probe =
        conn.prepare_cached("SELECT id, lines, ts_last FROM log_blocks WHERE id >= ?1 ORDER BY id LIMIT 1")?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let Some((id, lines, t)) = probe
            .query_row([mid], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
            .optional()?
        else {
            hi = mid;
            continue;
        };
        if t as u64 >= ts {
            best = Some((id, id + lines - 1));
            hi = mid;
        } else {
            lo = id + 1;
        }
    }
    Ok(best)
}

/// Inclusive line-id range that holds every line within [since, until] (whole blocks at the edges: lines are
/// checked by time one by one); None when empty.
pub(crate) fn log_id_range(conn: &Connection, since: Option<u64>, until: Option<u64>) -> Result<Option<(i64, i64)>> {
    let lo = match since {
        Some(s) => match first_block_at_or_after(conn, s)? {
            Some((first, _)) => first,
            None => return Ok(None),
        },
        None => i64::MIN,
    };
    let hi = match until {
        // The block holding the first line after `until` may still hold earlier lines.
        Some(u) => match first_block_at_or_after(conn, u.saturating_add(1))? {
            Some((_, last)) => last,
            None => i64::MAX,
        },
        None => i64::MAX,
    };
    Ok(if lo <= hi { Some((lo, hi)) } else { None })
}

// ---------------------------------------------------------------------------------------------------------
// Queries

fn stream_from(code: i64) -> Stream {
    if code == 2 { Stream::Stderr } else { Stream::Stdout }
}

fn to_record(b: &Block, l: &LineRef<'_>, names: &Names) -> LogRecord {
    let fields = if l.meta.flags & flag::JSON != 0 {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(l.text).ok()
    } else {
        None
    };
    LogRecord {
        id: l.id,
        ts_ms: l.meta.ts_ms,
        project: names.project_of_module(b.module_id),
        module: names.module(Some(b.module_id)).unwrap_or_default(),
        run: b.run.max(0) as u64,
        stream: stream_from(b.stream),
        level: Level::from_i64(i64::from(l.meta.level)),
        message: l.display.unwrap_or(l.text).to_string(),
        text: l.text.to_string(),
        fields,
        escaped: l.meta.flags & flag::ESCAPED != 0,
        truncated: l.meta.flags & flag::TRUNCATED != 0,
        masked: l.meta.flags & flag::MASKED != 0,
    }
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
    let scope = Scope {
        lo,
        hi,
        modules: module_ids.filter(|ids| !names.is_all_modules(ids)),
        run: q.run.map(|r| r as i64),
        level: q.level,
        since_ms: q.since_ms,
        until_ms: q.until_ms,
    };
    let grep = q.grep.as_deref().filter(|g| !g.is_empty());
    if grep.is_some_and(|g| g.contains('\0') || g.contains('\n')) {
        return Ok(Vec::new()); // stored lines never contain these
    }
    let grep_finder = grep.map(memchr::memmem::Finder::new);
    let grep_ok = |text: &str| grep_finder.as_ref().is_none_or(|f| f.find(text.as_bytes()).is_some());
    let mut out: Vec<LogRecord> = Vec::new();
    let mut take = |b: &Block, line: &LineRef<'_>| -> ControlFlow<()> {
        if scope.line_ok(line) && grep_ok(line.text) {
            out.push(to_record(b, line, &names));
            if out.len() >= limit {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    };
    match q.text.as_deref().filter(|t| !t.trim().is_empty()) {
        None => {
            let _ = walk(conn, &scope, forward, None, |b| {
                if !grep_ok(&b.text) {
                    return ControlFlow::Continue(());
                }
                if forward {
                    b.lines().try_for_each(|l| take(b, &l))
                } else {
                    b.lines().rev().try_for_each(|l| take(b, &l))
                }
            })?;
        }
        Some(t) => {
            let Some(search) = TextSearch::new(t) else { return Ok(Vec::new()) };
            matching_lines(conn, &scope, &search, forward, |b, line, _| take(b, &line))?;
        }
    }
    if !forward {
        out.reverse();
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------
// Memory search

/// A log line found by the memory search, with its relevance before normalisation (BM25, ≥ 0).
pub(crate) struct LogHit {
    pub hit: Hit,
    pub relevance: f64,
}

/// The log part of the memory search: the newest `limit` lines in `scope` that have every word of `text`
/// (the newest lines at all for an empty text), scored by BM25 and with highlighted snippets.
pub(crate) fn search_logs(
    conn: &Connection,
    names: &Names,
    scope: &Scope,
    text: &str,
    limit: usize,
) -> Result<Vec<LogHit>> {
    let mut out = Vec::new();
    let hit = |b: &Block, l: &LineRef<'_>, snippet: String| Hit {
        kind: Kind::Log,
        id: l.id,
        ts_ms: l.meta.ts_ms,
        project: names.project_of_module(b.module_id),
        module: names.module(Some(b.module_id)),
        run: Some(b.run.max(0) as u64),
        level: Level::from_i64(i64::from(l.meta.level)),
        snippet,
        score: 0.0,
    };
    if text.trim().is_empty() {
        let _ = walk(conn, scope, false, None, |b| {
            b.lines().rev().try_for_each(|l| {
                if scope.line_ok(&l) {
                    out.push(LogHit { hit: hit(b, &l, plain_snippet(l.text)), relevance: 0.0 });
                    if out.len() >= limit {
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            })
        })?;
        return Ok(out);
    }
    let Some(search) = TextSearch::new(text) else { return Ok(out) };
    let indexed = indexed_upto(conn)?;
    let stats = LogStats::load(conn, &search, &parts_in(conn, i64::MIN, indexed)?)?;
    matching_lines(conn, scope, &search, false, |b, l, found| {
        let snippet = highlight(l.text, &found.ranges, HIGHLIGHT_START, HIGHLIGHT_END, SNIPPET_CHARS);
        out.push(LogHit { hit: hit(b, &l, snippet), relevance: stats.relevance(&found) });
        if out.len() >= limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })?;
    Ok(out)
}

/// Prefix of a text as the snippet of an entry found without search words.
pub(crate) fn plain_snippet(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// What BM25 needs to score log lines: the number of indexed lines, their average length in tokens, and
/// each term's inverse document frequency.
///
/// The index counts blocks, not lines: its "averages" record gives blocks and tokens, the parts table gives
/// lines (so the average line length is tokens ÷ lines), and a term's rarity is measured in blocks — the
/// share of blocks that hold it, estimated from the newest [`DF_PROBE`] matching blocks (their density over
/// the ids they span, extrapolated; exact below that many), because counting every match of a common word
/// walks its whole posting list. Rare words are rare in blocks too, and a word in every block has an idf of
/// about 0 either way, which is what ranking needs.
struct LogStats {
    idf: Vec<f64>,
    avgdl: f64,
}

/// Blocks read per term to estimate how many hold it.
const DF_PROBE: i64 = 1_000;

impl LogStats {
    fn load(conn: &Connection, search: &TextSearch, parts: &[Part]) -> Result<LogStats> {
        // Each part's "averages" record (id 1 of its data table): varint document count, then token count.
        let (mut blocks, mut tokens, mut lines) = (0u64, 0u64, 0u64);
        for p in parts {
            let blob: Option<Vec<u8>> = conn
                .query_row(&format!("SELECT block FROM blocks_fts_{}_data WHERE id = 1", p.part), [], |r| r.get(0))
                .optional()?;
            if let Some(b) = blob {
                let (d, used) = sqlite_varint(&b);
                let (t, _) = sqlite_varint(&b[used.min(b.len())..]);
                blocks += d;
                tokens += t;
                lines += p.rows.max(0) as u64;
            }
        }
        let n = blocks.max(1) as f64;
        let avgdl = if lines > 0 { (tokens as f64 / lines as f64).max(1.0) } else { 16.0 };
        let mut idf = Vec::new();
        for term in search.matcher().terms() {
            let q = term
                .tokens
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let star = if term.prefix && i + 1 == term.tokens.len() { "*" } else { "" };
                    format!("\"{}\"{star}", t.replace('"', "\"\""))
                })
                .collect::<Vec<_>>()
                .join(" ");
            let mut df = 0.0;
            if blocks > 0 {
                // Newest parts first, until DF_PROBE matching blocks are seen; extrapolate over the lines
                // covered (matching blocks per line × lines = matching blocks).
                let (mut count, mut covered, mut exact) = (0i64, 0i64, true);
                for p in parts.iter().rev() {
                    let want = DF_PROBE - count;
                    let (c, min): (i64, Option<i64>) = conn
                        .prepare_cached(&format!(
                            "SELECT count(*), min(rowid) FROM (SELECT rowid FROM blocks_fts_{0} WHERE blocks_fts_{0} MATCH ?1
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
                df = if exact { count as f64 } else { (count as f64 / covered.max(1) as f64 * lines as f64).min(n) };
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

/// Lines stored, and lines not yet in the index.
pub(crate) fn line_counts(conn: &Connection) -> Result<(u64, u64)> {
    let indexed = indexed_upto(conn)?;
    let (all, tail): (i64, i64) = conn.query_row(
        "SELECT coalesce(sum(lines), 0), coalesce(sum(CASE WHEN id > ?1 THEN lines ELSE 0 END), 0) FROM log_blocks",
        [indexed],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((all.max(0) as u64, tail.max(0) as u64))
}
