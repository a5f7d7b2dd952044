//! The store end to end: real SQLite files in temporary directories, no sleeps (every wait is `flush()`,
//! `flush_index()` or `enforce_retention()`, which return when the writer has done the work).

use std::sync::Arc;
use std::time::Duration;

use steward_framework::lifecycle::{Event, EventKind, LogLine, State, Stream, Transition, now_ms};
use steward_framework::store::line::{TRUNCATION_MARKER, unescape_bytes};
use steward_framework::store::{
    EventQuery, HIGHLIGHT_END, HIGHLIGHT_START, Kind, Level, LogQuery, NoteInput, RetentionPolicy, SearchQuery, Store,
    StoreError, StoreOptions,
};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn ll(module: &str, run: u64, text: impl Into<Vec<u8>>) -> LogLine {
    LogLine { module: module.into(), run, stream: Stream::Stdout, bytes: text.into(), truncated: false }
}

fn project(name: &str) -> Arc<str> {
    Arc::from(name)
}

/// Polls `done` every 20 ms until it holds; fails after 20 s with `what` and what `state` says then.
fn wait_for(what: &str, mut done: impl FnMut() -> bool, state: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "{what}: {}", state());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends chunks `chunks` of 1,000 lines each (`flood C I`) for module `fast`, as one pipe read each.
fn flood(sink: &steward_framework::store::LogSink, p: &Arc<str>, chunks: std::ops::Range<usize>) {
    for c in chunks {
        let mut chunk = steward_framework::lifecycle::LogChunk::new(Arc::from("fast"), 1, Stream::Stdout, now_ms());
        for i in 0..1000 {
            chunk.push(format!("flood {c} {i}").as_bytes(), false);
        }
        sink.send_chunk(p, &chunk).unwrap();
    }
}

fn search(store: &Store, text: &str) -> Vec<steward_framework::store::Hit> {
    store.search(&SearchQuery { text: text.into(), ..Default::default() }).expect("search")
}

fn note(project: &str, module: Option<&str>, text: &str) -> NoteInput {
    NoteInput {
        project: project.into(),
        module: module.map(Into::into),
        text: text.into(),
        tags: vec!["t".into()],
        source: "cli".into(),
    }
}

/// A store whose writer indexes only on `flush_index()` (or past a million rows): rows stay in the scanned
/// tail until then, deterministically.
fn open_lazy(dir: &tempfile::TempDir) -> Store {
    let opts = StoreOptions { index_delay: Duration::from_secs(3600), ..Default::default() };
    Store::open_with(dir.path().join("s.db"), opts).unwrap()
}

/// Runs `check` twice: once while the log rows are only in the scanned tail, once after they are indexed.
fn in_tail_and_index(store: &Store, check: impl Fn(&str)) {
    store.flush().unwrap();
    assert!(store.stats().unwrap().unindexed > 0, "the first pass must run on the tail");
    check("tail");
    store.flush_index().unwrap();
    assert_eq!(store.stats().unwrap().unindexed, 0);
    check("index");
}

#[test]
fn ingest_flush_query_round_trip() {
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let sink = store.log_sink();
    let p = project("shop");
    for i in 0..1000 {
        sink.send(&p, ll(if i % 2 == 0 { "api" } else { "db" }, 1, format!("line {i}"))).unwrap();
    }
    store.flush().unwrap();
    let api = store.query_logs(&LogQuery { module: Some("api".into()), limit: 1000, ..Default::default() }).unwrap();
    assert_eq!(api.len(), 500);
    assert_eq!(api[0].text, "line 0");
    assert_eq!(api[499].text, "line 998");
    assert!(api.windows(2).all(|w| w[0].id < w[1].id && w[0].ts_ms <= w[1].ts_ms));
    assert_eq!((api[0].project.as_str(), api[0].module.as_str(), api[0].run), ("shop", "api", 1));
    let last = store.last_lines("shop", "db", 3).unwrap();
    assert_eq!(last.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), ["line 995", "line 997", "line 999"]);
    assert_eq!(store.stats().unwrap().log_rows, 1000);
    assert_eq!(store.stats().unwrap().written, 1000);
}

#[test]
fn query_logs_pages_both_ways_and_filters() {
    let dir = tmp();
    let store = open_lazy(&dir);
    let sink = store.log_sink();
    let p = project("shop");
    let base = now_ms() - 100_000;
    for i in 0..100u64 {
        let text = if i % 10 == 0 { format!("ERROR failure number {i}") } else { format!("INFO fine {i}") };
        sink.send_at(&p, ll("api", i / 50, text), base + i * 1000).unwrap();
    }
    store.flush().unwrap();
    // Newest page, then the page before it, then forward again.
    let page1 = store.query_logs(&LogQuery { limit: 30, ..Default::default() }).unwrap();
    assert_eq!(page1.first().unwrap().text, "ERROR failure number 70");
    assert_eq!(page1.last().unwrap().text, "INFO fine 99");
    let page0 = store.query_logs(&LogQuery { before_id: Some(page1[0].id), limit: 30, ..Default::default() }).unwrap();
    assert_eq!(page0.last().unwrap().id, page1[0].id - 1);
    let fwd = store.query_logs(&LogQuery { after_id: Some(page0[9].id), limit: 5, ..Default::default() }).unwrap();
    assert_eq!(fwd.iter().map(|r| r.id).collect::<Vec<_>>(), (page0[10].id..page0[10].id + 5).collect::<Vec<_>>());
    // Level, run, time, grep and word filters, each on both sides of the index watermark.
    in_tail_and_index(&store, |phase| {
        let q = |q: LogQuery| {
            store.query_logs(&LogQuery { limit: if q.limit == 0 { 1000 } else { q.limit }, ..q }).unwrap()
        };
        assert_eq!(q(LogQuery { level: Some(Level::Error), ..Default::default() }).len(), 10, "{phase}");
        assert_eq!(q(LogQuery { run: Some(1), ..Default::default() }).len(), 50, "{phase}");
        let window = q(LogQuery { since_ms: Some(base + 10_000), until_ms: Some(base + 19_000), ..Default::default() });
        assert_eq!(window.len(), 10, "{phase}");
        assert_eq!(window[0].text, "ERROR failure number 10");
        assert_eq!(q(LogQuery { grep: Some("fine 7".into()), ..Default::default() }).len(), 10, "{phase}"); // 7, 70..79 minus 70
        let words = q(LogQuery { text: Some("failure".into()), ..Default::default() });
        assert_eq!(words.len(), 10, "{phase}");
        let words = q(LogQuery { text: Some("failure".into()), limit: 3, ..Default::default() });
        assert_eq!(
            words.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
            ["ERROR failure number 70", "ERROR failure number 80", "ERROR failure number 90"],
            "{phase}"
        );
        let after = q(LogQuery {
            text: Some("failure".into()),
            after_id: Some(words[0].id - 45),
            limit: 2,
            ..Default::default()
        });
        assert_eq!(after.len(), 2, "{phase}");
        assert!(after[0].id > words[0].id - 45 && after[0].id < after[1].id, "{phase}");
        assert!(q(LogQuery { project: Some("other".into()), ..Default::default() }).is_empty());
    });
}

#[test]
fn search_finds_a_rare_word_with_a_highlighted_snippet_and_filters_work() {
    let dir = tmp();
    let store = open_lazy(&dir);
    let sink = store.log_sink();
    let (shop, blog) = (project("shop"), project("blog"));
    let t0 = now_ms() - 3_600_000;
    for i in 0..2000u64 {
        sink.send_at(&shop, ll("api", 1, format!("INFO request {i} handled in {}ms", i % 7)), t0 + i).unwrap();
    }
    sink.send_at(&shop, ll("worker", 2, "ERROR zanzibar queue stalled"), t0 + 5000).unwrap();
    sink.send_at(&blog, ll("web", 1, "WARN zanzibar cache cold"), t0 + 6000).unwrap();
    store
        .record_event(&Event {
            project: "shop".into(),
            at_ms: t0 + 7000,
            kind: EventKind::Transition(Transition {
                module: "worker".into(),
                from: State::Running { run: 2, pid: 9, health: steward_framework::lifecycle::Health::None },
                to: State::Exited { code: Some(1), signal: None },
                reason: "zanzibar exited".into(),
            }),
        })
        .unwrap();
    store.add_note(note("shop", Some("worker"), "restart zanzibar with --fresh")).unwrap();

    in_tail_and_index(&store, |phase| {
        let hits = search(&store, "zanzibar");
        assert_eq!(hits.len(), 4, "{phase}: {hits:#?}");
        let log = hits.iter().find(|h| h.kind == Kind::Log && h.module.as_deref() == Some("worker")).unwrap();
        assert_eq!(log.snippet, format!("ERROR {HIGHLIGHT_START}zanzibar{HIGHLIGHT_END} queue stalled"), "{phase}");
        assert_eq!((log.project.as_str(), log.run, log.level), ("shop", Some(2), Some(Level::Error)));
        let n = hits.iter().find(|h| h.kind == Kind::Note).unwrap();
        assert!(n.snippet.contains(&format!("{HIGHLIGHT_START}zanzibar{HIGHLIGHT_END}")), "{phase}: {}", n.snippet);

        let q = |q: SearchQuery| store.search(&SearchQuery { text: "zanzibar".into(), ..q }).unwrap();
        let only = |hits: Vec<steward_framework::store::Hit>| {
            hits.iter().map(|h| (h.kind, h.project.clone(), h.module.clone())).collect::<Vec<_>>()
        };
        assert_eq!(q(SearchQuery { project: Some("blog".into()), ..Default::default() }).len(), 1, "{phase}");
        assert!(
            q(SearchQuery { module: Some("worker".into()), ..Default::default() })
                .iter()
                .all(|h| h.module.as_deref() == Some("worker"))
        );
        assert_eq!(q(SearchQuery { module: Some("worker".into()), ..Default::default() }).len(), 3, "{phase}");
        assert_eq!(
            only(q(SearchQuery { kinds: vec![Kind::Event], ..Default::default() })),
            [(Kind::Event, "shop".to_string(), Some("worker".to_string()))],
            "{phase}"
        );
        // Level: logs and events below it go; notes have no level and stay.
        let lv = q(SearchQuery { level: Some(Level::Error), ..Default::default() });
        assert_eq!(lv.len(), 3, "{phase}: {lv:#?}");
        assert!(lv.iter().all(|h| h.kind == Kind::Note || h.level == Some(Level::Error)));
        // Time: only the blog line and the event are inside the window.
        let tw = q(SearchQuery { since_ms: Some(t0 + 5500), until_ms: Some(t0 + 7500), ..Default::default() });
        assert_eq!(tw.iter().map(|h| h.kind).collect::<Vec<_>>().len(), 2, "{phase}: {tw:#?}");
        assert!(tw.iter().all(|h| h.kind != Kind::Note));
        // Prefix and phrase.
        assert_eq!(search(&store, "zanzi*").len(), 4, "{phase}");
        assert_eq!(search(&store, "\"queue stalled\"").len(), 1, "{phase}");
        assert_eq!(search(&store, "\"stalled queue\"").len(), 0, "{phase}");
    });
}

#[test]
fn ranking_newer_beats_older_and_notes_beat_logs() {
    let dir = tmp();
    let store = open_lazy(&dir);
    let sink = store.log_sink();
    let p = project("shop");
    let now = now_ms();
    sink.send_at(&p, ll("api", 1, "database migration failed"), now - 10 * 86_400_000).unwrap();
    sink.send_at(&p, ll("api", 1, "database migration failed"), now - 60_000).unwrap();
    let note_id = store.add_note(note("shop", None, "database migration failed")).unwrap();
    in_tail_and_index(&store, |phase| {
        let hits = search(&store, "migration failed");
        assert_eq!(hits.len(), 3, "{phase}");
        assert_eq!((hits[0].kind, hits[0].id), (Kind::Note, note_id), "{phase}: {hits:#?}");
        assert_eq!(hits[1].kind, Kind::Log);
        assert!(hits[1].ts_ms > hits[2].ts_ms, "{phase}: newer first");
        assert!(hits[0].score > hits[1].score && hits[1].score > hits[2].score, "{phase}");
    });
}

#[test]
fn hostile_queries_are_ok() {
    let dir = tmp();
    let store = open_lazy(&dir);
    store.log_sink().send(&project("p"), ll("m", 1, "a:b foo-bar NEAR and OR not \"quoted\" x*y")).unwrap();
    store.add_note(note("p", None, "note with NEAR( and a:b")).unwrap();
    let queries = [
        "\"",
        "\"\"",
        "-foo",
        "a:b",
        "*",
        "**",
        "NEAR(",
        "NEAR(a b",
        ")",
        "AND",
        "OR",
        "NOT",
        "^",
        "{a b}",
        "",
        "   ",
        "a\"b",
        "\"a b",
        "foo-bar",
        "col:val",
        "x*y",
        "'",
        "\\",
        "%",
        "_",
        "\u{1}",
        "\0",
        "é*",
        "(((",
        "a OR",
        "rowid:1",
        "-",
        "+",
        "?",
        ";DROP TABLE logs;",
        "'); --",
    ];
    in_tail_and_index(&store, |phase| {
        for q in queries {
            let r = store.search(&SearchQuery { text: q.into(), ..Default::default() });
            assert!(r.is_ok(), "{phase}: {q:?} → {r:?}");
            let r = store.query_logs(&LogQuery { text: Some(q.into()), grep: Some(q.into()), ..Default::default() });
            assert!(r.is_ok(), "{phase}: {q:?} → {r:?}");
        }
        assert_eq!(search(&store, "a:b").len(), 2, "{phase}");
        assert_eq!(search(&store, "foo-bar").len(), 1, "{phase}");
        assert_eq!(search(&store, "NEAR(").len(), 2, "{phase}");
        assert!(search(&store, "-").is_empty(), "{phase}: punctuation alone matches nothing");
        // An empty text lists the most recent entries.
        assert_eq!(search(&store, "").len(), 2, "{phase}");
    });
    assert_eq!(store.stats().unwrap().log_rows, 1, "the store is intact");
}

/// Raw read access to the database for checks the API does not offer.
fn raw(store: &Store) -> rusqlite::Connection {
    rusqlite::Connection::open(store.path()).unwrap()
}

#[test]
fn secrets_are_masked_before_storage_and_absent_from_the_index() {
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let sink = store.log_sink();
    let p = project("shop");
    let cases: &[(&str, &str, &str)] = &[
        ("Authorization: Bearer s3cretBearerTok3n", "Authorization: Bearer ***", "s3cretBearerTok3n"),
        ("connecting with password=hunter2xyz now", "connecting with password=*** now", "hunter2xyz"),
        ("DB_PASSWD=pw0rdpasswd", "DB_PASSWD=***", "pw0rdpasswd"),
        ("pwd: pwdsecret77", "pwd: ***", "pwdsecret77"),
        ("client secret=clientsecret99", "client secret=***", "clientsecret99"),
        ("token=tok3nvalue42", "token=***", "tok3nvalue42"),
        ("api_key=apikeyvalue11", "api_key=***", "apikeyvalue11"),
        (r#"{"user":"bob","password":"jsonsecret55"}"#, r#"{"user":"bob","password":"***"}"#, "jsonsecret55"),
        ("dsn postgres://app:urlpassw0rd@db:5432/shop", "dsn postgres://app:***@db:5432/shop", "urlpassw0rd"),
        ("using AKIAIOSFODNN7EXAMPLE", "using ***", "AKIAIOSFODNN7EXAMPLE"),
        (
            "aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYzzKEY",
            "aws_secret_access_key = ***",
            "wJalrXUtnFEMIK7MDENGbPxRfiCYzzKEY",
        ),
    ];
    for (input, _, _) in cases {
        sink.send(&p, ll("api", 1, *input)).unwrap();
    }
    store.flush_index().unwrap();
    let rows = store.query_logs(&LogQuery { limit: 100, ..Default::default() }).unwrap();
    assert_eq!(rows.len(), cases.len());
    for ((input, want, secret), row) in cases.iter().zip(&rows) {
        assert_eq!(row.text, *want, "input {input:?}");
        assert!(row.masked);
        assert!(search(&store, secret).is_empty(), "{secret} is searchable");
        let c = raw(&store);
        let parts: Vec<i64> = c
            .prepare("SELECT part FROM block_index_parts")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!parts.is_empty());
        for part in parts {
            let t = format!("blocks_fts_{part}");
            let in_index: i64 = c
                .query_row(&format!("SELECT count(*) FROM {t} WHERE {t} MATCH ?1"), [format!("\"{secret}\"")], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(in_index, 0, "{secret} is in the FTS index");
            let everything: i64 = c
                .query_row(&format!("SELECT count(*) FROM {t} WHERE {t} MATCH 'api OR connecting'"), [], |r| r.get(0))
                .unwrap();
            assert!(everything > 0, "the probe can find what is there");
        }
        let in_rows: i64 = c
            .query_row(
                "SELECT count(*) FROM log_blocks WHERE instr(text, ?1) OR instr(coalesce(display, ''), ?1)",
                [secret],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(in_rows, 0, "{secret} is in the log blocks");
    }
    // The masked line is still findable by its other words.
    assert_eq!(search(&store, "connecting").len(), 1);
    // And nothing of it is anywhere in the file once the WAL is checkpointed.
    drop(store);
    let db = std::fs::read(dir.path().join("s.db")).unwrap();
    for (_, _, secret) in cases {
        assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is in the file");
    }
}

#[test]
fn pem_block_across_lines_is_masked_per_stream() {
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let sink = store.log_sink();
    let p = project("shop");
    let body = ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "pemline2secretZZ", "pemline3secretYY"];
    sink.send(&p, ll("api", 1, "loaded key -----BEGIN RSA PRIVATE KEY-----")).unwrap();
    // Another module's stream interleaves: it is not inside the block.
    sink.send(&p, ll("db", 1, "db line stays")).unwrap();
    for b in body {
        sink.send(&p, ll("api", 1, b)).unwrap();
    }
    sink.send(&p, ll("api", 1, "-----END RSA PRIVATE KEY-----")).unwrap();
    sink.send(&p, ll("api", 1, "after the key")).unwrap();
    store.flush_index().unwrap();
    let texts: Vec<String> = store.query_logs(&LogQuery::default()).unwrap().into_iter().map(|r| r.text).collect();
    assert_eq!(
        texts,
        [
            "loaded key -----BEGIN RSA PRIVATE KEY-----",
            "db line stays",
            "***",
            "***",
            "***",
            "-----END RSA PRIVATE KEY-----",
            "after the key"
        ]
    );
    for b in body {
        assert!(search(&store, b).is_empty());
    }
}

#[test]
fn invalid_utf8_round_trips_losslessly() {
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let bytes: Vec<u8> = b"bad \xff\xfe bytes \\x41 and a backslash \\ plus \xc3\xa9 valid".to_vec();
    store.log_sink().send(&project("p"), ll("m", 1, bytes.clone())).unwrap();
    store.log_sink().send(&project("p"), ll("m", 1, b"C:\\plain\\path".to_vec())).unwrap();
    store.flush().unwrap();
    let rows = store.query_logs(&LogQuery::default()).unwrap();
    assert!(rows[0].escaped);
    assert_eq!(rows[0].bytes(), bytes);
    assert_eq!(unescape_bytes(&rows[0].message), bytes);
    assert!(rows[0].text.contains("\\xFF\\xFE"), "{}", rows[0].text);
    // Valid UTF-8 is stored verbatim, backslashes and all.
    assert!(!rows[1].escaped);
    assert_eq!(rows[1].text, "C:\\plain\\path");
    assert_eq!(rows[1].bytes(), b"C:\\plain\\path");
    assert_eq!(search(&store, "bytes").len(), 1);
}

#[test]
fn ansi_is_stripped_for_search_and_kept_for_display() {
    let dir = tmp();
    let store = open_lazy(&dir);
    let colored = "\x1b[1;31mERROR\x1b[0m \x1b[33mdisk\x1b[0mfull on /dev/sda";
    store.log_sink().send(&project("p"), ll("m", 1, colored)).unwrap();
    in_tail_and_index(&store, |phase| {
        let rows = store.query_logs(&LogQuery::default()).unwrap();
        assert_eq!(rows[0].message, colored, "{phase}");
        assert_eq!(rows[0].text, "ERROR diskfull on /dev/sda", "{phase}");
        assert_eq!(rows[0].level, Some(Level::Error));
        assert_eq!(search(&store, "diskfull").len(), 1, "{phase}: the word spans a colour change");
        assert!(search(&store, "33m").is_empty(), "{phase}: escape codes are not words");
    });
}

#[test]
fn long_lines_are_truncated_with_a_marker() {
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let mut long = "start ".repeat(20_000).into_bytes(); // 120,000 bytes
    long.extend_from_slice(b"tailword");
    store.log_sink().send(&project("p"), ll("m", 1, long)).unwrap();
    let mut cut = ll("m", 1, "cut by the capture");
    cut.truncated = true;
    store.log_sink().send(&project("p"), cut).unwrap();
    store.flush().unwrap();
    let rows = store.query_logs(&LogQuery::default()).unwrap();
    assert!(rows[0].truncated);
    assert!(rows[0].text.ends_with(TRUNCATION_MARKER));
    assert_eq!(rows[0].text.len(), 64 * 1024 + TRUNCATION_MARKER.len());
    assert!(search(&store, "tailword").is_empty());
    assert_eq!(rows[1].text, format!("cut by the capture{TRUNCATION_MARKER}"));
    assert!(rows[1].truncated);
}

#[test]
fn json_lines_are_parsed_into_fields_and_levels() {
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let sink = store.log_sink();
    let p = project("p");
    sink.send(&p, ll("m", 1, r#"{"level":"warn","msg":"slow query","time":"2024-01-01T00:00:00Z","ms":812}"#)).unwrap();
    sink.send(&p, ll("m", 1, r#"{"level":50,"msg":"pino says boom"}"#)).unwrap();
    sink.send(&p, ll("m", 1, "plain DEBUG line")).unwrap();
    sink.send(&p, ll("m", 1, "thread 'main' panicked at src/main.rs:1:1")).unwrap();
    store.flush().unwrap();
    let rows = store.query_logs(&LogQuery::default()).unwrap();
    let f = rows[0].fields.as_ref().unwrap();
    assert_eq!(f["msg"], "slow query");
    assert_eq!(f["ms"], 812);
    assert_eq!(f["time"], "2024-01-01T00:00:00Z");
    assert_eq!(rows[0].level, Some(Level::Warn));
    assert_eq!(rows[1].level, Some(Level::Error));
    assert_eq!((rows[2].level, rows[2].fields.is_none()), (Some(Level::Debug), true));
    assert_eq!(rows[3].level, Some(Level::Error));
    let warn_up = store.query_logs(&LogQuery { level: Some(Level::Warn), ..Default::default() }).unwrap();
    assert_eq!(warn_up.len(), 3);
    assert_eq!(search(&store, "slow query").len(), 1);
}

#[test]
fn incident_note_contains_the_last_20_lines() {
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let sink = store.log_sink();
    let p = project("shop");
    for i in 0..30 {
        sink.send(&p, ll("worker", 3, format!("worker output {i}"))).unwrap();
        sink.send(&p, ll("api", 1, format!("api output {i}"))).unwrap();
    }
    // No flush here: record_incident flushes before reading.
    let id = store.record_incident("shop", "worker", Some(3), "exited with code 1").unwrap();
    let notes = store.notes(Some("shop"), 10).unwrap();
    let n = notes.iter().find(|n| n.id == id).unwrap();
    assert_eq!(n.source, "incident");
    assert!(n.tags.contains(&"incident".to_string()));
    assert!(n.text.starts_with("worker exited with code 1 (run 3)"), "{}", n.text);
    for i in 10..30 {
        assert!(n.text.contains(&format!("worker output {i}\n")), "line {i} missing: {}", n.text);
    }
    assert!(!n.text.contains("worker output 9\n"));
    assert!(!n.text.contains("api output"));
    // The user journey: "worker exit 1" finds the incident first.
    let hits = search(&store, "worker exit 1");
    assert_eq!((hits[0].kind, hits[0].id), (Kind::Note, id), "{hits:#?}");
}

#[test]
fn events_and_runs_are_recorded_and_searchable() {
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let at = now_ms();
    let ev = |kind| Event { project: "shop".into(), at_ms: at, kind };
    store.record_event(&ev(EventKind::RunStarted { module: "api".into(), run: 7, pid: 4242 })).unwrap();
    store
        .record_event(&ev(EventKind::RunEnded {
            module: "api".into(),
            run: 7,
            code: Some(3),
            signal: None,
            reason: "crashed".into(),
        }))
        .unwrap();
    store.record_event(&ev(EventKind::ConfigRejected { errors: vec!["password=leaky1 is bad".into()] })).unwrap();
    store.flush().unwrap();
    let events = store.query_events(&EventQuery { project: Some("shop".into()), ..Default::default() }).unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["run_started", "run_ended", "config_rejected"]
    );
    assert_eq!(events[1].level, Level::Error);
    assert_eq!(events[1].text, "api exited with code 3 (run 7): crashed");
    assert_eq!(events[1].payload["code"], 3);
    assert!(!events[2].text.contains("leaky1") && !events[2].payload.to_string().contains("leaky1"));
    let runs = store.runs("shop", Some("api"), 10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].run, runs[0].pid, runs[0].exit_code), (7, Some(4242), Some(3)));
    let errs = store.query_events(&EventQuery { level: Some(Level::Error), ..Default::default() }).unwrap();
    assert_eq!(errs.len(), 2);
    let hits =
        store.search(&SearchQuery { text: "crash".into(), kinds: vec![Kind::Event], ..Default::default() }).unwrap();
    assert_eq!(hits.len(), 1, "the stemmer maps crash → crashed");
}

#[test]
fn retention_by_age_deletes_old_logs_and_keeps_notes() {
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let sink = store.log_sink();
    let p = project("shop");
    let old = now_ms() - 20 * 86_400_000;
    for i in 0..25_000u64 {
        sink.send_at(&p, ll("api", 1, format!("ancient line {i}")), old + i).unwrap();
    }
    for i in 0..100 {
        sink.send(&p, ll("api", 1, format!("fresh line {i}"))).unwrap();
    }
    store.add_note(note("shop", None, "an ancient note stays")).unwrap();
    store.flush_index().unwrap();
    // The writer may already have started on its own; enforce_retention finishes the job.
    let report = store.enforce_retention().unwrap();
    assert!(report.logs_by_age <= 25_000);
    let st = store.stats().unwrap();
    assert_eq!(st.retained_deleted, 25_000);
    assert_eq!((st.log_rows, st.note_rows), (100, 1));
    assert!(search(&store, "ancient").iter().all(|h| h.kind == Kind::Note));
    assert_eq!(search(&store, "fresh").len(), 50, "the default limit");
    // New rows after a retention that emptied older ids get fresh ids and are searchable and deletable.
    store.log_sink().send(&p, ll("api", 1, "brand new line")).unwrap();
    store.flush_index().unwrap();
    assert_eq!(search(&store, "brand").len(), 1);
}

#[test]
fn retention_by_size_deletes_the_oldest_logs_and_keeps_notes() {
    let dir = tmp();
    let limit = 1024 * 1024;
    let opts = StoreOptions { index_part_rows: 2_000, ..Default::default() };
    let store = Store::open_with(dir.path().join("s.db"), opts).unwrap();
    store.add_note(note("shop", None, "notes survive size retention")).unwrap();
    let sink = store.log_sink();
    let p = project("shop");
    for i in 0..30_000 {
        sink.send(&p, ll("api", 1, format!("line number {i} with some padding words alpha beta gamma delta"))).unwrap();
    }
    store.flush_index().unwrap();
    let before = store.stats().unwrap();
    assert!(before.used_bytes > 2 * limit, "the test must start over the limit: {}", before.used_bytes);
    store.set_retention(RetentionPolicy { max_bytes: limit, max_age: Duration::from_secs(86_400) }).unwrap();
    let report = store.enforce_retention().unwrap();
    let after = store.stats().unwrap();
    assert!(report.logs_by_size > 0);
    assert!(after.used_bytes - after.reclaimable_bytes <= limit, "{after:?}");
    assert!(after.used_bytes <= limit + 256 * 1024, "at most about one index part more: {after:?}");
    assert!(after.log_rows > 1000, "retention overshot: {} rows left", after.log_rows);
    assert_eq!(after.note_rows, 1);
    let newest = store.last_lines("shop", "api", 1).unwrap();
    assert_eq!(newest[0].text, "line number 29999 with some padding words alpha beta gamma delta");
    let oldest = store.query_logs(&LogQuery { after_id: Some(0), limit: 1, ..Default::default() }).unwrap();
    assert!(oldest[0].id > 1000, "the oldest rows went first");
    assert_eq!(search(&store, "survive").len(), 1);
    assert_eq!(search(&store, "29999").len(), 1);
    assert!(search(&store, "\"number 5\"").is_empty(), "deleted rows are gone from the index too");
}

#[test]
fn notes_are_durable_when_add_note_returns() {
    let dir = tmp();
    let path = dir.path().join("s.db");
    let store = Store::open(&path).unwrap();
    let id = store.add_note(note("shop", Some("api"), "remember: token=abc123 rotate keys")).unwrap();
    // A second writer is refused with a clear error…
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    // …a reader on the same file sees the note at once (committed, not queued)…
    let other = Store::open_read_only(&path).unwrap();
    assert!(matches!(other.add_note(note("shop", None, "x")), Err(StoreError::ReadOnly)));
    assert!(matches!(other.flush(), Err(StoreError::ReadOnly)));
    let notes = other.notes(Some("shop"), 10).unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!((notes[0].id, notes[0].text.as_str()), (id, "remember: token=*** rotate keys"));
    assert_eq!(notes[0].module.as_deref(), Some("api"));
    let one = other.note(id).unwrap().expect("the note by id");
    assert_eq!((one.id, one.text.as_str(), one.project.as_str()), (id, "remember: token=*** rotate keys", "shop"));
    assert_eq!(other.note(id + 1000).unwrap(), None);
    drop(other);
    drop(store);
    // …and after both are gone.
    let again = Store::open(&path).unwrap();
    assert_eq!(again.notes(None, 10).unwrap().len(), 1);
    assert_eq!(search(&again, "rotate").len(), 1);
}

#[test]
fn a_corrupt_file_is_a_clear_error_naming_the_path() {
    let dir = tmp();
    let path = dir.path().join("broken.db");
    std::fs::write(&path, vec![0x5au8; 16 * 1024]).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn the_writer_survives_a_full_disk_and_counts_dropped_rows() {
    let dir = tmp();
    let opts = StoreOptions {
        hard_max_bytes: Some(512 * 1024),
        retention: RetentionPolicy { max_bytes: u64::MAX, max_age: Duration::from_secs(365 * 86_400) },
        ..Default::default()
    };
    let store = Store::open_with(dir.path().join("s.db"), opts).unwrap();
    let sink = store.log_sink();
    let p = project("shop");
    for i in 0..20_000 {
        sink.send(&p, ll("api", 1, format!("filler line {i} {}", "x".repeat(80)))).unwrap();
    }
    store.flush().unwrap();
    let st = store.stats().unwrap();
    assert!(st.dropped > 0, "{st:?}");
    assert!(st.last_error.as_deref().unwrap_or("").contains("full"), "{st:?}");
    assert_eq!(st.log_rows + st.dropped, 20_000, "every row is stored or counted");
    // Reads still work, and once retention frees room, later batches are stored again.
    assert!(store.search(&SearchQuery { text: "filler".into(), ..Default::default() }).is_ok());
    store.set_retention(RetentionPolicy { max_bytes: 64 * 1024, max_age: Duration::from_secs(86_400) }).unwrap();
    store.enforce_retention().unwrap();
    for i in 0..10 {
        sink.send(&p, ll("api", 1, format!("after recovery {i}"))).unwrap();
    }
    store.flush().unwrap();
    assert_eq!(store.last_lines("shop", "api", 10).unwrap()[9].text, "after recovery 9");
    assert_eq!(store.stats().unwrap().dropped, st.dropped);
}

#[test]
fn back_pressure_loses_nothing_with_a_tiny_queue() {
    let dir = tmp();
    let opts = StoreOptions { queue_lines: 4, batch_rows: 16, ..Default::default() };
    let store = Store::open_with(dir.path().join("s.db"), opts).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let sink = store.log_sink();
            std::thread::spawn(move || {
                let p = project("shop");
                for i in 0..2_000 {
                    sink.send(&p, ll(&format!("m{t}"), 1, format!("t{t} line {i}"))).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    store.flush().unwrap();
    assert_eq!(store.stats().unwrap().log_rows, 8_000);
    for t in 0..4 {
        let rows =
            store.query_logs(&LogQuery { module: Some(format!("m{t}")), limit: 5000, ..Default::default() }).unwrap();
        assert!(rows.iter().enumerate().all(|(i, r)| r.text == format!("t{t} line {i}")), "per-module order kept");
    }
}

#[test]
fn reopening_indexes_the_tail_left_by_a_previous_run() {
    // Opportunistic indexing waits an hour: rows stay in the tail until flush_index(), deterministically.
    let lazy = || StoreOptions { index_delay: Duration::from_secs(3600), ..Default::default() };
    let dir = tmp();
    let path = dir.path().join("s.db");
    {
        let store = Store::open_with(&path, lazy()).unwrap();
        for i in 0..500 {
            store.log_sink().send(&project("p"), ll("m", 1, format!("persisted kumquat {i}"))).unwrap();
        }
        store.flush().unwrap();
    }
    // What the previous run left unindexed is still unindexed (and searchable) until flush_index().
    let store =
        Store::open_with(&path, StoreOptions { index_delay: Duration::from_secs(3600), ..Default::default() }).unwrap();
    assert_eq!(store.stats().unwrap().unindexed, 500);
    assert_eq!(search(&store, "kumquat").len(), 50);
    store.flush_index().unwrap();
    assert_eq!(store.stats().unwrap().unindexed, 0);
    assert_eq!(
        store.query_logs(&LogQuery { text: Some("kumquat".into()), limit: 1000, ..Default::default() }).unwrap().len(),
        500
    );
    // Rows on both sides of the index watermark in one query: id order, paging across the boundary.
    for i in 500..510 {
        store.log_sink().send(&project("p"), ll("m", 1, format!("persisted kumquat {i}"))).unwrap();
    }
    store.flush().unwrap();
    assert_eq!(store.stats().unwrap().unindexed, 10);
    let all = store.query_logs(&LogQuery { text: Some("kumquat".into()), limit: 1000, ..Default::default() }).unwrap();
    assert_eq!(all.len(), 510);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(all[509].text, "persisted kumquat 509");
    let newest = store.query_logs(&LogQuery { text: Some("kumquat".into()), limit: 15, ..Default::default() }).unwrap();
    assert_eq!(newest.first().unwrap().text, "persisted kumquat 495");
    let fwd = store
        .query_logs(&LogQuery {
            text: Some("kumquat".into()),
            after_id: Some(all[494].id),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let want: Vec<String> = (495..505).map(|i| format!("persisted kumquat {i}")).collect();
    assert_eq!(fwd.iter().map(|r| r.text.clone()).collect::<Vec<_>>(), want);
    let hits = search(&store, "kumquat");
    assert_eq!(hits[0].snippet, format!("persisted {HIGHLIGHT_START}kumquat{HIGHLIGHT_END} 509"));
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Store>();
    check::<steward_framework::store::LogSink>();
    // And a sink outliving its store fails cleanly instead of hanging.
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let sink = store.log_sink();
    drop(store);
    assert!(matches!(sink.send(&project("p"), ll("m", 1, "late")), Err(StoreError::Closed)));
}

#[test]
fn reindex_rebuilds_a_damaged_index_with_progress() {
    let dir = tmp();
    let opts = StoreOptions { index_part_rows: 3_000, ..Default::default() };
    let store = Store::open_with(dir.path().join("s.db"), opts).unwrap();
    let sink = store.log_sink();
    let p = project("shop");
    for i in 0..10_000 {
        sink.send(&p, ll("api", 1, format!("request {i} served zebra{}", i % 7))).unwrap();
    }
    store.add_note(note("shop", None, "the kiwi cache key")).unwrap();
    store.flush_index().unwrap();
    assert_eq!(search(&store, "zebra3").len(), 50);
    // Damage the index: drop one part behind the store's back (its rows are now neither indexed nor in the tail).
    raw(&store).execute_batch("DROP TABLE blocks_fts_2").unwrap();
    // The damage shows: the query fails on the missing table (or would miss rows).
    match store.query_logs(&LogQuery { text: Some("zebra3".into()), limit: 5000, ..Default::default() }) {
        Err(e) => assert!(e.to_string().contains("blocks_fts_2"), "{e}"),
        Ok(found) => assert!(found.len() < 1429, "the damage is visible: {}", found.len()),
    }
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    let rows = store.reindex(move |done, total| seen.lock().unwrap().push((done, total))).unwrap();
    assert_eq!(rows, 10_000);
    let calls = calls.lock().unwrap().clone();
    assert!(
        calls.len() >= 2 && calls.first() == Some(&(0, 10_000)) && calls.last() == Some(&(10_000, 10_000)),
        "{calls:?}"
    );
    let found = store.query_logs(&LogQuery { text: Some("zebra3".into()), limit: 5000, ..Default::default() }).unwrap();
    assert_eq!(found.len(), 1429, "every row is found again");
    assert_eq!(store.stats().unwrap().unindexed, 0);
    assert_eq!(search(&store, "kiwi").len(), 1, "notes are still searchable");
}

#[test]
fn vacuum_shrinks_the_file_and_keeps_the_data() {
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let sink = store.log_sink();
    let p = project("shop");
    for i in 0..30_000 {
        sink.send(&p, ll("api", 1, format!("line {i} {}", "pad ".repeat(20)))).unwrap();
    }
    store.add_note(note("shop", None, "vacuum keeps notes")).unwrap();
    store.flush_index().unwrap();
    store.set_retention(RetentionPolicy { max_bytes: 512 * 1024, max_age: Duration::from_secs(86_400) }).unwrap();
    store.enforce_retention().unwrap();
    let before = store.stats().unwrap();
    store.vacuum().unwrap();
    let after = store.stats().unwrap();
    assert!(after.file_bytes < before.file_bytes / 2, "{} → {}", before.file_bytes, after.file_bytes);
    assert_eq!((after.log_rows, after.note_rows), (before.log_rows, 1));
    assert_eq!(search(&store, "vacuum").len(), 1);
    store.check_writable().unwrap();
    let ro = Store::open_read_only(store.path()).unwrap();
    assert!(matches!(ro.check_writable(), Err(StoreError::ReadOnly)));
}

#[test]
fn retention_preview_counts_without_deleting_and_projects_are_listed() {
    let dir = tmp();
    // The store's own retention keeps a year, so its background step cannot race the preview; the preview
    // asks about the default 14 days.
    let year = RetentionPolicy { max_age: Duration::from_secs(365 * 86_400), ..RetentionPolicy::default() };
    let store =
        Store::open_with(dir.path().join("s.db"), StoreOptions { retention: year, ..StoreOptions::default() }).unwrap();
    let sink = store.log_sink();
    let old = now_ms() - 20 * 86_400_000;
    for i in 0..300u64 {
        sink.send_at(&project("/a/steward.toml"), ll("api", 1, format!("old {i}")), old + i).unwrap();
    }
    for i in 0..50 {
        sink.send(&project("/b/steward.toml"), ll(if i % 2 == 0 { "db" } else { "web" }, 1, "new")).unwrap();
    }
    store.flush().unwrap();
    let preview = store.retention_preview_with(RetentionPolicy::default()).unwrap();
    assert_eq!((preview.logs_by_age, preview.logs_by_size), (300, 0));
    assert_eq!(store.retention_preview().unwrap().logs_by_age, 0, "the store's own policy keeps a year");
    assert_eq!(store.stats().unwrap().log_rows, 350, "a preview deletes nothing");
    let projects = store.projects().unwrap();
    let names: Vec<(String, Vec<String>)> = projects.into_iter().map(|p| (p.project, p.modules)).collect();
    assert_eq!(
        names,
        vec![
            ("/a/steward.toml".to_string(), vec!["api".to_string()]),
            ("/b/steward.toml".to_string(), vec!["db".to_string(), "web".to_string()])
        ]
    );
}

/// Lines arrive in chunks, as the daemon's capture hands them over, from three modules in turn: thousands of
/// lines end up in many blocks of different streams. Paging both ways visits every line once in arrival
/// order, per-module reads and word searches find exactly the lines they should, on both sides of the index
/// watermark.
#[test]
fn chunked_ingestion_across_many_blocks_reads_like_single_lines() {
    use steward_framework::lifecycle::LogChunk;
    let dir = tmp();
    let store = open_lazy(&dir);
    let sink = store.log_sink();
    let p = project("shop");
    let t0 = now_ms() - 60_000;
    let modules = ["api", "db", "worker"];
    let mut expected: Vec<(String, String)> = Vec::new();
    let mut n = 0u64;
    for round in 0..30 {
        for (k, m) in modules.iter().enumerate() {
            let mut chunk = LogChunk::new(Arc::from(*m), 1, Stream::Stdout, t0 + round * 100 + k as u64);
            let lines = if *m == "api" { 500 } else { 1 + round as usize % 7 };
            for _ in 0..lines {
                let word = if n % 997 == 0 { " needle" } else { "" };
                let level = if n % 10 == 0 { "ERROR" } else { "INFO" };
                let text = format!("{level} {m} line {n}{word}");
                chunk.push(text.as_bytes(), false);
                expected.push((m.to_string(), text));
                n += 1;
            }
            sink.send_chunk(&p, &chunk).unwrap();
        }
    }
    store.flush().unwrap();
    let total = expected.len();
    assert!(total > 3 * 4096, "several full blocks: {total}");

    in_tail_and_index(&store, |phase| {
        // Backward from the newest, 777 at a time.
        let mut back: Vec<(String, String)> = Vec::new();
        let mut before = None;
        loop {
            let page = store.query_logs(&LogQuery { before_id: before, limit: 777, ..Default::default() }).unwrap();
            if page.is_empty() {
                break;
            }
            before = Some(page[0].id);
            back.splice(0..0, page.into_iter().map(|r| (r.module, r.text)));
        }
        assert_eq!(back.len(), total, "{phase}");
        assert!(back == expected, "{phase}: backward paging is arrival order");
        // Forward from the start, 1000 at a time; ids have no gaps.
        let mut ids = Vec::new();
        let mut after = Some(0);
        loop {
            let page = store.query_logs(&LogQuery { after_id: after, limit: 1000, ..Default::default() }).unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            ids.extend(page.iter().map(|r| r.id));
        }
        assert_eq!(ids.len(), total, "{phase}");
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{phase}: ids follow each other");
        // One module, newest 50.
        let db = store.query_logs(&LogQuery { module: Some("db".into()), limit: 50, ..Default::default() }).unwrap();
        let all_db: Vec<&String> = expected.iter().filter(|(m, _)| m == "db").map(|(_, t)| t).collect();
        let want = &all_db[all_db.len() - 50..];
        assert_eq!(db.iter().map(|r| &r.text).collect::<Vec<_>>(), want, "{phase}");
        // Errors only.
        let errors =
            store.query_logs(&LogQuery { level: Some(Level::Error), limit: 100_000, ..Default::default() }).unwrap();
        assert_eq!(errors.len(), total.div_ceil(10), "{phase}");
        // A rare word in lines of different blocks.
        let needles: Vec<&String> = expected.iter().filter(|(_, t)| t.ends_with("needle")).map(|(_, t)| t).collect();
        let found =
            store.query_logs(&LogQuery { text: Some("needle".into()), limit: 1000, ..Default::default() }).unwrap();
        assert_eq!(found.iter().map(|r| &r.text).collect::<Vec<_>>(), needles, "{phase}");
        let hits = store.search(&SearchQuery { text: "needle".into(), limit: 1000, ..Default::default() }).unwrap();
        assert_eq!(hits.len(), needles.len(), "{phase}");
        assert!(hits.iter().all(|h| h.snippet.contains(&format!("{HIGHLIGHT_START}needle{HIGHLIGHT_END}"))));
        // A phrase, checked line by line (the index has no positions).
        let phrase =
            store.search(&SearchQuery { text: "\"db line\"".into(), limit: 1000, ..Default::default() }).unwrap();
        assert_eq!(phrase.len(), expected.iter().filter(|(m, _)| m == "db").count().min(1000), "{phase}");
        assert!(store.search(&SearchQuery { text: "\"line db\"".into(), ..Default::default() }).unwrap().is_empty());
    });
}

/// Nobody calls `flush_index`: a module that logs a line every 50 ms (never quiet for long) and a flood that
/// stops both end up in the index on the writer's own schedule.
#[test]
fn the_index_catches_up_with_a_trickle_and_after_a_flood() {
    let dir = tmp();
    let store = Store::open(dir.path().join("s.db")).unwrap();
    let sink = store.log_sink();
    let p = project("shop");
    // A trickle: the writer never sees a quiet gap of its own, yet indexes a tail that gets old.
    let start = std::time::Instant::now();
    let mut sent = 0;
    while start.elapsed() < Duration::from_secs(3) {
        sink.send(&p, ll("slow", 1, format!("tick {sent}"))).unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(50)); // the module's pace, not a synchronisation
        if start.elapsed() > Duration::from_millis(2_500) && store.stats().unwrap().unindexed < sent {
            break;
        }
    }
    assert!(store.stats().unwrap().unindexed < sent, "part of the trickle was indexed while it went on");
    // A flood, then silence.
    flood(&sink, &p, 0..100);
    store.flush().unwrap();
    let unindexed = || store.stats().unwrap().unindexed;
    wait_for("the flood to be indexed", || unindexed() == 0, || format!("still {} lines unindexed", unindexed()));
    assert_eq!(store.stats().unwrap().log_rows, sent + 100_000);
    assert_eq!(search(&store, "flood").len(), 50);
    // Once the flow is quiet the writer also checkpoints: the database file itself holds every page in use
    // (during the flood they were only in the WAL).
    let db = dir.path().join("s.db");
    let (len, used) = (|| std::fs::metadata(&db).unwrap().len(), || store.stats().unwrap().used_bytes);
    wait_for("no checkpoint", || len() >= used(), || format!("the file has {} of {} bytes", len(), used()));
}

/// A reader that holds an old snapshot while the writer checkpoints leaves frames in the WAL (a PASSIVE
/// checkpoint cannot copy past it). Once the reader is gone the writer must finish the job soon, not wait
/// for another 20,000 rows or five minutes.
#[test]
fn a_checkpoint_held_back_by_a_reader_is_finished_once_the_reader_is_gone() {
    let dir = tmp();
    let db = dir.path().join("s.db");
    let store = Store::open(&db).unwrap();
    let sink = store.log_sink();
    let p = project("shop");
    flood(&sink, &p, 0..50);
    store.flush().unwrap();
    // A reader's snapshot from between the two halves of the flood.
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let _: i64 = reader.query_row("SELECT count(*) FROM log_blocks", [], |r| r.get(0)).unwrap();
    flood(&sink, &p, 50..100);
    store.flush().unwrap();
    let (len, used) = (|| std::fs::metadata(&db).unwrap().len(), || store.stats().unwrap().used_bytes);
    let state = || format!("the file has {} of {} bytes", len(), used());
    let before = len();
    // The quiet writer indexes, then checkpoints what it can: up to the reader's snapshot.
    wait_for("a partial checkpoint", || len() > before, state);
    assert!(len() < used(), "the reader did not hold the checkpoint back: {}", state());
    reader.execute_batch("COMMIT").unwrap();
    drop(reader);
    wait_for("the rest of the checkpoint", || len() >= used(), state);
}
