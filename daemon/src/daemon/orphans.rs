//! No module outlives a daemon that died: the process group of every live run is recorded in
//! `run/pgids` (rewritten on every change), and a daemon starting up kills the groups a previous one left.
//!
//! A pgid alone could have been reused by now, so each entry also records the leader's start time (field 22
//! of `/proc/PID/stat`, in clock ticks since boot; `ps -o lstart=` elsewhere). A recorded group is killed
//! only when its leader is still that same process, or — leader gone, orphans left in the group — when
//! every member started after the recorded leader did (Linux never hands out a pid that is still in use as
//! a process-group id, so such a group is still ours).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Entry {
    start: String,
    what: String,
}

/// The `run/pgids` file of a running daemon.
pub struct PgidFile {
    path: PathBuf,
    live: Mutex<BTreeMap<u32, Entry>>,
}

impl PgidFile {
    /// Records into `path` (which should have been recovered and cleared first).
    pub fn new(path: PathBuf) -> PgidFile {
        PgidFile { path, live: Mutex::new(BTreeMap::new()) }
    }

    /// A run started: its leader `pgid` leads its own group.
    pub fn started(&self, pgid: u32, project: &str, module: &str, run: u64) {
        let Some(start) = start_stamp(pgid) else { return }; // already gone: nothing to recover
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.insert(pgid, Entry { start, what: format!("{project}\t{module}\t{run}") });
        self.write(&live);
    }

    /// A run ended (its group is empty).
    pub fn ended(&self, pgid: u32) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.remove(&pgid).is_some() {
            self.write(&live);
        }
    }

    /// Every run ended (clean shutdown).
    pub fn clear(&self) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let _ = std::fs::remove_file(&self.path);
    }

    fn write(&self, live: &BTreeMap<u32, Entry>) {
        let mut text = String::new();
        for (pgid, e) in live {
            text.push_str(&format!("{pgid}\t{}\t{}\n", e.start.replace(['\t', '\n'], " "), e.what.replace('\n', " ")));
        }
        let tmp = self.path.with_extension("tmp");
        let r = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = r {
            tracing::warn!("cannot record live process groups in {}: {e}", self.path.display());
        }
    }
}

/// Kills the process groups recorded in `path` by a daemon that did not stop cleanly, waits (up to 5 s) for
/// them to be gone, and removes the file. Returns the number of groups killed.
pub fn recover(path: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else { return 0 };
    let mut killed = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, '\t');
        let (Some(pgid), Some(start)) = (f.next().and_then(|p| p.parse::<u32>().ok()), f.next()) else { continue };
        let what = f.next().unwrap_or("").replace('\t', " ");
        if pgid <= 1 {
            continue;
        }
        match still_ours(pgid, start) {
            Verdict::Ours => {
                tracing::warn!("killing process group {pgid} left by a previous daemon ({what})");
                // SAFETY: plain syscall on a pid value; no memory is involved.
                unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
                killed.push(pgid);
            }
            Verdict::Gone => {}
            Verdict::Reused => {
                tracing::info!("process group {pgid} ({what}) was reused by another process; left alone")
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while killed.iter().any(|g| !group_members(*g).is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(path);
    killed.len()
}

enum Verdict {
    Ours,
    Gone,
    Reused,
}

fn still_ours(pgid: u32, recorded: &str) -> Verdict {
    let members = group_members(pgid);
    if members.is_empty() {
        return Verdict::Gone;
    }
    match start_stamp(pgid) {
        Some(now) if now == recorded => Verdict::Ours,
        Some(_) => Verdict::Reused,
        None => {
            // Leader gone, group alive: orphans of our run, if they all started after it.
            let (Ok(rec), true) = (recorded.parse::<u64>(), cfg!(target_os = "linux")) else { return Verdict::Reused };
            let after =
                members.iter().all(|m| start_stamp(*m).and_then(|s| s.parse::<u64>().ok()).is_some_and(|s| s >= rec));
            if after { Verdict::Ours } else { Verdict::Reused }
        }
    }
}

/// When the process started, as an opaque comparable stamp.
#[cfg(target_os = "linux")]
pub fn start_stamp(pid: u32) -> Option<String> {
    stat_fields(pid).and_then(|f| f.get(19).map(|s| s.to_string()))
}

/// Fields of `/proc/PID/stat` after the command name (field 3, the state, is index 0).
#[cfg(target_os = "linux")]
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Processes whose process group is `pgid`.
#[cfg(target_os = "linux")]
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat_fields(*pid).is_some_and(|f| {
                // A zombie no longer counts (its parent will reap it).
                f.first().map(String::as_str) != Some("Z") && f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
            })
        })
        .collect()
}

/// When the process started, as an opaque comparable stamp.
#[cfg(not(target_os = "linux"))]
pub fn start_stamp(pid: u32) -> Option<String> {
    let out = std::process::Command::new("ps").args(["-o", "lstart=", "-p", &pid.to_string()]).output().ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// Processes whose process group is `pgid`.
#[cfg(not(target_os = "linux"))]
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(out) = std::process::Command::new("ps").args(["-A", "-o", "pid=,pgid=,stat="]).output() else {
        return vec![];
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let pid = f.next()?.parse::<u32>().ok()?;
            let g = f.next()?.parse::<u32>().ok()?;
            let stat = f.next().unwrap_or("");
            (g == pgid && !stat.starts_with('Z')).then_some(pid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    #[test]
    fn own_start_stamp_is_stable() {
        let me = std::process::id();
        let a = start_stamp(me).expect("stamp of this process");
        assert_eq!(start_stamp(me), Some(a));
    }

    #[test]
    fn recover_kills_a_recorded_group_and_spares_a_reused_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgids");
        let mut child = std::process::Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
        let pgid = child.id();
        let file = PgidFile::new(path.clone());
        file.started(pgid, "/p/steward.toml", "db", 1);
        // A second entry with a wrong start time must be left alone.
        let mut other = std::process::Command::new("sleep").arg("30").process_group(0).spawn().unwrap();
        let text = std::fs::read_to_string(&path).unwrap() + &format!("{}\t1\tx\ty\t2\n", other.id());
        std::fs::write(&path, text).unwrap();
        assert_eq!(recover(&path), 1);
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
        assert!(other.try_wait().unwrap().is_none(), "a reused pgid was killed");
        other.kill().unwrap();
        other.wait().unwrap();
        assert!(!path.exists());
    }
}
