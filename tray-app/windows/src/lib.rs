//! Steward's tray windows: the dashboard, the memory search and a module's logs, in a Tauri app that the tray
//! (`steward-tray`) starts when a window is asked for. It keeps no state of its own and never talks to the
//! daemon: every page call is relayed to the tray over the link (the tray's `link.rs`, included below), and
//! the tray sends back replies, events for the pages and which windows to open. It exits when the tray says
//! so (its last window closed) or when the tray goes away (end of its stdin). See ARCHITECTURE.md, `tray-app/`.
//!
//! Laid out after the official Tauri examples: `main.rs` calls [`run`]; [`configure`] and [`start`] are
//! generic over the runtime, so the tray's tests run this app on the mock runtime.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[path = "../../src/link.rs"]
#[allow(dead_code)]
mod link;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tauri::utils::assets::{AssetKey, AssetsIter, CspHash};
use tauri::{AppHandle, Assets, Builder, Emitter, Manager, RunEvent, Runtime, WebviewUrl, WebviewWindowBuilder};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use link::{ToHost, ToTray, WindowKind, line};

/// The link's sending side and the calls waiting for their reply.
#[derive(Default)]
struct Relay {
    tx: Mutex<Option<mpsc::UnboundedSender<ToTray>>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>,
    next: AtomicU64,
    /// The last open handled (reported with the windows, see `link::ToTray::Windows`).
    seen: AtomicU64,
}

impl Relay {
    fn send(&self, message: ToTray) -> bool {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(|tx| tx.send(message).is_ok())
    }
}

/// Every page call: `invoke("call", {cmd, args})`, relayed to the tray (which knows the calls: its
/// `calls.rs`); the answer is the tray's, errors as their message.
#[tauri::command]
async fn call(relay: tauri::State<'_, Relay>, cmd: String, args: Option<Value>) -> Result<Value, String> {
    let id = relay.next.fetch_add(1, Ordering::Relaxed) + 1;
    let (tx, rx) = oneshot::channel();
    relay.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
    if !relay.send(ToTray::Call { id, cmd, args: args.unwrap_or(Value::Null) }) {
        relay.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        return Err("the tray is not connected".into());
    }
    rx.await.unwrap_or_else(|_| Err("the tray went away".into()))
}

/// The app on any runtime: the page-call relay and the window bookkeeping. [`start`] connects the link.
pub fn configure<R: Runtime>(builder: Builder<R>) -> Builder<R> {
    builder.manage(Relay::default()).invoke_handler(tauri::generate_handler![call]).on_window_event(|window, event| {
        if let tauri::WindowEvent::Destroyed = event {
            report_windows(window.app_handle(), Some(window.label()));
        }
    })
}

/// Connects the link: messages from the tray on `reader`, to it on `writer`. `exit` ends the app (when the
/// tray says quit, or goes away).
pub fn start<R, Rd, Wr>(app: &AppHandle<R>, reader: Rd, mut writer: Wr, exit: fn(&AppHandle<R>))
where
    R: Runtime,
    Rd: AsyncRead + Unpin + Send + 'static,
    Wr: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<ToTray>();
    *app.state::<Relay>().tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    tauri::async_runtime::spawn(async move {
        while let Some(m) = rx.recv().await {
            if writer.write_all(line(&m).as_bytes()).await.and(writer.flush().await).is_err() {
                break;
            }
        }
    });
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            match serde_json::from_str::<ToHost>(&l) {
                Ok(ToHost::Reply { id, result }) => {
                    let waiting = app.state::<Relay>().pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    if let Some(w) = waiting {
                        let _ = w.send(result);
                    }
                }
                Ok(ToHost::Open { window, seq }) => {
                    let app2 = app.clone();
                    let opened = app.run_on_main_thread(move || {
                        if let Err(e) = open(&app2, &window) {
                            tracing::warn!("{e}");
                        }
                        app2.state::<Relay>().seen.store(seq, Ordering::Release);
                        report_windows(&app2, None);
                    });
                    if let Err(e) = opened {
                        tracing::warn!("opening a window: {e}");
                    }
                }
                Ok(ToHost::Emit { event, to, payload }) => {
                    let sent = match to {
                        Some(label) => app.emit_to(label.as_str(), &event, payload),
                        None => app.emit(&event, payload),
                    };
                    if let Err(e) = sent {
                        tracing::warn!("{event}: {e}");
                    }
                }
                Ok(ToHost::Quit) => break,
                Err(e) => tracing::warn!("the tray sent {l:?}: {e}"),
            }
        }
        exit(&app);
    });
}

/// Tells the tray which windows are open (`closing`: a window being destroyed, counted as gone).
fn report_windows<R: Runtime>(app: &AppHandle<R>, closing: Option<&str>) {
    let open: Vec<String> = app.webview_windows().into_keys().filter(|l| Some(l.as_str()) != closing).collect();
    let relay = app.state::<Relay>();
    relay.send(ToTray::Windows { open, seen: relay.seen.load(Ordering::Acquire) });
}

/// Shows the window of `kind`, creating it when it does not exist (a logs window for another module is
/// pointed at the new module).
fn open<R: Runtime>(app: &AppHandle<R>, kind: &WindowKind) -> Result<(), String> {
    let label = kind.label();
    let err = |e: tauri::Error| format!("window `{label}`: {e}");
    if let Some(w) = app.get_webview_window(label) {
        if let WindowKind::Logs { .. } = kind {
            // Same origin as the page it shows now (tauri://localhost here, http://tauri.localhost on Windows).
            let url = w.url().map_err(err)?;
            let url = url.join(&kind.page()).map_err(|e| format!("window `{label}`: {url}: {e}"))?;
            w.navigate(url).map_err(err)?;
        }
        w.show().map_err(err)?;
        return w.set_focus().map_err(err);
    }
    let (title, width, height) = kind.title_and_size();
    WebviewWindowBuilder::new(app, label, WebviewUrl::App(kind.page().into()))
        .title(title)
        .inner_size(width, height)
        .build()
        .map_err(err)?;
    Ok(())
}

/// The dashboard's host page: `webview/host.html` (the page the dashboard uses outside VS Code, under the VS
/// Code webview's CSP), filled for this app: the bundle from `vendor/`, `host.js` as the transport, the IPC
/// as the only connection, and `nonce` on the policy and on both scripts.
pub fn dashboard_page(nonce: &str) -> String {
    const TEMPLATE: &str = include_str!("../../../webview/host.html");
    // The template's leading comment documents the placeholders (host.mjs drops it the same way).
    let page = match (TEMPLATE.find("<!--"), TEMPLATE.find("-->\n")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &TEMPLATE[..a], &TEMPLATE[b + 4..]),
        _ => TEMPLATE.to_string(),
    };
    page.replace("{{TRANSPORT}}", &format!("<script nonce=\"{nonce}\" src=\"host.js\"></script>"))
        .replace("{{NONCE}}", nonce)
        .replace("{{BASE}}", "vendor/")
        .replace("{{CONNECT}}", "ipc: http://ipc.localhost")
}

/// A fresh script nonce (16 random bytes, hex: inside the CSP's base64 alphabet).
fn nonce() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The embedded `ui/` with `dashboard.html` made on each load from `webview/host.html` (a fresh nonce each
/// time, as the template asks).
struct Pages<R: Runtime> {
    embedded: Box<dyn Assets<R>>,
}

impl<R: Runtime> Assets<R> for Pages<R> {
    fn get(&self, key: &AssetKey) -> Option<Cow<'_, [u8]>> {
        if key.as_ref() == "/dashboard.html" {
            return nonce().map(|n| Cow::Owned(dashboard_page(&n).into_bytes()));
        }
        self.embedded.get(key)
    }

    fn iter(&self) -> Box<AssetsIter<'_>> {
        self.embedded.iter()
    }

    fn csp_hashes(&self, html_path: &AssetKey) -> Box<dyn Iterator<Item = CspHash<'_>> + '_> {
        self.embedded.csp_hashes(html_path)
    }
}

/// Stands in for the embedded assets while they are being wrapped.
struct NoAssets;

impl<R: Runtime> Assets<R> for NoAssets {
    fn get(&self, _key: &AssetKey) -> Option<Cow<'_, [u8]>> {
        None
    }
    fn iter(&self) -> Box<AssetsIter<'_>> {
        Box::new(std::iter::empty())
    }
    fn csp_hashes(&self, _html_path: &AssetKey) -> Box<dyn Iterator<Item = CspHash<'_>> + '_> {
        Box::new(std::iter::empty())
    }
}

/// The link: this process's stdin and stdout, moved to private descriptors (close-on-exec, so WebKit's helper
/// processes do not hold them), with stdout then pointed at stderr: whatever GTK, WebKit or a library prints
/// cannot corrupt the link.
#[cfg(unix)]
fn link() -> std::io::Result<(tokio::fs::File, tokio::fs::File)> {
    use std::os::fd::AsFd;
    let reader = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let writer = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    // SAFETY: redirects this process's own stdout to its stderr (both stay open), before other threads start.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((tokio::fs::File::from_std(reader), tokio::fs::File::from_std(writer)))
}

/// Runs the windows app on the link (stdin/stdout, set up by the tray); returns the exit code.
pub fn run() -> i32 {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEWARD_TRAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (reader, writer) = match link() {
        Ok(link) => link,
        Err(e) => {
            eprintln!("error: cannot set up the link to the tray: {e}");
            return 1;
        }
    };
    let mut context = tauri::generate_context!();
    let embedded = context.set_assets(Box::new(NoAssets));
    context.set_assets(Box::new(Pages { embedded }));
    let app = configure(tauri::Builder::default())
        .setup(move |app| {
            start(app.handle(), reader, writer, |app| app.exit(0));
            Ok(())
        })
        .build(context);
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: cannot start the tray's windows: {e}");
            return 1;
        }
    };
    app.run(|_, event| {
        // Closing the last window ends this process only when the tray says so (it may be opening another).
        if let RunEvent::ExitRequested { api, code: None, .. } = event {
            api.prevent_exit();
        }
    });
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_page_is_host_html_with_one_nonce_everywhere() {
        let page = dashboard_page("0123abcd");
        assert!(!page.contains("{{"), "{page}");
        assert!(!page.contains("<!--"), "the template's comment is dropped: {page}");
        assert!(page.contains("script-src 'nonce-0123abcd'"), "{page}");
        assert!(page.contains("connect-src ipc: http://ipc.localhost;"), "{page}");
        assert!(page.contains(r#"<script nonce="0123abcd" src="host.js"></script>"#), "{page}");
        assert!(page.contains(r#"<script nonce="0123abcd" src="vendor/dashboard.js"></script>"#), "{page}");
        assert!(page.contains(r#"<link rel="stylesheet" href="vendor/dashboard.css">"#), "{page}");
        // host.js defines the transport before the bundle runs.
        assert!(page.find("host.js") < page.find("dashboard.js"));
        let (a, b) = (nonce().unwrap(), nonce().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn window_pages_and_labels() {
        assert_eq!("dashboard".parse::<WindowKind>(), Ok(WindowKind::Dashboard));
        assert!("settings".parse::<WindowKind>().unwrap_err().contains("expected dashboard or search"));
        let logs = WindowKind::Logs { project: "/w/my shop/steward.toml".into(), module: "api&1".into() };
        assert_eq!(logs.page(), "logs.html?project=%2Fw%2Fmy%20shop%2Fsteward.toml&module=api%261");
        assert_eq!(logs.label(), "logs");
    }
}
