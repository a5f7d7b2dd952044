//! Reading files: the root, its `extends` chain and `modules.d/*.toml`, merged into one tree. This is the
//! only part of the loader besides env files that touches the disk, and it honours the editor's overlay
//! (an unsaved buffer replaces a file's content).

use std::path::{Component, Path, PathBuf};

use super::diagnostic::{FileId, Issue, SourceMap, Span};
use super::tree::{self, Entry, Kind, Node, Table};

/// Reads files, remembering each one for positions and for the watch set.
pub(crate) struct Reader<'a> {
    pub map: SourceMap,
    /// Absolute paths of every file read, in order, without duplicates.
    pub read: Vec<PathBuf>,
    overlays: Vec<(PathBuf, &'a str)>,
}

impl<'a> Reader<'a> {
    pub fn new(overlays: &'a [(PathBuf, String)]) -> Self {
        let overlays = overlays.iter().map(|(path, text)| (absolute(path), text.as_str())).collect();
        Reader { map: SourceMap::default(), read: Vec::new(), overlays }
    }

    /// Reads a file (or the overlay standing in for it) and registers it. On failure the file is still
    /// registered, empty, so that errors can name it.
    pub fn read(&mut self, path: &Path) -> (FileId, Result<(), std::io::Error>) {
        let abs = absolute(path);
        let result = match self.overlays.iter().find(|(overlay_path, _)| same_file(overlay_path, &abs)) {
            Some((_, text)) => Ok(text.to_string()),
            None => std::fs::read_to_string(path),
        };
        if !self.read.contains(&abs) {
            self.read.push(abs);
        }
        match result {
            Ok(text) => (self.map.add(path, text), Ok(())),
            Err(err) => (self.map.add(path, String::new()), Err(err)),
        }
    }

    /// The overlays that are `.toml` files directly inside `dir` (possibly new, unsaved module files).
    fn overlays_in(&self, dir: &Path) -> Vec<PathBuf> {
        let dir = absolute(dir);
        let in_dir = |path: &Path| {
            path.extension().is_some_and(|e| e == "toml") && path.parent().is_some_and(|p| same_file(p, &dir))
        };
        self.overlays.iter().filter(|(path, _)| in_dir(path)).map(|(path, _)| path.clone()).collect()
    }
}

/// Loads the root file, its `extends` chain and `modules.d/`, merged. `None` if a file could not be read
/// or parsed: then only those errors are reported, since everything else would be noise.
pub(crate) fn load_tree(root: &Path, reader: &mut Reader<'_>, issues: &mut Vec<Issue>) -> Option<Table> {
    let before = issues.len();
    let chain = load_chain(root, reader, issues);
    let mut merged = Table::default();
    for layer in chain.into_iter().rev() {
        tree::merge_overlay(&mut merged, layer);
    }
    let dir = root.parent().unwrap_or(Path::new(""));
    load_modules_d(&dir.join("modules.d"), &mut merged, reader, issues);
    (issues.len() == before).then_some(merged)
}

/// The root and the files it extends, root first.
fn load_chain(root: &Path, reader: &mut Reader<'_>, issues: &mut Vec<Issue>) -> Vec<Table> {
    let mut chain = Vec::new();
    let mut visited: Vec<(PathBuf, String)> = Vec::new();
    let mut next: Option<(PathBuf, Option<Span>)> = Some((root.to_path_buf(), None));
    while let Some((path, referenced_at)) = next.take() {
        let abs = absolute(&path);
        if let Some(first) = visited.iter().position(|(p, _)| same_file(p, &abs)) {
            let names: Vec<&str> = visited[first..].iter().map(|(_, n)| n.as_str()).collect();
            let message = format!("`extends` cycle: {} → {}", names.join(" → "), visited[first].1);
            let span = referenced_at.unwrap_or_else(|| Span::new(0, 0..0));
            issues.push(Issue::new(span, message).key("extends").help("remove one of the `extends`"));
            break;
        }
        visited.push((abs, path.display().to_string()));
        let Some(mut table) = read_toml(&path, referenced_at, reader, issues) else {
            break;
        };
        next = take_extends(&mut table, &path, issues);
        chain.push(table);
    }
    chain
}

/// Reads and parses one TOML file. `referenced_at` is where another file named it (for "not found").
fn read_toml(
    path: &Path,
    referenced_at: Option<Span>,
    reader: &mut Reader<'_>,
    issues: &mut Vec<Issue>,
) -> Option<Table> {
    let (file, result) = reader.read(path);
    if let Err(err) = result {
        let span = referenced_at.unwrap_or_else(|| Span::new(file, 0..0));
        issues.push(Issue::new(span, format!("cannot read `{}`: {}", path.display(), io_message(&err))));
        return None;
    }
    match tree::parse(file, reader.map.text(file)) {
        Ok(table) => Some(table),
        Err(issue) => {
            issues.push(issue);
            None
        }
    }
}

/// Removes `extends` from a file's table and returns the file it names, resolved against the file's dir.
fn take_extends(table: &mut Table, path: &Path, issues: &mut Vec<Issue>) -> Option<(PathBuf, Option<Span>)> {
    let entry = table.remove("extends")?;
    match entry.node.kind {
        Kind::Str(target) if !target.is_empty() => {
            let dir = path.parent().unwrap_or(Path::new(""));
            Some((dir.join(target), Some(entry.node.span)))
        }
        kind => {
            issues.push(
                Issue::new(entry.node.span, format!("`extends` must be a file name, found {}", kind.describe()))
                    .key("extends")
                    .expected("a path relative to this file, e.g. \"base.toml\""),
            );
            None
        }
    }
}

/// Adds the modules of every `modules.d/*.toml` (by file name order) to `merged`.
fn load_modules_d(dir: &Path, merged: &mut Table, reader: &mut Reader<'_>, issues: &mut Vec<Issue>) {
    for path in module_files(dir, reader) {
        let Some(table) = read_toml(&path, None, reader, issues) else {
            continue;
        };
        for entry in table.entries {
            if entry.key != "modules" {
                issues.push(
                    Issue::new(entry.key_span, format!("`{}` is not allowed in a modules.d file", entry.key))
                        .key(entry.key)
                        .expected("only `[modules.NAME]` tables")
                        .help("project settings, defaults and profiles belong in the root stack file"),
                );
                continue;
            }
            add_modules(merged, entry, reader, issues);
        }
    }
}

fn module_files(dir: &Path, reader: &Reader<'_>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    for unsaved in reader.overlays_in(dir) {
        if !files.iter().any(|f| same_file(&absolute(f), &unsaved)) {
            files.push(dir.join(unsaved.file_name().unwrap_or_default()));
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files
}

/// Adds one modules.d file's `[modules]` to the stack; a name defined elsewhere is an error naming both.
fn add_modules(merged: &mut Table, modules: Entry, reader: &Reader<'_>, issues: &mut Vec<Issue>) {
    let Kind::Table(new) = modules.node.kind else {
        issues.push(
            Issue::new(modules.node.span, format!("`modules` must be a table, found {}", modules.node.kind.describe()))
                .key("modules")
                .expected("`[modules.NAME]` tables"),
        );
        return;
    };
    let Some(target) = modules_table(merged, &modules.key_span, &modules.node.span) else {
        return;
    };
    for module in new.entries {
        if let Some(existing) = target.get(&module.key) {
            let first = reader.map.describe(&existing.key_span);
            issues.push(
                Issue::new(
                    module.key_span.clone(),
                    format!("module `{}` is defined twice: here and at {first}", module.key),
                )
                .key(format!("modules.{}", module.key))
                .help("module names must be unique across the stack file and modules.d/; rename or remove one"),
            );
            continue;
        }
        target.entries.push(module);
    }
}

/// The merged `[modules]` table, created if the root file has none. `None` if the root's `modules` is not
/// a table (the decoder reports that).
fn modules_table<'t>(merged: &'t mut Table, key_span: &Span, span: &Span) -> Option<&'t mut Table> {
    if merged.get("modules").is_none() {
        let node = Node { kind: Kind::Table(Table::default()), span: span.clone() };
        merged.entries.push(Entry { key: "modules".to_string(), key_span: key_span.clone(), node });
    }
    merged.entries.iter_mut().find(|e| e.key == "modules").and_then(|e| match &mut e.node.kind {
        Kind::Table(t) => Some(t),
        _ => None,
    })
}

fn io_message(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => err.to_string(),
    }
}

/// Absolute and lexically normalised (`a/./b/../c` → `a/c`); does not touch the disk.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for component in abs.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Whether two absolute paths name the same file (through symlinks too, when both exist).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}
