//! The one `Daemon` harness: the real `steward daemon` on a private `STEWARD_HOME`, every process of the test
//! carrying a per-test `STEWARD_TEST_MARK`, so dropping the harness kills the daemon and everything it started.
//! Protocol clients stay in the test files (not every file compiles `src/client.rs`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use steward_protocol::paths;

use super::{processes_with_env, steward_bin, wait_until};

static MARKS: AtomicU32 = AtomicU32::new(0);

/// A fresh `STEWARD_TEST_MARK=…` (`KEY=value`), unique within this test binary's run.
pub fn new_mark() -> String {
    format!("STEWARD_TEST_MARK={}-{}", std::process::id(), MARKS.fetch_add(1, Ordering::Relaxed))
}

/// How a [`Daemon`] is started: `Daemon::builder().env(k, v).home_in(dir).start()`.
pub struct DaemonBuilder {
    env: Vec<(String, String)>,
    dir: Option<tempfile::TempDir>,
    home: Option<PathBuf>,
    debug_log: bool,
}

impl DaemonBuilder {
    /// An environment variable for the daemon (and every `command()`).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn envs<V: AsRef<str>>(mut self, vars: &[(&str, V)]) -> Self {
        for (k, v) in vars {
            self.env.push((k.to_string(), v.as_ref().to_string()));
        }
        self
    }

    /// The demo stack's three ports, each on a free loopback port.
    pub fn demo_ports(self) -> Self {
        let (db, queue, api) = (super::free_port(), super::free_port(), super::free_port());
        self.env("DEMO_DB_PORT", db.to_string())
            .env("DEMO_QUEUE_PORT", queue.to_string())
            .env("DEMO_API_PORT", api.to_string())
    }

    /// The test's directory (default: a fresh one); the home is `DIR/home` unless [`Self::home`] says otherwise.
    pub fn home_in(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = Some(dir);
        self
    }

    /// `STEWARD_HOME` somewhere else than `DIR/home`.
    pub fn home(mut self, home: PathBuf) -> Self {
        self.home = Some(home);
        self
    }

    /// Whether `STEWARD_LOG=debug` is set (the default).
    pub fn debug_log(mut self, on: bool) -> Self {
        self.debug_log = on;
        self
    }

    /// Starts the daemon and waits until its socket answers.
    pub fn start(self) -> Daemon {
        let dir = self.dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
        let home = self.home.unwrap_or_else(|| dir.path().join("home"));
        let mut env = self.env;
        if self.debug_log {
            env.insert(0, ("STEWARD_LOG".into(), "debug".into()));
        }
        let mut d = Daemon { child: None, home, dir, mark: new_mark(), env };
        d.spawn();
        d
    }
}

/// A daemon under test. Dropping it kills it and every process carrying its mark.
pub struct Daemon {
    child: Option<Child>,
    pub home: PathBuf,
    /// The test's directory (holds the home by default; project directories go here).
    pub dir: tempfile::TempDir,
    /// `STEWARD_TEST_MARK=…`, inherited by every module: how leftovers are found.
    pub mark: String,
    env: Vec<(String, String)>,
}

impl Daemon {
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder { env: Vec::new(), dir: None, home: None, debug_log: true }
    }

    /// A daemon with the defaults: fresh directory, `STEWARD_LOG=debug`, no extra environment.
    pub fn start() -> Daemon {
        Daemon::builder().start()
    }

    /// `steward` with this home, the mark and the builder's environment.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(steward_bin());
        cmd.env("STEWARD_HOME", &self.home);
        let (k, v) = self.mark.split_once('=').unwrap();
        cmd.env(k, v);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// (Re)starts `steward daemon` for this home and waits until the socket answers.
    pub fn spawn(&mut self) {
        let child =
            self.command().arg("daemon").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        self.child = Some(child.unwrap());
        let socket = paths::socket_path(&self.home);
        wait_until(Duration::from_secs(20), "the daemon's socket", || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the daemon exited with {status}:\n{}", self.log());
            }
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Started and not exited.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(paths::log_dir(&self.home).join("daemon.log")).unwrap_or_default()
    }

    /// Module processes (everything with the mark but the daemon), with their command lines.
    pub fn modules_alive(&self) -> Vec<(u32, String)> {
        let me = self.child.as_ref().map(Child::id);
        processes_with_env(&self.mark).into_iter().filter(|(pid, _)| Some(*pid) != me).collect()
    }

    /// SIGKILLs the daemon (not its modules) and reaps it.
    pub fn crash(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits for the daemon to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut().unwrap();
        let mut code = None;
        wait_until(timeout, "the daemon to exit", || match child.try_wait().unwrap() {
            Some(s) => {
                code = Some(s.code());
                true
            }
            None => false,
        });
        self.child = None;
        code.flatten()
    }

    /// A (created) directory `NAME` in the test's directory.
    pub fn project_dir(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// `steward daemon stop` through the CLI; waits for the exit; nothing of ours may be left.
    pub fn stop_clean(&mut self) {
        let (k, v) = self.mark.split_once('=').unwrap();
        let out = Command::new(steward_bin())
            .args(["daemon", "stop"])
            .env("STEWARD_HOME", &self.home)
            .env(k, v)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let mut child = self.child.take().unwrap();
        wait_until(Duration::from_secs(20), "the daemon to exit", || child.try_wait().unwrap().is_some());
        wait_until(Duration::from_secs(10), "no module process left after `daemon stop`", || {
            self.modules_alive().is_empty()
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for (pid, _) in processes_with_env(&self.mark) {
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}
