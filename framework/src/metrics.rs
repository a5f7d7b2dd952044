//! System metrics for the daemon's sampler: machine CPU and memory, and the disk of a volume. Process-tree
//! usage is in [`crate::process::ProcTable`]. Both read a handful of small files per call (Linux: `/proc/stat`,
//! `/proc/meminfo`, one `statvfs`), so sampling every couple of seconds costs microseconds.
//!
//! Other Unixes (macOS) report no machine CPU or memory here yet (`None`); the disk works everywhere.

use std::path::Path;

/// One reading of the machine.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SystemSample {
    /// CPU busy since the previous reading, percent of all cores (None on the first reading).
    pub cpu_percent: Option<f64>,
    /// Logical CPUs.
    pub cpus: u32,
    /// Total memory, bytes.
    pub mem_total_bytes: u64,
    /// Memory in use (total − available), bytes.
    pub mem_used_bytes: u64,
    /// Size of the volume, bytes.
    pub disk_total_bytes: u64,
    /// Used space on the volume, bytes (what is not available to us).
    pub disk_used_bytes: u64,
}

impl SystemSample {
    /// Memory in use, percent.
    pub fn mem_percent(&self) -> Option<f64> {
        (self.mem_total_bytes > 0).then(|| self.mem_used_bytes as f64 * 100.0 / self.mem_total_bytes as f64)
    }

    /// Disk in use, percent.
    pub fn disk_percent(&self) -> Option<f64> {
        (self.disk_total_bytes > 0).then(|| self.disk_used_bytes as f64 * 100.0 / self.disk_total_bytes as f64)
    }
}

/// Samples the machine; keeps the previous CPU counters to compute a rate.
#[derive(Debug, Default)]
pub struct SystemSampler {
    last_cpu: Option<CpuTimes>,
}

/// Aggregate CPU counters (clock ticks) from `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// All ticks.
    pub total: u64,
    /// Idle + iowait ticks.
    pub idle: u64,
}

impl SystemSampler {
    /// A sampler with no history.
    pub fn new() -> SystemSampler {
        SystemSampler::default()
    }

    /// Reads the machine now; `disk` names a path on the volume to report.
    pub fn sample(&mut self, disk: &Path) -> SystemSample {
        let mut s = SystemSample::default();
        #[cfg(target_os = "linux")]
        {
            if let Ok(text) = std::fs::read_to_string("/proc/stat") {
                if let Some(now) = parse_cpu_times(&text) {
                    s.cpu_percent = self.last_cpu.map(|before| busy_percent(before, now));
                    self.last_cpu = Some(now);
                }
                s.cpus = text.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count() as u32;
            }
            if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
                if let Some((total, available)) = parse_meminfo(&text) {
                    s.mem_total_bytes = total;
                    s.mem_used_bytes = total.saturating_sub(available);
                }
            }
        }
        let _ = &mut self.last_cpu;
        if let Some((total, used)) = disk_usage(disk) {
            s.disk_total_bytes = total;
            s.disk_used_bytes = used;
        }
        s
    }
}

/// The aggregate `cpu` line of `/proc/stat`.
pub fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line.split_ascii_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest times are already in user/nice).
    let total = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some(CpuTimes { total, idle })
}

/// Busy share between two readings, percent (0 when no tick passed).
pub fn busy_percent(before: CpuTimes, now: CpuTimes) -> f64 {
    let total = now.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    let idle = now.idle.saturating_sub(before.idle).min(total);
    (total - idle) as f64 * 100.0 / total as f64
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l[name.len()..].split_ascii_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

/// Size and used space (size − available to unprivileged users) of the volume holding `path`.
pub fn disk_usage(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    let total = st.f_blocks as u64 * frsize;
    let available = st.f_bavail as u64 * frsize;
    Some((total, total.saturating_sub(available)))
}

/// The `p`-th percentile (0–100, nearest rank) of `values`, which it sorts. None when empty.
pub fn percentile(values: &mut [u64], p: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_and_busy_share() {
        let a = parse_cpu_times("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let b = parse_cpu_times("cpu  150 0 150 900 0 0 0 0 0 0\n").unwrap();
        assert_eq!(a, CpuTimes { total: 1000, idle: 800 });
        assert!((busy_percent(a, b) - 50.0).abs() < 1e-9);
        assert_eq!(busy_percent(a, a), 0.0);
        assert!(parse_cpu_times("intr 1 2 3").is_none());
    }

    #[test]
    fn meminfo() {
        let text = "MemTotal:       2000 kB\nMemFree:  100 kB\nMemAvailable:   500 kB\n";
        assert_eq!(parse_meminfo(text), Some((2000 * 1024, 500 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn percentiles() {
        let mut v = vec![5, 1, 4, 2, 3, 6, 7, 8, 9, 10];
        assert_eq!(percentile(&mut v, 50.0), Some(5));
        assert_eq!(percentile(&mut v, 95.0), Some(10));
        assert_eq!(percentile(&mut v, 0.0), Some(1));
        assert_eq!(percentile(&mut [], 50.0), None);
    }

    #[test]
    fn disk_of_a_real_volume() {
        let (total, used) = disk_usage(Path::new("/")).unwrap();
        assert!(total > 0 && used <= total);
        assert!(disk_usage(Path::new("/no/such/path")).is_none());
    }
}
