//! The connection to the daemon and what the tray caches of it.
//!
//! The client is the CLI's own (`daemon/src/client.rs`, included by path: it depends only on the protocol
//! crate, tokio, serde, thiserror and libc, so the tray does not link the daemon, SQLite or the LSP server).
//! [`connection_loop`] connects — starting the daemon the first time when none runs — reads status and
//! profiles, then applies every pushed `steward/event` to the [`View`] and asks the tray to redraw; when the
//! connection ends it shows "daemon down" and reconnects with backoff (without starting a daemon: one that
//! was stopped on purpose stays stopped until "Start Daemon" is chosen).

#[path = "../../daemon/src/client.rs"]
#[allow(clippy::all, missing_docs)]
pub mod client;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use steward_protocol as p;
use tokio::sync::Notify;

use crate::Tray;
use crate::error::{Result, TrayError};
use crate::link::NOTIFICATION_EVENT;
use crate::tray::model::{Change, View};
use client::{Client, StartOptions};

/// The daemon side of the app's state.
pub struct Daemon {
    /// The daemon's home (`STEWARD_HOME`).
    pub home: PathBuf,
    /// The `steward` binary that starts it.
    pub program: Option<PathBuf>,
    client: std::sync::Mutex<Option<Client>>,
    /// The cached view.
    pub view: std::sync::Mutex<View>,
    /// Wakes the connection loop (start the daemon now).
    wake: Notify,
    start_requested: std::sync::atomic::AtomicBool,
    followed_logs: std::sync::Mutex<Option<u64>>,
}

impl Daemon {
    /// A daemon handle for `home`; nothing connects until [`connection_loop`] runs.
    pub fn new(home: PathBuf, program: Option<PathBuf>) -> Daemon {
        Daemon {
            home,
            program,
            client: std::sync::Mutex::new(None),
            view: std::sync::Mutex::new(View::default()),
            wake: Notify::new(),
            start_requested: std::sync::atomic::AtomicBool::new(true),
            followed_logs: std::sync::Mutex::new(None),
        }
    }

    /// The current client, or [`TrayError::NotConnected`].
    pub fn client(&self) -> Result<Client> {
        self.client.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or(TrayError::NotConnected)
    }

    /// A copy of the cached view.
    pub fn view(&self) -> View {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks the connection loop to start the daemon (when it is down) and connect now.
    pub fn request_start(&self) {
        self.start_requested.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    /// The log subscription the logs window follows.
    pub fn followed_logs(&self) -> Option<u64> {
        *self.followed_logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the followed log subscription; returns the previous one.
    pub fn set_followed_logs(&self, id: Option<u64>) -> Option<u64> {
        std::mem::replace(&mut *self.followed_logs.lock().unwrap_or_else(|e| e.into_inner()), id)
    }

    /// Re-reads status and profiles into the view.
    pub async fn reload(&self) -> Result<()> {
        let c = self.client()?;
        let status = c.status().await?;
        let mut profiles = std::collections::BTreeMap::new();
        for proj in &status.projects {
            if let Ok(pl) = c.profiles(&proj.path).await {
                profiles.insert(proj.path.clone(), pl);
            }
        }
        let mut v = self.view.lock().unwrap_or_else(|e| e.into_inner());
        v.connected = true;
        v.status = Some(status);
        v.profiles = profiles;
        Ok(())
    }
}

/// A binary the tray runs (`steward`, `steward-tray-windows`): the environment's choice (`STEWARD_BIN`,
/// `STEWARD_TRAY_WINDOWS`), else `name` next to this executable, else the first `name` on `PATH`.
pub fn find_binary(
    name: &str,
    env_bin: Option<PathBuf>,
    exe: Option<PathBuf>,
    path: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    if let Some(b) = env_bin.filter(|b| !b.as_os_str().is_empty()) {
        return Some(b);
    }
    let beside = exe.and_then(|e| e.parent().map(|d| d.join(name))).filter(|p| p.is_file());
    beside.or_else(|| path.and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file())))
}

/// Runs for the app's lifetime: connect, follow events, reconnect.
pub async fn connection_loop(tray: Arc<Tray>) {
    let daemon = tray.daemon.clone();
    let mut backoff = Duration::from_millis(250);
    loop {
        let start = daemon.start_requested.swap(false, std::sync::atomic::Ordering::AcqRel);
        let connected = if start {
            let opts = StartOptions { program: daemon.program.clone(), ..StartOptions::default() };
            Client::connect_or_start_with(&daemon.home, &opts).await
        } else {
            Client::connect(&daemon.home).await
        };
        match connected {
            Ok(client) => {
                backoff = Duration::from_millis(250);
                follow(&tray, &daemon, client).await;
                tracing::info!("connection to the daemon closed");
            }
            Err(e) => tracing::debug!("daemon not reachable: {e}"),
        }
        {
            let mut v = daemon.view.lock().unwrap_or_else(|e| e.into_inner());
            *daemon.client.lock().unwrap_or_else(|e| e.into_inner()) = None;
            v.connected = false;
        }
        crate::tray::refresh(&tray);
        // Wait for the backoff, or for "Start Daemon".
        let _ = tokio::time::timeout(backoff, daemon.wake.notified()).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn follow(tray: &Arc<Tray>, daemon: &Daemon, client: Client) {
    let mut raw = client.notifications();
    *daemon.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
    if let Err(e) = daemon.reload().await {
        tracing::warn!("reading status: {e}");
        return;
    }
    crate::tray::refresh(tray);
    loop {
        let (method, params) = match raw.recv().await {
            Ok(n) => n,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("missed {n} daemon notifications; re-reading status");
                let _ = daemon.reload().await;
                crate::tray::refresh(tray);
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if method == p::EVENT || method == p::IPC {
            // Only while the windows process runs (nothing to do, and nothing kept, when it does not).
            tray.host.emit(NOTIFICATION_EVENT, None, serde_json::json!({"method": method, "params": params}));
        }
        if method != p::EVENT {
            continue;
        }
        let Ok(ev) = serde_json::from_value::<p::EventParams>(params.clone()) else { continue };
        let change = daemon.view.lock().unwrap_or_else(|e| e.into_inner()).apply(&ev);
        match change {
            Change::None => {}
            Change::Redraw => crate::tray::refresh(tray),
            Change::Reload => {
                if daemon.reload().await.is_err() {
                    return;
                }
                crate::tray::refresh(tray);
            }
        }
        crate::notify::observe(tray, &ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_lookup_order() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("steward"), "").unwrap();
        let exe = bin.join("steward-tray");
        let find = |env, exe, path| find_binary("steward", env, exe, path);
        assert_eq!(find(Some("/x/steward".into()), Some(exe.clone()), None), Some("/x/steward".into()));
        assert_eq!(find(None, Some(exe), None), Some(bin.join("steward")));
        let path = std::env::join_paths([dir.path().join("nope"), bin.clone()]).unwrap();
        assert_eq!(find(None, Some(dir.path().join("elsewhere/tray")), Some(path)), Some(bin.join("steward")));
        assert_eq!(find(None, None, None), None);
    }
}
