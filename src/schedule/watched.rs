//! One watched run: what the daemon remembers between polls, and the lifecycle decisions
//! (when to ask for the run's status, how long to wait, when to finalise and retire) as pure
//! functions of that memory and "now".

use crate::convert::ids::span_identity;
use crate::convert::RunState;
use opentelemetry::trace::SpanId;
use rand::Rng;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the run's status is asked for at the latest while it runs (every Nth poll), besides
/// whenever its events suggest it ended.
pub const STATUS_EVERY_N_POLLS: u32 = 10;

/// ... and at least this often: with a backed-off poll interval, ten polls can be many minutes,
/// and a run cancelled while a span still runs is only noticed through its status.
pub const STATUS_AT_LEAST_EVERY: Duration = Duration::from_secs(60);

/// Failed polls in a row after which a run past `max_age` is given up (with the poll interval
/// backed off, minutes of failures).
pub const GIVE_UP_AFTER_FAILURES: u32 = 5;

/// Why a run stops being watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireReason {
    /// Ended, settled, everything exported.
    Settled,
    /// Older than `runs.max_age` without ending.
    MaxAge,
    /// The API does not know it.
    NotFound,
    /// Taken out of `runs.ids` by a configuration reload.
    Removed,
}

impl RetireReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RetireReason::Settled => "settled",
            RetireReason::MaxAge => "max_age",
            RetireReason::NotFound => "not_found",
            RetireReason::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Polled for new finished spans.
    Watching,
    /// The next poll converts the run as ended (partial spans exported by rule 10).
    Finalizing(RetireReason),
    /// Everything is queued; retire once the collector acknowledged it all.
    Retiring(RetireReason),
}

/// The lifecycle knobs (`[runs]`).
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub poll_interval: Duration,
    pub max_poll_interval: Duration,
    pub settle: Duration,
    pub max_age: Duration,
}

#[derive(Debug)]
pub struct WatchedRun {
    pub id: Arc<str>,
    /// The API's trace id once asked (`Some(None)`: asked, none, derive).
    pub trace_id: Option<Option<String>>,
    pub task_identifier: Option<String>,
    pub status: Option<String>,
    pub finished_at: Option<u64>,
    /// When the bridge learnt the run ended (start of `settle`).
    pub ended_seen: Option<Instant>,
    /// When the bridge started watching (for `max_age`), as a monotonic instant.
    pub watched_since: Instant,
    /// The same, and the end, as Unix ns for the state store.
    pub first_seen_ns: u64,
    pub ended_ns: Option<u64>,
    /// Span ids acknowledged or queued for export: never converted again.
    pub exported: Arc<HashSet<SpanId>>,
    /// Spans queued for export and not yet acknowledged.
    pub queued: usize,
    /// Records the last poll had beyond its share of the export capacity (fetched again next).
    pub backlog: usize,
    pub interval: Duration,
    pub fingerprint: Option<u64>,
    /// The last events body's hash: a byte-identical body is not parsed again.
    pub body_hash: Option<u64>,
    pub polls_since_status: u32,
    /// Polls that failed since the last one that succeeded.
    pub failures_in_a_row: u32,
    /// When retrieve-run last answered.
    pub status_seen_at: Option<Instant>,
    pub phase: Phase,
    /// Invalid elements per reason already counted and logged for this run (each response
    /// holds them all again: only more than this is new).
    pub invalid_counted: HashMap<&'static str, u64>,
    /// Whether the last response still had running elements (a hint for asking the status).
    pub last_had_partials: bool,
    /// The sequence number of this run's entry in the schedule (older entries are stale).
    pub scheduled: u64,
    /// Enrichment: `data.properties` of the spans not exported yet, from the trace endpoint.
    pub span_properties: Option<Arc<HashMap<String, Value>>>,
}

impl WatchedRun {
    pub fn new(id: Arc<str>, lifecycle: &Lifecycle, watched_since: Instant) -> Self {
        WatchedRun {
            id,
            trace_id: None,
            task_identifier: None,
            status: None,
            finished_at: None,
            ended_seen: None,
            watched_since,
            first_seen_ns: 0,
            ended_ns: None,
            exported: Arc::new(HashSet::new()),
            queued: 0,
            backlog: 0,
            interval: lifecycle.poll_interval,
            fingerprint: None,
            body_hash: None,
            polls_since_status: STATUS_EVERY_N_POLLS,
            failures_in_a_row: 0,
            status_seen_at: None,
            phase: Phase::Watching,
            invalid_counted: HashMap::new(),
            last_had_partials: true,
            scheduled: 0,
            span_properties: None,
        }
    }

    /// Ask retrieve-run on this poll? On the first poll, every Nth poll or after
    /// [`STATUS_AT_LEAST_EVERY`], when the events hint that the run ended (no partial element
    /// left), and before finalising.
    pub fn wants_status(&self, last_had_partials: bool, now: Instant) -> bool {
        let stale = self
            .status_seen_at
            .is_none_or(|seen| now.saturating_duration_since(seen) >= STATUS_AT_LEAST_EVERY);
        self.ended_seen.is_none()
            && (self.status.is_none() || !last_had_partials || self.polls_since_status >= STATUS_EVERY_N_POLLS || stale)
    }

    /// How the converter should see the run on this poll.
    pub fn run_state(&self) -> RunState {
        match self.phase {
            Phase::Watching => RunState::Live,
            Phase::Finalizing(_) | Phase::Retiring(_) => RunState::Ended {
                finished_at: self.finished_at,
            },
        }
    }

    /// After a successful poll: adapt the interval to whether anything changed, and move to
    /// `Finalizing` once the run settled or grew too old. Returns the delay to the next poll.
    pub fn after_poll(&mut self, lifecycle: &Lifecycle, changed: bool, now: Instant) -> Duration {
        self.interval = if changed {
            lifecycle.poll_interval
        } else {
            (self.interval * 2).min(lifecycle.max_poll_interval)
        };
        if self.phase == Phase::Watching {
            if let Some(ended) = self.ended_seen {
                let settled_at = ended + lifecycle.settle;
                if now >= settled_at {
                    self.phase = Phase::Finalizing(RetireReason::Settled);
                    return Duration::ZERO;
                }
                // Keep polling through the settle time, and be there when it ends.
                return jitter(self.interval).min(settled_at - now);
            }
            if now.duration_since(self.watched_since) >= lifecycle.max_age {
                self.phase = Phase::Finalizing(RetireReason::MaxAge);
                return Duration::ZERO;
            }
        }
        jitter(self.interval)
    }

    /// Keep span properties only for spans still to be exported: memory stays proportional to
    /// what is running, not to the run's history.
    pub fn forget_exported_properties(&mut self) {
        let Some(properties) = self.span_properties.as_mut() else {
            return;
        };
        let exported = &self.exported;
        Arc::make_mut(properties)
            .retain(|id, _| span_identity(id).is_none_or(|identity| !exported.contains(&identity.id())));
    }

    /// After a failed poll: back off like an unchanged run. `None` once the run has been
    /// watched for `max_age` and its last [`GIVE_UP_AFTER_FAILURES`] polls all failed: it moves
    /// to `Retiring(MaxAge)`. A run that cannot be polled any more (a body over the size limit,
    /// answers that do not parse) would otherwise be asked about forever; it goes without the
    /// final export that a successful poll would have made. A passing failure (a timeout, the
    /// API's 5xx) past `max_age`, such as on the final poll itself, is retried like any other.
    pub fn after_error(&mut self, lifecycle: &Lifecycle, now: Instant) -> Option<Duration> {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        if now.saturating_duration_since(self.watched_since) >= lifecycle.max_age
            && self.failures_in_a_row >= GIVE_UP_AFTER_FAILURES
        {
            self.phase = Phase::Retiring(RetireReason::MaxAge);
            return None;
        }
        self.interval = (self.interval * 2)
            .min(lifecycle.max_poll_interval)
            .max(lifecycle.poll_interval);
        Some(jitter(self.interval))
    }
}

/// When a run first seen at `first_seen_ns` (Unix ns, from the state store) started being
/// watched, as an instant: `max_age` counts from the first sighting, not from the last restart
/// (a daemon restarted daily would otherwise never retire a run that never ends).
pub fn watched_since(first_seen_ns: u64, now_ns: u64, now: Instant) -> Instant {
    let age = Duration::from_nanos(now_ns.saturating_sub(first_seen_ns));
    now.checked_sub(age).unwrap_or(now)
}

/// ±20 % so runs added together do not poll in lockstep.
pub fn jitter(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.8..=1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_counts_from_the_first_sighting_across_restarts() {
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        let now_ns = 10 * 3_600_000_000_000u64;
        let since = watched_since(now_ns - 3_600_000_000_000, now_ns, now);
        assert_eq!(now - since, hour);
        // A first sighting in the future (a clock set back) counts as now.
        assert_eq!(watched_since(now_ns + 1, now_ns, now), now);
    }

    #[test]
    fn a_run_failing_past_max_age_is_retired_not_polled_forever() {
        let lifecycle = lifecycle();
        let start = Instant::now();
        let mut run = WatchedRun::new(Arc::from("run_x"), &lifecycle, start);
        let wait = run.after_error(&lifecycle, start + Duration::from_secs(60));
        assert!(wait.is_some_and(|wait| wait >= Duration::from_secs(8)), "{wait:?}");
        assert_eq!(run.phase, Phase::Watching);
        // Past max_age, after a poll that succeeded (the daemon then resets the count), one more
        // failure, even of the final poll, is retried…
        let late = start + lifecycle.max_age;
        run.failures_in_a_row = 0;
        run.phase = Phase::Finalizing(RetireReason::MaxAge);
        assert!(
            run.after_error(&lifecycle, late).is_some(),
            "the final poll failing once is retried"
        );
        // … until the failures in a row reach the limit.
        for _ in 2..GIVE_UP_AFTER_FAILURES {
            assert!(run.after_error(&lifecycle, late).is_some());
        }
        assert_eq!(run.after_error(&lifecycle, late), None);
        assert_eq!(run.phase, Phase::Retiring(RetireReason::MaxAge));
    }

    fn lifecycle() -> Lifecycle {
        Lifecycle {
            poll_interval: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(60),
            settle: Duration::from_secs(30),
            max_age: Duration::from_secs(3600),
        }
    }

    fn run(now: Instant) -> WatchedRun {
        WatchedRun::new(Arc::from("run_x"), &lifecycle(), now)
    }

    #[test]
    fn unchanged_runs_back_off_to_the_ceiling_and_changes_reset_it() {
        let now = Instant::now();
        let mut r = run(now);
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            last = r.after_poll(&lifecycle(), false, now);
        }
        assert_eq!(r.interval, Duration::from_secs(60));
        assert!(last >= Duration::from_secs(48) && last <= Duration::from_secs(72));
        r.after_poll(&lifecycle(), true, now);
        assert_eq!(r.interval, Duration::from_secs(5));
    }

    #[test]
    fn an_ended_run_settles_then_finalizes() {
        let start = Instant::now();
        let mut r = run(start);
        r.ended_seen = Some(start);
        let wait = r.after_poll(&lifecycle(), false, start + Duration::from_secs(10));
        assert!(
            wait <= Duration::from_secs(20),
            "never sleeps past the settle time: {wait:?}"
        );
        assert_eq!(r.phase, Phase::Watching);
        assert_eq!(
            r.after_poll(&lifecycle(), false, start + Duration::from_secs(30)),
            Duration::ZERO
        );
        assert_eq!(r.phase, Phase::Finalizing(RetireReason::Settled));
        assert!(matches!(r.run_state(), RunState::Ended { .. }));
    }

    #[test]
    fn a_run_that_never_ends_is_finalized_at_max_age() {
        let start = Instant::now();
        let mut r = run(start);
        r.after_poll(&lifecycle(), true, start + Duration::from_secs(3599));
        assert_eq!(r.phase, Phase::Watching);
        r.after_poll(&lifecycle(), true, start + Duration::from_secs(3600));
        assert_eq!(r.phase, Phase::Finalizing(RetireReason::MaxAge));
    }

    #[test]
    fn status_is_asked_first_on_hints_every_nth_poll_and_at_least_every_minute() {
        let now = Instant::now();
        let mut r = run(now);
        assert!(r.wants_status(true, now), "first poll");
        r.status = Some("EXECUTING".into());
        r.polls_since_status = 0;
        r.status_seen_at = Some(now);
        assert!(!r.wants_status(true, now));
        assert!(r.wants_status(false, now), "no partial span left: it may have ended");
        r.polls_since_status = STATUS_EVERY_N_POLLS;
        assert!(r.wants_status(true, now));
        r.polls_since_status = 2;
        let later = now + STATUS_AT_LEAST_EVERY - Duration::from_millis(1);
        assert!(!r.wants_status(true, later));
        assert!(
            r.wants_status(true, now + STATUS_AT_LEAST_EVERY),
            "a slow poll interval still asks every minute"
        );
        r.ended_seen = Some(now);
        assert!(
            !r.wants_status(false, now + STATUS_AT_LEAST_EVERY),
            "an ended run is not asked again"
        );
    }
}
