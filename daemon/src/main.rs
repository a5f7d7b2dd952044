//! `steward`: the daemon and its CLI (one binary).
//!
//! This file is glue: argument parsing, output formatting and exit codes. The engine lives in
//! `steward_framework`.

mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use steward_framework::config::{self, LoadOptions};
use steward_framework::graph;

/// Keeps a local stack of services healthy: dependency order, health checks, restarts with backoff,
/// profiles, hot reload.
#[derive(Parser)]
#[command(name = "steward", version, about, propagate_version = true)]
struct Cli {
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
    }
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
