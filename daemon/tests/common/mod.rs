//! Helpers shared by the `steward` binary's integration tests (each test file is its own crate and uses a
//! subset, hence the `dead_code` allowance).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The `steward` binary under test.
pub fn steward_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_steward"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The bundled demo stack file.
pub fn demo() -> PathBuf {
    repo().join("examples/demo/steward.toml")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes (then fails naming `what`).
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Live processes whose environment contains exactly `var` (`KEY=value`), with their command lines.
pub fn processes_with_env(var: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        if env.split(|b| *b == 0).any(|kv| kv == var.as_bytes()) && alive(pid) {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            out.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
        }
    }
    out
}

mod daemon;
#[allow(unused_imports)]
pub use daemon::{Daemon, DaemonBuilder, new_mark};

/// Runs a prepared `steward ARGS` command to completion, echoing it and its output to the test's stderr.
pub fn run_logged(mut cmd: std::process::Command, args: &[&str]) -> std::process::Output {
    let out = cmd.output().unwrap();
    eprintln!(
        "$ steward {} → {:?}\n{}{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ARGS --json`: the argument list for a command whose JSON output is parsed.
pub fn with_json<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut a = args.to_vec();
    a.push("--json");
    a
}

/// Expects exit code 0 from `steward ARGS` and parses its stdout as JSON.
pub fn json_ok(out: &std::process::Output, args: &[&str]) -> serde_json::Value {
    assert_eq!(out.status.code(), Some(0), "steward {args:?} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}
