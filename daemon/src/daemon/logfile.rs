//! The daemon's own log, `logs/daemon.log`, rotated by size: past [`MAX_BYTES`] it becomes `daemon.log.1`
//! (the older ones shift up to [`KEEP`]) and a new file is started. Small and dependency-free; the
//! formatting is `tracing-subscriber`'s.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Size at which the log is rotated.
pub const MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Rotated files kept (`daemon.log.1` … `daemon.log.N`).
pub const KEEP: usize = 3;

struct State {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

/// A cloneable writer (one per log event) that appends to the rotating file.
#[derive(Clone)]
pub struct LogFile {
    state: Arc<Mutex<State>>,
}

impl LogFile {
    /// Opens (appending) `path`.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        LogFile::open_with(path, MAX_BYTES)
    }

    fn open_with(path: &Path, max: u64) -> io::Result<LogFile> {
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile { state: Arc::new(Mutex::new(State { path: path.to_path_buf(), file, size, max })) })
    }
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl State {
    fn rotate(&mut self) -> io::Result<()> {
        for n in (1..KEEP).rev() {
            let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.size > 0 && s.size + buf.len() as u64 > s.max {
            // A failed rotation keeps appending to the current file rather than losing lines.
            let _ = s.rotate();
        }
        s.file.write_all(buf)?;
        s.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_a_few() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.log");
        let mut log = LogFile::open_with(&path, 100).unwrap();
        for i in 0..20 {
            writeln!(log, "line {i:02} {}", "x".repeat(40)).unwrap();
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 100);
        assert!(rotated(&path, 1).exists() && rotated(&path, KEEP).exists());
        assert!(!rotated(&path, KEEP + 1).exists());
        let newest = std::fs::read_to_string(&path).unwrap();
        assert!(newest.ends_with(&format!("line 19 {}\n", "x".repeat(40))), "{newest}");
    }
}
