//! One health check: exec, http or tcp, bounded by a timeout.
//!
//! The scheduling of checks (interval, retries, start period) is the core's business; this module only runs
//! one check and says, in words a person can act on, why it failed. It never panics on bad input: a
//! malformed URL or address is just a failed check with a message.
//!
//! Only plain `http://` is supported, with a minimal HTTP/1.1 GET that reads the status line and nothing
//! else: a health endpoint on localhost does not need TLS, redirects or bodies, and this keeps an HTTP client
//! out of the dependency tree.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::config::Probe;
use crate::process::{group_members, signal_group};

/// Where an exec probe runs: the module's working directory and environment (added to the daemon's own).
pub struct ProbeContext<'a> {
    /// Working directory of the probe command.
    pub cwd: &'a Path,
    /// Environment added to the daemon's own.
    pub env: &'a BTreeMap<String, String>,
}

/// Bytes of each output stream an exec probe keeps for its failure message; the rest is drained unread.
const PROBE_OUTPUT_KEEP: usize = 4096;

/// Longest failure detail taken from a probe's output, in characters.
const DETAIL_CHARS: usize = 200;

/// Longest HTTP status line we accept.
const MAX_STATUS_LINE: usize = 1024;

/// Runs one check. `Ok(())` = healthy; `Err` says why not, e.g. `exit status 1: connection refused`,
/// `HTTP 503 from http://localhost:8080/health`, `connection refused (localhost:5432)`,
/// `timed out after 1s`.
///
/// - `exec`: `/bin/sh -c CMD` in its own process group, with `ctx`'s cwd and env; exit 0 = healthy. The
///   group is killed when the check is over (a probe leaves no process behind), and on timeout.
/// - `http`: GET `http://host[:port][/path]`; any 2xx = healthy.
/// - `tcp`: connect to `host:port`; an accepted connection = healthy.
pub async fn check(probe: &Probe, timeout: Duration, ctx: &ProbeContext<'_>) -> Result<(), String> {
    match probe {
        Probe::Exec(cmd) => check_exec(cmd, timeout, ctx).await,
        Probe::Http(url) => {
            let target = parse_http_url(url)?;
            bounded(timeout, check_http(&target, url)).await
        }
        Probe::Tcp(addr) => {
            let (host, port) = parse_tcp_addr(addr)?;
            bounded(timeout, async { connect(&host, port, addr).await.map(drop) }).await
        }
    }
}

async fn bounded(timeout: Duration, fut: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(timeout, fut).await.unwrap_or_else(|_| Err(timed_out(timeout)))
}

fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}", fmt_duration(timeout))
}

/// `1s`, `250ms`, `1.5s`.
fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms >= 1000 && ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 && ms % 100 == 0 {
        format!("{}.{}s", ms / 1000, (ms % 1000) / 100)
    } else if ms > 0 {
        format!("{ms}ms")
    } else {
        format!("{d:?}")
    }
}

// ---------------------------------------------------------------------------------------------------------
// exec

async fn check_exec(cmd: &str, timeout: Duration, ctx: &ProbeContext<'_>) -> Result<(), String> {
    if !ctx.cwd.is_dir() {
        return Err(format!("cannot run probe: cwd does not exist: {}", ctx.cwd.display()));
    }
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(ctx.cwd)
        .envs(ctx.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // Backstop only: every path below kills the group and reaps the leader itself.
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| format!("cannot run probe: {err}"))?;
    let Some(pgid) = child.id() else { return Err("cannot run probe: no pid".to_string()) };
    let stdout = child.stdout.take().map(|p| tokio::spawn(keep_head(p)));
    let stderr = child.stderr.take().map(|p| tokio::spawn(keep_head(p)));
    // If the check times out, the readers are abandoned; abort them rather than leave them on a pipe that a
    // process outside the group might still hold.
    let aborts: Vec<_> = stdout.iter().chain(stderr.iter()).map(JoinHandle::abort_handle).collect();

    let finished = tokio::time::timeout(timeout, async {
        let status = child.wait().await;
        // A probe leaves nothing behind: background jobs it started die with it (and close the pipes).
        kill_leftovers(pgid);
        let out = join_output(stdout).await;
        let err = join_output(stderr).await;
        (status, out, err)
    })
    .await;

    match finished {
        Err(_) => {
            let _ = signal_group(pgid, libc::SIGKILL);
            aborts.iter().for_each(|a| a.abort());
            // Reap the leader so no zombie is left; SIGKILL makes this quick.
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            Err(timed_out(timeout))
        }
        Ok((Err(err), _, _)) => Err(format!("cannot wait for probe: {err}")),
        Ok((Ok(status), out, err)) => {
            use std::os::unix::process::ExitStatusExt;
            if status.success() {
                return Ok(());
            }
            let head = match (status.code(), status.signal()) {
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                (None, None) => "failed".to_string(),
            };
            match first_line(&err).or_else(|| first_line(&out)) {
                Some(detail) => Err(format!("{head}: {detail}")),
                None => Err(head),
            }
        }
    }
}

/// Kills what remains of the probe's group after its leader exited (nothing, usually).
fn kill_leftovers(pgid: u32) {
    if !group_members(pgid).is_empty() {
        let _ = signal_group(pgid, libc::SIGKILL);
    }
}

async fn join_output(task: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    match task {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    }
}

/// Reads a pipe to EOF, keeping only the first [`PROBE_OUTPUT_KEEP`] bytes.
async fn keep_head<R: AsyncRead + Unpin>(mut pipe: R) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = PROBE_OUTPUT_KEEP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// First non-blank line, trimmed, at most [`DETAIL_CHARS`] characters.
fn first_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().take(DETAIL_CHARS).collect())
}

// ---------------------------------------------------------------------------------------------------------
// http

/// A parsed `http://` URL.
#[derive(Debug, PartialEq, Eq)]
struct HttpTarget {
    /// Host without brackets (for connecting).
    host: String,
    port: u16,
    /// `Host` header value (brackets for IPv6, port when given).
    host_header: String,
    /// Path and query, starting with `/`.
    path: String,
}

fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    let bad = |why: &str| format!("invalid health URL `{url}`: {why}");
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad("expected http://host[:port][/path]"));
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err(bad("https is not supported; use http:// (health endpoints are local)"));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(bad("only http:// is supported"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(bad("credentials in the URL are not supported"));
    }
    let (host, port) = split_host_port(authority).map_err(|why| bad(&why))?;
    let port = port.unwrap_or(80);
    let tail = tail.split('#').next().unwrap_or("");
    let path = if tail.starts_with('/') { tail.to_string() } else { format!("/{tail}") };
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("the path contains spaces or control characters"));
    }
    Ok(HttpTarget { host_header: authority.to_string(), host, port, path })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → host (unbracketed) and optional port.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else { return Err("unclosed `[` in host".to_string()) };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected `{after}` after the host")),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err("IPv6 addresses must be in brackets, e.g. [::1]:8080".to_string());
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("missing host".to_string());
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '?' | '#' | '@')) {
        return Err(format!("invalid host `{host}`"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("invalid port `{p}`")),
            Ok(p) => Some(p),
        },
    };
    Ok((host.to_string(), port))
}

async fn check_http(target: &HttpTarget, url: &str) -> Result<(), String> {
    let mut stream = connect(&target.host, target.port, url).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: steward-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.host_header
    );
    stream.write_all(request.as_bytes()).await.map_err(|err| io_message(&err, url))?;
    let line = read_status_line(&mut stream).await.map_err(|err| io_message(&err, url))?;
    let status = parse_status_line(&line).ok_or_else(|| {
        let shown: String = String::from_utf8_lossy(&line).chars().take(80).collect();
        format!("invalid HTTP response from {url}: {shown:?}")
    })?;
    if (200..300).contains(&status) { Ok(()) } else { Err(format!("HTTP {status} from {url}")) }
}

/// Reads up to the end of the first line (or [`MAX_STATUS_LINE`] bytes).
async fn read_status_line(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            if line.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a response"));
            }
            return Ok(line);
        }
        line.extend_from_slice(&buf[..n]);
        if let Some(i) = line.iter().position(|&b| b == b'\n') {
            line.truncate(i);
            return Ok(line);
        }
        if line.len() >= MAX_STATUS_LINE {
            return Ok(line);
        }
    }
}

/// `HTTP/1.1 200 OK` → 200.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = text.split(' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..600).contains(c))
}

// ---------------------------------------------------------------------------------------------------------
// tcp

/// `host:port` (also `[v6]:port`, and an optional `tcp://` prefix).
fn parse_tcp_addr(addr: &str) -> Result<(String, u16), String> {
    let trimmed = addr.trim();
    let bare = trimmed.strip_prefix("tcp://").unwrap_or(trimmed);
    match split_host_port(bare) {
        Ok((host, Some(port))) => Ok((host, port)),
        Ok((_, None)) => Err(format!("invalid tcp health address `{addr}`: expected host:port")),
        Err(why) => Err(format!("invalid tcp health address `{addr}`: {why}")),
    }
}

/// Connects to `host:port`, trying every resolved address (so `localhost` works whether the server listens
/// on IPv4 or IPv6). `shown` names the target in messages.
async fn connect(host: &str, port: u16, shown: &str) -> Result<TcpStream, String> {
    TcpStream::connect((host, port)).await.map_err(|err| io_message(&err, shown))
}

fn io_message(err: &io::Error, shown: &str) -> String {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => format!("connection refused ({shown})"),
        io::ErrorKind::ConnectionReset => format!("connection reset ({shown})"),
        io::ErrorKind::UnexpectedEof => format!("{err} ({shown})"),
        _ => format!("{err} ({shown})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, port: u16, header: &str, path: &str) -> HttpTarget {
        HttpTarget { host: host.into(), port, host_header: header.into(), path: path.into() }
    }

    #[test]
    fn parses_http_urls() {
        assert_eq!(
            parse_http_url("http://localhost:8080/health").unwrap(),
            target("localhost", 8080, "localhost:8080", "/health")
        );
        assert_eq!(parse_http_url("http://example.test").unwrap(), target("example.test", 80, "example.test", "/"));
        assert_eq!(parse_http_url("HTTP://h?x=1#frag").unwrap(), target("h", 80, "h", "/?x=1"));
        assert_eq!(parse_http_url("http://[::1]:9/a/b?c").unwrap(), target("::1", 9, "[::1]:9", "/a/b?c"));
    }

    #[test]
    fn rejects_malformed_urls() {
        for (url, why) in [
            ("https://localhost/", "https is not supported"),
            ("ftp://x/", "only http://"),
            ("localhost:80", "expected http://"),
            ("http://", "missing host"),
            ("http://:80/", "missing host"),
            ("http://h:notaport/", "invalid port"),
            ("http://h:99999/", "invalid port"),
            ("http://h:0/", "invalid port"),
            ("http://user:pw@h/", "credentials"),
            ("http://::1/", "brackets"),
            ("http://[::1/", "unclosed"),
            ("http://h/a b", "spaces"),
            ("", "expected http://"),
        ] {
            let err = parse_http_url(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
            assert!(err.contains(&format!("`{url}`")), "{url}: {err}");
        }
    }

    #[test]
    fn parses_tcp_addresses() {
        assert_eq!(parse_tcp_addr("localhost:5432").unwrap(), ("localhost".to_string(), 5432));
        assert_eq!(parse_tcp_addr("tcp://127.0.0.1:1").unwrap(), ("127.0.0.1".to_string(), 1));
        assert_eq!(parse_tcp_addr("[::1]:6379").unwrap(), ("::1".to_string(), 6379));
        for bad in ["localhost", "localhost:", ":80", "h:x", "h:70000", "", "::1:80"] {
            assert!(parse_tcp_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/1.1 204"), Some(204));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 x"), None);
        assert_eq!(parse_status_line(b"\xff\xfe"), None);
    }

    #[test]
    fn details_and_durations() {
        assert_eq!(first_line(b"\n  \n  boom  \nsecond"), Some("boom".to_string()));
        assert_eq!(first_line(b" \n"), None);
        let long = "x".repeat(500);
        assert_eq!(first_line(long.as_bytes()).unwrap().chars().count(), DETAIL_CHARS);
        assert_eq!(fmt_duration(Duration::from_secs(1)), "1s");
        assert_eq!(fmt_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
    }
}
