//! The operations commands end to end: the real `steward` binary, a real daemon on a private `STEWARD_HOME`,
//! real files. Backups are made through the daemon, damaged on disk, verified, restored; the store is
//! corrupted under `steward doctor`; a diagnostics archive is searched byte by byte for secrets; scheduled
//! backups are watched over the socket. Waits are on output, events or deadlines, never sleeps.

#[path = "../src/client.rs"]
mod client;
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{processes_with_env, steward_bin, wait_until};
use serde_json::Value;
use steward_protocol as p;

/// A private home, a project directory and (optionally) a daemon. Dropping it stops whatever daemon serves
/// the home and kills what is left of its modules.
struct Home {
    dir: tempfile::TempDir,
    home: PathBuf,
    project: PathBuf,
    mark: String,
    env: Vec<(String, String)>,
    daemon: Option<Child>,
}

const SECRET_TOKEN: &str = "tok-9f8e7d6c5b4a";
const SECRET_PASSWORD: &str = "pw-1a2b3c4d5e";

/// A stack: `kv` prints a line every 100 ms (and, once, its token bare and a password), has a backup hook
/// with a restore command; `flaky` exits 1 at once (never restarted) when `with_flaky`.
fn stack(with_flaky: bool) -> String {
    let mut s = format!(
        r#"[project]
name = "opsdemo"

[modules.kv]
run = "sh -c 'echo token is $API_TOKEN; echo connecting with password={SECRET_PASSWORD}; while true; do echo tick; sleep 0.1; done'"
env = {{ API_TOKEN = "{SECRET_TOKEN}", PLAIN = "visible-value" }}
backup = {{ run = "cat data.txt", output = "kv.dump", restore = "cat > restored.txt", timeout = "20s" }}
"#
    );
    if with_flaky {
        // A health check that never passes, so that `up` waits for it and sees the exit.
        s.push_str(
            "\n[modules.flaky]\nrun = \"sh -c 'echo flaky error: boom 42 >&2; exit 1'\"\nrestart = \"never\"\n\
             health = { exec = \"false\", interval = \"100ms\", retries = 1 }\n",
        );
    }
    s
}

impl Home {
    fn new(with_flaky: bool, env: &[(&str, &str)]) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let project = dir.path().join("proj");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::write(project.join("steward.toml"), stack(with_flaky)).unwrap();
        std::fs::write(project.join("data.txt"), "module data v1\n").unwrap();
        let mark = common::new_mark();
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let (k, v) = mark.split_once('=').unwrap();
        env.push((k.into(), v.into()));
        Home { dir, home, project, mark, env, daemon: None }
    }

    /// Starts `steward daemon` in the foreground of a child process and waits for its socket.
    fn start_daemon(&mut self) {
        let child = Command::new(steward_bin())
            .arg("daemon")
            .env("STEWARD_HOME", &self.home)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let socket = self.home.join("run/steward.sock");
        wait_until(Duration::from_secs(20), "the daemon's socket", || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
    }

    fn file(&self) -> String {
        self.project.join("steward.toml").display().to_string()
    }

    /// `steward ARGS` in the project directory with this home.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(steward_bin());
        c.args(args)
            .env("STEWARD_HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.project)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        common::run_logged(self.cmd(args), args)
    }

    /// Runs and expects `code`; returns stdout + stderr.
    fn expect(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "steward {args:?}");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    fn json(&self, args: &[&str]) -> Value {
        let a = common::with_json(args);
        common::json_ok(&self.run(&a), &a)
    }

    fn backups(&self) -> PathBuf {
        self.home.join("backups")
    }

    fn manifests(&self) -> Vec<Value> {
        let mut out: Vec<Value> = std::fs::read_dir(self.backups().join("snapshots"))
            .map(|d| d.flatten().map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap()).collect())
            .unwrap_or_default();
        out.sort_by_key(|m: &Value| (m["createdMs"].as_u64().unwrap(), m["id"].as_str().unwrap().to_string()));
        out
    }

    fn object(&self, sha: &str) -> PathBuf {
        self.backups().join("objects").join(&sha[..2]).join(sha)
    }

    fn store(&self) -> PathBuf {
        self.home.join("store.db")
    }

    /// Waits until the daemon for this home has exited (its lock is free).
    fn wait_daemon_gone(&mut self) {
        let lock = self.home.join("run/steward.lock");
        wait_until(Duration::from_secs(30), "the daemon to exit", || !held(&lock));
        if let Some(mut c) = self.daemon.take() {
            let _ = c.wait();
        }
    }
}

fn held(lock: &Path) -> bool {
    use std::os::unix::io::AsRawFd;
    let Ok(f) = std::fs::File::open(lock) else { return false };
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = self.cmd(&["daemon", "stop"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        if let Some(mut c) = self.daemon.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for (pid, _) in processes_with_env(&self.mark) {
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

fn count_notes(db: &Path, text: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM notes WHERE text LIKE ?1", [format!("%{text}%")], |r| r.get(0)).unwrap()
}

#[test]
fn backup_restore_brings_back_a_deleted_note() {
    let mut h = Home::new(false, &[]);
    h.start_daemon();
    let f = h.file();
    h.expect(0, &["up", "-f", &f]);
    h.expect(0, &["remember", "the cache key is kiwi-42", "-f", &f]);

    // A backup through the daemon, with the hook's output and the stack file.
    let s = h.json(&["backup", "create"]);
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["problems"], Value::Array(vec![]), "{s}");
    assert_eq!(s["hooks"][0]["ok"], true, "{s}");
    let m = &h.manifests()[0];
    let paths: Vec<&str> = m["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"store.db"), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("/config/steward.toml")), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("/modules/kv/kv.dump")), "{paths:?}");
    for file in m["files"].as_array().unwrap() {
        let sha = file["sha256"].as_str().unwrap();
        let bytes = std::fs::read(h.object(sha)).unwrap();
        assert_eq!(bytes.len() as u64, file["size"].as_u64().unwrap());
        assert_eq!(sha.len(), 64);
    }
    let listed = h.expect(0, &["backup", "list"]);
    assert!(listed.contains(&id) && listed.contains("opsdemo"), "{listed}");
    h.expect(0, &["backup", "verify", &id]);

    // A second backup of an unchanged stack stores only what changed (the store, not the stack file).
    let s2 = h.json(&["backup", "create"]);
    assert!(s2["newBytes"].as_u64().unwrap() < s2["totalBytes"].as_u64().unwrap(), "{s2}");
    assert_ne!(s2["id"], s["id"]);

    // The note is lost.
    h.expect(0, &["daemon", "stop"]);
    h.wait_daemon_gone();
    {
        let c = rusqlite::Connection::open(h.store()).unwrap();
        c.execute_batch(
            "INSERT INTO notes_fts (notes_fts, rowid, text, tags) SELECT 'delete', id, text, tags FROM notes WHERE text LIKE '%kiwi-42%';
             DELETE FROM notes WHERE text LIKE '%kiwi-42%';",
        )
        .unwrap();
    }
    let none = h.run(&["memory", "search", "kiwi"]);
    assert_eq!(none.status.code(), Some(1), "the note is gone");

    // In place, the store is not overwritten under a running daemon…
    let refused = h.expect(1, &["backup", "restore", &id, "--only", "store"]);
    assert!(refused.contains("stop it first"), "{refused}");
    // …unless --force, which stops it; what it replaces is kept.
    let out = h.expect(0, &["backup", "restore", &id, "--only", "store", "--force"]);
    assert!(out.contains("restored store.db"), "{out}");
    assert!(out.contains("kept in backup"), "{out}");
    assert_eq!(count_notes(&h.store(), "kiwi-42"), 1);
    let pre = h.manifests().into_iter().find(|m| m["trigger"] == "preRestore").expect("a pre-restore backup");
    let kept_sha = pre["files"][0]["sha256"].as_str().unwrap();
    let kept = h.dir.path().join("kept.db");
    std::fs::copy(h.object(kept_sha), &kept).unwrap();
    assert_eq!(count_notes(&kept, "kiwi-42"), 0, "the pre-restore backup holds the store as it was");

    // The daemon starts on the restored store and finds the note again.
    let hits = h.json(&["memory", "search", "kiwi"]);
    assert!(hits["hits"].as_array().unwrap().iter().any(|x| x["snippet"].as_str().unwrap().contains("42")), "{hits}");

    // A module's data goes back through its restore command.
    let out = h.expect(0, &["backup", "restore", &id, "--only", "kv"]);
    assert!(out.contains("cat > restored.txt"), "{out}");
    assert_eq!(std::fs::read_to_string(h.project.join("restored.txt")).unwrap(), "module data v1\n");

    // Stack files: unchanged ones are left alone; a changed one is not overwritten while its project runs.
    h.expect(0, &["up", "-f", &f]);
    let out = h.expect(0, &["backup", "restore", &id, "--only", "config"]);
    assert!(out.contains("unchanged"), "{out}");
    let edited = std::fs::read_to_string(&f).unwrap().replace("visible-value", "edited-value");
    std::fs::write(&f, &edited).unwrap();
    let refused = h.expect(1, &["backup", "restore", &id, "--only", "config"]);
    assert!(refused.contains("opsdemo is running"), "{refused}");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), edited);
    h.expect(0, &["down", "-f", &f]);
    h.expect(0, &["backup", "restore", &id, "--only", "config"]);
    assert!(std::fs::read_to_string(&f).unwrap().contains("visible-value"));

    // --to DIR: everything under DIR, the store a usable database.
    let to = h.dir.path().join("elsewhere");
    h.expect(0, &["backup", "restore", &id, "--to", to.to_str().unwrap()]);
    assert_eq!(count_notes(&to.join("store.db"), "kiwi-42"), 1);
    assert!(std::fs::read_dir(to.join("projects")).unwrap().count() == 1);

    // Unknown parts are named.
    let bad = h.expect(1, &["backup", "restore", &id, "--only", "nosuch"]);
    assert!(bad.contains("kv"), "lists the modules it has: {bad}");
}

#[test]
fn flipped_bytes_are_named_by_verify_and_refused_by_restore() {
    let mut h = Home::new(false, &[]);
    h.start_daemon();
    let f = h.file();
    h.expect(0, &["up", "-f", &f]);
    let s = h.json(&["backup", "create", "--project", &f]);
    let id = s["id"].as_str().unwrap().to_string();
    let m = h.manifests().pop().unwrap();
    let entry = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("steward.toml"))
        .unwrap()
        .clone();
    let logical = entry["path"].as_str().unwrap();
    let obj = h.object(entry["sha256"].as_str().unwrap());
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[10] ^= 0x20;
    std::fs::write(&obj, &bytes).unwrap();

    let out = h.expect(1, &["backup", "verify", &id]);
    assert!(out.contains(&format!("{logical}: content does not match its SHA-256")), "{out}");
    assert!(!out.contains("store.db:"), "only the damaged file is named: {out}");
    let out = h.expect(1, &["backup", "restore", &id, "--only", "config"]);
    assert!(out.contains(logical) && out.contains("nothing was restored"), "{out}");

    // Damage inside the store copy: verify names it (hash) and its integrity check fails too.
    let store = m["files"].as_array().unwrap().iter().find(|f| f["path"] == "store.db").unwrap().clone();
    let obj = h.object(store["sha256"].as_str().unwrap());
    let mut bytes = std::fs::read(&obj).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 2048] {
        *b = 0xa5;
    }
    std::fs::write(&obj, &bytes).unwrap();
    let out = h.expect(1, &["backup", "verify", "latest"]);
    assert!(out.contains("store.db: content does not match"), "{out}");
}

#[test]
fn doctor_detects_a_corrupt_store_and_offers_the_restore() {
    let mut h = Home::new(false, &[]);
    h.start_daemon();
    let f = h.file();
    h.expect(0, &["up", "-f", &f]);
    // Enough rows that the store has many pages to damage.
    for i in 0..30 {
        h.expect(0, &["remember", &format!("note {i} {}", "padding words ".repeat(200))]);
    }
    let s = h.json(&["backup", "create"]);
    let id = s["id"].as_str().unwrap().to_string();
    let ok = h.expect(0, &["doctor"]);
    assert!(ok.contains("PASSED   store"), "{ok}");

    h.expect(0, &["daemon", "stop"]);
    h.wait_daemon_gone();
    let mut bytes = std::fs::read(h.store()).unwrap();
    assert!(bytes.len() > 64 * 1024, "{}", bytes.len());
    for b in &mut bytes[16 * 1024..48 * 1024] {
        *b = 0x5a;
    }
    std::fs::write(h.store(), &bytes).unwrap();

    let out = h.expect(1, &["doctor"]);
    assert!(out.contains("FAILED   store"), "{out}");
    assert!(out.contains(&format!("steward backup restore {id} --only store --force")), "offers the restore: {out}");
    assert!(out.contains("WARNING  socket"), "no daemon runs: {out}");
    let json = h.run(&["doctor", "--json"]);
    let checks: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(checks.as_array().unwrap().iter().any(|c| c["name"] == "store" && c["verdict"] == "FAILED"), "{checks}");

    h.expect(0, &["backup", "restore", &id, "--only", "store"]);
    let out = h.expect(0, &["doctor"]);
    assert!(out.contains("PASSED   store"), "{out}");
    // The damaged store was kept before it was replaced.
    let pre = h.manifests().into_iter().find(|m| m["trigger"] == "preRestore").expect("a pre-restore backup");
    assert_eq!(pre["files"][0]["path"], "store.db", "{pre}");
}

#[test]
fn doctor_checks_permissions_ports_and_stack_files_each_with_a_fix() {
    let mut h = Home::new(false, &[]);
    // A port that a module's health check uses, taken by someone else while the module does not run.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let ported = h.dir.path().join("ported");
    std::fs::create_dir_all(&ported).unwrap();
    std::fs::write(
        ported.join("steward.toml"),
        format!(
            "[project]\nname = \"ported\"\n\n[modules.web]\nrun = \"sleep 60\"\nhealth = {{ tcp = \"127.0.0.1:{port}\" }}\n"
        ),
    )
    .unwrap();
    let broken = h.dir.path().join("broken.toml");
    std::fs::write(&broken, "[project]\nname = \"broken\"\n\n[modules.web]\nrun = \"sleep 60\"\nhelth = 1\n").unwrap();

    // A daemon made the home; then someone opened up its run directory.
    h.start_daemon();
    h.expect(0, &["daemon", "stop"]);
    h.wait_daemon_gone();
    let run = h.home.join("run");
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let file = ported.join("steward.toml");
    let out = h.run(&["doctor", "--json", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "a FAILED check exits 1");
    let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |name: &str| -> Value {
        checks.as_array().unwrap().iter().find(|c| c["name"] == name).cloned().unwrap_or_else(|| panic!("{checks}"))
    };
    let home = find("home");
    assert_eq!(home["verdict"], "FAILED", "{home}");
    assert!(home["fix"].as_str().unwrap().contains(&format!("chmod 700 {}", run.display())), "{home}");
    let ports = find("ports");
    assert_eq!(ports["verdict"], "WARNING", "{ports}");
    assert!(ports["detail"].as_str().unwrap().contains("in use by another process"), "{ports}");
    assert!(ports["fix"].as_str().unwrap().contains(&format!("sport = :{port}")), "{ports}");
    assert_eq!(find("stack")["verdict"], "PASSED");
    assert_eq!(find("socket")["verdict"], "WARNING", "no daemon runs");
    assert_eq!(find("clock")["verdict"], "PASSED");
    // Every verdict is one of the four, and whatever is not PASSED or SKIPPED says how to fix it.
    for c in checks.as_array().unwrap() {
        let v = c["verdict"].as_str().unwrap();
        assert!(["PASSED", "FAILED", "WARNING", "SKIPPED"].contains(&v), "{c}");
        if v == "FAILED" || v == "WARNING" {
            assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "no fix: {c}");
        }
    }
    // The same as text for people: one line per check, the fix under it.
    let text = h.expect(1, &["doctor", "-f", file.to_str().unwrap()]);
    assert!(text.contains("FAILED   home") && text.contains("fix: chmod 700"), "{text}");
    assert!(text.lines().last().unwrap().starts_with("doctor: "), "{text}");

    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    drop(squatter);
    let out = h.run(&["doctor", "--json", "-f", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stack = checks.as_array().unwrap().iter().find(|c| c["name"] == "stack").unwrap();
    assert_eq!(stack["verdict"], "FAILED", "{stack}");
    assert!(stack["detail"].as_str().unwrap().contains("helth"), "names the bad key: {stack}");
    assert!(stack["fix"].as_str().unwrap().contains("steward check -f"), "{stack}");
    assert_eq!(checks.as_array().unwrap().iter().find(|c| c["name"] == "home").unwrap()["verdict"], "PASSED");
}

#[test]
fn drill_prune_and_report() {
    let mut h = Home::new(true, &[("STEWARD_BACKUP_SCHEDULE", "daily")]);
    h.start_daemon();
    let f = h.file();
    // flaky fails at once: `up` reports it (exit 1) and the report counts the crash.
    h.expect(1, &["up", "-f", &f]);
    for _ in 0..3 {
        h.json(&["backup", "create"]);
    }
    let out = h.expect(0, &["backup", "drill"]);
    assert!(out.contains("verified it in"), "{out}");
    assert!(out.contains("at most 1d00h with scheduled backups every 1d00h"), "{out}");
    let drills = std::fs::read_to_string(h.backups().join("drills.jsonl")).unwrap();
    let rec: Value = serde_json::from_str(drills.lines().last().unwrap()).unwrap();
    assert_eq!(rec["ok"], true);
    assert!(rec["durationMs"].as_u64().is_some() && rec["files"].as_u64().unwrap() >= 3, "{rec}");

    let ids: Vec<String> = h.manifests().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
    let dry =
        h.expect(0, &["backup", "prune", "--keep-last", "1", "--keep-daily", "0", "--keep-weekly", "0", "--dry-run"]);
    assert!(dry.contains("would remove 2 backup(s)"), "{dry}");
    assert_eq!(h.manifests().len(), 3);
    let done = h.json(&["backup", "prune", "--keep-last", "1", "--keep-daily", "0", "--keep-weekly", "0"]);
    assert_eq!(done["removed"].as_array().unwrap().len(), 2, "{done}");
    let left = h.manifests();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"].as_str().unwrap(), ids[2]);
    h.expect(0, &["backup", "verify", "--all"]);
    let refused = h.expect(2, &["backup", "prune", "--keep-last", "0", "--keep-daily", "0", "--keep-weekly", "0"]);
    assert!(refused.contains("keeps nothing"), "{refused}");

    let md = h.expect(0, &["report", "--since", "1d"]);
    assert!(md.contains("## opsdemo"), "{md}");
    let flaky = md.lines().find(|l| l.starts_with("| flaky |")).unwrap_or_else(|| panic!("{md}"));
    let cols: Vec<&str> = flaky.split('|').map(str::trim).collect();
    assert!(cols[4].parse::<u32>().unwrap() >= 1, "a crash is counted: {flaky}");
    let alerts = &md[md.find("## Alerts").unwrap()..md.find("## Top error messages").unwrap()];
    assert!(alerts.contains("flaky"), "the failure is an alert: {alerts}");
    assert!(md.contains("last restore drill"), "{md}");
    let html_path = h.dir.path().join("r.html");
    h.expect(0, &["report", "--format", "html", "-o", html_path.to_str().unwrap()]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!doctype html>") && html.matches("<svg").count() >= 2, "{html}");
    let data = h.json(&["report"]);
    assert!(data["projects"][0]["modules"].as_array().unwrap().iter().any(|m| m["name"] == "kv"), "{data}");
    let bad = h.expect(2, &["report", "--since", "7y"]);
    assert!(bad.contains("unknown unit"), "{bad}");
}

#[test]
fn diag_report_never_contains_a_secret() {
    let mut h = Home::new(false, &[]);
    h.start_daemon();
    let f = h.file();
    h.expect(0, &["up", "-f", &f]);
    // Wait until the lines with secrets are stored, and prove the bare token really is in the store (the
    // log masking cannot know it), so the archive test below means something.
    wait_until(Duration::from_secs(20), "the token line in the store", || {
        let c = rusqlite::Connection::open(h.store()).unwrap();
        c.query_row("SELECT count(*) FROM log_blocks WHERE text LIKE ?1", [format!("%{SECRET_TOKEN}%")], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
            > 0
    });
    let archive = h.dir.path().join("diag.tar.gz");
    let out = h.expect(0, &["diag", "report", "-o", archive.to_str().unwrap()]);
    assert!(out.contains("secrets are masked"), "{out}");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&archive).unwrap()).read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    for secret in [SECRET_TOKEN, SECRET_PASSWORD] {
        assert!(!text.contains(secret), "{secret} is in the archive");
    }
    // What should be there is.
    for name in ["versions.txt", "system.txt", "doctor.txt", "status.json", "events.txt", "daemon.log", "store.txt"] {
        assert!(text.contains(&format!("/{name}")), "{name} missing");
    }
    assert!(text.contains("/logs/opsdemo-") && text.contains("tick"), "module log lines are included");
    assert!(text.contains("token is ***"), "the bare token line is there, masked");
    assert!(text.contains("\"API_TOKEN\": \"***\""), "env keys stay, values go");
    assert!(!text.contains("visible-value"), "no environment value at all");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&archive).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // --json: where it went and how big it is.
    let second = h.dir.path().join("diag2.tar.gz");
    let v = h.json(&["diag", "report", "-o", second.to_str().unwrap()]);
    assert_eq!(v["path"], second.display().to_string(), "{v}");
    assert_eq!(v["bytes"].as_u64(), Some(std::fs::metadata(&second).unwrap().len()), "{v}");
    assert!(v["files"].as_u64().unwrap() >= 8, "{v}");
}

#[test]
fn health_reports_ok_degraded_and_down() {
    let mut h = Home::new(true, &[]);
    let down = h.expect(2, &["health"]);
    assert!(down.starts_with("down: no daemon is running"), "{down}");
    h.start_daemon();
    let ok = h.expect(0, &["health"]);
    assert!(ok.starts_with("ok: store writable, 0 projects"), "{ok}");
    let f = h.file();
    h.expect(1, &["up", "-f", &f]);
    let degraded = h.expect(1, &["health"]);
    assert!(degraded.starts_with("degraded: project:opsdemo: flaky is exited"), "{degraded}");
    assert_eq!(degraded.lines().count(), 1);
    let out = h.run(&["health", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "degraded");
    assert!(v["checks"].as_array().unwrap().iter().any(|c| c["name"] == "store" && c["ok"] == true), "{v}");
    // The store's counters: lines stored, and the index catching up with them.
    wait_until(Duration::from_secs(20), "the index to catch up with stored lines", || {
        let v: Value = serde_json::from_slice(&h.run(&["health", "--json"]).stdout).unwrap();
        let store = &v["store"];
        store["logLines"].as_u64().unwrap_or(0) > 0 && store["unindexedLines"].as_u64() == Some(0)
    });
}

#[test]
fn db_maintenance_reports_progress_over_the_socket() {
    let mut h = Home::new(false, &[]);
    h.start_daemon();
    let f = h.file();
    h.expect(0, &["up", "-f", &f]);
    wait_until(Duration::from_secs(20), "some log lines", || {
        h.json(&["logs", "kv", "-f", &f, "-n", "50"])["lines"].as_array().unwrap().len() >= 20
    });
    let r = h.json(&["db", "reindex"]);
    assert!(r["rowsIndexed"].as_u64().unwrap() >= 20, "{r}");
    let r = h.json(&["db", "prune", "--dry-run"]);
    assert_eq!((r["dryRun"].as_bool(), r["logsDeleted"].as_u64()), (Some(true), Some(0)));
    let out = h.expect(0, &["db", "vacuum"]);
    assert!(out.contains("vacuum shrank the store"), "{out}");

    // $/progress, as an API client sees it.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = client::Client::connect(&h.home).await.unwrap();
        let mut rx = c.notifications();
        let r = c
            .request::<p::DbMaintain>(p::DbMaintainParams {
                action: p::DbAction::Reindex,
                dry_run: false,
                work_done_token: Some("t-42".into()),
            })
            .await
            .unwrap();
        assert!(r.rows_indexed >= 20);
        let mut kinds = Vec::new();
        while let Ok(Ok((method, params))) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            if method != p::PROGRESS {
                continue;
            }
            let pp: p::ProgressParams = serde_json::from_value(params).unwrap();
            assert_eq!(pp.token, "t-42");
            let end = matches!(pp.value, p::WorkDoneProgress::End { .. });
            kinds.push(pp.value);
            if end {
                break;
            }
        }
        assert!(matches!(kinds.first(), Some(p::WorkDoneProgress::Begin { .. })), "{kinds:?}");
        assert!(matches!(kinds.last(), Some(p::WorkDoneProgress::End { .. })), "{kinds:?}");
        assert!(
            kinds.iter().any(|k| matches!(k, p::WorkDoneProgress::Report { percentage: Some(100), .. })),
            "{kinds:?}"
        );
    });
}

#[test]
fn scheduled_backups_announce_progress_and_completion_and_failures_are_alerts() {
    let mut h =
        Home::new(false, &[("STEWARD_BACKUP_SCHEDULE", "1s"), ("STEWARD_BACKUP_KEEP", "last=2,daily=0,weekly=0")]);
    h.start_daemon();
    let f = h.file();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = client::Client::connect(&h.home).await.unwrap();
        let mut rx = c.notifications();
        c.open(Path::new(&f), None).await.unwrap();
        let mut began = false;
        let mut completed = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while completed < 2 {
            let (method, params) =
                tokio::time::timeout_at(deadline, rx.recv()).await.expect("scheduled backups").unwrap();
            if method == p::PROGRESS {
                let pp: p::ProgressParams = serde_json::from_value(params).unwrap();
                assert!(pp.token.starts_with("scheduledBackup/"), "{pp:?}");
                began |= matches!(pp.value, p::WorkDoneProgress::Begin { .. });
            } else if method == p::EVENT {
                let ev: p::EventParams = serde_json::from_value(params).unwrap();
                if let p::EventDetail::BackupCompleted { scheduled, files, .. } = ev.detail {
                    assert!(scheduled);
                    // Store, stack file and hook output (the first one may come before the project is open).
                    if files >= 3 {
                        completed += 1;
                    }
                }
            }
        }
        assert!(began, "progress was announced");
    });
    // Scheduled backups prune with STEWARD_BACKUP_KEEP.
    wait_until(Duration::from_secs(10), "pruning to 2 backups", || h.manifests().len() <= 2);
    assert!(h.manifests().iter().all(|m| m["trigger"] == "scheduled"));
    drop(h);

    // A repository that cannot be written: the failure is an event and a note tagged alert.
    let mut h = Home::new(false, &[("STEWARD_BACKUP_SCHEDULE", "1s")]);
    let blocker = h.dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    h.env.push(("STEWARD_BACKUP_DIR".into(), blocker.join("backups").display().to_string()));
    h.start_daemon();
    let f = h.file();
    rt.block_on(async {
        let c = client::Client::connect(&h.home).await.unwrap();
        let mut events = c.events();
        // An open project: machine-wide alerts are kept in the memory of the first open project.
        c.open(Path::new(&f), None).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ev = tokio::time::timeout_at(deadline, events.recv()).await.expect("a backupFailed event").unwrap();
            if let p::EventDetail::BackupFailed { scheduled, error } = ev.detail {
                assert!(scheduled);
                assert!(error.contains("not-a-dir"), "{error}");
                break;
            }
        }
    });
    // …and the `backup` alert: listed as firing, with the error, and in the memory as a note.
    wait_until(Duration::from_secs(20), "the backup alert to fire", || {
        let a = h.json(&["alerts"]);
        a["active"].as_array().unwrap().iter().any(|a| {
            a["rule"] == "backup" && a["level"] == "warning" && a["message"].as_str().unwrap().contains("not-a-dir")
        })
    });
    let hits = h.json(&["memory", "search", "backup failed", "--kind", "note"]);
    assert!(!hits["hits"].as_array().unwrap().is_empty(), "{hits}");
    // A backup that works again resolves it.
    h.env.retain(|(k, _)| k != "STEWARD_BACKUP_DIR");
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir_all(blocker.join("backups")).unwrap();
    h.expect(0, &["backup", "create"]);
    wait_until(Duration::from_secs(20), "the backup alert to resolve", || {
        let a = h.json(&["alerts"]);
        !a["active"].as_array().unwrap().iter().any(|a| a["rule"] == "backup")
            && a["resolved"].as_array().unwrap().iter().any(|a| a["rule"] == "backup")
    });
}

#[test]
fn bad_backup_settings_stop_the_daemon_with_the_variable_named() {
    let h = Home::new(false, &[("STEWARD_BACKUP_SCHEDULE", "weekly")]);
    let out = h.expect(2, &["daemon"]);
    assert!(out.contains("STEWARD_BACKUP_SCHEDULE=weekly"), "{out}");
    let out = h.expect(2, &["backup", "list"]);
    assert!(out.contains("STEWARD_BACKUP_SCHEDULE"), "{out}");
}

#[test]
fn service_files_dry_run_install_status_uninstall() {
    let h = Home::new(false, &[("STEWARD_BACKUP_SCHEDULE", "daily")]);
    let unit = h.dir.path().join("config/systemd/user/steward.service");
    let out = h.expect(0, &["service", "install", "--dry-run"]);
    assert!(out.contains(&format!("# would write {}", unit.display())), "{out}");
    assert!(
        out.contains("Restart=on-failure") && out.contains("Environment=\"STEWARD_BACKUP_SCHEDULE=daily\""),
        "{out}"
    );
    assert!(out.contains("# would run: systemctl --user enable --now steward.service"), "{out}");
    assert!(!unit.exists(), "a dry run writes nothing");
    // --json: one object on stdout, the same file and commands.
    let dry = h.json(&["service", "install", "--dry-run"]);
    assert_eq!(dry["file"], unit.display().to_string(), "{dry}");
    assert_eq!(dry["dryRun"], true, "{dry}");
    assert!(dry["contents"].as_str().unwrap().contains("\nRestart=on-failure\n"), "{dry}");
    assert!(dry["commands"].as_array().unwrap().iter().any(|c| c == "systemctl --user enable --now steward.service"));
    assert!(!unit.exists(), "a dry run writes nothing");
    h.expect(3, &["service", "status"]);

    assert!(!h.home.exists(), "a dry run creates nothing");
    h.expect(0, &["service", "install", "--no-enable"]);
    // The log directory the LaunchAgent's StandardOutPath names exists before the service manager needs it.
    let logs = std::fs::metadata(h.home.join("logs")).expect("STEWARD_HOME/logs");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&logs.permissions()) & 0o777, 0o700);
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains(&format!("ExecStart=\"{}\" daemon", steward_bin().canonicalize().unwrap().display())),
        "{text}"
    );
    assert!(text.contains(&format!("Environment=\"STEWARD_HOME={}\"", h.home.display())), "{text}");
    let status = h.expect(0, &["service", "status"]);
    assert!(status.contains("installed"), "{status}");

    // systemd's own checker, when it is installed (./scripts/test installs it and requires it).
    let required = std::env::var_os("STEWARD_REQUIRE_SYSTEMD_ANALYZE").is_some();
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(o) if o.status.success() => {
            let runtime = h.dir.path().join("xdg-runtime");
            std::fs::create_dir_all(&runtime).unwrap();
            let v = Command::new("systemd-analyze")
                .args(["verify", "--user"])
                .arg(&unit)
                .env("XDG_RUNTIME_DIR", &runtime)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&v.stderr);
            assert!(v.status.success(), "systemd-analyze verify failed: {stderr}");
            assert!(stderr.trim().is_empty(), "systemd-analyze complained: {stderr}");
        }
        _ => assert!(!required, "systemd-analyze is required (STEWARD_REQUIRE_SYSTEMD_ANALYZE) but missing"),
    }

    let out = h.expect(0, &["service", "uninstall", "--dry-run"]);
    assert!(out.contains("systemctl --user disable --now steward.service"), "{out}");
    let dry = h.json(&["service", "uninstall", "--dry-run"]);
    assert_eq!((dry["dryRun"].as_bool(), dry["removed"].as_bool()), (Some(true), Some(false)), "{dry}");
    assert!(unit.exists());
    h.expect(0, &["service", "uninstall"]);
    assert!(!unit.exists());
    let again = h.json(&["service", "uninstall"]);
    assert_eq!(again["removed"], false, "nothing was installed: {again}");
}
