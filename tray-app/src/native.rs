//! The tray on screen: a tao event loop on the main thread (GTK on Linux, AppKit on macOS), the icon and menu
//! with `tray-icon` + `muda` (the crates Tauri itself uses, without its web engine), notifications with
//! `notify-rust`. Everything else runs on a small tokio runtime; it reaches the main thread through the event
//! loop's proxy ([`Ui::redraw`]).

use std::sync::{Arc, Mutex};

use tao::event::{Event, StartCause};
use tao::event_loop::{ControlFlow, EventLoopBuilder, EventLoopProxy};
use tray_icon::menu::{CheckMenuItem, IsMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem, Submenu};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

use crate::platform::Platform;
use crate::tray::model::{self, Health, Item};
use crate::{Config, Tray, Ui};

/// What the async side asks of the main thread.
#[derive(Debug, Clone, Copy)]
enum UiEvent {
    Redraw,
    Quit,
}

struct NativeUi {
    proxy: Mutex<EventLoopProxy<UiEvent>>,
}

impl NativeUi {
    fn send(&self, event: UiEvent) {
        // Fails only once the loop has exited.
        let _ = self.proxy.lock().unwrap_or_else(|e| e.into_inner()).send_event(event);
    }
}

impl Ui for NativeUi {
    fn redraw(&self, _tray: &Arc<Tray>) {
        self.send(UiEvent::Redraw);
    }

    fn notify(&self, title: &str, body: &str) -> Result<(), String> {
        notify_rust::Notification::new()
            .appname("Steward")
            .summary(title)
            .body(body)
            .show()
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn quit(&self) {
        self.send(UiEvent::Quit);
    }
}

/// GTK probes OpenGL when it opens the X display (GDK's X11 backend picks its visuals through GLX, which
/// loads libGL and the driver; on a machine without a GPU driver that is Mesa's software renderer and libLLVM,
/// ~48 MB resident for good). The tray draws no GL, so `GDK_GL=disable` skips the probe. Set for this process
/// only, and only when the user did not set it; the windows process gets it removed again (see
/// [`Config::windows_env_remove`]). Returns whether it was set here.
#[cfg(target_os = "linux")]
fn avoid_gl_probe() -> bool {
    if std::env::var_os("GDK_GL").is_some() {
        return false;
    }
    // SAFETY: called first thing in `run`, before any other thread of this process exists.
    unsafe { std::env::set_var("GDK_GL", "disable") };
    true
}

/// Runs the tray; returns the process exit code when it cannot start (otherwise the event loop exits the
/// process when the tray quits).
pub fn run() -> i32 {
    #[cfg(target_os = "linux")]
    let gl_set_here = avoid_gl_probe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEWARD_TRAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    #[cfg(target_os = "linux")]
    if gl_set_here {
        config.windows_env_remove.push("GDK_GL".into());
    }
    // Two workers: the tray's async work is a socket and a few timers.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_name("steward-tray")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tray's runtime: {e}");
            return 1;
        }
    };
    let event_loop = EventLoopBuilder::<UiEvent>::with_user_event().build();
    #[cfg(target_os = "macos")]
    let event_loop = {
        use tao::platform::macos::{ActivationPolicy, EventLoopExtMacOS};
        let mut event_loop = event_loop;
        // A menu-bar accessory: no Dock icon, no app menu.
        event_loop.set_activation_policy(ActivationPolicy::Accessory);
        event_loop
    };
    let ui = NativeUi { proxy: Mutex::new(event_loop.create_proxy()) };
    let tray = Tray::new(config, rt.handle().clone(), Box::new(ui));
    let t = tray.clone();
    MenuEvent::set_event_handler(Some(move |e: MenuEvent| crate::tray::handle_menu_event(&t, e.id().as_ref())));

    let mut icon: Option<TrayIcon> = None;
    event_loop.run(move |event, _, control_flow| {
        *control_flow = ControlFlow::Wait;
        let _runtime = &rt; // lives as long as the loop
        match event {
            // The icon is created once the loop runs (required on macOS).
            Event::NewEvents(StartCause::Init) => {
                match create_icon(&tray) {
                    Ok(i) => icon = Some(i),
                    Err(e) => {
                        eprintln!("error: cannot create the tray icon: {e}");
                        *control_flow = ControlFlow::ExitWithCode(1);
                        return;
                    }
                }
                tray.start();
            }
            Event::UserEvent(UiEvent::Redraw) => {
                if let Some(i) = &icon {
                    apply(&tray, i);
                }
            }
            Event::UserEvent(UiEvent::Quit) => *control_flow = ControlFlow::ExitWithCode(0),
            _ => {}
        }
    })
}

fn icon_image(health: Health) -> Result<Icon, tray_icon::BadIcon> {
    let size = crate::tray::icon::SIZE;
    Icon::from_rgba(crate::tray::icon::pixels(health, Platform::current().template_icon()), size, size)
}

fn create_icon(tray: &Tray) -> Result<TrayIcon, String> {
    let menu = native_menu(&model::menu(&model::View::default(), crate::actions::start_at_login(tray)))
        .map_err(|e| e.to_string())?;
    TrayIconBuilder::new()
        .with_id("steward")
        .with_icon(icon_image(Health::DaemonDown).map_err(|e| e.to_string())?)
        .with_icon_as_template(Platform::current().template_icon())
        .with_tooltip("Steward: connecting…")
        .with_menu(Box::new(menu))
        .with_menu_on_left_click(true)
        .build()
        .map_err(|e| e.to_string())
}

/// Brings the icon, tooltip and menu up to the newest model (on the main thread).
fn apply(tray: &Tray, icon: &TrayIcon) {
    let changes = tray.applied();
    if let Some(health) = changes.health {
        // (`set_icon_with_as_template` would be one call, but it does nothing outside macOS.)
        match icon_image(health)
            .map_err(|e| e.to_string())
            .and_then(|i| icon.set_icon(Some(i)).map_err(|e| e.to_string()))
        {
            Ok(()) => icon.set_icon_as_template(Platform::current().template_icon()),
            Err(e) => tracing::warn!("setting the tray icon: {e}"),
        }
    }
    if let Some(tooltip) = changes.tooltip {
        let _ = icon.set_tooltip(Some(tooltip));
    }
    if let Some(menu) = changes.menu {
        match native_menu(&menu) {
            Ok(m) => icon.set_menu(Some(Box::new(m))),
            Err(e) => tracing::warn!("building the tray menu: {e}"),
        }
    }
}

fn native_item(item: &Item) -> tray_icon::menu::Result<Box<dyn IsMenuItem>> {
    Ok(match item {
        Item::Action { action, text, enabled } => Box::new(MenuItem::with_id(action.id(), text, *enabled, None)),
        Item::Check { action, text, checked } => {
            Box::new(CheckMenuItem::with_id(action.id(), text, true, *checked, None))
        }
        Item::Separator => Box::new(PredefinedMenuItem::separator()),
        Item::Submenu { text, items } => {
            let sub = Submenu::new(text, true);
            for child in items {
                sub.append(native_item(child)?.as_ref())?;
            }
            Box::new(sub)
        }
    })
}

/// The native menu for a model.
fn native_menu(model: &model::Menu) -> tray_icon::menu::Result<Menu> {
    let menu = Menu::new();
    for item in model {
        menu.append(native_item(item)?.as_ref())?;
    }
    Ok(menu)
}
