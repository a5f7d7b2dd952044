//! Log blocks: how stored log lines are laid out. Pure code (no SQLite), unit-tested here.
//!
//! A **block** holds consecutive lines of one (module, run, stream), at most [`MAX_LINES`] lines or
//! [`MAX_TEXT_BYTES`] of text, and is one row of `log_blocks`. Lines have ids of their own (the block's id is
//! its first line's id; the others follow without gaps), so everything above the store still sees lines.
//! Why blocks and not a row per line: SQLite's per-row cost (statement step, B-tree insert, index entry, FTS
//! document) capped ingestion at a few hundred thousand lines per second, while a block is one row for up to
//! thousands of lines; the full-text index gets one document per block (repeated words in a block are
//! indexed once), and a scan reads one blob instead of thousands of rows.
//!
//! A block row carries, besides its keys:
//! - `text`: every line's search text (masked, ANSI stripped), joined by `\n` (a search text never contains
//!   a newline: it is what split the lines, and [`super::line`] turns other control characters into
//!   spaces). This is what the full-text index and the scans read.
//! - `meta`: per line, its capture time, level and flags ([`encode_meta`]).
//! - `display`: the display form (ANSI kept) of the lines that have one different from their text, joined
//!   by `\n`, in line order; NULL when no line has one.
//! - `levels`: a bit per level present (bit 0 = unknown level), so level filters skip whole blocks.

use super::line::Level;

/// Most lines in one block. Blocks are the unit of reading: a search that finds a word in a block reads the
/// whole block, so blocks stay small (64 lines of ~100 bytes are two pages) — large enough that the per-row
/// cost of SQLite is spread over many lines, small enough that a word found in scattered lines does not
/// pull in megabytes around each of them.
pub(crate) const MAX_LINES: usize = 64;

/// Most bytes of search text in one block (a line longer than this still makes a block of its own).
pub(crate) const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Most capture time one block spans, in ms: retention deletes whole blocks (a block goes when its last
/// line is old), so this bounds how far past its age limit a line can be kept.
pub(crate) const MAX_SPAN_MS: u64 = 1_000;

/// Per-line flags, stored in `meta` (and OR-ed into the block's `flags` column).
pub(crate) mod flag {
    /// The text is the escaped form of invalid UTF-8 (see `unescape_bytes`).
    pub const ESCAPED: u8 = 1;
    /// The line was cut.
    pub const TRUNCATED: u8 = 2;
    /// Something was masked.
    pub const MASKED: u8 = 4;
    /// The text is a JSON object (its fields are parsed on read).
    pub const JSON: u8 = 8;
    /// The line has a display form of its own in the block's `display` column.
    pub const DISPLAY: u8 = 16;
}

/// The stored level code: 0 unknown, 1 trace … 5 error.
pub(crate) fn level_code(level: Option<Level>) -> u8 {
    level.map_or(0, |l| l.as_i64() as u8)
}

/// Bit of a level code in a block's `levels`.
pub(crate) fn level_bit(code: u8) -> i64 {
    1 << code.min(7)
}

/// The `levels` bits of every level at or above `min` (unknown excluded): a block whose `levels` has none of
/// them holds no line that passes a `level >= min` filter.
pub(crate) fn levels_at_least(min: Level) -> i64 {
    (min.as_i64() as u8..=5).map(level_bit).fold(0, |a, b| a | b)
}

/// What is known of one line besides its texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineMeta {
    /// Capture time, ms since the epoch.
    pub ts_ms: u64,
    /// Level code ([`level_code`]).
    pub level: u8,
    /// [`flag`] bits.
    pub flags: u8,
}

/// Lines on their way into a block: built by the sink (one chunk of processed lines, on the capture's thread)
/// and merged by the writer into the block of their stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lines {
    /// Search texts, joined by `\n`.
    pub text: String,
    /// Display forms of the lines flagged [`flag::DISPLAY`], joined by `\n`.
    pub display: String,
    /// Per line.
    pub meta: Vec<LineMeta>,
    /// Lines flagged [`flag::DISPLAY`].
    displays: usize,
}

impl Lines {
    /// Number of lines.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// True when there are no lines.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Appends one line. `display` is kept only when it differs from `text`.
    pub fn push(&mut self, text: &str, display: Option<&str>, mut meta: LineMeta) {
        debug_assert!(!text.contains('\n'), "a search text never holds a newline");
        if !self.meta.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(text);
        match display.filter(|d| *d != text) {
            Some(d) => {
                if self.displays > 0 {
                    self.display.push('\n');
                }
                self.display.push_str(d);
                self.displays += 1;
                meta.flags |= flag::DISPLAY;
            }
            None => meta.flags &= !flag::DISPLAY,
        }
        self.meta.push(meta);
    }

    /// Appends all of `other`'s lines.
    pub fn append(&mut self, other: &Lines) {
        if other.is_empty() {
            return;
        }
        if !self.meta.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(&other.text);
        if other.displays > 0 {
            if self.displays > 0 {
                self.display.push('\n');
            }
            self.display.push_str(&other.display);
            self.displays += other.displays;
        }
        self.meta.extend_from_slice(&other.meta);
    }

    /// Splits off the lines from `at` on (like `Vec::split_off`): `self` keeps the first `at` lines.
    pub fn split_off(&mut self, at: usize) -> Lines {
        if at >= self.len() {
            return Lines::default();
        }
        let meta = self.meta.split_off(at);
        let text = split_joined(&mut self.text, at);
        let moved = meta.iter().filter(|m| m.flags & flag::DISPLAY != 0).count();
        let kept = self.displays - moved;
        let display = if moved == 0 { String::new() } else { split_joined(&mut self.display, kept) };
        self.displays = kept;
        Lines { text, display, meta, displays: moved }
    }

    /// How many of the first lines fit in `max_lines` lines and `max_bytes` of text (newlines between them
    /// counted).
    pub fn fitting(&self, max_lines: usize, max_bytes: usize) -> usize {
        let ends = memchr::memchr_iter(b'\n', self.text.as_bytes()).chain(std::iter::once(self.text.len()));
        ends.take(max_lines.min(self.len())).take_while(|&end| end <= max_bytes).count()
    }

    /// Capture time from this block's first line to the last line of `next`.
    pub fn span_ms(&self, next: &Lines) -> u64 {
        match (self.meta.first(), next.meta.last()) {
            (Some(a), Some(b)) => b.ts_ms.abs_diff(a.ts_ms),
            _ => 0,
        }
    }

    /// The `levels` column.
    pub fn levels(&self) -> i64 {
        self.meta.iter().fold(0, |a, m| a | level_bit(m.level))
    }

    /// The `flags` column.
    pub fn flags(&self) -> i64 {
        i64::from(self.meta.iter().fold(0u8, |a, m| a | m.flags))
    }

    /// The `display` column (None when no line has a display form of its own).
    pub fn display_column(&self) -> Option<&str> {
        (self.displays > 0).then_some(self.display.as_str())
    }
}

/// Splits a `\n`-joined text after its first `at` parts: `joined` keeps them (without the separating
/// newline), the rest is returned.
fn split_joined(joined: &mut String, at: usize) -> String {
    if at == 0 {
        return std::mem::take(joined);
    }
    match memchr::memchr_iter(b'\n', joined.as_bytes()).nth(at - 1) {
        Some(i) => {
            let rest = joined.split_off(i + 1);
            joined.pop();
            rest
        }
        None => String::new(),
    }
}

/// `meta`: the first line's time as a varint, then per line the difference to the previous line's time
/// (zig-zag varint: a clock step back stays exact), the level code and the flags.
pub(crate) fn encode_meta(meta: &[LineMeta]) -> Vec<u8> {
    let mut out = Vec::with_capacity(meta.len() * 3 + 10);
    let first = meta.first().map_or(0, |m| m.ts_ms);
    put_varint(&mut out, first);
    let mut prev = first;
    for m in meta {
        let delta = m.ts_ms as i64 - prev as i64;
        put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
        out.push(m.level);
        out.push(m.flags);
        prev = m.ts_ms;
    }
    out
}

/// Inverse of [`encode_meta`]; None when the bytes are not `lines` well-formed entries.
pub(crate) fn decode_meta(bytes: &[u8], lines: usize) -> Option<Vec<LineMeta>> {
    let mut pos = 0;
    let mut ts = get_varint(bytes, &mut pos)?;
    let mut out = Vec::with_capacity(lines);
    for _ in 0..lines {
        let z = get_varint(bytes, &mut pos)?;
        let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
        ts = (ts as i64).wrapping_add(delta) as u64;
        let level = *bytes.get(pos)?;
        let flags = *bytes.get(pos + 1)?;
        pos += 2;
        out.push(LineMeta { ts_ms: ts, level, flags });
    }
    Some(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One stored line, borrowed from its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineRef<'a> {
    pub id: i64,
    pub meta: LineMeta,
    pub text: &'a str,
    pub display: Option<&'a str>,
}

/// A block read back: its columns, and its lines on demand.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub id: i64,
    pub module_id: i64,
    pub run: i64,
    pub stream: i64,
    pub text: String,
    pub meta: Vec<LineMeta>,
    pub display: Option<String>,
}

impl Block {
    /// The block's lines, oldest first. A damaged block (fewer texts than its meta says) yields what it has.
    pub fn lines(&self) -> impl DoubleEndedIterator<Item = LineRef<'_>> + '_ {
        let texts: Vec<&str> = if self.meta.is_empty() { Vec::new() } else { self.text.split('\n').collect() };
        let mut displays = self.display.as_deref().map(|d| d.split('\n'));
        let mut out = Vec::with_capacity(self.meta.len());
        for (i, (m, text)) in self.meta.iter().zip(texts).enumerate() {
            let display = if m.flags & flag::DISPLAY != 0 { displays.as_mut().and_then(|d| d.next()) } else { None };
            out.push(LineRef { id: self.id + i as i64, meta: *m, text, display });
        }
        out.into_iter()
    }
}

/// Byte offsets of the start of each line of a block's `text` (as many as there are lines).
pub(crate) fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ts_ms: u64, level: u8, flags: u8) -> LineMeta {
        LineMeta { ts_ms, level, flags }
    }

    #[test]
    fn meta_round_trips_including_a_clock_step_back() {
        let meta = vec![m(1_700_000_000_000, 3, 0), m(1_700_000_000_005, 5, 4), m(1_699_999_999_000, 0, 9)];
        let bytes = encode_meta(&meta);
        assert_eq!(decode_meta(&bytes, 3), Some(meta));
        assert_eq!(decode_meta(&bytes, 4), None, "asking for more lines than stored");
        assert_eq!(decode_meta(&[0xFF; 3], 1), None);
        assert_eq!(decode_meta(&encode_meta(&[]), 0), Some(vec![]));
    }

    #[test]
    fn lines_keep_texts_displays_and_flags_in_order() {
        let mut a = Lines::default();
        a.push("plain", None, m(1, 3, 0));
        a.push("red", Some("\x1b[31mred\x1b[0m"), m(2, 5, 0));
        a.push("", Some(""), m(2, 0, flag::DISPLAY)); // same text: no display kept
        let mut b = Lines::default();
        b.push("blue", Some("\x1b[34mblue\x1b[0m"), m(3, 4, 4));
        a.append(&b);
        a.append(&Lines::default());
        assert_eq!(a.text, "plain\nred\n\nblue");
        assert_eq!(a.display_column(), Some("\x1b[31mred\x1b[0m\n\x1b[34mblue\x1b[0m"));
        assert_eq!(a.levels(), level_bit(3) | level_bit(5) | level_bit(0) | level_bit(4));
        assert_eq!(a.flags(), i64::from(flag::DISPLAY | 4));

        let block = Block {
            id: 10,
            module_id: 1,
            run: 1,
            stream: 1,
            text: a.text.clone(),
            meta: decode_meta(&encode_meta(&a.meta), a.len()).unwrap(),
            display: a.display_column().map(str::to_string),
        };
        let lines: Vec<(i64, &str, Option<&str>)> = block.lines().map(|l| (l.id, l.text, l.display)).collect();
        assert_eq!(
            lines,
            vec![
                (10, "plain", None),
                (11, "red", Some("\x1b[31mred\x1b[0m")),
                (12, "", None),
                (13, "blue", Some("\x1b[34mblue\x1b[0m"))
            ]
        );
        assert_eq!(line_starts(&block.text), vec![0, 6, 10, 11]);
    }

    #[test]
    fn split_off_and_fitting_cut_between_lines() {
        let mut a = Lines::default();
        for (i, t) in ["zero", "one", "two", "three", "four"].iter().enumerate() {
            let display = (i % 2 == 1).then(|| format!("\x1b[1m{t}\x1b[0m"));
            a.push(t, display.as_deref(), m(i as u64, 3, 0));
        }
        let whole = a.clone();
        assert_eq!(a.fitting(10, 1000), 5);
        assert_eq!(a.fitting(2, 1000), 2);
        assert_eq!(a.fitting(10, 8), 2, "zero\none = 8 bytes");
        assert_eq!(a.fitting(10, 3), 0);
        let tail = a.split_off(2);
        assert_eq!((a.text.as_str(), a.display_column()), ("zero\none", Some("\x1b[1mone\x1b[0m")));
        assert_eq!((tail.text.as_str(), tail.display_column()), ("two\nthree\nfour", Some("\x1b[1mthree\x1b[0m")));
        assert_eq!((a.len(), tail.len()), (2, 3));
        let mut joined = a.clone();
        joined.append(&tail);
        assert_eq!(joined, whole, "splitting and appending again is the identity");
        let mut b = whole.clone();
        assert_eq!(b.split_off(0), whole);
        assert!(b.is_empty() && b.display_column().is_none());
        let mut c = whole.clone();
        assert!(c.split_off(5).is_empty());
        assert_eq!(c, whole);
    }

    #[test]
    fn level_masks() {
        let warn_up = levels_at_least(Level::Warn);
        assert_eq!(warn_up, level_bit(4) | level_bit(5));
        assert_eq!(warn_up & level_bit(level_code(None)), 0);
        assert_eq!(warn_up & level_bit(level_code(Some(Level::Info))), 0);
        assert_ne!(warn_up & level_bit(level_code(Some(Level::Error))), 0);
    }
}
