//! The one table of menu ids. Every menu item's id is made by [`MenuAction::id`] and read back by
//! [`MenuAction::from_id`], so the menu model, the native menu and the event handler cannot disagree.
//!
//! Fixed items have a fixed id (the `FIXED` table); per-module and per-profile items carry their arguments,
//! joined by the unit separator (U+001F, which no project path, module or profile name contains).

/// What a module item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModuleOp {
    /// `steward/module/start`.
    Start,
    /// `steward/module/stop`.
    Stop,
    /// `steward/module/restart`.
    Restart,
}

impl ModuleOp {
    /// The wire word (`start`, `stop`, `restart`).
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleOp::Start => "start",
            ModuleOp::Stop => "stop",
            ModuleOp::Restart => "restart",
        }
    }

    /// Parses the wire word.
    pub fn parse(s: &str) -> Option<ModuleOp> {
        match s {
            "start" => Some(ModuleOp::Start),
            "stop" => Some(ModuleOp::Stop),
            "restart" => Some(ModuleOp::Restart),
            _ => None,
        }
    }
}

/// Everything a menu item can do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MenuAction {
    /// The status line (informational, disabled).
    Status,
    /// A module's state line inside its submenu (informational, disabled).
    ModuleState {
        /// Project path.
        project: String,
        /// Module name.
        module: String,
    },
    /// Start/stop/restart a module.
    Module {
        /// What to do.
        op: ModuleOp,
        /// Project path.
        project: String,
        /// Module name.
        module: String,
    },
    /// Open the log window of a module.
    ViewLogs {
        /// Project path.
        project: String,
        /// Module name.
        module: String,
    },
    /// Switch a project's profile (`None`: every module).
    UseProfile {
        /// Project path.
        project: String,
        /// Profile name.
        profile: Option<String>,
    },
    /// Open the memory search window.
    SearchMemory,
    /// Open the dashboard window.
    OpenDashboard,
    /// Toggle start at login.
    StartAtLogin,
    /// Start the daemon (shown while it is down).
    StartDaemon,
    /// Quit the tray app.
    Quit,
}

const SEP: char = '\u{1f}';

/// Fixed ids.
const FIXED: &[(&str, MenuAction)] = &[
    ("status", MenuAction::Status),
    ("search-memory", MenuAction::SearchMemory),
    ("open-dashboard", MenuAction::OpenDashboard),
    ("start-at-login", MenuAction::StartAtLogin),
    ("start-daemon", MenuAction::StartDaemon),
    ("quit", MenuAction::Quit),
];

impl MenuAction {
    /// The menu item id.
    pub fn id(&self) -> String {
        let join = |parts: &[&str]| parts.join(&SEP.to_string());
        match self {
            MenuAction::ModuleState { project, module } => join(&["module-state", project, module]),
            MenuAction::Module { op, project, module } => join(&["module", op.as_str(), project, module]),
            MenuAction::ViewLogs { project, module } => join(&["logs", project, module]),
            MenuAction::UseProfile { project, profile } => match profile {
                Some(p) => join(&["profile", project, p]),
                None => join(&["profile-none", project]),
            },
            fixed => FIXED.iter().find(|(_, a)| a == fixed).map(|(id, _)| (*id).to_string()).unwrap_or_default(),
        }
    }

    /// Reads an id made by [`MenuAction::id`]; `None` for anything else.
    pub fn from_id(id: &str) -> Option<MenuAction> {
        if let Some((_, a)) = FIXED.iter().find(|(fid, _)| *fid == id) {
            return Some(a.clone());
        }
        let parts: Vec<&str> = id.split(SEP).collect();
        let s = |i: usize| parts.get(i).map(|p| (*p).to_string());
        match (parts.first().copied()?, parts.len()) {
            ("module-state", 3) => Some(MenuAction::ModuleState { project: s(1)?, module: s(2)? }),
            ("module", 4) => Some(MenuAction::Module { op: ModuleOp::parse(parts[1])?, project: s(2)?, module: s(3)? }),
            ("logs", 3) => Some(MenuAction::ViewLogs { project: s(1)?, module: s(2)? }),
            ("profile", 3) => Some(MenuAction::UseProfile { project: s(1)?, profile: Some(s(2)?) }),
            ("profile-none", 2) => Some(MenuAction::UseProfile { project: s(1)?, profile: None }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_through_its_id() {
        let p = "/home/me/shop/steward.toml".to_string();
        let mut all: Vec<MenuAction> = FIXED.iter().map(|(_, a)| a.clone()).collect();
        for op in [ModuleOp::Start, ModuleOp::Stop, ModuleOp::Restart] {
            all.push(MenuAction::Module { op, project: p.clone(), module: "api".into() });
        }
        all.push(MenuAction::ModuleState { project: p.clone(), module: "db".into() });
        all.push(MenuAction::ViewLogs { project: p.clone(), module: "db".into() });
        all.push(MenuAction::UseProfile { project: p.clone(), profile: Some("minimal".into()) });
        all.push(MenuAction::UseProfile { project: p.clone(), profile: None });
        let mut ids = std::collections::HashSet::new();
        for a in &all {
            let id = a.id();
            assert!(!id.is_empty(), "{a:?} has no id");
            assert!(ids.insert(id.clone()), "duplicate id {id:?}");
            assert_eq!(MenuAction::from_id(&id).as_ref(), Some(a), "{id:?}");
        }
    }

    #[test]
    fn foreign_ids_are_refused() {
        for id in ["", "quit2", "module\u{1f}explode\u{1f}p\u{1f}m", "logs\u{1f}only-project", "profile"] {
            assert_eq!(MenuAction::from_id(id), None, "{id:?}");
        }
    }
}
