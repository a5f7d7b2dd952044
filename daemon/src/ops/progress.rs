//! A progress bar on the terminal (stderr), driven by the daemon's `$/progress` notifications for one token.
//! Hidden when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use steward_protocol as p;

use crate::client::Client;

/// Follows `$/progress` for `token` until its `end` (or until dropped).
pub struct Follow {
    task: tokio::task::JoinHandle<()>,
    bar: ProgressBar,
}

impl Follow {
    /// Starts following (subscribe before sending the request, so `begin` is not missed).
    pub fn start(client: &Client, token: &str) -> Follow {
        let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
        // The template is a constant known to be valid; fall back to the default style if not.
        let style = ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos:>3}% {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        let mut rx = client.notifications();
        let (b, token) = (bar.clone(), token.to_string());
        let task = tokio::spawn(async move {
            while let Ok((method, params)) = rx.recv().await {
                if method != p::PROGRESS {
                    continue;
                }
                let Ok(pp) = serde_json::from_value::<p::ProgressParams>(params) else { continue };
                if pp.token != token {
                    continue;
                }
                match pp.value {
                    p::WorkDoneProgress::Begin { title, percentage, .. } => {
                        b.set_prefix(title);
                        b.set_position(u64::from(percentage.unwrap_or(0)));
                        b.enable_steady_tick(std::time::Duration::from_millis(120));
                    }
                    p::WorkDoneProgress::Report { message, percentage } => {
                        if let Some(pc) = percentage {
                            b.set_position(u64::from(pc));
                        }
                        if let Some(m) = message {
                            b.set_message(m);
                        }
                    }
                    p::WorkDoneProgress::End { .. } => {
                        b.finish_and_clear();
                        return;
                    }
                }
            }
        });
        Follow { task, bar }
    }

    /// Stops following and clears the bar.
    pub fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

/// A local bar for offline work (verify, drill): `len` steps.
pub fn local_bar(len: u64, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}
