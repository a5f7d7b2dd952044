//! The windows' calls: everything a page can ask of the tray. The windows process relays each page call
//! (`invoke("call", {cmd, args})`) over the link ([`crate::link::ToTray::Call`]); [`handle`] reads it as a
//! [`Call`] and runs it, each a thin caller of [`crate::actions`] (or a read of the tray's state). Errors
//! answer as their message ([`crate::error::TrayError`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_protocol as p;

use crate::Tray;
use crate::actions;
use crate::error::{Result, TrayError};
use crate::link::{LOGS_EVENT, WindowKind};
use crate::notices::{Severity, Shown};
use crate::tray::ids::{MenuAction, ModuleOp};

// `DASHBOARD_RELAYED`: the dashboard bundle's `RELAYED` list, read from webview/src/bridge.ts by build.rs.
include!(concat!(env!("OUT_DIR"), "/relayed.rs"));

/// What the tray relays for the pages besides the dashboard's methods: the search and logs pages' reads and
/// the profiles.
const TRAY_RELAYED: &[&str] = &[p::MEMORY_SEARCH, p::LOGS_QUERY, p::PROFILE_LIST];

/// Whether `daemon_request` relays `method`: the dashboard bundle's list plus [`TRAY_RELAYED`].
pub fn is_relayed(method: &str) -> bool {
    relayed().any(|m| m == method)
}

/// Every relayed method.
pub fn relayed() -> impl Iterator<Item = &'static str> {
    DASHBOARD_RELAYED.iter().chain(TRAY_RELAYED).copied()
}

/// A page's call (the name is `cmd`, the fields are `args`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "cmd", content = "args", rename_all = "snake_case", deny_unknown_fields)]
pub enum Call {
    /// The plain bridge's `request`: one of the relayed daemon methods, params and result as JSON.
    DaemonRequest {
        /// Method name.
        method: String,
        /// Its params.
        params: Option<Value>,
    },
    /// Start/stop/restart a module (`op`: start, stop, restart).
    ModuleAction {
        /// Project path.
        project: String,
        /// Module name.
        module: String,
        /// start, stop or restart.
        op: String,
    },
    /// Switch a project's profile (`null`: the stack file's default).
    UseProfile {
        /// Project path.
        project: String,
        /// Profile name.
        profile: Option<String>,
    },
    /// Memory search, best first (empty query: no hits).
    SearchMemory {
        /// The query.
        query: String,
        /// At most this many hits (default 50, at most 200).
        limit: Option<u32>,
    },
    /// The plain bridge's `action`: host-side actions of the dashboard (`logs` with `{project, module}`,
    /// `search`).
    HostAction {
        /// logs or search.
        name: String,
        /// The action's arguments.
        args: Option<Value>,
    },
    /// Open a window by name (`dashboard`, `search`).
    OpenWindow {
        /// The window.
        kind: String,
    },
    /// Perform a tray menu item's action by its id (the same path as clicking it).
    MenuAction {
        /// The item's id.
        id: String,
    },
    /// What the tray shows.
    TrayState {},
    /// Turn start at login on or off; answers the new state.
    SetStartAtLogin {
        /// On or off.
        enabled: bool,
    },
    /// Set the lowest severity notified (`info`, `warning`, `critical`).
    SetNotifyLevel {
        /// The severity.
        level: String,
    },
    /// Follow a module's logs in the logs window: the last `limit` lines now, new ones as `steward://logs`
    /// events until the window closes or follows another module.
    FollowLogs {
        /// Project path.
        project: String,
        /// Module name.
        module: String,
        /// History lines (default 500).
        limit: Option<u32>,
    },
    /// Facts about the host for the pages.
    HostInfo {},
    /// The dashboard page's visible text, written to `STEWARD_TRAY_SMOKE_FILE` for the smoke test.
    SmokeReport {
        /// The text.
        text: String,
    },
}

impl Call {
    /// Reads a call from the link's `cmd` and `args` (null args: none).
    pub fn parse(cmd: &str, args: Value) -> Result<Call> {
        let args = if args.is_null() { Value::Object(Default::default()) } else { args };
        serde_json::from_value(serde_json::json!({"cmd": cmd, "args": args}))
            .map_err(|e| TrayError::InvalidArgument { what: "call", message: format!("`{cmd}`: {e}") })
    }
}

fn json<T: Serialize>(value: T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| TrayError::InvalidArgument { what: "result", message: e.to_string() })
}

/// Runs a page's call.
pub async fn handle(tray: &Arc<Tray>, cmd: &str, args: Value) -> Result<Value> {
    match Call::parse(cmd, args)? {
        Call::DaemonRequest { method, params } => {
            if !is_relayed(&method) {
                return Err(TrayError::NotRelayed { method, allowed: relayed().collect::<Vec<_>>().join(", ") });
            }
            let client = tray.daemon.client()?;
            Ok(client.raw_request(&method, params.unwrap_or_else(|| serde_json::json!({}))).await?)
        }
        Call::ModuleAction { project, module, op } => {
            let op = ModuleOp::parse(&op).ok_or(TrayError::InvalidArgument {
                what: "op",
                message: format!("`{op}` (expected start, stop or restart)"),
            })?;
            json(actions::module(tray, op, &project, &module).await?)
        }
        Call::UseProfile { project, profile } => json(actions::use_profile(tray, &project, profile.as_deref()).await?),
        Call::SearchMemory { query, limit } => json(actions::search_memory(tray, &query, limit).await?),
        Call::HostAction { name, args } => {
            let kind = match name.as_str() {
                "logs" => WindowKind::Logs { project: arg(&args, "project")?, module: arg(&args, "module")? },
                "search" => WindowKind::Search,
                other => {
                    return Err(TrayError::InvalidArgument {
                        what: "action",
                        message: format!("`{other}` (expected logs or search)"),
                    });
                }
            };
            json(actions::open_window(tray, &kind)?)
        }
        Call::OpenWindow { kind } => {
            let kind =
                kind.parse::<WindowKind>().map_err(|message| TrayError::InvalidArgument { what: "window", message })?;
            json(actions::open_window(tray, &kind)?)
        }
        Call::MenuAction { id } => {
            let action = MenuAction::from_id(&id).ok_or(TrayError::InvalidArgument {
                what: "menu id",
                message: format!("{id:?} is not an item of the tray menu"),
            })?;
            json(actions::perform_menu(tray, action).await?)
        }
        Call::TrayState {} => json(tray_state(tray)),
        Call::SetStartAtLogin { enabled } => json(actions::set_start_at_login(tray, enabled).await?),
        Call::SetNotifyLevel { level } => {
            let level = level
                .parse::<Severity>()
                .map_err(|message| TrayError::InvalidArgument { what: "severity", message })?;
            tray.notices.lock().unwrap_or_else(|e| e.into_inner()).min = level;
            json(level)
        }
        Call::FollowLogs { project, module, limit } => json(follow_logs(tray, project, module, limit).await?),
        Call::HostInfo {} => {
            json(HostInfo { smoke: tray.config.smoke_file.is_some(), home: tray.config.home.display().to_string() })
        }
        Call::SmokeReport { text } => {
            let Some(path) = &tray.config.smoke_file else {
                return Err(TrayError::InvalidArgument {
                    what: "smoke_report",
                    message: "no STEWARD_TRAY_SMOKE_FILE set".into(),
                });
            };
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)).map_err(|e| {
                TrayError::InvalidArgument { what: "smoke_report", message: format!("{}: {e}", path.display()) }
            })?;
            Ok(Value::Null)
        }
    }
}

fn arg(args: &Option<Value>, key: &'static str) -> Result<String> {
    args.as_ref().and_then(|a| a.get(key)).and_then(Value::as_str).map(str::to_string).ok_or(
        TrayError::InvalidArgument {
            what: key,
            message: format!("missing `{key}` (a string) in the action's arguments"),
        },
    )
}

/// What the tray shows, for pages and tests.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrayState {
    /// Connected to the daemon.
    pub connected: bool,
    /// Icon state (`null` before the first redraw).
    pub health: Option<crate::tray::model::Health>,
    /// When the icon last changed (ms since the epoch).
    pub health_changed_ms: u64,
    /// Tooltip / status line.
    pub tooltip: String,
    /// Menu item ids with their text, depth-first (`checked` for check items).
    pub menu: Vec<MenuEntry>,
    /// Notifications shown, newest last.
    pub notifications: Vec<Shown>,
    /// Start at login is on.
    pub start_at_login: bool,
    /// Lowest severity notified.
    pub notify_level: Severity,
}

/// One menu item in [`TrayState`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MenuEntry {
    /// Item id (empty for submenus and separators).
    pub id: String,
    /// Text.
    pub text: String,
    /// Nesting depth.
    pub depth: usize,
    /// Clickable.
    pub enabled: bool,
    /// For check items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<bool>,
}

fn flatten(items: &[crate::tray::model::Item], depth: usize, out: &mut Vec<MenuEntry>) {
    use crate::tray::model::Item;
    for it in items {
        match it {
            Item::Action { action, text, enabled } => {
                out.push(MenuEntry { id: action.id(), text: text.clone(), depth, enabled: *enabled, checked: None })
            }
            Item::Check { action, text, checked } => out.push(MenuEntry {
                id: action.id(),
                text: text.clone(),
                depth,
                enabled: true,
                checked: Some(*checked),
            }),
            Item::Submenu { text, items } => {
                out.push(MenuEntry { id: String::new(), text: text.clone(), depth, enabled: true, checked: None });
                flatten(items, depth + 1, out);
            }
            Item::Separator => {}
        }
    }
}

/// A module's log history and a live tail.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowedLogs {
    /// The tail's subscription; new lines arrive as `steward://logs` events to the logs window.
    pub subscription: u64,
    /// The last lines before the tail began, oldest first.
    pub lines: Vec<p::LogEntry>,
}

/// What the host page needs to know about its host.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostInfo {
    /// The smoke test wants the page's text (`smoke_report`).
    pub smoke: bool,
    /// The daemon's home.
    pub home: String,
}

/// The tray's current state.
pub fn tray_state(tray: &Tray) -> TrayState {
    let shown = tray.tray.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut menu = Vec::new();
    flatten(&shown.menu, 0, &mut menu);
    TrayState {
        connected: tray.daemon.view().connected,
        health: shown.health,
        health_changed_ms: shown.health_changed_ms,
        tooltip: shown.tooltip,
        menu,
        notifications: tray.shown.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        start_at_login: actions::start_at_login(tray),
        notify_level: tray.notices.lock().unwrap_or_else(|e| e.into_inner()).min,
    }
}

async fn follow_logs(tray: &Arc<Tray>, project: String, module: String, limit: Option<u32>) -> Result<FollowedLogs> {
    let client = tray.daemon.client()?;
    let filter = p::LogFilter { project: Some(project.clone()), module: Some(module.clone()), ..Default::default() };
    let mut sub = client.subscribe_logs(filter).await?;
    let mut lines = client
        .logs(p::LogQueryParams {
            project: Some(project),
            module: Some(module),
            before_id: Some(sub.cursor + 1),
            limit: Some(limit.unwrap_or(500).min(p::MAX_QUERY_LIMIT)),
            ..Default::default()
        })
        .await?;
    lines.sort_by_key(|l| l.id);
    let id = sub.id;
    let previous = tray.daemon.set_followed_logs(Some(id));
    if let Some(old) = previous {
        let _ = client.unsubscribe_logs(old).await;
    }
    let t = tray.clone();
    tray.rt.spawn(async move {
        while let Some(batch) = sub.next().await {
            let current = t.daemon.followed_logs() == Some(id);
            if !current || !t.host.has_window("logs") {
                break;
            }
            t.host.emit(LOGS_EVENT, Some("logs"), serde_json::json!({"subscription": id, "lines": batch}));
        }
        let _ = client.unsubscribe_logs(id).await;
    });
    Ok(FollowedLogs { subscription: id, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_list_is_read_from_the_bundle_and_every_method_exists() {
        // build.rs read bridge.ts; an empty list would mean it no longer understands the file.
        assert!(DASHBOARD_RELAYED.contains(&p::STATUS) && DASHBOARD_RELAYED.contains(&p::MODULE_RESTART));
        let known = [
            p::STATUS,
            p::METRICS,
            p::ALERTS,
            p::EVENTS_QUERY,
            p::MODULE_START,
            p::MODULE_STOP,
            p::MODULE_RESTART,
            p::MEMORY_SEARCH,
            p::LOGS_QUERY,
            p::PROFILE_LIST,
        ];
        for m in relayed() {
            assert!(known.contains(&m), "{m} is relayed but is not a read or a module action of the protocol");
        }
        assert!(!is_relayed("steward/daemon/stop"));
    }

    #[test]
    fn calls_parse_and_name_their_errors() {
        assert_eq!(Call::parse("tray_state", Value::Null).unwrap(), Call::TrayState {});
        assert_eq!(
            Call::parse("open_window", serde_json::json!({"kind": "search"})).unwrap(),
            Call::OpenWindow { kind: "search".into() }
        );
        let e = Call::parse("explode", Value::Null).unwrap_err().to_string();
        assert!(e.contains("unknown variant `explode`"), "{e}");
        let e = Call::parse("module_action", serde_json::json!({"project": "p"})).unwrap_err().to_string();
        assert!(e.contains("missing field `module`"), "{e}");
    }
}
