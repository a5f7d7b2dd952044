//! `steward daemon`: one per user (per `STEWARD_HOME`), serving every open project over one socket.
//!
//! Start-up, in order: the home and its private `run/` directory (0700); the lock (`run/steward.lock`,
//! `flock`ed for the daemon's whole life — a second daemon for the same home refuses to start); the log
//! (`logs/daemon.log`); recovery of module processes left by a daemon that died (`run/pgids`); the store
//! (`store.db`); the socket (`run/steward.sock`, 0600, peer uid checked on every connection).
//!
//! Shutdown (`steward/daemon/stop`, SIGTERM, SIGINT, SIGHUP): the socket is removed, every project is
//! stopped (last opened first), the store is flushed, sessions are closed, exit 0. A second signal kills
//! every module process group at once. A panic kills them too.
//!
//! - [`server`]: accept loop, sessions (tower-lsp-server), the method table.
//! - [`handlers`]: one function per method. [`convert`]: engine/store data → wire types.
//! - [`state`]: projects, their engines, log consumers and event forwarders; incidents.
//! - [`framing`]: size limits, timeouts and the bounded outgoing queue around the library's framing.
//! - [`sessions`]: broadcast registry. [`tail`]: log subscriptions. [`orphans`]: crash recovery.
//! - [`language`]: language features for stack files (diagnostics, hover, code lenses, completion).
//! - [`metrics`]: the sampler (module trees, the machine, IPC counters and score); [`alerts`]: the rules.
//! - [`trim`]: gives memory back while idle (cold code pages, freed heap).
//! - [`http`]: the optional loopback `/metrics` (Prometheus) and `/health` endpoint (`STEWARD_HTTP_ADDR`).
//! - [`ops`]: backups (on request and scheduled), store maintenance, the health check, `$/progress`.

mod alerts;
mod convert;
mod error;
mod framing;
mod handlers;
mod http;
mod language;
mod logfile;
mod metrics;
mod ops;
mod orphans;
mod resume;
mod server;
mod sessions;
mod state;
mod tail;
mod trim;

use std::fs::File;
use std::io::{IsTerminal, Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use steward_framework::engine;
use steward_framework::store::Store;
use steward_protocol::paths;
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use state::DaemonState;

/// Runs the daemon in the foreground until it is stopped. Exit status: 0 after a clean stop, 1 when another
/// daemon already runs for this home, 2 when it cannot start.
pub fn run() -> ExitCode {
    let Some(home) = paths::home() else {
        eprintln!("error: cannot find a home directory: set STEWARD_HOME or HOME");
        return ExitCode::from(2);
    };
    let home = std::path::absolute(&home).unwrap_or(home);
    if let Err(e) = prepare_dirs(&home) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let lock = match Lock::acquire(&paths::lock_path(&home)) {
        Ok(l) => l,
        Err(LockError::Held(pid)) => {
            eprintln!(
                "error: a Steward daemon is already running for {}{}",
                home.display(),
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            );
            return ExitCode::from(1);
        }
        Err(LockError::Io(e)) => {
            eprintln!("error: {}: {e}", paths::lock_path(&home).display());
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&home) {
        eprintln!("error: cannot open the daemon log: {e}");
        return ExitCode::from(2);
    }
    // A panic in a request handler is contained (the client gets -32603). Any other panic leaves the daemon
    // in an unknown state: kill every module process group and end, so that nothing outlives it and a
    // service manager can start a fresh one.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if server::in_guarded_handler() {
            tracing::error!("request handler panicked: {info}");
            default_hook(info);
            return;
        }
        let killed = engine::kill_all_live_groups();
        tracing::error!("panic: {info}; killed {killed} module process group(s); exiting");
        default_hook(info);
        std::process::abort();
    }));
    let recovered = orphans::recover(&paths::pgids_path(&home));
    if recovered > 0 {
        tracing::warn!(
            "killed {recovered} module process group(s) left by a previous daemon that did not stop cleanly"
        );
    }
    // One worker thread: every session, the engines and the probes are light async work, and what is not
    // (store queries, processing of captured output, indexing) runs on threads of its own. With one worker a
    // request never waits for a wake-up on another core (status p50 −20 %, p90 −40 % under load, measured
    // with `bench/run daemon`); the multi-thread flavour is kept for `block_in_place`.
    let rt =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("steward").enable_all().build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the runtime: {e}");
                return ExitCode::from(2);
            }
        };
    let code = rt.block_on(serve(home));
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(lock);
    code
}

/// Retention of the store from the environment: `STEWARD_RETENTION_SIZE` (e.g. `512MiB`, default 256 MiB) and
/// `STEWARD_RETENTION_AGE` (e.g. `336h`, default 14 days). A bad value is an error, not a silent default.
fn retention_from_env() -> Result<steward_framework::store::RetentionPolicy, String> {
    let mut policy = steward_framework::store::RetentionPolicy::default();
    if let Ok(v) = std::env::var("STEWARD_RETENTION_SIZE") {
        policy.max_bytes = steward_framework::config::parse_size(&v)
            .map_err(|e| format!("STEWARD_RETENTION_SIZE={v}: {e} (expected a size like 512MiB)"))?;
    }
    if let Ok(v) = std::env::var("STEWARD_RETENTION_AGE") {
        policy.max_age = steward_framework::config::parse_duration(&v)
            .map_err(|e| format!("STEWARD_RETENTION_AGE={v}: {e} (expected a duration like 336h)"))?;
    }
    Ok(policy)
}

async fn serve(home: PathBuf) -> ExitCode {
    let store_path = paths::store_path(&home);
    let retention = match retention_from_env() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let resume_policy = match resume::Policy::from_env() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let backup = match crate::ops::settings::BackupSettings::from_env(&home) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let store = match tokio::task::spawn_blocking(move || {
        let store = Store::open(&store_path)?;
        store.set_retention(retention)?;
        Ok::<_, steward_framework::store::StoreError>(store)
    })
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: opening the store failed: {e}");
            return ExitCode::from(2);
        }
    };
    let http_listener = match http::configured() {
        Ok(None) => None,
        Ok(Some(addr)) => match http::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                let e = format!("{}={addr}: cannot listen: {e}", http::ENV);
                tracing::error!("{e}");
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let socket = paths::socket_path(&home);
    let listener = match bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let (mut term, mut int, mut hup) =
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup())) {
            (Ok(t), Ok(i), Ok(h)) => (t, i, h),
            _ => {
                eprintln!("error: cannot install signal handlers");
                return ExitCode::from(2);
            }
        };
    // Test hook: prove that a panic outside a handler leaves no module process behind (as for `steward run`).
    if std::env::var_os("STEWARD_DEBUG_PANIC_ON_USR1").is_some() {
        if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
            tokio::spawn(async move {
                usr1.recv().await;
                panic!("STEWARD_DEBUG_PANIC_ON_USR1");
            });
        }
    }
    // What the previous daemon had open (read before this one's state starts its own record).
    let previous = resume::take(&paths::projects_path(&home));
    let state = Arc::new(DaemonState::new(home.clone(), store, framing::Limits::from_env(), backup));
    let tail = tokio::spawn(tail::Tail::run(state.clone()));
    let scheduler = tokio::spawn(ops::scheduler(state.clone()));
    let sampler = tokio::spawn(metrics::run(state.clone()));
    let trimmer = tokio::spawn(trim::run());
    if let Some(l) = http_listener {
        if let Ok(addr) = l.local_addr() {
            tracing::info!("http endpoint on http://{addr}/metrics and /health");
        }
        tokio::spawn(http::serve(state.clone(), l));
    }
    // Before accepting: the first client already sees the resumed projects.
    match previous {
        Some((clean, entries)) if resume_policy.resumes(clean) && !entries.is_empty() => {
            resume::bring_back(&state, entries, clean).await;
        }
        _ => {}
    }
    let accept = tokio::spawn(server::accept_loop(state.clone(), listener));
    tracing::info!(
        "steward daemon {} (pid {}) listening on {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        socket.display()
    );
    eprintln!(
        "steward daemon {} (pid {}) listening on {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        socket.display()
    );

    tokio::select! {
        _ = state.shutdown.cancelled() => {}
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
        _ = hup.recv() => tracing::info!("SIGHUP received"),
    }
    tracing::info!("stopping: every project, then the store");
    state.shutdown.cancel();
    let _ = std::fs::remove_file(&socket);
    accept.abort();
    tokio::select! {
        _ = state.stop_projects() => {}
        _ = term.recv() => kill_now(),
        _ = int.recv() => kill_now(),
    }
    state.sessions.cancel_all();
    scheduler.abort();
    sampler.abort();
    trimmer.abort();
    let _ = tail.await;
    // Give sessions a moment to write what they queued (a session leaves the registry once its writer ended).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while state.sessions.len() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

fn kill_now() {
    let n = engine::kill_all_live_groups();
    tracing::warn!("second signal: killed {n} module process group(s)");
}

/// The home, `run/` (0700, owned by us) and `logs/`.
fn prepare_dirs(home: &Path) -> Result<(), String> {
    let run = paths::run_dir(home);
    let private = |dir: &Path| {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", dir.display()))
    };
    // A home we create holds logs and notes: private. An existing one (STEWARD_HOME) is left as it is.
    paths::create_private_dir(home).map_err(|e| format!("{}: {e}", home.display()))?;
    for dir in [run.clone(), paths::log_dir(home)] {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        private(&dir)?;
    }
    // The store's files take the database's mode (SQLite creates the WAL and SHM alike): make it 0600.
    let store = paths::store_path(home);
    if !store.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode_0600()
            .open(&store)
            .map_err(|e| format!("{}: {e}", store.display()))?;
    }
    let meta = std::fs::metadata(&run).map_err(|e| format!("{}: {e}", run.display()))?;
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    if std::os::unix::fs::MetadataExt::uid(&meta) != me {
        return Err(format!("{} belongs to another user; refusing to use it", run.display()));
    }
    Ok(())
}

/// Binds the socket with mode 0600 (created under a 077 umask, so it is never reachable by others).
fn bind(socket: &Path) -> Result<UnixListener, String> {
    // sun_path is 108 bytes on Linux, 104 on macOS (with the terminating NUL).
    if socket.as_os_str().len() >= 104 {
        return Err(format!(
            "socket path too long ({} bytes; the limit is 103): {}",
            socket.as_os_str().len(),
            socket.display()
        ));
    }
    // We hold the lock: a socket file left here belongs to a daemon that is gone.
    let _ = std::fs::remove_file(socket);
    // SAFETY: umask only changes this process's file-creation mask; it is restored right after.
    let old = unsafe { libc::umask(0o077) };
    let bound = UnixListener::bind(socket);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    Ok(listener)
}

fn init_logging(home: &Path) -> std::io::Result<()> {
    let file = logfile::LogFile::open(&paths::daemon_log(home))?;
    let filter = || EnvFilter::try_from_env("STEWARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let to_file =
        tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || file.clone()).with_filter(filter());
    let to_terminal = std::io::stderr()
        .is_terminal()
        .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter()));
    let _ = tracing_subscriber::registry().with(to_file).with(to_terminal).try_init();
    Ok(())
}

enum LockError {
    Held(Option<u32>),
    Io(std::io::Error),
}

/// `run/steward.lock`, `flock`ed exclusively; holds the daemon's pid. Released when the process ends,
/// however it ends.
struct Lock {
    _file: File,
}

impl Lock {
    fn acquire(path: &Path) -> Result<Lock, LockError> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode_0600()
            .open(path)
            .map_err(LockError::Io)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held(text.trim().parse().ok()));
            }
            return Err(LockError::Io(e));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{}", std::process::id());
        Ok(Lock { _file: file })
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}
