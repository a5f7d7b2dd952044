//! Live log tails (`steward/logs/subscribe`), served from the store.
//!
//! Every ~100 ms, for each subscription, the lines committed since its cursor that pass its filter are read
//! from the store and pushed as one `steward/logs/append`. Serving tails from the store rather than from the
//! capture path keeps ingestion free of per-subscriber work, gives tail lines the same ids (and masking) as
//! `steward/logs/query`, and turns a slow client into a late one instead of a lossy one: while a session's
//! outgoing queue is more than half full its tails simply wait.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steward_framework::store::{LogQuery, Store};
use steward_protocol as p;
use tokio::sync::Notify;

use super::convert;
use super::state::DaemonState;

/// How often tails are served.
const INTERVAL: Duration = Duration::from_millis(100);
/// Lines per notification (more wait for the next round).
const BATCH: usize = 500;

struct Sub {
    session: u64,
    query: LogQuery,
    cursor: i64,
}

/// Every live subscription.
#[derive(Default)]
pub struct Tail {
    subs: Mutex<BTreeMap<u64, Sub>>,
    next: AtomicU64,
    wake: Notify,
}

impl Tail {
    /// Adds a subscription of `session` delivering lines after `cursor` that match `query`.
    pub fn add(&self, session: u64, query: LogQuery, cursor: i64) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().insert(id, Sub { session, query, cursor });
        self.wake.notify_one();
        id
    }

    /// Removes a subscription of `session`; false when it has none with that id.
    pub fn remove(&self, session: u64, id: u64) -> bool {
        let mut subs = self.lock();
        if subs.get(&id).is_some_and(|s| s.session == session) {
            subs.remove(&id);
            true
        } else {
            false
        }
    }

    /// Removes every subscription of a session that ended.
    pub fn remove_session(&self, session: u64) {
        self.lock().retain(|_, s| s.session != session);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Sub>> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves tails until the daemon shuts down.
    pub async fn run(state: Arc<DaemonState>) {
        loop {
            let idle = state.tail.lock().is_empty();
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = state.tail.wake.notified(), if idle => continue,
                _ = tokio::time::sleep(INTERVAL), if !idle => {}
            }
            state.tail.serve_round(&state).await;
        }
    }

    async fn serve_round(&self, state: &Arc<DaemonState>) {
        // Subscriptions whose session can take more now.
        let work: Vec<(u64, LogQuery, i64)> = self
            .lock()
            .iter()
            .filter(|(_, s)| state.sessions.get(s.session).is_some_and(|sess| sess.outbox.load() < 0.5))
            .map(|(id, s)| (*id, s.query.clone(), s.cursor))
            .collect();
        if work.is_empty() {
            return;
        }
        let store = state.store.clone();
        let results = tokio::task::spawn_blocking(move || read_round(&store, work)).await.unwrap_or_default();
        for (id, lines, cursor) in results {
            let Some(session) = self.lock().get(&id).map(|s| s.session) else { continue };
            let Some(sess) = state.sessions.get(session) else {
                self.lock().remove(&id);
                continue;
            };
            if !lines.is_empty() {
                let params = p::LogAppendParams { subscription: id, lines };
                if !sess.notify(p::LOGS_APPEND, &params) {
                    self.lock().remove(&id);
                    continue;
                }
            }
            if let Some(s) = self.lock().get_mut(&id) {
                s.cursor = s.cursor.max(cursor);
            }
        }
    }
}

/// The newest stored log line's id (0 when there is none).
pub fn newest_id(store: &Store) -> i64 {
    store
        .query_logs(&LogQuery { limit: 1, ..LogQuery::default() })
        .ok()
        .and_then(|v| v.last().map(|r| r.id))
        .unwrap_or(0)
}

/// For each subscription: its new lines and its next cursor.
fn read_round(store: &Store, work: Vec<(u64, LogQuery, i64)>) -> Vec<(u64, Vec<p::LogEntry>, i64)> {
    let newest = newest_id(store);
    let mut out = Vec::new();
    for (id, query, cursor) in work {
        if newest <= cursor {
            continue;
        }
        let q = LogQuery { after_id: Some(cursor), before_id: Some(newest + 1), limit: BATCH, ..query };
        match store.query_logs(&q) {
            Ok(rows) => {
                // A full page may have more after it; otherwise everything up to `newest` has been seen.
                let next = if rows.len() >= BATCH { rows.last().map(|r| r.id).unwrap_or(cursor) } else { newest };
                out.push((id, rows.into_iter().map(convert::log_entry).collect(), next));
            }
            Err(e) => tracing::warn!("log tail query failed: {e}"),
        }
    }
    out
}
