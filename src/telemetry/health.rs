//! `Health`: what `/healthz` (the daemon loop ticks) and `/readyz` (config, state, key, export) answer from.

use super::TelemetryError;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `/healthz` fails once the daemon loop has not ticked for this long.
pub const HEARTBEAT_STALE_AFTER: Duration = Duration::from_secs(30);

/// Default readiness bound on exports: spans waiting longer than this without the collector
/// accepting anything make the bridge not ready (the `export` command gives up after as long).
pub const DEFAULT_EXPORT_BOUND: Duration = Duration::from_secs(120);

/// Spans waiting while every export attempt has failed for this long make the bridge not ready:
/// long enough for a collector's restart or one retried blip, short enough that a probe sees a
/// collector that is really down (an attempt that hangs is bounded by [`DEFAULT_EXPORT_BOUND`]).
pub const EXPORT_FAILING_GRACE: Duration = Duration::from_secs(30);

/// The start-up check of Trigger.dev (`trigger::startup_check`), as readiness sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum ApiCheck {
    /// Not answered yet.
    #[default]
    Pending,
    /// The last try failed with this message (it names the setting to change).
    Failed(String),
    Passed,
}

/// Times are milliseconds since `epoch`, plus one (0: never).
pub struct Health {
    epoch: Instant,
    heartbeat: AtomicU64,
    config_loaded: AtomicBool,
    state_open: AtomicBool,
    /// The 401 or 403 of the latest answer that said anything about the key; 0 while the key
    /// stands (the start-up check decides readiness before any answer does).
    key_rejected_status: AtomicU16,
    last_export: AtomicU64,
    waiting_since: AtomicU64,
    export_bound_ms: AtomicU64,
    /// When export attempts started failing with none accepted since (0: not failing).
    export_failing_since: AtomicU64,
    export_grace_ms: AtomicU64,
    /// The latest failed attempt's reason, for `/readyz`.
    export_failure: Mutex<String>,
    api_check: Mutex<ApiCheck>,
    state_fault: Mutex<StateFault>,
}

/// Who writes the state file: each can find it unwritable, and the file is writable again only
/// once both succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateWriter {
    /// The export queue, committing acknowledged span ids.
    Queue = 1,
    /// The daemon loop, recording, retiring and adding runs.
    Loop = 2,
}

#[derive(Debug, Default)]
struct StateFault {
    writers: u8,
    what: &'static str,
    since: Option<Instant>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("live", &self.liveness(Instant::now()).is_ok())
            .field("config_loaded", &self.config_loaded.load(Ordering::Relaxed))
            .field("state_open", &self.state_open.load(Ordering::Relaxed))
            .field("key_rejected_status", &self.key_rejected_status.load(Ordering::Relaxed))
            .field("api_check", &*self.api_check.lock().unwrap_or_else(|e| e.into_inner()))
            .finish_non_exhaustive()
    }
}

impl Default for Health {
    fn default() -> Self {
        Health::new()
    }
}

impl Health {
    pub fn new() -> Health {
        Health {
            epoch: Instant::now(),
            heartbeat: AtomicU64::new(1),
            config_loaded: AtomicBool::new(false),
            state_open: AtomicBool::new(false),
            key_rejected_status: AtomicU16::new(0),
            last_export: AtomicU64::new(0),
            waiting_since: AtomicU64::new(0),
            export_bound_ms: AtomicU64::new(DEFAULT_EXPORT_BOUND.as_millis() as u64),
            export_failing_since: AtomicU64::new(0),
            export_grace_ms: AtomicU64::new(EXPORT_FAILING_GRACE.as_millis() as u64),
            export_failure: Mutex::new(String::new()),
            api_check: Mutex::new(ApiCheck::Pending),
            state_fault: Mutex::new(StateFault::default()),
        }
    }

    fn stamp(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64 + 1
    }

    fn age(&self, stamp: u64, now: Instant) -> Option<Duration> {
        (stamp > 0).then(|| Duration::from_millis(self.stamp(now).saturating_sub(stamp)))
    }

    /// `writer` found the state file unwritable (`what`: disk full, read-only …).
    pub fn state_write_failed(&self, writer: StateWriter, what: &'static str) {
        let mut fault = self.state_fault.lock().unwrap_or_else(|e| e.into_inner());
        fault.writers |= writer as u8;
        fault.what = what;
        fault.since.get_or_insert_with(Instant::now);
    }

    /// `writer` wrote the state file again.
    pub fn state_write_recovered(&self, writer: StateWriter) {
        let mut fault = self.state_fault.lock().unwrap_or_else(|e| e.into_inner());
        fault.writers &= !(writer as u8);
        if fault.writers == 0 {
            fault.since = None;
        }
    }

    /// Whether the state file takes writes (polling pauses while it does not).
    pub fn state_writable(&self) -> bool {
        self.state_fault.lock().unwrap_or_else(|e| e.into_inner()).writers == 0
    }

    /// The daemon loop is alive.
    pub fn beat(&self) {
        self.heartbeat.store(self.stamp(Instant::now()), Ordering::Relaxed);
    }

    pub fn set_config_loaded(&self, loaded: bool) {
        self.config_loaded.store(loaded, Ordering::Relaxed);
    }

    pub fn set_state_open(&self, open: bool) {
        self.state_open.store(open, Ordering::Relaxed);
    }

    pub fn set_export_bound(&self, bound: Duration) {
        self.export_bound_ms.store(bound.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn set_export_grace(&self, grace: Duration) {
        self.export_grace_ms.store(grace.as_millis() as u64, Ordering::Relaxed);
    }

    /// The start-up check of Trigger.dev passed (`Ok`) or failed with this message.
    pub fn api_checked(&self, result: Result<(), String>) {
        *self.api_check.lock().unwrap_or_else(|e| e.into_inner()) = match result {
            Ok(()) => ApiCheck::Passed,
            Err(message) => ApiCheck::Failed(message),
        };
    }

    /// A Trigger.dev response with this status: 2xx accepts the key, 401/403 rejects it, anything
    /// else says nothing about it.
    pub fn api_status(&self, status: u16) {
        match status {
            200..=299 => self.key_rejected_status.store(0, Ordering::Relaxed),
            401 | 403 => self.key_rejected_status.store(status, Ordering::Relaxed),
            _ => {}
        }
    }

    /// The collector answered an export attempt with acceptance (or a final rejection): exports
    /// make progress.
    pub fn export_progressed(&self) {
        self.last_export.store(self.stamp(Instant::now()), Ordering::Relaxed);
        self.export_failing_since.store(0, Ordering::Relaxed);
    }

    /// An export attempt failed (it will be retried) for `reason`.
    pub fn export_failed(&self, reason: &str) {
        let _ = self.export_failing_since.compare_exchange(
            0,
            self.stamp(Instant::now()),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let mut failure = self.export_failure.lock().unwrap_or_else(|e| e.into_inner());
        failure.clear();
        failure.push_str(reason);
    }

    /// Spans started waiting for the collector while none were (called by `add_pending`).
    pub fn spans_waiting(&self) {
        self.waiting_since.store(self.stamp(Instant::now()), Ordering::Relaxed);
    }

    /// `/healthz`: the loop ticked within [`HEARTBEAT_STALE_AFTER`].
    pub fn liveness(&self, now: Instant) -> Result<(), TelemetryError> {
        let age = self
            .age(self.heartbeat.load(Ordering::Relaxed), now)
            .unwrap_or_default();
        if age > HEARTBEAT_STALE_AFTER {
            return Err(TelemetryError::LoopStalled { age });
        }
        Ok(())
    }

    /// `/readyz`, in this order: the config is loaded; the state file is open and takes writes;
    /// the start-up check found Trigger.dev's API at `api_url` accepting the key (which also
    /// makes a replica with nothing to watch ready); no later answer rejected the key; and, while
    /// `pending` spans wait, export attempts have not all failed for the grace
    /// ([`EXPORT_FAILING_GRACE`] by default) and
    /// the collector made progress within the export bound (counted from the last accepted
    /// attempt, or from when spans started waiting if later).
    pub fn readiness(&self, now: Instant, pending: usize) -> Result<(), TelemetryError> {
        if !self.config_loaded.load(Ordering::Relaxed) {
            return Err(TelemetryError::ConfigNotLoaded);
        }
        if !self.state_open.load(Ordering::Relaxed) {
            return Err(TelemetryError::StateNotOpen);
        }
        {
            let fault = self.state_fault.lock().unwrap_or_else(|e| e.into_inner());
            if let (true, Some(since)) = (fault.writers != 0, fault.since) {
                return Err(TelemetryError::StateNotWritable {
                    what: fault.what,
                    failing_for: now.saturating_duration_since(since),
                });
            }
        }
        match &*self.api_check.lock().unwrap_or_else(|e| e.into_inner()) {
            ApiCheck::Passed => {}
            ApiCheck::Pending => return Err(TelemetryError::ApiUnchecked),
            ApiCheck::Failed(message) => {
                return Err(TelemetryError::ApiCheckFailed {
                    message: message.clone(),
                })
            }
        }
        let status = self.key_rejected_status.load(Ordering::Relaxed);
        if status != 0 {
            return Err(TelemetryError::KeyRejected { status });
        }
        if pending > 0 {
            if let Some(failing) = self.age(self.export_failing_since.load(Ordering::Relaxed), now) {
                if failing > Duration::from_millis(self.export_grace_ms.load(Ordering::Relaxed)) {
                    let reason = self.export_failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    return Err(TelemetryError::ExportFailing {
                        failing,
                        pending,
                        reason,
                    });
                }
            }
            let since = self
                .last_export
                .load(Ordering::Relaxed)
                .max(self.waiting_since.load(Ordering::Relaxed));
            let stalled = self.age(since, now).unwrap_or_default();
            let bound = Duration::from_millis(self.export_bound_ms.load(Ordering::Relaxed));
            if stalled > bound {
                return Err(TelemetryError::ExportStalled {
                    stalled,
                    pending,
                    bound,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer of `/readyz`, as its text.
    fn ready(health: &Health, now: Instant, pending: usize) -> Result<(), String> {
        health.readiness(now, pending).map_err(|reason| reason.to_string())
    }

    fn ready_health() -> Health {
        let health = Health::new();
        health.set_config_loaded(true);
        health.set_state_open(true);
        health.api_checked(Ok(()));
        health
    }

    #[test]
    fn an_unwritable_state_file_is_not_ready_until_every_writer_recovered() {
        let health = ready_health();
        let now = Instant::now();
        health.state_write_failed(StateWriter::Queue, "disk full");
        health.state_write_failed(StateWriter::Loop, "disk full");
        assert!(!health.state_writable());
        let reason = ready(&health, now + Duration::from_secs(3), 0).unwrap_err();
        assert!(reason.contains("cannot be written (disk full)"), "{reason}");
        health.state_write_recovered(StateWriter::Queue);
        assert!(ready(&health, now, 0).is_err(), "the loop still cannot write");
        health.state_write_recovered(StateWriter::Loop);
        assert!(health.state_writable());
        assert_eq!(ready(&health, now, 0), Ok(()));
    }

    #[test]
    fn not_ready_until_config_state_and_the_start_up_check() {
        let health = Health::new();
        let now = Instant::now();
        assert!(ready(&health, now, 0).unwrap_err().contains("configuration"));
        health.set_config_loaded(true);
        assert!(ready(&health, now, 0).unwrap_err().contains("state"));
        health.set_state_open(true);
        assert!(ready(&health, now, 0).unwrap_err().contains("no answer yet"));
        health.api_status(200);
        assert!(
            ready(&health, now, 0).is_err(),
            "a run's answer before the check is not the check"
        );
        health.api_checked(Err("http://x is not a Trigger.dev API: check trigger.api_url".into()));
        let reason = ready(&health, now, 0).unwrap_err();
        assert!(
            reason.contains("start-up check") && reason.contains("trigger.api_url"),
            "{reason}"
        );
        health.api_checked(Ok(()));
        assert_eq!(ready(&health, now, 0), Ok(()));
    }

    #[test]
    fn a_key_rejected_after_the_check_is_not_ready_until_accepted_again() {
        let health = ready_health();
        let now = Instant::now();
        health.api_status(500);
        assert_eq!(ready(&health, now, 0), Ok(()), "a 500 says nothing about the key");
        health.api_status(401);
        assert!(ready(&health, now, 0).unwrap_err().contains("HTTP 401"));
        health.api_status(200);
        assert_eq!(ready(&health, now, 0), Ok(()));
    }

    #[test]
    fn exports_failing_past_the_grace_are_not_ready_while_spans_wait() {
        let health = ready_health();
        health.spans_waiting();
        health.export_failed("connection refused (export.endpoint)");
        let now = Instant::now();
        assert_eq!(ready(&health, now, 3), Ok(()), "within the grace");
        let later = now + EXPORT_FAILING_GRACE + Duration::from_secs(1);
        let reason = ready(&health, later, 3).unwrap_err();
        assert!(
            reason.contains("every export attempt failed") && reason.contains("connection refused"),
            "{reason}"
        );
        assert_eq!(ready(&health, later, 0), Ok(()), "nothing waits: ready");
        health.export_failed("still refused");
        assert!(
            ready(&health, later, 3).unwrap_err().contains("still refused"),
            "the failure counts from its first attempt and names the latest"
        );
        health.export_progressed();
        assert_eq!(ready(&health, later, 3), Ok(()), "an accepted attempt ends the episode");
    }

    #[test]
    fn pending_spans_without_progress_past_the_bound_are_not_ready() {
        let health = ready_health();
        health.set_export_bound(Duration::from_secs(10));
        health.spans_waiting();
        let now = Instant::now();
        assert_eq!(ready(&health, now, 5), Ok(()));
        let later = now + Duration::from_secs(11);
        assert!(ready(&health, later, 5).unwrap_err().contains("collector"));
        assert_eq!(ready(&health, later, 0), Ok(()), "nothing waits: ready");
    }

    #[test]
    fn liveness_follows_the_heartbeat() {
        let health = Health::new();
        let now = Instant::now();
        assert!(health.liveness(now).is_ok());
        assert!(health.liveness(now + Duration::from_secs(31)).is_err());
        health.beat();
        assert!(health.liveness(Instant::now()).is_ok());
    }
}
