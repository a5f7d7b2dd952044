//! The windows' IPC surface: every `#[tauri::command]`, each a thin caller of [`crate::actions`] (or a
//! read of the app's state). Errors answer as their message ([`crate::error::TrayError`]).

use serde::Serialize;
use serde_json::Value;
use steward_protocol as p;
use tauri::{AppHandle, Emitter, Manager, Runtime};

use crate::AppState;
use crate::actions;
use crate::error::{Result, TrayError};
use crate::notices::{Severity, Shown};
use crate::tray::ids::{MenuAction, ModuleOp};
use crate::windows::WindowKind;

/// Daemon methods a page may call through `daemon_request` (the dashboard bundle's `RELAYED` list in
/// webview/src/bridge.ts, plus what the search and logs pages read).
pub const RELAYED: &[&str] = &[
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

/// Name of the window event carrying a followed module's new log lines (`{subscription, lines}`).
pub const LOGS_EVENT: &str = "steward://logs";

/// The invoke handler with every command.
pub fn handler<R: Runtime>() -> impl Fn(tauri::ipc::Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        daemon_request,
        module_action,
        use_profile,
        search_memory,
        host_action,
        open_window,
        menu_action,
        tray_state,
        set_start_at_login,
        set_notify_level,
        follow_logs,
        host_info,
        smoke_report,
    ]
}

/// The plain bridge's `request`: one of the [`RELAYED`] daemon methods, params and result as JSON.
#[tauri::command]
async fn daemon_request<R: Runtime>(app: AppHandle<R>, method: String, params: Option<Value>) -> Result<Value> {
    if !RELAYED.contains(&method.as_str()) {
        return Err(TrayError::NotRelayed { method, allowed: RELAYED.join(", ") });
    }
    let client = app.state::<AppState>().daemon.client()?;
    Ok(client.raw_request(&method, params.unwrap_or_else(|| serde_json::json!({}))).await?)
}

/// Start/stop/restart a module (`op`: start, stop, restart).
#[tauri::command]
async fn module_action<R: Runtime>(
    app: AppHandle<R>,
    project: String,
    module: String,
    op: String,
) -> Result<p::ActionResult> {
    let op = ModuleOp::parse(&op).ok_or(TrayError::InvalidArgument {
        what: "op",
        message: format!("`{op}` (expected start, stop or restart)"),
    })?;
    actions::module(&app, op, &project, &module).await
}

/// Switch a project's profile (`null`: every module).
#[tauri::command]
async fn use_profile<R: Runtime>(
    app: AppHandle<R>,
    project: String,
    profile: Option<String>,
) -> Result<p::ActionResult> {
    actions::use_profile(&app, &project, profile.as_deref()).await
}

/// Memory search, best first (empty query: no hits).
#[tauri::command]
async fn search_memory<R: Runtime>(app: AppHandle<R>, query: String, limit: Option<u32>) -> Result<Vec<p::MemoryHit>> {
    actions::search_memory(&app, &query, limit).await
}

fn arg(args: &Option<Value>, key: &'static str) -> Result<String> {
    args.as_ref().and_then(|a| a.get(key)).and_then(Value::as_str).map(str::to_string).ok_or(
        TrayError::InvalidArgument {
            what: key,
            message: format!("missing `{key}` (a string) in the action's arguments"),
        },
    )
}

/// The plain bridge's `action`: host-side actions of the dashboard (`logs` with `{project, module}`,
/// `search`).
#[tauri::command]
async fn host_action<R: Runtime>(app: AppHandle<R>, name: String, args: Option<Value>) -> Result<()> {
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
    actions::open_window(&app, &kind)
}

/// Open a window by name (`dashboard`, `search`).
#[tauri::command]
async fn open_window<R: Runtime>(app: AppHandle<R>, kind: String) -> Result<()> {
    let kind = kind.parse::<WindowKind>().map_err(|message| TrayError::InvalidArgument { what: "window", message })?;
    actions::open_window(&app, &kind)
}

/// Perform a tray menu item's action by its id (the same path as clicking it).
#[tauri::command]
async fn menu_action<R: Runtime>(app: AppHandle<R>, id: String) -> Result<()> {
    let action = MenuAction::from_id(&id).ok_or(TrayError::InvalidArgument {
        what: "menu id",
        message: format!("{id:?} is not an item of the tray menu"),
    })?;
    actions::perform_menu(&app, action).await
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

/// The tray's current state.
#[tauri::command]
async fn tray_state<R: Runtime>(app: AppHandle<R>) -> Result<TrayState> {
    let state = app.state::<AppState>();
    let shown = state.tray.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut menu = Vec::new();
    flatten(&shown.menu, 0, &mut menu);
    Ok(TrayState {
        connected: state.daemon.view().connected,
        health: shown.health,
        health_changed_ms: shown.health_changed_ms,
        tooltip: shown.tooltip,
        menu,
        notifications: state.shown.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        start_at_login: actions::start_at_login(&app),
        notify_level: state.notices.lock().unwrap_or_else(|e| e.into_inner()).min,
    })
}

/// Turn start at login on or off; answers the new state.
#[tauri::command]
async fn set_start_at_login<R: Runtime>(app: AppHandle<R>, enabled: bool) -> Result<bool> {
    actions::set_start_at_login(&app, enabled).await
}

/// Set the lowest severity notified (`info`, `warning`, `critical`).
#[tauri::command]
async fn set_notify_level<R: Runtime>(app: AppHandle<R>, level: String) -> Result<Severity> {
    let level =
        level.parse::<Severity>().map_err(|message| TrayError::InvalidArgument { what: "severity", message })?;
    app.state::<AppState>().notices.lock().unwrap_or_else(|e| e.into_inner()).min = level;
    Ok(level)
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

/// Follow a module's logs in the logs window: the last `limit` lines now, new ones as `steward://logs`
/// events until the window closes or follows another module.
#[tauri::command]
async fn follow_logs<R: Runtime>(
    app: AppHandle<R>,
    project: String,
    module: String,
    limit: Option<u32>,
) -> Result<FollowedLogs> {
    let state = app.state::<AppState>();
    let client = state.daemon.client()?;
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
    let previous = state.daemon.set_followed_logs(Some(id));
    if let Some(old) = previous {
        let _ = client.unsubscribe_logs(old).await;
    }
    let app2 = app.clone();
    tauri::async_runtime::spawn(async move {
        while let Some(batch) = sub.next().await {
            let Some(state) = app2.try_state::<AppState>() else { break };
            let current = state.daemon.followed_logs() == Some(id);
            if !current || app2.get_webview_window("logs").is_none() {
                break;
            }
            let _ = app2.emit_to("logs", LOGS_EVENT, serde_json::json!({"subscription": id, "lines": batch}));
        }
        let _ = client.unsubscribe_logs(id).await;
    });
    Ok(FollowedLogs { subscription: id, lines })
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

/// Facts about the host for the pages.
#[tauri::command]
async fn host_info<R: Runtime>(app: AppHandle<R>) -> Result<HostInfo> {
    let state = app.state::<AppState>();
    Ok(HostInfo { smoke: state.config.smoke_file.is_some(), home: state.config.home.display().to_string() })
}

/// The dashboard page's visible text, written to `STEWARD_TRAY_SMOKE_FILE` for the smoke test.
#[tauri::command]
async fn smoke_report<R: Runtime>(app: AppHandle<R>, text: String) -> Result<()> {
    let state = app.state::<AppState>();
    let Some(path) = &state.config.smoke_file else {
        return Err(TrayError::InvalidArgument {
            what: "smoke_report",
            message: "no STEWARD_TRAY_SMOKE_FILE set".into(),
        });
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| TrayError::InvalidArgument { what: "smoke_report", message: format!("{}: {e}", path.display()) })
}
