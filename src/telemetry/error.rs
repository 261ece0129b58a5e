//! `TelemetryError`: what the telemetry server, the OTLP metrics push, the health checks and the
//! log level control report. `/healthz` and `/readyz` answer with the Display of their variant.

use crate::wording::{human_duration, plural};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The telemetry server cannot bind `server.listen`.
    #[error("cannot listen on {listen:?} (server.listen): {source}")]
    Listen {
        listen: String,
        #[source]
        source: std::io::Error,
    },

    /// The OTLP metrics push cannot be built for `telemetry.otlp_endpoint` (a collector that
    /// is down is no error: its pushes fail and are logged).
    #[error("cannot push metrics to {endpoint:?} (telemetry.otlp_endpoint): {reason}")]
    OtlpMetrics { endpoint: String, reason: String },

    /// `/healthz`: the daemon loop has not ticked for `age` (more than
    /// [`super::health::HEARTBEAT_STALE_AFTER`]).
    #[error("the daemon loop has not ticked for {}", human_duration(*.age))]
    LoopStalled { age: Duration },

    /// `/readyz`, in the order [`super::Health::readiness`] checks them.
    #[error("configuration not loaded")]
    ConfigNotLoaded,
    #[error("state file not open")]
    StateNotOpen,
    #[error(
        "the state file cannot be written ({what}) for {}; polling paused until it can (nothing is lost)",
        human_duration(*.failing_for)
    )]
    StateNotWritable { what: &'static str, failing_for: Duration },
    #[error("Trigger.dev rejected the secret key (HTTP {status})")]
    KeyRejected { status: u16 },
    #[error("checking Trigger.dev's API (trigger.api_url) and the secret key: no answer yet")]
    ApiUnchecked,
    /// The start-up check failed; `message` names the cause and the setting to change.
    #[error("the start-up check of Trigger.dev failed: {message}")]
    ApiCheckFailed { message: String },
    #[error(
        "every export attempt failed for {} while {} waiting: {reason}",
        human_duration(*.failing),
        plural(*.pending as u64, "span")
    )]
    ExportFailing {
        failing: Duration,
        pending: usize,
        reason: String,
    },
    #[error(
        "the collector has accepted nothing for {} while {} waiting (bound {})",
        human_duration(*.stalled),
        plural(*.pending as u64, "span"),
        human_duration(*.bound)
    )]
    ExportStalled {
        stalled: Duration,
        pending: usize,
        bound: Duration,
    },

    /// A reloaded `log.level` that is not a valid filter.
    #[error("log.level {level:?}: {reason}")]
    LogLevel { level: String, reason: String },

    /// The installed subscriber cannot take the new level.
    #[error(transparent)]
    LogReload(#[from] tracing_subscriber::reload::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/healthz` and `/readyz` answer with these texts; probes and people read them.
    #[test]
    fn health_reasons_read_as_the_probes_show_them() {
        let cases = [
            (
                TelemetryError::LoopStalled {
                    age: Duration::from_millis(31_500),
                },
                "the daemon loop has not ticked for 32s",
            ),
            (TelemetryError::ConfigNotLoaded, "configuration not loaded"),
            (TelemetryError::StateNotOpen, "state file not open"),
            (
                TelemetryError::StateNotWritable {
                    what: "disk full",
                    failing_for: Duration::from_millis(12_400),
                },
                "the state file cannot be written (disk full) for 12s; polling paused until it can (nothing is lost)",
            ),
            (
                TelemetryError::KeyRejected { status: 401 },
                "Trigger.dev rejected the secret key (HTTP 401)",
            ),
            (
                TelemetryError::ApiUnchecked,
                "checking Trigger.dev's API (trigger.api_url) and the secret key: no answer yet",
            ),
            (
                TelemetryError::ExportFailing {
                    failing: Duration::from_millis(31_200),
                    pending: 7,
                    reason: "connection refused".into(),
                },
                "every export attempt failed for 31s while 7 spans waiting: connection refused",
            ),
            (
                TelemetryError::ExportStalled {
                    stalled: Duration::from_secs(11),
                    pending: 5,
                    bound: Duration::from_millis(10_500), // rounded to the second from 10 s up
                },
                "the collector has accepted nothing for 11s while 5 spans waiting (bound 11s)",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }
}
