//! The loader's diagnostics as LSP diagnostics, grouped by file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use steward_framework::config::Diagnostic;
use tower_lsp_server::ls_types::{Diagnostic as LspDiagnostic, DiagnosticSeverity};

use super::normalize;
use super::position::LineIndex;

/// What editors show as the diagnostics' source.
pub const SOURCE: &str = "steward";

/// The LSP message of a diagnostic: what is wrong, then what was expected and the hint, one per line.
pub fn message(d: &Diagnostic) -> String {
    let mut m = d.message.clone();
    if let Some(e) = &d.expected {
        m.push_str("\nexpected: ");
        m.push_str(e);
    }
    if let Some(h) = &d.help {
        m.push_str("\nhelp: ");
        m.push_str(h);
    }
    m
}

/// `diags` by file (normalised paths), with ranges computed in the text each file had when it was loaded:
/// `text_of` gives it (an editor buffer, or the file read again). A diagnostic not about a file goes to the
/// start of `root`.
pub fn by_file(
    root: &Path,
    diags: &[Diagnostic],
    text_of: impl Fn(&Path) -> Arc<String>,
) -> HashMap<PathBuf, Vec<LspDiagnostic>> {
    let mut texts: HashMap<PathBuf, Arc<String>> = HashMap::new();
    let mut out: HashMap<PathBuf, Vec<LspDiagnostic>> = HashMap::new();
    for d in diags {
        let file = if d.file.as_os_str().is_empty() { root.to_path_buf() } else { normalize(&d.file) };
        let text = texts.entry(file.clone()).or_insert_with(|| text_of(&file)).clone();
        let idx = LineIndex::new(&text);
        let range = if d.file.as_os_str().is_empty() { 0..0 } else { idx.visible(d.byte_range.clone()) };
        out.entry(file).or_default().push(LspDiagnostic {
            range: idx.range(range),
            severity: Some(DiagnosticSeverity::ERROR),
            source: Some(SOURCE.to_string()),
            message: message(d),
            ..LspDiagnostic::default()
        });
    }
    out
}
