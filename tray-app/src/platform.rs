//! Start at login and the platform differences, as plain functions (unit-tested on every platform; only
//! applying them is behind `cfg`).
//!
//! "Start at Login" does two things: `steward service install` (the daemon as a systemd user unit or a
//! LaunchAgent, see docs/operations.md) and the tray's own login item: an XDG autostart entry
//! (`$XDG_CONFIG_HOME/autostart/steward-tray.desktop`) on Linux, a LaunchAgent
//! (`~/Library/LaunchAgents/local.steward.tray.plist`) on macOS.

use std::path::{Path, PathBuf};

/// The tray's LaunchAgent label (also the bundle identifier in tauri.conf.json).
pub const LABEL: &str = "local.steward.tray";

/// Which platform's conventions apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Linux and other XDG desktops.
    Xdg,
    /// macOS.
    MacOs,
}

impl Platform {
    /// The platform this binary was built for.
    pub fn current() -> Platform {
        if cfg!(target_os = "macos") { Platform::MacOs } else { Platform::Xdg }
    }

    /// The icon is a template image (macOS menu bar: black shapes, tinted by the system).
    pub fn template_icon(self) -> bool {
        self == Platform::MacOs
    }

    /// No Dock icon: the app is a menu-bar accessory (macOS activation policy).
    pub fn accessory(self) -> bool {
        self == Platform::MacOs
    }

    /// Where the tray's login item lives, given `$HOME` and `$XDG_CONFIG_HOME`.
    pub fn login_item_path(self, home: &Path, xdg_config_home: Option<&Path>) -> PathBuf {
        match self {
            Platform::MacOs => home.join("Library/LaunchAgents").join(format!("{LABEL}.plist")),
            Platform::Xdg => {
                let config = xdg_config_home.filter(|p| p.is_absolute()).map(Path::to_path_buf);
                config.unwrap_or_else(|| home.join(".config")).join("autostart/steward-tray.desktop")
            }
        }
    }

    /// The login item's contents for the tray executable `exe`.
    pub fn login_item(self, exe: &Path) -> String {
        match self {
            Platform::MacOs => launch_agent(exe),
            Platform::Xdg => desktop_entry(exe),
        }
    }
}

/// Quotes an argument for a desktop entry's `Exec` key (the spec's double-quote rules).
fn exec_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)) {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An XDG autostart entry.
pub fn desktop_entry(exe: &Path) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nName=Steward Tray\nComment=Steward's tray icon: services, profiles, memory search\n\
         Exec={}\nTerminal=false\nX-GNOME-Autostart-enabled=true\n",
        exec_quote(&exe.to_string_lossy())
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// A LaunchAgent that starts the tray at login (no KeepAlive: quitting the tray keeps it quit).
pub fn launch_agent(exe: &Path) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>{LABEL}</string>
  <key>ProgramArguments</key>
  <array>
    <string>{}</string>
  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>ProcessType</key>
  <string>Interactive</string>
</dict>
</plist>
"#,
        xml_escape(&exe.to_string_lossy())
    )
}

/// Writes (or removes) the tray's login item at `path`.
pub fn set_login_item(path: &Path, contents: Option<&str>) -> std::io::Result<()> {
    match contents {
        Some(c) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, c)?;
            std::fs::rename(&tmp, path)
        }
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_item_paths() {
        let home = Path::new("/home/me");
        assert_eq!(
            Platform::Xdg.login_item_path(home, None),
            PathBuf::from("/home/me/.config/autostart/steward-tray.desktop")
        );
        assert_eq!(
            Platform::Xdg.login_item_path(home, Some(Path::new("/xdg"))),
            PathBuf::from("/xdg/autostart/steward-tray.desktop")
        );
        // A relative XDG_CONFIG_HOME is invalid per the spec and ignored.
        assert_eq!(
            Platform::Xdg.login_item_path(home, Some(Path::new("rel"))),
            PathBuf::from("/home/me/.config/autostart/steward-tray.desktop")
        );
        assert_eq!(
            Platform::MacOs.login_item_path(home, None),
            PathBuf::from("/home/me/Library/LaunchAgents/local.steward.tray.plist")
        );
    }

    #[test]
    fn desktop_entry_quotes_the_executable() {
        let e = desktop_entry(Path::new("/opt/my apps/steward-tray"));
        assert!(e.contains("\nExec=\"/opt/my apps/steward-tray\"\n"), "{e}");
        assert!(desktop_entry(Path::new("/usr/bin/steward-tray")).contains("\nExec=/usr/bin/steward-tray\n"));
        assert_eq!(exec_quote("a$b%c"), "\"a\\$b%%c\"");
    }

    #[test]
    fn launch_agent_is_escaped_xml() {
        let plist = launch_agent(Path::new("/Applications/A&B <x>/steward-tray"));
        assert!(plist.contains("<string>/Applications/A&amp;B &lt;x&gt;/steward-tray</string>"), "{plist}");
        assert!(plist.contains("<key>RunAtLoad</key>\n  <true/>"));
        assert!(!plist.contains("KeepAlive"));
    }

    #[test]
    fn macos_conventions() {
        assert!(Platform::MacOs.template_icon() && Platform::MacOs.accessory());
        assert!(!Platform::Xdg.template_icon() && !Platform::Xdg.accessory());
        #[cfg(target_os = "linux")]
        assert_eq!(Platform::current(), Platform::Xdg);
    }

    #[test]
    fn login_item_written_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("autostart/steward-tray.desktop");
        set_login_item(&path, Some("x")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x");
        set_login_item(&path, None).unwrap();
        assert!(!path.exists());
        set_login_item(&path, None).unwrap();
    }
}
