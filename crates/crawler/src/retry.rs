//! [`RetryPolicy`]: when a failed job is tried again, and when it is given up.

/// Retry rule of a failed job: after failure number `k` (1-based) the job waits
/// `min(base_secs · 2^(k-1), max_secs)` seconds (or longer if the server asked, e.g.
/// `Retry-After`); failure number `max_attempts` sends it to the dead-letter state. The
/// frontier records the outcome ([`leaktrace_store::Store::fail_job`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before dead-lettering (1 to 100).
    pub max_attempts: u32,
    /// First backoff, seconds.
    pub base_secs: u32,
    /// Longest backoff, seconds.
    pub max_secs: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_secs: 30,
            max_secs: 3600,
        }
    }
}

impl RetryPolicy {
    /// Backoff after failure number `attempt` (1-based), seconds.
    pub fn backoff_secs(&self, attempt: u32) -> i64 {
        let shift = attempt.saturating_sub(1).min(30);
        let b = i64::from(self.base_secs).saturating_mul(1i64 << shift);
        b.min(i64::from(self.max_secs))
    }

    /// When a job that failed its attempt number `attempts` (1-based) at `now` (UTC unix
    /// seconds) is due again: after the backoff, or at `at_least` (e.g. from `Retry-After`)
    /// if that is later; `None` once `attempts` reached `max_attempts` (dead-lettered). What
    /// [`leaktrace_store::Store::fail_job`] takes.
    pub fn retry_at(&self, attempts: u32, now: i64, at_least: Option<i64>) -> Option<i64> {
        if attempts >= self.max_attempts {
            return None;
        }
        let t = now + self.backoff_secs(attempts);
        Some(t.max(at_least.unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_secs: 10,
            max_secs: 35,
        };
        assert_eq!(p.backoff_secs(1), 10);
        assert_eq!(p.backoff_secs(2), 20);
        assert_eq!(p.backoff_secs(3), 35);
        assert_eq!(p.backoff_secs(99), 35);
    }

    #[test]
    fn retry_at_until_the_last_attempt() {
        let p = RetryPolicy {
            max_attempts: 3,
            base_secs: 10,
            max_secs: 100,
        };
        assert_eq!(p.retry_at(1, 1000, None), Some(1010));
        assert_eq!(p.retry_at(2, 1000, Some(1005)), Some(1020));
        assert_eq!(p.retry_at(2, 1000, Some(1500)), Some(1500));
        assert_eq!(p.retry_at(3, 1000, Some(1500)), None);
    }
}
