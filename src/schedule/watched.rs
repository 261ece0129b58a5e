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

/// A quiet run's status is asked every Nth poll (a safety net: its end shows in its events, see
/// `crate::fetch::fingerprint::shows_end`, and in discovery's listing).
pub const STATUS_EVERY_N_POLLS: u32 = 10;

/// An active run's status is asked at least every this many poll intervals (the same safety
/// net, tighter while the run changes: 30 s with the default 5 s)...
pub const STATUS_ACTIVE_EVERY_INTERVALS: u32 = 6;

/// ... but on no more than one poll in this many, so a budget that spaces polls out does not
/// turn every poll into two requests.
pub const STATUS_ACTIVE_MIN_POLLS: u32 = 5;

/// While a body shows the run's end and no status has said so, the status is asked on every
/// this many polls (a wrong guess costs that run half as many requests again, no more).
pub const END_SHOWN_RECHECK_POLLS: u32 = 2;

/// A run the realtime stream covers is still asked its status after this many polls with no row
/// of it pushed (a row the stream dropped, a backend whose window moved past the run), and after
/// [`COVERED_END_SHOWN_POLLS`] while its events show the end and no terminal row came: the
/// stream saves the status requests, it is not trusted blindly.
pub const COVERED_STATUS_EVERY_N_POLLS: u32 = 60;
pub const COVERED_END_SHOWN_POLLS: u32 = 6;

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
    /// Every reason (`runs_retired_total` shows each from the start).
    pub const ALL: [RetireReason; 4] = [
        RetireReason::Settled,
        RetireReason::MaxAge,
        RetireReason::NotFound,
        RetireReason::Removed,
    ];

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
    pub quiet_after: Duration,
    pub settle: Duration,
    pub max_age: Duration,
    pub not_found_after: Duration,
}

impl Lifecycle {
    pub fn from_runs(runs: &crate::config::RunsConfig) -> Self {
        Lifecycle {
            poll_interval: runs.poll_interval,
            max_poll_interval: runs.max_poll_interval,
            quiet_after: runs.quiet_after,
            settle: runs.settle,
            max_age: runs.max_age,
            not_found_after: runs.not_found_after,
        }
    }
}

/// What the bridge knows of a run's trace id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceIdState {
    /// The trace endpoint was not asked yet.
    NotAsked,
    /// Asked; Trigger.dev had none: the id is derived from the run id (rule 1).
    Derived,
    /// Asked; the API's.
    Known(String),
}

impl TraceIdState {
    /// From a trace read: `None` when the API had none.
    pub fn asked(trace_id: Option<String>) -> Self {
        trace_id.map_or(TraceIdState::Derived, TraceIdState::Known)
    }

    /// What a poll is told: `None` to ask, `Some(None)` to derive, `Some(Some(id))`.
    pub fn for_poll(&self) -> Option<Option<String>> {
        match self {
            TraceIdState::NotAsked => None,
            TraceIdState::Derived => Some(None),
            TraceIdState::Known(id) => Some(Some(id.clone())),
        }
    }
}

/// A status of the run, as a poll's status request or a listing (later the realtime stream)
/// reported it.
#[derive(Debug, Clone, Copy)]
pub struct ObservedStatus<'a> {
    pub status: &'a str,
    pub finished_at: Option<u64>,
    pub task_identifier: Option<&'a str>,
    pub source: StatusSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSource {
    /// The run's own status request: the newest word.
    Poll,
    /// A discovery round's listing: may lag behind the run's own requests.
    Listing,
    /// Trigger.dev's realtime stream: pushed as the run's row changes, so as new as a poll's
    /// request; while it covers the run, the run's status is not asked at all.
    Realtime,
}

/// What a status changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusChange {
    /// The run's record changed (to be written).
    pub record_changed: bool,
    /// The run was learnt ended now.
    pub ended: bool,
    /// A poll's status moved on (waiting to executing, say): the run is active again.
    pub moved: bool,
}

/// What a successful poll tells the run's lifecycle.
#[derive(Debug, Clone, Default)]
pub struct PollOutcome<'a> {
    /// The trace id, when the trace was read on this poll (`Some(None)`: none, derive).
    pub trace_id: Option<Option<String>>,
    pub status: Option<ObservedStatus<'a>>,
    pub body_hash: u64,
    /// `None`: the body was byte-identical to the last one and not parsed.
    pub fingerprint: Option<u64>,
    pub shows_end: Option<bool>,
    pub end_hint_checked: bool,
    /// Records queued for export from this poll.
    pub records: usize,
    /// Records the poll's export capacity cut off.
    pub left_behind: usize,
}

/// When the run is polled next, or that it is to be retired (once nothing of it waits for the
/// collector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    PollIn(Duration),
    Retire,
}

/// What the daemon does after a poll: write the run's record, learn it ended (for the log), and
/// poll it next or retire it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollEffects {
    pub record_changed: bool,
    pub ended: bool,
    pub next: Next,
}

/// What this process sent of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentTally {
    pub spans: u64,
    pub log_records: u64,
}

#[derive(Debug)]
pub struct WatchedRun {
    pub id: Arc<str>,
    pub trace_id: TraceIdState,
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
    /// Spans and log records queued for export since this process began watching the run (what
    /// the line that retires it reports).
    pub sent: SentTally,
    /// Records the last poll had beyond its share of the export capacity (fetched again next).
    pub backlog: usize,
    pub interval: Duration,
    /// When the run's events (or its status) last changed: active until `quiet_after` later.
    pub last_change: Instant,
    /// A body already showed the run's end (its own span finished, a span cancelled) and the
    /// status was asked for it: not asked again for the same sign.
    pub end_hint_checked: bool,
    pub fingerprint: Option<u64>,
    /// The last events body's hash: a byte-identical body is not parsed again.
    pub body_hash: Option<u64>,
    pub polls_since_status: u32,
    /// Polls that failed since the last one that succeeded.
    pub failures_in_a_row: u32,
    /// The first 404 of the 404s in a row the API answered for this run.
    pub not_found_since: Option<Instant>,
    /// When retrieve-run last answered.
    pub status_seen_at: Option<Instant>,
    pub phase: Phase,
    /// The realtime stream reports this run's status changes: no status request is needed.
    pub stream_covered: bool,
    /// Invalid elements per reason already counted and logged for this run (each response
    /// holds them all again: only more than this is new).
    pub invalid_counted: HashMap<&'static str, u64>,
    /// The last parsed body showed the run's end (`fetch::fingerprint::shows_end`): until a
    /// status says it ended, the status is asked again every [`END_SHOWN_RECHECK_POLLS`] polls
    /// (the status may lag the body, or the prompt request failed).
    pub end_shown: bool,
    /// The sequence number of this run's entry in the schedule (older entries are stale).
    pub scheduled: u64,
    /// Enrichment: `data.properties` of the spans not exported yet, from the trace endpoint.
    pub span_properties: Option<Arc<HashMap<String, Value>>>,
}

impl WatchedRun {
    pub fn new(id: Arc<str>, lifecycle: &Lifecycle, watched_since: Instant) -> Self {
        WatchedRun {
            id,
            trace_id: TraceIdState::NotAsked,
            task_identifier: None,
            status: None,
            finished_at: None,
            ended_seen: None,
            watched_since,
            first_seen_ns: 0,
            ended_ns: None,
            exported: Arc::new(HashSet::new()),
            queued: 0,
            sent: SentTally::default(),
            backlog: 0,
            interval: lifecycle.poll_interval,
            last_change: watched_since,
            end_hint_checked: false,
            fingerprint: None,
            body_hash: None,
            polls_since_status: STATUS_EVERY_N_POLLS,
            failures_in_a_row: 0,
            not_found_since: None,
            status_seen_at: None,
            phase: Phase::Watching,
            invalid_counted: HashMap::new(),
            stream_covered: false,
            end_shown: false,
            scheduled: 0,
            span_properties: None,
        }
    }

    /// Whether the run changed within `quiet_after`: polled every `poll_interval`.
    pub fn is_active(&self, lifecycle: &Lifecycle, now: Instant) -> bool {
        now.saturating_duration_since(self.last_change) < lifecycle.quiet_after
    }

    /// Ask retrieve-run before the events on this poll? On the first poll (unless discovery told
    /// the status), and as a safety net: an active run every [`STATUS_ACTIVE_EVERY_INTERVALS`]
    /// poll intervals (on one
    /// poll in [`STATUS_ACTIVE_MIN_POLLS`] at most), a quiet one every
    /// [`STATUS_EVERY_N_POLLS`]th poll. The prompt way is [`WatchedRun::wants_status_if_ended`].
    pub fn wants_status(&self, lifecycle: &Lifecycle, now: Instant) -> bool {
        if self.ended_seen.is_some() {
            return false;
        }
        if self.stream_covered {
            return self.polls_since_status >= COVERED_STATUS_EVERY_N_POLLS
                || (self.end_shown && self.polls_since_status >= COVERED_END_SHOWN_POLLS);
        }
        if self.status.is_none() {
            return true;
        }
        if self.end_shown && self.polls_since_status >= END_SHOWN_RECHECK_POLLS {
            return true;
        }
        if self.is_active(lifecycle, now) {
            let every = lifecycle.poll_interval * STATUS_ACTIVE_EVERY_INTERVALS;
            let stale = self
                .status_seen_at
                .is_none_or(|seen| now.saturating_duration_since(seen) >= every);
            stale && self.polls_since_status >= STATUS_ACTIVE_MIN_POLLS
        } else {
            self.polls_since_status >= STATUS_EVERY_N_POLLS
        }
    }

    /// Ask retrieve-run after the events when they show the run's end? Once per run: the sign
    /// stays in every later body.
    pub fn wants_status_if_ended(&self) -> bool {
        self.ended_seen.is_none() && !self.end_hint_checked && self.phase == Phase::Watching && !self.stream_covered
    }

    /// The realtime stream stopped (or restarted without this run): its status is asked by
    /// polls again, on the usual schedule.
    pub fn stream_lost(&mut self) {
        self.stream_covered = false;
    }

    /// A status observed: from the run's own request on a poll, or from a listing (later the
    /// realtime stream, through the same input).
    ///
    /// Terminal is one-way: a terminal status ends the run once, and a non-terminal one after it
    /// (a listing that lags, a poll's request sent before the run ended elsewhere) changes
    /// nothing. A listing's non-terminal status only stands in for the first poll's request;
    /// after that the run's own requests are newer than a listing.
    pub fn on_status(&mut self, observed: ObservedStatus, now: Instant, now_ns: u64) -> StatusChange {
        // The stream is as new as the run's own request (it pushes each change of the row).
        let from_poll = matches!(observed.source, StatusSource::Poll | StatusSource::Realtime);
        if observed.source == StatusSource::Realtime {
            self.stream_covered = true;
        }
        if from_poll {
            self.polls_since_status = 0;
            self.status_seen_at = Some(now);
        }
        let learnt_task = self.task_identifier.is_none() && observed.task_identifier.is_some();
        if learnt_task {
            self.task_identifier = observed.task_identifier.map(str::to_owned);
        }
        if self.ended_seen.is_some() {
            return StatusChange::default();
        }
        let terminal = crate::trigger::api_types::is_terminal(observed.status, observed.finished_at);
        if !terminal && !from_poll && self.status.is_some() {
            return StatusChange::default();
        }
        let moved = from_poll && self.status.as_deref().is_some_and(|known| known != observed.status);
        // Only what the run's record holds counts as a change to write: the stream pushes a row
        // on every update of it (metadata flushes, say), mostly with the same status.
        let record_changed = learnt_task
            || terminal
            || self.status.as_deref() != Some(observed.status)
            || (observed.finished_at.is_some() && observed.finished_at != self.finished_at);
        self.status = Some(observed.status.to_owned());
        self.finished_at = observed.finished_at.or(self.finished_at);
        if !from_poll {
            // As if asked now: the first poll need not ask.
            self.polls_since_status = 0;
            self.status_seen_at = Some(now);
        }
        if terminal {
            self.ended_seen = Some(now);
            self.ended_ns = Some(now_ns);
            // Settling: polled at the active pace (late events), whatever its pace was.
            self.last_change = now;
        }
        if moved && observed.source == StatusSource::Realtime {
            // Waiting → executing: a quiet run becomes active (its spans start again).
            self.last_change = now;
        }
        StatusChange {
            record_changed,
            ended: terminal,
            moved,
        }
    }

    /// A successful poll: the trace id and status it read, whether its body changed and showed
    /// the end, what it queued and what capacity cut off. Returns what the daemon does next.
    pub fn on_poll(&mut self, lifecycle: &Lifecycle, outcome: PollOutcome, now: Instant, now_ns: u64) -> PollEffects {
        self.failures_in_a_row = 0;
        self.not_found_since = None;
        self.end_hint_checked |= outcome.end_hint_checked;
        let mut record_changed = false;
        if let Some(asked) = outcome.trace_id {
            self.trace_id = TraceIdState::asked(asked);
            record_changed = true;
        }
        let status = match outcome.status {
            Some(observed) => self.on_status(observed, now, now_ns),
            None => {
                self.polls_since_status += 1;
                StatusChange::default()
            }
        };
        // A poll's status request is recorded (its time) even when it changed nothing.
        record_changed |= status.record_changed || outcome.status.is_some();
        self.end_shown = outcome.shows_end.unwrap_or(self.end_shown);
        self.body_hash = Some(outcome.body_hash);
        let fingerprint = outcome.fingerprint.or(self.fingerprint);
        let changed = self.fingerprint != fingerprint || outcome.records > 0 || status.moved;
        self.fingerprint = fingerprint;
        self.backlog = outcome.left_behind;
        self.queued += outcome.records;
        let next = match self.phase {
            Phase::Finalizing(reason) if outcome.left_behind == 0 => {
                self.phase = Phase::Retiring(reason);
                Next::Retire
            }
            Phase::Retiring(_) => Next::Retire,
            // Capacity cut this poll short: fetch the rest as soon as capacity allows.
            _ if outcome.left_behind > 0 => Next::PollIn(Duration::ZERO),
            _ => Next::PollIn(self.after_poll(lifecycle, changed, now)),
        };
        PollEffects {
            record_changed,
            ended: status.ended,
            next,
        }
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

    /// After a successful poll: an active run keeps `poll_interval`, a quiet one waits
    /// `max_poll_interval` (it was unchanged for `quiet_after` already: waiting on `wait.for` or
    /// a waitpoint, so ramping up through shorter intervals would only spend requests); move to
    /// `Finalizing` once the run settled or grew too old. Returns the delay to the next poll.
    pub fn after_poll(&mut self, lifecycle: &Lifecycle, changed: bool, now: Instant) -> Duration {
        if changed {
            self.last_change = now;
        }
        let active = self.is_active(lifecycle, now);
        self.interval = if active {
            lifecycle.poll_interval
        } else {
            lifecycle.max_poll_interval
        };
        // A quiet run's jitter only lengthens its wait: at most one request per interval.
        let jitter = |interval| if active { jitter(interval) } else { jitter_up(interval) };
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

    /// The API answered 404 for this run. A verdict needs evidence: the run moves to
    /// `Retiring(NotFound)` only once 404s in a row span `not_found_after` and some other call
    /// succeeded after the first of them (`api_succeeded_at`: the client's last success). A wrong
    /// `api_url` answers 404 for everything, so nothing is retired for it. Otherwise it is polled
    /// again, backing off like a failure: `Some(wait)`.
    pub fn on_not_found(
        &mut self,
        lifecycle: &Lifecycle,
        api_succeeded_at: Option<Instant>,
        now: Instant,
    ) -> Option<Duration> {
        let since = *self.not_found_since.get_or_insert(now);
        let evidence = api_succeeded_at.is_some_and(|succeeded| succeeded > since);
        if evidence && now.saturating_duration_since(since) >= lifecycle.not_found_after {
            self.phase = Phase::Retiring(RetireReason::NotFound);
            return None;
        }
        Some(self.back_off(lifecycle))
    }

    /// A failed or 404 poll: double the interval, between `poll_interval` and
    /// `max_poll_interval`; the jittered wait.
    fn back_off(&mut self, lifecycle: &Lifecycle) -> Duration {
        self.interval = (self.interval * 2)
            .min(lifecycle.max_poll_interval)
            .max(lifecycle.poll_interval);
        jitter(self.interval)
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
        Some(self.back_off(lifecycle))
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

/// +0–20 %: spread out, never sooner than `interval`.
fn jitter_up(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(1.0..=1.2))
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
            quiet_after: Duration::from_secs(120),
            settle: Duration::from_secs(30),
            max_age: Duration::from_secs(3600),
            not_found_after: Duration::from_secs(600),
        }
    }

    fn run(now: Instant) -> WatchedRun {
        WatchedRun::new(Arc::from("run_x"), &lifecycle(), now)
    }

    #[test]
    fn an_active_run_keeps_the_poll_interval_then_a_quiet_one_backs_off_and_a_change_resets_it() {
        let start = Instant::now();
        let lifecycle = lifecycle();
        let mut r = run(start);
        let at = |secs: u64| start + Duration::from_secs(secs);
        // Unchanged for almost `quiet_after`: still active, polled every poll_interval (±20 %).
        for secs in [5, 60, 119] {
            let wait = r.after_poll(&lifecycle, false, at(secs));
            assert_eq!(r.interval, Duration::from_secs(5), "at {secs}s");
            assert!(
                wait >= Duration::from_secs(4) && wait <= Duration::from_secs(6),
                "{wait:?}"
            );
        }
        // Quiet: at the ceiling at once, never sooner than it (one request per interval at most).
        for secs in [121, 190, 260] {
            let wait = r.after_poll(&lifecycle, false, at(secs));
            assert_eq!(r.interval, Duration::from_secs(60));
            assert!(wait >= r.interval && wait <= r.interval.mul_f64(1.2), "{wait:?}");
        }
        // A change makes it active again at once.
        r.after_poll(&lifecycle, true, at(400));
        assert_eq!(r.interval, Duration::from_secs(5));
        assert!(r.is_active(&lifecycle, at(519)) && !r.is_active(&lifecycle, at(520)));
    }

    #[test]
    fn status_is_asked_first_then_rarely_active_every_30s_and_quiet_every_10th_poll() {
        let start = Instant::now();
        let lifecycle = lifecycle();
        let mut r = run(start);
        assert!(r.wants_status(&lifecycle, start), "first poll");
        r.status = Some("EXECUTING".into());
        r.polls_since_status = 0;
        r.status_seen_at = Some(start);
        // Active: not before 30 s (six 5 s intervals), and not on more than one poll in five.
        let every = Duration::from_secs(30);
        let almost = start + every - Duration::from_millis(1);
        r.polls_since_status = STATUS_ACTIVE_MIN_POLLS;
        assert!(!r.wants_status(&lifecycle, almost));
        assert!(r.wants_status(&lifecycle, start + every));
        r.polls_since_status = STATUS_ACTIVE_MIN_POLLS - 1;
        assert!(
            !r.wants_status(&lifecycle, start + lifecycle.quiet_after - Duration::from_secs(1)),
            "polls spaced out by the budget do not each ask"
        );
        // Quiet: every 10th poll, whatever the time.
        let quiet = start + lifecycle.quiet_after + Duration::from_secs(600);
        r.polls_since_status = STATUS_EVERY_N_POLLS - 1;
        assert!(!r.wants_status(&lifecycle, quiet));
        r.polls_since_status = STATUS_EVERY_N_POLLS;
        assert!(r.wants_status(&lifecycle, quiet));
        // The prompt way: once, when a body shows the end.
        assert!(r.wants_status_if_ended());
        r.end_hint_checked = true;
        assert!(!r.wants_status_if_ended());
        // While a body shows the end and no status said so, every other poll asks again.
        r.end_shown = true;
        r.polls_since_status = END_SHOWN_RECHECK_POLLS - 1;
        assert!(!r.wants_status(&lifecycle, start + Duration::from_secs(1)));
        r.polls_since_status = END_SHOWN_RECHECK_POLLS;
        assert!(r.wants_status(&lifecycle, start + Duration::from_secs(1)));
        r.end_shown = false;
        r.ended_seen = Some(start);
        assert!(!r.wants_status(&lifecycle, quiet), "an ended run is not asked again");
    }

    fn observed(status: &str, finished_at: Option<u64>, source: StatusSource) -> ObservedStatus<'_> {
        ObservedStatus {
            status,
            finished_at,
            task_identifier: Some("t"),
            source,
        }
    }

    #[test]
    fn a_run_the_stream_covers_is_not_asked_for_its_status_and_wakes_on_a_change() {
        let start = Instant::now();
        let lifecycle = lifecycle();
        let streamed = |status| observed(status, None, StatusSource::Realtime);
        let mut r = run(start);
        r.polls_since_status = STATUS_EVERY_N_POLLS;
        assert!(r.wants_status(&lifecycle, start));
        assert!(r.on_status(streamed("WAITING"), start, 1).record_changed);
        assert!(
            !r.on_status(streamed("WAITING"), start, 1).record_changed,
            "the same status pushed again writes nothing"
        );
        let quiet = start + lifecycle.quiet_after + Duration::from_secs(600);
        r.polls_since_status = STATUS_EVERY_N_POLLS;
        assert!(!r.wants_status(&lifecycle, quiet), "covered by the stream");
        assert!(!r.wants_status_if_ended(), "not even when a body shows the end");
        // Not blindly: no row for many polls, or an end shown with no terminal row, asks.
        r.polls_since_status = COVERED_STATUS_EVERY_N_POLLS;
        assert!(r.wants_status(&lifecycle, quiet));
        r.polls_since_status = COVERED_END_SHOWN_POLLS;
        assert!(!r.wants_status(&lifecycle, quiet));
        r.end_shown = true;
        assert!(r.wants_status(&lifecycle, quiet));
        r.end_shown = false;
        assert!(!r.is_active(&lifecycle, quiet));
        // Waiting → executing, pushed: the status moves and the run is active again.
        let change = r.on_status(streamed("EXECUTING"), quiet, 2);
        assert!(change.moved && !change.ended);
        assert_eq!(r.status.as_deref(), Some("EXECUTING"));
        assert!(r.is_active(&lifecycle, quiet));
        // The stream gone: the status is asked again on the usual schedule.
        r.stream_lost();
        r.polls_since_status = STATUS_EVERY_N_POLLS;
        assert!(r.wants_status(&lifecycle, quiet + lifecycle.quiet_after + Duration::from_secs(1)));
        // A terminal status from the stream ends the run at once.
        let change = r.on_status(streamed("COMPLETED"), quiet, 3);
        assert!(change.ended);
    }

    #[test]
    fn a_listed_status_ends_the_run_or_stands_in_for_the_first_request_only() {
        let start = Instant::now();
        let lifecycle = lifecycle();
        let listed = |status, finished| observed(status, finished, StatusSource::Listing);
        let mut r = run(start);
        assert!(r.on_status(listed("QUEUED", None), start, 1).record_changed);
        assert!(!r.wants_status(&lifecycle, start), "the first poll need not ask");
        assert_eq!(r.task_identifier.as_deref(), Some("t"));
        // A later non-terminal listing (it may lag behind the run's own requests) changes nothing.
        r.status = Some("EXECUTING".into());
        assert_eq!(r.on_status(listed("QUEUED", None), start, 2), StatusChange::default());
        assert_eq!(r.status.as_deref(), Some("EXECUTING"));
        // A terminal one ends it, once; a lagging non-terminal one after that is ignored.
        let ended = start + Duration::from_secs(3);
        let change = r.on_status(listed("CANCELED", Some(77)), ended, 3);
        assert!(change.ended && change.record_changed);
        assert_eq!(
            (r.ended_seen, r.ended_ns, r.finished_at),
            (Some(ended), Some(3), Some(77))
        );
        assert!(r.is_active(&lifecycle, ended), "settling at the active pace");
        let later = ended + Duration::from_secs(1);
        assert_eq!(
            r.on_status(listed("EXECUTING", None), later, 4),
            StatusChange::default()
        );
        assert_eq!(
            r.on_status(listed("COMPLETED", None), later, 4),
            StatusChange::default()
        );
        // Nor does a poll's status request sent before the end was learnt.
        let stale = observed("EXECUTING", None, StatusSource::Poll);
        assert_eq!(r.on_status(stale, later, 5), StatusChange::default());
        assert_eq!((r.status.as_deref(), r.finished_at), (Some("CANCELED"), Some(77)));
        // Every terminal status ends a run (`finishedAt` alone does too).
        for status in [
            "COMPLETED",
            "FAILED",
            "CRASHED",
            "SYSTEM_FAILURE",
            "EXPIRED",
            "TIMED_OUT",
            "INTERRUPTED",
        ] {
            let mut r = run(start);
            assert!(r.on_status(listed(status, None), start, 1).ended, "{status}");
        }
        let mut r = run(start);
        assert!(r.on_status(listed("EXECUTING", Some(5)), start, 1).ended);
    }

    /// One poll after another, as a table: (seconds since the start, the poll's outcome) → the
    /// next step, whether the record changes, and the phase after it.
    #[test]
    fn polls_move_the_run_through_its_lifecycle() {
        let start = Instant::now();
        let lifecycle = lifecycle();
        let mut r = run(start);
        let body = |fingerprint: u64| PollOutcome {
            body_hash: fingerprint,
            fingerprint: Some(fingerprint),
            shows_end: Some(false),
            ..PollOutcome::default()
        };
        let poll = |status| observed(status, None, StatusSource::Poll);
        let active =
            |wait: Next| matches!(wait, Next::PollIn(d) if d >= Duration::from_secs(4) && d <= Duration::from_secs(6));
        type Row<'a> = (u64, PollOutcome<'a>, fn(Next) -> bool, bool, Phase);
        let rows: Vec<Row> = vec![
            // First poll: trace and status read, spans queued.
            (
                0,
                PollOutcome {
                    trace_id: Some(Some("t".into())),
                    status: Some(poll("EXECUTING")),
                    records: 3,
                    ..body(1)
                },
                active,
                true,
                Phase::Watching,
            ),
            // Unchanged bodies: active for quiet_after, then quiet.
            (
                5,
                PollOutcome {
                    fingerprint: None,
                    ..body(1)
                },
                active,
                false,
                Phase::Watching,
            ),
            (
                119,
                PollOutcome {
                    fingerprint: None,
                    ..body(1)
                },
                active,
                false,
                Phase::Watching,
            ),
            (
                121,
                PollOutcome {
                    fingerprint: None,
                    ..body(1)
                },
                |n| matches!(n, Next::PollIn(d) if d >= Duration::from_secs(60)),
                false,
                Phase::Watching,
            ),
            // Capacity cut the poll short: the rest at once.
            (
                130,
                PollOutcome {
                    records: 2,
                    left_behind: 5,
                    ..body(2)
                },
                |n| n == Next::PollIn(Duration::ZERO),
                false,
                Phase::Watching,
            ),
            // The body shows the end and the status says so: settling, polled through it.
            (
                131,
                PollOutcome {
                    status: Some(poll("COMPLETED")),
                    shows_end: Some(true),
                    end_hint_checked: true,
                    ..body(3)
                },
                |n| matches!(n, Next::PollIn(d) if d <= Duration::from_secs(6)),
                true,
                Phase::Watching,
            ),
            // Settled: the final poll, then retiring.
            (
                161,
                body(3),
                |n| n == Next::PollIn(Duration::ZERO),
                false,
                Phase::Finalizing(RetireReason::Settled),
            ),
            (
                162,
                body(3),
                |n| n == Next::Retire,
                false,
                Phase::Retiring(RetireReason::Settled),
            ),
        ];
        for (at, outcome, expect, record_changed, phase) in rows {
            let effects = r.on_poll(&lifecycle, outcome, start + Duration::from_secs(at), at);
            assert!(expect(effects.next), "at {at}s: {effects:?}");
            assert_eq!(effects.record_changed, record_changed, "at {at}s");
            assert_eq!(r.phase, phase, "at {at}s");
        }
        assert_eq!(r.trace_id, TraceIdState::Known("t".into()));
        assert_eq!(r.queued, 5);
        assert!(r.end_hint_checked);
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
    fn a_404_is_a_verdict_only_after_the_window_and_while_other_calls_succeed() {
        let start = Instant::now();
        let lifecycle = lifecycle();
        let mut r = run(start);
        let at = |secs: u64| start + Duration::from_secs(secs);
        // 404s for an hour and nothing else answering (a wrong api_url): polled again, backing off.
        for secs in [0, 60, 600, 3600] {
            let wait = r.on_not_found(&lifecycle, None, at(secs));
            assert!(
                wait.is_some_and(|w| w <= Duration::from_secs(72)),
                "at {secs}s: {wait:?}"
            );
        }
        assert_eq!(r.phase, Phase::Watching);
        // Other calls succeeded, but only before the first 404: no evidence either.
        assert!(r
            .on_not_found(&lifecycle, Some(start - Duration::from_secs(1)), at(3700))
            .is_some());
        // A success after the first 404 (the API works), and the window passed: retired.
        assert_eq!(r.on_not_found(&lifecycle, Some(at(10)), at(3701)), None);
        assert_eq!(r.phase, Phase::Retiring(RetireReason::NotFound));
        // A poll that succeeds starts the window again.
        let mut r = run(start);
        r.on_not_found(&lifecycle, None, at(0));
        r.on_poll(&lifecycle, PollOutcome::default(), at(5), 5);
        assert_eq!(r.not_found_since, None);
        assert!(
            r.on_not_found(&lifecycle, Some(at(6)), at(700)).is_some(),
            "a new window from 700 s"
        );
        assert_eq!(r.on_not_found(&lifecycle, Some(at(701)), at(1300)), None);
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
}
