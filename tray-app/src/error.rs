//! The tray's one error type: what the windows' calls answer (serialized as its message) and what menu
//! handlers log or notify.

use serde::{Serialize, Serializer};

use crate::daemon::client::ClientError;

/// Everything a user action can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TrayError {
    /// No connection to the daemon (it is starting, or down).
    #[error("not connected to the Steward daemon (it is starting or down; the tray icon shows which)")]
    NotConnected,
    /// The daemon answered with an error, or the connection failed.
    #[error("daemon: {0}")]
    Daemon(#[from] ClientError),
    /// A window asked for a daemon method the tray does not relay.
    #[error("method `{method}` is not relayed by the tray (allowed: {allowed})")]
    NotRelayed {
        /// The method asked for.
        method: String,
        /// What is allowed.
        allowed: String,
    },
    /// Arguments that do not have the expected shape.
    #[error("invalid {what}: {message}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A window could not be opened (the windows process could not be started, or does not answer).
    #[error("window `{label}`: {message}")]
    Window {
        /// Window label.
        label: &'static str,
        /// Why.
        message: String,
    },
    /// Start at login could not be changed.
    #[error("start at login: {0}")]
    StartAtLogin(String),
}

impl Serialize for TrayError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Result alias for the app.
pub type Result<T, E = TrayError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_its_message() {
        let e = TrayError::InvalidArgument { what: "severity", message: "expected info|warning|critical".into() };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!("invalid severity: expected info|warning|critical")
        );
    }
}
