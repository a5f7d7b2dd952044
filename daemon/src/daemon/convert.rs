//! From the framework's and the store's plain data to the wire types of `steward_protocol` — the only place
//! that maps one onto the other.

use steward_framework::config;
use steward_framework::core;
use steward_framework::engine::Snapshot;
use steward_framework::lifecycle::{self, EventKind as EngineEvent, State};
use steward_framework::store;
use steward_protocol as p;

/// Wire name of a state.
pub fn state_name(s: &State) -> p::ModuleState {
    match s {
        State::Installed => p::ModuleState::Installed,
        State::Resolved => p::ModuleState::Resolved,
        State::Starting { .. } => p::ModuleState::Starting,
        State::Running { .. } => p::ModuleState::Running,
        State::Stopping { .. } => p::ModuleState::Stopping,
        State::Stopped => p::ModuleState::Stopped,
        State::Exited { .. } => p::ModuleState::Exited,
        State::Failed { .. } => p::ModuleState::Failed,
        State::Backoff { .. } => p::ModuleState::Backoff,
    }
}

/// Wire health.
pub fn health(h: lifecycle::Health) -> p::Health {
    match h {
        lifecycle::Health::None => p::Health::None,
        lifecycle::Health::Healthy => p::Health::Healthy,
        lifecycle::Health::Unhealthy => p::Health::Unhealthy,
    }
}

/// A module's status.
pub fn module(m: &core::ModuleStatus) -> p::ModuleStatus {
    let run = m.state.run();
    let mut out = p::ModuleStatus {
        name: m.name.clone(),
        state: state_name(&m.state),
        wanted: m.wanted,
        pid: run.map(|(_, pid)| pid),
        run: run.map(|(r, _)| r),
        health: None,
        restarts: m.restarts,
        state_for_ms: m.state_for_ms,
        last_exit: m.last_exit.clone(),
        waiting_for: m.waiting_for.clone(),
        reason: None,
        exit_code: None,
        signal: None,
        retry_in_ms: None,
        attempt: None,
        cpu_percent: None,
        rss_bytes: None,
    };
    match &m.state {
        State::Running { health: h, .. } => out.health = Some(health(*h)),
        State::Failed { reason } => out.reason = Some(reason.clone()),
        State::Exited { code, signal } => {
            out.exit_code = *code;
            out.signal = *signal;
        }
        State::Backoff { delay_ms, attempt } => {
            out.retry_in_ms = Some(*delay_ms);
            out.attempt = Some(*attempt);
        }
        _ => {}
    }
    out
}

/// A project's status from its engine's snapshot.
pub fn project(s: &Snapshot, opened_ms: u64) -> p::ProjectStatus {
    p::ProjectStatus {
        path: s.project.clone(),
        name: s.name.clone(),
        profile: s.profile.clone(),
        up: s.up,
        modules: s.modules.iter().map(module).collect(),
        config_errors: s.config_errors.clone(),
        opened_ms,
    }
}

/// A stack-file error.
pub fn diagnostic(d: &config::Diagnostic) -> p::Diagnostic {
    p::Diagnostic {
        file: d.file.display().to_string(),
        line: d.line,
        column: d.column,
        end_line: d.end_line,
        end_column: d.end_column,
        key: d.key.clone(),
        message: d.message.clone(),
        expected: d.expected.clone(),
        help: d.help.clone(),
        rendered: d.to_string(),
    }
}

/// An engine event as the `steward/event` notification's detail.
pub fn event_detail(kind: &EngineEvent) -> p::EventDetail {
    match kind {
        EngineEvent::Transition(t) => {
            let run = t.to.run();
            let (mut health_v, mut exit_code, mut signal, mut retry) = (None, None, None, None);
            match &t.to {
                State::Running { health: h, .. } => health_v = Some(health(*h)),
                State::Exited { code, signal: s } => {
                    exit_code = *code;
                    signal = *s;
                }
                State::Backoff { delay_ms, .. } => retry = Some(*delay_ms),
                _ => {}
            }
            p::EventDetail::Transition {
                module: t.module.clone(),
                from: state_name(&t.from),
                to: state_name(&t.to),
                reason: t.reason.clone(),
                run: run.map(|(r, _)| r),
                pid: run.map(|(_, pid)| pid),
                health: health_v,
                exit_code,
                signal,
                retry_in_ms: retry,
            }
        }
        EngineEvent::RunStarted { module, run, pid } => {
            p::EventDetail::RunStarted { module: module.clone(), run: *run, pid: *pid }
        }
        EngineEvent::RunEnded { module, run, code, signal, reason } => p::EventDetail::RunEnded {
            module: module.clone(),
            run: *run,
            exit_code: *code,
            signal: *signal,
            reason: reason.clone(),
        },
        EngineEvent::ConfigApplied { profile, summary } => {
            p::EventDetail::ConfigApplied { profile: profile.clone(), summary: summary.clone() }
        }
        EngineEvent::ConfigRejected { errors } => p::EventDetail::ConfigRejected { errors: errors.clone() },
    }
}

/// Store level → wire level.
pub fn level(l: store::Level) -> p::Level {
    match l {
        store::Level::Trace => p::Level::Trace,
        store::Level::Debug => p::Level::Debug,
        store::Level::Info => p::Level::Info,
        store::Level::Warn => p::Level::Warn,
        store::Level::Error => p::Level::Error,
    }
}

/// Wire level → store level.
pub fn store_level(l: p::Level) -> store::Level {
    match l {
        p::Level::Trace => store::Level::Trace,
        p::Level::Debug => store::Level::Debug,
        p::Level::Info => store::Level::Info,
        p::Level::Warn => store::Level::Warn,
        p::Level::Error => store::Level::Error,
    }
}

/// A stored log line.
pub fn log_entry(r: store::LogRecord) -> p::LogEntry {
    let ansi = (r.message != r.text).then_some(r.message);
    p::LogEntry {
        id: r.id,
        ts_ms: r.ts_ms,
        project: r.project,
        module: r.module,
        run: r.run,
        stream: match r.stream {
            lifecycle::Stream::Stdout => p::Stream::Stdout,
            lifecycle::Stream::Stderr => p::Stream::Stderr,
        },
        level: r.level.map(level),
        text: r.text,
        ansi,
        truncated: r.truncated,
        masked: r.masked,
        fields: r.fields.map(serde_json::Value::Object),
    }
}

/// Store event kind (snake_case) → wire kind.
pub fn event_kind(kind: &str) -> Option<p::EventKind> {
    Some(match kind {
        "transition" => p::EventKind::Transition,
        "run_started" => p::EventKind::RunStarted,
        "run_ended" => p::EventKind::RunEnded,
        "config_applied" => p::EventKind::ConfigApplied,
        "config_rejected" => p::EventKind::ConfigRejected,
        _ => return None,
    })
}

/// Wire kind → store event kind.
pub fn store_event_kind(kind: p::EventKind) -> &'static str {
    match kind {
        p::EventKind::Transition => "transition",
        p::EventKind::RunStarted => "run_started",
        p::EventKind::RunEnded => "run_ended",
        p::EventKind::ConfigApplied => "config_applied",
        p::EventKind::ConfigRejected => "config_rejected",
    }
}

/// A stored event (None for kinds this protocol version does not know).
pub fn event_record(r: store::EventRecord) -> Option<p::EventRecord> {
    Some(p::EventRecord {
        id: r.id,
        ts_ms: r.ts_ms,
        kind: event_kind(&r.kind)?,
        project: r.project,
        module: r.module,
        level: level(r.level),
        text: r.text,
        payload: r.payload,
    })
}

/// Wire memory kind → store kind.
pub fn store_kind(k: p::MemoryKind) -> store::Kind {
    match k {
        p::MemoryKind::Log => store::Kind::Log,
        p::MemoryKind::Event => store::Kind::Event,
        p::MemoryKind::Note => store::Kind::Note,
    }
}

/// A stored note.
pub fn note(n: store::NoteRecord) -> p::Note {
    p::Note {
        id: n.id,
        ts_ms: n.ts_ms,
        project: n.project,
        module: n.module,
        text: n.text,
        tags: n.tags,
        source: n.source,
    }
}

/// A memory hit.
pub fn hit(h: store::Hit) -> p::MemoryHit {
    p::MemoryHit {
        kind: match h.kind {
            store::Kind::Log => p::MemoryKind::Log,
            store::Kind::Event => p::MemoryKind::Event,
            store::Kind::Note => p::MemoryKind::Note,
        },
        id: h.id,
        ts_ms: h.ts_ms,
        project: h.project,
        module: h.module,
        run: h.run,
        level: h.level.map(level),
        snippet: h.snippet,
        score: h.score,
    }
}
