//! Line processing: pure functions from the bytes a module printed to what the store keeps.
//!
//! The order is fixed and matters: **truncate** (bounds every later step) → **decode** (invalid UTF-8 escaped
//! losslessly) → **strip ANSI** for the search text → **mask secrets** (both texts; see [`super::mask`]) →
//! **parse** JSON fields or guess a level. Nothing here touches SQLite, clocks or threads, so it is tested
//! table-driven in this file.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::block::{LineMeta, Lines, flag, level_code};
use super::mask::{self, PemState, mask_line};
use crate::lifecycle::LogChunk;

/// Lines longer than this many bytes are cut (on a character boundary) and [`TRUNCATION_MARKER`] appended.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Appended to a line that was cut, by the capture or by [`MAX_LINE_BYTES`].
pub const TRUNCATION_MARKER: &str = " … [truncated]";

/// Severity of a log line (or an event), ordered: `Trace < Debug < Info < Warn < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Finest detail.
    Trace = 1,
    /// Debugging detail.
    Debug = 2,
    /// Normal operation.
    Info = 3,
    /// Something unexpected that did not fail.
    Warn = 4,
    /// A failure: error, fatal, panic, traceback.
    Error = 5,
}

impl Level {
    /// Lowercase name (`"warn"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// The stored integer (1..=5).
    pub(crate) fn as_i64(self) -> i64 {
        self as i64
    }

    /// From the stored integer; 0 (unknown) and anything else → None.
    pub(crate) fn from_i64(v: i64) -> Option<Level> {
        Some(match v {
            1 => Level::Trace,
            2 => Level::Debug,
            3 => Level::Info,
            4 => Level::Warn,
            5 => Level::Error,
            _ => return None,
        })
    }

    /// Parses a level word as loggers print it (`ERROR`, `warning`, `Info`, `fatal`, `crit`, `dbg`, …),
    /// case-insensitively. Returns None for anything else.
    pub fn from_word(word: &str) -> Option<Level> {
        if word.len() > 11 {
            return None;
        }
        let mut buf = [0u8; 11];
        for (d, s) in buf.iter_mut().zip(word.bytes()) {
            *d = s.to_ascii_lowercase();
        }
        Some(match &buf[..word.len()] {
            b"error" | b"err" | b"fatal" | b"crit" | b"critical" | b"panic" | b"emerg" | b"emergency" | b"alert"
            | b"severe" => Level::Error,
            b"warn" | b"warning" => Level::Warn,
            b"info" | b"notice" | b"information" => Level::Info,
            b"debug" | b"dbg" | b"fine" => Level::Debug,
            b"trace" | b"trc" | b"finest" | b"verbose" => Level::Trace,
            _ => return None,
        })
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::from_word(s).ok_or_else(|| format!("unknown level `{s}` (expected trace, debug, info, warn or error)"))
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedLine {
    /// Masked, ANSI-stripped text: what is indexed and searched (and displayed when `display` is None).
    pub text: String,
    /// Masked text with ANSI escapes kept, only when it differs from `text`.
    pub display: Option<String>,
    /// Parsed or guessed level.
    pub level: Option<Level>,
    /// `true` when invalid UTF-8 was escaped: `unescape_bytes(display or text)` gives the bytes back.
    pub escaped: bool,
    /// `true` when the line was cut.
    pub truncated: bool,
    /// `true` when a secret was masked.
    pub masked: bool,
    /// `true` when the line is a JSON object.
    pub json: bool,
}

impl ProcessedLine {
    /// The line's [`flag`] bits.
    pub(crate) fn flags(&self) -> u8 {
        let mut f = 0;
        if self.escaped {
            f |= flag::ESCAPED;
        }
        if self.truncated {
            f |= flag::TRUNCATED;
        }
        if self.masked {
            f |= flag::MASKED;
        }
        if self.json {
            f |= flag::JSON;
        }
        f
    }
}

/// Runs the whole pipeline on one captured line. `pem` is the per-(module, run, stream) state that lets a
/// private key block spanning several lines be masked; `already_truncated` is the capture's own flag.
pub fn process_line(bytes: &[u8], already_truncated: bool, pem: &mut PemState) -> ProcessedLine {
    let (bytes, cut) = truncate_bytes(bytes, MAX_LINE_BYTES);
    let truncated = cut || already_truncated;
    let (raw, escaped) = decode_line(bytes);
    let plain = strip_ansi(&raw);
    let has_ansi = matches!(plain, Cow::Owned(_));

    // Mask the search text with the real state; mask the display copy with a scratch copy of the state taken
    // before, so both see the same block boundaries.
    let pem_before = pem.clone();
    let masked_plain = mask_line(&plain, pem);
    let masked = matches!(masked_plain, Cow::Owned(_));
    let mut text = masked_plain.into_owned();

    let mut display = if has_ansi {
        let mut scratch = pem_before;
        let masked_raw = mask_line(&raw, &mut scratch);
        // Keep the coloured copy only if, once stripped, it says exactly what the masked search text says;
        // otherwise an escape sequence could have hidden a secret from the scanner: drop the colours.
        if strip_ansi(&masked_raw) == text.as_str() { Some(masked_raw.into_owned()) } else { None }
    } else {
        None
    };

    let (json, level) = classify(&text);

    if truncated {
        text.push_str(TRUNCATION_MARKER);
        if let Some(d) = display.as_mut() {
            d.push_str(TRUNCATION_MARKER);
        }
    }
    if display.as_deref() == Some(text.as_str()) {
        display = None;
    }
    ProcessedLine { text, display, level, escaped, truncated, masked, json: json && !truncated }
}

/// Whether a (masked, stripped) line is a JSON object, and its level: the JSON's own level field, else a
/// guess from its message or the plain text.
fn classify(text: &str) -> (bool, Option<Level>) {
    match parse_json_line(text) {
        Some(j) => (true, j.level.or_else(|| j.msg.as_deref().and_then(guess_level))),
        None => (false, guess_level(text)),
    }
}

/// Runs [`process_line`] over every line of a captured chunk and appends the results to `out`, each with
/// the capture time `ts_ms`.
///
/// The result is exactly what calling `process_line` line by line gives (a test holds it to that), but the
/// common chunk skips most of the work: when the chunk is valid UTF-8 without control characters, its lines
/// need no decoding and no ANSI stripping, and only the lines where a masking rule could apply (found by one
/// multi-pattern scan of the whole chunk, [`mask::trigger_positions`]) go through the masking scanners. What
/// is left per line is the level guess.
pub(crate) fn process_chunk(chunk: &LogChunk, ts_ms: u64, pem: &mut PemState, out: &mut Lines) {
    let data = chunk.data();
    let clean = std::str::from_utf8(data).ok().filter(|_| !has_control_bytes(data));
    let (Some(text), Some(triggers)) = (clean, clean.and_then(mask::trigger_positions)) else {
        for (bytes, cut) in chunk.lines() {
            push_processed(out, process_line(bytes, cut, pem), ts_ms);
        }
        return;
    };
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut cut = chunk.truncated().iter().copied().peekable();
    let mut triggers = triggers.into_iter();
    let mut trigger = triggers.next();
    let mut start = 0;
    for (i, line) in body.split('\n').take(chunk.len()).enumerate() {
        let end = start + line.len();
        let mut suspect = false;
        while let Some(p) = trigger.filter(|&p| p < end) {
            suspect |= p >= start;
            trigger = triggers.next();
        }
        let truncated = cut.next_if_eq(&(i as u32)).is_some();
        if suspect || truncated || pem.in_block() || line.len() > MAX_LINE_BYTES {
            push_processed(out, process_line(line.as_bytes(), truncated, pem), ts_ms);
        } else {
            let (json, level) = classify(line);
            let flags = if json { flag::JSON } else { 0 };
            out.push(line, None, LineMeta { ts_ms, level: level_code(level), flags });
        }
        start = end + 1;
    }
}

/// Appends one processed line.
pub(crate) fn push_processed(out: &mut Lines, p: ProcessedLine, ts_ms: u64) {
    let flags = p.flags();
    out.push(&p.text, p.display.as_deref(), LineMeta { ts_ms, level: level_code(p.level), flags });
}

/// True when `bytes` holds a byte that [`strip_ansi`] would change: a C0 control other than tab and newline,
/// DEL, or a C1 control (U+0080–U+009F, encoded `C2 80`–`C2 9F`). Written to vectorise: no early exit per
/// byte, one per 256.
fn has_control_bytes(bytes: &[u8]) -> bool {
    let c0 = bytes
        .chunks(256)
        .any(|c| c.iter().fold(false, |any, &b| any | ((b < 0x20) & (b != b'\t') & (b != b'\n')) | (b == 0x7F)));
    c0 || memchr::memchr_iter(0xC2, bytes).any(|i| bytes.get(i + 1).is_some_and(|n| (0x80..0xA0).contains(n)))
}

/// Cuts `bytes` to at most `max` bytes without splitting a valid UTF-8 character. Returns the kept prefix
/// and whether anything was cut.
pub fn truncate_bytes(bytes: &[u8], max: usize) -> (&[u8], bool) {
    if bytes.len() <= max {
        return (bytes, false);
    }
    let mut end = max;
    // Back off over continuation bytes (at most 3) so a multi-byte character is not split.
    let mut back = 0;
    while end > 0 && back < 3 && (bytes[end] & 0b1100_0000) == 0b1000_0000 {
        end -= 1;
        back += 1;
    }
    if back == 3 && (bytes[end] & 0b1100_0000) == 0b1000_0000 {
        end = max; // not UTF-8 anyway: cut where asked
    }
    (&bytes[..end], true)
}

/// Decodes a line: valid UTF-8 is returned as is (`false`); otherwise the whole line is returned in the
/// escaped form of [`escape_bytes`] (`true`).
pub fn decode_line(bytes: &[u8]) -> (Cow<'_, str>, bool) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Cow::Borrowed(s), false),
        Err(_) => (Cow::Owned(escape_bytes(bytes)), true),
    }
}

/// Lossless text form of arbitrary bytes: valid UTF-8 sequences are kept, a backslash becomes `\\`, and each
/// byte that is not part of a valid sequence becomes `\xNN` (uppercase hex). [`unescape_bytes`] inverts it.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 16);
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_escaping_backslashes(&mut out, s);
                return out;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // `good` is valid UTF-8 by construction (`valid_up_to`), so the fallback never happens.
                push_escaping_backslashes(&mut out, std::str::from_utf8(good).unwrap_or_default());
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    out.push_str("\\x");
                    out.push(hex_digit(b >> 4));
                    out.push(hex_digit(b & 0xF));
                }
                rest = &bad[n..];
            }
        }
    }
}

fn push_escaping_backslashes(out: &mut String, s: &str) {
    for (i, part) in s.split('\\').enumerate() {
        if i > 0 {
            out.push_str("\\\\");
        }
        out.push_str(part);
    }
}

fn hex_digit(n: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(n & 0xF)])
}

/// Inverse of [`escape_bytes`]: `\\` → `\`, `\xNN` → the byte, everything else as its UTF-8 bytes. Text that
/// was not produced by `escape_bytes` is decoded leniently (a stray backslash is kept).
pub fn unescape_bytes(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'\\' {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if b[i + 1] == b'x'
                && i + 3 < b.len()
                && let (Some(h), Some(l)) = (hex_val(b[i + 2]), hex_val(b[i + 3]))
            {
                out.push(h << 4 | l);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Search text of a line: ANSI escape sequences (CSI `ESC[…m`, OSC `ESC]…BEL|ST`, DCS/APC/PM/SOS strings,
/// two- and three-character escapes, C1 CSI/OSC) removed, and every other control character except tab
/// replaced by a space (so `\r` progress updates stay separate words). Borrowed when nothing changes.
pub fn strip_ansi(s: &str) -> Cow<'_, str> {
    let bytes = s.as_bytes();
    // Fast path: no C0 control except tab, no DEL, no C1 (encoded as 0xC2 0x80..=0x9F).
    let needs_work = bytes.iter().enumerate().any(|(i, &b)| {
        (b < 0x20 && b != b'\t')
            || b == 0x7F
            || (b == 0xC2 && bytes.get(i + 1).is_some_and(|n| (0x80..0xA0).contains(n)))
    });
    if !needs_work {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek().map(|&(_, c)| c) {
                Some('[') => {
                    chars.next();
                    skip_csi(&mut chars);
                }
                Some(']') | Some('P') | Some('X') | Some('^') | Some('_') => {
                    chars.next();
                    skip_string(&mut chars);
                }
                Some(n) if ('\u{20}'..='\u{2f}').contains(&n) => {
                    // nF escape: intermediates then one final character (`ESC ( B`).
                    while chars.peek().is_some_and(|&(_, c)| ('\u{20}'..='\u{2f}').contains(&c)) {
                        chars.next();
                    }
                    chars.next();
                }
                Some(n) if ('\u{30}'..='\u{7e}').contains(&n) => {
                    chars.next();
                }
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\t' => out.push('\t'),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

type CharIter<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

/// Parameters 0x30–0x3F, intermediates 0x20–0x2F, one final 0x40–0x7E. Stops (consuming nothing more) at any
/// other character so a broken sequence cannot swallow the line.
fn skip_csi(chars: &mut CharIter<'_>) {
    while let Some(&(_, c)) = chars.peek() {
        if ('\u{20}'..='\u{3f}').contains(&c) {
            chars.next();
        } else {
            if ('\u{40}'..='\u{7e}').contains(&c) {
                chars.next();
            }
            return;
        }
    }
}

/// OSC/DCS/… strings end at BEL, `ESC \` or C1 ST; an unterminated one runs to the end of the line.
fn skip_string(chars: &mut CharIter<'_>) {
    while let Some((_, c)) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                if chars.peek().is_some_and(|&(_, c)| c == '\\') {
                    chars.next();
                }
                return;
            }
            _ => {}
        }
    }
}

/// What a JSON log line says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonLine {
    /// From `level`, `lvl`, `severity`, `levelname`, `log.level` or `@l` (words or pino/bunyan numbers).
    pub level: Option<Level>,
    /// From `msg`, `message` or `@m`.
    pub msg: Option<String>,
    /// From `time`, `ts`, `timestamp`, `@timestamp` or `@t`, as written (kept for display; the row's time is
    /// always the capture time so that time order and id order agree).
    pub time: Option<String>,
}

/// Parses a line that is a JSON object (after optional whitespace). None for anything else.
pub fn parse_json_line(text: &str) -> Option<JsonLine> {
    let t = text.trim();
    if !(t.starts_with('{') && t.ends_with('}')) {
        return None;
    }
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(t).ok()?;
    let mut out = JsonLine::default();
    for key in ["level", "lvl", "severity", "levelname", "log.level", "@l"] {
        if let Some(v) = map.get(key) {
            out.level = match v {
                serde_json::Value::String(s) => Level::from_word(s.trim()).or_else(|| single_letter_level(s)),
                serde_json::Value::Number(n) => n.as_f64().map(numeric_level),
                _ => None,
            };
            if out.level.is_some() {
                break;
            }
        }
    }
    for key in ["msg", "message", "@m", "@mt"] {
        if let Some(serde_json::Value::String(s)) = map.get(key) {
            out.msg = Some(s.clone());
            break;
        }
    }
    for key in ["time", "ts", "timestamp", "@timestamp", "@t"] {
        match map.get(key) {
            Some(serde_json::Value::String(s)) => out.time = Some(s.clone()),
            Some(serde_json::Value::Number(n)) => out.time = Some(n.to_string()),
            _ => continue,
        }
        break;
    }
    Some(out)
}

/// pino/bunyan numeric levels: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal.
fn numeric_level(n: f64) -> Level {
    match n {
        n if n <= 10.0 => Level::Trace,
        n if n <= 20.0 => Level::Debug,
        n if n <= 30.0 => Level::Info,
        n if n <= 40.0 => Level::Warn,
        _ => Level::Error,
    }
}

fn single_letter_level(s: &str) -> Option<Level> {
    match s {
        "E" | "F" | "C" => Some(Level::Error),
        "W" => Some(Level::Warn),
        "I" => Some(Level::Info),
        "D" => Some(Level::Debug),
        "T" | "V" => Some(Level::Trace),
        _ => None,
    }
}

/// Guesses the level of a plain (already ANSI-stripped) line. Looks only at the first 160 bytes.
///
/// In order: panics, tracebacks, stack frames and `SomethingError:` → error; glog/klog prefixes
/// (`E0612 …`, `W …`, `E/Tag`) and a lone `E ` at the start; then the first level word that is either
/// upper-case (`ERROR`, `WARN`) or marked as a level (`[error]`, `<warn>`, `level=info`, `error:` …).
/// Words in prose ("no error found") do not count.
pub fn guess_level(text: &str) -> Option<Level> {
    let mut end = text.len().min(160);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = &text[..end];
    let trimmed = head.trim_start();
    let indented = trimmed.len() != head.len();

    if trimmed.starts_with("panic: ")
        || trimmed.starts_with("fatal error: ")
        || trimmed.starts_with("Exception in thread")
        || trimmed.starts_with("Uncaught ")
        || trimmed.starts_with("Caused by: ")
        || trimmed.starts_with("Traceback (most recent call last)")
    {
        return Some(Level::Error);
    }
    if indented
        && ((trimmed.starts_with("at ") && (trimmed.contains('(') || trimmed.contains(':')))
            || (trimmed.starts_with("File \"") && trimmed.contains("\", line ")))
    {
        return Some(Level::Error);
    }
    if let Some(l) = exception_prefix(trimmed) {
        return Some(l);
    }
    if let Some(l) = letter_prefix(trimmed) {
        return Some(l);
    }
    // A Rust panic anywhere in the head outranks whatever level word came before it.
    let panicked = || super::mask::find_bytes(head.as_bytes(), b"panicked at").is_some();

    let b = head.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let word = &head[start..i];
        if word.len() < 3 {
            continue;
        }
        let Some(level) = Level::from_word(word) else { continue };
        let upper = word.bytes().all(|c| c.is_ascii_uppercase());
        let prev = if start > 0 { b[start - 1] } else { b' ' };
        let next = b.get(i).copied().unwrap_or(b' ');
        let before = head[..start].trim_end_matches([' ', '"', '\'']).as_bytes();
        let ends = |suffix: &[u8]| {
            before.len() >= suffix.len() && before[before.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        };
        let marked = matches!(prev, b'[' | b'<' | b'(' | b'|')
            || matches!(next, b':' | b']' | b'>' | b'|' | b')')
            || ends(b"level=")
            || ends(b"lvl=")
            || ends(b"severity=")
            || ends(b"level:")
            || (start == 0 && next == b' ');
        if upper || marked {
            return Some(if level != Level::Error && panicked() { Level::Error } else { level });
        }
    }
    if panicked() { Some(Level::Error) } else { None }
}

/// `TypeError: …`, `java.lang.IllegalStateException: …`, `RuntimeError` at the start of a line.
fn exception_prefix(trimmed: &str) -> Option<Level> {
    let word_end = trimmed.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '$'))?;
    let word = &trimmed[..word_end];
    let rest = &trimmed[word_end..];
    let last = word.rsplit('.').next().unwrap_or(word);
    let is_exc = (last.ends_with("Error") || last.ends_with("Exception"))
        && last.len() > 5
        && last.as_bytes()[0].is_ascii_uppercase();
    if is_exc && (rest.starts_with(':') || rest.is_empty()) { Some(Level::Error) } else { None }
}

/// glog/klog (`E0612 12:00:00.000 …`), Android (`E/Tag: …`) and a lone severity letter (`E something`).
fn letter_prefix(trimmed: &str) -> Option<Level> {
    let b = trimmed.as_bytes();
    if b.len() < 2 {
        return None;
    }
    let level = match b[0] {
        b'E' | b'F' => Level::Error,
        b'W' => Level::Warn,
        b'I' => Level::Info,
        b'D' => Level::Debug,
        b'V' => Level::Trace,
        _ => return None,
    };
    let glog = b.len() >= 6 && b[1..5].iter().all(u8::is_ascii_digit) && b[5] == b' ';
    let android = b[1] == b'/' && b.get(2).is_some_and(u8::is_ascii_alphabetic);
    let lone = b[1] == b' ' && matches!(b[0], b'E' | b'W');
    if glog || android || lone { Some(level) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trip_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain", "plain"),
            (b"back\\slash", "back\\\\slash"),
            (b"\xff", "\\xFF"),
            (b"a\xc3(b", "a\\xC3(b"),
            (b"\\xFF literal", "\\\\xFF literal"),
            (b"caf\xc3\xa9 \xe2\x82", "caf\u{e9} \\xE2\\x82"),
            (b"", ""),
        ];
        for (bytes, escaped) in cases {
            assert_eq!(escape_bytes(bytes), *escaped, "{bytes:?}");
            assert_eq!(unescape_bytes(escaped), *bytes, "{escaped}");
        }
        // Exhaustive-ish: every single byte and every byte pair round-trips.
        for a in 0..=255u8 {
            for b in [0u8, b'\\', b'x', 0x80, 0xC3, 0xFF] {
                let v = [a, b, b'\\', a];
                assert_eq!(unescape_bytes(&escape_bytes(&v)), v);
            }
        }
    }

    #[test]
    fn decode_keeps_valid_utf8_verbatim() {
        assert_eq!(decode_line(b"C:\\path \\n"), (Cow::Borrowed("C:\\path \\n"), false));
        let (t, esc) = decode_line(b"bad \xfe byte");
        assert!(esc);
        assert_eq!(unescape_bytes(&t), b"bad \xfe byte");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_bytes(b"abcdef", 10), (&b"abcdef"[..], false));
        assert_eq!(truncate_bytes(b"abcdef", 3), (&b"abc"[..], true));
        let s = "aé€"; // 1 + 2 + 3 bytes
        assert_eq!(truncate_bytes(s.as_bytes(), 2), (&b"a"[..], true));
        assert_eq!(truncate_bytes(s.as_bytes(), 5), ("aé".as_bytes(), true));
        assert_eq!(truncate_bytes(&[0x80; 10], 4), (&[0x80u8; 4][..], true));
    }

    #[test]
    fn strip_ansi_table() {
        let cases = [
            ("plain", "plain"),
            ("\x1b[31mred\x1b[0m text", "red text"),
            ("\x1b[1;38;5;208mbold\x1b[m", "bold"),
            ("\x1b]8;;http://x\x07link\x1b]8;;\x07", "link"),
            ("\x1b]0;title\x1b\\after", "after"),
            ("\x1b(Bcharset", "charset"),
            ("a\rb\tc", "a b\tc"),
            ("\u{9b}31mc1\u{9b}0m", "c1"),
            ("broken \x1b[31", "broken "),
            ("\x1b", ""),
            ("é°\u{a0}kept", "é°\u{a0}kept"),
        ];
        for (input, want) in cases {
            assert_eq!(strip_ansi(input), want, "{input:?}");
        }
        assert!(matches!(strip_ansi("no escapes here"), Cow::Borrowed(_)));
    }

    #[test]
    fn guess_level_table() {
        use Level::*;
        let cases: &[(&str, Option<Level>)] = &[
            ("2024-01-01T00:00:00Z ERROR db: connection refused", Some(Error)),
            ("[warn] disk almost full", Some(Warn)),
            ("level=debug msg=\"cache miss\"", Some(Debug)),
            ("INFO  server listening on :8080", Some(Info)),
            ("TRACE entering fn", Some(Trace)),
            ("E0612 10:00:00.000000 1 main.go:10] boom", Some(Error)),
            ("W0612 10:00:00.000000 1 main.go:10] hmm", Some(Warn)),
            ("E something bad", Some(Error)),
            ("E/ActivityManager: crash", Some(Error)),
            ("thread 'main' panicked at src/main.rs:2:5:", Some(Error)),
            ("panic: runtime error: index out of range", Some(Error)),
            ("Traceback (most recent call last):", Some(Error)),
            ("  File \"app.py\", line 3, in <module>", Some(Error)),
            ("    at Object.<anonymous> (/app/index.js:1:7)", Some(Error)),
            ("TypeError: x is not a function", Some(Error)),
            ("java.lang.IllegalStateException: nope", Some(Error)),
            ("error: could not compile `foo`", Some(Error)),
            ("Warning: deprecated flag", Some(Warn)),
            ("no error found, all good", None),
            ("0 errors, 0 warnings", None),
            ("GET /info 200", None),
            ("Errors are fine", None),
            ("listening on port 3000", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(guess_level(line), *want, "{line:?}");
        }
    }

    #[test]
    fn json_lines_table() {
        use Level::*;
        let j =
            parse_json_line(r#"{"level":"warn","msg":"slow query","time":"2024-01-01T00:00:00Z","ms":812}"#).unwrap();
        assert_eq!(j.level, Some(Warn));
        assert_eq!(j.msg.as_deref(), Some("slow query"));
        assert_eq!(j.time.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(parse_json_line(r#"{"level":50,"msg":"x","time":1700000000000}"#).unwrap().level, Some(Error));
        assert_eq!(parse_json_line(r#"{"level":30}"#).unwrap().level, Some(Info));
        assert_eq!(parse_json_line(r#"{"severity":"ERROR","message":"m"}"#).unwrap().level, Some(Error));
        assert_eq!(parse_json_line(r#" {"levelname":"DEBUG"} "#).unwrap().level, Some(Debug));
        assert_eq!(parse_json_line(r#"{"msg":"x"}"#).unwrap().level, None);
        assert_eq!(parse_json_line(r#"{"broken":"#), None);
        assert_eq!(parse_json_line("[1,2]"), None);
        assert_eq!(parse_json_line("plain"), None);
        // Level from the message when the object has none.
        let p = process_line(br#"{"msg":"ERROR upstream timed out"}"#, false, &mut PemState::default());
        assert!(p.json);
        assert_eq!(p.level, Some(Error));
    }

    #[test]
    fn process_line_pipeline() {
        let mut pem = PemState::default();
        let p = process_line(b"\x1b[31mERROR\x1b[0m boom", false, &mut pem);
        assert_eq!(p.text, "ERROR boom");
        assert_eq!(p.display.as_deref(), Some("\x1b[31mERROR\x1b[0m boom"));
        assert_eq!(p.level, Some(Level::Error));

        let p = process_line(b"plain", false, &mut pem);
        assert_eq!((p.text.as_str(), p.display.is_none()), ("plain", true));

        let long = vec![b'a'; MAX_LINE_BYTES + 10];
        let p = process_line(&long, false, &mut pem);
        assert!(p.truncated);
        assert!(p.text.ends_with(TRUNCATION_MARKER));
        assert_eq!(p.text.len(), MAX_LINE_BYTES + TRUNCATION_MARKER.len());

        let p = process_line(b"cut by capture", true, &mut pem);
        assert_eq!(p.text, format!("cut by capture{TRUNCATION_MARKER}"));

        // A secret hidden by a colour code: display falls back to the masked plain text.
        let p = process_line(b"\x1b[1mpassword\x1b[0m=hunter2", false, &mut pem);
        assert_eq!(p.text, "password=***");
        assert!(p.masked);
        assert!(!format!("{:?}", p).contains("hunter2"));

        // Secrets with colours around the value keep their colours.
        let p = process_line(b"\x1b[33mtoken=abc123\x1b[0m", false, &mut pem);
        assert_eq!(p.text, "token=***");
        assert!(!format!("{:?}", p).contains("abc123"), "{p:?}");

        let p = process_line(b"bad \xff utf8", false, &mut pem);
        assert!(p.escaped);
        assert_eq!(unescape_bytes(&p.text), b"bad \xff utf8");
    }

    /// `process_chunk` with its fast paths gives exactly what `process_line` gives line by line, on chunks
    /// mixing ordinary lines with every kind of line the fast path must hand to the slow one: secrets of
    /// each rule, ANSI and other control characters, invalid UTF-8, JSON, private key blocks spanning
    /// lines (and chunks), cut lines, C1 controls and plain non-ASCII text.
    #[test]
    fn chunks_are_processed_exactly_like_lines() {
        use std::sync::Arc;

        use crate::lifecycle::{LogChunk, Stream};
        let pieces: &[&[u8]] = &[
            b"GET /api/v1/orders 200 12ms",
            b"INFO worker ready",
            b"ERROR db: connection refused",
            b"password=hunter2 ok",
            b"Authorization: Bearer abcdefghijklmnop",
            b"dsn postgres://u:pw@h/db",
            b"key AKIAIOSFODNN7EXAMPLE",
            b"ASIA trip",
            b"-----BEGIN RSA PRIVATE KEY-----",
            b"MIIEvQIBADANBgkq",
            b"-----END RSA PRIVATE KEY-----",
            b"\x1b[31mred\x1b[0m",
            b"bell\x07 and tab\t",
            b"bad \xff byte",
            b"{\"level\":\"warn\",\"msg\":\"slow\"}",
            b"{\"token\":\"abc\"}",
            b"caf\xc3\xa9 \xc2\xb0C",
            b"c1 \xc2\x9b control",
            b"apikey:SECRETVALUE",
            b"DB_PaSsWoRd=MiXeD",
            b"tOkEn: abc",
            b"X-Api-Key: zzz",
            b"auth=x",
            b"",
            b"   indented",
            b"Traceback (most recent call last):",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..300 {
            let n = rng.usize(1..40);
            let mut chunks = Vec::new();
            let mut chunk = LogChunk::new(Arc::from("m"), 1, Stream::Stdout, 5);
            for _ in 0..n {
                let mut line = pieces[rng.usize(..pieces.len())].to_vec();
                if rng.u8(..4) == 0 {
                    line.extend_from_slice(b" ");
                    line.extend_from_slice(pieces[rng.usize(..pieces.len())]);
                }
                chunk.push(&line, rng.u8(..20) == 0);
                if rng.u8(..8) == 0 {
                    chunks.push(std::mem::replace(&mut chunk, LogChunk::new(Arc::from("m"), 1, Stream::Stdout, 5)));
                }
            }
            chunks.push(chunk);
            let (mut fast_pem, mut slow_pem) = (PemState::default(), PemState::default());
            let (mut fast, mut slow) = (Lines::default(), Lines::default());
            for c in &chunks {
                process_chunk(c, 5, &mut fast_pem, &mut fast);
                for (bytes, cut) in c.lines() {
                    push_processed(&mut slow, process_line(bytes, cut, &mut slow_pem), 5);
                }
            }
            assert_eq!(fast, slow, "round {round}: {chunks:?}");
            assert_eq!(fast_pem, slow_pem, "round {round}");
        }
    }

    #[test]
    fn control_bytes_are_detected_precisely() {
        assert!(!has_control_bytes(b"plain text\twith tab\nand newline"));
        assert!(!has_control_bytes("caf\u{e9} 20\u{b0}C \u{a0}nbsp".as_bytes()));
        for bad in [&b"esc\x1b["[..], b"nul\x00", b"del\x7f", b"cr\r", b"c1 \xc2\x9b", b"c1 \xc2\x80"] {
            assert!(has_control_bytes(bad), "{bad:?}");
        }
        let long = [b'a'; 1000];
        let mut with_esc = long.to_vec();
        with_esc[777] = 0x1b;
        assert!(!has_control_bytes(&long) && has_control_bytes(&with_esc));
    }
}
