//! Native notifications (tauri-plugin-notification): events are coalesced by [`crate::notices`] over a short
//! window, then shown as one notification; what was shown is kept for the `tray_state` command.

use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_notification::NotificationExt;

use crate::AppState;
use crate::notices::Shown;

/// Feeds an event to the coalescer; the first event of a batch schedules the batch's notification.
pub fn observe<R: Runtime>(app: &AppHandle<R>, state: &AppState, ev: &steward_protocol::EventParams) {
    let starts_batch = state.notices.lock().unwrap_or_else(|e| e.into_inner()).observe(ev);
    if !starts_batch {
        return;
    }
    let app = app.clone();
    let window = state.config.coalesce;
    tauri::async_runtime::spawn(async move {
        // Not synchronisation: the coalescing window, during which further events join this notification.
        tokio::time::sleep(window).await;
        let Some(state) = app.try_state::<AppState>() else { return };
        let shown = state.notices.lock().unwrap_or_else(|e| e.into_inner()).flush();
        if let Some(shown) = shown {
            show(&app, shown);
        }
    });
}

/// An action failed: tell the user.
pub fn error<R: Runtime>(app: &AppHandle<R>, message: &str) {
    show(app, Shown { title: "Steward: action failed".into(), body: message.into() });
}

fn show<R: Runtime>(app: &AppHandle<R>, shown: Shown) {
    if let Err(e) = app.notification().builder().title(&shown.title).body(&shown.body).show() {
        // No notification server (a bare X session, CI): the notification is still recorded below.
        tracing::debug!("notification not shown: {e}");
    }
    if let Some(state) = app.try_state::<AppState>() {
        let mut list = state.shown.lock().unwrap_or_else(|e| e.into_inner());
        list.push(shown);
        let excess = list.len().saturating_sub(20);
        list.drain(..excess);
    }
}
