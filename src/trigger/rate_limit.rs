//! The request budget shared by every call of one `TriggerClient`: a client-side token bucket plus
//! the holds the server asks for (`x-ratelimit-*` headers running low, or a 429).
//!
//! The limiter works on `tokio::time` only (tests pause the clock); converting the server's
//! `x-ratelimit-reset` (unix milliseconds) into a duration is the caller's job, see
//! [`until_reset`].

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Knobs of the limiter; the defaults suit Trigger.dev's cloud (about 1,500 requests a minute,
/// refilled every 10 s).
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimitTuning {
    /// The bucket holds this many seconds' worth of the client-side rate (at least one token).
    pub burst: Duration,
    /// Hold requests until the reset when `x-ratelimit-remaining` falls under this fraction of
    /// `x-ratelimit-limit`…
    pub low_water_fraction: f64,
    /// …or under this many requests, whichever is larger.
    pub low_water_min: u64,
    /// A random extra wait, uniform in `[0, jitter]`, added to every server-requested hold so that
    /// replicas sharing one environment do not all return in the same millisecond.
    pub jitter: Duration,
    /// Longest hold the server can impose (guards against clock skew and garbage headers).
    pub max_hold: Duration,
    /// Hold after a 429 that says nothing about its reset.
    pub fallback_hold: Duration,
}

impl Default for RateLimitTuning {
    fn default() -> Self {
        Self {
            burst: Duration::from_secs(2),
            low_water_fraction: 0.02,
            low_water_min: 5,
            jitter: Duration::from_millis(1000),
            max_hold: Duration::from_secs(120),
            fallback_hold: Duration::from_secs(10),
        }
    }
}

/// What a response's `x-ratelimit-*` headers (or a 429's problem+json body) said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerBudget {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Time left until the server refills, already converted with [`until_reset`].
    pub until_reset: Option<Duration>,
}

/// Converts a reset timestamp into the time left from `now_unix_ms`. Trigger.dev sends unix
/// **milliseconds**; a value too small to be milliseconds (before 1973) is taken as seconds, which
/// other rate limiters send. A reset in the past is zero.
pub fn until_reset(reset: u64, now_unix_ms: u64) -> Duration {
    const SECONDS_CUTOFF: u64 = 100_000_000_000;
    let reset_ms = if reset < SECONDS_CUTOFF {
        reset.saturating_mul(1000)
    } else {
        reset
    };
    Duration::from_millis(reset_ms.saturating_sub(now_unix_ms))
}

#[derive(Debug)]
struct State {
    /// May go negative: each waiter reserves its token and sleeps off the debt, so waiters are
    /// served in arrival order without a thundering herd.
    tokens: f64,
    refilled_at: Instant,
    /// No request leaves before this instant (server hold).
    hold_until: Option<Instant>,
    limit: Option<u64>,
    remaining: Option<u64>,
}

/// One budget for all requests of a client; share it by `Arc` (the client does).
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<State>,
    per_second: f64,
    capacity: f64,
    tuning: RateLimitTuning,
}

impl RateLimiter {
    /// A limiter allowing `requests_per_minute` on average (0 is taken as 1).
    pub fn new(requests_per_minute: u32, tuning: RateLimitTuning) -> Self {
        let per_second = f64::from(requests_per_minute.max(1)) / 60.0;
        let capacity = (per_second * tuning.burst.as_secs_f64()).floor().max(1.0);
        Self {
            state: Mutex::new(State {
                tokens: capacity,
                refilled_at: Instant::now(),
                hold_until: None,
                limit: None,
                remaining: None,
            }),
            per_second,
            capacity,
            tuning,
        }
    }

    /// The bucket size (requests that may leave back to back).
    pub fn capacity(&self) -> u32 {
        self.capacity as u32
    }

    /// `x-ratelimit-remaining` of the latest response, for metrics.
    pub fn remaining(&self) -> Option<u64> {
        self.lock().remaining
    }

    /// `x-ratelimit-limit` of the latest response that had one.
    pub fn limit(&self) -> Option<u64> {
        self.lock().limit
    }

    /// Time left of the current server hold, if any.
    pub fn held_for(&self) -> Option<Duration> {
        let now = Instant::now();
        self.lock().hold_until.filter(|t| *t > now).map(|t| t - now)
    }

    /// Waits until one request may be sent: first any server hold, then a token. If a hold
    /// started while this call waited for its token, it waits for that hold as well.
    pub async fn acquire(&self) {
        loop {
            self.wait_for_hold().await;
            let ready_at = self.reserve_token();
            tokio::time::sleep_until(ready_at).await;
            if self.held_for().is_none() {
                return;
            }
            // A hold began meanwhile; the reserved token is forfeited, which only errs on the slow side.
        }
    }

    async fn wait_for_hold(&self) {
        loop {
            let hold_until = self.lock().hold_until;
            match hold_until {
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                _ => return,
            }
        }
    }

    fn reserve_token(&self) -> Instant {
        let now = Instant::now();
        let mut state = self.lock();
        let elapsed = now.saturating_duration_since(state.refilled_at).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.per_second).min(self.capacity);
        state.refilled_at = now;
        state.tokens -= 1.0;
        if state.tokens >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-state.tokens / self.per_second)
        }
    }

    /// Records what a response said. When `remaining` is under the low-water mark, every request
    /// is held until the reset (plus jitter).
    pub fn observe(&self, budget: &ServerBudget) {
        let low = {
            let mut state = self.lock();
            if budget.limit.is_some() {
                state.limit = budget.limit;
            }
            if budget.remaining.is_some() {
                state.remaining = budget.remaining;
            }
            let limit = budget.limit.or(state.limit);
            budget
                .remaining
                .is_some_and(|remaining| remaining < self.low_water(limit))
        };
        if let (true, Some(wait)) = (low, budget.until_reset) {
            if !wait.is_zero() {
                self.hold_for(wait);
            }
        }
    }

    /// Records a 429: holds every request until the reset it announced, or for the fallback hold
    /// when it announced none; jitter is added either way.
    pub fn rate_limited(&self, budget: &ServerBudget) {
        let mut state = self.lock();
        state.remaining = Some(budget.remaining.unwrap_or(0));
        if budget.limit.is_some() {
            state.limit = budget.limit;
        }
        drop(state);
        self.hold_for(budget.until_reset.unwrap_or(self.tuning.fallback_hold));
    }

    /// Holds every request for `wait` (capped at `max_hold`) plus jitter; an existing longer hold
    /// is kept.
    pub fn hold_for(&self, wait: Duration) {
        let jitter = self.tuning.jitter.mul_f64(rand::random::<f64>());
        let until = Instant::now() + wait.min(self.tuning.max_hold) + jitter;
        let mut state = self.lock();
        state.hold_until = Some(match state.hold_until {
            Some(current) if current > until => current,
            _ => until,
        });
    }

    fn low_water(&self, limit: Option<u64>) -> u64 {
        let fraction = limit.map_or(0, |limit| (limit as f64 * self.tuning.low_water_fraction).ceil() as u64);
        fraction.max(self.tuning.low_water_min)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it: every write is one field.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> RateLimitTuning {
        RateLimitTuning {
            jitter: Duration::ZERO,
            ..RateLimitTuning::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_the_rate() {
        // 60 a minute, 2 s of burst: two at once, then one a second.
        let limiter = RateLimiter::new(60, quiet());
        assert_eq!(limiter.capacity(), 2);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_secs(3) && elapsed < Duration::from_millis(3100),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_is_at_least_one() {
        let limiter = RateLimiter::new(1, quiet());
        assert_eq!(limiter.capacity(), 1);
        let start = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_share_one_budget() {
        let limiter = std::sync::Arc::new(RateLimiter::new(600, quiet())); // 10/s, burst 20
        let start = Instant::now();
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    limiter.acquire().await;
                    Instant::now()
                })
            })
            .collect();
        let mut last = start;
        for task in tasks {
            last = last.max(task.await.expect("task"));
        }
        // 20 at once, the other 20 at 10 a second.
        let elapsed = last - start;
        assert!(
            elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(2100),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn low_remaining_holds_until_the_reset() {
        let limiter = RateLimiter::new(6000, quiet());
        limiter.observe(&ServerBudget {
            limit: Some(1500),
            remaining: Some(100),
            until_reset: Some(Duration::from_secs(4)),
        });
        assert_eq!(limiter.held_for(), None);
        assert_eq!(limiter.remaining(), Some(100));

        // 2% of 1500 is 30.
        limiter.observe(&ServerBudget {
            limit: Some(1500),
            remaining: Some(29),
            until_reset: Some(Duration::from_secs(4)),
        });
        let start = Instant::now();
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(4));
        assert_eq!(limiter.remaining(), Some(29));
    }

    #[tokio::test(start_paused = true)]
    async fn low_water_has_a_floor_without_a_limit() {
        let limiter = RateLimiter::new(6000, quiet());
        limiter.observe(&ServerBudget {
            limit: None,
            remaining: Some(4),
            until_reset: Some(Duration::from_secs(1)),
        });
        assert!(limiter.held_for().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_holds_everyone_with_jitter_and_a_cap() {
        let limiter = std::sync::Arc::new(RateLimiter::new(
            6000,
            RateLimitTuning {
                jitter: Duration::from_millis(500),
                ..RateLimitTuning::default()
            },
        ));
        limiter.rate_limited(&ServerBudget {
            until_reset: Some(Duration::from_secs(2)),
            ..ServerBudget::default()
        });
        assert_eq!(limiter.remaining(), Some(0));
        let start = Instant::now();
        let other = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire().await })
        };
        limiter.acquire().await;
        other.await.expect("task");
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_secs(2) && elapsed <= Duration::from_millis(2501),
            "{elapsed:?}"
        );

        limiter.rate_limited(&ServerBudget {
            until_reset: Some(Duration::from_secs(3600)),
            ..ServerBudget::default()
        });
        assert!(limiter.held_for().expect("held") <= Duration::from_millis(120_500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_without_reset_uses_the_fallback() {
        let limiter = RateLimiter::new(6000, quiet());
        limiter.rate_limited(&ServerBudget::default());
        assert_eq!(limiter.held_for(), Some(Duration::from_secs(10)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_hold_never_shortens_a_longer_one() {
        let limiter = RateLimiter::new(6000, quiet());
        limiter.hold_for(Duration::from_secs(5));
        limiter.hold_for(Duration::from_secs(1));
        assert_eq!(limiter.held_for(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn until_reset_reads_milliseconds_and_tolerates_seconds() {
        let now = 1_758_630_768_000;
        assert_eq!(until_reset(now + 2_500, now), Duration::from_millis(2_500));
        assert_eq!(until_reset(now - 1, now), Duration::ZERO);
        assert_eq!(until_reset(1_758_630_771, now), Duration::from_secs(3));
    }
}
