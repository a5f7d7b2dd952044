//! Where a user's daemon keeps its state, and where its socket is. Every client (CLI, VS Code extension,
//! tray app) must agree on this, so it lives with the protocol.
//!
//! ```text
//! STEWARD_HOME/                 $STEWARD_HOME, else $XDG_DATA_HOME/steward or ~/.local/share/steward
//!   run/                        0700
//!     steward.sock              0600, the API socket
//!     steward.lock              flock'ed by the running daemon (contains its pid)
//!     pgids                     process groups of live module runs (crash recovery)
//!     projects.json             open projects and whether they are up (resumed after a crash)
//!   logs/daemon.log             the daemon's own log (rotated by size)
//!   logs/daemon.out             stdout/stderr of a daemon started in the background by a client
//!   store.db                    logs, events, runs and notes (SQLite)
//! ```
//! On macOS the default home is `~/Library/Application Support/Steward`.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the home directory.
pub const HOME_ENV: &str = "STEWARD_HOME";

/// The home directory: `$STEWARD_HOME`, else the platform default. None when not even `$HOME` is set.
pub fn home() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os(HOME_ENV).filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    default_home()
}

/// The platform default home (ignores `$STEWARD_HOME`).
pub fn default_home() -> Option<PathBuf> {
    let user_home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    if cfg!(target_os = "macos") {
        return user_home.map(|h| h.join("Library/Application Support/Steward"));
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
        let x = PathBuf::from(x);
        // The XDG spec says relative values are invalid and must be ignored.
        if x.is_absolute() {
            return Some(x.join("steward"));
        }
    }
    user_home.map(|h| h.join(".local/share/steward"))
}

/// The private run directory (mode 0700).
pub fn run_dir(home: &Path) -> PathBuf {
    home.join("run")
}

/// The API socket.
pub fn socket_path(home: &Path) -> PathBuf {
    run_dir(home).join("steward.sock")
}

/// The daemon's lock file (one daemon per home).
pub fn lock_path(home: &Path) -> PathBuf {
    run_dir(home).join("steward.lock")
}

/// Process groups of live module runs, for recovery after a daemon crash.
pub fn pgids_path(home: &Path) -> PathBuf {
    run_dir(home).join("pgids")
}

/// The open projects (stack file, profile, variables, up or not), for resuming them after a crash.
pub fn projects_path(home: &Path) -> PathBuf {
    run_dir(home).join("projects.json")
}

/// The daemon's log directory.
pub fn log_dir(home: &Path) -> PathBuf {
    home.join("logs")
}

/// The daemon's own log (`tracing`, rotated by size next to it).
pub fn daemon_log(home: &Path) -> PathBuf {
    log_dir(home).join("daemon.log")
}

/// What a daemon started in the background by a client printed (stdout and stderr).
pub fn daemon_out(home: &Path) -> PathBuf {
    log_dir(home).join("daemon.out")
}

/// The store's database file.
pub fn store_path(home: &Path) -> PathBuf {
    home.join("store.db")
}

/// Creates `dir` and any missing parents with mode 0700 (a home holds logs and notes: private from the first
/// moment, whoever creates it — the daemon, or a client starting one). An existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
