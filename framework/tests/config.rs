//! The stack-file loader and the dependency graph, end to end: real files in temp dirs, snapshots of the
//! loaded stack or of the full rendered errors.
//!
//! Update snapshots with `UPDATE_EXPECT=1 cargo test -p steward-framework --test config`.

use std::path::Path;

use expect_test::{Expect, expect, expect_file};
use steward_framework::config::{self, Diagnostic, LoadOptions, Probe, Stack, parse_duration, parse_size};
use steward_framework::graph;

// ---- helpers -------------------------------------------------------------------------------------------

/// Writes `files` (path → content) into a fresh temp dir; `steward.toml` is the root.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn opts(profile: Option<&str>, env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        profile: profile.map(str::to_string),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        overlays: Vec::new(),
    }
}

fn load_in(dir: &Path, opts: &LoadOptions) -> Result<Stack, Vec<Diagnostic>> {
    config::load(&dir.join("steward.toml"), opts)
}

/// Loads, and renders either the stack or the errors, with the temp dir shown as `$DIR`.
fn render(dir: &Path, opts: &LoadOptions) -> String {
    let out = match load_in(dir, opts) {
        Ok(stack) => dump(&stack),
        Err(diags) => diags.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n\n"),
    };
    let real = dir.canonicalize().unwrap();
    out.replace(&real.display().to_string(), "$DIR").replace(&dir.display().to_string(), "$DIR") + "\n"
}

fn check(files: &[(&str, &str)], expect: Expect) {
    check_with(files, &opts(None, &[]), expect);
}

fn check_with(files: &[(&str, &str)], opts: &LoadOptions, expect: Expect) {
    let dir = project(files);
    expect.assert_eq(&render(dir.path(), opts));
}

fn load_ok(files: &[(&str, &str)], opts: &LoadOptions) -> (tempfile::TempDir, Stack) {
    let dir = project(files);
    match load_in(dir.path(), opts) {
        Ok(stack) => (dir, stack),
        Err(diags) => panic!("{}", config::format_diagnostics(&diags)),
    }
}

fn load_err(files: &[(&str, &str)], opts: &LoadOptions) -> Vec<Diagnostic> {
    let dir = project(files);
    load_in(dir.path(), opts).expect_err("expected errors")
}

/// A compact, stable text form of a stack (paths relative to the project dir).
fn dump(stack: &Stack) -> String {
    let rel = |p: &Path| {
        let shown =
            p.strip_prefix(&stack.dir).map(|r| r.display().to_string()).unwrap_or_else(|_| p.display().to_string());
        if shown.is_empty() { ".".to_string() } else { shown }
    };
    let mut out =
        vec![format!("project {} profile={}", stack.project, stack.active_profile.as_deref().unwrap_or("-"),)];
    out.push(format!("sources: {}", stack.sources.iter().map(|s| rel(s)).collect::<Vec<_>>().join(", ")));
    out.push(format!(
        "declared: {}",
        stack.declared.iter().map(|(n, o)| format!("{n}@{}:{}", rel(&o.file), o.line)).collect::<Vec<_>>().join(" ")
    ));
    for (name, p) in &stack.profiles {
        let default = if p.is_default { " (default)" } else { "" };
        out.push(format!("profile {name}{default}: modules={:?} env={:?}", p.modules, p.env));
    }
    for (name, m) in &stack.modules {
        out.push(format!("module {name} ({}:{})", rel(&m.origin.file), m.origin.line));
        out.push(format!("  run: {}", m.run));
        if let Some(v) = &m.version {
            out.push(format!("  version: {v}"));
        }
        out.push(format!("  cwd: {}", rel(&m.cwd)));
        if !m.env.is_empty() {
            out.push(format!(
                "  env: {}",
                m.env.iter().map(|(k, v)| format!("{k}={v:?}")).collect::<Vec<_>>().join(" ")
            ));
        }
        if !m.requires.is_empty() {
            let reqs: Vec<String> = m
                .requires
                .iter()
                .map(|r| match &r.range {
                    Some(range) => format!("{}@{range}", r.module),
                    None => r.module.clone(),
                })
                .collect();
            out.push(format!("  requires: {}", reqs.join(", ")));
        }
        if !m.provides.is_empty() {
            out.push(format!("  provides: {:?}", m.provides));
        }
        if let Some(h) = &m.health {
            let check = match &h.check {
                Probe::Exec(c) => format!("exec {c:?}"),
                Probe::Http(u) => format!("http {u}"),
                Probe::Tcp(t) => format!("tcp {t}"),
            };
            out.push(format!(
                "  health: {check} interval={:?} timeout={:?} retries={} start_period={:?}",
                h.interval, h.timeout, h.retries, h.start_period
            ));
        }
        let r = &m.restart;
        out.push(format!(
            "  restart: {:?} backoff={:?}..{:?} max_restarts={} window={:?} stable_after={:?}",
            r.policy, r.backoff_min, r.backoff_max, r.max_restarts, r.window, r.stable_after
        ));
        out.push(format!("  stop: signal={} timeout={:?}", m.stop.signal, m.stop.timeout));
        if !m.watch.is_empty() {
            out.push(format!("  watch: {:?}", m.watch));
        }
        if m.limits.memory.is_some() || m.limits.open_files.is_some() {
            out.push(format!("  limits: memory={:?} open_files={:?}", m.limits.memory, m.limits.open_files));
        }
        if let Some(b) = &m.backup {
            let mut line = format!("  backup: run={:?} output={:?}", b.run, b.output);
            if let Some(r) = &b.restore {
                line.push_str(&format!(" restore={r:?}"));
            }
            if b.timeout != steward_framework::config::BackupSpec::DEFAULT_TIMEOUT {
                line.push_str(&format!(" timeout={:?}", b.timeout));
            }
            out.push(line);
        }
    }
    out.join("\n")
}

// ---- data-driven fixtures ------------------------------------------------------------------------------

/// Every directory under `tests/fixtures/config/` is a project; `expected.txt` beside its `steward.toml`
/// is the rendered stack or errors. Add a directory to add a case.
#[test]
fn fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut cases: Vec<_> =
        std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let profile = std::fs::read_to_string(case.join("profile.txt")).ok().map(|s| s.trim().to_string());
        let opts = opts(profile.as_deref(), &[("HOME", "/home/dev")]);
        expect_file![format!("fixtures/config/{name}/expected.txt")].assert_eq(&render(&case, &opts));
    }
}

// ---- every key and shorthand ---------------------------------------------------------------------------

#[test]
fn every_key() {
    check(
        &[
            (
                "steward.toml",
                r#"
[project]
name = "shop"

[defaults]
restart = { policy = "always", backoff = "1s..1m", max_restarts = 9, window = "2m", stable_after = "30s" }
stop = { signal = "SIGINT", timeout = "3s" }
health = { interval = "2s", timeout = "500ms", retries = 5, start_period = "1s" }
env = { LOG = "debug" }

[modules.db]
run = "postgres -p ${PORT}"
version = "15.2"
env = { PORT = 5432, FAST = true }
provides = { db = "postgres://127.0.0.1:${PORT}/shop" }
health = { tcp = "127.0.0.1:${PORT}", retries = 30 }
backup = { run = "pg_dump -p ${PORT} shop", output = "db.sql", restore = "psql -p ${PORT} shop", timeout = "90s" }

[modules.api]
run = "cargo run -p api"
cwd = "api"
requires = ["db@>=15, <17"]
env = { DATABASE_URL = "${service.db}" }
health.http = "http://localhost/health"
restart = "never"
stop.signal = "usr2"
watch = ["src/**/*.rs", "Cargo.toml"]
limits = { memory = "1GiB", open_files = 4096 }
"#,
            ),
            ("api/.keep", ""),
        ],
        expect![[r#"
            project shop profile=-
            sources: steward.toml
            declared: api@steward.toml:19 db@steward.toml:11
            module api (steward.toml:19)
              run: cargo run -p api
              cwd: api
              env: DATABASE_URL="postgres://127.0.0.1:5432/shop" LOG="debug"
              requires: db@>=15, <17
              health: http http://localhost:80/health interval=2s timeout=500ms retries=5 start_period=1s
              restart: Never backoff=1s..60s max_restarts=9 window=120s stable_after=30s
              stop: signal=12 timeout=3s
              watch: ["src/**/*.rs", "Cargo.toml"]
              limits: memory=Some(1073741824) open_files=Some(4096)
            module db (steward.toml:11)
              run: postgres -p 5432
              version: 15.2.0
              cwd: .
              env: FAST="true" LOG="debug" PORT="5432"
              provides: {"db": "postgres://127.0.0.1:5432/shop"}
              health: tcp 127.0.0.1:5432 interval=2s timeout=500ms retries=30 start_period=1s
              restart: Always backoff=1s..60s max_restarts=9 window=120s stable_after=30s
              stop: signal=2 timeout=3s
              backup: run="pg_dump -p 5432 shop" output="db.sql" restore="psql -p 5432 shop" timeout=90s
        "#]],
    );
}

#[test]
fn built_in_defaults() {
    check(
        &[("steward.toml", "[project]\nname = \"p\"\n[modules.a]\nrun = \"a\"\nhealth = { exec = \"true\" }\n")],
        expect![[r#"
            project p profile=-
            sources: steward.toml
            declared: a@steward.toml:3
            module a (steward.toml:3)
              run: a
              cwd: .
              health: exec "true" interval=1s timeout=1s retries=3 start_period=0ns
              restart: OnFailure backoff=100ms..30s max_restarts=5 window=60s stable_after=10s
              stop: signal=15 timeout=10s
        "#]],
    );
}

#[test]
fn project_name_defaults_to_the_directory_name() {
    let (dir, stack) = load_ok(&[("steward.toml", "")], &opts(None, &[]));
    assert_eq!(Some(stack.project.as_str()), dir.path().file_name().and_then(|n| n.to_str()));
    assert!(stack.modules.is_empty());
}

// ---- env layering and env files ------------------------------------------------------------------------

#[test]
fn env_layers_defaults_then_env_files_then_module_then_profile() {
    let files = [
        (
            "steward.toml",
            r#"
[defaults]
env = { A = "defaults", B = "defaults", C = "defaults", D = "defaults" }
[modules.m]
run = "m"
env_file = ["one.env", "two.env"]
env = { C = "module", D = "module" }
[profiles.p]
env = { D = "profile" }
"#,
        ),
        ("one.env", "B=one\nC=one\nX=one\n"),
        ("two.env", "X=two\n"),
    ];
    let (_dir, stack) = load_ok(&files, &opts(Some("p"), &[]));
    let env = &stack.modules["m"].env;
    let got: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(got, ["A=defaults", "B=one", "C=module", "D=profile", "X=two"]);
}

#[test]
fn a_variable_can_extend_its_own_lower_layer() {
    let files = [(
        "steward.toml",
        r#"
[defaults]
env = { PATH = "/opt/bin:${PATH}" }
[modules.m]
run = "m"
env = { PATH = "./bin:${PATH}", OTHER = "${PATH}" }
"#,
    )];
    let (_dir, stack) = load_ok(&files, &opts(None, &[("PATH", "/usr/bin")]));
    assert_eq!(stack.modules["m"].env["PATH"], "./bin:/opt/bin:/usr/bin");
    // Other variables see the top layer.
    assert_eq!(stack.modules["m"].env["OTHER"], "./bin:/opt/bin:/usr/bin");
}

#[test]
fn missing_and_malformed_env_files_are_located() {
    check(
        &[
            ("steward.toml", "[modules.m]\nrun = \"m\"\nenv_file = [\"ok.env\", \"missing.env\"]\n"),
            ("ok.env", "GOOD=1\nthis line is wrong\n2BAD=x\nU=\"a\\t${NOPE}\"\nQ=\"unterminated\n"),
        ],
        expect![[r#"
            error: env file `missing.env`: not found
             --> $DIR/steward.toml:3:23
              |
            3 | env_file = ["ok.env", "missing.env"]
              |                       ^^^^^^^^^^^^^
              = help: env files are relative to the stack file's directory ($DIR)

            error: expected `KEY=VALUE`
             --> $DIR/ok.env:2:1
              |
            2 | this line is wrong
              | ^^^^^^^^^^^^^^^^^^
              = expected: `KEY=VALUE`, `export KEY=VALUE`, a `# comment` or a blank line

            error: invalid variable name `2BAD`
             --> $DIR/ok.env:3:1
              |
            3 | 2BAD=x
              | ^^^^
              = expected: letters, digits and `_`, not starting with a digit

            error: unknown variable `NOPE` in module `m`
             --> $DIR/ok.env:4:7
              |
            4 | U="a\t${NOPE}"
              |       ^^^^^^^
              = help: define `NOPE` in the module's `env`, or give a default: `${NOPE:-value}`

            error: unterminated "-quoted value
             --> $DIR/ok.env:5:3
              |
            5 | Q="unterminated
              |   ^^^^^^^^^^^^^
              = expected: a closing `"`
        "#]],
    );
}

#[test]
fn env_values_accept_integers_and_booleans_as_strings() {
    let (_dir, stack) = load_ok(
        &[("steward.toml", "[modules.m]\nrun = \"m\"\nenv = { N = 8080, B = false, S = \"x\" }\n")],
        &opts(None, &[]),
    );
    let env = &stack.modules["m"].env;
    assert_eq!((env["N"].as_str(), env["B"].as_str(), env["S"].as_str()), ("8080", "false", "x"));
}

// ---- interpolation -------------------------------------------------------------------------------------

#[test]
fn interpolation_escapes_defaults_and_services() {
    let files = [(
        "steward.toml",
        r#"
[modules.db]
run = "db"
env = { PORT = "5432", EMPTY = "" }
provides = { db = "postgres://${HOST:-127.0.0.1}:${PORT}/app", admin = "${service.db}/admin" }

[modules.api]
run = "echo $$HOME $$$$ $1 ${EMPTY:-fallback} ${UNSET:-${USER}} ${service.admin}"
requires = ["db"]
env = { EMPTY = "", URL = "${service.db}" }
cwd = "${SUB}"
"#,
    )];
    let dir = project(&files);
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let stack = load_in(dir.path(), &opts(None, &[("USER", "dev"), ("SUB", "sub")])).unwrap();
    let api = &stack.modules["api"];
    assert_eq!(api.run, "echo $HOME $$ $1 fallback dev postgres://127.0.0.1:5432/app/admin");
    assert_eq!(api.env["URL"], "postgres://127.0.0.1:5432/app");
    assert_eq!(api.cwd, dir.path().canonicalize().unwrap().join("sub"));
    assert_eq!(stack.modules["db"].provides["admin"], "postgres://127.0.0.1:5432/app/admin");
}

#[test]
fn interpolation_errors_point_inside_the_string() {
    let diags = load_err(
        &[("steward.toml", "[modules.m]\nrun = 'a ${X} b ${Y:-ok} ${Z}'\nenv = { E = \"\\t${W}\" }\n")],
        &opts(None, &[]),
    );
    let at: Vec<(u32, u32, u32, u32, &str)> =
        diags.iter().map(|d| (d.line, d.column, d.end_line, d.end_column, d.key.as_deref().unwrap_or(""))).collect();
    assert_eq!(
        at,
        [(2, 10, 2, 14, "modules.m.run"), (2, 26, 2, 30, "modules.m.run"), (3, 16, 3, 20, "modules.m.env.E")]
    );
}

#[test]
fn services_and_env_references_may_not_loop() {
    check(
        &[(
            "steward.toml",
            r#"
[modules.a]
run = "a"
provides = { x = "${service.x}" }
[modules.b]
run = "b"
# A variable that reads itself has no lower layer to read here: it is simply unknown.
env = { SELF = "${SELF}", P = "${Q}", Q = "${P:-x}" }
"#,
        )],
        expect![[r#"
            error: interpolation cycle: `service.x` → `service.x`
             --> $DIR/steward.toml:4:19
              |
            4 | provides = { x = "${service.x}" }
              |                   ^^^^^^^^^^^^
              = help: a value cannot depend on itself; use `${NAME:-default}` or a literal somewhere in the chain

            error: unknown variable `SELF` in module `b`
             --> $DIR/steward.toml:8:17
              |
            8 | env = { SELF = "${SELF}", P = "${Q}", Q = "${P:-x}" }
              |                 ^^^^^^^
              = help: define `SELF` in the module's `env`, or give a default: `${SELF:-value}`

            error: interpolation cycle: `P` → `Q` → `P`
             --> $DIR/steward.toml:8:44
              |
            8 | env = { SELF = "${SELF}", P = "${Q}", Q = "${P:-x}" }
              |                                            ^^^^^^^
              = help: a value cannot depend on itself; use `${NAME:-default}` or a literal somewhere in the chain
        "#]],
    );
}

// ---- profiles ------------------------------------------------------------------------------------------

const PROFILE_STACK: &str = r#"
[project]
profile = "dev"

[modules.db]
run = "db"
[modules.cache]
run = "cache"
[modules.api]
run = "api"
requires = ["db"]
[modules.worker]
run = "worker"
requires = ["api", "cache"]

[profiles.dev]
modules = ["api"]
env = { MODE = "dev" }
[profiles.all]
"#;

#[test]
fn profile_pulls_in_transitive_requires() {
    let (_dir, stack) = load_ok(&[("steward.toml", PROFILE_STACK)], &opts(None, &[]));
    assert_eq!(stack.active_profile.as_deref(), Some("dev"));
    assert_eq!(stack.modules.keys().collect::<Vec<_>>(), ["api", "db"]);
    assert_eq!(stack.modules["db"].env["MODE"], "dev");
    assert_eq!(stack.declared.keys().collect::<Vec<_>>(), ["api", "cache", "db", "worker"]);

    let (_dir, stack) = load_ok(&[("steward.toml", PROFILE_STACK)], &opts(Some("all"), &[]));
    assert_eq!(stack.modules.len(), 4);
    assert!(stack.modules["db"].env.is_empty());
}

#[test]
fn no_profile_means_all_modules() {
    let text = PROFILE_STACK.replace("profile = \"dev\"", "");
    let (_dir, stack) = load_ok(&[("steward.toml", &text)], &opts(None, &[]));
    assert_eq!(stack.active_profile, None);
    assert_eq!(stack.modules.len(), 4);
}

#[test]
fn unknown_profiles_are_errors() {
    check_with(
        &[("steward.toml", PROFILE_STACK)],
        &opts(Some("dve"), &[]),
        expect![[r#"
        error: unknown profile `dve` (requested profile)
         --> $DIR/steward.toml:1:1
          |
        1 | 
          | ^
          = expected: one of dev, all
          = help: did you mean `dev`?
    "#]],
    );
    let text = PROFILE_STACK.replace("profile = \"dev\"", "profile = \"prod\"");
    check(
        &[("steward.toml", &text)],
        expect![[r#"
        error: unknown profile `prod` in `[project] profile`
         --> $DIR/steward.toml:3:11
          |
        3 | profile = "prod"
          |           ^^^^^^
          = expected: one of dev, all
    "#]],
    );
}

// ---- editor overlay ------------------------------------------------------------------------------------

#[test]
fn overlay_replaces_a_file_and_can_add_an_unsaved_module_file() {
    let dir = project(&[("steward.toml", "[modules.a]\nrun = \"a\"\n")]);
    let mut o = opts(None, &[]);
    o.overlays = vec![(dir.path().join("steward.toml"), "[modules.a]\nrun = \"edited\"\n".into())];
    assert_eq!(load_in(dir.path(), &o).unwrap().modules["a"].run, "edited");

    o.overlays = vec![(dir.path().join("modules.d/new.toml"), "[modules.b]\nrun = \"b\"\nhelth = {}\n".into())];
    let diags = load_in(dir.path(), &o).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert!(diags[0].file.ends_with("modules.d/new.toml"));
    assert_eq!((diags[0].line, diags[0].column), (3, 1));
    assert_eq!(diags[0].help.as_deref(), Some("did you mean `health`?"));
}

#[test]
fn several_overlays_at_once_and_the_files_a_load_read() {
    let dir = project(&[
        ("base.toml", "[defaults]\nstop = { timeout = \"1s\" }\n"),
        ("steward.toml", "extends = \"base.toml\"\n[modules.a]\nrun = \"a\"\n"),
        ("modules.d/b.toml", "[modules.b]\nrun = \"b\"\n"),
    ]);
    let mut o = opts(None, &[]);
    o.overlays = vec![
        (dir.path().join("steward.toml"), "extends = \"base.toml\"\n[modules.a]\nrun = \"a2\"\n".into()),
        (dir.path().join("modules.d/b.toml"), "[modules.b]\nrun = \"b2\"\nrequires = [\"a\"]\n".into()),
    ];
    let report = config::load_report(&dir.path().join("steward.toml"), &o);
    let stack = report.result.unwrap();
    assert_eq!((stack.modules["a"].run.as_str(), stack.modules["b"].run.as_str()), ("a2", "b2"));
    let names: Vec<String> =
        report.files.iter().map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string()).collect();
    assert_eq!(names, ["steward.toml", "base.toml", "modules.d/b.toml"]);

    // A failed load still says what it read.
    o.overlays = vec![(dir.path().join("base.toml"), "[defaults\n".into())];
    let report = config::load_report(&dir.path().join("steward.toml"), &o);
    let diags = report.result.unwrap_err();
    assert!(diags[0].file.ends_with("base.toml"), "{diags:?}");
    assert_eq!(report.files.len(), 3);
}

// ---- diagnostics ---------------------------------------------------------------------------------------

#[test]
fn diagnostic_fields_for_editors() {
    let diags = load_err(
        &[(
            "steward.toml",
            "[modules.api]\nrun = \"x\"\n[modules.api.health]\nhttp = \"http://h:1/\"\nintervall = \"1s\"\n",
        )],
        &opts(None, &[]),
    );
    let d = &diags[0];
    assert_eq!((d.line, d.column, d.end_line, d.end_column), (5, 1, 5, 10));
    assert_eq!(d.key.as_deref(), Some("modules.api.health.intervall"));
    assert_eq!(d.message, "unknown key `intervall` in `health` of module `api`");
    assert_eq!(d.help.as_deref(), Some("did you mean `interval`?"));
    assert_eq!(d.expected.as_deref(), Some("one of exec, http, tcp, interval, timeout, retries, start_period"));
    assert_eq!(
        &"[modules.api]\nrun = \"x\"\n[modules.api.health]\nhttp = \"http://h:1/\"\nintervall = \"1s\"\n"
            [d.byte_range.clone()],
        "intervall"
    );
}

#[test]
fn unreadable_root_file() {
    let dir = project(&[]);
    let diags = load_in(dir.path(), &opts(None, &[])).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert!(diags[0].message.starts_with("cannot read"), "{}", diags[0].message);
}

// ---- strict units --------------------------------------------------------------------------------------

#[test]
fn duration_and_size_tables() {
    use std::time::Duration;
    let durations = [
        ("500ms", Some(Duration::from_millis(500))),
        ("10s", Some(Duration::from_secs(10))),
        ("1m", Some(Duration::from_secs(60))),
        ("2h", Some(Duration::from_secs(7200))),
        ("1m30s", Some(Duration::from_secs(90))),
        ("0s", Some(Duration::ZERO)),
        ("10", None),
        ("-1s", None),
        ("1 s", None),
        ("1.5s", None),
        ("30s1m", None),
        ("1d", None),
        ("", None),
    ];
    for (input, want) in durations {
        assert_eq!(parse_duration(input).ok(), want, "{input:?}");
    }
    let sizes = [
        ("512MiB", Some(512 * 1024 * 1024)),
        ("1GiB", Some(1 << 30)),
        ("100KiB", Some(102_400)),
        ("1GB", Some(1_000_000_000)),
        ("4096B", Some(4096)),
        ("4096", None),
        ("1 GiB", None),
        ("1.5GiB", None),
        ("1gib", None),
        ("-1B", None),
    ];
    for (input, want) in sizes {
        assert_eq!(parse_size(input).ok(), want, "{input:?}");
    }
}

// ---- graph ---------------------------------------------------------------------------------------------

const GRAPH_STACK: &str = r#"
[modules.db]
run = "db"
[modules.queue]
run = "q"
[modules.api]
run = "api"
requires = ["db", "queue"]
[modules.worker]
run = "w"
requires = ["queue", "db"]
[modules.web]
run = "web"
requires = ["api"]
"#;

#[test]
fn start_order_levels_and_dependents() {
    let (_dir, stack) = load_ok(&[("steward.toml", GRAPH_STACK)], &opts(None, &[]));
    assert_eq!(graph::start_order(&stack.modules), [vec!["db", "queue"], vec!["api", "worker"], vec!["web"]]);
    assert_eq!(graph::stop_order(&stack.modules)[0], ["web"]);
    let dependents = graph::dependents(&stack.modules);
    assert_eq!(dependents["db"], ["api", "worker"]);
    assert_eq!(dependents["web"], Vec::<String>::new());
}

#[test]
fn start_order_ignores_modules_outside_the_set() {
    let (_dir, mut stack) = load_ok(&[("steward.toml", GRAPH_STACK)], &opts(None, &[]));
    stack.modules.remove("db");
    assert_eq!(graph::start_order(&stack.modules), [vec!["queue"], vec!["api", "worker"], vec!["web"]]);
}

#[test]
fn find_cycle_returns_a_closed_path() {
    let edges = |spec: &[(&str, &[&str])]| -> std::collections::BTreeMap<String, Vec<String>> {
        spec.iter().map(|(n, ts)| (n.to_string(), ts.iter().map(|t| t.to_string()).collect())).collect()
    };
    assert_eq!(
        graph::find_cycle(&edges(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(graph::find_cycle(&edges(&[("a", &["b", "c"]), ("b", &["c"]), ("c", &[])])), None);
}

// ---- tidy ----------------------------------------------------------------------------------------------

/// The reference page documents every key the loader accepts (the lists in `config::schema` drive both
/// the loader's "unknown key" errors and editor completion, so this keeps docs and code together).
#[test]
fn docs_mention_every_key() {
    use steward_framework::config::schema;
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/stack-file.md")).unwrap();
    let lists = [
        schema::TOP_KEYS,
        schema::PROJECT_KEYS,
        schema::DEFAULTS_KEYS,
        schema::MODULE_KEYS,
        schema::HEALTH_KEYS,
        schema::RESTART_KEYS,
        schema::RESTART_POLICIES,
        schema::STOP_KEYS,
        schema::LIMITS_KEYS,
        schema::BACKUP_KEYS,
        schema::PROFILE_KEYS,
        schema::ALERTS_KEYS,
    ];
    let missing: Vec<&str> = lists
        .iter()
        .flat_map(|l| l.iter().copied())
        .filter(|k| ![format!("`{k}`"), format!("`[{k}]"), format!("`[{k}.")].iter().any(|form| docs.contains(form)))
        .collect();
    assert!(missing.is_empty(), "docs/stack-file.md does not mention: {missing:?}");
}

#[test]
fn alerts_table_overrides_defaults_and_errors_are_located() {
    let (_d, stack) = load_ok(
        &[(
            "steward.toml",
            "[alerts]\ncpu_warning = 60\nipc_for = \"30s\"\nhealth = false\n[modules.a]\nrun = \"true\"\n",
        )],
        &opts(None, &[]),
    );
    assert_eq!(stack.alerts.cpu.warning, 60.0);
    assert_eq!(stack.alerts.cpu.critical, 90.0);
    assert_eq!(stack.alerts.ipc_for_ms, 30_000);
    assert!(!stack.alerts.health);
    let errors = load_err(
        &[(
            "steward.toml",
            "[alerts]\ncpu_warning = 120\ndisk_warning = 90\ndisk_critical = 80\nhealthy = true\n[modules.a]\nrun = \"true\"\n",
        )],
        &opts(None, &[]),
    );
    let text: Vec<String> = errors.iter().map(|e| format!("{}:{} {}", e.line, e.column, e.message)).collect();
    assert!(text.iter().any(|t| t.starts_with("2:15") && t.contains("out of range: 120")), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("4:17") && t.contains("below `disk_warning`")), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("5:1") && t.contains("healthy")), "{text:?}");
}
