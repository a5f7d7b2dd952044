//! The supervisor's brain, without I/O.
//!
//! [`Core`] holds every module's lifecycle [`State`] and what the user wants, takes [`Input`]s (commands and
//! facts reported by the edge: "spawned", "exited", "probe failed", "timer fired") together with the current
//! time, and answers with [`Action`]s for the edge to carry out (spawn, stop, start a probe, set a timer,
//! emit an event). Every decision — dependency ordering, health gating, restart and backoff, coalescing of
//! concurrent commands, profile/reload diffs — lives here and is tested without processes.
//!
//! Invariant: a module has at most one process. A new run is only ever spawned from an idle state, and
//! inputs that name an old run are ignored.

pub mod restart;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::config::{ModuleSpec, RestartPolicy, Stack};
use crate::graph;
use crate::lifecycle::{EventKind, Health, RunId, State, Transition, transition};
use restart::{Decision, ExitCause, RestartHistory, record_restart, should_restart};

/// Something that happened: a command from a user, or a fact observed by the edge.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Start every module of the stack (in dependency order).
    Up,
    /// Stop every module (dependents first).
    Down,
    /// Start one module (and whatever it requires).
    Start(String),
    /// Stop one module (its dependents keep running).
    Stop(String),
    /// Restart one module; concurrent restarts coalesce into one.
    Restart(String),
    /// A new effective stack (reload or profile switch): restart only what changed.
    Apply(Box<Stack>),
    /// The edge spawned the run the core asked for.
    Spawned {
        /// Module.
        module: String,
        /// Run.
        run: RunId,
        /// Process (group) id.
        pid: u32,
    },
    /// The edge could not spawn it.
    SpawnFailed {
        /// Module.
        module: String,
        /// Run.
        run: RunId,
        /// Error message.
        error: String,
    },
    /// The run is over: the leader exited and its group is empty.
    Exited {
        /// Module.
        module: String,
        /// Run.
        run: RunId,
        /// Exit code.
        code: Option<i32>,
        /// Signal.
        signal: Option<i32>,
    },
    /// One health check result.
    Probe {
        /// Module.
        module: String,
        /// Run.
        run: RunId,
        /// Passed?
        ok: bool,
        /// Failure detail.
        detail: String,
    },
    /// The process tree's memory, sampled.
    Memory {
        /// Module.
        module: String,
        /// Run.
        run: RunId,
        /// RSS in bytes.
        rss: u64,
    },
    /// Files matching the module's `watch` globs changed.
    FilesChanged(String),
    /// A timer set by [`Action::SetTimer`] fired.
    Timer {
        /// Module.
        module: String,
        /// Token given when the timer was set.
        token: u64,
    },
}

/// Something the edge must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Spawn a run of this spec; answer with [`Input::Spawned`] or [`Input::SpawnFailed`].
    Spawn {
        /// New run id.
        run: RunId,
        /// Definition to run.
        spec: Box<ModuleSpec>,
    },
    /// Start probing this run (until it ends); answer with [`Input::Probe`] per check.
    StartProbe {
        /// Module.
        module: String,
        /// Run.
        run: RunId,
    },
    /// Send the stop signal to the run's process group, SIGKILL after the timeout.
    Stop {
        /// Module.
        module: String,
        /// Run.
        run: RunId,
        /// Signal to send first.
        signal: i32,
        /// Grace period before SIGKILL.
        timeout: Duration,
    },
    /// Answer with [`Input::Timer`] after `after`.
    SetTimer {
        /// Module.
        module: String,
        /// Token to echo back.
        token: u64,
        /// Delay.
        after: Duration,
    },
    /// Publish an event.
    Emit(EventKind),
}

/// Why the engine is stopping a run.
#[derive(Debug, Clone, PartialEq)]
enum StopCause {
    /// The user (or Down, or a profile without it) asked.
    Requested,
    /// Restart: start again right after.
    Restart(String),
    /// Removed from the stack.
    Removed,
    /// The engine decided the run failed (health, memory): apply the restart policy.
    Failure(ExitCause),
}

/// A module as the core tracks it.
#[derive(Debug, Clone)]
struct Module {
    spec: ModuleSpec,
    state: State,
    /// Should it be running?
    wanted: bool,
    /// A restart was asked while it was live: stop, then start.
    restart_pending: Option<String>,
    /// Definition to switch to at the next start (reload of a live module).
    next_spec: Option<ModuleSpec>,
    /// Run being spawned (between Action::Spawn and Input::Spawned).
    spawning: Option<RunId>,
    stop_cause: Option<StopCause>,
    history: RestartHistory,
    run_started: Option<Instant>,
    probe_failures: u32,
    timer_token: u64,
    restarts_total: u32,
    removed: bool,
    since: Instant,
    last_exit: Option<String>,
}

/// A module's status for front ends.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModuleStatus {
    /// Module name.
    pub name: String,
    /// Lifecycle state.
    #[serde(flatten)]
    pub state: State,
    /// Should it be running?
    pub wanted: bool,
    /// Automatic restarts since the engine started.
    pub restarts: u32,
    /// Milliseconds spent in the current state.
    pub state_for_ms: u64,
    /// Last end of a run, in words.
    pub last_exit: Option<String>,
    /// Requirements not yet ready (why it is waiting).
    pub waiting_for: Vec<String>,
    /// `limits.memory`, bytes (the metrics' memory alerts are against it).
    pub memory_limit: Option<u64>,
}

/// The pure supervisor.
#[derive(Debug)]
pub struct Core {
    project: String,
    stack: Stack,
    modules: BTreeMap<String, Module>,
    /// Topological order of current modules (flattened levels).
    order: Vec<String>,
    up: bool,
    next_run: RunId,
    rng: fastrand::Rng,
}

impl Core {
    /// A core for `stack`; every module starts Installed → Resolved, nothing runs until [`Input::Up`].
    /// `first_run` lets a daemon keep run ids unique across projects; `seed` makes jitter reproducible.
    pub fn new(stack: Stack, first_run: RunId, seed: u64, now: Instant) -> (Core, Vec<Action>) {
        let mut core = Core {
            project: stack.file.display().to_string(),
            stack: stack.clone(),
            modules: BTreeMap::new(),
            order: Vec::new(),
            up: false,
            next_run: first_run,
            rng: fastrand::Rng::with_seed(seed),
        };
        let mut out = Vec::new();
        for (name, spec) in &stack.modules {
            core.insert(name, spec.clone(), now, &mut out);
        }
        core.reorder();
        (core, out)
    }

    /// The project id (the stack file's path).
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The stack currently applied.
    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    /// The spec a run is using (for probes and the edge).
    pub fn spec(&self, module: &str) -> Option<&ModuleSpec> {
        self.modules.get(module).map(|m| &m.spec)
    }

    /// Current state of a module.
    pub fn state(&self, module: &str) -> Option<&State> {
        self.modules.get(module).map(|m| &m.state)
    }

    /// Whether `Up` is in force.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// True when nothing is running or being started or stopped.
    pub fn is_quiet(&self) -> bool {
        self.modules.values().all(|m| m.state.run().is_none() && m.spawning.is_none())
    }

    /// Live runs: (module, run, pid).
    pub fn live_runs(&self) -> Vec<(String, RunId, u32)> {
        self.modules.iter().filter_map(|(n, m)| m.state.run().map(|(r, p)| (n.clone(), r, p))).collect()
    }

    /// Status of every module, in start order.
    pub fn status(&self, now: Instant) -> Vec<ModuleStatus> {
        self.order
            .iter()
            .filter_map(|n| self.modules.get(n).map(|m| (n, m)))
            .map(|(n, m)| ModuleStatus {
                name: n.clone(),
                state: m.state.clone(),
                wanted: m.wanted,
                restarts: m.restarts_total,
                state_for_ms: now.saturating_duration_since(m.since).as_millis() as u64,
                last_exit: m.last_exit.clone(),
                waiting_for: if m.wanted && matches!(m.state, State::Resolved) { self.unready_deps(n) } else { vec![] },
                memory_limit: self.spec(n).and_then(|s| s.limits.memory),
            })
            .collect()
    }

    /// Feed one input; returns what the edge must do, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Up => {
                self.up = true;
                let names: Vec<String> = self.modules.keys().cloned().collect();
                for n in names {
                    self.want(&n, "up", now, &mut out);
                }
            }
            Input::Down => {
                self.up = false;
                let names: Vec<String> = self.modules.keys().cloned().collect();
                for n in names {
                    self.unwant(&n, now, &mut out);
                }
            }
            Input::Start(name) => {
                for n in self.with_requirements(&name) {
                    self.want(&n, "start requested", now, &mut out);
                }
            }
            Input::Stop(name) => self.unwant(&name, now, &mut out),
            Input::Restart(name) => self.restart(&name, "restart requested", now, &mut out),
            Input::Apply(stack) => self.apply(*stack, now, &mut out),
            Input::Spawned { module, run, pid } => self.spawned(&module, run, pid, now, &mut out),
            Input::SpawnFailed { module, run, error } => {
                if let Some(m) = self.modules.get_mut(&module).filter(|m| m.spawning == Some(run)) {
                    m.spawning = None;
                    m.last_exit = Some(format!("could not start: {error}"));
                    let reason = format!("could not start: {error}");
                    self.set_state(&module, State::Failed { reason: reason.clone() }, &reason, now, &mut out);
                }
            }
            Input::Exited { module, run, code, signal } => self.exited(&module, run, code, signal, now, &mut out),
            Input::Probe { module, run, ok, detail } => self.probe(&module, run, ok, detail, now, &mut out),
            Input::Memory { module, run, rss } => {
                let Some(m) = self.modules.get(&module) else { return out };
                if let (Some(limit), Some((r, _))) = (m.spec.limits.memory, m.state.run()) {
                    if r == run && rss > limit && !matches!(m.state, State::Stopping { .. }) {
                        let cause = ExitCause::MemoryLimit { rss, limit };
                        self.begin_stop(&module, StopCause::Failure(cause.clone()), &cause.describe(), now, &mut out);
                    }
                }
            }
            Input::FilesChanged(name) => {
                if self.modules.get(&name).is_some_and(|m| m.wanted) {
                    self.restart(&name, "watched files changed", now, &mut out);
                }
            }
            Input::Timer { module, token } => {
                let due = self
                    .modules
                    .get(&module)
                    .is_some_and(|m| m.timer_token == token && matches!(m.state, State::Backoff { .. }));
                if due {
                    self.set_state(&module, State::Resolved, "backoff elapsed", now, &mut out);
                }
            }
        }
        self.reconcile(now, &mut out);
        out
    }

    // ----- commands -----

    fn want(&mut self, name: &str, why: &str, now: Instant, out: &mut Vec<Action>) {
        let Some(m) = self.modules.get_mut(name) else { return };
        m.wanted = true;
        m.history = RestartHistory::default();
        if matches!(m.state, State::Stopped | State::Exited { .. } | State::Failed { .. } | State::Backoff { .. }) {
            m.timer_token += 1;
            self.set_state(name, State::Resolved, why, now, out);
        }
    }

    fn unwant(&mut self, name: &str, now: Instant, out: &mut Vec<Action>) {
        let Some(m) = self.modules.get_mut(name) else { return };
        m.wanted = false;
        m.restart_pending = None;
        if matches!(m.state, State::Backoff { .. } | State::Resolved) {
            m.timer_token += 1;
            self.set_state(name, State::Stopped, "stop requested", now, out);
        }
        // Live ones are stopped by reconcile, dependents first.
    }

    fn restart(&mut self, name: &str, why: &str, now: Instant, out: &mut Vec<Action>) {
        let Some(m) = self.modules.get_mut(name) else { return };
        m.wanted = true;
        if m.state.run().is_some() || m.spawning.is_some() {
            // Coalesce: a second restart while one is pending changes nothing.
            if m.restart_pending.is_none() && !matches!(m.stop_cause, Some(StopCause::Restart(_))) {
                m.restart_pending = Some(why.to_string());
            }
        } else {
            self.want(name, why, now, out);
        }
    }

    fn apply(&mut self, stack: Stack, now: Instant, out: &mut Vec<Action>) {
        let old: BTreeSet<String> = self.modules.keys().cloned().collect();
        let new: BTreeSet<String> = stack.modules.keys().cloned().collect();
        let (mut started, mut stopped, mut restarted) = (vec![], vec![], vec![]);
        let mut retry = vec![];
        for gone in old.difference(&new) {
            if let Some(m) = self.modules.get_mut(gone) {
                m.removed = true;
                m.wanted = false;
                m.restart_pending = None;
                stopped.push(gone.clone());
            }
            if self.modules.get(gone).is_some_and(|m| m.state.run().is_none() && m.spawning.is_none()) {
                self.modules.remove(gone);
            }
        }
        for (name, spec) in &stack.modules {
            match self.modules.get_mut(name) {
                None => {
                    self.insert(name, spec.clone(), now, out);
                    if self.up {
                        self.modules.get_mut(name).expect("just inserted").wanted = true;
                        started.push(name.clone());
                    }
                }
                Some(m) => {
                    // Removed by an earlier change but not yet stopped: it is back, wanted as a new module.
                    let revived = std::mem::take(&mut m.removed);
                    if revived {
                        m.wanted = self.up;
                        if self.up {
                            started.push(name.clone());
                        }
                    }
                    // Compare with what the next run would use: an edit that is undone before the restart it
                    // caused has happened must not leave the intermediate definition behind.
                    if !same_definition(m.next_spec.as_ref().unwrap_or(&m.spec), spec) {
                        if m.state.run().is_some() || m.spawning.is_some() {
                            m.next_spec = Some(spec.clone());
                            if m.restart_pending.is_none() {
                                m.restart_pending = Some("definition changed".into());
                            }
                            if !revived {
                                restarted.push(name.clone());
                            }
                        } else {
                            m.spec = spec.clone();
                            // A fixed definition deserves another try: a module that gave up (or exited)
                            // while wanted starts again with it.
                            if m.wanted && matches!(m.state, State::Failed { .. } | State::Exited { .. }) {
                                retry.push(name.clone());
                            }
                        }
                    }
                }
            }
        }
        for name in retry {
            self.want(&name, "definition changed", now, out);
            restarted.push(name);
        }
        self.stack = stack;
        self.reorder();
        let summary = format!(
            "started: [{}], stopped: [{}], restarted: [{}]",
            started.join(", "),
            stopped.join(", "),
            restarted.join(", ")
        );
        out.push(Action::Emit(EventKind::ConfigApplied { profile: self.stack.active_profile.clone(), summary }));
    }

    // ----- facts -----

    fn spawned(&mut self, name: &str, run: RunId, pid: u32, now: Instant, out: &mut Vec<Action>) {
        let Some(m) = self.modules.get_mut(name) else { return };
        if m.spawning != Some(run) {
            return;
        }
        m.spawning = None;
        m.run_started = Some(now);
        m.probe_failures = 0;
        let has_probe = m.spec.health.is_some();
        out.push(Action::Emit(EventKind::RunStarted { module: name.to_string(), run, pid }));
        self.set_state(name, State::Starting { run, pid }, &format!("spawned pid {pid}"), now, out);
        if has_probe {
            out.push(Action::StartProbe { module: name.to_string(), run });
        } else {
            self.set_state(
                name,
                State::Running { run, pid, health: Health::None },
                "started (no health check)",
                now,
                out,
            );
        }
    }

    fn exited(
        &mut self,
        name: &str,
        run: RunId,
        code: Option<i32>,
        signal: Option<i32>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(m) = self.modules.get_mut(name) else { return };
        if m.state.run().map(|(r, _)| r) != Some(run) {
            return;
        }
        let lasted = m.run_started.map(|t| now.saturating_duration_since(t)).unwrap_or_default();
        let natural = ExitCause::Exited { code, signal };
        let cause = m.stop_cause.take();
        let reason = match &cause {
            Some(StopCause::Failure(c)) => c.describe(),
            Some(StopCause::Requested) => "stopped".to_string(),
            Some(StopCause::Restart(why)) => format!("stopped to restart ({why})"),
            Some(StopCause::Removed) => "removed from the stack".to_string(),
            None => natural.describe(),
        };
        m.last_exit = Some(reason.clone());
        out.push(Action::Emit(EventKind::RunEnded {
            module: name.to_string(),
            run,
            code,
            signal,
            reason: reason.clone(),
        }));
        if let Some(next) = m.next_spec.take() {
            m.spec = next;
        }
        match cause {
            // What counts is what is wanted *now*: a Start or Restart that arrived while a requested stop was
            // in progress starts it again, and a Stop (or removal) during a restart's stop keeps it stopped.
            Some(StopCause::Requested | StopCause::Removed | StopCause::Restart(_)) => {
                if m.wanted && !m.removed {
                    m.history = RestartHistory::default();
                    self.set_state(name, State::Resolved, &reason, now, out);
                } else {
                    self.set_state(name, State::Stopped, &reason, now, out);
                }
            }
            Some(StopCause::Failure(c)) => self.after_failure(name, c, lasted, now, out),
            None => self.after_failure(name, natural, lasted, now, out),
        }
        // A module removed from the stack is forgotten once its last run is over, however that run ended.
        if self.modules.get(name).is_some_and(|m| m.removed && m.state.run().is_none()) {
            self.modules.remove(name);
            self.reorder();
        }
    }

    /// Apply the restart policy to a run that ended by itself or was failed by the engine.
    fn after_failure(&mut self, name: &str, cause: ExitCause, lasted: Duration, now: Instant, out: &mut Vec<Action>) {
        let jitter = self.rng.f64();
        let Some(m) = self.modules.get_mut(name) else { return };
        if !m.wanted {
            self.set_state(name, State::Stopped, &cause.describe(), now, out);
            return;
        }
        match should_restart(&m.spec.restart, &cause, &m.history, lasted, now, jitter) {
            Decision::Restart { delay, attempt } => {
                record_restart(&mut m.history, &m.spec.restart, attempt, now);
                m.restarts_total += 1;
                m.timer_token += 1;
                let token = m.timer_token;
                let delay_ms = delay.as_millis() as u64;
                let why = format!("{}; restarting in {}", cause.describe(), restart::human_duration(delay));
                self.set_state(name, State::Backoff { delay_ms, attempt }, &why, now, out);
                if delay.is_zero() {
                    self.set_state(name, State::Resolved, "restarting now", now, out);
                } else {
                    out.push(Action::SetTimer { module: name.to_string(), token, after: delay });
                }
            }
            Decision::GiveUp(reason) => {
                self.set_state(name, State::Failed { reason: reason.clone() }, &reason, now, out)
            }
            Decision::Stay => {
                let (code, signal) = match cause {
                    ExitCause::Exited { code, signal } => (code, signal),
                    _ => (None, None),
                };
                self.set_state(name, State::Exited { code, signal }, &cause.describe(), now, out);
            }
        }
    }

    fn probe(&mut self, name: &str, run: RunId, ok: bool, detail: String, now: Instant, out: &mut Vec<Action>) {
        let Some(m) = self.modules.get_mut(name) else { return };
        let Some(health) = m.spec.health.clone() else { return };
        let (pid, starting, current) = match m.state {
            State::Starting { run: r, pid } if r == run => (pid, true, Health::None),
            State::Running { run: r, pid, health } if r == run => (pid, false, health),
            _ => return,
        };
        if ok {
            m.probe_failures = 0;
            if starting {
                self.set_state(
                    name,
                    State::Running { run, pid, health: Health::Healthy },
                    "health check passed",
                    now,
                    out,
                );
            } else if current == Health::Unhealthy {
                self.set_state(
                    name,
                    State::Running { run, pid, health: Health::Healthy },
                    "health check recovered",
                    now,
                    out,
                );
            }
            return;
        }
        let elapsed = m.run_started.map(|t| now.saturating_duration_since(t)).unwrap_or_default();
        if starting {
            // The edge probes a starting module quickly (so dependents start as soon as it is ready); the
            // readiness budget is therefore counted in time: start_period + retries × interval.
            let budget = health.start_period + health.interval.saturating_mul(health.retries.max(1));
            if elapsed >= budget {
                let cause = ExitCause::NotReady(detail);
                self.begin_stop(name, StopCause::Failure(cause.clone()), &cause.describe(), now, out);
            }
            return;
        }
        if elapsed < health.start_period {
            return;
        }
        m.probe_failures += 1;
        if m.probe_failures < health.retries.max(1) {
            return;
        }
        m.probe_failures = 0;
        if current != Health::Unhealthy {
            let why = format!("health check failed {} times: {detail}", health.retries.max(1));
            self.set_state(name, State::Running { run, pid, health: Health::Unhealthy }, &why, now, out);
            let policy = self.modules.get(name).map(|m| m.spec.restart.policy);
            if policy != Some(RestartPolicy::Never) {
                let cause = ExitCause::Unhealthy(detail);
                self.begin_stop(name, StopCause::Failure(cause.clone()), &cause.describe(), now, out);
            }
        }
    }

    // ----- the reconcile loop -----

    /// Move every module toward what is wanted, respecting dependency order.
    fn reconcile(&mut self, now: Instant, out: &mut Vec<Action>) {
        // Stops first, dependents before their requirements.
        let order = self.order.clone();
        for name in order.iter().rev() {
            let Some(m) = self.modules.get(name) else { continue };
            if m.state.run().is_none() || matches!(m.state, State::Stopping { .. }) {
                continue;
            }
            if !m.wanted {
                // Wait for dependents that are also going down.
                let blocked = self.live_dependents(name).iter().any(|d| !self.modules[d].wanted);
                if !blocked {
                    let cause = if m.removed { StopCause::Removed } else { StopCause::Requested };
                    self.begin_stop(name, cause, "stop requested", now, out);
                }
            } else if let Some(why) = m.restart_pending.clone() {
                self.begin_stop(name, StopCause::Restart(why.clone()), &format!("restart: {why}"), now, out);
            }
        }
        // Then starts, requirements before dependents. Several may start in one pass (independent modules
        // start in parallel); a dependent waits for the next pass after its requirements become ready.
        for name in &order {
            let Some(m) = self.modules.get(name) else { continue };
            if !m.wanted || m.spawning.is_some() || !matches!(m.state, State::Resolved) {
                continue;
            }
            if !self.unready_deps(name).is_empty() {
                continue;
            }
            let run = self.next_run;
            self.next_run += 1;
            let m = self.modules.get_mut(name).expect("present");
            m.spawning = Some(run);
            m.restart_pending = None;
            out.push(Action::Spawn { run, spec: Box::new(m.spec.clone()) });
        }
    }

    fn begin_stop(&mut self, name: &str, cause: StopCause, why: &str, now: Instant, out: &mut Vec<Action>) {
        let Some(m) = self.modules.get_mut(name) else { return };
        let Some((run, pid)) = m.state.run() else { return };
        if matches!(m.state, State::Stopping { .. }) {
            return;
        }
        if matches!(cause, StopCause::Restart(_)) {
            m.restart_pending = None;
        }
        m.stop_cause = Some(cause);
        let (signal, timeout) = (m.spec.stop.signal, m.spec.stop.timeout);
        self.set_state(name, State::Stopping { run, pid }, why, now, out);
        out.push(Action::Stop { module: name.to_string(), run, signal, timeout });
    }

    // ----- helpers -----

    fn insert(&mut self, name: &str, spec: ModuleSpec, now: Instant, out: &mut Vec<Action>) {
        self.modules.insert(
            name.to_string(),
            Module {
                spec,
                state: State::Installed,
                wanted: false,
                restart_pending: None,
                next_spec: None,
                spawning: None,
                stop_cause: None,
                history: RestartHistory::default(),
                run_started: None,
                probe_failures: 0,
                timer_token: 0,
                restarts_total: 0,
                removed: false,
                since: now,
                last_exit: None,
            },
        );
        self.set_state(name, State::Resolved, "dependencies resolved", now, out);
    }

    fn reorder(&mut self) {
        let specs: BTreeMap<String, ModuleSpec> =
            self.modules.iter().map(|(n, m)| (n.clone(), m.spec.clone())).collect();
        // Modules being removed keep their old requirements; drop edges to modules that no longer exist.
        let specs = specs
            .iter()
            .map(|(n, s)| {
                let mut s = s.clone();
                s.requires.retain(|r| specs.contains_key(&r.module));
                (n.clone(), s)
            })
            .collect();
        self.order = graph::start_order(&specs).into_iter().flatten().collect();
    }

    fn unready_deps(&self, name: &str) -> Vec<String> {
        let Some(m) = self.modules.get(name) else { return vec![] };
        m.spec
            .requires
            .iter()
            .filter(|r| self.modules.get(&r.module).is_some_and(|d| !d.state.is_ready()))
            .map(|r| r.module.clone())
            .collect()
    }

    fn live_dependents(&self, name: &str) -> Vec<String> {
        self.modules
            .iter()
            .filter(|(_, m)| m.spec.requires.iter().any(|r| r.module == name))
            .filter(|(_, m)| m.state.run().is_some() || m.spawning.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    fn with_requirements(&self, name: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![name.to_string()];
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(m) = self.modules.get(&n) {
                stack.extend(m.spec.requires.iter().map(|r| r.module.clone()));
            }
        }
        seen.into_iter().collect()
    }

    /// The only place a module's state changes: checks the move and emits the event.
    fn set_state(&mut self, name: &str, to: State, reason: &str, now: Instant, out: &mut Vec<Action>) {
        let Some(m) = self.modules.get_mut(name) else { return };
        let from = m.state.clone();
        let to = match transition(&from, to.clone()) {
            Ok(s) => s,
            Err(e) => {
                // A core bug; never crash the daemon over it, but make it loud in tests.
                debug_assert!(false, "{name}: {e}");
                tracing::error!(module = name, "{e}");
                to
            }
        };
        if from == to {
            return;
        }
        m.state = to.clone();
        m.since = now;
        out.push(Action::Emit(EventKind::Transition(Transition {
            module: name.to_string(),
            from,
            to,
            reason: reason.to_string(),
        })));
    }
}

/// Equal for the engine's purpose: where a module is written (its `origin`) is not part of what runs.
fn same_definition(a: &ModuleSpec, b: &ModuleSpec) -> bool {
    a == &ModuleSpec { origin: a.origin.clone(), ..b.clone() }
}

#[cfg(test)]
mod tests;
