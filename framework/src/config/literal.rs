//! Maps positions inside a decoded string back to the source text of its literal, so an error about
//! `${PORTT}` in `run = "pg -p ${PORTT}"` points at `${PORTT}`, even when the literal has escapes
//! (`"\u00e9"`), line-ending backslashes or is a multi-line string.

/// For a literal's source text (`"…"`, `'…'`, `"""…"""`, `'''…'''`, or an unquoted env-file value) and the
/// string it decodes to, returns for every byte offset of `decoded` (and its end) the byte offset in
/// `raw`. Returns `None` if re-decoding `raw` does not give `decoded` (then callers point at the whole
/// literal instead of guessing).
pub(crate) fn offsets(raw: &str, decoded: &str) -> Option<Vec<usize>> {
    let (body_start, body_end, escapes) = if raw.len() >= 6 && raw.starts_with("\"\"\"") && raw.ends_with("\"\"\"") {
        (skip_first_newline(raw, 3), raw.len() - 3, true)
    } else if raw.len() >= 6 && raw.starts_with("'''") && raw.ends_with("'''") {
        (skip_first_newline(raw, 3), raw.len() - 3, false)
    } else if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        (1, raw.len() - 1, true)
    } else if raw.len() >= 2 && raw.starts_with('\'') && raw.ends_with('\'') {
        (1, raw.len() - 1, false)
    } else {
        (0, raw.len(), false)
    };
    let body = raw.get(body_start..body_end)?;
    let (text, map) = if escapes { decode_basic(body) } else { identity(body) };
    if text != decoded {
        return None;
    }
    Some(map.into_iter().map(|o| o + body_start).collect())
}

/// A newline right after the opening delimiter of a multi-line string is not part of the value.
fn skip_first_newline(raw: &str, start: usize) -> usize {
    let rest = &raw[start..];
    if rest.starts_with("\r\n") {
        start + 2
    } else if rest.starts_with('\n') {
        start + 1
    } else {
        start
    }
}

fn identity(body: &str) -> (String, Vec<usize>) {
    ((body.to_string()), (0..=body.len()).collect())
}

/// Decodes a basic string body (TOML escapes, including the multi-line "line-ending backslash") while
/// recording where each decoded byte came from.
fn decode_basic(body: &str) -> (String, Vec<usize>) {
    let mut text = String::new();
    let mut map = Vec::new();
    let mut chars = body.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let decoded = if c == '\\' {
            match chars.next() {
                Some((_, next)) if next.is_whitespace() => {
                    // Line-ending backslash: drop all whitespace and newlines that follow.
                    while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
                    continue;
                }
                Some((_, esc)) => unescape(esc, &mut chars),
                None => None,
            }
        } else {
            Some(c)
        };
        let decoded = decoded.unwrap_or('\u{fffd}');
        for _ in 0..decoded.len_utf8() {
            map.push(at);
        }
        text.push(decoded);
    }
    map.push(body.len());
    (text, map)
}

fn unescape(esc: char, chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> Option<char> {
    let hex = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, n: usize| {
        let digits: String = (0..n).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
        u32::from_str_radix(&digits, 16).ok().and_then(char::from_u32)
    };
    match esc {
        'b' => Some('\u{8}'),
        't' => Some('\t'),
        'n' => Some('\n'),
        'f' => Some('\u{c}'),
        'r' => Some('\r'),
        'e' => Some('\u{1b}'),
        '"' => Some('"'),
        '\\' => Some('\\'),
        '$' => Some('$'),
        'x' => hex(chars, 2),
        'u' => hex(chars, 4),
        'U' => hex(chars, 8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(raw: &str, decoded: &str, at: usize) -> Option<usize> {
        offsets(raw, decoded).map(|m| m[at])
    }

    #[test]
    fn maps_through_escapes_and_delimiters() {
        assert_eq!(pos(r#""a ${X}""#, "a ${X}", 2), Some(3));
        assert_eq!(pos(r#""\u00e9 ${X}""#, "é ${X}", 3), Some(8));
        assert_eq!(pos("'a ${X}'", "a ${X}", 2), Some(3));
        assert_eq!(pos("\"\"\"\nab \\\n   cd ${Y}\"\"\"", "ab cd ${Y}", 6), Some(15));
        assert_eq!(pos("'''\nx ${Y}'''", "x ${Y}", 2), Some(6));
        assert_eq!(pos("plain ${Z}", "plain ${Z}", 6), Some(6));
        assert_eq!(pos("\"x\"", "y", 0), None);
    }
}
