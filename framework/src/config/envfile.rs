//! `env_file` parsing: the common `.env` dialect.
//!
//! - `KEY=VALUE` per line; blank lines and lines starting with `#` are ignored; `export KEY=VALUE` is
//!   accepted so the same file can be `source`d by a shell.
//! - Unquoted values end at the line's end or at ` #` (a comment) and are trimmed.
//! - `"double quoted"` values may span lines and understand `\n`, `\t`, `\r`, `\"`, `\\` and `\$`.
//! - `'single quoted'` values are taken literally: no escapes and no `${…}` interpolation.
//! - A key given twice: the later line wins.

use super::decode::{EnvVar, Str};
use super::diagnostic::{FileId, Issue, Span};
use super::interpolate::is_var_name;

/// Parses an env file; every bad line is reported and skipped.
pub(crate) fn parse(file: FileId, text: &str) -> (Vec<EnvVar>, Vec<Issue>) {
    let mut vars = Vec::new();
    let mut issues = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let line_end = line_end(text, pos);
        match parse_line(file, text, pos, line_end) {
            Ok((Some(var), next)) => {
                vars.push(var);
                pos = next;
            }
            Ok((None, next)) => pos = next,
            Err(issue) => {
                issues.push(issue);
                pos = line_end + 1;
            }
        }
    }
    (vars, issues)
}

fn line_end(text: &str, from: usize) -> usize {
    text[from..].find('\n').map_or(text.len(), |i| from + i)
}

/// Parses the entry starting on the line `start..end`; returns it and where the next line starts.
fn parse_line(file: FileId, text: &str, start: usize, end: usize) -> Result<(Option<EnvVar>, usize), Issue> {
    let line = text[start..end].trim_end_matches('\r');
    let indent = line.len() - line.trim_start().len();
    let body = &line[indent..];
    if body.is_empty() || body.starts_with('#') {
        return Ok((None, end + 1));
    }
    let body_start = start + indent;
    let export_len = body
        .strip_prefix("export")
        .filter(|r| r.starts_with([' ', '\t']))
        .map_or(0, |r| body.len() - r.trim_start().len());
    let entry_start = body_start + export_len;
    let entry = &text[entry_start..start + line.len()];
    let Some(eq) = entry.find('=') else {
        return Err(Issue::new(Span::new(file, entry_start..start + line.len()), "expected `KEY=VALUE`")
            .expected("`KEY=VALUE`, `export KEY=VALUE`, a `# comment` or a blank line"));
    };
    let name = entry[..eq].trim_end();
    if !is_var_name(name) {
        return Err(Issue::new(
            Span::new(file, entry_start..entry_start + name.len().max(1)),
            format!("invalid variable name `{name}`"),
        )
        .expected("letters, digits and `_`, not starting with a digit"));
    }
    let after_eq = entry_start + eq + 1;
    let value_start =
        after_eq + (text[after_eq..end].len() - text[after_eq..end].trim_start_matches([' ', '\t']).len());
    let (value, span, literal, next) = match text[value_start..].chars().next() {
        Some(quote @ ('"' | '\'')) => quoted(file, text, value_start, quote)?,
        _ => unquoted(text, value_start, start + line.len(), end),
    };
    let var = EnvVar {
        name: name.to_string(),
        value: Str { value, span: Span::new(file, span), key: name.to_string() },
        literal,
    };
    Ok((Some(var), next))
}

type Parsed = (String, std::ops::Range<usize>, bool, usize);

fn unquoted(text: &str, from: usize, line_end: usize, next_line: usize) -> Parsed {
    let raw = &text[from..line_end];
    let without_comment = match raw.find(" #").or_else(|| raw.find("\t#")) {
        Some(i) => &raw[..i],
        None if raw.starts_with('#') => "",
        None => raw,
    };
    let value = without_comment.trim_end();
    (value.to_string(), from..from + value.len(), false, next_line + 1)
}

fn quoted(file: FileId, text: &str, open: usize, quote: char) -> Result<Parsed, Issue> {
    let mut value = String::new();
    let mut chars = text[open + 1..].char_indices();
    let close = loop {
        let Some((i, c)) = chars.next() else {
            let end = line_end(text, open);
            return Err(Issue::new(Span::new(file, open..end), format!("unterminated {quote}-quoted value"))
                .expected(format!("a closing `{quote}`")));
        };
        match c {
            c if c == quote => break open + 1 + i,
            '\\' if quote == '"' => match chars.next().map(|(_, c)| c) {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some('r') => value.push('\r'),
                // Keep a literal dollar out of interpolation.
                Some('$') => value.push_str("$$"),
                Some(other @ ('"' | '\\')) => value.push(other),
                Some(other) => {
                    value.push('\\');
                    value.push(other);
                }
                None => value.push('\\'),
            },
            c => value.push(c),
        }
    };
    let rest_end = line_end(text, close);
    let rest = text[close + 1..rest_end].trim_end_matches('\r').trim();
    if !rest.is_empty() && !rest.starts_with('#') {
        let at = close + 1 + (text[close + 1..rest_end].len() - text[close + 1..rest_end].trim_start().len());
        return Err(Issue::new(Span::new(file, at..at + rest.len()), "unexpected text after the closing quote")
            .expected("a `# comment` or the end of the line"));
    }
    Ok((value, open..close + 1, quote == '\'', rest_end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str) -> Vec<(String, String, bool)> {
        let (vars, issues) = parse(0, text);
        assert!(issues.is_empty(), "{issues:?}");
        vars.into_iter().map(|v| (v.name, v.value.value, v.literal)).collect()
    }

    #[test]
    fn reads_the_common_dialect() {
        let text = "# comment\n\nA=1\nexport B = two words  # note\nC=\"x\\ny #z\"\nD='${raw}'\nE=\nF=\"multi\nline\"\nG=a#b\r\n";
        let got = vars(text);
        let want = [
            ("A", "1", false),
            ("B", "two words", false),
            ("C", "x\ny #z", false),
            ("D", "${raw}", true),
            ("E", "", false),
            ("F", "multi\nline", false),
            ("G", "a#b", false),
        ];
        assert_eq!(got, want.map(|(a, b, c)| (a.to_string(), b.to_string(), c)));
    }

    #[test]
    fn value_spans_point_into_the_file() {
        let text = "A=1\nB = \"hi\"\n";
        let (vars, _) = parse(0, text);
        assert_eq!(vars[1].value.span.range, 8..12);
        assert_eq!(&text[vars[0].value.span.range.clone()], "1");
    }

    #[test]
    fn reports_bad_lines_and_keeps_going() {
        let (vars, issues) = parse(0, "oops\n1X=2\nY=\"open\nZ=3\n");
        let messages: Vec<_> = issues.iter().map(|i| (i.message.clone(), i.span.range.clone())).collect();
        assert_eq!(
            messages,
            vec![
                ("expected `KEY=VALUE`".to_string(), 0..4),
                ("invalid variable name `1X`".to_string(), 5..7),
                ("unterminated \"-quoted value".to_string(), 12..17),
            ]
        );
        assert_eq!(vars.len(), 1);
    }
}
