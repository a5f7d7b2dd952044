//! The link between the tray and its windows process: one JSON message per line, tray → windows on the
//! child's stdin ([`ToHost`]), windows → tray on its stdout ([`ToTray`]).
//!
//! This file is shared: the windows crate (`tray-app/windows/`, the Tauri process) includes it with `#[path]`,
//! so both sides read and write the same types. It depends only on serde and serde_json.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The tray's windows. One window per label; a logs window for another module replaces the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
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
    /// Window label (the capability in `windows/capabilities/` names them).
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

    /// Title, width and height.
    pub fn title_and_size(&self) -> (String, f64, f64) {
        match self {
            WindowKind::Dashboard => ("Steward — Dashboard".into(), 1000.0, 720.0),
            WindowKind::Search => ("Steward — Search Memory".into(), 640.0, 480.0),
            WindowKind::Logs { module, .. } => (format!("Steward — {module} logs"), 900.0, 560.0),
        }
    }
}

/// Tray → windows process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ToHost {
    /// Open (or show and focus) a window. `seq` counts the opens sent to this process (see [`ToTray::Windows`]).
    Open {
        /// Which window.
        window: WindowKind,
        /// 1 for the first open sent to this process, then 2, 3, …
        seq: u64,
    },
    /// Emit an event to the pages (`to`: one window's label, or every window).
    Emit {
        /// Event name (`steward://notification`, `steward://logs`).
        event: String,
        /// Window label, or `None` for all.
        to: Option<String>,
        /// The event's payload.
        payload: Value,
    },
    /// The answer to a [`ToTray::Call`].
    Reply {
        /// The call's id.
        id: u64,
        /// Its result, or the error's message.
        result: Result<Value, String>,
    },
    /// Exit now (sent when the last window closed and no open is on its way).
    Quit,
}

/// Windows process → tray.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ToTray {
    /// A page called the tray (the windows process relays every page call: `cmd` names a `calls::Call`).
    Call {
        /// Answered by the [`ToHost::Reply`] with the same id.
        id: u64,
        /// The call's name (`daemon_request`, `search_memory`, …).
        cmd: String,
        /// Its arguments (an object, or null).
        args: Value,
    },
    /// The windows open now (labels), sent whenever that changes; `seen` is the last [`ToHost::Open`]'s `seq`
    /// this process handled. The tray sends [`ToHost::Quit`] when `open` is empty and `seen` is the last seq
    /// it sent, so a window opened meanwhile is never lost to an exiting process.
    Windows {
        /// Labels of the open windows.
        open: Vec<String>,
        /// The last open handled.
        seen: u64,
    },
}

/// One line of the link (the message as JSON, no newline inside, then `\n`).
pub fn line<T: Serialize>(message: &T) -> String {
    let mut s = serde_json::to_string(message).unwrap_or_else(|e| {
        // Not reachable for these types (string keys only); kept as a message the other side reports.
        format!("{{\"type\":\"invalid\",\"error\":{:?}}}", e.to_string())
    });
    s.push('\n');
    s
}

/// Name of the window event that carries daemon notifications (`{method, params}`) to the pages.
pub const NOTIFICATION_EVENT: &str = "steward://notification";

/// Name of the window event carrying a followed module's new log lines (`{subscription, lines}`).
pub const LOGS_EVENT: &str = "steward://logs";
