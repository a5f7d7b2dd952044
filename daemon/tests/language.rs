//! Language features for stack files, end to end: the real `steward daemon`, a private `STEWARD_HOME`, the
//! real socket, raw LSP messages as an editor sends them. Waits are on messages with deadlines, never sleeps.

mod common;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, demo};
use serde_json::{Value, json};
use steward_protocol::paths;

/// An initialised LSP session on a [`Daemon`], its capabilities checked.
fn lsp(d: &Daemon) -> Lsp {
    let s = UnixStream::connect(paths::socket_path(&d.home)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut lsp = Lsp { s, buf: Vec::new(), pending: VecDeque::new(), next_id: 1 };
    let init = lsp.request("initialize", json!({"capabilities": {}}));
    let caps = &init["capabilities"];
    assert_eq!(caps["textDocumentSync"]["change"], 1, "{init}");
    assert_eq!(caps["hoverProvider"], true, "{init}");
    assert!(caps["codeLensProvider"].is_object(), "{init}");
    assert!(caps["completionProvider"]["triggerCharacters"].as_array().is_some_and(|t| !t.is_empty()), "{init}");
    lsp.notify("initialized", json!({}));
    lsp
}

/// An LSP client speaking raw base protocol; notifications that arrive while waiting for something else are
/// kept for later.
struct Lsp {
    s: UnixStream,
    buf: Vec<u8>,
    pending: VecDeque<Value>,
    next_id: i64,
}

impl Lsp {
    fn send(&mut self, v: &Value) {
        let body = serde_json::to_vec(v).unwrap();
        self.s.write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes()).unwrap();
        self.s.write_all(&body).unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// The next message, or None at the deadline.
    fn read(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let header = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let len: usize = header
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("Content-Length");
                if self.buf.len() >= end + 4 + len {
                    let body: Vec<u8> = self.buf.drain(..end + 4 + len).skip(end + 4).collect();
                    return Some(serde_json::from_slice(&body).unwrap());
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk) {
                Ok(0) => panic!("the daemon closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The result of a request (an error response fails the test).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let m = self.read(deadline).unwrap_or_else(|| panic!("no answer to {method}"));
            if m.get("id") == Some(&json!(id)) {
                assert!(m.get("error").is_none(), "{method} failed: {m}");
                return m["result"].clone();
            }
            self.pending.push_back(m);
        }
    }

    /// The first notification (kept or new) that satisfies `pred`, within `timeout`.
    fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read(deadline) {
                Some(m) if pred(&m) => return m,
                Some(m) => self.pending.push_back(m),
                None => panic!("timed out after {timeout:?} waiting for {what}; received: {:?}", self.pending),
            }
        }
    }

    /// The diagnostics published for `uri` at document `version` (None: for a file that is not open).
    fn diagnostics(&mut self, uri: &str, version: Option<i64>) -> Vec<Value> {
        let m = self.wait_for(&format!("diagnostics for {uri} version {version:?}"), Duration::from_secs(20), |m| {
            m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["uri"] == uri
                && m["params"]["version"].as_i64() == version
        });
        m["params"]["diagnostics"].as_array().unwrap().clone()
    }
}

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn open(lsp: &mut Lsp, uri: &str, text: &str) {
    lsp.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "toml", "version": 1, "text": text}}),
    );
}

fn change(lsp: &mut Lsp, uri: &str, version: i32, text: &str) {
    lsp.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
    );
}

/// LSP position of the end of `needle`'s first occurrence in `text` (UTF-16 columns).
fn after(text: &str, needle: &str) -> Value {
    let offset = text.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the text")) + needle.len();
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..].encode_utf16().count();
    json!({"line": line, "character": col})
}

fn range(d: &Value) -> (u64, u64, u64, u64) {
    let r = &d["range"];
    let n = |v: &Value| v.as_u64().unwrap();
    (n(&r["start"]["line"]), n(&r["start"]["character"]), n(&r["end"]["line"]), n(&r["end"]["character"]))
}

// -----------------------------------------------------------------------------------------------------------

const GOOD: &str = "[project]\nname = \"lang\"\n\n[modules.api]\nrun = \"sleep 1000\"\n";

#[test]
fn unsaved_text_is_checked_with_exact_ranges_and_fixes_clear_the_diagnostics() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    std::fs::write(dir.join("steward.toml"), GOOD).unwrap();
    std::fs::create_dir(dir.join("modules.d")).unwrap();
    let extra = "[modules.extra]\nrun = \"true\"\nhelth = { tcp = \"127.0.0.1:1\" }\n";
    std::fs::write(dir.join("modules.d/extra.toml"), extra).unwrap();
    let (root, extra_uri) = (uri(&dir.join("steward.toml")), uri(&dir.join("modules.d/extra.toml")));
    let mut lsp = lsp(&d);

    // The file on disk is fine; the editor's text is not: a float env value after an emoji (2 UTF-16 units,
    // 4 bytes, 1 character) and an unknown restart policy.
    let broken = "[project]\nname = \"lang\"\n\n[modules.api]\nrun = \"sleep 1000\"\nenv = { A = \"😀\", B = 1.5 }\nrestart = \"allways\"\n";
    open(&mut lsp, &root, broken);
    let diags = lsp.diagnostics(&root, Some(1));
    assert_eq!(diags.len(), 2, "{diags:?}");
    // `env = { A = "😀", B = ` is 21 characters but 22 UTF-16 units.
    assert_eq!(range(&diags[0]), (5, 22, 5, 25), "{diags:?}");
    assert_eq!(range(&diags[1]), (6, 10, 6, 19), "{diags:?}");
    for d in &diags {
        assert_eq!(d["severity"], 1);
        assert_eq!(d["source"], "steward");
    }
    let policy = diags[1]["message"].as_str().unwrap();
    assert!(policy.contains("unknown restart policy `allways`"), "{policy}");
    assert!(policy.contains("\nexpected: \"never\", \"on-failure\" or \"always\""), "{policy}");
    assert!(policy.contains("\nhelp: did you mean `always`?"), "{policy}");
    // The modules.d file's error goes to that file, which is not even open.
    let extra_diags = lsp.diagnostics(&extra_uri, None);
    assert_eq!(extra_diags.len(), 1, "{extra_diags:?}");
    assert_eq!(range(&extra_diags[0]), (2, 0, 2, 5));
    assert!(extra_diags[0]["message"].as_str().unwrap().contains("did you mean `health`?"));

    // Fixing one error leaves the other; fixing both clears the file. Nothing was saved.
    change(&mut lsp, &root, 2, &broken.replace("B = 1.5", "B = \"1.5\""));
    let diags = lsp.diagnostics(&root, Some(2));
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(range(&diags[0]), (6, 10, 6, 19));
    change(&mut lsp, &root, 3, &broken.replace("B = 1.5", "B = \"1.5\"").replace("allways", "always"));
    assert_eq!(lsp.diagnostics(&root, Some(3)), Vec::<Value>::new());

    // Opening the modules.d file and fixing it there clears its diagnostics too.
    open(&mut lsp, &extra_uri, extra);
    assert_eq!(lsp.diagnostics(&extra_uri, Some(1)).len(), 1);
    change(&mut lsp, &extra_uri, 2, &extra.replace("helth", "health"));
    assert_eq!(lsp.diagnostics(&extra_uri, Some(2)), Vec::<Value>::new());

    // A syntax error is one diagnostic where the parser stopped.
    change(&mut lsp, &root, 4, "[modules.api\nrun = \"x\"\n");
    let diags = lsp.diagnostics(&root, Some(4));
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(range(&diags[0]).0, 0);
    assert!(diags[0]["message"].as_str().unwrap().starts_with("invalid TOML"), "{diags:?}");

    // Closing every document of the stack clears what was published for it.
    lsp.notify("textDocument/didClose", json!({"textDocument": {"uri": extra_uri}}));
    lsp.notify("textDocument/didClose", json!({"textDocument": {"uri": root}}));
    assert_eq!(lsp.diagnostics(&root, None), Vec::<Value>::new());
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

#[test]
fn a_stack_that_is_not_open_gets_its_definition_on_hover_and_lenses_for_each_module() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let path = dir.join("steward.toml");
    std::fs::write(&path, GOOD).unwrap();
    let root = uri(&path);
    let mut lsp = lsp(&d);
    // Unsaved: a second module the file on disk does not have, and a line that is not valid TOML yet.
    let text = format!(
        "{GOOD}\n[modules.web]\nrun = \"serve\"\nrequires = [\"api\"]\nhealth = {{ http = \"http://127.0.0.1:1/\" }}\nres\n"
    );
    open(&mut lsp, &root, &text);

    let lenses = lsp.request("textDocument/codeLens", json!({"textDocument": {"uri": root}}));
    let got: Vec<(u64, String, String, Value)> = lenses
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["range"]["start"]["line"].as_u64().unwrap(),
                l["command"]["title"].as_str().unwrap().to_string(),
                l["command"]["command"].as_str().unwrap().to_string(),
                l["command"]["arguments"][0].clone(),
            )
        })
        .collect();
    let args = |m: &str| json!({"project": path.display().to_string(), "module": m});
    let want: Vec<(u64, String, String, Value)> = [(3, "api"), (6, "web")]
        .iter()
        .flat_map(|(line, m)| {
            [("▶ Start", "steward.startModule"), ("⟳ Restart", "steward.restartModule"), ("☰ Logs", "steward.viewLogs")]
                .map(|(t, c)| (*line, t.to_string(), c.to_string(), args(m)))
        })
        .collect();
    assert_eq!(got, want);

    // Hover on the name inside `requires` shows the definition (the stack is not open: no live state).
    let hover = lsp.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": root}, "position": after(&text, "requires = [\"a")}),
    );
    let md = hover["contents"]["value"].as_str().unwrap();
    assert!(md.starts_with("**api** — not running"), "{md}");
    assert!(md.contains("- run: `sleep 1000`"), "{md}");
    let hover = lsp
        .request("textDocument/hover", json!({"textDocument": {"uri": root}, "position": after(&text, "[modules.w")}));
    let md = hover["contents"]["value"].as_str().unwrap();
    assert!(md.contains("- requires: `api`") && md.contains("- health: `http http://127.0.0.1:1/`"), "{md}");
    assert_eq!(hover["range"], json!({"start": {"line": 6, "character": 9}, "end": {"line": 6, "character": 12}}));
    // Nothing to say about a key.
    let none =
        lsp.request("textDocument/hover", json!({"textDocument": {"uri": root}, "position": after(&text, "ru")}));
    assert_eq!(none, Value::Null);

    // Completion of the key being typed on the last line (`res` is not valid TOML).
    let items = lsp
        .request("textDocument/completion", json!({"textDocument": {"uri": root}, "position": after(&text, "\nres")}));
    let labels: Vec<&str> = items.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert!(labels.contains(&"restart") && labels.contains(&"env"), "{labels:?}");
    assert!(!labels.contains(&"requires") && !labels.contains(&"run"), "already given: {labels:?}");
    let restart = items.as_array().unwrap().iter().find(|i| i["label"] == "restart").unwrap();
    assert_eq!(restart["textEdit"]["newText"], "restart");
    assert_eq!(
        restart["textEdit"]["range"],
        json!({"start": {"line": 10, "character": 0}, "end": {"line": 10, "character": 3}})
    );
}

fn start_demo(d: &Daemon, lsp: &mut Lsp) -> (PathBuf, Vec<(String, u64)>) {
    let opened = lsp.request("steward/project/open", json!({"path": demo().display().to_string()}));
    let path = PathBuf::from(opened["path"].as_str().unwrap());
    let up = lsp.request("steward/project/up", json!({"project": opened["path"], "wait": true, "timeoutMs": 60000}));
    assert_eq!(up["ok"], true, "{up}\n{}", d.log());
    let pids = up["project"]["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["pid"].as_u64().unwrap()))
        .collect();
    (path, pids)
}

#[test]
fn on_the_running_demo_hover_shows_live_state_lenses_stop_and_completion_offers_keys_and_modules() {
    let d = Daemon::builder().demo_ports().start();
    let mut lsp = lsp(&d);
    let (path, pids) = start_demo(&d, &mut lsp);
    let root = uri(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    open(&mut lsp, &root, &text);
    assert_eq!(lsp.diagnostics(&root, Some(1)), Vec::<Value>::new(), "the demo is valid");

    // Hover on `[modules.queue]`: live state from the daemon, then the definition.
    let queue_pid = pids.iter().find(|(m, _)| m == "queue").unwrap().1;
    let hover = lsp
        .request("textDocument/hover", json!({"textDocument": {"uri": root}, "position": after(&text, "[modules.qu")}));
    let md = hover["contents"]["value"].as_str().unwrap();
    assert!(md.starts_with("**queue** — running (healthy)"), "{md}");
    assert!(md.contains(&format!("- pid: {queue_pid}\n")), "{md}");
    assert!(md.contains("- uptime: ") && md.contains("- restarts: 0"), "{md}");
    assert!(md.contains("- requires: `db@>=1, <2`"), "{md}");

    // Lenses: every module, each with Start, Stop (it runs), Restart, Logs and the project's path.
    let lenses = lsp.request("textDocument/codeLens", json!({"textDocument": {"uri": root}}));
    let lenses = lenses.as_array().unwrap();
    assert_eq!(lenses.len(), 4 * 4, "{lenses:?}");
    for name in ["db", "queue", "api", "worker"] {
        let mine: Vec<&str> = lenses
            .iter()
            .filter(|l| l["command"]["arguments"][0] == json!({"project": path.display().to_string(), "module": name}))
            .map(|l| l["command"]["command"].as_str().unwrap())
            .collect();
        assert_eq!(mine, ["steward.startModule", "steward.stopModule", "steward.restartModule", "steward.viewLogs"]);
    }

    // Completion in a new module table (unsaved): its keys, then the stack's module names inside `requires`.
    let edited = format!("{text}\n[modules.extra]\nr");
    change(&mut lsp, &root, 2, &edited);
    let items = lsp.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": root}, "position": after(&edited, "[modules.extra]\nr")}),
    );
    let labels: Vec<&str> = items.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    for key in ["run", "requires", "restart", "health"] {
        assert!(labels.contains(&key), "{key} missing from {labels:?}");
    }
    let edited = format!("{text}\n[modules.extra]\nrun = \"x\"\nrequires = [\"queue\", \"");
    change(&mut lsp, &root, 3, &edited);
    let items = lsp.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": root}, "position": after(&edited, "\"queue\", \"")}),
    );
    let labels: Vec<&str> = items.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["db", "api", "worker"], "not itself, not queue (listed already)");
    let policies = format!("{text}\n[modules.extra]\nrun = \"x\"\nrestart = \"");
    change(&mut lsp, &root, 4, &policies);
    let items = lsp.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": root}, "position": after(&policies, "restart = \"")}),
    );
    let labels: Vec<&str> = items.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["never", "on-failure", "always"]);
}
