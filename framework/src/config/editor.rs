//! Editor support for the text of one stack file: where its modules are, what the cursor is on, what may be
//! typed there. It serves the daemon's language features (code lenses, hover, completion), which must work on
//! the unsaved text while it is being typed — that is, most of the time on text that is not valid TOML.
//!
//! So this is not `tree` (toml_edit: all or nothing) but a tolerant scan: one pass over the text that knows
//! enough TOML (headers, dotted and quoted keys, the four string forms, arrays, inline tables, comments) to
//! give every key and scalar value its absolute path and byte range, and that recovers at the next line
//! after an error (an unclosed `[` or `{` does not swallow the rest of the file when the next line is a
//! header or a `key =`). Positions are byte offsets; turning them into editor positions is the caller's job.
//!
//! The keys and values offered come from [`schema`], the lists the loader validates against.

use std::ops::Range;

use super::schema;
use super::units;

// -----------------------------------------------------------------------------------------------------------
// The scan

/// One key of a table header or a dotted key, with its range (quotes included for quoted keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The key, unquoted.
    pub name: String,
    /// Where it is written.
    pub range: Range<usize>,
}

/// A table header: `[a.b]` or `[[a.b]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Its keys.
    pub path: Vec<Segment>,
    /// From the first `[` to the last `]` (to the end of the line when unclosed).
    pub range: Range<usize>,
    /// `[[…]]`.
    pub array: bool,
}

/// A key that was given a value (`key = …`), with its absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDef {
    /// Header path + enclosing inline tables + every part of a dotted key.
    pub path: Vec<String>,
    /// The last part of the key.
    pub range: Range<usize>,
    /// Where the whole (possibly dotted) key starts.
    pub start: usize,
}

/// A scalar value: a string, number, boolean or date, alone or as an array item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueDef {
    /// The absolute path of its key (for an array item, of the array's key).
    pub path: Vec<String>,
    /// An item of an array.
    pub in_array: bool,
    /// Where it is written (quotes included).
    pub range: Range<usize>,
    /// A string's content (escapes resolved), or the source text of any other scalar.
    pub text: String,
    /// It is a string.
    pub is_string: bool,
}

/// Everything the scan found, in text order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Table headers.
    pub headers: Vec<Header>,
    /// Keys given a value.
    pub keys: Vec<KeyDef>,
    /// Scalar values.
    pub values: Vec<ValueDef>,
}

/// Where the cursor is, syntactically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The table whose keys are written there: header + inline tables + the dotted key typed so far.
    pub table: Vec<String>,
    /// What is being written.
    pub place: Place,
    /// The part already typed (a bare word, or a string's content up to the cursor), to be replaced.
    pub prefix: Range<usize>,
}

/// What is being written at the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A key of `table`.
    Key,
    /// A table header: a key of `table` (the header's keys before the cursor).
    Header,
    /// The value of `key` in `table` (an item of it when `in_array`), inside quotes when `quoted`.
    Value {
        /// The key the value belongs to.
        key: String,
        /// An array item.
        in_array: bool,
        /// Inside a string.
        quoted: bool,
    },
    /// Nothing to offer: a comment, after a complete value, between a key and its `=`.
    None,
}

/// Scans a whole text.
pub fn scan(text: &str) -> Scan {
    let mut p = Parser::new(text);
    p.run();
    p.out
}

/// Where `offset` (a byte offset; clamped to the text and to a character boundary) is, judged from the text
/// before it.
pub fn cursor(text: &str, offset: usize) -> Cursor {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut p = Parser::new(&text[..end]);
    p.run();
    p.cursor()
}

#[derive(Debug, Clone)]
enum Frame {
    Array(Vec<String>),
    Inline(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Start of a top-level line: a header, a key, a comment or nothing.
    LineStart,
    /// After a complete header or key/value: only a comment may follow.
    LineEnd,
    /// A key (part) is expected: inside an inline table or after a `.`.
    KeyStart,
    /// After a key part: `.` or `=`.
    KeyAfter,
    /// A value is expected: after `=`, `[` or `,` in an array.
    ValueStart,
    /// After a value: `,`, `]`, `}` or the end of the line.
    ValueAfter,
    /// Inside `[`: a key part is expected.
    HeaderStart,
    /// Inside `[` after a key part: `.` or `]`.
    HeaderAfter,
    /// After an error: everything up to the end of the line is skipped.
    Skip,
}

/// What was unfinished when the text ended (for [`cursor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tail {
    Nothing,
    Comment,
    /// A bare word ending at the end of the text.
    Word(Range<usize>),
    /// A string value whose content starts here and runs to the end of the text.
    OpenString(usize),
    /// A complete string or other token ending at the end of the text.
    Closed,
}

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
    out: Scan,
    /// Path of the current `[header]`.
    table: Vec<String>,
    frames: Vec<Frame>,
    mode: Mode,
    /// Parts of the key being read.
    key: Vec<Segment>,
    /// Parts of the header being read, where it started, `[[`.
    header: Vec<Segment>,
    header_start: usize,
    header_array: bool,
    /// Path of the value being read (set at `=`).
    value_path: Vec<String>,
    tail: Tail,
    /// Start of the current line, and how much had been found when it started (for recovery).
    line_start: usize,
    found_at_line_start: (usize, usize),
    /// The line last re-read at the top level after an error: it is re-read once, never twice (a line that
    /// opens a `[` or `{` and then errs would otherwise be re-read forever).
    reread_line: Option<usize>,
}

fn is_bare_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c >= 0x80
}

fn ends_scalar(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b',' | b']' | b'}' | b'#' | b'[' | b'{' | b'"' | b'\'' | b'=')
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            text,
            b: text.as_bytes(),
            i: 0,
            out: Scan::default(),
            table: Vec::new(),
            frames: Vec::new(),
            mode: Mode::LineStart,
            key: Vec::new(),
            header: Vec::new(),
            header_start: 0,
            header_array: false,
            value_path: Vec::new(),
            tail: Tail::Nothing,
            line_start: 0,
            found_at_line_start: (0, 0),
            reread_line: None,
        }
    }

    fn run(&mut self) {
        while self.i < self.b.len() {
            let c = self.b[self.i];
            if self.mode == Mode::Skip && c != b'\n' {
                self.i += 1;
                continue;
            }
            match c {
                b' ' | b'\t' | b'\r' => {
                    self.i += 1;
                    self.tail = Tail::Nothing;
                }
                b'\n' => self.newline(),
                b'#' => self.comment(),
                _ => self.token(c),
            }
        }
    }

    fn newline(&mut self) {
        self.i += 1;
        self.tail = Tail::Nothing;
        self.line_start = self.i;
        self.found_at_line_start = (self.out.keys.len(), self.out.values.len());
        if self.frames.is_empty() {
            self.mode = Mode::LineStart;
            self.key.clear();
            return;
        }
        if self.mode == Mode::Skip {
            // An error inside an array or inline table: give up on it.
            self.frames.clear();
            self.mode = Mode::LineStart;
            self.key.clear();
            return;
        }
        // Inside an array or inline table, a line that starts like a header means the `[`/`{` was never
        // closed: start over at the top level.
        let rest = &self.b[self.i..];
        let first = rest.iter().position(|c| !matches!(c, b' ' | b'\t')).map(|p| &rest[p..]).unwrap_or(&[]);
        if first.first() == Some(&b'[') {
            let after = first[1..].iter().find(|c| !matches!(c, b' ' | b'\t' | b'['));
            if after.is_some_and(|c| c.is_ascii_alphabetic() || (*c == b'"' && self.looks_like_header(first))) {
                let word: Vec<u8> = first[1..].iter().copied().take_while(|c| is_bare_key_byte(*c)).collect();
                if !matches!(word.as_slice(), b"true" | b"false" | b"inf" | b"nan") {
                    self.frames.clear();
                    self.mode = Mode::LineStart;
                    self.key.clear();
                }
            }
        }
    }

    /// `["a b"]` on a line of its own, ending in `]` and followed by nothing but a comment.
    fn looks_like_header(&self, line: &[u8]) -> bool {
        let end = line.iter().position(|c| *c == b'\n').unwrap_or(line.len());
        let line = std::str::from_utf8(&line[..end]).unwrap_or("");
        let code = line.split('#').next().unwrap_or("").trim_end();
        code.ends_with(']') && !code.contains(',')
    }

    fn comment(&mut self) {
        while self.i < self.b.len() && self.b[self.i] != b'\n' {
            self.i += 1;
        }
        self.tail = Tail::Comment;
        if self.frames.is_empty() && !matches!(self.mode, Mode::LineStart | Mode::LineEnd) {
            // `key = # …` or `[a. # …`: the line is incomplete.
            self.mode = Mode::LineEnd;
        }
    }

    /// Something unexpected at `self.i`.
    fn error(&mut self) {
        if !self.frames.is_empty() && self.reread_line == Some(self.line_start) {
            // Already re-read at the top level and still wrong inside a `[`/`{` it opened itself: give up on
            // the rest of this line.
            self.frames.clear();
        } else if !self.frames.is_empty() {
            self.reread_line = Some(self.line_start);
            // Probably an unclosed array or inline table above: read this line again at the top level,
            // forgetting what was taken from it as items.
            let (keys, values) = self.found_at_line_start;
            self.out.keys.truncate(keys);
            self.out.values.truncate(values);
            self.frames.clear();
            self.key.clear();
            self.i = self.line_start;
            self.mode = Mode::LineStart;
            return;
        }
        self.mode = Mode::Skip;
        self.i += 1;
    }

    fn base(&self) -> Vec<String> {
        match self.frames.last() {
            Some(Frame::Inline(path)) => path.clone(),
            Some(Frame::Array(path)) => path.clone(),
            None => self.table.clone(),
        }
    }

    fn token(&mut self, c: u8) {
        match self.mode {
            Mode::Skip => self.i += 1,
            Mode::LineStart if c == b'[' => {
                self.header_start = self.i;
                self.header.clear();
                self.header_array = self.b.get(self.i + 1) == Some(&b'[');
                self.i += if self.header_array { 2 } else { 1 };
                self.mode = Mode::HeaderStart;
                self.tail = Tail::Nothing;
            }
            Mode::LineStart | Mode::KeyStart | Mode::HeaderStart => {
                if c == b'}' && self.mode == Mode::KeyStart && matches!(self.frames.last(), Some(Frame::Inline(_))) {
                    self.close();
                    return;
                }
                if self.mode == Mode::LineStart {
                    self.key.clear();
                }
                let Some(segment) = self.key_part() else {
                    self.error();
                    return;
                };
                if self.mode == Mode::HeaderStart {
                    self.header.push(segment);
                    self.mode = Mode::HeaderAfter;
                } else {
                    self.key.push(segment);
                    self.mode = Mode::KeyAfter;
                }
            }
            Mode::KeyAfter => match c {
                b'.' => {
                    self.i += 1;
                    self.mode = Mode::KeyStart;
                    self.tail = Tail::Nothing;
                }
                b'=' => {
                    self.i += 1;
                    let mut path = self.base();
                    path.extend(self.key.iter().map(|s| s.name.clone()));
                    if let (Some(first), Some(last)) = (self.key.first(), self.key.last()) {
                        self.out.keys.push(KeyDef {
                            path: path.clone(),
                            range: last.range.clone(),
                            start: first.range.start,
                        });
                    }
                    self.value_path = path;
                    self.key.clear();
                    self.mode = Mode::ValueStart;
                    self.tail = Tail::Nothing;
                }
                _ => self.error(),
            },
            Mode::HeaderAfter => match c {
                b'.' => {
                    self.i += 1;
                    self.mode = Mode::HeaderStart;
                    self.tail = Tail::Nothing;
                }
                b']' => {
                    let close = if self.header_array { 2 } else { 1 };
                    self.i = (self.i + close).min(self.b.len());
                    self.table = self.header.iter().map(|s| s.name.clone()).collect();
                    self.out.headers.push(Header {
                        path: std::mem::take(&mut self.header),
                        range: self.header_start..self.i,
                        array: self.header_array,
                    });
                    self.mode = Mode::LineEnd;
                    self.tail = Tail::Closed;
                }
                _ => self.error(),
            },
            Mode::ValueStart => self.value(c),
            Mode::ValueAfter => match (c, self.frames.last()) {
                (b',', Some(Frame::Array(_))) => {
                    self.i += 1;
                    self.mode = Mode::ValueStart;
                    self.tail = Tail::Nothing;
                }
                (b',', Some(Frame::Inline(_))) => {
                    self.i += 1;
                    self.mode = Mode::KeyStart;
                    self.key.clear();
                    self.tail = Tail::Nothing;
                }
                (b']', Some(Frame::Array(_))) | (b'}', Some(Frame::Inline(_))) => self.close(),
                _ => self.error(),
            },
            Mode::LineEnd => self.error(),
        }
    }

    /// Closes the innermost array or inline table at `self.i`.
    fn close(&mut self) {
        self.i += 1;
        self.frames.pop();
        self.tail = Tail::Closed;
        self.mode = if self.frames.is_empty() { Mode::LineEnd } else { Mode::ValueAfter };
    }

    /// Reads one key part (bare or quoted) at `self.i`.
    fn key_part(&mut self) -> Option<Segment> {
        let c = self.b[self.i];
        let start = self.i;
        if c == b'"' || c == b'\'' {
            let s = self.string();
            return s.closed.then_some(Segment { name: s.content, range: start..self.i });
        }
        if !is_bare_key_byte(c) {
            return None;
        }
        while self.i < self.b.len() && is_bare_key_byte(self.b[self.i]) {
            self.i += 1;
        }
        self.tail = if self.i == self.b.len() { Tail::Word(start..self.i) } else { Tail::Nothing };
        Some(Segment { name: self.text[start..self.i].to_string(), range: start..self.i })
    }

    fn value(&mut self, c: u8) {
        let in_array = matches!(self.frames.last(), Some(Frame::Array(_)));
        let path = if in_array { self.base() } else { self.value_path.clone() };
        let start = self.i;
        match c {
            b'[' => {
                self.i += 1;
                self.frames.push(Frame::Array(path));
                self.mode = Mode::ValueStart;
                self.tail = Tail::Nothing;
            }
            b'{' => {
                self.i += 1;
                self.frames.push(Frame::Inline(path));
                self.mode = Mode::KeyStart;
                self.key.clear();
                self.tail = Tail::Nothing;
            }
            b'"' | b'\'' => {
                let s = self.string();
                if !s.closed {
                    if self.i == self.b.len() && !s.cut {
                        self.tail = Tail::OpenString(s.content_start);
                        self.mode = Mode::ValueAfter;
                    } else {
                        self.error();
                    }
                    return;
                }
                self.out.values.push(ValueDef {
                    path,
                    in_array,
                    range: start..self.i,
                    text: s.content,
                    is_string: true,
                });
                self.mode = Mode::ValueAfter;
            }
            b']' if in_array => self.close(),
            _ if ends_scalar(c) => self.error(),
            _ => {
                while self.i < self.b.len() && !ends_scalar(self.b[self.i]) {
                    self.i += 1;
                }
                self.tail = if self.i == self.b.len() { Tail::Word(start..self.i) } else { Tail::Nothing };
                self.out.values.push(ValueDef {
                    path,
                    in_array,
                    range: start..self.i,
                    text: self.text[start..self.i].to_string(),
                    is_string: false,
                });
                self.mode = Mode::ValueAfter;
            }
        }
    }

    /// Reads a string of any of the four forms at `self.i`; leaves `self.i` after it (or at the end of the
    /// line / text when it is not closed).
    fn string(&mut self) -> StringToken {
        let quote = self.b[self.i];
        let basic = quote == b'"';
        let multiline = self.b[self.i..].starts_with(if basic { b"\"\"\"" } else { b"'''" });
        self.i += if multiline { 3 } else { 1 };
        if multiline && self.b.get(self.i) == Some(&b'\n') {
            self.i += 1;
        } else if multiline && self.b[self.i..].starts_with(b"\r\n") {
            self.i += 2;
        }
        let content_start = self.i;
        let mut content = String::new();
        let mut from = self.i;
        while self.i < self.b.len() {
            let c = self.b[self.i];
            if c == b'\\' && basic {
                content.push_str(&self.text[from..self.i]);
                let (ch, len) = unescape(&self.text[self.i..]);
                content.push_str(&ch);
                self.i += len;
                from = self.i;
                continue;
            }
            if c == b'\n' && !multiline {
                content.push_str(&self.text[from..self.i]);
                return StringToken { content, content_start, closed: false, cut: true };
            }
            if c == quote && (!multiline || self.b[self.i..].starts_with(&[quote; 3])) {
                content.push_str(&self.text[from..self.i]);
                self.i += if multiline { 3 } else { 1 };
                // Up to two more quotes belong to a multi-line string's content (`""""` ends in one).
                let mut extra = 0;
                while multiline && extra < 2 && self.b.get(self.i) == Some(&quote) {
                    content.push(quote as char);
                    self.i += 1;
                    extra += 1;
                }
                self.tail = if self.i == self.b.len() { Tail::Closed } else { Tail::Nothing };
                return StringToken { content, content_start, closed: true, cut: false };
            }
            self.i += 1;
        }
        content.push_str(&self.text[from..self.i]);
        StringToken { content, content_start, closed: false, cut: false }
    }

    fn cursor(&self) -> Cursor {
        let end = self.b.len();
        let none = |table: Vec<String>| Cursor { table, place: Place::None, prefix: end..end };
        if self.tail == Tail::Comment {
            return none(self.table.clone());
        }
        let key_table = |parts: &[Segment]| {
            let mut t = self.base();
            t.extend(parts.iter().map(|s| s.name.clone()));
            t
        };
        match (self.mode, &self.tail) {
            (Mode::LineStart | Mode::KeyStart, _) => {
                let table = if self.mode == Mode::LineStart { self.table.clone() } else { key_table(&self.key) };
                Cursor { table, place: Place::Key, prefix: end..end }
            }
            (Mode::KeyAfter, Tail::Word(range)) => {
                let parts = &self.key[..self.key.len().saturating_sub(1)];
                Cursor { table: key_table(parts), place: Place::Key, prefix: range.clone() }
            }
            (Mode::HeaderStart, _) => Cursor {
                table: self.header.iter().map(|s| s.name.clone()).collect(),
                place: Place::Header,
                prefix: end..end,
            },
            (Mode::HeaderAfter, Tail::Word(range)) => Cursor {
                table: self.header[..self.header.len().saturating_sub(1)].iter().map(|s| s.name.clone()).collect(),
                place: Place::Header,
                prefix: range.clone(),
            },
            (Mode::ValueStart, _) => self.value_cursor(false, end..end),
            (Mode::ValueAfter, Tail::OpenString(start)) => self.value_cursor(true, *start..end),
            (Mode::ValueAfter, Tail::Word(range)) => self.value_cursor(false, range.clone()),
            _ => none(self.table.clone()),
        }
    }

    fn value_cursor(&self, quoted: bool, prefix: Range<usize>) -> Cursor {
        let in_array = matches!(self.frames.last(), Some(Frame::Array(_)));
        let mut table = if in_array { self.base() } else { self.value_path.clone() };
        let Some(key) = table.pop() else {
            return Cursor { table, place: Place::None, prefix };
        };
        Cursor { table, place: Place::Value { key, in_array, quoted }, prefix }
    }
}

struct StringToken {
    content: String,
    content_start: usize,
    closed: bool,
    /// A single-line string cut by the end of its line.
    cut: bool,
}

/// One escape sequence at the start of `s` (which starts with `\`): what it stands for and its length.
fn unescape(s: &str) -> (String, usize) {
    let b = s.as_bytes();
    let simple = |c: char| (c.to_string(), 2);
    match b.get(1) {
        Some(b'n') => simple('\n'),
        Some(b't') => simple('\t'),
        Some(b'r') => simple('\r'),
        Some(b'"') => simple('"'),
        Some(b'\\') => simple('\\'),
        Some(b'b') => simple('\u{8}'),
        Some(b'f') => simple('\u{c}'),
        Some(b'e') => simple('\u{1b}'),
        Some(&u @ (b'u' | b'U' | b'x')) => {
            let len = match u {
                b'u' => 4,
                b'U' => 8,
                _ => 2,
            };
            let hex = s.get(2..2 + len).unwrap_or("");
            match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                Some(ch) if hex.len() == len => (ch.to_string(), 2 + len),
                _ => ("\\".to_string(), 1),
            }
        }
        // A line-ending backslash in a multi-line string: skip the newline and the next line's indentation.
        Some(b'\n' | b' ' | b'\t' | b'\r') => {
            let skipped = s[1..].find(|c: char| !c.is_whitespace()).map_or(s.len(), |p| p + 1);
            (String::new(), skipped)
        }
        _ => ("\\".to_string(), 1),
    }
}

// -----------------------------------------------------------------------------------------------------------
// Modules and names in one file

/// A module defined in a file: `[modules.NAME]`, or `NAME = { … }` under `[modules]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleDef {
    /// Its name.
    pub name: String,
    /// The name as written.
    pub name_range: Range<usize>,
    /// The whole header (or key): where a code lens goes.
    pub header_range: Range<usize>,
}

/// A module as written in one file, for hover: values as written (not interpolated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSummary {
    /// `run`.
    pub run: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// `requires` entries.
    pub requires: Vec<String>,
    /// The health check: `http http://…`, `tcp host:port`, `exec cmd`.
    pub health: Option<String>,
    /// `restart` (the policy, whether written alone or as `restart.policy`).
    pub restart: Option<String>,
}

impl Scan {
    /// Modules defined here, in text order (each name once).
    pub fn modules(&self) -> Vec<ModuleDef> {
        let mut defs: Vec<ModuleDef> = Vec::new();
        let headers =
            self.headers.iter().filter(|h| !h.array && h.path.len() == 2 && h.path[0].name == "modules").map(|h| {
                ModuleDef {
                    name: h.path[1].name.clone(),
                    name_range: h.path[1].range.clone(),
                    header_range: h.range.clone(),
                }
            });
        let inline = self.keys.iter().filter(|k| k.path.len() == 2 && k.path[0] == "modules").map(|k| ModuleDef {
            name: k.path[1].clone(),
            name_range: k.range.clone(),
            header_range: k.start..k.range.end,
        });
        for def in headers.chain(inline) {
            if !defs.iter().any(|d| d.name == def.name) {
                defs.push(def);
            }
        }
        defs.sort_by_key(|d| d.header_range.start);
        defs
    }

    /// Profiles defined here.
    pub fn profiles(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let headers = self.headers.iter().filter(|h| h.path.len() >= 2 && h.path[0].name == "profiles");
        let keys = self.keys.iter().filter(|k| k.path.len() >= 2 && k.path[0] == "profiles").map(|k| &k.path[1]);
        for name in headers.map(|h| &h.path[1].name).chain(keys) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// The module named at `offset`: in a `[modules.NAME…]` header, a `NAME = {…}` definition, a
    /// `requires` entry (the part before `@`) or a profile's `modules` list. With the name's range.
    pub fn module_at(&self, offset: usize) -> Option<(String, Range<usize>)> {
        let within = |r: &Range<usize>| r.start <= offset && offset <= r.end;
        for h in &self.headers {
            if h.path.len() >= 2 && h.path[0].name == "modules" && within(&h.path[1].range) {
                return Some((h.path[1].name.clone(), h.path[1].range.clone()));
            }
        }
        for k in &self.keys {
            if k.path.len() == 2 && k.path[0] == "modules" && within(&k.range) {
                return Some((k.path[1].clone(), k.range.clone()));
            }
        }
        for v in &self.values {
            if v.is_string && v.in_array && is_module_list(&v.path) && within(&v.range) {
                let name = v.text.split('@').next().unwrap_or("").trim();
                return (!name.is_empty()).then(|| (name.to_string(), v.range.clone()));
            }
        }
        None
    }

    /// What this file says about module `name`, if it defines it.
    pub fn summary(&self, name: &str) -> Option<ModuleSummary> {
        let mut s = ModuleSummary::default();
        let mut found = self.modules().iter().any(|m| m.name == name);
        for v in &self.values {
            let [m, module, rest @ ..] = v.path.as_slice() else { continue };
            if m != "modules" || module != name {
                continue;
            }
            found = true;
            match rest.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["run"] => s.run = Some(v.text.clone()),
                ["version"] => s.version = Some(v.text.clone()),
                ["requires"] => s.requires.push(v.text.clone()),
                ["health", kind @ ("exec" | "http" | "tcp")] => s.health = Some(format!("{kind} {}", v.text)),
                ["restart"] | ["restart", "policy"] => s.restart = Some(v.text.clone()),
                _ => {}
            }
        }
        found.then_some(s)
    }
}

/// `modules.X.requires` or `profiles.X.modules`.
fn is_module_list(path: &[String]) -> bool {
    matches!(path, [a, _, b] if (a == "modules" && b == "requires") || (a == "profiles" && b == "modules"))
}

// -----------------------------------------------------------------------------------------------------------
// Completion

/// What a completion inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionKind {
    /// A key.
    Key,
    /// A table name in a header.
    Table,
    /// One of the values a key accepts.
    Value,
    /// A module name.
    Module,
    /// A profile name.
    Profile,
}

/// One completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// What the list shows.
    pub label: String,
    /// What replaces `replace`.
    pub insert: String,
    /// The range replaced (the part already typed).
    pub replace: Range<usize>,
    /// Kind.
    pub kind: CompletionKind,
    /// One line about it.
    pub detail: Option<String>,
}

/// Names defined across the stack (every file of it, and the running project), for completion.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Module names.
    pub modules: Vec<String>,
    /// Profile names.
    pub profiles: Vec<String>,
}

/// The keys valid in a table of the stack file (empty when the table takes free-form keys or is unknown).
pub fn keys_for(table: &[String]) -> &'static [&'static str] {
    let t: Vec<&str> = table.iter().map(String::as_str).collect();
    match t.as_slice() {
        [] => schema::TOP_KEYS,
        ["project"] => schema::PROJECT_KEYS,
        ["alerts"] => schema::ALERTS_KEYS,
        ["defaults"] => schema::DEFAULTS_KEYS,
        ["defaults", "restart"] | ["modules", _, "restart"] => schema::RESTART_KEYS,
        ["defaults", "stop"] | ["modules", _, "stop"] => schema::STOP_KEYS,
        ["defaults", "health"] => schema::DEFAULT_HEALTH_KEYS,
        ["modules", _] => schema::MODULE_KEYS,
        ["modules", _, "health"] => schema::HEALTH_KEYS,
        ["modules", _, "limits"] => schema::LIMITS_KEYS,
        ["modules", _, "backup"] => schema::BACKUP_KEYS,
        ["profiles", _] => schema::PROFILE_KEYS,
        _ => &[],
    }
}

/// Keys whose value may be a table (offered in headers).
const TABLE_KEYS: &[&str] =
    &["project", "defaults", "modules", "profiles", "env", "provides", "health", "restart", "stop", "limits", "backup"];

/// Completions at `offset` in `text`, given the names defined across the stack.
pub fn complete(text: &str, offset: usize, names: &Names) -> Vec<Completion> {
    let cur = cursor(text, offset);
    let scan = scan(text);
    let item = |label: &str, insert: String, kind: CompletionKind, detail: Option<String>| Completion {
        label: label.to_string(),
        insert,
        replace: cur.prefix.clone(),
        kind,
        detail,
    };
    match &cur.place {
        Place::Key => {
            let present = present_keys(&scan, &cur.table);
            keys_for(&cur.table)
                .iter()
                .filter(|k| !present.contains(&k.to_string()))
                .map(|k| item(k, k.to_string(), CompletionKind::Key, key_detail(&cur.table, k).map(str::to_string)))
                .collect()
        }
        Place::Header => keys_for(&cur.table)
            .iter()
            .filter(|k| TABLE_KEYS.contains(k))
            .map(|k| item(k, k.to_string(), CompletionKind::Table, key_detail(&cur.table, k).map(str::to_string)))
            .collect(),
        Place::Value { key, in_array, quoted } => {
            let quote = |s: &str| if *quoted { s.to_string() } else { format!("\"{s}\"") };
            let t: Vec<&str> = cur.table.iter().map(String::as_str).collect();
            match (t.as_slice(), key.as_str(), *in_array) {
                (["modules", this], "requires", true) | (["profiles", this], "modules", true) => {
                    let mut listed: Vec<String> = scan
                        .values
                        .iter()
                        .filter(|v| {
                            v.in_array && v.path.len() == 3 && v.path[..2] == cur.table[..] && v.path[2] == *key
                        })
                        .filter(|v| v.range.end < cur.prefix.start || v.range.start > offset)
                        .map(|v| v.text.split('@').next().unwrap_or("").trim().to_string())
                        .collect();
                    if t[0] == "modules" {
                        listed.push(this.to_string());
                    }
                    names
                        .modules
                        .iter()
                        .filter(|m| !listed.contains(m))
                        .map(|m| item(m, quote(m), CompletionKind::Module, Some("module".into())))
                        .collect()
                }
                (["modules", _] | ["defaults"], "restart", false) | ([.., "restart"], "policy", false) => {
                    schema::RESTART_POLICIES
                        .iter()
                        .map(|p| item(p, quote(p), CompletionKind::Value, Some("restart policy".into())))
                        .collect()
                }
                ([.., "stop"], "signal", false) => units::SIGNALS
                    .iter()
                    .map(|(s, _)| item(s, quote(s), CompletionKind::Value, Some("stop signal".into())))
                    .collect(),
                (["project"], "profile", false) => names
                    .profiles
                    .iter()
                    .map(|p| item(p, quote(p), CompletionKind::Profile, Some("profile".into())))
                    .collect(),
                _ => Vec::new(),
            }
        }
        Place::None => Vec::new(),
    }
}

/// Keys already given in `table` (as keys, or as headers of sub-tables).
fn present_keys(scan: &Scan, table: &[String]) -> Vec<String> {
    let keys = scan.keys.iter().filter(|k| k.path.len() == table.len() + 1 && k.path[..table.len()] == *table);
    let mut present: Vec<String> = keys.map(|k| k.path[table.len()].clone()).collect();
    for h in &scan.headers {
        if h.path.len() == table.len() + 1 && h.path.iter().zip(table).all(|(s, t)| s.name == *t) {
            present.push(h.path[table.len()].name.clone());
        }
    }
    // Dotted keys under a sub-table (`health.http = …`) do not make `health` complete.
    present
}

/// One line about a key, for completion lists.
pub fn key_detail(table: &[String], key: &str) -> Option<&'static str> {
    let in_module = matches!(table, [m, _] if m == "modules");
    Some(match (table.len(), key) {
        (0, "extends") => "another stack file this one overlays",
        (0, "project") => "[project]: name and default profile",
        (0, "defaults") => "[defaults]: restart, stop, health and env for every module",
        (0, "modules") => "[modules.NAME]: one table per module",
        (0, "profiles") => "[profiles.NAME]: named subsets of modules",
        (_, "run") if in_module => "command line (required)",
        (_, "version") if in_module => "semantic version, for `requires` ranges",
        (_, "cwd") if in_module => "working directory, relative to the stack file",
        (_, "env") => "environment variables",
        (_, "env_file") => "env files, relative to the stack file",
        (_, "requires") => "modules that must be healthy first: \"db\" or \"db@>=15\"",
        (_, "provides") => "endpoints published as ${service.NAME}",
        (_, "health") => "health probe: exec, http or tcp, with interval, timeout, retries, start_period",
        (_, "restart") => "\"never\", \"on-failure\", \"always\", or a table with backoff",
        (_, "stop") => "stop signal and timeout",
        (_, "watch") => "globs whose changes restart the module",
        (_, "limits") => "memory and open_files",
        (_, "backup") => "backup hook: run and output",
        (_, "exec") => "healthy when this command exits 0",
        (_, "http") => "healthy when a GET answers 2xx",
        (_, "tcp") => "healthy when HOST:PORT accepts a connection",
        (_, "interval") => "time between checks (default 1s)",
        (_, "timeout") => "time limit",
        (_, "retries") => "consecutive failures before unhealthy (default 3)",
        (_, "start_period") => "grace period after start (default 0s)",
        (_, "policy") => "\"never\", \"on-failure\" or \"always\"",
        (_, "backoff") => "delay range, e.g. \"100ms..30s\"",
        (_, "max_restarts") => "restarts allowed within `window`",
        (_, "window") => "window for counting restarts",
        (_, "stable_after") => "a run this long resets the backoff",
        (_, "signal") => "TERM, INT, QUIT, HUP, KILL, USR1 or USR2",
        (_, "memory") => "memory limit of the process tree, e.g. \"1GiB\"",
        (_, "open_files") => "RLIMIT_NOFILE",
        (_, "output") => "file name of the backup output",
        (_, "modules") => "modules of this profile",
        (_, "name") => "project name",
        (_, "profile") => "default profile",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `text` at the `|` marking the cursor.
    fn at(text: &str) -> (String, usize) {
        let offset = text.find('|').expect("a | marks the cursor");
        (text.replacen('|', "", 1), offset)
    }

    fn cur(text: &str) -> (Vec<String>, Place, String) {
        let (text, offset) = at(text);
        let c = cursor(&text, offset);
        (c.table, c.place, text[c.prefix].to_string())
    }

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn value(key: &str, in_array: bool, quoted: bool) -> Place {
        Place::Value { key: key.into(), in_array, quoted }
    }

    /// Scans on a thread and fails (instead of hanging the suite) when a text is not scanned in time.
    fn scans_in_time(text: &str) {
        let (tx, rx) = std::sync::mpsc::channel();
        let owned = text.to_string();
        std::thread::spawn(move || {
            let _ = scan(&owned);
            let _ = cursor(&owned, owned.len());
            let _ = tx.send(());
        });
        assert!(rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok(), "scanning {text:?} does not end");
    }

    #[test]
    fn an_error_inside_a_bracket_opened_on_the_same_line_ends() {
        // Found by tests/config_fuzz.rs: the error recovery re-read such a line forever (the daemon scans
        // every keystroke of an open stack file).
        for text in ["x = [ }", "x = { a = ] }", "[m]\na = [1, {]\nb = 2", "a = [\n[b]\nc = [ } ]"] {
            scans_in_time(text);
        }
        // Recovery still works: the key after the broken line is found.
        let s = scan("x = [ }\ny = 1\n");
        assert!(s.keys.iter().any(|k| k.path.last().is_some_and(|p| p == "y")), "{:?}", s.keys);
    }

    #[test]
    fn cursor_in_keys_of_tables_inline_tables_and_dotted_keys() {
        assert_eq!(cur("|"), (path(&[]), Place::Key, "".into()));
        assert_eq!(cur("ext|"), (path(&[]), Place::Key, "ext".into()));
        assert_eq!(cur("[modules.api]\nrun = \"x\"\nreq|"), (path(&["modules", "api"]), Place::Key, "req".into()));
        assert_eq!(cur("[modules.api]\n  |\nrun = 1"), (path(&["modules", "api"]), Place::Key, "".into()));
        assert_eq!(
            cur("[modules.api]\nhealth = { tcp = \"h:1\", int|"),
            (path(&["modules", "api", "health"]), Place::Key, "int".into())
        );
        assert_eq!(cur("[modules.api]\nhealth.|"), (path(&["modules", "api", "health"]), Place::Key, "".into()));
        assert_eq!(cur("[modules.\"my api\"]\nst|"), (path(&["modules", "my api"]), Place::Key, "st".into()));
        assert_eq!(cur("[defaults]\nrestart = {| }"), (path(&["defaults", "restart"]), Place::Key, "".into()));
    }

    #[test]
    fn cursor_in_headers() {
        assert_eq!(cur("[|"), (path(&[]), Place::Header, "".into()));
        assert_eq!(cur("[mod|"), (path(&[]), Place::Header, "mod".into()));
        assert_eq!(cur("x = 1\n[modules.api.|"), (path(&["modules", "api"]), Place::Header, "".into()));
        assert_eq!(cur("[modules.api.he|]"), (path(&["modules", "api"]), Place::Header, "he".into()));
    }

    #[test]
    fn cursor_in_values_strings_and_arrays() {
        assert_eq!(
            cur("[modules.w]\nrestart = |"),
            (path(&["modules", "w"]), value("restart", false, false), "".into())
        );
        assert_eq!(
            cur("[modules.w]\nrestart = \"on-f|\""),
            (path(&["modules", "w"]), value("restart", false, true), "on-f".into())
        );
        assert_eq!(
            cur("[modules.w]\nrestart = al|"),
            (path(&["modules", "w"]), value("restart", false, false), "al".into())
        );
        assert_eq!(
            cur("[modules.api]\nrequires = [\"db\", \"q|"),
            (path(&["modules", "api"]), value("requires", true, true), "q".into())
        );
        assert_eq!(
            cur("[modules.api]\nrequires = [\n  \"db\",\n  |\n]"),
            (path(&["modules", "api"]), value("requires", true, false), "".into())
        );
        assert_eq!(
            cur("[modules.api]\nrestart = { policy = \"|\" }"),
            (path(&["modules", "api", "restart"]), value("policy", false, true), "".into())
        );
        assert_eq!(
            cur("[profiles.dev]\nmodules = [|]"),
            (path(&["profiles", "dev"]), value("modules", true, false), "".into())
        );
        // A string with an escaped quote is still open.
        assert_eq!(cur("a = \"x\\\"y|"), (path(&[]), value("a", false, true), "x\\\"y".into()));
    }

    #[test]
    fn nothing_to_offer_in_comments_after_values_and_before_equals() {
        assert_eq!(cur("[modules.api] # re|").1, Place::None);
        assert_eq!(cur("run = \"x\"|").1, Place::None);
        assert_eq!(cur("run = \"x\" |").1, Place::None);
        assert_eq!(cur("run |").1, Place::None);
        assert_eq!(cur("[modules.api]|").1, Place::None);
    }

    #[test]
    fn scan_gives_paths_and_ranges() {
        let text = "[modules.api]\nrun = 'a b'\nrequires = [\"db@>=1\", \"q\"] # c\nhealth = { http = \"h\\u0041\", interval = 5 }\n";
        let s = scan(text);
        assert_eq!(s.headers.len(), 1);
        assert_eq!(&text[s.headers[0].range.clone()], "[modules.api]");
        assert_eq!(&text[s.headers[0].path[1].range.clone()], "api");
        let vals: Vec<(String, &str, bool)> =
            s.values.iter().map(|v| (v.path.join("."), &text[v.range.clone()], v.in_array)).collect();
        assert_eq!(
            vals,
            vec![
                ("modules.api.run".into(), "'a b'", false),
                ("modules.api.requires".into(), "\"db@>=1\"", true),
                ("modules.api.requires".into(), "\"q\"", true),
                ("modules.api.health.http".into(), "\"h\\u0041\"", false),
                ("modules.api.health.interval".into(), "5", false),
            ]
        );
        assert_eq!(s.values[3].text, "hA");
        let keys: Vec<String> = s.keys.iter().map(|k| k.path.join(".")).collect();
        assert_eq!(
            keys,
            [
                "modules.api.run",
                "modules.api.requires",
                "modules.api.health",
                "modules.api.health.http",
                "modules.api.health.interval"
            ]
        );
    }

    #[test]
    fn multiline_strings_and_arrays() {
        let text = "a = \"\"\"\nx \"y\" \"\"\"\nb = '''\nz'''\nc = [\n  1, # one\n  [2, 3],\n]\nd = 4\n";
        let s = scan(text);
        let vals: Vec<(String, String)> = s.values.iter().map(|v| (v.path.join("."), v.text.clone())).collect();
        assert_eq!(
            vals,
            vec![
                ("a".into(), "x \"y\" ".into()),
                ("b".into(), "z".into()),
                ("c".into(), "1".into()),
                ("c".into(), "2".into()),
                ("c".into(), "3".into()),
                ("d".into(), "4".into()),
            ]
        );
    }

    #[test]
    fn unclosed_arrays_and_tables_do_not_swallow_the_rest() {
        let text = "[modules.a]\nrequires = [\"db\"\nrun = \"x\"\n[modules.b]\nhealth = { tcp = \"h:1\"\n[modules.c]\nrun = 1\n";
        let s = scan(text);
        let names: Vec<String> = s.modules().into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let vals: Vec<String> = s.values.iter().map(|v| v.path.join(".")).collect();
        assert_eq!(vals, ["modules.a.requires", "modules.a.run", "modules.b.health.tcp", "modules.c.run"]);
        // Garbage on a line is skipped up to its end.
        let s = scan("[modules.a]\nrun = \"x\" junk\n= 3\nversion = \"1\"\n");
        let vals: Vec<String> = s.values.iter().map(|v| v.path.join(".")).collect();
        assert_eq!(vals, ["modules.a.run", "modules.a.version"]);
    }

    #[test]
    fn modules_profiles_and_what_is_at_an_offset() {
        let text = "[modules.db]\nrun = \"pg\"\n[modules]\nq = { run = \"r\", requires = [\"db@>=1\"] }\n\
                    [modules.db.health]\ntcp = \"h:1\"\n[profiles.dev]\nmodules = [\"q\"]\n";
        let s = scan(text);
        let defs: Vec<(String, &str)> = s.modules().into_iter().map(|m| (m.name, &text[m.header_range])).collect();
        assert_eq!(defs, vec![("db".into(), "[modules.db]"), ("q".into(), "q")]);
        assert_eq!(s.profiles(), ["dev"]);
        let name_at = |needle: &str, delta: usize| s.module_at(text.find(needle).unwrap() + delta).map(|(n, _)| n);
        assert_eq!(name_at("db]", 1), Some("db".into()));
        assert_eq!(name_at("\"db@", 2), Some("db".into()));
        assert_eq!(name_at("db.health", 0), Some("db".into()));
        assert_eq!(name_at("[\"q\"]", 2), Some("q".into()));
        assert_eq!(name_at("run = \"pg", 1), None);
        let db = s.summary("db").unwrap();
        assert_eq!((db.run.as_deref(), db.health.as_deref()), (Some("pg"), Some("tcp h:1")));
        assert_eq!(s.summary("q").unwrap().requires, ["db@>=1"]);
        assert_eq!(s.summary("nope"), None);
    }

    /// Scalars as toml_edit sees them: (path, in array, string content or source text).
    fn reference(text: &str) -> Option<Vec<(String, bool, String)>> {
        type Out = Vec<(String, bool, String)>;
        fn value(src: &str, path: &str, in_array: bool, v: &toml_edit::Value, out: &mut Out) {
            match v {
                toml_edit::Value::String(s) => out.push((path.to_string(), in_array, s.value().clone())),
                toml_edit::Value::Array(a) => a.iter().for_each(|v| value(src, path, true, v, out)),
                toml_edit::Value::InlineTable(t) => {
                    t.iter().for_each(|(k, v)| value(src, &format!("{path}.{k}"), false, v, out));
                }
                other => out.push((path.to_string(), in_array, src[other.span().unwrap()].to_string())),
            }
        }
        fn table(src: &str, path: &str, t: &dyn toml_edit::TableLike, out: &mut Out) {
            for (k, item) in t.iter() {
                let p = if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
                match item {
                    toml_edit::Item::Value(v) => value(src, &p, false, v, out),
                    toml_edit::Item::Table(t) => table(src, &p, t, out),
                    _ => {}
                }
            }
        }
        let doc = toml_edit::Document::parse(text).ok()?;
        let mut out = Vec::new();
        table(text, "", doc.as_table(), &mut out);
        out.sort();
        Some(out)
    }

    #[test]
    fn agrees_with_toml_edit_on_every_fixture_and_example() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let mut files = Vec::new();
        let mut dirs = vec![root.join("framework/tests/fixtures"), root.join("examples")];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "toml") {
                    files.push(p);
                }
            }
        }
        let mut compared = 0;
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let Some(want) = reference(&text) else { continue };
            let mut got: Vec<(String, bool, String)> =
                scan(&text).values.into_iter().map(|v| (v.path.join("."), v.in_array, v.text)).collect();
            got.sort();
            assert_eq!(got, want, "{}", file.display());
            compared += 1;
        }
        assert!(compared >= 15, "only {compared} files compared");
    }

    fn labels(text: &str, names: &Names) -> Vec<String> {
        let (text, offset) = at(text);
        complete(&text, offset, names).into_iter().map(|c| c.label).collect()
    }

    #[test]
    fn completes_keys_not_yet_given() {
        let names = Names::default();
        let got = labels("[modules.api]\nrun = \"x\"\nhealth = {}\n|", &names);
        let want: Vec<&str> = schema::MODULE_KEYS.iter().copied().filter(|k| !["run", "health"].contains(k)).collect();
        assert_eq!(got, want);
        assert_eq!(labels("[modules.api]\nhealth = { http = \"x\", | }", &names)[..2], ["exec", "tcp"]);
        assert_eq!(labels("[project]\n|", &names), ["name", "profile"]);
        assert_eq!(
            labels("[modules.api.|", &names),
            ["env", "provides", "health", "restart", "stop", "limits", "backup"]
        );
        assert!(labels("[modules.api]\nenv = { | }", &names).is_empty());
    }

    #[test]
    fn completes_module_names_policies_signals_and_profiles() {
        let names = Names { modules: path(&["db", "queue", "api"]), profiles: path(&["dev", "full"]) };
        assert_eq!(labels("[modules.api]\nrequires = [\"db\", |]", &names), ["queue"]);
        assert_eq!(labels("[profiles.p]\nmodules = [\"|\"]", &names), ["db", "queue", "api"]);
        assert_eq!(labels("[modules.w]\nrestart = \"|\"", &names), ["never", "on-failure", "always"]);
        assert_eq!(labels("[defaults]\nstop = { signal = |", &names)[0], "TERM");
        assert_eq!(labels("[project]\nprofile = \"d|\"", &names), ["dev", "full"]);
        // Quoting follows the cursor: inside quotes the name alone, else a quoted string replacing the word.
        let (text, offset) = at("[modules.api]\nrequires = [qu|");
        let c = &complete(&text, offset, &names)[0];
        assert_eq!((c.insert.as_str(), &text[c.replace.clone()]), ("\"db\"", "qu"));
        let (text, offset) = at("[modules.api]\nrequires = [\"qu|\"]");
        let q = complete(&text, offset, &names).into_iter().find(|c| c.label == "queue").unwrap();
        assert_eq!((q.insert.as_str(), &text[q.replace.clone()]), ("queue", "qu"));
    }
}
