//! The one layer of user actions. Tray menu items and `#[tauri::command]`s are thin callers of these
//! functions, so "Restart" in the menu and the dashboard's restart button do exactly the same thing.

use steward_protocol as p;
use tauri::{AppHandle, Manager, Runtime};

use crate::AppState;
use crate::error::{Result, TrayError};
use crate::platform::Platform;
use crate::tray::ids::{MenuAction, ModuleOp};
use crate::windows::WindowKind;

fn state<R: Runtime>(app: &AppHandle<R>) -> tauri::State<'_, AppState> {
    app.state::<AppState>()
}

/// Start, stop or restart a module (waits until it is done or failed, as the CLI does).
pub async fn module<R: Runtime>(
    app: &AppHandle<R>,
    op: ModuleOp,
    project: &str,
    module: &str,
) -> Result<p::ActionResult> {
    let client = state(app).daemon.client()?;
    let r = match op {
        ModuleOp::Start => client.start_module(project, module, true).await?,
        ModuleOp::Stop => client.stop_module(project, module, true).await?,
        ModuleOp::Restart => client.restart_module(project, module, true).await?,
    };
    Ok(r)
}

/// Switch a project's profile (`None`: every module), waiting until the switch is applied.
pub async fn use_profile<R: Runtime>(
    app: &AppHandle<R>,
    project: &str,
    profile: Option<&str>,
) -> Result<p::ActionResult> {
    let daemon = state(app).daemon.clone();
    let r = daemon.client()?.use_profile(project, profile, true).await?;
    // The menu's radio items follow the daemon's answer at once (the event would also trigger a reload).
    daemon.reload().await?;
    crate::tray::refresh(app);
    Ok(r)
}

/// Full-text search of the memory (logs, events, notes), best first.
pub async fn search_memory<R: Runtime>(
    app: &AppHandle<R>,
    query: &str,
    limit: Option<u32>,
) -> Result<Vec<p::MemoryHit>> {
    let query = query.trim();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let params =
        p::MemorySearchParams { query: query.into(), limit: Some(limit.unwrap_or(50).min(200)), ..Default::default() };
    Ok(state(app).daemon.client()?.search(params).await?)
}

/// Open (or focus) a window.
pub fn open_window<R: Runtime>(app: &AppHandle<R>, kind: &WindowKind) -> Result<()> {
    crate::windows::open(app, kind)
}

/// Whether the tray's own login item exists.
pub fn start_at_login<R: Runtime>(app: &AppHandle<R>) -> bool {
    state(app).config.login_item.is_file()
}

/// Turns start at login on or off: the daemon's service (`steward service install|uninstall`) and the tray's
/// own login item. Returns the new state.
pub async fn set_start_at_login<R: Runtime>(app: &AppHandle<R>, enabled: bool) -> Result<bool> {
    let config = state(app).config.clone();
    let bin = config.steward_bin.clone().ok_or_else(|| {
        TrayError::StartAtLogin("cannot find the `steward` binary (set STEWARD_BIN or put it on PATH)".into())
    })?;
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.arg("service").arg(if enabled { "install" } else { "uninstall" });
    if enabled {
        cmd.args(&config.service_args);
    }
    cmd.env("STEWARD_HOME", &config.home).envs(config.service_env.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().await.map_err(|e| TrayError::StartAtLogin(format!("{}: {e}", bin.display())))?;
    if !out.status.success() {
        return Err(TrayError::StartAtLogin(format!(
            "`steward service {}` failed ({}): {}",
            if enabled { "install" } else { "uninstall" },
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let exe = std::env::current_exe().map_err(|e| TrayError::StartAtLogin(e.to_string()))?;
    let contents = enabled.then(|| Platform::current().login_item(&exe));
    crate::platform::set_login_item(&config.login_item, contents.as_deref())
        .map_err(|e| TrayError::StartAtLogin(format!("{}: {e}", config.login_item.display())))?;
    crate::tray::refresh(app);
    Ok(enabled)
}

/// Ask the connection loop to start the daemon now.
pub fn start_daemon<R: Runtime>(app: &AppHandle<R>) {
    state(app).daemon.request_start();
}

/// Performs a menu item's action (the tray's menu handler and the `menu_action` command both end here).
pub async fn perform_menu<R: Runtime>(app: &AppHandle<R>, action: MenuAction) -> Result<()> {
    match action {
        MenuAction::Status | MenuAction::ModuleState { .. } => Ok(()),
        MenuAction::Module { op, project, module: m } => module(app, op, &project, &m).await.map(drop),
        MenuAction::ViewLogs { project, module } => open_window(app, &WindowKind::Logs { project, module }),
        MenuAction::UseProfile { project, profile } => use_profile(app, &project, profile.as_deref()).await.map(drop),
        MenuAction::SearchMemory => open_window(app, &WindowKind::Search),
        MenuAction::OpenDashboard => open_window(app, &WindowKind::Dashboard),
        MenuAction::StartAtLogin => {
            let now = start_at_login(app);
            set_start_at_login(app, !now).await.map(drop)
        }
        MenuAction::StartDaemon => {
            start_daemon(app);
            Ok(())
        }
        MenuAction::Quit => {
            app.exit(0);
            Ok(())
        }
    }
}
