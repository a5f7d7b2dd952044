//! `steward diag report`: one tar.gz with what a bug report needs, and no secret.
//!
//! Secrets are kept out three ways: environment values never enter the archive (the configuration is the
//! resolved stack with every `env` value replaced by `***`); every text goes through the store's masking
//! rules (`password=…`, bearer tokens, URL credentials, private keys, …); and the values of every
//! secret-looking variable (`*_TOKEN`, `*_PASSWORD`, `*_KEY`, …) of the stacks and of this shell are replaced
//! wherever they appear — also in log lines that printed them bare.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use steward_framework::backup::{Repository, id_for, project_slug, sqlite};
use steward_framework::config::{self, LoadOptions, Stack};
use steward_framework::lifecycle::now_ms;
use steward_framework::store::mask::{MASK, mask_text};
use steward_framework::store::{EventQuery, LogQuery, Store};
use steward_protocol::{self as p, paths};

use super::settings::BackupSettings;
use super::{fail, human_bytes, local_time};

/// Replaces known secret values and masks secret patterns.
pub struct Scrubber {
    secrets: Vec<String>,
}

/// True when `name` looks like the name of a secret (by the store's masking rules for `name=value`).
pub fn secret_name(name: &str) -> bool {
    let probe = format!("{name}=probe-value");
    mask_text(&probe) != probe
}

impl Scrubber {
    /// Collects the secret values of the stacks' modules and of this process's environment.
    pub fn new(stacks: &[Stack]) -> Scrubber {
        let mut secrets: Vec<String> = Vec::new();
        let mut add = |k: &str, v: &str| {
            if v.len() >= 4 && secret_name(k) {
                secrets.push(v.to_string());
            }
        };
        for s in stacks {
            for m in s.modules.values() {
                for (k, v) in &m.env {
                    add(k, v);
                }
            }
        }
        for (k, v) in std::env::vars() {
            add(&k, &v);
        }
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Scrubber { secrets }
    }

    /// `text` without secrets.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = mask_text(text).into_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

/// The stacks to describe: the nearest steward.toml, open projects, and every project the store knows.
fn stacks(status: Option<&p::StatusResult>, store: Option<&Store>) -> Vec<Stack> {
    let mut files: Vec<PathBuf> = crate::find_stack_file(None).into_iter().collect();
    if let Some(s) = status {
        files.extend(s.projects.iter().map(|p| PathBuf::from(&p.path)));
    }
    if let Some(projects) = store.and_then(|s| s.projects().ok()) {
        files.extend(projects.into_iter().map(|p| PathBuf::from(p.project)).filter(|p| p.is_file()));
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for f in files {
        let canon = f.canonicalize().unwrap_or(f.clone());
        if seen.contains(&canon) {
            continue;
        }
        seen.push(canon);
        if let Ok(s) = config::load(&f, &LoadOptions::from_process_env(None)) {
            out.push(s);
        }
    }
    out
}

/// The resolved stack as JSON, every environment value replaced by `***`.
fn masked_stack(s: &Stack, scrub: &Scrubber) -> String {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(modules) = v.get_mut("modules").and_then(|m| m.as_object_mut()) {
        for m in modules.values_mut() {
            if let Some(env) = m.get_mut("env").and_then(|e| e.as_object_mut()) {
                for val in env.values_mut() {
                    *val = serde_json::Value::String(MASK.into());
                }
            }
        }
    }
    if let Some(profiles) = v.get_mut("profiles").and_then(|m| m.as_object_mut()) {
        for prof in profiles.values_mut() {
            if let Some(env) = prof.get_mut("env").and_then(|e| e.as_object_mut()) {
                for val in env.values_mut() {
                    *val = serde_json::Value::String(MASK.into());
                }
            }
        }
    }
    scrub.scrub(&serde_json::to_string_pretty(&v).unwrap_or_default())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => return format!("({}: {e})\n", path.display()),
    };
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    let mut out = all[from..].join("\n");
    out.push('\n');
    out
}

fn system_info(home: &Path) -> String {
    let mut s = String::new();
    // SAFETY: uname writes only into `u`, which we own.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } == 0 {
        let f = |b: &[libc::c_char]| {
            // SAFETY: uname NUL-terminates each field within its array.
            unsafe { std::ffi::CStr::from_ptr(b.as_ptr()) }.to_string_lossy().into_owned()
        };
        s.push_str(&format!("uname: {} {} {} {}\n", f(&u.sysname), f(&u.release), f(&u.version), f(&u.machine)));
    }
    if let Ok(os) = std::fs::read_to_string("/etc/os-release") {
        for l in os.lines().filter(|l| l.starts_with("PRETTY_NAME=") || l.starts_with("VERSION_ID=")) {
            s.push_str(&format!("os-release: {l}\n"));
        }
    }
    s.push_str(&format!("cpus: {}\n", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)));
    if let Ok(m) = std::fs::read_to_string("/proc/meminfo") {
        for l in m.lines().filter(|l| l.starts_with("MemTotal") || l.starts_with("MemAvailable")) {
            s.push_str(&format!("{l}\n"));
        }
    }
    if let Ok(up) = std::fs::read_to_string("/proc/uptime") {
        s.push_str(&format!("uptime (s): {}\n", up.split_whitespace().next().unwrap_or("")));
    }
    s.push_str(&format!("time: {} (local), {} ms since the epoch\n", local_time(now_ms()), now_ms()));
    s.push_str(&format!("home: {}\n", home.display()));
    s
}

struct Archive {
    tar: tar::Builder<GzEncoder<std::fs::File>>,
    root: String,
}

impl Archive {
    fn add(&mut self, name: &str, text: &str) -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(now_ms() / 1000);
        h.set_cksum();
        self.tar.append_data(&mut h, format!("{}/{name}", self.root), text.as_bytes())
    }
}

/// `steward diag report [-o FILE] [-n LINES]`. With `--json`, stdout is `{path, files, bytes}`.
pub fn run(home: &Path, output: Option<PathBuf>, lines: u32, json: bool) -> ExitCode {
    let stamp = id_for(now_ms()).replace('T', "-").trim_end_matches('Z').to_string();
    let output = output.unwrap_or_else(|| PathBuf::from(format!("steward-diag-{stamp}.tar.gz")));
    match build(home, &output, &stamp, lines as usize) {
        Ok(files) => {
            let size = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
            if json {
                let path = std::path::absolute(&output).unwrap_or(output.clone());
                let v = serde_json::json!({"path": path.display().to_string(), "files": files, "bytes": size});
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("wrote {} ({files} files, {}); secrets are masked", output.display(), human_bytes(size));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &format!("{}: {e}", output.display())),
    }
}

fn build(home: &Path, output: &Path, stamp: &str, lines: usize) -> std::io::Result<usize> {
    use std::os::unix::fs::OpenOptionsExt;
    let status: Option<p::StatusResult> = super::runtime().ok().and_then(|rt| {
        rt.block_on(async {
            let c = super::connect(home).await.ok().flatten()?;
            tokio::time::timeout(Duration::from_secs(5), c.status()).await.ok()?.ok()
        })
    });
    let store_path = paths::store_path(home);
    let store = Store::open_read_only(&store_path).ok();
    let stacks = stacks(status.as_ref(), store.as_ref());
    let scrub = Scrubber::new(&stacks);

    let mut tmp_name = output.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    let mut a = Archive {
        tar: tar::Builder::new(GzEncoder::new(file, Compression::default())),
        root: format!("steward-diag-{stamp}"),
    };
    let mut files = Vec::new();
    let mut put = |a: &mut Archive, name: &str, text: String| -> std::io::Result<()> {
        files.push(name.to_string());
        a.add(name, &scrub.scrub(&text))
    };

    put(
        &mut a,
        "versions.txt",
        format!(
            "steward {}\nprotocol {}\nsqlite {}\ndaemon: {}\n",
            env!("CARGO_PKG_VERSION"),
            p::PROTOCOL_VERSION,
            steward_framework::store::sqlite_version(),
            status
                .as_ref()
                .map(|s| format!("{} (pid {}, protocol {})", s.version, s.pid, s.protocol_version))
                .unwrap_or_else(|| "not running".into())
        ),
    )?;
    put(&mut a, "system.txt", system_info(home))?;
    let mut env = String::from(
        "# STEWARD_* variables of the shell that made this report (values masked except paths and levels)\n",
    );
    for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("STEWARD_")) {
        let shown = if matches!(
            k.as_str(),
            "STEWARD_HOME"
                | "STEWARD_LOG"
                | "STEWARD_BACKUP_DIR"
                | "STEWARD_BACKUP_SCHEDULE"
                | "STEWARD_BACKUP_KEEP"
                | "STEWARD_RETENTION_SIZE"
                | "STEWARD_RETENTION_AGE"
                | "STEWARD_RESUME"
        ) {
            v
        } else {
            MASK.to_string()
        };
        env.push_str(&format!("{k}={shown}\n"));
    }
    put(&mut a, "environment.txt", env)?;
    let (checks, _) = super::doctor::checks(home, None);
    put(&mut a, "doctor.txt", super::doctor::render(&checks))?;
    put(
        &mut a,
        "status.json",
        match &status {
            Some(s) => serde_json::to_string_pretty(s).unwrap_or_default(),
            None => "null\n".into(),
        },
    )?;
    for s in &stacks {
        let slug = project_slug(&s.project, &s.file.display().to_string());
        put(&mut a, &format!("config/{slug}.json"), masked_stack(s, &scrub))?;
    }
    match &store {
        Some(st) => {
            let stats = st
                .stats()
                .map(|s| serde_json::to_string_pretty(&s).unwrap_or_default())
                .unwrap_or_else(|e| e.to_string());
            let integrity = match sqlite::integrity_check(&store_path) {
                Ok(()) => "ok".to_string(),
                Err(p) => p.join("\n"),
            };
            put(
                &mut a,
                "store.txt",
                format!("{}\nintegrity_check: {integrity}\nstats: {stats}\n", store_path.display()),
            )?;
            let events = st.query_events(&EventQuery { limit: 500, ..Default::default() }).unwrap_or_default();
            let mut text = String::new();
            for e in &events {
                text.push_str(&format!(
                    "{}  {}  {:<12} {:<8} {}\n",
                    local_time(e.ts_ms),
                    e.project,
                    e.module.as_deref().unwrap_or("-"),
                    e.level.as_str(),
                    e.text
                ));
            }
            put(&mut a, "events.txt", text)?;
            for proj in st.projects().unwrap_or_default() {
                let name = stacks
                    .iter()
                    .find(|s| s.file == Path::new(&proj.project))
                    .map(|s| s.project.clone())
                    .or_else(|| {
                        Path::new(&proj.project)
                            .parent()
                            .and_then(|d| d.file_name())
                            .map(|n| n.to_string_lossy().into_owned())
                    })
                    .unwrap_or_default();
                let slug = project_slug(&name, &proj.project);
                for module in &proj.modules {
                    let rows = st
                        .query_logs(&LogQuery {
                            project: Some(proj.project.clone()),
                            module: Some(module.clone()),
                            limit: lines.max(1),
                            ..Default::default()
                        })
                        .unwrap_or_default();
                    let mut text = format!("# {} {module}: last {} lines\n", proj.project, rows.len());
                    for r in &rows {
                        text.push_str(&format!("{} {:?} {}\n", local_time(r.ts_ms), r.stream, r.text));
                    }
                    let clean: String = module
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
                        .collect();
                    put(&mut a, &format!("logs/{slug}/{clean}.log"), text)?;
                }
            }
        }
        None => put(&mut a, "store.txt", format!("{}: cannot be opened\n", store_path.display()))?,
    }
    put(&mut a, "daemon.log", tail(&paths::daemon_log(home), 2000))?;
    put(&mut a, "daemon.out", tail(&paths::daemon_out(home), 500))?;
    if let Ok(settings) = BackupSettings::from_env(home) {
        let repo = Repository::at(&settings.dir);
        let mut text = format!(
            "repository: {}\nschedule: {:?}\nkeep: {}\n",
            settings.dir.display(),
            settings.schedule,
            settings.keep
        );
        if let Ok((all, bad)) = repo.list() {
            for m in &all {
                text.push_str(&format!(
                    "{} {} {} files {} bytes problems {:?}\n",
                    m.id,
                    m.trigger.as_str(),
                    m.files.len(),
                    m.total_bytes,
                    m.problems
                ));
            }
            for e in &bad {
                text.push_str(&format!("unreadable: {e}\n"));
            }
        }
        for d in repo.drills().iter().rev().take(5) {
            text.push_str(&format!("drill {} of {}: {} ms, ok {}\n", local_time(d.at_ms), d.id, d.duration_ms, d.ok));
        }
        put(&mut a, "backups.txt", text)?;
    }
    let mut listing = String::from("Steward diagnostics. Every file was masked for secrets before it was added.\n\n");
    for f in &files {
        listing.push_str(&format!("{f}\n"));
    }
    a.add("README.txt", &listing)?;
    let gz = a.tar.into_inner()?;
    let file = gz.finish()?;
    file.sync_all()?;
    std::fs::rename(&tmp, output)?;
    let _ = std::io::stdout().flush();
    Ok(files.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for k in ["API_TOKEN", "DB_PASSWORD", "aws_secret_access_key", "X-Api-Key", "client.secret"] {
            assert!(secret_name(k), "{k}");
        }
        for k in ["PORT", "HOST", "LOG_LEVEL", "PATH"] {
            assert!(!secret_name(k), "{k}");
        }
    }
}
