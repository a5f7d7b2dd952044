//! A client of the daemon's socket API, for the CLI subcommands (and the daemon's own tests).
//!
//! [`Client::connect_or_start`] connects to `STEWARD_HOME/run/steward.sock`, starting `steward daemon` in
//! the background (detached with `setsid`, output to `STEWARD_HOME/logs/daemon.out`) when nothing answers,
//! and performs the LSP handshake. Then every custom method has a typed async method; `steward/event`
//! notifications are available from [`Client::events`] and log tails from [`Client::subscribe_logs`].
//!
//! The framing is the LSP base protocol, written by hand: `Content-Length` header, JSON body. One reader
//! task routes responses to their callers and notifications to their receivers; requests can be issued
//! concurrently from clones of the client.
//!
//! This file depends only on `steward_protocol`, tokio, serde and libc, so that tests can include it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use steward_protocol::{self as p, paths};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{broadcast, mpsc, oneshot};

/// Largest message the client accepts from the daemon.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// An error answered by the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// JSON-RPC error code (`-32602`, `steward_protocol::ERROR_*`, …).
    pub code: i64,
    /// Message for people.
    pub message: String,
    /// Details.
    pub data: Option<Value>,
}

impl RpcError {
    /// The stack-file errors of an [`p::ERROR_CONFIG_INVALID`] error.
    pub fn config_errors(&self) -> Option<p::ConfigErrorData> {
        if self.code != p::ERROR_CONFIG_INVALID {
            return None;
        }
        serde_json::from_value(self.data.clone()?).ok()
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answers on the socket (and none was to be started).
    #[error("no Steward daemon is running for {home} (start one with `steward daemon`)")]
    NotRunning {
        /// The home directory whose socket was tried.
        home: PathBuf,
    },
    /// The daemon could not be started, or did not answer in time.
    #[error("could not start the Steward daemon: {0}")]
    Start(String),
    /// A socket error.
    #[error("daemon connection: {0}")]
    Io(#[from] io::Error),
    /// The daemon answered with an error.
    #[error("{0}")]
    Rpc(RpcError),
    /// The connection closed before the answer came (the daemon stopped or dropped this client).
    #[error("the daemon closed the connection")]
    Closed,
    /// The daemon sent something this client does not understand.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
}

/// Result alias.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How to start a daemon when none is running.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The `steward` binary (default: this executable).
    pub program: Option<PathBuf>,
    /// How long to wait for it to answer.
    pub timeout: Duration,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions { program: None, timeout: Duration::from_secs(15) }
    }
}

type Pending = Mutex<HashMap<i64, oneshot::Sender<Result<Value, RpcError>>>>;

struct Inner {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicI64,
    events: broadcast::Sender<p::EventParams>,
    notifications: broadcast::Sender<(String, Value)>,
    tails: Mutex<Tails>,
    closed: AtomicBool,
}

#[derive(Default)]
struct Tails {
    open: HashMap<u64, mpsc::UnboundedSender<Vec<p::LogEntry>>>,
    /// Batches that arrived before the subscribe response was routed.
    early: HashMap<u64, Vec<Vec<p::LogEntry>>>,
}

/// A connection to the daemon. Cheap to clone; the connection closes when the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    home: PathBuf,
}

/// A live log tail: batches of new lines, oldest first.
pub struct LogSubscription {
    /// Subscription id.
    pub id: u64,
    /// Newest stored line id when the tail began; query `beforeId: cursor + 1` for the history before it.
    pub cursor: i64,
    rx: mpsc::UnboundedReceiver<Vec<p::LogEntry>>,
}

impl LogSubscription {
    /// The next batch; None once the connection is closed.
    pub async fn next(&mut self) -> Option<Vec<p::LogEntry>> {
        self.rx.recv().await
    }
}

/// `STEWARD_HOME`, else the platform default.
pub fn default_home() -> Result<PathBuf> {
    paths::home().ok_or_else(|| ClientError::Start("cannot find a home directory: set STEWARD_HOME or HOME".into()))
}

impl Client {
    /// Connects to a running daemon; [`ClientError::NotRunning`] when none answers.
    pub async fn connect(home: &Path) -> Result<Client> {
        let socket = paths::socket_path(home);
        let stream = match UnixStream::connect(&socket).await {
            Ok(s) => s,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) => {
                return Err(ClientError::NotRunning { home: home.to_path_buf() });
            }
            Err(e) => return Err(ClientError::Io(e)),
        };
        Client::handshake(stream, home).await
    }

    /// Connects, starting the daemon in the background first when none is running.
    pub async fn connect_or_start(home: &Path) -> Result<Client> {
        Client::connect_or_start_with(home, &StartOptions::default()).await
    }

    /// [`Client::connect_or_start`] with a specific binary and deadline.
    pub async fn connect_or_start_with(home: &Path, opts: &StartOptions) -> Result<Client> {
        match Client::connect(home).await {
            Err(ClientError::NotRunning { .. }) => {}
            other => return other,
        }
        let mut child = spawn_daemon(home, opts)?;
        let deadline = tokio::time::Instant::now() + opts.timeout;
        loop {
            match Client::connect(home).await {
                Ok(c) => {
                    // Reap the daemon when it ends, should this process live that long.
                    std::thread::spawn(move || child.wait());
                    return Ok(c);
                }
                Err(ClientError::NotRunning { .. }) => {}
                Err(e) => return Err(e),
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Lost a race with another starter (which then holds the lock), or failed: keep trying to
                // connect until the deadline, then say what the daemon printed.
                if !status.success() && tokio::time::Instant::now() + Duration::from_millis(500) >= deadline {
                    break;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let out = paths::daemon_out(home);
        let tail: String = std::fs::read_to_string(&out)
            .map(|t| t.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        Err(ClientError::Start(format!(
            "no answer on {} within {:?}{}",
            paths::socket_path(home).display(),
            opts.timeout,
            if tail.is_empty() { String::new() } else { format!("; {} says:\n{tail}", out.display()) }
        )))
    }

    async fn handshake(stream: UnixStream, home: &Path) -> Result<Client> {
        let (read, write) = stream.into_split();
        let inner = Arc::new(Inner {
            writer: tokio::sync::Mutex::new(write),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicI64::new(1),
            events: broadcast::channel(1024).0,
            notifications: broadcast::channel(1024).0,
            tails: Mutex::new(Tails::default()),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(read_loop(Arc::downgrade(&inner), read));
        let client = Client { inner, home: home.to_path_buf() };
        client
            .raw_request(
                "initialize",
                json!({
                    "processId": std::process::id(),
                    "clientInfo": {"name": "steward", "version": env!("CARGO_PKG_VERSION")},
                    "capabilities": {}
                }),
            )
            .await?;
        client.notify("initialized", json!({})).await?;
        Ok(client)
    }

    /// The home directory of the daemon this client talks to.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Every `steward/event` from now on (a slow receiver lags: it is told how many it missed).
    pub fn events(&self) -> broadcast::Receiver<p::EventParams> {
        self.inner.events.subscribe()
    }

    /// Every notification from now on, raw (method, params).
    pub fn notifications(&self) -> broadcast::Receiver<(String, Value)> {
        self.inner.notifications.subscribe()
    }

    /// A typed request.
    pub async fn request<R: p::Request>(&self, params: R::Params) -> Result<R::Result> {
        let params = serde_json::to_value(params).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let v = self.raw_request(R::METHOD, params).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Protocol(format!("{}: {e}", R::METHOD)))
    }

    /// Any request, untyped.
    pub async fn raw_request(&self, method: &str, params: Value) -> Result<Value> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, tx);
        if self.inner.closed.load(Ordering::Acquire) {
            self.inner.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            return Err(ClientError::Closed);
        }
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        if let Err(e) = self.send(&msg).await {
            self.inner.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            return Err(e);
        }
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ClientError::Rpc(e)),
            Err(_) => Err(ClientError::Closed),
        }
    }

    /// A notification to the daemon.
    pub async fn notify(&self, method: &str, params: Value) -> Result<()> {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params})).await
    }

    async fn send(&self, msg: &Value) -> Result<()> {
        let body = serde_json::to_vec(msg).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        let mut w = self.inner.writer.lock().await;
        w.write_all(&frame).await.map_err(|e| if is_disconnect(&e) { ClientError::Closed } else { ClientError::Io(e) })
    }

    /// Ends the session politely (`shutdown`, `exit`).
    pub async fn close(self) {
        let _ = self.raw_request("shutdown", Value::Null).await;
        let _ = self.notify("exit", Value::Null).await;
    }

    // ------------------------------------------------------------------------------------------------------
    // Typed methods

    /// `steward/status`.
    pub async fn status(&self) -> Result<p::StatusResult> {
        self.request::<p::Status>(p::StatusParams::default()).await
    }

    /// `steward/project/open`: `path` is a stack file or a directory with `steward.toml`; relative paths are
    /// resolved against this process's working directory. Stack-file errors come back as
    /// [`ClientError::Rpc`] with [`RpcError::config_errors`].
    pub async fn open(&self, path: &Path, profile: Option<&str>) -> Result<p::ProjectStatus> {
        let path = std::path::absolute(path)?;
        self.request::<p::ProjectOpen>(p::OpenParams {
            path: path.display().to_string(),
            profile: profile.map(str::to_string),
            env: None,
        })
        .await
    }

    /// `steward/project/open` with every field.
    pub async fn open_with(&self, params: p::OpenParams) -> Result<p::ProjectStatus> {
        self.request::<p::ProjectOpen>(params).await
    }

    /// `steward/project/up`: by default waits until every module is ready or one fails.
    pub async fn up(&self, params: p::UpParams) -> Result<p::ActionResult> {
        self.request::<p::ProjectUp>(params).await
    }

    /// `steward/project/down`, waiting until every module process is gone.
    pub async fn down(&self, project: &str) -> Result<p::ActionResult> {
        self.request::<p::ProjectDown>(p::DownParams { project: project.into(), wait: true, timeout_ms: None }).await
    }

    /// `steward/module/start`.
    pub async fn start_module(&self, project: &str, module: &str, wait: bool) -> Result<p::ActionResult> {
        self.request::<p::ModuleStart>(module_params(project, module, wait)).await
    }

    /// `steward/module/stop`.
    pub async fn stop_module(&self, project: &str, module: &str, wait: bool) -> Result<p::ActionResult> {
        self.request::<p::ModuleStop>(module_params(project, module, wait)).await
    }

    /// `steward/module/restart`.
    pub async fn restart_module(&self, project: &str, module: &str, wait: bool) -> Result<p::ActionResult> {
        self.request::<p::ModuleRestart>(module_params(project, module, wait)).await
    }

    /// `steward/profile/list`.
    pub async fn profiles(&self, project: &str) -> Result<p::ProfileListResult> {
        self.request::<p::ProfileList>(p::ProfileListParams { project: project.into() }).await
    }

    /// `steward/profile/use` (`None` = no profile: every module).
    pub async fn use_profile(&self, project: &str, profile: Option<&str>, wait: bool) -> Result<p::ActionResult> {
        self.request::<p::ProfileUse>(p::ProfileUseParams {
            project: project.into(),
            profile: profile.map(str::to_string),
            wait,
            timeout_ms: None,
        })
        .await
    }

    /// `steward/logs/query`.
    pub async fn logs(&self, params: p::LogQueryParams) -> Result<Vec<p::LogEntry>> {
        Ok(self.request::<p::LogsQuery>(params).await?.lines)
    }

    /// `steward/logs/subscribe`: batches arrive on the returned subscription.
    pub async fn subscribe_logs(&self, filter: p::LogFilter) -> Result<LogSubscription> {
        let r = self.request::<p::LogsSubscribe>(p::LogSubscribeParams { filter }).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut tails = self.inner.tails.lock().unwrap_or_else(|p| p.into_inner());
        for batch in tails.early.remove(&r.subscription).unwrap_or_default() {
            let _ = tx.send(batch);
        }
        tails.open.insert(r.subscription, tx);
        Ok(LogSubscription { id: r.subscription, cursor: r.cursor, rx })
    }

    /// `steward/logs/unsubscribe`.
    pub async fn unsubscribe_logs(&self, subscription: u64) -> Result<bool> {
        self.inner.tails.lock().unwrap_or_else(|p| p.into_inner()).open.remove(&subscription);
        Ok(self.request::<p::LogsUnsubscribe>(p::LogUnsubscribeParams { subscription }).await?.removed)
    }

    /// `steward/memory/search`.
    pub async fn search(&self, params: p::MemorySearchParams) -> Result<Vec<p::MemoryHit>> {
        Ok(self.request::<p::MemorySearch>(params).await?.hits)
    }

    /// `steward/memory/remember`: returns the note's id.
    pub async fn remember(&self, params: p::RememberParams) -> Result<i64> {
        Ok(self.request::<p::MemoryRemember>(params).await?.id)
    }

    /// `steward/events/query`.
    pub async fn query_events(&self, params: p::EventQueryParams) -> Result<Vec<p::EventRecord>> {
        Ok(self.request::<p::EventsQuery>(params).await?.events)
    }

    /// `steward/daemon/stop`, then waits (up to `timeout`) until the daemon has exited (its lock is free).
    pub async fn stop_daemon(&self, timeout: Duration) -> Result<u32> {
        let pid = match self.request::<p::DaemonStop>(p::DaemonStopParams {}).await {
            Ok(r) => r.pid,
            // The daemon closed the session before its reply got out: it is stopping, which is what was asked.
            // Its pid is in its lock file.
            Err(ClientError::Closed) => std::fs::read_to_string(paths::lock_path(&self.home))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0),
            Err(e) => return Err(e),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        while daemon_holds_lock(&self.home) {
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Start(format!("the daemon (pid {pid}) did not exit within {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(pid)
    }
}

/// True while a daemon holds the home's lock (its process has not exited; a zombie has released it).
fn daemon_holds_lock(home: &Path) -> bool {
    use std::os::unix::io::AsRawFd;
    let Ok(file) = std::fs::File::open(paths::lock_path(home)) else { return false };
    // SAFETY: flock on a descriptor we own; released when `file` is dropped.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

fn module_params(project: &str, module: &str, wait: bool) -> p::ModuleParams {
    p::ModuleParams { project: project.into(), module: module.into(), wait, timeout_ms: None }
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof)
}

fn spawn_daemon(home: &Path, opts: &StartOptions) -> Result<std::process::Child> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    let program = match &opts.program {
        Some(p) => p.clone(),
        None => {
            std::env::current_exe().map_err(|e| ClientError::Start(format!("cannot find the steward binary: {e}")))?
        }
    };
    let logs = paths::log_dir(home);
    paths::create_private_dir(&logs).map_err(|e| ClientError::Start(format!("{}: {e}", logs.display())))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(paths::daemon_out(home))
        .map_err(|e| ClientError::Start(format!("{}: {e}", paths::daemon_out(home).display())))?;
    let err = out.try_clone()?;
    let mut cmd = std::process::Command::new(&program);
    cmd.arg("daemon")
        .env(paths::HOME_ENV, home)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; it detaches the daemon from this terminal and process group, so
    // that Ctrl-C in the terminal that started it does not reach it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| ClientError::Start(format!("{}: {e}", program.display())))
}

async fn read_message(r: &mut BufReader<OwnedReadHalf>) -> io::Result<Option<Value>> {
    let mut length: Option<usize> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok();
            }
        }
    }
    let length = length.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "missing Content-Length"))?;
    if length > MAX_MESSAGE {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("message of {length} bytes")));
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn read_loop(inner: std::sync::Weak<Inner>, read: OwnedReadHalf) {
    let mut r = BufReader::with_capacity(64 * 1024, read);
    loop {
        let msg = match read_message(&mut r).await {
            Ok(Some(m)) => m,
            _ => break,
        };
        let Some(inner) = inner.upgrade() else { return };
        let method = msg.get("method").and_then(Value::as_str).map(str::to_string);
        let id = msg.get("id").cloned();
        match (method, id) {
            // A response.
            (None, Some(id)) => {
                let Some(id) = id.as_i64() else { continue };
                let Some(tx) = inner.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id) else { continue };
                let result = match msg.get("error") {
                    Some(e) => Err(RpcError {
                        code: e.get("code").and_then(Value::as_i64).unwrap_or(-32603),
                        message: e.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
                        data: e.get("data").cloned(),
                    }),
                    None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                };
                let _ = tx.send(result);
            }
            // A request from the daemon: this client implements none.
            (Some(_), Some(id)) if !id.is_null() => {
                let reply =
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}});
                let body = serde_json::to_vec(&reply).unwrap_or_default();
                let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
                frame.extend_from_slice(&body);
                let _ = inner.writer.lock().await.write_all(&frame).await;
            }
            (Some(method), _) => {
                let params = msg.get("params").cloned().unwrap_or(Value::Null);
                route_notification(&inner, &method, &params);
                let _ = inner.notifications.send((method, params));
            }
            (None, None) => {}
        }
    }
    if let Some(inner) = inner.upgrade() {
        inner.closed.store(true, Ordering::Release);
        inner.pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let mut tails = inner.tails.lock().unwrap_or_else(|p| p.into_inner());
        tails.open.clear();
        tails.early.clear();
    }
}

fn route_notification(inner: &Inner, method: &str, params: &Value) {
    if method == p::EVENT {
        if let Ok(ev) = serde_json::from_value::<p::EventParams>(params.clone()) {
            let _ = inner.events.send(ev);
        }
    } else if method == p::LOGS_APPEND {
        let Ok(batch) = serde_json::from_value::<p::LogAppendParams>(params.clone()) else { return };
        let mut tails = inner.tails.lock().unwrap_or_else(|p| p.into_inner());
        match tails.open.get(&batch.subscription) {
            Some(tx) => {
                let _ = tx.send(batch.lines);
            }
            None => {
                // The subscribe response may not have been routed yet; keep a little (batches of subscriptions
                // this client already dropped end up here too, hence the bounds).
                if tails.early.len() >= 16 {
                    tails.early.clear();
                }
                let early = tails.early.entry(batch.subscription).or_default();
                if early.len() < 64 {
                    early.push(batch.lines);
                }
            }
        }
    }
}
