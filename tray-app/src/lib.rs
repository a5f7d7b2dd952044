//! Steward's tray app: a health icon with a menu of projects, modules and profiles, native notifications,
//! and on-demand windows (the dashboard, memory search, a module's logs). See ARCHITECTURE.md, `tray-app/`.
//!
//! Layout: [`run`] builds the real app from [`configure`], which is generic over the Tauri runtime so the
//! tests drive the same app on the mock runtime. `tray/` is the icon and menu (pure model + native glue),
//! `commands` the IPC surface of the windows, `actions` the one layer of user actions both call, `daemon`
//! the connection, `notify`/`notices` the notifications, `windows` the windows, `platform` login items and
//! macOS conventions.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod actions;
pub mod commands;
pub mod daemon;
pub mod error;
pub mod notices;
pub mod notify;
pub mod platform;
pub mod tray;
pub mod windows;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tauri::{Builder, Manager, RunEvent, Runtime};

use crate::daemon::Daemon;
use crate::notices::{Notices, Severity};
use crate::platform::Platform;

/// How the app is set up: from the environment in [`run`], explicitly in tests.
#[derive(Debug, Clone)]
pub struct Config {
    /// The daemon's home.
    pub home: PathBuf,
    /// The `steward` binary (starts the daemon, installs its service).
    pub steward_bin: Option<PathBuf>,
    /// Create the native tray icon (off on the mock runtime, which has no tray host).
    pub tray_icon: bool,
    /// Append `<epoch ms> <health>` to this file whenever the icon changes (`STEWARD_TRAY_STATE_FILE`;
    /// the benchmark measures crash-to-icon latency with it).
    pub state_file: Option<PathBuf>,
    /// Let the dashboard page report its visible text into this file (`STEWARD_TRAY_SMOKE_FILE`; the smoke
    /// test checks that the window shows live states).
    pub smoke_file: Option<PathBuf>,
    /// Windows to open at start (`STEWARD_TRAY_OPEN=dashboard,search`).
    pub open_at_start: Vec<windows::WindowKind>,
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
                .map(|w| w.parse::<windows::WindowKind>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("STEWARD_TRAY_OPEN: {e}"))?,
            Err(_) => Vec::new(),
        };
        let min_severity = match std::env::var("STEWARD_TRAY_NOTIFY") {
            Ok(s) => s.parse().map_err(|e| format!("STEWARD_TRAY_NOTIFY: {e}"))?,
            Err(_) => Severity::Info,
        };
        Ok(Config {
            steward_bin: daemon::find_steward(
                var("STEWARD_BIN").map(PathBuf::from),
                std::env::current_exe().ok(),
                var("PATH"),
            ),
            home,
            tray_icon: true,
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

/// Everything the app keeps (Tauri-managed state).
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// The daemon connection and view.
    pub daemon: Arc<Daemon>,
    /// Notification filter and coalescing.
    pub notices: Mutex<Notices>,
    /// The last notifications shown (newest last, at most 20), for the `tray_state` command.
    pub shown: Mutex<Vec<notices::Shown>>,
    /// What the tray should show (the newest model).
    pub tray: Mutex<tray::Shown>,
    /// What the native tray shows (updated on the main thread).
    pub tray_applied: Mutex<tray::Shown>,
}

/// Sets up the app on any runtime: state, commands, plugins, and (in `setup`) the connection loop, the
/// tray icon and the windows asked for at start.
pub fn configure<R: Runtime>(builder: Builder<R>, config: Config) -> Builder<R> {
    let daemon = Arc::new(Daemon::new(config.home.clone(), config.steward_bin.clone()));
    let state = AppState {
        notices: Mutex::new(Notices::new(config.min_severity)),
        shown: Mutex::new(Vec::new()),
        tray: Mutex::new(tray::Shown::default()),
        tray_applied: Mutex::new(tray::Shown::default()),
        daemon,
        config,
    };
    builder
        .plugin(tauri_plugin_notification::init())
        .manage(state)
        .invoke_handler(commands::handler())
        .setup(|app| start(app.handle()))
}

/// What `setup` does once the event loop is ready: the tray icon, the connection loop, the windows asked for
/// at start. (The mock runtime never becomes ready, so tests call this themselves.)
pub fn start<R: Runtime>(app: &tauri::AppHandle<R>) -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(target_os = "macos")]
    app.set_activation_policy(tauri::ActivationPolicy::Accessory)?;
    let state = app.state::<AppState>();
    if state.config.tray_icon {
        tray::create(app)?;
    }
    tauri::async_runtime::spawn(daemon::connection_loop(app.clone(), state.daemon.clone()));
    for kind in state.config.open_at_start.clone() {
        windows::open(app, &kind)?;
    }
    Ok(())
}

/// Runs the app; returns the process exit code.
pub fn run() -> i32 {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEWARD_TRAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let app = match configure(tauri::Builder::default(), config).build(tauri::generate_context!()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: cannot start the tray app: {e}");
            return 1;
        }
    };
    app.run(|_, event| {
        // Lives in the tray: closing the last window does not quit; only "Quit" (an explicit exit code) does.
        if let RunEvent::ExitRequested { api, code: None, .. } = event {
            api.prevent_exit();
        }
    });
    0
}
