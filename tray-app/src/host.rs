//! The windows process (`steward-tray-windows`, the Tauri app in `tray-app/windows/`): started when a window
//! is asked for, told to quit when its last window has closed, so the web engine's memory is given back.
//!
//! The tray talks to it over the [`crate::link`] (JSON lines on the child's stdin and stdout): it sends opens,
//! events for the pages (daemon notifications, log lines) and replies; it receives the pages' calls, which
//! run here ([`crate::calls::handle`]) on the tray's one daemon connection, and the list of open windows.
//! Quitting races nothing: the tray sends `Quit` only when the process reports no window *and* has handled
//! every open sent to it; an open after that starts a new process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::Tray;
use crate::error::{Result, TrayError};
use crate::link::{ToHost, ToTray, WindowKind, line};

/// The windows process, when one runs.
#[derive(Default)]
pub struct Host {
    conn: Mutex<Option<Conn>>,
    generation: AtomicU64,
}

struct Conn {
    generation: u64,
    tx: mpsc::UnboundedSender<ToHost>,
    /// Opens sent to this process.
    sent: u64,
    /// Its open windows (labels), as it last reported.
    open: Vec<String>,
}

impl Host {
    /// Opens (or shows) a window, starting the windows process when none runs.
    pub fn open(&self, tray: &Arc<Tray>, kind: &WindowKind) -> Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        // Twice at most: a process that just died (its channel is closed) is replaced once.
        for _ in 0..2 {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => conn.insert(self.spawn(tray, kind.label())?),
            };
            c.sent += 1;
            if c.tx.send(ToHost::Open { window: kind.clone(), seq: c.sent }).is_ok() {
                return Ok(());
            }
            *conn = None;
        }
        Err(TrayError::Window { label: kind.label(), message: "the windows process does not answer".into() })
    }

    /// Uses an already running windows app on `reader`/`writer` (the tests' app on the mock runtime).
    pub fn attach<Rd, Wr>(&self, tray: &Arc<Tray>, reader: Rd, writer: Wr)
    where
        Rd: AsyncRead + Unpin + Send + 'static,
        Wr: AsyncWrite + Unpin + Send + 'static,
    {
        let conn = self.connect(tray, reader, writer);
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn);
    }

    /// Sends an event to the pages (all windows, or the window `to`), when such a window is open.
    pub fn emit(&self, event: &str, to: Option<&str>, payload: Value) {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = conn.as_ref() else { return };
        let wanted = match to {
            Some(label) => c.open.iter().any(|l| l == label),
            None => !c.open.is_empty(),
        };
        if wanted {
            let _ = c.tx.send(ToHost::Emit { event: event.into(), to: to.map(str::to_string), payload });
        }
    }

    /// Whether the window `label` is open.
    pub fn has_window(&self, label: &str) -> bool {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.as_ref().is_some_and(|c| c.open.iter().any(|l| l == label))
    }

    /// Whether a windows process is running (or starting).
    pub fn running(&self) -> bool {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Tells the windows process to quit (the tray quits).
    pub fn quit(&self) {
        if let Some(c) = self.conn.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = c.tx.send(ToHost::Quit);
        }
    }

    fn spawn(&self, tray: &Arc<Tray>, label: &'static str) -> Result<Conn> {
        let err = |message: String| TrayError::Window { label, message };
        let bin = tray.config.windows_bin.clone().ok_or_else(|| {
            err("cannot find `steward-tray-windows` (put it next to steward-tray, or set STEWARD_TRAY_WINDOWS)".into())
        })?;
        let _rt = tray.rt.enter(); // the child's pipes and reaping belong to the tray's runtime
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
        for k in &tray.config.windows_env_remove {
            cmd.env_remove(k);
        }
        let mut child = cmd.spawn().map_err(|e| err(format!("{}: {e}", bin.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(err("no pipes to the windows process".into()));
        };
        tracing::info!("windows process started (pid {})", child.id().unwrap_or(0));
        tray.rt.spawn(async move {
            match child.wait().await {
                Ok(status) => tracing::info!("windows process ended ({status})"),
                Err(e) => tracing::warn!("windows process: {e}"),
            }
        });
        Ok(self.connect(tray, stdout, stdin))
    }

    fn connect<Rd, Wr>(&self, tray: &Arc<Tray>, reader: Rd, mut writer: Wr) -> Conn
    where
        Rd: AsyncRead + Unpin + Send + 'static,
        Wr: AsyncWrite + Unpin + Send + 'static,
    {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, mut rx) = mpsc::unbounded_channel::<ToHost>();
        tray.rt.spawn(async move {
            while let Some(m) = rx.recv().await {
                let sent = writer.write_all(line(&m).as_bytes()).await.and(writer.flush().await);
                if sent.is_err() || m == ToHost::Quit {
                    break;
                }
            }
        });
        let t = tray.clone();
        let replies = tx.clone();
        tray.rt.spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                match serde_json::from_str::<ToTray>(&l) {
                    Ok(ToTray::Call { id, cmd, args }) => {
                        let (t2, replies) = (t.clone(), replies.clone());
                        t.rt.spawn(async move {
                            let result = crate::calls::handle(&t2, &cmd, args).await.map_err(|e| e.to_string());
                            let _ = replies.send(ToHost::Reply { id, result });
                        });
                    }
                    Ok(ToTray::Windows { open, seen }) => t.host.windows_changed(generation, open, seen),
                    Err(e) => tracing::warn!("the windows process sent {l:?}: {e}"),
                }
            }
            t.host.ended(generation);
        });
        Conn { generation, tx, sent: 0, open: Vec::new() }
    }

    fn windows_changed(&self, generation: u64, open: Vec<String>, seen: u64) {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = conn.as_mut().filter(|c| c.generation == generation) else { return };
        c.open = open;
        if c.open.is_empty() && seen == c.sent {
            let _ = c.tx.send(ToHost::Quit);
            *conn = None;
        }
    }

    fn ended(&self, generation: u64) {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if conn.as_ref().is_some_and(|c| c.generation == generation) {
            *conn = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    fn tray(rt: &tokio::runtime::Runtime) -> Arc<Tray> {
        let dir = std::env::temp_dir();
        let config = crate::Config {
            home: dir.join("steward-tray-host-test-home"),
            steward_bin: None,
            windows_bin: None,
            windows_env_remove: Vec::new(),
            state_file: None,
            smoke_file: None,
            open_at_start: Vec::new(),
            login_item: dir.join("steward-tray-host-test.desktop"),
            service_args: Vec::new(),
            service_env: Vec::new(),
            min_severity: crate::notices::Severity::Info,
            coalesce: std::time::Duration::from_millis(10),
        };
        Tray::new(config, rt.handle().clone(), Box::new(crate::Headless::default()))
    }

    #[test]
    fn quit_is_sent_only_when_no_window_is_open_and_every_open_was_handled() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let tray = tray(&rt);
        let (ours, theirs) = tokio::io::duplex(4096);
        let (r, w) = tokio::io::split(ours);
        tray.host.attach(&tray, r, w);
        let (r, mut w) = tokio::io::split(theirs);
        let mut from_tray = tokio::io::BufReader::new(r).lines();
        let mut next =
            || rt.block_on(from_tray.next_line()).unwrap().map(|l| serde_json::from_str::<ToHost>(&l).unwrap());
        let mut say = |m: ToTray| rt.block_on(w.write_all(line(&m).as_bytes())).unwrap();

        tray.host.open(&tray, &WindowKind::Dashboard).unwrap();
        tray.host.open(&tray, &WindowKind::Search).unwrap();
        assert_eq!(next(), Some(ToHost::Open { window: WindowKind::Dashboard, seq: 1 }));
        assert_eq!(next(), Some(ToHost::Open { window: WindowKind::Search, seq: 2 }));
        // The dashboard was closed before the second open arrived: no window, but an open is on its way.
        say(ToTray::Windows { open: vec![], seen: 1 });
        say(ToTray::Windows { open: vec!["search".into()], seen: 2 });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !tray.host.has_window("search") {
            assert!(std::time::Instant::now() < deadline, "the windows list never arrived");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(tray.host.running());
        // Events go to open windows only.
        tray.host.emit("steward://logs", Some("logs"), Value::Null);
        tray.host.emit("steward://notification", None, serde_json::json!(1));
        assert_eq!(
            next(),
            Some(ToHost::Emit { event: "steward://notification".into(), to: None, payload: serde_json::json!(1) })
        );
        // The last window closed after every open was handled: quit, and the next open needs a new process.
        say(ToTray::Windows { open: vec![], seen: 2 });
        assert_eq!(next(), Some(ToHost::Quit));
        assert!(!tray.host.running());
        let e = tray.host.open(&tray, &WindowKind::Dashboard).unwrap_err().to_string();
        assert!(e.contains("cannot find `steward-tray-windows`"), "{e}");
    }
}
