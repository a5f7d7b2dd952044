//! Engine benchmark: crash → respawn latency, engine overhead on a 20-module stack, the demo stack through
//! the real `steward run`, and the daemon's idle cost.
//!
//! ```text
//! cargo build --release -p steward-framework --example engine_bench -p steward
//! target/release/examples/engine_bench [--quick] [--out PATH] [--md PATH] [--steward PATH] [--demo PATH]
//!                                      [--crashes N] [--rounds N] [--idle-secs N] [--no-binary]
//! ```
//! Normally run through `bench/run`, which also splices `--md`'s fragment into `docs/performance.md`.
//! Prints a table and writes JSON to `--out` (default `bench/results/engine.json`).
//!
//! **Clock.** Every timestamp is `CLOCK_MONOTONIC` read with `clock_gettime`, which is one system-wide clock:
//! a timestamp taken inside a module process and one taken in the engine's process are comparable. That is
//! what makes the respawn figure an outside measurement rather than the engine's own bookkeeping.
//!
//! **The module processes are this binary.** Started as `engine_bench --child crash` it prints
//! `S <first instruction of main> E <just before exit>` and exits with status 1; as
//! `engine_bench --child listen PORT DELAY_MS` it waits DELAY_MS, binds 127.0.0.1:PORT, prints
//! `L <start> <listening>` and accepts forever; as `engine_bench --child sleep` it sleeps (a `sleep 1000`
//! that dies with whatever spawned it, so that no interrupted run leaves modules behind). A tiny Rust program starts in well under a millisecond,
//! unlike `python3 -c` (~20 ms), and can read the monotonic clock, unlike `sh -c 'exit 1'`.
//!
//! What each figure means, exactly, is written next to it in `docs/performance.md` ("Method").

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use steward_framework::config::{self, LoadOptions, ModuleSpec, Stack};
use steward_framework::core::Input;
use steward_framework::engine::{self, EngineHandle, EngineOptions};
use steward_framework::lifecycle::{Event, EventKind, LogChunk, LogLine};
use steward_framework::process;
use tokio::sync::{broadcast, mpsc};

type R<T> = Result<T, String>;

// ---------------------------------------------------------------------------------------------------------
// clock, child modes

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process of the machine.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the struct we own; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn ms(ns: i128) -> f64 {
    ns as f64 / 1e6
}

/// Long-running children die with the process that spawned them, whatever ends it (Ctrl-C, the watchdog,
/// a panic): a benchmark must not leave modules behind even if its cleanup races with an engine that is
/// still spawning.
fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers; getppid has no preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        // The parent may have died before the prctl: then we were already reparented.
        if libc::getppid() == 1 {
            libc::_exit(0);
        }
    }
}

/// The module processes of the benchmark (see the crate docs). Never returns.
fn child_main(args: &[String]) -> ! {
    let start = mono_ns();
    match args.first().map(String::as_str) {
        Some("crash") => {
            let end = mono_ns();
            let line = format!("S {start} E {end}\n");
            // SAFETY: write(2) of a buffer we own to fd 1, then _exit: no destructors, no atexit handlers, so
            // nothing runs between the timestamp and the end of the process but the kernel's own teardown.
            unsafe {
                libc::write(1, line.as_ptr().cast(), line.len());
                libc::_exit(1);
            }
        }
        Some("sleep") => {
            die_with_parent();
            loop {
                std::thread::sleep(Duration::from_secs(1000));
            }
        }
        Some("listen") => {
            die_with_parent();
            let port: u16 = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
            let delay: u64 = args.get(2).and_then(|d| d.parse().ok()).unwrap_or(0);
            std::thread::sleep(Duration::from_millis(delay));
            let listener = match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("listen {port}: {e}");
                    std::process::exit(2);
                }
            };
            let listening = mono_ns();
            println!("L {start} {listening}");
            let _ = std::io::stdout().flush();
            for conn in listener.incoming() {
                drop(conn);
            }
            std::process::exit(0);
        }
        other => {
            eprintln!("unknown child mode {other:?}");
            std::process::exit(2);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// arguments

struct Args {
    quick: bool,
    out: PathBuf,
    md: Option<PathBuf>,
    steward: Option<PathBuf>,
    demo: PathBuf,
    crashes: usize,
    rounds: usize,
    demo_rounds: usize,
    idle_secs: u64,
    binary: bool,
    /// Parts to run (respawn, overhead, demo, idle); empty = all.
    only: Vec<String>,
}

impl Args {
    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

const USAGE: &str = "engine_bench [--quick] [--out PATH] [--md PATH] [--steward PATH] [--demo PATH] \
                     [--crashes N] [--rounds N] [--idle-secs N] [--no-binary] [--only respawn,overhead,demo,idle]";

fn parse_args(raw: &[String]) -> R<Args> {
    let quick = raw.iter().any(|a| a == "--quick");
    let mut a = Args {
        quick,
        out: PathBuf::from("bench/results/engine.json"),
        md: None,
        steward: None,
        demo: PathBuf::from("examples/demo/steward.toml"),
        crashes: if quick { 30 } else { 100 },
        rounds: if quick { 3 } else { 10 },
        demo_rounds: if quick { 2 } else { 10 },
        idle_secs: if quick { 3 } else { 10 },
        binary: true,
        only: Vec::new(),
    };
    let mut it = raw.iter();
    while let Some(flag) = it.next() {
        let mut val = || it.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--quick" => {}
            "--out" => a.out = PathBuf::from(val()?),
            "--md" => a.md = Some(PathBuf::from(val()?)),
            "--steward" => a.steward = Some(PathBuf::from(val()?)),
            "--demo" => a.demo = PathBuf::from(val()?),
            "--crashes" => a.crashes = num(val()?)?.max(2),
            "--rounds" => a.rounds = num(val()?)?.max(1),
            "--idle-secs" => a.idle_secs = num(val()?)? as u64,
            "--no-binary" => a.binary = false,
            "--only" => {
                for part in val()?.split(',') {
                    if !["respawn", "overhead", "demo", "idle"].contains(&part) {
                        return Err(format!("--only: unknown part {part} (respawn, overhead, demo, idle)"));
                    }
                    a.only.push(part.to_string());
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\nusage: {USAGE}")),
        }
    }
    Ok(a)
}

// ---------------------------------------------------------------------------------------------------------
// statistics

/// Summary of a sample, in milliseconds. Percentiles interpolate linearly between closest ranks (numpy's
/// default), so the p99 of 100 values lies between the two largest.
#[derive(Debug, Clone, Serialize)]
struct Stats {
    n: usize,
    min_ms: f64,
    median_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    mean_ms: f64,
}

fn stats(values_ms: &[f64]) -> Option<Stats> {
    if values_ms.is_empty() {
        return None;
    }
    let mut v = values_ms.to_vec();
    v.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        let pos = q * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    Some(Stats {
        n: v.len(),
        min_ms: round(v[0]),
        median_ms: round(pct(0.5)),
        p90_ms: round(pct(0.9)),
        p99_ms: round(pct(0.99)),
        max_ms: round(v[v.len() - 1]),
        mean_ms: round(v.iter().sum::<f64>() / v.len() as f64),
    })
}

fn median(s: &Option<Stats>) -> Option<f64> {
    s.as_ref().map(|s| s.median_ms)
}

// ---------------------------------------------------------------------------------------------------------
// cleanup: nothing this benchmark starts may outlive it (Ctrl-C, `timeout`, the watchdog, a panic)

static EXTERNAL: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn track(pid: u32) {
    lock(&EXTERNAL).push(pid);
}

fn untrack(pid: u32) {
    lock(&EXTERNAL).retain(|p| *p != pid);
}

/// SIGKILLs the in-process engines' module groups, and asks external children (`steward run`, shell loops,
/// python modules) to stop: SIGTERM, so that a `steward run` stops its own modules, then SIGKILL.
fn cleanup_everything() {
    engine::kill_all_live_groups();
    let pids = lock(&EXTERNAL).clone();
    for &pid in &pids {
        // SAFETY: plain syscall on a pid we spawned (and have not reaped, as it is still tracked).
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
    let deadline = mono_ns() + 6_000_000_000;
    while mono_ns() < deadline && pids.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in &pids {
        if alive(pid) {
            // SAFETY: as above.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rfind(')').and_then(|i| s[i + 1..].split_whitespace().next()).is_some_and(|st| st != "Z"),
        Err(_) => false,
    }
}

fn install_watchdog(budget: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        eprintln!("engine_bench: time budget of {}s exceeded; cleaning up and giving up", budget.as_secs());
        cleanup_everything();
        std::process::exit(3);
    });
}

/// Spawns `cmd`, tracked for cleanup.
fn spawn_tracked(cmd: &mut Command) -> R<Child> {
    let child = cmd.spawn().map_err(|e| format!("cannot spawn {cmd:?}: {e}"))?;
    track(child.id());
    Ok(child)
}

/// Waits up to `timeout` for `child`; then SIGKILLs it. Returns how long it took, in ms.
fn wait_child(child: &mut Child, timeout: Duration) -> f64 {
    let t0 = mono_ns();
    let deadline = t0 + timeout.as_nanos() as u64;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if mono_ns() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    untrack(child.id());
    ms((mono_ns() - t0) as i128)
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: plain syscall on a child we spawned and have not reaped.
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// Lines of a pipe, each stamped with the monotonic time it was read, collected by a thread.
type Lines = Arc<Mutex<Vec<(u64, String)>>>;

fn collect_lines(pipe: impl Read + Send + 'static) -> Lines {
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            lock(&sink).push((mono_ns(), line));
        }
    });
    lines
}

/// Polls `done` every millisecond until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = mono_ns() + timeout.as_nanos() as u64;
    loop {
        if done() {
            return true;
        }
        if mono_ns() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------------------------
// in-process engine plumbing

/// Everything an engine publishes (events and captured output), each stamped with the monotonic time it
/// was received. Two plain threads block on the channels, so a stamp is taken within microseconds of the
/// send and the recorder competes with the engine's runtime for nothing but CPU.
struct Recorder {
    events: Arc<Mutex<Vec<(u64, Event)>>>,
    logs: Arc<Mutex<Vec<(u64, LogLine)>>>,
}

impl Recorder {
    fn start(mut events: broadcast::Receiver<Event>, mut logs: mpsc::Receiver<LogChunk>) -> Recorder {
        let rec = Recorder { events: Arc::default(), logs: Arc::default() };
        let ev = rec.events.clone();
        std::thread::spawn(move || {
            loop {
                match events.blocking_recv() {
                    Ok(e) => {
                        let t = mono_ns();
                        lock(&ev).push((t, e));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => eprintln!("engine_bench: recorder lost {n} events"),
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        let lg = rec.logs.clone();
        std::thread::spawn(move || {
            while let Some(chunk) = logs.blocking_recv() {
                let t = mono_ns();
                lock(&lg).extend(chunk.to_lines().into_iter().map(|line| (t, line)));
            }
        });
        rec
    }
}

fn start_engine(stack: Stack) -> (EngineHandle, Recorder) {
    let (log_tx, log_rx) = mpsc::channel::<LogChunk>(64);
    let opts = EngineOptions {
        logs: log_tx,
        watch: false,
        load: LoadOptions::from_process_env(None),
        first_run: 1,
        event_capacity: 65536,
    };
    let handle = engine::start(stack, opts);
    let rec = Recorder::start(handle.subscribe(), log_rx);
    (handle, rec)
}

async fn shutdown(handle: &EngineHandle) -> R<f64> {
    let t0 = mono_ns();
    tokio::time::timeout(Duration::from_secs(30), handle.shutdown())
        .await
        .map_err(|_| "engine did not shut down within 30s".to_string())?;
    Ok(ms((mono_ns() - t0) as i128))
}

fn load_stack(path: &Path) -> R<Stack> {
    config::load(path, &LoadOptions::from_process_env(None)).map_err(|diags| {
        let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        format!("{} does not load:\n{}", path.display(), text.join("\n"))
    })
}

// ---------------------------------------------------------------------------------------------------------
// 1. respawn latency

/// One crash child's report: first instruction of main, last instruction before exit.
#[derive(Debug, Clone, Copy)]
struct CrashReport {
    start: u64,
    end: u64,
}

fn parse_crash(text: &str) -> Option<CrashReport> {
    let mut w = text.split_whitespace();
    match (w.next(), w.next(), w.next(), w.next()) {
        (Some("S"), Some(s), Some("E"), Some(e)) => Some(CrashReport { start: s.parse().ok()?, end: e.parse().ok()? }),
        _ => None,
    }
}

/// Gaps between consecutive runs: next run's first instruction − previous run's last instruction. The
/// first `warmup` gaps are dropped.
fn gaps(reports: &[CrashReport], warmup: usize, n: usize) -> Vec<f64> {
    reports.windows(2).skip(warmup).take(n).map(|w| ms(w[1].start as i128 - w[0].end as i128)).collect()
}

fn cycles(reports: &[CrashReport], warmup: usize, n: usize) -> Vec<f64> {
    reports.windows(2).skip(warmup).take(n).map(|w| ms(w[1].start as i128 - w[0].start as i128)).collect()
}

const WARMUP: usize = 5;

fn crash_stack_toml(exe: &Path) -> String {
    format!(
        r#"[project]
name = "engine-bench-respawn"

[modules.crash]
run = "{exe} --child crash"
restart = {{ policy = "always", backoff = "0ms..0ms", max_restarts = 1000, window = "1m" }}
"#,
        exe = exe.display()
    )
}

#[derive(Serialize)]
struct RespawnResult {
    crashes: usize,
    /// The headline: in-process engine, child-reported gap.
    engine: Option<Stats>,
    /// Same, start to start (includes the crashing child's own short life).
    engine_cycle: Option<Stats>,
    /// Engine gap split at the engine's events (each stamped on receipt).
    engine_breakdown: BTreeMap<&'static str, Option<Stats>>,
    steward_run: Option<Stats>,
    process_layer: Option<Stats>,
    tokio_loop: Option<Stats>,
    shell_loop: Option<Stats>,
    shell_loop_exit1_per_iteration_ms: Option<f64>,
    /// Costs of single steps on the respawn path, timed alone.
    components: BTreeMap<&'static str, Option<Stats>>,
    /// Processes on the machine while measuring (the exit path scans /proc once per exit).
    processes_on_machine: usize,
}

async fn respawn_engine(stack_path: &Path, n: usize) -> R<(Vec<f64>, Vec<f64>, BTreeMap<&'static str, Option<Stats>>)> {
    let stack = load_stack(stack_path)?;
    let (handle, rec) = start_engine(stack);
    handle.send(Input::Up);
    let want = WARMUP + n + 1;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let have =
            lock(&rec.logs).iter().filter(|(_, l)| parse_crash(&String::from_utf8_lossy(&l.bytes)).is_some()).count();
        if have >= want {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = shutdown(&handle).await;
            return Err(format!("engine respawn: only {have} of {want} runs within 60s"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.send(Input::Stop("crash".into()));
    shutdown(&handle).await?;

    // Reports by run id, so that a gap is always between consecutive runs.
    let mut by_run: BTreeMap<u64, CrashReport> = BTreeMap::new();
    for (_, l) in lock(&rec.logs).iter() {
        if let Some(r) = parse_crash(&String::from_utf8_lossy(&l.bytes)) {
            by_run.insert(l.run, r);
        }
    }
    let runs: Vec<(u64, CrashReport)> = by_run.into_iter().collect();
    if runs.windows(2).any(|w| w[1].0 != w[0].0 + 1) {
        return Err("engine respawn: run ids are not consecutive (a run produced no report?)".into());
    }
    let reports: Vec<CrashReport> = runs.iter().map(|(_, r)| *r).collect();
    let gap = gaps(&reports, WARMUP, n);
    let cyc = cycles(&reports, WARMUP, n);

    // Split each gap at the engine's own events: exit → RunEnded received → next RunStarted received →
    // next child's main.
    let mut ended: HashMap<u64, u64> = HashMap::new();
    let mut started: HashMap<u64, u64> = HashMap::new();
    for (t, e) in lock(&rec.events).iter() {
        match &e.kind {
            EventKind::RunEnded { run, .. } => {
                ended.insert(*run, *t);
            }
            EventKind::RunStarted { run, .. } => {
                started.insert(*run, *t);
            }
            _ => {}
        }
    }
    let (mut detect, mut decide_spawn, mut exec) = (vec![], vec![], vec![]);
    for w in runs.windows(2).skip(WARMUP).take(n) {
        let ((r0, c0), (r1, c1)) = (w[0], w[1]);
        if let (Some(&te), Some(&ts)) = (ended.get(&r0), started.get(&r1)) {
            detect.push(ms(te as i128 - c0.end as i128));
            decide_spawn.push(ms(ts as i128 - te as i128));
            exec.push(ms(c1.start as i128 - ts as i128));
        }
    }
    let mut breakdown = BTreeMap::new();
    breakdown.insert("1_child_exit_to_run_ended_event", stats(&detect));
    breakdown.insert("2_run_ended_to_run_started_event", stats(&decide_spawn));
    breakdown.insert("3_run_started_event_to_child_main", stats(&exec));
    Ok((gap, cyc, breakdown))
}

/// The process layer alone: `process::spawn` + `ChildHandle::wait` in a loop, no engine, no core.
async fn respawn_process_layer(spec: &ModuleSpec, n: usize) -> R<(Vec<f64>, Vec<f64>)> {
    let (tx, mut rx) = mpsc::channel::<LogChunk>(64);
    let mut reports = Vec::new();
    let mut spawn_calls = Vec::new();
    for run in 0..(WARMUP + n + 1) as u64 {
        let t0 = mono_ns();
        let mut child = process::spawn(process::SpawnOptions { spec, run, logs: tx.clone() })
            .await
            .map_err(|e| format!("process layer: {e}"))?;
        if run as usize >= WARMUP {
            spawn_calls.push(ms((mono_ns() - t0) as i128));
        }
        child.wait().await;
        // The exit is published after the pipe readers finished, so the line is already in the channel.
        let chunk = rx.try_recv().map_err(|_| "process layer: child printed nothing".to_string())?;
        let line =
            chunk.lines().next().map(|(bytes, _)| String::from_utf8_lossy(bytes).into_owned()).unwrap_or_default();
        reports.push(parse_crash(&line).ok_or("process layer: bad report")?);
    }
    Ok((gaps(&reports, WARMUP, n), spawn_calls))
}

/// One `process::group_members` call: the `/proc` scan that `ChildHandle`'s exit path runs once per exit
/// (and the exec probe once per check), timed alone.
fn proc_scan_cost(n: usize) -> Vec<f64> {
    // SAFETY: getpgrp has no preconditions.
    let own = unsafe { libc::getpgrp() } as u32;
    (0..n)
        .map(|_| {
            let t0 = mono_ns();
            std::hint::black_box(process::group_members(own));
            ms((mono_ns() - t0) as i128)
        })
        .collect()
}

/// The floor for a tokio supervisor: spawn with a pipe and its own group, read to EOF, reap. Nothing else.
async fn respawn_tokio_loop(exe: &Path, n: usize) -> R<Vec<f64>> {
    use tokio::io::AsyncReadExt;
    let mut reports = Vec::new();
    for _ in 0..WARMUP + n + 1 {
        let mut child = tokio::process::Command::new(exe)
            .args(["--child", "crash"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("tokio loop: {e}"))?;
        let mut out = String::new();
        if let Some(mut pipe) = child.stdout.take() {
            let _ = pipe.read_to_string(&mut out).await;
        }
        let _ = child.wait().await;
        reports.push(parse_crash(&out).ok_or("tokio loop: bad report")?);
    }
    Ok(gaps(&reports, WARMUP, n))
}

/// The bare shell loop: `while …; do engine_bench --child crash; done` under `/bin/sh`.
fn respawn_shell_loop(exe: &Path, n: usize) -> R<Vec<f64>> {
    let total = WARMUP + n + 1;
    let script = format!("i=0; while [ $i -lt {total} ]; do \"$0\" --child crash; i=$((i+1)); done");
    let mut child = spawn_tracked(Command::new("/bin/sh").args(["-c", &script]).arg(exe).stdout(Stdio::piped()))?;
    let lines = collect_lines(child.stdout.take().ok_or("no stdout")?);
    wait_child(&mut child, Duration::from_secs(60));
    let reports: Vec<CrashReport> = lock(&lines).iter().filter_map(|(_, l)| parse_crash(l)).collect();
    if reports.len() < total {
        return Err(format!("shell loop: {} of {total} reports", reports.len()));
    }
    Ok(gaps(&reports, WARMUP, n))
}

/// The brief's literal baseline: `sh -c "exit 1"` in a shell loop; the whole iteration (spawn, run, reap).
fn shell_loop_exit1(n: usize) -> R<f64> {
    let script = format!("i=0; while [ $i -lt {n} ]; do sh -c 'exit 1'; i=$((i+1)); done");
    let t0 = mono_ns();
    let mut child = spawn_tracked(Command::new("/bin/sh").args(["-c", &script]))?;
    wait_child(&mut child, Duration::from_secs(60));
    Ok(ms((mono_ns() - t0) as i128) / n as f64)
}

/// The same stack through the real `steward run` binary: module output goes through its terminal printer.
fn respawn_steward_run(steward: &Path, stack_path: &Path, n: usize) -> R<Vec<f64>> {
    let want = WARMUP + n + 1;
    let mut child = spawn_tracked(
        Command::new(steward)
            .args(["run", "--no-watch", "-f"])
            .arg(stack_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )?;
    let lines = collect_lines(child.stdout.take().ok_or("no stdout")?);
    let reports = |lines: &Lines| -> Vec<CrashReport> {
        lock(lines).iter().filter_map(|(_, l)| l.split_once(" | ").and_then(|(_, t)| parse_crash(t))).collect()
    };
    let ok = wait_until(Duration::from_secs(60), || reports(&lines).len() >= want);
    signal(child.id(), libc::SIGINT);
    wait_child(&mut child, Duration::from_secs(15));
    let r = reports(&lines);
    if !ok {
        return Err(format!("steward run respawn: only {} of {want} runs within 60s", r.len()));
    }
    Ok(gaps(&r, WARMUP, n))
}

// ---------------------------------------------------------------------------------------------------------
// 2. engine overhead, 20-module stack

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Tcp,
    Exec,
    NoProbe,
}

/// The 20-module stack: four levels (2, 5, 6, 7 modules), each module requiring one or two of the level
/// above; kinds rotate so that every level mixes tcp-probed, exec-probed and probe-less modules.
const TREE: &[(&str, Kind, &[&str])] = &[
    ("a", Kind::Tcp, &[]),
    ("b", Kind::Exec, &[]),
    ("c", Kind::Tcp, &["a"]),
    ("d", Kind::NoProbe, &["a"]),
    ("e", Kind::Exec, &["b"]),
    ("f", Kind::Tcp, &["a", "b"]),
    ("g", Kind::NoProbe, &["b"]),
    ("h", Kind::Tcp, &["c"]),
    ("i", Kind::Exec, &["c", "d"]),
    ("j", Kind::NoProbe, &["e"]),
    ("k", Kind::Tcp, &["f"]),
    ("l", Kind::Exec, &["f", "g"]),
    ("m", Kind::NoProbe, &["d"]),
    ("n", Kind::Tcp, &["h"]),
    ("o", Kind::Exec, &["h", "i"]),
    ("p", Kind::NoProbe, &["j", "k"]),
    ("q", Kind::Tcp, &["k"]),
    ("r", Kind::Exec, &["l"]),
    ("s", Kind::NoProbe, &["m"]),
    ("t", Kind::Tcp, &["i", "l"]),
];

/// How long a tcp module of the mixed stack takes to open its port (its "own start time").
const LISTEN_DELAY_MS: u64 = 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Every module a sleeper (`engine_bench --child sleep`) without a probe: spawning and ordering only.
    NoProbes,
    /// Every module a sleeper with `health = { exec = "true" }`.
    ExecProbes,
    /// The TREE as declared: tcp modules are listeners that open their port after LISTEN_DELAY_MS.
    Mixed,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::NoProbes => "no probes (20 sleepers)",
            Variant::ExecProbes => "exec probes (20 sleepers, `exec = \"true\"`)",
            Variant::Mixed => "mixed: 8 tcp (listen after 20 ms), 6 exec, 6 none",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Variant::NoProbes => "no_probes",
            Variant::ExecProbes => "exec_probes",
            Variant::Mixed => "mixed",
        }
    }
    fn kind(self, declared: Kind) -> Kind {
        match self {
            Variant::NoProbes => Kind::NoProbe,
            Variant::ExecProbes => Kind::Exec,
            Variant::Mixed => declared,
        }
    }
}

fn free_ports(n: usize) -> R<Vec<u16>> {
    // Hold every listener until all are chosen, so the ports are distinct.
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("free port: {e}"))?;
    listeners.iter().map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())).collect()
}

fn tree_stack_toml(exe: &Path, variant: Variant, ports: &HashMap<&str, u16>) -> String {
    let mut s = String::from(
        "[project]\nname = \"engine-bench-20\"\n\n[defaults]\nstop = { signal = \"TERM\", timeout = \"5s\" }\n",
    );
    for (name, declared, requires) in TREE {
        s.push_str(&format!("\n[modules.{name}]\n"));
        match variant.kind(*declared) {
            Kind::Tcp => {
                let port = ports[name];
                s.push_str(&format!("run = \"{} --child listen {port} {LISTEN_DELAY_MS}\"\n", exe.display()));
                s.push_str(&format!("health = {{ tcp = \"127.0.0.1:{port}\", interval = \"1s\" }}\n"));
            }
            Kind::Exec => {
                s.push_str(&format!("run = \"{} --child sleep\"\n", exe.display()));
                s.push_str("health = { exec = \"true\", interval = \"1s\" }\n");
            }
            Kind::NoProbe => s.push_str(&format!("run = \"{} --child sleep\"\n", exe.display())),
        }
        if !requires.is_empty() {
            let list: Vec<String> = requires.iter().map(|r| format!("\"{r}\"")).collect();
            s.push_str(&format!("requires = [{}]\n", list.join(", ")));
        }
    }
    s
}

/// One round's timeline, all relative to the moment `Up` was sent, in ms.
#[derive(Default)]
struct Round {
    up_to_ready: f64,
    ideal: f64,
    stop_all: f64,
    /// RunStarted − (all requirements ready | Up): how long a module waits after it may start.
    handoff: Vec<f64>,
    /// tcp: Running(healthy) − port opened (child-reported): how late readiness is noticed.
    tcp_detect_lag: Vec<f64>,
    /// exec: Running(healthy) − RunStarted: one exec probe of `true`.
    exec_probe: Vec<f64>,
    /// none: Running − RunStarted.
    no_probe_ready: Vec<f64>,
    /// tcp: child's main − RunStarted (RunStarted is emitted after spawn returns: can be negative).
    run_started_to_main: Vec<f64>,
}

async fn overhead_round(stack_path: &Path, variant: Variant) -> R<Round> {
    let stack = load_stack(stack_path)?;
    let (handle, rec) = start_engine(stack);
    // Let the engine finish its initial Installed → Resolved moves before the clock starts.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t_up = mono_ns();
    handle.send(Input::Up);
    let ok = handle
        .wait_for(Duration::from_secs(20), |s| !s.modules.is_empty() && s.modules.iter().all(|m| m.state.is_ready()))
        .await
        .is_ok();
    // Give the recorder threads a moment to stamp the last events.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let stop_all = shutdown(&handle).await?;
    if !ok {
        return Err(format!("{}: not all modules ready within 20s", variant.key()));
    }

    let rel = |t: u64| ms(t as i128 - t_up as i128);
    let mut ready_at: HashMap<String, f64> = HashMap::new();
    let mut started_at: HashMap<String, f64> = HashMap::new();
    for (t, e) in lock(&rec.events).iter().filter(|(t, _)| *t >= t_up) {
        match &e.kind {
            EventKind::Transition(tr) if tr.to.is_ready() => {
                ready_at.entry(tr.module.clone()).or_insert(rel(*t));
            }
            EventKind::RunStarted { module, .. } => {
                started_at.entry(module.clone()).or_insert(rel(*t));
            }
            _ => {}
        }
    }
    // Child reports: start of main and port opened.
    let mut child: HashMap<String, (f64, f64)> = HashMap::new();
    for (_, l) in lock(&rec.logs).iter() {
        let text = String::from_utf8_lossy(&l.bytes);
        let mut w = text.split_whitespace();
        if let (Some("L"), Some(Ok(s)), Some(Ok(t))) =
            (w.next(), w.next().map(str::parse::<u64>), w.next().map(str::parse::<u64>))
        {
            child.insert(l.module.clone(), (rel(s), rel(t)));
        }
    }

    let mut round = Round { stop_all, ..Round::default() };
    round.up_to_ready = ready_at.values().copied().fold(0.0, f64::max);
    // Ideal: a supervisor that spawns and notices readiness in zero time still has to wait for each module's
    // own start (port opened − its main started) along the longest dependency path.
    let mut finish: HashMap<&str, f64> = HashMap::new();
    for (name, declared, requires) in TREE {
        let own = match (variant.kind(*declared), child.get(*name)) {
            (Kind::Tcp, Some((s, l))) => l - s,
            (Kind::Tcp, None) => return Err(format!("{name}: the listener did not report")),
            _ => 0.0,
        };
        let after = requires.iter().map(|r| finish[r]).fold(0.0, f64::max);
        finish.insert(name, after + own);
        let deps_ready = requires.iter().map(|r| ready_at.get(*r).copied().unwrap_or(f64::NAN)).fold(0.0, f64::max);
        let (Some(&st), Some(&rd)) = (started_at.get(*name), ready_at.get(*name)) else {
            return Err(format!("{name}: no RunStarted/ready event"));
        };
        round.handoff.push(st - deps_ready);
        match variant.kind(*declared) {
            Kind::Tcp => {
                let (s, l) = child[*name];
                round.tcp_detect_lag.push(rd - l);
                round.run_started_to_main.push(s - st);
            }
            Kind::Exec => round.exec_probe.push(rd - st),
            Kind::NoProbe => round.no_probe_ready.push(rd - st),
        }
    }
    round.ideal = finish.values().copied().fold(0.0, f64::max);
    Ok(round)
}

#[derive(Serialize)]
struct OverheadResult {
    variant: &'static str,
    description: &'static str,
    modules: usize,
    rounds: usize,
    up_to_all_ready: Option<Stats>,
    ideal_critical_path: Option<Stats>,
    overhead: Option<Stats>,
    stop_all: Option<Stats>,
    breakdown: BTreeMap<&'static str, Option<Stats>>,
}

async fn overhead(exe: &Path, dir: &Path, variant: Variant, rounds: usize) -> R<OverheadResult> {
    let mut all: Vec<Round> = Vec::new();
    for i in 0..rounds {
        let tcp: Vec<&str> = TREE.iter().filter(|(_, k, _)| *k == Kind::Tcp).map(|(n, _, _)| *n).collect();
        let ports: HashMap<&str, u16> = tcp.iter().copied().zip(free_ports(tcp.len())?).collect();
        let path = dir.join(format!("{}-{i}.toml", variant.key()));
        std::fs::write(&path, tree_stack_toml(exe, variant, &ports)).map_err(|e| e.to_string())?;
        all.push(overhead_round(&path, variant).await?);
    }
    let col = |f: &dyn Fn(&Round) -> f64| all.iter().map(f).collect::<Vec<f64>>();
    let flat = |f: &dyn Fn(&Round) -> &Vec<f64>| all.iter().flat_map(|r| f(r).iter().copied()).collect::<Vec<f64>>();
    let mut breakdown = BTreeMap::new();
    breakdown.insert("handoff_deps_ready_to_run_started", stats(&flat(&|r| &r.handoff)));
    if variant == Variant::Mixed {
        breakdown.insert("tcp_port_open_to_ready", stats(&flat(&|r| &r.tcp_detect_lag)));
        breakdown.insert("run_started_to_child_main", stats(&flat(&|r| &r.run_started_to_main)));
    }
    if variant != Variant::NoProbes {
        breakdown.insert("exec_probe_run_started_to_ready", stats(&flat(&|r| &r.exec_probe)));
    }
    if variant != Variant::ExecProbes {
        breakdown.insert("no_probe_run_started_to_ready", stats(&flat(&|r| &r.no_probe_ready)));
    }
    Ok(OverheadResult {
        variant: variant.key(),
        description: variant.name(),
        modules: TREE.len(),
        rounds,
        up_to_all_ready: stats(&col(&|r| r.up_to_ready)),
        ideal_critical_path: stats(&col(&|r| r.ideal)),
        overhead: stats(&col(&|r| r.up_to_ready - r.ideal)),
        stop_all: stats(&col(&|r| r.stop_all)),
        breakdown,
    })
}

// ---------------------------------------------------------------------------------------------------------
// 2b. the demo stack through `steward run`

#[derive(Serialize)]
struct DemoResult {
    rounds: usize,
    /// Spawn of `steward run` → the "is up" table on its stderr.
    raw: Option<Stats>,
    /// The modules' own critical path db → queue → api, each measured alone (spawn → port answers).
    own_critical_path: Option<Stats>,
    own: BTreeMap<&'static str, Option<Stats>>,
    /// raw − median own critical path, per round.
    net: Option<Stats>,
    /// Spawn of `steward run` → first module spawned (process start, config load, engine start).
    steward_start_to_first_spawn: Option<Stats>,
    /// Per module, from the status lines on stderr: "starting" line → "running" line.
    spawn_to_running: BTreeMap<String, Option<Stats>>,
    /// SIGINT → `steward run` exited with every module stopped.
    stop_all: Option<Stats>,
}

/// Spawns a demo module alone and measures spawn → port answering (api: → `GET /health` answers 200).
fn own_start(demo_dir: &Path, script: &str, env: &[(&str, String)], port: u16, http: bool) -> R<(f64, Child)> {
    let t0 = mono_ns();
    let mut cmd = Command::new("python3");
    cmd.args(["-u", script]).current_dir(demo_dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = spawn_tracked(&mut cmd)?;
    let ok = wait_until(Duration::from_secs(10), || if http { http_ok(port) } else { tcp_ok(port) });
    let t = ms((mono_ns() - t0) as i128);
    if !ok {
        let _ = child.kill();
        wait_child(&mut child, Duration::from_secs(2));
        return Err(format!("{script} did not answer on port {port} within 10s"));
    }
    Ok((t, child))
}

fn tcp_ok(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(100)).is_ok()
}

fn http_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(100)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 32];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).split_whitespace().nth(1) == Some("200")
}

fn kill_child(mut child: Child) {
    let _ = child.kill();
    wait_child(&mut child, Duration::from_secs(2));
}

fn demo_own_times(demo_dir: &Path, rounds: usize) -> R<BTreeMap<&'static str, Vec<f64>>> {
    let mut own: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for _ in 0..rounds {
        let p = free_ports(3)?;
        let (db_t, db) = own_start(demo_dir, "bin/db.py", &[("DB_PORT", p[0].to_string())], p[0], false)?;
        let queue_env = [("QUEUE_PORT", p[1].to_string()), ("DB_ADDR", format!("127.0.0.1:{}", p[0]))];
        let queue = own_start(demo_dir, "bin/queue.py", &queue_env, p[1], false);
        let api_env = [("API_PORT", p[2].to_string()), ("QUEUE_ADDR", format!("127.0.0.1:{}", p[1]))];
        let api = own_start(demo_dir, "bin/api.py", &api_env, p[2], true);
        kill_child(db);
        let (queue_t, queue) = queue?;
        kill_child(queue);
        let (api_t, api) = api?;
        kill_child(api);
        own.entry("db").or_default().push(db_t);
        own.entry("queue").or_default().push(queue_t);
        own.entry("api").or_default().push(api_t);
    }
    Ok(own)
}

struct DemoRound {
    raw: f64,
    first_spawn: f64,
    spawn_to_running: HashMap<String, f64>,
    stop_all: f64,
}

fn demo_round(steward: &Path, demo: &Path) -> R<DemoRound> {
    let p = free_ports(3)?;
    let t0 = mono_ns();
    let mut child = spawn_tracked(
        Command::new(steward)
            .args(["run", "-f"])
            .arg(demo)
            .env("DEMO_DB_PORT", p[0].to_string())
            .env("DEMO_QUEUE_PORT", p[1].to_string())
            .env("DEMO_API_PORT", p[2].to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )?;
    let lines = collect_lines(child.stderr.take().ok_or("no stderr")?);
    let up = wait_until(Duration::from_secs(30), || lock(&lines).iter().any(|(_, l)| l.contains(" is up (")));
    let t_sig = mono_ns();
    signal(child.id(), libc::SIGINT);
    wait_child(&mut child, Duration::from_secs(20));
    let stop_all = ms((mono_ns() - t_sig) as i128);
    let lines = lock(&lines).clone();
    if !up {
        let tail: Vec<&str> = lines.iter().rev().take(15).map(|(_, l)| l.as_str()).collect();
        return Err(format!("demo: no \"is up\" table within 30s; last lines:\n{}", tail.join("\n")));
    }
    let rel = |t: u64| ms(t as i128 - t0 as i128);
    let raw = lines.iter().find(|(_, l)| l.contains(" is up (")).map(|(t, _)| rel(*t)).unwrap_or(f64::NAN);
    // Status lines look like `db      ▸ starting — spawned pid 123`.
    let mut spawned: HashMap<String, f64> = HashMap::new();
    let mut running: HashMap<String, f64> = HashMap::new();
    for (t, l) in &lines {
        let Some((module, rest)) = l.split_once(" ▸ ") else { continue };
        let module = module.trim().to_string();
        if rest.starts_with("starting") {
            spawned.entry(module).or_insert(rel(*t));
        } else if rest.starts_with("running") {
            running.entry(module).or_insert(rel(*t));
        }
    }
    let first_spawn = spawned.values().copied().fold(f64::INFINITY, f64::min);
    let spawn_to_running = running.iter().filter_map(|(m, r)| spawned.get(m).map(|s| (m.clone(), r - s))).collect();
    Ok(DemoRound { raw, first_spawn, spawn_to_running, stop_all })
}

fn demo(steward: &Path, demo: &Path, rounds: usize) -> R<DemoResult> {
    let demo_dir = demo.parent().ok_or("demo stack file has no directory")?;
    let own = demo_own_times(demo_dir, rounds)?;
    let own_path: f64 = ["db", "queue", "api"].iter().map(|m| median(&stats(&own[m])).unwrap_or(f64::NAN)).sum();
    let own_paths: Vec<f64> = (0..rounds).map(|i| own["db"][i] + own["queue"][i] + own["api"][i]).collect();
    let mut all = Vec::new();
    for _ in 0..rounds {
        all.push(demo_round(steward, demo)?);
    }
    let mut per_module: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &all {
        for (m, v) in &r.spawn_to_running {
            per_module.entry(m.clone()).or_default().push(*v);
        }
    }
    Ok(DemoResult {
        rounds,
        raw: stats(&all.iter().map(|r| r.raw).collect::<Vec<_>>()),
        own_critical_path: stats(&own_paths),
        own: own.iter().map(|(k, v)| (*k, stats(v))).collect(),
        net: stats(&all.iter().map(|r| r.raw - own_path).collect::<Vec<_>>()),
        steward_start_to_first_spawn: stats(&all.iter().map(|r| r.first_spawn).collect::<Vec<_>>()),
        spawn_to_running: per_module.iter().map(|(k, v)| (k.clone(), stats(v))).collect(),
        stop_all: stats(&all.iter().map(|r| r.stop_all).collect::<Vec<_>>()),
    })
}

// ---------------------------------------------------------------------------------------------------------
// 3. idle cost of `steward run` supervising the 20-module stack

#[derive(Serialize)]
struct IdleResult {
    seconds: u64,
    modules: usize,
    /// CPU of the `steward run` process itself (all threads), % of one core.
    steward_cpu_percent: f64,
    /// CPU of the probe processes it reaped (exec probes: `sh -c true` once a second × 6), % of one core.
    probe_children_cpu_percent: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
    threads: u64,
}

/// (utime + stime, cutime + cstime) in clock ticks, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<u64> = s[s.rfind(')')? + 1..].split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // Field N of proc(5) is f[N - 3]: utime 14, stime 15, cutime 16, cstime 17.
    Some((f.get(11)? + f.get(12)?, f.get(13)? + f.get(14)?))
}

fn status_field(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
}

fn idle(steward: &Path, exe: &Path, dir: &Path, secs: u64) -> R<IdleResult> {
    let tcp: Vec<&str> = TREE.iter().filter(|(_, k, _)| *k == Kind::Tcp).map(|(n, _, _)| *n).collect();
    let ports: HashMap<&str, u16> = tcp.iter().copied().zip(free_ports(tcp.len())?).collect();
    let path = dir.join("idle.toml");
    std::fs::write(&path, tree_stack_toml(exe, Variant::Mixed, &ports)).map_err(|e| e.to_string())?;
    let mut child = spawn_tracked(
        Command::new(steward)
            .args(["run", "--no-watch", "--quiet", "-f"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )?;
    let pid = child.id();
    let lines = collect_lines(child.stderr.take().ok_or("no stderr")?);
    let up = wait_until(Duration::from_secs(20), || lock(&lines).iter().any(|(_, l)| l.contains(" is up (")));
    let result = (|| {
        if !up {
            return Err("idle: the 20-module stack did not come up within 20s".to_string());
        }
        std::thread::sleep(Duration::from_secs(1));
        let (a0, c0) = cpu_ticks(pid).ok_or("cannot read /proc/PID/stat")?;
        let t0 = mono_ns();
        std::thread::sleep(Duration::from_secs(secs));
        let (a1, c1) = cpu_ticks(pid).ok_or("cannot read /proc/PID/stat")?;
        let wall = (mono_ns() - t0) as f64 / 1e9;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let pct = |ticks: u64| (ticks as f64 / hz / wall * 1000.0).round() / 10.0;
        let mib = |kib: u64| (kib as f64 / 1024.0 * 10.0).round() / 10.0;
        Ok(IdleResult {
            seconds: secs,
            modules: TREE.len(),
            steward_cpu_percent: pct(a1 - a0),
            probe_children_cpu_percent: pct(c1 - c0),
            rss_mib: mib(status_field(pid, "VmRSS:").unwrap_or(0)),
            peak_rss_mib: mib(status_field(pid, "VmHWM:").unwrap_or(0)),
            threads: status_field(pid, "Threads:").unwrap_or(0),
        })
    })();
    signal(pid, libc::SIGINT);
    wait_child(&mut child, Duration::from_secs(20));
    result
}

// ---------------------------------------------------------------------------------------------------------
// machine, output

#[derive(Serialize)]
struct Machine {
    nproc: usize,
    cpu: String,
    kernel: String,
    rustc: String,
    date: String,
    commit: String,
    /// 1-minute load average when the benchmark started (other work on the machine skews every figure).
    loadavg_at_start: String,
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn machine(loadavg_at_start: String) -> Machine {
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
        nproc: command_line("nproc", &[])
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)),
        cpu,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default(),
        rustc: command_line("rustc", &["--version"]).unwrap_or_else(|| "unknown".into()),
        date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        commit: commit.unwrap_or_else(|| "unknown".into()),
        loadavg_at_start,
    }
}

#[derive(Serialize)]
struct Target {
    figure: &'static str,
    value_ms: Option<f64>,
    target_ms: f64,
    pass: Option<bool>,
}

#[derive(Serialize)]
struct Report {
    schema: u32,
    mode: &'static str,
    machine: Machine,
    targets: Vec<Target>,
    respawn: Option<RespawnResult>,
    overhead: Vec<OverheadResult>,
    demo: Option<DemoResult>,
    idle: Option<IdleResult>,
    errors: Vec<String>,
}

fn f(v: Option<f64>) -> String {
    match v {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
        None => "–".into(),
    }
}

fn row4(s: &Option<Stats>) -> [String; 4] {
    match s {
        Some(s) => [f(Some(s.median_ms)), f(Some(s.p90_ms)), f(Some(s.p99_ms)), f(Some(s.max_ms))],
        None => ["–".into(), "–".into(), "–".into(), "–".into()],
    }
}

fn verdict(pass: Option<bool>) -> &'static str {
    match pass {
        Some(true) => "pass",
        Some(false) => "**FAIL**",
        None => "not measured",
    }
}

/// The markdown that `bench/run` puts between `<!-- engine:begin -->` and `<!-- engine:end -->`.
fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.machine;
    s.push_str(&format!(
        "_Generated by `bench/run{}` on {}, commit {}._  \n_Machine: {} core(s) (`nproc`), {}, Linux {}, {}; \
         load average {} when the run began._\n\n",
        if r.mode == "quick" { " --quick" } else { "" },
        m.date,
        m.commit,
        m.nproc,
        m.cpu,
        m.kernel,
        m.rustc,
        m.loadavg_at_start
    ));
    s.push_str("| Figure | Result | Target | Verdict |\n|---|---|---|---|\n");
    for t in &r.targets {
        s.push_str(&format!("| {} | {} ms | ≤ {} ms | {} |\n", t.figure, f(t.value_ms), t.target_ms, verdict(t.pass)));
    }
    if let Some(rs) = &r.respawn {
        s.push_str(&format!(
            "\n#### Crash → respawn ({} crashes each, zero backoff; gap = last instruction of the crashed process → first instruction of `main` in the next)\n\n",
            rs.crashes
        ));
        s.push_str("| Supervisor | median | p90 | p99 | max |\n|---|---:|---:|---:|---:|\n");
        let rows: [(&str, &Option<Stats>); 5] = [
            ("Steward engine (in-process, as the daemon hosts it)", &rs.engine),
            ("`steward run` binary (output through its terminal printer)", &rs.steward_run),
            ("Steward process layer only (`process::spawn` + `wait`, no engine)", &rs.process_layer),
            ("Bare tokio loop (spawn with pipe + own group, read, reap)", &rs.tokio_loop),
            ("Bare shell loop (`while …; do child; done`)", &rs.shell_loop),
        ];
        for (name, st) in rows {
            let [a, b, c, d] = row4(st);
            s.push_str(&format!("| {name} | {a} ms | {b} ms | {c} ms | {d} ms |\n"));
        }
        s.push_str("\nWhere the engine's gap goes (each event stamped on receipt by a thread blocked on the bus):\n\n");
        s.push_str("| Segment | median | p90 | max |\n|---|---:|---:|---:|\n");
        let names = [
            (
                "1_child_exit_to_run_ended_event",
                "child exits → `RunEnded` published (reap, group check, pipe drain, actor)",
            ),
            ("2_run_ended_to_run_started_event", "`RunEnded` → next `RunStarted` (core decision + `process::spawn`)"),
            (
                "3_run_started_event_to_child_main",
                "`RunStarted` → next child's `main` (exec, loader; runs concurrently)",
            ),
        ];
        for (key, label) in names {
            if let Some(Some(st)) = rs.engine_breakdown.get(key) {
                s.push_str(&format!(
                    "| {label} | {} ms | {} ms | {} ms |\n",
                    f(Some(st.median_ms)),
                    f(Some(st.p90_ms)),
                    f(Some(st.max_ms))
                ));
            }
        }
        let comp = |k: &str| rs.components.get(k).and_then(median);
        s.push_str(&format!(
            "\nSingle steps timed alone (median): one `process::spawn` call {} ms; one `process::group_members` \
             (`/proc` scan of {} processes, run once per exit and once per exec probe) {} ms. \
             Shell loop of `sh -c 'exit 1'` (whole iteration: spawn, run, reap): {} ms per iteration.\n",
            f(comp("process_spawn_call")),
            rs.processes_on_machine,
            f(comp("proc_scan_group_members")),
            f(rs.shell_loop_exit1_per_iteration_ms),
        ));
    }
    if !r.overhead.is_empty() {
        s.push_str("\n#### Engine overhead, 20-module stack (4 dependency levels; `Up` → every module ready)\n\n");
        s.push_str("| Stack | rounds | up → all ready (median) | ideal critical path | overhead median | overhead p90 | stop all (median) |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for o in &r.overhead {
            s.push_str(&format!(
                "| {} | {} | {} ms | {} ms | {} ms | {} ms | {} ms |\n",
                o.description,
                o.rounds,
                f(median(&o.up_to_all_ready)),
                f(median(&o.ideal_critical_path)),
                f(median(&o.overhead)),
                f(o.overhead.as_ref().map(|x| x.p90_ms)),
                f(median(&o.stop_all))
            ));
        }
        s.push_str("\nPer-module segments (all rounds, all modules of that kind):\n\n| Stack | segment | median | p90 | max |\n|---|---|---:|---:|---:|\n");
        for o in &r.overhead {
            for (k, st) in &o.breakdown {
                if let Some(st) = st {
                    s.push_str(&format!(
                        "| {} | `{k}` | {} ms | {} ms | {} ms |\n",
                        o.variant,
                        f(Some(st.median_ms)),
                        f(Some(st.p90_ms)),
                        f(Some(st.max_ms))
                    ));
                }
            }
        }
    }
    if let Some(d) = &r.demo {
        s.push_str(&format!(
            "\n#### Demo stack through `steward run -f examples/demo/steward.toml` ({} rounds)\n\n",
            d.rounds
        ));
        s.push_str("| Measure | median | mean | max |\n|---|---:|---:|---:|\n");
        let mut row = |label: &str, st: &Option<Stats>| {
            s.push_str(&format!(
                "| {label} | {} ms | {} ms | {} ms |\n",
                f(median(st)),
                f(st.as_ref().map(|x| x.mean_ms)),
                f(st.as_ref().map(|x| x.max_ms))
            ));
        };
        row("raw: spawn `steward run` → \"is up\" table on stderr", &d.raw);
        row("modules' own critical path (db + queue + api, each alone)", &d.own_critical_path);
        for (k, v) in &d.own {
            row(&format!("… own start of {k} (spawn → port answers)"), v);
        }
        row("**net engine overhead** (raw − own critical path)", &d.net);
        row("`steward run` spawned → first module spawned", &d.steward_start_to_first_spawn);
        for (k, v) in &d.spawn_to_running {
            row(&format!("{k}: `starting` → `running` status line"), v);
        }
        row("Ctrl-C → every module stopped, `steward run` exited", &d.stop_all);
    }
    if let Some(i) = &r.idle {
        s.push_str(&format!(
            "\n#### Idle: `steward run` supervising the 20-module mixed stack for {} s\n\n\
             | steward CPU | probe processes' CPU | RSS | peak RSS | threads |\n|---:|---:|---:|---:|---:|\n\
             | {} % of a core | {} % of a core | {} MiB | {} MiB | {} |\n",
            i.seconds, i.steward_cpu_percent, i.probe_children_cpu_percent, i.rss_mib, i.peak_rss_mib, i.threads
        ));
    }
    if !r.errors.is_empty() {
        s.push_str("\n**Errors during this run:**\n\n");
        for e in &r.errors {
            s.push_str(&format!("- {}\n", e.replace('\n', " ")));
        }
    }
    s
}

fn print_table(r: &Report) {
    println!(
        "\n== Engine benchmark ({}) — {} core(s), {}, Linux {}, {}",
        r.mode, r.machine.nproc, r.machine.cpu, r.machine.kernel, r.machine.rustc
    );
    for t in &r.targets {
        println!(
            "  {:<62} {:>9} ms   target ≤ {:>3} ms   {}",
            t.figure,
            f(t.value_ms),
            t.target_ms,
            verdict(t.pass).trim_matches('*')
        );
    }
    if let Some(rs) = &r.respawn {
        println!("\nRespawn gap ({} crashes, zero backoff)        median      p90      p99      max", rs.crashes);
        for (name, st) in [
            ("engine (in-process)", &rs.engine),
            ("steward run (binary)", &rs.steward_run),
            ("process layer only", &rs.process_layer),
            ("bare tokio loop", &rs.tokio_loop),
            ("bare shell loop", &rs.shell_loop),
        ] {
            let [a, b, c, d] = row4(st);
            println!("  {name:<42} {a:>8} {b:>8} {c:>8} {d:>8} ms");
        }
        for (k, st) in &rs.engine_breakdown {
            let [a, b, c, d] = row4(st);
            println!("    {k:<40} {a:>8} {b:>8} {c:>8} {d:>8} ms");
        }
        for (k, st) in &rs.components {
            let [a, b, c, d] = row4(st);
            println!("  step: {k:<36} {a:>8} {b:>8} {c:>8} {d:>8} ms");
        }
        println!(
            "  sh -c 'exit 1' shell loop, per iteration: {} ms; {} processes on the machine",
            f(rs.shell_loop_exit1_per_iteration_ms),
            rs.processes_on_machine
        );
    }
    if !r.overhead.is_empty() {
        println!("\nOverhead, 20 modules                          up→ready    ideal  overhead  ovh p90  stop all");
        for o in &r.overhead {
            println!(
                "  {:<42} {:>8} {:>8} {:>9} {:>8} {:>9} ms",
                o.variant,
                f(median(&o.up_to_all_ready)),
                f(median(&o.ideal_critical_path)),
                f(median(&o.overhead)),
                f(o.overhead.as_ref().map(|x| x.p90_ms)),
                f(median(&o.stop_all))
            );
            for (k, st) in &o.breakdown {
                let [a, b, c, d] = row4(st);
                println!("    {k:<40} {a:>8} {b:>8} {c:>8} {d:>8} ms (median p90 p99 max)");
            }
        }
    }
    if let Some(d) = &r.demo {
        println!(
            "\nDemo via steward run ({} rounds): raw {} ms, own critical path {} ms, net {} ms, first spawn {} ms, stop {} ms",
            d.rounds,
            f(median(&d.raw)),
            f(median(&d.own_critical_path)),
            f(median(&d.net)),
            f(median(&d.steward_start_to_first_spawn)),
            f(median(&d.stop_all))
        );
        for (k, v) in &d.own {
            println!("    own start {k:<8} {} ms", f(median(v)));
        }
        for (k, v) in &d.spawn_to_running {
            println!("    {k:<8} starting → running {} ms", f(median(v)));
        }
    }
    if let Some(i) = &r.idle {
        println!(
            "\nIdle {} s, 20 modules: steward {} % CPU, probes {} % CPU, RSS {} MiB (peak {} MiB), {} threads",
            i.seconds, i.steward_cpu_percent, i.probe_children_cpu_percent, i.rss_mib, i.peak_rss_mib, i.threads
        );
    }
    for e in &r.errors {
        println!("ERROR: {e}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// main

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.first().map(String::as_str) == Some("--child") {
        child_main(&raw[1..]);
    }
    let args = match parse_args(&raw) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        cleanup_everything();
        default_hook(info);
    }));
    install_watchdog(Duration::from_secs(if args.quick { 120 } else { 240 }));
    match run(args) {
        Ok(failed_targets) => std::process::exit(if failed_targets { 1 } else { 0 }),
        Err(e) => {
            eprintln!("error: {e}");
            cleanup_everything();
            std::process::exit(2);
        }
    }
}

/// Runs everything; Ok(true) when a target was missed (exit status 1, like a failed check).
fn run(args: Args) -> R<bool> {
    let exe = std::env::current_exe().and_then(|p| p.canonicalize()).map_err(|e| format!("own path: {e}"))?;
    if exe.to_string_lossy().contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        return Err(format!("the benchmark cannot run from a path with spaces or quotes: {}", exe.display()));
    }
    let steward = args
        .steward
        .clone()
        .unwrap_or_else(|| exe.parent().and_then(Path::parent).unwrap_or(Path::new(".")).join("steward"));
    if args.binary && !steward.is_file() {
        return Err(format!(
            "{} not found (build it with `cargo build --release -p steward`, or pass --no-binary)",
            steward.display()
        ));
    }
    let demo_path = std::path::absolute(&args.demo).map_err(|e| e.to_string())?;
    let tmp = tempfile::Builder::new().prefix("engine-bench-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    // Ctrl-C / SIGTERM (from `timeout`): stop every process we started, then leave. The handlers are
    // installed here, before anything is started, not lazily by the task that waits on them.
    let (mut int, mut term) = rt
        .block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            Ok::<_, std::io::Error>((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
        })
        .map_err(|e| format!("signal handlers: {e}"))?;
    rt.spawn(async move {
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        eprintln!("engine_bench: interrupted; stopping everything it started");
        tokio::task::spawn_blocking(cleanup_everything).await.ok();
        std::process::exit(130);
    });
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    let mut errors = Vec::new();
    let n = args.crashes;
    let mode = if args.quick { "quick" } else { "full" };
    let mut note = |what: &str, e: String| {
        eprintln!("engine_bench: {what}: {e}");
        errors.push(format!("{what}: {e}"));
    };

    // 1. respawn
    let crash_path = tmp.path().join("crash.toml");
    std::fs::write(&crash_path, crash_stack_toml(&exe)).map_err(|e| e.to_string())?;
    let respawn = if args.wants("respawn") {
        eprintln!("engine_bench: {mode} run; crash→respawn ({n} crashes per method)…");
        let crash_spec = load_stack(&crash_path)?.modules.get("crash").cloned().ok_or("crash module missing")?;
        let processes_on_machine = std::fs::read_dir("/proc")
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok()).count())
            .unwrap_or(0);
        let (engine_gap, engine_cycle, breakdown) = match rt.block_on(respawn_engine(&crash_path, n)) {
            Ok(x) => x,
            Err(e) => {
                note("respawn (engine)", e);
                (vec![], vec![], BTreeMap::new())
            }
        };
        let (process_layer, spawn_calls) = rt.block_on(respawn_process_layer(&crash_spec, n)).unwrap_or_else(|e| {
            note("respawn (process layer)", e);
            (vec![], vec![])
        });
        let mut components = BTreeMap::new();
        components.insert("process_spawn_call", stats(&spawn_calls));
        components.insert("proc_scan_group_members", stats(&proc_scan_cost(n)));
        let tokio_loop = rt.block_on(respawn_tokio_loop(&exe, n)).unwrap_or_else(|e| {
            note("respawn (tokio loop)", e);
            vec![]
        });
        let shell = respawn_shell_loop(&exe, n).unwrap_or_else(|e| {
            note("respawn (shell loop)", e);
            vec![]
        });
        let exit1 = shell_loop_exit1(n).map_err(|e| note("shell loop exit 1", e)).ok();
        let steward_run = if args.binary {
            respawn_steward_run(&steward, &crash_path, n).unwrap_or_else(|e| {
                note("respawn (steward run)", e);
                vec![]
            })
        } else {
            vec![]
        };
        Some(RespawnResult {
            crashes: n,
            engine: stats(&engine_gap),
            engine_cycle: stats(&engine_cycle),
            engine_breakdown: breakdown,
            steward_run: stats(&steward_run),
            process_layer: stats(&process_layer),
            tokio_loop: stats(&tokio_loop),
            shell_loop: stats(&shell),
            shell_loop_exit1_per_iteration_ms: exit1.map(|x| (x * 1000.0).round() / 1000.0),
            components,
            processes_on_machine,
        })
    } else {
        None
    };

    // 2. overhead
    let mut overheads = Vec::new();
    if args.wants("overhead") {
        eprintln!("engine_bench: 20-module stack, {} rounds per variant…", args.rounds);
    }
    for variant in
        [Variant::NoProbes, Variant::ExecProbes, Variant::Mixed].into_iter().filter(|_| args.wants("overhead"))
    {
        match rt.block_on(overhead(&exe, tmp.path(), variant, args.rounds)) {
            Ok(o) => overheads.push(o),
            Err(e) => note(&format!("overhead ({})", variant.key()), e),
        }
    }

    // 2b, 3: through the binary
    let demo_result = if args.binary && args.wants("demo") {
        eprintln!("engine_bench: demo stack through `steward run`, {} rounds…", args.demo_rounds);
        demo(&steward, &demo_path, args.demo_rounds).map_err(|e| note("demo", e)).ok()
    } else {
        None
    };
    let idle_result = if args.binary && args.idle_secs > 0 && args.wants("idle") {
        eprintln!("engine_bench: idle for {} s…", args.idle_secs);
        idle(&steward, &exe, tmp.path(), args.idle_secs).map_err(|e| note("idle", e)).ok()
    } else {
        None
    };
    rt.shutdown_timeout(Duration::from_secs(2));

    let target = |figure, value: Option<f64>, target_ms: f64| Target {
        figure,
        value_ms: value,
        target_ms,
        pass: value.map(|v| v <= target_ms),
    };
    let mixed = overheads.iter().find(|o| o.variant == "mixed");
    let targets = vec![
        target(
            "Crash → respawn gap, zero backoff (engine, median)",
            respawn.as_ref().and_then(|r| median(&r.engine)),
            5.0,
        ),
        target("Engine overhead, 20-module mixed stack (median)", mixed.and_then(|o| median(&o.overhead)), 50.0),
    ];
    let missed = targets.iter().any(|t| t.pass == Some(false));
    let report = Report {
        schema: 1,
        mode,
        machine: machine(loadavg),
        targets,
        respawn,
        overhead: overheads,
        demo: demo_result,
        idle: idle_result,
        errors,
    };
    print_table(&report);
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, json + "\n").map_err(|e| format!("{}: {e}", args.out.display()))?;
    eprintln!("engine_bench: wrote {}", args.out.display());
    if let Some(md) = &args.md {
        std::fs::write(md, markdown(&report)).map_err(|e| format!("{}: {e}", md.display()))?;
    }
    if !report.errors.is_empty() {
        return Err(format!("{} part(s) of the benchmark failed (see above)", report.errors.len()));
    }
    Ok(missed)
}
