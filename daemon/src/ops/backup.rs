//! `steward backup create|list|verify|prune|restore|drill`.
//!
//! `create` asks the daemon (its store copy must be consistent with its writer); the rest works on the
//! repository's files directly, so a backup can be listed, checked and restored with no daemon running —
//! which is exactly when a restore is needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use steward_framework::backup::repo::NewFile;
use steward_framework::backup::{
    DrillRecord, FileEntry, FileKind, KeepPolicy, Manifest, Repository, Trigger, hash_file, local_day_week, sqlite,
};
use steward_framework::config::{self, LoadOptions};
use steward_framework::lifecycle::now_ms;
use steward_framework::store::Store;
use steward_protocol::{self as p, paths};

use super::settings::BackupSettings;
use super::snapshot::{HookIo, run_hook};
use super::{BackupAction, fail, human_bytes, human_duration, local_time};
use crate::client::Client;

/// Runs a `steward backup` subcommand.
pub fn run(home: &Path, action: BackupAction, json: bool) -> ExitCode {
    let settings = match BackupSettings::from_env(home) {
        Ok(s) => s,
        Err(e) => return fail(2, &e),
    };
    let repo = Repository::at(&settings.dir);
    match action {
        BackupAction::Create { project } => create(home, project, json),
        BackupAction::List => list(&repo, json),
        BackupAction::Verify { id, all } => verify(&repo, id, all, json),
        BackupAction::Prune { dry_run, keep_last, keep_daily, keep_weekly } => {
            let mut keep = settings.keep;
            keep.last = keep_last.unwrap_or(keep.last);
            keep.daily = keep_daily.unwrap_or(keep.daily);
            keep.weekly = keep_weekly.unwrap_or(keep.weekly);
            prune(&repo, keep, dry_run, json)
        }
        BackupAction::Restore { id, only, to, force } => {
            restore(home, &repo, &RestoreArgs { id, only, to, force }, json)
        }
        BackupAction::Drill { id } => drill(&repo, &settings, id.as_deref().unwrap_or("latest"), json),
    }
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.ends_with(".toml") || Path::new(s).exists()
}

fn create(home: &Path, project: Option<String>, json: bool) -> ExitCode {
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(2, &e),
    };
    rt.block_on(async {
        let c = match Client::connect_or_start(home).await {
            Ok(c) => c,
            Err(e) => return fail(2, &e.to_string()),
        };
        // A project named by path (or the nearest steward.toml) is opened first, so that it is included.
        let path = match &project {
            Some(p) if looks_like_path(p) => Some(PathBuf::from(p)),
            Some(_) => None,
            None => crate::find_stack_file(None).ok(),
        };
        let mut key = project.clone();
        if let Some(path) = path {
            let path = match std::path::absolute(&path) {
                Ok(p) => p,
                Err(e) => return fail(2, &format!("{}: {e}", path.display())),
            };
            let opened = c
                .open_with(p::OpenParams {
                    path: path.display().to_string(),
                    profile: None,
                    env: Some(std::env::vars().collect()),
                })
                .await;
            match opened {
                Ok(s) if project.is_some() => key = Some(s.path),
                Ok(_) => {}
                Err(e) => return fail(1, &e.to_string()),
            }
        }
        let token = format!("cli-backup-{}", std::process::id());
        let follow = super::progress::Follow::start(&c, &token);
        let res =
            c.request::<p::BackupCreate>(p::BackupCreateParams { project: key, work_done_token: Some(token) }).await;
        follow.finish();
        let s = match res {
            Ok(s) => s,
            Err(e) => return fail(1, &format!("backup failed: {e}")),
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
        } else {
            println!(
                "backup {}: {} files, {} ({} new) in {} → {}",
                s.id,
                s.files,
                human_bytes(s.total_bytes),
                human_bytes(s.new_bytes),
                human_duration(Duration::from_millis(s.duration_ms)),
                s.dir
            );
            for h in &s.hooks {
                match &h.error {
                    None => println!("  hook {}: ok ({} ms)", h.module, h.duration_ms),
                    Some(e) => println!("  hook {}: FAILED: {e}", h.module),
                }
            }
        }
        for problem in &s.problems {
            eprintln!("warning: {problem}");
        }
        if s.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
    })
}

fn list(repo: &Repository, json: bool) -> ExitCode {
    let (all, bad) = match repo.list() {
        Ok(x) => x,
        Err(e) => return fail(1, &e.to_string()),
    };
    for e in &bad {
        eprintln!("warning: {e}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    if all.is_empty() {
        println!("no backups in {} (make one with `steward backup create`)", repo.dir().display());
        return ExitCode::SUCCESS;
    }
    println!("{:<20} {:<19} {:<11} {:>5} {:>10} {:>10}  PROJECTS", "ID", "TIME", "TRIGGER", "FILES", "SIZE", "NEW");
    for m in &all {
        let projects: Vec<&str> = m.projects.iter().map(|p| p.name.as_str()).collect();
        println!(
            "{:<20} {:<19} {:<11} {:>5} {:>10} {:>10}  {}{}",
            m.id,
            local_time(m.created_ms),
            m.trigger.as_str(),
            m.files.len(),
            human_bytes(m.total_bytes),
            human_bytes(m.new_bytes),
            if projects.is_empty() { "-".to_string() } else { projects.join(", ") },
            if m.problems.is_empty() { String::new() } else { format!("  ({} problem(s))", m.problems.len()) }
        );
    }
    ExitCode::SUCCESS
}

fn verify(repo: &Repository, id: Option<String>, all: bool, json: bool) -> ExitCode {
    let manifests = if all {
        match repo.list() {
            Ok((m, bad)) => {
                for e in &bad {
                    eprintln!("FAILED {e}");
                }
                if !bad.is_empty() && m.is_empty() {
                    return ExitCode::from(1);
                }
                m
            }
            Err(e) => return fail(1, &e.to_string()),
        }
    } else {
        match repo.find(id.as_deref().unwrap_or("latest")) {
            Ok(m) => vec![m],
            Err(e) => return fail(1, &e.to_string()),
        }
    };
    let mut ok = true;
    let mut reports = Vec::new();
    for m in &manifests {
        let bar = super::progress::local_bar(m.files.len() as u64, &format!("verify {}", m.id));
        let report = repo.verify(m, true, |done, _| bar.set_position(done as u64));
        bar.finish_and_clear();
        ok &= report.ok();
        if !json {
            if report.ok() {
                println!(
                    "backup {}: ok ({} files, {}{})",
                    m.id,
                    m.files.len(),
                    human_bytes(m.total_bytes),
                    if m.store().is_some() { ", store integrity ok" } else { "" }
                );
            } else {
                println!("backup {}: FAILED", m.id);
                for problem in report.problems() {
                    println!("  {problem}");
                }
            }
        }
        reports.push(report);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports).unwrap_or_default());
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn prune(repo: &Repository, keep: KeepPolicy, dry_run: bool, json: bool) -> ExitCode {
    if keep.last == 0 && keep.daily == 0 && keep.weekly == 0 {
        return fail(2, "a policy that keeps nothing would delete every backup; keep at least one");
    }
    let (today, week) = local_day_week(now_ms());
    let r = match repo.prune(keep, today, week, dry_run) {
        Ok(r) => r,
        Err(e) => return fail(1, &e.to_string()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    println!(
        "keep {keep}: {} kept, {verb} {} backup(s) and {} unused object(s), {} freed{}",
        r.kept.len(),
        r.removed.len(),
        r.objects_removed,
        human_bytes(r.freed_bytes),
        if dry_run { " (dry run)" } else { "" }
    );
    for id in &r.removed {
        println!("  {verb} {id}");
    }
    if let Some(why) = &r.gc_skipped {
        eprintln!("warning: unused data was not collected: {why}");
    }
    ExitCode::SUCCESS
}

// -----------------------------------------------------------------------------------------------------------
// Restore

struct RestoreArgs {
    id: String,
    only: Option<String>,
    to: Option<PathBuf>,
    force: bool,
}

/// Where one file goes.
enum Dest {
    /// Written to this path.
    File(PathBuf),
    /// Fed to the module's `backup.restore` command.
    Hook { stack: Box<config::Stack>, module: String },
}

fn select<'m>(m: &'m Manifest, only: Option<&str>) -> Result<Vec<&'m FileEntry>, String> {
    let picked: Vec<&FileEntry> = match only {
        None => m.files.iter().collect(),
        Some("store") => m.files.iter().filter(|f| f.kind == FileKind::Store).collect(),
        Some("config") => m.files.iter().filter(|f| f.kind == FileKind::Config).collect(),
        Some(module) => {
            let files: Vec<&FileEntry> = m.files.iter().filter(|f| f.module.as_deref() == Some(module)).collect();
            if files.is_empty() {
                let mut modules: Vec<&str> = m.files.iter().filter_map(|f| f.module.as_deref()).collect();
                modules.dedup();
                return Err(format!(
                    "backup {} has nothing for `{module}` (expected store, config{})",
                    m.id,
                    if modules.is_empty() { String::new() } else { format!(" or a module: {}", modules.join(", ")) }
                ));
            }
            files
        }
    };
    if picked.is_empty() {
        return Err(format!("backup {} has no {} files", m.id, only.unwrap_or("")));
    }
    Ok(picked)
}

fn restore(home: &Path, repo: &Repository, args: &RestoreArgs, json: bool) -> ExitCode {
    let m = match repo.find(&args.id) {
        Ok(m) => m,
        Err(e) => return fail(1, &e.to_string()),
    };
    let files = match select(&m, args.only.as_deref()) {
        Ok(f) => f,
        Err(e) => return fail(1, &e),
    };
    // Damaged content is refused before anything is touched.
    for f in &files {
        let check = repo.check_file(f);
        if !check.ok {
            return fail(
                1,
                &format!(
                    "backup {} is damaged: {}: {}; nothing was restored (try an older backup: `steward backup list`)",
                    m.id,
                    f.path,
                    check.problem.unwrap_or_default()
                ),
            );
        }
    }
    let plan: Vec<(&FileEntry, Dest)> = match &args.to {
        Some(dir) => files.iter().map(|f| (*f, Dest::File(dir.join(&f.path)))).collect(),
        None => files.iter().map(|f| (*f, in_place(home, &m, f))).collect(),
    };
    // Files that are already as in the backup are left alone (and do not count as overwriting).
    let (unchanged, plan): (Vec<_>, Vec<_>) = plan.into_iter().partition(|(f, dest)| match dest {
        Dest::File(path) => hash_file(path).is_ok_and(|(sha, size)| sha == f.sha256 && size == f.size),
        Dest::Hook { .. } => false,
    });
    for (f, _) in &unchanged {
        if !json {
            println!("unchanged {} (already as in the backup)", f.path);
        }
    }
    if args.to.is_none() {
        if let Err(code) = make_room(home, &plan, args.force) {
            return code;
        }
    }
    // Keep what is about to be replaced.
    let kept = match keep_replaced(repo, home, &plan) {
        Ok(k) => k,
        Err(e) => {
            return fail(1, &format!("could not keep the files a restore would replace, so nothing was restored: {e}"));
        }
    };
    let mut restored = Vec::new();
    let mut failed = false;
    for (f, dest) in &plan {
        let outcome = match dest {
            Dest::File(path) => write_file(repo, f, path).map(|()| path.display().to_string()),
            Dest::Hook { stack, module } => restore_through_hook(repo, &m, f, stack, module),
        };
        match outcome {
            Ok(where_) => {
                if !json {
                    println!("restored {} → {where_}", f.path);
                }
                restored.push(serde_json::json!({"path": f.path, "to": where_}));
            }
            Err(e) => {
                eprintln!("error: {}: {e}", f.path);
                restored.push(serde_json::json!({"path": f.path, "error": e}));
                failed = true;
            }
        }
    }
    if json {
        let v = serde_json::json!({"id": m.id, "files": restored, "keptIn": kept});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if let Some(k) = &kept {
        println!("the files it replaced are kept in backup {k} (`steward backup restore {k}` puts them back)");
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// The in-place destination of a file.
fn in_place(home: &Path, m: &Manifest, f: &FileEntry) -> Dest {
    match f.kind {
        FileKind::Store => Dest::File(paths::store_path(home)),
        FileKind::Config => Dest::File(
            f.source.as_ref().map(PathBuf::from).unwrap_or_else(|| home.join("restored").join(&m.id).join(&f.path)),
        ),
        FileKind::Module => {
            let written_out = || Dest::File(home.join("restored").join(&m.id).join(&f.path));
            let (Some(project), Some(module)) = (&f.project, &f.module) else { return written_out() };
            match config::load(Path::new(project), &LoadOptions::from_process_env(None)) {
                Ok(stack)
                    if stack
                        .modules
                        .get(module)
                        .and_then(|s| s.backup.as_ref())
                        .is_some_and(|b| b.restore.is_some()) =>
                {
                    Dest::Hook { stack: Box::new(stack), module: module.clone() }
                }
                _ => written_out(),
            }
        }
    }
}

/// In place, nothing may be overwritten under a running daemon (the store) or a running project (its stack
/// files) unless `--force`; with `--force`, the daemon is stopped first for the store.
fn make_room(home: &Path, plan: &[(&FileEntry, Dest)], force: bool) -> Result<(), ExitCode> {
    if !super::daemon_running(home) {
        return Ok(());
    }
    let store = plan.iter().any(|(f, _)| f.kind == FileKind::Store);
    let projects: Vec<&str> =
        plan.iter().filter(|(f, _)| f.kind == FileKind::Config).filter_map(|(f, _)| f.project.as_deref()).collect();
    let rt = super::runtime().map_err(|e| fail(2, &e))?;
    rt.block_on(async {
        let c = super::connect(home).await.map_err(|e| fail(2, &e))?;
        let Some(c) = c else { return Ok(()) };
        if store {
            if !force {
                return Err(fail(
                    1,
                    &format!(
                        "the daemon (home {}) is running and has the store open; stop it first (`steward daemon \
                         stop`) or pass --force to stop it",
                        home.display()
                    ),
                ));
            }
            eprintln!("steward: stopping the daemon to restore the store");
            c.stop_daemon(Duration::from_secs(180)).await.map_err(|e| fail(1, &e.to_string()))?;
            return Ok(());
        }
        let status = c.status().await.map_err(|e| fail(2, &e.to_string()))?;
        let running: Vec<String> = status
            .projects
            .iter()
            .filter(|s| projects.contains(&s.path.as_str()))
            .filter(|s| s.up || s.modules.iter().any(|m| m.pid.is_some()))
            .map(|s| s.name.clone())
            .collect();
        if !running.is_empty() && !force {
            return Err(fail(
                1,
                &format!(
                    "{} running; its stack files would change under it. Stop it first (`steward down`) or pass --force",
                    running.join(", ") + if running.len() == 1 { " is" } else { " are" }
                ),
            ));
        }
        Ok(())
    })
}

/// Saves every file the plan would overwrite (when its content differs) into a `pre-restore` backup.
fn keep_replaced(repo: &Repository, home: &Path, plan: &[(&FileEntry, Dest)]) -> Result<Option<String>, String> {
    let mut todo: Vec<(&FileEntry, &Path)> = Vec::new();
    for (f, dest) in plan {
        if let Dest::File(path) = dest {
            let differs = match hash_file(path) {
                Ok((sha, _)) => sha != f.sha256,
                Err(_) => path.exists(),
            };
            if differs && path.exists() {
                todo.push((f, path));
            }
        }
    }
    if todo.is_empty() {
        return Ok(None);
    }
    let mut w = repo
        .begin(Trigger::PreRestore, &home.display().to_string(), Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    for (f, path) in todo {
        let meta = |logical: String| NewFile {
            path: logical,
            kind: f.kind,
            project: f.project.clone(),
            module: f.module.clone(),
            source: Some(path.display().to_string()),
            mode: None,
        };
        if f.kind == FileKind::Store {
            // A consistent copy (with what its WAL holds), or the raw files when it is too damaged to read.
            let tmp = w.temp_path("store.db");
            match sqlite::snapshot_database(path, &tmp, |_, _| {}) {
                Ok(_) => {
                    w.add_owned(tmp, meta(f.path.clone())).map_err(|e| e.to_string())?;
                }
                Err(e) => {
                    w.add_problem(format!(
                        "the replaced store could not be read as a database ({e}); its raw files are kept"
                    ));
                    w.add_file(path, meta(f.path.clone())).map_err(|e| e.to_string())?;
                    let wal = wal_path(path);
                    if wal.exists() {
                        w.add_file(&wal, meta(format!("{}-wal", f.path))).map_err(|e| e.to_string())?;
                    }
                }
            }
        } else {
            w.add_file(path, meta(f.path.clone())).map_err(|e| e.to_string())?;
        }
    }
    w.commit().map(|m| Some(m.id)).map_err(|e| e.to_string())
}

fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

fn write_file(repo: &Repository, f: &FileEntry, dest: &Path) -> Result<(), String> {
    if f.kind == FileKind::Store {
        // The old WAL and shared memory belong to the old database: applied to the restored one they would
        // corrupt it. (The old store is already kept.)
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut p = dest.as_os_str().to_owned();
            p.push(suffix);
            match std::fs::remove_file(PathBuf::from(&p)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", PathBuf::from(p).display())),
            }
        }
    }
    repo.extract(f, dest).map_err(|e| e.to_string())
}

fn restore_through_hook(
    repo: &Repository,
    m: &Manifest,
    f: &FileEntry,
    stack: &config::Stack,
    module: &str,
) -> Result<String, String> {
    let spec = stack.modules.get(module).ok_or_else(|| format!("the stack no longer has module {module}"))?;
    let hook = spec.backup.as_ref().ok_or_else(|| format!("module {module} no longer has a backup hook"))?;
    let command = hook.restore.as_deref().ok_or_else(|| format!("module {module} has no backup.restore"))?;
    let tmp = std::env::temp_dir().join(format!("steward-restore-{}-{}-{module}", std::process::id(), m.id));
    repo.extract(f, &tmp).map_err(|e| e.to_string())?;
    let res = run_hook(spec, hook, command, HookIo::StdinFrom(&tmp));
    let _ = std::fs::remove_file(&tmp);
    res.map(|()| format!("`{}` of module {module}", steward_framework::store::mask::mask_text(command)))
}

// -----------------------------------------------------------------------------------------------------------
// Drill

fn drill(repo: &Repository, settings: &BackupSettings, id: &str, json: bool) -> ExitCode {
    let started = Instant::now();
    let m = match repo.find(id) {
        Ok(m) => m,
        Err(e) => return fail(1, &e.to_string()),
    };
    let dir = std::env::temp_dir().join(format!("steward-drill-{}-{}", std::process::id(), now_ms()));
    let mut problems = Vec::new();
    let bar = super::progress::local_bar(m.files.len() as u64, &format!("drill {}", m.id));
    let mut bytes = 0;
    for f in &m.files {
        match repo.extract(f, &dir.join(&f.path)) {
            Ok(()) => bytes += f.size,
            Err(e) => problems.push(e.to_string()),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // The restored files, checked again as they are on disk.
    for f in &m.files {
        let path = dir.join(&f.path);
        match hash_file(&path) {
            Ok((sha, size)) if sha == f.sha256 && size == f.size => {}
            Ok(_) => problems.push(format!("{}: the restored copy differs from the backup", f.path)),
            Err(_) if problems.iter().any(|p| p.contains(&f.path)) => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    let mut counts = BTreeMap::new();
    if m.store().is_some() {
        let db = dir.join("store.db");
        match sqlite::integrity_check(&db) {
            Ok(()) => match Store::open_read_only(&db).and_then(|s| s.stats()) {
                Ok(st) => {
                    counts.insert("logLines", st.log_rows);
                    counts.insert("events", st.event_rows);
                    counts.insert("notes", st.note_rows);
                }
                Err(e) => problems.push(format!("store.db: restored but cannot be opened: {e}")),
            },
            Err(p) => problems.push(format!("store.db: integrity check failed: {}", p.join("; "))),
        }
    }
    let elapsed = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let age = now_ms().saturating_sub(m.created_ms);
    let rec = DrillRecord {
        id: m.id.clone(),
        at_ms: now_ms(),
        duration_ms: elapsed.as_millis() as u64,
        files: m.files.len() as u64,
        bytes,
        backup_age_ms: age,
        ok: problems.is_empty(),
        problems: problems.clone(),
    };
    if let Err(e) = repo.record_drill(&rec) {
        eprintln!("warning: the drill's result was not recorded: {e}");
    }
    if json {
        let v = serde_json::json!({"drill": rec, "store": counts, "scheduleMs": settings.schedule.map(|d| d.as_millis() as u64)});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "drill: restored backup {} ({} files, {}) into a temporary directory and verified it in {:.2} s",
            m.id,
            m.files.len(),
            human_bytes(bytes),
            elapsed.as_secs_f64()
        );
        if !counts.is_empty() {
            println!(
                "  store: integrity ok; {} log lines, {} events, {} notes",
                counts["logLines"], counts["events"], counts["notes"]
            );
        }
        println!(
            "  recovery time (RTO) on this machine: {:.2} s to restore, plus the daemon's start",
            elapsed.as_secs_f64()
        );
        let rpo = match settings.schedule {
            Some(every) => {
                format!("at most {} with scheduled backups every {}", human_duration(every), human_duration(every))
            }
            None => "unbounded: scheduled backups are off (set STEWARD_BACKUP_SCHEDULE=daily)".to_string(),
        };
        println!(
            "  data a restore now would lose (RPO): everything since {} ({} ago); {rpo}",
            local_time(m.created_ms),
            human_duration(Duration::from_millis(age))
        );
        for p in &problems {
            println!("  FAILED {p}");
        }
    }
    if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
