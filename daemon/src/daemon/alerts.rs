//! Alerts: rules evaluated on every metrics sample, with hysteresis, de-duplication and a rate limit.
//!
//! - An alert is one rule on one subject (the machine, or a module). It **fires once** when its value reaches
//!   the warning (or critical) threshold — after holding there for the rule's `for` time (IPC) — **escalates**
//!   once if it then reaches the critical one, and **resolves once** when the value falls below the warning
//!   threshold minus the hysteresis (or the subject goes away). Dropping from critical to warning is not an
//!   event: an alert does not flap between levels.
//! - Every change (fired, escalated, resolved) is pushed as `steward/event` (kind `alert`) and stored as a note
//!   tagged `alert`, the rule and the level, so it is in the memory. At most `max_per_minute` changes are
//!   published per minute; the excess is counted and logged, and the alert list stays exact.
//!
//! [`Engine`] is pure (values and time in, changes out) and unit-tested; [`Alerts`] wires it to the daemon.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use steward_framework::config::AlertsSpec;
use steward_framework::lifecycle::now_ms;
use steward_framework::store::NoteInput;
use steward_protocol as p;

use super::state::DaemonState;

/// What an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// The machine (or the daemon, for IPC).
    Machine,
    /// One module.
    Module {
        /// Project id.
        project: String,
        /// Module.
        module: String,
    },
}

/// One value a rule looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// A percentage against the rule's thresholds (`cpu`, `memory`, `disk`, `moduleCpu`, `moduleMemory`).
    Percent {
        /// Rule name.
        rule: &'static str,
        /// About what.
        subject: Subject,
        /// Percent.
        value: f64,
    },
    /// The IPC score.
    Ipc {
        /// 0–100.
        score: f64,
    },
    /// A module stopped by its restart policy (restart loop).
    RestartLoop {
        /// The module.
        subject: Subject,
        /// In the loop now.
        failing: bool,
    },
    /// A module's health check is failing.
    Health {
        /// The module.
        subject: Subject,
        /// Unhealthy now.
        unhealthy: bool,
    },
    /// Rows the store could not write (a full disk, an I/O error): fires while rows are being dropped,
    /// resolves once none has been dropped for [`DROPS_QUIET_MS`].
    LogsDropped {
        /// Rows dropped since the daemon started.
        total: u64,
        /// Some were dropped since the previous sample.
        dropping: bool,
        /// Some were dropped within the last [`DROPS_QUIET_MS`].
        recent: bool,
    },
    /// The last scheduled backup failed (and no backup succeeded since): fires with the error, resolves
    /// with the next backup that succeeds.
    BackupFailing {
        /// What went wrong.
        error: String,
    },
}

/// How long without a dropped row before the `logsDropped` alert resolves (bursty writers must not make it
/// flap).
pub const DROPS_QUIET_MS: u64 = 10_000;

/// One change to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `fired`, `escalated`, `resolved`.
    pub state: &'static str,
    /// The alert after the change.
    pub alert: p::Alert,
}

#[derive(Debug, Clone)]
struct Active {
    alert: p::Alert,
    /// Published (not swallowed by the rate limit).
    published: bool,
}

/// The rules' state (pure).
#[derive(Debug, Default)]
pub struct Engine {
    active: BTreeMap<(String, Subject), Active>,
    /// Since when a condition with a `for` time holds.
    pending: BTreeMap<(String, Subject), u64>,
    resolved: VecDeque<p::Alert>,
    window: VecDeque<u64>,
    /// Changes not published because of the rate limit.
    pub suppressed: u64,
}

const RESOLVED_KEEP: usize = 200;

fn level_of(value: f64, warning: f64, critical: f64) -> Option<p::AlertLevel> {
    if value >= critical {
        Some(p::AlertLevel::Critical)
    } else if value >= warning {
        Some(p::AlertLevel::Warning)
    } else {
        None
    }
}

fn describe(rule: &str, subject: &Subject, value: f64, level: p::AlertLevel) -> String {
    let who = match subject {
        Subject::Machine => String::new(),
        Subject::Module { module, .. } => format!("{module}: "),
    };
    let lv = match level {
        p::AlertLevel::Info => "info",
        p::AlertLevel::Warning => "warning",
        p::AlertLevel::Critical => "critical",
        p::AlertLevel::Emergency => "emergency",
    };
    match rule {
        "cpu" => format!("system CPU at {value:.0} % ({lv})"),
        "memory" => format!("system memory at {value:.0} % ({lv})"),
        "disk" => format!("disk at {value:.0} % ({lv})"),
        "ipc" => format!("IPC score at {value:.0} ({lv})"),
        "moduleCpu" => format!("{who}CPU at {value:.0} % of a core ({lv})"),
        "moduleMemory" => format!("{who}memory at {value:.0} % of its limit ({lv})"),
        "restartLoop" => format!("{who}in a restart loop: stopped restarting ({lv})"),
        "health" => format!("{who}health check failing ({lv})"),
        "logsDropped" => {
            format!("the store is dropping log rows: {value:.0} dropped so far; writes are failing ({lv})")
        }
        _ => format!("{who}{rule} at {value:.0} ({lv})"),
    }
}

impl Engine {
    /// Feeds one sample's observations (a subject not observed is considered gone: its alerts resolve).
    pub fn evaluate(&mut self, rules: &AlertsSpec, obs: &[Observation], now: u64) -> Vec<Change> {
        static MACHINE: Subject = Subject::Machine;
        let mut changes = Vec::new();
        let mut seen: Vec<(String, Subject)> = Vec::new();
        if !rules.enabled {
            return self.resolve_missing(&seen, now, &mut changes, rules);
        }
        // The keys with state (usually none): an observation below its thresholds that is not one of them
        // changes nothing, and is skipped without allocating (a tick observes every module several times).
        let tracked: Vec<(String, Subject)> = self.active.keys().chain(self.pending.keys()).cloned().collect();
        for o in obs {
            // (rule, subject, value, level now, threshold, value still holding (for resolution), for-time)
            let (rule, subject, value, level, threshold, holding, for_ms): (
                &'static str,
                &Subject,
                f64,
                Option<p::AlertLevel>,
                f64,
                bool,
                u64,
            ) = match o {
                Observation::Percent { rule, subject, value } => {
                    let t = match *rule {
                        "cpu" => rules.cpu,
                        "memory" => rules.memory,
                        "disk" => rules.disk,
                        "moduleCpu" => rules.module_cpu,
                        "moduleMemory" => rules.memory,
                        _ => continue,
                    };
                    let level = level_of(*value, t.warning, t.critical);
                    (rule, subject, *value, level, t.warning, *value >= t.warning - rules.hysteresis, 0)
                }
                Observation::Ipc { score } => {
                    let t = rules.ipc_score;
                    let level = (*score >= t).then_some(p::AlertLevel::Warning);
                    ("ipc", &MACHINE, *score, level, t, *score >= t - rules.hysteresis, rules.ipc_for_ms)
                }
                Observation::RestartLoop { subject, failing } => {
                    if !rules.restart_loop {
                        continue;
                    }
                    let v = if *failing { 1.0 } else { 0.0 };
                    ("restartLoop", subject, v, failing.then_some(p::AlertLevel::Critical), 1.0, *failing, 0)
                }
                Observation::LogsDropped { total, dropping, recent } => (
                    "logsDropped",
                    &MACHINE,
                    *total as f64,
                    dropping.then_some(p::AlertLevel::Critical),
                    1.0,
                    *recent,
                    0,
                ),
                Observation::BackupFailing { .. } => {
                    ("backup", &MACHINE, 1.0, Some(p::AlertLevel::Warning), 1.0, true, 0)
                }
                Observation::Health { subject, unhealthy } => {
                    if !rules.health {
                        continue;
                    }
                    let v = if *unhealthy { 1.0 } else { 0.0 };
                    ("health", subject, v, unhealthy.then_some(p::AlertLevel::Warning), 1.0, *unhealthy, 0)
                }
            };
            if level.is_none() && !tracked.iter().any(|(r, s)| r == rule && s == subject) {
                continue;
            }
            let (rule, subject) = (rule.to_string(), subject.clone());
            let key = (rule.clone(), subject.clone());
            seen.push(key.clone());
            match (self.active.get_mut(&key), level) {
                (None, Some(level)) => {
                    if for_ms > 0 {
                        let since = *self.pending.entry(key.clone()).or_insert(now);
                        if now.saturating_sub(since) < for_ms {
                            continue;
                        }
                    }
                    self.pending.remove(&key);
                    let (project, module) = match &subject {
                        Subject::Machine => (String::new(), None),
                        Subject::Module { project, module } => (project.clone(), Some(module.clone())),
                    };
                    let message = match o {
                        Observation::BackupFailing { error } => format!("scheduled backup failed: {error} (warning)"),
                        _ => describe(&rule, &subject, value, level),
                    };
                    let alert = p::Alert {
                        message,
                        rule,
                        level,
                        project,
                        module,
                        value,
                        threshold,
                        fired_ms: now,
                        resolved_ms: None,
                    };
                    let published = self.allow(now, rules);
                    if published {
                        changes.push(Change { state: "fired", alert: alert.clone() });
                    }
                    self.active.insert(key, Active { alert, published });
                }
                (None, None) => {
                    self.pending.remove(&key);
                }
                (Some(a), Some(level)) => {
                    a.alert.value = value;
                    if level > a.alert.level {
                        a.alert.level = level;
                        a.alert.message = describe(&rule, &subject, value, level);
                        a.alert.threshold = match o {
                            Observation::Percent { rule, .. } => match *rule {
                                "cpu" => rules.cpu.critical,
                                "disk" => rules.disk.critical,
                                "moduleCpu" => rules.module_cpu.critical,
                                _ => rules.memory.critical,
                            },
                            _ => threshold,
                        };
                        let alert = a.alert.clone();
                        let published = a.published;
                        if published && self.allow(now, rules) {
                            changes.push(Change { state: "escalated", alert });
                        }
                    }
                }
                (Some(a), None) => {
                    a.alert.value = value;
                    if !holding {
                        self.resolve(&key, now, &mut changes, rules, value);
                    }
                }
            }
        }
        self.resolve_missing(&seen, now, &mut changes, rules)
    }

    fn resolve_missing(
        &mut self,
        seen: &[(String, Subject)],
        now: u64,
        changes: &mut Vec<Change>,
        rules: &AlertsSpec,
    ) -> Vec<Change> {
        let gone: Vec<(String, Subject)> = self.active.keys().filter(|k| !seen.contains(k)).cloned().collect();
        for key in gone {
            let value = self.active.get(&key).map_or(0.0, |a| a.alert.value);
            self.resolve(&key, now, changes, rules, value);
        }
        self.pending.retain(|k, _| seen.contains(k));
        std::mem::take(changes)
    }

    fn resolve(
        &mut self,
        key: &(String, Subject),
        now: u64,
        changes: &mut Vec<Change>,
        rules: &AlertsSpec,
        value: f64,
    ) {
        let Some(mut a) = self.active.remove(key) else { return };
        a.alert.resolved_ms = Some(now);
        a.alert.value = value;
        if a.published && self.allow(now, rules) {
            let mut alert = a.alert.clone();
            alert.message = match &alert.module {
                Some(m) => format!("{m}: resolved: {}", strip_who(&a.alert.message, m)),
                None => format!("resolved: {}", a.alert.message),
            };
            changes.push(Change { state: "resolved", alert });
        }
        self.resolved.push_front(a.alert);
        self.resolved.truncate(RESOLVED_KEEP);
    }

    /// Rate limit: at most `max_per_minute` published changes in any 60 s.
    fn allow(&mut self, now: u64, rules: &AlertsSpec) -> bool {
        while self.window.front().is_some_and(|t| now.saturating_sub(*t) >= 60_000) {
            self.window.pop_front();
        }
        if self.window.len() as u32 >= rules.max_per_minute {
            self.suppressed += 1;
            return false;
        }
        self.window.push_back(now);
        true
    }

    /// Firing alerts.
    pub fn active(&self) -> Vec<p::Alert> {
        self.active.values().map(|a| a.alert.clone()).collect()
    }

    /// Resolved alerts, newest first.
    pub fn resolved(&self, limit: usize) -> Vec<p::Alert> {
        self.resolved.iter().take(limit).cloned().collect()
    }
}

fn strip_who<'a>(message: &'a str, module: &str) -> &'a str {
    message.strip_prefix(module).and_then(|m| m.strip_prefix(": ")).unwrap_or(message)
}

/// The daemon's alerts.
#[derive(Default)]
pub struct Alerts {
    engine: Mutex<Engine>,
}

impl Alerts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Firing alerts.
    pub fn active(&self) -> Vec<p::Alert> {
        self.lock().active()
    }

    /// Resolved alerts, newest first.
    pub fn resolved(&self, limit: usize) -> Vec<p::Alert> {
        self.lock().resolved(limit)
    }

    /// Evaluates one sample and publishes the changes. The rules are the first open project's `[alerts]`
    /// (defaults when none is open).
    pub fn evaluate(&self, state: &DaemonState, obs: Vec<Observation>) {
        let projects = state.projects();
        let rules = projects.first().map(|p| p.handle.with_snapshot(|s| s.alerts.clone())).unwrap_or_default();
        let changes = {
            let mut e = self.lock();
            let before = e.suppressed;
            let changes = e.evaluate(&rules, &obs, now_ms());
            if e.suppressed > before {
                tracing::warn!(
                    "{} alert changes not published (more than {} a minute)",
                    e.suppressed - before,
                    rules.max_per_minute
                );
            }
            changes
        };
        for c in changes {
            let a = &c.alert;
            let level = if c.state == "resolved" { p::AlertLevel::Info } else { a.level };
            tracing::info!(rule = %a.rule, "alert {}: {}", c.state, a.message);
            let project_name = projects.iter().find(|p| p.id == a.project).map(|p| p.name()).unwrap_or_default();
            state.sessions.broadcast(
                p::EVENT,
                &p::EventParams {
                    project: a.project.clone(),
                    project_name,
                    at_ms: now_ms(),
                    detail: p::EventDetail::Alert {
                        rule: a.rule.clone(),
                        state: c.state.to_string(),
                        level,
                        module: a.module.clone(),
                        message: a.message.clone(),
                        value: a.value,
                        threshold: a.threshold,
                    },
                },
            );
            let lv = format!("{level:?}").to_lowercase();
            // A machine-wide alert is kept in the memory of the project whose `[alerts]` set its rules (the
            // first open one): a note needs a project, and an empty one would show as a nameless project.
            let note_project = match a.project.as_str() {
                "" => projects.first().map(|p| p.id.clone()),
                p => Some(p.to_string()),
            };
            let Some(note_project) = note_project else { continue };
            let note = NoteInput {
                project: note_project,
                module: a.module.clone(),
                text: format!("alert {}: {}", c.state, a.message),
                tags: vec!["alert".into(), a.rule.clone(), lv, c.state.to_string()],
                source: steward_framework::store::note_source::ALERT.into(),
            };
            let store = state.store.clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = store.add_note(note) {
                    tracing::warn!("alert not stored: {e}");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(v: f64) -> Observation {
        Observation::Percent {
            rule: "moduleCpu",
            subject: Subject::Module { project: "/p/steward.toml".into(), module: "burn".into() },
            value: v,
        }
    }

    #[test]
    fn fires_once_escalates_once_resolves_once_with_hysteresis() {
        let rules = AlertsSpec::default();
        let mut e = Engine::default();
        assert!(e.evaluate(&rules, &[module(10.0)], 0).is_empty());
        let c = e.evaluate(&rules, &[module(75.0)], 1000);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].state, c[0].alert.level), ("fired", p::AlertLevel::Warning));
        assert!(e.evaluate(&rules, &[module(80.0)], 2000).is_empty(), "no repeat while it holds");
        let c = e.evaluate(&rules, &[module(95.0)], 3000);
        assert_eq!((c[0].state, c[0].alert.level), ("escalated", p::AlertLevel::Critical));
        assert!(e.evaluate(&rules, &[module(75.0)], 4000).is_empty(), "no de-escalation event");
        assert!(e.evaluate(&rules, &[module(67.0)], 5000).is_empty(), "within the hysteresis band");
        let c = e.evaluate(&rules, &[module(10.0)], 6000);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].state, "resolved");
        assert_eq!(c[0].alert.resolved_ms, Some(6000));
        assert!(e.active().is_empty());
        assert_eq!(e.resolved(10).len(), 1);
        assert!(e.evaluate(&rules, &[module(10.0)], 7000).is_empty());
    }

    #[test]
    fn a_subject_that_goes_away_resolves() {
        let rules = AlertsSpec::default();
        let mut e = Engine::default();
        assert_eq!(e.evaluate(&rules, &[module(99.0)], 0).len(), 1);
        let c = e.evaluate(&rules, &[], 1000);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].state, "resolved");
    }

    #[test]
    fn a_failing_backup_fires_once_with_its_error_and_resolves_when_backups_work() {
        let rules = AlertsSpec::default();
        let mut e = Engine::default();
        let failing = Observation::BackupFailing { error: "disk full".into() };
        let c = e.evaluate(&rules, std::slice::from_ref(&failing), 0);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].state, c[0].alert.rule.as_str(), c[0].alert.level),
            ("fired", "backup", p::AlertLevel::Warning)
        );
        assert!(c[0].alert.message.contains("disk full"), "{}", c[0].alert.message);
        assert!(e.evaluate(&rules, &[failing], 1000).is_empty(), "no repeat while it fails");
        let c = e.evaluate(&rules, &[], 2000);
        assert_eq!((c.len(), c[0].state), (1, "resolved"));
    }

    #[test]
    fn ipc_must_hold_for_its_time() {
        let rules = AlertsSpec::default();
        let mut e = Engine::default();
        assert!(e.evaluate(&rules, &[Observation::Ipc { score: 90.0 }], 0).is_empty());
        assert!(e.evaluate(&rules, &[Observation::Ipc { score: 90.0 }], 5_000).is_empty());
        assert_eq!(e.evaluate(&rules, &[Observation::Ipc { score: 90.0 }], 10_000).len(), 1);
        // A dip resets the wait.
        let mut e = Engine::default();
        e.evaluate(&rules, &[Observation::Ipc { score: 90.0 }], 0);
        e.evaluate(&rules, &[Observation::Ipc { score: 10.0 }], 5_000);
        assert!(e.evaluate(&rules, &[Observation::Ipc { score: 90.0 }], 10_000).is_empty());
    }

    #[test]
    fn rate_limited() {
        let rules = AlertsSpec { max_per_minute: 2, ..AlertsSpec::default() };
        let mut e = Engine::default();
        let obs: Vec<Observation> = (0..5)
            .map(|i| Observation::Percent {
                rule: "moduleCpu",
                subject: Subject::Module { project: "p".into(), module: format!("m{i}") },
                value: 99.0,
            })
            .collect();
        assert_eq!(e.evaluate(&rules, &obs, 0).len(), 2);
        assert_eq!(e.suppressed, 3);
        assert_eq!(e.active().len(), 5, "the list stays exact");
        // Suppressed alerts do not publish their resolution either; published ones do, once the window allows.
        let c = e.evaluate(&rules, &[], 61_000);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn disabled_rules_resolve_what_fired() {
        let mut e = Engine::default();
        e.evaluate(&AlertsSpec::default(), &[module(99.0)], 0);
        let off = AlertsSpec { enabled: false, ..AlertsSpec::default() };
        assert_eq!(e.evaluate(&off, &[module(99.0)], 1000).len(), 1);
    }
}
