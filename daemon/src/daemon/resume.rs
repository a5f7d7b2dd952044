//! A stack that was up comes back when the daemon did not stop cleanly (SIGKILL, OOM killer, panic): the
//! service manager restarts the daemon, and the daemon restarts the stack — as supervisord or pm2 would.
//!
//! Every open project — its stack file, active profile, the variables its client sent (only those that
//! differ from the daemon's own environment), whether it is up — is recorded in `run/projects.json` (0600,
//! rewritten on every change). A clean stop marks the file clean. A daemon starting up reads the file after
//! [`super::orphans::recover`] ended the previous run's processes, and reopens and brings up the projects
//! that were up, before it accepts connections — so the first client already sees them.
//!
//! `STEWARD_RESUME`: `crash` (default: only after a daemon that did not stop cleanly), `always` (after a
//! clean stop too, e.g. at login after a logout), `never`.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use steward_framework::core::Input;
use steward_framework::store::{NoteInput, note_source};
use steward_protocol as p;

use super::state::DaemonState;

/// The environment variable naming the policy.
pub const ENV: &str = "STEWARD_RESUME";

/// When a starting daemon brings back the previous daemon's stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Only after a daemon that did not stop cleanly.
    Crash,
    /// After any stop.
    Always,
    /// Never.
    Never,
}

impl Policy {
    /// The policy from `STEWARD_RESUME` (default [`Policy::Crash`]); a bad value is an error, not a default.
    pub fn from_env() -> Result<Policy, String> {
        match std::env::var(ENV) {
            Err(_) => Ok(Policy::Crash),
            Ok(v) => Policy::parse(&v).ok_or_else(|| format!("{ENV}={v}: expected `crash`, `always` or `never`")),
        }
    }

    fn parse(v: &str) -> Option<Policy> {
        match v.trim() {
            "" | "crash" => Some(Policy::Crash),
            "always" => Some(Policy::Always),
            "never" => Some(Policy::Never),
            _ => None,
        }
    }

    /// Whether the stacks of a previous daemon that stopped cleanly (or not) come back.
    pub fn resumes(self, clean: bool) -> bool {
        match self {
            Policy::Crash => !clean,
            Policy::Always => true,
            Policy::Never => false,
        }
    }
}

/// One open project, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The stack file.
    pub path: String,
    /// The active profile.
    #[serde(default)]
    pub profile: Option<String>,
    /// Variables the client sent that the daemon's own environment does not have (or has otherwise).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Whether the stack is up (`up` asked, `down` not since).
    #[serde(default)]
    pub up: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Body {
    /// Written by a clean stop.
    #[serde(default)]
    clean: bool,
    #[serde(default)]
    projects: Vec<Entry>,
}

/// The variables of `sent` that the daemon's environment lacks or has with another value.
pub fn env_difference(sent: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    sent.iter()
        .filter(|(k, v)| std::env::var_os(k.as_str()).is_none_or(|own| own.to_str() != Some(v.as_str())))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `run/projects.json` of a running daemon.
pub struct ResumeFile {
    path: PathBuf,
    projects: Mutex<BTreeMap<String, Entry>>,
}

impl ResumeFile {
    /// Records into `path`, starting empty (the previous daemon's file was read by [`take`]).
    pub fn new(path: PathBuf) -> ResumeFile {
        let file = ResumeFile { path, projects: Mutex::new(BTreeMap::new()) };
        file.write(&BTreeMap::new(), false);
        file
    }

    /// A project was opened (keyed by its id).
    pub fn opened(&self, id: &str, entry: Entry) {
        let mut projects = self.projects.lock().unwrap_or_else(|p| p.into_inner());
        projects.insert(id.to_string(), entry);
        self.write(&projects, false);
    }

    /// A project's profile or up state changed (`up`: None leaves it as it was).
    pub fn changed(&self, id: &str, profile: Option<String>, up: Option<bool>) {
        let mut projects = self.projects.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = projects.get_mut(id) else { return };
        let before = entry.clone();
        entry.profile = profile;
        if let Some(up) = up {
            entry.up = up;
        }
        if *entry != before {
            self.write(&projects, false);
        }
    }

    /// Every project was stopped by a clean stop: what was up is recorded as up, for `STEWARD_RESUME=always`.
    pub fn stopped_cleanly(&self) {
        let projects = self.projects.lock().unwrap_or_else(|p| p.into_inner());
        self.write(&projects, true);
    }

    fn write(&self, projects: &BTreeMap<String, Entry>, clean: bool) {
        let body = Body { clean, projects: projects.values().cloned().collect() };
        let tmp = self.path.with_extension("tmp");
        let written = serde_json::to_vec_pretty(&body).map_err(std::io::Error::other).and_then(|text| {
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(&text)?;
            std::fs::rename(&tmp, &self.path)
        });
        if let Err(e) = written {
            tracing::warn!("cannot record the open projects in {}: {e}", self.path.display());
        }
    }
}

/// Reopens and brings up what the previous daemon had up (`clean`: whether it stopped cleanly). Each
/// resumed project — or one that cannot be, e.g. its stack file is gone — gets a note tagged `resume`, so
/// that "why did my stack restart at 3 am?" has an answer in the memory.
pub async fn bring_back(state: &Arc<DaemonState>, entries: Vec<Entry>, clean: bool) {
    let why = if clean { "stopped (STEWARD_RESUME=always)" } else { "did not stop cleanly" };
    for e in entries {
        let params = p::OpenParams { path: e.path.clone(), profile: e.profile.clone(), env: Some(e.env) };
        let (project, text) = match state.open(params).await {
            Ok(project) => {
                project.handle.send(Input::Up);
                state.record(&project, Some(true));
                let profile = project.profile().map(|p| format!(", profile {p}")).unwrap_or_default();
                tracing::info!(project = %project.id, "resumed: the previous daemon {why}");
                (project.id.clone(), format!("Resumed {}{profile}: the previous daemon {why}.", project.name()))
            }
            Err(err) => {
                tracing::warn!("cannot resume {}: {}", e.path, err.message);
                (e.path.clone(), format!("Could not resume {}: {} (the previous daemon {why}).", e.path, err.message))
            }
        };
        let note =
            NoteInput { project, module: None, text, tags: vec!["resume".into()], source: note_source::RESUME.into() };
        let store = state.store.clone();
        let written = tokio::task::spawn_blocking(move || store.add_note(note)).await;
        if !matches!(written, Ok(Ok(_))) {
            tracing::warn!("cannot write the resume note: {written:?}");
        }
    }
}

/// What the previous daemon left in `path`: whether it stopped cleanly, and the projects that were up.
/// None when there is no file. An unreadable file is logged and treated as absent.
pub fn take(path: &Path) -> Option<(bool, Vec<Entry>)> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("cannot read {}: {e}; no project is resumed", path.display());
            return None;
        }
    };
    match serde_json::from_slice::<Body>(&text) {
        Ok(body) => Some((body.clean, body.projects.into_iter().filter(|p| p.up).collect())),
        Err(e) => {
            tracing::warn!("{}: {e}; no project is resumed", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, up: bool) -> Entry {
        Entry { path: path.into(), profile: Some("full".into()), env: BTreeMap::new(), up }
    }

    #[test]
    fn policy_values_and_what_they_resume() {
        assert_eq!(Policy::parse("crash"), Some(Policy::Crash));
        assert_eq!(Policy::parse(" always "), Some(Policy::Always));
        assert_eq!(Policy::parse("never"), Some(Policy::Never));
        assert_eq!(Policy::parse("sometimes"), None);
        assert!(Policy::Crash.resumes(false) && !Policy::Crash.resumes(true));
        assert!(Policy::Always.resumes(false) && Policy::Always.resumes(true));
        assert!(!Policy::Never.resumes(false) && !Policy::Never.resumes(true));
    }

    #[test]
    fn the_file_round_trips_marks_clean_stops_and_keeps_only_what_was_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("projects.json");
        assert_eq!(take(&path), None);
        let file = ResumeFile::new(path.clone());
        assert_eq!(take(&path), Some((false, vec![])));
        file.opened("/a/steward.toml", entry("/a/steward.toml", false));
        file.opened("/b/steward.toml", entry("/b/steward.toml", false));
        file.changed("/a/steward.toml", Some("minimal".into()), Some(true));
        file.changed("/b/steward.toml", Some("full".into()), None);
        file.changed("/unknown", None, Some(true));
        let mut a = entry("/a/steward.toml", true);
        a.profile = Some("minimal".into());
        assert_eq!(take(&path), Some((false, vec![a.clone()])));
        file.stopped_cleanly();
        assert_eq!(take(&path), Some((true, vec![a])));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // A damaged file resumes nothing (and says so in the log).
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(take(&path), None);
    }

    #[test]
    fn only_variables_the_daemon_lacks_or_has_otherwise_are_kept() {
        let path = std::env::var("PATH").unwrap();
        let sent: BTreeMap<String, String> = [
            ("PATH".to_string(), path),
            ("HOME".to_string(), "/somewhere/else".to_string()),
            ("ONLY_IN_THE_CLIENT_7F3A".to_string(), "1".to_string()),
        ]
        .into();
        let kept = env_difference(&sent);
        assert_eq!(kept.keys().map(String::as_str).collect::<Vec<_>>(), ["HOME", "ONLY_IN_THE_CLIENT_7F3A"]);
    }
}
