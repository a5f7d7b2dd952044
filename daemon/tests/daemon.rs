//! The daemon end to end: the real `steward daemon` binary, a private `STEWARD_HOME`, the real socket.
//! Talks through the CLI's own client (`src/client.rs`) and, for the robustness cases, raw bytes.
//! Waits are on events or deadlines, never sleeps.

#[path = "../src/client.rs"]
mod client;
mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use client::{Client, ClientError, StartOptions};
use common::{Daemon, alive, demo, steward_bin, wait_until};
use serde_json::{Value, json};
use steward_protocol::{self as p, paths};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The connections this file opens on a [`Daemon`] (the harness itself knows no client).
trait Connect {
    async fn client(&self) -> Client;
    fn raw(&self) -> Raw;
}

impl Connect for Daemon {
    async fn client(&self) -> Client {
        Client::connect(&self.home).await.unwrap()
    }

    fn raw(&self) -> Raw {
        Raw::connect(&self.home)
    }
}

// -----------------------------------------------------------------------------------------------------------
// Raw LSP base protocol, for the cases a well-behaved client never produces.

struct Raw {
    s: StdUnixStream,
    buf: Vec<u8>,
}

enum Recv {
    Msg(Value),
    Closed,
}

impl Raw {
    fn connect(home: &Path) -> Raw {
        let s = StdUnixStream::connect(paths::socket_path(home)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw { s, buf: Vec::new() }
    }

    fn send_bytes(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }

    fn send(&mut self, v: &Value) {
        let body = serde_json::to_vec(v).unwrap();
        self.send_bytes(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        self.send_bytes(&body);
    }

    fn recv(&mut self) -> Recv {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let header = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let len: usize = header
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("Content-Length");
                if self.buf.len() >= end + 4 + len {
                    let body: Vec<u8> = self.buf.drain(..end + 4 + len).skip(end + 4).collect();
                    return Recv::Msg(serde_json::from_slice(&body).unwrap());
                }
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => return Recv::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Recv::Closed,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn msg(&mut self) -> Value {
        match self.recv() {
            Recv::Msg(v) => v,
            Recv::Closed => panic!("the daemon closed the connection"),
        }
    }

    /// The response to request `id` (notifications before it are skipped).
    fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let m = self.msg();
            if m.get("id") == Some(&json!(id)) {
                return m;
            }
        }
    }

    fn initialize(&mut self) -> Value {
        let r = self.request(0, "initialize", json!({"capabilities": {}}));
        self.send(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
        r
    }

    fn expect_closed(&mut self) {
        loop {
            match self.recv() {
                Recv::Closed => return,
                Recv::Msg(m) => assert!(m.get("method").is_some(), "unexpected message before close: {m}"),
            }
        }
    }
}

fn error_code(resp: &Value) -> i64 {
    resp["error"]["code"].as_i64().unwrap_or_else(|| panic!("not an error: {resp}"))
}

// -----------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_round_trip_and_lsp_handshake() {
    let d = Daemon::start();
    let mut raw = d.raw();
    let init = raw.initialize();
    assert_eq!(init["result"]["serverInfo"]["name"], "steward", "{init}");
    let c = d.client().await;
    let s = c.status().await.unwrap();
    assert_eq!(s.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(s.protocol_version, p::PROTOCOL_VERSION);
    assert_eq!(s.pid, d.pid());
    assert_eq!(Path::new(&s.home), d.home);
    assert!(s.projects.is_empty());
    // Params may be absent, null or {} for a method without required ones.
    for params in [json!(null), json!({})] {
        let r = raw.request(7, p::STATUS, params);
        assert_eq!(r["result"]["pid"], d.pid(), "{r}");
    }
    let body = r#"{"jsonrpc":"2.0","id":8,"method":"steward/status"}"#;
    raw.send_bytes(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
    assert_eq!(raw.msg()["result"]["pid"], d.pid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_is_private_and_one_daemon_per_home() {
    let d = Daemon::start();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&paths::run_dir(&d.home)), 0o700);
    assert_eq!(mode(&paths::socket_path(&d.home)), 0o600);
    assert_eq!(mode(&paths::store_path(&d.home)), 0o600);
    assert_eq!(mode(&paths::log_dir(&d.home).join("daemon.log")), 0o600);
    let out = d.command().arg("daemon").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running") && err.contains(&d.pid().to_string()), "{err}");
    // The first one is unharmed.
    assert_eq!(d.client().await.status().await.unwrap().pid, d.pid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_uid_is_refused_and_logged() {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: needs root to connect as another uid");
        return;
    }
    let d = Daemon::start();
    // Open the way for uid 65534 so that only the daemon's peer check stands between it and the API.
    for (path, m) in [
        (d.home.parent().unwrap().to_path_buf(), 0o711),
        (d.home.clone(), 0o711),
        (paths::run_dir(&d.home), 0o711),
        (paths::socket_path(&d.home), 0o666),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("no access")
    sys.exit(0)
b = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}'
try:
    s.sendall(b'Content-Length: %d\r\n\r\n' % len(b) + b)
    print(repr(s.recv(100)))
except (ConnectionResetError, BrokenPipeError):
    print(repr(b''))
"#;
    let out = {
        use std::os::unix::process::CommandExt;
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(paths::socket_path(&d.home))
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if String::from_utf8_lossy(&out.stdout).trim() == "no access" {
        eprintln!("skipped: uid 65534 cannot reach {} (a parent directory is private)", d.home.display());
        return;
    }
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "b''", "another uid got an answer");
    wait_until(Duration::from_secs(5), "the refusal in the log", || {
        d.log().contains("refused a connection from uid 65534")
    });
    assert!(d.client().await.status().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_and_length_get_parse_errors_and_only_that_session_closes() {
    let d = Daemon::start();
    let mut bystander = d.raw();
    bystander.initialize();

    let mut long_header = d.raw();
    long_header.send_bytes(format!("Content-Length: 10\r\nX-Junk: {}", "a".repeat(9000)).as_bytes());
    let e = long_header.msg();
    assert_eq!(error_code(&e), -32700, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("header longer than 8192"), "{e}");
    long_header.expect_closed();

    let mut huge = d.raw();
    huge.initialize();
    huge.send_bytes(b"Content-Length: 17000000\r\n\r\n{");
    let e = huge.msg();
    assert_eq!(error_code(&e), -32700, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("exceeds the limit"), "{e}");
    huge.expect_closed();

    let r = bystander.request(1, p::STATUS, json!({}));
    assert_eq!(r["result"]["pid"], d.pid(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_message_is_closed_after_the_idle_timeout() {
    let d = Daemon::builder().env("STEWARD_SESSION_IDLE_TIMEOUT_MS", "300").start();
    let mut bystander = d.raw();
    bystander.initialize();
    let mut stalled = d.raw();
    stalled.initialize();
    let t0 = Instant::now();
    stalled.send_bytes(b"Content-Length: 1000000\r\n\r\n{\"jsonrpc\":");
    let e = stalled.msg();
    let waited = t0.elapsed();
    assert_eq!(error_code(&e), -32700, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("not completed within 300 ms"), "{e}");
    stalled.expect_closed();
    eprintln!("stalled session closed after {waited:?}");
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(10), "{waited:?}");
    assert_eq!(bystander.request(1, p::STATUS, json!({}))["result"]["pid"], d.pid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_json_rpc_errors_and_the_session_survives() {
    let d = Daemon::start();
    let mut raw = d.raw();
    // Before initialize.
    assert_eq!(error_code(&raw.request(1, p::STATUS, json!({}))), -32002);
    raw.initialize();
    // Invalid JSON in a well-formed frame.
    raw.send_bytes(b"Content-Length: 9\r\n\r\n{not json");
    let e = raw.msg();
    assert_eq!(error_code(&e), -32700, "{e}");
    // Valid JSON, not JSON-RPC.
    raw.send(&json!({"jsonrpc": "1.0", "id": 3, "method": "x"}));
    let e = raw.msg();
    assert_eq!(error_code(&e), -32600, "{e}");
    assert_eq!(e["id"], 3);
    // Unknown method.
    assert_eq!(error_code(&raw.request(4, "steward/nope", json!({}))), -32601);
    // Invalid params name the field.
    let e = raw.request(5, p::MODULE_RESTART, json!({"project": 5, "module": "api"}));
    assert_eq!(error_code(&e), -32602, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("`project`"), "{e}");
    let e = raw.request(6, p::LOGS_SUBSCRIBE, json!({"filter": {"level": "loud"}}));
    assert_eq!(error_code(&e), -32602, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("`filter.level`"), "{e}");
    let e = raw.request(7, p::PROJECT_UP, json!({}));
    assert!(e["error"]["message"].as_str().unwrap().contains("missing field `project`"), "{e}");
    // A project that is not open.
    assert_eq!(error_code(&raw.request(8, p::PROJECT_DOWN, json!({"project": "nope"}))), p::ERROR_PROJECT_NOT_FOUND);
    // Still alive.
    assert_eq!(raw.request(9, p::STATUS, json!({}))["result"]["pid"], d.pid());
}

/// `steward/status` is answered by the framing layer's fast path once the session is initialized; its replies
/// must be exactly what the library's way gives: the same result, the request's id as sent (a number or a
/// string), errors from the one place that shapes them, and nothing before `initialize`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_replies_are_the_same_on_the_fast_path_and_the_normal_one() {
    let d = Daemon::start();
    let mut raw = d.raw();
    // Before initialize: the library answers (-32002, server not initialized).
    assert_eq!(error_code(&raw.request(1, p::STATUS, json!({}))), -32002);
    // After `initialize` but before `initialized`: the library's way.
    let r = raw.request(0, "initialize", json!({"capabilities": {}}));
    assert!(r.get("result").is_some(), "{r}");
    let slow = raw.request(2, p::STATUS, json!({}));
    raw.send(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
    // From here on, the fast path (a string id is echoed as a string; absent params are as good as {}).
    raw.send(&json!({"jsonrpc": "2.0", "id": "s-3", "method": p::STATUS}));
    let fast = loop {
        let m = raw.msg();
        if m.get("id") == Some(&json!("s-3")) {
            break m;
        }
    };
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&fast), ["id", "jsonrpc", "result"], "{fast}");
    assert_eq!(fast["jsonrpc"], "2.0");
    let without_time = |v: &Value| {
        let mut r = v["result"].clone();
        for k in ["uptimeMs", "ipc", "ipcScore", "system"] {
            r.as_object_mut().unwrap().remove(k);
        }
        r
    };
    assert_eq!(without_time(&fast), without_time(&slow), "fast {fast}\nslow {slow}");
    // An error takes the normal way: the same code and message shape as every other method's.
    let e = raw.request(4, p::STATUS, json!({"project": "nope"}));
    assert_eq!(error_code(&e), p::ERROR_PROJECT_NOT_FOUND, "{e}");
    let e = raw.request(5, p::STATUS, json!({"project": 7}));
    assert_eq!(error_code(&e), -32602, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_internal_error_and_the_session_lives_on() {
    let d = Daemon::builder().env("STEWARD_DEBUG_PANIC_METHOD", p::PROFILE_LIST).start();
    let mut raw = d.raw();
    raw.initialize();
    for id in [1, 2] {
        let e = raw.request(id, p::PROFILE_LIST, json!({"project": "any"}));
        assert_eq!(error_code(&e), -32603, "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains("STEWARD_DEBUG_PANIC_METHOD"), "{e}");
        assert_eq!(e["id"], id);
    }
    // The same session, and the daemon, go on.
    assert_eq!(raw.request(3, p::STATUS, json!({}))["result"]["pid"], d.pid());
    assert!(d.log().contains("panicked"), "the panic is logged:\n{}", d.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_and_cannot_grow_the_daemon() {
    let d = Daemon::start();
    let mut bystander = d.raw();
    bystander.initialize();
    let before = rss_kib(d.pid());
    let mut flood = d.raw();
    flood.initialize();
    // Pipeline requests without reading a single answer.
    const N: i64 = 30_000;
    let mut w = flood.s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let writer = std::thread::spawn(move || {
        let mut sent = 0;
        for id in 1..=N {
            let body = json!({"jsonrpc": "2.0", "id": id, "method": p::STATUS}).to_string();
            if w.write_all(format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    wait_until(Duration::from_secs(60), "the flooding session to be dropped", || {
        d.log().contains("disconnected (stalled")
    });
    let peak = rss_kib(d.pid());
    let sent = writer.join().unwrap();
    // Read what had been delivered before the daemon gave up on this client.
    let mut answered = 0;
    while let Recv::Msg(_) = flood.recv() {
        answered += 1;
    }
    eprintln!("flood: sent {sent}, answered {answered}, daemon RSS {before} KiB → {peak} KiB");
    assert!(answered < N / 2, "the daemon kept answering a client that does not read ({answered} answers)");
    assert!(peak < before + 64 * 1024, "daemon grew from {before} KiB to {peak} KiB");
    assert_eq!(bystander.request(1, p::STATUS, json!({}))["result"]["pid"], d.pid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stack_file_is_an_error_with_diagnostics() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("steward.toml");
    std::fs::write(&file, "[modules.db]\nrun = \"db\"\nhelth = { tcp = \"127.0.0.1:1\" }\n").unwrap();
    let c = d.client().await;
    let err = match c.open(dir.path(), None).await {
        Err(ClientError::Rpc(e)) => e,
        other => panic!("expected a config error, got {:?}", other.map(|s| s.path)),
    };
    assert_eq!(err.code, p::ERROR_CONFIG_INVALID);
    let data = err.config_errors().expect("diagnostics in the error's data");
    assert_eq!(data.diagnostics.len(), 1, "{data:?}");
    let diag = &data.diagnostics[0];
    assert_eq!((diag.line, diag.column), (3, 1));
    assert_eq!(diag.help.as_deref(), Some("did you mean `health`?"));
    assert!(diag.rendered.contains("steward.toml:3:1"), "{}", diag.rendered);
    assert!(c.status().await.unwrap().projects.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_starts_a_daemon_when_none_runs() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    assert!(matches!(Client::connect(&home).await, Err(ClientError::NotRunning { .. })));
    let out = Command::new(steward_bin()).args(["daemon", "status"]).env("STEWARD_HOME", &home).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let opts = StartOptions { program: Some(steward_bin()), timeout: Duration::from_secs(20) };
    let c = Client::connect_or_start_with(&home, &opts).await.unwrap();
    let s = c.status().await.unwrap();
    assert!(alive(s.pid));
    // The home the client created is private like one the daemon creates (it holds logs and notes).
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&paths::log_dir(&home)), 0o700);
    // A second client finds the same daemon.
    assert_eq!(Client::connect_or_start_with(&home, &opts).await.unwrap().status().await.unwrap().pid, s.pid);
    let out = Command::new(steward_bin()).args(["daemon", "status"]).env("STEWARD_HOME", &home).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pid {}", s.pid)));
    let out = Command::new(steward_bin()).args(["daemon", "stop"]).env("STEWARD_HOME", &home).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!alive(s.pid));
    assert!(!paths::socket_path(&home).exists());
}

/// Opens and starts the demo; returns (project id, module → pid).
async fn up_demo(c: &Client) -> (String, Vec<(String, u32)>) {
    let opened = c.open(&demo(), None).await.unwrap();
    assert_eq!(opened.name, "demo");
    assert_eq!(opened.profile.as_deref(), Some("full"));
    let up = c
        .up(p::UpParams { project: "demo".into(), wait: true, timeout_ms: Some(60_000), ..Default::default() })
        .await
        .unwrap();
    assert!(up.ok, "up failed: {up:?}");
    let pids: Vec<(String, u32)> = up.project.modules.iter().map(|m| (m.name.clone(), m.pid.unwrap())).collect();
    assert_eq!(pids.len(), 4, "{up:?}");
    assert!(up.project.modules.iter().all(|m| m.state == p::ModuleState::Running), "{up:?}");
    (opened.path, pids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_up_crash_event_incident_tail_profiles_and_sigterm() {
    let mut d = Daemon::builder().demo_ports().start();
    let c = d.client().await;
    let mut events = c.events();
    let (project, pids) = up_demo(&c).await;
    assert_eq!(project, demo().canonicalize().unwrap().display().to_string());
    // Opening again (by directory) finds the same project.
    assert_eq!(c.open(demo().parent().unwrap(), None).await.unwrap().path, project);

    // Follow the worker's output.
    let mut tail = c
        .subscribe_logs(p::LogFilter {
            project: Some("demo".into()),
            module: Some("worker".into()),
            ..Default::default()
        })
        .await
        .unwrap();

    // Kill the worker: an event must arrive at once.
    let worker = pids.iter().find(|(m, _)| m == "worker").unwrap().1;
    while events.try_recv().is_ok() {}
    let t0 = Instant::now();
    // SAFETY: plain syscall.
    unsafe { libc::kill(worker as i32, libc::SIGKILL) };
    let latency = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = events.recv().await.unwrap();
            if let p::EventDetail::RunEnded { module, signal, .. } = &ev.detail {
                if module == "worker" {
                    assert_eq!(*signal, Some(libc::SIGKILL));
                    assert_eq!(ev.project, project);
                    assert_eq!(ev.project_name, "demo");
                    return t0.elapsed();
                }
            }
        }
    })
    .await
    .expect("no steward/event for the killed worker");
    eprintln!("steward/event for the killed worker arrived {} ms after the kill", latency.as_millis());
    assert!(latency < Duration::from_secs(2), "{latency:?}");

    // The worker comes back (restart = always) and its tail shows it.
    let batch = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let b = tail.next().await.unwrap();
            if b.iter().any(|l| l.text.contains("worker: polling")) {
                return b;
            }
        }
    })
    .await
    .expect("the tail delivered nothing");
    assert!(batch.iter().all(|l| l.module == "worker" && l.project == project && l.id > tail.cursor));

    // The crash is an incident in the memory, quoting its last lines.
    let deadline = Instant::now() + Duration::from_secs(10);
    let hit = loop {
        let hits = c
            .search(p::MemorySearchParams {
                query: "worker SIGKILL".into(),
                kinds: vec![p::MemoryKind::Note],
                project: Some("demo".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        if let Some(h) = hits.into_iter().next() {
            break h;
        }
        assert!(Instant::now() < deadline, "no incident note for the crash");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(hit.module.as_deref(), Some("worker"));
    let found = c
        .search(p::MemorySearchParams {
            query: "polling".into(),
            kinds: vec![p::MemoryKind::Note],
            module: Some("worker".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!found.is_empty(), "the incident note does not quote the worker's last line");
    // Events were stored too.
    let ended = c
        .query_events(p::EventQueryParams {
            project: Some(project.clone()),
            module: Some("worker".into()),
            kinds: vec![p::EventKind::RunEnded],
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(ended.iter().any(|e| e.level == p::Level::Error || e.level == p::Level::Warn), "{ended:?}");
    let lines = c
        .logs(p::LogQueryParams { project: Some("demo".into()), module: Some("db".into()), ..Default::default() })
        .await
        .unwrap();
    assert!(!lines.is_empty());
    let note = c
        .remember(p::RememberParams {
            text: "restart the worker with `kill`".into(),
            tags: vec!["tip".into()],
            project: Some("demo".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(note > 0);

    // Profiles: minimal = api and what it requires.
    let profiles = c.profiles("demo").await.unwrap();
    assert_eq!(profiles.active.as_deref(), Some("full"));
    assert!(profiles.profiles.iter().any(|p| p.name == "minimal" && p.modules == Some(vec!["api".to_string()])));
    let switched = c.use_profile("demo", Some("minimal"), true).await.unwrap();
    assert!(switched.ok, "{switched:?}");
    assert_eq!(switched.project.profile.as_deref(), Some("minimal"));
    let names: Vec<&str> = switched.project.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["db", "queue", "api"], "{switched:?}");
    wait_until(Duration::from_secs(10), "the worker to be gone", || {
        !d.modules_alive().iter().any(|(_, cmd)| cmd.contains("worker.sh"))
    });
    for (m, pid) in &pids {
        if m != "worker" {
            assert!(alive(*pid), "{m} was restarted by a profile switch that did not change it");
        }
    }
    let e = c.use_profile("demo", Some("nope"), false).await.unwrap_err();
    assert!(matches!(&e, ClientError::Rpc(r) if r.code == p::ERROR_CONFIG_INVALID), "{e}");

    // Module commands.
    let r = c.restart_module("demo", "api", true).await.unwrap();
    assert!(r.ok, "{r:?}");
    let api = r.project.modules.iter().find(|m| m.name == "api").unwrap();
    assert_ne!(api.pid, pids.iter().find(|(m, _)| m == "api").map(|(_, p)| *p));
    let e = c.stop_module("demo", "nope", false).await.unwrap_err();
    assert!(matches!(&e, ClientError::Rpc(r) if r.code == p::ERROR_MODULE_NOT_FOUND), "{e}");

    // SIGTERM: everything stops, exit 0, nothing left.
    assert!(!d.modules_alive().is_empty());
    // SAFETY: plain syscall.
    unsafe { libc::kill(d.pid() as i32, libc::SIGTERM) };
    assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0), "{}", d.log());
    assert_eq!(d.modules_alive(), vec![], "module processes outlived the daemon");
    assert!(!paths::pgids_path(&d.home).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_daemons_modules_are_killed_by_the_next_one_and_stop_leaves_nothing() {
    let mut d = Daemon::builder().demo_ports().start();
    let c = d.client().await;
    let (_, pids) = up_demo(&c).await;
    let recorded = std::fs::read_to_string(paths::pgids_path(&d.home)).unwrap();
    for (m, pid) in &pids {
        assert!(recorded.contains(&format!("{pid}\t")), "{m} (pid {pid}) not recorded:\n{recorded}");
    }
    drop(c);
    d.crash();
    assert!(pids.iter().all(|(_, pid)| alive(*pid)), "modules died with the daemon; nothing to recover");

    d.spawn();
    for (m, pid) in &pids {
        assert!(!alive(*pid), "{m} (pid {pid}) of the crashed daemon is still running");
    }
    assert!(d.log().contains("left by a previous daemon"), "{}", d.log());
    let c = d.client().await;
    let (_, again) = up_demo(&c).await;
    let running = d.modules_alive();
    for script in ["db.py", "queue.py", "api.py", "worker.sh"] {
        let leaders: Vec<_> =
            running.iter().filter(|(pid, cmd)| cmd.contains(script) && again.iter().any(|(_, p)| p == pid)).collect();
        let all: Vec<_> = running.iter().filter(|(_, cmd)| cmd.contains(&format!("bin/{script}"))).collect();
        assert_eq!((leaders.len(), all.len()), (1, 1), "{script} runs {} times: {running:?}", all.len());
    }

    let out = d.command().args(["daemon", "stop"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(d.wait_exit(Duration::from_secs(10)), Some(0));
    assert_eq!(d.modules_alive(), vec![], "`steward daemon stop` left module processes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_panic_leaves_no_module_process() {
    let mut d = Daemon::builder().demo_ports().env("STEWARD_DEBUG_PANIC_ON_USR1", "1").start();
    let c = d.client().await;
    let (_, pids) = up_demo(&c).await;
    // SAFETY: plain syscall.
    unsafe { libc::kill(d.pid() as i32, libc::SIGUSR1) };
    let code = d.wait_exit(Duration::from_secs(20));
    assert_ne!(code, Some(0), "a panicking daemon must not exit cleanly");
    for (m, pid) in &pids {
        assert!(!alive(*pid), "{m} (pid {pid}) outlived a panicking daemon");
    }
    assert_eq!(d.modules_alive(), vec![]);
}
