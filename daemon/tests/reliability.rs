//! Reliability: faults, load and bad input against the real `steward daemon` binary, a private
//! `STEWARD_HOME` and the real socket (issue 8).
//!
//! - SIGKILL of the daemon during heavy log ingestion and during a profile switch: after a restart the store
//!   passes `PRAGMA integrity_check`, every acknowledged note is there, no module runs twice, no orphan.
//! - Disk full: the home on a size-limited tmpfs the test mounts itself; the daemon keeps supervising,
//!   reports the store as refusing writes, and stores lines again once space returns.
//! - Hostile modules: one that forks a grandchild and exits, one that ignores SIGTERM, one whose health
//!   endpoint accepts and never answers.
//! - Load: 50 modules, 20 clients calling `steward/status` and following logs for a bounded time.
//! - Bad input: a bounded random loop of framing and JSON-RPC garbage against the socket.
//!
//! Longer runs: `STEWARD_SOAK_SECS=600 cargo test -p steward --test reliability -- --ignored soak`;
//! `STEWARD_FUZZ_ITERS` / `STEWARD_FUZZ_SEED` tune the fuzz loop. Waits are on state or deadlines, never
//! sleeps used as synchronisation (the few sleeps pace a load loop or a sampler).

#[path = "../src/client.rs"]
mod client;
mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::Client;
use common::{Daemon, alive, wait_until};
use serde_json::{Value, json};
use steward_protocol::paths;

/// The protocol client on a [`Daemon`] (the harness itself knows no client).
trait Connect {
    async fn client(&self) -> Client;
}

impl Connect for Daemon {
    async fn client(&self) -> Client {
        Client::connect(&self.home).await.unwrap()
    }
}

/// Writes `steward.toml` (and any extra files) into a fresh project directory; returns the stack file.
fn project(d: &Daemon, name: &str, toml: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.project_dir(name);
    for (f, body) in files {
        std::fs::write(dir.join(f), body).unwrap();
    }
    let file = dir.join("steward.toml");
    std::fs::write(&file, toml).unwrap();
    file
}

async fn open(c: &Client, file: &Path) -> String {
    let r = c.raw_request("steward/project/open", json!({"path": file})).await.unwrap();
    r["path"].as_str().unwrap().to_string()
}

async fn up(c: &Client, project: &str) -> Value {
    c.raw_request("steward/project/up", json!({"project": project, "wait": true, "timeoutMs": 60_000})).await.unwrap()
}

async fn module_status(c: &Client, project: &str, module: &str) -> Value {
    let st = c.raw_request("steward/status", json!({"project": project})).await.unwrap();
    st["projects"][0]["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == module)
        .cloned()
        .unwrap_or_else(|| panic!("no module {module} in {st}"))
}

/// Polls an async condition every 20 ms until it holds or the deadline passes.
async fn poll<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn integrity(home: &Path) -> String {
    let db = rusqlite::Connection::open_with_flags(paths::store_path(home), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    db.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)).unwrap()
}

/// Counts module processes whose command line contains `needle`.
fn count(procs: &[(u32, String)], needle: &str) -> usize {
    procs.iter().filter(|(_, cmd)| cmd.contains(needle)).count()
}

fn pgid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(2)?.parse().ok()
}

/// Each run is its own process group led by the module's pid: every module process must belong to the group
/// of a run the daemon reports (none of an earlier run or daemon), and no two modules share a run. (A process
/// that ends while this looks is ignored: it is gone.)
async fn assert_each_module_runs_once(d: &Daemon, c: &Client, project: &str) {
    let st = c.raw_request("steward/status", json!({"project": project})).await.unwrap();
    let mut runs: Vec<u32> = st["projects"][0]["modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["pid"].as_u64())
        .map(|p| p as u32)
        .collect();
    let n = runs.len();
    runs.sort_unstable();
    runs.dedup();
    assert_eq!(runs.len(), n, "two modules report the same pid: {st}");
    let stray: Vec<_> =
        d.modules_alive().into_iter().filter(|(pid, _)| pgid(*pid).is_some_and(|g| !runs.contains(&g))).collect();
    assert_eq!(stray, vec![], "processes outside every current run (a second copy or an orphan); runs {runs:?}");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

const FLOOD_PY: &str = "import sys\ni = 0\nwhile True:\n    i += 1\n    sys.stdout.write('line %09d level=info msg=\"flooding the store\" padding=xxxxxxxxxxxxxxxxxxxxxxxxxxxx\\n' % i)\n    if i % 64 == 0:\n        sys.stdout.flush()\n";

// -----------------------------------------------------------------------------------------------------------
// faults: SIGKILL

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_heavy_log_ingestion_loses_no_acknowledged_note_and_leaves_no_orphan() {
    let mut d = Daemon::start();
    let file = project(
        &d,
        "ingest",
        "[project]\nname = \"ingest\"\n\n[modules.flood]\nrun = \"python3 -u flood.py\"\n\n\
         [modules.steady]\nrun = \"sh -c 'echo started; exec sleep 1000'\"\n",
        &[("flood.py", FLOOD_PY)],
    );
    let c = d.client().await;
    let path = open(&c, &file).await;
    assert_eq!(up(&c, &path).await["ok"], true);
    let before: Vec<u32> = d.modules_alive().iter().map(|(p, _)| *p).collect();
    assert!(!before.is_empty());

    // Notes written while the flood is being ingested; an id is "acknowledged" once remember answered.
    let acked: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let writer = {
        let c = c.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let text = format!("acknowledged note {i} during the flood");
                match c.raw_request("steward/memory/remember", json!({"text": text})).await {
                    Ok(r) => acked.lock().unwrap().push((r["id"].as_i64().unwrap(), text)),
                    Err(_) => return, // the daemon died under us: this one was never acknowledged
                }
            }
        })
    };
    // Heavy ingestion really happening: tens of thousands of lines stored, and notes acknowledged.
    poll(Duration::from_secs(60), "30,000 flood lines stored and 20 notes acknowledged", || async {
        let r = c.raw_request("steward/logs/query", json!({"module": "flood", "limit": 1})).await.unwrap();
        let newest = r["lines"][0]["text"].as_str().unwrap_or("").split_whitespace().nth(1).unwrap_or("0").to_string();
        newest.parse::<u64>().unwrap_or(0) > 30_000 && acked.lock().unwrap().len() >= 20
    })
    .await;
    d.crash();
    let _ = writer.await;
    let acked = acked.lock().unwrap().clone();
    drop(c);

    d.spawn();
    for pid in &before {
        assert!(!alive(*pid), "module pid {pid} of the killed daemon survived its successor");
    }
    assert_eq!(integrity(&d.home), "ok");
    let c = d.client().await;
    for (id, text) in &acked {
        let r = c.raw_request("steward/memory/note", json!({"id": id})).await.unwrap();
        assert_eq!(r["note"]["text"].as_str(), Some(text.as_str()), "acknowledged note {id} lost: {r}");
    }
    let path = open(&c, &file).await;
    assert_eq!(up(&c, &path).await["ok"], true);
    assert_each_module_runs_once(&d, &c, &path).await;
    let st = c.raw_request("steward/status", json!({"project": path})).await.unwrap();
    assert!(st["projects"][0]["modules"].as_array().unwrap().iter().all(|m| m["state"] == "running"), "{st}");
    d.stop_clean();
    assert_eq!(integrity(&d.home), "ok");
    eprintln!("{} acknowledged notes all found after the SIGKILL", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_profile_switch_then_restart_runs_each_module_once() {
    let mut d = Daemon::start();
    // `slow` takes its time to stop (TERM is trapped for 1 s), so the switch is in progress when the kill lands.
    let slow = "trap 'sleep 1; exit 0' TERM; echo up; while :; do sleep 0.05; done";
    let file = project(
        &d,
        "profiles",
        "[project]\nname = \"profiles\"\nprofile = \"big\"\n\n\
         [modules.a]\nrun = \"sh -c 'exec sleep 1001'\"\n\n\
         [modules.b]\nrun = \"sh slow.sh\"\n\n\
         [modules.c]\nrun = \"sh -c 'exec sleep 1003'\"\nrequires = [\"a\"]\n\n\
         [profiles.big]\n\n[profiles.small]\nmodules = [\"a\"]\n",
        &[("slow.sh", slow)],
    );
    let c = d.client().await;
    let path = open(&c, &file).await;
    assert_eq!(up(&c, &path).await["ok"], true);
    let before: Vec<u32> = d.modules_alive().iter().map(|(p, _)| *p).collect();
    assert!(before.len() >= 3, "{:?}", d.modules_alive());

    c.raw_request("steward/profile/use", json!({"project": path, "profile": "small", "wait": false})).await.unwrap();
    poll(Duration::from_secs(10), "b stopping", || async {
        module_status(&c, &path, "b").await["state"] == "stopping"
    })
    .await;
    d.crash();
    drop(c);

    d.spawn();
    for pid in &before {
        assert!(!alive(*pid), "pid {pid} of the killed daemon survived its successor");
    }
    assert_eq!(integrity(&d.home), "ok");
    let c = d.client().await;
    let path = open(&c, &file).await;
    assert_eq!(up(&c, &path).await["ok"], true);
    assert_each_module_runs_once(&d, &c, &path).await;
    assert_eq!(module_status(&c, &path, "a").await["state"], "running");
    d.stop_clean();
}

// -----------------------------------------------------------------------------------------------------------
// faults: disk full

/// A tmpfs of `size` mounted on a fresh directory; unmounted (lazily) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Fills the filesystem holding `dir` until ENOSPC; returns the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_keeps_supervising_reports_the_store_and_recovers() {
    let fs = match Tmpfs::mount("24m") {
        Ok(fs) => fs,
        Err(e) => {
            // Mounting needs CAP_SYS_ADMIN; the CI container has it. Elsewhere this test cannot run.
            eprintln!("SKIPPED disk_full: cannot mount a tmpfs here ({e})");
            return;
        }
    };
    let projects = tempfile::tempdir().unwrap();
    let mut d = Daemon::builder().home_in(projects).home(fs.dir.path().join("home")).start();
    let file = project(
        &d,
        "full",
        "[project]\nname = \"full\"\n\n\
         [modules.chatty]\nrun = \"sh -c 'i=0; while :; do i=$((i+1)); echo chatty line $i; sleep 0.02; done'\"\n\n\
         [modules.crasher]\nrun = \"sh -c 'echo crashing; sleep 0.3; exit 1'\"\n\
         restart = { policy = \"always\", backoff = \"50ms..50ms\", max_restarts = 100000, window = \"60s\" }\n",
        &[],
    );
    let c = d.client().await;
    let path = open(&c, &file).await;
    c.raw_request("steward/project/up", json!({"project": path, "wait": false})).await.unwrap();
    poll(Duration::from_secs(20), "chatty's lines stored", || async {
        let r = c.raw_request("steward/logs/query", json!({"module": "chatty", "limit": 1})).await.unwrap();
        !r["lines"].as_array().unwrap().is_empty()
    })
    .await;

    let filler = fill(fs.dir.path());
    // The store notices: `steward/health` says the store refuses writes.
    let reason = Mutex::new(String::new());
    poll(Duration::from_secs(30), "health to report the store refusing writes", || async {
        let h = c.raw_request("steward/health", json!({})).await.unwrap();
        *reason.lock().unwrap() = h["reason"].as_str().unwrap_or("").to_string();
        h["status"] == "degraded" && h["reason"].as_str().unwrap_or("").contains("store")
    })
    .await;
    let reason = reason.into_inner().unwrap();
    eprintln!("while full: health degraded: {reason}");
    // Lines that could not be stored are counted, and an alert says so (once).
    let dropping_alert = |r: &Value| r["active"].as_array().unwrap().iter().any(|a| a["rule"] == "logsDropped");
    poll(Duration::from_secs(30), "the logsDropped alert to fire", || async {
        dropping_alert(&c.raw_request("steward/alerts", json!({})).await.unwrap())
    })
    .await;
    let h = c.raw_request("steward/health", json!({})).await.unwrap();
    let store = h["checks"].as_array().unwrap().iter().find(|x| x["name"] == "store").unwrap().clone();
    assert!(store["detail"].as_str().unwrap().contains("log rows dropped"), "{store}");
    // ... and keeps supervising: the crasher is still being restarted, status answers.
    let restarts = module_status(&c, &path, "crasher").await["restarts"].as_u64().unwrap();
    poll(Duration::from_secs(20), "the crasher restarted twice more while the disk is full", || async {
        module_status(&c, &path, "crasher").await["restarts"].as_u64().unwrap() >= restarts + 2
    })
    .await;
    assert_eq!(module_status(&c, &path, "chatty").await["state"], "running");

    // Space returns: lines are stored again and health is ok.
    std::fs::remove_file(&filler).unwrap();
    let newest = |r: &Value| -> u64 {
        r["lines"][0]["text"].as_str().unwrap_or("").rsplit(' ').next().unwrap_or("0").parse().unwrap_or(0)
    };
    let r = c.raw_request("steward/logs/query", json!({"module": "chatty", "limit": 1})).await.unwrap();
    let at_recovery = newest(&r);
    poll(Duration::from_secs(30), "new chatty lines stored after space returned", || async {
        let r = c.raw_request("steward/logs/query", json!({"module": "chatty", "limit": 1})).await.unwrap();
        newest(&r) > at_recovery + 10
    })
    .await;
    // (The overall status may stay degraded: the crasher is, by design, often in backoff.)
    poll(Duration::from_secs(30), "health's store check ok again", || async {
        let h = c.raw_request("steward/health", json!({})).await.unwrap();
        h["checks"].as_array().unwrap().iter().any(|x| x["name"] == "store" && x["ok"] == true)
    })
    .await;
    // Once nothing has been dropped for a while, the alert resolves, and stays in the list of resolved ones.
    poll(Duration::from_secs(40), "the logsDropped alert to resolve", || async {
        let r = c.raw_request("steward/alerts", json!({})).await.unwrap();
        !dropping_alert(&r) && r["resolved"].as_array().unwrap().iter().any(|a| a["rule"] == "logsDropped")
    })
    .await;
    drop(c);
    d.stop_clean();
    assert_eq!(integrity(&d.home), "ok");
}

// -----------------------------------------------------------------------------------------------------------
// hostile modules

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_forks_a_grandchild_and_exits_leaves_nothing_behind() {
    let mut d = Daemon::start();
    let pidfile = d.project_dir("forker").join("grandchild.pid");
    let file = project(
        &d,
        "forker",
        &format!(
            "[project]\nname = \"forker\"\n\n[modules.forker]\n\
             run = \"sh -c 'sleep 1000 & echo $! > {}; echo forked; exit 0'\"\nrestart = \"never\"\n",
            pidfile.display()
        ),
        &[],
    );
    let c = d.client().await;
    let path = open(&c, &file).await;
    c.raw_request("steward/project/up", json!({"project": path, "wait": false})).await.unwrap();
    wait_until(Duration::from_secs(20), "the grandchild's pid file", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.trim().parse::<u32>().is_ok())
    });
    let grandchild: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    c.raw_request("steward/module/stop", json!({"project": path, "module": "forker", "wait": true})).await.unwrap();
    wait_until(Duration::from_secs(10), "the grandchild to be gone after stop", || !alive(grandchild));
    let st = module_status(&c, &path, "forker").await;
    assert!(st["pid"].is_null(), "{st}");
    drop(c);
    d.stop_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_ignores_sigterm_is_killed_after_its_stop_timeout() {
    let mut d = Daemon::start();
    let file = project(
        &d,
        "stubborn",
        "[project]\nname = \"stubborn\"\n\n[modules.stubborn]\n\
         run = \"sh -c 'trap \\\"\\\" TERM; echo ignoring TERM; while :; do sleep 0.05; done'\"\n\
         stop = { signal = \"TERM\", timeout = \"500ms\" }\n\n\
         [modules.neighbour]\nrun = \"sh -c 'exec sleep 1000'\"\n",
        &[],
    );
    let c = d.client().await;
    let path = open(&c, &file).await;
    assert_eq!(up(&c, &path).await["ok"], true);
    let pid = module_status(&c, &path, "stubborn").await["pid"].as_u64().unwrap() as u32;
    let r = c
        .raw_request(
            "steward/module/stop",
            json!({"project": path, "module": "stubborn", "wait": true, "timeoutMs": 20_000}),
        )
        .await
        .unwrap();
    assert_eq!(r["ok"], true, "{r}");
    assert!(!alive(pid), "stubborn (pid {pid}) survived its stop");
    assert_eq!(count(&d.modules_alive(), "ignoring TERM"), 0, "{:?}", d.modules_alive());
    assert_eq!(module_status(&c, &path, "neighbour").await["state"], "running");
    drop(c);
    d.stop_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_health_endpoint_makes_the_module_unhealthy_not_the_daemon_slow() {
    let mut d = Daemon::start();
    let port = common::free_port();
    // Accepts connections and never answers them.
    let hang = "import socket, time\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                s.bind(('127.0.0.1', int(__import__('sys').argv[1])))\ns.listen(64)\nprint('listening', flush=True)\n\
                held = []\nwhile True:\n    c, _ = s.accept()\n    held.append(c)\n";
    let file = project(
        &d,
        "hung",
        &format!(
            "[project]\nname = \"hung\"\n\n[modules.hung]\nrun = \"python3 -u hang.py {port}\"\n\
             health = {{ http = \"http://127.0.0.1:{port}/health\", interval = \"200ms\", timeout = \"200ms\", retries = 2 }}\n\
             restart = {{ policy = \"on-failure\", backoff = \"100ms..100ms\", max_restarts = 1000, window = \"60s\" }}\n\n\
             [modules.fine]\nrun = \"sh -c 'exec sleep 1000'\"\n"
        ),
        &[("hang.py", hang)],
    );
    let c = d.client().await;
    let path = open(&c, &file).await;
    let r =
        c.raw_request("steward/project/up", json!({"project": path, "wait": true, "timeoutMs": 3_000})).await.unwrap();
    assert_ne!(r["ok"], true, "a module whose health never answers cannot be ready: {r}");
    // The daemon stays responsive while probes hang: every status answers, and the module is seen as
    // unhealthy (or restarted because of it).
    let mut worst = Duration::ZERO;
    let mut seen_unhealthy = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen_unhealthy {
        assert!(Instant::now() < deadline, "hung never reported unhealthy or restarted");
        let t = Instant::now();
        let m = module_status(&c, &path, "hung").await;
        worst = worst.max(t.elapsed());
        seen_unhealthy = m["health"] == "unhealthy" || m["restarts"].as_u64().unwrap_or(0) > 0;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("slowest status while health probes hang: {worst:?}");
    assert_eq!(module_status(&c, &path, "fine").await["state"], "running");
    drop(c);
    d.stop_clean();
}

// -----------------------------------------------------------------------------------------------------------
// load

async fn load(secs: u64) {
    let mut d = Daemon::start();
    let mut toml = String::from("[project]\nname = \"load\"\n");
    for i in 0..50 {
        toml.push_str(&format!(
            "\n[modules.m{i:02}]\nrun = \"sh -c 'i=0; while :; do i=$((i+1)); echo m{i:02} tick $i; sleep 0.2; done'\"\n"
        ));
    }
    let file = project(&d, "load", &toml, &[]);
    let c = d.client().await;
    let path = open(&c, &file).await;
    let r = up(&c, &path).await;
    assert_eq!(r["ok"], true, "{r}");

    let pid = d.pid();
    let rss0 = rss_kib(pid);
    let stop_at = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let home = d.home.clone();
        tasks.push(tokio::spawn(async move {
            let c = Client::connect(&home).await.unwrap();
            let mut sub = c.subscribe_logs(steward_protocol::LogFilter::default()).await.unwrap();
            let mut lat = Vec::new();
            let mut lines = 0usize;
            while Instant::now() < stop_at {
                let t = Instant::now();
                c.raw_request("steward/status", json!({})).await.expect("status under load");
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                let drain_until = tokio::time::Instant::now() + Duration::from_millis(1);
                while let Ok(Some(batch)) = tokio::time::timeout_at(drain_until, sub.next()).await {
                    lines += batch.len();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Whatever is still queued for this subscriber, briefly. Bounded by a deadline, not by a quiet
            // gap: the 50 modules keep logging, so batches never stop arriving (waiting for a 300 ms gap
            // made this loop spin for minutes, and CI ran out of time).
            let drain_until = tokio::time::Instant::now() + Duration::from_millis(300);
            while let Ok(Some(batch)) = tokio::time::timeout_at(drain_until, sub.next()).await {
                lines += batch.len();
            }
            (lat, lines)
        }));
    }
    let mut peak = rss0;
    while Instant::now() < stop_at {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut all = Vec::new();
    for t in tasks {
        let (lat, lines) = t.await.unwrap();
        assert!(lines > 0, "a subscriber received no log line in {secs} s");
        all.extend(lat);
    }
    all.sort_by(f64::total_cmp);
    let q = |p: f64| all[((all.len() - 1) as f64 * p) as usize];
    eprintln!(
        "load: 50 modules, 20 clients, {secs} s: {} status calls, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         daemon RSS {} KiB → peak {} KiB",
        all.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0),
        rss0,
        peak
    );
    assert!(d.running(), "the daemon died under load:\n{}", d.log());
    // Bounded memory: a generous ceiling (a leak per request or per line would pass it in a soak).
    assert!(peak < 256 * 1024, "daemon RSS reached {peak} KiB under load");
    assert_each_module_runs_once(&d, &c, &path).await;
    let st = c.raw_request("steward/status", json!({"project": path})).await.unwrap();
    let running = st["projects"][0]["modules"].as_array().unwrap().iter().filter(|m| m["state"] == "running").count();
    assert_eq!(running, 50, "{st}");
    drop(c);
    d.stop_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_50_modules_20_clients_status_and_log_followers() {
    load(5).await;
}

/// The same for `STEWARD_SOAK_SECS` (default 300 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: minutes long; run with --ignored"]
async fn soak_load_50_modules_20_clients() {
    let secs = std::env::var("STEWARD_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    load(secs).await;
}

// -----------------------------------------------------------------------------------------------------------
// bad input: a bounded random loop against the real socket

/// xorshift64*: deterministic for a given seed, so a failure can be replayed with STEWARD_FUZZ_SEED.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A random JSON value, biased to the shapes the daemon's params use.
fn random_value(r: &mut Rng, depth: u32) -> Value {
    match r.below(if depth > 2 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => json!(r.below(2) == 0),
        2 => json!(r.next() as i64),
        3 => json!(-(r.below(1000) as i64)),
        4 => json!(
            ["", "demo", "m", "*", "\u{0}", "../../etc/passwd", "quokka \"", "x".repeat(5000).as_str()]
                [r.below(8) as usize]
        ),
        5 => json!(f64::from_bits(r.next()).to_string()),
        6 => Value::Array((0..r.below(4)).map(|_| random_value(r, depth + 1)).collect()),
        _ => {
            let keys = [
                "project",
                "module",
                "limit",
                "query",
                "text",
                "filter",
                "level",
                "kinds",
                "id",
                "wait",
                "timeoutMs",
                "afterId",
                "beforeId",
                "path",
                "profile",
                "grep",
                "sinceMs",
                "tags",
                "run",
            ];
            let mut m = serde_json::Map::new();
            for _ in 0..r.below(5) {
                m.insert(keys[r.below(keys.len() as u64) as usize].to_string(), random_value(r, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// Methods the fuzzer may call: everything read-only or harmless (not daemon/stop, shutdown, backups).
const FUZZ_METHODS: &[&str] = &[
    "steward/status",
    "steward/logs/query",
    "steward/logs/subscribe",
    "steward/logs/unsubscribe",
    "steward/memory/search",
    "steward/memory/note",
    "steward/memory/remember",
    "steward/events/query",
    "steward/project/open",
    "steward/profile/list",
    "steward/module/start",
    "steward/health",
    "initialize",
    "no/such/method",
    "",
];

fn fuzz_case(r: &mut Rng) -> Vec<u8> {
    let frame = |body: &[u8]| {
        let mut f = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        f.extend_from_slice(body);
        f
    };
    match r.below(6) {
        // raw bytes
        0 => {
            let n = r.below(2048) as usize;
            r.bytes(n)
        }
        // framed random bytes
        1 => {
            let n = r.below(512) as usize;
            frame(&r.bytes(n))
        }
        // weird headers
        2 => {
            let h = [
                "Content-Length: -1\r\n\r\n",
                "Content-Length: 99999999999999999999\r\n\r\n",
                "Content-Length: abc\r\n\r\n",
                "content-length:3\r\n\r\n{}}",
                "Content-Type: x\r\n\r\n{}",
                "Content-Length: 2\r\nContent-Length: 5\r\n\r\n{}",
                "\r\n\r\n",
                "Content-Length: 0\r\n\r\n",
            ];
            h[r.below(h.len() as u64) as usize].as_bytes().to_vec()
        }
        // well-framed JSON-RPC with random method, id and params
        _ => {
            let mut out = frame(br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"capabilities":{}}}"#);
            for _ in 0..1 + r.below(6) {
                let mut msg =
                    json!({"jsonrpc": "2.0", "method": FUZZ_METHODS[r.below(FUZZ_METHODS.len() as u64) as usize]});
                if r.below(4) != 0 {
                    msg["id"] = random_value(r, 3);
                }
                if r.below(5) != 0 {
                    msg["params"] = random_value(r, 0);
                }
                if r.below(8) == 0 {
                    msg["jsonrpc"] = json!("1.0");
                }
                let mut body = serde_json::to_vec(&msg).unwrap();
                if r.below(6) == 0 && !body.is_empty() {
                    let i = r.below(body.len() as u64) as usize;
                    body[i] = r.next() as u8; // one flipped byte: usually invalid JSON
                }
                out.extend(frame(&body));
            }
            out
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_framing_and_json_rpc_never_crash_the_daemon_and_other_sessions_keep_working() {
    let mut d = Daemon::start();
    let file = project(&d, "fz", "[project]\nname = \"fz\"\n\n[modules.s]\nrun = \"sh -c 'exec sleep 1000'\"\n", &[]);
    let witness = d.client().await;
    let path = open(&witness, &file).await;
    assert_eq!(up(&witness, &path).await["ok"], true);

    let seed = std::env::var("STEWARD_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    let iters: u64 = std::env::var("STEWARD_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(400);
    eprintln!("fuzz: seed {seed} (STEWARD_FUZZ_SEED={seed} replays it), {iters} cases");
    let mut r = Rng(seed);
    let socket = paths::socket_path(&d.home);
    for i in 0..iters {
        let case = fuzz_case(&mut r);
        let mut s = StdUnixStream::connect(&socket).unwrap_or_else(|e| panic!("case {i}: connect: {e}\n{}", d.log()));
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let _ = s.write_all(&case);
        // Read what comes back for a moment (answers, errors, a close), then hang up.
        let mut buf = [0u8; 65536];
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(50) {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        drop(s);
        if i % 25 == 24 {
            assert!(d.running(), "case {i} (seed {seed}) killed the daemon:\n{}", d.log());
            let st = witness.raw_request("steward/status", json!({"project": path})).await;
            assert!(st.is_ok(), "after case {i} (seed {seed}) the witness session failed: {st:?}");
        }
    }
    assert!(d.running(), "the daemon died (seed {seed})");
    assert_eq!(module_status(&witness, &path, "s").await["state"], "running");
    assert!(!d.log().contains("panicked"), "a handler panicked (seed {seed}):\n{}", d.log());
    drop(witness);
    d.stop_clean();
}
