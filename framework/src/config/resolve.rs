//! From decoded tables to the effective [`Stack`]: profile selection, env layering (reading env files),
//! interpolation, defaults, cross-module checks (requires, versions, cycles, services) and probe targets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::LoadOptions;
use super::decode::{
    EnvVar, ProbeKind, RawHealth, RawHealthSettings, RawModule, RawProfile, RawRestart, RawStack, RawStop, Str,
};
use super::diagnostic::{Issue, Span};
use super::envfile;
use super::interpolate::{EnvValue, Interpolator, Scope};
use super::model::*;
use super::sources::{self, Reader};
use super::suggest;
use crate::graph;

/// Everything the resolver needs from the outside.
pub(crate) struct Resolver<'r, 'o> {
    pub opts: &'o LoadOptions,
    pub reader: &'r mut Reader<'o>,
    /// The root file as given, and its directory as given (for reading) and absolute (for the model).
    pub root: PathBuf,
    pub root_dir: PathBuf,
    pub root_dir_abs: PathBuf,
    pub issues: Vec<Issue>,
}

impl Resolver<'_, '_> {
    pub fn resolve(&mut self, raw: &RawStack) -> Option<Stack> {
        let modules: BTreeMap<&str, &RawModule> = raw.modules.iter().map(|m| (m.name.as_str(), m)).collect();
        let profile = self.select_profile(raw);
        self.check_profiles(&raw.profiles, &modules);
        let scopes = self.scopes(raw, &modules, profile.flatten());
        let providers = self.providers(&modules);
        self.check_requires(&modules);

        let opts = self.opts;
        let mut interpolator = Interpolator::new(&scopes, &providers, &opts.env, &self.reader.map);
        let mut built = BTreeMap::new();
        let mut issues = Vec::new();
        for module in modules.values() {
            let mut builder =
                ModuleBuilder { raw: module, stack: raw, interpolator: &mut interpolator, issues: &mut issues };
            let origin = self.origin(&module.name_span);
            if let Some(spec) = builder.build(&self.root_dir_abs, origin) {
                built.insert(module.name.clone(), spec);
            }
        }
        self.issues.append(&mut interpolator.issues);
        self.issues.append(&mut issues);

        let profile = profile?;
        if !self.issues.is_empty() {
            return None;
        }
        Some(self.stack(raw, &modules, built, profile))
    }

    fn stack(
        &self,
        raw: &RawStack,
        modules: &BTreeMap<&str, &RawModule>,
        mut built: BTreeMap<String, ModuleSpec>,
        profile: Option<&RawProfile>,
    ) -> Stack {
        let active = active_modules(modules, profile);
        built.retain(|name, _| active.contains(name.as_str()));
        let dir_name = self.root_dir_abs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Stack {
            project: raw.project_name.as_ref().map_or(dir_name, |s| s.value.clone()),
            file: sources::absolute(&self.root),
            dir: self.root_dir_abs.clone(),
            sources: self.reader.read.clone(),
            modules: built,
            profiles: raw
                .profiles
                .iter()
                .map(|p| (p.name.clone(), profile_spec(p, raw.default_profile.as_ref())))
                .collect(),
            active_profile: profile.map(|p| p.name.clone()),
            declared: modules.iter().map(|(name, m)| (name.to_string(), self.origin(&m.name_span))).collect(),
            alerts: raw.alerts.clone(),
        }
    }

    fn origin(&self, span: &Span) -> Origin {
        Origin { file: sources::absolute(self.reader.map.path(span.file)), line: self.reader.map.line(span) }
    }

    /// The profile to apply: `opts.profile`, else `[project] profile`, else none. `None` = unknown profile
    /// (reported); `Some(None)` = no profile.
    fn select_profile<'p>(&mut self, raw: &'p RawStack) -> Option<Option<&'p RawProfile>> {
        let names = || raw.profiles.iter().map(|p| p.name.as_str());
        let (name, span) = match (&self.opts.profile, &raw.default_profile) {
            (Some(name), _) => (name.as_str(), None),
            (None, Some(default)) => (default.value.as_str(), Some(default)),
            (None, None) => return Some(None),
        };
        if let Some(profile) = raw.profiles.iter().find(|p| p.name == name) {
            return Some(Some(profile));
        }
        let known: Vec<&str> = names().collect();
        let expected = if known.is_empty() {
            "a profile declared with [profiles.NAME]".to_string()
        } else {
            format!("one of {}", known.join(", "))
        };
        let (at, message) = match span {
            Some(s) => (s.span.clone(), format!("unknown profile `{name}` in `[project] profile`")),
            None => (Span::new(0, 0..0), format!("unknown profile `{name}` (requested profile)")),
        };
        let issue = Issue::new(at, message).expected(expected).maybe_help(suggest::did_you_mean(name, known));
        self.issues.push(if span.is_some() { issue.key("project.profile") } else { issue });
        None
    }

    /// Every profile's `modules` must name declared modules.
    fn check_profiles(&mut self, profiles: &[RawProfile], modules: &BTreeMap<&str, &RawModule>) {
        for profile in profiles {
            for name in profile.modules.iter().flatten() {
                if !modules.contains_key(name.value.as_str()) {
                    self.issues.push(unknown_module(name, &name.span, modules, &format!("profile `{}`", profile.name)));
                }
            }
        }
    }

    /// Env layers per module: `[defaults].env` < env_file(s) < module env < profile env.
    fn scopes(
        &mut self,
        raw: &RawStack,
        modules: &BTreeMap<&str, &RawModule>,
        profile: Option<&RawProfile>,
    ) -> BTreeMap<String, Scope> {
        let mut env_files = HashMap::new();
        let mut scopes = BTreeMap::new();
        for module in modules.values() {
            let mut scope = Scope::default();
            let file_vars: Vec<EnvVar> =
                module.env_files.iter().flat_map(|f| self.env_file(f, &mut env_files)).collect();
            let profile_env = profile.map(|p| p.env.as_slice()).unwrap_or_default();
            for var in raw.defaults.env.iter().chain(&file_vars).chain(&module.env).chain(profile_env) {
                scope.env.entry(var.name.clone()).or_insert_with(Vec::new).push(EnvValue::from(var));
            }
            scope.provides = module.provides.iter().map(|(name, _, value)| (name.clone(), value.clone())).collect();
            scope.requires = module.requires.iter().map(|r| r.module.clone()).collect();
            scopes.insert(module.name.clone(), scope);
        }
        scopes
    }

    /// Reads and parses an env file once, however many modules use it.
    fn env_file(&mut self, name: &Str, cache: &mut HashMap<PathBuf, Vec<EnvVar>>) -> Vec<EnvVar> {
        let path = self.root_dir.join(&name.value);
        let abs = sources::absolute(&path);
        if let Some(vars) = cache.get(&abs) {
            return vars.clone();
        }
        let (file, result) = self.reader.read(&path);
        let vars = match result {
            Err(err) => {
                let reason =
                    if err.kind() == std::io::ErrorKind::NotFound { "not found".to_string() } else { err.to_string() };
                self.issues.push(
                    Issue::new(name.span.clone(), format!("env file `{}`: {reason}", name.value))
                        .key(name.key.clone())
                        .help(format!(
                            "env files are relative to the stack file's directory ({})",
                            self.root_dir_abs.display()
                        )),
                );
                Vec::new()
            }
            Ok(()) => {
                let (vars, mut issues) = envfile::parse(file, self.reader.map.text(file));
                self.issues.append(&mut issues);
                vars
            }
        };
        cache.insert(abs, vars.clone());
        vars
    }

    /// Service name → providing module; a name provided twice is an error.
    fn providers(&mut self, modules: &BTreeMap<&str, &RawModule>) -> BTreeMap<String, String> {
        let mut providers: BTreeMap<String, (String, Span)> = BTreeMap::new();
        for module in modules.values() {
            for (service, key_span, _) in &module.provides {
                if let Some((first, first_span)) = providers.get(service) {
                    self.issues.push(
                        Issue::new(
                            key_span.clone(),
                            format!("service `{service}` is provided by both `{first}` and `{}`", module.name),
                        )
                        .key(format!("modules.{}.provides.{service}", module.name))
                        .help(format!(
                            "`{first}` provides it at {}; service names must be unique",
                            self.reader.map.describe(first_span)
                        )),
                    );
                    continue;
                }
                providers.insert(service.clone(), (module.name.clone(), key_span.clone()));
            }
        }
        providers.into_iter().map(|(service, (module, _))| (service, module)).collect()
    }

    /// Unknown modules, self-requires, duplicates, version ranges and cycles.
    fn check_requires(&mut self, modules: &BTreeMap<&str, &RawModule>) {
        for module in modules.values() {
            let mut seen = BTreeSet::new();
            for req in &module.requires {
                let key = format!("modules.{}.requires", module.name);
                if req.module == module.name {
                    self.issues.push(
                        Issue::new(req.name_span.clone(), format!("module `{}` requires itself", module.name)).key(key),
                    );
                } else if !seen.insert(req.module.as_str()) {
                    self.issues.push(
                        Issue::new(req.span.clone(), format!("`{}` is listed twice in `requires`", req.module))
                            .key(key),
                    );
                } else if let Some(target) = modules.get(req.module.as_str()) {
                    self.check_version(module, req, target);
                } else {
                    let name = Str { value: req.module.clone(), span: req.name_span.clone(), key: key.clone() };
                    let context = format!("`requires` of module `{}`", module.name);
                    self.issues.push(unknown_module(&name, &req.name_span, modules, &context));
                }
            }
        }
        self.check_cycles(modules);
    }

    fn check_version(&mut self, module: &RawModule, req: &super::decode::RawRequirement, target: &RawModule) {
        let Some(range) = &req.range else { return };
        let key = format!("modules.{}.requires", module.name);
        let problem = match &target.version {
            None => Some((
                format!("`{}` requires `{}` {range} but `{}` declares no version", module.name, req.module, req.module),
                format!(
                    "add `version = \"…\"` to module `{}` ({})",
                    req.module,
                    self.reader.map.describe(&target.name_span)
                ),
            )),
            Some(version) if !range.matches(version) => Some((
                format!(
                    "`{}` requires `{}` {range} but `{}` is version {version}",
                    module.name, req.module, req.module
                ),
                format!("module `{}` is defined at {}", req.module, self.reader.map.describe(&target.name_span)),
            )),
            Some(_) => None,
        };
        if let Some((message, help)) = problem {
            self.issues.push(
                Issue::new(req.span.clone(), message)
                    .key(key)
                    .expected(format!("a version matching {range}"))
                    .help(help),
            );
        }
    }

    /// One error per dependency cycle, at the `requires` entry that starts it.
    fn check_cycles(&mut self, modules: &BTreeMap<&str, &RawModule>) {
        let edges: BTreeMap<String, Vec<String>> = modules
            .values()
            .map(|m| {
                let known = m.requires.iter().filter(|r| modules.contains_key(r.module.as_str()) && r.module != m.name);
                (m.name.clone(), known.map(|r| r.module.clone()).collect())
            })
            .collect();
        for cycle in graph::cycles(&edges) {
            let (Some(first), Some(second)) = (cycle.first(), cycle.get(1)) else {
                continue;
            };
            let Some(req) = modules.get(first.as_str()).and_then(|m| m.requires.iter().find(|r| &r.module == second))
            else {
                continue;
            };
            self.issues.push(
                Issue::new(req.name_span.clone(), format!("dependency cycle: {}", cycle.join(" → ")))
                    .key(format!("modules.{first}.requires"))
                    .help("modules in a cycle can never start; remove one of these `requires`"),
            );
        }
    }
}

fn unknown_module(name: &Str, span: &Span, modules: &BTreeMap<&str, &RawModule>, context: &str) -> Issue {
    let known: Vec<&str> = modules.keys().copied().collect();
    Issue::new(span.clone(), format!("unknown module `{}` in {context}", name.value))
        .key(name.key.clone())
        .expected(if known.is_empty() {
            "a module declared with [modules.NAME]".to_string()
        } else {
            format!("one of {}", known.join(", "))
        })
        .maybe_help(suggest::did_you_mean(&name.value, known))
}

/// The profile's modules and everything they transitively require (all modules without a profile, or
/// with a profile that has no `modules`).
fn active_modules<'m>(modules: &BTreeMap<&'m str, &RawModule>, profile: Option<&RawProfile>) -> BTreeSet<&'m str> {
    let Some(wanted) = profile.and_then(|p| p.modules.as_ref()) else {
        return modules.keys().copied().collect();
    };
    let mut active = BTreeSet::new();
    let mut todo: Vec<&str> = wanted.iter().map(|s| s.value.as_str()).collect();
    while let Some(name) = todo.pop() {
        let Some((&name, module)) = modules.get_key_value(name) else {
            continue;
        };
        if active.insert(name) {
            todo.extend(module.requires.iter().map(|r| r.module.as_str()));
        }
    }
    active
}

fn profile_spec(p: &RawProfile, default: Option<&Str>) -> ProfileSpec {
    ProfileSpec {
        is_default: default.is_some_and(|d| d.value == p.name),
        modules: p.modules.as_ref().map(|m| m.iter().map(|s| s.value.clone()).collect()),
        env: p.env.iter().map(|v| (v.name.clone(), v.value.value.clone())).collect(),
    }
}

/// Builds one module's spec, reporting what is wrong with its values.
struct ModuleBuilder<'b, 'i> {
    raw: &'b RawModule,
    stack: &'b RawStack,
    interpolator: &'b mut Interpolator<'i>,
    issues: &'b mut Vec<Issue>,
}

impl ModuleBuilder<'_, '_> {
    fn build(&mut self, root_dir: &Path, origin: Origin) -> Option<ModuleSpec> {
        let m = self.raw;
        let env = self.interpolator.env(&m.name);
        let run = m.run.as_ref().and_then(|run| self.run(run));
        let cwd = match &m.cwd {
            Some(cwd) => self.cwd(cwd, root_dir),
            None => Some(root_dir.to_path_buf()),
        };
        let provides = self.provides();
        let health = self.health();
        let watch = self.watch();
        let backup = self.backup();
        let restart = restart_spec(&m.restart, &self.stack.defaults.restart);
        let stop = stop_spec(&m.stop, &self.stack.defaults.stop);
        let requires =
            m.requires.iter().map(|r| Requirement { module: r.module.clone(), range: r.range.clone() }).collect();
        Some(ModuleSpec {
            name: m.name.clone(),
            version: m.version.clone(),
            run: run?,
            cwd: cwd?,
            env: env?,
            requires,
            provides: provides?,
            health: health?,
            restart,
            stop,
            watch: watch?,
            limits: m.limits.clone(),
            backup: backup?,
            origin,
        })
    }

    fn run(&mut self, run: &Str) -> Option<String> {
        let value = self.interpolator.eval(&self.raw.name, run)?;
        if value.trim().is_empty() {
            self.issue(
                Issue::new(run.span.clone(), format!("`run` of module `{}` is empty", self.raw.name))
                    .key(run.key.clone())
                    .expected("a command line"),
            );
            return None;
        }
        Some(value)
    }

    fn cwd(&mut self, cwd: &Str, root_dir: &Path) -> Option<PathBuf> {
        let value = self.interpolator.eval(&self.raw.name, cwd)?;
        let path = sources::absolute(&root_dir.join(&value));
        if !path.is_dir() {
            let what = if path.exists() { "is not a directory" } else { "does not exist" };
            self.issue(
                Issue::new(cwd.span.clone(), format!("`cwd` of module `{}` {what}: {}", self.raw.name, path.display()))
                    .key(cwd.key.clone())
                    .expected("an existing directory, relative to the stack file's directory"),
            );
            return None;
        }
        Some(path)
    }

    fn provides(&mut self) -> Option<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (service, _, _) in &self.raw.provides {
            match self.interpolator.service_value(service) {
                Some(value) => {
                    out.insert(service.clone(), value);
                }
                None => ok = false,
            }
        }
        // A name provided twice was reported already; its value is the other module's, so skip it.
        ok.then_some(out)
    }

    fn health(&mut self) -> Option<Option<HealthSpec>> {
        let Some(RawHealth { check, settings }) = &self.raw.health else {
            return Some(None);
        };
        let (kind, target) = check.as_ref()?;
        let value = self.interpolator.eval(&self.raw.name, target)?;
        let checked = match kind {
            ProbeKind::Exec if value.trim().is_empty() => Err("the command is empty".to_string()),
            ProbeKind::Exec => Ok(Probe::Exec(value.clone())),
            ProbeKind::Http => parse_http_url(&value).map(Probe::Http),
            ProbeKind::Tcp => parse_host_port(&value, None).map(Probe::Tcp),
        };
        let probe = match checked {
            Ok(probe) => probe,
            Err(message) => {
                let (expected, help) = probe_expectation(*kind, &value);
                self.issue(
                    Issue::new(target.span.clone(), message)
                        .key(target.key.clone())
                        .expected(expected)
                        .maybe_help(help),
                );
                return None;
            }
        };
        Some(Some(health_spec(probe, settings, &self.stack.defaults.health)))
    }

    fn watch(&mut self) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut ok = true;
        for pattern in &self.raw.watch {
            let Some(value) = self.interpolator.eval(&self.raw.name, pattern) else {
                ok = false;
                continue;
            };
            if let Err(err) = globset::Glob::new(&value) {
                ok = false;
                self.issue(
                    Issue::new(pattern.span.clone(), format!("invalid glob `{value}`: {}", err.kind()))
                        .key(pattern.key.clone())
                        .expected("a glob like \"src/**/*.rs\" (relative to the module's cwd)"),
                );
                continue;
            }
            out.push(value);
        }
        ok.then_some(out)
    }

    fn backup(&mut self) -> Option<Option<BackupSpec>> {
        let Some(raw) = &self.raw.backup else {
            return Some(None);
        };
        let run = self.interpolator.eval(&self.raw.name, &raw.run);
        let restore = match &raw.restore {
            Some(r) => Some(self.interpolator.eval(&self.raw.name, r)?),
            None => None,
        };
        Some(Some(BackupSpec {
            run: run?,
            output: raw.output.clone(),
            restore,
            timeout: raw.timeout.unwrap_or(BackupSpec::DEFAULT_TIMEOUT),
        }))
    }

    fn issue(&mut self, issue: Issue) {
        self.issues.push(issue);
    }
}

fn probe_expectation(kind: ProbeKind, value: &str) -> (&'static str, Option<String>) {
    match kind {
        ProbeKind::Exec => ("a command line", None),
        ProbeKind::Http if value.starts_with("https://") => (
            "an http:// URL: http://HOST:PORT/PATH",
            Some("probe the plain-HTTP port, or use `exec = \"curl -fsS https://…\"`".to_string()),
        ),
        ProbeKind::Http => ("an http:// URL: http://HOST:PORT/PATH", None),
        ProbeKind::Tcp => ("HOST:PORT, e.g. \"127.0.0.1:5432\" or \"[::1]:5432\"", None),
    }
}

/// Accepts `http://HOST[:PORT][/PATH]` and normalises it to `http://HOST:PORT/PATH`.
pub(crate) fn parse_http_url(url: &str) -> Result<String, String> {
    if url.starts_with("https://") {
        return Err(format!("https is not supported by http probes: `{url}`"));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!("`{url}` is not an http:// URL"));
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err(format!("`{url}`: user names and passwords are not supported in probe URLs"));
    }
    let host_port = parse_host_port(authority, Some(80)).map_err(|e| format!("`{url}`: {e}"))?;
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.to_string(),
        p => format!("/{p}"),
    };
    if path.contains(char::is_whitespace) {
        return Err(format!("`{url}`: the path contains whitespace"));
    }
    Ok(format!("http://{host_port}{path}"))
}

/// Accepts `HOST:PORT` (IPv6 in brackets); with `default_port`, the port may be left out.
pub(crate) fn parse_host_port(s: &str, default_port: Option<u16>) -> Result<String, String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("`{s}`: missing `]`"));
        };
        (
            format!("[{host}]"),
            after.strip_prefix(':').map(str::to_string).or_else(|| after.is_empty().then(String::new)),
        )
    } else {
        match s.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host.to_string(), Some(port.to_string())),
            Some(_) => {
                return Err(format!("`{s}`: put IPv6 addresses in brackets, e.g. `[::1]:5432`"));
            }
            None => (s.to_string(), Some(String::new())),
        }
    };
    let valid_host = |h: &str| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-_[]:".contains(c));
    if !valid_host(&host) {
        return Err(if host.is_empty() {
            format!("`{s}`: missing host")
        } else {
            format!("`{s}`: invalid host `{host}`")
        });
    }
    let port = match (port.as_deref(), default_port) {
        (Some(""), Some(default)) => default,
        (Some(""), None) => return Err(format!("`{s}`: missing port")),
        (Some(p), _) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("`{s}`: invalid port `{p}`"))?,
        (None, _) => return Err(format!("`{s}`: expected `:PORT` after the address")),
    };
    Ok(format!("{host}:{port}"))
}

fn restart_spec(m: &RawRestart, d: &RawRestart) -> RestartSpec {
    let builtin = RestartSpec::default();
    let (backoff_min, backoff_max) = m.backoff.or(d.backoff).unwrap_or((builtin.backoff_min, builtin.backoff_max));
    RestartSpec {
        policy: m.policy.or(d.policy).unwrap_or(builtin.policy),
        backoff_min,
        backoff_max,
        max_restarts: m.max_restarts.or(d.max_restarts).unwrap_or(builtin.max_restarts),
        window: m.window.or(d.window).unwrap_or(builtin.window),
        stable_after: m.stable_after.or(d.stable_after).unwrap_or(builtin.stable_after),
    }
}

fn stop_spec(m: &RawStop, d: &RawStop) -> StopSpec {
    let builtin = StopSpec::default();
    StopSpec {
        signal: m.signal.or(d.signal).unwrap_or(builtin.signal),
        timeout: m.timeout.or(d.timeout).unwrap_or(builtin.timeout),
    }
}

/// Health defaults when neither the module nor `[defaults]` says: every 1s, 1s timeout, 3 retries, no
/// start period.
fn health_spec(check: Probe, m: &RawHealthSettings, d: &RawHealthSettings) -> HealthSpec {
    use std::time::Duration;
    HealthSpec {
        check,
        interval: m.interval.or(d.interval).unwrap_or(Duration::from_secs(1)),
        timeout: m.timeout.or(d.timeout).unwrap_or(Duration::from_secs(1)),
        retries: m.retries.or(d.retries).unwrap_or(3),
        start_period: m.start_period.or(d.start_period).unwrap_or(Duration::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_are_normalised() {
        assert_eq!(parse_http_url("http://127.0.0.1:8080/health"), Ok("http://127.0.0.1:8080/health".into()));
        assert_eq!(parse_http_url("http://localhost"), Ok("http://localhost:80/".into()));
        assert_eq!(parse_http_url("http://[::1]:9000?x=1"), Ok("http://[::1]:9000/?x=1".into()));
        assert!(parse_http_url("https://x:1/").is_err_and(|e| e.contains("https is not supported")));
        assert!(parse_http_url("ftp://x").is_err());
        assert!(parse_http_url("http://:80/").is_err());
        assert!(parse_http_url("http://h:99999/").is_err());
        assert!(parse_http_url("http://u:p@h:1/").is_err());
    }

    #[test]
    fn tcp_targets_need_host_and_port() {
        assert_eq!(parse_host_port("127.0.0.1:5432", None), Ok("127.0.0.1:5432".into()));
        assert_eq!(parse_host_port("[::1]:5432", None), Ok("[::1]:5432".into()));
        for bad in ["localhost", ":5432", "h:0", "h:x", "::1:5432", "[::1]", "h:"] {
            assert!(parse_host_port(bad, None).is_err(), "{bad}");
        }
    }
}
