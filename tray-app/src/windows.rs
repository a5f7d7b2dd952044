//! Windows, created on demand (none exists while the app sits in the tray, which keeps its memory low) and
//! destroyed when closed. Each loads a page of `tray-app/ui/` under the strict CSP of tauri.conf.json.

use std::str::FromStr;

use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

use crate::error::{Result, TrayError};

/// The app's windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowKind {
    /// The dashboard (the `webview/` bundle through the plain bridge).
    Dashboard,
    /// Memory search.
    Search,
    /// One module's logs.
    Logs {
        /// Project path.
        project: String,
        /// Module name.
        module: String,
    },
}

impl FromStr for WindowKind {
    type Err = String;
    fn from_str(s: &str) -> Result<WindowKind, String> {
        match s.trim() {
            "dashboard" => Ok(WindowKind::Dashboard),
            "search" => Ok(WindowKind::Search),
            other => Err(format!("unknown window `{other}` (expected dashboard or search)")),
        }
    }
}

/// Percent-encodes a query-string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl WindowKind {
    /// Window label (one window per kind; the capability in `capabilities/` names them).
    pub fn label(&self) -> &'static str {
        match self {
            WindowKind::Dashboard => "dashboard",
            WindowKind::Search => "search",
            WindowKind::Logs { .. } => "logs",
        }
    }

    /// The page and its query.
    pub fn page(&self) -> String {
        match self {
            WindowKind::Dashboard => "dashboard.html".into(),
            WindowKind::Search => "search.html".into(),
            WindowKind::Logs { project, module } => {
                format!("logs.html?project={}&module={}", encode(project), encode(module))
            }
        }
    }

    fn title_and_size(&self) -> (String, f64, f64) {
        match self {
            WindowKind::Dashboard => ("Steward — Dashboard".into(), 1000.0, 720.0),
            WindowKind::Search => ("Steward — Search Memory".into(), 640.0, 480.0),
            WindowKind::Logs { module, .. } => (format!("Steward — {module} logs"), 900.0, 560.0),
        }
    }
}

/// Shows the window of `kind`, creating it when it does not exist (a logs window for another module is
/// replaced).
pub fn open<R: Runtime>(app: &AppHandle<R>, kind: &WindowKind) -> Result<()> {
    let label = kind.label();
    let err = |e: tauri::Error| TrayError::Window { label, message: e.to_string() };
    if let Some(w) = app.get_webview_window(label) {
        if let WindowKind::Logs { .. } = kind {
            // Same origin as the page it shows now (tauri://localhost here, http://tauri.localhost on Windows).
            let url = w.url().map_err(err)?;
            let url =
                url.join(&kind.page()).map_err(|e| TrayError::Window { label, message: format!("{url}: {e}") })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_labels() {
        assert_eq!("dashboard".parse::<WindowKind>(), Ok(WindowKind::Dashboard));
        assert!("settings".parse::<WindowKind>().unwrap_err().contains("expected dashboard or search"));
        let logs = WindowKind::Logs { project: "/w/my shop/steward.toml".into(), module: "api&1".into() };
        assert_eq!(logs.page(), "logs.html?project=%2Fw%2Fmy%20shop%2Fsteward.toml&module=api%261");
        assert_eq!(logs.label(), "logs");
    }
}
