//! File watching for hot reload: the stack's source files and `modules.d/` (→ reload), and each module's
//! `watch` globs (→ restart that module). Events are debounced so an editor's save-rename-chmod burst or a
//! build writing many files causes one reload/restart: a key fires once it has been quiet for [`DEBOUNCE`]
//! (or [`MAX_DELAY`] after its first event, so that a steady stream of changes cannot postpone it forever).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{RecursiveMode, Watcher as _};

use crate::config::Stack;

const DEBOUNCE: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Keeps the OS watches alive; dropping it stops watching.
pub(super) struct Watcher {
    _inner: notify::RecommendedWatcher,
}

struct ModuleGlobs {
    module: String,
    root: PathBuf,
    set: GlobSet,
}

impl Watcher {
    pub(super) fn new(
        stack: &Stack,
        on_config: impl Fn() + Send + Sync + 'static,
        on_files: impl Fn(String) + Send + Sync + 'static,
    ) -> notify::Result<Watcher> {
        let sources: BTreeSet<PathBuf> = stack.sources.iter().cloned().collect();
        let modules_d = stack.dir.join("modules.d");
        let globs: Vec<ModuleGlobs> = stack
            .modules
            .values()
            .filter(|m| !m.watch.is_empty())
            .filter_map(|m| {
                let mut b = GlobSetBuilder::new();
                for g in &m.watch {
                    b.add(Glob::new(g).ok()?);
                }
                Some(ModuleGlobs { module: m.name.clone(), root: m.cwd.clone(), set: b.build().ok()? })
            })
            .collect();

        let pending: Arc<Mutex<Pending>> = Arc::default();
        let on_config = Arc::new(on_config);
        let on_files = Arc::new(on_files);
        let handle = tokio::runtime::Handle::current();
        let modules_d2 = modules_d.clone();
        let mut inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            if matches!(ev.kind, notify::EventKind::Access(_)) {
                return;
            }
            for path in &ev.paths {
                // `modules.d` itself counts: when it is created, the reload that follows starts watching it.
                let config = sources.contains(path)
                    || path == &modules_d2
                    || (path.parent() == Some(modules_d2.as_path()) && path.extension().is_some_and(|e| e == "toml"));
                if config {
                    schedule(&pending, &handle, Key::Config, on_config.clone(), on_files.clone());
                }
                for g in &globs {
                    if let Ok(rel) = path.strip_prefix(&g.root) {
                        if g.set.is_match(rel) {
                            schedule(
                                &pending,
                                &handle,
                                Key::Module(g.module.clone()),
                                on_config.clone(),
                                on_files.clone(),
                            );
                        }
                    }
                }
            }
        })?;
        // Watch directories, not files: editors replace files by rename, which drops a file watch.
        let mut dirs: BTreeMap<PathBuf, RecursiveMode> = BTreeMap::new();
        for s in &stack.sources {
            if let Some(d) = s.parent() {
                dirs.entry(d.to_path_buf()).or_insert(RecursiveMode::NonRecursive);
            }
        }
        if modules_d.is_dir() {
            dirs.entry(modules_d).or_insert(RecursiveMode::NonRecursive);
        } else {
            dirs.entry(stack.dir.clone()).or_insert(RecursiveMode::NonRecursive);
        }
        for m in stack.modules.values().filter(|m| !m.watch.is_empty()) {
            dirs.insert(m.cwd.clone(), RecursiveMode::Recursive);
        }
        for (dir, mode) in dirs {
            if let Err(e) = inner.watch(&dir, mode) {
                tracing::warn!("cannot watch {}: {e}", dir.display());
            }
        }
        Ok(Watcher { _inner: inner })
    }
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Config,
    Module(String),
}

#[derive(Default)]
struct Pending {
    /// Keys waiting to fire, with the time of their latest event.
    armed: BTreeMap<Key, Instant>,
}

/// Fire `key` once per burst: when no event came for DEBOUNCE, or MAX_DELAY after the burst's first event.
fn schedule<C, F>(
    pending: &Arc<Mutex<Pending>>,
    rt: &tokio::runtime::Handle,
    key: Key,
    on_config: Arc<C>,
    on_files: Arc<F>,
) where
    C: Fn() + Send + Sync + 'static,
    F: Fn(String) + Send + Sync + 'static,
{
    let first = Instant::now();
    {
        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(last) = p.armed.get_mut(&key) {
            *last = first;
            return;
        }
        p.armed.insert(key.clone(), first);
    }
    let pending = pending.clone();
    rt.spawn(async move {
        let mut due = first + DEBOUNCE;
        loop {
            tokio::time::sleep_until(due.into()).await;
            let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
            let last = p.armed.get(&key).copied().unwrap_or(first);
            due = (last + DEBOUNCE).min(first + MAX_DELAY);
            if due <= Instant::now() {
                // An event after this point arms the key again: a change made while the reload or restart
                // is under way gets its own.
                p.armed.remove(&key);
                break;
            }
        }
        match key {
            Key::Config => on_config(),
            Key::Module(m) => on_files(m),
        }
    });
}
