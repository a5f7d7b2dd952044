//! The `steward` binary end to end: `check` output and `run`'s promise that no module process outlives it,
//! whether it ends by Ctrl-C, SIGTERM or a panic.

use std::io::{BufRead, BufReader};

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::{free_port, repo};

fn steward() -> Command {
    Command::new(env!("CARGO_BIN_EXE_steward"))
}

#[test]
fn check_prints_every_error_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("steward.toml");
    std::fs::write(
        &file,
        r#"[modules.db]
run = "db"
helth = { tcp = "127.0.0.1:1" }

[modules.api]
run = "api"
requires = ["dbb"]
stop = { timeout = "10 seconds" }
"#,
    )
    .unwrap();
    let out = steward().args(["check", "-f"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("steward.toml:3:1"), "{err}");
    assert!(err.contains("did you mean `health`?"), "{err}");
    assert!(err.contains("steward.toml:7:14"), "{err}");
    assert!(err.contains("did you mean `db`?"), "{err}");
    assert!(err.contains("steward.toml:8:"), "{err}");
    assert!(err.contains("steward.toml: 3 errors"), "{err}");
}

#[test]
fn check_prints_start_order_of_the_demo() {
    let out = steward().args(["check", "-f"]).arg(repo().join("examples/demo/steward.toml")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("1. db\n  2. queue\n  3. api, worker"), "{text}");
}

#[test]
fn check_without_a_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = steward().arg("check").current_dir(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no steward.toml"));
}

/// Starts the demo on free ports and waits until it reports that every module is up.
fn run_demo(extra_env: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
    let mut cmd = steward();
    cmd.args(["run", "--no-watch", "-f"])
        .arg(repo().join("examples/demo/steward.toml"))
        .env("DEMO_DB_PORT", free_port().to_string())
        .env("DEMO_QUEUE_PORT", free_port().to_string())
        .env("DEMO_API_PORT", free_port().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, needle: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = vec![];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains(needle);
                seen.push(l);
                if hit {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("`{needle}` not seen within {timeout:?}; got:\n{}", seen.join("\n"));
}

/// Process groups of the children of `pid` (each module runs in its own group).
fn child_groups(pid: u32) -> Vec<u32> {
    let mut groups = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f[1].parse::<u32>().ok() == Some(pid) {
            groups.push(f[2].parse().unwrap());
        }
    }
    groups.sort();
    groups.dedup();
    groups
}

/// Live (non-zombie) processes in any of `groups`.
fn live_in_groups(groups: &[u32]) -> Vec<String> {
    let mut live = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f[0] != "Z" && groups.contains(&f[2].parse().unwrap()) {
            live.push(stat);
        }
    }
    live
}

fn assert_no_orphans(mut child: Child, stop: impl FnOnce(u32), expect_success: bool) {
    let pid = child.id();
    let groups = child_groups(pid);
    assert_eq!(groups.len(), 4, "one process group per demo module: {groups:?}");
    stop(pid);
    let status = child.wait().unwrap();
    assert_eq!(status.success(), expect_success, "{status:?}");
    // The groups are empty once steward has exited: nothing may be polled for — it must already be so.
    let live = live_in_groups(&groups);
    assert!(live.is_empty(), "left behind: {live:#?}");
}

#[test]
fn ctrl_c_stops_everything() {
    let (child, rx) = run_demo(&[]);
    wait_line(&rx, "is up", Duration::from_secs(30));
    assert_no_orphans(child, |pid| unsafe { assert_eq!(libc::kill(pid as i32, libc::SIGINT), 0) }, true);
    let rest: Vec<String> = rx.iter().collect();
    assert!(rest.iter().any(|l| l.contains("all modules stopped")), "{rest:?}");
    // Dependents stop before their requirements.
    let order: Vec<&str> =
        rest.iter().filter(|l| l.contains("▸ stopped")).map(|l| l.split_whitespace().next().unwrap()).collect();
    let pos = |m| order.iter().position(|x| *x == m).unwrap_or_else(|| panic!("{m} not stopped: {rest:#?}"));
    assert!(pos("api") < pos("queue") && pos("worker") < pos("queue") && pos("queue") < pos("db"), "{order:?}");
}

#[test]
fn sigterm_stops_everything() {
    let (child, rx) = run_demo(&[]);
    wait_line(&rx, "is up", Duration::from_secs(30));
    assert_no_orphans(child, |pid| unsafe { assert_eq!(libc::kill(pid as i32, libc::SIGTERM), 0) }, true);
}

#[test]
fn a_panic_leaves_no_orphans() {
    let (child, rx) = run_demo(&[("STEWARD_DEBUG_PANIC_ON_USR1", "1")]);
    wait_line(&rx, "is up", Duration::from_secs(30));
    let pid = child.id();
    let groups = child_groups(pid);
    assert_eq!(groups.len(), 4, "{groups:?}");
    let mut child = child;
    unsafe { assert_eq!(libc::kill(pid as i32, libc::SIGUSR1), 0) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(101), "a panic exits with 101");
    let err: Vec<String> = rx.iter().collect();
    assert!(err.iter().any(|l| l.contains("STEWARD_DEBUG_PANIC_ON_USR1")), "{err:?}");
    let live = live_in_groups(&groups);
    assert!(live.is_empty(), "left behind: {live:#?}");
}

#[test]
fn a_bad_retention_setting_stops_the_daemon_with_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let out = steward()
        .arg("daemon")
        .env("STEWARD_HOME", home.path())
        .env("STEWARD_RETENTION_AGE", "2 weeks")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("STEWARD_RETENTION_AGE=2 weeks"), "{err}");
}
