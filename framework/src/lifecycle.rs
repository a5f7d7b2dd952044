//! The module lifecycle: one enum, one transition function.
//!
//! Installed → Resolved → Starting → Running(healthy/unhealthy) → Stopping → Stopped | Exited | Failed,
//! and Backoff between a failure and the next start. `transition` is the only place that decides whether a
//! move is legal; the engine's core calls it for every change and turns each accepted move into an [`Event`].

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

/// Identifies one process run of a module (unique within a daemon's lifetime).
pub type RunId = u64;

/// Health as last reported by the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The module has no probe: running means started.
    None,
    /// The last probe passed.
    Healthy,
    /// `retries` consecutive probes failed.
    Unhealthy,
}

/// A module's lifecycle state. Plain data: serializable, comparable, no handles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Known to the engine, dependencies not yet checked.
    Installed,
    /// Dependencies resolved; waiting to be started (or for its requirements to become ready).
    Resolved,
    /// Process spawned, waiting for readiness.
    Starting {
        /// Current run.
        run: RunId,
        /// Process (and process group) id.
        pid: u32,
    },
    /// Process up (and ready, when it has a probe).
    Running {
        /// Current run.
        run: RunId,
        /// Process (and process group) id.
        pid: u32,
        /// Probe verdict.
        health: Health,
    },
    /// Stop signal sent, waiting for the process group to exit.
    Stopping {
        /// Run being stopped.
        run: RunId,
        /// Process (and process group) id.
        pid: u32,
    },
    /// Stopped on request.
    Stopped,
    /// Exited on its own and will not be restarted (policy or success).
    Exited {
        /// Exit code, or None when killed by a signal.
        code: Option<i32>,
        /// Signal number when killed by one.
        signal: Option<i32>,
    },
    /// Gave up: restart loop, spawn error, failed readiness with policy never, …
    Failed {
        /// Why.
        reason: String,
    },
    /// Waiting before the next restart.
    Backoff {
        /// Milliseconds of delay chosen.
        delay_ms: u64,
        /// Restart attempt number (1-based) within the current window.
        attempt: u32,
    },
}

impl State {
    /// Short lowercase name (`running`, `backoff`, …) for tables and filters.
    pub fn name(&self) -> &'static str {
        match self {
            State::Installed => "installed",
            State::Resolved => "resolved",
            State::Starting { .. } => "starting",
            State::Running { .. } => "running",
            State::Stopping { .. } => "stopping",
            State::Stopped => "stopped",
            State::Exited { .. } => "exited",
            State::Failed { .. } => "failed",
            State::Backoff { .. } => "backoff",
        }
    }

    /// The live run, if a process exists.
    pub fn run(&self) -> Option<(RunId, u32)> {
        match *self {
            State::Starting { run, pid } | State::Running { run, pid, .. } | State::Stopping { run, pid } => {
                Some((run, pid))
            }
            _ => None,
        }
    }

    /// True when dependents may start: running and healthy (or running without a probe).
    pub fn is_ready(&self) -> bool {
        matches!(self, State::Running { health: Health::Healthy | Health::None, .. })
    }
}

/// A rejected move: the engine's core has a bug if it ever asks for one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal lifecycle transition {from} → {to}")]
pub struct IllegalTransition {
    /// State name before.
    pub from: &'static str,
    /// Requested state name.
    pub to: &'static str,
}

/// The one transition function: checks that `from → to` is a legal move.
pub fn transition(from: &State, to: State) -> Result<State, IllegalTransition> {
    use State::*;
    let ok = match (from, &to) {
        (Installed, Resolved) => true,
        // Any idle state may be (re)started.
        (Resolved | Stopped | Exited { .. } | Failed { .. } | Backoff { .. }, Starting { .. }) => true,
        // Waiting states may be reset or given up.
        (Backoff { .. }, Resolved | Stopped | Failed { .. }) => true,
        (Exited { .. } | Failed { .. } | Stopped, Resolved) => true,
        // A restart: the old run is gone, the module waits to start again.
        (Stopping { .. }, Resolved) => true,
        (Resolved, Stopped | Failed { .. }) => true,
        (Starting { run: a, .. }, Running { run: b, .. }) => a == b,
        (Running { run: a, .. }, Running { run: b, .. }) => a == b,
        (Starting { run: a, .. } | Running { run: a, .. }, Stopping { run: b, .. }) => a == b,
        // A live process can end in any terminal or waiting state.
        (
            Starting { .. } | Running { .. } | Stopping { .. },
            Stopped | Exited { .. } | Failed { .. } | Backoff { .. },
        ) => true,
        _ => false,
    };
    if ok { Ok(to) } else { Err(IllegalTransition { from: from.name(), to: to.name() }) }
}

/// Why a transition happened, in words for people, and as data for machines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// Module name.
    pub module: String,
    /// State before.
    pub from: State,
    /// State after.
    pub to: State,
    /// Human-readable reason ("exited with status 1", "health check passed", …).
    pub reason: String,
}

/// An event on the bus: a transition or an engine-level notice, stamped with wall-clock time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Project (stack file path) the event belongs to.
    pub project: String,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The kinds of engine events.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A module changed state.
    Transition(Transition),
    /// A process run began (for the store's `runs` table).
    RunStarted {
        /// Module name.
        module: String,
        /// Run id.
        run: RunId,
        /// Process id.
        pid: u32,
    },
    /// A process run ended.
    RunEnded {
        /// Module name.
        module: String,
        /// Run id.
        run: RunId,
        /// Exit code, None when signalled.
        code: Option<i32>,
        /// Signal, when killed by one.
        signal: Option<i32>,
        /// Why it ended, as the engine understands it.
        reason: String,
    },
    /// The stack's configuration changed (reload or profile switch).
    ConfigApplied {
        /// Active profile.
        profile: Option<String>,
        /// Modules started, stopped and restarted by the change.
        summary: String,
    },
    /// A configuration change was rejected; the last good configuration stays.
    ConfigRejected {
        /// All errors, formatted.
        errors: Vec<String>,
    },
}

/// One line of a module's output, as captured (before masking and storage).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// Module name.
    pub module: String,
    /// Run id.
    pub run: RunId,
    /// Which pipe.
    pub stream: Stream,
    /// Raw bytes of the line without the newline, possibly truncated (see `truncated`).
    #[serde(with = "lossy_bytes")]
    pub bytes: Vec<u8>,
    /// True when the line was longer than the capture limit and was cut.
    pub truncated: bool,
}

/// The lines of a module's output that one read of its pipe completed: the unit that flows from the capture
/// to the store and to printers. One allocation and one channel message per read instead of per line is what
/// lets a flooding module be ingested at pipe speed.
///
/// The lines are kept back to back, each followed by `\n`; a line never contains `\n` itself (it is what
/// separates lines), and the capture has already removed a `\r` before the newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Module name.
    pub module: Arc<str>,
    /// Run id.
    pub run: RunId,
    /// Which pipe.
    pub stream: Stream,
    /// When the bytes were read (ms since the Unix epoch): the capture time of every line in the chunk.
    pub at_ms: u64,
    data: Vec<u8>,
    /// Indices of the lines the capture cut at its length limit, ascending (almost always empty).
    truncated: Vec<u32>,
    lines: u32,
}

impl LogChunk {
    /// An empty chunk.
    pub fn new(module: Arc<str>, run: RunId, stream: Stream, at_ms: u64) -> LogChunk {
        LogChunk { module, run, stream, at_ms, data: Vec::new(), truncated: Vec::new(), lines: 0 }
    }

    /// A chunk of one line.
    pub fn from_line(line: &LogLine, at_ms: u64) -> LogChunk {
        let mut c = LogChunk::new(Arc::from(line.module.as_str()), line.run, line.stream, at_ms);
        c.push(&line.bytes, line.truncated);
        c
    }

    /// Appends a line (its bytes without the newline). A `\n` inside `line` would split it in two, so the
    /// capture never passes one.
    pub fn push(&mut self, line: &[u8], truncated: bool) {
        if self.data.capacity() == 0 {
            self.data.reserve(line.len() + 1);
        }
        for part in line.split(|&b| b == b'\n') {
            if truncated {
                self.truncated.push(self.lines);
            }
            self.data.extend_from_slice(part);
            self.data.push(b'\n');
            self.lines += 1;
        }
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines as usize
    }

    /// True when the chunk holds no line.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The lines back to back, each followed by `\n`.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Indices of the lines the capture cut, ascending.
    pub fn truncated(&self) -> &[u32] {
        &self.truncated
    }

    /// Each line's bytes and whether the capture cut it.
    pub fn lines(&self) -> impl Iterator<Item = (&[u8], bool)> + '_ {
        let mut cut = self.truncated.iter().copied().peekable();
        self.data.strip_suffix(b"\n").unwrap_or(&self.data).split(|&b| b == b'\n').take(self.len()).enumerate().map(
            move |(i, line)| {
                let t = cut.peek() == Some(&(i as u32));
                if t {
                    cut.next();
                }
                (line, t)
            },
        )
    }

    /// The lines as separate [`LogLine`]s (for printers and tests; the store takes chunks whole).
    pub fn to_lines(&self) -> Vec<LogLine> {
        self.lines()
            .map(|(bytes, truncated)| LogLine {
                module: self.module.to_string(),
                run: self.run,
                stream: self.stream,
                bytes: bytes.to_vec(),
                truncated,
            })
            .collect()
    }
}

/// Output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

mod lossy_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(b))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_lines_empty_lines_and_cut_flags() {
        let mut c = LogChunk::new(Arc::from("m"), 3, Stream::Stderr, 7);
        assert!(c.is_empty() && c.lines().next().is_none());
        c.push(b"one", false);
        c.push(b"", false);
        c.push(b"cut", true);
        c.push(b"a\nb", false); // a newline inside splits
        let lines: Vec<(&[u8], bool)> = c.lines().collect();
        assert_eq!(
            lines,
            vec![(&b"one"[..], false), (&b""[..], false), (&b"cut"[..], true), (&b"a"[..], false), (&b"b"[..], false)]
        );
        assert_eq!((c.len(), c.data(), c.truncated()), (5, &b"one\n\ncut\na\nb\n"[..], &[2u32][..]));
        let ll = c.to_lines();
        assert_eq!((ll[2].module.as_str(), ll[2].run, ll[2].stream, ll[2].truncated), ("m", 3, Stream::Stderr, true));
        let one = LogChunk::from_line(&ll[0], 9);
        assert_eq!((one.len(), one.at_ms, one.data()), (1, 9, &b"one\n"[..]));
    }

    #[test]
    fn legal_and_illegal_moves() {
        let starting = State::Starting { run: 1, pid: 10 };
        assert!(transition(&State::Resolved, starting.clone()).is_ok());
        assert!(transition(&starting, State::Running { run: 1, pid: 10, health: Health::Healthy }).is_ok());
        // A stale run can never take over the current one.
        assert!(transition(&starting, State::Running { run: 2, pid: 11, health: Health::None }).is_err());
        // No second process while one is live.
        assert!(transition(&starting, State::Starting { run: 2, pid: 11 }).is_err());
        assert!(transition(&State::Stopped, State::Running { run: 1, pid: 1, health: Health::None }).is_err());
        assert_eq!(
            transition(&State::Installed, State::Stopped).unwrap_err().to_string(),
            "illegal lifecycle transition installed → stopped"
        );
    }

    #[test]
    fn readiness() {
        assert!(State::Running { run: 1, pid: 1, health: Health::None }.is_ready());
        assert!(!State::Running { run: 1, pid: 1, health: Health::Unhealthy }.is_ready());
        assert!(!State::Starting { run: 1, pid: 1 }.is_ready());
    }
}
