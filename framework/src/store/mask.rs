//! Secret masking: hand-written linear scanners (no regex), applied to every line before it is stored.
//!
//! Rules (each replaces the secret with [`MASK`]; keys and markers are kept so the line stays readable):
//! - **key = value**: a key that ends with a secret word — `password`, `passwd`, `pwd`, `passphrase`,
//!   `secret`, `token`, `api_key`/`apikey`/`api-key`, `access_key`, `secret_key`, `private_key`,
//!   `credential(s)`, `auth`, `authorization` (case-insensitive; `-` and `.` count as `_`, so
//!   `DB_PASSWORD`, `X-Api-Key`, `aws_secret_access_key`, `client.secret` all match) — followed by `=` or
//!   `:` (optionally quoted, as in JSON `"password": "…"`, optionally spaced). A quoted value is masked up
//!   to its closing quote (JSON stays valid); an unquoted one up to whitespace or `,;&)]}>'"`.
//!   `Authorization: Basic xxx` keeps the scheme word. `token: ` in prose with nothing after stays as is.
//! - **Bearer tokens** anywhere: `Bearer` + space + a token of at least 8 characters.
//! - **URL credentials**: `scheme://user:pass@host` → `scheme://user:***@host`.
//! - **AWS access key ids**: `AKIA`/`ASIA` + 16 upper-case letters or digits, as a whole word.
//! - **PEM private keys**: from the `-----BEGIN … PRIVATE KEY-----` header to the `-----END` marker, across
//!   lines: [`PemState`] carries "inside a block" from line to line of one (module, run, stream). Headers and
//!   END markers are kept. A block with no END stops being masked after [`PEM_MAX_LINES`] lines.
//!
//! Every scanner moves forward only, and look-backs are capped ([`MAX_KEY_LEN`]), so the cost is linear in
//! the line length on any input; nothing indexes out of bounds (all slicing is at ASCII positions).

use std::borrow::Cow;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Longest key examined before a `=`/`:` (longer identifiers are not secret keys in practice).
pub const MAX_KEY_LEN: usize = 64;

/// A PEM block that never shows its END marker stops being masked after this many lines.
pub const PEM_MAX_LINES: u32 = 400;

/// Per-stream masking state: whether the previous line opened a private key block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PemState {
    /// Lines masked so far inside an open block; None outside a block.
    in_block: Option<u32>,
}

impl PemState {
    /// True while inside a private key block.
    pub fn in_block(&self) -> bool {
        self.in_block.is_some()
    }
}

/// Masks one line, updating the PEM state of its stream. Borrowed when nothing was masked.
pub fn mask_line<'a>(line: &'a str, pem: &mut PemState) -> Cow<'a, str> {
    // One pass to learn which scanners can possibly match (most lines need one or two of them).
    let (mut sep, mut b, mut a, mut dash) = (false, false, false, false);
    for &c in line.as_bytes() {
        match c {
            b'=' | b':' => sep = true,
            b'b' | b'B' => b = true,
            b'A' => a = true,
            b'-' => dash = true,
            _ => {}
        }
    }
    let mut ranges = Vec::new();
    let fully_masked = if dash || pem.in_block() { pem_ranges(line, pem, &mut ranges) == line.len() } else { false };
    if !fully_masked {
        if sep {
            kv_ranges(line, &mut ranges);
            url_ranges(line, &mut ranges);
        }
        if b {
            bearer_ranges(line, &mut ranges);
        }
        if a {
            aws_key_ranges(line, &mut ranges);
        }
    }
    apply(line, ranges)
}

/// The words the masking rules need (lowercase): a secret key's tail (`pass`, `pwd`, `secret`, `token`,
/// `key`, `credential`, `auth`), `bearer`, `://`, `AKIA`/`ASIA` and `-----BEGIN`.
const TRIGGERS: &[&str] =
    &["pass", "pwd", "secret", "token", "key", "credential", "auth", "bearer", "://", "akia", "asia", "-----begin"];

/// Start offsets of places in `text` where a masking rule of [`mask_line`] could apply, ascending: every
/// line that `mask_line` would change (outside a private key block) holds at least one of them (any case).
/// One pass: the text is lowercased (ASCII; byte offsets do not move) into a per-thread buffer and searched
/// for all the words at once with a SIMD multi-pattern searcher ("Teddy"; ~10× the general automaton on this
/// machine), or with the automaton where the CPU lacks the instructions. None if neither can be built (then
/// every line must be masked the slow way).
pub(crate) fn trigger_positions(text: &str) -> Option<Vec<usize>> {
    use std::cell::RefCell;
    static TEDDY: std::sync::OnceLock<Option<aho_corasick::packed::Searcher>> = std::sync::OnceLock::new();
    static AUTOMATON: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>> = std::sync::OnceLock::new();
    thread_local! {
        static LOWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    if let Some(teddy) = TEDDY.get_or_init(|| aho_corasick::packed::Searcher::new(TRIGGERS.iter())) {
        return Some(LOWER.with(|buf| {
            let mut lower = buf.borrow_mut();
            lower.clear();
            lower.extend(text.bytes().map(|b| b.to_ascii_lowercase()));
            let found = teddy.find_iter(&lower[..]).map(|m| m.start()).collect();
            if lower.capacity() > 1 << 20 {
                *lower = Vec::new(); // do not keep a flood's worth of buffer
            }
            found
        }));
    }
    let automaton = AUTOMATON
        .get_or_init(|| aho_corasick::AhoCorasick::builder().ascii_case_insensitive(true).build(TRIGGERS).ok())
        .as_ref()?;
    Some(automaton.find_iter(text).map(|m| m.start()).collect())
}

/// Masks a multi-line text (a note, an event): each line in turn with one fresh PEM state.
pub fn mask_text(text: &str) -> Cow<'_, str> {
    let mut pem = PemState::default();
    let mut out: Option<String> = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        let masked = mask_line(body, &mut pem);
        if let Cow::Owned(m) = masked {
            let o = out.get_or_insert_with(|| text[..pos].to_string());
            o.push_str(&m);
            if body.len() != line.len() {
                o.push('\n');
            }
        } else if let Some(o) = out.as_mut() {
            o.push_str(line);
        }
        pos += line.len();
    }
    match out {
        Some(o) => Cow::Owned(o),
        None => Cow::Borrowed(text),
    }
}

/// Replaces the (possibly overlapping) byte ranges with [`MASK`].
fn apply(line: &str, mut ranges: Vec<(usize, usize)>) -> Cow<'_, str> {
    ranges.retain(|&(s, e)| s < e);
    if ranges.is_empty() {
        return Cow::Borrowed(line);
    }
    ranges.sort_unstable();
    let mut out = String::with_capacity(line.len());
    let mut pos = 0;
    let mut i = 0;
    while i < ranges.len() {
        let (s, mut e) = ranges[i];
        i += 1;
        while i < ranges.len() && ranges[i].0 <= e {
            e = e.max(ranges[i].1);
            i += 1;
        }
        if s < pos {
            // Fully inside what is already masked.
            if e > pos {
                pos = e;
            }
            continue;
        }
        out.push_str(&line[pos..s]);
        out.push_str(MASK);
        pos = e;
    }
    out.push_str(&line[pos..]);
    Cow::Owned(out)
}

// ---------------------------------------------------------------------------------------------------------
// PEM blocks

/// Adds the ranges of private key material in this line; returns `line.len()` when the rest of the line is
/// key material (the other rules need not look), 0 otherwise.
fn pem_ranges(line: &str, pem: &mut PemState, ranges: &mut Vec<(usize, usize)>) -> usize {
    let mut pos = 0;
    let mut fully_masked = false;
    if let Some(n) = pem.in_block {
        match find_str(line, "-----END") {
            Some(end) => {
                ranges.push((0, trim_end_pos(line, end)));
                pem.in_block = None;
                pos = end + "-----END".len();
            }
            None => {
                if !line.trim().is_empty() {
                    ranges.push((0, line.len()));
                }
                pem.in_block = if n + 1 >= PEM_MAX_LINES { None } else { Some(n + 1) };
                return line.len();
            }
        }
    }
    while let Some(rel) = find_str(&line[pos..], "-----BEGIN ") {
        let hdr_start = pos + rel;
        let after = hdr_start + "-----BEGIN ".len();
        // The label ends at the next "-----", within a short distance.
        let window_end = (after + 48).min(line.len());
        let window = &line.as_bytes()[after..window_end];
        let Some(close) = find_bytes(window, b"-----") else {
            pos = after;
            continue;
        };
        let label = &line[after..after + close];
        let body_start = after + close + 5;
        if !label.contains("PRIVATE KEY") {
            pos = body_start;
            continue;
        }
        match find_str(&line[body_start..], "-----END") {
            Some(rel_end) => {
                let end = body_start + rel_end;
                ranges.push((body_start, end));
                pos = end + "-----END".len();
            }
            None => {
                ranges.push((body_start, line.len()));
                pem.in_block = Some(0);
                fully_masked = true;
                break;
            }
        }
    }
    if fully_masked { line.len() } else { 0 }
}

fn trim_end_pos(line: &str, end: usize) -> usize {
    line[..end].trim_end().len()
}

/// First occurrence of `needle` (non-empty) in `hay`: a scan for its first byte, then a compare. Cheaper
/// than a general searcher for the short lines and rare needles here.
pub(crate) fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let p = hay[i..=hay.len() - needle.len()].iter().position(|&b| b == first)?;
        let at = i + p;
        if hay[at + 1..].starts_with(rest) {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

fn find_str(hay: &str, needle: &str) -> Option<usize> {
    find_bytes(hay.as_bytes(), needle.as_bytes())
}

// ---------------------------------------------------------------------------------------------------------
// key = value

const SECRET_SUFFIXES: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "access_key",
    "secret_key",
    "private_key",
    "credential",
    "credentials",
    "authorization",
];
/// Secret words that only count as a whole key or after `_` (`pwd`, `auth`), to spare `cwd`, `oauth`, ….
const SECRET_WHOLE: &[&str] = &["pwd", "auth"];

fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn is_secret_key(key: &[u8]) -> Option<bool> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return None;
    }
    let mut buf = [0u8; MAX_KEY_LEN];
    let norm = &mut buf[..key.len()];
    for (d, &s) in norm.iter_mut().zip(key) {
        *d = match s.to_ascii_lowercase() {
            b'-' | b'.' => b'_',
            c => c,
        };
    }
    let norm: &[u8] = norm;
    let is_auth = norm.ends_with(b"authorization");
    if SECRET_SUFFIXES.iter().any(|s| norm.ends_with(s.as_bytes())) {
        return Some(is_auth);
    }
    for w in SECRET_WHOLE {
        let w = w.as_bytes();
        if norm == w || (norm.ends_with(w) && norm[norm.len() - w.len() - 1] == b'_') {
            return Some(false);
        }
    }
    None
}

fn is_value_end(b: u8) -> bool {
    b.is_ascii_whitespace()
        || b < 0x20
        || b == 0x7F
        || matches!(b, b',' | b';' | b'&' | b')' | b']' | b'}' | b'>' | b'\'' | b'"')
}

fn kv_ranges(line: &str, ranges: &mut Vec<(usize, usize)>) {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c != b'=' && c != b':' {
            i += 1;
            continue;
        }
        // `://` belongs to URLs, `::` to paths, `==`/`:=`-style operators are still separators.
        if c == b':' && (b.get(i + 1) == Some(&b':') || (b.get(i + 1) == Some(&b'/') && b.get(i + 2) == Some(&b'/'))) {
            i += 2;
            continue;
        }
        // Look back: optional spaces, an optional closing quote, then the key.
        let mut j = i;
        let mut spaces = 0;
        while j > 0 && b[j - 1] == b' ' && spaces < 4 {
            j -= 1;
            spaces += 1;
        }
        let key_quoted = j > 0 && (b[j - 1] == b'"' || b[j - 1] == b'\'');
        if key_quoted {
            j -= 1;
        }
        let key_end = j;
        let lower = key_end.saturating_sub(MAX_KEY_LEN + 1);
        while j > lower && is_key_char(b[j - 1]) {
            j -= 1;
        }
        let Some(is_auth) = is_secret_key(&b[j..key_end]) else {
            i += 1;
            continue;
        };
        // Look forward: optional spaces (and a second `=` of `:=`), then the value.
        let mut v = i + 1;
        if c == b':' && b.get(v) == Some(&b'=') {
            v += 1;
        }
        while v < b.len() && b[v] == b' ' && v - i < 9 {
            v += 1;
        }
        if v >= b.len() {
            return;
        }
        let (start, end, next) = if b[v] == b'"' || b[v] == b'\'' {
            let q = b[v];
            let start = v + 1;
            let mut k = start;
            while k < b.len() && b[k] != q {
                k += if b[k] == b'\\' { 2 } else { 1 };
            }
            let end = k.min(b.len());
            (start, end, (end + 1).min(b.len()))
        } else {
            if key_quoted && matches!(b[v], b'{' | b'[' | b'n' | b't' | b'f') {
                // A JSON object, array, null, true or false: nested keys are scanned on their own.
                i = v;
                continue;
            }
            let mut k = v;
            while k < b.len() && !is_value_end(b[k]) {
                k += 1;
            }
            (v, k, k)
        };
        let start = if is_auth { skip_auth_scheme(b, start, end) } else { start };
        if start < end {
            if !key_quoted || b[v] == b'"' || b[v] == b'\'' {
                ranges.push((start, end));
            } else {
                // An unquoted JSON number after a quoted key: mask it as a string so JSON stays valid.
                ranges.push((start, end));
                // (The replacement is `***`; a reader parsing JSON sees an invalid number only if it was a
                // bare number, which secrets rarely are.)
            }
        } else if is_auth && start == end && !(b[v] == b'"' || b[v] == b'\'') {
            // `Authorization: Basic xxx`: the credential follows the scheme after a space.
            let mut s = end;
            while s < b.len() && b[s] == b' ' {
                s += 1;
            }
            let mut e = s;
            while e < b.len() && !is_value_end(b[e]) {
                e += 1;
            }
            if s < e {
                ranges.push((s, e));
            }
            i = e.max(i + 1);
            continue;
        }
        i = next.max(i + 1);
    }
}

/// In an authorization value `Scheme credential`, returns where the credential starts (`start` when the
/// value has no scheme word, `end` when the value is just the scheme).
fn skip_auth_scheme(b: &[u8], start: usize, end: usize) -> usize {
    let mut k = start;
    while k < end && b[k].is_ascii_alphabetic() {
        k += 1;
    }
    if k == end && k - start <= 10 && k < b.len() && b[k] == b' ' {
        return end; // unquoted `Basic` then space: handled by the caller
    }
    if k > start && k < end && b[k] == b' ' {
        while k < end && b[k] == b' ' {
            k += 1;
        }
        return k;
    }
    start
}

// ---------------------------------------------------------------------------------------------------------
// Bearer tokens, URLs, AWS keys

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

fn bearer_ranges(line: &str, ranges: &mut Vec<(usize, usize)>) {
    let b = line.as_bytes();
    let mut i = 0;
    while i + 7 < b.len() {
        if (b[i] | 0x20) != b'b' || !b[i..i + 6].eq_ignore_ascii_case(b"bearer") || b[i + 6] != b' ' {
            i += 1;
            continue;
        }
        if i > 0 && b[i - 1].is_ascii_alphanumeric() {
            i += 6;
            continue;
        }
        let mut s = i + 7;
        while s < b.len() && b[s] == b' ' {
            s += 1;
        }
        let mut e = s;
        while e < b.len() && is_token_char(b[e]) {
            e += 1;
        }
        if e - s >= 8 {
            ranges.push((s, e));
        }
        i = e.max(i + 7);
    }
}

fn url_ranges(line: &str, ranges: &mut Vec<(usize, usize)>) {
    let b = line.as_bytes();
    let mut from = 0;
    while let Some(rel) = find_bytes(&b[from..], b"://") {
        let start = from + rel + 3;
        let mut end = start;
        let mut last_at = None;
        let mut first_colon = None;
        while end < b.len() {
            match b[end] {
                b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'`' | b' ' | b'\t' => break,
                c if c < 0x20 => break,
                b'@' => last_at = Some(end),
                b':' if first_colon.is_none() => first_colon = Some(end),
                _ => {}
            }
            end += 1;
        }
        if let (Some(at), Some(colon)) = (last_at, first_colon)
            && colon < at
            && colon + 1 < at
        {
            ranges.push((colon + 1, at));
        }
        from = end.max(start);
    }
}

fn aws_key_ranges(line: &str, ranges: &mut Vec<(usize, usize)>) {
    let b = line.as_bytes();
    let mut i = 0;
    while i + 20 <= b.len() {
        if b[i] != b'A' || !(&b[i..i + 4] == b"AKIA" || &b[i..i + 4] == b"ASIA") {
            i += 1;
            continue;
        }
        let boundary_before = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let body_ok = b[i + 4..i + 20].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        let boundary_after = b.get(i + 20).is_none_or(|c| !c.is_ascii_alphanumeric());
        if boundary_before && body_ok && boundary_after {
            ranges.push((i, i + 20));
            i += 20;
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        mask_line(s, &mut PemState::default()).into_owned()
    }

    #[test]
    fn masking_table() {
        let cases = [
            // key = value
            ("password=hunter2 user=bob", "password=*** user=bob"),
            ("DB_PASSWORD=s3cr3t", "DB_PASSWORD=***"),
            ("passwd: hunter2", "passwd: ***"),
            ("pwd=abc&next=1", "pwd=***&next=1"),
            ("secret=xyz", "secret=***"),
            ("client_secret = 'abc def'", "client_secret = '***'"),
            ("token=abc.def.ghi", "token=***"),
            ("GITHUB_TOKEN=ghp_abcdef123", "GITHUB_TOKEN=***"),
            ("api_key=k-123", "api_key=***"),
            ("X-Api-Key: 0123456789", "X-Api-Key: ***"),
            ("apikey=zzz", "apikey=***"),
            (r#"{"user":"bob","password":"hunter2","n":1}"#, r#"{"user":"bob","password":"***","n":1}"#),
            (r#"{"password": "with \"quote\" inside"}"#, r#"{"password": "***"}"#),
            (r#"{"token": null, "ok": true}"#, r#"{"token": null, "ok": true}"#),
            ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = ***"),
            ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "AWS_SECRET_ACCESS_KEY=***"),
            // Authorization headers and bearer tokens
            ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "Authorization: Bearer ***"),
            ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"),
            (r#"{"Authorization":"Bearer abcdefgh12345"}"#, r#"{"Authorization":"Bearer ***"}"#),
            ("curl -H 'bearer abcdefghijk'", "curl -H 'bearer ***'"),
            ("sent BEARER 0123456789abcdef to api", "sent BEARER *** to api"),
            // URLs
            ("postgres://app:s3cret@db:5432/shop", "postgres://app:***@db:5432/shop"),
            ("redis://:pa55@127.0.0.1:6379", "redis://:***@127.0.0.1:6379"),
            ("url=https://u:p@x.io/a?b=1 next", "url=https://u:***@x.io/a?b=1 next"),
            ("amqp://user:p@ss@host/vhost", "amqp://user:***@host/vhost"),
            ("https://example.com:8443/path", "https://example.com:8443/path"),
            ("https://user@example.com/", "https://user@example.com/"),
            // AWS access key ids
            ("key id AKIAIOSFODNN7EXAMPLE used", "key id *** used"),
            ("ASIAIOSFODNN7EXAMPLE", "***"),
            ("XAKIAIOSFODNN7EXAMPLE", "XAKIAIOSFODNN7EXAMPLE"),
            ("AKIAIOSFODNN7EXAMPL", "AKIAIOSFODNN7EXAMPL"),
            // single-line PEM (JSON credentials file)
            (
                r#"{"private_key":"-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----\n"}"#,
                r#"{"private_key":"***"}"#,
            ),
            (
                "x -----BEGIN RSA PRIVATE KEY-----MIIB-----END RSA PRIVATE KEY-----",
                "x -----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY-----",
            ),
            ("-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE-----"),
            // things that must stay
            ("tokens_used=5 max_tokens=100", "tokens_used=5 max_tokens=100"),
            ("cwd=/home/me oauth=on", "cwd=/home/me oauth=on"),
            ("unexpected token: }", "unexpected token: }"),
            ("std::env::var(\"TOKEN\")", "std::env::var(\"TOKEN\")"),
            ("12:30:45 INFO ok", "12:30:45 INFO ok"),
            ("password=", "password="),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(m(input), want, "input: {input:?}");
        }
    }

    #[test]
    fn pem_block_across_lines() {
        let mut st = PemState::default();
        let lines = [
            ("key: -----BEGIN OPENSSH PRIVATE KEY-----", "key: -----BEGIN OPENSSH PRIVATE KEY-----"),
            ("b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "***"),
            ("", ""),
            ("QyNTUxOQAAACDV password=x", "***"),
            ("-----END OPENSSH PRIVATE KEY-----", "-----END OPENSSH PRIVATE KEY-----"),
            ("after the block", "after the block"),
        ];
        for (input, want) in lines {
            assert_eq!(mask_line(input, &mut st), want, "{input:?}");
        }
        assert!(!st.in_block());

        // A block that never ends is released after PEM_MAX_LINES lines.
        let mut st = PemState::default();
        mask_line("-----BEGIN EC PRIVATE KEY-----", &mut st);
        for _ in 0..PEM_MAX_LINES {
            assert_eq!(mask_line("AAAA", &mut st), MASK);
        }
        assert_eq!(mask_line("AAAA", &mut st), "AAAA");

        // mask_text handles a multi-line note in one go.
        let note = "saved key\n-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\ndone\n";
        assert_eq!(mask_text(note), "saved key\n-----BEGIN PRIVATE KEY-----\n***\n-----END PRIVATE KEY-----\ndone\n");
    }

    #[test]
    fn hostile_inputs_are_linear_and_never_panic() {
        let patterns = [
            "password=",
            "password=\"",
            "\"token\":",
            "a://",
            "a://b:c@",
            "Bearer ",
            "AKIA",
            "-----BEGIN PRIVATE KEY-----",
            "-----BEGIN ",
            "::::",
            "= = =",
            "é:€=",
            "\\\"",
        ];
        for p in patterns {
            let line = p.repeat(200_000 / p.len());
            let t = std::time::Instant::now();
            let _ = mask_line(&line, &mut PemState::default());
            // Linear scanners do 200 KB in well under a millisecond; quadratic ones take minutes.
            assert!(t.elapsed() < std::time::Duration::from_secs(2), "{p:?} took {:?}", t.elapsed());
        }
        // Every prefix of a tricky line is handled without panicking (char boundaries, ends of input).
        let tricky = "pässword=\"é\\\" Bearer ÅKIA://ü:ö@ -----BEGIN PRIVATE KEY-----é-----END";
        for (i, _) in tricky.char_indices() {
            let _ = mask_line(&tricky[..i], &mut PemState::default());
            let _ = mask_line(&tricky[i..], &mut PemState::default());
        }
    }
}
