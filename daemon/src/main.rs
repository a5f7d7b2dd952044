//! `steward`: the daemon and its CLI (one binary).
//!
//! This file is glue: argument parsing, output formatting and exit codes. The engine lives in
//! `steward_framework`.

mod cli;
mod client;
mod daemon;
mod ops;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use steward_framework::config::{self, LoadOptions};
use steward_framework::graph;

/// Keeps a local stack of services healthy: dependency order, health checks, restarts with backoff,
/// profiles, hot reload.
#[derive(Parser)]
#[command(name = "steward", version, propagate_version = true)]
struct Cli {
    /// Print the result as JSON (the API's result type) instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a stack file: print every error with file:line:column, or the start order.
    ///
    /// Exit status: 0 valid, 1 invalid, 2 the file could not be found.
    Check {
        /// Stack file (default: steward.toml in the current directory or the nearest parent).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Check with this profile applied.
        #[arg(short, long)]
        profile: Option<String>,
    },
    /// Run a stack in the foreground until Ctrl-C (or SIGTERM): start in dependency order, gate on health,
    /// restart failures, reload on edits. Output of every module is printed with its name.
    ///
    /// On Ctrl-C/SIGTERM every module is stopped (dependents first) and no process is left behind;
    /// a second Ctrl-C kills everything at once.
    Run {
        /// Stack file (default: steward.toml in the current directory or the nearest parent).
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Profile to run (default: the file's `[project] profile`, else every module).
        #[arg(short, long)]
        profile: Option<String>,
        /// Do not watch the stack file and `watch` globs.
        #[arg(long)]
        no_watch: bool,
        /// Print lifecycle events only, not module output.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run the per-user daemon in the foreground, or control the running one.
    ///
    /// The daemon serves every open project over one socket, `$STEWARD_HOME/run/steward.sock` (default
    /// home: `$XDG_DATA_HOME/steward` or `~/.local/share/steward`). Other commands start it in the
    /// background when it is not running. Its log is `$STEWARD_HOME/logs/daemon.log`.
    ///
    /// After a daemon that did not stop cleanly (killed, crashed), the next one ends the module processes it
    /// left and brings back the stacks that were up (`STEWARD_RESUME`: crash, always or never).
    ///
    /// Exit status of `steward daemon`: 0 after a clean stop, 1 when a daemon already runs for this home,
    /// 2 when it cannot start.
    Daemon {
        #[command(subcommand)]
        action: Option<DaemonAction>,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
    #[command(flatten)]
    Ops(ops::OpsCommand),
}

#[derive(Subcommand)]
enum DaemonAction {
    /// Stop the running daemon: every project is stopped (last opened first) and no module process is
    /// left. Exit status 0 also when no daemon was running.
    Stop,
    /// Show whether the daemon runs, and what it serves (`--json`: the `steward/status` result, `null` when
    /// not running). Exit status 0 running, 3 not running, 2 error.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file, profile } => check(file, profile),
        Command::Run { file, profile, no_watch, quiet } => {
            let path = match find_stack_file(file) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            run::run(run::RunArgs { path, profile, watch: !no_watch, quiet })
        }
        Command::Daemon { action: None } => daemon::run(),
        Command::Daemon { action: Some(action) } => daemon_control(action, cli.json),
        Command::Client(cmd) => cli::run(cmd, cli.json, Cli::command),
        Command::Ops(cmd) => ops::run(cmd, cli.json),
    }
}

/// `steward daemon stop|status`: talks to the running daemon (never starts one).
fn daemon_control(action: DaemonAction, json: bool) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async {
        let home = match client::default_home() {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let c = match client::Client::connect(&home).await {
            Ok(c) => c,
            Err(client::ClientError::NotRunning { .. }) => {
                return match action {
                    DaemonAction::Stop => {
                        eprintln!("steward: no daemon is running for {}", home.display());
                        ExitCode::SUCCESS
                    }
                    DaemonAction::Status => {
                        if json {
                            println!("null");
                        } else {
                            println!("not running (home {})", home.display());
                        }
                        ExitCode::from(3)
                    }
                };
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        match action {
            DaemonAction::Stop => match c.stop_daemon(std::time::Duration::from_secs(120)).await {
                Ok(pid) => {
                    eprintln!("steward: daemon (pid {pid}) stopped");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            },
            DaemonAction::Status => match c.status().await {
                Ok(s) if json => {
                    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Ok(s) => {
                    println!(
                        "running: steward {} (pid {}), up {}s, home {}",
                        s.version,
                        s.pid,
                        s.uptime_ms / 1000,
                        s.home
                    );
                    for p in &s.projects {
                        let running =
                            p.modules.iter().filter(|m| m.state == steward_protocol::ModuleState::Running).count();
                        println!(
                            "  {} ({}) profile {}, {}, {running}/{} running",
                            p.name,
                            p.path,
                            p.profile.as_deref().unwrap_or("-"),
                            if p.up { "up" } else { "down" },
                            p.modules.len()
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            },
        }
    })
}

fn check(file: Option<PathBuf>, profile: Option<String>) -> ExitCode {
    let path = match find_stack_file(file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match config::load(&path, &LoadOptions::from_process_env(profile)) {
        Ok(stack) => {
            println!("{}: ok ({} modules)", path.display(), stack.modules.len());
            if let Some(p) = &stack.active_profile {
                println!("profile: {p}");
            }
            println!("start order:");
            for (i, level) in graph::start_order(&stack.modules).iter().enumerate() {
                println!("  {}. {}", i + 1, level.join(", "));
            }
            ExitCode::SUCCESS
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}\n");
            }
            eprintln!("error: {}: {} error{}", path.display(), diags.len(), if diags.len() == 1 { "" } else { "s" });
            ExitCode::from(1)
        }
    }
}

/// `-f FILE`, or `steward.toml` in the current directory or the nearest parent.
pub(crate) fn find_stack_file(file: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(f) = file {
        return if f.is_file() {
            std::path::absolute(&f).map_err(|e| format!("{}: {e}", f.display()))
        } else {
            Err(format!("stack file not found: {}", f.display()))
        };
    }
    let cwd = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
    let mut dir: Option<&Path> = Some(&cwd);
    while let Some(d) = dir {
        let candidate = d.join("steward.toml");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    Err(format!("no steward.toml in {} or any parent directory (use -f FILE)", cwd.display()))
}
