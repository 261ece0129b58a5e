//! `Health`: what `/healthz` (the daemon loop ticks) and `/readyz` (config, state, key, export) answer from.

use super::TelemetryError;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `/healthz` fails once the daemon loop has not ticked for this long.
pub const HEARTBEAT_STALE_AFTER: Duration = Duration::from_secs(30);

/// Default readiness bound on exports: spans waiting longer than this without the collector
/// accepting anything make the bridge not ready (the `export` command gives up after as long).
pub const DEFAULT_EXPORT_BOUND: Duration = Duration::from_secs(120);

const KEY_UNKNOWN: u8 = 0;
const KEY_ACCEPTED: u8 = 1;
const KEY_REJECTED: u8 = 2;

/// Times are milliseconds since `epoch`, plus one (0: never).
pub struct Health {
    epoch: Instant,
    heartbeat: AtomicU64,
    config_loaded: AtomicBool,
    state_open: AtomicBool,
    key: AtomicU8,
    key_rejected_status: AtomicU16,
    last_export: AtomicU64,
    waiting_since: AtomicU64,
    export_bound_ms: AtomicU64,
    nothing_to_watch: AtomicBool,
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
            .field("key", &self.key.load(Ordering::Relaxed))
            .field("nothing_to_watch", &self.nothing_to_watch.load(Ordering::Relaxed))
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
            key: AtomicU8::new(KEY_UNKNOWN),
            key_rejected_status: AtomicU16::new(0),
            last_export: AtomicU64::new(0),
            waiting_since: AtomicU64::new(0),
            export_bound_ms: AtomicU64::new(DEFAULT_EXPORT_BOUND.as_millis() as u64),
            nothing_to_watch: AtomicBool::new(false),
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

    /// The daemon watches no run and discovery is off, so it has no reason to call Trigger.dev
    /// (see [`Health::readiness`]). False until the daemon says so after starting.
    pub fn set_nothing_to_watch(&self, nothing: bool) {
        self.nothing_to_watch.store(nothing, Ordering::Relaxed);
    }

    /// A Trigger.dev response with this status: 2xx accepts the key, 401/403 rejects it, anything
    /// else says nothing about it.
    pub fn api_status(&self, status: u16) {
        match status {
            200..=299 => self.key.store(KEY_ACCEPTED, Ordering::Relaxed),
            401 | 403 => {
                self.key_rejected_status.store(status, Ordering::Relaxed);
                self.key.store(KEY_REJECTED, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// The collector answered an export attempt with acceptance (or a final rejection): exports
    /// make progress.
    pub fn export_progressed(&self) {
        self.last_export.store(self.stamp(Instant::now()), Ordering::Relaxed);
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

    /// `/readyz`, in this order: the config is loaded; the state file is open; Trigger.dev
    /// accepted the key (its latest 2xx or 401/403 decides; not ready before the first answer,
    /// unless there is nothing to watch); and, while `pending` spans wait, the collector made
    /// progress within the export bound (counted from the last accepted attempt, or from when
    /// spans started waiting if later).
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
        match self.key.load(Ordering::Relaxed) {
            KEY_ACCEPTED => {}
            KEY_REJECTED => {
                let status = self.key_rejected_status.load(Ordering::Relaxed);
                return Err(TelemetryError::KeyRejected { status });
            }
            // No run watched and discovery off: the daemon makes no request, so the key cannot
            // be confirmed, yet nothing fails and nothing waits (an idle replica, or one whose
            // runs were all retired before any answer). Not ready would only take it out of
            // service for no fault. A rejection still counts (above), and once there is
            // something to watch an unconfirmed key makes it not ready until Trigger.dev answers.
            KEY_UNKNOWN if self.nothing_to_watch.load(Ordering::Relaxed) => {}
            _ => return Err(TelemetryError::KeyUnconfirmed),
        }
        if pending > 0 {
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
        health.api_status(200);
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
    fn not_ready_until_config_state_and_key() {
        let health = Health::new();
        let now = Instant::now();
        assert!(ready(&health, now, 0).unwrap_err().contains("configuration"));
        health.set_config_loaded(true);
        assert!(ready(&health, now, 0).unwrap_err().contains("state"));
        health.set_state_open(true);
        assert!(ready(&health, now, 0).unwrap_err().contains("Trigger.dev"));
        health.api_status(500);
        assert!(ready(&health, now, 0).is_err(), "a 500 says nothing about the key");
        health.api_status(200);
        assert_eq!(ready(&health, now, 0), Ok(()));
        health.api_status(401);
        assert!(ready(&health, now, 0).unwrap_err().contains("HTTP 401"));
        health.api_status(200);
        assert_eq!(ready(&health, now, 0), Ok(()));
    }

    #[test]
    fn nothing_to_watch_needs_no_confirmed_key_but_a_rejected_one_still_counts() {
        let health = Health::new();
        health.set_config_loaded(true);
        health.set_state_open(true);
        let now = Instant::now();
        assert!(ready(&health, now, 0).unwrap_err().contains("no answer"));
        health.set_nothing_to_watch(true);
        assert_eq!(ready(&health, now, 0), Ok(()));
        health.set_nothing_to_watch(false);
        assert!(
            ready(&health, now, 0).unwrap_err().contains("no answer"),
            "something to watch again: the key must be confirmed"
        );
        health.api_status(401);
        health.set_nothing_to_watch(true);
        assert!(ready(&health, now, 0).unwrap_err().contains("HTTP 401"));
        health.api_status(200);
        assert_eq!(ready(&health, now, 0), Ok(()));
        let fresh = Health::new();
        fresh.set_nothing_to_watch(true);
        assert!(
            ready(&fresh, now, 0).unwrap_err().contains("configuration"),
            "the other checks still apply"
        );
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
