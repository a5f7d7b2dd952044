//! What every session shares: the open projects (one engine each), the store, the sessions, the tails.
//!
//! For each open project the daemon runs, besides its engine:
//! - a **log consumer** thread: the engine's captured lines → the store's [`LogSink`] (which may block when
//!   the store is behind: back-pressure on that project's modules only), and the incident notes, written
//!   from the same thread so that a crash's last lines are in the store before its note quotes them;
//! - an **event forwarder** task: every engine event → the store (events, runs), `run/pgids` (crash
//!   recovery), incident detection, and `steward/event` to every initialized session.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::json;
use steward_framework::config::{self, Diagnostic, LoadOptions};
use steward_framework::engine::{self, EngineHandle, EngineOptions};
use steward_framework::lifecycle::{Event, EventKind, LogChunk, RunId, State, now_ms};
use steward_framework::store::Store;
use steward_protocol as p;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::convert;
use super::error::ApiError;
use super::framing::Limits;
use super::orphans::PgidFile;
use super::resume::{self, ResumeFile};
use super::sessions::Sessions;
use super::tail::Tail;

/// The daemon's shared state.
pub struct DaemonState {
    /// `STEWARD_HOME`.
    pub home: PathBuf,
    /// When the daemon started.
    pub started: Instant,
    /// Same, wall clock.
    pub started_ms: u64,
    /// The store.
    pub store: Store,
    /// Live sessions.
    pub sessions: Sessions,
    /// Live log subscriptions.
    pub tail: Tail,
    /// Process groups of live runs.
    pub pgids: PgidFile,
    /// Open projects, for resuming them after a crash.
    pub resume: ResumeFile,
    /// Per-session limits.
    pub limits: Limits,
    /// Cancelled when the daemon starts shutting down.
    pub shutdown: CancellationToken,
    /// Where backups go, how often, what is kept.
    pub backup: crate::ops::settings::BackupSettings,
    /// Why the last scheduled backup failed; None once a backup succeeded (the `backup` alert).
    backup_failure: Mutex<Option<String>>,
    /// Latest metrics and the last hour of samples.
    pub metrics: super::metrics::Metrics,
    /// Alert rules' state.
    pub alerts: super::alerts::Alerts,
    stopping: AtomicBool,
    projects: Mutex<Vec<Arc<Project>>>,
    opening: tokio::sync::Mutex<()>,
}

/// One open project.
pub struct Project {
    /// Id: the stack file's absolute path, as a string (also the project key in the store).
    pub id: String,
    /// The stack file.
    pub path: PathBuf,
    /// Its engine.
    pub handle: EngineHandle,
    /// When it was opened.
    pub opened_ms: u64,
    /// Environment it was loaded with.
    pub load: LoadOptions,
    name: Mutex<String>,
    close: CancellationToken,
    forwarder: Mutex<Option<tokio::task::JoinHandle<()>>>,
    consumer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Project {
    /// Current status.
    pub fn status(&self) -> p::ProjectStatus {
        convert::project(&self.handle.snapshot(), self.opened_ms)
    }

    /// The active profile (read in place, not from a cloned snapshot).
    pub fn profile(&self) -> Option<String> {
        self.handle.with_snapshot(|s| s.profile.clone())
    }

    /// `[project] name`.
    pub fn name(&self) -> String {
        self.name.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A crash to write an incident note for.
struct Incident {
    module: String,
    run: Option<RunId>,
    exit: String,
}

impl DaemonState {
    /// Why the last scheduled backup failed, while no backup has succeeded since.
    pub fn backup_failure(&self) -> Option<String> {
        self.backup_failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a backup's outcome for the `backup` alert: a failed scheduled backup raises it, any successful
    /// backup clears it.
    pub fn set_backup_outcome(&self, failure: Option<String>) {
        *self.backup_failure.lock().unwrap_or_else(|p| p.into_inner()) = failure;
    }

    /// State for a daemon whose store and home are ready.
    pub fn new(
        home: PathBuf,
        store: Store,
        limits: Limits,
        backup: crate::ops::settings::BackupSettings,
    ) -> DaemonState {
        let pgids = PgidFile::new(steward_protocol::paths::pgids_path(&home));
        let resume = ResumeFile::new(steward_protocol::paths::projects_path(&home));
        DaemonState {
            home,
            started: Instant::now(),
            started_ms: now_ms(),
            store,
            sessions: Sessions::default(),
            tail: Tail::default(),
            pgids,
            resume,
            limits,
            shutdown: CancellationToken::new(),
            backup,
            backup_failure: Mutex::new(None),
            metrics: super::metrics::Metrics::new(super::metrics::Metrics::interval_from_env()),
            alerts: Default::default(),
            stopping: AtomicBool::new(false),
            projects: Mutex::new(Vec::new()),
            opening: tokio::sync::Mutex::new(()),
        }
    }

    /// True once shutdown has begun (no new work is taken).
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Open projects, in the order they were opened.
    pub fn projects(&self) -> Vec<Arc<Project>> {
        self.projects.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The open project named by `key`: its id, a path to its stack file (or its directory), or its name.
    pub fn resolve(&self, key: &str) -> Result<Arc<Project>, ApiError> {
        let projects = self.projects();
        if let Some(p) = projects.iter().find(|p| p.id == key) {
            return Ok(p.clone());
        }
        if looks_like_path(key) {
            if let Ok(path) = stack_path(key) {
                if let Some(p) = projects.iter().find(|p| p.path == path) {
                    return Ok(p.clone());
                }
            }
        }
        let named: Vec<&Arc<Project>> = projects.iter().filter(|p| p.name() == key).collect();
        match named.len() {
            1 => Ok(named[0].clone()),
            0 => Err(ApiError {
                code: p::ERROR_PROJECT_NOT_FOUND,
                message: format!(
                    "no open project is named {key:?} (open: {}); open it first with its stack file's path",
                    if projects.is_empty() {
                        "none".to_string()
                    } else {
                        projects.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
                    }
                ),
                data: Some(
                    json!({ "available": projects.iter().map(|p| json!({"name": p.name(), "path": p.id})).collect::<Vec<_>>() }),
                ),
            }),
            _ => Err(ApiError {
                code: p::ERROR_PROJECT_AMBIGUOUS,
                message: format!("several open projects are named {key:?}; use the stack file's path"),
                data: Some(json!({ "candidates": named.iter().map(|p| p.id.clone()).collect::<Vec<_>>() })),
            }),
        }
    }

    /// A project filter for queries: an open project's id, or — for history of a project that is not open —
    /// the path as given (made absolute).
    pub fn project_filter(&self, key: Option<&str>) -> Result<Option<String>, ApiError> {
        let Some(key) = key.filter(|k| !k.is_empty()) else { return Ok(None) };
        match self.resolve(key) {
            Ok(p) => Ok(Some(p.id.clone())),
            Err(e) if e.code == p::ERROR_PROJECT_NOT_FOUND && looks_like_path(key) => {
                Ok(Some(stack_path(key).unwrap_or_else(|_| absolute(Path::new(key))).display().to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Records `project`'s active profile and, when `up` is Some, whether it is up (see [`resume`]).
    pub fn record(&self, project: &Project, up: Option<bool>) {
        self.resume.changed(&project.id, project.profile(), up);
    }

    /// Opens the project at `params.path` (or returns it when it is open already, switching profile when
    /// asked). Its engine is started; no module runs until `up`.
    pub async fn open(self: &Arc<Self>, params: p::OpenParams) -> Result<Arc<Project>, ApiError> {
        if self.is_stopping() {
            return Err(ApiError::shutting_down());
        }
        let path = stack_path(&params.path).map_err(|d| ApiError::config(&params.path, &[*d]))?;
        let _one_at_a_time = self.opening.lock().await;
        if let Some(existing) = self.projects().into_iter().find(|p| p.path == path) {
            if let Some(profile) = params.profile {
                if existing.profile().as_deref() != Some(profile.as_str()) {
                    existing.handle.use_profile(Some(profile)).await.map_err(|d| ApiError::config(&existing.id, &d))?;
                    self.record(&existing, None);
                }
            }
            return Ok(existing);
        }
        let mut load = LoadOptions::from_process_env(params.profile.clone());
        let sent_env = params.env.unwrap_or_default();
        let remembered_env = resume::env_difference(&sent_env);
        load.env.extend(sent_env);
        let (path2, load2) = (path.clone(), load.clone());
        let stack = tokio::task::spawn_blocking(move || config::load(&path2, &load2))
            .await
            .map_err(|e| ApiError::internal(format!("loading the stack file failed: {e}")))?
            .map_err(|d| ApiError::config(&path.display().to_string(), &d))?;
        let id = stack.file.display().to_string();
        let name = stack.project.clone();
        let first_run = {
            let (store, id) = (self.store.clone(), id.clone());
            tokio::task::spawn_blocking(move || next_run(&store, &id)).await.unwrap_or(1)
        };
        // Chunks of whole lines, one per read of a module's pipe (up to 64 KiB each): 64 of them bound what
        // waits between the capture and the store.
        let (log_tx, log_rx) = mpsc::channel::<LogChunk>(64);
        let handle = engine::start(
            stack,
            EngineOptions { logs: log_tx, watch: true, load: load.clone(), first_run, event_capacity: 4096 },
        );
        let events = handle.subscribe();
        let project = Arc::new(Project {
            id: id.clone(),
            path,
            handle,
            opened_ms: now_ms(),
            load,
            name: Mutex::new(name.clone()),
            close: CancellationToken::new(),
            forwarder: Mutex::new(None),
            consumer: Mutex::new(None),
        });
        let (inc_tx, inc_rx) = mpsc::unbounded_channel();
        let consumer = {
            let (rt, store, project_id) =
                (tokio::runtime::Handle::current(), self.store.clone(), Arc::<str>::from(id.as_str()));
            std::thread::Builder::new()
                .name("steward-logs".into())
                .spawn(move || consume_logs(rt, store, project_id, log_rx, inc_rx))
                .map_err(|e| ApiError::internal(format!("cannot start a thread: {e}")))?
        };
        *project.consumer.lock().unwrap_or_else(|p| p.into_inner()) = Some(consumer);
        let forwarder = tokio::spawn(forward_events(self.clone(), project.clone(), events, inc_tx));
        *project.forwarder.lock().unwrap_or_else(|p| p.into_inner()) = Some(forwarder);
        self.projects.lock().unwrap_or_else(|p| p.into_inner()).push(project.clone());
        let entry = resume::Entry {
            path: project.path.display().to_string(),
            profile: project.profile(),
            env: remembered_env,
            up: false,
        };
        self.resume.opened(&project.id, entry);
        tracing::info!(project = %id, "opened {name} (first run id {first_run})");
        self.sessions.broadcast(
            p::EVENT,
            &p::EventParams {
                project: id,
                project_name: name,
                at_ms: now_ms(),
                detail: p::EventDetail::ProjectOpened {},
            },
        );
        Ok(project)
    }

    /// Stops every project (last opened first) and waits until their processes, events and logs are all
    /// accounted for, then flushes the store.
    pub async fn stop_projects(&self) {
        self.stopping.store(true, Ordering::Release);
        let projects: Vec<Arc<Project>> = self.projects().into_iter().rev().collect();
        for project in projects {
            tracing::info!(project = %project.id, "stopping");
            project.handle.shutdown().await;
            project.close.cancel();
            let forwarder = project.forwarder.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(f) = forwarder {
                let _ = f.await;
            }
            let consumer = project.consumer.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(c) = consumer {
                let joined = tokio::task::spawn_blocking(move || c.join());
                if tokio::time::timeout(std::time::Duration::from_secs(10), joined).await.is_err() {
                    tracing::warn!(project = %project.id, "log consumer did not finish in time");
                }
            }
        }
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.flush()).await;
        self.pgids.clear();
        self.resume.stopped_cleanly();
    }
}

/// The stack file named by `input`: a file, or a directory holding `steward.toml`; absolute and canonical
/// (so that one project opened through two paths is one project).
pub fn stack_path(input: &str) -> Result<PathBuf, Box<Diagnostic>> {
    let p = absolute(Path::new(input));
    let file = if p.is_dir() { p.join("steward.toml") } else { p };
    file.canonicalize().map_err(|e| Box::new(Diagnostic::internal(&format!("stack file {}: {e}", file.display()))))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn looks_like_path(key: &str) -> bool {
    key.contains('/') || key.ends_with(".toml") || key == "." || key == ".."
}

/// The run id after the highest one the store has seen for this project, so that run ids (which the store
/// uses to find a crash's lines) do not repeat across daemon restarts.
fn next_run(store: &Store, project: &str) -> RunId {
    store.runs(project, None, 100).ok().and_then(|runs| runs.iter().map(|r| r.run).max()).map_or(1, |m| m + 1)
}

fn consume_logs(
    rt: tokio::runtime::Handle,
    store: Store,
    project: Arc<str>,
    mut logs: mpsc::Receiver<LogChunk>,
    mut incidents: mpsc::UnboundedReceiver<Incident>,
) {
    let sink = store.log_sink();
    let mut warned = false;
    let mut incidents_open = true;
    let record = |i: Incident| {
        if let Err(e) = store.record_incident(&project, &i.module, i.run, &i.exit) {
            tracing::warn!(project = %project, "cannot record the incident of {}: {e}", i.module);
        }
    };
    rt.block_on(async {
        loop {
            tokio::select! {
                biased;
                chunk = logs.recv() => match chunk {
                    Some(chunk) => {
                        if let Err(e) = sink.send_chunk(&project, &chunk) {
                            if !warned {
                                tracing::error!(project = %project, "log lines are being lost: {e}");
                                warned = true;
                            }
                        }
                    }
                    None => break,
                },
                // Only reached while no line is waiting: every line captured before the crash was reported is
                // queued in the store by now, and record_incident flushes before it reads them.
                i = incidents.recv(), if incidents_open => match i {
                    Some(i) => record(i),
                    None => incidents_open = false,
                },
            }
        }
    });
    while let Ok(i) = incidents.try_recv() {
        record(i);
    }
}

async fn forward_events(
    state: Arc<DaemonState>,
    project: Arc<Project>,
    mut events: broadcast::Receiver<Event>,
    incidents: mpsc::UnboundedSender<Incident>,
) {
    let mut f = Forwarder { pids: HashMap::new(), ended: HashMap::new(), noted: HashSet::new() };
    loop {
        let ev = tokio::select! {
            biased;
            ev = events.recv() => ev,
            _ = project.close.cancelled() => {
                // The engine has stopped: what it published is buffered; pass it on, then end.
                while let Ok(ev) = events.try_recv() {
                    f.handle(&state, &project, &incidents, ev);
                }
                return;
            }
        };
        match ev {
            Ok(ev) => f.handle(&state, &project, &incidents, ev),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(project = %project.id, "{n} engine events were not recorded (the forwarder fell behind)")
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

struct Forwarder {
    /// Live runs' process group ids.
    pids: HashMap<RunId, u32>,
    /// Why each recent run ended.
    ended: HashMap<(String, RunId), String>,
    /// Runs that already have an incident note.
    noted: HashSet<(String, RunId)>,
}

impl Forwarder {
    fn handle(
        &mut self,
        state: &DaemonState,
        project: &Project,
        incidents: &mpsc::UnboundedSender<Incident>,
        ev: Event,
    ) {
        if let Err(e) = state.store.record_event(&ev) {
            tracing::warn!(project = %project.id, "event not stored: {e}");
        }
        match &ev.kind {
            EventKind::RunStarted { module, run, pid } => {
                self.pids.insert(*run, *pid);
                state.pgids.started(*pid, &project.id, module, *run);
            }
            EventKind::RunEnded { module, run, reason, .. } => {
                if let Some(pid) = self.pids.remove(run) {
                    state.pgids.ended(pid);
                }
                if self.ended.len() > 256 {
                    self.ended.clear();
                }
                self.ended.insert((module.clone(), *run), reason.clone());
            }
            EventKind::Transition(t) => {
                let crashed = match &t.to {
                    State::Backoff { .. } | State::Failed { .. } => true,
                    State::Exited { code, signal } => !(*code == Some(0) && signal.is_none()),
                    _ => false,
                };
                if crashed {
                    let run = t.from.run().map(|(r, _)| r);
                    let first = run.is_none_or(|r| {
                        if self.noted.len() > 256 {
                            self.noted.clear();
                        }
                        self.noted.insert((t.module.clone(), r))
                    });
                    if first {
                        let exit = run.and_then(|r| self.ended.remove(&(t.module.clone(), r))).unwrap_or_else(|| {
                            match &t.to {
                                State::Failed { reason } => format!("failed: {reason}"),
                                _ => t.reason.clone(),
                            }
                        });
                        tracing::info!(project = %project.id, module = %t.module, "incident: {exit}");
                        let _ = incidents.send(Incident { module: t.module.clone(), run, exit });
                    }
                }
            }
            EventKind::ConfigApplied { .. } => {
                *project.name.lock().unwrap_or_else(|p| p.into_inner()) = project.handle.snapshot().name;
            }
            EventKind::ConfigRejected { .. } => {}
        }
        state.sessions.broadcast(
            p::EVENT,
            &p::EventParams {
                project: ev.project.clone(),
                project_name: project.name(),
                at_ms: ev.at_ms,
                detail: convert::event_detail(&ev.kind),
            },
        );
    }
}
