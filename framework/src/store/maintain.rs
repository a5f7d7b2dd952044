//! Read-side helpers of maintenance and reports: the retention preview and the project list.

use rusqlite::Connection;

use super::{ProjectModules, Result, RetentionPolicy, RetentionReport};
use crate::lifecycle::now_ms;

/// What retention would delete now (see [`super::Store::retention_preview`]).
pub(crate) fn retention_preview(conn: &Connection, policy: RetentionPolicy) -> Result<RetentionReport> {
    let cutoff = now_ms().saturating_sub(policy.max_age.as_millis() as u64) as i64;
    // Retention deletes whole blocks: a block goes by age when its last line is old.
    let logs_by_age: i64 =
        conn.query_row("SELECT coalesce(sum(lines), 0) FROM log_blocks WHERE ts_last < ?1", [cutoff], |r| r.get(0))?;
    let events_by_age: i64 = conn.query_row("SELECT count(*) FROM events WHERE ts_ms < ?1", [cutoff], |r| r.get(0))?;
    let raw_used = super::writer::used_bytes(conn)?;
    let used = raw_used.saturating_sub(super::writer::reclaimable_index_bytes(conn)?);
    let mut logs_by_size = 0u64;
    if used > policy.max_bytes {
        let rows: i64 = conn.query_row("SELECT coalesce(sum(lines), 0) FROM log_blocks", [], |r| r.get(0))?;
        let rows = rows.max(1) as u64;
        let per_row = (used / rows).max(1);
        logs_by_size = ((used - policy.max_bytes) / per_row + 1).min(rows.saturating_sub(logs_by_age.max(0) as u64));
    }
    Ok(RetentionReport {
        logs_by_age: logs_by_age.max(0) as u64,
        logs_by_size,
        events_by_age: events_by_age.max(0) as u64,
        used_bytes: used,
    })
}

/// Every project with its modules.
pub(crate) fn projects(conn: &Connection) -> Result<Vec<ProjectModules>> {
    let mut stmt = conn.prepare(
        "SELECT p.name, m.name FROM projects p LEFT JOIN modules m ON m.project_id = p.id ORDER BY p.name, m.name",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))?;
    let mut out: Vec<ProjectModules> = Vec::new();
    for row in rows {
        let (project, module) = row?;
        if out.last().is_none_or(|p| p.project != project) {
            out.push(ProjectModules { project: project.clone(), modules: Vec::new() });
        }
        if let (Some(m), Some(last)) = (module, out.last_mut()) {
            last.modules.push(m);
        }
    }
    Ok(out)
}
