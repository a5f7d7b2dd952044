//! Scenario tests of the pure core: a simulated clock, inputs in, actions out. No processes.

use super::*;
use crate::config::{HealthSpec, Limits, Origin, Probe, Requirement, RestartSpec, StopSpec};
use std::path::PathBuf;

fn module(name: &str, requires: &[&str], probe: bool) -> ModuleSpec {
    ModuleSpec {
        name: name.into(),
        version: None,
        run: format!("run-{name}"),
        cwd: PathBuf::from("/tmp"),
        env: BTreeMap::new(),
        requires: requires.iter().map(|r| Requirement { module: r.to_string(), range: None }).collect(),
        provides: BTreeMap::new(),
        health: probe.then(|| HealthSpec {
            check: Probe::Tcp("127.0.0.1:1".into()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            retries: 2,
            start_period: Duration::ZERO,
        }),
        restart: RestartSpec { max_restarts: 3, ..RestartSpec::default() },
        stop: StopSpec::default(),
        watch: vec![],
        limits: Limits::default(),
        backup: None,
        origin: Origin::default(),
    }
}

fn stack(mods: Vec<ModuleSpec>) -> Stack {
    Stack {
        project: "t".into(),
        file: PathBuf::from("/tmp/steward.toml"),
        dir: PathBuf::from("/tmp"),
        sources: vec![],
        modules: mods.into_iter().map(|m| (m.name.clone(), m)).collect(),
        profiles: BTreeMap::new(),
        active_profile: None,
        declared: BTreeMap::new(),
        alerts: Default::default(),
    }
}

/// db (probe) and cache (no probe) are independent; api requires both.
fn demo() -> Stack {
    stack(vec![module("db", &[], true), module("cache", &[], false), module("api", &["db", "cache"], false)])
}

struct Sim {
    core: Core,
    now: Instant,
    pids: u32,
    log: Vec<Action>,
}

impl Sim {
    fn new(stack: Stack) -> Sim {
        let now = Instant::now();
        let (core, _) = Core::new(stack, 1, 7, now);
        Sim { core, now, pids: 100, log: vec![] }
    }

    /// Feed an input; auto-answer every Spawn with Spawned (as the real edge does synchronously).
    fn feed(&mut self, input: Input) -> Vec<Action> {
        let mut pending = vec![input];
        let mut all = vec![];
        while let Some(i) = pending.pop() {
            let acts = self.core.handle(i, self.now);
            for a in &acts {
                if let Action::Spawn { run, spec } = a {
                    self.pids += 1;
                    pending.insert(0, Input::Spawned { module: spec.name.clone(), run: *run, pid: self.pids });
                }
            }
            all.extend(acts);
        }
        self.log.extend(all.clone());
        all
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn state(&self, m: &str) -> State {
        self.core.state(m).cloned().unwrap()
    }

    fn run(&self, m: &str) -> RunId {
        self.core
            .state(m)
            .and_then(|s| s.run())
            .map(|(r, _)| r)
            .unwrap_or_else(|| panic!("{m} not live: {:?}", self.state(m)))
    }

    fn exit(&mut self, m: &str, code: Option<i32>, signal: Option<i32>) -> Vec<Action> {
        let run = self.run(m);
        self.feed(Input::Exited { module: m.into(), run, code, signal })
    }

    fn probe(&mut self, m: &str, ok: bool) -> Vec<Action> {
        let run = self.run(m);
        self.feed(Input::Probe { module: m.into(), run, ok, detail: "connection refused".into() })
    }
}

fn spawned(acts: &[Action]) -> Vec<String> {
    acts.iter()
        .filter_map(|a| if let Action::Spawn { spec, .. } = a { Some(spec.name.clone()) } else { None })
        .collect()
}

fn stopped(acts: &[Action]) -> Vec<String> {
    acts.iter().filter_map(|a| if let Action::Stop { module, .. } = a { Some(module.clone()) } else { None }).collect()
}

fn transitions(acts: &[Action]) -> Vec<String> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Emit(EventKind::Transition(t)) => {
                Some(format!("{}: {} → {}", t.module, t.from.name(), t.to.name()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn up_starts_in_dependency_order_gated_on_health() {
    let mut sim = Sim::new(demo());
    let acts = sim.feed(Input::Up);
    // Independent modules start together; api waits.
    assert_eq!(spawned(&acts), vec!["cache", "db"]);
    assert!(acts.contains(&Action::StartProbe { module: "db".into(), run: sim.run("db") }));
    assert_eq!(sim.state("cache").name(), "running");
    assert_eq!(sim.state("db").name(), "starting");
    let st = sim.core.status(sim.now);
    let api = st.iter().find(|s| s.name == "api").unwrap();
    assert_eq!(api.waiting_for, vec!["db"]);
    // A failed probe (within retries) changes nothing; a passing one releases api.
    assert!(spawned(&sim.probe("db", false)).is_empty());
    let acts = sim.probe("db", true);
    assert_eq!(spawned(&acts), vec!["api"]);
    assert!(sim.core.state("api").unwrap().is_ready());
}

#[test]
fn down_stops_dependents_first() {
    let mut sim = Sim::new(demo());
    sim.feed(Input::Up);
    sim.probe("db", true);
    let acts = sim.feed(Input::Down);
    assert_eq!(stopped(&acts), vec!["api"], "requirements wait for api to exit");
    let acts = sim.exit("api", None, Some(15));
    let mut s = stopped(&acts);
    s.sort();
    assert_eq!(s, vec!["cache", "db"]);
    sim.exit("db", None, Some(15));
    sim.exit("cache", Some(0), None);
    assert!(sim.core.is_quiet());
    assert_eq!(sim.state("api"), State::Stopped);
    // Nothing restarts after a requested stop.
    assert!(sim.log.iter().all(|a| !matches!(a, Action::SetTimer { .. })));
}

#[test]
fn crash_backs_off_then_restarts_and_stale_timers_are_ignored() {
    let mut sim = Sim::new(stack(vec![module("w", &[], false)]));
    sim.feed(Input::Up);
    let first = sim.run("w");
    let acts = sim.exit("w", Some(1), None);
    let (token, after) = acts
        .iter()
        .find_map(|a| if let Action::SetTimer { token, after, .. } = a { Some((*token, *after)) } else { None })
        .expect("a backoff timer");
    assert!(after >= Duration::from_millis(80) && after <= Duration::from_millis(120), "{after:?}");
    assert!(matches!(sim.state("w"), State::Backoff { attempt: 1, .. }));
    // A stale token does nothing.
    assert!(spawned(&sim.feed(Input::Timer { module: "w".into(), token: token - 1 })).is_empty());
    sim.advance(after);
    let acts = sim.feed(Input::Timer { module: "w".into(), token });
    assert_eq!(spawned(&acts), vec!["w"]);
    assert_ne!(sim.run("w"), first);
    // An exit report for the old run is ignored.
    let acts = sim.feed(Input::Exited { module: "w".into(), run: first, code: Some(1), signal: None });
    assert!(acts.is_empty());
    assert_eq!(sim.state("w").name(), "running");
}

#[test]
fn restart_loop_becomes_failed_with_last_status() {
    let mut sim = Sim::new(stack(vec![module("w", &[], false)]));
    sim.feed(Input::Up);
    let mut delays = vec![];
    for _ in 0..3 {
        let acts = sim.exit("w", Some(3), None);
        let (token, after) = acts
            .iter()
            .find_map(|a| if let Action::SetTimer { token, after, .. } = a { Some((*token, *after)) } else { None })
            .unwrap();
        delays.push(after);
        sim.advance(after);
        sim.feed(Input::Timer { module: "w".into(), token });
    }
    assert!(delays[0] < delays[1] && delays[1] < delays[2], "exponential: {delays:?}");
    sim.exit("w", Some(3), None);
    match sim.state("w") {
        State::Failed { reason } => {
            assert!(reason.starts_with("restart loop: 3 restarts") && reason.ends_with("status 3"), "{reason}")
        }
        s => panic!("{s:?}"),
    }
    // An explicit start clears the loop.
    let acts = sim.feed(Input::Start("w".into()));
    assert_eq!(spawned(&acts), vec!["w"]);
}

#[test]
fn concurrent_restarts_never_make_two_processes() {
    let mut sim = Sim::new(demo());
    sim.feed(Input::Up);
    // Restart db while it is still starting, twice.
    let a1 = sim.feed(Input::Restart("db".into()));
    let a2 = sim.feed(Input::Restart("db".into()));
    assert_eq!(stopped(&a1), vec!["db"]);
    assert!(stopped(&a2).is_empty() && spawned(&a2).is_empty());
    // Only after the old run is gone does a new one start — exactly one.
    let acts = sim.exit("db", None, Some(15));
    assert_eq!(spawned(&acts), vec!["db"]);
    let acts = sim.feed(Input::Restart("db".into()));
    let acts2 = sim.feed(Input::Start("db".into()));
    assert_eq!(stopped(&acts), vec!["db"]);
    assert!(spawned(&acts2).is_empty(), "start while stopping must not spawn");
    let acts = sim.exit("db", None, Some(15));
    assert_eq!(spawned(&acts), vec!["db"]);
    let live: Vec<_> = sim.core.live_runs().into_iter().filter(|(m, _, _)| m == "db").collect();
    assert_eq!(live.len(), 1);
}

#[test]
fn failed_liveness_probe_restarts_not_just_kills() {
    let mut sim = Sim::new(stack(vec![module("db", &[], true)]));
    sim.feed(Input::Up);
    sim.probe("db", true);
    sim.probe("db", false);
    let acts = sim.probe("db", false);
    assert_eq!(
        transitions(&acts),
        vec!["db: running → running", "db: running → stopping"],
        "unhealthy is recorded, then the run is stopped"
    );
    let acts = sim.exit("db", None, Some(15));
    let timer = acts
        .iter()
        .find_map(|a| if let Action::SetTimer { token, after, .. } = a { Some((*token, *after)) } else { None });
    let (token, after) = timer.expect("restart scheduled after a liveness failure");
    sim.advance(after);
    assert_eq!(spawned(&sim.feed(Input::Timer { module: "db".into(), token })), vec!["db"]);
}

#[test]
fn readiness_that_never_passes_is_a_failure() {
    let mut sim = Sim::new(stack(vec![module("db", &[], true)]));
    sim.feed(Input::Up);
    // Fast early probes do not use up the budget (retries 2 × interval 1s).
    for _ in 0..10 {
        assert!(stopped(&sim.probe("db", false)).is_empty());
    }
    sim.advance(Duration::from_millis(1999));
    assert!(stopped(&sim.probe("db", false)).is_empty());
    sim.advance(Duration::from_millis(1));
    let acts = sim.probe("db", false);
    assert_eq!(stopped(&acts), vec!["db"]);
    let acts = sim.exit("db", None, Some(15));
    assert!(transitions(&acts).contains(&"db: stopping → backoff".to_string()));
}

#[test]
fn start_period_ignores_early_failures() {
    let mut s = module("db", &[], true);
    s.health.as_mut().unwrap().start_period = Duration::from_secs(5);
    let mut sim = Sim::new(stack(vec![s]));
    sim.feed(Input::Up);
    sim.probe("db", true);
    // Liveness failures inside the start period do not count.
    for _ in 0..5 {
        assert!(stopped(&sim.probe("db", false)).is_empty());
    }
    sim.advance(Duration::from_secs(5));
    sim.probe("db", false);
    assert_eq!(stopped(&sim.probe("db", false)), vec!["db"]);
}

#[test]
fn policy_never_and_clean_exit() {
    let mut s = module("job", &[], false);
    s.restart.policy = RestartPolicy::Never;
    let mut sim = Sim::new(stack(vec![s, module("w", &[], false)]));
    sim.feed(Input::Up);
    sim.exit("job", Some(1), None);
    assert_eq!(sim.state("job"), State::Exited { code: Some(1), signal: None });
    sim.exit("w", Some(0), None);
    assert_eq!(sim.state("w"), State::Exited { code: Some(0), signal: None }, "on-failure leaves a clean exit alone");
}

#[test]
fn spawn_failure_is_reported_and_dependents_wait() {
    let mut sim = Sim::new(stack(vec![module("db", &[], false), module("api", &["db"], false)]));
    let now = sim.now;
    let acts = sim.core.handle(Input::Up, now);
    let Some(Action::Spawn { run, .. }) = acts.first() else { panic!("{acts:?}") };
    let acts = sim
        .core
        .handle(Input::SpawnFailed { module: "db".into(), run: *run, error: "command not found: `pg`".into() }, now);
    assert_eq!(transitions(&acts), vec!["db: resolved → failed"]);
    assert_eq!(sim.state("db"), State::Failed { reason: "could not start: command not found: `pg`".into() });
    assert_eq!(sim.core.status(now)[1].waiting_for, vec!["db"]);
}

#[test]
fn memory_limit_stops_with_reason_and_restarts() {
    let mut s = module("hog", &[], false);
    s.limits.memory = Some(1000);
    let mut sim = Sim::new(stack(vec![s]));
    sim.feed(Input::Up);
    let run = sim.run("hog");
    assert!(sim.feed(Input::Memory { module: "hog".into(), run, rss: 900 }).is_empty());
    let acts = sim.feed(Input::Memory { module: "hog".into(), run, rss: 2048 });
    assert_eq!(stopped(&acts), vec!["hog"]);
    let acts = sim.exit("hog", None, Some(15));
    let reason = acts.iter().find_map(|a| match a {
        Action::Emit(EventKind::RunEnded { reason, .. }) => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("memory limit exceeded: 2.0 KiB > 1000 B"));
    assert!(matches!(sim.state("hog"), State::Backoff { .. }));
}

#[test]
fn apply_restarts_only_what_changed() {
    let mut sim = Sim::new(demo());
    sim.feed(Input::Up);
    sim.probe("db", true);
    let (db, cache) = (sim.run("db"), sim.run("cache"));
    let mut next = demo();
    // Moving a definition within the file is not a change.
    next.modules.get_mut("db").unwrap().origin.line = 42;
    next.modules.get_mut("api").unwrap().env.insert("X".into(), "1".into());
    next.modules.remove("cache");
    next.modules.get_mut("api").unwrap().requires.retain(|r| r.module != "cache");
    next.modules.insert("worker".into(), module("worker", &["db"], false));
    let acts = sim.feed(Input::Apply(Box::new(next)));
    let mut s = stopped(&acts);
    s.sort();
    assert_eq!(s, vec!["api", "cache"]);
    assert_eq!(spawned(&acts), vec!["worker"]);
    assert_eq!(sim.run("db"), db, "db untouched");
    let acts = sim.exit("api", None, Some(15));
    assert_eq!(spawned(&acts), vec!["api"]);
    sim.feed(Input::Exited { module: "cache".into(), run: cache, code: None, signal: Some(15) });
    assert!(sim.core.state("cache").is_none(), "removed module is gone once stopped");
    assert_eq!(sim.core.spec("api").unwrap().env.get("X").map(String::as_str), Some("1"));
}

#[test]
fn watched_files_restart_and_revive_a_crashed_module() {
    let mut s = module("w", &[], false);
    s.restart.policy = RestartPolicy::Never;
    let mut sim = Sim::new(stack(vec![s]));
    sim.feed(Input::Up);
    assert_eq!(stopped(&sim.feed(Input::FilesChanged("w".into()))), vec!["w"]);
    assert_eq!(spawned(&sim.exit("w", None, Some(15))), vec!["w"]);
    sim.exit("w", Some(2), None);
    assert_eq!(spawned(&sim.feed(Input::FilesChanged("w".into()))), vec!["w"], "a fix revives it");
}

#[test]
fn stop_one_module_leaves_dependents_alone() {
    let mut sim = Sim::new(demo());
    sim.feed(Input::Up);
    sim.probe("db", true);
    let acts = sim.feed(Input::Stop("db".into()));
    assert_eq!(stopped(&acts), vec!["db"]);
    sim.exit("db", None, Some(15));
    assert_eq!(sim.state("db"), State::Stopped);
    assert_eq!(sim.state("api").name(), "running");
    // Start of api pulls its requirements back up.
    let acts = sim.feed(Input::Start("db".into()));
    assert_eq!(spawned(&acts), vec!["db"]);
}

#[test]
fn commands_that_arrive_during_a_stop_are_not_lost() {
    let mut sim = Sim::new(stack(vec![module("w", &[], false)]));
    sim.feed(Input::Up);
    // Stop, then Start while the process is still stopping: no second process now, a new run after.
    assert_eq!(stopped(&sim.feed(Input::Stop("w".into()))), vec!["w"]);
    assert!(spawned(&sim.feed(Input::Start("w".into()))).is_empty(), "one process at a time");
    assert_eq!(spawned(&sim.exit("w", None, Some(15))), vec!["w"], "the start is not lost");
    // Restart, then Stop while the restart's stop is in progress: it stays stopped.
    assert_eq!(stopped(&sim.feed(Input::Restart("w".into()))), vec!["w"]);
    sim.feed(Input::Stop("w".into()));
    assert!(spawned(&sim.exit("w", None, Some(15))).is_empty());
    assert_eq!(sim.state("w"), State::Stopped);
}

#[test]
fn a_module_removed_and_added_back_while_stopping_starts_again() {
    let mut sim = Sim::new(stack(vec![module("w", &[], false), module("x", &[], false)]));
    sim.feed(Input::Up);
    let acts = sim.feed(Input::Apply(Box::new(stack(vec![module("x", &[], false)]))));
    assert_eq!(stopped(&acts), vec!["w"]);
    // Back before its process is gone (a modules.d file deleted and restored).
    let acts = sim.feed(Input::Apply(Box::new(stack(vec![module("w", &[], false), module("x", &[], false)]))));
    assert!(spawned(&acts).is_empty(), "the old run is still stopping");
    assert_eq!(spawned(&sim.exit("w", None, Some(15))), vec!["w"]);
    assert_eq!(sim.state("w").name(), "running");
}

#[test]
fn a_removed_module_is_forgotten_however_its_run_ends() {
    let mut sim = Sim::new(stack(vec![module("db", &[], false), module("api", &["db"], false)]));
    sim.feed(Input::Up);
    let acts = sim.feed(Input::Apply(Box::new(stack(vec![]))));
    assert_eq!(stopped(&acts), vec!["api"], "db waits for api");
    // db crashes on its own while it waits.
    sim.exit("db", Some(1), None);
    assert!(sim.core.state("db").is_none(), "{:?}", sim.core.state("db"));
    sim.exit("api", None, Some(15));
    assert!(sim.core.state("api").is_none());
    assert!(sim.core.status(sim.now).is_empty());
}

#[test]
fn an_edit_undone_before_its_restart_leaves_the_original_definition() {
    let mut sim = Sim::new(stack(vec![module("w", &[], false)]));
    sim.feed(Input::Up);
    let mut edited = module("w", &[], false);
    edited.env.insert("X".into(), "2".into());
    assert_eq!(stopped(&sim.feed(Input::Apply(Box::new(stack(vec![edited]))))), vec!["w"]);
    // Undone while the old run is still stopping.
    sim.feed(Input::Apply(Box::new(stack(vec![module("w", &[], false)]))));
    let acts = sim.exit("w", None, Some(15));
    let spec = acts.iter().find_map(|a| if let Action::Spawn { spec, .. } = a { Some(spec.clone()) } else { None });
    assert_eq!(spec.expect("restarted").env, BTreeMap::new(), "runs what the file says now");
}

#[test]
fn a_fixed_definition_retries_a_failed_module() {
    let mut sim = Sim::new(stack(vec![module("w", &[], false)]));
    let now = sim.now;
    let acts = sim.core.handle(Input::Up, now);
    let Some(Action::Spawn { run, .. }) = acts.first() else { panic!("{acts:?}") };
    sim.core.handle(Input::SpawnFailed { module: "w".into(), run: *run, error: "command not found: `wx`".into() }, now);
    assert_eq!(sim.state("w").name(), "failed");
    // Reloading the same definition changes nothing; a fixed one starts it again.
    assert!(spawned(&sim.feed(Input::Apply(Box::new(stack(vec![module("w", &[], false)]))))).is_empty());
    let mut fixed = module("w", &[], false);
    fixed.run = "w --fixed".into();
    let acts = sim.feed(Input::Apply(Box::new(stack(vec![fixed]))));
    assert_eq!(spawned(&acts), vec!["w"]);
}
