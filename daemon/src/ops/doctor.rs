//! `steward doctor`: checks of the installation, each PASSED, FAILED, WARNING or SKIPPED with a fix.
//! It never starts a daemon and never changes anything (except when you accept its offer to restore a
//! damaged store, on a terminal).

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use steward_framework::backup::{Manifest, Repository, sqlite};
use steward_framework::config::{self, LoadOptions, Probe, Stack};
use steward_framework::lifecycle::now_ms;
use steward_framework::store::{EventQuery, LogQuery, Store};
use steward_protocol::{self as p, paths};

use super::settings::BackupSettings;
use super::{human_bytes, human_duration, local_time};

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Fine.
    Passed,
    /// Broken: Steward will not work right until it is fixed.
    Failed,
    /// Works, but something needs attention.
    Warning,
    /// Could not be checked (nothing to check, or it depends on something missing).
    Skipped,
}

/// One check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(name: &str, verdict: Verdict, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check { name: name.into(), verdict, detail: detail.into(), fix }
}

/// What the running daemon told us, if one answers.
struct Daemon {
    status: p::StatusResult,
    answered_at_ms: u64,
}

/// Runs every check (shared with `steward diag report`).
pub fn checks(home: &Path, file: Option<PathBuf>) -> (Vec<Check>, Option<Manifest>) {
    let mut out = Vec::new();
    out.push(check_home(home));
    let (socket, daemon) = check_socket(home);
    out.push(socket);
    let settings = BackupSettings::from_env(home);
    let repo = settings.as_ref().ok().map(|s| Repository::at(&s.dir));
    let (store, offer) = check_store(home, repo.as_ref());
    out.push(store);
    let stacks = stack_files(file, daemon.as_ref());
    let loaded = check_stacks(&stacks, &mut out);
    check_ports(&loaded, daemon.as_ref(), &mut out);
    out.push(check_clock(home, daemon.as_ref()));
    out.push(check_disk(home));
    out.push(match &settings {
        Ok(s) => check_backups(s),
        Err(e) => {
            check("backups", Verdict::Failed, e.clone(), Some("fix the variable (see docs/operations.md)".into()))
        }
    });
    out.push(check_service());
    (out, offer)
}

/// `steward doctor`.
pub fn run(home: &Path, file: Option<PathBuf>, json: bool) -> ExitCode {
    let (results, offer) = checks(home, file);
    let failed = results.iter().any(|c| c.verdict == Verdict::Failed);
    if json {
        println!("{}", serde_json::to_string_pretty(&results).unwrap_or_default());
    } else {
        print!("{}", render(&results));
    }
    if let Some(m) = offer.filter(|_| !json && std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        print!("Restore the store from backup {} now (the damaged one is kept)? [y/N] ", m.id);
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_ok() && answer.trim().eq_ignore_ascii_case("y") {
            return super::backup::run(
                home,
                super::BackupAction::Restore { id: m.id, only: Some("store".into()), to: None, force: true },
                false,
            );
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// The checks as text.
pub fn render(results: &[Check]) -> String {
    let mut s = String::new();
    for c in results {
        let word = match c.verdict {
            Verdict::Passed => "PASSED",
            Verdict::Failed => "FAILED",
            Verdict::Warning => "WARNING",
            Verdict::Skipped => "SKIPPED",
        };
        s.push_str(&format!("{word:<8} {:<12} {}\n", c.name, c.detail));
        if let Some(fix) = &c.fix {
            s.push_str(&format!("{:<8} {:<12} fix: {fix}\n", "", ""));
        }
    }
    let n = |v: Verdict| results.iter().filter(|c| c.verdict == v).count();
    s.push_str(&format!(
        "doctor: {} passed, {} failed, {} warnings, {} skipped\n",
        n(Verdict::Passed),
        n(Verdict::Failed),
        n(Verdict::Warning),
        n(Verdict::Skipped)
    ));
    s
}

fn me() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

fn check_home(home: &Path) -> Check {
    let meta = match std::fs::metadata(home) {
        Ok(m) => m,
        Err(_) => {
            return check(
                "home",
                Verdict::Warning,
                format!("{} does not exist yet", home.display()),
                Some("it is created by the first `steward daemon` (or any command that starts it)".into()),
            );
        }
    };
    if meta.uid() != me() {
        return check(
            "home",
            Verdict::Failed,
            format!("{} belongs to uid {}, not to you (uid {})", home.display(), meta.uid(), me()),
            Some(format!("use your own STEWARD_HOME, or `chown -R $USER {}`", home.display())),
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    let run = paths::run_dir(home);
    if let Ok(r) = std::fs::metadata(&run) {
        let rmode = r.permissions().mode() & 0o777;
        if r.uid() != me() || rmode != 0o700 {
            return check(
                "home",
                Verdict::Failed,
                format!("{} has mode {rmode:o} (owner uid {}); it must be 0700 and yours", run.display(), r.uid()),
                Some(format!("chmod 700 {}", run.display())),
            );
        }
    }
    let store = paths::store_path(home);
    if let Ok(s) = std::fs::metadata(&store) {
        let smode = s.permissions().mode() & 0o777;
        if smode & 0o077 != 0 {
            return check(
                "home",
                Verdict::Warning,
                format!("{} has mode {smode:o}: others can read your logs and notes", store.display()),
                Some(format!("chmod 600 {store}*", store = store.display())),
            );
        }
    }
    if mode & 0o022 != 0 {
        return check(
            "home",
            Verdict::Warning,
            format!("{} has mode {mode:o}: others can write to it", home.display()),
            Some(format!("chmod 700 {}", home.display())),
        );
    }
    check("home", Verdict::Passed, format!("{} (mode {mode:o}, yours)", home.display()), None)
}

fn check_socket(home: &Path) -> (Check, Option<Daemon>) {
    let socket = paths::socket_path(home);
    if !super::daemon_running(home) {
        return (
            check(
                "socket",
                Verdict::Warning,
                "no daemon is running for this home",
                Some(
                    "any client command starts one (`steward status`); to start it at login: `steward service install`"
                        .into(),
                ),
            ),
            None,
        );
    }
    let pid = std::fs::read_to_string(paths::lock_path(home)).unwrap_or_default().trim().to_string();
    match std::fs::metadata(&socket) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode != 0o600 || m.uid() != me() {
                return (
                    check(
                        "socket",
                        Verdict::Failed,
                        format!(
                            "{} has mode {mode:o} (owner uid {}); it must be 0600 and yours",
                            socket.display(),
                            m.uid()
                        ),
                        Some("restart the daemon (`steward daemon stop`; the next command starts it)".into()),
                    ),
                    None,
                );
            }
        }
        Err(_) => {
            return (
                check(
                    "socket",
                    Verdict::Failed,
                    format!("the daemon (pid {pid}) holds the lock but {} is missing", socket.display()),
                    Some(format!("stop it (`kill {pid}`) and start it again; see docs/runbooks.md")),
                ),
                None,
            );
        }
    }
    let status = super::runtime().ok().and_then(|rt| {
        rt.block_on(async {
            let c = super::connect(home).await.ok().flatten()?;
            tokio::time::timeout(Duration::from_secs(5), c.status()).await.ok()?.ok()
        })
    });
    match status {
        Some(s) => (
            check(
                "socket",
                Verdict::Passed,
                format!(
                    "daemon {} (pid {}) answers on {}, up {}",
                    s.version,
                    s.pid,
                    socket.display(),
                    human_duration(Duration::from_millis(s.uptime_ms))
                ),
                None,
            ),
            Some(Daemon { status: s, answered_at_ms: now_ms() }),
        ),
        None => (
            check(
                "socket",
                Verdict::Failed,
                format!("the daemon (pid {pid}) does not answer on {} within 5 s", socket.display()),
                Some(format!("see its log ({}); `kill {pid}` ends it", paths::daemon_log(home).display())),
            ),
            None,
        ),
    }
}

/// The store's integrity; when it fails, the newest backup whose store copy is intact is offered.
fn check_store(home: &Path, repo: Option<&Repository>) -> (Check, Option<Manifest>) {
    let store = paths::store_path(home);
    let size = std::fs::metadata(&store).map(|m| m.len());
    let Ok(size) = size else {
        return (check("store", Verdict::Skipped, format!("{} does not exist yet", store.display()), None), None);
    };
    match sqlite::integrity_check(&store) {
        Ok(()) => (
            check(
                "store",
                Verdict::Passed,
                format!("{} passes its integrity check ({})", store.display(), human_bytes(size)),
                None,
            ),
            None,
        ),
        Err(problems) => {
            let good = repo.and_then(|r| {
                let (all, _) = r.list().ok()?;
                all.into_iter().rev().find(|m| m.store().is_some_and(|s| r.check_file(s).ok))
            });
            let fix = match &good {
                Some(m) => format!(
                    "restore the newest intact backup ({}, made {}): `steward backup restore {} --only store --force` \
                     (the damaged store is kept in a pre-restore backup); see docs/runbooks.md",
                    m.id,
                    local_time(m.created_ms),
                    m.id
                ),
                None => format!(
                    "no backup has an intact store: move the file aside (`steward daemon stop; mv {0} {0}.damaged`) and \
                     start again with an empty store; see docs/runbooks.md",
                    store.display()
                ),
            };
            (
                check(
                    "store",
                    Verdict::Failed,
                    format!(
                        "{} is damaged: {}",
                        store.display(),
                        problems.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                    ),
                    Some(fix),
                ),
                good,
            )
        }
    }
}

/// The stack files to check: `-f`, the nearest steward.toml, and every project the daemon has open.
fn stack_files(file: Option<PathBuf>, daemon: Option<&Daemon>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(f) = crate::find_stack_file(file.clone()) {
        files.push(f);
    } else if let Some(f) = file {
        files.push(f);
    }
    if let Some(d) = daemon {
        for proj in &d.status.projects {
            let p = PathBuf::from(&proj.path);
            if !files.iter().any(|f| f.canonicalize().ok() == p.canonicalize().ok()) {
                files.push(p);
            }
        }
    }
    files
}

fn check_stacks(files: &[PathBuf], out: &mut Vec<Check>) -> Vec<Stack> {
    if files.is_empty() {
        out.push(check("stack", Verdict::Skipped, "no stack file here and no open project", None));
        return Vec::new();
    }
    let mut stacks = Vec::new();
    for f in files {
        match config::load(f, &LoadOptions::from_process_env(None)) {
            Ok(s) => {
                out.push(check(
                    "stack",
                    Verdict::Passed,
                    format!("{}: valid ({} modules)", f.display(), s.modules.len()),
                    None,
                ));
                stacks.push(s);
            }
            Err(d) => out.push(check(
                "stack",
                Verdict::Failed,
                format!(
                    "{}: {} error(s), first: {}",
                    f.display(),
                    d.len(),
                    d.first().map(|d| d.message.as_str()).unwrap_or("")
                ),
                Some(format!("`steward check -f {}` shows each with its line", f.display())),
            )),
        }
    }
    stacks
}

/// `host:port` of a module's tcp/http health check.
fn probe_target(probe: &Probe) -> Option<String> {
    match probe {
        Probe::Tcp(t) => Some(t.clone()),
        Probe::Http(u) => u.strip_prefix("http://").map(|rest| rest.split('/').next().unwrap_or(rest).to_string()),
        Probe::Exec(_) => None,
    }
}

fn check_ports(stacks: &[Stack], daemon: Option<&Daemon>, out: &mut Vec<Check>) {
    let mut any = false;
    for s in stacks {
        let open = daemon.and_then(|d| d.status.projects.iter().find(|p| Path::new(&p.path) == s.file));
        for m in s.modules.values() {
            let Some(target) = m.health.as_ref().and_then(|h| probe_target(&h.check)) else { continue };
            any = true;
            let name = format!("port {target}");
            let addrs: Vec<SocketAddr> = target.to_socket_addrs().map(|a| a.collect()).unwrap_or_default();
            // Only this machine's addresses are ever contacted.
            let Some(addr) = addrs.iter().find(|a| a.ip().is_loopback()).copied() else {
                out.push(check(
                    "ports",
                    Verdict::Skipped,
                    format!("{name} ({}): not a loopback address", m.name),
                    None,
                ));
                continue;
            };
            let in_use = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok();
            let running =
                open.and_then(|p| p.modules.iter().find(|x| x.name == m.name)).is_some_and(|x| x.pid.is_some());
            let c = match (running, in_use) {
                (true, true) => check("ports", Verdict::Passed, format!("{name}: {} listens", m.name), None),
                (true, false) => check(
                    "ports",
                    Verdict::Warning,
                    format!("{name}: {} runs but nothing listens there (yet)", m.name),
                    Some(format!("`steward logs {}` shows why; check the port in its `run`", m.name)),
                ),
                (false, true) => check(
                    "ports",
                    Verdict::Warning,
                    format!("{name}: in use by another process while {} is not running", m.name),
                    Some(format!(
                        "its health check would pass against someone else's server: stop that process (`ss -ltnp 'sport = :{}'` names it) or change the port",
                        addr.port()
                    )),
                ),
                (false, false) => check("ports", Verdict::Passed, format!("{name}: free for {}", m.name), None),
            };
            out.push(c);
        }
    }
    if !any {
        out.push(check("ports", Verdict::Skipped, "no tcp or http health checks to look at", None));
    }
}

fn check_clock(home: &Path, daemon: Option<&Daemon>) -> Check {
    let now = now_ms();
    // 2024-01-01: a clock before that is not set.
    if now < 1_704_067_200_000 {
        return check(
            "clock",
            Verdict::Failed,
            format!("the system clock says {}", local_time(now)),
            Some("set the clock (NTP)".into()),
        );
    }
    if let Some(d) = daemon {
        let theirs = d.status.started_ms + d.status.uptime_ms;
        let drift = theirs.abs_diff(d.answered_at_ms);
        if drift > 5_000 {
            return check(
                "clock",
                Verdict::Warning,
                format!(
                    "the wall clock moved {} against the monotonic clock since the daemon started",
                    human_duration(Duration::from_millis(drift))
                ),
                Some("times of logs around the jump may look out of order; make sure NTP runs".into()),
            );
        }
    }
    let store = paths::store_path(home);
    let newest = Store::open_read_only(&store).ok().map(|s| {
        let log =
            s.query_logs(&LogQuery { limit: 1, ..Default::default() }).ok().and_then(|l| l.last().map(|r| r.ts_ms));
        let ev =
            s.query_events(&EventQuery { limit: 1, ..Default::default() }).ok().and_then(|e| e.last().map(|r| r.ts_ms));
        log.max(ev)
    });
    if let Some(Some(ts)) = newest {
        if ts > now + 60_000 {
            return check(
                "clock",
                Verdict::Warning,
                format!("the store has entries from {} (in the future): the clock went back", local_time(ts)),
                Some("new lines carry the last time until the clock catches up; check NTP".into()),
            );
        }
    }
    check("clock", Verdict::Passed, format!("{} and consistent with the daemon and the store", local_time(now)), None)
}

fn check_disk(home: &Path) -> Check {
    let dir = if home.exists() {
        home.to_path_buf()
    } else {
        home.parent().map(Path::to_path_buf).unwrap_or_else(|| "/".into())
    };
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return check("disk", Verdict::Skipped, "the path cannot be passed to statvfs", None);
    };
    // SAFETY: statvfs writes only into `st`, which we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return check("disk", Verdict::Skipped, format!("statvfs({}) failed", dir.display()), None);
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    let total = (st.f_blocks as u64 * st.f_frsize as u64).max(1);
    let pct = free * 100 / total;
    let detail = format!("{} free on the file system of {} ({pct}%)", human_bytes(free), dir.display());
    let fix = || {
        Some(
            "free space: `steward db prune`, `steward backup prune`, then `steward db vacuum`; see docs/runbooks.md"
                .to_string(),
        )
    };
    if free < 100 * 1024 * 1024 {
        check("disk", Verdict::Failed, detail, fix())
    } else if free < 1024 * 1024 * 1024 || pct < 5 {
        check("disk", Verdict::Warning, detail, fix())
    } else {
        check("disk", Verdict::Passed, detail, None)
    }
}

fn check_backups(settings: &BackupSettings) -> Check {
    let repo = Repository::at(&settings.dir);
    let (all, bad) = match repo.list() {
        Ok(x) => x,
        Err(e) => {
            return check("backups", Verdict::Failed, e.to_string(), Some(format!("check {}", settings.dir.display())));
        }
    };
    if !bad.is_empty() {
        return check(
            "backups",
            Verdict::Warning,
            format!("{} unreadable manifest(s): {}", bad.len(), bad[0]),
            Some("`steward backup verify --all`; remove the broken manifest if it is not needed".into()),
        );
    }
    let Some(latest) = all.iter().rev().find(|m| m.trigger != steward_framework::backup::Trigger::PreRestore) else {
        return check(
            "backups",
            Verdict::Warning,
            format!("no backups in {}", settings.dir.display()),
            Some("`steward backup create` now, and STEWARD_BACKUP_SCHEDULE=daily for the daemon".into()),
        );
    };
    let age = Duration::from_millis(now_ms().saturating_sub(latest.created_ms));
    let limit = settings.schedule.map_or(Duration::from_secs(7 * 86_400), |s| s * 2);
    let detail = format!("{} backup(s); the latest, {}, is {} old", all.len(), latest.id, human_duration(age));
    if age > limit {
        check(
            "backups",
            Verdict::Warning,
            detail,
            Some(match settings.schedule {
                Some(_) => "scheduled backups are not happening: see the daemon's log and `steward events`".into(),
                None => "make one (`steward backup create`) or schedule them (STEWARD_BACKUP_SCHEDULE=daily)".into(),
            }),
        )
    } else {
        check("backups", Verdict::Passed, detail, None)
    }
}

fn check_service() -> Check {
    match super::service::service_file() {
        Ok(f) if f.exists() => check("service", Verdict::Passed, format!("installed ({})", f.display()), None),
        Ok(f) => check(
            "service",
            Verdict::Skipped,
            format!("not installed ({} does not exist)", f.display()),
            Some("optional: `steward service install` starts the daemon at login".into()),
        ),
        Err(e) => check("service", Verdict::Skipped, e, None),
    }
}
