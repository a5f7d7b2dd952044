//! Located errors. Every stage of the loader reports an [`Issue`] carrying a byte [`Span`] into one of the
//! files held by the [`SourceMap`]; they become [`Diagnostic`]s (line, column, source line) only at the end,
//! so no stage needs to know how positions are counted.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Index of a file in the [`SourceMap`].
pub(crate) type FileId = usize;

/// A byte range in one source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub file: FileId,
    pub range: Range<usize>,
}

impl Span {
    pub fn new(file: FileId, range: Range<usize>) -> Span {
        Span { file, range }
    }

    /// A sub-range of this span, given as offsets relative to its start.
    pub fn slice(&self, rel: Range<usize>) -> Span {
        let start = (self.range.start + rel.start).min(self.range.end);
        let end = (self.range.start + rel.end).clamp(start, self.range.end);
        Span::new(self.file, start..end)
    }
}

/// Every file the loader read (or tried to read), with its text, so spans can be turned into positions.
#[derive(Debug, Default)]
pub(crate) struct SourceMap {
    files: Vec<SourceFile>,
}

#[derive(Debug)]
struct SourceFile {
    /// Path as shown to the user (joined from the path given to `load`, not canonicalized).
    path: PathBuf,
    text: String,
}

impl SourceMap {
    /// Registers a file and returns its id. Unreadable files are added with empty text so that errors about
    /// them still have a place to point at.
    pub fn add(&mut self, path: &Path, text: String) -> FileId {
        self.files.push(SourceFile { path: path.to_path_buf(), text });
        self.files.len() - 1
    }

    pub fn text(&self, file: FileId) -> &str {
        self.files.get(file).map_or("", |f| f.text.as_str())
    }

    pub fn path(&self, file: FileId) -> &Path {
        self.files.get(file).map_or(Path::new(""), |f| f.path.as_path())
    }

    /// The source text covered by a span ("" if the span is out of range).
    pub fn snippet(&self, span: &Span) -> &str {
        self.text(span.file).get(span.range.clone()).unwrap_or("")
    }

    /// `path:line:column` of a span's start, for messages that mention a second place.
    pub fn describe(&self, span: &Span) -> String {
        let (line, col) = line_col(self.text(span.file), span.range.start);
        format!("{}:{}:{}", self.path(span.file).display(), line, col)
    }

    /// 1-based line of a span's start.
    pub fn line(&self, span: &Span) -> u32 {
        line_col(self.text(span.file), span.range.start).0
    }

    /// Turns an issue into a positioned diagnostic.
    pub fn diagnostic(&self, issue: Issue) -> Diagnostic {
        let text = self.text(issue.span.file);
        let start = clamp_to_char_boundary(text, issue.span.range.start);
        let end = clamp_to_char_boundary(text, issue.span.range.end.max(start));
        let (line, column) = line_col(text, start);
        let (end_line, end_column) = line_col(text, end);
        Diagnostic {
            file: self.path(issue.span.file).to_path_buf(),
            line,
            column,
            end_line,
            end_column,
            byte_range: start..end,
            key: issue.key,
            message: issue.message,
            expected: issue.expected,
            help: issue.help,
            source_line: line_text(text, start).to_string(),
        }
    }
}

fn clamp_to_char_boundary(text: &str, mut offset: usize) -> usize {
    offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// 1-based line and 1-based column counted in characters.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..clamp_to_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (to_u32(line), to_u32(column))
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The whole line containing `offset`, without its line terminator.
fn line_text(text: &str, offset: usize) -> &str {
    let offset = clamp_to_char_boundary(text, offset);
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    text[start..end].trim_end_matches('\r')
}

/// An error found by some loader stage, not yet positioned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Issue {
    pub span: Span,
    pub message: String,
    pub key: Option<String>,
    pub expected: Option<String>,
    pub help: Option<String>,
}

impl Issue {
    pub fn new(span: Span, message: impl Into<String>) -> Issue {
        Issue { span, message: message.into(), key: None, expected: None, help: None }
    }

    pub fn key(mut self, key: impl Into<String>) -> Issue {
        self.key = Some(key.into());
        self
    }

    pub fn expected(mut self, expected: impl Into<String>) -> Issue {
        self.expected = Some(expected.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Issue {
        self.help = Some(help.into());
        self
    }

    /// Sets the help only if there is one (e.g. a "did you mean" that may not have found anything).
    pub fn maybe_help(mut self, help: Option<String>) -> Issue {
        if help.is_some() {
            self.help = help;
        }
        self
    }
}

/// One error in a stack file, positioned for people (rustc-like [`Display`](fmt::Display)) and editors
/// (LSP diagnostics: 1-based line/column, columns counted in characters; the end is exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the error is in, as reached from the path given to [`load`](super::load).
    pub file: PathBuf,
    /// 1-based line of the start of the offending text.
    pub line: u32,
    /// 1-based column (in characters) of the start.
    pub column: u32,
    /// 1-based line of the end.
    pub end_line: u32,
    /// 1-based column (in characters) just past the end.
    pub end_column: u32,
    /// Byte offsets of the offending text in the file.
    pub byte_range: Range<usize>,
    /// Dotted key path, e.g. `modules.api.health.interval`, when the error is about a key or its value.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What would have been accepted.
    pub expected: Option<String>,
    /// A hint, e.g. "did you mean `health`?".
    pub help: Option<String>,
    /// The text of line `line` (without its line terminator), for rendering.
    pub source_line: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = self.line.to_string();
        let pad = " ".repeat(number.len());
        if self.file.as_os_str().is_empty() {
            // Not about a place in a file (see `Diagnostic::internal`).
            return write!(f, "error: {}", self.message);
        }
        writeln!(f, "error: {}", self.message)?;
        writeln!(f, "{pad}--> {}:{}:{}", self.file.display(), self.line, self.column)?;
        writeln!(f, "{pad} |")?;
        let (shown, caret_start, caret_len) = self.caret_layout();
        writeln!(f, "{number} | {shown}")?;
        write!(f, "{pad} | {}{}", " ".repeat(caret_start), "^".repeat(caret_len))?;
        if let Some(expected) = &self.expected {
            write!(f, "\n{pad} = expected: {expected}")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n{pad} = help: {help}")?;
        }
        Ok(())
    }
}

impl Diagnostic {
    /// An error that is not about a place in a stack file (e.g. the loader could not run at all). It has
    /// an empty `file` and renders as its message only.
    pub fn internal(message: &str) -> Diagnostic {
        Diagnostic {
            file: PathBuf::new(),
            line: 1,
            column: 1,
            end_line: 1,
            end_column: 1,
            byte_range: 0..0,
            key: None,
            message: message.to_string(),
            expected: None,
            help: None,
            source_line: String::new(),
        }
    }

    /// The source line with tabs expanded, and where the carets go (in display columns).
    fn caret_layout(&self) -> (String, usize, usize) {
        let mut shown = String::new();
        let (mut caret_start, mut caret_end) = (None, None);
        let start_col = self.column as usize;
        // A span running past this line gets carets up to the line's end.
        let end_col = if self.end_line == self.line { self.end_column as usize } else { usize::MAX };
        for (i, ch) in self.source_line.chars().enumerate() {
            let col = i + 1;
            if col == start_col {
                caret_start = Some(shown.chars().count());
            }
            if col == end_col {
                caret_end = Some(shown.chars().count());
            }
            if ch == '\t' { shown.push_str("    ") } else { shown.push(ch) }
        }
        let width = shown.chars().count();
        let start = caret_start.unwrap_or(width);
        let end = caret_end.unwrap_or(width).max(start + 1);
        (shown, start, end - start)
    }
}

impl std::error::Error for Diagnostic {}

/// Renders diagnostics one after the other, separated by blank lines, followed by a count — what the CLI
/// prints when a stack file does not load.
pub fn format_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let mut out: Vec<String> = diagnostics.iter().map(|d| d.to_string()).collect();
    match diagnostics.len() {
        0 => {}
        1 => out.push("error: the stack file has 1 error".to_string()),
        n => out.push(format!("error: the stack file has {n} errors")),
    }
    out.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(text: &str, range: Range<usize>) -> String {
        let mut map = SourceMap::default();
        let file = map.add(Path::new("s.toml"), text.to_string());
        let issue = Issue::new(Span::new(file, range), "boom").expected("x").help("y");
        map.diagnostic(issue).to_string()
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let mut map = SourceMap::default();
        let file = map.add(Path::new("s.toml"), "a = \"é\"\nbé = 1\n".to_string());
        let d = map.diagnostic(Issue::new(Span::new(file, 13..14), "m"));
        assert_eq!((d.line, d.column, d.end_line, d.end_column), (2, 4, 2, 5));
        assert_eq!(d.source_line, "bé = 1");
    }

    #[test]
    fn display_is_rustc_like() {
        assert_eq!(
            render("x = 1\nhelth = 2\n", 6..11),
            "error: boom\n --> s.toml:2:1\n  |\n2 | helth = 2\n  | ^^^^^\n  = expected: x\n  = help: y"
        );
    }

    #[test]
    fn internal_errors_render_as_their_message() {
        assert_eq!(Diagnostic::internal("reload failed").to_string(), "error: reload failed");
    }

    #[test]
    fn empty_span_gets_one_caret_and_multiline_span_stops_at_line_end() {
        assert!(render("ab\n", 1..1).ends_with("1 | ab\n  |  ^\n  = expected: x\n  = help: y"));
        assert!(render("ab\ncd\n", 0..5).contains("1 | ab\n  | ^^\n"));
    }
}
