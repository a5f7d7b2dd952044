//! Which backups a retention policy keeps. Pure: days and weeks are given as numbers by the caller (the
//! CLI and the daemon use local calendar days and ISO weeks), so every case is a table test.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Keep the `last` newest backups, plus the newest backup of each of the last `daily` calendar days and of
/// each of the last `weekly` weeks (counting the current day and week). A backup kept by any rule stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeepPolicy {
    /// Newest backups kept whatever their age.
    pub last: u32,
    /// Days (today included) whose newest backup is kept.
    pub daily: u32,
    /// Weeks (this one included) whose newest backup is kept.
    pub weekly: u32,
}

impl Default for KeepPolicy {
    fn default() -> Self {
        KeepPolicy { last: 7, daily: 7, weekly: 4 }
    }
}

impl KeepPolicy {
    /// Parses `last=7,daily=7,weekly=4` (any subset; missing keys keep their default).
    pub fn parse(s: &str) -> Result<KeepPolicy, String> {
        let mut p = KeepPolicy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("`{part}` is not KEY=N"))?;
            let n: u32 = v.trim().parse().map_err(|_| format!("`{v}` in `{part}` is not a whole number"))?;
            match k.trim() {
                "last" => p.last = n,
                "daily" => p.daily = n,
                "weekly" => p.weekly = n,
                other => return Err(format!("unknown key `{other}` (expected last, daily or weekly)")),
            }
        }
        if p.last == 0 && p.daily == 0 && p.weekly == 0 {
            return Err("a policy that keeps nothing (last, daily and weekly all 0) would delete every backup".into());
        }
        Ok(p)
    }
}

impl std::fmt::Display for KeepPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "last={},daily={},weekly={}", self.last, self.daily, self.weekly)
    }
}

/// A backup as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotTime {
    /// Snapshot id.
    pub id: String,
    /// Creation time (ms), for ordering.
    pub ms: u64,
    /// Its calendar day (any monotonic day number).
    pub day: i64,
    /// Its week (any monotonic week number).
    pub week: i64,
}

/// The ids `policy` keeps, given today's day and week numbers.
pub fn select_kept(snapshots: &[SnapshotTime], policy: KeepPolicy, today: i64, this_week: i64) -> BTreeSet<String> {
    let mut newest_first: Vec<&SnapshotTime> = snapshots.iter().collect();
    newest_first.sort_by(|a, b| b.ms.cmp(&a.ms).then_with(|| b.id.cmp(&a.id)));
    let mut keep = BTreeSet::new();
    for s in newest_first.iter().take(policy.last as usize) {
        keep.insert(s.id.clone());
    }
    let mut days: BTreeMap<i64, &str> = BTreeMap::new();
    let mut weeks: BTreeMap<i64, &str> = BTreeMap::new();
    for s in &newest_first {
        // The first seen of a bucket is its newest.
        days.entry(s.day).or_insert(&s.id);
        weeks.entry(s.week).or_insert(&s.id);
    }
    for (day, id) in days {
        if policy.daily > 0 && day <= today && day > today - i64::from(policy.daily) {
            keep.insert(id.to_string());
        }
    }
    for (week, id) in weeks {
        if policy.weekly > 0 && week <= this_week && week > this_week - i64::from(policy.weekly) {
            keep.insert(id.to_string());
        }
    }
    keep
}

/// The local calendar day (days since 1970-01-01 in local time) and week (Monday-based weeks since the
/// epoch's) of a time in ms since the epoch.
pub fn local_day_week(ms: u64) -> (i64, i64) {
    let secs = (ms / 1000) as i64;
    let t = secs as libc::time_t;
    // SAFETY: localtime_r writes only into `tm`, which we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let offset = if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() { 0 } else { tm.tm_gmtoff };
    let day = (secs + offset).div_euclid(86_400);
    // 1970-01-01 was a Thursday: day 4 (1970-01-05) is the first Monday.
    (day, (day + 3).div_euclid(7))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, hour: i64) -> SnapshotTime {
        // `hour` hours since day 0; weeks of 7 days.
        SnapshotTime { id: id.into(), ms: (hour * 3_600_000) as u64, day: hour / 24, week: hour / 24 / 7 }
    }

    fn kept(snaps: &[SnapshotTime], p: KeepPolicy, today: i64) -> Vec<String> {
        select_kept(snaps, p, today, today / 7).into_iter().collect()
    }

    #[test]
    fn keep_last_n() {
        let s: Vec<_> = (0..10).map(|i| snap(&format!("s{i}"), i)).collect();
        assert_eq!(kept(&s, KeepPolicy { last: 3, daily: 0, weekly: 0 }, 0), vec!["s7", "s8", "s9"]);
    }

    #[test]
    fn daily_keeps_the_newest_of_each_recent_day() {
        // Two backups a day for 10 days (hours 1 and 13 of each day).
        let s: Vec<_> =
            (0..10).flat_map(|d| [snap(&format!("d{d}a"), d * 24 + 1), snap(&format!("d{d}b"), d * 24 + 13)]).collect();
        let k = kept(&s, KeepPolicy { last: 0, daily: 3, weekly: 0 }, 9);
        assert_eq!(k, vec!["d7b", "d8b", "d9b"]);
        // A day in the future of `today` (clock went back) is not a "recent day".
        let k = kept(&s, KeepPolicy { last: 0, daily: 2, weekly: 0 }, 5);
        assert_eq!(k, vec!["d4b", "d5b"]);
    }

    #[test]
    fn weekly_and_union_of_rules() {
        // One backup a day for 30 days.
        let s: Vec<_> = (0..30).map(|d| snap(&format!("d{d:02}"), d * 24)).collect();
        // Weeks: 0 = d00..d06, 1 = d07..d13, 2 = d14..d20, 3 = d21..d27, 4 = d28..d29.
        let k = kept(&s, KeepPolicy { last: 0, daily: 0, weekly: 2 }, 29);
        assert_eq!(k, vec!["d27", "d29"]);
        let k = kept(&s, KeepPolicy { last: 1, daily: 2, weekly: 3 }, 29);
        assert_eq!(k, vec!["d20", "d27", "d28", "d29"]);
    }

    #[test]
    fn nothing_is_lost_when_backups_are_old() {
        // The daemon was off for a month: daily/weekly keep nothing, `last` still does.
        let s: Vec<_> = (0..5).map(|d| snap(&format!("d{d}"), d * 24)).collect();
        assert_eq!(kept(&s, KeepPolicy { last: 2, daily: 7, weekly: 1 }, 60), vec!["d3", "d4"]);
    }

    #[test]
    fn weeks_start_on_monday() {
        // 1970-01-04 (day 3) was a Sunday, 1970-01-05 (day 4) a Monday.
        assert_eq!((3i64 + 3).div_euclid(7), 0);
        assert_eq!((4i64 + 3).div_euclid(7), 1);
        let (day, week) = local_day_week(1_700_000_000_000);
        assert!((19_675..=19_676).contains(&day), "{day}");
        assert_eq!(week, (day + 3).div_euclid(7));
    }

    #[test]
    fn parsing() {
        assert_eq!(KeepPolicy::parse("last=3").unwrap(), KeepPolicy { last: 3, daily: 7, weekly: 4 });
        assert_eq!(
            KeepPolicy::parse(" last=1, daily=0 ,weekly=12").unwrap(),
            KeepPolicy { last: 1, daily: 0, weekly: 12 }
        );
        assert!(KeepPolicy::parse("monthly=3").unwrap_err().contains("monthly"));
        assert!(KeepPolicy::parse("last=x").unwrap_err().contains("`x`"));
        assert!(KeepPolicy::parse("last=0,daily=0,weekly=0").unwrap_err().contains("keeps nothing"));
        assert_eq!(KeepPolicy::default().to_string(), "last=7,daily=7,weekly=4");
    }
}
