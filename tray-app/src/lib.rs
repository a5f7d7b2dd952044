//! Steward's tray: a health icon with a menu of projects, modules and profiles, native notifications, and
//! windows on demand (the dashboard, memory search, a module's logs). See ARCHITECTURE.md, `tray-app/`.
//!
//! Two processes. This crate is the tray: the icon, the menu, the daemon connection, the notifications and
//! the one layer of user actions; it does not link a web engine, so it stays small while it sits in the tray.
//! The windows are a Tauri app (`tray-app/windows/`, the `steward-tray-windows` binary) that the tray starts
//! when a window is asked for and that exits when its last window closes; its pages reach the daemon only
//! through the tray ([`host`], [`link`], [`calls`]).
//!
//! Layout: [`Tray`] is the app's state, independent of any GUI: [`native`] puts it on screen (tao event loop,
//! `tray-icon` + `muda`), the tests drive it headless ([`Headless`]). `tray/` is the icon and menu as pure
//! data, `actions` the one layer of user actions (menu items and the windows' calls both end there), `daemon`
//! the connection, `notify`/`notices` the notifications, `platform` login items and macOS conventions.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod actions;
pub mod calls;
pub mod daemon;
pub mod error;
pub mod host;
pub mod link;
pub mod native;
pub mod notices;
pub mod notify;
pub mod platform;
pub mod tray;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::daemon::Daemon;
use crate::link::WindowKind;
use crate::notices::{Notices, Severity};
use crate::platform::Platform;

/// How the app is set up: from the environment in [`native::run`], explicitly in tests.
#[derive(Debug, Clone)]
pub struct Config {
    /// The daemon's home.
    pub home: PathBuf,
    /// The `steward` binary (starts the daemon, installs its service).
    pub steward_bin: Option<PathBuf>,
    /// The `steward-tray-windows` binary (`STEWARD_TRAY_WINDOWS`, else next to this executable, else on `PATH`).
    pub windows_bin: Option<PathBuf>,
    /// Variables removed from the windows process's environment (those the tray set for itself only).
    pub windows_env_remove: Vec<String>,
    /// Append `<epoch ms> <health>` to this file whenever the icon changes (`STEWARD_TRAY_STATE_FILE`;
    /// the benchmark measures crash-to-icon latency with it).
    pub state_file: Option<PathBuf>,
    /// Let the dashboard page report its visible text into this file (`STEWARD_TRAY_SMOKE_FILE`; the smoke
    /// test checks that the window shows live states).
    pub smoke_file: Option<PathBuf>,
    /// Windows to open at start (`STEWARD_TRAY_OPEN=dashboard,search`).
    pub open_at_start: Vec<WindowKind>,
    /// Where the tray's own login item goes.
    pub login_item: PathBuf,
    /// Extra arguments to `steward service install` (tests pass `--no-enable`: no service manager here).
    pub service_args: Vec<String>,
    /// Environment for `steward service install/uninstall` (tests point `HOME` at a temporary directory).
    pub service_env: Vec<(String, String)>,
    /// Lowest severity notified (`STEWARD_TRAY_NOTIFY`: info, warning, critical; default info).
    pub min_severity: Severity,
    /// Events within this window become one notification.
    pub coalesce: Duration,
}

impl Config {
    /// From the environment.
    pub fn from_env() -> Result<Config, String> {
        let home = daemon::client::default_home().map_err(|e| e.to_string())?;
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let user_home = var("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
        let open_at_start = match std::env::var("STEWARD_TRAY_OPEN") {
            Ok(s) => s
                .split(',')
                .filter(|w| !w.trim().is_empty())
                .map(|w| w.parse::<WindowKind>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("STEWARD_TRAY_OPEN: {e}"))?,
            Err(_) => Vec::new(),
        };
        let min_severity = match std::env::var("STEWARD_TRAY_NOTIFY") {
            Ok(s) => s.parse().map_err(|e| format!("STEWARD_TRAY_NOTIFY: {e}"))?,
            Err(_) => Severity::Info,
        };
        let exe = std::env::current_exe().ok();
        Ok(Config {
            steward_bin: daemon::find_binary(
                "steward",
                var("STEWARD_BIN").map(PathBuf::from),
                exe.clone(),
                var("PATH"),
            ),
            windows_bin: daemon::find_binary(
                "steward-tray-windows",
                var("STEWARD_TRAY_WINDOWS").map(PathBuf::from),
                exe,
                var("PATH"),
            ),
            windows_env_remove: Vec::new(),
            home,
            state_file: var("STEWARD_TRAY_STATE_FILE").map(PathBuf::from),
            smoke_file: var("STEWARD_TRAY_SMOKE_FILE").map(PathBuf::from),
            open_at_start,
            login_item: Platform::current()
                .login_item_path(&user_home, var("XDG_CONFIG_HOME").map(PathBuf::from).as_deref()),
            service_args: Vec::new(),
            service_env: Vec::new(),
            min_severity,
            coalesce: Duration::from_millis(1500),
        })
    }
}

/// What puts the tray on screen: the native icon and menu ([`native`]), or nothing ([`Headless`], tests).
pub trait Ui: Send + Sync + 'static {
    /// The model changed ([`Tray::shown`]): bring the icon, tooltip and menu up to it, then call
    /// [`Tray::applied`] where the icon is set. Called from any thread.
    fn redraw(&self, tray: &Arc<Tray>);
    /// Show a notification (called on a blocking thread; an error is logged, the notice is recorded anyway).
    fn notify(&self, title: &str, body: &str) -> Result<(), String>;
    /// Quit the app.
    fn quit(&self);
}

/// No GUI: the model is what there is; icon changes are recorded at once. For tests.
#[derive(Debug, Default)]
pub struct Headless {
    /// Set by "Quit".
    pub quit: std::sync::atomic::AtomicBool,
}

impl Ui for Headless {
    fn redraw(&self, tray: &Arc<Tray>) {
        tray.applied();
    }
    fn notify(&self, _title: &str, _body: &str) -> Result<(), String> {
        Ok(())
    }
    fn quit(&self) {
        self.quit.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Everything the tray keeps.
pub struct Tray {
    /// The configuration.
    pub config: Config,
    /// The daemon connection and view.
    pub daemon: Arc<Daemon>,
    /// Notification filter and coalescing.
    pub notices: Mutex<Notices>,
    /// The last notifications shown (newest last, at most 20), for the `tray_state` call.
    pub shown: Mutex<Vec<notices::Shown>>,
    /// What the tray should show (the newest model).
    pub tray: Mutex<tray::Shown>,
    /// What the screen shows (updated where the icon is set).
    pub tray_applied: Mutex<tray::Shown>,
    /// The windows process.
    pub host: host::Host,
    /// Where the tray's async work runs.
    pub rt: tokio::runtime::Handle,
    ui: Box<dyn Ui>,
}

impl Tray {
    /// The tray's state; nothing runs until [`Tray::start`].
    pub fn new(config: Config, rt: tokio::runtime::Handle, ui: Box<dyn Ui>) -> Arc<Tray> {
        Arc::new(Tray {
            daemon: Arc::new(Daemon::new(config.home.clone(), config.steward_bin.clone())),
            notices: Mutex::new(Notices::new(config.min_severity)),
            shown: Mutex::new(Vec::new()),
            tray: Mutex::new(tray::Shown::default()),
            tray_applied: Mutex::new(tray::Shown::default()),
            host: host::Host::default(),
            config,
            rt,
            ui,
        })
    }

    /// Starts the connection loop and opens the windows asked for at start.
    pub fn start(self: &Arc<Tray>) {
        self.rt.spawn(daemon::connection_loop(self.clone()));
        for kind in self.config.open_at_start.clone() {
            if let Err(e) = actions::open_window(self, &kind) {
                tracing::warn!("{e}");
            }
        }
    }

    /// The UI.
    pub fn ui(&self) -> &dyn Ui {
        self.ui.as_ref()
    }

    /// What changed since the screen was last brought up to date (and records the icon's change): called by
    /// the UI where it sets the icon, so the recorded time is when the icon really changed.
    pub fn applied(&self) -> tray::Changes {
        tray::take_changes(self)
    }
}
