//! Reads the dashboard bundle's `RELAYED` list (webview/src/bridge.ts, the one source of the methods a
//! dashboard may ask its host for) into `$OUT_DIR/relayed.rs`, so the tray relays exactly what the page asks.

use std::path::{Path, PathBuf};

fn main() {
    let bridge = Path::new("../webview/src/bridge.ts");
    println!("cargo::rerun-if-changed={}", bridge.display());
    let text = match std::fs::read_to_string(bridge) {
        Ok(t) => t,
        Err(e) => {
            println!("cargo::error=cannot read {}: {e}", bridge.display());
            return;
        }
    };
    let methods = match relayed(&text) {
        Ok(m) => m,
        Err(e) => {
            println!("cargo::error={}: {e}", bridge.display());
            return;
        }
    };
    let mut out = String::from(
        "/// The dashboard bundle's `RELAYED` list (webview/src/bridge.ts), read at build time by build.rs.\n\
         pub const DASHBOARD_RELAYED: &[&str] = &[\n",
    );
    for m in methods {
        out.push_str(&format!("    {m:?},\n"));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("relayed.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo::error=cannot write {}: {e}", dest.display());
    }
}

/// The string literals of `export const RELAYED = [ … ] as const;`.
fn relayed(ts: &str) -> Result<Vec<String>, String> {
    const START: &str = "export const RELAYED = [";
    let at = ts.find(START).ok_or_else(|| format!("no `{START}`"))? + START.len();
    let end = ts[at..].find(']').ok_or("no `]` after RELAYED")? + at;
    let mut methods = Vec::new();
    for item in ts[at..end].split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let m = item
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .filter(|m| m.starts_with("steward/") && !m.contains(['"', '\\']))
            .ok_or_else(|| format!("RELAYED holds {item:?}, expected \"steward/…\" string literals only"))?;
        methods.push(m.to_string());
    }
    if methods.is_empty() {
        return Err("RELAYED is empty".into());
    }
    Ok(methods)
}
