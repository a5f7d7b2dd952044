//! The one layer of user actions. Tray menu items and the windows' calls (`calls.rs`) are thin callers of
//! these functions, so "Restart" in the menu and in a window do exactly the same thing.

use std::sync::Arc;

use steward_protocol as p;

use crate::Tray;
use crate::error::{Result, TrayError};
use crate::link::WindowKind;
use crate::platform::Platform;
use crate::tray::ids::{MenuAction, ModuleOp};

/// Start, stop or restart a module (waits until it is done or failed, as the CLI does).
pub async fn module(tray: &Arc<Tray>, op: ModuleOp, project: &str, module: &str) -> Result<p::ActionResult> {
    let client = tray.daemon.client()?;
    let r = match op {
        ModuleOp::Start => client.start_module(project, module, true).await?,
        ModuleOp::Stop => client.stop_module(project, module, true).await?,
        ModuleOp::Restart => client.restart_module(project, module, true).await?,
    };
    Ok(r)
}

/// Switch a project's profile (`None`: every module), waiting until the switch is applied.
pub async fn use_profile(tray: &Arc<Tray>, project: &str, profile: Option<&str>) -> Result<p::ActionResult> {
    let daemon = tray.daemon.clone();
    let r = daemon.client()?.use_profile(project, profile, true).await?;
    // The menu's radio items follow the daemon's answer at once (the event would also trigger a reload).
    daemon.reload().await?;
    crate::tray::refresh(tray);
    Ok(r)
}

/// Full-text search of the memory (logs, events, notes), best first.
pub async fn search_memory(tray: &Arc<Tray>, query: &str, limit: Option<u32>) -> Result<Vec<p::MemoryHit>> {
    let query = query.trim();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let params =
        p::MemorySearchParams { query: query.into(), limit: Some(limit.unwrap_or(50).min(200)), ..Default::default() };
    Ok(tray.daemon.client()?.search(params).await?)
}

/// Open (or focus) a window: in the windows process, started for it when none runs.
pub fn open_window(tray: &Arc<Tray>, kind: &WindowKind) -> Result<()> {
    tray.host.open(tray, kind)
}

/// Whether the tray's own login item exists.
pub fn start_at_login(tray: &Tray) -> bool {
    tray.config.login_item.is_file()
}

/// Turns start at login on or off: the daemon's service (`steward service install|uninstall`) and the tray's
/// own login item. Returns the new state.
pub async fn set_start_at_login(tray: &Arc<Tray>, enabled: bool) -> Result<bool> {
    let config = tray.config.clone();
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
    crate::tray::refresh(tray);
    Ok(enabled)
}

/// Ask the connection loop to start the daemon now.
pub fn start_daemon(tray: &Tray) {
    tray.daemon.request_start();
}

/// Performs a menu item's action (the tray's menu handler and the `menu_action` call both end here).
pub async fn perform_menu(tray: &Arc<Tray>, action: MenuAction) -> Result<()> {
    match action {
        MenuAction::Status | MenuAction::ModuleState { .. } => Ok(()),
        MenuAction::Module { op, project, module: m } => module(tray, op, &project, &m).await.map(drop),
        MenuAction::ViewLogs { project, module } => open_window(tray, &WindowKind::Logs { project, module }),
        MenuAction::UseProfile { project, profile } => use_profile(tray, &project, profile.as_deref()).await.map(drop),
        MenuAction::SearchMemory => open_window(tray, &WindowKind::Search),
        MenuAction::OpenDashboard => open_window(tray, &WindowKind::Dashboard),
        MenuAction::StartAtLogin => {
            let now = start_at_login(tray);
            set_start_at_login(tray, !now).await.map(drop)
        }
        MenuAction::StartDaemon => {
            start_daemon(tray);
            Ok(())
        }
        MenuAction::Quit => {
            tray.host.quit();
            tray.ui().quit();
            Ok(())
        }
    }
}
