//! `TelemetryError`: what the telemetry server, the OTLP metrics push, the health checks and the
//! log level control report. `/healthz` and `/readyz` answer with the Display of their variant.

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
    #[error("the daemon loop has not ticked for {} s", .age.as_secs())]
    LoopStalled { age: Duration },

    /// `/readyz`, in the order [`super::Health::readiness`] checks them.
    #[error("configuration not loaded")]
    ConfigNotLoaded,
    #[error("state file not open")]
    StateNotOpen,
    #[error(
        "the state file cannot be written ({what}) for {} s; polling paused until it can (nothing is lost)",
        .failing_for.as_secs()
    )]
    StateNotWritable { what: &'static str, failing_for: Duration },
    #[error("Trigger.dev rejected the secret key (HTTP {status})")]
    KeyRejected { status: u16 },
    #[error("no answer from Trigger.dev yet (secret key not confirmed)")]
    KeyUnconfirmed,
    #[error(
        "the collector has accepted nothing for {} s while {pending} spans wait (bound {} s)",
        .stalled.as_secs(),
        .bound.as_secs_f64()
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
                "the daemon loop has not ticked for 31 s",
            ),
            (TelemetryError::ConfigNotLoaded, "configuration not loaded"),
            (TelemetryError::StateNotOpen, "state file not open"),
            (
                TelemetryError::StateNotWritable {
                    what: "disk full",
                    failing_for: Duration::from_millis(12_400),
                },
                "the state file cannot be written (disk full) for 12 s; polling paused until it can (nothing is lost)",
            ),
            (
                TelemetryError::KeyRejected { status: 401 },
                "Trigger.dev rejected the secret key (HTTP 401)",
            ),
            (
                TelemetryError::KeyUnconfirmed,
                "no answer from Trigger.dev yet (secret key not confirmed)",
            ),
            (
                TelemetryError::ExportStalled {
                    stalled: Duration::from_secs(11),
                    pending: 5,
                    bound: Duration::from_millis(10_500),
                },
                "the collector has accepted nothing for 11 s while 5 spans wait (bound 10.5 s)",
            ),
        ];
        for (reason, text) in cases {
            assert_eq!(reason.to_string(), text);
        }
    }
}
