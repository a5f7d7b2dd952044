//! `steward run`: one project in the foreground, output to the terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use steward_framework::config::{self, LoadOptions};
use steward_framework::core::Input;
use steward_framework::engine::{self, EngineOptions, Snapshot};
use steward_framework::lifecycle::{EventKind, Health, LogChunk, State, Stream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

pub struct RunArgs {
    pub path: PathBuf,
    pub profile: Option<String>,
    pub watch: bool,
    pub quiet: bool,
}

pub fn run(args: RunArgs) -> ExitCode {
    // Whatever happens — even a panic — no module process may outlive us.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        engine::kill_all_live_groups();
        default_hook(info);
    }));
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = rt.block_on(run_async(args));
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn run_async(args: RunArgs) -> ExitCode {
    let opts = LoadOptions::from_process_env(args.profile.clone());
    let stack = match config::load(&args.path, &opts) {
        Ok(s) => s,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}\n");
            }
            eprintln!("error: {} has {} error(s); nothing was started", args.path.display(), diags.len());
            return ExitCode::from(1);
        }
    };
    let color = std::io::stdout().is_terminal();
    let names: Vec<String> = stack.modules.keys().cloned().collect();
    let width = names.iter().map(|n| n.len()).max().unwrap_or(4).max(7);
    // Chunks of whole lines, one per read of a pipe (up to 64 KiB each): 64 of them bound what waits here.
    let (log_tx, log_rx) = mpsc::channel::<LogChunk>(64);
    let printer = tokio::spawn(print_logs(log_rx, width, color, args.quiet));
    let handle = engine::start(
        stack,
        EngineOptions { logs: log_tx, watch: args.watch, load: opts, first_run: 1, event_capacity: 1024 },
    );
    let mut events = handle.subscribe();
    let announcer = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ev) => print_event(&ev.kind, width, color),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => eprintln!("steward: {n} events not shown"),
                Err(_) => break,
            }
        }
    });
    handle.send(Input::Up);

    // Announce once when everything is up, with the table.
    let ready_handle = handle.clone();
    // Test hook: prove that a panic leaves no module process behind. With the variable set, SIGUSR1 makes the
    // task below panic (the test sends it once it has seen the table and recorded the modules' process
    // groups). The handler is installed before the table is printed, so the signal cannot come first.
    let usr1 = std::env::var_os("STEWARD_DEBUG_PANIC_ON_USR1").and_then(|_| signal(SignalKind::user_defined1()).ok());
    let mut ready = tokio::spawn(async move {
        if let Ok(s) = ready_handle.wait_for(Duration::from_secs(3600), all_ready).await {
            print_table(&s);
        }
        if let Some(mut usr1) = usr1 {
            usr1.recv().await;
            panic!("STEWARD_DEBUG_PANIC_ON_USR1");
        }
        std::future::pending::<()>().await;
    });

    let (mut int, mut term) = match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(i), Ok(t)) => (i, t),
        _ => {
            eprintln!("error: cannot install signal handlers");
            handle.shutdown().await;
            return ExitCode::from(2);
        }
    };
    tokio::select! {
        _ = int.recv() => {},
        _ = term.recv() => {},
        r = &mut ready => {
            if let Err(e) = r {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
            tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        }
    }
    eprintln!("\nsteward: stopping (Ctrl-C again to kill at once)…");
    tokio::select! {
        _ = handle.shutdown() => {},
        _ = int.recv() => { engine::kill_all_live_groups(); }
        _ = term.recv() => { engine::kill_all_live_groups(); }
    }
    // Let the last events print: once every handle is gone the bus closes and the announcer ends.
    ready.abort();
    let _ = ready.await;
    drop(handle);
    let _ = tokio::time::timeout(Duration::from_millis(500), announcer).await;
    let _ = tokio::time::timeout(Duration::from_millis(500), printer).await;
    eprintln!("steward: all modules stopped");
    ExitCode::SUCCESS
}

fn all_ready(s: &Snapshot) -> bool {
    !s.modules.is_empty() && s.modules.iter().all(|m| m.state.is_ready())
}

const COLORS: [&str; 6] = ["36", "33", "35", "32", "34", "96"];

fn paint(text: &str, code: &str, color: bool) -> String {
    if color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
}

async fn print_logs(mut rx: mpsc::Receiver<LogChunk>, width: usize, color: bool, quiet: bool) {
    let mut palette: std::collections::HashMap<std::sync::Arc<str>, &str> = std::collections::HashMap::new();
    while let Some(chunk) = rx.recv().await {
        if quiet {
            continue;
        }
        let n = palette.len();
        let c = *palette.entry(chunk.module.clone()).or_insert(COLORS[n % COLORS.len()]);
        let mut out = std::io::stdout().lock();
        let prefix = paint(&format!("{:<width$} |", chunk.module), c, color);
        for (bytes, truncated) in chunk.lines() {
            let text = String::from_utf8_lossy(bytes);
            let marker = if truncated { " …[truncated]" } else { "" };
            let text =
                if chunk.stream == Stream::Stderr && color { paint(&text, "2", false) } else { text.into_owned() };
            // A closed stdout (e.g. `| head`) is not an error worth dying over.
            if writeln!(out, "{prefix} {text}{marker}").is_err() {
                break;
            }
        }
        if rx.is_empty() {
            let _ = out.flush();
        }
    }
}

fn print_event(kind: &EventKind, width: usize, color: bool) {
    match kind {
        EventKind::Transition(t) => {
            let state = match &t.to {
                State::Running { health: Health::Healthy, .. } => "running (healthy)".to_string(),
                State::Running { health: Health::Unhealthy, .. } => "running (unhealthy)".to_string(),
                s => s.name().to_string(),
            };
            let code = match &t.to {
                State::Failed { .. } => "31",
                State::Backoff { .. } | State::Exited { .. } => "33",
                State::Running { .. } => "32",
                _ => "2",
            };
            if matches!(t.to, State::Resolved) && matches!(t.from, State::Installed) {
                return;
            }
            eprintln!(
                "{} {} — {}",
                paint(&format!("{:<width$} ▸", t.module), "1", color),
                paint(&state, code, color),
                t.reason
            );
        }
        EventKind::ConfigApplied { profile, summary } => {
            eprintln!(
                "{} configuration applied (profile {}): {summary}",
                paint(&format!("{:<width$} ▸", "steward"), "1", color),
                profile.as_deref().unwrap_or("-")
            );
        }
        EventKind::ConfigRejected { errors } => {
            eprintln!(
                "{} configuration change rejected; still running the last good one:",
                paint(&format!("{:<width$} ▸", "steward"), "31", color)
            );
            for e in errors {
                eprintln!("{e}");
            }
        }
        EventKind::RunStarted { .. } | EventKind::RunEnded { .. } => {}
    }
}

fn print_table(s: &Snapshot) {
    let mut out = String::new();
    out.push_str(&format!(
        "\nsteward: {} is up ({} modules{})\n",
        s.name,
        s.modules.len(),
        s.profile.as_ref().map(|p| format!(", profile {p}")).unwrap_or_default()
    ));
    out.push_str(&format!("  {:<16} {:<10} {:>8}  {}\n", "MODULE", "STATE", "PID", "RESTARTS"));
    for m in &s.modules {
        let pid = m.state.run().map(|(_, p)| p.to_string()).unwrap_or_else(|| "-".into());
        out.push_str(&format!("  {:<16} {:<10} {:>8}  {}\n", m.name, m.state.name(), pid, m.restarts));
    }
    eprintln!("{out}");
}
