//! The engine end to end: real stack files, real child processes, real sockets and files.
//!
//! Each test writes a stack file into a temporary directory, loads it with the real loader, runs an engine,
//! drives it with commands and observes it through its event bus, its snapshots and its log channel. No
//! sleeps are used for synchronisation: tests wait for an event, a snapshot, a log line or a file, each with
//! a generous deadline (a loaded 2-core machine), and normally finish in well under a second.
//!
//! Every test ends with [`Harness::finish`]: shutdown, then no live process may remain in the process group
//! of any run the test saw (zombies count as dead: PID 1 here does not reap).
#![cfg(unix)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use steward_framework::config::{self, LoadOptions, Stack};
use steward_framework::core::{Input, ModuleStatus};
use steward_framework::engine::{self, EngineHandle, EngineOptions, Snapshot};
use steward_framework::lifecycle::{Event, EventKind, Health, LogChunk, LogLine, RunId, State, Transition};
use steward_framework::process::{self, MAX_LINE};
use tokio::sync::{broadcast, mpsc, watch};

/// Upper bound for anything a test waits for.
const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------------------
// Stack files

/// The real Python interpreter (not a version-manager shim, whose wrapper is slow to start).
fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed by the engine tests");
        String::from_utf8(out.stdout).expect("utf-8 path").trim().to_string()
    })
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine")
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `@PY@` and `@FIX@` are always replaced; `vars` add more `@NAME@` placeholders.
fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut text = template.replace("@PY@", python()).replace("@FIX@", &fixtures().display().to_string());
    for (name, value) in vars {
        text = text.replace(&format!("@{name}@"), value);
    }
    assert!(!text.contains('@'), "unreplaced placeholder in\n{text}");
    text
}

/// Replaces a file the way editors do (write a temporary file, rename it over the old one).
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn load(file: &Path, profile: Option<&str>) -> Result<Stack, String> {
    config::load(file, &LoadOptions::from_process_env(profile.map(String::from)))
        .map_err(|diags| config::format_diagnostics(&diags))
}

// ---------------------------------------------------------------------------------------------------------
// Observing an engine

#[derive(Default)]
struct Record {
    events: Vec<Event>,
    logs: Vec<LogLine>,
    lagged: u64,
}

struct Harness {
    handle: EngineHandle,
    record: Arc<Mutex<Record>>,
    tick: watch::Receiver<u64>,
    dir: tempfile::TempDir,
    file: PathBuf,
}

impl Harness {
    /// Writes `steward.toml` into a fresh directory (after `prepare` ran on it), loads it and starts an
    /// engine. Nothing runs until a command is sent.
    async fn start_with(toml: &str, watch_files: bool, prepare: impl FnOnce(&Path)) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(dir.path());
        let file = dir.path().join("steward.toml");
        std::fs::write(&file, toml).expect("write stack file");
        let stack = load(&file, None).unwrap_or_else(|e| panic!("stack file does not load:\n{e}\n{toml}"));

        let (log_tx, mut log_rx) = mpsc::channel::<LogChunk>(64);
        let handle = engine::start(
            stack,
            EngineOptions {
                logs: log_tx,
                watch: watch_files,
                load: LoadOptions::from_process_env(None),
                first_run: 1,
                event_capacity: 1024,
            },
        );
        let record = Arc::new(Mutex::new(Record::default()));
        let (tick_tx, tick) = watch::channel(0u64);
        let tick_tx = Arc::new(tick_tx);

        let mut events = handle.subscribe();
        let (rec, t) = (record.clone(), tick_tx.clone());
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) => rec.lock().unwrap().events.push(e),
                    Err(broadcast::error::RecvError::Lagged(n)) => rec.lock().unwrap().lagged += n,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
                t.send_modify(|n| *n += 1);
            }
        });
        let (rec, t) = (record.clone(), tick_tx);
        tokio::spawn(async move {
            while let Some(chunk) = log_rx.recv().await {
                rec.lock().unwrap().logs.extend(chunk.to_lines());
                t.send_modify(|n| *n += 1);
            }
        });
        Harness { handle, record, tick, dir, file }
    }

    async fn start(toml: &str) -> Harness {
        Harness::start_with(toml, false, |_| {}).await
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn send(&self, input: Input) {
        assert!(self.handle.send(input), "engine has stopped");
    }

    fn events(&self) -> Vec<Event> {
        self.record.lock().unwrap().events.clone()
    }

    fn logs(&self) -> Vec<LogLine> {
        self.record.lock().unwrap().logs.clone()
    }

    fn dump(&self) -> String {
        let rec = self.record.lock().unwrap();
        let mut out = String::from("events:\n");
        for e in &rec.events {
            out.push_str(&format!("  {}\n", show(e)));
        }
        out.push_str(&format!("logs ({}):\n", rec.logs.len()));
        for l in rec.logs.iter().rev().take(20).rev() {
            let text = String::from_utf8_lossy(&l.bytes[..l.bytes.len().min(120)]).into_owned();
            out.push_str(&format!("  {} run {}: {text:?}\n", l.module, l.run));
        }
        out.push_str(&format!("snapshot: {:#?}\n", self.handle.snapshot().modules));
        out
    }

    /// Waits until `f` finds something in what was recorded so far.
    async fn until<T>(&self, what: &str, mut f: impl FnMut(&Record) -> Option<T>) -> T {
        let mut tick = self.tick.clone();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            tick.borrow_and_update();
            let found = f(&self.record.lock().unwrap());
            if let Some(t) = found {
                return t;
            }
            if tokio::time::timeout_at(deadline, tick.changed()).await.is_err() {
                panic!("timed out waiting for {what}\n{}", self.dump());
            }
        }
    }

    /// Index of the first event at or after `from` matching `pred`.
    async fn event(&self, from: usize, what: &str, pred: impl Fn(&Event) -> bool) -> usize {
        self.until(what, |r| r.events.iter().enumerate().skip(from).find(|(_, e)| pred(e)).map(|(i, _)| i)).await
    }

    /// The first log line of `module` (after `from` lines) whose text is `text`.
    async fn log_line(&self, from: usize, module: &str, text: &str) -> LogLine {
        self.until(&format!("{module} to print {text:?}"), |r| {
            r.logs.iter().skip(from).find(|l| l.module == module && l.bytes == text.as_bytes()).cloned()
        })
        .await
    }

    /// The first run of `module` started after event `from`.
    async fn run_started(&self, from: usize, module: &str) -> (usize, RunId, u32) {
        let i = self.event(from, &format!("a new run of {module}"), |e| started(e, module).is_some()).await;
        let (run, pid) = started(&self.events()[i], module).expect("matched");
        (i, run, pid)
    }

    async fn snapshot_where(&self, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
        match self.handle.wait_for(DEADLINE, pred).await {
            Ok(s) => s,
            Err(_) => panic!("timed out waiting for {what}\n{}", self.dump()),
        }
    }

    /// Waits until the recorded events leave `module` in a state that satisfies `pred`. (Events, not
    /// snapshots: a snapshot can be ahead of the recorder, and tests go on to read the recorded events.)
    async fn state(&self, module: &str, what: &str, pred: impl Fn(&State) -> bool) -> State {
        self.until(&format!("{module} {what}"), |r| last_state(r, module).filter(|s| pred(s))).await
    }

    /// Waits until `module` is running and ready (healthy, or without probe); returns its (run, pid).
    async fn ready(&self, module: &str) -> (RunId, u32) {
        self.state(module, "ready", State::is_ready).await.run().expect("ready means live")
    }

    /// Waits until `module` is ready with a run other than `old`.
    async fn ready_again(&self, module: &str, old: RunId) -> (RunId, u32) {
        let what = format!("ready with a run after {old}");
        let s = self.state(module, &what, |s| s.is_ready() && s.run().is_some_and(|(r, _)| r != old)).await;
        s.run().expect("ready means live")
    }

    /// Shuts the engine down and checks that nothing is left of any run the test saw.
    async fn finish(self) -> Vec<Event> {
        tokio::time::timeout(DEADLINE, self.handle.shutdown())
            .await
            .unwrap_or_else(|_| panic!("shutdown did not finish\n{}", self.dump()));
        // The last events are published before shutdown returns but may still be on their way to the recorder:
        // wait until it has a RunEnded for every RunStarted and each module's last transition is its final
        // state.
        let last = self.handle.snapshot();
        let events = self
            .until("the recorder to catch up with the shutdown", |r| {
                let started = r.events.iter().filter(|e| matches!(e.kind, EventKind::RunStarted { .. })).count();
                let ended = r.events.iter().filter(|e| matches!(e.kind, EventKind::RunEnded { .. })).count();
                // A module with no recorded transition has settled only if it never left its initial states
                // (otherwise its transitions are still on their way: 0 started = 0 ended proves nothing).
                let settled =
                    last.modules.iter().all(|m| match r.events.iter().rev().find_map(|e| transition(e, &m.name)) {
                        Some(t) => t.to == m.state,
                        None => matches!(m.state, State::Installed | State::Resolved),
                    });
                (started == ended && settled).then(|| r.events.clone())
            })
            .await;
        for pgid in pgids(&events) {
            let left = process::group_members(pgid);
            assert!(left.is_empty(), "process group {pgid} still has {left:?} after shutdown\n{}", self.dump());
        }
        let snap = self.handle.snapshot();
        assert!(snap.modules.iter().all(|m| m.state.run().is_none()), "live runs after shutdown: {snap:#?}");
        assert_eq!(self.record.lock().unwrap().lagged, 0, "the event recorder lagged: events were lost");
        events
    }
}

impl Drop for Harness {
    /// A failed test must not leave processes behind for the others.
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Nothing new may start, then kill what is known to run: recorded runs and, since the recorder may
            // lag, the latest snapshot's.
            self.handle.send(Input::Down);
            let events = self.record.lock().map(|r| r.events.clone()).unwrap_or_default();
            let mut groups = pgids(&events);
            groups.extend(self.handle.snapshot().modules.iter().filter_map(|m| m.state.run()).map(|(_, pid)| pid));
            for pgid in groups {
                if !process::group_members(pgid).is_empty() {
                    let _ = process::signal_group(pgid, libc::SIGKILL);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Reading events

fn show(e: &Event) -> String {
    match &e.kind {
        EventKind::Transition(t) => {
            format!("{}: {} → {} ({}) {:?}", t.module, t.from.name(), t.to.name(), t.reason, t.to)
        }
        EventKind::RunStarted { module, run, pid } => format!("{module}: run {run} started, pid {pid}"),
        EventKind::RunEnded { module, run, code, signal, reason } => {
            format!("{module}: run {run} ended code={code:?} signal={signal:?} ({reason})")
        }
        EventKind::ConfigApplied { profile, summary } => format!("config applied (profile {profile:?}): {summary}"),
        EventKind::ConfigRejected { errors } => format!("config rejected: {errors:?}"),
    }
}

fn transition<'a>(e: &'a Event, module: &str) -> Option<&'a Transition> {
    match &e.kind {
        EventKind::Transition(t) if t.module == module => Some(t),
        _ => None,
    }
}

/// A transition of `module` into a state named `to`.
fn moved_to<'a>(e: &'a Event, module: &str, to: &str) -> Option<&'a Transition> {
    transition(e, module).filter(|t| t.to.name() == to)
}

/// The state the recorded events leave `module` in.
fn last_state(r: &Record, module: &str) -> Option<State> {
    r.events.iter().rev().find_map(|e| transition(e, module)).map(|t| t.to.clone())
}

fn started(e: &Event, module: &str) -> Option<(RunId, u32)> {
    match &e.kind {
        EventKind::RunStarted { module: m, run, pid } if m == module => Some((*run, *pid)),
        _ => None,
    }
}

struct Ended {
    run: RunId,
    code: Option<i32>,
    signal: Option<i32>,
    reason: String,
}

fn ended(e: &Event, module: &str) -> Option<Ended> {
    match &e.kind {
        EventKind::RunEnded { module: m, run, code, signal, reason } if m == module => {
            Some(Ended { run: *run, code: *code, signal: *signal, reason: reason.clone() })
        }
        _ => None,
    }
}

fn health_passed(e: &Event, module: &str) -> bool {
    moved_to(e, module, "running").is_some_and(|t| t.reason == "health check passed")
}

fn position(events: &[Event], pred: impl Fn(&Event) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

fn runs_of(events: &[Event], module: &str) -> Vec<(RunId, u32)> {
    events.iter().filter_map(|e| started(e, module)).collect()
}

/// Every process group (= leader pid) of every run in `events`.
fn pgids(events: &[Event]) -> BTreeSet<u32> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::RunStarted { pid, .. } => Some(*pid),
            _ => None,
        })
        .collect()
}

fn status<'a>(s: &'a Snapshot, module: &str) -> Option<&'a ModuleStatus> {
    s.modules.iter().find(|m| m.name == module)
}

fn live_run(s: &Snapshot, module: &str) -> Option<(RunId, u32)> {
    status(s, module).and_then(|m| m.state.run())
}

/// Checks that `module`'s runs never overlap: RunStarted and RunEnded alternate, for the same run.
fn assert_one_run_at_a_time(events: &[Event], module: &str) {
    let mut live: Option<RunId> = None;
    for e in events {
        if let Some((run, _)) = started(e, module) {
            assert!(live.is_none(), "{module}: run {run} started while run {live:?} was live");
            live = Some(run);
        } else if let Some(end) = ended(e, module) {
            assert_eq!(live, Some(end.run), "{module}: run {} ended but {live:?} was live", end.run);
            live = None;
        }
    }
}

/// A process that exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X', 'x'])),
        Err(_) => false,
    }
}

/// Polls for a file to exist (there is no event to wait on).
async fn file_appears(path: &Path) {
    let deadline = Instant::now() + DEADLINE;
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// 1. Start order

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_start_only_after_their_requirements_are_healthy() {
    let toml = render(
        r#"
[defaults]
health = { interval = "200ms", timeout = "1s", retries = 50 }

[modules.db]
run = "@PY@ @FIX@/tcp_server.py @PDB@ 0.3"
health = { tcp = "127.0.0.1:@PDB@" }

[modules.cache]
run = "@PY@ @FIX@/tcp_server.py @PCACHE@ 0.3"
health = { tcp = "127.0.0.1:@PCACHE@" }

[modules.queue]
run = "@PY@ @FIX@/tcp_server.py @PQUEUE@ 0"
requires = ["db"]
health = { tcp = "127.0.0.1:@PQUEUE@" }

[modules.api]
run = "@PY@ @FIX@/http_server.py @PAPI@"
requires = ["queue"]
health = { http = "http://127.0.0.1:@PAPI@/health" }
"#,
        &[
            ("PDB", free_port().to_string()),
            ("PCACHE", free_port().to_string()),
            ("PQUEUE", free_port().to_string()),
            ("PAPI", free_port().to_string()),
        ],
    );
    let h = Harness::start(&toml).await;
    h.send(Input::Up);
    h.ready("api").await;
    let ev = h.events();
    let at = |pred: &dyn Fn(&Event) -> bool, what: &str| {
        position(&ev, pred).unwrap_or_else(|| panic!("no {what}\n{}", h.dump()))
    };

    let db_spawn = at(&|e| started(e, "db").is_some(), "db spawn");
    let cache_spawn = at(&|e| started(e, "cache").is_some(), "cache spawn");
    let db_ready = at(&|e| health_passed(e, "db"), "db ready");
    let cache_ready = at(&|e| health_passed(e, "cache"), "cache ready");
    let queue_spawn = at(&|e| started(e, "queue").is_some(), "queue spawn");
    let queue_ready = at(&|e| health_passed(e, "queue"), "queue ready");
    let api_spawn = at(&|e| started(e, "api").is_some(), "api spawn");
    let api_ready = at(&|e| health_passed(e, "api"), "api ready");

    assert!(db_ready < queue_spawn, "queue spawned before db was healthy\n{}", h.dump());
    assert!(queue_ready < api_spawn, "api spawned before queue was healthy\n{}", h.dump());
    assert!(api_spawn < api_ready);
    // The two roots start together, not one after the other's readiness.
    assert!(db_spawn.max(cache_spawn) < db_ready.min(cache_ready), "roots did not start in parallel\n{}", h.dump());
    // db really was probed until it listened (300 ms after it started): readiness is not just "spawned".
    let ms = |i: usize| ev[i].at_ms;
    assert!(ms(db_ready) >= ms(db_spawn) + 250, "db ready after {} ms", ms(db_ready) - ms(db_spawn));
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------------------
// 2. Stop order

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_dependents_first_and_leaves_nothing() {
    let toml = r#"
[modules.db]
run = "sleep 1000"

[modules.queue]
run = "sleep 1000"
requires = ["db"]

[modules.api]
run = "sleep 1000"
requires = ["queue"]

[modules.web]
run = "sleep 1000"
requires = ["db"]
"#;
    let h = Harness::start(toml).await;
    h.send(Input::Up);
    for m in ["db", "queue", "api", "web"] {
        h.ready(m).await;
    }
    let pids: Vec<u32> =
        ["db", "queue", "api", "web"].iter().map(|m| live_run(&h.handle.snapshot(), m).unwrap().1).collect();
    let ev = h.finish().await;
    let stopping = |m: &str| {
        position(&ev, |e| moved_to(e, m, "stopping").is_some()).unwrap_or_else(|| panic!("{m} never stopping"))
    };
    let gone = |m: &str| position(&ev, |e| ended(e, m).is_some()).unwrap_or_else(|| panic!("{m} never ended"));
    // A module is signalled only once every dependent has exited.
    assert!(gone("api") < stopping("queue"));
    assert!(gone("queue") < stopping("db"));
    assert!(gone("web") < stopping("db"));
    for m in ["db", "queue", "api", "web"] {
        let end = ev.iter().find_map(|e| ended(e, m)).unwrap();
        assert_eq!((end.signal, end.reason.as_str()), (Some(libc::SIGTERM), "stopped"), "{m}");
        let last = ev.iter().rev().find_map(|e| transition(e, m)).unwrap();
        assert_eq!(last.to, State::Stopped, "{m}");
    }
    for pid in pids {
        assert!(!alive(pid), "{pid} still alive");
    }
}

// ---------------------------------------------------------------------------------------------------------
// 3. Crash loop

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_backs_off_with_growing_delays_then_fails() {
    let toml = r#"
[modules.crash]
run = "exit 3"
restart = { policy = "on-failure", backoff = "50ms..5s", max_restarts = 3, window = "60s" }
"#;
    let h = Harness::start(toml).await;
    h.send(Input::Up);
    h.event(0, "crash to fail", |e| moved_to(e, "crash", "failed").is_some()).await;
    let ev = h.events();

    let runs = runs_of(&ev, "crash");
    let ends: Vec<Ended> = ev.iter().filter_map(|e| ended(e, "crash")).collect();
    assert_eq!(runs.len(), 4, "the first run and 3 restarts\n{}", h.dump());
    assert_eq!(
        ends.iter().map(|e| e.run).collect::<Vec<_>>(),
        runs.iter().map(|r| r.0).collect::<Vec<_>>(),
        "one RunEnded per run"
    );
    for end in &ends {
        assert_eq!((end.code, end.signal, end.reason.as_str()), (Some(3), None, "exited with status 3"));
    }
    assert_one_run_at_a_time(&ev, "crash");

    let backoffs: Vec<(usize, u64, u32)> = ev
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match transition(e, "crash").map(|t| &t.to) {
            Some(State::Backoff { delay_ms, attempt }) => Some((i, *delay_ms, *attempt)),
            _ => None,
        })
        .collect();
    assert_eq!(backoffs.iter().map(|b| b.2).collect::<Vec<_>>(), vec![1, 2, 3], "{}", h.dump());
    let delays: Vec<u64> = backoffs.iter().map(|b| b.1).collect();
    assert!(delays[0] < delays[1] && delays[1] < delays[2], "delays must grow: {delays:?}");
    assert!((40..=60).contains(&delays[0]), "first delay is backoff min ±20%: {delays:?}");
    // The delay is really waited before the next run starts.
    for (i, delay, _) in &backoffs {
        let next = ev.iter().skip(*i).find(|e| started(e, "crash").is_some()).expect("a run after each backoff");
        assert!(
            next.at_ms + 2 >= ev[*i].at_ms + delay,
            "restarted {} ms after a {delay} ms backoff",
            next.at_ms - ev[*i].at_ms
        );
    }

    match &status(&h.handle.snapshot(), "crash").unwrap().state {
        State::Failed { reason } => {
            assert!(reason.starts_with("restart loop"), "{reason}");
            assert!(reason.contains("exited with status 3"), "the reason names the last exit: {reason}");
        }
        s => panic!("not failed: {s:?}"),
    }
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------------------
// 4. Liveness

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_liveness_probe_stops_and_restarts_the_module() {
    let port = free_port();
    let toml = render(
        r#"
[modules.web]
run = "@PY@ @FIX@/http_server.py @PORT@ sick.flag"
health = { http = "http://127.0.0.1:@PORT@/health", interval = "100ms", timeout = "1s", retries = 3 }
restart = { backoff = "50ms..1s", max_restarts = 20 }
"#,
        &[("PORT", port.to_string())],
    );
    let h = Harness::start(&toml).await;
    h.send(Input::Up);
    let (first, pid) = h.ready("web").await;
    let from = h.events().len();

    std::fs::write(h.path("sick.flag"), "").unwrap();
    let i = h
        .event(from, "web to become unhealthy", |e| {
            moved_to(e, "web", "running")
                .is_some_and(|t| matches!(t.to, State::Running { health: Health::Unhealthy, run, .. } if run == first))
        })
        .await;
    std::fs::remove_file(h.path("sick.flag")).unwrap();

    let end = h.event(i, "the unhealthy run to end", |e| ended(e, "web").is_some()).await;
    let end = ended(&h.events()[end], "web").unwrap();
    assert_eq!(end.run, first);
    assert!(end.reason.contains("health check failed") && end.reason.contains("HTTP 503"), "{}", end.reason);
    assert!(process::group_members(pid).is_empty(), "the unhealthy process is gone");

    // Not just killed: a new run starts and becomes healthy.
    let (second, _) = h.ready_again("web", first).await;
    assert!(second > first);
    assert_one_run_at_a_time(&h.events(), "web");
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------------------
// 5. Concurrent commands

/// Counts live processes whose command line contains `tag`, as often as it can, and keeps the maximum.
struct ProcWatch {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl ProcWatch {
    fn start(tag: String) -> ProcWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicUsize::new(0));
        let (s, m) = (stop.clone(), max.clone());
        let thread = std::thread::spawn(move || {
            let mut samples = 0;
            while !s.load(Ordering::Relaxed) {
                let n = count_tagged(&tag);
                m.fetch_max(n, Ordering::Relaxed);
                samples += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        });
        ProcWatch { stop, max, thread: Some(thread) }
    }

    /// (maximum seen, number of samples).
    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.take().unwrap().join().unwrap();
        (self.max.load(Ordering::Relaxed), samples)
    }
}

fn count_tagged(tag: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == tag.as_bytes()))
                && alive(*pid)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_never_make_two_processes() {
    let tag = format!("steward-engine-test-{}-{}", std::process::id(), free_port());
    let port = free_port();
    let toml = render(
        r#"
[modules.w]
run = "@PY@ @FIX@/tcp_server.py @PORT@ 0.8 @TAG@"
health = { tcp = "127.0.0.1:@PORT@", interval = "100ms", timeout = "1s", retries = 50 }
stop = { timeout = "5s" }
"#,
        &[("PORT", port.to_string()), ("TAG", tag.clone())],
    );
    let h = Harness::start(&toml).await;
    let procs = ProcWatch::start(tag.clone());
    let burst = || {
        for input in [
            Input::Restart("w".into()),
            Input::Restart("w".into()),
            Input::Start("w".into()),
            Input::Restart("w".into()),
        ] {
            h.send(input);
        }
    };

    // While starting (the server listens only after 800 ms, so the first run is not ready yet).
    h.send(Input::Up);
    let (i, first, _) = h.run_started(0, "w").await;
    burst();
    let (second, _) = h.ready_again("w", first).await;
    let stop = position(&h.events(), |e| moved_to(e, "w", "stopping").is_some()).unwrap();
    assert!(stop > i);
    assert_eq!(transition(&h.events()[stop], "w").unwrap().from.name(), "starting", "the burst hit a starting run");

    // While running.
    let from = h.events().len();
    burst();
    let (third, _) = h.ready_again("w", second).await;
    let stop = h.event(from, "w stopping", |e| moved_to(e, "w", "stopping").is_some()).await;
    assert_eq!(transition(&h.events()[stop], "w").unwrap().from.name(), "running", "the burst hit a running run");

    let (max, samples) = procs.finish();
    assert_eq!(max, 1, "processes of w seen at once (over {samples} samples of /proc)");
    let ev = h.events();
    assert_one_run_at_a_time(&ev, "w");
    // Each burst of three restarts and a start coalesces (one new run each; a second one only if the
    // scheduler delayed the test between two commands long enough for a whole restart to happen).
    let runs = runs_of(&ev, "w");
    assert!((3..=5).contains(&runs.len()), "{runs:?}\n{}", h.dump());
    assert_eq!(runs.last().unwrap().0, third);
    assert_eq!(count_tagged(&tag), 1);
    h.finish().await;
    assert_eq!(count_tagged(&tag), 0);
}

/// Commands that arrive while a stop is in progress are not lost: Start during a Stop ends running, Stop
/// during a Restart ends stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_during_a_slow_stop_take_effect() {
    let toml = r#"
[modules.slow]
run = "trap '' TERM; echo ready; exec sleep 1000"
stop = { timeout = "300ms" }
"#;
    let h = Harness::start(toml).await;
    h.send(Input::Up);
    let (first, _) = h.ready("slow").await;
    h.log_line(0, "slow", "ready").await;

    // Stop, then Start while it is stopping: the module must come back.
    let from = h.events().len();
    h.send(Input::Stop("slow".into()));
    h.event(from, "slow stopping", |e| moved_to(e, "slow", "stopping").is_some()).await;
    h.send(Input::Start("slow".into()));
    let (second, _) = h.ready_again("slow", first).await;
    let end = h.events().iter().find_map(|e| ended(e, "slow")).unwrap();
    assert_eq!(end.signal, Some(libc::SIGKILL), "it ignores SIGTERM");

    // Restart, then Stop while it is stopping: the module must stay stopped. (Wait for the second run's own
    // "ready": before it, its trap is not set and the restart's SIGTERM would end it at once.)
    h.until("the second run to print \"ready\"", |r| {
        r.logs.iter().find(|l| l.module == "slow" && l.run == second && l.bytes == b"ready").cloned()
    })
    .await;
    let from = h.events().len();
    h.send(Input::Restart("slow".into()));
    h.event(from, "slow stopping", |e| moved_to(e, "slow", "stopping").is_some()).await;
    h.send(Input::Stop("slow".into()));
    h.event(from, "the second run to end", |e| ended(e, "slow").is_some_and(|end| end.run == second)).await;
    let state = h.state("slow", "to settle", |s| s.run().is_none()).await;
    assert_eq!(state, State::Stopped, "{}", h.dump());
    let s = h.snapshot_where("slow to settle", |s| status(s, "slow").is_some_and(|m| m.state.run().is_none())).await;
    assert_eq!((status(&s, "slow").unwrap().state.name(), status(&s, "slow").unwrap().wanted), ("stopped", false));
    assert_eq!(runs_of(&h.events(), "slow").len(), 2, "no run after the stop\n{}", h.dump());
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------------------
// 6. Profiles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_switch_changes_only_the_difference() {
    let toml = r#"
[modules.a]
run = "echo level=$LEVEL; exec sleep 1000"
env = { LEVEL = "info" }

[modules.b]
run = "echo level=$LEVEL; exec sleep 1000"
env = { LEVEL = "debug" }

[modules.c]
run = "sleep 1000"

[profiles.minimal]
modules = ["a", "b"]
env = { LEVEL = "info" }
"#;
    let h = Harness::start(toml).await;
    h.send(Input::Up);
    let (a, _) = h.ready("a").await;
    let (b, _) = h.ready("b").await;
    let (_, c_pid) = h.ready("c").await;
    h.log_line(0, "b", "level=debug").await;

    let from = h.events().len();
    h.handle.use_profile(Some("minimal".into())).await.expect("profile switch");
    let applied = h.event(from, "the switch", |e| matches!(e.kind, EventKind::ConfigApplied { .. })).await;
    match &h.events()[applied].kind {
        EventKind::ConfigApplied { profile, summary } => {
            assert_eq!(profile.as_deref(), Some("minimal"));
            assert_eq!(summary, "started: [], stopped: [c], restarted: [b]");
        }
        _ => unreachable!(),
    }
    let (b2, _) = h.ready_again("b", b).await;
    let logs = h.logs();
    let line = h.log_line(0, "b", "level=info").await;
    assert_eq!(line.run, b2, "the new run of b sees the profile's env");
    let s = h.snapshot_where("c to be gone", |s| status(s, "c").is_none()).await;
    assert_eq!(s.profile.as_deref(), Some("minimal"));
    assert_eq!(live_run(&s, "a").map(|r| r.0), Some(a), "a is untouched");
    assert!(process::group_members(c_pid).is_empty(), "c is stopped");
    let ev = h.events();
    assert_eq!(runs_of(&ev, "a").len(), 1, "a was never restarted");
    assert!(logs.iter().all(|l| l.module != "a" || l.run == a));

    // And back: c starts again, b restarts with its own env, a is still untouched.
    let from = ev.len();
    h.handle.use_profile(None).await.expect("profile switch");
    h.event(from, "the switch back", |e| {
        matches!(&e.kind, EventKind::ConfigApplied { summary, .. } if summary == "started: [c], stopped: [], restarted: [b]")
    })
    .await;
    let (b3, _) = h.ready_again("b", b2).await;
    h.ready("c").await;
    h.until("b's third run to print its level", |r| {
        r.logs.iter().find(|l| l.run == b3 && l.bytes == b"level=debug").cloned()
    })
    .await;
    assert_eq!(live_run(&h.handle.snapshot(), "a").map(|r| r.0), Some(a));
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------------------
// 7. Hot reload

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_applies_valid_edits_and_rejects_broken_ones() {
    let base = r#"
[modules.a]
run = "echo x=$X; exec sleep 1000"
env = { X = "1" }

[modules.b]
run = "echo x=$X; exec sleep 1000"
env = { X = "1" }
"#;
    let h = Harness::start_with(base, true, |_| {}).await;
    h.send(Input::Up);
    let (a1, _) = h.ready("a").await;
    let (b1, _) = h.ready("b").await;

    // A valid edit of one module (written in place) restarts only that module.
    let edited = base.replacen(r#"X = "1""#, r#"X = "2""#, 1);
    let from = h.events().len();
    std::fs::write(&h.file, &edited).unwrap();
    h.event(
        from,
        "the edit to apply",
        |e| matches!(&e.kind, EventKind::ConfigApplied { summary, .. } if summary.contains("restarted: [a]")),
    )
    .await;
    let (a2, _) = h.ready_again("a", a1).await;
    assert_eq!(h.log_line(0, "a", "x=2").await.run, a2);
    assert_eq!(live_run(&h.handle.snapshot(), "b").map(|r| r.0), Some(b1), "b untouched");

    // A broken edit is rejected; everything keeps running as it was.
    let from = h.events().len();
    replace_file(&h.file, &format!("{edited}\n[modules.c\nrun = \"sleep 1\"\n"));
    h.event(
        from,
        "the broken edit to be rejected",
        |e| matches!(&e.kind, EventKind::ConfigRejected { errors } if !errors.is_empty()),
    )
    .await;
    let s = h.snapshot_where("config errors in the snapshot", |s| !s.config_errors.is_empty()).await;
    assert!(s.config_errors.iter().any(|e| e.contains("steward.toml")), "{:?}", s.config_errors);
    assert_eq!(live_run(&s, "a").map(|r| r.0), Some(a2));
    assert_eq!(live_run(&s, "b").map(|r| r.0), Some(b1));
    assert!(status(&s, "c").is_none());

    // Fixing it clears the errors (and restarts nothing: the good config did not change).
    let from = h.events().len();
    replace_file(&h.file, &edited);
    let i = h.event(from, "the fix to apply", |e| matches!(e.kind, EventKind::ConfigApplied { .. })).await;
    assert!(
        matches!(&h.events()[i].kind, EventKind::ConfigApplied { summary, .. } if summary == "started: [], stopped: [], restarted: []")
    );
    let s = h.snapshot_where("config errors cleared", |s| s.config_errors.is_empty()).await;
    assert_eq!((live_run(&s, "a").map(|r| r.0), live_run(&s, "b").map(|r| r.0)), (Some(a2), Some(b1)));

    // modules.d/ appears with a module in it: installed and started; removed: stopped.
    let from = h.events().len();
    std::fs::create_dir(h.path("modules.d")).unwrap();
    std::fs::write(h.path("modules.d/worker.toml"), "[modules.worker]\nrun = \"sleep 1000\"\nrequires = [\"a\"]\n")
        .unwrap();
    h.event(
        from,
        "the new module file to apply",
        |e| matches!(&e.kind, EventKind::ConfigApplied { summary, .. } if summary.contains("started: [worker]")),
    )
    .await;
    let (_, worker_pid) = h.ready("worker").await;

    let from = h.events().len();
    std::fs::remove_file(h.path("modules.d/worker.toml")).unwrap();
    h.event(
        from,
        "the removal to apply",
        |e| matches!(&e.kind, EventKind::ConfigApplied { summary, .. } if summary.contains("stopped: [worker]")),
    )
    .await;
    h.snapshot_where("worker to be gone", |s| status(s, "worker").is_none()).await;
    assert!(process::group_members(worker_pid).is_empty());
    let s = h.handle.snapshot();
    assert_eq!((live_run(&s, "a").map(|r| r.0), live_run(&s, "b").map(|r| r.0)), (Some(a2), Some(b1)));
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------------------
// 8. Watch globs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_files_restart_once_per_burst_and_only_their_module() {
    let toml = r#"
[modules.txt]
run = "sleep 1000"
cwd = "src"
watch = ["**/*.txt"]

[modules.log]
run = "sleep 1000"
cwd = "src"
watch = ["**/*.log"]
"#;
    let h = Harness::start_with(toml, true, |dir| std::fs::create_dir(dir.join("src")).unwrap()).await;
    h.send(Input::Up);
    let (t1, _) = h.ready("txt").await;
    let (l1, _) = h.ready("log").await;

    // A burst of five writes: one restart.
    for i in 0..5 {
        std::fs::write(h.path("src/a.txt"), format!("{i}")).unwrap();
    }
    let (t3, _) = h.ready_again("txt", t1).await;

    // A file that does not match txt's globs but matches log's (the positive control): log restarts, and
    // the first restart after the write is log's, not txt's.
    let from = h.events().len();
    std::fs::write(h.path("src/b.log"), "x").unwrap();
    let stop = h
        .event(from, "a restart after writing b.log", |e| {
            transition(e, "txt").or(transition(e, "log")).is_some_and(|t| t.to.name() == "stopping")
        })
        .await;
    assert!(moved_to(&h.events()[stop], "log", "stopping").is_some(), "b.log restarted the wrong module\n{}", h.dump());
    h.ready_again("log", l1).await;

    // And txt's next restart is the one caused by its own file.
    let from = h.events().len();
    std::fs::write(h.path("src/sub.txt"), "y").unwrap();
    let stop = h
        .event(from, "a restart after writing sub.txt", |e| {
            transition(e, "txt").or(transition(e, "log")).is_some_and(|t| t.to.name() == "stopping")
        })
        .await;
    let t = moved_to(&h.events()[stop], "txt", "stopping")
        .cloned()
        .unwrap_or_else(|| panic!("sub.txt restarted the wrong module\n{}", h.dump()));
    assert_eq!(t.reason, "restart: watched files changed");
    h.ready_again("txt", t3).await;

    let ev = h.events();
    assert_eq!(runs_of(&ev, "txt").len(), 3, "initial, the burst, sub.txt\n{}", h.dump());
    assert_eq!(runs_of(&ev, "log").len(), 2, "initial, b.log\n{}", h.dump());
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------------------
// 9. Memory limit

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_stops_and_restarts_the_module() {
    let toml = render(
        r#"
[modules.hog]
run = "@PY@ @FIX@/hog.py 209715200"
limits = { memory = "50MiB" }
restart = { backoff = "100ms..1s", max_restarts = 20 }
stop = { timeout = "5s" }
"#,
        &[],
    );
    let h = Harness::start(&toml).await;
    h.send(Input::Up);
    let i = h.event(0, "hog to be stopped for memory", |e| moved_to(e, "hog", "stopping").is_some()).await;
    let why = transition(&h.events()[i], "hog").unwrap().reason.clone();
    assert!(why.contains("memory limit exceeded"), "{why}");
    let end = h.event(i, "the run to end", |e| ended(e, "hog").is_some()).await;
    let reason = ended(&h.events()[end], "hog").unwrap().reason;
    assert!(reason.contains("memory limit exceeded") && reason.contains("> 50 MiB"), "{reason}");
    // Restarted per policy.
    h.event(end, "a backoff", |e| moved_to(e, "hog", "backoff").is_some()).await;
    h.run_started(end, "hog").await;
    h.finish().await;
}

// ---------------------------------------------------------------------------------------------------------
// 10. Faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_command_fails_with_command_not_found() {
    let h = Harness::start("[modules.ghost]\nrun = \"steward-no-such-command-7f3a --port 1\"\n").await;
    h.send(Input::Up);
    let s = h.snapshot_where("ghost to fail", |s| status(s, "ghost").is_some_and(|m| m.state.name() == "failed")).await;
    match &status(&s, "ghost").unwrap().state {
        State::Failed { reason } => {
            assert!(reason.contains("command not found") && reason.contains("steward-no-such-command-7f3a"), "{reason}")
        }
        _ => unreachable!(),
    }
    let ev = h.finish().await;
    assert!(runs_of(&ev, "ghost").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_exit_under_on_failure_is_exited() {
    let h = Harness::start("[modules.job]\nrun = \"true\"\nrestart = \"on-failure\"\n").await;
    h.send(Input::Up);
    let s = h.snapshot_where("job to exit", |s| status(s, "job").is_some_and(|m| m.state.name() == "exited")).await;
    assert_eq!(status(&s, "job").unwrap().state, State::Exited { code: Some(0), signal: None });
    let ev = h.finish().await;
    assert_eq!(runs_of(&ev, "job").len(), 1, "not restarted");
    let end = ev.iter().find_map(|e| ended(e, "job")).unwrap();
    assert_eq!((end.code, end.reason.as_str()), (Some(0), "exited with status 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_ignoring_sigterm_is_killed_after_its_stop_timeout() {
    let toml = r#"
[modules.stubborn]
run = "trap '' TERM; echo ready; exec sleep 1000"
stop = { timeout = "500ms" }
"#;
    let h = Harness::start(toml).await;
    h.send(Input::Up);
    h.ready("stubborn").await;
    h.log_line(0, "stubborn", "ready").await;
    let t0 = Instant::now();
    let ev = h.finish().await;
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(450), "SIGTERM was ignored, yet it stopped after {took:?}");
    assert!(took < Duration::from_secs(5), "SIGKILL should follow the 500ms timeout, took {took:?}");
    let end = ev.iter().find_map(|e| ended(e, "stubborn")).unwrap();
    assert_eq!(end.signal, Some(libc::SIGKILL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchildren_die_with_their_module() {
    let toml = r#"
[modules.forker]
run = "sleep 1000 & echo $! > kids; sleep 1000 & echo $! >> kids; echo ready; wait"
"#;
    let h = Harness::start(toml).await;
    h.send(Input::Up);
    let (_, pgid) = h.ready("forker").await;
    h.log_line(0, "forker", "ready").await;
    let kids: Vec<u32> =
        std::fs::read_to_string(h.path("kids")).unwrap().lines().map(|l| l.trim().parse().unwrap()).collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.iter().all(|&k| alive(k)), "grandchildren run");
    assert_eq!(process::group_members(pgid).len(), 3, "shell and two sleeps in one group");
    h.finish().await;
    for k in kids {
        assert!(!alive(k), "grandchild {k} survived the shutdown");
    }
    assert!(process::group_members(pgid).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_line_is_truncated_and_the_engine_keeps_working() {
    let toml = render(
        r#"
[modules.chatty]
run = "@PY@ @FIX@/bigline.py 10000000"

[modules.other]
run = "sleep 1000"
"#,
        &[],
    );
    let h = Harness::start(&toml).await;
    h.send(Input::Up);
    let big = h.until("the long line", |r| r.logs.iter().find(|l| l.module == "chatty" && l.truncated).cloned()).await;
    assert_eq!(big.bytes.len(), MAX_LINE);
    assert!(big.bytes.iter().all(|&b| b == b'x'));
    let after = h.log_line(0, "chatty", "after").await;
    assert!(!after.truncated);
    assert_eq!(h.logs().iter().filter(|l| l.module == "chatty").count(), 2, "one truncated line, then the next");

    let (other, _) = h.ready("other").await;
    h.send(Input::Restart("other".into()));
    h.ready_again("other", other).await;
    assert!(status(&h.handle.snapshot(), "chatty").unwrap().state.is_ready(), "chatty still running");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_output_is_passed_through_raw() {
    let toml = r#"
[modules.binary]
run = '''printf '\377\376abc\200\n'; exec sleep 1000'''
"#;
    let h = Harness::start(toml).await;
    h.send(Input::Up);
    let line = h.until("a line from binary", |r| r.logs.iter().find(|l| l.module == "binary").cloned()).await;
    assert_eq!(line.bytes, b"\xff\xfeabc\x80".to_vec());
    assert!(!line.truncated);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_its_output_does_not_end_a_module() {
    let toml = r#"
[modules.quiet]
run = "echo before; exec 1>&- 2>&-; touch closed.flag; exec sleep 1000"

[modules.control]
run = "sleep 1000"
"#;
    let h = Harness::start(toml).await;
    h.send(Input::Up);
    let (run, pid) = h.ready("quiet").await;
    h.log_line(0, "quiet", "before").await;
    file_appears(&h.path("closed.flag")).await;

    // Observe for the time of a whole restart of another module: quiet stays as it was.
    let (control, _) = h.ready("control").await;
    h.send(Input::Restart("control".into()));
    h.ready_again("control", control).await;
    assert_eq!(live_run(&h.handle.snapshot(), "quiet"), Some((run, pid)));
    assert!(h.events().iter().all(|e| ended(e, "quiet").is_none()), "quiet ended on its own\n{}", h.dump());

    // And it still stops on request.
    let from = h.events().len();
    h.send(Input::Stop("quiet".into()));
    let i = h.event(from, "quiet to end", |e| ended(e, "quiet").is_some()).await;
    let end = ended(&h.events()[i], "quiet").unwrap();
    assert_eq!((end.run, end.signal, end.reason.as_str()), (run, Some(libc::SIGTERM), "stopped"));
    h.snapshot_where("quiet stopped", |s| status(s, "quiet").is_some_and(|m| m.state == State::Stopped)).await;
    h.finish().await;
}

#[test]
fn missing_env_file_is_a_load_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("steward.toml");
    std::fs::write(&file, "[modules.api]\nrun = \"sleep 1\"\nenv_file = \"secrets.env\"\n").unwrap();
    let err = load(&file, None).expect_err("a missing env file is an error");
    assert!(err.contains("secrets.env"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// 11. Logs and runs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_carry_the_run_that_printed_them() {
    let toml = r#"
[modules.echo]
run = "echo run=$STEWARD_RUN; echo err=$STEWARD_RUN >&2; exec sleep 1000"
"#;
    let h = Harness::start(toml).await;
    h.send(Input::Up);
    let (first, _) = h.ready("echo").await;
    h.log_line(0, "echo", &format!("run={first}")).await;
    h.log_line(0, "echo", &format!("err={first}")).await;
    h.send(Input::Restart("echo".into()));
    let (second, _) = h.ready_again("echo", first).await;
    h.log_line(0, "echo", &format!("run={second}")).await;
    h.log_line(0, "echo", &format!("err={second}")).await;
    for line in h.logs() {
        let text = String::from_utf8(line.bytes.clone()).unwrap();
        let printed: RunId = text.split('=').nth(1).unwrap().parse().unwrap();
        assert_eq!(line.run, printed, "{text:?} was captured with run {}", line.run);
    }
    assert_eq!(h.logs().len(), 4);
    h.finish().await;
}
