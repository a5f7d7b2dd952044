//! The tray icon and its menu: [`model`] decides what they show (pure), [`ids`] names every item, [`icon`]
//! draws the icon; this module puts them on screen and routes clicks to [`crate::actions`].

pub mod icon;
pub mod ids;
pub mod model;

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Runtime};

use crate::AppState;
use crate::platform::Platform;
use ids::MenuAction;
use model::{Health, Item};

/// The tray icon's id.
pub const TRAY_ID: &str = "steward";

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

fn icon_image(health: Health) -> Image<'static> {
    Image::new_owned(icon::pixels(health, Platform::current().template_icon()), icon::SIZE, icon::SIZE)
}

/// Creates the tray icon (in `setup`, on the main thread).
pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<TrayIcon<R>> {
    let menu = native_menu(app, &model::menu(&model::View::default(), crate::actions::start_at_login(app)))?;
    let tray = TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon_image(Health::DaemonDown))
        .icon_as_template(Platform::current().template_icon())
        .tooltip("Steward: connecting…")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app: &AppHandle<R>, event: MenuEvent| handle_menu_event(app, event.id().as_ref()))
        .build(app)?;
    Ok(tray)
}

/// A menu item was chosen: run its action off the main thread; failures are logged and notified.
pub fn handle_menu_event<R: Runtime>(app: &AppHandle<R>, id: &str) {
    let Some(action) = MenuAction::from_id(id) else {
        tracing::warn!("menu event with an unknown id {id:?}");
        return;
    };
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(e) = crate::actions::perform_menu(&app, action.clone()).await {
            tracing::warn!("{action:?}: {e}");
            crate::notify::error(&app, &e.to_string());
        }
    });
}

/// Recomputes the model from the cached view and updates the icon, tooltip and menu where they changed.
/// Callable from any thread: the model is computed here, the native tray is updated on the main thread from
/// the newest model (so two refreshes racing each other cannot leave an older menu on screen).
pub fn refresh<R: Runtime>(app: &AppHandle<R>) {
    let Some(state) = app.try_state::<AppState>() else { return };
    let view = state.daemon.view();
    let health = model::health(&view);
    let tooltip = model::tooltip(&view);
    let menu = model::menu(&view, crate::actions::start_at_login(app));
    {
        let mut shown = state.tray.lock().unwrap_or_else(|e| e.into_inner());
        if shown.health != Some(health) {
            shown.health = Some(health);
            shown.health_changed_ms = now_ms();
            tracing::info!("tray icon: {}", health.label());
        }
        shown.tooltip = tooltip;
        shown.menu = menu;
    }
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        // No native tray (the mock runtime): the model is what there is; record its changes now.
        apply(&state, None::<&TrayIcon<R>>, app);
        return;
    };
    let app2 = app.clone();
    // Menus are built on the main thread (GTK); the icon is set there too, so the recorded time is when the
    // icon really changed.
    let _ = app.run_on_main_thread(move || {
        if let Some(state) = app2.try_state::<AppState>() {
            apply(&state, Some(&tray), &app2);
        }
    });
}

/// Brings the native tray (when there is one) up to the newest model.
fn apply<R: Runtime>(state: &AppState, tray: Option<&TrayIcon<R>>, app: &AppHandle<R>) {
    let shown = state.tray.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut applied = state.tray_applied.lock().unwrap_or_else(|e| e.into_inner());
    let Some(health) = shown.health else { return };
    if applied.health != Some(health) {
        if let Some(tray) = tray {
            if let Err(e) = tray.set_icon(Some(icon_image(health))) {
                tracing::warn!("setting the tray icon: {e}");
            }
            let _ = tray.set_icon_as_template(Platform::current().template_icon());
        }
        record_health(state, health);
    }
    if let Some(tray) = tray {
        if applied.tooltip != shown.tooltip {
            let _ = tray.set_tooltip(Some(&shown.tooltip));
        }
        if applied.menu != shown.menu {
            match native_menu(app, &shown.menu) {
                Ok(m) => {
                    if let Err(e) = tray.set_menu(Some(m)) {
                        tracing::warn!("setting the tray menu: {e}");
                    }
                }
                Err(e) => tracing::warn!("building the tray menu: {e}"),
            }
        }
    }
    *applied = shown;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Appends `<epoch ms> <health>` to the state file, when one is configured (benchmarks read it).
fn record_health(state: &AppState, health: Health) {
    let Some(path) = &state.config.state_file else { return };
    use std::io::Write;
    let line = format!("{} {}\n", now_ms(), health.label().replace(' ', "-"));
    let written =
        std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        tracing::warn!("{}: {e}", path.display());
    }
}

fn native_item<R: Runtime>(app: &AppHandle<R>, item: &Item) -> tauri::Result<Box<dyn IsMenuItem<R>>> {
    Ok(match item {
        Item::Action { action, text, enabled } => {
            Box::new(MenuItem::with_id(app, action.id(), text, *enabled, None::<&str>)?)
        }
        Item::Check { action, text, checked } => {
            Box::new(CheckMenuItem::with_id(app, action.id(), text, true, *checked, None::<&str>)?)
        }
        Item::Separator => Box::new(PredefinedMenuItem::separator(app)?),
        Item::Submenu { text, items } => {
            let sub = Submenu::new(app, text, true)?;
            for child in items {
                sub.append(native_item(app, child)?.as_ref())?;
            }
            Box::new(sub)
        }
    })
}

/// The native menu for a model.
pub fn native_menu<R: Runtime>(app: &AppHandle<R>, model: &model::Menu) -> tauri::Result<Menu<R>> {
    let menu = Menu::new(app)?;
    for item in model {
        menu.append(native_item(app, item)?.as_ref())?;
    }
    Ok(menu)
}
