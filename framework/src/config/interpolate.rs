//! `${VAR}`, `${VAR:-default}`, `${service.NAME}` and `$$`.
//!
//! Templates are parsed into [`Part`]s, then evaluated lazily per module with memoisation, so env values
//! may refer to each other in any order, a service's value is computed once in its provider's scope, and
//! a reference that leads back to itself is reported as a cycle instead of recursing forever.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;

use super::decode::{EnvVar, Str};
use super::diagnostic::{Issue, SourceMap, Span};
use super::literal;
use super::suggest;

/// What `${…}` forms are accepted, for messages.
const SYNTAX: &str = "`${VAR}`, `${VAR:-default}`, `${service.NAME}`, or `$$` for a literal `$`";

/// A piece of a parsed template. Ranges are byte ranges of the `${…}` in the decoded string.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    Var { name: String, default: Option<Vec<Part>>, range: Range<usize> },
    Service { name: String, range: Range<usize> },
}

/// A syntax error in a template: where (decoded byte range) and what.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub range: Range<usize>,
    pub message: String,
}

/// Parses a template. `$` not followed by `{` or `$` is kept as is, so shell commands like
/// `awk '{print $1}'` need no escaping.
pub(crate) fn parse(s: &str) -> Result<Vec<Part>, SyntaxError> {
    let (parts, end) = parse_parts(s, 0, false)?;
    debug_assert_eq!(end, s.len());
    Ok(parts)
}

/// Parses from `pos` until the end, or (inside a default) until the unmatched `}`; returns where it stopped.
fn parse_parts(s: &str, mut pos: usize, in_default: bool) -> Result<(Vec<Part>, usize), SyntaxError> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let bytes = s.as_bytes();
    while pos < s.len() {
        match (bytes[pos], bytes.get(pos + 1)) {
            (b'$', Some(b'$')) => {
                text.push('$');
                pos += 2;
            }
            (b'$', Some(b'{')) => {
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                let (part, next) = parse_reference(s, pos)?;
                parts.push(part);
                pos = next;
            }
            (b'}', _) if in_default => break,
            _ => {
                let ch_len = s[pos..].chars().next().map_or(1, char::len_utf8);
                text.push_str(&s[pos..pos + ch_len]);
                pos += ch_len;
            }
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok((parts, pos))
}

/// Parses one `${…}` starting at `start` (the `$`).
fn parse_reference(s: &str, start: usize) -> Result<(Part, usize), SyntaxError> {
    let name_start = start + 2;
    let name_len = s[name_start..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'))
        .unwrap_or(s.len() - name_start);
    let name = &s[name_start..name_start + name_len];
    let after = name_start + name_len;
    let unterminated = || SyntaxError { range: start..s.len(), message: "unterminated `${` (missing `}`)".to_string() };
    if let Some(service) = name.strip_prefix("service.") {
        if !s[after..].starts_with('}') {
            return Err(if after >= s.len() { unterminated() } else { bad_char(s, start, after) });
        }
        if !is_service_name(service) {
            return Err(SyntaxError { range: start..after + 1, message: format!("invalid service name `{service}`") });
        }
        return Ok((Part::Service { name: service.to_string(), range: start..after + 1 }, after + 1));
    }
    if !is_var_name(name) {
        let message = if name.is_empty() {
            "empty variable name in `${}`".to_string()
        } else {
            format!("invalid variable name `{name}` (letters, digits and `_`, not starting with a digit)")
        };
        let end = s[start..].find('}').map_or(s.len(), |i| start + i + 1);
        return Err(SyntaxError { range: start..end, message });
    }
    let rest = &s[after..];
    if rest.starts_with('}') {
        return Ok((Part::Var { name: name.to_string(), default: None, range: start..after + 1 }, after + 1));
    }
    if rest.starts_with(":-") {
        let (default, end) = parse_parts(s, after + 2, true)?;
        if end >= s.len() {
            return Err(unterminated());
        }
        let part = Part::Var { name: name.to_string(), default: Some(default), range: start..end + 1 };
        return Ok((part, end + 1));
    }
    Err(if rest.is_empty() { unterminated() } else { bad_char(s, start, after) })
}

fn bad_char(s: &str, start: usize, at: usize) -> SyntaxError {
    let c = s[at..].chars().next().unwrap_or(' ');
    let end = s[start..].find('}').map_or(s.len(), |i| start + i + 1);
    SyntaxError { range: start..end, message: format!("unexpected `{c}` in `${{…}}`") }
}

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Service (and module) names: `[A-Za-z0-9_-]+`.
pub(crate) fn is_service_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// One env value at one layer: `literal` values (single-quoted in an env file) are not interpolated.
#[derive(Debug, Clone)]
pub(crate) struct EnvValue {
    pub value: Str,
    pub literal: bool,
}

impl From<&EnvVar> for EnvValue {
    fn from(var: &EnvVar) -> EnvValue {
        EnvValue { value: var.value.clone(), literal: var.literal }
    }
}

/// What interpolation in one module can see.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    /// Each variable's values from the lowest layer (`[defaults]`) to the highest (profile).
    pub env: BTreeMap<String, Vec<EnvValue>>,
    /// `provides` entries.
    pub provides: BTreeMap<String, Str>,
    /// Names in `requires`.
    pub requires: BTreeSet<String>,
}

/// Result of looking a variable up.
#[derive(Debug, Clone, PartialEq)]
enum Lookup {
    Found(String),
    Unset,
    /// An error was already reported; callers stay quiet to avoid cascades.
    Failed,
}

/// A value being computed, for cycle detection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Frame {
    Var { module: String, name: String, layer: usize },
    Service(String),
}

impl Frame {
    fn label(&self) -> String {
        match self {
            Frame::Var { name, .. } => name.clone(),
            Frame::Service(name) => format!("service.{name}"),
        }
    }
}

/// Evaluates templates for every module of a stack.
pub(crate) struct Interpolator<'a> {
    scopes: &'a BTreeMap<String, Scope>,
    /// Service name → providing module.
    providers: &'a BTreeMap<String, String>,
    process_env: &'a BTreeMap<String, String>,
    sources: &'a SourceMap,
    /// Finished values (variables and services).
    done: HashMap<Frame, Lookup>,
    /// Values being computed.
    stack: Vec<Frame>,
    /// A cycle found deeper down, to be reported at the reference that closed it.
    pending_cycle: Option<Vec<String>>,
    /// Shared templates (`[defaults].env`, profile env) are evaluated once per module; report each place once.
    reported: HashSet<(usize, Range<usize>)>,
    pub issues: Vec<Issue>,
}

impl<'a> Interpolator<'a> {
    pub fn new(
        scopes: &'a BTreeMap<String, Scope>,
        providers: &'a BTreeMap<String, String>,
        process_env: &'a BTreeMap<String, String>,
        sources: &'a SourceMap,
    ) -> Self {
        Interpolator {
            scopes,
            providers,
            process_env,
            sources,
            done: HashMap::new(),
            stack: Vec::new(),
            pending_cycle: None,
            reported: HashSet::new(),
            issues: Vec::new(),
        }
    }

    /// The module's environment with every value interpolated (None if any value had an error).
    pub fn env(&mut self, module: &str) -> Option<BTreeMap<String, String>> {
        let scope = self.scopes.get(module)?;
        let mut env = BTreeMap::new();
        let mut ok = true;
        for (name, layers) in &scope.env {
            // Shadowed values are never used, but a syntax error in them is still an error in the file.
            for shadowed in layers.iter().rev().skip(1).filter(|v| !v.literal) {
                if let Err(e) = parse(&shadowed.value.value) {
                    self.report_syntax(&shadowed.value, e);
                    ok = false;
                }
            }
            match self.var(module, name, None) {
                Lookup::Found(value) => {
                    env.insert(name.clone(), value);
                }
                _ => ok = false,
            }
        }
        ok.then_some(env)
    }

    /// Interpolates a template in the scope of `module` (run, cwd, health targets, …).
    pub fn eval(&mut self, module: &str, template: &Str) -> Option<String> {
        self.eval_template(module, template, None)
    }

    /// The value of a service, computed in its provider's scope.
    pub fn service_value(&mut self, service: &str) -> Option<String> {
        match self.service(service) {
            Lookup::Found(v) => Some(v),
            _ => None,
        }
    }

    /// `site` is the env variable and layer being computed, so that `PATH = "bin:${PATH}"` reads the
    /// layer below instead of itself.
    fn eval_template(&mut self, module: &str, template: &Str, site: Option<(&str, usize)>) -> Option<String> {
        let parts = match parse(&template.value) {
            Ok(parts) => parts,
            Err(e) => {
                self.report_syntax(template, e);
                return None;
            }
        };
        self.eval_parts(module, template, &parts, site)
    }

    fn eval_parts(
        &mut self,
        module: &str,
        template: &Str,
        parts: &[Part],
        site: Option<(&str, usize)>,
    ) -> Option<String> {
        let mut out = String::new();
        let mut ok = true;
        for part in parts {
            let value = match part {
                Part::Text(text) => Some(text.clone()),
                Part::Var { name, default, range } => self.eval_var(module, template, name, default, range, site),
                Part::Service { name, range } => self.eval_service(module, template, name, range),
            };
            match value {
                Some(v) => out.push_str(&v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn eval_var(
        &mut self,
        module: &str,
        template: &Str,
        name: &str,
        default: &Option<Vec<Part>>,
        range: &Range<usize>,
        site: Option<(&str, usize)>,
    ) -> Option<String> {
        let below = site.filter(|(site_name, _)| *site_name == name).map(|(_, layer)| layer);
        let lookup = match self.var(module, name, below) {
            Lookup::Failed if self.cycle_pending() => {
                self.report_cycle(template, range);
                return None;
            }
            other => other,
        };
        match (lookup, default) {
            (Lookup::Found(v), Some(_)) if v.is_empty() => self.eval_default(module, template, default, site),
            (Lookup::Found(v), _) => Some(v),
            (Lookup::Unset, Some(_)) => self.eval_default(module, template, default, site),
            (Lookup::Unset, None) => {
                self.report_unknown_var(module, template, name, range);
                None
            }
            (Lookup::Failed, _) => None,
        }
    }

    fn eval_default(
        &mut self,
        module: &str,
        template: &Str,
        default: &Option<Vec<Part>>,
        site: Option<(&str, usize)>,
    ) -> Option<String> {
        let parts = default.as_deref().unwrap_or_default();
        self.eval_parts(module, template, parts, site)
    }

    fn eval_service(&mut self, module: &str, template: &Str, name: &str, range: &Range<usize>) -> Option<String> {
        let Some(provider) = self.providers.get(name) else {
            let candidates: Vec<&str> = self.providers.keys().map(String::as_str).collect();
            let issue =
                Issue::new(self.sub_span(template, range), format!("unknown service `{name}` in module `{module}`"))
                    .key(template.key.clone())
                    .help(
                        suggest::did_you_mean(name, candidates)
                            .unwrap_or_else(|| format!("no module provides `{name}`; add it to a module's `provides`")),
                    );
            self.report(template, range, issue);
            return None;
        };
        let requires_it = self.scopes.get(module).is_some_and(|s| s.requires.contains(provider.as_str()));
        if provider != module && !requires_it {
            let issue = Issue::new(
                self.sub_span(template, range),
                format!(
                    "module `{module}` uses `${{service.{name}}}` provided by `{provider}` but does not require it"
                ),
            )
            .key(template.key.clone())
            .help(format!("add \"{provider}\" to `requires` of module `{module}`"));
            self.report(template, range, issue);
            return None;
        }
        match self.service(name) {
            Lookup::Found(v) => Some(v),
            Lookup::Failed if self.cycle_pending() => {
                self.report_cycle(template, range);
                None
            }
            _ => None,
        }
    }

    /// Value of variable `name` in `module`: the highest layer (below `below`, if given), else the
    /// process environment.
    fn var(&mut self, module: &str, name: &str, below: Option<usize>) -> Lookup {
        let layers = self.scopes.get(module).and_then(|s| s.env.get(name));
        let limit = below.unwrap_or(usize::MAX);
        let visible = layers.map_or(0, |l| l.len().min(limit));
        let Some((layer, value)) = visible.checked_sub(1).and_then(|top| Some((top, layers?.get(top)?))) else {
            return self.process_env.get(name).map_or(Lookup::Unset, |v| Lookup::Found(v.clone()));
        };
        if value.literal {
            return Lookup::Found(value.value.value.clone());
        }
        let frame = Frame::Var { module: module.to_string(), name: name.to_string(), layer };
        self.memoised(frame, |this| this.eval_template(module, &value.value, Some((name, layer))))
    }

    fn service(&mut self, name: &str) -> Lookup {
        let Some(provider) = self.providers.get(name) else {
            return Lookup::Failed;
        };
        let Some(template) = self.scopes.get(provider.as_str()).and_then(|s| s.provides.get(name)) else {
            return Lookup::Failed;
        };
        self.memoised(Frame::Service(name.to_string()), |this| this.eval_template(provider, template, None))
    }

    /// Computes a frame once; re-entering a frame that is being computed marks a cycle.
    fn memoised(&mut self, frame: Frame, compute: impl FnOnce(&mut Self) -> Option<String>) -> Lookup {
        if let Some(done) = self.done.get(&frame) {
            return done.clone();
        }
        if let Some(at) = self.stack.iter().position(|f| *f == frame) {
            self.pending_cycle = Some(self.stack[at..].iter().map(Frame::label).chain([frame.label()]).collect());
            return Lookup::Failed;
        }
        self.stack.push(frame.clone());
        let result = compute(self).map_or(Lookup::Failed, Lookup::Found);
        self.stack.pop();
        self.done.insert(frame, result.clone());
        result
    }

    fn cycle_pending(&self) -> bool {
        self.pending_cycle.is_some()
    }

    fn report_cycle(&mut self, template: &Str, range: &Range<usize>) {
        let chain = self.pending_cycle.take().unwrap_or_default();
        let shown: Vec<String> = chain.iter().map(|n| format!("`{n}`")).collect();
        let issue = Issue::new(self.sub_span(template, range), format!("interpolation cycle: {}", shown.join(" → ")))
            .key(template.key.clone())
            .help("a value cannot depend on itself; use `${NAME:-default}` or a literal somewhere in the chain");
        self.report(template, range, issue);
    }

    fn report_unknown_var(&mut self, module: &str, template: &Str, name: &str, range: &Range<usize>) {
        let module_vars = self.scopes.get(module).map(|s| s.env.keys().map(String::as_str).collect::<Vec<_>>());
        let candidates = module_vars.unwrap_or_default().into_iter().chain(self.process_env.keys().map(String::as_str));
        let help = suggest::did_you_mean(name, candidates).unwrap_or_else(|| {
            format!("define `{name}` in the module's `env`, or give a default: `${{{name}:-value}}`")
        });
        let issue =
            Issue::new(self.sub_span(template, range), format!("unknown variable `{name}` in module `{module}`"))
                .key(template.key.clone())
                .help(help);
        self.report(template, range, issue);
    }

    fn report_syntax(&mut self, template: &Str, error: SyntaxError) {
        let issue =
            Issue::new(self.sub_span(template, &error.range), format!("invalid interpolation: {}", error.message))
                .key(template.key.clone())
                .expected(SYNTAX);
        self.report(template, &error.range, issue);
    }

    /// Records an issue unless one was already reported at that place (shared templates such as
    /// `[defaults].env` are evaluated once per module).
    fn report(&mut self, template: &Str, range: &Range<usize>, issue: Issue) {
        let place = sub_span(self.sources, template, range);
        if self.reported.insert((place.file, place.range)) {
            self.issues.push(issue);
        }
    }

    fn sub_span(&self, template: &Str, range: &Range<usize>) -> Span {
        sub_span(self.sources, template, range)
    }
}

/// The source span of a byte range of a string's decoded value; the whole literal if it can't be mapped.
pub(crate) fn sub_span(sources: &SourceMap, s: &Str, range: &Range<usize>) -> Span {
    let raw = sources.snippet(&s.span);
    match literal::offsets(raw, &s.value) {
        Some(map) if range.end < map.len() => s.span.slice(map[range.start]..map[range.end]),
        _ => s.span.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, range: Range<usize>) -> Part {
        Part::Var { name: name.into(), default: None, range }
    }

    #[test]
    fn parses_references_escapes_and_defaults() {
        assert_eq!(parse("a $$ b $1 ${X}"), Ok(vec![Part::Text("a $ b $1 ".into()), var("X", 10..14)]));
        assert_eq!(
            parse("${A:-x${B}}!"),
            Ok(vec![
                Part::Var {
                    name: "A".into(),
                    default: Some(vec![Part::Text("x".into()), var("B", 6..10)]),
                    range: 0..11
                },
                Part::Text("!".into()),
            ])
        );
        assert_eq!(parse("${service.db}"), Ok(vec![Part::Service { name: "db".into(), range: 0..13 }]));
        assert_eq!(parse("${A:-}"), Ok(vec![Part::Var { name: "A".into(), default: Some(vec![]), range: 0..6 }]));
    }

    #[test]
    fn reports_syntax_errors_with_ranges() {
        let err = |s: &str| parse(s).err().map(|e| (e.range, e.message));
        assert_eq!(err("x ${A"), Some((2..5, "unterminated `${` (missing `}`)".into())));
        assert_eq!(err("${}"), Some((0..3, "empty variable name in `${}`".into())));
        assert_eq!(
            err("${1A} z"),
            Some((0..5, "invalid variable name `1A` (letters, digits and `_`, not starting with a digit)".into()))
        );
        assert_eq!(err("${A B}"), Some((0..6, "unexpected ` ` in `${…}`".into())));
        assert_eq!(err("${A:-x"), Some((0..6, "unterminated `${` (missing `}`)".into())));
    }
}
