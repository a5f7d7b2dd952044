//! The tray icon and its menu as the app sees them: [`model`] decides what they show (pure), [`ids`] names
//! every item, [`icon`] draws the icon; [`refresh`] computes the newest model and asks the UI to show it, and
//! [`take_changes`] tells the UI what to change (the native side is `crate::native`).

pub mod icon;
pub mod ids;
pub mod model;

use std::sync::Arc;

use crate::Tray;
use ids::MenuAction;
use model::Health;

/// What the tray shows (kept so a redraw only touches what changed, and for the `tray_state` command).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shown {
    /// Icon state (`None` before the first redraw).
    pub health: Option<Health>,
    /// Tooltip / status line.
    pub tooltip: String,
    /// The menu model.
    pub menu: model::Menu,
    /// Milliseconds since the epoch of the last icon change.
    pub health_changed_ms: u64,
}

/// What the screen must change to show the newest model (each `None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// The new icon.
    pub health: Option<Health>,
    /// The new tooltip.
    pub tooltip: Option<String>,
    /// The new menu.
    pub menu: Option<model::Menu>,
}

/// A menu item was chosen (the native menu's handler; also the `menu_action` call): its action runs on the
/// tray's runtime; a failure is logged and notified.
pub fn handle_menu_event(tray: &Arc<Tray>, id: &str) {
    let Some(action) = MenuAction::from_id(id) else {
        tracing::warn!("menu event with an unknown id {id:?}");
        return;
    };
    let t = tray.clone();
    tray.rt.spawn(async move {
        if let Err(e) = crate::actions::perform_menu(&t, action.clone()).await {
            tracing::warn!("{action:?}: {e}");
            crate::notify::error(&t, &e.to_string());
        }
    });
}

/// Recomputes the model from the cached view and asks the UI to show it. Callable from any thread: the UI
/// takes the newest model when it applies it (so two refreshes racing each other cannot leave an older menu
/// on screen).
pub fn refresh(tray: &Arc<Tray>) {
    let view = tray.daemon.view();
    let health = model::health(&view);
    let tooltip = model::tooltip(&view);
    let menu = model::menu(&view, crate::actions::start_at_login(tray));
    {
        let mut shown = tray.tray.lock().unwrap_or_else(|e| e.into_inner());
        if shown.health != Some(health) {
            shown.health = Some(health);
            shown.health_changed_ms = now_ms();
            tracing::info!("tray icon: {}", health.label());
        }
        shown.tooltip = tooltip;
        shown.menu = menu;
    }
    tray.ui().redraw(tray);
}

/// What differs between the newest model and what the screen shows; the screen is then taken to show the
/// newest model, and an icon change is recorded in the state file.
pub fn take_changes(tray: &Tray) -> Changes {
    let shown = tray.tray.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut applied = tray.tray_applied.lock().unwrap_or_else(|e| e.into_inner());
    let Some(health) = shown.health else { return Changes::default() };
    let changes = Changes {
        health: (applied.health != Some(health)).then_some(health),
        tooltip: (applied.tooltip != shown.tooltip).then(|| shown.tooltip.clone()),
        menu: (applied.menu != shown.menu).then(|| shown.menu.clone()),
    };
    if changes.health.is_some() {
        record_health(tray, health);
    }
    *applied = shown;
    changes
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Appends `<epoch ms> <health>` to the state file, when one is configured (benchmarks read it).
fn record_health(tray: &Tray, health: Health) {
    let Some(path) = &tray.config.state_file else { return };
    use std::io::Write;
    let line = format!("{} {}\n", now_ms(), health.label().replace(' ', "-"));
    let written =
        std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        tracing::warn!("{}: {e}", path.display());
    }
}
