//! What a search text means, in one place: the lexer behind both the FTS5 query ([`super::fts_query`]) and
//! the in-process matcher used on log rows that are committed but not yet in the FTS index (the "tail", see
//! the module docs of [`super`]).
//!
//! The matcher mirrors FTS5's `unicode61 remove_diacritics 2` tokenizer: tokens are runs of letters and
//! digits, compared case-insensitively, with the diacritics of Latin letters removed (`cafe` finds `café`).
//! It decides which lines match: the full-text index only narrows a search down to blocks that may hold
//! them, so the tail and the indexed part of the store answer alike.

/// One user term: a word or a quoted phrase, split into lowercase tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Term {
    /// The text as typed (without quotes and trailing `*`).
    pub raw: String,
    /// Lowercase tokens; a phrase when more than one.
    pub tokens: Vec<String>,
    /// Trailing `*`: the last token is a prefix.
    pub prefix: bool,
}

/// Splits a search text into terms: whitespace-separated words, `"quoted phrases"` (an unclosed quote
/// runs to the end), a trailing `*` for prefix. Terms without a letter or digit are dropped.
pub(crate) fn lex(text: &str) -> Vec<Term> {
    let mut terms = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut word = String::new();
        if c == '"' {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                word.push(c);
            }
            while chars.peek() == Some(&'*') {
                chars.next();
                word.push('*');
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '"' {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        let prefix = word.ends_with('*');
        let raw = word.trim_end_matches('*');
        let tokens: Vec<String> = tokens(raw).map(|(_, _, t)| t).collect();
        if tokens.is_empty() {
            continue;
        }
        terms.push(Term { raw: raw.to_string(), tokens, prefix });
    }
    terms
}

/// Tokens of a text: `(start, end, lowercase)` for each run of letters and digits.
pub(crate) fn tokens(text: &str) -> impl Iterator<Item = (usize, usize, String)> + '_ {
    let mut it = text.char_indices().peekable();
    std::iter::from_fn(move || {
        loop {
            let (start, c) = it.next()?;
            if !c.is_alphanumeric() {
                continue;
            }
            let mut end = start + c.len_utf8();
            let mut tok = String::new();
            tok.extend(c.to_lowercase().map(fold));
            while let Some(&(i, c)) = it.peek() {
                if !c.is_alphanumeric() {
                    break;
                }
                tok.extend(c.to_lowercase().map(fold));
                end = i + c.len_utf8();
                it.next();
            }
            return Some((start, end, tok));
        }
    })
}

/// The Latin letters U+00C0–U+024F with their diacritics removed (by canonical decomposition; letters
/// without one map to themselves), lowercase where folded.
const FOLDED: [&str; 10] = [
    "aaaaaaÆceeeeiiiiÐnooooo×ØuuuuyÞßaaaaaaæc",
    "eeeeiiiiðnooooo÷øuuuuyþyaaaaaaccccccccdd",
    "ĐđeeeeeeeeeegggggggghhĦħiiiiiiiiiıĲĳjjkk",
    "ĸllllllĿŀŁłnnnnnnŉŊŋooooooŒœrrrrrrssssss",
    "ssttttŦŧuuuuuuuuuuuuwwyyyzzzzzzſƀƁƂƃƄƅƆƇ",
    "ƈƉƊƋƌƍƎƏƐƑƒƓƔƕƖƗƘƙƚƛƜƝƞƟooƢƣƤƥƦƧƨƩƪƫƬƭƮu",
    "uƱƲƳƴƵƶƷƸƹƺƻƼƽƾƿǀǁǂǃǄǅǆǇǈǉǊǋǌaaiioouuuuu",
    "uuuuuǝaaaaǢǣǤǥggkkooooǮǯjǱǲǳggǶǷnnaaǼǽǾǿ",
    "aaaaeeeeiiiioooorrrruuuussttȜȝhhȠȡȢȣȤȥaa",
    "eeooooooooyyȴȵȶȷȸȹȺȻȼȽȾȿɀɁɂɃɄɅɆɇɈɉɊɋɌɍɎɏ",
];

/// `c` without its diacritic, for the Latin letters that have one; anything else unchanged.
fn fold(c: char) -> char {
    static TABLE: std::sync::OnceLock<Vec<char>> = std::sync::OnceLock::new();
    let cp = c as u32;
    if !(0xC0..0x250).contains(&cp) {
        return c;
    }
    let table = TABLE.get_or_init(|| FOLDED.iter().flat_map(|s| s.chars()).collect());
    table.get((cp - 0xC0) as usize).copied().unwrap_or(c)
}

/// All terms of a search, ready to test rows.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    terms: Vec<Term>,
}

/// Result of a match: the byte ranges to highlight and each term's number of occurrences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub ranges: Vec<(usize, usize)>,
    pub counts: Vec<u32>,
    pub doc_tokens: usize,
}

impl Matcher {
    /// None when the text has nothing searchable.
    pub(crate) fn new(text: &str) -> Option<Matcher> {
        let terms = lex(text);
        if terms.is_empty() { None } else { Some(Matcher { terms }) }
    }

    pub(crate) fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// Some(found) when every term occurs in `text` (phrases as consecutive tokens).
    pub(crate) fn find(&self, text: &str) -> Option<Found> {
        let toks: Vec<(usize, usize, String)> = tokens(text).collect();
        let mut ranges = Vec::new();
        let mut counts = Vec::with_capacity(self.terms.len());
        for term in &self.terms {
            let n = term.tokens.len();
            let mut count = 0;
            if toks.len() >= n {
                for i in 0..=toks.len() - n {
                    let ok = term.tokens.iter().enumerate().all(|(k, want)| {
                        let have = &toks[i + k].2;
                        if term.prefix && k == n - 1 { have.starts_with(want.as_str()) } else { have == want }
                    });
                    if ok {
                        count += 1;
                        ranges.push((toks[i].0, toks[i + n - 1].1));
                    }
                }
            }
            if count == 0 {
                return None;
            }
            counts.push(count);
        }
        ranges.sort_unstable();
        Some(Found { ranges, counts, doc_tokens: toks.len() })
    }
}

/// A snippet in the same shape FTS5's `snippet()` gives: the matched ranges wrapped in `open`/`close`,
/// cut to about `max_chars` around the first match with `…` where text was left out.
pub(crate) fn highlight(text: &str, ranges: &[(usize, usize)], open: char, close: char, max_chars: usize) -> String {
    let first = ranges.first().map_or(0, |r| r.0);
    // Window start: about a third of the budget before the first match, on a char boundary.
    let mut start = first.saturating_sub(max_chars / 3);
    while start > 0 && !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + max_chars * 4).min(text.len()); // bytes; trimmed by chars below
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut pos = start;
    let mut chars_out = 0;
    let mut cut = false;
    let mut ri = ranges.iter().skip_while(|r| r.0 < start).peekable();
    while pos < end {
        if chars_out >= max_chars {
            cut = true;
            break;
        }
        if let Some(&&(s, e)) = ri.peek()
            && s == pos
        {
            out.push(open);
            out.push_str(&text[s..e.min(text.len())]);
            out.push(close);
            chars_out += text[s..e.min(text.len())].chars().count();
            pos = e;
            ri.next();
            continue;
        }
        let Some(c) = text[pos..].chars().next() else { break };
        out.push(c);
        chars_out += 1;
        pos += c.len_utf8();
    }
    if cut || pos < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexing_table() {
        let t = |s: &str| lex(s).into_iter().map(|t| (t.tokens.join(" "), t.prefix)).collect::<Vec<_>>();
        assert_eq!(t("Worker exit 1"), vec![("worker".into(), false), ("exit".into(), false), ("1".into(), false)]);
        assert_eq!(
            t("\"connection refused\" conn*"),
            vec![("connection refused".into(), false), ("conn".into(), true)]
        );
        assert_eq!(t("a:b foo-bar"), vec![("a b".into(), false), ("foo bar".into(), false)]);
        assert_eq!(t("- * \" NEAR( :"), vec![("near".into(), false)]);
        assert_eq!(t(""), vec![]);
        assert_eq!(t("\"unclosed phrase"), vec![("unclosed phrase".into(), false)]);
    }

    #[test]
    fn matching_table() {
        let cases = [
            ("timeout", "upstream Timeout after 5s", true),
            ("time*", "upstream Timeout after 5s", true),
            ("time", "upstream Timeout after 5s", false),
            ("\"after 5s\"", "upstream Timeout after 5s", true),
            ("\"5s after\"", "upstream Timeout after 5s", false),
            ("a:b", "key a=b here", true),
            ("upstream missing", "upstream Timeout", false),
            ("ÉCOLE", "école fermée", true),
            ("ecole", "ÉCOLE fermée", true),
            ("fermee", "école fermée", true),
            ("ǘ", "u", true),
            ("ø", "o", false), // no canonical decomposition: not folded
        ];
        for (q, text, want) in cases {
            assert_eq!(Matcher::new(q).unwrap().find(text).is_some(), want, "{q:?} in {text:?}");
        }
        let f = Matcher::new("ab").unwrap().find("ab x ab").unwrap();
        assert_eq!((f.ranges, f.counts, f.doc_tokens), (vec![(0, 2), (5, 7)], vec![2], 3));
    }

    #[test]
    fn highlight_shapes() {
        assert_eq!(highlight("a needle b", &[(2, 8)], '[', ']', 100), "a [needle] b");
        let long = format!("{}needle{}", "x".repeat(300), "y".repeat(300));
        let h = highlight(&long, &[(300, 306)], '[', ']', 60);
        assert!(h.starts_with('…') && h.ends_with('…') && h.contains("[needle]"), "{h}");
        // 60 characters of text, plus two markers and two ellipses.
        assert!(h.chars().count() <= 64, "{}", h.chars().count());
        assert_eq!(highlight("é needle", &[(3, 9)], '[', ']', 100), "é [needle]");
    }
}
