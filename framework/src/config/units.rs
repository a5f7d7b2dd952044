//! Strict parsers for the stack file's small value languages: durations, sizes, signals, backoff ranges.
//!
//! They are strict on purpose: `timeout = "10"` (seconds? milliseconds?) or `memory = "1gb"` (GB or GiB?)
//! are ambiguous, and a supervisor that guesses wrong kills services at the wrong time.

use std::time::Duration;

/// Parses a duration: one or more `<integer><unit>` parts with units `h`, `m`, `s`, `ms`, largest first,
/// each unit at most once: `"500ms"`, `"10s"`, `"1m"`, `"2h"`, `"1m30s"`. No bare numbers, signs, spaces
/// or fractions.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("empty duration".to_string());
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Err(match c {
            '.' => {
                format!("`{s}` has a fraction; use a smaller unit instead (e.g. `1500ms`, `90s`)")
            }
            '-' | '+' => format!("`{s}` has a sign; durations are never negative"),
            ' ' => format!("`{s}` contains a space; write parts together (e.g. `1m30s`)"),
            _ => format!("`{s}` contains `{c}`"),
        });
    }
    let mut total = Duration::ZERO;
    let mut previous_rank = usize::MAX;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(format!("`{s}`: expected a number before `{rest}`"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| format!("`{s}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()).len();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let (rank, part) = duration_part(number, unit).ok_or_else(|| match unit {
            "" => format!("`{s}` needs a unit: ms, s, m or h"),
            _ => format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)"),
        })?;
        if rank >= previous_rank {
            return Err(format!("`{s}`: units must go from largest to smallest, each once (e.g. `1h30m`)"));
        }
        previous_rank = rank;
        total = total.checked_add(part.ok_or_else(|| format!("`{s}`: too large"))?).ok_or("too large")?;
    }
    Ok(total)
}

/// (rank, value) of one duration part; rank orders units so that `1m30s` is accepted and `30s1m` is not.
fn duration_part(n: u64, unit: &str) -> Option<(usize, Option<Duration>)> {
    Some(match unit {
        "h" => (3, n.checked_mul(3600).map(Duration::from_secs)),
        "m" => (2, n.checked_mul(60).map(Duration::from_secs)),
        "s" => (1, Some(Duration::from_secs(n))),
        "ms" => (0, Some(Duration::from_millis(n))),
        _ => return None,
    })
}

/// Size units: decimal (`KB` = 1000) and binary (`KiB` = 1024), case-sensitive.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// Parses a byte size: `<integer><unit>` with units `B`, `KB`/`MB`/`GB`/`TB` (powers of 1000) and
/// `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024): `"512MiB"`, `"1GB"`, `"4096B"`. No bare numbers (a key that
/// takes a count is an integer, not a size), no spaces, no fractions.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = s.split_at(digits);
    if digits == 0 {
        return Err(format!("`{s}` does not start with a number"));
    }
    if unit.is_empty() {
        return Err(format!("`{s}` needs a unit, e.g. `{s}MiB` or `{s}B`"));
    }
    let Some(&(_, factor)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit) else {
        let hint = SIZE_UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit.trim()))
            .map(|(name, _)| format!(" (units are case-sensitive: did you mean `{name}`?)"))
            .unwrap_or_else(|| " (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)".to_string());
        return Err(format!("`{s}`: unknown unit `{unit}`{hint}"));
    };
    let number: u64 = number.parse().map_err(|_| format!("`{s}`: number too large"))?;
    number.checked_mul(factor).ok_or_else(|| format!("`{s}` is too large"))
}

/// Signals a module may be stopped with.
pub(crate) const SIGNALS: &[(&str, i32)] = &[
    ("TERM", libc::SIGTERM),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("HUP", libc::SIGHUP),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
];

/// The names accepted by [`parse_signal`], for messages.
pub(crate) const SIGNAL_NAMES: &str = "TERM, INT, QUIT, HUP, KILL, USR1, USR2 (optionally with a SIG prefix)";

/// Parses a stop signal name: `TERM` or `SIGTERM` (any case) and likewise INT, QUIT, HUP, KILL, USR1, USR2.
pub(crate) fn parse_signal(s: &str) -> Result<i32, String> {
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == name).map(|&(_, number)| number).ok_or_else(|| format!("unknown signal `{s}`"))
}

/// Parses a backoff range `"MIN..MAX"`, e.g. `"100ms..30s"`.
pub(crate) fn parse_backoff(s: &str) -> Result<(Duration, Duration), String> {
    let Some((min, max)) = s.split_once("..") else {
        return Err(format!("`{s}` is not a range; write `MIN..MAX`, e.g. `100ms..30s`"));
    };
    let min = parse_duration(min).map_err(|e| format!("minimum: {e}"))?;
    let max = parse_duration(max).map_err(|e| format!("maximum: {e}"))?;
    // A zero minimum is allowed on purpose: it means "restart at once, every time" (what a tight dev loop or
    // a benchmark wants); `max_restarts` within `window` still stops a crash loop.
    if min > max {
        return Err(format!("`{s}`: the minimum is greater than the maximum"));
    }
    Ok((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("500ms", Duration::from_millis(500)),
            ("10s", Duration::from_secs(10)),
            ("1m", Duration::from_secs(60)),
            ("2h", Duration::from_secs(7200)),
            ("1m30s", Duration::from_secs(90)),
            ("1h2m3s4ms", Duration::from_millis(3_723_004)),
            ("0s", Duration::ZERO),
        ];
        for (input, want) in ok {
            assert_eq!(parse_duration(input), Ok(want), "{input}");
        }
        for bad in ["", "10", "-1s", "+1s", "1.5s", "1 s", "1m 30s", "30s1m", "1s1s", "1d", "s", "10S", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn sizes() {
        let ok = [
            ("512MiB", 512 << 20),
            ("1GiB", 1 << 30),
            ("100KiB", 100 << 10),
            ("1GB", 1_000_000_000),
            ("4096B", 4096),
            ("2TB", 2_000_000_000_000),
        ];
        for (input, want) in ok {
            assert_eq!(parse_size(input), Ok(want), "{input}");
        }
        for bad in ["", "512", "512 MiB", "1.5GiB", "-1B", "1gib", "1mb", "MiB", "1XB", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad} should be rejected");
        }
        assert_eq!(
            parse_size("1gib"),
            Err("`1gib`: unknown unit `gib` (units are case-sensitive: did you mean `GiB`?)".into())
        );
    }

    #[test]
    fn signals_and_backoff() {
        assert_eq!(parse_signal("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("SIGKILL"), Ok(libc::SIGKILL));
        assert_eq!(parse_signal("usr2"), Ok(libc::SIGUSR2));
        assert!(parse_signal("STOP").is_err());
        assert_eq!(parse_backoff("100ms..30s"), Ok((Duration::from_millis(100), Duration::from_secs(30))));
        assert!(parse_backoff("30s..1s").is_err());
        assert_eq!(parse_backoff("0ms..0ms"), Ok((Duration::ZERO, Duration::ZERO)));
        assert!(parse_backoff("1s").is_err());
    }
}
