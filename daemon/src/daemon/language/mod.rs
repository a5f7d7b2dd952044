//! Language features for stack files, served in every session next to Steward's own methods: text
//! synchronisation, diagnostics, hover, code lenses and completion for `steward.toml`, the files under a
//! `modules.d/` next to one, and the files a stack `extends`.
//!
//! Each session keeps the text of the documents its client has open (bounded: [`MAX_DOCUMENTS`],
//! [`MAX_DOCUMENT_BYTES`], [`MAX_SESSION_BYTES`]). A change is validated [`DEBOUNCE`] after the typing stops,
//! by the same loader `steward check` uses (`config::load_report`), with every open document as an overlay —
//! so the unsaved text is what is checked, and the diagnostics of a stack go to the file each is in
//! (`extends` bases, `modules.d/` files), including files that are not open. Validation runs in its own
//! task; a newer change of the same stack makes an older result stale, and stale results are dropped.
//! Diagnostics are queued in the session's `Outbox`, like every other byte the session sends.
//!
//! Hover, code lenses and completion read the open text through `config::editor` (a tolerant scan: they
//! work while the text is not valid TOML) and the live state of the stack when it is an open project.
//!
//! A stack file's *root* (the `steward.toml` whose load reads it) is found from the file's name and place
//! (`steward.toml`, `modules.d/`), from what earlier loads read, from the open projects, or by loading a
//! `steward.toml` in the same directory or up to two levels above and checking whether it reads the file.

mod diagnostics;
mod features;
pub mod position;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use steward_framework::config::{self, LoadOptions};
use tokio_util::sync::{CancellationToken, DropGuard};
use tower_lsp_server::jsonrpc;
use tower_lsp_server::ls_types::{
    CodeLens, CodeLensOptions, CodeLensParams, CompletionOptions, CompletionParams, CompletionResponse,
    Diagnostic as LspDiagnostic, DiagnosticSeverity, DidChangeTextDocumentParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, DidSaveTextDocumentParams, Hover, HoverParams, HoverProviderCapability,
    PositionEncodingKind, PublishDiagnosticsParams, ServerCapabilities, TextDocumentSyncCapability,
    TextDocumentSyncKind, TextDocumentSyncOptions, TextDocumentSyncSaveOptions, Uri,
};

use super::error::ApiError;
use super::server::spawn_guarded;
use super::sessions::Session;
use super::state::{DaemonState, Project};
use position::LineIndex;

/// Quiet time after a change before the document is validated.
pub const DEBOUNCE: Duration = Duration::from_millis(150);
/// Documents one session may have open.
pub const MAX_DOCUMENTS: usize = 256;
/// Largest document kept (a stack file is a few KiB).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// All open documents of one session together.
pub const MAX_SESSION_BYTES: usize = 16 * 1024 * 1024;

/// The LSP notification carrying diagnostics.
const PUBLISH_DIAGNOSTICS: &str = "textDocument/publishDiagnostics";

/// The capabilities this module serves, for `initialize`.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::UTF16),
        text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
            open_close: Some(true),
            change: Some(TextDocumentSyncKind::FULL),
            save: Some(TextDocumentSyncSaveOptions::Supported(true)),
            ..TextDocumentSyncOptions::default()
        })),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        code_lens_provider: Some(CodeLensOptions { resolve_provider: Some(false) }),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(["\"", ".", "[", ","].iter().map(|s| s.to_string()).collect()),
            ..CompletionOptions::default()
        }),
        ..ServerCapabilities::default()
    }
}

/// One session's language features. Dropping it (the session ended) stops its pending validations.
pub struct Language {
    inner: Arc<Inner>,
    _stop: DropGuard,
}

struct Inner {
    state: Arc<DaemonState>,
    session: Arc<Session>,
    cancel: CancellationToken,
    docs: Mutex<Docs>,
}

#[derive(Default)]
struct Docs {
    /// Open documents by normalised path.
    open: HashMap<PathBuf, Doc>,
    /// Their total size.
    bytes: usize,
    /// Stacks validated in this session, by root.
    roots: HashMap<PathBuf, Root>,
}

struct Doc {
    uri: Uri,
    version: i32,
    text: Arc<String>,
    /// Bumped by every change: a debounced validation runs only if no change came after it was scheduled.
    generation: u64,
    /// The stack file whose load reads this one, once known.
    root: Option<PathBuf>,
}

#[derive(Default)]
struct Root {
    /// Bumped by every validation: only the newest one publishes.
    generation: u64,
    /// Files the last load read.
    files: Vec<PathBuf>,
    /// Files that have diagnostics in the client now, with the URI they were published under.
    published: HashMap<PathBuf, Uri>,
}

impl Language {
    /// Language features for a new session.
    pub fn new(state: Arc<DaemonState>, session: Arc<Session>) -> Language {
        let cancel = session.cancel.child_token();
        let stop = cancel.clone().drop_guard();
        Language { inner: Arc::new(Inner { state, session, cancel, docs: Mutex::default() }), _stop: stop }
    }

    /// `textDocument/didOpen`.
    pub fn did_open(&self, p: DidOpenTextDocumentParams) {
        let doc = p.text_document;
        let Some(path) = uri_path(&doc.uri) else { return };
        let size = doc.text.len();
        {
            let mut docs = self.inner.lock();
            let replaced = docs.open.get(&path).map_or(0, |d| d.text.len());
            let others = docs.open.len() - usize::from(docs.open.contains_key(&path));
            if let Some(problem) = too_big(size, docs.bytes - replaced, others) {
                drop(docs);
                self.inner.refuse(&path, doc.uri, &problem);
                return;
            }
            docs.bytes = docs.bytes - replaced + size;
            let previous = docs.open.insert(
                path.clone(),
                Doc { uri: doc.uri, version: doc.version, text: Arc::new(doc.text), generation: 0, root: None },
            );
            if let Some(previous) = previous {
                // Opened twice: keep what was learnt about it.
                if let Some(d) = docs.open.get_mut(&path) {
                    d.root = previous.root;
                    d.generation = previous.generation;
                }
            }
        }
        self.inner.schedule(path, Duration::ZERO);
    }

    /// `textDocument/didChange` (full or incremental changes; changes older than the document are ignored).
    pub fn did_change(&self, p: DidChangeTextDocumentParams) {
        let Some(path) = uri_path(&p.text_document.uri) else { return };
        let refused = {
            let mut docs = self.inner.lock();
            let (bytes, count) = (docs.bytes, docs.open.len());
            let Some(doc) = docs.open.get_mut(&path) else { return };
            if p.text_document.version <= doc.version {
                tracing::debug!(session = self.inner.session.id, "ignored an out-of-date change of {}", path.display());
                return;
            }
            let mut text = doc.text.as_ref().clone();
            for change in p.content_changes {
                match change.range {
                    None => text = change.text,
                    Some(range) => {
                        let r = LineIndex::new(&text).byte_range(range);
                        text.replace_range(r, &change.text);
                    }
                }
            }
            let old = doc.text.len();
            match too_big(text.len(), bytes - old, count - 1) {
                Some(problem) => {
                    let uri = doc.uri.clone();
                    docs.open.remove(&path);
                    docs.bytes -= old;
                    Some((uri, problem))
                }
                None => {
                    doc.version = p.text_document.version;
                    let new = text.len();
                    doc.text = Arc::new(text);
                    docs.bytes = docs.bytes - old + new;
                    None
                }
            }
        };
        match refused {
            Some((uri, problem)) => self.inner.refuse(&path, uri, &problem),
            None => self.inner.schedule(path, DEBOUNCE),
        }
    }

    /// `textDocument/didSave`: validated again at once (files it pulls in may have changed on disk too).
    pub fn did_save(&self, p: DidSaveTextDocumentParams) {
        if let Some(path) = uri_path(&p.text_document.uri) {
            self.inner.schedule(path, Duration::ZERO);
        }
    }

    /// `textDocument/didClose`: the document's text is forgotten. When no other open document belongs to its
    /// stack, the stack's diagnostics are cleared; otherwise the stack is validated again (with the file as it
    /// is on disk).
    pub fn did_close(&self, p: DidCloseTextDocumentParams) {
        let Some(path) = uri_path(&p.text_document.uri) else { return };
        let inner = self.inner.clone();
        let mut docs = inner.lock();
        let Some(doc) = docs.open.remove(&path) else {
            // Not kept (e.g. refused as too large): clear the warning it got.
            drop(docs);
            inner.publish(p.text_document.uri, None, Vec::new());
            return;
        };
        docs.bytes -= doc.text.len();
        let root = doc.root.clone();
        let still_open = root.as_ref().is_some_and(|r| docs.open.values().any(|d| d.root.as_ref() == Some(r)));
        match root {
            Some(root) if still_open => {
                drop(docs);
                let inner = self.inner.clone();
                spawn_guarded(async move { inner.validate(root).await });
            }
            Some(root) => {
                let cleared = docs.roots.remove(&root).map(|r| r.published).unwrap_or_default();
                for (_, uri) in cleared.into_iter().filter(|(p, _)| *p != path) {
                    inner.publish(uri, None, Vec::new());
                }
                inner.publish(doc.uri, None, Vec::new());
            }
            None => inner.publish(doc.uri, None, Vec::new()),
        }
    }

    /// `textDocument/hover`.
    pub async fn hover(&self, p: HoverParams) -> jsonrpc::Result<Option<Hover>> {
        let inner = self.inner.clone();
        guarded("textDocument/hover", async move { features::hover(&inner, p) }).await
    }

    /// `textDocument/codeLens`.
    pub async fn code_lens(&self, p: CodeLensParams) -> jsonrpc::Result<Option<Vec<CodeLens>>> {
        let inner = self.inner.clone();
        guarded("textDocument/codeLens", async move { features::code_lens(&inner, p) }).await
    }

    /// `textDocument/completion`.
    pub async fn completion(&self, p: CompletionParams) -> jsonrpc::Result<Option<CompletionResponse>> {
        let inner = self.inner.clone();
        guarded("textDocument/completion", async move { features::completion(&inner, p) }).await
    }
}

/// Runs a request's work in a guarded task (a panic answers -32603 instead of ending the daemon).
async fn guarded<T: Send + 'static>(
    method: &'static str,
    work: impl Future<Output = T> + Send + 'static,
) -> jsonrpc::Result<T> {
    spawn_guarded(work).await.map_err(|e| {
        tracing::error!("{method} failed: {e}");
        ApiError::internal(format!("{method} failed: {e}")).into()
    })
}

/// Why a document of `size` bytes cannot be kept, given what the session already keeps.
fn too_big(size: usize, others_bytes: usize, others_count: usize) -> Option<String> {
    if size > MAX_DOCUMENT_BYTES {
        Some(format!(
            "this file is too large to be checked as you type ({size} bytes; the limit is {MAX_DOCUMENT_BYTES}); \
             `steward check` checks it"
        ))
    } else if others_count >= MAX_DOCUMENTS || others_bytes + size > MAX_SESSION_BYTES {
        Some(format!(
            "too many stack files are open to check this one as you type (limits: {MAX_DOCUMENTS} files, \
             {MAX_SESSION_BYTES} bytes); close some, or run `steward check`"
        ))
    } else {
        None
    }
}

/// The normalised path of a `file:` URI.
fn uri_path(uri: &Uri) -> Option<PathBuf> {
    if !uri.scheme().as_str().eq_ignore_ascii_case("file") {
        return None;
    }
    Some(normalize(&uri.to_file_path()?))
}

/// Absolute, lexically normalised, and with symlinks resolved where the file (or its directory) exists — so
/// that a file reached by two paths is one file.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut lexical = PathBuf::new();
    for c in abs.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    if let Ok(p) = lexical.canonicalize() {
        return p;
    }
    match (lexical.parent().and_then(|d| d.canonicalize().ok()), lexical.file_name()) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => lexical,
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Docs> {
        self.docs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, uri: Uri, version: Option<i32>, diagnostics: Vec<LspDiagnostic>) {
        self.session.notify(PUBLISH_DIAGNOSTICS, &PublishDiagnosticsParams { uri, diagnostics, version });
    }

    /// Tells the client why a document is not checked (one warning at its start).
    fn refuse(&self, path: &Path, uri: Uri, problem: &str) {
        tracing::warn!(session = self.session.id, "not checking {}: {problem}", path.display());
        let d = LspDiagnostic {
            severity: Some(DiagnosticSeverity::WARNING),
            source: Some(diagnostics::SOURCE.to_string()),
            message: problem.to_string(),
            ..LspDiagnostic::default()
        };
        self.publish(uri, None, vec![d]);
    }

    /// The open document's text, if open.
    fn text(&self, path: &Path) -> Option<Arc<String>> {
        self.lock().open.get(path).map(|d| d.text.clone())
    }

    /// The open document's text, or the file's (empty if it cannot be read).
    fn text_or_disk(&self, path: &Path) -> Arc<String> {
        self.text(path).unwrap_or_else(|| Arc::new(std::fs::read_to_string(path).unwrap_or_default()))
    }

    /// Every open document, as loader overlays.
    fn overlays(&self) -> Vec<(PathBuf, String)> {
        self.lock().open.iter().map(|(p, d)| (p.clone(), d.text.as_ref().clone())).collect()
    }

    /// The open project whose stack file is `root`.
    fn project(&self, root: &Path) -> Option<Arc<Project>> {
        self.state.projects().into_iter().find(|p| p.path == root)
    }

    /// Load options for validating `root`: an open project's (its environment and active profile), else the
    /// daemon's environment and the stack's default profile — what `steward check` would use.
    fn load_options(&self, root: &Path) -> LoadOptions {
        let mut opts = match self.project(root) {
            Some(p) => {
                let mut o = p.load.clone();
                o.profile = p.profile();
                o
            }
            None => LoadOptions::from_process_env(None),
        };
        opts.overlays = self.overlays();
        opts
    }

    /// Validates `path`'s stack after `delay`, unless the document changes again meanwhile.
    fn schedule(self: &Arc<Self>, path: PathBuf, delay: Duration) {
        let generation = {
            let mut docs = self.lock();
            let Some(doc) = docs.open.get_mut(&path) else { return };
            doc.generation += 1;
            doc.generation
        };
        let inner = self.clone();
        spawn_guarded(async move {
            if !delay.is_zero() {
                tokio::select! {
                    _ = inner.cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            let current = inner.lock().open.get(&path).map(|d| d.generation);
            if current != Some(generation) || inner.cancel.is_cancelled() {
                return;
            }
            let root = tokio::task::block_in_place(|| inner.root_of(&path));
            match root {
                Some(root) => inner.validate(root).await,
                None => tracing::debug!(session = inner.session.id, "{} is not part of a stack", path.display()),
            }
        });
    }

    /// The stack file whose load reads `path` (see the module docs); remembered in the document.
    fn root_of(&self, path: &Path) -> Option<PathBuf> {
        let (cached, known) = {
            let docs = self.lock();
            let cached = docs.open.get(path).and_then(|d| d.root.clone());
            let known =
                docs.roots.iter().find(|(_, r)| r.files.iter().any(|f| f == path)).map(|(root, _)| root.clone());
            (cached, known)
        };
        let root = cached.or_else(|| self.find_root(path, known))?;
        if let Some(doc) = self.lock().open.get_mut(path) {
            doc.root = Some(root.clone());
        }
        Some(root)
    }

    fn find_root(&self, path: &Path, known: Option<PathBuf>) -> Option<PathBuf> {
        if self.project(path).is_some() || path.file_name().is_some_and(|n| n == "steward.toml") {
            return Some(path.to_path_buf());
        }
        let dir = path.parent()?;
        if dir.file_name().is_some_and(|n| n == "modules.d") {
            let root = dir.parent().map(|d| d.join("steward.toml"))?;
            if root.is_file() || self.text(&root).is_some() {
                return Some(normalize(&root));
            }
        }
        if known.is_some() {
            return known;
        }
        // A stack nearby that reads this file (it `extends` it).
        let overlays = self.overlays();
        for candidate_dir in dir.ancestors().take(3) {
            let candidate = candidate_dir.join("steward.toml");
            if candidate == path || !(candidate.is_file() || self.text(&candidate).is_some()) {
                continue;
            }
            let opts = LoadOptions { overlays: overlays.clone(), ..LoadOptions::default() };
            let report = config::load_report(&candidate, &opts);
            if report.files.iter().any(|f| normalize(f) == path) {
                return Some(normalize(&candidate));
            }
        }
        None
    }

    /// Loads `root` with every open document as an overlay and publishes the diagnostics by file (clearing
    /// those of files that no longer have any), unless a newer validation of the same stack started meanwhile.
    async fn validate(self: &Arc<Self>, root: PathBuf) {
        let generation = {
            let mut docs = self.lock();
            // The stack's last document may have been closed since this was scheduled.
            if !docs.open.values().any(|d| d.root.as_ref() == Some(&root)) {
                return;
            }
            let r = docs.roots.entry(root.clone()).or_default();
            r.generation += 1;
            r.generation
        };
        let opts = self.load_options(&root);
        let texts: HashMap<PathBuf, Arc<String>> = {
            let docs = self.lock();
            docs.open.iter().map(|(p, d)| (p.clone(), d.text.clone())).collect()
        };
        let versions: HashMap<PathBuf, i32> = self.lock().open.iter().map(|(p, d)| (p.clone(), d.version)).collect();
        let (files, by_file) = tokio::task::block_in_place(|| {
            let report = config::load_report(&root, &opts);
            let files: Vec<PathBuf> = report.files.iter().map(|f| normalize(f)).collect();
            let diags = report.result.err().unwrap_or_default();
            // Texts as the loader saw them: the overlay, else the file read again.
            let by_file = diagnostics::by_file(&root, &diags, |p| {
                texts.get(p).cloned().unwrap_or_else(|| Arc::new(std::fs::read_to_string(p).unwrap_or_default()))
            });
            (files, by_file)
        });

        let mut docs = self.lock();
        if self.cancel.is_cancelled() || docs.roots.get(&root).is_none_or(|r| r.generation != generation) {
            return;
        }
        for f in &files {
            if let Some(doc) = docs.open.get_mut(f) {
                doc.root.get_or_insert_with(|| root.clone());
            }
        }
        let previous = docs.roots.get(&root).map(|r| r.published.clone()).unwrap_or_default();
        let mut targets: HashSet<PathBuf> = by_file.keys().cloned().collect();
        targets.extend(previous.keys().cloned());
        targets.extend(files.iter().filter(|f| docs.open.contains_key(*f)).cloned());
        let mut published = HashMap::new();
        let mut sends = Vec::new();
        for path in targets {
            let list = by_file.get(&path).cloned().unwrap_or_default();
            let uri = match (docs.open.get(&path), previous.get(&path)) {
                (Some(d), _) => Some(d.uri.clone()),
                (None, Some(uri)) => Some(uri.clone()),
                (None, None) => Uri::from_file_path(&path),
            };
            let Some(uri) = uri else { continue };
            if !list.is_empty() {
                published.insert(path.clone(), uri.clone());
            }
            sends.push((uri, versions.get(&path).copied(), list));
        }
        if let Some(r) = docs.roots.get_mut(&root) {
            r.files = files;
            r.published = published;
        }
        // Still under the lock: a newer validation cannot publish before this one.
        for (uri, version, list) in sends {
            self.publish(uri, version, list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_bounded_in_size_and_number() {
        assert_eq!(too_big(10, 0, 0), None);
        assert!(too_big(MAX_DOCUMENT_BYTES + 1, 0, 0).is_some_and(|m| m.contains("too large")));
        assert!(too_big(10, 0, MAX_DOCUMENTS).is_some_and(|m| m.contains("too many")));
        assert!(too_big(10, MAX_SESSION_BYTES - 9, 3).is_some());
        assert_eq!(too_big(10, MAX_SESSION_BYTES - 10, MAX_DOCUMENTS - 1), None);
    }

    #[test]
    fn paths_are_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        std::fs::write(real.join("steward.toml"), "").unwrap();
        assert_eq!(normalize(&real.join("x/../steward.toml")), real.join("steward.toml"));
        // A file that does not exist yet, in a directory that does.
        assert_eq!(normalize(&real.join("./new.toml")), real.join("new.toml"));
        let uri: Uri = format!("file://{}/a%20b.toml", real.display()).parse().unwrap();
        assert_eq!(uri_path(&uri), Some(real.join("a b.toml")));
        assert_eq!(uri_path(&"untitled:Untitled-1".parse().unwrap()), None);
    }
}
