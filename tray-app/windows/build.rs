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
        let copied = std::fs::read(&src).and_then(|bytes| std::fs::write(vendor.join(file), bytes));
        if copied.is_err() {
            let placeholder = if file.ends_with(".js") {
                "document.getElementById('app').textContent = 'The dashboard bundle is not built: run `npm ci && node build.mjs` in extension/, then rebuild steward-tray-windows.';\n"
            } else {
                "\n"
            };
            if let Err(e) = std::fs::write(vendor.join(file), placeholder) {
                println!("cargo::error=cannot write {}: {e}", vendor.join(file).display());
            }
            println!("cargo::warning={} is missing: the tray's dashboard window shows a placeholder", src.display());
        }
    }
    tauri_build::build();
}
