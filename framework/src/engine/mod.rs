//! The engine: an actor that owns one project's [`Core`] and connects it to the world.
//!
//! Everything that happens to a project — commands from front ends, child exits, probe results, timers,
//! memory samples, file changes, reloads — arrives as a message on one channel and is fed to the core in
//! order; the core's actions are executed here (spawn, signal, probe, timer, publish). Only this module,
//! [`crate::process`] and [`crate::probe`] touch processes; the decisions are all in [`crate::core`].

mod watch;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch as tokio_watch};

use crate::config::{self, Diagnostic, LoadOptions, Stack};
use crate::core::{Action, Core, Input, ModuleStatus};
use crate::lifecycle::{Event, EventKind, LogChunk, RunId, now_ms};
use crate::{probe, process};

/// How to run an engine.
pub struct EngineOptions {
    /// Where captured output goes (a terminal printer, the store's ingester, …). Each child waits on this
    /// channel when it is full — back-pressure on that child only.
    pub logs: mpsc::Sender<LogChunk>,
    /// Watch the stack file, `modules.d/` and modules' `watch` globs, and reload/restart on change.
    pub watch: bool,
    /// Options to reload the stack with (profile, environment).
    pub load: LoadOptions,
    /// First run id (a daemon hosting several projects keeps ids unique across them).
    pub first_run: RunId,
    /// Capacity of the event bus; slow subscribers lag and are told how much they missed.
    pub event_capacity: usize,
}

/// A consistent picture of a project for front ends.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Project id (stack file path).
    pub project: String,
    /// Project name.
    pub name: String,
    /// Active profile.
    pub profile: Option<String>,
    /// Whether the stack is meant to be up.
    pub up: bool,
    /// Modules in start order.
    pub modules: Vec<ModuleStatus>,
    /// Errors of the last rejected configuration change (the running stack kept its last good config).
    pub config_errors: Vec<String>,
    /// `[alerts]` of the running configuration.
    pub alerts: crate::config::AlertsSpec,
}

enum Msg {
    Input(Input),
    Reload { profile: Option<Option<String>>, reply: Option<oneshot::Sender<Result<(), Vec<Diagnostic>>>> },
    Shutdown(oneshot::Sender<()>),
}

/// A cheap, cloneable handle to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::UnboundedSender<Msg>,
    events: broadcast::Sender<Event>,
    snapshot: tokio_watch::Receiver<Snapshot>,
}

impl EngineHandle {
    /// Send a command (Up, Down, Start, Stop, Restart, …). Returns false when the engine has stopped.
    pub fn send(&self, input: Input) -> bool {
        self.tx.send(Msg::Input(input)).is_ok()
    }

    /// Receive every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.borrow().clone()
    }

    /// Looks at the latest snapshot without cloning it (for a field or two, on hot paths). Keep `f` short:
    /// the engine cannot publish a new snapshot meanwhile.
    pub fn with_snapshot<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        f(&self.snapshot.borrow())
    }

    /// A receiver that changes with every snapshot.
    pub fn watch_snapshot(&self) -> tokio_watch::Receiver<Snapshot> {
        self.snapshot.clone()
    }

    /// Reload the stack file from disk (with the current profile). On error the running stack is kept.
    pub async fn reload(&self) -> Result<(), Vec<Diagnostic>> {
        self.reload_with(None).await
    }

    /// Switch profile: reload with `profile` and apply only the differences.
    pub async fn use_profile(&self, profile: Option<String>) -> Result<(), Vec<Diagnostic>> {
        self.reload_with(Some(profile)).await
    }

    async fn reload_with(&self, profile: Option<Option<String>>) -> Result<(), Vec<Diagnostic>> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Reload { profile, reply: Some(reply) }).is_err() {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    /// Wait until `pred` holds for a snapshot, or the deadline passes (returns the last snapshot either way).
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Snapshot) -> bool) -> Result<Snapshot, Snapshot> {
        let mut rx = self.snapshot.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let s = rx.borrow_and_update();
                if pred(&s) {
                    return Ok(s.clone());
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Err(rx.borrow().clone()),
            }
        }
    }

    /// Stop every module (dependents first), wait for all processes to be gone, and end the engine.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// SIGKILL every live module process group of every engine in this process (see
/// [`process::kill_all_live_groups`]). Safe to call from a panic hook.
pub fn kill_all_live_groups() -> usize {
    process::kill_all_live_groups()
}

/// Start an engine for `stack`. Nothing runs until an [`Input::Up`] (or Start) is sent.
pub fn start(stack: Stack, opts: EngineOptions) -> EngineHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(opts.event_capacity.max(16));
    let (core, initial) = Core::new(stack, opts.first_run, fastrand::u64(..), Instant::now());
    let (snap_tx, snap_rx) = tokio_watch::channel(snapshot_of(&core, &[]));
    let handle = EngineHandle { tx: tx.clone(), events: events.clone(), snapshot: snap_rx };
    let actor = Actor {
        core,
        tx,
        events,
        snapshot: snap_tx,
        logs: opts.logs,
        load: opts.load,
        runs: HashMap::new(),
        probes: HashMap::new(),
        config_errors: Vec::new(),
        watcher: None,
        watch: opts.watch,
        shutdown: None,
    };
    tokio::spawn(actor.run(rx, initial));
    handle
}

struct Actor {
    core: Core,
    tx: mpsc::UnboundedSender<Msg>,
    events: broadcast::Sender<Event>,
    snapshot: tokio_watch::Sender<Snapshot>,
    logs: mpsc::Sender<LogChunk>,
    load: LoadOptions,
    /// Per live run: the channel to its waiter task (stop requests).
    runs: HashMap<RunId, mpsc::UnboundedSender<(i32, Duration)>>,
    probes: HashMap<RunId, tokio::task::AbortHandle>,
    config_errors: Vec<String>,
    watcher: Option<watch::Watcher>,
    watch: bool,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Actor {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Msg>, initial: Vec<Action>) {
        self.execute(initial).await;
        let stack = self.core.stack().clone();
        self.rewatch(&stack);
        let mut sampler = tokio::time::interval(Duration::from_secs(1));
        sampler.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                msg = inbox.recv() => {
                    let Some(msg) = msg else { break };
                    match msg {
                        Msg::Input(i) => self.feed(i).await,
                        Msg::Reload { profile, reply } => {
                            let r = self.reload(profile).await;
                            if let Some(reply) = reply { let _ = reply.send(r); }
                        }
                        Msg::Shutdown(done) => {
                            self.shutdown = Some(done);
                            self.feed(Input::Down).await;
                        }
                    }
                }
                // Only stacks with a memory limit are sampled; the others never wake up for it.
                _ = sampler.tick(), if self.core.stack().modules.values().any(|m| m.limits.memory.is_some()) => {
                    self.sample_memory().await
                }
            }
            if self.shutdown.is_some() && self.core.is_quiet() {
                if let Some(done) = self.shutdown.take() {
                    let _ = done.send(());
                }
                break;
            }
        }
    }

    async fn feed(&mut self, input: Input) {
        let actions = self.core.handle(input, Instant::now());
        self.execute(actions).await;
    }

    /// Carry out actions; facts they produce synchronously (spawned / spawn failed) are fed back at once.
    async fn execute(&mut self, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        let mut changed = false;
        while let Some(action) = queue.pop_front() {
            let feedback = match action {
                Action::Spawn { run, spec } => Some(self.spawn(run, &spec).await),
                Action::StartProbe { module, run } => {
                    self.start_probe(module, run);
                    None
                }
                Action::Stop { run, signal, timeout, .. } => {
                    if let Some(ctl) = self.runs.get(&run) {
                        let _ = ctl.send((signal, timeout));
                    }
                    None
                }
                Action::SetTimer { module, token, after } => {
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = tx.send(Msg::Input(Input::Timer { module, token }));
                    });
                    None
                }
                Action::Emit(kind) => {
                    changed = true;
                    if let EventKind::RunEnded { run, .. } = &kind {
                        if let Some(p) = self.probes.remove(run) {
                            p.abort();
                        }
                        // The run is over: forget its stop channel (one entry per run would pile up).
                        self.runs.remove(run);
                    }
                    let _ = self.events.send(Event { project: self.core.project().to_string(), at_ms: now_ms(), kind });
                    None
                }
            };
            if let Some(input) = feedback {
                queue.extend(self.core.handle(input, Instant::now()));
            }
        }
        if changed {
            self.publish_snapshot();
        }
    }

    async fn spawn(&mut self, run: RunId, spec: &config::ModuleSpec) -> Input {
        let opts = process::SpawnOptions { spec, run, logs: self.logs.clone() };
        match process::spawn(opts).await {
            Ok(mut child) => {
                let pid = child.pid;
                let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<(i32, Duration)>();
                self.runs.insert(run, ctl_tx);
                let tx = self.tx.clone();
                let module = spec.name.clone();
                tokio::spawn(async move {
                    let info = loop {
                        tokio::select! {
                            info = child.wait() => break info,
                            Some((sig, timeout)) = ctl_rx.recv() => child.stop(sig, timeout),
                        }
                    };
                    let _ = tx.send(Msg::Input(Input::Exited { module, run, code: info.code, signal: info.signal }));
                });
                Input::Spawned { module: spec.name.clone(), run, pid }
            }
            Err(e) => Input::SpawnFailed { module: spec.name.clone(), run, error: e.to_string() },
        }
    }

    fn start_probe(&mut self, module: String, run: RunId) {
        let Some(spec) = self.core.spec(&module).cloned() else { return };
        let Some(health) = spec.health.clone() else { return };
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            // Until the first success, probe fast so dependents start as soon as the module is ready: wait
            // 4× the last check's duration (5–50 ms, never more than the interval) — cheap checks are
            // repeated often, slow ones (an exec probe) do not hog a core. Then probe at the interval.
            let mut ready = false;
            loop {
                let ctx = probe::ProbeContext { cwd: &spec.cwd, env: &spec.env };
                let began = tokio::time::Instant::now();
                let result = probe::check(&health.check, health.timeout, &ctx).await;
                let took = began.elapsed();
                let ok = result.is_ok();
                let detail = result.err().unwrap_or_default();
                if tx.send(Msg::Input(Input::Probe { module: module.clone(), run, ok, detail })).is_err() {
                    return;
                }
                ready |= ok;
                let pause = if ready {
                    health.interval
                } else {
                    (took * 4).clamp(Duration::from_millis(5), Duration::from_millis(50)).min(health.interval)
                };
                tokio::time::sleep(pause).await;
            }
        });
        self.probes.insert(run, task.abort_handle());
    }

    async fn sample_memory(&mut self) {
        let limited: Vec<(String, RunId, u32)> = self
            .core
            .live_runs()
            .into_iter()
            .filter(|(m, _, _)| self.core.spec(m).is_some_and(|s| s.limits.memory.is_some()))
            .collect();
        for (module, run, pid) in limited {
            if let Some(rss) = process::tree_rss_bytes(pid) {
                self.feed(Input::Memory { module, run, rss }).await;
            }
        }
    }

    async fn reload(&mut self, profile: Option<Option<String>>) -> Result<(), Vec<Diagnostic>> {
        let mut opts = self.load.clone();
        if let Some(p) = profile {
            opts.profile = p;
        }
        let path: PathBuf = self.core.stack().file.clone();
        let loaded = tokio::task::spawn_blocking(move || config::load(&path, &opts).map(|s| (s, opts)))
            .await
            .unwrap_or_else(|e| Err(vec![Diagnostic::internal(&format!("reload task failed: {e}"))]));
        match loaded {
            Ok((stack, opts)) => {
                self.load = opts;
                self.config_errors.clear();
                // Watch the new set of files before anything of the change can be seen: a front end (or a
                // test) that reacts to the new module by editing its file must not fall between two watchers.
                self.rewatch(&stack);
                self.feed(Input::Apply(Box::new(stack))).await;
                Ok(())
            }
            Err(diags) => {
                self.config_errors = diags.iter().map(|d| d.to_string()).collect();
                let errors = self.config_errors.clone();
                self.execute(vec![Action::Emit(EventKind::ConfigRejected { errors })]).await;
                Err(diags)
            }
        }
    }

    fn rewatch(&mut self, stack: &Stack) {
        if !self.watch {
            return;
        }
        let tx = self.tx.clone();
        let to_reload = tx.clone();
        match watch::Watcher::new(
            stack,
            move || {
                let _ = to_reload.send(Msg::Reload { profile: None, reply: None });
            },
            move |module| {
                let _ = tx.send(Msg::Input(Input::FilesChanged(module)));
            },
        ) {
            Ok(w) => self.watcher = Some(w),
            Err(e) => tracing::warn!("file watching disabled: {e}"),
        }
    }

    fn publish_snapshot(&self) {
        self.snapshot.send_replace(snapshot_of(&self.core, &self.config_errors));
    }
}

fn snapshot_of(core: &Core, config_errors: &[String]) -> Snapshot {
    Snapshot {
        project: core.project().to_string(),
        name: core.stack().project.clone(),
        profile: core.stack().active_profile.clone(),
        up: core.is_up(),
        modules: core.status(Instant::now()),
        config_errors: config_errors.to_vec(),
        alerts: core.stack().alerts.clone(),
    }
}
