//! The client subcommands end to end: the real `steward` binary, a private `STEWARD_HOME`, the demo stack on
//! free ports. The daemon is started without the demo's port variables; they are set only on the CLI
//! processes, so the stack only comes up on the right ports if they reach the daemon with `steward up`
//! (`steward/project/open` env). Waits are on output or deadlines, never sleeps.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{alive, demo, free_port, steward_bin, wait_until};

/// Live processes carrying `var` in their environment.
fn processes_with_env(var: &str) -> Vec<u32> {
    common::processes_with_env(var).into_iter().map(|(pid, _)| pid).collect()
}

/// A private home with a daemon. Dropping it stops the daemon (`steward daemon stop`) and kills whatever
/// is left of it and its modules.
struct Home {
    dir: tempfile::TempDir,
    home: PathBuf,
    mark: String,
    ports: Vec<(String, String)>,
    daemon: Option<Child>,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let mark = common::new_mark();
        let ports = ["DEMO_DB_PORT", "DEMO_QUEUE_PORT", "DEMO_API_PORT"]
            .iter()
            .map(|k| (k.to_string(), free_port().to_string()))
            .collect();
        let mut h = Home { dir, home, mark, ports, daemon: None };
        h.start_daemon();
        h
    }

    /// Starts the daemon (in the foreground, as a child of the test) and waits for its socket.
    fn start_daemon(&mut self) {
        // The daemon itself does not know the ports.
        let (k, v) = self.mark.split_once('=').unwrap();
        let child = Command::new(steward_bin())
            .arg("daemon")
            .env("STEWARD_HOME", &self.home)
            .env(k, v)
            .env_remove("DEMO_DB_PORT")
            .env_remove("DEMO_QUEUE_PORT")
            .env_remove("DEMO_API_PORT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let socket = self.home.join("run/steward.sock");
        wait_until(Duration::from_secs(20), "the daemon's socket", || UnixStream::connect(&socket).is_ok());
    }

    /// SIGKILLs the daemon (its modules live on, until the next daemon ends them).
    fn crash_daemon(&mut self) {
        let mut c = self.daemon.take().unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// `steward daemon stop`, and waits for the daemon to exit.
    fn stop_daemon(&mut self) {
        self.ok(&["daemon", "stop"]);
        let mut c = self.daemon.take().unwrap();
        wait_until(Duration::from_secs(20), "the daemon to exit", || c.try_wait().unwrap().is_some());
    }

    /// `steward ARGS` with this home and the demo ports, in a directory without a steward.toml.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(steward_bin());
        c.args(args).env("STEWARD_HOME", &self.home).current_dir(self.dir.path()).stdin(Stdio::null());
        let (k, v) = self.mark.split_once('=').unwrap();
        c.env(k, v);
        for (k, v) in &self.ports {
            c.env(k, v);
        }
        c
    }

    /// Runs `steward ARGS` to completion.
    fn run(&self, args: &[&str]) -> Output {
        common::run_logged(self.cmd(args), args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(0), "steward {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let a = common::with_json(args);
        common::json_ok(&self.run(&a), &a)
    }

    fn leftovers(&self) -> Vec<u32> {
        processes_with_env(&self.mark)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = self.cmd(&["daemon", "stop"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        if let Some(mut c) = self.daemon.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in processes_with_env(&self.mark) {
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Kills and reaps a child on drop.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn module<'a>(project: &'a Value, name: &str) -> &'a Value {
    project["modules"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap()
}

fn pid_of(project: &Value, name: &str) -> u64 {
    module(project, name)["pid"].as_u64().unwrap_or_else(|| panic!("{name} has no pid: {project}"))
}

#[test]
fn up_status_restart_logs_memory_follow_profile_down() {
    let h = Home::new();
    let file = demo();
    let f = file.to_str().unwrap();

    // up: 0, and the modules listen on the ports only the CLI's environment knows.
    h.ok(&["up", "-f", f]);
    let st = h.json(&["status", "-f", f]);
    let modules = st["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 4);
    assert!(modules.iter().all(|m| m["state"] == "running"), "{st}");
    let api_port = &h.ports.iter().find(|(k, _)| k == "DEMO_API_PORT").unwrap().1;
    std::net::TcpStream::connect(format!("127.0.0.1:{api_port}")).expect("api listens on DEMO_API_PORT");

    // Without -f and away from any steward.toml, status shows every open project.
    let all = h.json(&["status"]);
    assert_eq!(all["projects"].as_array().unwrap().len(), 1, "{all}");

    // restart: a new pid.
    let old = pid_of(&st, "worker");
    let r = h.json(&["restart", "worker", "-f", f]);
    assert_eq!(r["ok"], true);
    let new = pid_of(&r["project"], "worker");
    assert_ne!(old, new);
    assert!(!alive(old as u32));

    // logs.
    let logs = h.ok(&["logs", "worker", "-f", f, "-n", "5"]);
    assert!(logs.lines().count() >= 1 && logs.lines().count() <= 5, "{logs}");
    // Only worker's lines (the shell may add its own, e.g. "Terminated" when the stop signal hits `sleep`).
    assert!(logs.lines().all(|l| l.contains(" worker ")), "{logs}");
    assert!(logs.lines().any(|l| l.contains("| worker:")), "{logs}");

    // remember, then search.
    h.ok(&["remember", "xyzzy note", "--tag", "t"]);
    let hits = h.json(&["memory", "search", "xyzzy"]);
    let hits = hits["hits"].as_array().unwrap();
    assert!(hits.iter().any(|x| x["kind"] == "note" && x["snippet"].as_str().unwrap().contains("xyzzy")), "{hits:?}");
    let text = h.ok(&["memory", "search", "xyzzy", "--kind", "note"]);
    assert!(text.contains("[xyzzy] note"), "{text}");

    // logs --follow: one line of history, then a line written after it started.
    let mut follow =
        Reap(h.cmd(&["logs", "worker", "-f", f, "--follow", "-n", "1"]).stdout(Stdio::piped()).spawn().unwrap());
    let (tx, rx) = mpsc::channel();
    let stdout = follow.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("history line");
    assert!(first.contains("worker"), "{first}");
    h.ok(&["restart", "worker", "-f", f]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("a new line from logs --follow");
        if line.contains("worker: polling") {
            break;
        }
    }
    drop(follow);

    // profile use minimal: the worker is stopped.
    let prof = h.json(&["profile", "list", "-f", f]);
    assert_eq!(prof["active"], "full");
    let worker_pid = pid_of(&h.json(&["status", "-f", f]), "worker");
    let r = h.json(&["profile", "use", "minimal", "-f", f]);
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["project"]["modules"].as_array().unwrap().iter().all(|m| m["name"] != "worker"), "{r}");
    wait_until(Duration::from_secs(10), "the worker to exit", || !alive(worker_pid as u32));

    // events.
    let ev = h.json(&["events", "-n", "500"]);
    assert!(!ev["events"].as_array().unwrap().is_empty());

    // down, then daemon stop: nothing left.
    let pids: Vec<u64> =
        h.json(&["status", "-f", f])["modules"].as_array().unwrap().iter().filter_map(|m| m["pid"].as_u64()).collect();
    assert_eq!(pids.len(), 3);
    let d = h.json(&["down", "-f", f]);
    assert_eq!(d["ok"], true);
    for pid in pids {
        assert!(!alive(pid as u32), "module pid {pid} survived down");
    }
    h.ok(&["daemon", "stop"]);
    assert!(h.leftovers().is_empty(), "left behind: {:?}", h.leftovers());
}

#[test]
fn errors_have_exit_codes_and_positions() {
    let h = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("steward.toml");
    std::fs::write(&broken, "[project]\nname = \"broken\"\n\n[modules.a]\nrun = \"true\"\nrestrat = \"always\"\n")
        .unwrap();
    let out = h.run(&["up", "-f", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("steward.toml:6:1"), "{err}");

    // A missing stack file is a usage error; an unknown module is a failure.
    let out = h.run(&["up", "-f", dir.path().join("nope.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[modules.a]\nrun = \"sleep 600\"\n").unwrap();
    let out = h.run(&["restart", "nosuch", "-f", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    // up names the module that failed, and why.
    let failing = dir.path().join("failing.toml");
    std::fs::write(&failing, "[modules.bad]\nrun = \"sleep 60\"\nrestart = \"never\"\nhealth = { tcp = \"127.0.0.1:1\", interval = \"100ms\", retries = 2 }\n").unwrap();
    let out = h.run(&["up", "-f", failing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("module bad failed"), "{err}");
    let out = h.run(&["logs", "--since", "ten"]);
    assert_eq!(out.status.code(), Some(2));

    // Completions are generated without the daemon.
    let out = h.run(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("steward"));
}

#[test]
fn a_stack_that_was_up_comes_back_after_a_daemon_crash_but_not_after_a_clean_stop() {
    let mut h = Home::new();
    let file = demo();
    let f = file.to_str().unwrap();
    h.ok(&["up", "-f", f, "--profile", "minimal"]);
    let before = h.json(&["status", "-f", f]);
    let old: Vec<u64> = before["modules"].as_array().unwrap().iter().filter_map(|m| m["pid"].as_u64()).collect();
    assert_eq!(old.len(), 3, "{before}");

    h.crash_daemon();
    h.start_daemon();
    // Resumed before the socket answered: the project is open and up, on the same profile, and its modules
    // reach the ports that only the CLI's environment knew (the variables were recorded, not the shell's).
    let st = h.json(&["status", "-f", f]);
    assert_eq!(st["profile"], "minimal", "{st}");
    wait_until(Duration::from_secs(30), "the resumed modules to run", || {
        let st = h.json(&["status", "-f", f]);
        st["modules"].as_array().unwrap().iter().all(|m| m["state"] == "running")
    });
    let st = h.json(&["status", "-f", f]);
    let new: Vec<u64> = st["modules"].as_array().unwrap().iter().filter_map(|m| m["pid"].as_u64()).collect();
    assert_eq!(new.len(), 3, "{st}");
    for pid in &old {
        assert!(!alive(*pid as u32), "pid {pid} of the crashed daemon's run is alive");
        assert!(!new.contains(pid));
    }
    let api_port = &h.ports.iter().find(|(k, _)| k == "DEMO_API_PORT").unwrap().1;
    std::net::TcpStream::connect(format!("127.0.0.1:{api_port}")).expect("the resumed api listens on DEMO_API_PORT");
    let hits = h.json(&["memory", "search", "resumed", "--kind", "note"]);
    let hit = hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["snippet"].as_str().unwrap_or("").contains("not stop cleanly"));
    assert!(hit.is_some(), "no resume note: {hits}");
    let record = std::fs::read_to_string(h.home.join("run/projects.json")).unwrap();
    assert!(!record.contains("\"PATH\""), "the daemon's own variables were recorded:\n{record}");

    // A clean stop: the next daemon starts with nothing open.
    h.stop_daemon();
    assert!(h.leftovers().is_empty(), "left behind: {:?}", h.leftovers());
    h.start_daemon();
    let all = h.json(&["status"]);
    assert_eq!(all["projects"].as_array().unwrap().len(), 0, "{all}");
}
