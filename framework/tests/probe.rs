//! Health checks against real processes and real sockets.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use steward_framework::config::Probe;
use steward_framework::probe::{ProbeContext, check};

const DEADLINE: Duration = Duration::from_secs(30);
const QUICK: Duration = Duration::from_secs(10);

async fn exec_in(cmd: &str, timeout: Duration, cwd: &Path, env: &BTreeMap<String, String>) -> Result<(), String> {
    check(&Probe::Exec(cmd.to_string()), timeout, &ProbeContext { cwd, env }).await
}

async fn probe(p: Probe, timeout: Duration) -> Result<(), String> {
    let env = BTreeMap::new();
    check(&p, timeout, &ProbeContext { cwd: Path::new("/"), env: &env }).await
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().starts_with(['Z', 'X'])))
        .is_some_and(|zombie| !zombie)
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A one-connection-at-a-time HTTP server answering `status` to every request; each request's head is sent
/// back through the returned channel.
fn http_server(status: &'static str) -> (String, mpsc::Receiver<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            let _ = conn.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok").as_bytes());
            if tx.send(head).is_err() {
                return;
            }
        }
    });
    (format!("127.0.0.1:{port}"), rx)
}

/// A port that refuses connections: bound, then closed.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn exec_ok_uses_the_module_cwd_and_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("marker"), "").expect("write");
    let env = BTreeMap::from([("PROBE_WANT".to_string(), "yes".to_string())]);
    assert_eq!(exec_in("test -f marker && test \"$PROBE_WANT\" = yes", QUICK, dir.path(), &env).await, Ok(()));
    assert!(exec_in("test -f marker", QUICK, Path::new("/"), &env).await.is_err());
}

#[tokio::test]
async fn exec_failure_reports_status_and_first_output_line() {
    let env = BTreeMap::new();
    let root = Path::new("/");
    assert_eq!(
        exec_in("echo to-stdout; echo '  db not ready  ' >&2; echo more >&2; exit 1", QUICK, root, &env).await,
        Err("exit status 1: db not ready".to_string())
    );
    // No stderr: stdout is used.
    assert_eq!(
        exec_in("echo only-stdout; exit 3", QUICK, root, &env).await,
        Err("exit status 3: only-stdout".to_string())
    );
    assert_eq!(exec_in("exit 2", QUICK, root, &env).await, Err("exit status 2".to_string()));
    // Trimmed to 200 characters.
    let err = exec_in("printf '%0300d\\n' 0 >&2; exit 1", QUICK, root, &env).await.unwrap_err();
    assert_eq!(err, format!("exit status 1: {}", "0".repeat(200)));
    assert_eq!(exec_in("kill -9 $$", QUICK, root, &env).await, Err("killed by signal 9".to_string()));
}

#[tokio::test]
async fn exec_in_missing_cwd_is_an_error() {
    let env = BTreeMap::new();
    let err = exec_in("true", QUICK, Path::new("/definitely/not/here"), &env).await.unwrap_err();
    assert!(err.contains("cwd does not exist"), "{err}");
}

#[tokio::test]
async fn exec_timeout_kills_the_probe_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = BTreeMap::new();
    // The pid file is written before the probe blocks; the timeout leaves ample time for that.
    let started = Instant::now();
    let result = exec_in("sleep 1000 & echo $! > bg.pid; wait", Duration::from_secs(1), dir.path(), &env).await;
    assert_eq!(result, Err("timed out after 1s".to_string()));
    assert!(started.elapsed() < Duration::from_secs(5));
    let bg: u32 = std::fs::read_to_string(dir.path().join("bg.pid")).expect("pid file").trim().parse().expect("pid");
    until("the probe's background sleep to die", || !alive(bg)).await;
}

#[tokio::test]
async fn exec_leaves_no_background_process_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = BTreeMap::new();
    assert_eq!(exec_in("sleep 1000 & echo $! > bg.pid", QUICK, dir.path(), &env).await, Ok(()));
    let bg: u32 = std::fs::read_to_string(dir.path().join("bg.pid")).expect("pid file").trim().parse().expect("pid");
    until("the probe's background sleep to die", || !alive(bg)).await;
}

#[tokio::test]
async fn http_2xx_is_healthy_and_the_request_is_well_formed() {
    let (addr, requests) = http_server("204 No Content");
    let url = format!("http://{addr}/healthz?full=1");
    assert_eq!(probe(Probe::Http(url), QUICK).await, Ok(()));
    let head = requests.recv_timeout(DEADLINE).expect("request");
    assert_eq!(head[0], "GET /healthz?full=1 HTTP/1.1");
    assert!(head.contains(&format!("Host: {addr}")), "{head:?}");
    assert!(head.contains(&"Connection: close".to_string()), "{head:?}");
}

#[tokio::test]
async fn http_error_status_is_reported() {
    let (addr, _requests) = http_server("503 Service Unavailable");
    let url = format!("http://{addr}/health");
    assert_eq!(probe(Probe::Http(url.clone()), QUICK).await, Err(format!("HTTP 503 from {url}")));
}

#[tokio::test]
async fn http_localhost_name_is_resolved() {
    let (addr, _requests) = http_server("200 OK");
    let port = addr.rsplit(':').next().expect("port");
    assert_eq!(probe(Probe::Http(format!("http://localhost:{port}")), QUICK).await, Ok(()));
}

#[tokio::test]
async fn http_connection_refused_is_reported() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    assert_eq!(probe(Probe::Http(url.clone()), QUICK).await, Err(format!("connection refused ({url})")));
}

#[tokio::test]
async fn http_server_that_never_answers_times_out() {
    // Accepts (the kernel completes the handshake from the backlog) but never reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let started = Instant::now();
    assert_eq!(probe(Probe::Http(url), Duration::from_millis(500)).await, Err("timed out after 500ms".to_string()));
    assert!(started.elapsed() >= Duration::from_millis(500));
    drop(listener);
}

#[tokio::test]
async fn http_garbage_response_is_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
        }
    });
    let err = probe(Probe::Http(format!("http://{addr}/")), QUICK).await.unwrap_err();
    assert!(err.starts_with(&format!("invalid HTTP response from http://{addr}/")), "{err}");
}

#[tokio::test]
async fn malformed_urls_and_addresses_are_errors_not_panics() {
    for url in ["https://127.0.0.1/", "127.0.0.1:80", "http://", "http://h:x/", "http://h:70000/", "", "http://[::1"] {
        let err = probe(Probe::Http(url.to_string()), QUICK).await.unwrap_err();
        assert!(err.starts_with("invalid health URL"), "{url}: {err}");
    }
    for addr in ["127.0.0.1", "127.0.0.1:", ":80", "host:port", ""] {
        let err = probe(Probe::Tcp(addr.to_string()), QUICK).await.unwrap_err();
        assert!(err.starts_with("invalid tcp health address"), "{addr}: {err}");
    }
}

#[tokio::test]
async fn tcp_accepting_port_is_healthy_and_closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    assert_eq!(probe(Probe::Tcp(format!("127.0.0.1:{port}")), QUICK).await, Ok(()));
    assert_eq!(probe(Probe::Tcp(format!("localhost:{port}")), QUICK).await, Ok(()));
    // The connection really reached the listener.
    listener.set_nonblocking(false).expect("blocking");
    let (conn, _) = listener.accept().expect("accepted");
    drop(conn);
    let closed = format!("127.0.0.1:{}", closed_port());
    assert_eq!(probe(Probe::Tcp(closed.clone()), QUICK).await, Err(format!("connection refused ({closed})")));
}
