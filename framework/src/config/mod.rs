//! The stack file: parsing with spans, `extends`, `modules.d/`, `[defaults]`, `env_file`, interpolation,
//! profiles, and validation. Produces a [`Stack`] or every [`Diagnostic`] found.
//!
//! The format is documented for users in `docs/stack-file.md`. Inside, loading is a pipeline:
//!
//! 1. `sources`: read the root file, its `extends` chain and `modules.d/*.toml` (or the editor's unsaved
//!    overlay), parse each with `toml_edit` into a span-carrying `tree`, and merge them.
//! 2. `decode`: check every key and type of the merged tree, parse durations, sizes and signals.
//! 3. `resolve`: choose the profile, layer env (reading `envfile`s), `interpolate`, apply `[defaults]`, check
//!    requires/versions/cycles/services and probe targets, and build the [`Stack`].
//!
//! Each stage reports located issues and carries on, so one load reports every error it can. Only a file
//! that cannot be read or parsed stops the pipeline after step 1 (later errors would be noise).
//!
//! Architecture invariant: this is the only code that reads TOML; the engine sees [`Stack`] only.

mod decode;
mod diagnostic;
pub mod editor;
mod envfile;
mod interpolate;
mod literal;
mod model;
mod resolve;
pub mod schema;
mod sources;
mod suggest;
mod tree;
mod units;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, format_diagnostics};
pub use model::*;
pub use units::{parse_duration, parse_size};

/// Inputs of a load besides the file itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Profile to apply; `None` = `[project] profile`, else no profile (all modules, no overrides).
    pub profile: Option<String>,
    /// The environment `${VAR}` falls back to when a module's own env does not define `VAR`.
    pub env: BTreeMap<String, String>,
    /// Unsaved texts that replace files' contents (editor buffers, for live diagnostics). A `.toml` overlay
    /// directly inside the stack's `modules.d/` is read even when the file does not exist yet.
    pub overlays: Vec<(PathBuf, String)>,
}

impl LoadOptions {
    /// Options with `env` taken from this process's environment (variables that are not valid UTF-8
    /// are skipped: they could not be interpolated into TOML strings anyway).
    pub fn from_process_env(profile: Option<String>) -> LoadOptions {
        let env =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
        LoadOptions { profile, env, overlays: Vec::new() }
    }
}

/// Loads the stack file at `path` with everything it pulls in. On failure, returns every error found,
/// ordered by file (root first) and position.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Stack, Vec<Diagnostic>> {
    load_report(path, opts).result
}

/// A load's result and the stack files it read, which editors need even when the load fails: to know which
/// files belong to a stack, and to clear the diagnostics of those that no longer have any.
#[derive(Debug)]
pub struct LoadReport {
    /// What [`load`] returns.
    pub result: Result<Stack, Vec<Diagnostic>>,
    /// Absolute (lexically normalised) paths of the TOML files read or tried: the root, its `extends` chain,
    /// `modules.d/*.toml`. Env files are not included.
    pub files: Vec<PathBuf>,
}

/// [`load`], also reporting which files were read.
pub fn load_report(path: &Path, opts: &LoadOptions) -> LoadReport {
    let mut reader = sources::Reader::new(&opts.overlays);
    let mut issues = Vec::new();
    let stack = sources::load_tree(path, &mut reader, &mut issues).and_then(|tree| {
        let (raw, mut decode_issues) = decode::decode(&tree, &reader.map);
        issues.append(&mut decode_issues);
        let root_dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let mut resolver = resolve::Resolver {
            opts,
            reader: &mut reader,
            root: path.to_path_buf(),
            root_dir_abs: sources::absolute(&root_dir),
            root_dir,
            issues: Vec::new(),
        };
        let stack = resolver.resolve(&raw);
        issues.append(&mut resolver.issues);
        stack
    });
    let result = match stack {
        Some(stack) if issues.is_empty() => Ok(stack),
        _ => Err(into_diagnostics(&reader.map, issues)),
    };
    LoadReport { result, files: reader.read }
}

fn into_diagnostics(map: &diagnostic::SourceMap, mut issues: Vec<diagnostic::Issue>) -> Vec<Diagnostic> {
    issues.sort_by_key(|issue| (issue.span.file, issue.span.range.start));
    issues.dedup();
    issues.into_iter().map(|issue| map.diagnostic(issue)).collect()
}
