//! Hover, code lenses and completion for stack files, from the open text (`config::editor`) and, when the
//! stack is an open project, its live state.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use steward_framework::config::editor::{self, CompletionKind, ModuleSummary, Names, Scan};
use steward_protocol as p;
use tower_lsp_server::ls_types::{
    CodeLens, CodeLensParams, Command, CompletionItem, CompletionItemKind, CompletionParams, CompletionResponse,
    CompletionTextEdit, Hover, HoverContents, HoverParams, MarkupContent, MarkupKind, TextEdit, Uri,
};

use super::super::convert;
use super::position::LineIndex;
use super::{Inner, uri_path};

/// A document's path, text (open, else on disk) and the stack it belongs to (itself when none is found).
fn document(inner: &Inner, uri: &Uri) -> Option<(PathBuf, Arc<String>, PathBuf)> {
    let path = uri_path(uri)?;
    tokio::task::block_in_place(|| {
        let text = inner.text_or_disk(&path);
        let root = inner.root_of(&path).unwrap_or_else(|| path.clone());
        Some((path, text, root))
    })
}

/// The scans of every file of the stack (the open text of those open), `path`'s own first.
fn stack_scans(inner: &Inner, path: &Path, text: &str, root: &Path) -> Vec<Scan> {
    let mut files: Vec<PathBuf> = inner.lock().roots.get(root).map(|r| r.files.clone()).unwrap_or_default();
    if files.is_empty() {
        files.push(root.to_path_buf());
    }
    let mut scans = vec![editor::scan(text)];
    tokio::task::block_in_place(|| {
        for f in files.iter().filter(|f| f.as_path() != path) {
            scans.push(editor::scan(&inner.text_or_disk(f)));
        }
    });
    scans
}

/// The live status of `module`, if its stack is an open project: `Ok(status)` when the module is in the
/// active profile, `Err(profile)` when it is not.
fn live(inner: &Inner, root: &Path, module: &str) -> Option<Result<p::ModuleStatus, Option<String>>> {
    let project = inner.project(root)?;
    let snap = project.handle.snapshot();
    Some(match snap.modules.iter().find(|m| m.name == module) {
        Some(m) => Ok(convert::module(m)),
        None => Err(snap.profile),
    })
}

/// `textDocument/hover`: on a module name (header, inline definition, `requires` entry, profile list).
pub fn hover(inner: &Inner, params: HoverParams) -> Option<Hover> {
    let at = params.text_document_position_params;
    let (path, text, root) = document(inner, &at.text_document.uri)?;
    let idx = LineIndex::new(&text);
    let scan = editor::scan(&text);
    let (name, range) = scan.module_at(idx.offset(at.position))?;
    let scans = stack_scans(inner, &path, &text, &root);
    let summary = scans.iter().find_map(|s| s.summary(&name));
    let markdown = hover_text(&name, live(inner, &root, &name), summary.as_ref());
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value: markdown }),
        range: Some(idx.range(range)),
    })
}

/// The hover's Markdown: live state (when the stack is open), then the definition as written.
pub fn hover_text(
    name: &str,
    live: Option<Result<p::ModuleStatus, Option<String>>>,
    summary: Option<&ModuleSummary>,
) -> String {
    let mut s = format!("**{name}**");
    match live {
        Some(Ok(m)) => {
            let state = wire_name(&m.state);
            match m.health {
                Some(h) if h != p::Health::None => {
                    let _ = write!(s, " — {state} ({})", wire_name(&h));
                }
                _ => {
                    let _ = write!(s, " — {state}");
                }
            }
            s.push_str("\n\n");
            if let Some(pid) = m.pid {
                let _ = writeln!(s, "- pid: {pid}");
            }
            let running = matches!(m.state, p::ModuleState::Running | p::ModuleState::Starting);
            let _ = writeln!(s, "- {}: {}", if running { "uptime" } else { "for" }, duration(m.state_for_ms));
            let _ = writeln!(s, "- restarts: {}", m.restarts);
            if let Some(exit) = &m.last_exit {
                let _ = writeln!(s, "- last exit: {exit}");
            }
            if let Some(reason) = &m.reason {
                let _ = writeln!(s, "- reason: {reason}");
            }
            if let Some(ms) = m.retry_in_ms {
                let _ = writeln!(s, "- next restart in: {}", duration(ms));
            }
            if !m.waiting_for.is_empty() {
                let _ = writeln!(s, "- waiting for: {}", m.waiting_for.join(", "));
            }
        }
        Some(Err(profile)) => {
            let _ =
                write!(s, " — not in the active profile{}\n\n", profile.map(|p| format!(" `{p}`")).unwrap_or_default());
        }
        None => s.push_str(" — not running (the stack is not open in the daemon)\n\n"),
    }
    if let Some(def) = summary {
        s.push_str("\n---\n\n");
        if let Some(run) = &def.run {
            let _ = writeln!(s, "- run: `{}`", code(run));
        }
        if let Some(v) = &def.version {
            let _ = writeln!(s, "- version: `{}`", code(v));
        }
        if !def.requires.is_empty() {
            let list: Vec<String> = def.requires.iter().map(|r| format!("`{}`", code(r))).collect();
            let _ = writeln!(s, "- requires: {}", list.join(", "));
        }
        if let Some(h) = &def.health {
            let _ = writeln!(s, "- health: `{}`", code(h));
        }
        if let Some(r) = &def.restart {
            let _ = writeln!(s, "- restart: `{}`", code(r));
        }
    }
    s.trim_end().to_string()
}

/// Text safe inside single backticks.
fn code(s: &str) -> String {
    s.replace('`', "'").replace('\n', " ")
}

fn wire_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// `1h 2m`, `3m 4s`, `5s`, `120ms`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// `textDocument/codeLens`: "▶ Start", "⟳ Restart", "☰ Logs" above every module defined in the (unsaved)
/// text, and "■ Stop" (after Start) for a module that has a process when the lenses are computed.
pub fn code_lens(inner: &Inner, params: CodeLensParams) -> Option<Vec<CodeLens>> {
    let (_, text, root) = document(inner, &params.text_document.uri)?;
    let idx = LineIndex::new(&text);
    let project = root.display().to_string();
    let running: Vec<String> = inner
        .project(&root)
        .map(|p| p.handle.snapshot().modules.into_iter().filter(|m| m.state.run().is_some()).map(|m| m.name).collect())
        .unwrap_or_default();
    let mut lenses = Vec::new();
    for m in editor::scan(&text).modules() {
        let range = idx.range(m.header_range.clone());
        let args = serde_json::to_value(p::ModuleCommandArgs { project: project.clone(), module: m.name.clone() })
            .unwrap_or_default();
        let mut commands = vec![("▶ Start", p::COMMAND_START_MODULE)];
        if running.contains(&m.name) {
            commands.push(("■ Stop", p::COMMAND_STOP_MODULE));
        }
        commands.extend([("⟳ Restart", p::COMMAND_RESTART_MODULE), ("☰ Logs", p::COMMAND_VIEW_LOGS)]);
        for (title, command) in commands {
            lenses.push(CodeLens {
                range,
                command: Some(Command {
                    title: title.into(),
                    command: command.into(),
                    arguments: Some(vec![args.clone()]),
                }),
                data: None,
            });
        }
    }
    Some(lenses)
}

/// `textDocument/completion`: keys of the table at the cursor, module names in `requires` and profile
/// lists, restart policies, stop signals, profile names.
pub fn completion(inner: &Inner, params: CompletionParams) -> Option<CompletionResponse> {
    let at = params.text_document_position;
    let (path, text, root) = document(inner, &at.text_document.uri)?;
    let idx = LineIndex::new(&text);
    let offset = idx.offset(at.position);
    let mut names = Names::default();
    for scan in stack_scans(inner, &path, &text, &root) {
        for m in scan.modules() {
            push_new(&mut names.modules, m.name);
        }
        for p in scan.profiles() {
            push_new(&mut names.profiles, p);
        }
    }
    if let Some(project) = inner.project(&root) {
        for m in project.handle.snapshot().modules {
            push_new(&mut names.modules, m.name);
        }
    }
    let items = editor::complete(&text, offset, &names)
        .into_iter()
        .enumerate()
        .map(|(i, c)| CompletionItem {
            label: c.label,
            kind: Some(match c.kind {
                CompletionKind::Key => CompletionItemKind::PROPERTY,
                CompletionKind::Table => CompletionItemKind::STRUCT,
                CompletionKind::Value => CompletionItemKind::ENUM_MEMBER,
                CompletionKind::Module => CompletionItemKind::MODULE,
                CompletionKind::Profile => CompletionItemKind::VALUE,
            }),
            detail: c.detail,
            sort_text: Some(format!("{i:04}")),
            text_edit: Some(CompletionTextEdit::Edit(TextEdit { range: idx.range(c.replace), new_text: c.insert })),
            ..CompletionItem::default()
        })
        .collect();
    Some(CompletionResponse::Array(items))
}

fn push_new(list: &mut Vec<String>, name: String) {
    if !list.contains(&name) {
        list.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration(120), "120ms");
        assert_eq!(duration(5_000), "5s");
        assert_eq!(duration(185_000), "3m 5s");
        assert_eq!(duration(3_720_000), "1h 2m");
        assert_eq!(duration(90_000_000), "1d 1h");
    }

    #[test]
    fn hover_shows_live_state_then_definition() {
        let m = p::ModuleStatus {
            name: "api".into(),
            state: p::ModuleState::Running,
            wanted: true,
            pid: Some(4242),
            run: Some(3),
            health: Some(p::Health::Healthy),
            restarts: 2,
            state_for_ms: 65_000,
            last_exit: Some("exited with code 1".into()),
            waiting_for: vec![],
            reason: None,
            exit_code: None,
            signal: None,
            retry_in_ms: None,
            attempt: None,
            cpu_percent: None,
            rss_bytes: None,
        };
        let def = ModuleSummary { run: Some("a `b`".into()), requires: vec!["db".into()], ..Default::default() };
        let text = hover_text("api", Some(Ok(m)), Some(&def));
        assert_eq!(
            text,
            "**api** — running (healthy)\n\n- pid: 4242\n- uptime: 1m 5s\n- restarts: 2\n- last exit: exited with \
             code 1\n\n---\n\n- run: `a 'b'`\n- requires: `db`"
        );
        assert!(hover_text("x", None, None).contains("not running"));
        assert!(hover_text("x", Some(Err(Some("dev".into()))), None).contains("not in the active profile `dev`"));
    }
}
