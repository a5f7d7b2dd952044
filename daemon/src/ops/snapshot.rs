//! Making a backup: what goes in (the store, each project's stack files, each module's hook output) and in
//! which order. The daemon calls [`make_backup`] off its async threads; the repository itself (content
//! addressing, manifests) is `steward_framework::backup`.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use steward_framework::backup::repo::NewFile;
use steward_framework::backup::{
    BackupError, FileKind, HookRecord, Manifest, ProjectEntry, Repository, Trigger, project_slug, sqlite,
};
use steward_framework::config::{BackupSpec, ModuleSpec, Stack};
use steward_framework::store::mask::mask_text;

/// One project to back up.
pub struct ProjectInput {
    /// Project id (stack file path).
    pub id: String,
    /// Its effective stack, or why it could not be loaded (then only the root file is saved).
    pub stack: Result<Stack, String>,
}

/// What to back up.
pub struct BackupInput {
    /// `STEWARD_HOME`.
    pub home: PathBuf,
    /// The store's database file.
    pub store: PathBuf,
    /// Projects.
    pub projects: Vec<ProjectInput>,
    /// Why.
    pub trigger: Trigger,
}

/// Progress: percentage (0–100) and what is being done.
pub type Progress<'a> = &'a mut dyn FnMut(u32, String);

/// How long a backup waits for another one (or a prune) to finish.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// Makes a backup. The store copy is required (its failure fails the backup); a stack file that vanished or
/// a failing hook is recorded in the manifest's `problems` and the backup goes on.
pub fn make_backup(repo: &Repository, input: BackupInput, progress: Progress<'_>) -> Result<Manifest, BackupError> {
    repo.create()?;
    let mut w = repo.begin(input.trigger, &input.home.display().to_string(), LOCK_WAIT)?;
    progress(0, "copying the store".into());
    // The store: 0–70 %.
    let tmp = w.temp_path("store.db");
    sqlite::snapshot_database(&input.store, &tmp, |done, total| {
        let pct = (done * 70).checked_div(total).unwrap_or(0) as u32;
        progress(pct, format!("store: {done}/{total} pages"));
    })?;
    w.add_owned(
        tmp,
        NewFile {
            path: "store.db".into(),
            kind: FileKind::Store,
            project: None,
            module: None,
            source: Some(input.store.display().to_string()),
            mode: Some(0o600),
        },
    )?;

    // Stack files: 70–75 %.
    progress(70, "stack files".into());
    for p in &input.projects {
        let (name, sources, dir) = match &p.stack {
            Ok(s) => (s.project.clone(), s.sources.clone(), s.dir.clone()),
            Err(e) => {
                w.add_problem(format!("{}: the stack file does not load ({e}); only it is saved", p.id));
                let root = PathBuf::from(&p.id);
                let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                (name, vec![root], dir)
            }
        };
        let slug = project_slug(&name, &p.id);
        w.add_project(ProjectEntry { id: p.id.clone(), name, slug: slug.clone() });
        for src in sources {
            let rel = match src.strip_prefix(&dir) {
                Ok(r) => r.to_path_buf(),
                // A file outside the project directory (`extends = "../base.toml"`): keep its absolute path.
                Err(_) => Path::new("_abs").join(src.strip_prefix("/").unwrap_or(&src)),
            };
            let logical = format!("projects/{slug}/config/{}", rel.display());
            let meta = NewFile {
                path: logical.clone(),
                kind: FileKind::Config,
                project: Some(p.id.clone()),
                module: None,
                source: Some(src.display().to_string()),
                mode: None,
            };
            if let Err(e) = w.add_file(&src, meta) {
                w.add_problem(format!("{logical}: {e}"));
            }
        }
    }

    // Hooks: 75–100 %.
    let hooks: Vec<(&ProjectInput, &ModuleSpec, &BackupSpec)> = input
        .projects
        .iter()
        .filter_map(|p| p.stack.as_ref().ok().map(|s| (p, s)))
        .flat_map(|(p, s)| s.modules.values().filter_map(move |m| m.backup.as_ref().map(|b| (p, m, b))))
        .collect();
    for (i, (p, module, hook)) in hooks.iter().enumerate() {
        progress(75 + (i * 25 / hooks.len().max(1)) as u32, format!("hook of {}", module.name));
        let slug = match &p.stack {
            Ok(s) => project_slug(&s.project, &p.id),
            Err(_) => continue,
        };
        let tmp = w.temp_path(&hook.output);
        let started = Instant::now();
        let outcome = run_hook(module, hook, &hook.run, HookIo::StdoutTo(&tmp));
        let logical = format!("projects/{slug}/modules/{}/{}", module.name, hook.output);
        let outcome = outcome.and_then(|()| {
            w.add_owned(
                tmp,
                NewFile {
                    path: logical.clone(),
                    kind: FileKind::Module,
                    project: Some(p.id.clone()),
                    module: Some(module.name.clone()),
                    source: None,
                    mode: Some(0o600),
                },
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        });
        if let Err(e) = &outcome {
            w.add_problem(format!("hook of {} ({}): {e}", module.name, p.id));
        }
        w.add_hook(HookRecord {
            project: p.id.clone(),
            module: module.name.clone(),
            command: mask_text(&hook.run).into_owned(),
            ok: outcome.is_ok(),
            error: outcome.err(),
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }
    progress(100, "writing the manifest".into());
    w.commit()
}

/// Where a hook's standard streams go.
pub enum HookIo<'a> {
    /// Backup: stdout into this file.
    StdoutTo(&'a Path),
    /// Restore: this file on stdin.
    StdinFrom(&'a Path),
}

/// Runs a hook command (`/bin/sh -c`, the module's `cwd` and environment, its own process group) under the
/// hook's timeout. Err: why it failed, with the last lines of its stderr (masked).
pub fn run_hook(module: &ModuleSpec, hook: &BackupSpec, command: &str, io: HookIo<'_>) -> Result<(), String> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .current_dir(&module.cwd)
        .envs(&module.env)
        .env("STEWARD_MODULE", &module.name)
        .stderr(Stdio::piped())
        .process_group(0);
    match io {
        HookIo::StdoutTo(path) => {
            let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
            cmd.stdin(Stdio::null()).stdout(f);
        }
        HookIo::StdinFrom(path) => {
            let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            cmd.stdin(f).stdout(Stdio::null());
        }
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    let pid = child.id();
    let mut stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            // Keep the tail only: a chatty hook must not fill memory.
            let mut chunk = [0u8; 8192];
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 64 * 1024 {
                    buf.drain(..buf.len() - 16 * 1024);
                }
            }
        }
        buf
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(hook.timeout) {
        Ok(s) => s.map_err(|e| format!("waiting for the hook: {e}")),
        Err(_) => {
            // SAFETY: killpg on the group the hook leads (process_group(0)); it has not been reaped yet, so the
            // id cannot have been reused.
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
            let _ = rx.recv();
            Err(format!("timed out after {:?} (killed)", hook.timeout))
        }
    };
    let _ = waiter.join();
    // The group may have members left that hold stderr open: end them before reading it to the end.
    // SAFETY: as above; ESRCH (nothing left) is fine.
    unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
    let tail = reader.join().unwrap_or_default();
    let status = status?;
    if status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&tail);
    let last: Vec<&str> = text.lines().rev().filter(|l| !l.trim().is_empty()).take(3).collect();
    let last: Vec<&str> = last.into_iter().rev().collect();
    let how = match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".to_string(),
    };
    Err(if last.is_empty() { how } else { format!("{how}: {}", mask_text(&last.join(" | "))) })
}
