//! The repository on disk: writing snapshots, reading, verifying, extracting and pruning them.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::retention::{KeepPolicy, SnapshotTime, select_kept};
use super::{
    BackupError, FileEntry, FileKind, HookRecord, MANIFEST_FORMAT, Manifest, ProjectEntry, Result, Trigger, io,
};
use crate::lifecycle::now_ms;

/// Existing objects up to this size are re-hashed before being reused, so a damaged object is replaced by
/// the next backup that has the same content instead of being referenced again.
const REHASH_BELOW: u64 = 64 * 1024 * 1024;

/// A backup repository (see the module docs of [`super`] for its layout).
#[derive(Debug, Clone)]
pub struct Repository {
    dir: PathBuf,
}

/// How one file of a snapshot checked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCheck {
    /// Logical path in the backup.
    pub path: String,
    /// The object file holding it.
    pub object: PathBuf,
    /// Present, of the right size, with the right SHA-256.
    pub ok: bool,
    /// What is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The outcome of [`Repository::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Snapshot id.
    pub id: String,
    /// Every file.
    pub files: Vec<FileCheck>,
    /// `PRAGMA integrity_check` of a restored copy of the store: None when the backup has no store (or it
    /// was not checked), else the problems found (empty = ok).
    pub store_problems: Option<Vec<String>>,
}

impl VerifyReport {
    /// Every file matches and the store copy passes its integrity check.
    pub fn ok(&self) -> bool {
        self.files.iter().all(|f| f.ok) && self.store_problems.as_ref().is_none_or(|p| p.is_empty())
    }

    /// One line per problem, naming the file.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .files
            .iter()
            .filter(|f| !f.ok)
            .map(|f| format!("{}: {} ({})", f.path, f.problem.as_deref().unwrap_or("bad"), f.object.display()))
            .collect();
        if let Some(p) = self.store_problems.as_ref().filter(|p| !p.is_empty()) {
            out.push(format!("store.db: integrity check failed: {}", p.join("; ")));
        }
        out
    }
}

/// What [`Repository::prune`] did (or would do, in a dry run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneReport {
    /// Snapshots kept.
    pub kept: Vec<String>,
    /// Snapshots removed.
    pub removed: Vec<String>,
    /// Objects no remaining snapshot names, removed.
    pub objects_removed: u64,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Nothing was deleted.
    pub dry_run: bool,
    /// Why objects were not collected (an unreadable manifest might still need them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc_skipped: Option<String>,
}

/// One restore drill, appended to `drills.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillRecord {
    /// The snapshot restored.
    pub id: String,
    /// When the drill ran.
    pub at_ms: u64,
    /// Time to restore and verify (the recovery time it demonstrates).
    pub duration_ms: u64,
    /// Files restored.
    pub files: u64,
    /// Bytes restored.
    pub bytes: u64,
    /// How old the backup was when the drill ran (the data a restore at that moment would lose).
    pub backup_age_ms: u64,
    /// Everything checked out.
    pub ok: bool,
    /// What did not.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// A file to add to a snapshot.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Logical path (see [`FileEntry::path`]).
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// Project id.
    pub project: Option<String>,
    /// Module.
    pub module: Option<String>,
    /// Original location.
    pub source: Option<String>,
    /// Permission bits to restore (default: the source's, else 0600).
    pub mode: Option<u32>,
}

/// The flock on `lock`, released when dropped.
#[derive(Debug)]
pub struct RepoLock {
    _file: File,
}

/// Checks that a logical path is relative and stays inside its root (no `..`, no absolute part).
pub fn validate_logical_path(path: &str) -> Result<()> {
    let p = Path::new(path);
    if path.is_empty() || path.contains('\\') || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(BackupError::BadPath(path.to_string()));
    }
    Ok(())
}

/// SHA-256 (hex) and size of a file.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf).map_err(io(path))?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok((hex(&h.finalize()), n))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Repository {
    /// The repository at `dir` (nothing is created until something is written).
    pub fn at(dir: impl Into<PathBuf>) -> Repository {
        Repository { dir: dir.into() }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Where the object of a SHA-256 lives.
    pub fn object_path(&self, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..2).unwrap_or("xx");
        self.dir.join("objects").join(prefix).join(sha256)
    }

    fn manifest_path(&self, id: &str) -> PathBuf {
        self.snapshots_dir().join(format!("{id}.json"))
    }

    /// Creates the directories (0700).
    pub fn create(&self) -> Result<()> {
        for d in [self.dir.clone(), self.dir.join("objects"), self.snapshots_dir(), self.tmp_dir()] {
            private_dir(&d)?;
        }
        Ok(())
    }

    /// Takes the repository's lock, waiting up to `wait` for another backup or prune to finish.
    pub fn lock(&self, wait: Duration) -> Result<RepoLock> {
        use std::os::fd::AsRawFd;
        self.create()?;
        let path = self.dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        let deadline = Instant::now() + wait;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(RepoLock { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(BackupError::Io { path, source: e });
            }
            if Instant::now() >= deadline {
                return Err(BackupError::Busy { dir: self.dir.clone(), lock: path });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts a snapshot (holding the lock until it is committed or dropped).
    pub fn begin(&self, trigger: Trigger, home: &str, wait: Duration) -> Result<SnapshotWriter> {
        let lock = self.lock(wait)?;
        let created_ms = now_ms();
        Ok(SnapshotWriter {
            repo: self.clone(),
            _lock: lock,
            started: Instant::now(),
            temps: Vec::new(),
            seq: 0,
            manifest: Manifest {
                format: MANIFEST_FORMAT,
                id: String::new(),
                created_ms,
                steward_version: env!("CARGO_PKG_VERSION").to_string(),
                host: hostname(),
                trigger,
                home: home.to_string(),
                projects: Vec::new(),
                files: Vec::new(),
                hooks: Vec::new(),
                problems: Vec::new(),
                total_bytes: 0,
                new_bytes: 0,
                duration_ms: 0,
            },
        })
    }

    /// Every snapshot, oldest first, and the manifests that could not be read.
    pub fn list(&self) -> Result<(Vec<Manifest>, Vec<BackupError>)> {
        let dir = self.snapshots_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            Err(e) => return Err(BackupError::Io { path: dir, source: e }),
        };
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            match read_manifest(&path) {
                Ok(m) => ok.push(m),
                Err(e) => bad.push(e),
            }
        }
        ok.sort_by(|a: &Manifest, b| a.created_ms.cmp(&b.created_ms).then_with(|| a.id.cmp(&b.id)));
        Ok((ok, bad))
    }

    /// The snapshot named by `id`: a full id, a unique prefix of one, or `latest`.
    pub fn find(&self, id: &str) -> Result<Manifest> {
        let (all, _) = self.list()?;
        let hint = || match all.last() {
            Some(m) => format!("{} backups, the latest is {}; see `steward backup list`", all.len(), m.id),
            None => "it has no backups yet; make one with `steward backup create`".to_string(),
        };
        if id == "latest" {
            return all.last().cloned().ok_or_else(|| BackupError::NotFound {
                id: id.into(),
                dir: self.dir.clone(),
                hint: hint(),
            });
        }
        if let Some(m) = all.iter().find(|m| m.id == id) {
            return Ok(m.clone());
        }
        let matches: Vec<&Manifest> = all.iter().filter(|m| m.id.starts_with(id)).collect();
        match matches.len() {
            1 => Ok(matches[0].clone()),
            0 => Err(BackupError::NotFound { id: id.into(), dir: self.dir.clone(), hint: hint() }),
            _ => Err(BackupError::Ambiguous {
                id: id.into(),
                candidates: matches.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// Checks one file of a snapshot: its object exists, has the manifest's size and SHA-256.
    pub fn check_file(&self, f: &FileEntry) -> FileCheck {
        let object = self.object_path(&f.sha256);
        let problem = match hash_file(&object) {
            Err(BackupError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Some("missing from the repository".to_string())
            }
            Err(e) => Some(format!("unreadable: {e}")),
            Ok((_, size)) if size != f.size => Some(format!("size is {size} bytes, the manifest says {}", f.size)),
            Ok((sha, _)) if sha != f.sha256 => {
                Some(format!("content does not match its SHA-256 (is {}…, expected {}…)", &sha[..12], short(&f.sha256)))
            }
            Ok(_) => None,
        };
        FileCheck { path: f.path.clone(), object, ok: problem.is_none(), problem }
    }

    /// Verifies every file of a snapshot (`progress(done, total)` per file), and the store's integrity on a
    /// restored copy when `check_store`.
    pub fn verify(&self, m: &Manifest, check_store: bool, mut progress: impl FnMut(usize, usize)) -> VerifyReport {
        let mut files = Vec::new();
        for (i, f) in m.files.iter().enumerate() {
            files.push(self.check_file(f));
            progress(i + 1, m.files.len());
        }
        let store_problems = match (check_store, m.store()) {
            (true, Some(store)) => Some(self.check_store_copy(store)),
            _ => None,
        };
        VerifyReport { id: m.id.clone(), files, store_problems }
    }

    fn check_store_copy(&self, store: &FileEntry) -> Vec<String> {
        if let Err(e) = self.create() {
            return vec![e.to_string()];
        }
        let copy = self.tmp_dir().join(format!("verify-{}-{}.db", std::process::id(), now_ms()));
        // Copy the bytes as they are (a damaged object is checked as it is, not refused).
        let res = std::fs::copy(self.object_path(&store.sha256), &copy)
            .map_err(|e| vec![format!("cannot copy the store out of the backup: {e}")])
            .and_then(|_| super::sqlite::integrity_check(&copy));
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut p = copy.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
        res.err().unwrap_or_default()
    }

    /// Copies a file of a snapshot to `dest` (through a temporary file next to it, renamed into place),
    /// checking its SHA-256 on the way: a damaged object is refused, naming the file, and `dest` is left as
    /// it was.
    pub fn extract(&self, f: &FileEntry, dest: &Path) -> Result<()> {
        let object = self.object_path(&f.sha256);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut tmp_name = dest.as_os_str().to_owned();
        tmp_name.push(format!(".steward-restore-{}", std::process::id()));
        let tmp = PathBuf::from(tmp_name);
        let res = (|| {
            let mut src = File::open(&object).map_err(|e| BackupError::Corrupt {
                logical: f.path.clone(),
                object: object.clone(),
                problem: format!("cannot be read: {e}"),
            })?;
            let out = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(&tmp))?;
            let mut out = BufWriter::new(out);
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            let mut n = 0u64;
            loop {
                let r = src.read(&mut buf).map_err(io(&object))?;
                if r == 0 {
                    break;
                }
                h.update(&buf[..r]);
                out.write_all(&buf[..r]).map_err(io(&tmp))?;
                n += r as u64;
            }
            let out = out.into_inner().map_err(|e| BackupError::Io { path: tmp.clone(), source: e.into_error() })?;
            let sha = hex(&h.finalize());
            if sha != f.sha256 || n != f.size {
                return Err(BackupError::Corrupt {
                    logical: f.path.clone(),
                    object: object.clone(),
                    problem: "content does not match its SHA-256".into(),
                });
            }
            out.sync_all().map_err(io(&tmp))?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(f.mode & 0o7777)).map_err(io(&tmp))?;
            std::fs::rename(&tmp, dest).map_err(io(dest))
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    /// Applies a retention policy (`today`/`this_week`: see [`select_kept`]); then removes the objects no
    /// remaining snapshot names, and leftovers of interrupted backups. With `dry_run`, only reports.
    pub fn prune(&self, policy: KeepPolicy, today: i64, this_week: i64, dry_run: bool) -> Result<PruneReport> {
        let _lock = self.lock(Duration::from_secs(600))?;
        let (all, bad) = self.list()?;
        let times: Vec<SnapshotTime> = all
            .iter()
            .map(|m| {
                let (day, week) = super::retention::local_day_week(m.created_ms);
                SnapshotTime { id: m.id.clone(), ms: m.created_ms, day, week }
            })
            .collect();
        let keep = select_kept(&times, policy, today, this_week);
        let mut report = PruneReport { dry_run, ..PruneReport::default() };
        let mut referenced: BTreeSet<&str> = BTreeSet::new();
        for m in &all {
            if keep.contains(&m.id) {
                report.kept.push(m.id.clone());
                referenced.extend(m.files.iter().map(|f| f.sha256.as_str()));
            } else {
                report.removed.push(m.id.clone());
                if !dry_run {
                    let p = self.manifest_path(&m.id);
                    std::fs::remove_file(&p).map_err(io(&p))?;
                }
            }
        }
        if !dry_run {
            sync_dir(&self.snapshots_dir());
        }
        if !bad.is_empty() {
            report.gc_skipped = Some(format!(
                "{} unreadable manifest(s) may name objects: {}",
                bad.len(),
                bad.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
            ));
            return Ok(report);
        }
        let objects = self.dir.join("objects");
        for prefix in std::fs::read_dir(&objects).into_iter().flatten().flatten() {
            for obj in std::fs::read_dir(prefix.path()).into_iter().flatten().flatten() {
                let name = obj.file_name();
                let Some(name) = name.to_str() else { continue };
                if referenced.contains(name) {
                    continue;
                }
                report.objects_removed += 1;
                report.freed_bytes += obj.metadata().map(|m| m.len()).unwrap_or(0);
                if !dry_run {
                    let _ = std::fs::remove_file(obj.path());
                }
            }
        }
        if !dry_run {
            // We hold the lock: nothing is being written, so whatever is in tmp/ is a leftover.
            for t in std::fs::read_dir(self.tmp_dir()).into_iter().flatten().flatten() {
                let _ = std::fs::remove_file(t.path());
            }
        }
        Ok(report)
    }

    /// Appends a drill's outcome to `drills.jsonl`.
    pub fn record_drill(&self, rec: &DrillRecord) -> Result<()> {
        self.create()?;
        let path = self.dir.join("drills.jsonl");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(io(&path))?;
        let line = serde_json::to_string(rec).map_err(|e| BackupError::Io { path: path.clone(), source: e.into() })?;
        writeln!(f, "{line}").map_err(io(&path))
    }

    /// Recorded drills, oldest first (unreadable lines are skipped).
    pub fn drills(&self) -> Vec<DrillRecord> {
        std::fs::read_to_string(self.dir.join("drills.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let bad = |message: String| BackupError::BadManifest { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if m.format > MANIFEST_FORMAT {
        return Err(bad(format!("format {} is newer than this Steward understands ({MANIFEST_FORMAT})", m.format)));
    }
    for f in &m.files {
        validate_logical_path(&f.path).map_err(|e| bad(e.to_string()))?;
        if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("{}: invalid SHA-256 {:?}", f.path, f.sha256)));
        }
    }
    Ok(m)
}

/// A snapshot being written. Dropping it without [`SnapshotWriter::commit`] leaves no snapshot (objects
/// already stored stay, unreferenced, until the next prune).
#[derive(Debug)]
pub struct SnapshotWriter {
    repo: Repository,
    _lock: RepoLock,
    started: Instant,
    temps: Vec<PathBuf>,
    seq: u32,
    manifest: Manifest,
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        for t in &self.temps {
            let _ = std::fs::remove_file(t);
        }
    }
}

impl SnapshotWriter {
    /// The repository.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// When the backup started.
    pub fn created_ms(&self) -> u64 {
        self.manifest.created_ms
    }

    /// A fresh path in the repository's `tmp/` for a producer to write into (removed with the writer).
    pub fn temp_path(&mut self, name: &str) -> PathBuf {
        self.seq += 1;
        let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
        let p = self.repo.tmp_dir().join(format!("{}-{}-{clean}", std::process::id(), self.seq));
        self.temps.push(p.clone());
        p
    }

    /// Records a project.
    pub fn add_project(&mut self, p: ProjectEntry) {
        if !self.manifest.projects.iter().any(|x| x.id == p.id) {
            self.manifest.projects.push(p);
        }
    }

    /// Records a hook's outcome.
    pub fn add_hook(&mut self, h: HookRecord) {
        self.manifest.hooks.push(h);
    }

    /// Records a problem that did not stop the backup.
    pub fn add_problem(&mut self, p: impl Into<String>) {
        self.manifest.problems.push(p.into());
    }

    /// Copies `src` into the snapshot (hashing while copying).
    pub fn add_file(&mut self, src: &Path, meta: NewFile) -> Result<&FileEntry> {
        let tmp = self.temp_path(&meta.path);
        let mode = meta.mode.or_else(|| std::fs::metadata(src).ok().map(|m| m.permissions().mode() & 0o7777));
        let (sha, size) = copy_hashing(src, &tmp)?;
        self.store(tmp, sha, size, NewFile { mode, ..meta })
    }

    /// Moves a file the caller wrote (in [`SnapshotWriter::temp_path`]) into the snapshot.
    pub fn add_owned(&mut self, tmp: PathBuf, meta: NewFile) -> Result<&FileEntry> {
        let (sha, size) = hash_file(&tmp)?;
        self.store(tmp, sha, size, meta)
    }

    fn store(&mut self, tmp: PathBuf, sha: String, size: u64, meta: NewFile) -> Result<&FileEntry> {
        validate_logical_path(&meta.path)?;
        if self.manifest.files.iter().any(|f| f.path == meta.path) {
            return Err(BackupError::BadPath(format!("{} (twice in one backup)", meta.path)));
        }
        let object = self.repo.object_path(&sha);
        let reusable = match std::fs::metadata(&object) {
            Ok(m) if m.len() == size && size > REHASH_BELOW => true,
            Ok(m) if m.len() == size => hash_file(&object).map(|(s, _)| s == sha).unwrap_or(false),
            _ => false,
        };
        if reusable {
            let _ = std::fs::remove_file(&tmp);
        } else {
            let parent = object.parent().unwrap_or(&self.repo.dir).to_path_buf();
            private_dir(&parent)?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &object).map_err(io(&object))?;
            self.manifest.new_bytes += size;
        }
        self.temps.retain(|t| t != &tmp);
        self.manifest.total_bytes += size;
        self.manifest.files.push(FileEntry {
            path: meta.path,
            kind: meta.kind,
            project: meta.project,
            module: meta.module,
            source: meta.source,
            size,
            sha256: sha,
            mode: meta.mode.unwrap_or(0o600),
        });
        let i = self.manifest.files.len() - 1; // just pushed: at least one
        Ok(&self.manifest.files[i])
    }

    /// Files added so far.
    pub fn files(&self) -> &[FileEntry] {
        &self.manifest.files
    }

    /// Writes the manifest (atomically, after syncing): the snapshot exists from now on.
    pub fn commit(mut self) -> Result<Manifest> {
        let snapshots = self.repo.snapshots_dir();
        private_dir(&snapshots)?;
        let base = super::id_for(self.manifest.created_ms);
        let mut id = base.clone();
        let mut n = 1;
        while self.repo.manifest_path(&id).exists() {
            n += 1;
            id = format!("{base}-{n}");
        }
        self.manifest.id = id.clone();
        self.manifest.duration_ms = self.started.elapsed().as_millis() as u64;
        let text = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| BackupError::Io { path: snapshots.clone(), source: e.into() })?;
        let tmp = self.temp_path("manifest.json");
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(&tmp))?;
            f.write_all(&text).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
        }
        let dest = self.repo.manifest_path(&id);
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        self.temps.retain(|t| t != &tmp);
        sync_dir(&snapshots);
        Ok(self.manifest.clone())
    }
}

fn copy_hashing(src: &Path, dest: &Path) -> Result<(String, u64)> {
    let mut input = File::open(src).map_err(io(src))?;
    if let Some(parent) = dest.parent() {
        private_dir(parent)?;
    }
    let out =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(dest).map_err(io(dest))?;
    let mut out = BufWriter::new(out);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let r = input.read(&mut buf).map_err(io(src))?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        out.write_all(&buf[..r]).map_err(io(dest))?;
        n += r as u64;
    }
    let out = out.into_inner().map_err(|e| BackupError::Io { path: dest.to_path_buf(), source: e.into_error() })?;
    out.sync_all().map_err(io(dest))?;
    Ok((hex(&h.finalize()), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, kind: FileKind) -> NewFile {
        NewFile { path: path.into(), kind, project: None, module: None, source: None, mode: None }
    }

    #[test]
    fn snapshots_are_incremental_and_verifiable() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::at(dir.path().join("backups"));
        let src = dir.path().join("a.toml");
        std::fs::write(&src, "[modules.a]\nrun = \"x\"\n").unwrap();
        let big = dir.path().join("big.sql");
        std::fs::write(&big, "y".repeat(100_000)).unwrap();

        let mut w = repo.begin(Trigger::Manual, "/h", Duration::from_secs(1)).unwrap();
        w.add_file(&src, file("projects/p-1/config/steward.toml", FileKind::Config)).unwrap();
        w.add_file(&big, file("projects/p-1/modules/db/db.sql", FileKind::Module)).unwrap();
        assert!(w.add_file(&src, file("projects/p-1/config/steward.toml", FileKind::Config)).is_err(), "twice");
        assert!(w.add_file(&src, file("../escape", FileKind::Config)).is_err());
        let first = w.commit().unwrap();
        assert_eq!(first.new_bytes, first.total_bytes);
        assert_eq!(first.files.len(), 2);

        // Only the changed file is stored again.
        std::fs::write(&src, "[modules.a]\nrun = \"z\"\n").unwrap();
        let mut w = repo.begin(Trigger::Scheduled, "/h", Duration::from_secs(1)).unwrap();
        w.add_file(&src, file("projects/p-1/config/steward.toml", FileKind::Config)).unwrap();
        w.add_file(&big, file("projects/p-1/modules/db/db.sql", FileKind::Module)).unwrap();
        let second = w.commit().unwrap();
        assert_eq!(second.new_bytes, std::fs::metadata(&src).unwrap().len());
        assert_ne!(first.id, second.id, "ids are unique within one second");

        let (all, bad) = repo.list().unwrap();
        assert!(bad.is_empty());
        assert_eq!(all.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), vec![first.id.clone(), second.id.clone()]);
        assert_eq!(repo.find("latest").unwrap().id, second.id);
        assert!(matches!(repo.find(&first.id[..4]), Err(BackupError::Ambiguous { .. })));
        assert!(matches!(repo.find("1999"), Err(BackupError::NotFound { .. })));
        assert!(repo.verify(&second, true, |_, _| {}).ok());

        // Flip bytes in one object: verify names the file; extract refuses it.
        let db = second.files.iter().find(|f| f.path.ends_with("db.sql")).unwrap().clone();
        let obj = repo.object_path(&db.sha256);
        let mut bytes = std::fs::read(&obj).unwrap();
        bytes[500] ^= 0xff;
        std::fs::write(&obj, &bytes).unwrap();
        let report = repo.verify(&second, true, |_, _| {});
        assert!(!report.ok());
        let problems = report.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("projects/p-1/modules/db/db.sql: content does not match"), "{problems:?}");
        let out = dir.path().join("restore/db.sql");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(&out, "keep me").unwrap();
        let e = repo.extract(&db, &out).unwrap_err().to_string();
        assert!(e.contains("db.sql"), "{e}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me", "a refused extract leaves the target alone");

        // The next backup of the same content repairs the object.
        let mut w = repo.begin(Trigger::Manual, "/h", Duration::from_secs(1)).unwrap();
        w.add_file(&big, file("projects/p-1/modules/db/db.sql", FileKind::Module)).unwrap();
        w.commit().unwrap();
        assert!(repo.verify(&second, true, |_, _| {}).ok());
        repo.extract(&db, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&big).unwrap());
    }

    #[test]
    fn prune_removes_snapshots_and_unreferenced_objects() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::at(dir.path().join("b"));
        let mut ids = Vec::new();
        for i in 0..4 {
            let src = dir.path().join(format!("f{i}"));
            std::fs::write(&src, format!("content {i} {}", "z".repeat(1000))).unwrap();
            let mut w = repo.begin(Trigger::Manual, "/h", Duration::from_secs(1)).unwrap();
            w.add_file(&src, file("f", FileKind::Config)).unwrap();
            ids.push(w.commit().unwrap().id);
        }
        let (today, week) = super::super::retention::local_day_week(now_ms());
        let policy = KeepPolicy { last: 2, daily: 0, weekly: 0 };
        let dry = repo.prune(policy, today, week, true).unwrap();
        assert_eq!(dry.removed, ids[..2].to_vec());
        assert_eq!(dry.objects_removed, 2);
        assert_eq!(repo.list().unwrap().0.len(), 4, "a dry run deletes nothing");
        let done = repo.prune(policy, today, week, false).unwrap();
        assert_eq!(done.kept, ids[2..].to_vec());
        assert_eq!(done.freed_bytes, dry.freed_bytes);
        let (left, _) = repo.list().unwrap();
        assert_eq!(left.len(), 2);
        for m in &left {
            assert!(repo.verify(m, false, |_, _| {}).ok(), "kept snapshots keep their objects");
        }
        let objects: usize = std::fs::read_dir(dir.path().join("b/objects"))
            .unwrap()
            .flatten()
            .map(|d| std::fs::read_dir(d.path()).unwrap().count())
            .sum();
        assert_eq!(objects, 2);
    }

    #[test]
    fn a_second_writer_waits_for_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::at(dir.path().join("b"));
        let w = repo.begin(Trigger::Manual, "/h", Duration::from_secs(1)).unwrap();
        let e = repo.begin(Trigger::Manual, "/h", Duration::from_millis(100)).unwrap_err();
        assert!(matches!(e, BackupError::Busy { .. }), "{e}");
        drop(w);
        repo.begin(Trigger::Manual, "/h", Duration::from_millis(100)).unwrap();
    }

    #[test]
    fn logical_paths() {
        for ok in ["store.db", "projects/a-1/config/modules.d/x.toml"] {
            validate_logical_path(ok).unwrap();
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a\\b", "./x"] {
            assert!(validate_logical_path(bad).is_err(), "{bad}");
        }
    }
}
