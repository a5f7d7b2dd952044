//! Smoke test of the real app on a virtual display: Xvfb, a private D-Bus session bus, a tray host
//! (`trayer`, an XEmbed system tray: with no StatusNotifier host on the bus, libayatana-appindicator falls
//! back to an XEmbed icon), the real daemon and both binaries: the tray, and the windows process it starts.
//! Driven like a person would: click the icon, walk the native menu with the keyboard, restart a module and
//! open the dashboard from it; the dashboard must show live module states (the page reports its visible text
//! through `STEWARD_TRAY_SMOKE_FILE`); closing it ends the windows process, and the tray opens it again.
//! Screenshots go to `tests/out/tray/`.
//!
//! Ignored by a plain `cargo test` (it needs Xvfb, dbus-daemon, trayer, xdotool, ImageMagick's `import`, the
//! dashboard bundle built by `extension/build.mjs` and `cargo build -p steward-tray-windows` after it);
//! `./scripts/test` installs and builds those and runs it with `--ignored`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use steward_tray::daemon::client::{Client, StartOptions};

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(tool)).find(|p| p.is_file())
}

fn need(tool: &str) -> PathBuf {
    which(tool).unwrap_or_else(|| panic!("`{tool}` is not installed (./scripts/test installs it)"))
}

/// The tray's children that are the windows process (`comm` is cut to 15 bytes).
fn windows_processes(tray: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((comm, rest)) = stat.split_once(") ") else { continue };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(tray) && comm.ends_with("(steward-tray-wi") && !rest.starts_with('Z') {
            found.push(pid);
        }
    }
    found
}

/// Kills (and reaps) a child when dropped.
struct Reaped(Child, &'static str);

impl Drop for Reaped {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.1);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, cond: impl FnMut() -> bool) {
    wait_for_or(what, timeout, cond, String::new);
}

/// [`wait_for`], saying what was seen instead when it times out.
fn wait_for_or(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool, seen: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}{}", seen());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn zombie_or_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z ")).unwrap_or(true)
}

/// A free X display number and its Xvfb.
fn start_xvfb() -> (Reaped, String) {
    let xvfb = need("Xvfb");
    for n in (110..200).map(|i| i + (std::process::id() % 50)) {
        if Path::new(&format!("/tmp/.X{n}-lock")).exists() || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            continue;
        }
        let child = Command::new(&xvfb)
            .args([format!(":{n}").as_str(), "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut x = Reaped(child, "Xvfb");
        let socket = format!("/tmp/.X11-unix/X{n}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&socket).exists() && Instant::now() < deadline {
            if let Ok(Some(_)) = x.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if Path::new(&socket).exists() {
            return (x, format!(":{n}"));
        }
    }
    panic!("could not start Xvfb on any display");
}

/// A private session bus: (its daemon, its address).
fn start_dbus() -> (Reaped, String) {
    let mut child = Command::new(need("dbus-daemon"))
        .args(["--session", "--nofork", "--print-address=1", "--nopidfile"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut address = String::new();
    use std::io::Read;
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        address.push(byte[0] as char);
    }
    assert!(address.starts_with("unix:"), "dbus-daemon printed {address:?}");
    (Reaped(child, "dbus-daemon"), address)
}

fn screenshot(display: &str, name: &str) -> PathBuf {
    let dir = repo().join("tests/out/tray");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let st = Command::new(need("import"))
        .args(["-display", display, "-window", "root", path.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success(), "import failed for {}", path.display());
    path
}

/// Stops the daemon when the test ends, also when it fails.
struct DaemonGuard<'a>(&'a tokio::runtime::Runtime, Client);

impl Drop for DaemonGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.block_on(self.1.stop_daemon(Duration::from_secs(20)));
    }
}

/// The visible windows of the tray process that are menus (not the icon, not GTK's helper windows).
fn menus(display: &str) -> Vec<(i32, i32, i32, i32)> {
    tray_windows(display).into_iter().filter(|&(_, _, _, h)| h > 40).collect()
}

fn xdo(display: &str, args: &[&str]) {
    let st = Command::new(need("xdotool")).args(args).env("DISPLAY", display).status().unwrap();
    assert!(st.success(), "xdotool {args:?} failed");
}

/// The visible windows of the tray process: (x, y, width, height).
fn tray_windows(display: &str) -> Vec<(i32, i32, i32, i32)> {
    let out = Command::new(need("xdotool"))
        .args(["search", "--onlyvisible", "--name", "^steward-tray$", "getwindowgeometry", "--shell", "%@"])
        .env("DISPLAY", display)
        .output()
        .unwrap();
    let mut found = Vec::new();
    let mut cur = [0i32; 4];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v: i32 = v.parse().unwrap_or(0);
        match k {
            "X" => cur[0] = v,
            "Y" => cur[1] = v,
            "WIDTH" => cur[2] = v,
            "HEIGHT" => {
                cur[3] = v;
                found.push((cur[0], cur[1], cur[2], cur[3]));
            }
            _ => {}
        }
    }
    found
}

/// The tray icon's centre, once the host shows it (GTK also maps 10×10 helper windows off screen).
fn icon_centre(display: &str) -> (i32, i32) {
    let mut centre = None;
    wait_for("the tray icon in the tray host", Duration::from_secs(20), || {
        centre = tray_windows(display)
            .into_iter()
            .find(|&(x, y, w, h)| (16..=40).contains(&w) && (16..=40).contains(&h) && x >= 0 && y >= 0)
            .map(|(x, y, w, h)| (x + w / 2, y + h / 2));
        centre.is_some()
    });
    centre.unwrap()
}

/// The colour of the screen at (x, y).
fn pixel(display: &str, x: i32, y: i32) -> String {
    let out = Command::new(need("import"))
        .args(["-display", display, "-window", "root", "-crop", &format!("1x1+{x}+{y}"), "-depth", "8", "txt:-"])
        .output()
        .unwrap();
    // "# ImageMagick pixel enumeration: …", then "0,0: (46,160,67)  #2EA043  srgb(46,160,67)": the hex colour.
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let pixel_line = text.lines().find(|l| l.starts_with("0,0:")).unwrap_or_default();
    pixel_line.split_whitespace().find(|w| w.starts_with('#')).unwrap_or_default().to_string()
}

/// Clicks the icon and waits for its menu. A click that lands while the host is still embedding the icon is
/// lost, so it is repeated (at most 5 times) when no menu appears within 2 s.
fn open_menu(display: &str) {
    for _ in 0..5 {
        let (x, y) = icon_centre(display);
        xdo(display, &["mousemove", &x.to_string(), &y.to_string(), "click", "1"]);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if menus(display).len() == 1 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("no tray menu after 5 clicks; the tray's windows: {:?}", tray_windows(display));
}

const STACK: &str = r#"
[project]
name = "smoke"

[modules.alpha]
run = "sleep 600"

[modules.beta]
run = "sleep 600"
"#;

#[test]
#[ignore = "needs Xvfb, dbus-daemon, trayer, xdotool, ImageMagick and the dashboard bundle; run by ./scripts/test"]
fn the_tray_menu_drives_the_daemon_and_the_dashboard_shows_live_states() {
    let bundle = repo().join("tray-app/windows/ui/vendor/dashboard.js");
    let js = std::fs::read_to_string(&bundle).unwrap_or_default();
    assert!(
        js.len() > 1000,
        "{} is the placeholder: build extension/ (node build.mjs), then `cargo build -p steward-tray-windows`",
        bundle.display()
    );
    let tray_bin = PathBuf::from(env!("CARGO_BIN_EXE_steward-tray"));
    // Found by the tray next to its own executable.
    let windows_bin = target_dir().join("steward-tray-windows");
    assert!(windows_bin.is_file(), "{} is missing: `cargo build -p steward-tray-windows`", windows_bin.display());
    let steward = target_dir().join("steward");
    assert!(steward.is_file(), "{} is missing: `cargo build -p steward`", steward.display());

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let stack = dir.path().join("stack/steward.toml");
    std::fs::create_dir_all(stack.parent().unwrap()).unwrap();
    std::fs::write(&stack, STACK).unwrap();

    // The daemon with the project up.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = StartOptions { program: Some(steward.clone()), ..StartOptions::default() };
    let client = rt.block_on(Client::connect_or_start_with(&home, &opts)).unwrap();
    let _daemon = DaemonGuard(&rt, client.clone());
    let project = rt.block_on(client.open(&stack, None)).unwrap().path;
    let up = rt.block_on(client.up(steward_protocol::UpParams {
        project: project.clone(),
        wait: true,
        ..Default::default()
    }));
    assert!(up.unwrap().ok);
    let module = |name: &str| {
        let s = rt.block_on(client.status()).unwrap();
        s.projects[0].modules.iter().find(|m| m.name == name).cloned().unwrap()
    };

    let (_xvfb, display) = start_xvfb();
    let (_dbus, bus) = start_dbus();
    let host = Command::new(need("trayer"))
        .args(["--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32"])
        .env("DISPLAY", &display)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _host = Reaped(host, "trayer");

    let smoke = dir.path().join("smoke.txt");
    let states = dir.path().join("icon-states");
    let log = std::fs::File::create(dir.path().join("tray.log")).unwrap();
    let tray = Command::new(&tray_bin)
        .env("DISPLAY", &display)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus)
        .env("STEWARD_HOME", &home)
        .env("STEWARD_BIN", &steward)
        .env("STEWARD_TRAY_SMOKE_FILE", &smoke)
        .env("STEWARD_TRAY_STATE_FILE", &states)
        .env_remove("STEWARD_TRAY_OPEN")
        // Xvfb has no GPU: WebKit's accelerated compositing paints nothing there.
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        .env_remove("WAYLAND_DISPLAY")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut tray = Reaped(tray, "steward-tray");
    let tray_pid = tray.0.id();
    let tray_log = || std::fs::read_to_string(dir.path().join("tray.log")).unwrap_or_default();
    let page = || std::fs::read_to_string(&smoke).unwrap_or_default();
    let row = |text: &str, module: &str| text.lines().find(|l| l.starts_with(module)).map(str::to_string);
    let mut alive = || matches!(tray.0.try_wait(), Ok(None));

    // The icon is green once the app has read the daemon's state; no window exists yet.
    wait_for("the all-running icon", Duration::from_secs(30), || {
        assert!(alive(), "the tray app exited; its log:\n{}", tray_log());
        std::fs::read_to_string(&states).unwrap_or_default().lines().last().is_some_and(|l| l.ends_with(" all-running"))
    });
    // …and the icon on screen is the green disc (its centre is empty while the daemon is down).
    let (x, y) = icon_centre(&display);
    let centre = || pixel(&display, x, y);
    wait_for_or(
        "a green icon in the tray host",
        Duration::from_secs(10),
        || centre() == "#2EA043",
        || format!("; its centre ({x}, {y}) is {}", centre()),
    );
    assert!(!smoke.exists(), "a dashboard window exists before anyone asked for one");
    assert!(windows_processes(tray_pid).is_empty(), "a windows process runs before any window was asked for");
    // What keeps the idle tray small: no web engine, and no GL driver (GDK's GL probe is off in this process).
    let maps = std::fs::read_to_string(format!("/proc/{tray_pid}/maps")).unwrap();
    for lib in ["libwebkit2gtk", "libjavascriptcoregtk", "libLLVM", "_dri.so"] {
        assert!(!maps.contains(lib), "the tray process maps {lib}");
    }

    // Icon → project → first module (alpha): its submenu, then Restart (keyboard: the menu has the grab).
    open_menu(&display);
    xdo(&display, &["key", "Down", "Right"]);
    wait_for("the project submenu", Duration::from_secs(10), || menus(&display).len() == 2);
    xdo(&display, &["key", "Right"]);
    wait_for("the module submenu", Duration::from_secs(10), || menus(&display).len() == 3);
    let shot = screenshot(&display, "tray-menu.png");
    assert!(std::fs::metadata(&shot).unwrap().len() > 5_000, "{} looks empty", shot.display());
    let before = module("alpha");
    assert!(before.pid.is_some());
    // In alpha's submenu the first enabled item is Stop (Start is disabled while it runs); Down → Restart.
    xdo(&display, &["key", "Down", "Return"]);
    wait_for("alpha restarted from the menu (a new pid)", Duration::from_secs(20), || {
        let m = module("alpha");
        m.state == steward_protocol::ModuleState::Running && m.pid.is_some() && m.pid != before.pid
    });
    assert_eq!(module("beta").restarts, 0);
    wait_for("the menu to close", Duration::from_secs(10), || menus(&display).is_empty());

    // Icon → Open Dashboard (project, Profiles?, Search Memory…, Open Dashboard: the 4th enabled item here,
    // as this stack has no profiles).
    open_menu(&display);
    xdo(&display, &["key", "Down", "Down", "Down", "Return"]);
    wait_for("the dashboard to show alpha and beta running", Duration::from_secs(60), || {
        assert!(alive(), "the tray app exited; its log:\n{}", tray_log());
        let t = page();
        row(&t, "alpha").is_some_and(|r| r.contains("running"))
            && row(&t, "beta").is_some_and(|r| r.contains("running"))
    });
    let windows = windows_processes(tray_pid);
    assert_eq!(windows.len(), 1, "one windows process, started by the tray: {windows:?}");
    // …and it follows a change made elsewhere (live, from pushed events).
    rt.block_on(client.stop_module(&project, "beta", true)).unwrap();
    wait_for("the dashboard to show beta stopped", Duration::from_secs(20), || {
        row(&page(), "beta").is_some_and(|r| r.contains("stopped"))
    });
    assert!(row(&page(), "alpha").is_some_and(|r| r.contains("running")), "{}", page());
    // A module stopped on request is not a problem: the icon stays "all running".
    let icon = std::fs::read_to_string(&states).unwrap_or_default();
    assert!(icon.lines().last().is_some_and(|l| l.ends_with(" all-running")), "icon states: {icon}");
    // The DOM is ahead of the paint: wait for a screenshot with content (a blank window compresses to ~2 KB).
    wait_for("a painted dashboard in the screenshot", Duration::from_secs(20), || {
        std::fs::metadata(screenshot(&display, "dashboard.png")).unwrap().len() > 10_000
    });

    // Closing the dashboard window ends the windows process (its memory is given back), not the tray.
    let out = Command::new(need("xdotool"))
        .args(["search", "--name", "Steward — Dashboard"])
        .env("DISPLAY", &display)
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_string).collect();
    assert!(!ids.is_empty(), "xdotool found no dashboard window");
    let st =
        Command::new(repo().join("tray-app/tests/wm_close.py")).args(&ids).env("DISPLAY", &display).status().unwrap();
    assert!(st.success());
    wait_for("the dashboard window to close", Duration::from_secs(10), || {
        !Command::new(need("xdotool"))
            .args(["search", "--onlyvisible", "--name", "Steward — Dashboard"])
            .env("DISPLAY", &display)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    });
    wait_for("the windows process to exit", Duration::from_secs(20), || windows_processes(tray_pid).is_empty());
    // Proof that the tray still runs its loop after the close: a module crash turns its icon (the state file
    // is written where the icon is set, on the main thread).
    let pid = module("alpha").pid.unwrap();
    let killed_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    // SAFETY: killing the test's own module process group.
    unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
    // (It restarts within its backoff, so the icon may be back to green already: look for the change.)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let icon = std::fs::read_to_string(&states).unwrap_or_default();
        let changed = icon
            .lines()
            .filter_map(|l| l.split_once(' '))
            .any(|(ms, h)| ms.parse::<u64>().is_ok_and(|ms| ms >= killed_ms) && h != "all-running");
        if changed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the icon did not change after the crash (killed at {killed_ms}); icon states:\n{icon}\nlog:\n{}",
            tray_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(alive(), "closing the window quit the tray; log:\n{}", tray_log());
    let shot = screenshot(&display, "tray-after-crash.png");
    assert!(std::fs::read(&shot).unwrap().starts_with(b"\x89PNG"), "{} is not a PNG", shot.display());

    // Open Dashboard again: a new windows process, showing the state of now (beta stopped).
    std::fs::remove_file(&smoke).unwrap();
    open_menu(&display);
    xdo(&display, &["key", "Down", "Down", "Down", "Return"]);
    wait_for("the reopened dashboard to show beta stopped", Duration::from_secs(60), || {
        assert!(alive(), "the tray app exited; its log:\n{}", tray_log());
        let t = page();
        row(&t, "alpha").is_some_and(|r| r.contains("running"))
            && row(&t, "beta").is_some_and(|r| r.contains("stopped"))
    });
    let again = windows_processes(tray_pid);
    assert!(again.len() == 1 && again != windows, "a new windows process: {again:?} (was {windows:?})");
    drop(tray);
    wait_for("the windows process to end with the tray", Duration::from_secs(20), || {
        !Path::new(&format!("/proc/{}", again[0])).exists() || zombie_or_gone(again[0])
    });
}
