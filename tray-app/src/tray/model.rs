//! The tray as pure data: what the daemon last said ([`View`]), how pushed events change it
//! ([`View::apply`]), and what the icon, tooltip and menu show ([`health`], [`tooltip`], [`menu`]).
//! No Tauri here: `tray/mod.rs` turns a [`Menu`] into native items, and the tests below check the model.

use std::collections::BTreeMap;

use steward_protocol::{self as p, EventDetail, ModuleState};

use super::ids::{MenuAction, ModuleOp};

/// What the tray knows about the daemon.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// Connected to the daemon.
    pub connected: bool,
    /// The last `steward/status`, kept current by pushed events.
    pub status: Option<p::StatusResult>,
    /// Profiles per project path.
    pub profiles: BTreeMap<String, p::ProfileListResult>,
}

/// What an event means for the tray.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing the tray shows.
    None,
    /// The view changed in place: redraw.
    Redraw,
    /// Projects, modules or profiles changed: re-read status and profiles, then redraw.
    Reload,
}

impl View {
    /// Applies a pushed event to the cached status.
    pub fn apply(&mut self, ev: &p::EventParams) -> Change {
        match &ev.detail {
            EventDetail::Transition {
                module, to, reason, run, pid, health, exit_code, signal, retry_in_ms, ..
            } => {
                let Some(m) = self.module_mut(&ev.project, module) else { return Change::Reload };
                m.state = *to;
                m.reason = Some(reason.clone()).filter(|r| !r.is_empty());
                if run.is_some() {
                    m.run = *run;
                }
                m.pid = if matches!(to, ModuleState::Starting | ModuleState::Running | ModuleState::Stopping) {
                    pid.or(m.pid)
                } else {
                    None
                };
                m.health = *health;
                m.exit_code = *exit_code;
                m.signal = *signal;
                m.retry_in_ms = *retry_in_ms;
                if *to == ModuleState::Backoff {
                    m.restarts += 1;
                }
                Change::Redraw
            }
            EventDetail::RunStarted { module, run, pid } => {
                let Some(m) = self.module_mut(&ev.project, module) else { return Change::Reload };
                m.run = Some(*run);
                m.pid = Some(*pid);
                Change::Redraw
            }
            EventDetail::ConfigApplied { .. } | EventDetail::ProjectOpened {} => Change::Reload,
            _ => Change::None,
        }
    }

    fn module_mut(&mut self, project: &str, module: &str) -> Option<&mut p::ModuleStatus> {
        let status = self.status.as_mut()?;
        let proj = status.projects.iter_mut().find(|p| p.path == project)?;
        proj.modules.iter_mut().find(|m| m.name == module)
    }

    fn modules(&self) -> impl Iterator<Item = &p::ModuleStatus> {
        self.status.iter().flat_map(|s| s.projects.iter()).flat_map(|p| p.modules.iter())
    }
}

/// Overall health, shown by the icon's colour and shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Health {
    /// Every wanted module runs (and is healthy); also when nothing is wanted.
    AllRunning,
    /// Something wanted is not running yet or any more: starting, restarting, unhealthy.
    Degraded,
    /// A module failed (Steward gave up) or crashed out.
    Failed,
    /// No daemon.
    DaemonDown,
}

impl Health {
    /// Word for people.
    pub fn label(self) -> &'static str {
        match self {
            Health::AllRunning => "all running",
            Health::Degraded => "degraded",
            Health::Failed => "failed",
            Health::DaemonDown => "daemon down",
        }
    }
}

fn module_failed(m: &p::ModuleStatus) -> bool {
    m.state == ModuleState::Failed || (m.state == ModuleState::Exited && m.exit_code.is_some_and(|c| c != 0))
}

fn module_degraded(m: &p::ModuleStatus) -> bool {
    match m.state {
        ModuleState::Running => m.health == Some(p::Health::Unhealthy),
        ModuleState::Backoff | ModuleState::Starting => true,
        ModuleState::Resolved | ModuleState::Installed => m.wanted,
        _ => false,
    }
}

/// The icon's state.
pub fn health(view: &View) -> Health {
    if !view.connected {
        return Health::DaemonDown;
    }
    if view.modules().any(module_failed) {
        Health::Failed
    } else if view.modules().any(module_degraded) {
        Health::Degraded
    } else {
        Health::AllRunning
    }
}

/// The status line and tooltip: "Steward: 3/4 running · 1 failed (api)".
pub fn tooltip(view: &View) -> String {
    let Some(status) = view.status.as_ref().filter(|_| view.connected) else {
        return "Steward: daemon not running".into();
    };
    if status.projects.is_empty() {
        return "Steward: no project open".into();
    }
    let total = view.modules().count();
    let running = view.modules().filter(|m| m.state == ModuleState::Running).count();
    let mut s = format!("Steward: {running}/{total} running");
    let failed: Vec<&str> = view.modules().filter(|m| module_failed(m)).map(|m| m.name.as_str()).collect();
    if !failed.is_empty() {
        s.push_str(&format!(" · {} failed ({})", failed.len(), failed.join(", ")));
    }
    let degraded: Vec<&str> = view.modules().filter(|m| module_degraded(m)).map(|m| m.name.as_str()).collect();
    if !degraded.is_empty() {
        s.push_str(&format!(" · {} degraded ({})", degraded.len(), degraded.join(", ")));
    }
    s
}

/// One menu item, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A clickable (or, when disabled, informational) line.
    Action {
        /// What it does.
        action: MenuAction,
        /// Text.
        text: String,
        /// Clickable.
        enabled: bool,
    },
    /// A check item; radio items are check items of which one is checked.
    Check {
        /// What it does.
        action: MenuAction,
        /// Text.
        text: String,
        /// Checked.
        checked: bool,
    },
    /// A submenu.
    Submenu {
        /// Text.
        text: String,
        /// Items.
        items: Vec<Item>,
    },
    /// A separator line.
    Separator,
}

/// The whole menu.
pub type Menu = Vec<Item>;

fn action(action: MenuAction, text: impl Into<String>, enabled: bool) -> Item {
    Item::Action { action, text: text.into(), enabled }
}

/// A module's state in words: "running", "running (unhealthy)", "backoff (retry in 2s)", "failed: …".
pub fn state_text(m: &p::ModuleStatus) -> String {
    let word = serde_json::to_value(m.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    match m.state {
        ModuleState::Running if m.health == Some(p::Health::Unhealthy) => format!("{word} (unhealthy)"),
        ModuleState::Backoff => match m.retry_in_ms {
            Some(ms) => format!("{word} (retry in {:.1}s)", ms as f64 / 1000.0),
            None => word,
        },
        ModuleState::Failed | ModuleState::Exited => match &m.reason {
            Some(r) => format!("{word}: {r}"),
            None => word,
        },
        _ => word,
    }
}

fn module_submenu(project: &str, m: &p::ModuleStatus) -> Item {
    let live = matches!(m.state, ModuleState::Running | ModuleState::Starting | ModuleState::Backoff);
    let ids = |op| MenuAction::Module { op, project: project.into(), module: m.name.clone() };
    let mark = match () {
        _ if module_failed(m) => "✖",
        _ if module_degraded(m) => "◐",
        _ if m.state == ModuleState::Running => "●",
        _ => "○",
    };
    Item::Submenu {
        text: format!("{mark} {} — {}", m.name, state_text(m)),
        items: vec![
            action(
                MenuAction::ModuleState { project: project.into(), module: m.name.clone() },
                match m.pid {
                    Some(pid) => format!("{} (pid {pid}, {} restarts)", state_text(m), m.restarts),
                    None => state_text(m),
                },
                false,
            ),
            Item::Separator,
            action(ids(ModuleOp::Start), "Start", !live),
            action(ids(ModuleOp::Stop), "Stop", live),
            action(ids(ModuleOp::Restart), "Restart", true),
            action(MenuAction::ViewLogs { project: project.into(), module: m.name.clone() }, "View Logs", true),
        ],
    }
}

fn profile_items(project: &p::ProjectStatus, profiles: &p::ProfileListResult) -> Vec<Item> {
    profiles
        .profiles
        .iter()
        .map(|pr| Item::Check {
            action: MenuAction::UseProfile { project: project.path.clone(), profile: Some(pr.name.clone()) },
            text: pr.name.clone(),
            checked: profiles.active.as_deref() == Some(pr.name.as_str()),
        })
        .collect()
}

/// The menu for a view. `start_at_login` is the checkbox's state.
pub fn menu(view: &View, start_at_login: bool) -> Menu {
    let mut items = vec![action(MenuAction::Status, tooltip(view), false), Item::Separator];
    let status = view.status.as_ref().filter(|_| view.connected);
    match status {
        None => items.push(action(MenuAction::StartDaemon, "Start Daemon", true)),
        Some(s) => {
            for project in &s.projects {
                let mut text = project.name.clone();
                if let Some(pr) = &project.profile {
                    text.push_str(&format!(" ({pr})"));
                }
                let modules = project.modules.iter().map(|m| module_submenu(&project.path, m)).collect();
                items.push(Item::Submenu { text, items: modules });
            }
            let with_profiles: Vec<_> = s
                .projects
                .iter()
                .filter_map(|proj| view.profiles.get(&proj.path).map(|pl| (proj, pl)))
                .filter(|(_, pl)| !pl.profiles.is_empty())
                .collect();
            if !with_profiles.is_empty() {
                let mut profile_menu = Vec::new();
                for (proj, pl) in &with_profiles {
                    if with_profiles.len() > 1 {
                        if !profile_menu.is_empty() {
                            profile_menu.push(Item::Separator);
                        }
                        profile_menu.push(action(
                            MenuAction::ModuleState { project: proj.path.clone(), module: String::new() },
                            proj.name.clone(),
                            false,
                        ));
                    }
                    profile_menu.extend(profile_items(proj, pl));
                }
                items.push(Item::Submenu { text: "Profiles".into(), items: profile_menu });
            }
        }
    }
    items.push(Item::Separator);
    items.push(action(MenuAction::SearchMemory, "Search Memory…", status.is_some()));
    items.push(action(MenuAction::OpenDashboard, "Open Dashboard", true));
    items.push(Item::Check {
        action: MenuAction::StartAtLogin,
        text: "Start at Login".into(),
        checked: start_at_login,
    });
    items.push(Item::Separator);
    items.push(action(MenuAction::Quit, "Quit Steward Tray", true));
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(name: &str, state: ModuleState) -> p::ModuleStatus {
        p::ModuleStatus {
            name: name.into(),
            state,
            wanted: true,
            pid: (state == ModuleState::Running).then_some(100),
            run: Some(1),
            health: None,
            restarts: 0,
            state_for_ms: 0,
            last_exit: None,
            waiting_for: vec![],
            reason: None,
            exit_code: None,
            signal: None,
            retry_in_ms: None,
            attempt: None,
            cpu_percent: None,
            rss_bytes: None,
        }
    }

    fn view(modules: Vec<p::ModuleStatus>) -> View {
        let project = p::ProjectStatus {
            path: "/w/shop/steward.toml".into(),
            name: "shop".into(),
            profile: Some("full".into()),
            up: true,
            modules,
            config_errors: vec![],
            opened_ms: 0,
        };
        let status: p::StatusResult = serde_json::from_value(serde_json::json!({
            "version": "0.1.0", "protocolVersion": 1, "pid": 1, "startedMs": 0, "uptimeMs": 0, "home": "/h",
            "projects": [serde_json::to_value(&project).unwrap()]
        }))
        .unwrap();
        let profiles = p::ProfileListResult {
            active: Some("full".into()),
            profiles: vec![
                p::ProfileInfo { name: "full".into(), modules: None, is_default: true },
                p::ProfileInfo { name: "minimal".into(), modules: Some(vec!["api".into()]), is_default: false },
            ],
        };
        View { connected: true, status: Some(status), profiles: [(project.path, profiles)].into() }
    }

    fn transition(module: &str, from: ModuleState, to: ModuleState, reason: &str) -> p::EventParams {
        serde_json::from_value(serde_json::json!({
            "project": "/w/shop/steward.toml", "projectName": "shop", "atMs": 1,
            "kind": "transition", "module": module, "from": from, "to": to, "reason": reason,
        }))
        .unwrap()
    }

    /// The menu as indented text, for whole-menu comparisons.
    fn render(items: &[Item], depth: usize, out: &mut String) {
        for it in items {
            let pad = "  ".repeat(depth);
            match it {
                Item::Action { text, enabled, .. } => {
                    out.push_str(&format!("{pad}{text}{}\n", if *enabled { "" } else { " [disabled]" }))
                }
                Item::Check { text, checked, .. } => {
                    out.push_str(&format!("{pad}[{}] {text}\n", if *checked { "x" } else { " " }))
                }
                Item::Submenu { text, items } => {
                    out.push_str(&format!("{pad}{text} >\n"));
                    render(items, depth + 1, out);
                }
                Item::Separator => out.push_str(&format!("{pad}---\n")),
            }
        }
    }

    fn text(m: &Menu) -> String {
        let mut s = String::new();
        render(m, 0, &mut s);
        s
    }

    #[test]
    fn menu_of_a_running_project() {
        let v = view(vec![module("db", ModuleState::Running), module("api", ModuleState::Stopped)]);
        assert_eq!(
            text(&menu(&v, true)),
            "Steward: 1/2 running [disabled]
---
shop (full) >
  ● db — running >
    running (pid 100, 0 restarts) [disabled]
    ---
    Start [disabled]
    Stop
    Restart
    View Logs
  ○ api — stopped >
    stopped [disabled]
    ---
    Start
    Stop [disabled]
    Restart
    View Logs
Profiles >
  [x] full
  [ ] minimal
---
Search Memory…
Open Dashboard
[x] Start at Login
---
Quit Steward Tray
"
        );
        assert_eq!(health(&v), Health::AllRunning);
    }

    #[test]
    fn daemon_down_offers_to_start_it() {
        let mut v = view(vec![module("db", ModuleState::Running)]);
        v.connected = false;
        assert_eq!(health(&v), Health::DaemonDown);
        let t = text(&menu(&v, false));
        assert!(
            t.starts_with(
                "Steward: daemon not running [disabled]\n---\nStart Daemon\n---\nSearch Memory… [disabled]\n"
            ),
            "{t}"
        );
        assert!(t.contains("[ ] Start at Login"), "{t}");
    }

    #[test]
    fn health_follows_pushed_transitions() {
        let mut v = view(vec![module("db", ModuleState::Running), module("api", ModuleState::Running)]);
        assert_eq!(health(&v), Health::AllRunning);
        assert_eq!(
            v.apply(&transition("api", ModuleState::Running, ModuleState::Backoff, "exited with status 1")),
            Change::Redraw
        );
        assert_eq!(health(&v), Health::Degraded);
        assert_eq!(
            v.apply(&transition("api", ModuleState::Backoff, ModuleState::Failed, "restart loop")),
            Change::Redraw
        );
        assert_eq!(health(&v), Health::Failed);
        assert_eq!(tooltip(&v), "Steward: 1/2 running · 1 failed (api)");
        let t = text(&menu(&v, false));
        assert!(t.contains("✖ api — failed: restart loop >"), "{t}");
        assert_eq!(v.apply(&transition("api", ModuleState::Failed, ModuleState::Running, "started")), Change::Redraw);
        assert_eq!(health(&v), Health::AllRunning);
    }

    #[test]
    fn unhealthy_and_clean_exits() {
        let mut m = module("api", ModuleState::Running);
        m.health = Some(p::Health::Unhealthy);
        assert_eq!(health(&view(vec![m])), Health::Degraded);
        let mut m = module("job", ModuleState::Exited);
        m.exit_code = Some(0);
        assert_eq!(health(&view(vec![m.clone()])), Health::AllRunning);
        m.exit_code = Some(2);
        assert_eq!(health(&view(vec![m])), Health::Failed);
    }

    #[test]
    fn structural_events_ask_for_a_reload() {
        let mut v = view(vec![module("db", ModuleState::Running)]);
        assert_eq!(v.apply(&transition("new", ModuleState::Installed, ModuleState::Resolved, "")), Change::Reload);
        let applied: p::EventParams = serde_json::from_value(serde_json::json!({
            "project": "/w/shop/steward.toml", "projectName": "shop", "atMs": 1,
            "kind": "configApplied", "profile": "minimal", "summary": "stopped worker",
        }))
        .unwrap();
        assert_eq!(v.apply(&applied), Change::Reload);
    }

    #[test]
    fn several_projects_group_their_profiles() {
        let mut v = view(vec![module("db", ModuleState::Running)]);
        let s = v.status.as_mut().unwrap();
        let mut other = s.projects[0].clone();
        other.path = "/w/blog/steward.toml".into();
        other.name = "blog".into();
        s.projects.push(other);
        let pl = v.profiles.values().next().unwrap().clone();
        v.profiles.insert("/w/blog/steward.toml".into(), pl);
        let t = text(&menu(&v, false));
        assert!(
            t.contains("Profiles >\n  shop [disabled]\n  [x] full\n  [ ] minimal\n  ---\n  blog [disabled]\n"),
            "{t}"
        );
    }
}
