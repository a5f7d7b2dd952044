//! The edge that touches real processes: spawning a module as its own process group, capturing its output
//! in chunks of whole lines, signalling and reaping the whole group, and measuring the memory of a module's tree.
//!
//! The engine's core never does I/O; it decides, and calls these functions to act.
//!
//! Invariants kept here:
//! - **One module run = one process group** whose id is the leader's pid. Every signal goes to the group, so
//!   a shell wrapper, its children and its grandchildren stop together.
//! - **A run is over only when the group is empty.** The leader's exit alone is not enough: a grandchild
//!   that outlived its parent would be an orphan holding a port. Leftovers get the module's stop signal,
//!   then SIGKILL after its stop timeout ([`ChildHandle::wait`]).
//! - **Output capture is bounded.** Each pipe is read through a fixed buffer; a line is capped at
//!   [`MAX_LINE`] bytes and the excess is dropped as it streams by, so a 10 MB line costs 64 KiB, not 10 MB.
//!   A slow log consumer slows only the child that produces the output (back-pressure through the pipe);
//!   a vanished consumer never blocks a child (the pipe keeps being drained).
//! - **No global reaping.** Only the leader is waited for (through tokio); `waitpid(-1)` would steal exit
//!   statuses from other parts of the daemon. Leftovers are reparented away from us and watched through
//!   `/proc` instead.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::ModuleSpec;
use crate::lifecycle::{LogChunk, RunId, Stream, now_ms};

/// Longest captured line, in bytes. Longer lines are cut here and marked `truncated`.
pub const MAX_LINE: usize = 64 * 1024;

/// Size of the read buffer of each pipe reader: a whole pipe's worth (Linux pipes hold 64 KiB), so a flooding
/// module's output is taken in as few reads (and chunks) as possible.
const READ_CHUNK: usize = 64 * 1024;

/// How often leftover group members are looked for while waiting for them to go.
const GROUP_POLL: Duration = Duration::from_millis(25);

/// How long to keep re-sending SIGKILL to a group that will not die (processes stuck in uninterruptible
/// sleep) before reporting the run as over anyway.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// After the group is gone, how long to wait for the pipe readers to hand over their last lines, so that a
/// run's output normally reaches the log channel before its exit is published. Bounded because a process
/// that left the group (`setsid`) may still hold the pipes, and because the consumer may be slow.
const OUTPUT_DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Shell builtins and keywords that have no program of their own (or must run in the shell to have an
/// effect): a command starting with one of these always goes through `/bin/sh -c`.
const SHELL_WORDS: &[&str] = &[
    "!", ".", ":", "[[", "alias", "break", "case", "cd", "command", "continue", "eval", "exec", "exit", "export",
    "for", "function", "getopts", "hash", "if", "local", "read", "readonly", "return", "select", "set", "shift",
    "source", "then", "time", "times", "trap", "type", "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
    "{",
];

/// What [`spawn`] needs to start one run of a module.
pub struct SpawnOptions<'a> {
    /// The module to run (`run`, `cwd`, `env`, `stop`, `limits` are used).
    pub spec: &'a ModuleSpec,
    /// Run id, stamped on every captured line and exported as `STEWARD_RUN`.
    pub run: RunId,
    /// Where captured lines go, one chunk per read of a pipe. Sending awaits, so a full channel slows down
    /// this child only.
    pub logs: mpsc::Sender<LogChunk>,
}

/// Why a module could not be started. Messages name the module and say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// `run` is empty or only whitespace.
    #[error("empty command (module {module})")]
    EmptyCommand {
        /// Module name.
        module: String,
    },
    /// The program was not found on `PATH` (or at the given path).
    #[error("command not found: `{command}` (module {module})")]
    CommandNotFound {
        /// The program as written in `run`.
        command: String,
        /// Module name.
        module: String,
    },
    /// The program file exists but could not be executed because its interpreter (`#!` line) or dynamic
    /// loader is missing.
    #[error("cannot execute `{command}` (module {module}): its interpreter (#! line) or loader was not found")]
    InterpreterNotFound {
        /// The program as written in `run`.
        command: String,
        /// Module name.
        module: String,
    },
    /// The program (or a directory on its path) is not executable by the daemon's user.
    #[error("permission denied: `{command}` is not executable (module {module})")]
    PermissionDenied {
        /// The program as written in `run`.
        command: String,
        /// Module name.
        module: String,
    },
    /// The module's working directory does not exist.
    #[error("cwd does not exist: {} (module {module})", cwd.display())]
    CwdNotFound {
        /// The configured working directory.
        cwd: PathBuf,
        /// Module name.
        module: String,
    },
    /// The module's working directory exists but is not a directory.
    #[error("cwd is not a directory: {} (module {module})", cwd.display())]
    CwdNotDirectory {
        /// The configured working directory.
        cwd: PathBuf,
        /// Module name.
        module: String,
    },
    /// `limits.open_files` is above what the daemon may grant (its hard limit, without privileges).
    #[error("cannot set open_files = {limit} (module {module}): above the daemon's hard limit {hard}")]
    OpenFilesLimit {
        /// Requested limit.
        limit: u64,
        /// The daemon's own hard limit.
        hard: u64,
        /// Module name.
        module: String,
    },
    /// Any other failure from the operating system.
    #[error("cannot spawn `{command}` (module {module}): {source}")]
    Io {
        /// The program as written in `run` (or `/bin/sh`).
        command: String,
        /// Module name.
        module: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// How a module's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// The leader's exit status, when it exited normally.
    pub code: Option<i32>,
    /// The signal that killed the leader, when one did.
    pub signal: Option<i32>,
    /// Processes that were still in the group after the leader exited and had to be signalled away.
    pub leftovers_killed: usize,
}

/// A running (or finished) module process group. Dropping the handle does not stop anything: the engine
/// decides when to [`stop`](ChildHandle::stop); the group is still reaped in the background.
pub struct ChildHandle {
    /// The leader's pid, which is also the process group id.
    pub pid: u32,
    exit: watch::Receiver<Option<ExitInfo>>,
    group: Arc<Group>,
    runtime: tokio::runtime::Handle,
}

/// Shared between the handle, the exit task and stop timers: whether the group is known to be gone. Every
/// group signal is sent under this lock, and the exit task marks the group finished under it, so that no
/// signal can go to the pgid once the group is empty (and the id could be reused by an unrelated process).
struct Group {
    pgid: u32,
    finished: Mutex<bool>,
}

impl Group {
    fn lock(&self) -> MutexGuard<'_, bool> {
        self.finished.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Signals the group unless it is already known to be gone.
    fn signal(&self, sig: i32) {
        let finished = self.lock();
        if !*finished {
            if let Err(err) = signal_group(self.pgid, sig) {
                if err.raw_os_error() != Some(libc::ESRCH) {
                    tracing::warn!(pgid = self.pgid, sig, %err, "cannot signal process group");
                }
            }
        }
    }

    /// Current live members; when there are none, marks the group finished (under the same lock).
    fn members_or_finish(&self) -> Vec<u32> {
        let mut finished = self.lock();
        let members = group_members(self.pgid);
        if members.is_empty() {
            *finished = true;
        }
        members
    }

    fn mark_finished(&self) {
        *self.lock() = true;
    }
}

impl ChildHandle {
    /// Resolves when the module's run is over: the leader exited **and** no live (non-zombie) process
    /// remains in its process group. Leftover group members — e.g. a grandchild that outlived its parent —
    /// get the module's stop signal, then SIGKILL after its stop timeout.
    ///
    /// Cancel-safe (the work happens in a task started by [`spawn`]); may be called again after it resolved
    /// and then returns the same [`ExitInfo`]. Output lines normally reach the log channel before this
    /// resolves (the pipe readers get up to a second to finish once the group is gone).
    pub async fn wait(&mut self) -> ExitInfo {
        loop {
            if let Some(info) = *self.exit.borrow_and_update() {
                return info;
            }
            if self.exit.changed().await.is_err() {
                // The exit task is gone without a verdict (only if the runtime is shutting down).
                return (*self.exit.borrow()).unwrap_or(ExitInfo { code: None, signal: None, leftovers_killed: 0 });
            }
        }
    }

    /// The exit, if the run is already over (non-blocking).
    pub fn try_exit(&self) -> Option<ExitInfo> {
        *self.exit.borrow()
    }

    /// Sends `signal` to the whole group now and SIGKILLs the group after `timeout` if it is still alive.
    ///
    /// Non-blocking. Idempotent and safe after exit (nothing is sent to a finished group). Calling it again
    /// sends the signal again, and the earliest of the pending deadlines wins, so a shutdown can escalate a
    /// stop that is already in progress.
    pub fn stop(&self, signal: i32, timeout: Duration) {
        if self.try_exit().is_some() {
            return;
        }
        self.group.signal(signal);
        let group = self.group.clone();
        let mut exit = self.exit.clone();
        self.runtime.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => group.signal(libc::SIGKILL),
                _ = exit.wait_for(|e| e.is_some()) => {}
            }
        });
    }
}

/// Starts one run of a module.
///
/// **How `run` is executed.** If it contains no shell syntax — none of ``| & ; < > ( ) $ ` \ " ' * ? [ ] { }
/// ~ # !`` or a newline, no `NAME=value` prefix, and its first word is not a shell builtin or keyword such as
/// `cd`, `ulimit` or `exec` — it is split on whitespace and the program is executed directly: the module's
/// pid is the real program's, and a missing program is a clear [`SpawnError::CommandNotFound`]. A program
/// path containing `/` is relative to the module's `cwd`. Anything else runs as `/bin/sh -c "<run>"`.
///
/// **Child setup.** Its own process group (pgid = pid), `RLIMIT_NOFILE` = `limits.open_files` (soft and hard)
/// when set, `cwd`, the daemon's environment plus `spec.env` plus `STEWARD_MODULE` and `STEWARD_RUN`, stdin
/// from `/dev/null`, stdout and stderr captured into `opts.logs`. The child is not killed when the handle
/// is dropped, and no parent-death signal is used (it would fire when the spawning *thread* exits).
pub async fn spawn(opts: SpawnOptions<'_>) -> Result<ChildHandle, SpawnError> {
    let spec = opts.spec;
    let module = spec.name.clone();

    match std::fs::metadata(&spec.cwd) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(SpawnError::CwdNotDirectory { cwd: spec.cwd.clone(), module }),
        Err(_) => return Err(SpawnError::CwdNotFound { cwd: spec.cwd.clone(), module }),
    }

    let plan =
        CommandPlan::parse(&spec.run, &spec.cwd).ok_or_else(|| SpawnError::EmptyCommand { module: module.clone() })?;
    let mut cmd = tokio::process::Command::new(&plan.program);
    cmd.args(&plan.args)
        .current_dir(&spec.cwd)
        .envs(&spec.env)
        .env("STEWARD_MODULE", &spec.name)
        .env("STEWARD_RUN", opts.run.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        .process_group(0);

    if let Some(limit) = spec.limits.open_files {
        let limit = limit as libc::rlim_t;
        // SAFETY: the closure runs in the forked child before exec; it only calls setrlimit (async-signal-
        // safe) on a stack value and reads errno — no allocation, no locks.
        unsafe {
            cmd.pre_exec(move || {
                let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
            });
        }
    }

    let mut child = cmd.spawn().map_err(|err| spawn_error(err, spec, &plan))?;
    let Some(pid) = child.id() else {
        // Only possible if the child was already reaped, which nothing could have done yet.
        return Err(SpawnError::Io {
            command: plan.shown.clone(),
            module,
            source: io::Error::other("child exited before its pid could be read"),
        });
    };

    // Registered before anything can await, so a panic hook or fatal signal never misses a fresh group.
    register_group(pid);

    let mut readers = Vec::with_capacity(2);
    let name: Arc<str> = Arc::from(module.as_str());
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(capture(out, name.clone(), opts.run, Stream::Stdout, opts.logs.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(capture(err, name, opts.run, Stream::Stderr, opts.logs)));
    }

    let group = Arc::new(Group { pgid: pid, finished: Mutex::new(false) });
    let (exit_tx, exit_rx) = watch::channel(None);
    tokio::spawn(supervise(child, group.clone(), spec.stop.signal, spec.stop.timeout, readers, exit_tx));

    Ok(ChildHandle { pid, exit: exit_rx, group, runtime: tokio::runtime::Handle::current() })
}

/// The program and arguments actually executed.
#[derive(Debug, PartialEq)]
struct CommandPlan {
    program: PathBuf,
    args: Vec<String>,
    /// The program as the user wrote it (for messages).
    shown: String,
    /// True when `run` goes through `/bin/sh -c`.
    shell: bool,
}

impl CommandPlan {
    /// None for an empty command.
    fn parse(run: &str, cwd: &Path) -> Option<CommandPlan> {
        let mut words = run.split_whitespace();
        let first = words.next()?;
        if needs_shell(run) {
            return Some(CommandPlan {
                program: PathBuf::from("/bin/sh"),
                args: vec!["-c".to_string(), run.to_string()],
                shown: first.to_string(),
                shell: true,
            });
        }
        let program = if first.contains('/') { cwd.join(first) } else { PathBuf::from(first) };
        Some(CommandPlan { program, args: words.map(str::to_string).collect(), shown: first.to_string(), shell: false })
    }
}

/// True when `run` uses shell syntax and must go through `/bin/sh -c`.
fn needs_shell(run: &str) -> bool {
    const META: &[char] = &[
        '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', '*', '?', '[', ']', '{', '}', '~', '#', '!',
        '\n', '\r',
    ];
    if run.contains(META) {
        return true;
    }
    match run.split_whitespace().next() {
        None => false,
        // `NAME=value cmd` is an assignment prefix.
        Some(first) => first.contains('=') || SHELL_WORDS.contains(&first),
    }
}

fn spawn_error(err: io::Error, spec: &ModuleSpec, plan: &CommandPlan) -> SpawnError {
    let module = spec.name.clone();
    let command = plan.shown.clone();
    if let Some(limit) = spec.limits.open_files {
        let hard = open_files_hard_limit();
        if err.raw_os_error() == Some(libc::EPERM) && hard.is_some_and(|h| limit > h) {
            return SpawnError::OpenFilesLimit { limit, hard: hard.unwrap_or(0), module };
        }
    }
    if plan.shell {
        return SpawnError::Io { command: "/bin/sh".to_string(), module, source: err };
    }
    match err.kind() {
        // The cwd was checked before, so ENOENT is about the program — or, when the file is there, about
        // its interpreter.
        io::ErrorKind::NotFound if plan.program.components().count() > 1 && plan.program.exists() => {
            SpawnError::InterpreterNotFound { command, module }
        }
        io::ErrorKind::NotFound => SpawnError::CommandNotFound { command, module },
        io::ErrorKind::PermissionDenied => SpawnError::PermissionDenied { command, module },
        _ => SpawnError::Io { command, module, source: err },
    }
}

fn open_files_hard_limit() -> Option<u64> {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
    (rc == 0).then_some(rl.rlim_max)
}

/// The exit task: waits for the leader, clears the group, lets the readers finish, publishes the exit.
async fn supervise(
    mut child: tokio::process::Child,
    group: Arc<Group>,
    stop_signal: i32,
    stop_timeout: Duration,
    readers: Vec<JoinHandle<()>>,
    exit_tx: watch::Sender<Option<ExitInfo>>,
) {
    let (code, signal) = match child.wait().await {
        Ok(status) => decode_status(status),
        Err(err) => {
            tracing::warn!(pid = group.pgid, %err, "cannot wait for module process");
            (None, None)
        }
    };
    let leftovers_killed = clear_group(&group, stop_signal, stop_timeout).await;
    let drained = tokio::time::timeout(OUTPUT_DRAIN_GRACE, async {
        for reader in readers {
            let _ = reader.await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::debug!(pid = group.pgid, "output pipes still open after the group exited; not waiting for them");
    }
    unregister_group(group.pgid);
    exit_tx.send_replace(Some(ExitInfo { code, signal, leftovers_killed }));
}

/// Process groups of every live run in this process, for last-resort cleanup (panic hook, fatal signal).
static LIVE_GROUPS: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());
/// Set once `kill_all_live_groups` ran: a run spawned afterwards (a race with a spawn in flight) kills itself.
static KILLED_ALL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn register_group(pgid: u32) {
    LIVE_GROUPS.lock().unwrap_or_else(|p| p.into_inner()).insert(pgid);
    if KILLED_ALL.load(std::sync::atomic::Ordering::SeqCst) {
        let _ = signal_group(pgid, libc::SIGKILL);
    }
}

fn unregister_group(pgid: u32) {
    LIVE_GROUPS.lock().unwrap_or_else(|p| p.into_inner()).remove(&pgid);
}

/// SIGKILL every live module process group spawned by this process, and every one spawned from now on,
/// then wait (at most 2 s) until those groups are empty. For a panic hook or a second Ctrl-C: the process is
/// about to exit and must leave nothing behind — and a killed process dies asynchronously, so returning right
/// after `kill()` would let the caller exit while its modules are still on their way out.
pub fn kill_all_live_groups() -> usize {
    KILLED_ALL.store(true, std::sync::atomic::Ordering::SeqCst);
    let groups = LIVE_GROUPS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for pgid in &groups {
        let _ = signal_group(*pgid, libc::SIGKILL);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while groups.iter().any(|g| !group_members(*g).is_empty()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    groups.len()
}

fn decode_status(status: ExitStatus) -> (Option<i32>, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    (status.code(), status.signal())
}

/// After the leader exited: stop signal to leftovers, wait up to `stop_timeout`, then SIGKILL. Returns the
/// number of distinct leftover processes seen.
async fn clear_group(group: &Group, stop_signal: i32, stop_timeout: Duration) -> usize {
    let mut seen: HashSet<u32> = HashSet::new();
    let members = group.members_or_finish();
    if members.is_empty() {
        return 0;
    }
    seen.extend(members);
    group.signal(stop_signal);
    let deadline = Instant::now() + stop_timeout;
    loop {
        tokio::time::sleep(GROUP_POLL).await;
        let members = group.members_or_finish();
        if members.is_empty() {
            return seen.len();
        }
        seen.extend(members);
        if Instant::now() >= deadline {
            break;
        }
    }
    tracing::info!(pgid = group.pgid, "leftover processes ignored the stop signal; sending SIGKILL");
    let give_up = Instant::now() + KILL_GRACE;
    loop {
        group.signal(libc::SIGKILL);
        tokio::time::sleep(GROUP_POLL).await;
        let members = group.members_or_finish();
        if members.is_empty() {
            return seen.len();
        }
        seen.extend(members);
        if Instant::now() >= give_up {
            tracing::warn!(pgid = group.pgid, "processes survive SIGKILL (uninterruptible sleep?); giving up on them");
            group.mark_finished();
            return seen.len();
        }
    }
}

/// Reads one pipe to EOF, forwarding the lines each read completes as one [`LogChunk`]. Ends quietly on EOF
/// or a read error; when the receiver is gone it keeps draining (and discarding) so the child never blocks
/// on a full pipe.
async fn capture<R: AsyncRead + Unpin>(
    mut pipe: R,
    module: Arc<str>,
    run: RunId,
    stream: Stream,
    logs: mpsc::Sender<LogChunk>,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut lines = LineSplitter::default();
    let mut receiver_gone = false;
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if receiver_gone {
            continue;
        }
        let mut chunk = LogChunk::new(module.clone(), run, stream, now_ms());
        lines.feed(&buf[..n], &mut chunk);
        if !chunk.is_empty() && logs.send(chunk).await.is_err() {
            receiver_gone = true;
        }
    }
    if !receiver_gone {
        let mut chunk = LogChunk::new(module, run, stream, now_ms());
        lines.finish(&mut chunk);
        if !chunk.is_empty() {
            let _ = logs.send(chunk).await;
        }
    }
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes without ever holding more than
/// `MAX_LINE + 1` bytes of a partial line (the extra byte lets a `\r` before `\n` be told apart from real
/// overflow). Lines that a read holds whole go straight into the chunk without being buffered.
#[derive(Default)]
struct LineSplitter {
    /// The start of a line whose newline has not been read yet.
    line: Vec<u8>,
    /// The current line went past the buffer; the rest of it is being dropped.
    overflow: bool,
}

impl LineSplitter {
    const CAP: usize = MAX_LINE + 1;

    /// Adds every line that `bytes` completes to `out`, and keeps the incomplete rest.
    fn feed(&mut self, bytes: &[u8], out: &mut LogChunk) {
        let mut rest = bytes;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            let seg = &rest[..i];
            if self.line.is_empty() && !self.overflow {
                let (line, cut) = Self::bound(seg, false);
                out.push(line, cut);
            } else {
                self.append(seg);
                let (line, cut) = Self::bound(&self.line, self.overflow);
                out.push(line, cut);
                self.line.clear();
                self.overflow = false;
            }
            rest = &rest[i + 1..];
        }
        self.append(rest);
    }

    /// The last line, if the stream ended without a newline.
    fn finish(&mut self, out: &mut LogChunk) {
        if !self.line.is_empty() || self.overflow {
            let (line, cut) = Self::bound(&self.line, self.overflow);
            out.push(line, cut);
        }
        self.line = Vec::new();
        self.overflow = false;
    }

    /// A complete line as stored: a `\r` before the newline dropped, cut to [`MAX_LINE`] (`true` when cut).
    fn bound(line: &[u8], overflow: bool) -> (&[u8], bool) {
        if overflow || line.len() > Self::CAP {
            return (&line[..line.len().min(MAX_LINE)], true);
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE { (&line[..MAX_LINE], true) } else { (line, false) }
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.overflow || bytes.is_empty() {
            return;
        }
        let room = Self::CAP - self.line.len();
        let keep = bytes.len().min(room);
        if self.line.capacity() < self.line.len() + keep {
            // Grow at most to CAP: doubling could reserve twice the limit.
            let want = (self.line.len() + keep).max(self.line.capacity() * 2).clamp(256, Self::CAP);
            self.line.reserve_exact(want - self.line.len());
        }
        self.line.extend_from_slice(&bytes[..keep]);
        if keep < bytes.len() {
            self.overflow = true;
        }
    }
}

/// Sends `sig` to every process of group `pgid` (`kill(-pgid, sig)`).
///
/// Refuses (InvalidInput) pgids 0 and 1, ids that do not fit a pid, and the daemon's own group: with those,
/// `kill` would signal the caller's group or every process the user owns.
pub fn signal_group(pgid: u32, sig: i32) -> io::Result<()> {
    let Ok(id) = libc::pid_t::try_from(pgid) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid process group id {pgid}")));
    };
    // SAFETY: getpgrp has no preconditions.
    if id <= 1 || id == unsafe { libc::getpgrp() } {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("refusing to signal process group {pgid}")));
    }
    // SAFETY: plain syscall; a negative pid addresses the process group.
    if unsafe { libc::kill(-id, sig) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Live (non-zombie) pids whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    if pgid == 0 || pgid > i32::MAX as u32 {
        return Vec::new();
    }
    // Fast path: an empty group needs no scan of /proc (which costs ~1 ms per hundred processes). Signal 0
    // checks existence only; ESRCH means no process — not even a zombie — is left in the group.
    // SAFETY: kill with signal 0 sends nothing.
    if unsafe { libc::kill(-(pgid as i32), 0) } != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return Vec::new();
    }
    let mut pids: Vec<u32> =
        proc_table().into_iter().filter(|(_, p)| p.pgrp == pgid && p.live).map(|(pid, _)| pid).collect();
    pids.sort_unstable();
    pids
}

/// Resident memory, in bytes, of a module's whole tree: every live process in the process group `pid` and
/// every live descendant of those (including descendants that moved to another group or session). None
/// when there is no such live process.
///
/// Shared pages are counted once per process (the usual RSS sum), so this over-estimates trees that share
/// a lot of memory; it never misses a child, which is what a limit needs. One scan of `/proc` per call
/// (a few milliseconds for a few hundred processes): fine every couple of seconds.
pub fn tree_rss_bytes(pid: u32) -> Option<u64> {
    if pid == 0 {
        return None;
    }
    ProcTable::read().tree(pid).map(|t| t.rss_bytes)
}

/// What a module's process tree uses (see [`ProcTable::tree`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeUsage {
    /// Summed resident memory, bytes.
    pub rss_bytes: u64,
    /// Summed CPU time (user + system) of the live processes, milliseconds.
    pub cpu_ms: u64,
    /// Live processes in the tree.
    pub processes: u32,
}

/// One reading of the process table (one pass over `/proc` on Linux), from which the usage of any number
/// of process trees can be computed — the metrics sampler reads it once per tick for every module.
#[derive(Debug, Default)]
pub struct ProcTable {
    table: HashMap<u32, ProcInfo>,
    children: HashMap<u32, Vec<u32>>,
}

impl ProcTable {
    /// Reads the process table now.
    pub fn read() -> ProcTable {
        ProcTable::from_table(proc_table())
    }

    fn from_table(table: HashMap<u32, ProcInfo>) -> ProcTable {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&p, info) in &table {
            children.entry(info.ppid).or_default().push(p);
        }
        ProcTable { table, children }
    }

    /// Number of processes seen.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when no process was seen (no `/proc`?).
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The usage of a module's whole tree: every live process in the process group `pid` and every live
    /// descendant of those (including descendants that moved to another group or session). None when there
    /// is no such live process. Shared pages are counted once per process (the usual RSS sum).
    pub fn tree(&self, pid: u32) -> Option<TreeUsage> {
        self.usage(&self.members(pid))
    }

    /// The summed usage of `members`; None when there are none.
    fn usage(&self, members: &HashSet<u32>) -> Option<TreeUsage> {
        if members.is_empty() {
            return None;
        }
        let mut usage = TreeUsage::default();
        for info in members.iter().filter_map(|p| self.table.get(p)) {
            usage.rss_bytes += info.rss_bytes;
            usage.cpu_ms += info.cpu_ms;
            usage.processes += 1;
        }
        Some(usage)
    }

    /// The live processes of the tree of `pid` (see [`tree`](Self::tree)).
    fn members(&self, pid: u32) -> HashSet<u32> {
        if pid == 0 {
            return HashSet::new();
        }
        let table = &self.table;
        // The group, the leader itself, then every descendant of any of them.
        let mut tree: HashSet<u32> = table.iter().filter(|(_, p)| p.live && p.pgrp == pid).map(|(&p, _)| p).collect();
        if table.get(&pid).is_some_and(|p| p.live) {
            tree.insert(pid);
        }
        let mut frontier: Vec<u32> = tree.iter().copied().collect();
        while let Some(p) = frontier.pop() {
            for &kid in self.children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
                if table.get(&kid).is_some_and(|k| k.live) && tree.insert(kid) {
                    frontier.push(kid);
                }
            }
        }
        tree
    }
}

/// The process table kept from one sample to the next, so that a sample costs in proportion to the trees
/// asked for, not to every process on the machine.
///
/// Listing `/proc` and generating `/proc/PID/stat` for every process is most of a full read's cost (a
/// developer's machine runs hundreds of processes). A [`refresh`](Self::refresh) on Linux reads only the
/// members of the trees asked for since the previous refresh and, through `/proc/PID/task/TID/children`,
/// their descendants: a process joins a tree by being forked inside it, so walking down from the known
/// members finds every new one. What that could miss (an orphan whose parent exited between two refreshes,
/// a process moving into a module's group with `setpgid`) is caught by a full read every
/// [`FULL_EVERY`](Self::FULL_EVERY) refreshes. Other systems read the whole table each time.
#[derive(Debug, Default)]
pub struct ProcWatch {
    current: ProcTable,
    /// Members of the trees asked for since the last refresh: re-read at the next one.
    watched: HashSet<u32>,
    refreshes: u64,
}

impl ProcWatch {
    /// Every this many refreshes, the whole table is read again.
    pub const FULL_EVERY: u64 = 15;

    /// An empty watch: the first refresh reads everything.
    pub fn new() -> ProcWatch {
        ProcWatch::default()
    }

    /// Brings the table up to date (see the type's documentation).
    pub fn refresh(&mut self) {
        let full = self.refreshes % Self::FULL_EVERY == 0;
        self.refreshes += 1;
        let watched = std::mem::take(&mut self.watched);
        #[cfg(target_os = "linux")]
        if !full {
            let mut table = HashMap::with_capacity(watched.len() + 8);
            let mut queue: Vec<u32> = watched.into_iter().collect();
            while let Some(pid) = queue.pop() {
                if table.contains_key(&pid) {
                    continue;
                }
                if let Some(info) = linux::read(pid) {
                    queue.extend(linux::children(pid, info.threads));
                    table.insert(pid, info);
                }
            }
            self.current = ProcTable::from_table(table);
            return;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (full, watched); // no cheap partial read there
        self.current = ProcTable::read();
    }

    /// [`ProcTable::tree`] on the last refresh; its members (or the pid itself, for a run the table has not
    /// seen yet) are re-read at the next one.
    pub fn tree(&mut self, pid: u32) -> Option<TreeUsage> {
        let members = self.current.members(pid);
        let usage = self.current.usage(&members);
        if pid != 0 {
            self.watched.insert(pid);
        }
        self.watched.extend(members);
        usage
    }
}

/// What we need to know about one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcInfo {
    ppid: u32,
    pgrp: u32,
    /// Not a zombie (nor dead).
    live: bool,
    rss_bytes: u64,
    /// User + system CPU time, milliseconds.
    cpu_ms: u64,
    /// Threads (children can hang off any of them).
    threads: u32,
}

#[cfg(target_os = "linux")]
fn proc_table() -> HashMap<u32, ProcInfo> {
    linux::proc_table()
}

#[cfg(not(target_os = "linux"))]
fn proc_table() -> HashMap<u32, ProcInfo> {
    portable::proc_table()
}

/// Linux: `/proc/PID/stat` has everything (state, ppid, pgrp, rss) in one read per process.
#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    use super::ProcInfo;

    pub(super) fn proc_table() -> HashMap<u32, ProcInfo> {
        pids().filter_map(|pid| Some((pid, read(pid)?))).collect()
    }

    /// The pids listed in `/proc` now.
    pub(super) fn pids() -> impl Iterator<Item = u32> {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
    }

    /// One process's `stat`; None when it has vanished since it was listed.
    pub(super) fn read(pid: u32) -> Option<ProcInfo> {
        let mut buf = [0u8; 1024];
        with_small_file(&mut buf, &format!("/proc/{pid}/stat"), parse_stat)?
    }

    /// Reads a small `/proc` file into `buf` (one `read`: the kernel generates such a file whole) and hands
    /// `f` its text. `read_to_string` would grow a String from nothing (procfs reports size 0): several
    /// reallocations a file. A file that fills `buf` is read whole the usual way. None when it
    /// cannot be read (the process is gone). The sampler reads two of these per module process per tick.
    pub(super) fn with_small_file<R>(buf: &mut [u8], path: &str, f: impl FnOnce(&str) -> R) -> Option<R> {
        use std::io::Read;
        let mut file = std::fs::File::open(path).ok()?;
        let n = file.read(buf).ok()?;
        if n < buf.len() {
            return Some(f(std::str::from_utf8(&buf[..n]).ok()?));
        }
        let mut text = String::from_utf8(buf.to_vec()).ok()?;
        file.read_to_string(&mut text).ok()?;
        Some(f(&text))
    }

    /// Parses `/proc/PID/stat`. The command name is in parentheses and may itself contain spaces and
    /// parentheses, so fields are counted from the last `)`.
    pub(super) fn parse_stat(stat: &str) -> Option<ProcInfo> {
        let after = &stat[stat.rfind(')')? + 1..];
        // The first field after the name is field 3 (state) of proc(5); field N is the (N - 3)th after it.
        let mut fields = after.split_ascii_whitespace();
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        let pgrp = fields.next()?.parse().ok()?;
        // Fields 14 and 15: utime and stime, in clock ticks.
        let utime: u64 = fields.nth(8)?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        // Field 20: number of threads.
        let threads: u32 = fields.nth(4)?.parse().ok()?;
        // Field 24, rss in pages: the same counter as the second column of /proc/PID/statm.
        let rss_pages: u64 = fields.nth(3)?.parse().ok()?;
        Some(ProcInfo {
            ppid,
            pgrp,
            live: !matches!(state, 'Z' | 'X' | 'x'),
            rss_bytes: rss_pages * page_size(),
            cpu_ms: (utime + stime) * 1000 / clock_ticks(),
            threads,
        })
    }

    /// The direct children of `pid` (from each thread's `children` file: a child belongs to the thread that
    /// forked it). Empty when the process is gone or the kernel lacks `CONFIG_PROC_CHILDREN` — then new
    /// descendants wait for the next full read.
    pub(super) fn children(pid: u32, threads: u32) -> Vec<u32> {
        let parse = |text: &str| -> Vec<u32> { text.split_ascii_whitespace().filter_map(|s| s.parse().ok()).collect() };
        if threads <= 1 {
            let mut buf = [0u8; 512];
            return with_small_file(&mut buf, &format!("/proc/{pid}/task/{pid}/children"), parse).unwrap_or_default();
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|text| parse(&text))
            .collect()
    }

    fn clock_ticks() -> u64 {
        static TICKS: OnceLock<u64> = OnceLock::new();
        *TICKS.get_or_init(|| {
            // SAFETY: sysconf has no preconditions.
            let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
            if ticks > 0 { ticks as u64 } else { 100 }
        })
    }

    fn page_size() -> u64 {
        static PAGE: OnceLock<u64> = OnceLock::new();
        *PAGE.get_or_init(|| {
            // SAFETY: sysconf has no preconditions.
            let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            if size > 0 { size as u64 } else { 4096 }
        })
    }
}

/// Other Unixes (macOS): no `/proc`; use sysinfo for the process list, parents and RSS, and `getpgid`.
/// Compiled on Linux too (and tested against the `/proc` reader) so that it cannot rot unnoticed.
#[cfg_attr(target_os = "linux", allow(dead_code))]
mod portable {
    use std::collections::HashMap;

    use sysinfo::{ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System};

    use super::ProcInfo;

    pub(super) fn proc_table() -> HashMap<u32, ProcInfo> {
        let mut table = HashMap::new();
        let Ok(mut sys) = System::new() else { return table };
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        for (pid, process) in sys.processes() {
            let pid = pid.as_u32();
            let Ok(raw) = libc::pid_t::try_from(pid) else { continue };
            // SAFETY: plain syscall.
            let pgrp = unsafe { libc::getpgid(raw) };
            if pgrp < 0 {
                continue; // gone, or not ours to look at
            }
            table.insert(
                pid,
                ProcInfo {
                    ppid: process.parent().map(|p| p.as_u32()).unwrap_or(0),
                    pgrp: pgrp as u32,
                    live: !matches!(process.status(), ProcessStatus::Zombie | ProcessStatus::Dead),
                    rss_bytes: process.memory(),
                    cpu_ms: process.accumulated_cpu_time(),
                    threads: process.tasks().map_or(1, |t| t.len() as u32),
                },
            );
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::default();
        let mut out = LogChunk::new(Arc::from("m"), 1, Stream::Stdout, 0);
        for chunk in chunks {
            s.feed(chunk, &mut out);
        }
        s.finish(&mut out);
        out.lines().map(|(l, t)| (l.to_vec(), t)).collect()
    }

    #[test]
    fn splits_lines_across_chunks_and_strips_cr() {
        let lines = split_all(&[b"ab", b"c\r\nde\n\nf", b"g"]);
        assert_eq!(
            lines,
            vec![(b"abc".to_vec(), false), (b"de".to_vec(), false), (b"".to_vec(), false), (b"fg".to_vec(), false)]
        );
        // A lone \r in the middle stays.
        assert_eq!(split_all(&[b"a\rb\n"]), vec![(b"a\rb".to_vec(), false)]);
        assert_eq!(split_all(&[b""]), vec![]);
    }

    #[test]
    fn limits_at_max_line_exactly() {
        let exact = vec![b'x'; MAX_LINE];
        // Exactly MAX_LINE, with CRLF: not truncated.
        let mut crlf = exact.clone();
        crlf.extend_from_slice(b"\r\n");
        assert_eq!(split_all(&[&crlf]), vec![(exact.clone(), false)]);
        // MAX_LINE + 1: truncated.
        let mut over = exact.clone();
        over.extend_from_slice(b"y\n");
        assert_eq!(split_all(&[&over]), vec![(exact.clone(), true)]);
        // Far over, in small chunks, then a normal line: the tail is dropped and the splitter recovers.
        let chunk = vec![b'z'; 1000];
        let mut chunks: Vec<&[u8]> = vec![&chunk; 300];
        chunks.push(b"end\nnext");
        let lines = split_all(&chunks);
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].0.len(), lines[0].1), (MAX_LINE, true));
        assert_eq!(lines[1], (b"next".to_vec(), false));
    }

    #[test]
    fn buffer_never_exceeds_cap() {
        let mut s = LineSplitter::default();
        let chunk = vec![b'q'; 10_000];
        let mut out = LogChunk::new(Arc::from("m"), 1, Stream::Stdout, 0);
        for _ in 0..100 {
            s.feed(&chunk, &mut out);
            assert!(out.is_empty());
            assert!(s.line.capacity() <= LineSplitter::CAP);
        }
    }

    #[test]
    fn shell_detection() {
        for direct in ["sleep 10", "node server.js --port=3000", "./bin/api  -v", "python3 -m http.server 8000"] {
            assert!(!needs_shell(direct), "{direct}");
        }
        for shell in [
            "echo a | cat",
            "a && b",
            "x; y",
            "cat < f",
            "echo $HOME",
            "echo `date`",
            "echo 'a b'",
            "ls *.rs",
            "cd ~",
            "FOO=1 node x.js",
            "ulimit -n",
            "cd sub",
            "exec foo",
            "a\nb",
            "echo hi # comment",
        ] {
            assert!(needs_shell(shell), "{shell}");
        }
    }

    #[test]
    fn plans() {
        let cwd = Path::new("/srv/app");
        let p = CommandPlan::parse("  ./bin/api  -v  x ", cwd).unwrap();
        assert_eq!(p.program, PathBuf::from("/srv/app/./bin/api"));
        assert_eq!(p.args, vec!["-v", "x"]);
        assert_eq!(p.shown, "./bin/api");
        assert!(!p.shell);
        let p = CommandPlan::parse("echo $X", cwd).unwrap();
        assert_eq!(
            (p.program.as_path(), p.args.as_slice(), p.shell),
            (Path::new("/bin/sh"), &["-c".to_string(), "echo $X".to_string()][..], true)
        );
        assert!(CommandPlan::parse(" \t ", cwd).is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn parses_stat_with_odd_command_names() {
        let stat =
            "1234 (we ird) (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0 100 1000 25 18446744073709551615";
        let info = linux::parse_stat(stat).unwrap();
        assert_eq!((info.ppid, info.pgrp, info.live, info.threads), (1, 1234, true, 3));
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        assert_eq!(info.cpu_ms, 12 * 1000 / ticks);
        assert_eq!(info.rss_bytes % 25, 0);
        assert!(info.rss_bytes >= 25 * 4096);
        let zombie = stat.replace(") S ", ") Z ");
        assert!(!linux::parse_stat(&zombie).unwrap().live);
        assert!(linux::parse_stat("garbage").is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn small_proc_files_read_whole_whatever_the_buffer() {
        let whole = std::fs::read_to_string("/proc/self/status").unwrap();
        for size in [16, 1 << 16] {
            let mut buf = vec![0u8; size];
            let got = linux::with_small_file(&mut buf, "/proc/self/status", |t| t.lines().next().map(str::to_string));
            assert_eq!(got.flatten().as_deref(), whole.lines().next(), "buffer of {size}");
        }
        let mut buf = [0u8; 64];
        assert_eq!(linux::with_small_file(&mut buf, "/proc/self/no-such-file", |t| t.len()), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn portable_reader_agrees_with_proc() {
        let me = std::process::id();
        let ours = linux::proc_table();
        let theirs = portable::proc_table();
        let (a, b) = (ours.get(&me).unwrap(), theirs.get(&me).unwrap());
        assert_eq!((a.ppid, a.pgrp, a.live), (b.ppid, b.pgrp, b.live));
        assert!(b.rss_bytes > 0);
    }

    #[test]
    fn refuses_dangerous_groups() {
        assert!(signal_group(0, 0).is_err());
        assert!(signal_group(1, 0).is_err());
        assert!(signal_group(u32::MAX, 0).is_err());
        // SAFETY: no preconditions.
        let own = unsafe { libc::getpgrp() } as u32;
        assert!(signal_group(own, 0).is_err());
    }
}
