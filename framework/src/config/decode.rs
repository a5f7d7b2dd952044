//! Typed decoding of the merged tree: checks every key and type, parses durations, sizes and signals,
//! and keeps spans on everything later stages may still need to complain about (templates, requires,
//! names). Every problem becomes an [`Issue`]; decoding always goes on to the end.

use std::time::Duration;

use super::diagnostic::{Issue, SourceMap, Span};
use super::interpolate::{is_service_name, is_var_name, sub_span};
use super::model::{AlertsSpec, Limits, RestartPolicy};
use super::schema;
use super::suggest;
use super::tree::{Entry, Kind, Node, Table};
use super::units;

/// A string value that may contain `${…}`, with where it was written and its dotted key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Str {
    pub value: String,
    pub span: Span,
    pub key: String,
}

/// One environment variable as written (in a TOML `env` table or an env file).
#[derive(Debug, Clone)]
pub(crate) struct EnvVar {
    pub name: String,
    pub value: Str,
    /// Not interpolated (single-quoted in an env file; numbers and booleans).
    pub literal: bool,
}

#[derive(Debug, Default)]
pub(crate) struct RawStack {
    pub project_name: Option<Str>,
    pub default_profile: Option<Str>,
    pub defaults: RawDefaults,
    pub modules: Vec<RawModule>,
    pub profiles: Vec<RawProfile>,
    pub alerts: AlertsSpec,
}

#[derive(Debug, Default)]
pub(crate) struct RawDefaults {
    pub restart: RawRestart,
    pub stop: RawStop,
    pub health: RawHealthSettings,
    pub env: Vec<EnvVar>,
}

#[derive(Debug)]
pub(crate) struct RawModule {
    pub name: String,
    /// The `NAME` in `[modules.NAME]` (of the last file that mentioned it).
    pub name_span: Span,
    pub run: Option<Str>,
    pub version: Option<semver::Version>,
    pub cwd: Option<Str>,
    pub env: Vec<EnvVar>,
    pub env_files: Vec<Str>,
    pub requires: Vec<RawRequirement>,
    pub provides: Vec<(String, Span, Str)>,
    pub health: Option<RawHealth>,
    pub restart: RawRestart,
    pub stop: RawStop,
    pub watch: Vec<Str>,
    pub limits: Limits,
    pub backup: Option<RawBackup>,
}

/// A module's `backup` table as written.
#[derive(Debug, Clone)]
pub(crate) struct RawBackup {
    pub run: Str,
    pub output: String,
    pub restore: Option<Str>,
    pub timeout: Option<Duration>,
}

#[derive(Debug)]
pub(crate) struct RawRequirement {
    pub module: String,
    pub range: Option<semver::VersionReq>,
    /// The whole entry and the name part inside it.
    pub span: Span,
    pub name_span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeKind {
    Exec,
    Http,
    Tcp,
}

#[derive(Debug)]
pub(crate) struct RawHealth {
    pub check: Option<(ProbeKind, Str)>,
    pub settings: RawHealthSettings,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct RawHealthSettings {
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct RawRestart {
    pub policy: Option<RestartPolicy>,
    pub backoff: Option<(Duration, Duration)>,
    pub max_restarts: Option<u32>,
    pub window: Option<Duration>,
    pub stable_after: Option<Duration>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct RawStop {
    pub signal: Option<i32>,
    pub timeout: Option<Duration>,
}

#[derive(Debug)]
pub(crate) struct RawProfile {
    pub name: String,
    pub modules: Option<Vec<Str>>,
    pub env: Vec<EnvVar>,
}

/// Where we are, for key paths and messages.
#[derive(Clone)]
struct Ctx {
    /// Dotted path of the table, e.g. `modules.api.health` ("" at the top).
    path: String,
    /// How messages name the table, e.g. "`health` of module `api`".
    label: String,
}

impl Ctx {
    fn key(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_string() } else { format!("{}.{key}", self.path) }
    }

    fn child(&self, key: &str, label: String) -> Ctx {
        Ctx { path: self.key(key), label }
    }
}

/// Decodes the merged document.
pub(crate) fn decode(root: &Table, sources: &SourceMap) -> (RawStack, Vec<Issue>) {
    let mut d = Decoder { sources, issues: Vec::new() };
    let stack = d.stack(root);
    (stack, d.issues)
}

struct Decoder<'a> {
    sources: &'a SourceMap,
    issues: Vec<Issue>,
}

impl Decoder<'_> {
    fn stack(&mut self, root: &Table) -> RawStack {
        let ctx = Ctx { path: String::new(), label: "the top level".to_string() };
        let mut stack = RawStack::default();
        for e in &root.entries {
            match e.key.as_str() {
                // Handled while reading files (see sources.rs).
                "extends" => {}
                "project" => self.project(e, &ctx, &mut stack),
                "defaults" => {
                    if let Some(t) = self.table(e, &ctx) {
                        stack.defaults = self.defaults(t, &ctx.child("defaults", "[defaults]".into()));
                    }
                }
                "modules" => stack.modules = self.named_tables(e, &ctx, "module", Self::module),
                "profiles" => stack.profiles = self.named_tables(e, &ctx, "profile", Self::profile),
                "alerts" => {
                    if let Some(t) = self.table(e, &ctx) {
                        stack.alerts = self.alerts(t, &ctx.child("alerts", "[alerts]".into()));
                    }
                }
                _ => self.unknown_key(e, &ctx, schema::TOP_KEYS),
            }
        }
        stack
    }

    fn project(&mut self, e: &Entry, ctx: &Ctx, stack: &mut RawStack) {
        let Some(t) = self.table(e, ctx) else { return };
        let ctx = ctx.child("project", "[project]".into());
        for e in &t.entries {
            match e.key.as_str() {
                "name" => stack.project_name = self.string(e, &ctx, "a string (the project's name)"),
                "profile" => stack.default_profile = self.string(e, &ctx, "a string (a profile's name)"),
                _ => self.unknown_key(e, &ctx, schema::PROJECT_KEYS),
            }
        }
    }

    fn alerts(&mut self, t: &Table, ctx: &Ctx) -> AlertsSpec {
        let mut a = AlertsSpec::default();
        for e in &t.entries {
            let pct = |d: &mut Self| d.percent(e, ctx);
            match e.key.as_str() {
                "enabled" => a.enabled = self.boolean(e, ctx).unwrap_or(a.enabled),
                "cpu_warning" => a.cpu.warning = pct(self).unwrap_or(a.cpu.warning),
                "cpu_critical" => a.cpu.critical = pct(self).unwrap_or(a.cpu.critical),
                "memory_warning" => a.memory.warning = pct(self).unwrap_or(a.memory.warning),
                "memory_critical" => a.memory.critical = pct(self).unwrap_or(a.memory.critical),
                "disk_warning" => a.disk.warning = pct(self).unwrap_or(a.disk.warning),
                "disk_critical" => a.disk.critical = pct(self).unwrap_or(a.disk.critical),
                "module_cpu_warning" => {
                    a.module_cpu.warning = self.count(e, ctx, 1).map_or(a.module_cpu.warning, f64::from)
                }
                "module_cpu_critical" => {
                    a.module_cpu.critical = self.count(e, ctx, 1).map_or(a.module_cpu.critical, f64::from)
                }
                "ipc_score" => a.ipc_score = pct(self).unwrap_or(a.ipc_score),
                "ipc_for" => a.ipc_for_ms = self.duration(e, ctx).map_or(a.ipc_for_ms, |d| d.as_millis() as u64),
                "hysteresis" => a.hysteresis = pct(self).unwrap_or(a.hysteresis),
                "restart_loop" => a.restart_loop = self.boolean(e, ctx).unwrap_or(a.restart_loop),
                "health" => a.health = self.boolean(e, ctx).unwrap_or(a.health),
                "max_per_minute" => a.max_per_minute = self.count(e, ctx, 1).unwrap_or(a.max_per_minute),
                _ => self.unknown_key(e, ctx, schema::ALERTS_KEYS),
            }
        }
        // A critical threshold below its warning one would never be reached as such: say so at the critical key.
        for (name, th) in [("cpu", a.cpu), ("memory", a.memory), ("disk", a.disk), ("module_cpu", a.module_cpu)] {
            let key = format!("{name}_critical");
            if th.critical < th.warning
                && let Some(e) = t.entries.iter().find(|e| e.key == key)
            {
                self.issues.push(
                    Issue::new(
                        e.node.span.clone(),
                        format!("`{key}` ({}) is below `{name}_warning` ({})", th.critical, th.warning),
                    )
                    .key(ctx.key(&key))
                    .expected(format!("a value of at least `{name}_warning`")),
                );
            }
        }
        a
    }

    fn boolean(&mut self, e: &Entry, ctx: &Ctx) -> Option<bool> {
        match e.node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.type_error(e, ctx, "true or false", None);
                None
            }
        }
    }

    /// An integer percentage, 0–100.
    fn percent(&mut self, e: &Entry, ctx: &Ctx) -> Option<f64> {
        let Kind::Int(n) = e.node.kind else {
            self.type_error(e, ctx, "an integer percentage (0–100)", None);
            return None;
        };
        if !(0..=100).contains(&n) {
            self.issues.push(
                Issue::new(e.node.span.clone(), format!("`{}` is out of range: {n}", e.key))
                    .key(ctx.key(&e.key))
                    .expected("an integer percentage (0–100)"),
            );
            return None;
        }
        Some(n as f64)
    }

    fn defaults(&mut self, t: &Table, ctx: &Ctx) -> RawDefaults {
        let mut defaults = RawDefaults::default();
        for e in &t.entries {
            match e.key.as_str() {
                "restart" => defaults.restart = self.restart(e, ctx),
                "stop" => defaults.stop = self.stop(e, ctx),
                "health" => {
                    if let Some(t) = self.table(e, ctx) {
                        let health_ctx = ctx.child("health", "`health` of [defaults]".into());
                        defaults.health = self.health_settings_only(t, &health_ctx);
                    }
                }
                "env" => defaults.env = self.env(e, ctx),
                _ => self.unknown_key(e, ctx, schema::DEFAULTS_KEYS),
            }
        }
        defaults
    }

    /// `[modules]` / `[profiles]`: a table of named tables.
    fn named_tables<T>(
        &mut self,
        e: &Entry,
        ctx: &Ctx,
        what: &str,
        decode: impl Fn(&mut Self, &str, &Entry, &Table, &Ctx) -> T,
    ) -> Vec<T> {
        let Some(t) = self.table(e, ctx) else {
            return Vec::new();
        };
        let ctx = ctx.child(&e.key, format!("[{}]", e.key));
        let mut out = Vec::new();
        for entry in &t.entries {
            if !is_service_name(&entry.key) {
                self.issues.push(
                    Issue::new(entry.key_span.clone(), format!("invalid {what} name `{}`", entry.key))
                        .key(ctx.key(&entry.key))
                        .expected("letters, digits, `_` and `-`"),
                );
            }
            if let Some(table) = self.table(entry, &ctx) {
                let child = ctx.child(&entry.key, format!("{what} `{}`", entry.key));
                out.push(decode(self, &entry.key, entry, table, &child));
            }
        }
        out
    }

    fn module(&mut self, name: &str, entry: &Entry, t: &Table, ctx: &Ctx) -> RawModule {
        let mut m = RawModule {
            name: name.to_string(),
            name_span: entry.key_span.clone(),
            run: None,
            version: None,
            cwd: None,
            env: Vec::new(),
            env_files: Vec::new(),
            requires: Vec::new(),
            provides: Vec::new(),
            health: None,
            restart: RawRestart::default(),
            stop: RawStop::default(),
            watch: Vec::new(),
            limits: Limits::default(),
            backup: None,
        };
        for e in &t.entries {
            match e.key.as_str() {
                "run" => m.run = self.string(e, ctx, "a string (the command line)"),
                "version" => m.version = self.version(e, ctx),
                "cwd" => m.cwd = self.string(e, ctx, "a string (a directory)"),
                "env" => m.env = self.env(e, ctx),
                "env_file" => m.env_files = self.string_or_list(e, ctx, "a path or an array of paths"),
                "requires" => m.requires = self.requires(e, ctx),
                "provides" => m.provides = self.provides(e, ctx),
                "health" => m.health = self.health(e, ctx),
                "restart" => m.restart = self.restart(e, ctx),
                "stop" => m.stop = self.stop(e, ctx),
                "watch" => m.watch = self.list(e, ctx, "an array of glob patterns"),
                "limits" => m.limits = self.limits(e, ctx),
                "backup" => m.backup = self.backup(e, ctx),
                _ => self.unknown_key(e, ctx, schema::MODULE_KEYS),
            }
        }
        if m.run.is_none() {
            self.issues.push(
                Issue::new(entry.key_span.clone(), format!("module `{name}` has no `run`"))
                    .key(ctx.key("run"))
                    .expected("`run = \"<command line>\"`"),
            );
        }
        m
    }

    fn profile(&mut self, name: &str, _entry: &Entry, t: &Table, ctx: &Ctx) -> RawProfile {
        let mut p = RawProfile { name: name.to_string(), modules: None, env: Vec::new() };
        for e in &t.entries {
            match e.key.as_str() {
                "modules" => p.modules = Some(self.list(e, ctx, "an array of module names")),
                "env" => p.env = self.env(e, ctx),
                _ => self.unknown_key(e, ctx, schema::PROFILE_KEYS),
            }
        }
        p
    }

    fn version(&mut self, e: &Entry, ctx: &Ctx) -> Option<semver::Version> {
        if let Kind::Int(_) | Kind::Float = e.node.kind {
            let written = self.sources.snippet(&e.node.span).to_string();
            self.type_error(
                e,
                ctx,
                "a string (a semantic version)",
                Some(format!("quote it: `version = \"{written}\"`")),
            );
            return None;
        }
        let s = self.string(e, ctx, "a string (a semantic version)")?;
        match parse_version(&s.value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.issues.push(
                    Issue::new(e.node.span.clone(), format!("invalid version `{}`: {message}", s.value))
                        .key(ctx.key(&e.key))
                        .expected("a semantic version, e.g. \"15\", \"15.2\" or \"1.4.2\""),
                );
                None
            }
        }
    }

    fn env(&mut self, e: &Entry, ctx: &Ctx) -> Vec<EnvVar> {
        let Some(t) = self.table(e, ctx) else {
            return Vec::new();
        };
        let ctx = ctx.child(&e.key, format!("`{}` of {}", e.key, ctx.label));
        let mut vars = Vec::new();
        for var in &t.entries {
            if !is_var_name(&var.key) {
                self.issues.push(
                    Issue::new(var.key_span.clone(), format!("invalid environment variable name `{}`", var.key))
                        .key(ctx.key(&var.key))
                        .expected("letters, digits and `_`, not starting with a digit"),
                );
                continue;
            }
            let (value, literal) = match &var.node.kind {
                Kind::Str(s) => (s.clone(), false),
                // Numbers and booleans are written back as TOML would print them; they can't contain `${`.
                Kind::Int(i) => (i.to_string(), true),
                Kind::Bool(b) => (b.to_string(), true),
                _ => {
                    let help = matches!(var.node.kind, Kind::Float)
                        .then(|| "quote it: floats are not exact (`1.10` would become `1.1`)".to_string());
                    self.type_error(var, &ctx, "a string, an integer or a boolean", help);
                    continue;
                }
            };
            let value = Str { value, span: var.node.span.clone(), key: ctx.key(&var.key) };
            vars.push(EnvVar { name: var.key.clone(), value, literal });
        }
        vars
    }

    fn requires(&mut self, e: &Entry, ctx: &Ctx) -> Vec<RawRequirement> {
        let entries = self.list(e, ctx, "an array of module names, e.g. [\"db\", \"cache@>=7\"]");
        entries.into_iter().filter_map(|s| self.requirement(s)).collect()
    }

    /// `"name"` or `"name@<semver range>"`.
    fn requirement(&mut self, s: Str) -> Option<RawRequirement> {
        let (name, range_text) = match s.value.split_once('@') {
            Some((name, range)) => (name, Some(range)),
            None => (s.value.as_str(), None),
        };
        let name_span = sub_span(self.sources, &s, &(0..name.len()));
        if !is_service_name(name) {
            self.issues.push(
                Issue::new(name_span, format!("invalid module name `{name}` in `requires`"))
                    .key(s.key.clone())
                    .expected("\"NAME\" or \"NAME@RANGE\", e.g. \"db@>=15, <17\""),
            );
            return None;
        }
        let range = match range_text.map(semver::VersionReq::parse) {
            None => None,
            Some(Ok(range)) => Some(range),
            Some(Err(err)) => {
                let at = name.len() + 1..s.value.len();
                self.issues.push(
                    Issue::new(
                        sub_span(self.sources, &s, &at),
                        format!("invalid version range in `{}`: {err}", s.value),
                    )
                    .key(s.key.clone())
                    .expected("a semver range, e.g. \">=15, <17\", \"^1.2\" or \"~3\""),
                );
                return None;
            }
        };
        Some(RawRequirement { module: name.to_string(), range, span: s.span.clone(), name_span })
    }

    fn provides(&mut self, e: &Entry, ctx: &Ctx) -> Vec<(String, Span, Str)> {
        let Some(t) = self.table(e, ctx) else {
            return Vec::new();
        };
        let ctx = ctx.child(&e.key, format!("`provides` of {}", ctx.label));
        let mut out = Vec::new();
        for entry in &t.entries {
            if !is_service_name(&entry.key) {
                self.issues.push(
                    Issue::new(entry.key_span.clone(), format!("invalid service name `{}`", entry.key))
                        .key(ctx.key(&entry.key))
                        .expected("letters, digits, `_` and `-`"),
                );
                continue;
            }
            if let Some(value) = self.string(entry, &ctx, "a string (the endpoint, e.g. a URL)") {
                out.push((entry.key.clone(), entry.key_span.clone(), value));
            }
        }
        out
    }

    fn health(&mut self, e: &Entry, ctx: &Ctx) -> Option<RawHealth> {
        let t = self.table(e, ctx)?;
        let ctx = ctx.child("health", format!("`health` of {}", ctx.label));
        let mut check: Option<(ProbeKind, Str, &Entry)> = None;
        let mut settings = RawHealthSettings::default();
        for entry in &t.entries {
            let kind = match entry.key.as_str() {
                "exec" => ProbeKind::Exec,
                "http" => ProbeKind::Http,
                "tcp" => ProbeKind::Tcp,
                _ => {
                    self.health_setting(entry, &ctx, &mut settings);
                    continue;
                }
            };
            let Some(target) = self.string(entry, &ctx, "a string") else {
                continue;
            };
            match &check {
                Some((_, _, first)) => self.issues.push(
                    Issue::new(
                        entry.key_span.clone(),
                        format!("`health` has both `{}` and `{}`", first.key, entry.key),
                    )
                    .key(ctx.key(&entry.key))
                    .expected("exactly one of exec, http or tcp"),
                ),
                None => check = Some((kind, target, entry)),
            }
        }
        if check.is_none() {
            self.issues.push(
                Issue::new(e.key_span.clone(), format!("{} has no check", ctx.label))
                    .key(ctx.path.clone())
                    .expected("exactly one of exec, http or tcp"),
            );
        }
        Some(RawHealth { check: check.map(|(kind, target, _)| (kind, target)), settings })
    }

    /// `[defaults] health`: everything but the check itself.
    fn health_settings_only(&mut self, t: &Table, ctx: &Ctx) -> RawHealthSettings {
        let mut settings = RawHealthSettings::default();
        for e in &t.entries {
            if matches!(e.key.as_str(), "exec" | "http" | "tcp") {
                self.issues.push(
                    Issue::new(e.key_span.clone(), format!("`{}` cannot be set in [defaults]", e.key))
                        .key(ctx.key(&e.key))
                        .expected(format!("one of {}", schema::DEFAULT_HEALTH_KEYS.join(", ")))
                        .help("checks are per module: set it in `[modules.NAME] health`"),
                );
            } else {
                self.health_setting_in(e, ctx, &mut settings, schema::DEFAULT_HEALTH_KEYS);
            }
        }
        settings
    }

    fn health_setting(&mut self, e: &Entry, ctx: &Ctx, settings: &mut RawHealthSettings) {
        self.health_setting_in(e, ctx, settings, schema::HEALTH_KEYS);
    }

    fn health_setting_in(&mut self, e: &Entry, ctx: &Ctx, settings: &mut RawHealthSettings, allowed: &[&str]) {
        match e.key.as_str() {
            "interval" => settings.interval = self.positive_duration(e, ctx),
            "timeout" => settings.timeout = self.positive_duration(e, ctx),
            "start_period" => settings.start_period = self.duration(e, ctx),
            "retries" => settings.retries = self.count(e, ctx, 1),
            _ => self.unknown_key(e, ctx, allowed),
        }
    }

    fn restart(&mut self, e: &Entry, ctx: &Ctx) -> RawRestart {
        let mut restart = RawRestart::default();
        if let Kind::Str(_) = e.node.kind {
            restart.policy = self.policy(e, ctx);
            return restart;
        }
        let Some(t) = self.table_or(e, ctx, "a policy (\"never\", \"on-failure\", \"always\") or a table") else {
            return restart;
        };
        let ctx = ctx.child("restart", format!("`restart` of {}", ctx.label));
        for e in &t.entries {
            match e.key.as_str() {
                "policy" => restart.policy = self.policy(e, &ctx),
                "backoff" => {
                    restart.backoff =
                        self.parsed(e, &ctx, units::parse_backoff, "a range of durations, e.g. \"100ms..30s\"")
                }
                "max_restarts" => restart.max_restarts = self.count(e, &ctx, 0),
                "window" => restart.window = self.positive_duration(e, &ctx),
                "stable_after" => restart.stable_after = self.duration(e, &ctx),
                _ => self.unknown_key(e, &ctx, schema::RESTART_KEYS),
            }
        }
        restart
    }

    fn policy(&mut self, e: &Entry, ctx: &Ctx) -> Option<RestartPolicy> {
        let s = self.string(e, ctx, "\"never\", \"on-failure\" or \"always\"")?;
        let policy = match s.value.as_str() {
            "never" => RestartPolicy::Never,
            "on-failure" => RestartPolicy::OnFailure,
            "always" => RestartPolicy::Always,
            other => {
                let help = suggest::did_you_mean(other, schema::RESTART_POLICIES.iter().copied());
                self.issues.push(
                    Issue::new(e.node.span.clone(), format!("unknown restart policy `{other}`"))
                        .key(ctx.key(&e.key))
                        .expected("\"never\", \"on-failure\" or \"always\"")
                        .maybe_help(help),
                );
                return None;
            }
        };
        Some(policy)
    }

    fn stop(&mut self, e: &Entry, ctx: &Ctx) -> RawStop {
        let mut stop = RawStop::default();
        let Some(t) = self.table(e, ctx) else {
            return stop;
        };
        let ctx = ctx.child("stop", format!("`stop` of {}", ctx.label));
        for e in &t.entries {
            match e.key.as_str() {
                "signal" => stop.signal = self.parsed(e, &ctx, units::parse_signal, units::SIGNAL_NAMES),
                "timeout" => stop.timeout = self.duration(e, &ctx),
                _ => self.unknown_key(e, &ctx, schema::STOP_KEYS),
            }
        }
        stop
    }

    fn limits(&mut self, e: &Entry, ctx: &Ctx) -> Limits {
        let mut limits = Limits::default();
        let Some(t) = self.table(e, ctx) else {
            return limits;
        };
        let ctx = ctx.child("limits", format!("`limits` of {}", ctx.label));
        for e in &t.entries {
            match e.key.as_str() {
                "memory" => {
                    if let Kind::Int(n) = e.node.kind {
                        let help =
                            format!("a bare number is ambiguous; write e.g. `memory = \"{n}MiB\"` or `\"{n}B\"`");
                        self.type_error(e, &ctx, SIZE_EXPECTED, Some(help));
                    } else {
                        limits.memory = self.parsed(e, &ctx, units::parse_size, SIZE_EXPECTED);
                    }
                }
                "open_files" => limits.open_files = self.count(e, &ctx, 1).map(u64::from),
                _ => self.unknown_key(e, &ctx, schema::LIMITS_KEYS),
            }
        }
        limits
    }

    fn backup(&mut self, e: &Entry, ctx: &Ctx) -> Option<RawBackup> {
        let t = self.table(e, ctx)?;
        let ctx = ctx.child("backup", format!("`backup` of {}", ctx.label));
        let (mut run, mut output, mut restore, mut timeout) = (None, None, None, None);
        for entry in &t.entries {
            match entry.key.as_str() {
                "run" => run = self.string(entry, &ctx, "a string (the command whose output is the backup)"),
                "output" => output = self.backup_output(entry, &ctx),
                "restore" => {
                    restore = self.string(entry, &ctx, "a string (a command that reads the backup on its stdin)")
                }
                "timeout" => timeout = self.positive_duration(entry, &ctx),
                _ => self.unknown_key(entry, &ctx, schema::BACKUP_KEYS),
            }
        }
        for (missing, expected) in [(run.is_none(), "run"), (output.is_none(), "output")] {
            if missing && t.get(expected).is_none() {
                self.issues.push(
                    Issue::new(e.key_span.clone(), format!("{} has no `{expected}`", ctx.label))
                        .key(ctx.key(expected))
                        .expected("`backup = { run = \"<command>\", output = \"<file name>\" }`"),
                );
            }
        }
        Some(RawBackup { run: run?, output: output?, restore, timeout })
    }

    /// The file name the backup is stored under: relative and inside the backup.
    fn backup_output(&mut self, e: &Entry, ctx: &Ctx) -> Option<String> {
        let s = self.string(e, ctx, "a file name")?;
        let path = std::path::Path::new(&s.value);
        let escapes = path.components().any(|c| !matches!(c, std::path::Component::Normal(_)));
        if s.value.is_empty() || escapes {
            self.issues.push(
                Issue::new(e.node.span.clone(), format!("invalid backup output `{}`", s.value))
                    .key(ctx.key(&e.key))
                    .expected("a relative file name without `..`, e.g. \"db.sql\""),
            );
            return None;
        }
        Some(s.value)
    }

    // ---- generic helpers ---------------------------------------------------------------------------

    fn unknown_key(&mut self, e: &Entry, ctx: &Ctx, allowed: &[&str]) {
        self.issues.push(
            Issue::new(e.key_span.clone(), format!("unknown key `{}` in {}", e.key, ctx.label))
                .key(ctx.key(&e.key))
                .expected(format!("one of {}", allowed.join(", ")))
                .maybe_help(suggest::did_you_mean(&e.key, allowed.iter().copied())),
        );
    }

    fn type_error(&mut self, e: &Entry, ctx: &Ctx, expected: &str, help: Option<String>) {
        self.issues.push(
            Issue::new(
                e.node.span.clone(),
                format!("`{}` must be {expected}, found {}", e.key, e.node.kind.describe()),
            )
            .key(ctx.key(&e.key))
            .expected(expected)
            .maybe_help(help),
        );
    }

    fn table<'t>(&mut self, e: &'t Entry, ctx: &Ctx) -> Option<&'t Table> {
        self.table_or(e, ctx, "a table")
    }

    fn table_or<'t>(&mut self, e: &'t Entry, ctx: &Ctx, expected: &str) -> Option<&'t Table> {
        match &e.node.kind {
            Kind::Table(t) => Some(t),
            _ => {
                self.type_error(e, ctx, expected, None);
                None
            }
        }
    }

    fn string(&mut self, e: &Entry, ctx: &Ctx, expected: &str) -> Option<Str> {
        match &e.node.kind {
            Kind::Str(s) => Some(Str { value: s.clone(), span: e.node.span.clone(), key: ctx.key(&e.key) }),
            _ => {
                self.type_error(e, ctx, expected, None);
                None
            }
        }
    }

    /// An array of strings; wrong elements are reported one by one.
    fn list(&mut self, e: &Entry, ctx: &Ctx, expected: &str) -> Vec<Str> {
        let Kind::Array(items) = &e.node.kind else {
            self.type_error(e, ctx, expected, None);
            return Vec::new();
        };
        items.iter().enumerate().filter_map(|(i, item)| self.list_item(e, i, item, ctx, expected)).collect()
    }

    fn list_item(&mut self, e: &Entry, index: usize, item: &Node, ctx: &Ctx, expected: &str) -> Option<Str> {
        let key = format!("{}[{index}]", ctx.key(&e.key));
        match &item.kind {
            Kind::Str(s) => Some(Str { value: s.clone(), span: item.span.clone(), key }),
            other => {
                self.issues.push(
                    Issue::new(
                        item.span.clone(),
                        format!("elements of `{}` must be strings, found {}", e.key, other.describe()),
                    )
                    .key(key)
                    .expected(expected),
                );
                None
            }
        }
    }

    fn string_or_list(&mut self, e: &Entry, ctx: &Ctx, expected: &str) -> Vec<Str> {
        match &e.node.kind {
            Kind::Str(_) => self.string(e, ctx, expected).into_iter().collect(),
            _ => self.list(e, ctx, expected),
        }
    }

    fn duration(&mut self, e: &Entry, ctx: &Ctx) -> Option<Duration> {
        if let Kind::Int(n) = e.node.kind {
            let help = format!("a bare number is ambiguous; write e.g. `\"{n}s\"` or `\"{n}ms\"`");
            self.type_error(e, ctx, DURATION_EXPECTED, Some(help));
            return None;
        }
        self.parsed(e, ctx, units::parse_duration, DURATION_EXPECTED)
    }

    fn positive_duration(&mut self, e: &Entry, ctx: &Ctx) -> Option<Duration> {
        let d = self.duration(e, ctx)?;
        if d.is_zero() {
            self.issues.push(
                Issue::new(e.node.span.clone(), format!("`{}` must be greater than zero", e.key))
                    .key(ctx.key(&e.key))
                    .expected(DURATION_EXPECTED),
            );
            return None;
        }
        Some(d)
    }

    /// A string value run through one of the strict parsers in `units`.
    fn parsed<T>(
        &mut self,
        e: &Entry,
        ctx: &Ctx,
        parse: impl Fn(&str) -> Result<T, String>,
        expected: &str,
    ) -> Option<T> {
        let s = self.string(e, ctx, expected)?;
        match parse(&s.value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.issues.push(
                    Issue::new(e.node.span.clone(), format!("invalid `{}`: {message}", e.key))
                        .key(ctx.key(&e.key))
                        .expected(expected),
                );
                None
            }
        }
    }

    /// A non-negative integer (a count) of at least `min`.
    fn count(&mut self, e: &Entry, ctx: &Ctx, min: u32) -> Option<u32> {
        let expected = if min == 0 { "a non-negative integer" } else { "a positive integer" };
        let Kind::Int(n) = e.node.kind else {
            self.type_error(e, ctx, expected, None);
            return None;
        };
        match u32::try_from(n) {
            Ok(n) if n >= min => Some(n),
            _ => {
                self.issues.push(
                    Issue::new(e.node.span.clone(), format!("`{}` is out of range: {n}", e.key))
                        .key(ctx.key(&e.key))
                        .expected(format!("{expected} (at most {})", u32::MAX)),
                );
                None
            }
        }
    }
}

const DURATION_EXPECTED: &str = "a duration like \"500ms\", \"10s\", \"1m30s\" or \"2h\"";
const SIZE_EXPECTED: &str = "a size like \"512MiB\", \"1GiB\" or \"1GB\"";

/// Semantic version, accepting `"15"` and `"15.2"` as `15.0.0` and `15.2.0` (databases and runtimes are
/// usually versioned that way).
pub(crate) fn parse_version(s: &str) -> Result<semver::Version, String> {
    if s.starts_with(['v', 'V']) {
        return Err("drop the leading `v`".to_string());
    }
    let core_len = s.find(['-', '+']).unwrap_or(s.len());
    let (core, suffix) = s.split_at(core_len);
    let padded = match core.split('.').count() {
        1 => format!("{core}.0.0{suffix}"),
        2 => format!("{core}.0{suffix}"),
        _ => s.to_string(),
    };
    semver::Version::parse(&padded).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_padded() {
        assert_eq!(parse_version("15").map(|v| v.to_string()), Ok("15.0.0".into()));
        assert_eq!(parse_version("15.2").map(|v| v.to_string()), Ok("15.2.0".into()));
        assert_eq!(parse_version("1.2.3-rc.1").map(|v| v.to_string()), Ok("1.2.3-rc.1".into()));
        assert_eq!(parse_version("2-beta").map(|v| v.to_string()), Ok("2.0.0-beta".into()));
        assert!(parse_version("v1").is_err());
        assert!(parse_version("1.x").is_err());
        assert!(parse_version("").is_err());
    }
}
