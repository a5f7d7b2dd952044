//! The optional, read-only HTTP endpoint: `GET /metrics` (Prometheus text format 0.0.4) and `GET /health`
//! (JSON). Off by default; `STEWARD_HTTP_ADDR=127.0.0.1:9464` turns it on. Only loopback addresses are accepted
//! (anything else is refused at start-up with an error naming the variable).
//!
//! A minimal HTTP/1.1 server (one request per connection, `Connection: close`, an 8 KiB request head read
//! within 5 s): scrapers need nothing more, and a framework would be most of the daemon's size.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use steward_framework::lifecycle::{Health, State};
use steward_protocol as p;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::state::DaemonState;

/// The variable that turns the endpoint on.
pub const ENV: &str = "STEWARD_HTTP_ADDR";
const MAX_HEAD: usize = 8192;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The address from [`ENV`]: None when unset or empty; an error when it is not a loopback `IP:PORT`.
pub fn configured() -> Result<Option<SocketAddr>, String> {
    let Ok(v) = std::env::var(ENV) else { return Ok(None) };
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    parse_addr(v).map(Some)
}

/// A loopback `IP:PORT` (`127.0.0.1:9464`, `[::1]:9464`).
pub fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr =
        v.parse().map_err(|e| format!("{ENV}={v:?}: {e}; expected a loopback IP:PORT such as 127.0.0.1:9464"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{ENV}={v:?}: {} is not a loopback address; the endpoint only listens on loopback (127.0.0.1 or ::1)",
            addr.ip()
        ));
    }
    Ok(addr)
}

/// Binds `addr` (the caller checked it) and serves until shutdown.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves connections until shutdown.
pub async fn serve(state: Arc<DaemonState>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = state.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(handle(state.clone(), stream));
            }
            Err(e) => {
                tracing::warn!("http: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(state: Arc<DaemonState>, mut stream: TcpStream) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok::<bool, std::io::Error>(false);
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Ok(true);
            }
            if head.len() > MAX_HEAD {
                return Ok(false);
            }
        }
    };
    let complete = matches!(tokio::time::timeout(READ_TIMEOUT, read).await, Ok(Ok(true)));
    let (status, ctype, body) = if !complete {
        (400, "text/plain; charset=utf-8", "bad request\n".to_string())
    } else {
        let line = String::from_utf8_lossy(&head);
        let mut parts = line.lines().next().unwrap_or("").split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        match (method, path) {
            ("GET" | "HEAD", "/metrics") => (200, "text/plain; version=0.0.4; charset=utf-8", prometheus(&state)),
            ("GET" | "HEAD", "/health") => {
                let (ok, body) = health(&state);
                (if ok { 200 } else { 503 }, "application/json", body)
            }
            ("GET" | "HEAD", _) => (404, "text/plain; charset=utf-8", "not found: try /metrics or /health\n".into()),
            _ => (405, "text/plain; charset=utf-8", "read-only: only GET and HEAD\n".into()),
        }
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let head_only = head.starts_with(b"HEAD ");
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if status == 405 { "Allow: GET, HEAD\r\n" } else { "" }
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    let _ = tokio::time::timeout(READ_TIMEOUT, async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Counts of modules: (total, active = running and not unhealthy, failed).
fn module_counts(state: &DaemonState) -> (usize, usize, usize) {
    let (mut total, mut active, mut failed) = (0, 0, 0);
    for project in state.projects() {
        for m in project.handle.snapshot().modules {
            total += 1;
            match m.state {
                State::Running { health, .. } if health != Health::Unhealthy => active += 1,
                State::Failed { .. } | State::Backoff { .. } => failed += 1,
                _ => {}
            }
        }
    }
    (total, active, failed)
}

/// `/health`: `{status, version, uptimeSeconds, modules: {total, active, failed}}`; `ok` unless a module
/// failed (then `degraded`, HTTP 503) or the daemon is stopping (`down`, 503).
pub fn health(state: &DaemonState) -> (bool, String) {
    let (total, active, failed) = module_counts(state);
    let status = if state.is_stopping() {
        "down"
    } else if failed > 0 {
        "degraded"
    } else {
        "ok"
    };
    let body = serde_json::json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": state.started.elapsed().as_secs_f64(),
        "modules": {"total": total, "active": active, "failed": failed},
    });
    (status == "ok", format!("{body}\n"))
}

/// A label value, escaped as the text format requires (`\\`, `\"`, `\n`).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", if value.is_finite() { value } else { 0.0 });
    }
}

fn state_word(s: &State) -> &'static str {
    match s {
        State::Installed => "installed",
        State::Resolved => "resolved",
        State::Starting { .. } => "starting",
        State::Running { .. } => "running",
        State::Stopping { .. } => "stopping",
        State::Stopped => "stopped",
        State::Exited { .. } => "exited",
        State::Failed { .. } => "failed",
        State::Backoff { .. } => "backoff",
    }
}

const STATES: &[&str] =
    &["installed", "resolved", "starting", "running", "stopping", "stopped", "exited", "failed", "backoff"];

/// `/metrics`.
pub fn prometheus(state: &DaemonState) -> String {
    let mut o = Out(String::with_capacity(4096));
    o.family("steward_info", "gauge", "Steward daemon build information.");
    o.sample("steward_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    o.family("steward_uptime_seconds", "gauge", "Seconds since the daemon started.");
    o.sample("steward_uptime_seconds", &[], state.started.elapsed().as_secs_f64());
    let projects = state.projects();
    o.family("steward_projects", "gauge", "Open projects.");
    o.sample("steward_projects", &[], projects.len() as f64);
    o.family("steward_sessions", "gauge", "Connected API sessions.");
    o.sample("steward_sessions", &[], state.sessions.len() as f64);
    let (total, active, failed) = module_counts(state);
    o.family("steward_modules", "gauge", "Modules by condition (total, active, failed).");
    o.sample("steward_modules", &[("condition", "total")], total as f64);
    o.sample("steward_modules", &[("condition", "active")], active as f64);
    o.sample("steward_modules", &[("condition", "failed")], failed as f64);

    let snaps: Vec<_> = projects.iter().map(|p| (p.id.clone(), p.name(), p.handle.snapshot())).collect();
    o.family("steward_module_state", "gauge", "1 for the module's current lifecycle state, 0 for the others.");
    for (id, name, snap) in &snaps {
        for m in &snap.modules {
            let now = state_word(&m.state);
            for s in STATES {
                o.sample(
                    "steward_module_state",
                    &[("project", id), ("project_name", name), ("module", &m.name), ("state", s)],
                    if *s == now { 1.0 } else { 0.0 },
                );
            }
        }
    }
    o.family("steward_module_restarts_total", "counter", "Automatic restarts since the project was opened.");
    for (id, name, snap) in &snaps {
        for m in &snap.modules {
            o.sample(
                "steward_module_restarts_total",
                &[("project", id), ("project_name", name), ("module", &m.name)],
                m.restarts as f64,
            );
        }
    }
    let modules = state.metrics.modules();
    o.family("steward_module_cpu_percent", "gauge", "CPU of the module's process tree, percent of one core.");
    for m in &modules {
        if let Some(c) = m.cpu_percent {
            o.sample("steward_module_cpu_percent", &[("project", &m.project), ("module", &m.module)], c);
        }
    }
    o.family("steward_module_memory_bytes", "gauge", "Resident memory of the module's process tree.");
    for m in &modules {
        o.sample("steward_module_memory_bytes", &[("project", &m.project), ("module", &m.module)], m.rss_bytes as f64);
    }
    o.family("steward_module_processes", "gauge", "Live processes in the module's tree.");
    for m in &modules {
        o.sample("steward_module_processes", &[("project", &m.project), ("module", &m.module)], m.processes as f64);
    }

    o.family(
        "steward_store_rows_dropped_total",
        "counter",
        "Rows the store could not write (a full disk, an I/O error) since the daemon started.",
    );
    o.sample("steward_store_rows_dropped_total", &[], state.store.dropped() as f64);

    if let Some(s) = state.metrics.system() {
        if let Some(c) = s.cpu_percent {
            o.family("steward_system_cpu_percent", "gauge", "Machine CPU busy, percent of all cores.");
            o.sample("steward_system_cpu_percent", &[], c);
        }
        o.family("steward_system_memory_bytes", "gauge", "Machine memory (total, used).");
        o.sample("steward_system_memory_bytes", &[("kind", "total")], s.mem_total_bytes as f64);
        o.sample("steward_system_memory_bytes", &[("kind", "used")], s.mem_used_bytes as f64);
        o.family("steward_system_disk_bytes", "gauge", "The daemon home's volume (total, used).");
        o.sample("steward_system_disk_bytes", &[("kind", "total"), ("path", &s.disk_path)], s.disk_total_bytes as f64);
        o.sample("steward_system_disk_bytes", &[("kind", "used"), ("path", &s.disk_path)], s.disk_used_bytes as f64);
    }

    if let Some(i) = state.metrics.ipc() {
        o.family("steward_ipc_score", "gauge", "IPC score, 0-100 (docs/metrics.md).");
        o.sample("steward_ipc_score", &[], i.score as f64);
        o.family("steward_ipc_messages_total", "counter", "JSON-RPC messages through the daemon's sessions.");
        o.sample("steward_ipc_messages_total", &[("direction", "in")], i.totals.messages_in as f64);
        o.sample("steward_ipc_messages_total", &[("direction", "out")], i.totals.messages_out as f64);
        o.family("steward_ipc_bytes_total", "counter", "Bytes through the daemon's sessions.");
        o.sample("steward_ipc_bytes_total", &[("direction", "in")], i.totals.bytes_in as f64);
        o.sample("steward_ipc_bytes_total", &[("direction", "out")], i.totals.bytes_out as f64);
        o.family("steward_ipc_requests_total", "counter", "Requests handled.");
        o.sample("steward_ipc_requests_total", &[], i.totals.requests as f64);
        o.family("steward_ipc_errors_total", "counter", "Requests answered with an error, and rejected messages.");
        o.sample("steward_ipc_errors_total", &[], i.totals.errors as f64);
        o.family("steward_ipc_latency_seconds", "gauge", "Request latency over the last interval (p50, p95).");
        o.sample("steward_ipc_latency_seconds", &[("quantile", "0.5")], i.latency_p50_ms / 1000.0);
        o.sample("steward_ipc_latency_seconds", &[("quantile", "0.95")], i.latency_p95_ms / 1000.0);
    }

    let active = state.alerts.active();
    o.family("steward_alerts_firing", "gauge", "Alerts firing now, by level.");
    for level in [p::AlertLevel::Info, p::AlertLevel::Warning, p::AlertLevel::Critical, p::AlertLevel::Emergency] {
        let n = active.iter().filter(|a| a.level == level).count();
        o.sample("steward_alerts_firing", &[("level", &format!("{level:?}").to_lowercase())], n as f64);
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses() {
        assert!(parse_addr("127.0.0.1:9464").is_ok());
        assert!(parse_addr("[::1]:9464").is_ok());
        let e = parse_addr("0.0.0.0:9464").unwrap_err();
        assert!(e.contains("not a loopback address") && e.contains(ENV), "{e}");
        let e = parse_addr("localhost").unwrap_err();
        assert!(e.contains("expected a loopback IP:PORT"), "{e}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
