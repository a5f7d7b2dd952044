//! The socket server: the accept loop (peer uid checked), one tower-lsp-server session per connection, and
//! the one table of custom methods.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt as _;
use serde::de::DeserializeOwned;
use serde_json::Value;
use steward_protocol as p;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tower_lsp_server::jsonrpc::{self, Request};
use tower_lsp_server::ls_types::{
    CodeLens, CodeLensParams, CompletionParams, CompletionResponse, DidChangeTextDocumentParams,
    DidCloseTextDocumentParams, DidOpenTextDocumentParams, DidSaveTextDocumentParams, Hover, HoverParams,
    InitializeParams, InitializeResult, InitializedParams, ServerInfo,
};
use tower_lsp_server::{LanguageServer, LspService, LspServiceBuilder, Server};

use super::error::ApiError;
use super::framing::{FastPath, FrameGuard, Outbox, OutboxWriter, frame_body, write_loop};
use super::handlers::{self, Ctx};
use super::language::{self, Language};
use super::metrics;
use super::ops;
use super::sessions::Session;
use super::state::DaemonState;

/// How long a session keeps serving once the daemon is stopping, so that replies being produced still go out.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// Connections served at once; more are refused (and logged).
const MAX_SESSIONS: usize = 256;
/// Requests of one session handled concurrently.
const CONCURRENCY: usize = 16;

/// Accepts connections until shutdown.
pub async fn accept_loop(state: Arc<DaemonState>, listener: UnixListener) {
    // SAFETY: getuid cannot fail and touches no memory.
    let me = unsafe { libc::getuid() };
    loop {
        let accepted = tokio::select! {
            _ = state.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let cred = match stream.peer_cred() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("refused a connection: cannot read the peer's credentials: {e}");
                continue;
            }
        };
        if cred.uid() != me {
            tracing::warn!(
                "refused a connection from uid {} (pid {:?}): only uid {me} may use this daemon",
                cred.uid(),
                cred.pid()
            );
            continue;
        }
        if state.sessions.len() >= MAX_SESSIONS {
            tracing::warn!("refused a connection from pid {:?}: {MAX_SESSIONS} sessions are open", cred.pid());
            continue;
        }
        tokio::spawn(run_session(state.clone(), stream, cred.pid()));
    }
}

async fn run_session(state: Arc<DaemonState>, stream: UnixStream, peer_pid: Option<i32>) {
    let id = state.sessions.next_id();
    let cancel = CancellationToken::new();
    let outbox = Arc::new(Outbox::new(state.limits, cancel.clone()));
    let session = Arc::new(Session {
        id,
        outbox: outbox.clone(),
        cancel: cancel.clone(),
        initialized: Default::default(),
        peer_pid,
        client: Default::default(),
        wants_progress_create: Default::default(),
    });
    tracing::debug!(session = id, "connected (pid {peer_pid:?})");
    let (read, write) = stream.into_split();
    let writer = tokio::spawn(write_loop(outbox.clone(), write, id));
    state.sessions.insert(session.clone());

    let (service, socket) = methods(LspService::build(|client| {
        let _ = session.client.set(client);
        Backend {
            ctx: Ctx { state: state.clone(), session: session.clone() },
            lang: Language::new(state.clone(), session.clone()),
        }
    }))
    .finish();
    let service = service.map_request(absent_params_are_null);
    let fast = Arc::new(Fast { ctx: Ctx { state: state.clone(), session: session.clone() } });
    let input = FrameGuard::new(read, outbox.clone(), state.limits, id).with_fast_path(fast);
    let server = Server::new(input, OutboxWriter::new(outbox.clone()), socket).concurrency_level(CONCURRENCY);
    let serve = server.serve(service);
    tokio::pin!(serve);
    tokio::select! {
        _ = &mut serve => {}
        _ = cancel.cancelled() => {
            if state.shutdown.is_cancelled() {
                // The daemon is stopping: replies already on their way (above all the `daemon/stop` that
                // caused this) still go out. Bounded: a handler that waits on something does not hold it up.
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut serve).await;
            }
            tracing::info!(session = id, "disconnected (stalled or shutting down)")
        }
    }
    state.tail.remove_session(id);
    outbox.close();
    // Let queued replies (e.g. the error that ended the session) reach the client, within the write timeout.
    let _ = tokio::time::timeout(state.limits.write_timeout + Duration::from_secs(1), writer).await;
    // Only now: the daemon's exit waits until no session is registered, so that queued replies are written.
    state.sessions.remove(id);
    tracing::debug!(session = id, "closed");
}

/// The fast path: `steward/status` — polled by every front end, and synchronous — is answered as soon as the
/// framing layer has read it, serialized straight from its typed result. The library would first turn the
/// result into a `serde_json::Value` tree and then serialize and drop that tree, which was three quarters of
/// the instructions of a status request (callgrind). Only for an initialized session (before that the
/// library answers -32002) and only on success: an error takes the normal way, so that every error is
/// shaped in one place. The method stays in the table ([`methods`]), which serves it otherwise.
struct Fast {
    ctx: Ctx,
}

impl FastPath for Fast {
    fn answer(&self, request: &Request) -> Option<bytes::Bytes> {
        if request.method() != p::STATUS || !self.ctx.session.initialized.load(Ordering::Acquire) {
            return None;
        }
        let id = request.id()?;
        let started = std::time::Instant::now();
        let params = decode::<p::StatusParams>(request.params().cloned().unwrap_or(Value::Null)).ok()?;
        let result = handlers::status_now(&self.ctx, params).ok()?;
        #[derive(serde::Serialize)]
        struct Reply<'a, T> {
            jsonrpc: &'static str,
            id: &'a jsonrpc::Id,
            result: T,
        }
        let body = serde_json::to_vec(&Reply { jsonrpc: "2.0", id, result }).ok()?;
        metrics::IPC.request(started.elapsed(), false);
        Some(frame_body(&body))
    }
}

/// The LSP side of a session: the lifecycle, and the language features for stack files (in [`language`]).
/// Steward's own methods are in [`methods`].
struct Backend {
    ctx: Ctx,
    lang: Language,
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> jsonrpc::Result<InitializeResult> {
        let progress = params.capabilities.window.and_then(|w| w.work_done_progress) == Some(true);
        self.ctx.session.wants_progress_create.store(progress, Ordering::Release);
        Ok(InitializeResult {
            capabilities: language::capabilities(),
            server_info: Some(ServerInfo { name: "steward".into(), version: Some(env!("CARGO_PKG_VERSION").into()) }),
            ..InitializeResult::default()
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        self.ctx.session.initialized.store(true, Ordering::Release);
    }

    async fn shutdown(&self) -> jsonrpc::Result<()> {
        // From here on the library answers requests with an error, so the fast path must step aside; and the
        // client wants no more notifications.
        self.ctx.session.initialized.store(false, Ordering::Release);
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        self.lang.did_open(params);
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        self.lang.did_change(params);
    }

    async fn did_save(&self, params: DidSaveTextDocumentParams) {
        self.lang.did_save(params);
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        self.lang.did_close(params);
    }

    async fn hover(&self, params: HoverParams) -> jsonrpc::Result<Option<Hover>> {
        self.lang.hover(params).await
    }

    async fn code_lens(&self, params: CodeLensParams) -> jsonrpc::Result<Option<Vec<CodeLens>>> {
        self.lang.code_lens(params).await
    }

    async fn completion(&self, params: CompletionParams) -> jsonrpc::Result<Option<CompletionResponse>> {
        self.lang.completion(params).await
    }
}

/// The one table: every custom method and its handler.
fn methods(b: LspServiceBuilder<Backend>) -> LspServiceBuilder<Backend> {
    let b = route::<p::Status, _, _>(b, handlers::status);
    let b = route::<p::ProjectOpen, _, _>(b, handlers::project_open);
    let b = route::<p::ProjectUp, _, _>(b, handlers::project_up);
    let b = route::<p::ProjectDown, _, _>(b, handlers::project_down);
    let b = route::<p::ModuleStart, _, _>(b, handlers::module_start);
    let b = route::<p::ModuleStop, _, _>(b, handlers::module_stop);
    let b = route::<p::ModuleRestart, _, _>(b, handlers::module_restart);
    let b = route::<p::ProfileList, _, _>(b, handlers::profile_list);
    let b = route::<p::ProfileUse, _, _>(b, handlers::profile_use);
    let b = route::<p::LogsQuery, _, _>(b, handlers::logs_query);
    let b = route::<p::LogsSubscribe, _, _>(b, handlers::logs_subscribe);
    let b = route::<p::LogsUnsubscribe, _, _>(b, handlers::logs_unsubscribe);
    let b = route::<p::MemorySearch, _, _>(b, handlers::memory_search);
    let b = route::<p::MemoryRemember, _, _>(b, handlers::memory_remember);
    let b = route::<p::MemoryNote, _, _>(b, handlers::memory_note);
    let b = route::<p::EventsQuery, _, _>(b, handlers::events_query);
    let b = route::<p::BackupCreate, _, _>(b, ops::backup_create);
    let b = route::<p::DbMaintain, _, _>(b, ops::db_maintain);
    let b = route::<p::DaemonHealth, _, _>(b, ops::health);
    let b = route::<p::Metrics, _, _>(b, handlers::metrics);
    let b = route::<p::Alerts, _, _>(b, handlers::alerts);
    route::<p::DaemonStop, _, _>(b, handlers::daemon_stop)
}

tokio::task_local! {
    /// Set while a request handler runs: its panics are answered with -32603 (see the panic hook).
    static GUARDED: ();
}

/// True when the current task is a request handler, whose panics are contained.
pub fn in_guarded_handler() -> bool {
    GUARDED.try_with(|_| ()).is_ok()
}

/// Spawns `work` as a guarded task: a panic in it (also inside `block_in_place`) ends only the task.
pub fn spawn_guarded<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(GUARDED.scope((), work))
}

/// Registers `handler` for `R`: params are decoded here (so that errors name the offending field), the
/// handler runs in its own task (so that a panic answers -32603 instead of killing the session), and its
/// error becomes a JSON-RPC error.
fn route<R, F, Fut>(b: LspServiceBuilder<Backend>, handler: F) -> LspServiceBuilder<Backend>
where
    R: p::Request,
    F: Fn(Ctx, R::Params) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<R::Result, ApiError>> + Send + 'static,
{
    b.custom_method(R::METHOD, move |backend: &Backend, params: Value| {
        let ctx = backend.ctx.clone();
        async move {
            let started = std::time::Instant::now();
            let params = match decode::<R::Params>(params) {
                Ok(p) => p,
                Err(e) => {
                    metrics::IPC.request(started.elapsed(), true);
                    return Err(e);
                }
            };
            // In place, not in a task of its own: a spawn and join per request cost two cross-thread wake-ups
            // on the `steward/status` round trip. The session already polls up to CONCURRENCY requests at once.
            let work = async move {
                if debug_panic_method() == Some(R::METHOD) {
                    panic!("STEWARD_DEBUG_PANIC_METHOD"); // test hook, see `debug_panic_method`
                }
                handler(ctx, params).await
            };
            let result = match AssertUnwindSafe(GUARDED.scope((), work)).catch_unwind().await {
                Ok(r) => r.map_err(jsonrpc::Error::from),
                Err(panic) => {
                    let e = panic_message(&*panic);
                    tracing::error!("handler of {} panicked: {e}", R::METHOD);
                    Err(ApiError::internal(format!("{} failed: {e}", R::METHOD)).into())
                }
            };
            metrics::IPC.request(started.elapsed(), result.is_err());
            result
        }
    })
}

/// Test hook: with `STEWARD_DEBUG_PANIC_METHOD=<method>` in the daemon's environment, every request for that
/// method panics inside its handler — a test proves that the session answers -32603 and lives on.
fn debug_panic_method() -> Option<&'static str> {
    static METHOD: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    METHOD.get_or_init(|| std::env::var("STEWARD_DEBUG_PANIC_METHOD").ok()).as_deref()
}

/// The text of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_string())
}

/// Decodes params, naming the field at fault: "invalid params: `filter.level`: unknown variant `loud` …".
fn decode<P: DeserializeOwned>(params: Value) -> jsonrpc::Result<P> {
    let params = if params.is_null() { Value::Object(Default::default()) } else { params };
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        jsonrpc::Error::invalid_params(if path == "." {
            format!("invalid params: {inner}")
        } else {
            format!("invalid params: `{path}`: {inner}")
        })
    })
}

/// Methods without required params accept absent params: the router requires a `params` member for methods
/// that take params, so an absent one becomes `null` (decoded as `{}`).
fn absent_params_are_null(req: Request) -> Request {
    if !req.method().starts_with("steward/") || req.params().is_some() {
        return req;
    }
    let (method, id, _) = req.into_parts();
    let b = Request::build(method).params(Value::Null);
    match id {
        Some(id) => b.id(id).finish(),
        None => b.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_names_the_field() {
        let e = decode::<p::ModuleParams>(serde_json::json!({"project": 5, "module": "x"})).unwrap_err();
        assert_eq!(e.code, jsonrpc::ErrorCode::InvalidParams);
        assert!(e.message.contains("`project`"), "{}", e.message);
        let e = decode::<p::LogSubscribeParams>(serde_json::json!({"filter": {"level": "loud"}})).unwrap_err();
        assert!(e.message.contains("`filter.level`"), "{}", e.message);
        let e = decode::<p::ModuleParams>(serde_json::json!({"module": "x"})).unwrap_err();
        assert!(e.message.contains("missing field `project`"), "{}", e.message);
        assert!(decode::<p::StatusParams>(Value::Null).is_ok());
    }
}
