//! The registry of live sessions, for broadcasting notifications.
//!
//! Notifications are framed once and queued in each session's [`Outbox`] directly (not through the
//! library's `Client`, whose queue has no bound). A session receives broadcasts only after it sent
//! `initialized`, as LSP requires.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::framing::{Outbox, frame};

/// What the daemon knows of one connection.
pub struct Session {
    /// Session id (for logs and subscriptions).
    pub id: u64,
    /// Its outgoing queue.
    pub outbox: Arc<Outbox>,
    /// Cancelled to end the session.
    pub cancel: CancellationToken,
    /// Set by the `initialized` notification: from then on it receives broadcasts.
    pub initialized: AtomicBool,
    /// Peer process id, for the log.
    pub peer_pid: Option<i32>,
    /// The library's handle for requests to the client (set when the session's service is built).
    pub client: std::sync::OnceLock<tower_lsp_server::Client>,
    /// The client declared `window.workDoneProgress`: progress the daemon starts on its own (scheduled
    /// backups) needs a `window/workDoneProgress/create` it answered first.
    pub wants_progress_create: AtomicBool,
}

impl Session {
    /// Queues a notification for this session only.
    pub fn notify<P: Serialize>(&self, method: &str, params: &P) -> bool {
        self.outbox.push(notification_frame(method, params)).is_ok()
    }
}

/// Frames a notification.
pub fn notification_frame<P: Serialize>(method: &str, params: &P) -> Bytes {
    frame(&json!({"jsonrpc": "2.0", "method": method, "params": params}))
}

/// Every live session.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<BTreeMap<u64, Arc<Session>>>,
    next: AtomicU64,
}

impl Sessions {
    /// A fresh session id.
    pub fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a session.
    pub fn insert(&self, s: Arc<Session>) {
        self.lock().insert(s.id, s);
    }

    /// Forgets a session.
    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// A session by id.
    pub fn get(&self, id: u64) -> Option<Arc<Session>> {
        self.lock().get(&id).cloned()
    }

    /// Every live session.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Queues a notification for every initialized session. A session whose queue is full is disconnected
    /// by its outbox; the others are not affected.
    pub fn broadcast<P: Serialize>(&self, method: &str, params: &P) {
        let sessions: Vec<Arc<Session>> = self.lock().values().cloned().collect();
        if sessions.is_empty() {
            return;
        }
        let frame = notification_frame(method, params);
        for s in sessions.iter().filter(|s| s.initialized.load(Ordering::Acquire)) {
            if let Err(e) = s.outbox.push(frame.clone()) {
                tracing::debug!(session = s.id, "broadcast not delivered: {e:?}");
            }
        }
    }

    /// Ends every session.
    pub fn cancel_all(&self) {
        for s in self.lock().values() {
            s.cancel.cancel();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}
