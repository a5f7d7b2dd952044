//! Copies the dashboard bundle (built by `extension/build.mjs` from `webview/`) into `ui/vendor/`, which
//! Tauri embeds with the rest of `ui/`. Without a built bundle the dashboard window says how to build it.

use std::path::Path;

fn main() {
    let out = Path::new("../../extension/out/webview");
    let vendor = Path::new("ui/vendor");
    if let Err(e) = std::fs::create_dir_all(vendor) {
        println!("cargo::error=cannot create {}: {e}", vendor.display());
        return;
    }
    for file in ["dashboard.js", "dashboard.css"] {
        let src = out.join(file);
        println!("cargo::rerun-if-changed={}", src.display());
        let copied = std::fs::read(&src).and_then(|bytes| write_if_changed(&vendor.join(file), &bytes));
        if copied.is_err() {
            let placeholder = if file.ends_with(".js") {
                "document.getElementById('app').textContent = 'The dashboard bundle is not built: run `npm ci && node build.mjs` in extension/, then rebuild steward-tray-windows.';\n"
            } else {
                "\n"
            };
            if let Err(e) = write_if_changed(&vendor.join(file), placeholder.as_bytes()) {
                println!("cargo::error=cannot write {}: {e}", vendor.join(file).display());
            }
            println!("cargo::warning={} is missing: the tray's dashboard window shows a placeholder", src.display());
        }
    }
    tauri_build::build();
}

/// Writes only what changed: rewriting `ui/` would make Tauri embed it again on every build.
fn write_if_changed(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes)
}
