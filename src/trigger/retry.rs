//! Retry policy for Trigger.dev API calls: which failures are retried, how often, and how long to wait.
//!
//! The rules are data. [`STATUS_RULES`] turns an HTTP status (plus the server's `x-should-retry`
//! hint) into a [`RetryClass`]; [`BUDGET_RULES`] says which budget each class spends and how the wait
//! is chosen. [`RetryState`] counts what one request has spent and answers with a [`Decision`].
//! Nothing here does I/O or sleeps: the client does, so the policy is unit-testable as is.

use std::ops::RangeInclusive;
use std::time::Duration;

/// How a failed attempt may be retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryClass {
    /// Never retried: bad key, plain 404, other 4xx, oversized or non-JSON body.
    Never,
    /// 5xx, timeouts, connection errors, a body cut mid-way: exponential backoff with full jitter.
    Transient,
    /// A 404 sent with `x-should-retry: true` (a run triggered an instant ago): a few backoff retries.
    NotFoundPending,
    /// 429: wait for the server's reset (the rate limiter holds every request), then try again.
    RateLimited,
}

/// What the client does after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Sleep `wait`, then send the request again. For [`RetryClass::RateLimited`] `wait` is zero:
    /// the rate limiter's hold does the waiting for every request of the client.
    Retry { wait: Duration },
    /// Return the error.
    GiveUp,
}

/// The retry knobs. Defaults: backoff from 1 s doubling to 30 s, 5 attempts in all for transient
/// failures, 3 retries of a 404 marked `x-should-retry`, 10 consecutive 429s before giving up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Upper bound of the first backoff; each later one doubles it, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts in all (the first one included) for [`RetryClass::Transient`] failures.
    pub max_attempts: u32,
    /// Retries of a 404 that carries `x-should-retry: true`; then the 404 is returned.
    pub not_found_retries: u32,
    /// Consecutive 429s one request tolerates; they do not spend `max_attempts`.
    pub max_rate_limited: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_attempts: 5,
            not_found_retries: 3,
            max_rate_limited: 10,
        }
    }
}

/// The budgets a request can spend, one counter each in [`RetryState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Budget {
    Transient,
    NotFound,
    RateLimited,
}

/// How the wait before the next attempt is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// `uniform(0, min(max_backoff, initial_backoff * 2^(n-1)))` for the n-th retry of the budget.
    FullJitterBackoff,
    /// No sleep here: the rate limiter already holds all requests until the server's reset.
    RateLimiterHold,
}

/// Which budget each retryable class spends and how it waits.
const BUDGET_RULES: [(RetryClass, Budget, Wait); 3] = [
    (RetryClass::Transient, Budget::Transient, Wait::FullJitterBackoff),
    (RetryClass::NotFoundPending, Budget::NotFound, Wait::FullJitterBackoff),
    (RetryClass::RateLimited, Budget::RateLimited, Wait::RateLimiterHold),
];

/// One row of the status table: statuses, and the class for each value of `x-should-retry`.
struct StatusRule {
    statuses: RangeInclusive<u16>,
    /// No header, or a value other than `true`/`false`.
    default: RetryClass,
    /// `x-should-retry: true`.
    hinted_retry: RetryClass,
    /// `x-should-retry: false`.
    hinted_no_retry: RetryClass,
}

/// First matching row wins. The server's hint is honoured the way the official SDK does, except
/// that it cannot make a bad key or a 429 anything else.
const STATUS_RULES: [StatusRule; 7] = [
    rule(401..=401, RetryClass::Never, RetryClass::Never, RetryClass::Never),
    rule(403..=403, RetryClass::Never, RetryClass::Never, RetryClass::Never),
    rule(
        404..=404,
        RetryClass::Never,
        RetryClass::NotFoundPending,
        RetryClass::Never,
    ),
    rule(
        408..=408,
        RetryClass::Transient,
        RetryClass::Transient,
        RetryClass::Never,
    ),
    rule(
        429..=429,
        RetryClass::RateLimited,
        RetryClass::RateLimited,
        RetryClass::RateLimited,
    ),
    rule(400..=499, RetryClass::Never, RetryClass::Transient, RetryClass::Never),
    rule(
        500..=599,
        RetryClass::Transient,
        RetryClass::Transient,
        RetryClass::Never,
    ),
];

const fn rule(
    statuses: RangeInclusive<u16>,
    default: RetryClass,
    hinted_retry: RetryClass,
    hinted_no_retry: RetryClass,
) -> StatusRule {
    StatusRule {
        statuses,
        default,
        hinted_retry,
        hinted_no_retry,
    }
}

/// The class of a non-2xx response. `should_retry` is the parsed `x-should-retry` header.
pub fn classify_status(status: u16, should_retry: Option<bool>) -> RetryClass {
    STATUS_RULES.iter().find(|rule| rule.statuses.contains(&status)).map_or(
        RetryClass::Never,
        |rule| match should_retry {
            Some(true) => rule.hinted_retry,
            Some(false) => rule.hinted_no_retry,
            None => rule.default,
        },
    )
}

/// Parses `x-should-retry` (`true`/`false`, any case); anything else is no hint.
pub fn parse_should_retry(value: &str) -> Option<bool> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Some(true),
        v if v.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

impl RetryPolicy {
    /// How many retries a budget allows.
    fn allowance(&self, budget: Budget) -> u32 {
        match budget {
            Budget::Transient => self.max_attempts.saturating_sub(1),
            Budget::NotFound => self.not_found_retries,
            Budget::RateLimited => self.max_rate_limited,
        }
    }

    /// The upper bound of the wait before retry number `retry` (1-based) of a backoff budget.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// Full jitter: uniform in `[0, backoff_ceiling(retry)]`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.backoff_ceiling(retry);
        ceiling.mul_f64(rand::random::<f64>())
    }
}

/// What one request has spent of each budget so far.
#[derive(Clone, Debug, Default)]
pub struct RetryState {
    /// Retries decided so far, of every kind.
    retries: u32,
    transient: u32,
    not_found: u32,
    rate_limited: u32,
}

impl RetryState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Attempts sent so far, for error messages (the one that just failed included).
    pub fn attempts(&self) -> u32 {
        1 + self.retries
    }

    fn counter(&mut self, budget: Budget) -> &mut u32 {
        match budget {
            Budget::Transient => &mut self.transient,
            Budget::NotFound => &mut self.not_found,
            Budget::RateLimited => &mut self.rate_limited,
        }
    }

    /// Records a failure of `class` and decides. A 429 resets nothing but spends only its own
    /// budget, and any other failure ends a run of consecutive 429s.
    pub fn next(&mut self, policy: &RetryPolicy, class: RetryClass) -> Decision {
        let Some(&(_, budget, wait)) = BUDGET_RULES.iter().find(|(c, _, _)| *c == class) else {
            return Decision::GiveUp;
        };
        if budget != Budget::RateLimited {
            // "Consecutive" 429s: another kind of failure in between starts the count again.
            self.rate_limited = 0;
        }
        let allowance = policy.allowance(budget);
        let spent = self.counter(budget);
        if *spent >= allowance {
            return Decision::GiveUp;
        }
        *spent += 1;
        let retry = *spent;
        self.retries += 1;
        let wait = match wait {
            Wait::FullJitterBackoff => policy.backoff(retry),
            Wait::RateLimiterHold => Duration::ZERO,
        };
        Decision::Retry { wait }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases = [
            (500, None, RetryClass::Transient),
            (503, None, RetryClass::Transient),
            (502, Some(false), RetryClass::Never),
            (401, Some(true), RetryClass::Never),
            (403, None, RetryClass::Never),
            (404, None, RetryClass::Never),
            (404, Some(true), RetryClass::NotFoundPending),
            (404, Some(false), RetryClass::Never),
            (408, None, RetryClass::Transient),
            (429, None, RetryClass::RateLimited),
            (429, Some(false), RetryClass::RateLimited),
            (400, None, RetryClass::Never),
            (409, Some(true), RetryClass::Transient),
            (302, None, RetryClass::Never),
        ];
        for (status, hint, class) in cases {
            assert_eq!(classify_status(status, hint), class, "{status} {hint:?}");
        }
    }

    #[test]
    fn should_retry_header_values() {
        assert_eq!(parse_should_retry("true"), Some(true));
        assert_eq!(parse_should_retry(" TRUE "), Some(true));
        assert_eq!(parse_should_retry("false"), Some(false));
        assert_eq!(parse_should_retry("1"), None);
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_full_jitter() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<u64> = (1..=7).map(|n| policy.backoff_ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(policy.backoff_ceiling(u32::MAX), Duration::from_secs(30));
        for retry in 1..=6 {
            for _ in 0..50 {
                assert!(policy.backoff(retry) <= policy.backoff_ceiling(retry));
            }
        }
    }

    #[test]
    fn transient_failures_get_max_attempts_in_all() {
        let policy = RetryPolicy::default();
        let mut state = RetryState::new();
        for _ in 0..4 {
            assert!(matches!(
                state.next(&policy, RetryClass::Transient),
                Decision::Retry { .. }
            ));
        }
        assert_eq!(state.attempts(), 5);
        assert_eq!(state.next(&policy, RetryClass::Transient), Decision::GiveUp);
    }

    #[test]
    fn never_is_never_retried() {
        let mut state = RetryState::new();
        assert_eq!(state.next(&RetryPolicy::default(), RetryClass::Never), Decision::GiveUp);
        assert_eq!(state.attempts(), 1);
    }

    #[test]
    fn not_found_pending_has_its_own_budget() {
        let policy = RetryPolicy {
            not_found_retries: 2,
            ..RetryPolicy::default()
        };
        let mut state = RetryState::new();
        assert!(matches!(
            state.next(&policy, RetryClass::NotFoundPending),
            Decision::Retry { .. }
        ));
        assert!(matches!(
            state.next(&policy, RetryClass::NotFoundPending),
            Decision::Retry { .. }
        ));
        assert_eq!(state.next(&policy, RetryClass::NotFoundPending), Decision::GiveUp);
        // The transient budget is untouched.
        assert!(matches!(
            state.next(&policy, RetryClass::Transient),
            Decision::Retry { .. }
        ));
    }

    #[test]
    fn rate_limits_do_not_spend_attempts_and_are_bounded() {
        let policy = RetryPolicy {
            max_attempts: 2,
            max_rate_limited: 3,
            ..RetryPolicy::default()
        };
        let mut state = RetryState::new();
        for _ in 0..3 {
            assert_eq!(
                state.next(&policy, RetryClass::RateLimited),
                Decision::Retry { wait: Duration::ZERO }
            );
        }
        assert_eq!(state.next(&policy, RetryClass::RateLimited), Decision::GiveUp);

        // A transient failure in between starts the consecutive count again, and 429s never
        // used the single transient retry.
        let mut state = RetryState::new();
        for _ in 0..3 {
            state.next(&policy, RetryClass::RateLimited);
        }
        assert!(matches!(
            state.next(&policy, RetryClass::Transient),
            Decision::Retry { .. }
        ));
        assert!(matches!(
            state.next(&policy, RetryClass::RateLimited),
            Decision::Retry { .. }
        ));
        assert_eq!(state.next(&policy, RetryClass::Transient), Decision::GiveUp);
    }
}
