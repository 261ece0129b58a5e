//! `Metrics`: the bridge's own counters, in process (atomics the daemon and tests read) and as a prometheus-client registry (the `/metrics` text).

use super::health::Health;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The reasons of `api_holds_total`, all shown from the start (`rate_limit::HoldReason`).
const HOLD_REASONS: [&str; 2] = ["reserve", "rate_limited"];

/// Every metric name starts with this (and `_`).
pub const PREFIX: &str = "trigger_otel_bridge";

/// `Content-Type` of [`Metrics::encode_openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `Content-Type` of [`Metrics::encode_prometheus`].
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ApiLabels {
    /// `events`, `trace`, `run` or `list`.
    pub endpoint: &'static str,
    /// The HTTP status, or `error` when no response arrived.
    pub status: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// A gauge that is absent until first set (a rate-limit headroom of 0 before any response would
/// read as "exhausted").
pub(super) type OptionalGauge = Family<Vec<(&'static str, &'static str)>, Gauge>;

/// The Prometheus side: registered once, encoded on every scrape.
pub(super) struct Prom {
    registry: Registry,
    runs_watched: Gauge,
    pub runs_retired: Family<ReasonLabel, Counter>,
    pub polls: Counter,
    pub polls_unchanged: Counter,
    pub poll_errors: Counter,
    pub poll_lag: Histogram,
    pub api_requests: Family<ApiLabels, Counter>,
    pub rate_limit_remaining: OptionalGauge,
    pub rate_limit_limit: OptionalGauge,
    pub rate_limit_reserve: Gauge,
    pub allowed_requests_per_minute: Gauge<f64, AtomicU64>,
    pub api_holds: Family<ReasonLabel, Counter>,
    pub spans_exported: Counter,
    pub spans_export_failed: Counter,
    pub spans_rejected: Counter,
    pub log_records_exported: Counter,
    pub log_records_export_failed: Counter,
    pub log_records_rejected: Counter,
    pub export_batch_duration: Histogram,
    pub invalid_events: Family<ReasonLabel, Counter>,
    pending_spans: Gauge,
}

impl Prom {
    fn new() -> Prom {
        let mut registry = Registry::with_prefix(PREFIX);
        let prom = Prom {
            runs_watched: Gauge::default(),
            runs_retired: Family::default(),
            polls: Counter::default(),
            polls_unchanged: Counter::default(),
            poll_errors: Counter::default(),
            poll_lag: Histogram::new(exponential_buckets(0.01, 2.0, 15)),
            api_requests: Family::default(),
            rate_limit_remaining: Family::default(),
            rate_limit_limit: Family::default(),
            rate_limit_reserve: Gauge::default(),
            allowed_requests_per_minute: Gauge::default(),
            api_holds: Family::default(),
            spans_exported: Counter::default(),
            spans_export_failed: Counter::default(),
            spans_rejected: Counter::default(),
            log_records_exported: Counter::default(),
            log_records_export_failed: Counter::default(),
            log_records_rejected: Counter::default(),
            export_batch_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            invalid_events: Family::default(),
            pending_spans: Gauge::default(),
            registry: Registry::default(),
        };
        // Known label values start at 0, so `rate()` and `increase(...) > 0` alerts see the
        // first retirement or invalid element of each kind, and panels show 0, not "no data".
        for reason in ["settled", "max_age", "not_found", "removed"] {
            let _ = prom.runs_retired.get_or_create(&ReasonLabel { reason });
        }
        for reason in crate::convert::InvalidReason::ALL {
            let _ = prom.invalid_events.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        for reason in HOLD_REASONS {
            let _ = prom.api_holds.get_or_create(&ReasonLabel { reason });
        }
        let build_info: Family<VersionLabel, Gauge> = Family::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "The bridge's version (always 1)", build_info);
        registry.register("runs_watched", "Runs being polled now", prom.runs_watched.clone());
        registry.register(
            "runs_retired",
            "Runs no longer watched, by reason (settled, max_age, not_found)",
            prom.runs_retired.clone(),
        );
        registry.register_with_unit(
            "poll_lag",
            "How late the due run was when its poll started",
            Unit::Seconds,
            prom.poll_lag.clone(),
        );
        registry.register(
            "api_requests",
            "Trigger.dev API attempts, by endpoint (events, trace, run, list) and HTTP status (or error)",
            prom.api_requests.clone(),
        );
        registry.register(
            "api_rate_limit_remaining",
            "The lowest x-ratelimit-remaining Trigger.dev reported in its current refill window",
            prom.rate_limit_remaining.clone(),
        );
        registry.register(
            "api_rate_limit_limit",
            "x-ratelimit-limit: the size of Trigger.dev's bucket, shared with the application",
            prom.rate_limit_limit.clone(),
        );
        registry.register(
            "api_rate_limit_reserve",
            "Tokens of Trigger.dev's bucket the bridge leaves to the application (trigger.rate_limit_reserve)",
            prom.rate_limit_reserve.clone(),
        );
        registry.register(
            "api_allowed_requests_per_minute",
            "The pace the bridge allows itself now: the client budget, lowered to spread what is above the reserve and after 429s; 0 while holding",
            prom.allowed_requests_per_minute.clone(),
        );
        registry.register(
            "api_holds",
            "Times every request was held: the remaining budget reached the reserve (reserve), or a 429 (rate_limited)",
            prom.api_holds.clone(),
        );
        // The plain counters: a table, so each is one line of name and help.
        let counters: [(&str, &str, &Counter); 9] = [
            ("polls", "Polls of a run that finished", &prom.polls),
            (
                "polls_unchanged",
                "Polls whose events body was byte-identical to the run's last one, so not parsed again",
                &prom.polls_unchanged,
            ),
            (
                "poll_errors",
                "Polls that failed (after the client's retries)",
                &prom.poll_errors,
            ),
            (
                "spans_exported",
                "Spans the collector accepted and the state store recorded",
                &prom.spans_exported,
            ),
            (
                "spans_export_failed",
                "Spans in export attempts that failed and are retried (collector down, 5xx, timeout)",
                &prom.spans_export_failed,
            ),
            (
                "spans_rejected",
                "Spans the collector refused: as invalid data (isolated and dropped), or in an accepted request's partial_success",
                &prom.spans_rejected,
            ),
            (
                "log_records_exported",
                "Log records (conversion.logs = otlp_logs) the collector accepted and the state store recorded",
                &prom.log_records_exported,
            ),
            (
                "log_records_export_failed",
                "Log records in export attempts that failed and are retried",
                &prom.log_records_export_failed,
            ),
            (
                "log_records_rejected",
                "Log records the collector refused: as invalid data (isolated and dropped), or in an accepted request's partial_success",
                &prom.log_records_rejected,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register_with_unit(
            "export_batch_duration",
            "Time of one export attempt of one batch",
            Unit::Seconds,
            prom.export_batch_duration.clone(),
        );
        registry.register(
            "invalid_events",
            "Trigger.dev elements skipped as invalid, by reason",
            prom.invalid_events.clone(),
        );
        registry.register(
            "pending_spans",
            "Spans and log records converted and waiting for the collector",
            prom.pending_spans.clone(),
        );
        Prom { registry, ..prom }
    }
}

/// The daemon's counters and health, shared by the loop, the export queue, the Trigger.dev client,
/// the sender and the telemetry server. The atomics keep the names `DaemonStats` had (tests and
/// backpressure read them); [`super::events`] update them and the Prometheus metrics together.
pub struct Metrics {
    pub runs_watched: AtomicUsize,
    pub runs_retired: AtomicU64,
    pub polls: AtomicU64,
    pub polls_unchanged: AtomicU64,
    pub poll_errors: AtomicU64,
    pub spans_exported: AtomicU64,
    pub spans_rejected: AtomicU64,
    pub log_records_exported: AtomicU64,
    pub log_records_rejected: AtomicU64,
    pub invalid_elements: AtomicU64,
    /// Spans and log records converted and queued but not yet acknowledged by the collector.
    pub pending_spans: AtomicUsize,
    /// The highest `pending_spans` ever reached.
    pub peak_pending_spans: AtomicUsize,
    pub export_batches: AtomicU64,
    pub export_nanos_total: AtomicU64,
    /// How often the daemon's loop woke (in process only): a loop that spins shows here.
    pub loop_wakeups: AtomicU64,
    /// What `/healthz` and `/readyz` answer from.
    pub health: Health,
    pub(super) prom: Prom,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let load_usize = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        f.debug_struct("Metrics")
            .field("runs_watched", &load_usize(&self.runs_watched))
            .field("runs_retired", &load(&self.runs_retired))
            .field("polls", &load(&self.polls))
            .field("polls_unchanged", &load(&self.polls_unchanged))
            .field("poll_errors", &load(&self.poll_errors))
            .field("spans_exported", &load(&self.spans_exported))
            .field("spans_rejected", &load(&self.spans_rejected))
            .field("log_records_exported", &load(&self.log_records_exported))
            .field("log_records_rejected", &load(&self.log_records_rejected))
            .field("invalid_elements", &load(&self.invalid_elements))
            .field("pending_spans", &load_usize(&self.pending_spans))
            .field("peak_pending_spans", &load_usize(&self.peak_pending_spans))
            .field("export_batches", &load(&self.export_batches))
            .field("loop_wakeups", &load(&self.loop_wakeups))
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            runs_watched: AtomicUsize::new(0),
            runs_retired: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            polls_unchanged: AtomicU64::new(0),
            poll_errors: AtomicU64::new(0),
            spans_exported: AtomicU64::new(0),
            spans_rejected: AtomicU64::new(0),
            log_records_exported: AtomicU64::new(0),
            log_records_rejected: AtomicU64::new(0),
            invalid_elements: AtomicU64::new(0),
            pending_spans: AtomicUsize::new(0),
            peak_pending_spans: AtomicUsize::new(0),
            export_batches: AtomicU64::new(0),
            export_nanos_total: AtomicU64::new(0),
            loop_wakeups: AtomicU64::new(0),
            health: Health::new(),
            prom: Prom::new(),
        }
    }

    pub fn add_pending(&self, spans: usize) {
        let before = self.pending_spans.fetch_add(spans, Ordering::SeqCst);
        if before == 0 && spans > 0 {
            self.health.spans_waiting();
        }
        self.peak_pending_spans.fetch_max(before + spans, Ordering::SeqCst);
    }

    pub fn remove_pending(&self, spans: usize) {
        self.pending_spans.fetch_sub(spans, Ordering::SeqCst);
    }

    pub fn pending(&self) -> usize {
        self.pending_spans.load(Ordering::SeqCst)
    }

    /// `/readyz`: `Err(reason)` while not ready (see [`Health::readiness`]).
    pub fn readiness(&self) -> Result<(), super::TelemetryError> {
        self.health.readiness(std::time::Instant::now(), self.pending())
    }

    fn sync_gauges(&self) {
        let watched = self.runs_watched.load(Ordering::Relaxed);
        self.prom.runs_watched.set(watched as i64);
        self.prom.pending_spans.set(self.pending() as i64);
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn encode_openmetrics(&self) -> String {
        self.sync_gauges();
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.prom.registry);
        text
    }

    /// The Prometheus text exposition, format 0.0.4.
    pub fn encode_prometheus(&self) -> String {
        self.sync_gauges();
        let mut text = String::new();
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.prom.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed_with_the_prefix_and_build_info() {
        let metrics = Metrics::new();
        metrics.prom.rate_limit_remaining.get_or_create(&Vec::new()).set(7);
        let text = metrics.encode_prometheus();
        assert!(
            text.contains("trigger_otel_bridge_build_info{version=\"0.1.0\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("trigger_otel_bridge_api_rate_limit_remaining 7\n"),
            "{text}"
        );
        assert!(
            text.contains("trigger_otel_bridge_runs_retired_total{reason=\"max_age\"} 0\n"),
            "{text}"
        );
        for reason in HOLD_REASONS {
            let line = format!("trigger_otel_bridge_api_holds_total{{reason=\"{reason}\"}} 0\n");
            assert!(text.contains(&line), "{text}");
        }
        for reason in crate::convert::InvalidReason::ALL {
            let line = format!(
                "trigger_otel_bridge_invalid_events_total{{reason=\"{}\"}} 0\n",
                reason.as_str()
            );
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        assert!(
            text.contains("trigger_otel_bridge_runs_retired_total{reason=\"removed\"} 0\n"),
            "{text}"
        );
        // Families without a series yet (api_requests) appear with their first one.
        for name in [
            "runs_watched",
            "runs_retired_total",
            "spans_exported_total",
            "spans_export_failed_total",
            "spans_rejected_total",
            "export_batch_duration_seconds",
            "pending_spans",
            "poll_lag_seconds",
            "api_rate_limit_reserve",
            "api_allowed_requests_per_minute",
        ] {
            assert!(
                text.contains(&format!("# TYPE trigger_otel_bridge_{name} ")),
                "{name} missing:\n{text}"
            );
        }
        let open = metrics.encode_openmetrics();
        assert!(open.ends_with("# EOF\n"), "{open}");
    }

    #[test]
    fn the_rate_limit_gauge_is_absent_until_known() {
        let text = Metrics::new().encode_prometheus();
        assert!(
            !text.contains("trigger_otel_bridge_api_rate_limit_remaining "),
            "{text}"
        );
        assert!(!text.contains("trigger_otel_bridge_api_rate_limit_limit "), "{text}");
    }
}
