//! The stream's HTTP loop: one request at a time through `TriggerClient::realtime_get`, each answer
//! fed to the [`Shape`], [`StreamEvent`]s out, backoff with jitter on failures, a stop that aborts
//! the long poll in flight.
//!
//! The decisions are in [`Machine`] (no I/O: an answer in, events and a wait out), the loop only
//! sends, waits and watches `stop`.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::row::{self, map_status, RowError};
use super::shape::{Applied, Headers, Shape, ShapeError};
use super::{StreamEvent, Unavailable};
use crate::net::error_chain::redacted_url;
use crate::trigger::client::RealtimeResponse;
use crate::trigger::{ApiError, TriggerClient};

/// The columns the bridge never reads, sent as `skipColumns` (notes §2.2). Kept: `id`,
/// `friendlyId`, `taskIdentifier`, `status`, `createdAt` (the server keeps those five anyway),
/// `updatedAt`, `startedAt`, `completedAt`, `runTags`, `isTest`. Byte-identical on every request
/// of a stream: it is part of the shape's definition.
pub const SKIP_COLUMNS: &str = "payload,payloadType,metadata,metadataType,output,outputType,error,ttl,costInCents,\
                                baseCostInCents,usageDurationMs,realtimeStreams,delayUntil,queuedAt,expiredAt,number";

/// The server keeps at most a day of runs in a stream (`REALTIME_MAXIMUM_CREATED_AT_FILTER_AGE_IN_MS`).
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// Trigger.dev's proxy answers this (a 503, text) when its Electric does not answer at all.
const NO_ELECTRIC: &str = "Network error occurred";

/// `createdAt` for a lookback: a duration the server's parser accepts (`^(\d+(w|d|hr|h|m|s))+$`),
/// whole minutes rounded up and at least `1m`, `1d` from a day on (the server's cap). Never
/// invalid: an invalid value would remove the window altogether (notes §1.4).
pub fn created_at_param(lookback: Duration) -> String {
    if lookback >= MAX_WINDOW {
        return "1d".to_owned();
    }
    let minutes = lookback.as_nanos().div_ceil(60_000_000_000).max(1);
    format!("{minutes}m")
}

/// The loop's knobs; tests shrink them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberTuning {
    /// First wait after a 429, 5xx, network error or malformed answer; doubled each time in a row.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Wait after a 404, 400, 401 or 403 (or a 503 that says there is no Electric behind the
    /// proxy): the bridge is back on the stream within this of it recovering.
    pub retry_unavailable_after: Duration,
    /// `503 Network error occurred` answers in a row, with no 2xx between, that make the stream
    /// "not served" (a self-hosted instance without Electric) rather than failing.
    pub not_served_after: u32,
}

impl Default for SubscriberTuning {
    fn default() -> Self {
        SubscriberTuning {
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            retry_unavailable_after: Duration::from_secs(60),
            not_served_after: 3,
        }
    }
}

/// Why a request did not give the stream anything: the reason an [`StreamEvent::Unavailable`]
/// carries.
#[derive(Debug, Error)]
enum Failure {
    #[error("GET {endpoint} answered HTTP {status}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        endpoint: String,
        status: u16,
        message: Option<String>,
    },
    #[error("GET {endpoint}: the answer is not the shape protocol: {source}")]
    Malformed { endpoint: String, source: ShapeError },
    #[error("GET {endpoint}: no answer within {}", humantime::format_duration(*timeout))]
    Timeout { endpoint: String, timeout: Duration },
    #[error("{0}")]
    Transport(ApiError),
    #[error("GET {endpoint}: the server asked to start over {count} times in a row (must-refetch)")]
    Refetching { endpoint: String, count: u32 },
}

/// How often rows of runs that ended long ago are dropped: they only cost memory, and finding
/// them parses every row.
const FORGET_EVERY: Duration = Duration::from_secs(600);

/// Failures in a row (429 aside) before the stream is announced `Failing`: a long poll reset by a
/// load balancer now and then must not switch `auto` to the list endpoint and back.
const FAILING_AFTER: u32 = 3;

/// Must-refetches in a row, with no live answer between, that make the stream `Failing`: each one
/// is a whole new snapshot (and a new shape on the server).
const REFETCHING_AFTER: u32 = 3;

/// Subscribes to the environment's run stream.
pub struct Subscriber {
    client: TriggerClient,
    created_at: String,
    tuning: SubscriberTuning,
}

impl Subscriber {
    /// A subscriber over `client` (its base URL, key and branch header; not its rate limiter
    /// or retries) for runs created within `lookback` (capped at a day).
    pub fn new(client: &TriggerClient, lookback: Duration) -> Self {
        Subscriber {
            client: client.clone(),
            created_at: created_at_param(lookback),
            tuning: SubscriberTuning::default(),
        }
    }

    pub fn with_tuning(mut self, tuning: SubscriberTuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// The `createdAt` sent.
    pub fn created_at(&self) -> &str {
        &self.created_at
    }

    /// Until `stop` turns true (or its sender is dropped: nobody could stop it then) or `events`'
    /// receiver is gone. The request in flight, a held long poll included, is dropped at once,
    /// which closes its connection and frees the server's slot.
    pub async fn run(self, events: mpsc::UnboundedSender<StreamEvent>, mut stop: watch::Receiver<bool>) {
        let endpoint = redacted_url(self.client.realtime_url().as_str());
        let mut machine = Machine::new(self.tuning.clone(), endpoint, self.client.secret_key_text().to_owned());
        info!(created_at = %self.created_at, "realtime stream: subscribing");
        loop {
            let query = machine.query(&self.created_at);
            let outcome = tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                _ = events.closed() => break,
                outcome = self.client.realtime_get(&query) => outcome,
            };
            let step = machine.on_answer(outcome, SystemTime::now());
            for event in step.events {
                if events.send(event).is_err() {
                    return;
                }
            }
            if let Some(wait) = step.wait {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stop| *stop) => break,
                    _ = events.closed() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
        info!("realtime stream: stopped");
    }
}

/// What to do after an answer.
#[derive(Debug, Default, PartialEq)]
struct Step {
    events: Vec<StreamEvent>,
    /// Wait this long before the next request (none: at once).
    wait: Option<Duration>,
}

/// The subscriber's decisions: the shape, the failure episode, the backoff.
struct Machine {
    shape: Shape,
    tuning: SubscriberTuning,
    endpoint: String,
    secret: String,
    /// The kind of the episode announced, until a `Runs` event ends it.
    episode: Option<Unavailable>,
    /// The next backoff's upper bound (before jitter).
    backoff: Duration,
    /// `503 Network error occurred` in a row with no 2xx.
    no_electric: u32,
    /// 409s (or must-refetch messages) in a row: the first restarts at once, later ones back off.
    /// Only a live answer (after a snapshot held) ends the row.
    refetches: u32,
    /// Failures in a row that are neither 429s nor "not served" (`FAILING_AFTER`).
    failing: u32,
    /// Whether a snapshot has been handed out (the first is logged as "up to date").
    synced: bool,
    /// When ended old rows were last dropped (`forget_old_ends`): every row is parsed for it, so
    /// not on every live answer.
    forgot_at: Option<SystemTime>,
    /// Unknown statuses already logged.
    unknown_statuses: HashSet<String>,
}

impl Machine {
    fn new(tuning: SubscriberTuning, endpoint: String, secret: String) -> Machine {
        Machine {
            shape: Shape::new(),
            backoff: tuning.backoff_initial,
            tuning,
            endpoint,
            secret,
            episode: None,
            no_electric: 0,
            refetches: 0,
            failing: 0,
            synced: false,
            unknown_statuses: HashSet::new(),
            forgot_at: None,
        }
    }

    /// `createdAt` and `skipColumns` (the same on every request), then the protocol's parameters.
    fn query(&self, created_at: &str) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("createdAt", created_at.to_owned()),
            ("skipColumns", SKIP_COLUMNS.to_owned()),
        ];
        query.extend(self.shape.query());
        query
    }

    fn on_answer(&mut self, outcome: Result<RealtimeResponse, ApiError>, now: SystemTime) -> Step {
        let response = match outcome {
            Ok(response) => response,
            Err(ApiError::Timeout { timeout, .. }) => {
                let failure = Failure::Timeout {
                    endpoint: self.endpoint.clone(),
                    timeout,
                };
                return self.failed(Unavailable::Failing, failure, None);
            }
            Err(error) => return self.failed(Unavailable::Failing, Failure::Transport(error), None),
        };
        let status = response.status;
        if (200..300).contains(&status) {
            return self.on_success(&response, now);
        }
        let failure = Failure::Status {
            endpoint: self.endpoint.clone(),
            status,
            message: response.message(&self.secret),
        };
        match status {
            409 => {
                // The handle no longer matches the shape (rotated, removed): start over, without
                // it (notes §1.4, §3.5).
                info!(
                    new_handle = response.headers.handle.as_deref().unwrap_or("-"),
                    "realtime stream: 409 must-refetch; starting over from a new snapshot"
                );
                self.refetch()
            }
            429 => self.failed(Unavailable::Busy, failure, None),
            400 => {
                // The query or the offset was refused: whatever the shape held cannot continue.
                self.shape.must_refetch();
                self.failed(Unavailable::NotServed, failure, None)
            }
            401 | 403 => self.failed(Unavailable::Refused, failure, None),
            503 if String::from_utf8_lossy(&response.body).trim() == NO_ELECTRIC => {
                self.no_electric += 1;
                let kind = if self.no_electric >= self.tuning.not_served_after {
                    Unavailable::NotServed
                } else {
                    Unavailable::Failing
                };
                self.failed(kind, failure, None)
            }
            408 | 500..=599 => self.failed(Unavailable::Failing, failure, response.headers.retry_after),
            _ => self.failed(Unavailable::NotServed, failure, None),
        }
    }

    fn on_success(&mut self, response: &RealtimeResponse, now: SystemTime) -> Step {
        let headers = Headers {
            handle: response.headers.handle.clone(),
            offset: response.headers.offset.clone(),
            cursor: response.headers.cursor.clone(),
        };
        let applied = match self.shape.apply(&headers, &response.body) {
            Ok(applied) => applied,
            Err(source) => {
                let failure = Failure::Malformed {
                    endpoint: self.endpoint.clone(),
                    source,
                };
                return self.failed(Unavailable::Failing, failure, None);
            }
        };
        self.no_electric = 0;
        self.failing = 0;
        self.backoff = self.tuning.backoff_initial;
        match applied {
            // A snapshot's next chunk is fetched at once; an empty answer (which the real
            // servers never give to a live poll) is waited on, so a proxy answering instantly
            // with nothing cannot make the loop spin.
            Applied::Pending if response.body.trim_ascii().is_empty() => Step {
                events: Vec::new(),
                wait: Some(self.tuning.backoff_initial),
            },
            Applied::Pending => Step::default(),
            Applied::MustRefetch => {
                info!("realtime stream: must-refetch; starting over from a new snapshot");
                self.refetch()
            }
            Applied::UpToDate { rows, snapshot } => {
                if !snapshot {
                    self.refetches = 0;
                }
                let idle = rows.is_empty() && !snapshot;
                let runs: Vec<_> = rows.iter().filter_map(|row| self.run_of(row)).collect();
                let recovered = self.episode.take().is_some();
                if snapshot {
                    info!(
                        runs = runs.len(),
                        handle = self.shape.handle().unwrap_or("-"),
                        "realtime stream: up to date{}",
                        if self.synced { " again after a must-refetch" } else { "" }
                    );
                    self.synced = true;
                } else if recovered {
                    info!("realtime stream: available again");
                }
                self.forget_old_ends(now);
                let mut step = Step::default();
                if snapshot || recovered || !runs.is_empty() {
                    step.events.push(StreamEvent::Runs { runs, snapshot });
                }
                if idle && !recovered {
                    // A held poll that ended with nothing (20 s on the real servers): a short
                    // pause costs nothing there and stops a server answering at once from
                    // being asked in a loop. Rows changed meanwhile come with the next answer.
                    step.wait = Some(self.tuning.backoff_initial);
                }
                step
            }
        }
    }

    fn run_of(&mut self, row: &super::shape::RawRow) -> Option<super::RealtimeRun> {
        match row::parse(row) {
            Ok(run) => {
                if !map_status(&run.db_status).known && self.unknown_statuses.insert(run.db_status.clone()) {
                    warn!(
                        run_id = %run.id,
                        status = %run.db_status,
                        "realtime stream: a run status this bridge does not know; taken as not ended"
                    );
                }
                Some(run)
            }
            // Expected for a row forgotten after its end, should it change again.
            Err(error @ RowError::NoFriendlyId { .. }) => {
                debug!(%error, "realtime stream: row skipped");
                None
            }
            Err(error) => {
                warn!(%error, "realtime stream: row skipped");
                None
            }
        }
    }

    /// A stream open for days keeps every run created since it opened (the window does not
    /// slide); runs that ended and were created before the window are done with: their rows go.
    fn forget_old_ends(&mut self, now: SystemTime) {
        let due = self
            .forgot_at
            .is_none_or(|at| now.duration_since(at).unwrap_or_default() >= FORGET_EVERY);
        if !due {
            return;
        }
        self.forgot_at = Some(now);
        let Some(before) = now
            .checked_sub(MAX_WINDOW * 2)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        else {
            return;
        };
        let before = before.as_nanos() as u64;
        self.shape.retain(|row| match row::parse(row) {
            Ok(run) => !(run.terminal && run.created_at.is_some_and(|created| created < before)),
            Err(_) => true,
        });
    }

    /// After a 409 or a must-refetch message: at once the first time, then with backoff (a server
    /// that answers 409 to every fresh start must not be hammered).
    fn refetch(&mut self) -> Step {
        self.shape.must_refetch();
        self.refetches += 1;
        if self.refetches >= REFETCHING_AFTER {
            let failure = Failure::Refetching {
                endpoint: self.endpoint.clone(),
                count: self.refetches,
            };
            // Debounced already by the refetches counted: announced now.
            self.failing = self.failing.max(FAILING_AFTER - 1);
            return self.failed(Unavailable::Failing, failure, None);
        }
        let wait = (self.refetches > 1).then(|| self.next_backoff());
        Step {
            events: Vec::new(),
            wait,
        }
    }

    fn failed(&mut self, kind: Unavailable, failure: Failure, retry_after: Option<Duration>) -> Step {
        let reason = failure.to_string();
        let wait = match kind {
            Unavailable::NotServed | Unavailable::Refused => self.tuning.retry_unavailable_after,
            Unavailable::Busy | Unavailable::Failing => {
                let backoff = self.next_backoff();
                retry_after.map_or(backoff, |after| after.min(self.tuning.backoff_max).max(backoff))
            }
        };
        let mut step = Step {
            events: Vec::new(),
            wait: Some(wait),
        };
        if kind == Unavailable::Failing {
            self.failing += 1;
        }
        let announced = kind != Unavailable::Failing || self.failing >= FAILING_AFTER;
        if self.episode != Some(kind) && announced {
            warn!(
                kind = kind.as_str(),
                retry_in_ms = wait.as_millis() as u64,
                reason = %reason,
                "realtime stream: unavailable"
            );
            self.episode = Some(kind);
            step.events.push(StreamEvent::Unavailable { kind, reason });
        } else {
            debug!(kind = kind.as_str(), reason = %reason, "realtime stream: still unavailable");
        }
        step
    }

    /// Uniform between half and all of the current bound (jitter spreads replicas that failed
    /// together), and the bound doubles up to `backoff_max`.
    fn next_backoff(&mut self) -> Duration {
        let bound = self.backoff.min(self.tuning.backoff_max);
        self.backoff = (bound * 2).min(self.tuning.backoff_max);
        let factor: f64 = rand::rng().random_range(0.5..=1.0);
        bound.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::error_chain::Cause;
    use crate::trigger::client::{RealtimeHeaders, LONG_POLL_TIMEOUT};
    use serde_json::json;

    fn machine() -> Machine {
        Machine::new(
            SubscriberTuning {
                backoff_initial: Duration::from_millis(100),
                backoff_max: Duration::from_millis(800),
                retry_unavailable_after: Duration::from_secs(60),
                not_served_after: 3,
            },
            "http://api/realtime/v1/runs".to_owned(),
            "tr_dev_secret".to_owned(),
        )
    }

    fn answer(status: u16, body: &str) -> Result<RealtimeResponse, ApiError> {
        Ok(RealtimeResponse {
            status,
            headers: RealtimeHeaders::default(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn rows(handle: &str, offset: &str, messages: serde_json::Value) -> Result<RealtimeResponse, ApiError> {
        Ok(RealtimeResponse {
            status: 200,
            headers: RealtimeHeaders {
                handle: Some(handle.to_owned()),
                offset: Some(offset.to_owned()),
                ..RealtimeHeaders::default()
            },
            body: serde_json::to_vec(&messages).unwrap(),
        })
    }

    fn snapshot() -> Result<RealtimeResponse, ApiError> {
        rows(
            "h",
            "1_0",
            json!([
                {"key": "k", "value": {"id": "cm1", "friendlyId": "run_1", "status": "EXECUTING"}, "headers": {"operation": "insert"}},
                {"headers": {"control": "up-to-date"}}
            ]),
        )
    }

    fn idle() -> Result<RealtimeResponse, ApiError> {
        rows("h", "1_0", json!([{"headers": {"control": "up-to-date"}}]))
    }

    fn kinds(step: &Step) -> Vec<Unavailable> {
        step.events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Unavailable { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect()
    }

    fn query(machine: &Machine) -> String {
        machine
            .query("1d")
            .iter()
            .filter(|(k, _)| *k != "skipColumns")
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn created_at_is_always_a_valid_duration_within_a_day() {
        assert_eq!(created_at_param(Duration::ZERO), "1m");
        assert_eq!(created_at_param(Duration::from_secs(1)), "1m");
        assert_eq!(created_at_param(Duration::from_secs(60)), "1m");
        assert_eq!(created_at_param(Duration::from_secs(61)), "2m");
        assert_eq!(created_at_param(Duration::from_secs(90 * 60)), "90m");
        assert_eq!(created_at_param(Duration::from_secs(24 * 3600 - 1)), "1440m");
        assert_eq!(created_at_param(Duration::from_secs(24 * 3600)), "1d");
        assert_eq!(created_at_param(Duration::from_secs(30 * 24 * 3600)), "1d");
        assert_eq!(created_at_param(Duration::MAX), "1d");
    }

    #[test]
    fn the_query_keeps_the_reserved_and_read_columns() {
        let skipped: Vec<&str> = SKIP_COLUMNS.split(',').collect();
        for kept in [
            "id",
            "friendlyId",
            "taskIdentifier",
            "status",
            "createdAt",
            "updatedAt",
            "completedAt",
            "startedAt",
            "runTags",
            "isTest",
        ] {
            assert!(!skipped.contains(&kept), "{kept}");
        }
        for heavy in ["payload", "output", "metadata"] {
            assert!(skipped.contains(&heavy), "{heavy}");
        }
        assert!(skipped.iter().all(|c| !c.is_empty() && c.trim() == *c));
        let machine = machine();
        assert_eq!(query(&machine), "createdAt=1d&offset=-1");
    }

    #[test]
    fn the_first_up_to_date_is_a_snapshot_and_idle_polls_emit_nothing() {
        let mut machine = machine();
        let step = machine.on_answer(snapshot(), SystemTime::now());
        assert_eq!(step.wait, None);
        let [StreamEvent::Runs { runs, snapshot: true }] = &step.events[..] else {
            panic!("{step:?}")
        };
        assert_eq!(runs[0].id, "run_1");
        assert_eq!(query(&machine), "createdAt=1d&offset=1_0&handle=h&live=true");
        // An idle held poll: nothing to tell, and a short pause before the next one.
        let idle_step = machine.on_answer(idle(), SystemTime::now());
        assert_eq!(idle_step.events, []);
        assert_eq!(idle_step.wait, Some(machine.tuning.backoff_initial));
        // An empty answer is waited on too (a proxy answering at once must not spin the loop).
        let empty = machine.on_answer(answer(200, ""), SystemTime::now());
        assert_eq!(empty.wait, Some(machine.tuning.backoff_initial), "{empty:?}");
    }

    #[test]
    fn statuses_map_to_kinds_and_waits() {
        let cases = [
            (404, "{\"error\":\"Not found\"}", Unavailable::NotServed),
            (400, "{\"error\":\"Query Error\"}", Unavailable::NotServed),
            (410, "", Unavailable::NotServed),
            (401, "{\"error\":\"Invalid or Missing API key\"}", Unavailable::Refused),
            (403, "{\"error\":\"Unauthorized\"}", Unavailable::Refused),
            (429, "{\"error\":\"Too many concurrent requests\"}", Unavailable::Busy),
            (
                500,
                "{\"error\":\"Failed to get concurrency limit\"}",
                Unavailable::Failing,
            ),
            (502, "<html>bad gateway</html>", Unavailable::Failing),
            (503, "stack not ready", Unavailable::Failing),
        ];
        for (status, body, kind) in cases {
            let mut machine = machine();
            let first = machine.on_answer(answer(status, body), SystemTime::now());
            let wait = first.wait.expect("a wait");
            // A failure is announced once it happened FAILING_AFTER times in a row.
            let step = match kind {
                Unavailable::Failing => {
                    assert!(first.events.is_empty(), "{status}: one failure is not announced");
                    (1..FAILING_AFTER)
                        .map(|_| machine.on_answer(answer(status, body), SystemTime::now()))
                        .last()
                        .expect("a step")
                }
                _ => first,
            };
            assert_eq!(kinds(&step), [kind], "{status}");
            let StreamEvent::Unavailable { reason, .. } = &step.events[0] else {
                panic!()
            };
            assert!(reason.contains(&status.to_string()), "{reason}");
            match kind {
                Unavailable::NotServed | Unavailable::Refused => assert_eq!(wait, Duration::from_secs(60)),
                _ => assert!(
                    wait >= Duration::from_millis(50) && wait <= Duration::from_millis(100),
                    "{wait:?}"
                ),
            }
        }
        let mut machine = machine();
        let error = || ApiError::Connection {
            endpoint: "e".into(),
            reason: "connection refused".into(),
            cause: Cause::Refused,
            attempts: 1,
        };
        for _ in 1..FAILING_AFTER {
            assert!(machine.on_answer(Err(error()), SystemTime::now()).events.is_empty());
        }
        assert_eq!(
            kinds(&machine.on_answer(Err(error()), SystemTime::now())),
            [Unavailable::Failing]
        );
        let timeout = ApiError::Timeout {
            endpoint: "e".into(),
            timeout: LONG_POLL_TIMEOUT,
            attempts: 1,
        };
        let step = machine.on_answer(Err(timeout), SystemTime::now());
        assert!(step.events.is_empty(), "same episode: {step:?}");
        let malformed = machine.on_answer(rows("h", "1", json!({"not": "messages"})), SystemTime::now());
        assert!(malformed.events.is_empty() && malformed.wait.is_some());
    }

    #[test]
    fn a_key_in_an_error_body_is_not_repeated() {
        let mut machine = machine();
        let step = (0..FAILING_AFTER)
            .map(|_| machine.on_answer(answer(502, "proxy saw Bearer tr_dev_secret"), SystemTime::now()))
            .last()
            .expect("a step");
        let StreamEvent::Unavailable { reason, .. } = &step.events[0] else {
            panic!()
        };
        assert!(!reason.contains("tr_dev_secret"), "{reason}");
    }

    #[test]
    fn once_per_episode_and_the_next_up_to_date_ends_it() {
        let mut machine = machine();
        machine.on_answer(snapshot(), SystemTime::now());
        let waits: Vec<Step> = (0..5)
            .map(|_| machine.on_answer(answer(503, "x"), SystemTime::now()))
            .collect();
        // Announced once, at the FAILING_AFTER-th failure in a row.
        let announced = FAILING_AFTER as usize - 1;
        assert_eq!(kinds(&waits[announced]), [Unavailable::Failing]);
        assert!(waits
            .iter()
            .enumerate()
            .all(|(i, s)| i == announced || s.events.is_empty()));
        // Backoff doubles up to its cap, jittered within [half, all] of the bound.
        for (step, bound) in waits.iter().zip([100, 200, 400, 800, 800]) {
            let wait = step.wait.unwrap();
            let bound = Duration::from_millis(bound);
            assert!(wait >= bound / 2 && wait <= bound, "{wait:?} for {bound:?}");
        }
        // A different kind is a new announcement.
        assert_eq!(
            kinds(&machine.on_answer(answer(429, ""), SystemTime::now())),
            [Unavailable::Busy]
        );
        // Back: the idle up-to-date is announced (with no runs), the backoff starts over.
        let back = machine.on_answer(idle(), SystemTime::now());
        assert_eq!(
            back.events,
            [StreamEvent::Runs {
                runs: vec![],
                snapshot: false
            }]
        );
        assert_eq!(machine.on_answer(idle(), SystemTime::now()).events, []);
        // The count of failures starts over too: one 500 is not announced, the third is.
        let again = machine.on_answer(answer(500, ""), SystemTime::now());
        assert!(again.events.is_empty(), "{again:?}");
        assert!(again.wait.unwrap() <= Duration::from_millis(100));
        machine.on_answer(answer(500, ""), SystemTime::now());
        let third = machine.on_answer(answer(500, ""), SystemTime::now());
        assert_eq!(kinds(&third), [Unavailable::Failing]);
    }

    #[test]
    fn three_no_electric_503s_in_a_row_mean_not_served() {
        let mut machine = machine();
        let no_electric = || answer(503, "Network error occurred");
        // The first two are failures, not announced yet (FAILING_AFTER).
        assert!(machine.on_answer(no_electric(), SystemTime::now()).events.is_empty());
        assert!(machine.on_answer(no_electric(), SystemTime::now()).events.is_empty());
        let third = machine.on_answer(no_electric(), SystemTime::now());
        assert_eq!(kinds(&third), [Unavailable::NotServed]);
        assert_eq!(third.wait, Some(Duration::from_secs(60)));
        // A 2xx resets the count: two more are not "not served".
        machine.on_answer(snapshot(), SystemTime::now());
        machine.on_answer(no_electric(), SystemTime::now());
        let second = machine.on_answer(no_electric(), SystemTime::now());
        assert!(second.events.is_empty(), "{second:?}");
    }

    #[test]
    fn a_409_starts_over_without_the_handle_at_once_then_with_backoff() {
        let mut machine = machine();
        machine.on_answer(snapshot(), SystemTime::now());
        assert!(query(&machine).contains("handle=h"));
        let conflict = || {
            Ok(RealtimeResponse {
                status: 409,
                headers: RealtimeHeaders {
                    handle: Some("h2".into()),
                    ..RealtimeHeaders::default()
                },
                body: br#"[{"headers":{"control":"must-refetch"}}]"#.to_vec(),
            })
        };
        assert_eq!(machine.on_answer(conflict(), SystemTime::now()), Step::default());
        assert_eq!(query(&machine), "createdAt=1d&offset=-1");
        let second = machine.on_answer(conflict(), SystemTime::now());
        assert!(second.events.is_empty() && second.wait.is_some());
        // The snapshot after it says so.
        let step = machine.on_answer(snapshot(), SystemTime::now());
        assert!(matches!(step.events[..], [StreamEvent::Runs { snapshot: true, .. }]));
        // A snapshot is no live answer: a third must-refetch in a row (a server that answers 409
        // to every live poll, each one a whole new snapshot) makes the stream `Failing`, so
        // `auto` turns to the list endpoint.
        let third = machine.on_answer(conflict(), SystemTime::now());
        assert_eq!(kinds(&third), [Unavailable::Failing], "{third:?}");
        let StreamEvent::Unavailable { reason, .. } = &third.events[0] else {
            panic!()
        };
        assert!(reason.contains("3 times in a row"), "{reason}");
        // A live answer ends the row.
        machine.on_answer(snapshot(), SystemTime::now());
        machine.on_answer(idle(), SystemTime::now());
        assert_eq!(
            machine.on_answer(conflict(), SystemTime::now()).wait,
            None,
            "the first again"
        );
    }

    #[test]
    fn a_400_starts_over_when_the_stream_comes_back() {
        let mut machine = machine();
        machine.on_answer(snapshot(), SystemTime::now());
        machine.on_answer(
            answer(400, "{\"offset\":[\"out of bounds for this shape\"]}"),
            SystemTime::now(),
        );
        assert_eq!(query(&machine), "createdAt=1d&offset=-1");
    }

    #[test]
    fn ended_runs_created_before_the_window_are_forgotten() {
        let mut machine = machine();
        let step = machine.on_answer(
            rows(
                "h",
                "1_0",
                json!([
                    {"value": {"id": "old-ended", "friendlyId": "run_1", "status": "CANCELED", "createdAt": "2026-01-01 00:00:00"}, "headers": {"operation": "insert"}},
                    {"value": {"id": "old-running", "friendlyId": "run_2", "status": "EXECUTING", "createdAt": "2026-01-01 00:00:00"}, "headers": {"operation": "insert"}},
                    {"value": {"id": "new-ended", "friendlyId": "run_3", "status": "CANCELED", "createdAt": "2026-08-21 00:00:00"}, "headers": {"operation": "insert"}},
                    {"headers": {"control": "up-to-date"}}
                ]),
            ),
            UNIX_EPOCH + Duration::from_secs(1_787_307_330),
        );
        let [StreamEvent::Runs { runs, .. }] = &step.events[..] else {
            panic!()
        };
        assert_eq!(runs.len(), 3, "handed out first");
        assert!(machine.shape.row("old-ended").is_none());
        assert!(machine.shape.row("old-running").is_some() && machine.shape.row("new-ended").is_some());
        // Looked for every FORGET_EVERY, not on every answer.
        let now = UNIX_EPOCH + Duration::from_secs(1_787_307_330);
        let old_ended = |at| {
            rows(
                "h",
                "2_0",
                json!([
                    {"value": {"id": "old-ended-2", "friendlyId": "run_4", "status": "CANCELED", "createdAt": "2026-01-01 00:00:00"}, "headers": {"operation": "insert"}},
                    {"headers": {"control": "up-to-date"}}
                ]),
            )
            .map(|answer| (answer, at))
        };
        let (answer, at) = old_ended(now + Duration::from_secs(1)).unwrap();
        machine.on_answer(Ok(answer), at);
        assert!(machine.shape.row("old-ended-2").is_some(), "kept until the next look");
        let (answer, at) = old_ended(now + FORGET_EVERY).unwrap();
        machine.on_answer(Ok(answer), at);
        assert!(machine.shape.row("old-ended-2").is_none());
    }

    #[test]
    fn rows_without_a_public_id_are_skipped() {
        let mut machine = machine();
        let step = machine.on_answer(
            rows(
                "h",
                "1_0",
                json!([
                    {"value": {"id": "cm9", "status": "EXECUTING"}, "headers": {"operation": "update"}},
                    {"value": {"id": "cm1", "friendlyId": "run_1", "status": "NEW_THING"}, "headers": {"operation": "insert"}},
                    {"headers": {"control": "up-to-date"}}
                ]),
            ),
            SystemTime::now(),
        );
        let [StreamEvent::Runs { runs, .. }] = &step.events[..] else {
            panic!()
        };
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].id.as_str(), runs[0].terminal), ("run_1", false));
    }
}
