//! A bounded, deterministic fuzzer for the stack-file parser and the editor scanner: mutations of real stack
//! files (the demo, every fixture) must never panic, and every error must be well-formed — positioned inside
//! the file it names, with a message. Runs in the README test command.
//!
//! - `STEWARD_FUZZ_SEED=N` replays one run (the seed is printed); `STEWARD_FUZZ_CASES=N` (default 3,000) and
//!   `STEWARD_FUZZ_SECS=S` (default 20) bound it, whichever comes first.
//! - A case that ever failed is kept in `tests/fixtures/fuzz/` (one `.toml` per case) and replayed first.
//! - A case that takes over 10 s is a hang: a watchdog prints it, saves it next to the test's temp files and
//!   fails the run (a hang cannot be caught like a panic).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use steward_framework::config::{self, Diagnostic, LoadOptions, editor};

/// Deterministic for a given seed: the framework's own `fastrand` (also its backoff jitter).
type Rng = fastrand::Rng;

/// Fragments that reach the parser's corners: TOML syntax, Steward's keys, interpolation, units, unicode.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "\\",
    "\\u",
    "#",
    "\n",
    "\r\n",
    " ",
    "\t",
    "${",
    "${X}",
    "${X:-d}",
    "$$",
    "}",
    "[modules.x]",
    "[profiles.p]",
    "[project]",
    "[alerts]",
    "run = ",
    "depends_on = [\"",
    "health = { tcp = \"",
    "http = \"",
    "interval = \"",
    "1s",
    "0ms",
    "-1",
    "99999999999999999999",
    "1e400",
    "nan",
    "inf",
    "true",
    "1979-05-27T07:32:00Z",
    "memory_limit = \"",
    "5GB",
    "extends = \"",
    "../",
    "/etc/passwd",
    "modules.d",
    "env_file = \"",
    "é",
    "\u{1F600}",
    "\u{0}",
    "\u{FEFF}",
    "\u{202E}",
    "restart = \"",
    "always",
    "on-failure",
    "backoff",
    "ready_when",
    "profile = \"",
    "modules = [",
];

fn mutate(r: &mut Rng, seed: &str) -> String {
    let mut s: Vec<u8> = seed.as_bytes().to_vec();
    for _ in 0..1 + r.usize(..6) {
        let at = r.usize(..s.len() + 1);
        match r.usize(..7) {
            // insert a token
            0 | 1 => {
                let t = TOKENS[r.usize(..TOKENS.len())].as_bytes();
                s.splice(at..at, t.iter().copied());
            }
            // delete a run
            2 => {
                let end = (at + 1 + r.usize(..40)).min(s.len());
                if at < end {
                    s.drain(at..end);
                }
            }
            // flip a byte (may make invalid UTF-8: the loader must say so, not panic)
            3 => {
                if at < s.len() {
                    s[at] = r.u8(..);
                }
            }
            // duplicate a line
            4 => {
                let text = String::from_utf8_lossy(&s).into_owned();
                let lines: Vec<&str> = text.lines().collect();
                if !lines.is_empty() {
                    let l = lines[r.usize(..lines.len())].to_string() + "\n";
                    s.splice(at..at, l.bytes());
                }
            }
            // truncate
            5 => s.truncate(at),
            // repeat a token many times (deep nesting, long lines)
            _ => {
                let t = ["[", "{", "a.", "\"", "x"][r.usize(..5)];
                let n = 1 + r.usize(..3000);
                s.splice(at..at, t.repeat(n).bytes());
            }
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// Every stack file of the demo and the fixtures.
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut stack = vec![root.join("tests/fixtures/config"), root.join("../examples")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml")
                && let Ok(t) = std::fs::read_to_string(&p)
            {
                out.push(t);
            }
        }
    }
    out.sort();
    assert!(out.len() >= 5, "expected the demo and the fixtures as seeds, found {}", out.len());
    out
}

/// Loads `text` as the stack file at `path` (through an overlay: no write per case) and checks every error.
/// True when the text was rejected.
fn check(path: &Path, text: &str, case: &str) -> bool {
    let opts = LoadOptions { overlays: vec![(path.to_path_buf(), text.to_string())], ..Default::default() };
    let outcome = std::panic::catch_unwind(|| config::load(path, &opts));
    let result = outcome.unwrap_or_else(|_| panic!("the loader panicked on {case}:\n{text:?}"));
    let rejected = result.is_err();
    if let Err(diagnostics) = result {
        assert!(!diagnostics.is_empty(), "an Err without diagnostics on {case}");
        for d in &diagnostics {
            well_formed(d, path, text, case);
        }
    }
    // The editor's scanner and completion take any text and any offset.
    let scanned = std::panic::catch_unwind(|| {
        let _ = editor::scan(text);
        for offset in [0, text.len() / 3, text.len() / 2, text.len()] {
            let _ = editor::cursor(text, offset);
            let _ = editor::complete(text, offset, &editor::Names::default());
        }
    });
    assert!(scanned.is_ok(), "the editor scanner panicked on {case}:\n{text:?}");
    rejected
}

fn well_formed(d: &Diagnostic, path: &Path, text: &str, case: &str) {
    let ctx = || format!("{case}: {d:?}\n--- text:\n{text}");
    assert!(!d.message.trim().is_empty(), "empty message: {}", ctx());
    assert!(d.line >= 1 && d.column >= 1, "positions are 1-based: {}", ctx());
    assert!((d.line, d.column) <= (d.end_line, d.end_column), "end before start: {}", ctx());
    if d.file == path {
        assert!(d.byte_range.start <= d.byte_range.end && d.byte_range.end <= text.len(), "range outside: {}", ctx());
        assert!(
            text.is_char_boundary(d.byte_range.start) && text.is_char_boundary(d.byte_range.end),
            "range splits a character: {}",
            ctx()
        );
        assert!(d.line as usize <= text.split('\n').count(), "line past the end: {}", ctx());
    }
}

#[test]
fn mutated_stack_files_never_panic_and_every_error_is_positioned() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("steward.toml");
    std::fs::write(&path, "").unwrap();

    // Kept regressions first.
    let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let mut replayed = 0;
    if let Ok(entries) = std::fs::read_dir(&kept) {
        for e in entries.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "toml")) {
            let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
            let _ = check(&path, &text, &e.path().display().to_string());
            replayed += 1;
        }
    }

    let seed: u64 = std::env::var("STEWARD_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    let cases: usize = std::env::var("STEWARD_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let secs: u64 = std::env::var("STEWARD_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    eprintln!("config fuzz: seed {seed} (replay with STEWARD_FUZZ_SEED={seed})");
    let seeds = seeds();
    let current: Arc<Mutex<(Instant, String)>> = Arc::new(Mutex::new((Instant::now(), String::new())));
    let watched = Arc::downgrade(&current);
    std::thread::spawn(move || {
        while let Some(current) = watched.upgrade() {
            let (since, text) = current.lock().unwrap().clone();
            if since.elapsed() > Duration::from_secs(10) {
                let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join("config-fuzz-hang.toml");
                let _ = std::fs::write(&saved, &text);
                eprintln!("config fuzz: a case hangs (seed {seed}), saved to {}:\n{text:?}", saved.display());
                std::process::exit(101);
            }
            drop(current);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut r = Rng::with_seed(seed);
    let until = Instant::now() + Duration::from_secs(secs);
    let mut ran = 0;
    let mut failed = 0;
    while ran < cases && Instant::now() < until {
        let base = &seeds[r.usize(..seeds.len())];
        let text = mutate(&mut r, base);
        *current.lock().unwrap() = (Instant::now(), text.clone());
        failed += usize::from(check(&path, &text, &format!("case {ran} of seed {seed}")));
        ran += 1;
    }
    eprintln!(
        "config fuzz: {replayed} kept cases, {ran} mutations ({failed} rejected with diagnostics) in {secs} s max"
    );
    assert!(ran >= 100, "only {ran} cases ran within {secs} s");
    assert!(failed > 0, "no mutation was rejected: the mutator does not reach the parser's errors");
}
