//! The restart decision: one pure function, `should_restart`, over the policy, why the run ended, the
//! module's recent restart history and the current time. Table-driven tests below.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{RestartPolicy, RestartSpec};

/// Why a run ended, as far as restarting is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitCause {
    /// The process exited on its own (code, or signal when killed by one).
    Exited {
        /// Exit code.
        code: Option<i32>,
        /// Terminating signal.
        signal: Option<i32>,
    },
    /// The liveness probe failed `retries` times in a row; the engine stopped it.
    Unhealthy(String),
    /// The readiness probe never passed; the engine stopped it.
    NotReady(String),
    /// The process tree exceeded its memory limit; the engine stopped it.
    MemoryLimit {
        /// Sampled RSS in bytes.
        rss: u64,
        /// Limit in bytes.
        limit: u64,
    },
    /// The process could not be started at all (command not found, bad cwd, …).
    SpawnFailed(String),
}

impl ExitCause {
    /// A clean exit (status 0) is the only non-failure.
    pub fn is_failure(&self) -> bool {
        !matches!(self, ExitCause::Exited { code: Some(0), .. })
    }

    /// Words for people: "exited with status 1", "killed by signal 9 (SIGKILL)", …
    pub fn describe(&self) -> String {
        match self {
            ExitCause::Exited { code: Some(c), .. } => format!("exited with status {c}"),
            ExitCause::Exited { signal: Some(s), .. } => format!("killed by signal {s} ({})", signal_name(*s)),
            ExitCause::Exited { .. } => "exited".to_string(),
            ExitCause::Unhealthy(d) => format!("health check failed: {d}"),
            ExitCause::NotReady(d) => format!("never became healthy: {d}"),
            ExitCause::MemoryLimit { rss, limit } => {
                format!("memory limit exceeded: {} > {}", human_bytes(*rss), human_bytes(*limit))
            }
            ExitCause::SpawnFailed(e) => format!("could not start: {e}"),
        }
    }
}

/// What the module's recent past looks like.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartHistory {
    /// When each automatic restart in the current window was decided.
    pub restarts: VecDeque<Instant>,
    /// Consecutive failures since the last stable run: the backoff exponent.
    pub attempt: u32,
}

/// The verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start again after `delay`; `attempt` is the new consecutive-failure count.
    Restart {
        /// Backoff delay.
        delay: Duration,
        /// Attempt number (1-based).
        attempt: u32,
    },
    /// Stop trying: the module becomes Failed with this reason.
    GiveUp(String),
    /// Leave it exited (clean exit under on-failure, or policy never).
    Stay,
}

/// Decide whether and when to restart.
///
/// - `never`: failures are Failed (with the cause), clean exits are Exited.
/// - `on-failure`: a clean exit stays Exited; anything else restarts.
/// - `always`: every end restarts.
/// - A spawn failure never restarts (retrying a missing command only hides the error).
/// - A run that lasted `stable_after` resets the backoff exponent.
/// - More than `max_restarts` restarts within `window` → GiveUp("restart loop …").
///
/// `jitter` is a sample in [0, 1) that spreads the delay over ±20 % so that modules failing together do
/// not retry in lock-step.
pub fn should_restart(
    spec: &RestartSpec,
    cause: &ExitCause,
    history: &RestartHistory,
    run_lasted: Duration,
    now: Instant,
    jitter: f64,
) -> Decision {
    if let ExitCause::SpawnFailed(_) = cause {
        return Decision::GiveUp(cause.describe());
    }
    let restart = match spec.policy {
        RestartPolicy::Never => false,
        RestartPolicy::OnFailure => cause.is_failure(),
        RestartPolicy::Always => true,
    };
    if !restart {
        return if cause.is_failure()
            && spec.policy == RestartPolicy::Never
            && !matches!(cause, ExitCause::Exited { .. })
        {
            Decision::GiveUp(cause.describe())
        } else {
            Decision::Stay
        };
    }
    let in_window = history.restarts.iter().filter(|t| now.saturating_duration_since(**t) < spec.window).count();
    if in_window >= spec.max_restarts as usize {
        return Decision::GiveUp(format!(
            "restart loop: {} restarts within {}; last: {}",
            in_window,
            human_duration(spec.window),
            cause.describe()
        ));
    }
    let attempt = if run_lasted >= spec.stable_after { 1 } else { history.attempt + 1 };
    Decision::Restart { delay: backoff_delay(spec, attempt, jitter), attempt }
}

/// `min · 2^(attempt-1)`, jittered ±20 %, capped at `max`. A zero minimum means no delay at all.
pub fn backoff_delay(spec: &RestartSpec, attempt: u32, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let base = spec.backoff_min.saturating_mul(1u32 << exp).min(spec.backoff_max);
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    base.mul_f64(factor).min(spec.backoff_max)
}

/// Record a restart decision in the history, dropping entries older than the window.
pub fn record_restart(history: &mut RestartHistory, spec: &RestartSpec, attempt: u32, now: Instant) {
    history.restarts.retain(|t| now.saturating_duration_since(*t) < spec.window);
    history.restarts.push_back(now);
    history.attempt = attempt;
}

/// Conventional signal names for messages.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "signal",
    }
}

/// `1.5 GiB`, `512 MiB`, `900 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else if v >= 10.0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// `250ms`, `10s`, `1m30s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms % 1000 != 0 && ms < 10_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        match (s / 3600, (s % 3600) / 60, s % 60) {
            (0, 0, s) => format!("{s}s"),
            (0, m, 0) => format!("{m}m"),
            (0, m, s) => format!("{m}m{s}s"),
            (h, m, _) => format!("{h}h{m}m"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(policy: RestartPolicy) -> RestartSpec {
        RestartSpec {
            policy,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            max_restarts: 3,
            window: Duration::from_secs(60),
            stable_after: Duration::from_secs(10),
        }
    }

    fn exited(code: i32) -> ExitCause {
        ExitCause::Exited { code: Some(code), signal: None }
    }

    #[test]
    fn decision_table() {
        let now = Instant::now();
        let short = Duration::from_millis(50);
        let fresh = RestartHistory::default();
        let ms = |n| Duration::from_millis(n);
        use Decision::*;
        use RestartPolicy::*;
        let cases: Vec<(RestartPolicy, ExitCause, Decision)> = vec![
            (Never, exited(0), Stay),
            (Never, exited(1), Stay),
            (Never, ExitCause::Unhealthy("x".into()), GiveUp("health check failed: x".into())),
            (OnFailure, exited(0), Stay),
            (OnFailure, exited(1), Restart { delay: ms(100), attempt: 1 }),
            (OnFailure, ExitCause::Exited { code: None, signal: Some(9) }, Restart { delay: ms(100), attempt: 1 }),
            (OnFailure, ExitCause::Unhealthy("x".into()), Restart { delay: ms(100), attempt: 1 }),
            (OnFailure, ExitCause::MemoryLimit { rss: 2, limit: 1 }, Restart { delay: ms(100), attempt: 1 }),
            (Always, exited(0), Restart { delay: ms(100), attempt: 1 }),
            (
                Always,
                ExitCause::SpawnFailed("command not found: `nope`".into()),
                GiveUp("could not start: command not found: `nope`".into()),
            ),
        ];
        for (policy, cause, want) in cases {
            // jitter 0.5 = no spread.
            let got = should_restart(&spec(policy), &cause, &fresh, short, now, 0.5);
            assert_eq!(got, want, "{policy:?} {cause:?}");
        }
    }

    #[test]
    fn backoff_grows_exponentially_and_caps() {
        let s = spec(RestartPolicy::Always);
        let delays: Vec<u128> = (1..=7).map(|a| backoff_delay(&s, a, 0.5).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 2000, 2000]);
        // Jitter spreads ±20 % but never above the cap.
        assert_eq!(backoff_delay(&s, 1, 0.0).as_millis(), 80);
        assert_eq!(backoff_delay(&s, 1, 0.999).as_millis(), 119);
        assert_eq!(backoff_delay(&s, 7, 0.999), s.backoff_max);
        // Zero minimum: immediate restarts.
        let zero = RestartSpec { backoff_min: Duration::ZERO, ..s };
        assert_eq!(backoff_delay(&zero, 5, 0.9), Duration::ZERO);
    }

    #[test]
    fn restart_loop_and_stable_reset() {
        let s = spec(RestartPolicy::OnFailure);
        let t0 = Instant::now();
        let mut h = RestartHistory::default();
        let mut attempts = vec![];
        for i in 0..3 {
            let now = t0 + Duration::from_secs(i);
            match should_restart(&s, &exited(1), &h, Duration::from_millis(10), now, 0.5) {
                Decision::Restart { attempt, .. } => {
                    attempts.push(attempt);
                    record_restart(&mut h, &s, attempt, now);
                }
                d => panic!("unexpected {d:?}"),
            }
        }
        assert_eq!(attempts, vec![1, 2, 3]);
        let d = should_restart(&s, &exited(1), &h, Duration::from_millis(10), t0 + Duration::from_secs(3), 0.5);
        assert_eq!(d, Decision::GiveUp("restart loop: 3 restarts within 1m; last: exited with status 1".into()));
        // Outside the window the old restarts no longer count, and a stable run resets the exponent.
        let later = t0 + Duration::from_secs(120);
        let d = should_restart(&s, &exited(1), &h, Duration::from_secs(30), later, 0.5);
        assert_eq!(d, Decision::Restart { delay: Duration::from_millis(100), attempt: 1 });
    }

    #[test]
    fn words() {
        assert_eq!(ExitCause::Exited { code: None, signal: Some(9) }.describe(), "killed by signal 9 (SIGKILL)");
        assert_eq!(human_bytes(1536 * 1024 * 1024), "1.5 GiB");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
    }
}
