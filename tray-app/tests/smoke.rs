//! Smoke test of the real app on a virtual display: Xvfb + a private D-Bus session bus, the real daemon,
//! the tray binary with its dashboard window open. It checks that the window shows live module states (the
//! page reports its visible text through `STEWARD_TRAY_SMOKE_FILE`), and saves screenshots to
//! `tests/out/tray/`. When a tray host is installed (`stalonetray`, `trayer`), the icon is hosted and
//! shown too.
//!
//! Ignored by a plain `cargo test` (it needs Xvfb, dbus-daemon and ImageMagick's `import`, and the dashboard
//! bundle built by `extension/build.mjs`); `./scripts/test` installs those and runs it with `--ignored`.

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

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
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

const STACK: &str = r#"
[project]
name = "smoke"

[modules.alpha]
run = "sleep 600"

[modules.beta]
run = "sleep 600"
"#;

#[test]
#[ignore = "needs Xvfb, dbus-daemon, ImageMagick and the dashboard bundle; run by ./scripts/test"]
fn the_dashboard_window_shows_live_module_states() {
    let bundle = repo().join("tray-app/ui/vendor/dashboard.js");
    let js = std::fs::read_to_string(&bundle).unwrap_or_default();
    assert!(
        js.len() > 1000,
        "{} is the placeholder: build extension/ (node build.mjs), then rebuild",
        bundle.display()
    );
    let tray_bin = PathBuf::from(env!("CARGO_BIN_EXE_steward-tray"));
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
    let project = rt.block_on(client.open(&stack, None)).unwrap().path;
    let up = rt.block_on(client.up(steward_protocol::UpParams {
        project: project.clone(),
        wait: true,
        ..Default::default()
    }));
    assert!(up.unwrap().ok);

    let (_xvfb, display) = start_xvfb();
    let (_dbus, bus) = start_dbus();
    // A tray host, when one is installed: the icon is then visible in the screenshots.
    let host = ["stalonetray", "trayer"].iter().find_map(|t| which(t).map(|p| (*t, p)));
    let _host = host.as_ref().map(|(name, path)| {
        let mut cmd = Command::new(path);
        if *name == "trayer" {
            cmd.args(["--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32"]);
        } else {
            cmd.args(["--geometry", "4x1-0+0", "--icon-size", "32", "--background", "#dddddd"]);
        }
        let child = cmd.env("DISPLAY", &display).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        Reaped(child, "tray host")
    });

    let smoke = dir.path().join("smoke.txt");
    let states = dir.path().join("icon-states");
    let log = std::fs::File::create(dir.path().join("tray.log")).unwrap();
    let tray = Command::new(&tray_bin)
        .env("DISPLAY", &display)
        .env("DBUS_SESSION_BUS_ADDRESS", &bus)
        .env("STEWARD_HOME", &home)
        .env("STEWARD_BIN", &steward)
        .env("STEWARD_TRAY_OPEN", "dashboard")
        .env("STEWARD_TRAY_SMOKE_FILE", &smoke)
        .env("STEWARD_TRAY_STATE_FILE", &states)
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        .env_remove("WAYLAND_DISPLAY")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut tray = Reaped(tray, "steward-tray");
    let tray_log = || std::fs::read_to_string(dir.path().join("tray.log")).unwrap_or_default();
    let page = || std::fs::read_to_string(&smoke).unwrap_or_default();
    let row = |text: &str, module: &str| text.lines().find(|l| l.starts_with(module)).map(str::to_string);

    // The dashboard renders both modules as running…
    let mut alive = || matches!(tray.0.try_wait(), Ok(None));
    wait_for("the dashboard to show alpha and beta running", Duration::from_secs(60), || {
        assert!(alive(), "the tray app exited; its log:\n{}", tray_log());
        let t = page();
        row(&t, "alpha").is_some_and(|r| r.contains("running"))
            && row(&t, "beta").is_some_and(|r| r.contains("running"))
    });
    // …and follows a change made elsewhere (live, from pushed events).
    rt.block_on(client.stop_module(&project, "beta", true)).unwrap();
    wait_for("the dashboard to show beta stopped", Duration::from_secs(20), || {
        row(&page(), "beta").is_some_and(|r| r.contains("stopped"))
    });
    assert!(row(&page(), "alpha").is_some_and(|r| r.contains("running")), "{}", page());
    // A module stopped on request is not a problem: the icon stays "all running".
    let icon = std::fs::read_to_string(&states).unwrap_or_default();
    assert!(icon.lines().last().is_some_and(|l| l.ends_with(" all-running")), "icon states: {icon}");
    let shot = screenshot(&display, "dashboard.png");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "{} looks empty", shot.display());

    // Closing the dashboard window does not quit the app (it lives in the tray).
    if let Some(xdotool) = which("xdotool") {
        let st = Command::new(xdotool)
            .args(["search", "--name", "Steward — Dashboard", "windowclose"])
            .env("DISPLAY", &display)
            .status()
            .unwrap();
        assert!(st.success(), "xdotool found no dashboard window");
        wait_for("the dashboard window to close", Duration::from_secs(10), || {
            !Command::new(need("xdotool"))
                .args(["search", "--name", "Steward — Dashboard"])
                .env("DISPLAY", &display)
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success()
        });
        // Proof that the app still runs its loop after the close: a module crash turns its icon (the state file
        // is written where the icon is set, on the main thread).
        let status = rt.block_on(client.status()).unwrap();
        let pid = status.projects[0].modules.iter().find(|m| m.name == "alpha").and_then(|m| m.pid).unwrap();
        // SAFETY: killing the test's own module process group.
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        wait_for("the icon to leave all-running after a crash", Duration::from_secs(20), || {
            let icon = std::fs::read_to_string(&states).unwrap_or_default();
            icon.lines().last().is_some_and(|l| !l.ends_with(" all-running"))
        });
        assert!(alive(), "closing the window quit the app; log:\n{}", tray_log());
    }
    drop(tray);
    rt.block_on(client.stop_daemon(Duration::from_secs(20))).unwrap();
}
