//! The metrics sampler: every interval (default 2 s, `STEWARD_METRICS_INTERVAL_MS`), one refresh of the
//! process table for every module of every open project (CPU % and RSS of each module's whole tree), the
//! machine (CPU, memory, the disk of the daemon's home), and the IPC counters (messages, bytes, request
//! latency, errors, outgoing-queue fill), which give the IPC score. Latest values feed `steward/status` and
//! `steward/metrics`; an in-memory ring keeps the last hour of samples; one-minute averages go to the store
//! (kept 7 days). Alerts are evaluated on each sample (see [`super::alerts`]).
//!
//! Cheap by construction: with no module running the process table is not read at all (a tick is three small
//! file reads and a `statvfs`); with modules, a tick re-reads only their processes and new pids
//! ([`ProcWatch`]: a full read every 15 ticks), not every process on the machine; nothing is written to the
//! store while no project is open.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use steward_framework::lifecycle::now_ms;
use steward_framework::metrics::{SystemSampler, percentile};
use steward_framework::process::ProcWatch;
use steward_framework::store::MetricRow;
use steward_protocol as p;

use super::alerts::{DROPS_QUIET_MS, Observation, Subject};
use super::state::DaemonState;

/// Default sampling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// How long raw samples are kept in memory.
const RAW_KEEP: Duration = Duration::from_secs(3600);
/// Resolution and retention of the stored averages.
const MINUTE_MS: u64 = 60_000;
const MINUTE_KEEP_MS: u64 = 7 * 24 * 3600 * 1000;
/// Latencies kept per interval for the percentiles.
const MAX_LATENCIES: usize = 4096;

/// IPC score budgets (DESIGN.md §6): a component is 100 at its budget.
pub const BUDGET_MSG_PER_SEC: f64 = 5000.0;
/// p95 latency budget, ms.
pub const BUDGET_P95_MS: f64 = 50.0;
/// Error share budget, percent.
pub const BUDGET_ERROR_PERCENT: f64 = 5.0;

// -----------------------------------------------------------------------------------------------------------
// IPC counters (process-wide: every session adds to them)

/// Counters bumped by the framing (messages, bytes) and the method table (requests, latency, errors).
#[derive(Default)]
pub struct IpcCounters {
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

/// The daemon's counters.
pub static IPC: IpcCounters = IpcCounters {
    messages_in: AtomicU64::new(0),
    messages_out: AtomicU64::new(0),
    bytes_in: AtomicU64::new(0),
    bytes_out: AtomicU64::new(0),
    requests: AtomicU64::new(0),
    errors: AtomicU64::new(0),
    latencies_us: Mutex::new(Vec::new()),
};

impl IpcCounters {
    /// A message of `bytes` (frame included) was received.
    pub fn received(&self, bytes: usize) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A message of `bytes` was queued for a client.
    pub fn sent(&self, bytes: usize) {
        self.messages_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A message was rejected by the framing (bad JSON, bad JSON-RPC).
    pub fn rejected(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was handled in `took`, with an error or not.
    pub fn request(&self, took: Duration, error: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut l = self.latencies_us.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() < MAX_LATENCIES {
            l.push(took.as_micros() as u64);
        }
    }

    fn totals(&self) -> p::IpcTotals {
        p::IpcTotals {
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    fn take_latencies(&self) -> Vec<u64> {
        std::mem::take(&mut *self.latencies_us.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The IPC score's components and the score (the largest), from one interval's figures. Pure.
pub fn ipc_score(
    msg_per_sec: f64,
    p95_ms: f64,
    error_percent: f64,
    queue_fill_percent: f64,
) -> (u32, p::IpcComponents) {
    let part = |v: f64, budget: f64| if v.is_finite() { (100.0 * v / budget).clamp(0.0, 100.0) } else { 0.0 };
    let c = p::IpcComponents {
        rate: part(msg_per_sec, BUDGET_MSG_PER_SEC),
        latency: part(p95_ms, BUDGET_P95_MS),
        errors: part(error_percent, BUDGET_ERROR_PERCENT),
        queue: part(queue_fill_percent, 100.0),
    };
    let score = c.rate.max(c.latency).max(c.errors).max(c.queue).round() as u32;
    (score, c)
}

// -----------------------------------------------------------------------------------------------------------
// The sampler's state

/// One raw sample of one series.
#[derive(Clone, Copy)]
struct Point {
    at_ms: u64,
    series: u32,
    cpu: f32,
    mem: u64,
    ipc: f32,
}

#[derive(Default)]
struct MinuteAcc {
    minute: u64,
    sums: HashMap<u32, (f64, u64, f64, u32)>,
}

#[derive(Default)]
struct Inner {
    system: Option<p::SystemMetrics>,
    ipc: Option<p::IpcStats>,
    modules: Vec<p::ModuleMetrics>,
    /// Interned (project, module) names of the series; index 0 is the daemon-wide series.
    series: Vec<(String, String)>,
    series_ids: HashMap<(String, String), u32>,
    ring: VecDeque<Point>,
    minute: MinuteAcc,
    /// Previous CPU time of each module tree: (project, module, pid) → (cpu ms, when).
    last_cpu: HashMap<(String, String, u32), (u64, Instant)>,
    last_totals: Option<(p::IpcTotals, Instant)>,
    /// The store's dropped-rows counter at the previous sample, and when it last grew.
    last_dropped: u64,
    last_drop_at: Option<Instant>,
}

impl Inner {
    fn series_id(&mut self, project: &str, module: &str) -> u32 {
        let key = (project.to_string(), module.to_string());
        if let Some(id) = self.series_ids.get(&key) {
            return *id;
        }
        let id = self.series.len() as u32;
        self.series.push(key.clone());
        self.series_ids.insert(key, id);
        id
    }
}

/// The daemon's metrics: latest samples and the last hour.
pub struct Metrics {
    /// Sampling interval.
    pub interval: Duration,
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Metrics sampled every `interval`.
    pub fn new(interval: Duration) -> Metrics {
        let mut inner = Inner::default();
        inner.series_id("", "");
        Metrics { interval, inner: Mutex::new(inner) }
    }

    /// The interval from `STEWARD_METRICS_INTERVAL_MS` (at least 100 ms), else the default.
    pub fn interval_from_env() -> Duration {
        std::env::var("STEWARD_METRICS_INTERVAL_MS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_INTERVAL, |ms| Duration::from_millis(ms.max(100)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Latest machine sample.
    pub fn system(&self) -> Option<p::SystemMetrics> {
        self.lock().system.clone()
    }

    /// Latest IPC figures.
    pub fn ipc(&self) -> Option<p::IpcStats> {
        self.lock().ipc.clone()
    }

    /// Latest sample of every module with a process.
    pub fn modules(&self) -> Vec<p::ModuleMetrics> {
        self.lock().modules.clone()
    }

    /// Fills `cpu_percent`/`rss_bytes` of a project's module statuses from the latest sample (only for the
    /// process that was sampled).
    pub fn annotate(&self, project: &mut p::ProjectStatus) {
        let inner = self.lock();
        for m in &mut project.modules {
            if let Some(s) =
                inner.modules.iter().find(|s| s.project == project.path && s.module == m.name && Some(s.pid) == m.pid)
            {
                m.cpu_percent = s.cpu_percent.map(round1);
                m.rss_bytes = Some(s.rss_bytes);
            }
        }
    }

    /// Raw samples since `since_ms`, optionally of one project/module.
    pub fn history(&self, since_ms: u64, project: Option<&str>, module: Option<&str>) -> Vec<p::MetricPoint> {
        let inner = self.lock();
        inner
            .ring
            .iter()
            .filter(|pt| pt.at_ms >= since_ms)
            .filter_map(|pt| {
                let (proj, m) = &inner.series[pt.series as usize];
                if project.is_some_and(|want| want != proj) || module.is_some_and(|want| want != m) {
                    return None;
                }
                Some(p::MetricPoint {
                    at_ms: pt.at_ms,
                    project: proj.clone(),
                    module: m.clone(),
                    cpu_percent: round1(pt.cpu as f64),
                    mem_bytes: pt.mem,
                    ipc_score: (proj.is_empty()).then_some(pt.ipc as f64),
                })
            })
            .collect()
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

// -----------------------------------------------------------------------------------------------------------
// The sampling loop

/// Samples until shutdown.
pub async fn run(state: Arc<DaemonState>) {
    let mut ticker = tokio::time::interval(state.metrics.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut system = SystemSampler::new();
    // Kept across ticks: a tick re-reads only the modules' processes (and new pids), see ProcWatch.
    let mut procs = ProcWatch::new();
    let mut last_push: Option<(u32, Instant)> = None;
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        // Nobody to tell and nothing to watch: skip the tick (an idle daemon with no project and no client
        // does no work at all; the first tick after one appears samples again).
        if state.sessions.len() == 0 && state.projects().is_empty() {
            continue;
        }
        // Reading the process table takes a few milliseconds: off the async threads. Without a running module a
        // tick is three small reads, done right here (no thread hand-off, no extra thread kept alive).
        let running = state
            .projects()
            .iter()
            .any(|p| p.handle.with_snapshot(|s| s.modules.iter().any(|m| m.state.run().is_some())));
        let obs = if running {
            let st = state.clone();
            match tokio::task::spawn_blocking(move || {
                let sys = system.sample(&st.home);
                let obs = sample(&st, &sys, &mut procs);
                (system, procs, obs)
            })
            .await
            {
                Ok((s, p, obs)) => {
                    system = s;
                    procs = p;
                    obs
                }
                Err(e) => {
                    tracing::warn!("metrics sample failed: {e}");
                    system = SystemSampler::new();
                    procs = ProcWatch::new();
                    continue;
                }
            }
        } else {
            let sys = system.sample(&state.home);
            sample(&state, &sys, &mut procs)
        };
        state.alerts.evaluate(&state, obs);
        // The IPC score is pushed when it moved by 5 points or more, at most every 5 s.
        if let Some(ipc) = state.metrics.ipc() {
            let due = match last_push {
                None => ipc.score > 0,
                Some((score, at)) => score.abs_diff(ipc.score) >= 5 && at.elapsed() >= Duration::from_secs(5),
            };
            if due {
                last_push = Some((ipc.score, Instant::now()));
                state.sessions.broadcast(p::IPC, &ipc);
            }
        }
    }
}

/// One tick: reads everything, updates the latest values and the ring, queues stored averages; returns
/// what the alert rules look at.
fn sample(
    state: &DaemonState,
    sys: &steward_framework::metrics::SystemSample,
    procs: &mut ProcWatch,
) -> Vec<Observation> {
    let now = Instant::now();
    let at_ms = now_ms();
    let projects = state.projects();
    // Which processes to look at.
    let mut wanted: Vec<(String, String, u32, Option<u64>)> = Vec::new();
    let mut obs = Vec::new();
    for project in &projects {
        let snap = project.handle.snapshot();
        for m in &snap.modules {
            if let Some((_, pid)) = m.state.run() {
                wanted.push((project.id.clone(), m.name.clone(), pid, m.memory_limit));
            }
            let subject = Subject::Module { project: project.id.clone(), module: m.name.clone() };
            obs.push(Observation::RestartLoop {
                subject: subject.clone(),
                failing: matches!(&m.state, steward_framework::lifecycle::State::Failed { reason } if reason.contains("restart")),
            });
            obs.push(Observation::Health {
                subject,
                unhealthy: matches!(
                    m.state,
                    steward_framework::lifecycle::State::Running {
                        health: steward_framework::lifecycle::Health::Unhealthy,
                        ..
                    }
                ),
            });
        }
    }
    if !wanted.is_empty() {
        procs.refresh();
    }

    // IPC over the interval.
    let totals = IPC.totals();
    let mut lat = IPC.take_latencies();
    let sessions: Vec<p::SessionIpc> = state
        .sessions
        .all()
        .iter()
        .map(|s| p::SessionIpc { id: s.id, peer_pid: s.peer_pid, queue_fill_percent: round1(s.outbox.load() * 100.0) })
        .collect();

    let mut inner = state.metrics.lock();
    let (msg_rate, byte_rate, err_pct) = match &inner.last_totals {
        Some((before, at)) => {
            let secs = now.duration_since(*at).as_secs_f64().max(1e-3);
            let msgs = (totals.messages_in + totals.messages_out)
                .saturating_sub(before.messages_in + before.messages_out) as f64;
            let bytes = (totals.bytes_in + totals.bytes_out).saturating_sub(before.bytes_in + before.bytes_out) as f64;
            let reqs = totals.requests.saturating_sub(before.requests);
            let errs = totals.errors.saturating_sub(before.errors);
            let err_pct = if errs == 0 { 0.0 } else { 100.0 * errs as f64 / reqs.max(errs) as f64 };
            (msgs / secs, bytes / secs, err_pct)
        }
        None => (0.0, 0.0, 0.0),
    };
    inner.last_totals = Some((totals.clone(), now));
    let p50 = percentile(&mut lat, 50.0).unwrap_or(0) as f64 / 1000.0;
    let p95 = percentile(&mut lat, 95.0).unwrap_or(0) as f64 / 1000.0;
    let queue = sessions.iter().map(|s| s.queue_fill_percent).fold(0.0, f64::max);
    let (score, components) = ipc_score(msg_rate, p95, err_pct, queue);
    let ipc = p::IpcStats {
        score,
        messages_per_sec: round1(msg_rate),
        bytes_per_sec: byte_rate.round(),
        latency_p50_ms: (p50 * 1000.0).round() / 1000.0,
        latency_p95_ms: (p95 * 1000.0).round() / 1000.0,
        error_percent: round1(err_pct),
        queue_fill_percent: queue,
        components,
        totals,
        sessions,
    };
    obs.push(Observation::Ipc { score: score as f64 });

    // Log rows the store could not write.
    let dropped = state.store.dropped();
    let dropping = dropped > inner.last_dropped;
    inner.last_dropped = dropped;
    if dropping {
        inner.last_drop_at = Some(now);
    }
    let recent = inner.last_drop_at.is_some_and(|at| now.duration_since(at) < Duration::from_millis(DROPS_QUIET_MS));
    if dropped > 0 {
        obs.push(Observation::LogsDropped { total: dropped, dropping, recent });
    }
    if let Some(error) = state.backup_failure() {
        obs.push(Observation::BackupFailing { error });
    }
    inner.ipc = Some(ipc);

    let system = p::SystemMetrics {
        at_ms,
        cpu_percent: sys.cpu_percent.map(round1),
        cpus: sys.cpus,
        mem_total_bytes: sys.mem_total_bytes,
        mem_used_bytes: sys.mem_used_bytes,
        disk_path: state.home.display().to_string(),
        disk_total_bytes: sys.disk_total_bytes,
        disk_used_bytes: sys.disk_used_bytes,
    };
    if let Some(c) = sys.cpu_percent {
        obs.push(Observation::Percent { rule: "cpu", subject: Subject::Machine, value: c });
    }
    if let Some(m) = sys.mem_percent() {
        obs.push(Observation::Percent { rule: "memory", subject: Subject::Machine, value: m });
    }
    if let Some(d) = sys.disk_percent() {
        obs.push(Observation::Percent { rule: "disk", subject: Subject::Machine, value: d });
    }
    inner.system = Some(system);

    // Modules.
    let mut modules = Vec::with_capacity(wanted.len());
    let mut seen = HashMap::new();
    for (project, module, pid, limit) in wanted {
        let Some(usage) = procs.tree(pid) else { continue };
        let key = (project.clone(), module.clone(), pid);
        let cpu = inner.last_cpu.get(&key).map(|(cpu_ms, at)| {
            let wall = now.duration_since(*at).as_secs_f64() * 1000.0;
            if wall <= 0.0 { 0.0 } else { usage.cpu_ms.saturating_sub(*cpu_ms) as f64 * 100.0 / wall }
        });
        seen.insert(key, (usage.cpu_ms, now));
        let subject = Subject::Module { project: project.clone(), module: module.clone() };
        if let Some(c) = cpu {
            obs.push(Observation::Percent { rule: "moduleCpu", subject: subject.clone(), value: c });
        }
        if let Some(limit) = limit.filter(|l| *l > 0) {
            obs.push(Observation::Percent {
                rule: "moduleMemory",
                subject,
                value: usage.rss_bytes as f64 * 100.0 / limit as f64,
            });
        }
        modules.push(p::ModuleMetrics {
            project,
            module,
            pid,
            cpu_percent: cpu.map(round1),
            rss_bytes: usage.rss_bytes,
            processes: usage.processes,
            memory_limit_bytes: limit,
        });
    }
    inner.last_cpu = seen;

    // The ring and the minute averages.
    let ipc_score_now = score as f32;
    let mut points = vec![Point {
        at_ms,
        series: 0,
        cpu: sys.cpu_percent.unwrap_or(0.0) as f32,
        mem: sys.mem_used_bytes,
        ipc: ipc_score_now,
    }];
    for m in &modules {
        let id = inner.series_id(&m.project, &m.module);
        points.push(Point { at_ms, series: id, cpu: m.cpu_percent.unwrap_or(0.0) as f32, mem: m.rss_bytes, ipc: 0.0 });
    }
    inner.modules = modules;
    let keep_from = at_ms.saturating_sub(RAW_KEEP.as_millis() as u64);
    while inner.ring.front().is_some_and(|p| p.at_ms < keep_from) {
        inner.ring.pop_front();
    }
    inner.ring.extend(points.iter().copied());

    let minute = at_ms / MINUTE_MS;
    let mut rows = Vec::new();
    if inner.minute.minute != minute {
        if inner.minute.minute != 0 && !projects.is_empty() {
            let end = (inner.minute.minute + 1) * MINUTE_MS;
            let sums: Vec<_> = inner.minute.sums.drain().collect();
            for (series, (cpu, mem, ipc, n)) in sums {
                let (project, module) = inner.series[series as usize].clone();
                let n = n.max(1);
                rows.push(MetricRow {
                    ts_ms: end,
                    resolution_ms: MINUTE_MS,
                    ipc_score: project.is_empty().then_some(round1(ipc / n as f64)),
                    project,
                    module,
                    cpu_percent: round1(cpu / n as f64),
                    mem_bytes: mem / n as u64,
                });
            }
        }
        inner.minute.sums.clear();
        inner.minute.minute = minute;
    }
    for pt in &points {
        let e = inner.minute.sums.entry(pt.series).or_insert((0.0, 0, 0.0, 0));
        e.0 += pt.cpu as f64;
        e.1 += pt.mem;
        e.2 += pt.ipc as f64;
        e.3 += 1;
    }
    drop(inner);
    if !rows.is_empty() {
        rows.sort_by(|a, b| (&a.project, &a.module).cmp(&(&b.project, &b.module)));
        if let Err(e) = state.store.record_metrics(rows, vec![(MINUTE_MS, at_ms.saturating_sub(MINUTE_KEEP_MS))]) {
            tracing::debug!("metrics not stored: {e}");
        }
    }
    obs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_is_the_worst_component_against_its_budget() {
        let (s, c) = ipc_score(0.0, 0.0, 0.0, 0.0);
        assert_eq!(s, 0);
        assert_eq!(c.rate, 0.0);
        let (s, c) = ipc_score(2500.0, 5.0, 0.0, 10.0);
        assert_eq!((s, c.rate, c.latency, c.queue), (50, 50.0, 10.0, 10.0));
        let (s, _) = ipc_score(10.0, 100.0, 0.0, 0.0);
        assert_eq!(s, 100, "over budget is capped at 100");
        let (s, c) = ipc_score(10.0, 1.0, 2.5, 0.0);
        assert_eq!((s, c.errors), (50, 50.0));
        let (s, _) = ipc_score(f64::NAN, 0.0, 0.0, 80.0);
        assert_eq!(s, 80);
    }
}
