//! The limits tower-lsp-server's framing does not have, enforced around it.
//!
//! - [`FrameGuard`] sits between the socket and the library's codec. It parses the LSP base protocol itself
//!   (headers, `Content-Length`) with bounds: a header block over [`Limits::max_header`] or a length over
//!   [`Limits::max_body`] gets a `-32700` error and ends the session; a message that is not complete within
//!   [`Limits::frame_timeout`] of its first byte ends the session. Complete messages are checked before the
//!   codec sees them: invalid JSON gets `-32700` and invalid JSON-RPC gets `-32600`, and the message is
//!   skipped — so, unlike the bare codec, one bad message does not end the session.
//! - [`Outbox`] is the session's bounded outgoing queue. Everything the session sends — responses (through
//!   [`OutboxWriter`], the library's output), broadcast notifications and the guard's error replies — goes
//!   through it, and one writer task ([`write_loop`]) drains it into the socket. When a client stops reading,
//!   the queue fills and the session is cancelled instead of growing the daemon.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::{Request, Response};

/// Per-session limits. Defaults are the protocol's; a few can be lowered through the environment for tests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest header block (bytes up to and including the blank line).
    pub max_header: usize,
    /// Largest `Content-Length`.
    pub max_body: usize,
    /// A message must be complete this long after its first byte arrived.
    pub frame_timeout: Duration,
    /// Messages the outgoing queue holds before the session is considered stalled.
    pub queue_messages: usize,
    /// Bytes the outgoing queue holds before the session is considered stalled.
    pub queue_bytes: usize,
    /// A write to the socket that makes no progress for this long ends the session.
    pub write_timeout: Duration,
}

impl Limits {
    /// The defaults, with `STEWARD_SESSION_IDLE_TIMEOUT_MS` (frame and write timeouts) and
    /// `STEWARD_SESSION_QUEUE_LIMIT` (queued messages) taken from the environment when set.
    pub fn from_env() -> Limits {
        let num = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok()).filter(|v| *v > 0);
        let mut l = Limits::default();
        if let Some(ms) = num("STEWARD_SESSION_IDLE_TIMEOUT_MS") {
            l.frame_timeout = Duration::from_millis(ms);
            l.write_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = num("STEWARD_SESSION_QUEUE_LIMIT") {
            l.queue_messages = n as usize;
        }
        l
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header: steward_protocol::MAX_HEADER_BYTES as usize,
            max_body: steward_protocol::MAX_MESSAGE_BYTES as usize,
            frame_timeout: Duration::from_secs(30),
            queue_messages: 1024,
            queue_bytes: 64 * 1024 * 1024,
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Frames a JSON value as one LSP base-protocol message.
pub fn frame(value: &Value) -> Bytes {
    frame_body(&serde_json::to_vec(value).unwrap_or_default())
}

/// Frames a serialized message body.
pub fn frame_body(body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + 32);
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out.freeze()
}

/// A JSON-RPC error response, framed.
pub fn error_frame(id: Value, code: i64, message: &str) -> Bytes {
    frame(&json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id}))
}

// -----------------------------------------------------------------------------------------------------------
// Outgoing

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The session is closing.
    Closed,
    /// The queue was full: the client is not reading. The session has been cancelled.
    Stalled,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Bytes>,
    bytes: usize,
    closed: bool,
}

/// A session's bounded outgoing queue.
pub struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
    limits: Limits,
    cancel: CancellationToken,
}

impl Outbox {
    /// A queue that cancels `cancel` when it overflows.
    pub fn new(limits: Limits, cancel: CancellationToken) -> Outbox {
        Outbox { queue: Mutex::new(Queue::default()), ready: Notify::new(), limits, cancel }
    }

    /// Queues one or more whole frames. On overflow the session is cancelled (a stalled client is
    /// disconnected rather than buffered without bound).
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.closed {
            return Err(PushError::Closed);
        }
        if q.frames.len() >= self.limits.queue_messages || q.bytes + frame.len() > self.limits.queue_bytes {
            q.closed = true;
            q.frames.clear();
            q.bytes = 0;
            drop(q);
            self.cancel.cancel();
            self.ready.notify_one();
            return Err(PushError::Stalled);
        }
        q.bytes += frame.len();
        super::metrics::IPC.sent(frame.len());
        q.frames.push_back(frame);
        drop(q);
        self.ready.notify_one();
        Ok(())
    }

    /// Fraction of the queue in use (0.0 – 1.0), for producers of low-value messages that would rather wait.
    pub fn load(&self) -> f64 {
        let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let by_count = q.frames.len() as f64 / self.limits.queue_messages.max(1) as f64;
        let by_bytes = q.bytes as f64 / self.limits.queue_bytes.max(1) as f64;
        by_count.max(by_bytes)
    }

    /// No more frames are accepted; the writer sends what is queued, then ends.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.ready.notify_one();
    }

    /// Everything queued, or None once closed and empty.
    async fn next_batch(&self) -> Option<Vec<Bytes>> {
        loop {
            {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if !q.frames.is_empty() {
                    q.bytes = 0;
                    return Some(q.frames.drain(..).collect());
                }
                if q.closed {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }
}

/// Drains the outbox into the socket until it is closed and empty, or the session is cancelled, or a write
/// makes no progress for `write_timeout`.
pub async fn write_loop<W: AsyncWrite + Unpin>(outbox: Arc<Outbox>, w: W, session: u64) {
    let mut w = tokio::io::BufWriter::with_capacity(64 * 1024, w);
    let cancel = outbox.cancel.clone();
    let write_timeout = outbox.limits.write_timeout;
    loop {
        let batch = tokio::select! {
            _ = cancel.cancelled() => return,
            b = outbox.next_batch() => b,
        };
        let Some(batch) = batch else { break };
        let write = async {
            for frame in &batch {
                w.write_all(frame).await?;
            }
            w.flush().await
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio::time::timeout(write_timeout, write) => match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(session, "write failed: {e}");
                    cancel.cancel();
                    return;
                }
                Err(_) => {
                    tracing::warn!(session, "client stopped reading for {write_timeout:?}; disconnecting it");
                    cancel.cancel();
                    return;
                }
            }
        }
    }
    let _ = w.shutdown().await;
}

/// The library's output side: every write is queued whole in the [`Outbox`]. The library's encoder only
/// ever writes whole frames and this never accepts part of a buffer, so frames from it and from
/// broadcasts never interleave.
pub struct OutboxWriter {
    outbox: Arc<Outbox>,
}

impl OutboxWriter {
    /// A writer into `outbox`.
    pub fn new(outbox: Arc<Outbox>) -> OutboxWriter {
        OutboxWriter { outbox }
    }
}

impl AsyncWrite for OutboxWriter {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.outbox.push(Bytes::copy_from_slice(buf)) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(e) => Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, format!("session closed: {e:?}")))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

// -----------------------------------------------------------------------------------------------------------
// Incoming

enum Step {
    /// A complete, valid message, re-framed for the codec.
    Frame(Bytes),
    /// A complete message was answered with an error and skipped.
    Skipped,
    /// The stream cannot go on (the error has been queued).
    Fatal(String),
    NeedMore,
}

/// Bounds and checks the incoming byte stream of one session (see the module docs).
pub struct FrameGuard<R> {
    inner: R,
    buf: BytesMut,
    out: Bytes,
    scratch: Box<[u8]>,
    limits: Limits,
    deadline: Option<Pin<Box<Sleep>>>,
    outbox: Arc<Outbox>,
    eof: bool,
    session: u64,
    fast: Option<Arc<dyn FastPath>>,
}

/// Requests answered as they are read, before the library sees them (see `server::Fast`): `answer` gives the
/// whole framed reply, or None to let the request take the normal way.
pub trait FastPath: Send + Sync {
    /// The framed reply to `request`, if this path answers it.
    fn answer(&self, request: &Request) -> Option<Bytes>;
}

impl<R: AsyncRead + Unpin> FrameGuard<R> {
    /// Guards `inner`; error replies go to `outbox`.
    pub fn new(inner: R, outbox: Arc<Outbox>, limits: Limits, session: u64) -> FrameGuard<R> {
        FrameGuard {
            inner,
            buf: BytesMut::new(),
            out: Bytes::new(),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            limits,
            deadline: None,
            outbox,
            eof: false,
            session,
            fast: None,
        }
    }

    /// Answers the requests `fast` takes on the spot.
    pub fn with_fast_path(mut self, fast: Arc<dyn FastPath>) -> FrameGuard<R> {
        self.fast = Some(fast);
        self
    }

    fn reply_error(&self, id: Value, code: i64, message: &str) {
        let _ = self.outbox.push(error_frame(id, code, message));
    }

    fn fatal(&mut self, message: String) {
        tracing::warn!(session = self.session, "closing session: {message}");
        self.reply_error(Value::Null, -32700, &message);
        self.eof = true;
        self.buf.clear();
    }

    fn try_frame(&mut self) -> Step {
        if self.buf.is_empty() {
            return Step::NeedMore;
        }
        let window = &self.buf[..self.buf.len().min(self.limits.max_header)];
        let Some(pos) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.buf.len() >= self.limits.max_header {
                return Step::Fatal(format!("Parse error: header longer than {} bytes", self.limits.max_header));
            }
            return Step::NeedMore;
        };
        let header_len = pos + 4;
        let Ok(header) = std::str::from_utf8(&self.buf[..pos]) else {
            return Step::Fatal("Parse error: header is not valid UTF-8".into());
        };
        let mut length = None;
        for line in header.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                return Step::Fatal(format!("Parse error: malformed header line {line:?}"));
            };
            if name.trim().eq_ignore_ascii_case("content-length") {
                match value.trim().parse::<u64>() {
                    Ok(n) => length = Some(n),
                    Err(_) => return Step::Fatal(format!("Parse error: invalid Content-Length {:?}", value.trim())),
                }
            }
        }
        let Some(length) = length else {
            return Step::Fatal("Parse error: missing Content-Length header".into());
        };
        if length > self.limits.max_body as u64 {
            return Step::Fatal(format!(
                "Parse error: Content-Length {length} exceeds the limit of {} bytes",
                self.limits.max_body
            ));
        }
        let total = header_len + length as usize;
        if self.buf.len() < total {
            return Step::NeedMore;
        }
        let mut message = self.buf.split_to(total);
        let body = message.split_off(header_len).freeze();
        super::metrics::IPC.received(total);
        match check_message(&body) {
            Ok(Some(request)) if let Some(reply) = self.fast.as_ref().and_then(|f| f.answer(&request)) => {
                if let Err(e) = self.outbox.push(reply) {
                    tracing::debug!(session = self.session, "reply not delivered: {e:?}");
                }
                Step::Skipped
            }
            Ok(_) => Step::Frame(frame_body(&body)),
            Err((id, code, msg)) => {
                super::metrics::IPC.rejected();
                tracing::debug!(session = self.session, "rejected a message: {msg}");
                self.reply_error(id, code, &msg);
                Step::Skipped
            }
        }
    }
}

/// Accepts exactly what the library's codec accepts (a JSON-RPC request/notification or a response), so
/// that the codec never fails and ends the session; a request comes back parsed.
fn check_message(body: &[u8]) -> Result<Option<Request>, (Value, i64, String)> {
    let e = match serde_json::from_slice::<Request>(body) {
        Ok(r) => return Ok(Some(r)),
        Err(e) => e,
    };
    if e.is_syntax() || e.is_eof() {
        return Err((Value::Null, -32700, format!("Parse error: {e}")));
    }
    if serde_json::from_slice::<Response>(body).is_ok() {
        return Ok(None);
    }
    let id = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .filter(|id| id.is_string() || id.is_i64())
        .unwrap_or(Value::Null);
    Err((id, -32600, format!("Invalid request: {e}")))
}

impl<R: AsyncRead + Unpin> AsyncRead for FrameGuard<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, dst: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.out.is_empty() {
                let n = dst.remaining().min(this.out.len());
                dst.put_slice(&this.out.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match this.try_frame() {
                Step::Frame(f) => {
                    this.out = f;
                    this.deadline = None;
                    continue;
                }
                Step::Skipped => {
                    this.deadline = None;
                    continue;
                }
                Step::Fatal(msg) => {
                    this.fatal(msg);
                    continue;
                }
                Step::NeedMore => {}
            }
            let mut rb = ReadBuf::new(&mut this.scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    if !this.buf.is_empty() {
                        tracing::debug!(session = this.session, "connection closed in the middle of a message");
                    }
                    this.eof = true;
                }
                Poll::Ready(Ok(())) => {
                    let filled = rb.filled().len();
                    this.buf.extend_from_slice(&this.scratch[..filled]);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Nothing more to read now: a started message must still complete in time.
                    if this.buf.is_empty() {
                        return Poll::Pending;
                    }
                    let timeout = this.limits.frame_timeout;
                    let deadline = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if deadline.as_mut().poll(cx).is_ready() {
                        this.fatal(format!("Parse error: message not completed within {} ms", timeout.as_millis()));
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
