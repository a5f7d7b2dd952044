//! Operations served by the daemon: backups (on request and on a schedule), store maintenance and the
//! health check, with `$/progress` for the long ones. The backup's content is decided in
//! [`crate::ops::snapshot`]; this file is about the daemon's side: which projects, progress, events, alerts.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use steward_framework::backup::{KeepPolicy, Manifest, Repository, Trigger, local_day_week};
use steward_framework::config;
use steward_framework::lifecycle::{State, now_ms};
use steward_framework::store::StoreStats;
use steward_protocol as p;
use tower_lsp_server::ls_types::request::WorkDoneProgressCreate;
use tower_lsp_server::ls_types::{ProgressToken, WorkDoneProgressCreateParams};

use super::error::ApiError;
use super::handlers::{Ctx, Result};
use super::sessions::Session;
use super::state::{DaemonState, Project};
use crate::ops::settings::BackupSettings;
use crate::ops::snapshot::{self, BackupInput, ProjectInput};

// -----------------------------------------------------------------------------------------------------------
// $/progress

/// Where progress goes: one session (the requester's token) or the sessions that accepted the daemon's own
/// token (scheduled work).
enum Target {
    Session(Arc<Session>),
    Sessions(Vec<Arc<Session>>),
}

/// How long a client may take to answer `window/workDoneProgress/create` before it is left out.
const CREATE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `$/progress` for one piece of work: begin, reports (at most every 100 ms, percentage never going
/// down), end. A sink without a target does nothing.
pub struct ProgressSink {
    target: Option<(Target, String)>,
    last: Option<Instant>,
    pct: u32,
}

impl ProgressSink {
    fn session(session: Arc<Session>, token: Option<String>) -> ProgressSink {
        ProgressSink { target: token.map(|t| (Target::Session(session), t)), last: None, pct: 0 }
    }

    /// Progress of work the daemon started on its own, for every session. LSP lets a server report on a
    /// token of its own only after the client created it: a client that declared `window.workDoneProgress`
    /// (VS Code's language client) is sent `window/workDoneProgress/create` and gets the reports once it
    /// answered (those that refuse or do not answer in time get none); Steward's own clients, which declare
    /// nothing, get them as they are.
    async fn everyone(state: &DaemonState, token: String) -> ProgressSink {
        let sessions = state.sessions.all().into_iter().filter(|s| s.initialized.load(Ordering::Acquire));
        let created = futures_util::future::join_all(sessions.map(|s| {
            let token = token.clone();
            async move {
                if !s.wants_progress_create.load(Ordering::Acquire) {
                    return Some(s);
                }
                let client = s.client.get()?.clone();
                let params = WorkDoneProgressCreateParams { token: ProgressToken::String(token) };
                let answer =
                    tokio::time::timeout(CREATE_TIMEOUT, client.send_request::<WorkDoneProgressCreate>(params));
                matches!(answer.await, Ok(Ok(()))).then_some(s)
            }
        }))
        .await;
        let sessions = created.into_iter().flatten().collect();
        ProgressSink { target: Some((Target::Sessions(sessions), token)), last: None, pct: 0 }
    }

    fn send(&self, value: p::WorkDoneProgress) {
        let Some((target, token)) = &self.target else { return };
        let params = p::ProgressParams { token: token.clone(), value };
        match target {
            Target::Session(s) => {
                s.notify(p::PROGRESS, &params);
            }
            Target::Sessions(all) => {
                let frame = super::sessions::notification_frame(p::PROGRESS, &params);
                for s in all {
                    let _ = s.outbox.push(frame.clone());
                }
            }
        }
    }

    fn begin(&mut self, title: &str) {
        self.last = Some(Instant::now());
        self.send(p::WorkDoneProgress::Begin {
            title: title.into(),
            cancellable: false,
            message: None,
            percentage: Some(0),
        });
    }

    fn report(&mut self, pct: u32, message: String) {
        let pct = pct.min(100);
        let due = self.last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if pct < self.pct || (!due && pct < 100) || (pct == self.pct && !due) {
            return;
        }
        self.pct = pct;
        self.last = Some(Instant::now());
        self.send(p::WorkDoneProgress::Report { message: Some(message), percentage: Some(pct) });
    }

    fn end(&mut self, message: String) {
        self.send(p::WorkDoneProgress::End { message: Some(message) });
    }
}

// -----------------------------------------------------------------------------------------------------------
// Backups

/// `steward/backup/create`.
pub async fn backup_create(ctx: Ctx, params: p::BackupCreateParams) -> Result<p::BackupSummary> {
    if ctx.state.is_stopping() {
        return Err(ApiError::shutting_down());
    }
    let projects = match params.project.as_deref() {
        Some(key) => vec![ctx.state.resolve(key)?],
        None => ctx.state.projects(),
    };
    let project_key = params.project.as_ref().and(projects.first()).map(|p| p.id.clone()).unwrap_or_default();
    let sink = ProgressSink::session(ctx.session.clone(), params.work_done_token);
    run_backup(&ctx.state, projects, Trigger::Manual, sink, project_key).await.map_err(ApiError::internal)
}

fn backup_settings(state: &DaemonState) -> BackupSettings {
    state.backup.clone()
}

/// Loads each project's effective stack (its active profile) off the async threads.
async fn inputs(projects: &[Arc<Project>]) -> Vec<ProjectInput> {
    let mut out = Vec::new();
    for project in projects {
        let mut load = project.load.clone();
        load.profile = project.profile();
        let path = project.path.clone();
        let stack = tokio::task::spawn_blocking(move || config::load(&path, &load))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|d| format!("{} error(s), first: {}", d.len(), d[0].message)));
        out.push(ProjectInput { id: project.id.clone(), stack });
    }
    out
}

/// Makes a backup, announces it (`steward/event`), and for scheduled ones prunes afterwards.
async fn run_backup(
    state: &Arc<DaemonState>,
    projects: Vec<Arc<Project>>,
    trigger: Trigger,
    mut sink: ProgressSink,
    event_project: String,
) -> std::result::Result<p::BackupSummary, String> {
    let settings = backup_settings(state);
    let input = BackupInput {
        home: state.home.clone(),
        store: state.store.path().to_path_buf(),
        projects: inputs(&projects).await,
        trigger,
    };
    let scheduled = trigger == Trigger::Scheduled;
    sink.begin("Backup");
    let sink = Arc::new(Mutex::new(sink));
    let repo = Repository::at(&settings.dir);
    let made = {
        let (sink, repo) = (sink.clone(), repo.clone());
        tokio::task::spawn_blocking(move || {
            let mut progress = |pct: u32, msg: String| {
                if let Ok(mut s) = sink.lock() {
                    s.report(pct, msg);
                }
            };
            snapshot::make_backup(&repo, input, &mut progress).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("the backup task failed: {e}"))
        .and_then(|r| r)
    };
    let name = projects.iter().find(|p| p.id == event_project).map(|p| p.name()).unwrap_or_default();
    let manifest = match made {
        Ok(m) => m,
        Err(e) => {
            if let Ok(mut s) = sink.lock() {
                s.end(format!("failed: {e}"));
            }
            // A failed scheduled backup is the `backup` alert (fired by the next metrics sample, stored in the
            // memory like every alert) until a backup succeeds; a manual one fails its request instead.
            if scheduled {
                state.set_backup_outcome(Some(e.clone()));
            }
            announce(state, &event_project, &name, p::EventDetail::BackupFailed { scheduled, error: e.clone() });
            tracing::error!("backup failed: {e}");
            return Err(e);
        }
    };
    let mut pruned = Vec::new();
    if scheduled {
        let (repo, keep) = (repo.clone(), settings.keep);
        match tokio::task::spawn_blocking(move || prune(&repo, keep)).await {
            Ok(Ok(r)) => pruned = r,
            Ok(Err(e)) => tracing::warn!("pruning backups after the scheduled backup failed: {e}"),
            Err(e) => tracing::warn!("pruning backups failed: {e}"),
        }
    }
    if let Ok(mut s) = sink.lock() {
        s.end(format!("backup {} made", manifest.id));
    }
    tracing::info!(
        "backup {} ({}): {} files, {} bytes ({} new) in {} ms{}",
        manifest.id,
        trigger.as_str(),
        manifest.files.len(),
        manifest.total_bytes,
        manifest.new_bytes,
        manifest.duration_ms,
        if manifest.problems.is_empty() { String::new() } else { format!("; problems: {:?}", manifest.problems) }
    );
    // A backup made with problems (a module's backup hook failed, …) keeps a scheduled backup's alert up;
    // a clean backup of any kind ends it.
    if manifest.problems.is_empty() {
        state.set_backup_outcome(None);
    } else if scheduled {
        state.set_backup_outcome(Some(format!(
            "backup {} has problems: {}",
            manifest.id,
            manifest.problems.join("; ")
        )));
    }
    announce(
        state,
        &event_project,
        &name,
        p::EventDetail::BackupCompleted {
            id: manifest.id.clone(),
            scheduled,
            files: manifest.files.len() as u32,
            total_bytes: manifest.total_bytes,
            new_bytes: manifest.new_bytes,
            duration_ms: manifest.duration_ms,
            problems: manifest.problems.clone(),
        },
    );
    Ok(summary(&manifest, &settings, pruned))
}

fn prune(repo: &Repository, keep: KeepPolicy) -> std::result::Result<Vec<String>, String> {
    let (today, week) = local_day_week(now_ms());
    repo.prune(keep, today, week, false).map(|r| r.removed).map_err(|e| e.to_string())
}

fn summary(m: &Manifest, settings: &BackupSettings, pruned: Vec<String>) -> p::BackupSummary {
    p::BackupSummary {
        id: m.id.clone(),
        dir: settings.dir.display().to_string(),
        created_ms: m.created_ms,
        duration_ms: m.duration_ms,
        files: m.files.len() as u32,
        total_bytes: m.total_bytes,
        new_bytes: m.new_bytes,
        projects: m.projects.iter().map(|p| p.id.clone()).collect(),
        hooks: m
            .hooks
            .iter()
            .map(|h| p::BackupHookOutcome {
                project: h.project.clone(),
                module: h.module.clone(),
                ok: h.ok,
                error: h.error.clone(),
                duration_ms: h.duration_ms,
            })
            .collect(),
        problems: m.problems.clone(),
        pruned,
    }
}

fn announce(state: &DaemonState, project: &str, name: &str, detail: p::EventDetail) {
    state.sessions.broadcast(
        p::EVENT,
        &p::EventParams { project: project.to_string(), project_name: name.to_string(), at_ms: now_ms(), detail },
    );
}

/// Scheduled backups: every `schedule` after the newest backup in the repository (whoever made it), the
/// first one no sooner than `min(schedule, 1 min)` after start (so that projects are open). A failure is
/// retried after `min(schedule, 1 h)`. Ends with the daemon.
pub async fn scheduler(state: Arc<DaemonState>) {
    let settings = backup_settings(&state);
    let Some(every) = settings.schedule else { return };
    let start = now_ms();
    let first = start + every.min(Duration::from_secs(60)).as_millis() as u64;
    let mut retry_at: Option<u64> = None;
    tracing::info!("scheduled backups every {every:?} into {} (keep {})", settings.dir.display(), settings.keep);
    loop {
        let repo = Repository::at(&settings.dir);
        let newest =
            tokio::task::spawn_blocking(move || repo.list().ok().and_then(|(all, _)| all.last().map(|m| m.created_ms)))
                .await
                .ok()
                .flatten();
        let due = retry_at
            .unwrap_or_else(|| newest.map_or(start + every.as_millis() as u64, |n| n + every.as_millis() as u64))
            .max(first);
        let wait = Duration::from_millis(due.saturating_sub(now_ms()));
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if state.is_stopping() {
            return;
        }
        let sink = ProgressSink::everyone(&state, format!("scheduledBackup/{}", now_ms())).await;
        match run_backup(&state, state.projects(), Trigger::Scheduled, sink, String::new()).await {
            Ok(_) => retry_at = None,
            Err(_) => retry_at = Some(now_ms() + every.min(Duration::from_secs(3600)).as_millis() as u64),
        }
    }
}

// -----------------------------------------------------------------------------------------------------------
// Store maintenance

/// `steward/db/maintain`.
pub async fn db_maintain(ctx: Ctx, params: p::DbMaintainParams) -> Result<p::DbMaintainResult> {
    if ctx.state.is_stopping() {
        return Err(ApiError::shutting_down());
    }
    let store = ctx.state.store.clone();
    let started = Instant::now();
    let stats = |s: &steward_framework::store::Store| -> Result<StoreStats> { Ok(s.stats()?) };
    let before = {
        let s = store.clone();
        super::handlers::blocking(move || stats(&s)).await?
    };
    let title = match params.action {
        p::DbAction::Vacuum => "Vacuum",
        p::DbAction::Reindex => "Reindex",
        p::DbAction::Prune => "Prune",
    };
    let mut sink = ProgressSink::session(ctx.session.clone(), params.work_done_token.clone());
    sink.begin(title);
    let sink = Arc::new(Mutex::new(sink));
    let (mut logs_deleted, mut events_deleted, mut rows_indexed) = (0, 0, 0);
    let dry = params.dry_run;
    match params.action {
        p::DbAction::Vacuum => {
            if !dry {
                let s = store.clone();
                super::handlers::blocking(move || Ok(s.vacuum()?)).await?;
            }
        }
        p::DbAction::Reindex => {
            if dry {
                rows_indexed = before.log_rows;
            } else {
                let (s, sink) = (store.clone(), sink.clone());
                rows_indexed = super::handlers::blocking(move || {
                    Ok(s.reindex(move |done, total| {
                        if let Ok(mut k) = sink.lock() {
                            let pct = (done * 100).checked_div(total).unwrap_or(100) as u32;
                            k.report(pct, format!("{done}/{total} log lines indexed"));
                        }
                    })?)
                })
                .await?;
            }
        }
        p::DbAction::Prune => {
            let s = store.clone();
            let r = super::handlers::blocking(move || {
                Ok(if dry { s.retention_preview()? } else { s.enforce_retention()? })
            })
            .await?;
            logs_deleted = r.logs_by_age + r.logs_by_size;
            events_deleted = r.events_by_age;
        }
    }
    let after = {
        let s = store.clone();
        super::handlers::blocking(move || stats(&s)).await?
    };
    let (file_after, used_after) = match (params.action, dry) {
        // What vacuum would leave: the pages in use (and no WAL).
        (p::DbAction::Vacuum, true) => (before.used_bytes, before.used_bytes),
        _ => (after.file_bytes, after.used_bytes),
    };
    let (shrink, index, delete) =
        if dry { ("would shrink", "would index", "would delete") } else { ("shrank", "indexed", "deleted") };
    let summary = match params.action {
        p::DbAction::Vacuum => format!(
            "vacuum {shrink} the store from {} to {}",
            crate::ops::human_bytes(before.file_bytes),
            crate::ops::human_bytes(file_after)
        ),
        p::DbAction::Reindex => format!("reindex {index} {rows_indexed} log lines (and every event and note)"),
        p::DbAction::Prune => format!(
            "prune {delete} {logs_deleted} log lines and {events_deleted} events (retention: {}, {})",
            crate::ops::human_bytes(store.retention().max_bytes),
            crate::ops::human_duration(store.retention().max_age)
        ),
    };
    if let Ok(mut s) = sink.lock() {
        s.end(summary.clone());
    }
    Ok(p::DbMaintainResult {
        action: params.action,
        dry_run: dry,
        file_bytes_before: before.file_bytes,
        file_bytes_after: file_after,
        used_bytes_before: before.used_bytes,
        used_bytes_after: used_after,
        logs_deleted,
        events_deleted,
        rows_indexed,
        duration_ms: started.elapsed().as_millis() as u64,
        summary,
    })
}

// -----------------------------------------------------------------------------------------------------------
// Health

/// `steward/health`.
pub async fn health(ctx: Ctx, _params: p::HealthParams) -> Result<p::HealthReport> {
    let state = &ctx.state;
    let mut checks = vec![p::HealthCheckResult {
        name: "socket".into(),
        ok: !state.is_stopping(),
        detail: if state.is_stopping() {
            "the daemon is shutting down".into()
        } else {
            format!("answering (pid {})", std::process::id())
        },
    }];
    let store = state.store.clone();
    let probe =
        tokio::time::timeout(Duration::from_secs(5), tokio::task::spawn_blocking(move || store.check_writable())).await;
    let dropped = match state.store.dropped() {
        0 => String::new(),
        n => format!("; {n} log rows dropped since the daemon started"),
    };
    let (ok, detail) = match probe {
        Ok(Ok(Ok(()))) => (true, format!("writable ({}){dropped}", state.store.path().display())),
        Ok(Ok(Err(e))) => (false, format!("the store refuses writes: {e}{dropped}")),
        Ok(Err(e)) => (false, format!("the store check failed: {e}")),
        Err(_) => (false, "the store did not take a test write within 5 s".to_string()),
    };
    checks.push(p::HealthCheckResult { name: "store".into(), ok, detail });
    let store = state.store.clone();
    let counters =
        tokio::task::spawn_blocking(move || store.stats()).await.ok().and_then(|r| r.ok()).map(|s| p::StoreCounters {
            log_lines: s.log_rows,
            unindexed_lines: s.unindexed,
            used_bytes: s.used_bytes,
            dropped_lines: s.dropped,
        });
    for project in state.projects() {
        let snap = project.handle.snapshot();
        let mut wrong = Vec::new();
        for m in snap.modules.iter().filter(|m| m.wanted) {
            let fine = match &m.state {
                s if s.is_ready() => true,
                State::Exited { code: Some(0), signal: None } => true,
                _ => false,
            };
            if !fine {
                let st = serde_json::to_value(super::convert::state_name(&m.state)).unwrap_or_default();
                wrong.push(format!("{} is {}", m.name, st.as_str().unwrap_or("?")));
            }
        }
        let wanted = snap.modules.iter().filter(|m| m.wanted).count();
        checks.push(p::HealthCheckResult {
            name: format!("project:{}", project.name()),
            ok: wrong.is_empty(),
            detail: if wrong.is_empty() {
                format!("{wanted}/{} modules as wanted", snap.modules.len())
            } else {
                wrong.join(", ")
            },
        });
    }
    let status = if state.is_stopping() {
        p::HealthStatus::Down
    } else if checks.iter().all(|c| c.ok) {
        p::HealthStatus::Ok
    } else {
        p::HealthStatus::Degraded
    };
    let reason = match checks.iter().find(|c| !c.ok) {
        Some(c) => format!("{}: {}", c.name, c.detail),
        None => {
            let projects = checks.len() - 2;
            format!("ok: store writable, {projects} project{} as wanted", if projects == 1 { "" } else { "s" })
        }
    };
    Ok(p::HealthReport {
        status,
        reason,
        checks,
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        uptime_ms: state.started.elapsed().as_millis() as u64,
        store: counters,
    })
}
