//! The client subcommands of `steward` (`up`, `down`, `status`, `logs`, `memory`, …): each talks to the
//! per-user daemon through [`crate::client::Client`], starting the daemon in the background when needed.
//!
//! This file is glue: argument definitions, output formatting (human or `--json`) and exit codes
//! (0 ok, 1 failure or not found, 2 usage error or daemon unreachable). A closed stdout (`steward logs | head`)
//! ends the command quietly with status 0.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use steward_protocol as p;

use crate::client::{self, Client, ClientError};

/// The client subcommands (flattened into the top-level `steward` command).
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Open the project (if the daemon does not have it yet), start every module in dependency order and wait
    /// until all are healthy.
    ///
    /// Variables of this shell's environment are available to `${VAR}` in the stack file. Exit status: 0 up,
    /// 1 a module failed (its name and why are printed) or the stack file has errors, 2 usage error or the
    /// daemon is unreachable.
    Up {
        #[command(flatten)]
        file: FileArg,
        /// Switch to this profile first (default: the active one, else the file's `[project] profile`).
        #[arg(short, long)]
        profile: Option<String>,
        /// Return once the modules are being started, without waiting for them to become healthy.
        #[arg(long)]
        no_wait: bool,
    },
    /// Stop every module of the project (dependents first) and wait until no module process is left.
    Down {
        #[command(flatten)]
        file: FileArg,
    },
    /// Show the modules of the project: MODULE STATE PID RESTARTS UPTIME.
    ///
    /// Without `-f` and without a steward.toml in the current directory or a parent, every project the
    /// daemon has open is shown.
    Status {
        #[command(flatten)]
        file: FileArg,
    },
    /// Start one module (and the modules it requires) and wait until it is ready.
    Start {
        /// Module name.
        module: String,
        #[command(flatten)]
        file: FileArg,
    },
    /// Stop one module (modules that require it keep running) and wait until its process is gone.
    Stop {
        /// Module name.
        module: String,
        #[command(flatten)]
        file: FileArg,
    },
    /// Restart one module and wait until it is ready again.
    Restart {
        /// Module name.
        module: String,
        #[command(flatten)]
        file: FileArg,
    },
    /// Print stored log lines (oldest first), optionally following new ones live.
    ///
    /// Without `-f` and without a steward.toml nearby, lines of every project are shown.
    Logs {
        /// Only this module's lines.
        module: Option<String>,
        #[command(flatten)]
        file: FileArg,
        /// Keep printing new lines as they arrive, until interrupted (Ctrl-C).
        #[arg(short = 'F', long)]
        follow: bool,
        /// Only lines of at least this level (lines of unknown level are left out).
        #[arg(long, value_enum)]
        level: Option<LevelArg>,
        /// Only lines containing this exact, case-sensitive text.
        #[arg(long, value_name = "TEXT")]
        grep: Option<String>,
        /// Only lines from the last DURATION (e.g. 30s, 10m, 2h, 1d).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<Duration>,
        /// How many past lines to print (at most 5000).
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 100)]
        lines: u32,
    },
    /// Search the memory: notes, events and log lines.
    Memory {
        #[command(subcommand)]
        action: MemoryAction,
    },
    /// Store a note in the memory (found later by `steward memory search`).
    ///
    /// The note belongs to the project of `-f FILE` or the nearest steward.toml, if there is one.
    Remember {
        /// The note (secrets in it are masked).
        text: String,
        /// A tag (repeat for several).
        #[arg(short, long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// The module the note is about.
        #[arg(short, long)]
        module: Option<String>,
        #[command(flatten)]
        file: FileArg,
    },
    /// List or switch the project's profiles.
    Profile {
        #[command(subcommand)]
        action: ProfileAction,
    },
    /// Print stored events (state changes, runs, configuration changes), oldest first.
    ///
    /// Without `-f` and without a steward.toml nearby, events of every project are shown.
    Events {
        #[command(flatten)]
        file: FileArg,
        /// Only events from the last DURATION (e.g. 30s, 10m, 2h, 1d).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<Duration>,
        /// How many events to print (the most recent ones; at most 5000).
        #[arg(short = 'n', long = "limit", value_name = "N", default_value_t = 100)]
        limit: u32,
    },
    /// Print the latest metrics: the machine (CPU, memory, disk), the IPC score and its components, and the CPU
    /// and memory of every running module's whole process tree.
    ///
    /// Without `-f` and without a steward.toml nearby, modules of every open project are shown. `--json` prints
    /// the `steward/metrics` result (with `--history`, the samples of the last hour or, with `minute`, the
    /// stored one-minute averages of the last day).
    Metrics {
        #[command(flatten)]
        file: FileArg,
        /// Include history: `raw` (every sample, last hour) or `minute` (one-minute averages, last day).
        #[arg(long, value_enum)]
        history: Option<HistoryArg>,
    },
    /// A live table of modules by CPU and memory, refreshed in place every interval until Ctrl-C (or
    /// `--once`: print one table and exit).
    Top {
        #[command(flatten)]
        file: FileArg,
        /// Print once and exit.
        #[arg(long)]
        once: bool,
        /// Refresh every DURATION (default: the daemon's sampling interval).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        interval: Option<Duration>,
    },
    /// List alerts firing now and those resolved since the daemon started (newest first).
    ///
    /// Exit status: 0 (also when alerts fire; use `--json` to inspect them in scripts).
    Alerts {
        /// How many resolved alerts to print.
        #[arg(short = 'n', long = "limit", value_name = "N", default_value_t = 20)]
        limit: u32,
    },
    /// Print a shell completion script, e.g. `steward completions bash > ~/.local/share/bash-completion/completions/steward`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `-f FILE`.
#[derive(clap::Args)]
pub struct FileArg {
    /// Stack file (default: steward.toml in the current directory or the nearest parent).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
}

/// `--history`.
#[derive(Clone, Copy, ValueEnum)]
pub enum HistoryArg {
    /// Every sample (last hour).
    Raw,
    /// One-minute averages (last day).
    Minute,
}

/// `steward memory …`.
#[derive(Subcommand)]
pub enum MemoryAction {
    /// Ranked search over notes, events and log lines: all words must occur; "quoted phrases" and prefix*
    /// work. Matches are shown in bold (in [brackets] when stdout is not a terminal).
    Search {
        /// What to look for.
        query: String,
        /// Only entries of this module.
        #[arg(short, long)]
        module: Option<String>,
        /// Only entries of this kind (repeat for several).
        #[arg(short, long = "kind", value_enum)]
        kind: Vec<KindArg>,
        /// Only entries of the project of this stack file (default: every project).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
        /// Maximum hits (at most 500).
        #[arg(short = 'n', long = "limit", value_name = "N", default_value_t = 20)]
        limit: u32,
    },
}

/// `steward profile …`.
#[derive(Subcommand)]
pub enum ProfileAction {
    /// List the profiles the stack file declares; the active one is marked with `*`.
    List {
        #[command(flatten)]
        file: FileArg,
    },
    /// Switch to a profile: only what differs is started, stopped or restarted. Waits until the modules of
    /// the new profile are ready when the project is up.
    Use {
        /// Profile name.
        name: String,
        #[command(flatten)]
        file: FileArg,
    },
}

/// A log level on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum LevelArg {
    /// Finest detail.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Unexpected but not a failure.
    Warn,
    /// A failure.
    Error,
}

impl From<LevelArg> for p::Level {
    fn from(l: LevelArg) -> p::Level {
        match l {
            LevelArg::Trace => p::Level::Trace,
            LevelArg::Debug => p::Level::Debug,
            LevelArg::Info => p::Level::Info,
            LevelArg::Warn => p::Level::Warn,
            LevelArg::Error => p::Level::Error,
        }
    }
}

/// A memory kind on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// Log lines.
    Log,
    /// Engine events.
    Event,
    /// Notes (remembered, or written for incidents).
    Note,
}

impl From<KindArg> for p::MemoryKind {
    fn from(k: KindArg) -> p::MemoryKind {
        match k {
            KindArg::Log => p::MemoryKind::Log,
            KindArg::Event => p::MemoryKind::Event,
            KindArg::Note => p::MemoryKind::Note,
        }
    }
}

/// `30s`, `10m`, `2h`, `1d`, `500ms`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration (expected e.g. 30s, 10m, 2h, 1d)"))?;
    let ms = match unit {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("unknown unit `{unit}` in `{s}` (use ms, s, m, h or d)")),
    };
    Ok(Duration::from_millis(n.saturating_mul(ms)))
}

/// How a command ends early: the exit status (the message is already printed).
struct Exit(u8);

type Res = Result<(), Exit>;

/// Writing to stdout: a closed pipe ends the command with status 0.
fn io_exit(e: std::io::Error) -> Exit {
    if e.kind() == std::io::ErrorKind::BrokenPipe { Exit(0) } else { Exit(1) }
}

macro_rules! outln {
    ($($t:tt)*) => {{
        if let Err(e) = writeln!(std::io::stdout().lock(), $($t)*) {
            return Err(io_exit(e));
        }
    }};
}

/// Output style: JSON, and whether stdout is a terminal (colours, bold).
#[derive(Clone, Copy)]
struct Out {
    json: bool,
    tty: bool,
}

impl Out {
    fn json<T: serde::Serialize>(&self, v: &T) -> Res {
        let s = serde_json::to_string_pretty(v).map_err(|_| Exit(1))?;
        outln!("{s}");
        Ok(())
    }

    fn bold(&self, s: &str) -> String {
        if self.tty { format!("\x1b[1m{s}\x1b[0m") } else { s.to_string() }
    }

    fn colour_state(&self, st: p::ModuleState, width: usize) -> String {
        let text = format!("{:<width$}", state_name(st));
        if !self.tty {
            return text;
        }
        let code = match st {
            p::ModuleState::Running => "32",
            p::ModuleState::Failed => "31",
            p::ModuleState::Backoff | p::ModuleState::Starting | p::ModuleState::Stopping => "33",
            _ => "2",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// Runs a client subcommand. `command` builds the whole CLI (for completions).
pub fn run(cmd: ClientCommand, json: bool, command: impl FnOnce() -> clap::Command) -> ExitCode {
    let out = Out { json, tty: std::io::stdout().is_terminal() };
    if let ClientCommand::Completions { shell } = cmd {
        let mut c = command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut c, "steward", &mut buf);
        return match std::io::stdout().lock().write_all(&buf) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => ExitCode::from(io_exit(e).0),
        };
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        let home = client::default_home().map_err(|e| fail(2, &e.to_string()))?;
        let c = Client::connect_or_start(&home).await.map_err(|e| fail(2, &e.to_string()))?;
        dispatch(&c, cmd, out).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit(code)) => ExitCode::from(code),
    }
}

fn fail(code: u8, msg: &str) -> Exit {
    eprintln!("error: {msg}");
    Exit(code)
}

/// Reports a client error: stack-file errors print every diagnostic; daemon answers are failures (1),
/// connection problems 2.
fn client_error(e: ClientError, out: Out) -> Exit {
    match e {
        ClientError::Rpc(rpc) => {
            if let Some(data) = rpc.config_errors() {
                if out.json {
                    let _ = out.json(&data);
                } else {
                    for d in &data.diagnostics {
                        eprintln!("{}\n", d.rendered);
                    }
                }
                let n = data.diagnostics.len();
                eprintln!("error: {}: {n} error{}", data.path, if n == 1 { "" } else { "s" });
                return Exit(1);
            }
            fail(1, &rpc.message)
        }
        other => fail(2, &other.to_string()),
    }
}

/// The project of `-f FILE` or the nearest steward.toml, opened in the daemon when it is not yet (with this
/// process's environment for `${VAR}`).
async fn project(c: &Client, file: Option<PathBuf>, out: Out) -> Result<p::ProjectStatus, Exit> {
    let path = crate::find_stack_file(file).map_err(|e| fail(2, &e))?;
    open(c, path, out).await
}

async fn open(c: &Client, path: PathBuf, out: Out) -> Result<p::ProjectStatus, Exit> {
    c.open_with(p::OpenParams {
        path: path.display().to_string(),
        profile: None,
        env: Some(std::env::vars().collect::<BTreeMap<_, _>>()),
    })
    .await
    .map_err(|e| client_error(e, out))
}

/// Like [`project`], but `None` when no `-f` is given and no steward.toml is found (= every project).
async fn optional_project(c: &Client, file: Option<PathBuf>, out: Out) -> Result<Option<p::ProjectStatus>, Exit> {
    if file.is_some() {
        return project(c, file, out).await.map(Some);
    }
    match crate::find_stack_file(None) {
        Ok(path) => open(c, path, out).await.map(Some),
        Err(_) => Ok(None),
    }
}

async fn dispatch(c: &Client, cmd: ClientCommand, out: Out) -> Res {
    match cmd {
        ClientCommand::Up { file, profile, no_wait } => {
            let proj = project(c, file.file, out).await?;
            let r = c
                .up(p::UpParams { project: proj.path.clone(), profile, wait: !no_wait, timeout_ms: None })
                .await
                .map_err(|e| client_error(e, out))?;
            action_result(&r, out, &format!("{} is up", r.project.name), no_wait)
        }
        ClientCommand::Down { file } => {
            let proj = project(c, file.file, out).await?;
            let r = c.down(&proj.path).await.map_err(|e| client_error(e, out))?;
            action_result(&r, out, &format!("{} is down", r.project.name), false)
        }
        ClientCommand::Status { file } => match optional_project(c, file.file, out).await? {
            Some(proj) => {
                if out.json {
                    return out.json(&proj);
                }
                project_table(&proj, out)
            }
            None => {
                let s = c.status().await.map_err(|e| client_error(e, out))?;
                if out.json {
                    return out.json(&s);
                }
                if s.projects.is_empty() {
                    outln!("no open projects (daemon pid {})", s.pid);
                }
                for (i, proj) in s.projects.iter().enumerate() {
                    if i > 0 {
                        outln!();
                    }
                    project_table(proj, out)?;
                }
                Ok(())
            }
        },
        ClientCommand::Start { module, file } => {
            let proj = project(c, file.file, out).await?;
            let r = c.start_module(&proj.path, &module, true).await.map_err(|e| client_error(e, out))?;
            action_result(&r, out, &format!("{module} started"), false)
        }
        ClientCommand::Stop { module, file } => {
            let proj = project(c, file.file, out).await?;
            let r = c.stop_module(&proj.path, &module, true).await.map_err(|e| client_error(e, out))?;
            action_result(&r, out, &format!("{module} stopped"), false)
        }
        ClientCommand::Restart { module, file } => {
            let proj = project(c, file.file, out).await?;
            let r = c.restart_module(&proj.path, &module, true).await.map_err(|e| client_error(e, out))?;
            action_result(&r, out, &format!("{module} restarted"), false)
        }
        ClientCommand::Logs { module, file, follow, level, grep, since, lines } => {
            let proj = optional_project(c, file.file, out).await?;
            let filter = p::LogFilter { project: proj.map(|p| p.path), module, level: level.map(Into::into), grep };
            logs(c, filter, follow, since, lines, out).await
        }
        ClientCommand::Memory { action: MemoryAction::Search { query, module, kind, file, limit } } => {
            let project = match file {
                Some(f) => Some(project(c, Some(f), out).await?.path),
                None => None,
            };
            let hits = c
                .search(p::MemorySearchParams {
                    query,
                    project,
                    module,
                    kinds: kind.into_iter().map(Into::into).collect(),
                    limit: Some(limit),
                    ..Default::default()
                })
                .await
                .map_err(|e| client_error(e, out))?;
            if out.json {
                return out.json(&p::MemorySearchResult { hits });
            }
            if hits.is_empty() {
                eprintln!("no matches");
                return Err(Exit(1));
            }
            for h in &hits {
                let kind = match h.kind {
                    p::MemoryKind::Log => "log",
                    p::MemoryKind::Event => "event",
                    p::MemoryKind::Note => "note",
                };
                outln!(
                    "{}  {kind:<5}  {:<12}  {}",
                    format_time(h.ts_ms, true),
                    h.module.as_deref().unwrap_or("-"),
                    highlight(&h.snippet, out)
                );
            }
            Ok(())
        }
        ClientCommand::Remember { text, tags, module, file } => {
            let project = optional_project(c, file.file, out).await?.map(|p| p.path);
            let id = c
                .remember(p::RememberParams { text, tags, project, module, source: Some("cli".into()) })
                .await
                .map_err(|e| client_error(e, out))?;
            if out.json {
                return out.json(&p::RememberResult { id });
            }
            outln!("remembered (note {id})");
            Ok(())
        }
        ClientCommand::Profile { action: ProfileAction::List { file } } => {
            let proj = project(c, file.file, out).await?;
            let r = c.profiles(&proj.path).await.map_err(|e| client_error(e, out))?;
            if out.json {
                return out.json(&r);
            }
            if r.profiles.is_empty() {
                outln!("{} declares no profiles (every module runs)", proj.name);
            }
            for prof in &r.profiles {
                let active = r.active.as_deref() == Some(prof.name.as_str());
                let modules = match &prof.modules {
                    Some(m) => m.join(", "),
                    None => "every module".into(),
                };
                let name = format!("{:<16}", prof.name);
                outln!(
                    "{} {}  {modules}{}",
                    if active { "*" } else { " " },
                    if active { out.bold(&name) } else { name },
                    if prof.is_default { "  (default)" } else { "" }
                );
            }
            Ok(())
        }
        ClientCommand::Profile { action: ProfileAction::Use { name, file } } => {
            let proj = project(c, file.file, out).await?;
            let r = c.use_profile(&proj.path, Some(&name), true).await.map_err(|e| client_error(e, out))?;
            action_result(&r, out, &format!("{} now uses profile {name}", r.project.name), false)
        }
        ClientCommand::Events { file, since, limit } => {
            let project = optional_project(c, file.file, out).await?.map(|p| p.path);
            let events = c
                .query_events(p::EventQueryParams {
                    project,
                    since_ms: since.map(since_ms),
                    limit: Some(limit),
                    ..Default::default()
                })
                .await
                .map_err(|e| client_error(e, out))?;
            if out.json {
                return out.json(&p::EventQueryResult { events });
            }
            for e in &events {
                let text = if e.level >= p::Level::Warn && out.tty {
                    format!("\x1b[{}m{}\x1b[0m", if e.level == p::Level::Error { "31" } else { "33" }, e.text)
                } else {
                    e.text.clone()
                };
                outln!("{}  {:<12}  {text}", format_time(e.ts_ms, true), e.module.as_deref().unwrap_or("-"));
            }
            Ok(())
        }
        ClientCommand::Metrics { file, history } => {
            let project = optional_project(c, file.file, out).await?.map(|p| p.path);
            let history = match history {
                None => p::MetricsResolution::None,
                Some(HistoryArg::Raw) => p::MetricsResolution::Raw,
                Some(HistoryArg::Minute) => p::MetricsResolution::Minute,
            };
            let m = c
                .request::<p::Metrics>(p::MetricsParams { project, history, ..Default::default() })
                .await
                .map_err(|e| client_error(e, out))?;
            if out.json {
                return out.json(&m);
            }
            metrics_table(&m, out)
        }
        ClientCommand::Top { file, once, interval } => {
            let project = optional_project(c, file.file, out).await?.map(|p| p.path);
            let mut first = true;
            loop {
                let m = c
                    .request::<p::Metrics>(p::MetricsParams { project: project.clone(), ..Default::default() })
                    .await
                    .map_err(|e| client_error(e, out))?;
                if out.json {
                    out.json(&m)?;
                } else {
                    if out.tty && !first {
                        // Home, then clear to the end: the table is redrawn in place.
                        outln!("\x1b[H\x1b[J");
                    } else if out.tty {
                        outln!("\x1b[2J\x1b[H");
                    }
                    metrics_table(&m, out)?;
                }
                first = false;
                if once {
                    return Ok(());
                }
                let wait = interval.unwrap_or(Duration::from_millis(m.interval_ms.max(100)));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
        }
        ClientCommand::Alerts { limit } => {
            let a = c
                .request::<p::Alerts>(p::AlertsParams { limit: Some(limit) })
                .await
                .map_err(|e| client_error(e, out))?;
            if out.json {
                return out.json(&a);
            }
            if a.active.is_empty() {
                outln!("no alert is firing");
            } else {
                outln!("{}", out.bold("FIRING"));
                for al in &a.active {
                    outln!("  {}  {:<9}  {}", format_time(al.fired_ms, true), level_name(al.level), al.message);
                }
            }
            if !a.resolved.is_empty() {
                outln!("{}", out.bold("RESOLVED"));
                for al in &a.resolved {
                    let until = al.resolved_ms.map(|t| format_time(t, false)).unwrap_or_default();
                    outln!(
                        "  {} – {}  {:<9}  {}",
                        format_time(al.fired_ms, true),
                        until,
                        level_name(al.level),
                        al.message
                    );
                }
            }
            Ok(())
        }
        ClientCommand::Completions { .. } => Ok(()),
    }
}

fn level_name(l: p::AlertLevel) -> &'static str {
    match l {
        p::AlertLevel::Info => "info",
        p::AlertLevel::Warning => "warning",
        p::AlertLevel::Critical => "critical",
        p::AlertLevel::Emergency => "emergency",
    }
}

fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{n} B") } else { format!("{v:.1} {}", units[i]) }
}

/// `steward metrics` / `steward top`.
fn metrics_table(m: &p::MetricsResult, out: Out) -> Res {
    match &m.system {
        Some(s) => {
            let cpu = s.cpu_percent.map(|c| format!("{c:.1} %")).unwrap_or_else(|| "-".into());
            let pct = |used: u64, total: u64| if total == 0 { 0.0 } else { used as f64 * 100.0 / total as f64 };
            outln!(
                "system  CPU {cpu} of {} cores · memory {} / {} ({:.0} %) · disk {} / {} ({:.0} %)",
                s.cpus,
                bytes(s.mem_used_bytes),
                bytes(s.mem_total_bytes),
                pct(s.mem_used_bytes, s.mem_total_bytes),
                bytes(s.disk_used_bytes),
                bytes(s.disk_total_bytes),
                pct(s.disk_used_bytes, s.disk_total_bytes),
            );
        }
        None => outln!("system  (not sampled yet)"),
    }
    if let Some(i) = &m.ipc {
        outln!(
            "IPC     score {} · {:.1} msg/s · {}/s · p50 {:.2} ms · p95 {:.2} ms · errors {:.1} % · queue {:.0} % · {} session{}",
            i.score,
            i.messages_per_sec,
            bytes(i.bytes_per_sec as u64),
            i.latency_p50_ms,
            i.latency_p95_ms,
            i.error_percent,
            i.queue_fill_percent,
            i.sessions.len(),
            if i.sessions.len() == 1 { "" } else { "s" }
        );
    }
    outln!("");
    let header =
        format!("  {:<16} {:>8} {:>8} {:>11} {:>6}  {}", "MODULE", "PID", "CPU %", "MEMORY", "PROCS", "PROJECT");
    outln!("{}", out.bold(&header));
    let mut modules = m.modules.clone();
    modules.sort_by(|a, b| {
        b.cpu_percent.unwrap_or(0.0).total_cmp(&a.cpu_percent.unwrap_or(0.0)).then(b.rss_bytes.cmp(&a.rss_bytes))
    });
    if modules.is_empty() {
        outln!("  (no module is running)");
    }
    for x in &modules {
        let name = x.project.rsplit('/').nth(1).unwrap_or(&x.project);
        outln!(
            "  {:<16} {:>8} {:>8} {:>11} {:>6}  {}",
            x.module,
            x.pid,
            x.cpu_percent.map(|c| format!("{c:.1}")).unwrap_or_else(|| "-".into()),
            bytes(x.rss_bytes),
            x.processes,
            name
        );
    }
    Ok(())
}

/// Prints the outcome of a command that waited; a failure names the module and why (exit 1).
fn action_result(r: &p::ActionResult, out: Out, done: &str, no_wait: bool) -> Res {
    if out.json {
        out.json(r)?;
    } else if r.ok {
        let running = r.project.modules.iter().filter(|m| m.state == p::ModuleState::Running).count();
        let profile = r.project.profile.as_deref().map(|p| format!(", profile {p}")).unwrap_or_default();
        let what = if no_wait { "starting" } else { "running" };
        outln!("steward: {done} ({running}/{} modules {what}{profile})", r.project.modules.len());
        project_table(&r.project, out)?;
    } else {
        project_table(&r.project, out)?;
    }
    if r.ok {
        return Ok(());
    }
    match &r.failed {
        Some(f) => eprintln!("error: module {} failed ({}): {}", f.module, state_name(f.state), f.reason),
        None if r.timed_out => eprintln!("error: timed out waiting for {}", r.project.name),
        None => eprintln!("error: the command did not complete"),
    }
    Err(Exit(1))
}

fn project_table(proj: &p::ProjectStatus, out: Out) -> Res {
    if out.json {
        return Ok(());
    }
    outln!(
        "{} ({}){}{}",
        out.bold(&proj.name),
        proj.path,
        proj.profile.as_deref().map(|p| format!(", profile {p}")).unwrap_or_default(),
        if proj.up { ", up" } else { ", down" }
    );
    outln!("  {:<16} {:<12} {:>8} {:>8}  {}", "MODULE", "STATE", "PID", "RESTARTS", "UPTIME");
    for m in &proj.modules {
        let uptime = if m.pid.is_some() { format_duration(m.state_for_ms) } else { "-".into() };
        let mut line = format!(
            "  {:<16} {} {:>8} {:>8}  {uptime}",
            m.name,
            out.colour_state(m.state, 12),
            m.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            m.restarts,
        );
        if let Some(reason) = &m.reason {
            line.push_str(&format!("  ({reason})"));
        } else if !m.waiting_for.is_empty() {
            line.push_str(&format!("  (waiting for {})", m.waiting_for.join(", ")));
        }
        outln!("{line}");
    }
    for e in &proj.config_errors {
        eprintln!("warning: the last change of the stack file was rejected:\n{e}");
    }
    Ok(())
}

/// `steward logs`: history, then (with `--follow`) live lines from a subscription opened *before* the
/// history query, so that nothing is missed or printed twice.
async fn logs(c: &Client, filter: p::LogFilter, follow: bool, since: Option<Duration>, n: u32, out: Out) -> Res {
    let mut sub = None;
    let mut before_id = None;
    if follow {
        let s = c.subscribe_logs(filter.clone()).await.map_err(|e| client_error(e, out))?;
        before_id = Some(s.cursor + 1);
        sub = Some(s);
    }
    if n > 0 {
        let lines = c
            .logs(p::LogQueryParams {
                project: filter.project.clone(),
                module: filter.module.clone(),
                level: filter.level,
                grep: filter.grep.clone(),
                since_ms: since.map(since_ms),
                before_id,
                limit: Some(n),
                ..Default::default()
            })
            .await
            .map_err(|e| client_error(e, out))?;
        if out.json && !follow {
            return out.json(&p::LogQueryResult { lines });
        }
        for l in &lines {
            log_line(l, out)?;
        }
    } else if out.json && !follow {
        return out.json(&p::LogQueryResult { lines: Vec::new() });
    }
    let Some(mut sub) = sub else { return Ok(()) };
    while let Some(batch) = sub.next().await {
        for l in &batch {
            log_line(l, out)?;
        }
    }
    eprintln!("steward: the daemon closed the connection");
    Ok(())
}

/// One log line: `HH:MM:SS module | text` (with `--follow --json`, one JSON object per line).
fn log_line(l: &p::LogEntry, out: Out) -> Res {
    if out.json {
        let s = serde_json::to_string(l).map_err(|_| Exit(1))?;
        outln!("{s}");
        return Ok(());
    }
    let text = match (&l.ansi, out.tty) {
        (Some(a), true) => a.as_str(),
        _ => l.text.as_str(),
    };
    let module = format!("{:<8}", l.module);
    let module = if out.tty {
        let colour = match l.level {
            Some(p::Level::Error) => "31",
            Some(p::Level::Warn) => "33",
            _ => "36",
        };
        format!("\x1b[{colour}m{module}\x1b[0m")
    } else {
        module
    };
    outln!("{} {module} | {text}", format_time(l.ts_ms, false));
    Ok(())
}

/// Matched terms (between U+0001 and U+0002) in bold on a terminal, in [brackets] otherwise.
fn highlight(snippet: &str, out: Out) -> String {
    let (open, close) = if out.tty { ("\x1b[1m", "\x1b[0m") } else { ("[", "]") };
    snippet.replace('\u{1}', open).replace('\u{2}', close).replace('\n', " ")
}

fn since_ms(d: Duration) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.saturating_sub(d).as_millis() as u64
}

fn state_name(s: p::ModuleState) -> &'static str {
    match s {
        p::ModuleState::Installed => "installed",
        p::ModuleState::Resolved => "resolved",
        p::ModuleState::Starting => "starting",
        p::ModuleState::Running => "running",
        p::ModuleState::Stopping => "stopping",
        p::ModuleState::Stopped => "stopped",
        p::ModuleState::Exited => "exited",
        p::ModuleState::Failed => "failed",
        p::ModuleState::Backoff => "backoff",
    }
}

/// `1h02m`, `5m07s`, `42s`.
fn format_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Local time: `HH:MM:SS`, or `YYYY-MM-DD HH:MM:SS` with `date`.
fn format_time(ts_ms: u64, date: bool) -> String {
    let t = (ts_ms / 1000) as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return ts_ms.to_string();
    }
    if date {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    } else {
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("10y").is_err());
        assert_eq!(format_duration(65_000), "1m05s");
    }

    #[test]
    fn highlighting() {
        let plain = Out { json: false, tty: false };
        assert_eq!(highlight("a \u{1}xyzzy\u{2} b", plain), "a [xyzzy] b");
        let tty = Out { json: false, tty: true };
        assert_eq!(highlight("\u{1}x\u{2}", tty), "\x1b[1mx\x1b[0m");
    }
}
