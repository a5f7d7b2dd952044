//! Giving memory back while the daemon is idle.
//!
//! A daemon that runs for weeks should hold what it uses, not what it once touched. Two things stay resident
//! otherwise: the code and read-only data of the binary and its libraries that only start-up, a burst or a
//! rare request ran (the kernel maps file pages 64 KiB around each fault, so one call into a cold function
//! maps 16 pages), and heap pages that glibc keeps after a burst of log ingestion freed them.
//! [`release`] drops both: read-only, file-backed mappings of the process are unmapped page by page with
//! `MADV_DONTNEED` (the pages stay in the page cache; the next use maps them again — a minor fault, no I/O),
//! and `malloc_trim` returns free heap pages. Only mappings that hold no page of their own are touched:
//! not writable ones, and not read-only ones with copy-on-write pages (relocated data made read-only after
//! start-up: dropping those pages would bring back the unrelocated bytes of the file).

/// How often [`run`] releases memory: the working set of an idle daemon is what it touches in this time.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Releases memory every [`EVERY`] until aborted. A release costs about a millisecond (reading
/// `/proc/self/smaps`), and the pages still in use come back as a few dozen minor faults.
pub async fn run() {
    loop {
        tokio::time::sleep(EVERY).await;
        match tokio::task::spawn_blocking(release).await {
            Ok(n) => tracing::trace!("released {n} bytes of read-only mappings"),
            Err(e) => tracing::warn!("releasing memory failed: {e}"),
        }
    }
}

/// Drops the resident pages of read-only file mappings and trims the heap. Returns the bytes of mappings it
/// released (before re-faulting), for the log.
pub fn release() -> u64 {
    let mut released = 0;
    #[cfg(target_os = "linux")]
    {
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return 0 };
        for (start, end) in clean_file_mappings(&smaps) {
            // SAFETY: the range is a whole mapping of this process that is read-only, file-backed and has no
            // page of its own (no copy-on-write page: not relocated data), so dropping its pages loses
            // nothing: they are read back from the file when touched again.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
            if rc == 0 {
                released += (end - start) as u64;
            }
        }
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator to the system.
    unsafe {
        libc::malloc_trim(0);
    }
    released
}

/// `(start, end)` of every mapping in `smaps` that is file-backed, readable, not writable, private, and has
/// no anonymous or dirty page.
fn clean_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    let mut own_pages = false;
    let mut finish = |current: &mut Option<(usize, usize)>, own_pages: bool| {
        if let Some(range) = current.take()
            && !own_pages
        {
            out.push(range);
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            finish(&mut current, own_pages);
            own_pages = false;
            let perms = f.next().unwrap_or("");
            let inode = f.nth(2).unwrap_or("0");
            let read_only_private =
                perms.len() == 4 && perms.starts_with('r') && &perms[1..2] == "-" && perms.ends_with('p');
            if inode != "0" && read_only_private {
                current = Some((start, end));
            }
            continue;
        }
        if matches!(first, "Anonymous:" | "Private_Dirty:" | "Shared_Dirty:")
            && f.next().and_then(|v| v.parse::<u64>().ok()).is_some_and(|kb| kb > 0)
        {
            own_pages = true;
        }
    }
    finish(&mut current, own_pages);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_file_mappings_are_chosen() {
        let smaps = "\
55d0a0000000-55d0a0100000 r--p 00000000 fd:01 1234 /usr/bin/steward
Rss:                 400 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a0100000-55d0a0200000 r-xp 00100000 fd:01 1234 /usr/bin/steward
Rss:                 800 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
55d0a0200000-55d0a0210000 r--p 00200000 fd:01 1234 /usr/bin/steward
Rss:                  64 kB
Private_Dirty:        64 kB
Anonymous:            64 kB
55d0a0210000-55d0a0220000 rw-p 00210000 fd:01 1234 /usr/bin/steward
Rss:                  64 kB
Private_Dirty:        64 kB
7f0000000000-7f0000100000 rw-p 00000000 00:00 0 
Rss:                 100 kB
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   8 kB
";
        assert_eq!(
            clean_file_mappings(smaps),
            vec![(0x55d0a0000000, 0x55d0a0100000), (0x55d0a0100000, 0x55d0a0200000)]
        );
    }

    #[test]
    fn releasing_keeps_the_process_working() {
        let v: Vec<u64> = (0..1000).collect();
        release();
        // Code, read-only data and relocated data all still work after the release.
        assert_eq!(v.iter().sum::<u64>(), 499_500);
        assert_eq!(format!("{:?}", std::path::Path::new("/x")), "\"/x\"");
        release();
        assert!(std::fs::read_to_string("/proc/self/status").is_ok());
    }
}
