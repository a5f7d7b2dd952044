//! The process edge against real processes: spawning, output capture, stopping, leftovers, memory.
//!
//! No sleeps are used for synchronisation: tests wait for a line of output, a file, or poll with a deadline.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use steward_framework::config::{Limits, ModuleSpec, Origin, RestartSpec, StopSpec};
use steward_framework::lifecycle::{LogChunk, LogLine, Stream};
use steward_framework::process::{
    ChildHandle, ExitInfo, MAX_LINE, ProcTable, ProcWatch, SpawnError, SpawnOptions, group_members, spawn,
    tree_rss_bytes,
};
use tokio::sync::mpsc;

/// Upper bound for anything a test waits for; generous for a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(30);
const RUN: u64 = 7;

fn spec(run: &str, cwd: &Path) -> ModuleSpec {
    ModuleSpec {
        name: "api".to_string(),
        version: None,
        run: run.to_string(),
        cwd: cwd.to_path_buf(),
        env: BTreeMap::new(),
        requires: Vec::new(),
        provides: BTreeMap::new(),
        health: None,
        restart: RestartSpec::default(),
        stop: StopSpec { signal: libc::SIGTERM, timeout: Duration::from_secs(5) },
        watch: Vec::new(),
        limits: Limits::default(),
        backup: None,
        origin: Origin::default(),
    }
}

/// The capture's chunks, handed out line by line.
struct LineRx {
    rx: mpsc::Receiver<LogChunk>,
    buf: std::collections::VecDeque<LogLine>,
}

impl LineRx {
    async fn recv(&mut self) -> Option<LogLine> {
        loop {
            if let Some(l) = self.buf.pop_front() {
                return Some(l);
            }
            let chunk = self.rx.recv().await?;
            self.buf.extend(chunk.to_lines());
        }
    }
}

async fn start(spec: &ModuleSpec, capacity: usize) -> (ChildHandle, LineRx) {
    let (tx, rx) = mpsc::channel(capacity);
    let child = spawn(SpawnOptions { spec, run: RUN, logs: tx }).await.expect("spawn");
    (child, LineRx { rx, buf: Default::default() })
}

async fn spawn_err(spec: &ModuleSpec) -> String {
    let (tx, _rx) = mpsc::channel(8);
    match spawn(SpawnOptions { spec, run: RUN, logs: tx }).await {
        Ok(mut child) => {
            child.stop(libc::SIGKILL, Duration::ZERO);
            let pid = child.pid;
            panic!("spawn of {:?} should fail, got pid {pid} ({:?})", spec.run, child.wait().await);
        }
        Err(err) => err.to_string(),
    }
}

/// Every line until both pipes are closed.
async fn collect(rx: &mut LineRx) -> Vec<LogLine> {
    let mut lines = Vec::new();
    let all = async {
        while let Some(line) = rx.recv().await {
            lines.push(line);
        }
    };
    tokio::time::timeout(DEADLINE, all).await.expect("output did not end in time");
    lines
}

async fn next_line(rx: &mut LineRx) -> LogLine {
    tokio::time::timeout(DEADLINE, rx.recv()).await.expect("no line in time").expect("output ended")
}

async fn wait(child: &mut ChildHandle) -> ExitInfo {
    tokio::time::timeout(DEADLINE, child.wait()).await.expect("run did not end in time")
}

/// Runs to the end, collecting output and exit concurrently.
async fn run_to_end(spec: &ModuleSpec) -> (Vec<LogLine>, ExitInfo) {
    let (mut child, mut rx) = start(spec, 64).await;
    let (lines, exit) = tokio::join!(collect(&mut rx), wait(&mut child));
    (lines, exit)
}

fn texts(lines: &[LogLine], stream: Stream) -> Vec<String> {
    lines.iter().filter(|l| l.stream == stream).map(|l| String::from_utf8_lossy(&l.bytes).into_owned()).collect()
}

/// `/proc/PID/stat` split after the command name: [state, ppid, pgrp, ...].
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// Exists and is not a zombie. (Killed orphans are reparented to PID 1, which may never reap them, so a
/// zombie counts as gone.)
fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

fn rss_of(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).expect("statm");
    let pages: u64 = statm.split_whitespace().nth(1).expect("resident").parse().expect("number");
    pages * 4096
}

async fn read_pid_file(path: &Path) -> u32 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "{} never written", path.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[tokio::test]
async fn captures_lines_per_stream_in_order_with_run() {
    let dir = tmp();
    let s = spec(r"printf 'one\ntwo\n'; printf 'err1\nerr2\n' >&2; printf 'three\r\nfour'", dir.path());
    let (lines, exit) = run_to_end(&s).await;
    assert_eq!(exit, ExitInfo { code: Some(0), signal: None, leftovers_killed: 0 });
    assert_eq!(texts(&lines, Stream::Stdout), ["one", "two", "three", "four"]);
    assert_eq!(texts(&lines, Stream::Stderr), ["err1", "err2"]);
    assert!(lines.iter().all(|l| l.module == "api" && l.run == RUN && !l.truncated), "{lines:?}");
}

#[tokio::test]
async fn final_line_without_newline_is_emitted() {
    let dir = tmp();
    // No shell syntax: runs printf directly.
    let (lines, _) = run_to_end(&spec("printf tail-without-newline", dir.path())).await;
    assert_eq!(texts(&lines, Stream::Stdout), ["tail-without-newline"]);
}

#[tokio::test]
async fn ten_megabyte_line_is_cut_at_max_line_and_the_process_carries_on() {
    let dir = tmp();
    let s = spec(r"head -c 10485760 /dev/zero | tr '\0' x; echo; echo after", dir.path());
    let (lines, exit) = run_to_end(&s).await;
    assert_eq!(exit.code, Some(0));
    assert_eq!(lines.len(), 2, "{:?}", lines.iter().map(|l| (l.bytes.len(), l.truncated)).collect::<Vec<_>>());
    assert_eq!(lines[0].bytes.len(), MAX_LINE);
    assert!(lines[0].truncated);
    assert!(lines[0].bytes.iter().all(|&b| b == b'x'));
    assert_eq!((lines[1].bytes.as_slice(), lines[1].truncated), (&b"after"[..], false));
}

#[tokio::test]
async fn invalid_utf8_passes_through_as_bytes() {
    let dir = tmp();
    let (lines, _) = run_to_end(&spec(r"printf 'a\377\376b\200\n'", dir.path())).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].bytes, vec![b'a', 0xff, 0xfe, b'b', 0x80]);
}

#[tokio::test]
async fn child_that_closes_its_output_is_still_running_until_stopped() {
    let dir = tmp();
    let (mut child, mut rx) = start(&spec("echo hello; exec 1>&- 2>&-; exec sleep 1000", dir.path()), 8).await;
    // Both readers end (EOF) while the process lives on.
    let lines = collect(&mut rx).await;
    assert_eq!(texts(&lines, Stream::Stdout), ["hello"]);
    assert!(alive(child.pid));
    // wait() must not resolve on EOF (and being cancelled here is harmless).
    assert!(tokio::time::timeout(Duration::from_millis(300), child.wait()).await.is_err());
    assert!(child.try_exit().is_none());
    assert!(alive(child.pid));
    child.stop(libc::SIGTERM, Duration::from_secs(5));
    let exit = wait(&mut child).await;
    assert_eq!((exit.code, exit.signal), (None, Some(libc::SIGTERM)));
}

#[tokio::test]
async fn missing_command_is_a_clear_spawn_error() {
    let dir = tmp();
    let err = spawn_err(&spec("definitely-not-a-command-zz9 --port 1", dir.path())).await;
    assert_eq!(err, "command not found: `definitely-not-a-command-zz9` (module api)");
    let err = spawn_err(&spec("./bin/missing", dir.path())).await;
    assert_eq!(err, "command not found: `./bin/missing` (module api)");
}

#[tokio::test]
async fn missing_cwd_is_a_clear_spawn_error() {
    let dir = tmp();
    let missing = dir.path().join("nope");
    let err = spawn_err(&spec("true", &missing)).await;
    assert_eq!(err, format!("cwd does not exist: {} (module api)", missing.display()));
    // The error type is usable by the engine, not just its message.
    let (tx, _rx) = mpsc::channel(1);
    let s = spec("true", &missing);
    assert!(matches!(spawn(SpawnOptions { spec: &s, run: RUN, logs: tx }).await, Err(SpawnError::CwdNotFound { .. })));
}

#[tokio::test]
async fn non_executable_program_is_permission_denied() {
    let dir = tmp();
    std::fs::write(dir.path().join("not-exec.sh"), "#!/bin/sh\necho hi\n").expect("write");
    let err = spawn_err(&spec("./not-exec.sh", dir.path())).await;
    assert_eq!(err, "permission denied: `./not-exec.sh` is not executable (module api)");
}

#[tokio::test]
async fn relative_program_runs_from_the_module_cwd() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp();
    let script = dir.path().join("hello.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"hello from $(pwd)\" \"$@\"\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (lines, exit) = run_to_end(&spec("./hello.sh a b", dir.path())).await;
    assert_eq!(exit.code, Some(0));
    let cwd = dir.path().canonicalize().expect("canonical");
    assert_eq!(texts(&lines, Stream::Stdout), [format!("hello from {} a b", cwd.display())]);
}

#[tokio::test]
async fn open_files_limit_is_visible_in_the_child() {
    let dir = tmp();
    let mut s = spec("ulimit -n", dir.path()); // a builtin: goes through the shell
    s.limits.open_files = Some(321);
    let (lines, exit) = run_to_end(&s).await;
    assert_eq!(exit.code, Some(0));
    assert_eq!(texts(&lines, Stream::Stdout), ["321"]);
}

#[tokio::test]
async fn environment_has_module_run_and_spec_env() {
    let dir = tmp();
    let mut s = spec("env", dir.path());
    s.env.insert("FOO".to_string(), "bar baz".to_string());
    let (lines, _) = run_to_end(&s).await;
    let env = texts(&lines, Stream::Stdout);
    for want in ["STEWARD_MODULE=api", "STEWARD_RUN=7", "FOO=bar baz"] {
        assert!(env.iter().any(|l| l == want), "{want} missing from {env:?}");
    }
    // The daemon's own environment is inherited.
    assert!(env.iter().any(|l| l.starts_with("PATH=")), "{env:?}");
}

#[tokio::test]
async fn simple_command_is_the_group_leader_and_sigterm_stops_it() {
    let dir = tmp();
    let (mut child, _rx) = start(&spec("sleep 1000", dir.path()), 8).await;
    let pid = child.pid;
    // Executed directly: the pid is the program's, and it leads its own group.
    // (Polled: with vfork-style spawning the parent may resume a moment before the kernel renames the child.)
    let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string();
    let deadline = Instant::now() + DEADLINE;
    while comm() != "sleep" {
        assert!(Instant::now() < deadline, "pid {pid} is {:?}, not sleep", comm());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(stat_fields(pid).expect("stat")[2], pid.to_string());
    assert_eq!(group_members(pid), vec![pid]);
    child.stop(libc::SIGTERM, Duration::from_secs(10));
    let exit = wait(&mut child).await;
    assert_eq!(exit, ExitInfo { code: None, signal: Some(15), leftovers_killed: 0 });
    assert!(group_members(pid).is_empty());
}

#[tokio::test]
async fn child_ignoring_sigterm_is_killed_after_the_timeout() {
    let dir = tmp();
    let (mut child, mut rx) = start(&spec("trap '' TERM; echo ready; exec sleep 1000", dir.path()), 8).await;
    assert_eq!(next_line(&mut rx).await.bytes, b"ready");
    let timeout = Duration::from_millis(400);
    let stopped_at = Instant::now();
    child.stop(libc::SIGTERM, timeout);
    child.stop(libc::SIGTERM, timeout); // idempotent
    let exit = wait(&mut child).await;
    assert!(stopped_at.elapsed() >= timeout, "killed after {:?}", stopped_at.elapsed());
    assert_eq!((exit.code, exit.signal), (None, Some(libc::SIGKILL)));
    // Safe after exit, and wait() keeps answering the same.
    child.stop(libc::SIGTERM, Duration::ZERO);
    assert_eq!(wait(&mut child).await, exit);
    assert_eq!(child.try_exit(), Some(exit));
}

#[tokio::test]
async fn grandchild_left_behind_is_stopped_before_wait_resolves() {
    let dir = tmp();
    let pid_file = dir.path().join("grandchild.pid");
    let (mut child, _rx) = start(&spec("sleep 1000 & echo $! > grandchild.pid", dir.path()), 8).await;
    let exit = wait(&mut child).await;
    assert_eq!(exit, ExitInfo { code: Some(0), signal: None, leftovers_killed: 1 });
    assert!(group_members(child.pid).is_empty());
    let grandchild = read_pid_file(&pid_file).await;
    assert!(!alive(grandchild), "grandchild {grandchild} still alive");
}

#[tokio::test]
async fn grandchild_ignoring_the_stop_signal_gets_sigkill_after_the_stop_timeout() {
    let dir = tmp();
    let mut s = spec("(trap '' TERM; exec sleep 1000) & echo $! > grandchild.pid", dir.path());
    s.stop.timeout = Duration::from_millis(400);
    let (mut child, _rx) = start(&s, 8).await;
    let started = Instant::now();
    let exit = wait(&mut child).await;
    assert!(started.elapsed() >= s.stop.timeout);
    assert_eq!((exit.code, exit.leftovers_killed), (Some(0), 1));
    assert!(group_members(child.pid).is_empty());
    assert!(!alive(read_pid_file(&dir.path().join("grandchild.pid")).await));
}

#[tokio::test]
async fn stopping_a_tree_leaves_no_group_member() {
    let dir = tmp();
    let run = "sleep 1000 & echo $! > a.pid; sleep 1000 & echo $! > b.pid; echo ready; wait";
    let (mut child, mut rx) = start(&spec(run, dir.path()), 8).await;
    assert_eq!(next_line(&mut rx).await.bytes, b"ready");
    let a = read_pid_file(&dir.path().join("a.pid")).await;
    let b = read_pid_file(&dir.path().join("b.pid")).await;
    assert_eq!(group_members(child.pid), {
        let mut v = vec![child.pid, a, b];
        v.sort();
        v
    });
    child.stop(libc::SIGTERM, Duration::from_secs(5));
    let exit = wait(&mut child).await;
    assert_eq!(exit.signal, Some(libc::SIGTERM));
    assert!(group_members(child.pid).is_empty());
    assert!(!alive(a) && !alive(b) && !alive(child.pid));
}

/// Python that allocates (and touches) 64 MiB, then reports its pid.
const ALLOCATE: &str = "import os, sys, time\n\
    if len(sys.argv) > 1: os.setpgid(0, 0)\n\
    b = b'x' * (64 << 20)\n\
    print('ready', os.getpid(), flush=True)\n\
    time.sleep(1000)\n";

fn ready_pid(line: &LogLine) -> u32 {
    let text = String::from_utf8_lossy(&line.bytes);
    let pid = text.strip_prefix("ready ").unwrap_or_else(|| panic!("unexpected line {text:?}"));
    pid.parse().expect("pid")
}

#[tokio::test]
async fn tree_rss_includes_group_members_that_are_not_descendants() {
    let dir = tmp();
    // The subshell exits at once: python is orphaned (no longer a descendant) but stays in the group.
    let mut s = spec("(python3 -c \"$ALLOCATE\" &); exec sleep 1000", dir.path());
    s.env.insert("ALLOCATE".to_string(), ALLOCATE.to_string());
    let (mut child, mut rx) = start(&s, 8).await;
    let python = ready_pid(&next_line(&mut rx).await);
    let fields = stat_fields(python).expect("python stat");
    assert_ne!(fields[1], child.pid.to_string(), "python should not be the leader's child");
    assert_eq!(fields[2], child.pid.to_string(), "python should be in the module's group");
    let leader = rss_of(child.pid);
    let tree = tree_rss_bytes(child.pid).expect("tree rss");
    assert!(tree >= leader + (60 << 20), "tree {tree} vs leader {leader}");
    child.stop(libc::SIGTERM, Duration::from_secs(5));
    wait(&mut child).await;
    assert!(!alive(python));
    assert_eq!(tree_rss_bytes(child.pid), None);
}

#[tokio::test]
async fn tree_rss_includes_descendants_in_another_group() {
    let dir = tmp();
    let mut s = spec("python3 -c \"$ALLOCATE\" own-group & wait", dir.path());
    s.env.insert("ALLOCATE".to_string(), ALLOCATE.to_string());
    let (mut child, mut rx) = start(&s, 8).await;
    let python = ready_pid(&next_line(&mut rx).await);
    assert_eq!(stat_fields(python).expect("python stat")[2], python.to_string(), "python should lead its own group");
    assert_eq!(group_members(child.pid), vec![child.pid]);
    let leader = rss_of(child.pid);
    let tree = tree_rss_bytes(child.pid).expect("tree rss");
    assert!(tree >= leader + (60 << 20), "tree {tree} vs leader {leader}");
    // Outside the group, so stopping the module would not reach it: clean up by hand.
    // SAFETY: plain syscall on a pid we just checked is our python.
    unsafe { libc::kill(python as i32, libc::SIGKILL) };
    // `wait` without operands returns 0 once its children are gone.
    assert_eq!(wait(&mut child).await.code, Some(0));
}

/// Python that, once the file `go` exists, allocates 64 MiB and starts a child; prints its pid, then `grown`.
const GROW: &str = "import os, subprocess, time\n\
    print('ready', os.getpid(), flush=True)\n\
    while not os.path.exists('go'): time.sleep(0.02)\n\
    b = b'x' * (64 << 20)\n\
    kid = subprocess.Popen(['sleep', '1000'])\n\
    print('grown', flush=True)\n\
    kid.wait()\n";

#[tokio::test]
async fn a_process_watch_sees_new_children_and_growth_without_a_full_read() {
    let dir = tmp();
    let mut s = spec("exec python3 -c \"$GROW\"", dir.path());
    s.env.insert("GROW".to_string(), GROW.to_string());
    let (mut child, mut rx) = start(&s, 8).await;
    let python = ready_pid(&next_line(&mut rx).await);
    assert_eq!(python, child.pid);

    let mut watch = ProcWatch::new();
    watch.refresh(); // the first refresh reads everything
    let before = watch.tree(child.pid).expect("the module's tree");
    assert_eq!(before.processes, 1, "{before:?}");
    watch.refresh(); // partial from here on (a full one every FULL_EVERY)
    assert_eq!(watch.tree(child.pid).map(|t| t.processes), Some(1));

    std::fs::write(dir.path().join("go"), "").unwrap();
    assert_eq!(next_line(&mut rx).await.bytes, b"grown");
    watch.refresh();
    let after = watch.tree(child.pid).expect("the module's tree");
    // The new child (a pid not seen before) and the leader's growth (a watched member, re-read).
    assert_eq!(after.processes, 2, "{after:?}");
    assert!(after.rss_bytes >= before.rss_bytes + (60 << 20), "{before:?} → {after:?}");
    // The same as a full read now.
    let full = ProcTable::read().tree(child.pid).expect("the module's tree");
    assert_eq!(full.processes, after.processes);

    child.stop(libc::SIGTERM, Duration::from_secs(5));
    wait(&mut child).await;
    watch.refresh();
    assert_eq!(watch.tree(child.pid), None);
}

#[tokio::test]
async fn dropped_receiver_never_blocks_the_child() {
    let dir = tmp();
    // ~2 MB of output, far more than a pipe holds.
    let s = spec("echo first; seq 1 300000", dir.path());
    let (mut child, mut rx) = start(&s, 1).await;
    assert_eq!(next_line(&mut rx).await.bytes, b"first");
    drop(rx);
    assert_eq!(wait(&mut child).await.code, Some(0));

    // Receiver gone before the child even starts.
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let mut child = spawn(SpawnOptions { spec: &s, run: RUN, logs: tx }).await.expect("spawn");
    assert_eq!(wait(&mut child).await.code, Some(0));
}

#[tokio::test]
async fn slow_consumer_gets_every_line() {
    let dir = tmp();
    let (mut child, mut rx) = start(&spec("seq 1 20000", dir.path()), 1).await;
    let (lines, exit) = tokio::join!(collect(&mut rx), wait(&mut child));
    assert_eq!(exit.code, Some(0));
    let numbers: Vec<String> = (1..=20000).map(|n| n.to_string()).collect();
    assert_eq!(texts(&lines, Stream::Stdout), numbers);
}
