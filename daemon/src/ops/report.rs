//! `steward report [--since 7d] [--format md|html]`: what happened over a period, from the store (read
//! only, so it works with or without a daemon) and the backup repository.
//!
//! - Uptime: the share of the period during which a module had a process (from its runs).
//! - Crashes: state changes to backoff, failed, or exited with an error or a signal; restarts: changes to
//!   backoff (automatic restarts).
//! - Alerts: error-level events, and notes tagged `alert` (e.g. a failed scheduled backup).
//! - Top errors: error-level log lines among the newest 5,000 of the period, grouped with digits ignored.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use steward_framework::backup::Repository;
use steward_framework::lifecycle::now_ms;
use steward_framework::store::{EventQuery, Level, LogQuery, Store};
use steward_protocol::paths;

use super::settings::BackupSettings;
use super::{ReportFormat, fail, human_bytes, human_duration, local_time};

/// One module over the period.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleReport {
    /// Module.
    pub name: String,
    /// Share of the period with a process, 0–100.
    pub uptime_pct: f64,
    /// Runs started in the period.
    pub runs: u64,
    /// Crashes.
    pub crashes: u64,
    /// Automatic restarts.
    pub restarts: u64,
}

/// One project.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectReport {
    /// Stack file path.
    pub project: String,
    /// `[project] name`, when the stack file still loads.
    pub name: Option<String>,
    /// Modules.
    pub modules: Vec<ModuleReport>,
    /// Crashes per day of the period (oldest first).
    pub crashes_per_day: Vec<u64>,
}

/// An alert.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// When.
    pub ts_ms: u64,
    /// Project.
    pub project: String,
    /// What.
    pub text: String,
}

/// The backups' state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupState {
    /// The repository.
    pub dir: String,
    /// Backups in it.
    pub count: usize,
    /// Backups made during the period.
    pub in_period: usize,
    /// The newest: id, time, size.
    pub latest: Option<(String, u64, u64)>,
    /// Problems recorded in the newest.
    pub latest_problems: Vec<String>,
    /// The last drill: time, duration, ok.
    pub last_drill: Option<(u64, u64, bool)>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Start of the period.
    pub since_ms: u64,
    /// End of the period.
    pub until_ms: u64,
    /// Projects.
    pub projects: Vec<ProjectReport>,
    /// Alerts, newest first (at most 20).
    pub alerts: Vec<Alert>,
    /// Alerts in total.
    pub alert_count: usize,
    /// Top error messages: (count, message).
    pub top_errors: Vec<(u64, String)>,
    /// Backups.
    pub backups: Option<BackupState>,
}

/// `steward report`.
pub fn run(home: &Path, since: Duration, format: ReportFormat, output: Option<PathBuf>, json: bool) -> ExitCode {
    let store = match Store::open_read_only(paths::store_path(home)) {
        Ok(s) => s,
        Err(e) => return fail(1, &e.to_string()),
    };
    let until = now_ms();
    let from = until.saturating_sub(since.as_millis() as u64);
    let report = match collect(&store, home, from, until) {
        Ok(r) => r,
        Err(e) => return fail(1, &e),
    };
    let text = if json {
        serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
    } else {
        match format {
            ReportFormat::Md => markdown(&report),
            ReportFormat::Html => html(&report),
        }
    };
    match output {
        Some(path) => match std::fs::write(&path, text) {
            Ok(()) => {
                eprintln!("steward: wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &format!("{}: {e}", path.display())),
        },
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
    }
}

fn events(store: &Store, q: EventQuery) -> Result<Vec<steward_framework::store::EventRecord>, String> {
    let mut out = Vec::new();
    let mut after = Some(0);
    loop {
        let page =
            store.query_events(&EventQuery { after_id: after, limit: 5000, ..q.clone() }).map_err(|e| e.to_string())?;
        let n = page.len();
        after = page.last().map(|e| e.id);
        out.extend(page);
        if n < 5000 || out.len() >= 200_000 {
            return Ok(out);
        }
    }
}

/// Digits ignored, so `timeout after 31 ms` and `timeout after 87 ms` are one message.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out.chars().take(200).collect()
}

/// Gathers the report.
pub fn collect(store: &Store, home: &Path, from: u64, until: u64) -> Result<Report, String> {
    let period = (until - from).max(1);
    let days = period.div_ceil(86_400_000).max(1) as usize;
    let mut projects = Vec::new();
    let mut alerts = Vec::new();
    for proj in store.projects().map_err(|e| e.to_string())? {
        let evs = events(
            store,
            EventQuery {
                project: Some(proj.project.clone()),
                since_ms: Some(from),
                until_ms: Some(until),
                ..Default::default()
            },
        )?;
        let mut crashes_per_day = vec![0u64; days];
        let mut modules = Vec::new();
        for module in &proj.modules {
            let runs = store.runs(&proj.project, Some(module), 100_000).map_err(|e| e.to_string())?;
            // Newest first: a run without an end that is not the newest ended when the next one began.
            let mut up = 0u64;
            let mut next_start: Option<u64> = None;
            let mut started = 0;
            // Observed from the period's start, or from the module's first run when that is later.
            let first = runs.iter().map(|r| r.started_ms).min().unwrap_or(until);
            let observed = until.saturating_sub(from.max(first.min(until))).max(1);
            for r in &runs {
                let end = r.ended_ms.or(next_start).unwrap_or(until).min(until);
                let start = r.started_ms.max(from);
                if end > start {
                    up += end - start;
                }
                if r.started_ms >= from {
                    started += 1;
                }
                next_start = Some(r.started_ms);
            }
            let mine = evs.iter().filter(|e| e.kind == "transition" && e.module.as_deref() == Some(module));
            let (mut crashes, mut restarts) = (0, 0);
            for e in mine {
                if e.level >= Level::Warn {
                    crashes += 1;
                    let day = ((e.ts_ms.saturating_sub(from)) / 86_400_000) as usize;
                    if let Some(slot) = crashes_per_day.get_mut(day.min(days - 1)) {
                        *slot += 1;
                    }
                }
                if e.text.contains("→ backoff") {
                    restarts += 1;
                }
            }
            modules.push(ModuleReport {
                name: module.clone(),
                uptime_pct: (up as f64 * 100.0 / observed as f64).min(100.0),
                runs: started,
                crashes,
                restarts,
            });
        }
        for e in evs.iter().filter(|e| e.level == Level::Error) {
            alerts.push(Alert { ts_ms: e.ts_ms, project: proj.project.clone(), text: e.text.clone() });
        }
        let name = steward_framework::config::load(
            Path::new(&proj.project),
            &steward_framework::config::LoadOptions::from_process_env(None),
        )
        .map(|s| s.project)
        .ok();
        projects.push(ProjectReport { project: proj.project, name, modules, crashes_per_day });
    }
    for n in store.notes(None, 1000).map_err(|e| e.to_string())? {
        if n.ts_ms >= from && n.tags.iter().any(|t| t == "alert") {
            alerts.push(Alert {
                ts_ms: n.ts_ms,
                project: n.project,
                text: n.text.lines().next().unwrap_or("").to_string(),
            });
        }
    }
    alerts.sort_by_key(|a| std::cmp::Reverse(a.ts_ms));
    let alert_count = alerts.len();
    alerts.truncate(20);
    let errors = store
        .query_logs(&LogQuery {
            level: Some(Level::Error),
            since_ms: Some(from),
            until_ms: Some(until),
            limit: 5000,
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for l in &errors {
        *counts.entry(format!("{}: {}", l.module, normalise(&l.text))).or_default() += 1;
    }
    let mut top: Vec<(u64, String)> = counts.into_iter().map(|(k, v)| (v, k)).collect();
    top.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    top.truncate(10);
    let backups = BackupSettings::from_env(home).ok().map(|s| {
        let repo = Repository::at(&s.dir);
        let all = repo.list().map(|(a, _)| a).unwrap_or_default();
        let latest = all.last();
        BackupState {
            dir: s.dir.display().to_string(),
            count: all.len(),
            in_period: all.iter().filter(|m| m.created_ms >= from).count(),
            latest: latest.map(|m| (m.id.clone(), m.created_ms, m.total_bytes)),
            latest_problems: latest.map(|m| m.problems.clone()).unwrap_or_default(),
            last_drill: repo.drills().last().map(|d| (d.at_ms, d.duration_ms, d.ok)),
        }
    });
    Ok(Report { since_ms: from, until_ms: until, projects, alerts, alert_count, top_errors: top, backups })
}

fn project_title(p: &ProjectReport) -> String {
    let path = p.project.as_str();
    let name = p
        .name
        .clone()
        .or_else(|| Path::new(path).parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()));
    match name {
        Some(n) if !n.is_empty() => format!("{n} ({path})"),
        _ => path.to_string(),
    }
}

fn backup_lines(b: &BackupState, until: u64) -> Vec<String> {
    let mut out = Vec::new();
    match &b.latest {
        Some((id, at, size)) => out.push(format!(
            "{} backups in {} ({} made in the period); the latest, {id}, is {} old ({})",
            b.count,
            b.dir,
            b.in_period,
            human_duration(Duration::from_millis(until.saturating_sub(*at))),
            human_bytes(*size)
        )),
        None => out.push(format!("no backups in {}: make one with `steward backup create`", b.dir)),
    }
    for p in &b.latest_problems {
        out.push(format!("problem in the latest backup: {p}"));
    }
    match b.last_drill {
        Some((at, ms, ok)) => out.push(format!(
            "last restore drill {}: {} in {:.2} s",
            local_time(at),
            if ok { "passed" } else { "FAILED" },
            ms as f64 / 1000.0
        )),
        None => out.push("no restore drill yet (`steward backup drill`)".into()),
    }
    out
}

/// Markdown.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Steward report\n");
    let _ = writeln!(s, "Period: {} → {} (local time)\n", local_time(r.since_ms), local_time(r.until_ms));
    if r.projects.is_empty() {
        let _ = writeln!(s, "No project has recorded anything yet.\n");
    }
    for p in &r.projects {
        let _ = writeln!(s, "## {}\n", project_title(p));
        let _ = writeln!(s, "| module | uptime | runs | crashes | restarts |\n|---|---:|---:|---:|---:|");
        for m in &p.modules {
            let _ = writeln!(s, "| {} | {:.1}% | {} | {} | {} |", m.name, m.uptime_pct, m.runs, m.crashes, m.restarts);
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Alerts\n");
    if r.alerts.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        for a in &r.alerts {
            let _ = writeln!(s, "- {} — {}", local_time(a.ts_ms), a.text.replace('\n', " "));
        }
        if r.alert_count > r.alerts.len() {
            let _ = writeln!(s, "- … and {} more", r.alert_count - r.alerts.len());
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Top error messages\n");
    if r.top_errors.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        let _ = writeln!(s, "| count | message |\n|---:|---|");
        for (n, msg) in &r.top_errors {
            let _ = writeln!(s, "| {n} | `{}` |", msg.replace('|', "\\|").replace('`', "'"));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Backups\n");
    match &r.backups {
        Some(b) => {
            for l in backup_lines(b, r.until_ms) {
                let _ = writeln!(s, "- {l}");
            }
        }
        None => {
            let _ = writeln!(s, "- the backup settings are invalid (see `steward doctor`)");
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Horizontal bars: uptime per module.
fn uptime_svg(p: &ProjectReport) -> String {
    let row = 22;
    let h = row * p.modules.len().max(1) + 4;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="420" height="{h}" role="img" aria-label="uptime per module">"#
    );
    for (i, m) in p.modules.iter().enumerate() {
        let y = i * row + 2;
        let w = (m.uptime_pct * 2.6).round() as u32;
        let colour = if m.uptime_pct >= 99.0 {
            "#2e7d32"
        } else if m.uptime_pct >= 90.0 {
            "#f9a825"
        } else {
            "#c62828"
        };
        let _ = write!(
            s,
            r##"<text x="0" y="{}" font-size="12">{}</text><rect x="100" y="{y}" width="260" height="16" fill="#eee"/><rect x="100" y="{y}" width="{w}" height="16" fill="{colour}"/><text x="366" y="{}" font-size="12">{:.1}%</text>"##,
            y + 12,
            esc(&m.name),
            y + 12,
            m.uptime_pct
        );
    }
    s.push_str("</svg>");
    s
}

/// Vertical bars: crashes per day.
fn crashes_svg(p: &ProjectReport) -> String {
    let n = p.crashes_per_day.len().max(1);
    let max = p.crashes_per_day.iter().copied().max().unwrap_or(0).max(1);
    let bw = (360 / n).clamp(4, 40);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="80" role="img" aria-label="crashes per day">"#,
        bw * n + 10
    );
    s.push_str(r##"<line x1="0" y1="70" x2="2000" y2="70" stroke="#999"/>"##);
    for (i, c) in p.crashes_per_day.iter().enumerate() {
        let h = (*c as f64 / max as f64 * 60.0).round() as u64;
        let _ = write!(
            s,
            r##"<rect x="{}" y="{}" width="{}" height="{h}" fill="#c62828"><title>day {}: {c} crash(es)</title></rect>"##,
            i * bw + 2,
            70 - h,
            bw.saturating_sub(2).max(1),
            i + 1
        );
    }
    s.push_str("</svg>");
    s
}

/// One self-contained HTML page with inline SVG charts.
pub fn html(r: &Report) -> String {
    let mut s = String::new();
    s.push_str("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Steward report</title>");
    s.push_str("<style>body{font:14px/1.4 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right}code{font-size:12px}</style></head><body>\n");
    let _ = writeln!(
        s,
        "<h1>Steward report</h1><p>Period: {} → {} (local time)</p>",
        local_time(r.since_ms),
        local_time(r.until_ms)
    );
    for p in &r.projects {
        let _ = writeln!(s, "<h2>{}</h2>", esc(&project_title(p)));
        let _ = writeln!(s, "<h3>Uptime</h3>{}", uptime_svg(p));
        let _ = writeln!(s, "<h3>Crashes per day</h3>{}", crashes_svg(p));
        s.push_str("<table><tr><th>module</th><th>uptime</th><th>runs</th><th>crashes</th><th>restarts</th></tr>\n");
        for m in &p.modules {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td class=\"n\">{:.1}%</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&m.name),
                m.uptime_pct,
                m.runs,
                m.crashes,
                m.restarts
            );
        }
        s.push_str("</table>\n");
    }
    s.push_str("<h2>Alerts</h2>\n");
    if r.alerts.is_empty() {
        s.push_str("<p>None.</p>\n");
    } else {
        s.push_str("<ul>\n");
        for a in &r.alerts {
            let _ = writeln!(s, "<li>{} — {}</li>", local_time(a.ts_ms), esc(&a.text));
        }
        if r.alert_count > r.alerts.len() {
            let _ = writeln!(s, "<li>… and {} more</li>", r.alert_count - r.alerts.len());
        }
        s.push_str("</ul>\n");
    }
    s.push_str("<h2>Top error messages</h2>\n");
    if r.top_errors.is_empty() {
        s.push_str("<p>None.</p>\n");
    } else {
        s.push_str("<table><tr><th>count</th><th>message</th></tr>\n");
        for (n, msg) in &r.top_errors {
            let _ = writeln!(s, "<tr><td class=\"n\">{n}</td><td><code>{}</code></td></tr>", esc(msg));
        }
        s.push_str("</table>\n");
    }
    s.push_str("<h2>Backups</h2>\n<ul>\n");
    match &r.backups {
        Some(b) => {
            for l in backup_lines(b, r.until_ms) {
                let _ = writeln!(s, "<li>{}</li>", esc(&l));
            }
        }
        None => s.push_str("<li>the backup settings are invalid (see <code>steward doctor</code>)</li>\n"),
    }
    s.push_str("</ul>\n</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_grouped_without_digits() {
        assert_eq!(normalise("timeout after 31 ms (attempt 2)"), "timeout after N ms (attempt N)");
        assert_eq!(normalise("timeout after 87 ms (attempt 10)"), normalise("timeout after 31 ms (attempt 2)"));
    }

    #[test]
    fn html_escapes_and_draws() {
        let r = Report {
            since_ms: 0,
            until_ms: 86_400_000,
            projects: vec![ProjectReport {
                project: "/x/<p>/steward.toml".into(),
                name: None,
                modules: vec![ModuleReport { name: "a<b".into(), uptime_pct: 50.0, runs: 1, crashes: 2, restarts: 1 }],
                crashes_per_day: vec![2],
            }],
            alerts: vec![Alert { ts_ms: 1_000, project: "/x".into(), text: "db failed".into() }],
            alert_count: 25,
            top_errors: vec![(3, "api: boom <script>".into())],
            backups: None,
        };
        let h = html(&r);
        // Both formats say the same: the 20 newest alerts and how many more there were, and invalid settings.
        assert!(h.contains("<li>… and 24 more</li>") && h.contains("the backup settings are invalid"), "{h}");
        assert!(markdown(&r).contains("- … and 24 more"));
        assert!(h.contains("<svg") && h.contains("width=\"130\""), "a 50% bar is 130 px of 260");
        assert!(!h.contains("<script>") && h.contains("&lt;script&gt;"));
        assert!(h.contains("a&lt;b"));
        let md = markdown(&r);
        assert!(md.contains("| a<b | 50.0% | 1 | 2 | 1 |"), "{md}");
    }
}
