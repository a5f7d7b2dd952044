//! Notifications: events are coalesced by [`crate::notices`] over a short window, then shown as one native
//! notification by the UI (`notify-rust` in [`crate::native`]); what was shown is kept for the `tray_state`
//! call.

use std::sync::Arc;

use crate::Tray;
use crate::notices::Shown;

/// Feeds an event to the coalescer; the first event of a batch schedules the batch's notification.
pub fn observe(tray: &Arc<Tray>, ev: &steward_protocol::EventParams) {
    let starts_batch = tray.notices.lock().unwrap_or_else(|e| e.into_inner()).observe(ev);
    if !starts_batch {
        return;
    }
    let t = tray.clone();
    let window = tray.config.coalesce;
    tray.rt.spawn(async move {
        // Not synchronisation: the coalescing window, during which further events join this notification.
        tokio::time::sleep(window).await;
        let shown = t.notices.lock().unwrap_or_else(|e| e.into_inner()).flush();
        if let Some(shown) = shown {
            show(&t, shown);
        }
    });
}

/// An action failed: tell the user.
pub fn error(tray: &Arc<Tray>, message: &str) {
    show(tray, Shown { title: "Steward: action failed".into(), body: message.into() });
}

fn show(tray: &Arc<Tray>, shown: Shown) {
    {
        let mut list = tray.shown.lock().unwrap_or_else(|e| e.into_inner());
        list.push(shown.clone());
        let excess = list.len().saturating_sub(20);
        list.drain(..excess);
    }
    let t = tray.clone();
    // The native call may block (D-Bus on Linux): off the async threads.
    tray.rt.spawn_blocking(move || {
        if let Err(e) = t.ui().notify(&shown.title, &shown.body) {
            // No notification server (a bare X session, CI): the notification is still recorded above.
            tracing::debug!("notification not shown: {e}");
        }
    });
}
