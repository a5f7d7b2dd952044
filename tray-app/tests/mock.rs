//! The tray against a real daemon (started by the tray itself, on a private STEWARD_HOME), with its windows
//! app on Tauri's mock runtime linked to it as the real windows process is: menu items are chosen by id (the
//! path a click takes), and every page call goes through the mock runtime's IPC layer, the windows app's
//! relay and the link to the tray. The daemon is the `steward` binary of the same target directory (`cargo
//! build -p steward` first; `./scripts/test` does).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::sync::Arc;

use serde_json::{Value, json};
use steward_tray::daemon::client::Client;
use steward_tray::link::WindowKind;
use steward_tray::{Headless, Tray};
use tauri::test::{INVOKE_KEY, get_ipc_response, mock_builder, mock_context, noop_assets};
use tauri::webview::InvokeRequest;
use tauri::{App, Listener, Manager, WebviewWindow, test::MockRuntime};

/// `target/debug/steward`, next to this test's `deps/` directory.
fn steward_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("steward");
    assert!(bin.is_file(), "{} is missing: build the daemon first (`cargo build -p steward`)", bin.display());
    bin
}

struct Fixture {
    // Field order is drop order (after `Drop::drop` stopped the daemon): the windows app, the tray and its
    // runtime, then the temporary directory.
    app: App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
    tray: Arc<Tray>,
    rt: tokio::runtime::Runtime,
    stack: PathBuf,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(stack: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let stack_path = dir.path().join("stack/steward.toml");
        std::fs::create_dir_all(stack_path.parent().unwrap()).unwrap();
        std::fs::write(&stack_path, stack).unwrap();
        let config = steward_tray::Config {
            home: home.clone(),
            steward_bin: Some(steward_bin()),
            // The windows app is attached below, on the mock runtime: no process to start.
            windows_bin: None,
            windows_env_remove: Vec::new(),
            state_file: Some(dir.path().join("icon-states")),
            smoke_file: Some(dir.path().join("smoke.txt")),
            open_at_start: Vec::new(),
            login_item: dir.path().join("xdg/autostart/steward-tray.desktop"),
            service_args: vec!["--no-enable".into()],
            service_env: vec![
                ("HOME".into(), dir.path().join("user").display().to_string()),
                ("XDG_CONFIG_HOME".into(), dir.path().join("xdg").display().to_string()),
            ],
            min_severity: steward_tray::notices::Severity::Info,
            coalesce: Duration::from_millis(100),
        };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let tray = Tray::new(config, rt.handle().clone(), Box::new(Headless::default()));
        tray.start();
        // The windows app on the mock runtime, linked to the tray as the real process is (JSON lines), over
        // an in-memory pipe instead of stdin/stdout.
        let app = steward_tray_windows::configure(mock_builder()).build(mock_context(noop_assets())).unwrap();
        let (tray_end, windows_end) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(tray_end);
        tray.host.attach(&tray, r, w);
        let (r, w) = tokio::io::split(windows_end);
        steward_tray_windows::start(app.handle(), r, w, |_| {});
        // The dashboard, opened by the tray (the path of "Open Dashboard").
        steward_tray::actions::open_window(&tray, &WindowKind::Dashboard).unwrap();
        let window = wait_window(&app, "dashboard");
        Fixture { app, window, tray, rt, stack: stack_path, dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A page's call (`invoke("call", {cmd, args})`), through the mock runtime's IPC, the windows app's relay
    /// and the link to the tray.
    fn invoke(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let request = InvokeRequest {
            cmd: "call".into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: tauri::ipc::InvokeBody::Json(json!({"cmd": cmd, "args": args})),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        get_ipc_response(&self.window, request).map(|b| b.deserialize::<Value>().unwrap())
    }

    fn call(&self, cmd: &str, body: Value) -> Value {
        self.invoke(cmd, body.clone()).unwrap_or_else(|e| panic!("{cmd} {body}: {e}"))
    }

    fn tray(&self) -> Value {
        self.call("tray_state", json!({}))
    }

    /// Polls `tray_state` until `cond` holds (fails after 20 s naming `what` and the last state).
    fn wait_tray(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let t = self.tray();
            if cond(&t) {
                return t;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; tray state: {t:#}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Chooses a menu item: exactly what the native menu's handler does with the clicked item's id.
    fn click(&self, id: &str) {
        steward_tray::tray::handle_menu_event(&self.tray, id);
    }

    /// A client of our own, to set up and observe (the daemon is the one the app started).
    fn client(&self) -> Client {
        self.rt.block_on(Client::connect(&self.home())).unwrap()
    }

    fn status(&self) -> steward_protocol::ProjectStatus {
        let c = self.client();
        let s = self.rt.block_on(c.status()).unwrap();
        s.projects.into_iter().find(|p| Path::new(&p.path) == self.stack).expect("project open")
    }

    fn wait_status(
        &self,
        what: &str,
        cond: impl Fn(&steward_protocol::ProjectStatus) -> bool,
    ) -> steward_protocol::ProjectStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.status();
            if cond(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; status: {s:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn open_and_up(&self) {
        let c = self.client();
        self.rt.block_on(async {
            let p = c.open(&self.stack, None).await.unwrap();
            let up =
                c.up(steward_protocol::UpParams { project: p.path.clone(), wait: true, ..Default::default() }).await;
            up.unwrap();
        });
    }

    fn menu_id(&self, tray: &Value, text_prefix: &str, depth_text: Option<&str>) -> String {
        let entries = tray["menu"].as_array().unwrap();
        let mut in_section = depth_text.is_none();
        for e in entries {
            let text = e["text"].as_str().unwrap();
            if let Some(section) = depth_text {
                if e["id"] == "" && text.contains(section) {
                    in_section = true;
                    continue;
                }
            }
            if in_section && text.starts_with(text_prefix) && e["id"] != "" {
                return e["id"].as_str().unwrap().to_string();
            }
        }
        panic!("no menu item {text_prefix:?} (under {depth_text:?}) in {:#}", tray["menu"]);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(c) = self.rt.block_on(Client::connect(&self.home())) {
            let _ = self.rt.block_on(c.stop_daemon(Duration::from_secs(20)));
        }
    }
}

/// Waits for the windows app to have the window `label` (the tray's open travels over the link).
fn wait_window(app: &App<MockRuntime>, label: &str) -> WebviewWindow<MockRuntime> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(w) = app.get_webview_window(label) {
            return w;
        }
        assert!(Instant::now() < deadline, "no `{label}` window after 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pid_of(p: &steward_protocol::ProjectStatus, m: &str) -> Option<u32> {
    p.modules.iter().find(|x| x.name == m).and_then(|x| x.pid)
}

fn running(p: &steward_protocol::ProjectStatus, m: &str) -> bool {
    p.modules.iter().any(|x| x.name == m && x.state == steward_protocol::ModuleState::Running)
}

const TWO_PROFILES: &str = r#"
[project]
name = "shop"
profile = "one"

[modules.a]
run = "sh -c 'echo hello-from-a; exec sleep 600'"

[modules.b]
run = "sleep 600"

[profiles.one]
modules = ["a"]

[profiles.two]
modules = ["b"]
"#;

#[test]
fn the_app_starts_the_daemon_and_the_menu_switches_profiles_and_restarts() {
    let f = Fixture::new(TWO_PROFILES);
    // The tray started the daemon (nothing ran on this home) and connected.
    f.wait_tray("the connection", |t| t["connected"] == true);
    f.open_and_up();
    let t = f.wait_tray("module a in the menu", |t| {
        t["menu"].as_array().unwrap().iter().any(|e| e["text"].as_str().unwrap().starts_with("● a — running"))
    });
    assert_eq!(t["health"], "allRunning", "{t:#}");
    let one = t["menu"].as_array().unwrap().iter().find(|e| e["text"] == "one").unwrap();
    assert_eq!(one["checked"], true);

    // Profiles → two: b runs, a is gone, the radio item moved.
    let two = f.menu_id(&t, "two", Some("Profiles"));
    f.click(&two);
    let s = f.wait_status("profile two", |p| running(p, "b") && !running(p, "a"));
    assert_eq!(s.profile.as_deref(), Some("two"));
    let t = f.wait_tray("the radio item", |t| {
        t["menu"].as_array().unwrap().iter().any(|e| e["text"] == "two" && e["checked"] == true)
    });
    assert!(t["menu"].as_array().unwrap().iter().any(|e| e["text"] == "one" && e["checked"] == false));

    // Restart from the menu: a new process.
    let old = pid_of(&s, "b").unwrap();
    let restart = f.menu_id(&t, "Restart", Some("b — running"));
    f.click(&restart);
    let s = f.wait_status("a new pid for b", |p| running(p, "b") && pid_of(p, "b").is_some_and(|p| p != old));
    assert!(!std::path::Path::new(&format!("/proc/{old}")).exists() || is_zombie(old), "old b ({old}) still alive");
    // The menu shows the new pid (pushed events, no polling by the tray).
    let new = pid_of(&s, "b").unwrap();
    f.wait_tray("the new pid in the menu", |t| {
        t["menu"].as_array().unwrap().iter().any(|e| e["text"].as_str().unwrap().contains(&format!("pid {new}")))
    });

    // The icon's states were recorded as they changed (the benchmark's clock).
    let states = std::fs::read_to_string(f.dir.path().join("icon-states")).unwrap();
    assert!(states.lines().any(|l| l.ends_with(" all-running")), "{states}");
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z ")).unwrap_or(true)
}

const FAILING: &str = r#"
[project]
name = "shop"

[modules.ok]
run = "sleep 600"

[modules.bad]
run = "sh -c 'echo bad news >&2; exit 3'"
restart = { policy = "on-failure", backoff = "20ms..20ms", max_restarts = 1, window = "60s" }
"#;

#[test]
fn the_menu_and_icon_show_a_failed_module_and_a_notification_is_shown() {
    let f = Fixture::new(FAILING);
    f.wait_tray("the connection", |t| t["connected"] == true);
    let c = f.client();
    f.rt.block_on(async {
        let p = c.open(&f.stack, None).await.unwrap();
        // `up` reports the failure; what matters here is what the tray shows.
        let _ = c.up(steward_protocol::UpParams { project: p.path, wait: true, ..Default::default() }).await;
    });
    f.wait_status("bad failed", |p| {
        p.modules.iter().any(|m| m.name == "bad" && m.state == steward_protocol::ModuleState::Failed)
    });
    let t = f.wait_tray("the failed icon", |t| t["health"] == "failed");
    assert!(t["tooltip"].as_str().unwrap().contains("1 failed (bad)"), "{t:#}");
    let bad = t["menu"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["text"].as_str().unwrap().starts_with("✖ bad — failed"))
        .cloned();
    assert!(bad.is_some(), "{:#}", t["menu"]);
    let t = f.wait_tray("a failure notification", |t| {
        t["notifications"].as_array().unwrap().iter().any(|n| n["body"].as_str().unwrap().contains("shop/bad failed"))
    });
    // Start is offered for the failed module, and works (it fails again: the tray shows that too).
    let start = f.menu_id(&t, "Start", Some("bad — failed"));
    let enabled = t["menu"].as_array().unwrap().iter().find(|e| e["id"] == start.as_str()).unwrap()["enabled"].clone();
    assert_eq!(enabled, true);
}

#[test]
fn every_command_answers_through_ipc() {
    let f = Fixture::new(TWO_PROFILES);
    f.wait_tray("the connection", |t| t["connected"] == true);
    f.open_and_up();
    let project = f.stack.display().to_string();
    f.wait_tray("module a", |t| t["tooltip"] == "Steward: 1/1 running");

    // daemon_request: relayed methods answer, others are refused by name.
    let status = f.call("daemon_request", json!({"method": "steward/status", "params": {}}));
    assert_eq!(status["projects"][0]["name"], "shop");
    let err = f.invoke("daemon_request", json!({"method": "steward/daemon/stop", "params": {}})).unwrap_err();
    assert!(err.as_str().unwrap().contains("`steward/daemon/stop` is not relayed"), "{err}");

    // module_action: stop then start a, each waiting for the daemon's answer.
    let r = f.call("module_action", json!({"project": project, "module": "a", "op": "stop"}));
    assert_eq!(r["ok"], true);
    assert!(!running(&f.status(), "a"));
    let r = f.call("module_action", json!({"project": project, "module": "a", "op": "start"}));
    assert_eq!(r["ok"], true);
    assert!(running(&f.status(), "a"));
    let err = f.invoke("module_action", json!({"project": project, "module": "a", "op": "explode"})).unwrap_err();
    assert!(err.as_str().unwrap().contains("expected start, stop or restart"), "{err}");

    // use_profile (the menu's radio items go the same way).
    let r = f.call("use_profile", json!({"project": project, "profile": "two"}));
    assert_eq!(r["ok"], true);
    let s = f.wait_status("profile two", |p| running(p, "b") && !running(p, "a"));
    assert_eq!(s.profile.as_deref(), Some("two"));
    assert!(f.invoke("use_profile", json!({"project": project, "profile": "nope"})).is_err());

    // search_memory finds the line a printed (stored by the daemon; indexed just behind ingestion, so poll).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let hits = f.call("search_memory", json!({"query": "hello-from-a", "limit": 5}));
        if hits
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["snippet"].as_str().unwrap().contains("hello") && h["module"] == "a")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no hit for hello-from-a: {hits:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let empty = f.call("search_memory", json!({"query": "   "}));
    assert_eq!(empty, json!([]));

    // Windows on demand.
    assert!(f.app.get_webview_window("search").is_none());
    f.call("open_window", json!({"kind": "search"}));
    wait_window(&f.app, "search");
    assert!(
        f.invoke("open_window", json!({"kind": "nope"}))
            .unwrap_err()
            .as_str()
            .unwrap()
            .contains("expected dashboard or search")
    );
    f.call("host_action", json!({"name": "logs", "args": {"project": project, "module": "a"}}));
    let logs = wait_window(&f.app, "logs");
    assert!(logs.url().unwrap().as_str().contains("logs.html?project="), "{}", logs.url().unwrap());
    assert!(
        f.invoke("host_action", json!({"name": "logs", "args": {}}))
            .unwrap_err()
            .as_str()
            .unwrap()
            .contains("missing `project`")
    );
    f.call("host_action", json!({"name": "search"}));

    // follow_logs: history now, a subscription for the rest: new lines reach the logs window as events.
    let followed = f.call("follow_logs", json!({"project": project, "module": "a"}));
    assert!(followed["subscription"].as_u64().is_some(), "{followed}");
    let lines = followed["lines"].as_array().unwrap();
    assert!(lines.iter().any(|l| l["text"] == "hello-from-a"), "{followed:#}");
    let tailed = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = tailed.clone();
    f.app.listen_any("steward://logs", move |e| sink.lock().unwrap().push(serde_json::from_str(e.payload()).unwrap()));
    let pushed = Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = pushed.clone();
    f.app.listen_any("steward://notification", move |e| {
        sink.lock().unwrap().push(serde_json::from_str(e.payload()).unwrap())
    });
    // Back to profile one: a starts again and prints its line.
    f.call("use_profile", json!({"project": project, "profile": "one"}));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tailed
        .lock()
        .unwrap()
        .iter()
        .any(|e| e["lines"].as_array().unwrap().iter().any(|l| l["text"] == "hello-from-a"))
    {
        assert!(Instant::now() < deadline, "no tailed line in the logs window: {:#?}", tailed.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    // …and the daemon's pushed events reach the pages (the dashboard refreshes on them).
    assert!(
        pushed.lock().unwrap().iter().any(|n| n["method"] == "steward/event" && n["params"]["module"] == "a"),
        "{:#?}",
        pushed.lock().unwrap()
    );

    // Notifications' minimum severity.
    assert_eq!(f.call("set_notify_level", json!({"level": "critical"})), "critical");
    assert_eq!(f.tray()["notifyLevel"], "critical");
    assert!(f.invoke("set_notify_level", json!({"level": "loud"})).is_err());

    // Start at login: the daemon's service file (here under a temporary HOME) and the tray's login item.
    assert_eq!(f.tray()["startAtLogin"], false);
    assert_eq!(f.call("set_start_at_login", json!({"enabled": true})), true);
    let unit = f.dir.path().join("xdg/systemd/user/steward.service");
    assert!(unit.is_file(), "{} missing", unit.display());
    let item = std::fs::read_to_string(f.dir.path().join("xdg/autostart/steward-tray.desktop")).unwrap();
    assert!(item.contains("Exec="), "{item}");
    let t = f.tray();
    assert_eq!(t["startAtLogin"], true);
    assert!(t["menu"].as_array().unwrap().iter().any(|e| e["text"] == "Start at Login" && e["checked"] == true));
    // …and off again through the menu item.
    let id = f.menu_id(&t, "Start at Login", None);
    f.call("menu_action", json!({"id": id}));
    assert!(!unit.exists() && !f.dir.path().join("xdg/autostart/steward-tray.desktop").exists());
    assert!(
        f.invoke("menu_action", json!({"id": "no-such-item"})).unwrap_err().as_str().unwrap().contains("not an item")
    );

    // The host page's helpers.
    let info = f.call("host_info", json!({}));
    assert_eq!(info["smoke"], true);
    f.call("smoke_report", json!({"text": "db running"}));
    assert_eq!(std::fs::read_to_string(f.dir.path().join("smoke.txt")).unwrap(), "db running");
}
