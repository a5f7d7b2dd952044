//! A consistent copy of a live SQLite database, and its integrity check.
//!
//! [`snapshot_database`] uses SQLite's online backup API from a connection of its own that holds one read
//! transaction for the whole copy. The store runs in WAL mode, so that read transaction is a fixed snapshot:
//! the daemon's writer keeps committing meanwhile (readers never block it), the copy is of one instant, and
//! it is never restarted by those commits, however long it takes. Pages are copied in steps so the caller
//! can report progress.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{BackupError, Result};

/// Pages copied per step (4 MiB with 4 KiB pages).
pub const STEP_PAGES: i32 = 1024;

/// What a snapshot copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Pages copied.
    pub pages: u64,
    /// Size of the copy in bytes.
    pub bytes: u64,
}

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> BackupError + '_ {
    move |e| BackupError::Sqlite { path: path.to_path_buf(), message: e.to_string() }
}

/// Opens a database for reading without creating it (and without writing to it).
pub fn open_for_reading(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(BackupError::Sqlite { path: path.to_path_buf(), message: "no such database file".into() });
    }
    // Read-write flags (no create) with query_only: a read-only connection cannot open a WAL database whose
    // -shm file it would have to create.
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(sqlite_err(path))?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(sqlite_err(path))?;
    conn.execute_batch("PRAGMA query_only = ON").map_err(sqlite_err(path))?;
    Ok(conn)
}

/// Copies the database at `src` (which may be in use by a writer in this or another process) to `dest`, a
/// new self-contained file (rollback-journal mode: no `-wal` needed next to it). `progress(done, total)`
/// is called after every step with page counts.
pub fn snapshot_database(src: &Path, dest: &Path, progress: impl FnMut(u64, u64)) -> Result<SnapshotInfo> {
    snapshot_in_steps(src, dest, STEP_PAGES, progress)
}

fn snapshot_in_steps(
    src: &Path,
    dest: &Path,
    step_pages: i32,
    mut progress: impl FnMut(u64, u64),
) -> Result<SnapshotInfo> {
    let conn = open_for_reading(src)?;
    // One read transaction for the whole copy: a fixed snapshot of the WAL database.
    conn.execute_batch("BEGIN").map_err(sqlite_err(src))?;
    let _: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(sqlite_err(src))?;
    let _ = std::fs::remove_file(dest);
    let mut out = Connection::open(dest).map_err(sqlite_err(dest))?;
    {
        let backup = Backup::new(&conn, &mut out).map_err(sqlite_err(dest))?;
        let mut busy_since: Option<std::time::Instant> = None;
        loop {
            let step = backup.step(step_pages).map_err(sqlite_err(src))?;
            let p = backup.progress();
            let total = p.pagecount.max(0) as u64;
            progress(total.saturating_sub(p.remaining.max(0) as u64), total);
            match step {
                StepResult::Done => break,
                StepResult::More => busy_since = None,
                // Only the destination can be busy (nobody else knows it); give up after a while.
                StepResult::Busy | StepResult::Locked => {
                    let since = *busy_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > Duration::from_secs(30) {
                        return Err(BackupError::Sqlite {
                            path: dest.to_path_buf(),
                            message: "the copy stayed locked for 30 s".into(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {}
            }
        }
    }
    conn.execute_batch("COMMIT").map_err(sqlite_err(src))?;
    // The copy carries the source's WAL flag; make it a plain single file.
    let _: String = out.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0)).map_err(sqlite_err(dest))?;
    let pages: i64 = out.query_row("PRAGMA page_count", [], |r| r.get(0)).map_err(sqlite_err(dest))?;
    drop(out);
    let bytes = std::fs::metadata(dest).map_err(super::io(dest))?.len();
    Ok(SnapshotInfo { pages: pages.max(0) as u64, bytes })
}

/// `PRAGMA integrity_check` of the database at `path`: `Ok(())` when SQLite answers `ok`, else the problems
/// it lists (at most 20), or why the file could not be read as a database.
pub fn integrity_check(path: &Path) -> std::result::Result<(), Vec<String>> {
    let conn = open_for_reading(path).map_err(|e| vec![e.to_string()])?;
    let rows: rusqlite::Result<Vec<String>> = (|| {
        let mut stmt = conn.prepare("PRAGMA integrity_check(20)")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    })();
    match rows {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Ok(()),
        Ok(rows) if rows.is_empty() => Err(vec!["integrity_check returned nothing".into()]),
        Ok(rows) => Err(rows),
        Err(e) => Err(vec![e.to_string()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_a_database_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.db");
        let w = Connection::open(&src).unwrap();
        let _: String = w.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).unwrap();
        w.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").unwrap();
        w.execute_batch("BEGIN").unwrap();
        for i in 0..20_000 {
            w.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i} {}", "x".repeat(100))]).unwrap();
        }
        w.execute_batch("COMMIT").unwrap();
        let dest = dir.path().join("copy.db");
        let mut calls = 0;
        let mut last = (0, 0);
        // Write between steps through another connection: the copy is of the instant it began.
        let info = snapshot_in_steps(&src, &dest, 64, |done, total| {
            calls += 1;
            assert!(calls < 1000, "the copy restarts after every write");
            last = (done, total);
            w.execute("INSERT INTO t (v) VALUES ('later')", []).unwrap();
        })
        .unwrap();
        assert!(calls >= 5, "the copy was made in steps ({calls})");
        assert_eq!(last.0, last.1);
        assert!(info.bytes > 2_000_000, "{info:?}");
        integrity_check(&dest).unwrap();
        let copy = Connection::open(&dest).unwrap();
        let n: i64 = copy.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 20_000);
        let mode: String = copy.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "delete");
    }

    #[test]
    fn integrity_check_finds_damage() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("d.db");
        let c = Connection::open(&db).unwrap();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t (v);").unwrap();
        c.execute_batch("BEGIN").unwrap();
        for i in 0..5000 {
            c.execute("INSERT INTO t (v) VALUES (?1)", [format!("value {i}")]).unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
        drop(c);
        integrity_check(&db).unwrap();
        // Overwrite the middle of the file (b-tree pages, not the header).
        let mut bytes = std::fs::read(&db).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid..mid + 3000] {
            *b = 0x5a;
        }
        std::fs::write(&db, &bytes).unwrap();
        let problems = integrity_check(&db).unwrap_err();
        assert!(!problems.is_empty());
        // Not a database at all.
        std::fs::write(&db, b"hello, I am not a database at all, not even a little bit........").unwrap();
        let problems = integrity_check(&db).unwrap_err();
        assert!(problems[0].contains("not a database"), "{problems:?}");
        assert!(integrity_check(&dir.path().join("missing.db")).unwrap_err()[0].contains("no such"));
    }
}
