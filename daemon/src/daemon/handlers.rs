//! One plain async function per custom method. [`super::server`] holds the one table that maps method names
//! (from `steward_protocol::ext`) to these.

use std::sync::Arc;
use std::time::Duration;

use steward_framework::core::Input;
use steward_framework::engine::{EngineHandle, Snapshot};
use steward_framework::lifecycle::{EventKind, State};
use steward_framework::store::{EventQuery, LogQuery, NoteInput, SearchQuery, note_source};
use steward_protocol as p;
use tokio::sync::broadcast;

use super::convert;
use super::error::ApiError;
use super::sessions::Session;
use super::state::{DaemonState, Project};
use super::tail;

/// What a handler gets: the daemon and the calling session.
#[derive(Clone)]
pub struct Ctx {
    /// Shared state.
    pub state: Arc<DaemonState>,
    /// The session that sent the request.
    pub session: Arc<Session>,
}

/// Handler result.
pub type Result<T> = std::result::Result<T, ApiError>;

const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// Runs blocking store work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("task failed: {e}")))?
}

fn limit(requested: Option<u32>, default: u32, max: u32) -> usize {
    requested.filter(|l| *l > 0).unwrap_or(default).min(max) as usize
}

fn not_stopping(ctx: &Ctx) -> Result<()> {
    if ctx.state.is_stopping() { Err(ApiError::shutting_down()) } else { Ok(()) }
}

// -----------------------------------------------------------------------------------------------------------

/// `steward/status`.
pub async fn status(ctx: Ctx, params: p::StatusParams) -> Result<p::StatusResult> {
    status_now(&ctx, params)
}

/// `steward/status` without waiting on anything: also answered by the framing layer's fast path
/// (`server::Fast`).
pub fn status_now(ctx: &Ctx, params: p::StatusParams) -> Result<p::StatusResult> {
    let projects = match params.project.as_deref() {
        Some(key) => vec![ctx.state.resolve(key)?],
        None => ctx.state.projects(),
    };
    let ipc = ctx.state.metrics.ipc();
    Ok(p::StatusResult {
        version: env!("CARGO_PKG_VERSION").to_string(),
        protocol_version: p::PROTOCOL_VERSION,
        pid: std::process::id(),
        started_ms: ctx.state.started_ms,
        uptime_ms: ctx.state.started.elapsed().as_millis() as u64,
        home: ctx.state.home.display().to_string(),
        projects: projects
            .iter()
            .map(|p| {
                let mut s = p.status();
                ctx.state.metrics.annotate(&mut s);
                s
            })
            .collect(),
        ipc_score: ipc.as_ref().map(|i| i.score),
        ipc,
        system: ctx.state.metrics.system(),
        alerts: ctx.state.alerts.active(),
    })
}

/// `steward/metrics`.
pub async fn metrics(ctx: Ctx, params: p::MetricsParams) -> Result<p::MetricsResult> {
    let project = match params.project.as_deref() {
        Some(key) => Some(ctx.state.resolve(key)?),
        None => None,
    };
    if let (Some(project), Some(module)) = (&project, &params.module) {
        module_of(project, module)?;
    }
    let project_id = project.as_ref().map(|p| p.id.clone());
    let module = params.module.clone();
    let keep = |proj: &str, m: &str| {
        project_id.as_deref().is_none_or(|want| want == proj || proj.is_empty())
            && module.as_deref().is_none_or(|want| want == m || proj.is_empty())
    };
    let now = steward_framework::lifecycle::now_ms();
    let history = match params.history {
        p::MetricsResolution::None => Vec::new(),
        p::MetricsResolution::Raw => ctx
            .state
            .metrics
            .history(params.since_ms.unwrap_or(now.saturating_sub(3_600_000)), None, None)
            .into_iter()
            .filter(|pt| keep(&pt.project, &pt.module))
            .collect(),
        p::MetricsResolution::Minute => {
            let store = ctx.state.store.clone();
            let q = steward_framework::store::MetricsQuery {
                resolution_ms: 60_000,
                since_ms: params.since_ms.unwrap_or(now.saturating_sub(86_400_000)),
                project: None,
                module: None,
            };
            let rows = blocking(move || Ok(store.metrics(&q)?)).await?;
            rows.into_iter()
                .filter(|r| keep(&r.project, &r.module))
                .map(|r| p::MetricPoint {
                    at_ms: r.ts_ms,
                    project: r.project,
                    module: r.module,
                    cpu_percent: r.cpu_percent,
                    mem_bytes: r.mem_bytes,
                    ipc_score: r.ipc_score,
                })
                .collect()
        }
    };
    Ok(p::MetricsResult {
        interval_ms: ctx.state.metrics.interval.as_millis() as u64,
        system: ctx.state.metrics.system(),
        ipc: ctx.state.metrics.ipc(),
        modules: ctx.state.metrics.modules().into_iter().filter(|m| keep(&m.project, &m.module)).collect(),
        history,
    })
}

/// `steward/alerts`.
pub async fn alerts(ctx: Ctx, params: p::AlertsParams) -> Result<p::AlertsResult> {
    Ok(p::AlertsResult {
        active: ctx.state.alerts.active(),
        resolved: ctx.state.alerts.resolved(limit(params.limit, 50, 200)),
    })
}

/// `steward/project/open`.
pub async fn project_open(ctx: Ctx, params: p::OpenParams) -> Result<p::ProjectStatus> {
    let project = ctx.state.open(params).await?;
    let mut status = project.status();
    ctx.state.metrics.annotate(&mut status);
    Ok(status)
}

/// `steward/project/up`.
pub async fn project_up(ctx: Ctx, params: p::UpParams) -> Result<p::ActionResult> {
    not_stopping(&ctx)?;
    let project = ctx.state.resolve(&params.project)?;
    if let Some(profile) = params.profile {
        if project.profile().as_deref() != Some(profile.as_str()) {
            project.handle.use_profile(Some(profile)).await.map_err(|d| ApiError::config(&project.id, &d))?;
        }
    }
    let events = project.handle.subscribe();
    project.handle.send(Input::Up);
    ctx.state.record(&project, Some(true));
    let timeout = params.timeout_ms.map_or(DEFAULT_WAIT, Duration::from_millis);
    Ok(if params.wait { wait(&project, events, Target::AllReady, timeout).await } else { accepted(&project) })
}

/// `steward/project/down`.
pub async fn project_down(ctx: Ctx, params: p::DownParams) -> Result<p::ActionResult> {
    let project = ctx.state.resolve(&params.project)?;
    let events = project.handle.subscribe();
    project.handle.send(Input::Down);
    ctx.state.record(&project, Some(false));
    let timeout = params.timeout_ms.map_or(DEFAULT_WAIT, Duration::from_millis);
    Ok(if params.wait { wait(&project, events, Target::AllStopped, timeout).await } else { accepted(&project) })
}

fn module_of(project: &Project, module: &str) -> Result<()> {
    let snap = project.handle.snapshot();
    if snap.modules.iter().any(|m| m.name == module) {
        Ok(())
    } else {
        Err(ApiError::module_not_found(&project.id, module, snap.modules.iter().map(|m| m.name.clone()).collect()))
    }
}

async fn module_command(ctx: Ctx, params: p::ModuleParams, input: Input, target: Target) -> Result<p::ActionResult> {
    if !matches!(input, Input::Stop(_)) {
        not_stopping(&ctx)?;
    }
    let project = ctx.state.resolve(&params.project)?;
    module_of(&project, &params.module)?;
    let events = project.handle.subscribe();
    project.handle.send(input);
    let timeout = params.timeout_ms.map_or(DEFAULT_WAIT, Duration::from_millis);
    Ok(if params.wait { wait(&project, events, target, timeout).await } else { accepted(&project) })
}

/// `steward/module/start`.
pub async fn module_start(ctx: Ctx, params: p::ModuleParams) -> Result<p::ActionResult> {
    let (input, target) =
        (Input::Start(params.module.clone()), Target::Ready { module: params.module.clone(), restarted: true });
    module_command(ctx, params, input, target).await
}

/// `steward/module/stop`.
pub async fn module_stop(ctx: Ctx, params: p::ModuleParams) -> Result<p::ActionResult> {
    let (input, target) = (Input::Stop(params.module.clone()), Target::Stopped(params.module.clone()));
    module_command(ctx, params, input, target).await
}

/// `steward/module/restart`.
pub async fn module_restart(ctx: Ctx, params: p::ModuleParams) -> Result<p::ActionResult> {
    let (input, target) =
        (Input::Restart(params.module.clone()), Target::Ready { module: params.module.clone(), restarted: false });
    module_command(ctx, params, input, target).await
}

/// `steward/profile/list`.
pub async fn profile_list(ctx: Ctx, params: p::ProfileListParams) -> Result<p::ProfileListResult> {
    let project = ctx.state.resolve(&params.project)?;
    let active = project.profile();
    let mut load = project.load.clone();
    load.profile = active.clone();
    let path = project.path.clone();
    let id = project.id.clone();
    let stack =
        blocking(move || steward_framework::config::load(&path, &load).map_err(|d| ApiError::config(&id, &d))).await?;
    Ok(p::ProfileListResult {
        active,
        profiles: stack
            .profiles
            .iter()
            .map(|(name, spec)| p::ProfileInfo {
                name: name.clone(),
                modules: spec.modules.clone(),
                is_default: spec.is_default,
            })
            .collect(),
    })
}

/// `steward/profile/use`.
pub async fn profile_use(ctx: Ctx, params: p::ProfileUseParams) -> Result<p::ActionResult> {
    not_stopping(&ctx)?;
    let project = ctx.state.resolve(&params.project)?;
    project.handle.use_profile(params.profile).await.map_err(|d| ApiError::config(&project.id, &d))?;
    ctx.state.record(&project, None);
    let timeout = params.timeout_ms.map_or(DEFAULT_WAIT, Duration::from_millis);
    if params.wait && project.handle.snapshot().up {
        let events = project.handle.subscribe();
        return Ok(wait(&project, events, Target::AllReady, timeout).await);
    }
    Ok(accepted(&project))
}

/// `steward/logs/query`.
pub async fn logs_query(ctx: Ctx, params: p::LogQueryParams) -> Result<p::LogQueryResult> {
    let q = LogQuery {
        project: ctx.state.project_filter(params.project.as_deref())?,
        module: params.module,
        run: params.run,
        level: params.level.map(convert::store_level),
        text: params.text,
        grep: params.grep,
        since_ms: params.since_ms,
        until_ms: params.until_ms,
        after_id: params.after_id,
        before_id: params.before_id,
        limit: limit(params.limit, 100, p::MAX_QUERY_LIMIT),
    };
    let store = ctx.state.store.clone();
    let rows = blocking(move || Ok(store.query_logs(&q)?)).await?;
    Ok(p::LogQueryResult { lines: rows.into_iter().map(convert::log_entry).collect() })
}

/// `steward/logs/subscribe`.
pub async fn logs_subscribe(ctx: Ctx, params: p::LogSubscribeParams) -> Result<p::LogSubscribeResult> {
    let f = params.filter;
    let q = LogQuery {
        project: ctx.state.project_filter(f.project.as_deref())?,
        module: f.module,
        level: f.level.map(convert::store_level),
        grep: f.grep,
        ..LogQuery::default()
    };
    let store = ctx.state.store.clone();
    let cursor = blocking(move || Ok(tail::newest_id(&store))).await?;
    let subscription = ctx.state.tail.add(ctx.session.id, q, cursor);
    Ok(p::LogSubscribeResult { subscription, cursor })
}

/// `steward/logs/unsubscribe`.
pub async fn logs_unsubscribe(ctx: Ctx, params: p::LogUnsubscribeParams) -> Result<p::LogUnsubscribeResult> {
    Ok(p::LogUnsubscribeResult { removed: ctx.state.tail.remove(ctx.session.id, params.subscription) })
}

/// `steward/memory/search`.
pub async fn memory_search(ctx: Ctx, params: p::MemorySearchParams) -> Result<p::MemorySearchResult> {
    let q = SearchQuery {
        text: params.query,
        project: ctx.state.project_filter(params.project.as_deref())?,
        module: params.module,
        kinds: params.kinds.into_iter().map(convert::store_kind).collect(),
        level: params.level.map(convert::store_level),
        since_ms: params.since_ms,
        until_ms: params.until_ms,
        limit: limit(params.limit, 20, 500),
    };
    let store = ctx.state.store.clone();
    let hits = blocking(move || Ok(store.search(&q)?)).await?;
    Ok(p::MemorySearchResult { hits: hits.into_iter().map(convert::hit).collect() })
}

/// `steward/memory/remember`.
pub async fn memory_remember(ctx: Ctx, params: p::RememberParams) -> Result<p::RememberResult> {
    if params.text.trim().is_empty() {
        return Err(ApiError::invalid_params("invalid params: `text` is empty"));
    }
    let note = NoteInput {
        project: ctx.state.project_filter(params.project.as_deref())?.unwrap_or_default(),
        module: params.module,
        text: params.text,
        tags: params.tags,
        source: params.source.unwrap_or_else(|| note_source::CLI.to_string()),
    };
    let store = ctx.state.store.clone();
    let id = blocking(move || Ok(store.add_note(note)?)).await?;
    Ok(p::RememberResult { id })
}

/// `steward/memory/note`.
pub async fn memory_note(ctx: Ctx, params: p::NoteParams) -> Result<p::NoteResult> {
    let store = ctx.state.store.clone();
    let note = blocking(move || Ok(store.note(params.id)?)).await?;
    Ok(p::NoteResult { note: note.map(convert::note) })
}

/// `steward/events/query`.
pub async fn events_query(ctx: Ctx, params: p::EventQueryParams) -> Result<p::EventQueryResult> {
    let q = EventQuery {
        project: ctx.state.project_filter(params.project.as_deref())?,
        module: params.module,
        kinds: params.kinds.into_iter().map(|k| convert::store_event_kind(k).to_string()).collect(),
        level: params.level.map(convert::store_level),
        since_ms: params.since_ms,
        until_ms: params.until_ms,
        after_id: params.after_id,
        before_id: params.before_id,
        limit: limit(params.limit, 100, p::MAX_QUERY_LIMIT),
    };
    let store = ctx.state.store.clone();
    let rows = blocking(move || Ok(store.query_events(&q)?)).await?;
    Ok(p::EventQueryResult { events: rows.into_iter().filter_map(convert::event_record).collect() })
}

/// `steward/daemon/stop`.
pub async fn daemon_stop(ctx: Ctx, _params: p::DaemonStopParams) -> Result<p::DaemonStopResult> {
    tracing::info!(session = ctx.session.id, "stop requested by a client (pid {:?})", ctx.session.peer_pid);
    ctx.state.shutdown.cancel();
    Ok(p::DaemonStopResult { pid: std::process::id() })
}

// -----------------------------------------------------------------------------------------------------------
// Waiting for the outcome of a command

enum Target {
    /// Every module ready (or exited 0).
    AllReady,
    /// No module has a process.
    AllStopped,
    /// One module ready; with `restarted` false, only after a new run of it started.
    Ready { module: String, restarted: bool },
    /// One module without a process.
    Stopped(String),
}

fn accepted(project: &Project) -> p::ActionResult {
    p::ActionResult { ok: true, timed_out: false, failed: None, project: project.status() }
}

fn done_ok(s: &State) -> bool {
    s.is_ready() || matches!(s, State::Exited { code: Some(0), signal: None })
}

fn reached(target: &Target, snap: &Snapshot) -> bool {
    match target {
        Target::AllReady => snap.modules.iter().all(|m| done_ok(&m.state)),
        Target::AllStopped => snap.modules.iter().all(|m| m.state.run().is_none()),
        Target::Ready { module, restarted } => {
            *restarted && snap.modules.iter().any(|m| &m.name == module && done_ok(&m.state))
        }
        Target::Stopped(module) => snap.modules.iter().any(|m| &m.name == module && m.state.run().is_none()),
    }
}

/// Waits for `target` on `project`'s snapshots, watching `events` (subscribed before the command was sent)
/// for a module that fails on the way.
async fn wait(
    project: &Project,
    mut events: broadcast::Receiver<steward_framework::lifecycle::Event>,
    mut target: Target,
    timeout: Duration,
) -> p::ActionResult {
    let handle: &EngineHandle = &project.handle;
    let mut snaps = handle.watch_snapshot();
    let deadline = tokio::time::Instant::now() + timeout;
    // Modules whose failure sinks the wait: all for AllReady; the module and what it waits for otherwise.
    let mut watched: Vec<String> = match &target {
        Target::Ready { module, .. } | Target::Stopped(module) => vec![module.clone()],
        _ => vec![],
    };
    let all = matches!(target, Target::AllReady);
    let fails = !matches!(target, Target::AllStopped | Target::Stopped(_));
    loop {
        {
            let snap = snaps.borrow_and_update();
            if reached(&target, &snap) {
                return p::ActionResult {
                    ok: true,
                    timed_out: false,
                    failed: None,
                    project: convert::project(&snap, project.opened_ms),
                };
            }
            if let Target::Ready { module, .. } = &target {
                if let Some(m) = snap.modules.iter().find(|m| &m.name == module) {
                    for w in &m.waiting_for {
                        if !watched.contains(w) {
                            watched.push(w.clone());
                        }
                    }
                }
            }
        }
        tokio::select! {
            changed = snaps.changed() => if changed.is_err() {
                return p::ActionResult { ok: false, timed_out: false, failed: None, project: project.status() };
            },
            ev = events.recv() => match ev {
                Ok(ev) => match &ev.kind {
                    EventKind::RunStarted { module, .. } => {
                        if let Target::Ready { module: m, restarted } = &mut target {
                            if m == module {
                                *restarted = true;
                            }
                        }
                    }
                    EventKind::Transition(t) if fails && (all || watched.contains(&t.module)) => {
                        let failed = match &t.to {
                            State::Failed { reason } => Some(reason.clone()),
                            State::Exited { code, signal } if !(*code == Some(0) && signal.is_none()) => Some(t.reason.clone()),
                            _ => None,
                        };
                        if let Some(reason) = failed {
                            return p::ActionResult {
                                ok: false,
                                timed_out: false,
                                failed: Some(p::ModuleFailure { module: t.module.clone(), state: convert::state_name(&t.to), reason }),
                                project: project.status(),
                            };
                        }
                    }
                    _ => {}
                },
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    return p::ActionResult { ok: false, timed_out: false, failed: None, project: project.status() };
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                return p::ActionResult { ok: false, timed_out: true, failed: None, project: project.status() };
            }
        }
    }
}
