//! Which daemon events become native notifications, and how a burst becomes one notification. Pure: the
//! caller feeds events with the time, and after the coalescing window asks for the notification to show.

use std::collections::BTreeSet;
use std::str::FromStr;

use steward_protocol::{self as p, AlertLevel, EventDetail, ModuleState};

/// How much a notice matters; the user's minimum decides what is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Recoveries, resolved alerts.
    Info,
    /// Warning alerts.
    Warning,
    /// Failures, critical and emergency alerts.
    Critical,
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Severity, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "warning" | "warn" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!("`{other}` is not a severity (expected info, warning or critical)")),
        }
    }
}

/// One thing worth telling.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// How much it matters.
    pub severity: Severity,
    /// One line: "shop/api failed: restart loop".
    pub text: String,
}

/// A notification to show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shown {
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
}

/// Turns events into notices, filters by severity and coalesces bursts.
#[derive(Debug)]
pub struct Notices {
    /// Minimum severity shown.
    pub min: Severity,
    pending: Vec<Notice>,
    /// Modules (project path, module) that failed and have not recovered.
    failing: BTreeSet<(String, String)>,
}

/// Most lines in a coalesced notification's body.
const MAX_LINES: usize = 5;

impl Notices {
    /// With a minimum severity.
    pub fn new(min: Severity) -> Notices {
        Notices { min, pending: Vec::new(), failing: BTreeSet::new() }
    }

    /// Takes in an event. Returns true when it started a new batch: the caller then calls [`Notices::flush`]
    /// once the coalescing window has passed (events arriving meanwhile join the batch).
    pub fn observe(&mut self, ev: &p::EventParams) -> bool {
        let Some(notice) = self.notice(ev) else { return false };
        if notice.severity < self.min {
            return false;
        }
        self.pending.push(notice);
        self.pending.len() == 1
    }

    fn notice(&mut self, ev: &p::EventParams) -> Option<Notice> {
        let who = |m: &str| format!("{}/{m}", ev.project_name);
        match &ev.detail {
            EventDetail::Transition { module, from, to, reason, .. } => {
                let key = (ev.project.clone(), module.clone());
                let crashed = *to == ModuleState::Backoff && *from == ModuleState::Running;
                if *to == ModuleState::Failed || crashed {
                    // One notice per failure episode: a restart loop is one failure, not one per attempt.
                    if !self.failing.insert(key) && *to != ModuleState::Failed {
                        return None;
                    }
                    let verb = if *to == ModuleState::Failed { "failed" } else { "crashed" };
                    Some(Notice { severity: Severity::Critical, text: format!("{} {verb}: {reason}", who(module)) })
                } else if *to == ModuleState::Running && self.failing.remove(&key) {
                    Some(Notice { severity: Severity::Info, text: format!("{} recovered", who(module)) })
                } else {
                    if matches!(to, ModuleState::Stopped) {
                        self.failing.remove(&key);
                    }
                    None
                }
            }
            EventDetail::Alert { state, level, message, .. } => {
                let severity = match (state.as_str(), level) {
                    ("resolved", _) | (_, AlertLevel::Info) => Severity::Info,
                    (_, AlertLevel::Warning) => Severity::Warning,
                    _ => Severity::Critical,
                };
                Some(Notice { severity, text: format!("alert {state}: {message}") })
            }
            EventDetail::BackupFailed { error, .. } => {
                Some(Notice { severity: Severity::Critical, text: format!("backup failed: {error}") })
            }
            _ => None,
        }
    }

    /// The notification for the batch so far (and a new batch begins); `None` when nothing is pending.
    pub fn flush(&mut self) -> Option<Shown> {
        let batch = std::mem::take(&mut self.pending);
        let worst = batch.iter().map(|n| n.severity).max()?;
        let title = match (batch.len(), worst) {
            (1, Severity::Critical) => "Steward: failure".to_string(),
            (1, Severity::Warning) => "Steward: warning".to_string(),
            (1, Severity::Info) => "Steward".to_string(),
            (n, _) => format!("Steward: {n} events"),
        };
        let mut lines: Vec<String> = batch.iter().take(MAX_LINES).map(|n| n.text.clone()).collect();
        if batch.len() > MAX_LINES {
            lines.push(format!("and {} more", batch.len() - MAX_LINES));
        }
        Some(Shown { title, body: lines.join("\n") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn transition(module: &str, from: &str, to: &str, reason: &str) -> p::EventParams {
        serde_json::from_value(json!({
            "project": "/w/shop/steward.toml", "projectName": "shop", "atMs": 1,
            "kind": "transition", "module": module, "from": from, "to": to, "reason": reason,
        }))
        .unwrap()
    }

    fn alert(state: &str, level: &str) -> p::EventParams {
        serde_json::from_value(json!({
            "project": "", "projectName": "", "atMs": 1, "kind": "alert", "rule": "cpu", "state": state,
            "level": level, "message": "CPU 97%", "value": 97.0, "threshold": 90.0,
        }))
        .unwrap()
    }

    #[test]
    fn a_crash_loop_is_one_failure_then_one_recovery() {
        let mut n = Notices::new(Severity::Info);
        assert!(n.observe(&transition("api", "running", "backoff", "exited with status 1")));
        assert!(!n.observe(&transition("api", "backoff", "starting", "restarting")));
        assert!(!n.observe(&transition("api", "starting", "running", "started")));
        let shown = n.flush().unwrap();
        assert_eq!(shown.title, "Steward: 2 events");
        assert_eq!(shown.body, "shop/api crashed: exited with status 1\nshop/api recovered");
        assert_eq!(n.flush(), None);
        // Crashing again after the recovery is a new episode.
        assert!(n.observe(&transition("api", "running", "backoff", "exited with status 1")));
        assert_eq!(n.flush().unwrap().title, "Steward: failure");
    }

    #[test]
    fn giving_up_is_reported_even_after_the_crash() {
        let mut n = Notices::new(Severity::Info);
        n.observe(&transition("api", "running", "backoff", "exited with status 1"));
        n.observe(&transition("api", "backoff", "failed", "restart loop: 5 restarts within 1m"));
        let shown = n.flush().unwrap();
        assert_eq!(
            shown.body,
            "shop/api crashed: exited with status 1\nshop/api failed: restart loop: 5 restarts within 1m"
        );
    }

    #[test]
    fn the_minimum_severity_filters() {
        let mut n = Notices::new(Severity::Warning);
        n.observe(&transition("api", "running", "backoff", "exited with status 1"));
        n.observe(&transition("api", "starting", "running", "started"));
        n.observe(&alert("fired", "warning"));
        n.observe(&alert("resolved", "info"));
        assert_eq!(n.flush().unwrap().body, "shop/api crashed: exited with status 1\nalert fired: CPU 97%");
        let mut n = Notices::new(Severity::Critical);
        assert!(!n.observe(&alert("fired", "warning")));
        assert!(n.observe(&alert("escalated", "emergency")));
        assert_eq!(n.flush().unwrap().body, "alert escalated: CPU 97%");
    }

    #[test]
    fn a_large_burst_is_cut_short() {
        let mut n = Notices::new(Severity::Info);
        for i in 0..8 {
            n.observe(&transition(&format!("m{i}"), "running", "backoff", "killed by signal 9"));
        }
        let shown = n.flush().unwrap();
        assert_eq!(shown.title, "Steward: 8 events");
        assert_eq!(shown.body.lines().count(), MAX_LINES + 1);
        assert!(shown.body.ends_with("and 3 more"), "{}", shown.body);
    }

    #[test]
    fn severities_parse() {
        assert_eq!("Warning".parse::<Severity>(), Ok(Severity::Warning));
        assert!("loud".parse::<Severity>().unwrap_err().contains("expected info, warning or critical"));
    }
}
