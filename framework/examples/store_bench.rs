//! Store benchmark: ingestion throughput, memory search latency, and `grep` over the same text.
//!
//! ```text
//! cargo run --release -p steward-framework --example store_bench -- [--lines N] [--notes N] [--queries N]
//!                                                                   [--out PATH] [--dir DIR]
//! ```
//! Prints the figures and writes them as JSON to `--out` (default `bench/results/store.json`, relative to the
//! current directory). Lines are synthetic but shaped like real logs (~100 bytes: a level, a request id,
//! words drawn from a 20,000-word vocabulary with a Zipf distribution, some `key=value` pairs, 5 % JSON),
//! from one module through one `LogSink`, timed until `flush()` returns (stored *and* searchable).
//! Queries are words picked by their real frequency in the generated text: rare (≤ 60 lines), medium
//! (100–5,000 lines), common (≥ 50,000 lines) and two-word queries (medium + common). Searches run after
//! `flush_index()`; one search right after `flush()` shows the cost of scanning the unindexed tail.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use steward_framework::lifecycle::{LogChunk, Stream, now_ms};
use steward_framework::store::{Kind, NoteInput, RetentionPolicy, SearchQuery, Store, StoreOptions};

struct Args {
    lines: usize,
    notes: usize,
    queries: usize,
    out: PathBuf,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        lines: 1_000_000,
        notes: 10_000,
        queries: 200,
        out: PathBuf::from("bench/results/store.json"),
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--lines" => a.lines = val()?.parse().map_err(|e| format!("--lines: {e}"))?,
            "--notes" => a.notes = val()?.parse().map_err(|e| format!("--notes: {e}"))?,
            "--queries" => a.queries = val()?.parse().map_err(|e| format!("--queries: {e}"))?,
            "--out" => a.out = PathBuf::from(val()?),
            "--dir" => a.dir = Some(PathBuf::from(val()?)),
            "-h" | "--help" => {
                println!("store_bench [--lines N] [--notes N] [--queries N] [--out PATH] [--dir DIR]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ra", "te", "su", "no", "vi", "ze", "po", "da", "ne", "ri", "to", "mu", "sa", "be", "fi", "go",
    "hu", "je", "ly", "qu", "wo", "xe", "ch", "st", "tr", "pl", "gr",
];
const COMMON: &[&str] = &[
    "request",
    "handled",
    "user",
    "session",
    "cache",
    "query",
    "connection",
    "timeout",
    "worker",
    "started",
    "completed",
    "failed",
    "retry",
    "database",
    "response",
    "latency",
    "upstream",
    "token",
    "queue",
    "message",
];

fn vocabulary(rng: &mut Rng, n: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut words: Vec<String> = COMMON.iter().map(|s| s.to_string()).collect();
    seen.extend(words.iter().cloned());
    while words.len() < n {
        let k = 2 + rng.below(3);
        let w: String = (0..k).map(|_| SYLLABLES[rng.below(SYLLABLES.len())]).collect();
        if seen.insert(w.clone()) {
            words.push(w);
        }
    }
    words
}

/// Zipf(s = 1.07) sampler by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}
impl Zipf {
    fn new(n: usize) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for r in 1..=n {
            acc += 1.0 / (r as f64).powf(1.07);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

fn make_line(rng: &mut Rng, vocab: &[String], zipf: &Zipf, counts: &mut [u32], i: usize) -> String {
    let level = match rng.below(100) {
        0..=2 => "ERROR",
        3..=9 => "WARN",
        10..=19 => "DEBUG",
        _ => "INFO",
    };
    let mut words: Vec<usize> = Vec::new();
    let mut body = String::new();
    while body.len() < 60 {
        let w = zipf.sample(rng);
        words.push(w);
        body.push_str(&vocab[w]);
        body.push(' ');
    }
    words.sort_unstable();
    words.dedup();
    for w in words {
        counts[w] += 1;
    }
    let ms = rng.below(2000);
    if i % 20 == 0 {
        format!(
            r#"{{"level":"{}","msg":"{}","req":"{:08x}","ms":{ms}}}"#,
            level.to_lowercase(),
            body.trim_end(),
            rng.next() as u32
        )
    } else {
        format!(
            "{level} api req={:08x} {body}status={} took={ms}ms",
            rng.next() as u32,
            [200, 200, 200, 404, 500][rng.below(5)]
        )
    }
}

fn rss_kib() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("store_bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("store_bench: {e}");
        std::process::exit(2);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = std::env::temp_dir().join(format!("steward-store-bench-{}", std::process::id()));
            std::fs::create_dir_all(&tmp)?;
            tmp.clone()
        }
    };
    let db = dir.join("bench.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    // Generate the corpus up front so the timed part is only the store.
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let vocab = vocabulary(&mut rng, 20_000);
    let zipf = Zipf::new(vocab.len());
    let mut counts = vec![0u32; vocab.len()];
    let lines: Vec<String> = (0..args.lines).map(|i| make_line(&mut rng, &vocab, &zipf, &mut counts, i)).collect();
    let avg_len = lines.iter().map(String::len).sum::<usize>() as f64 / lines.len().max(1) as f64;
    let text_path = dir.join("lines.txt");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&text_path)?);
        for l in &lines {
            f.write_all(l.as_bytes())?;
            f.write_all(b"\n")?;
        }
    }
    println!("corpus: {} lines, {:.1} bytes/line on average", lines.len(), avg_len);

    // --- Ingestion ----------------------------------------------------------------------------------------
    let store = Store::open_with(&db, StoreOptions::default())?;
    let sink = store.log_sink();
    let project: Arc<str> = Arc::from("bench");
    let (rss_before, _) = rss_kib();
    let t0 = Instant::now();
    // Chunks of up to 64 KiB, as the daemon's capture hands them over (one per read of a module's pipe).
    let producer = std::thread::spawn(move || -> Result<(), String> {
        let module: Arc<str> = Arc::from("api");
        let mut chunk = LogChunk::new(module.clone(), 1, Stream::Stdout, now_ms());
        for l in lines {
            if chunk.data().len() + l.len() >= 64 * 1024 {
                sink.send_chunk(&project, &chunk).map_err(|e| e.to_string())?;
                chunk = LogChunk::new(module.clone(), 1, Stream::Stdout, now_ms());
            }
            chunk.push(l.as_bytes(), false);
        }
        sink.send_chunk(&project, &chunk).map_err(|e| e.to_string())
    });
    producer.join().map_err(|_| "producer panicked")??;
    let queued = t0.elapsed();
    store.flush()?;
    let ingest = t0.elapsed();
    let (rss_after, rss_peak) = rss_kib();
    let rate = args.lines as f64 / ingest.as_secs_f64();
    let unindexed_at_flush = store.stats()?.unindexed;
    // Search right after the burst, while (part of) it is still the scanned tail.
    let probe = SearchQuery { text: "connection timeout".into(), limit: 20, ..Default::default() };
    let t_tail = Instant::now();
    let tail_hits = store.search(&probe)?.len();
    let tail_search_ms = ms(t_tail.elapsed());
    // Worst case: a word that is nowhere, so the whole tail is scanned.
    let absent = SearchQuery { text: "qqqxxyyzz".into(), limit: 20, ..Default::default() };
    let t_abs = Instant::now();
    store.search(&absent)?;
    let tail_absent_ms = ms(t_abs.elapsed());
    let t_idx = Instant::now();
    store.flush_index()?;
    let index_catch_up = t_idx.elapsed();
    let fully_indexed = t0.elapsed();
    let stats = store.stats()?;
    println!(
        "ingest: {} lines in {:.2} s (all queued after {:.2} s) = {:.0} lines/s stored and searchable",
        args.lines,
        ingest.as_secs_f64(),
        queued.as_secs_f64(),
        rate
    );
    println!(
        "  {} rows were still unindexed at flush; searching them by scan then took {:.0} ms for 2 common words \
         ({} hits), {:.0} ms for an absent word (whole tail scanned)",
        unindexed_at_flush, tail_search_ms, tail_hits, tail_absent_ms
    );
    println!(
        "  fully indexed {:.2} s later: {:.0} lines/s stored and indexed end to end",
        index_catch_up.as_secs_f64(),
        args.lines as f64 / fully_indexed.as_secs_f64()
    );
    println!(
        "  rss {} MiB before, {} MiB after, peak {} MiB; db {:.1} MiB in use, {:.1} MiB on disk (+WAL); dropped {}",
        rss_before / 1024,
        rss_after / 1024,
        rss_peak / 1024,
        stats.used_bytes as f64 / 1048576.0,
        stats.file_bytes as f64 / 1048576.0,
        stats.dropped
    );

    // --- Notes ----------------------------------------------------------------------------------------------
    let t1 = Instant::now();
    let mut notes = Vec::with_capacity(args.notes);
    for i in 0..args.notes {
        let n = 8 + rng.below(20);
        let text: Vec<&str> = (0..n).map(|_| vocab[zipf.sample(&mut rng)].as_str()).collect();
        notes.push(NoteInput {
            project: "bench".into(),
            module: Some(["api", "db", "worker"][i % 3].into()),
            text: text.join(" "),
            tags: vec!["bench".into()],
            source: "cli".into(),
        });
    }
    for chunk in notes.chunks(1000) {
        store.add_notes(chunk.to_vec())?;
    }
    let notes_time = t1.elapsed();
    println!("notes: {} in {:.2} s (batches of 1,000, durable commits)", args.notes, notes_time.as_secs_f64());

    // --- Search -------------------------------------------------------------------------------------------
    let pick =
        |lo: u32, hi: u32| -> Vec<usize> { (0..vocab.len()).filter(|&w| counts[w] >= lo && counts[w] <= hi).collect() };
    let rare = pick(1, 60);
    let medium = pick(100, 5_000);
    let common = pick(50_000, u32::MAX);
    let mut queries: Vec<(&str, String)> = Vec::new();
    for i in 0..args.queries {
        let q = match i % 10 {
            0..=3 if !rare.is_empty() => ("rare", vocab[rare[rng.below(rare.len())]].clone()),
            4..=6 if !medium.is_empty() => ("medium", vocab[medium[rng.below(medium.len())]].clone()),
            7 | 8 if !common.is_empty() => ("common", vocab[common[rng.below(common.len())]].clone()),
            _ => {
                let a = &vocab[medium.get(rng.below(medium.len().max(1))).copied().unwrap_or(0)];
                let b = &vocab[common.get(rng.below(common.len().max(1))).copied().unwrap_or(1)];
                ("two-word", format!("{a} {b}"))
            }
        };
        queries.push(q);
    }
    // Warm-up: one pass over a few queries (the page cache is warm after ingestion anyway).
    for (_, q) in queries.iter().take(5) {
        store.search(&SearchQuery { text: q.clone(), limit: 20, ..Default::default() })?;
    }
    let mut all = Vec::new();
    let mut by_class: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let mut empty = 0;
    for (class, q) in &queries {
        let t = Instant::now();
        let hits = store.search(&SearchQuery { text: q.clone(), limit: 20, ..Default::default() })?;
        let d = ms(t.elapsed());
        if hits.is_empty() {
            empty += 1;
        }
        all.push(d);
        by_class.entry(class).or_default().push(d);
    }
    all.sort_by(f64::total_cmp);
    for v in by_class.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    let (p50, p95, max) = (percentile(&all, 0.5), percentile(&all, 0.95), all.last().copied().unwrap_or(0.0));
    println!(
        "search: {} queries over {} logs + {} notes: p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms ({} empty)",
        all.len(),
        args.lines,
        args.notes,
        p50,
        p95,
        max,
        empty
    );
    for (class, v) in &by_class {
        println!("  {class:9} n={:3} p50 {:.2} ms, p95 {:.2} ms", v.len(), percentile(v, 0.5), percentile(v, 0.95));
    }
    // Filtered search: module + kind + level, as the dashboard does.
    let mut filt = Vec::new();
    for (_, q) in queries.iter().take(50) {
        let t = Instant::now();
        store.search(&SearchQuery {
            text: q.clone(),
            module: Some("api".into()),
            kinds: vec![Kind::Log],
            level: Some(steward_framework::store::Level::Warn),
            limit: 20,
            ..Default::default()
        })?;
        filt.push(ms(t.elapsed()));
    }
    filt.sort_by(f64::total_cmp);
    println!(
        "  filtered (module+kind+level≥warn) p50 {:.2} ms, p95 {:.2} ms",
        percentile(&filt, 0.5),
        percentile(&filt, 0.95)
    );

    // --- grep for comparison --------------------------------------------------------------------------------
    let mut grep_times = Vec::new();
    let grep_n = queries.len().min(40);
    for (_, q) in queries.iter().take(grep_n) {
        let word = q.split_whitespace().next().unwrap_or("x");
        let t = Instant::now();
        let out = std::process::Command::new("grep").arg("-c").arg(word).arg(&text_path).output();
        match out {
            Ok(_) => grep_times.push(ms(t.elapsed())),
            Err(e) => {
                println!("grep: not run ({e})");
                break;
            }
        }
    }
    grep_times.sort_by(f64::total_cmp);
    let (g50, g95) = (percentile(&grep_times, 0.5), percentile(&grep_times, 0.95));
    if !grep_times.is_empty() {
        println!(
            "grep -c WORD over the same {:.0} MiB file: p50 {:.2} ms, p95 {:.2} ms ({} runs)",
            std::fs::metadata(&text_path).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0,
            g50,
            g95,
            grep_times.len()
        );
    }

    // --- Retention: halve the allowed size and time the deletion (steps of ≤ 10,000 rows) ------------------
    let used = store.stats()?.used_bytes;
    store.set_retention(RetentionPolicy { max_bytes: used / 2, ..RetentionPolicy::default() })?;
    let t_ret = Instant::now();
    let report = store.enforce_retention()?;
    let retention_s = t_ret.elapsed().as_secs_f64();
    let steps = report.logs_by_size.div_ceil(steward_framework::store::RETENTION_STEP_ROWS as u64).max(1);
    println!(
        "retention: {} → {:.1} MiB in use by deleting {} rows in {:.2} s ({:.0} rows/s, ~{:.0} ms per step)",
        used as f64 / 1048576.0,
        report.used_bytes as f64 / 1048576.0,
        report.logs_by_size,
        retention_s,
        report.logs_by_size as f64 / retention_s.max(1e-9),
        retention_s * 1000.0 / steps as f64
    );

    let json = serde_json::json!({
        "lines": args.lines,
        "avg_line_bytes": avg_len,
        "ingest_seconds": ingest.as_secs_f64(),
        "ingest_lines_per_sec": rate,
        "ingest_target_lines_per_sec": 400_000,
        "unindexed_at_flush": unindexed_at_flush,
        "tail_search_ms_at_flush": tail_search_ms,
        "tail_search_absent_word_ms_at_flush": tail_absent_ms,
        "index_catch_up_seconds": index_catch_up.as_secs_f64(),
        "indexed_lines_per_sec_end_to_end": args.lines as f64 / fully_indexed.as_secs_f64(),
        "rss_kib_before": rss_before,
        "rss_kib_after": rss_after,
        "rss_kib_peak": rss_peak,
        "db_used_bytes": stats.used_bytes,
        "db_file_bytes": stats.file_bytes,
        "dropped": stats.dropped,
        "notes": args.notes,
        "notes_seconds": notes_time.as_secs_f64(),
        "search_queries": all.len(),
        "search_p50_ms": p50,
        "search_p95_ms": p95,
        "search_max_ms": max,
        "search_p95_target_ms": 20,
        "search_by_class": by_class.iter().map(|(k, v)| (k.to_string(), serde_json::json!({
            "n": v.len(), "p50_ms": percentile(v, 0.5), "p95_ms": percentile(v, 0.95)
        }))).collect::<serde_json::Map<_, _>>(),
        "search_filtered_p50_ms": percentile(&filt, 0.5),
        "search_filtered_p95_ms": percentile(&filt, 0.95),
        "retention_rows_deleted": report.logs_by_size,
        "retention_seconds": retention_s,
        "retention_ms_per_step": retention_s * 1000.0 / steps as f64,
        "grep_runs": grep_times.len(),
        "grep_p50_ms": g50,
        "grep_p95_ms": g95,
    });
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&json)? + "\n")?;
    println!("wrote {}", args.out.display());

    drop(store);
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
