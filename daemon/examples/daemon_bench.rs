//! Daemon benchmark: the real `steward daemon` binary, a private `STEWARD_HOME`, the real socket.
//!
//! ```text
//! cargo build --release -p steward --example daemon_bench --bin steward
//! target/release/examples/daemon_bench [--quick] [--out PATH] [--md PATH] [--steward PATH] [--demo PATH]
//!                                      [--idle-secs N] [--requests N] [--ingest-lines N] [--no-ingest]
//! ```
//! Normally run through `bench/run`, which also splices `--md`'s fragment into `docs/performance.md`.
//!
//! 1. **Idle**: the demo stack opened and brought up through `steward/project/open` + `steward/project/up`
//!    (`wait`), then the daemon left alone: RSS (`VmRSS`, `VmHWM` of `/proc/PID/status`) and CPU
//!    (`utime + stime` of `/proc/PID/stat` over the window, plus the per-thread `schedstat` run time in ns).
//! 2. **RPC**: `steward/status` round trips from a Rust client (the CLI's own client, `src/client.rs`, on a
//!    current-thread tokio runtime): N sequential requests after a warm-up, then throughput with 8 requests
//!    in flight on one connection.
//! 3. **Log ingestion**: a second project whose one module writes L lines of ~100 bytes to stdout; the clock
//!    runs from `steward/project/up` until the last line is returned by `steward/logs` (stored and
//!    searchable); the daemon's RSS is sampled every 20 ms and `VmHWM` read at the end.
//!
//! Exit status: 0 every target met, 1 a target missed, 2 a part failed. Whatever ends it, the daemon and its
//! modules are stopped (SIGTERM, then SIGKILL of everything carrying this run's marker variable).

#[path = "../src/client.rs"]
mod client;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use client::Client;
use serde::Serialize;
use steward_protocol::{self as p, paths};

type R<T> = Result<T, String>;

// ---------------------------------------------------------------------------------------------------------
// /proc

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// utime + stime in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    Some(f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?)
}

/// Sum of the live threads' run time in ns (`/proc/PID/task/*/schedstat`, first field).
fn sched_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

fn thread_names(pid: u32) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in dir.flatten() {
            let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default().trim().to_string();
            *m.entry(name).or_insert(0) += 1;
        }
    }
    m
}

/// Per thread name: (run time in ns from `schedstat`, context switches voluntary + involuntary).
fn thread_cpu(pid: u32) -> BTreeMap<String, (u64, u64)> {
    let mut m = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in dir.flatten() {
            let name = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default().trim().to_string();
            let ns = std::fs::read_to_string(e.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
                .unwrap_or(0);
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let switches: u64 = status
                .lines()
                .filter(|l| l.contains("ctxt_switches"))
                .filter_map(|l| l.split_whitespace().last().and_then(|v| v.parse::<u64>().ok()))
                .sum();
            let entry = m.entry(name).or_insert((0, 0));
            entry.0 += ns;
            entry.1 += switches;
        }
    }
    m
}

/// `after - before` per thread name, as (CPU ms, context switches).
fn thread_cpu_delta(
    before: &BTreeMap<String, (u64, u64)>,
    after: &BTreeMap<String, (u64, u64)>,
) -> BTreeMap<String, (f64, u64)> {
    after
        .iter()
        .map(|(k, &(ns, sw))| {
            let (ns0, sw0) = before.get(k).copied().unwrap_or((0, 0));
            (k.clone(), ((ns.saturating_sub(ns0)) as f64 / 1e6, sw.saturating_sub(sw0)))
        })
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------------------
// cleanup

static DAEMON: Mutex<Option<u32>> = Mutex::new(None);
static MARK: Mutex<String> = Mutex::new(String::new());
static CLEANED: AtomicBool = AtomicBool::new(false);

fn marked_processes(mark: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        if env.split(|b| *b == 0).any(|kv| kv == mark.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// Stops the daemon (SIGTERM: it stops its modules), then SIGKILLs whatever carries the marker.
fn cleanup() {
    if CLEANED.swap(true, Ordering::SeqCst) {
        return;
    }
    if let Some(pid) = *DAEMON.lock().unwrap() {
        // SAFETY: plain syscalls.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let mut st = 0;
            // SAFETY: plain syscall on our own child.
            if unsafe { libc::waitpid(pid as i32, &mut st, libc::WNOHANG) } != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mark = MARK.lock().unwrap().clone();
    if !mark.is_empty() {
        for pid in marked_processes(&mark) {
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

struct Guard;
impl Drop for Guard {
    fn drop(&mut self) {
        cleanup();
    }
}

// ---------------------------------------------------------------------------------------------------------
// stats (µs)

#[derive(Debug, Clone, Serialize)]
struct Stats {
    n: usize,
    min_us: f64,
    median_us: f64,
    p90_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    mean_us: f64,
}

fn stats(v: &mut [f64]) -> Stats {
    v.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        let pos = q * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    let r = |x: f64| (x * 10.0).round() / 10.0;
    Stats {
        n: v.len(),
        min_us: r(v[0]),
        median_us: r(pct(0.5)),
        p90_us: r(pct(0.9)),
        p99_us: r(pct(0.99)),
        p999_us: r(pct(0.999)),
        max_us: r(v[v.len() - 1]),
        mean_us: r(v.iter().sum::<f64>() / v.len() as f64),
    }
}

// ---------------------------------------------------------------------------------------------------------
// report

#[derive(Serialize)]
struct Machine {
    nproc: usize,
    cpu: String,
    kernel: String,
    rustc: String,
    date: String,
    commit: String,
    loadavg_at_start: String,
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let commit = command_line("git", &["rev-parse", "--short", "HEAD"]).map(|c| {
        let dirty =
            command_line("git", &["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        if dirty { format!("{c} (uncommitted changes)") } else { c }
    });
    Machine {
        nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        cpu,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default(),
        rustc: command_line("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
        date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        commit: commit.unwrap_or_else(|| "unknown".into()),
        loadavg_at_start: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_string))
            .unwrap_or_default(),
    }
}

#[derive(Serialize)]
struct Target {
    figure: &'static str,
    value: Option<f64>,
    unit: &'static str,
    target: f64,
    /// `le` (value ≤ target) or `lt` (value < target).
    cmp: &'static str,
    pass: Option<bool>,
}

#[derive(Serialize, Default)]
struct IdleResult {
    modules_running: usize,
    window_s: f64,
    cpu_ticks: u64,
    clk_tck: u64,
    cpu_percent_ticks: f64,
    cpu_percent_schedstat: f64,
    vmrss_kib: u64,
    vmhwm_kib: u64,
    rss_anon_kib: u64,
    rss_file_kib: u64,
    vmsize_kib: u64,
    threads: usize,
    thread_names: BTreeMap<String, usize>,
    up_ms: f64,
    /// Functions of daemon/hot-symbols.txt (the idle code lld lays out together) the binary has, of those
    /// listed: a list gone stale (a version bump renames symbols) shows here as a low share.
    hot_symbols_present: usize,
    hot_symbols_listed: usize,
}

#[derive(Serialize)]
struct RpcResult {
    warmup: usize,
    /// The CLI's client (`steward::client::Client`: async, a reader task, replies parsed into a JSON tree).
    sequential: Stats,
    /// A minimal blocking client (a `std` socket: write a request, read its reply): what the daemon and the
    /// socket take, with little of the client's own cost. The target is judged on this one.
    blocking: Option<Stats>,
    /// The machine's floor: the same client and framing against a minimal server in this process that
    /// answers every request at once with the daemon's own status reply.
    floor: Option<Stats>,
    in_flight: usize,
    concurrent_requests: usize,
    concurrent_secs: f64,
    throughput_per_s: f64,
    concurrent_latency: Stats,
}

#[derive(Serialize)]
struct IngestResult {
    lines: u64,
    line_bytes: usize,
    searchable_after_s: f64,
    lines_per_s: f64,
    rss_peak_sampled_kib: u64,
    /// Peaks of the anonymous (heap, stacks) and file-backed (binary, mapped database) parts of RSS.
    rss_anon_peak_kib: u64,
    rss_file_peak_kib: u64,
    vmhwm_kib: u64,
    rss_after_kib: u64,
    /// Per daemon thread (by name) over the ingestion: CPU ms and context switches.
    threads: BTreeMap<String, (f64, u64)>,
    db_bytes: u64,
    checked: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    schema: u32,
    mode: &'static str,
    machine: Machine,
    targets: Vec<Target>,
    idle: Option<IdleResult>,
    rpc: Option<RpcResult>,
    ingest: Option<IngestResult>,
    errors: Vec<String>,
}

// ---------------------------------------------------------------------------------------------------------
// options

struct Opts {
    quick: bool,
    out: PathBuf,
    md: Option<PathBuf>,
    steward: PathBuf,
    demo: PathBuf,
    idle_secs: u64,
    requests: usize,
    ingest_lines: u64,
    ingest: bool,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn parse_opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Opts {
        quick,
        out: repo().join("bench/results/daemon.json"),
        md: None,
        steward: repo().join("target/release/steward"),
        demo: repo().join("examples/demo/steward.toml"),
        idle_secs: if quick { 10 } else { 60 },
        requests: if quick { 5_000 } else { 20_000 },
        ingest_lines: if quick { 100_000 } else { 1_000_000 },
        ingest: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--quick" => {}
            "--out" => o.out = val().into(),
            "--md" => o.md = Some(val().into()),
            "--steward" => o.steward = val().into(),
            "--demo" => o.demo = val().into(),
            "--idle-secs" => o.idle_secs = val().parse().expect("--idle-secs N"),
            "--requests" => o.requests = val().parse().expect("--requests N"),
            "--ingest-lines" => o.ingest_lines = val().parse().expect("--ingest-lines N"),
            "--no-ingest" => o.ingest = false,
            "-h" | "--help" => {
                println!("see the header of daemon/examples/daemon_bench.rs");
                std::process::exit(0);
            }
            other => {
                eprintln!("daemon_bench: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------------------
// parts

fn start_daemon(o: &Opts, home: &Path, mark: &str) -> R<u32> {
    let (k, v) = mark.split_once('=').unwrap();
    let child = Command::new(&o.steward)
        .arg("daemon")
        .env("STEWARD_HOME", home)
        .env(k, v)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", o.steward.display()))?;
    let pid = child.id();
    std::mem::forget(child); // reaped by cleanup()
    *DAEMON.lock().unwrap() = Some(pid);
    let socket = paths::socket_path(home);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if Instant::now() > deadline {
            return Err("the daemon's socket did not answer within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(pid)
}

async fn idle(o: &Opts, c: &Client, pid: u32) -> R<IdleResult> {
    let mut env = BTreeMap::new();
    for k in ["DEMO_DB_PORT", "DEMO_QUEUE_PORT", "DEMO_API_PORT"] {
        env.insert(k.to_string(), free_port().to_string());
    }
    let t = Instant::now();
    c.open_with(p::OpenParams { path: o.demo.display().to_string(), profile: None, env: Some(env) })
        .await
        .map_err(|e| format!("project/open: {e}"))?;
    let up = c
        .up(p::UpParams { project: "demo".into(), wait: true, timeout_ms: Some(60_000), ..Default::default() })
        .await
        .map_err(|e| format!("project/up: {e}"))?;
    let up_ms = t.elapsed().as_secs_f64() * 1e3;
    if !up.ok {
        return Err(format!("project/up failed: {up:?}"));
    }
    let running = up.project.modules.iter().filter(|m| m.state == p::ModuleState::Running).count();
    // Let start-up settle (first probes, sqlite writes of the start events).
    tokio::time::sleep(Duration::from_secs(if o.quick { 2 } else { 5 })).await;
    let (t0, s0, w0) = (cpu_ticks(pid).ok_or("stat")?, sched_ns(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(o.idle_secs)); // blocks the runtime on purpose: no client activity
    let (t1, s1, wall) = (cpu_ticks(pid).ok_or("stat")?, sched_ns(pid), w0.elapsed().as_secs_f64());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = t1 - t0;
    let hot = hot_symbols(&o.steward);
    Ok(IdleResult {
        modules_running: running,
        window_s: (wall * 100.0).round() / 100.0,
        cpu_ticks: ticks,
        clk_tck: hz,
        cpu_percent_ticks: ((ticks as f64 / hz as f64) / wall * 100.0 * 1e4).round() / 1e4,
        cpu_percent_schedstat: ((s1.saturating_sub(s0)) as f64 / 1e9 / wall * 100.0 * 1e4).round() / 1e4,
        vmrss_kib: status_kib(pid, "VmRSS").unwrap_or(0),
        vmhwm_kib: status_kib(pid, "VmHWM").unwrap_or(0),
        rss_anon_kib: status_kib(pid, "RssAnon").unwrap_or(0),
        rss_file_kib: status_kib(pid, "RssFile").unwrap_or(0),
        vmsize_kib: status_kib(pid, "VmSize").unwrap_or(0),
        threads: thread_names(pid).values().sum(),
        thread_names: thread_names(pid),
        up_ms: (up_ms * 10.0).round() / 10.0,
        hot_symbols_present: hot.0,
        hot_symbols_listed: hot.1,
    })
}

/// (present in the binary, listed) for daemon/hot-symbols.txt; (0, 0) without the list or `nm`.
fn hot_symbols(binary: &Path) -> (usize, usize) {
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("hot-symbols.txt");
    let Ok(text) = std::fs::read_to_string(list) else { return (0, 0) };
    let listed: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let Ok(out) = Command::new("nm").arg(binary).output() else { return (0, listed.len()) };
    let names: std::collections::HashSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    (listed.iter().filter(|n| names.contains(**n)).count(), listed.len())
}

async fn rpc(o: &Opts, c: &Client, home: &Path) -> R<RpcResult> {
    let warmup = 1_000;
    for _ in 0..warmup {
        c.status().await.map_err(|e| format!("status: {e}"))?;
    }
    let mut lat = Vec::with_capacity(o.requests);
    for _ in 0..o.requests {
        let t = Instant::now();
        let s = c.status().await.map_err(|e| format!("status: {e}"))?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(s);
    }
    let blocking = match blocking_stats(home, o.requests) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("daemon_bench: no blocking-client measurement: {e}");
            None
        }
    };
    let floor = match floor_stats(c, o.requests).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("daemon_bench: no floor measurement: {e}");
            None
        }
    };
    let in_flight = 8;
    let total = o.requests * 2;
    let per = total / in_flight;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut l = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                c.status().await.map_err(|e| format!("status: {e}"))?;
                l.push(t.elapsed().as_secs_f64() * 1e6);
            }
            Ok::<_, String>(l)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await.map_err(|e| e.to_string())??);
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(RpcResult {
        warmup,
        sequential: stats(&mut lat),
        blocking,
        floor,
        in_flight,
        concurrent_requests: all.len(),
        concurrent_secs: (secs * 1000.0).round() / 1000.0,
        throughput_per_s: (all.len() as f64 / secs).round(),
        concurrent_latency: stats(&mut all),
    })
}

/// `n` status round trips from the simplest Rust client there is: a blocking `std` socket on this thread,
/// one request written, one reply read (no runtime, no reader task).
fn blocking_stats(home: &Path, n: usize) -> R<Stats> {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::os::unix::net::UnixStream::connect(paths::socket_path(home)).map_err(|e| e.to_string())?;
    let mut w = stream.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(stream);
    let mut body = Vec::new();
    let mut call = |w: &mut std::os::unix::net::UnixStream, msg: &str, reply: bool| -> R<()> {
        w.write_all(format!("Content-Length: {}\r\n\r\n{msg}", msg.len()).as_bytes()).map_err(|e| e.to_string())?;
        if !reply {
            return Ok(());
        }
        loop {
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                r.read_line(&mut line).map_err(|e| e.to_string())?;
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.strip_prefix("Content-Length: ") {
                    len = v.trim().parse().map_err(|_| "bad length".to_string())?;
                }
            }
            body.resize(len, 0);
            r.read_exact(&mut body).map_err(|e| e.to_string())?;
            // Skip notifications pushed meanwhile (events, IPC score): only a response (an id, no method) ends
            // the call. The rest of the message is skipped, not built (as a typed client would).
            #[derive(serde::Deserialize)]
            struct Envelope {
                id: Option<serde::de::IgnoredAny>,
                method: Option<serde::de::IgnoredAny>,
            }
            let e: Envelope = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            if e.id.is_some() && e.method.is_none() {
                return Ok(());
            }
        }
    };
    call(&mut w, r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"capabilities":{}}}"#, true)?;
    call(&mut w, r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#, false)?;
    let status = r#"{"jsonrpc":"2.0","id":1,"method":"steward/status"}"#;
    for _ in 0..1_000 {
        call(&mut w, status, true)?;
    }
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        call(&mut w, status, true)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(stats(&mut lat))
}

/// `n` status round trips against a minimal server (the floor of what this machine allows for a round trip
/// over a Unix socket between two sleeping threads; see `docs/performance.md`).
async fn floor_stats(c: &Client, n: usize) -> R<Stats> {
    let canned =
        serde_json::to_string(&c.status().await.map_err(|e| format!("status: {e}"))?).map_err(|e| e.to_string())?;
    // Not under tempfile_dir(): that one is the daemon's, and making it again would empty it.
    let home = std::env::temp_dir().join(format!("steward-daemon-bench-floor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let sock = paths::socket_path(&home);
    std::fs::create_dir_all(sock.parent().ok_or("socket path")?).map_err(|e| e.to_string())?;
    let listener = std::os::unix::net::UnixListener::bind(&sock).map_err(|e| format!("bind: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        // The daemon's runtime: multi-thread with one worker.
        let Ok(rt) = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() else {
            return;
        };
        rt.block_on(async move {
            let Ok(listener) = tokio::net::UnixListener::from_std(listener) else { return };
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(floor_session(stream, canned.clone()));
            }
        });
    });
    let fc = Client::connect(&home).await.map_err(|e| format!("floor connect: {e}"))?;
    for _ in 0..1_000 {
        fc.status().await.map_err(|e| format!("floor status: {e}"))?;
    }
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(fc.status().await.map_err(|e| format!("floor status: {e}"))?);
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let _ = std::fs::remove_dir_all(&home);
    Ok(stats(&mut lat))
}

/// One connection of the floor server: LSP framing; every request is answered at once (`initialize` with
/// no capabilities, anything else with `canned`); notifications are read and dropped.
async fn floor_session(stream: tokio::net::UnixStream, canned: String) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(&body) else { return };
        let Some(id) = msg.get("id") else { continue };
        let result = if msg["method"] == "initialize" { "{\"capabilities\":{}}" } else { canned.as_str() };
        let reply = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{result}}}");
        let framed = format!("Content-Length: {}\r\n\r\n{reply}", reply.len());
        if write.write_all(framed.as_bytes()).await.is_err() {
            return;
        }
    }
}

const WRITER: &str = r#"import sys, time
n = int(sys.argv[1])
out = sys.stdout.buffer
pad = "x" * 70
chunk = []
for i in range(n):
    chunk.append(("ingest line %09d %s payload\n" % (i, pad)).encode())
    if len(chunk) == 1000:
        out.write(b"".join(chunk)); chunk = []
out.write(b"".join(chunk))
out.write(b"INGEST-DONE-MARKER\n")
out.flush()
time.sleep(3600)
"#;

async fn ingest(o: &Opts, c: &Client, pid: u32, dir: &Path, home: &Path) -> R<IngestResult> {
    let pdir = dir.join("ingest");
    std::fs::create_dir_all(&pdir).map_err(|e| e.to_string())?;
    std::fs::write(pdir.join("writer.py"), WRITER).map_err(|e| e.to_string())?;
    std::fs::write(
        pdir.join("steward.toml"),
        format!(
            "[project]\nname = \"ingest\"\n\n[modules.writer]\nrun = \"python3 writer.py {}\"\nrestart = \"never\"\n",
            o.ingest_lines
        ),
    )
    .map_err(|e| e.to_string())?;
    c.open_with(p::OpenParams { path: pdir.join("steward.toml").display().to_string(), profile: None, env: None })
        .await
        .map_err(|e| format!("project/open ingest: {e}"))?;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = (0, 0, 0);
            while !stop.load(Ordering::Relaxed) {
                peak.0 = peak.0.max(status_kib(pid, "VmRSS").unwrap_or(0));
                peak.1 = peak.1.max(status_kib(pid, "RssAnon").unwrap_or(0));
                peak.2 = peak.2.max(status_kib(pid, "RssFile").unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let threads_before = thread_cpu(pid);
    let t = Instant::now();
    let up = c
        .up(p::UpParams { project: "ingest".into(), wait: true, timeout_ms: Some(30_000), ..Default::default() })
        .await
        .map_err(|e| format!("project/up ingest: {e}"))?;
    if !up.ok {
        stop.store(true, Ordering::Relaxed);
        return Err(format!("project/up ingest failed: {up:?}"));
    }
    let budget = Duration::from_secs(if o.quick { 60 } else { 150 });
    // Poll the newest stored line (an O(1) query, so the poll does not compete with ingestion) until it is the
    // writer's last line; then check once that the full-text index finds it too.
    let found = loop {
        let newest = c
            .logs(p::LogQueryParams { project: Some("ingest".into()), limit: Some(1), ..Default::default() })
            .await
            .map_err(|e| format!("logs: {e}"))?;
        if newest.iter().any(|l| l.text.contains("INGEST-DONE-MARKER")) {
            break true;
        }
        if t.elapsed() > budget {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let secs = t.elapsed().as_secs_f64();
    let threads = thread_cpu_delta(&threads_before, &thread_cpu(pid));
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or((0, 0, 0));
    if !found {
        return Err(format!("the last line was not searchable after {secs:.0} s"));
    }
    // Spot checks: a few lines by exact substring and by full-text search.
    let mut checked = Vec::new();
    for i in [0, o.ingest_lines / 2, o.ingest_lines - 1] {
        let needle = format!("ingest line {i:09}");
        let n = c
            .logs(p::LogQueryParams {
                project: Some("ingest".into()),
                grep: Some(needle.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("logs: {e}"))?
            .len();
        let ft = c
            .logs(p::LogQueryParams {
                project: Some("ingest".into()),
                text: Some(format!("{i:09}")),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("logs: {e}"))?
            .len();
        checked.push(format!("{needle}: grep {n}, text {ft}"));
    }
    let db_bytes = walk_size(home);
    Ok(IngestResult {
        lines: o.ingest_lines,
        line_bytes: format!("ingest line {:09} {} payload\n", 0, "x".repeat(70)).len(),
        searchable_after_s: (secs * 1000.0).round() / 1000.0,
        lines_per_s: (o.ingest_lines as f64 / secs).round(),
        rss_peak_sampled_kib: peak.0,
        rss_anon_peak_kib: peak.1,
        rss_file_peak_kib: peak.2,
        vmhwm_kib: status_kib(pid, "VmHWM").unwrap_or(0),
        rss_after_kib: status_kib(pid, "VmRSS").unwrap_or(0),
        threads,
        db_bytes,
        checked,
    })
}

fn walk_size(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else { return 0 };
    if md.is_dir() {
        std::fs::read_dir(p).map(|d| d.flatten().map(|e| walk_size(&e.path())).sum()).unwrap_or(0)
    } else {
        md.len()
    }
}

// ---------------------------------------------------------------------------------------------------------
// output

fn f(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let mut s = format!(
        "_Generated by `bench/run{}` on {}, commit {}._  \n_Machine: {} core(s), {}, Linux {}, {}; load average {} \
         when the run began._\n\n",
        if r.mode == "quick" { " --quick" } else { "" },
        m.date,
        m.commit,
        m.nproc,
        m.cpu,
        m.kernel,
        m.rustc,
        m.loadavg_at_start
    );
    s.push_str("| Figure | Result | Target | Verdict |\n|---|---|---|---|\n");
    for t in &r.targets {
        let v = t.value.map(|v| format!("{} {}", f(v), t.unit)).unwrap_or_else(|| "–".into());
        let cmp = if t.cmp == "lt" { "<" } else { "≤" };
        let verdict = match t.pass {
            Some(true) => "pass",
            Some(false) => "**FAIL**",
            None => "not measured",
        };
        s.push_str(&format!("| {} | {v} | {cmp} {} {} | {verdict} |\n", t.figure, t.target, t.unit));
    }
    if let Some(i) = &r.idle {
        s.push_str(&format!(
            "\n#### Idle: demo stack up ({} modules running), daemon left alone for {:.0} s\n\n\
             | Figure | Value |\n|---|---:|\n\
             | CPU, utime+stime ({} ticks at {} Hz) | {:.3} % of one core |\n\
             | CPU, sum of live threads' schedstat run time | {:.4} % of one core |\n\
             | VmRSS (RssAnon / RssFile) | {} ({} / {}) |\n\
             | VmHWM (peak so far: start-up, open, up) | {} |\n\
             | VmSize | {} |\n\
             | Threads | {} ({}) |\n\
             | open + up (wait) of the demo | {} ms |\n\
             | Idle code laid out together (daemon/hot-symbols.txt functions in the binary) | {} of {} |\n",
            i.modules_running,
            i.window_s,
            i.cpu_ticks,
            i.clk_tck,
            i.cpu_percent_ticks,
            i.cpu_percent_schedstat,
            mib(i.vmrss_kib),
            mib(i.rss_anon_kib),
            mib(i.rss_file_kib),
            mib(i.vmhwm_kib),
            mib(i.vmsize_kib),
            i.threads,
            i.thread_names.iter().map(|(k, v)| format!("`{k}` ×{v}")).collect::<Vec<_>>().join(", "),
            f(i.up_ms),
            i.hot_symbols_present,
            i.hot_symbols_listed,
        ));
    }
    if let Some(rp) = &r.rpc {
        let row = |name: &str, st: &Stats| {
            format!(
                "| {name} | {} | {} µs | {} µs | {} µs | {} µs | {} µs |\n",
                st.n,
                f(st.median_us),
                f(st.p90_us),
                f(st.p99_us),
                f(st.p999_us),
                f(st.max_us)
            )
        };
        s.push_str(&format!(
            "\n#### `steward/status` round trip (Rust clients, one connection each, demo stack open; {} warm-up requests)\n\n\
             | Load | requests | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|\n",
            rp.warmup
        ));
        if let Some(b) = &rp.blocking {
            s.push_str(&row("sequential, minimal blocking client (`std` socket)", b));
        }
        s.push_str(&row("sequential, the CLI's async client", &rp.sequential));
        if let Some(fl) = &rp.floor {
            s.push_str(&row("floor: a minimal server, the CLI's client, same reply", fl));
        }
        s.push_str(&row(&format!("{} in flight", rp.in_flight), &rp.concurrent_latency));
        s.push_str(&format!(
            "\nThroughput with {} requests in flight: **{:.0} requests/s** ({} requests in {:.2} s).\n",
            rp.in_flight, rp.throughput_per_s, rp.concurrent_requests, rp.concurrent_secs
        ));
    }
    if let Some(g) = &r.ingest {
        s.push_str(&format!(
            "\n#### Log ingestion: one module writes {} lines of {} bytes\n\n\
             | Figure | Value |\n|---|---:|\n\
             | `project/up` → last line returned by `steward/logs` | {:.2} s |\n\
             | Lines/s until stored and searchable | {:.0} |\n\
             | Daemon RSS peak (sampled every 20 ms / VmHWM) | {} / {} |\n\
             | of which anonymous / file-backed (peaks of `RssAnon` / `RssFile`) | {} / {} |\n\
             | Daemon RSS afterwards | {} |\n\
             | `STEWARD_HOME` size afterwards | {:.0} MiB |\n\n\
             Daemon CPU by thread while ingesting (CPU time, context switches): {}.\n\n\
             Spot checks (matches): {}.\n",
            g.lines,
            g.line_bytes,
            g.searchable_after_s,
            g.lines_per_s,
            mib(g.rss_peak_sampled_kib),
            mib(g.vmhwm_kib),
            mib(g.rss_anon_peak_kib),
            mib(g.rss_file_peak_kib),
            mib(g.rss_after_kib),
            g.db_bytes as f64 / 1048576.0,
            g.threads
                .iter()
                .filter(|(_, (ms, _))| *ms >= 1.0)
                .map(|(name, (ms, sw))| format!("`{name}` {:.0} ms, {sw}", ms))
                .collect::<Vec<_>>()
                .join("; "),
            g.checked.join("; ")
        ));
    }
    if !r.errors.is_empty() {
        s.push_str(&format!("\nErrors: {}\n", r.errors.join("; ")));
    }
    s
}

fn target(figure: &'static str, value: Option<f64>, unit: &'static str, target: f64, cmp: &'static str) -> Target {
    let pass = value.map(|v| if cmp == "lt" { v < target } else { v <= target });
    Target { figure, value, unit, target, cmp, pass }
}

fn main() {
    let o = parse_opts();
    let _guard = Guard;
    // Watchdog: whatever happens, stop after the budget (bench/run has its own backstop).
    let budget = if o.quick { 110 } else { 280 };
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(budget));
        eprintln!("daemon_bench: watchdog: still running after {budget} s; stopping");
        cleanup();
        std::process::exit(2);
    });
    let m = machine();
    let dir = tempfile_dir();
    let home = dir.join("home");
    let mark = format!("STEWARD_BENCH_MARK={}", std::process::id());
    *MARK.lock().unwrap() = mark.clone();

    let mut errors = Vec::new();
    let (mut idle_r, mut rpc_r, mut ingest_r) = (None, None, None);
    match start_daemon(&o, &home, &mark) {
        Err(e) => errors.push(format!("daemon: {e}")),
        Ok(pid) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let c = match Client::connect(&home).await {
                    Ok(c) => c,
                    Err(e) => {
                        errors.push(format!("connect: {e}"));
                        return;
                    }
                };
                eprintln!("daemon_bench: idle ({} s)…", o.idle_secs);
                match idle(&o, &c, pid).await {
                    Ok(r) => idle_r = Some(r),
                    Err(e) => errors.push(format!("idle: {e}")),
                }
                eprintln!("daemon_bench: rpc ({} requests)…", o.requests);
                match rpc(&o, &c, &home).await {
                    Ok(r) => rpc_r = Some(r),
                    Err(e) => errors.push(format!("rpc: {e}")),
                }
                if o.ingest {
                    eprintln!("daemon_bench: ingest ({} lines)…", o.ingest_lines);
                    match ingest(&o, &c, pid, &dir, &home).await {
                        Ok(r) => ingest_r = Some(r),
                        Err(e) => errors.push(format!("ingest: {e}")),
                    }
                }
            });
        }
    }
    cleanup();
    let _ = std::fs::remove_dir_all(&dir);

    let targets = vec![
        target(
            "Daemon RSS idle, demo stack running (VmRSS)",
            idle_r.as_ref().map(|i| i.vmrss_kib as f64 / 1024.0),
            "MiB",
            8.0,
            "le",
        ),
        target(
            "Daemon CPU idle (utime+stime over the window)",
            idle_r.as_ref().map(|i| i.cpu_percent_ticks),
            "% of one core",
            0.1,
            "le",
        ),
        target(
            "`steward/status` round trip, p50 (minimal blocking Rust client)",
            rpc_r.as_ref().map(|r| r.blocking.as_ref().map_or(r.sequential.median_us, |b| b.median_us)),
            "µs",
            60.0,
            "le",
        ),
        target(
            "Daemon RSS peak during log ingestion (VmHWM)",
            ingest_r.as_ref().map(|g| g.vmhwm_kib as f64 / 1024.0),
            "MiB",
            64.0,
            "lt",
        ),
    ];
    let report = Report {
        schema: 1,
        mode: if o.quick { "quick" } else { "full" },
        machine: m,
        targets,
        idle: idle_r,
        rpc: rpc_r,
        ingest: ingest_r,
        errors,
    };
    let md = markdown(&report);
    println!("{md}");
    if let Some(parent) = o.out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&o.out, serde_json::to_string_pretty(&report).unwrap() + "\n").expect("write --out");
    if let Some(path) = &o.md {
        std::fs::write(path, &md).expect("write --md");
    }
    let code = if !report.errors.is_empty() {
        2
    } else if report.targets.iter().any(|t| t.pass == Some(false)) {
        1
    } else {
        0
    };
    drop(_guard);
    std::process::exit(code);
}

/// A fresh private directory (no tempfile crate outside dev-dependencies… examples do get them, but keep it
/// plain): `$TMPDIR/steward-daemon-bench-PID`.
fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("steward-daemon-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
