//! `Metrics`: the bridge's own counters, each held once, in a prometheus-client registry. The
//! `/metrics` text is that registry; the daemon, the tests and the OTLP push read the same values
//! through the accessors here.

use super::health::Health;
use crate::convert::InvalidReason;
use crate::schedule::watched::RetireReason;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The reasons of `api_holds_total`, all shown from the start (`rate_limit::HoldReason`).
pub(super) const HOLD_REASONS: [&str; 2] = ["reserve", "rate_limited"];

/// The values of `discovery_source{source}` (`discover::source::Active`).
pub(super) const DISCOVERY_SOURCES: [&str; 2] = ["realtime", "list"];

/// The reasons of `discovery_source_switches_total`, all shown from the start: why the list
/// endpoint took over (the stream's `Unavailable` kinds), or `recovered` (back on the stream).
pub(super) const SWITCH_REASONS: [&str; 5] = ["not_served", "refused", "busy", "failing", "recovered"];

/// The `endpoint` label of `api_requests_total`: the calls `TriggerClient` makes.
pub(super) const API_ENDPOINTS: [&str; 4] = ["events", "trace", "run", "list"];

/// The `status` values of `api_requests_total` shown from the start for every endpoint: `200`, so
/// request-rate panels and ratios have a series on a bridge that has not called an endpoint yet,
/// and `error` (no response: DNS, connection, TLS, timeout), the one value the bridge itself
/// defines. HTTP error statuses are whatever Trigger.dev or a proxy answers, so they appear with
/// their first occurrence; the ones worth an alert have families of their own, at 0 from the
/// start: 429s in `api_holds_total{reason="rate_limited"}`, failures after the retries in
/// `poll_errors_total`, a rejected key in `/readyz`.
pub(super) const API_STATUSES_AT_START: [&str; 2] = ["200", "error"];

/// Every metric name starts with this (and `_`).
pub const PREFIX: &str = "trigger_otel_bridge";

/// `Content-Type` of [`Metrics::encode_openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `Content-Type` of [`Metrics::encode_prometheus`].
pub const PROMETHEUS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The bucket bounds of `poll_lag_seconds` (10 ms to about 3 min), shared with the OTLP push.
pub(super) fn poll_lag_buckets() -> Vec<f64> {
    exponential_buckets(0.01, 2.0, 15).collect()
}

/// The bucket bounds of `export_batch_duration_seconds` (5 ms to about 41 s).
pub(super) fn export_batch_buckets() -> Vec<f64> {
    exponential_buckets(0.005, 2.0, 14).collect()
}

/// The help text of each family: `/metrics` shows it, the OTLP push sends it as the description.
pub(super) mod help;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SourceLabel {
    pub source: &'static str,
}

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

/// The `runs_watched` gauge, set by the daemon's loop as runs come and go; the number lives in
/// the Prometheus gauge alone.
pub struct RunsWatched(Gauge);

impl RunsWatched {
    pub fn set(&self, runs: usize) {
        self.0.set(i64::try_from(runs).unwrap_or(i64::MAX));
    }

    pub fn get(&self) -> usize {
        usize::try_from(self.0.get()).unwrap_or(0)
    }
}

/// The Prometheus side: registered once, encoded on every scrape.
pub(super) struct Prom {
    registry: Registry,
    pub runs_retired: Family<ReasonLabel, Counter>,
    pub polls: Counter,
    pub polls_unchanged: Counter,
    pub poll_errors: Counter,
    pub poll_lag: Histogram,
    pub api_requests: Family<ApiLabels, Counter>,
    /// The label sets `api_requests` has (prometheus-client does not list a family's series):
    /// what the OTLP push reports. Labels only, written once per new series; the counts stay in
    /// the family.
    api_series: Mutex<HashSet<ApiLabels>>,
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
    pub pending_spans: Gauge,
    pub discovery_source: Family<SourceLabel, Gauge>,
    pub discovery_source_switches: Family<ReasonLabel, Counter>,
}

impl Prom {
    fn new(runs_watched: &Gauge) -> Prom {
        let mut registry = Registry::with_prefix(PREFIX);
        let prom = Prom {
            runs_retired: Family::default(),
            polls: Counter::default(),
            polls_unchanged: Counter::default(),
            poll_errors: Counter::default(),
            poll_lag: Histogram::new(poll_lag_buckets()),
            api_requests: Family::default(),
            api_series: Mutex::new(HashSet::new()),
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
            export_batch_duration: Histogram::new(export_batch_buckets()),
            invalid_events: Family::default(),
            pending_spans: Gauge::default(),
            discovery_source: Family::default(),
            discovery_source_switches: Family::default(),
            registry: Registry::default(),
        };
        // Known label values start at 0, so `rate()` and `increase(...) > 0` alerts see the
        // first retirement, invalid element, hold or failed request of each kind, and panels
        // show 0, not "no data".
        for reason in RetireReason::ALL {
            let _ = prom.runs_retired.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        for reason in InvalidReason::ALL {
            let _ = prom.invalid_events.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        for reason in HOLD_REASONS {
            let _ = prom.api_holds.get_or_create(&ReasonLabel { reason });
        }
        for source in DISCOVERY_SOURCES {
            let _ = prom.discovery_source.get_or_create(&SourceLabel { source });
        }
        for reason in SWITCH_REASONS {
            let _ = prom.discovery_source_switches.get_or_create(&ReasonLabel { reason });
        }
        for endpoint in API_ENDPOINTS {
            for status in API_STATUSES_AT_START {
                prom.api_series_get_or_create(ApiLabels {
                    endpoint,
                    status: Cow::Borrowed(status),
                });
            }
        }
        let build_info: Family<VersionLabel, Gauge> = Family::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", help::BUILD_INFO, build_info);
        registry.register("runs_watched", help::RUNS_WATCHED, runs_watched.clone());
        registry.register("runs_retired", help::RUNS_RETIRED, prom.runs_retired.clone());
        registry.register_with_unit("poll_lag", help::POLL_LAG, Unit::Seconds, prom.poll_lag.clone());
        registry.register("api_requests", help::API_REQUESTS, prom.api_requests.clone());
        registry.register(
            "api_rate_limit_remaining",
            help::RATE_LIMIT_REMAINING,
            prom.rate_limit_remaining.clone(),
        );
        registry.register(
            "api_rate_limit_limit",
            help::RATE_LIMIT_LIMIT,
            prom.rate_limit_limit.clone(),
        );
        registry.register(
            "api_rate_limit_reserve",
            help::RATE_LIMIT_RESERVE,
            prom.rate_limit_reserve.clone(),
        );
        registry.register(
            "api_allowed_requests_per_minute",
            help::ALLOWED_REQUESTS_PER_MINUTE,
            prom.allowed_requests_per_minute.clone(),
        );
        registry.register("api_holds", help::API_HOLDS, prom.api_holds.clone());
        for (name, help, counter) in prom.plain_counters() {
            registry.register(name, help, counter.clone());
        }
        registry.register_with_unit(
            "export_batch_duration",
            help::EXPORT_BATCH_DURATION,
            Unit::Seconds,
            prom.export_batch_duration.clone(),
        );
        registry.register("invalid_events", help::INVALID_EVENTS, prom.invalid_events.clone());
        registry.register("pending_spans", help::PENDING_SPANS, prom.pending_spans.clone());
        registry.register(
            "discovery_source",
            help::DISCOVERY_SOURCE,
            prom.discovery_source.clone(),
        );
        registry.register(
            "discovery_source_switches",
            help::DISCOVERY_SOURCE_SWITCHES,
            prom.discovery_source_switches.clone(),
        );
        Prom { registry, ..prom }
    }

    /// The counters without labels, by name (without the prefix and the `_total` Prometheus
    /// adds) and help: registered here, observed by the OTLP push.
    pub(super) fn plain_counters(&self) -> [(&'static str, &'static str, &Counter); 9] {
        [
            ("polls", help::POLLS, &self.polls),
            ("polls_unchanged", help::POLLS_UNCHANGED, &self.polls_unchanged),
            ("poll_errors", help::POLL_ERRORS, &self.poll_errors),
            ("spans_exported", help::SPANS_EXPORTED, &self.spans_exported),
            (
                "spans_export_failed",
                help::SPANS_EXPORT_FAILED,
                &self.spans_export_failed,
            ),
            ("spans_rejected", help::SPANS_REJECTED, &self.spans_rejected),
            (
                "log_records_exported",
                help::LOG_RECORDS_EXPORTED,
                &self.log_records_exported,
            ),
            (
                "log_records_export_failed",
                help::LOG_RECORDS_EXPORT_FAILED,
                &self.log_records_export_failed,
            ),
            (
                "log_records_rejected",
                help::LOG_RECORDS_REJECTED,
                &self.log_records_rejected,
            ),
        ]
    }

    /// The `api_requests_total` series of `labels`, noted in `api_series` when it is new.
    pub(super) fn api_series_get_or_create(&self, labels: ApiLabels) -> Counter {
        if self.api_requests.get(&labels).is_none() {
            self.api_series
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(labels.clone());
        }
        self.api_requests.get_or_create_owned(&labels)
    }

    /// Every `api_requests_total` series with its count.
    pub(super) fn api_requests_by_series(&self) -> Vec<(ApiLabels, u64)> {
        let series: Vec<ApiLabels> = self
            .api_series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        series
            .into_iter()
            .filter_map(|labels| {
                let count = self.api_requests.get(&labels)?.get();
                Some((labels, count))
            })
            .collect()
    }

    /// The count of a family's series by reason (0 for a reason it does not have).
    pub(super) fn by_reason(family: &Family<ReasonLabel, Counter>, reason: &'static str) -> u64 {
        family.get(&ReasonLabel { reason }).map_or(0, |counter| counter.get())
    }

    pub(super) fn source_active(&self, source: &'static str) -> i64 {
        self.discovery_source
            .get(&SourceLabel { source })
            .map_or(0, |gauge| gauge.get())
    }
}

/// The daemon's counters and health, shared by the loop, the export queue, the Trigger.dev client,
/// the sender, the telemetry server and the OTLP push. [`super::events`] count into the registry;
/// everyone reads it through the accessors (`polls()`, `spans_exported()` …).
pub struct Metrics {
    pub runs_watched: RunsWatched,
    /// The highest `pending()` ever reached (in process only: benchmarks and tests check the
    /// bound with it; in Prometheus it is `max_over_time` of `pending_spans`).
    pub peak_pending_spans: AtomicUsize,
    /// How often the daemon's loop woke (in process only: a test's check that the loop does not
    /// spin; its normal rate changes with every change of the loop, so it is nothing to alert on).
    pub loop_wakeups: AtomicU64,
    /// What `/healthz` and `/readyz` answer from.
    pub health: Health,
    pub(super) prom: Prom,
    /// The histograms of the OTLP push, once it started ([`super::otlp`]).
    pub(super) otlp_histograms: OnceLock<super::otlp::Histograms>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("runs_watched", &self.runs_watched.get())
            .field("runs_retired", &self.runs_retired())
            .field("polls", &self.polls())
            .field("polls_unchanged", &self.polls_unchanged())
            .field("poll_errors", &self.poll_errors())
            .field("spans_exported", &self.spans_exported())
            .field("spans_rejected", &self.spans_rejected())
            .field("log_records_exported", &self.log_records_exported())
            .field("log_records_rejected", &self.log_records_rejected())
            .field("invalid_elements", &self.invalid_elements())
            .field("pending_spans", &self.pending())
            .field("peak_pending_spans", &self.peak_pending_spans.load(Ordering::Relaxed))
            .field("loop_wakeups", &self.loop_wakeups.load(Ordering::Relaxed))
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let runs_watched = Gauge::default();
        let prom = Prom::new(&runs_watched);
        Metrics {
            runs_watched: RunsWatched(runs_watched),
            peak_pending_spans: AtomicUsize::new(0),
            loop_wakeups: AtomicU64::new(0),
            health: Health::new(),
            prom,
            otlp_histograms: OnceLock::new(),
        }
    }

    /// `runs_retired_total`, all reasons.
    pub fn runs_retired(&self) -> u64 {
        RetireReason::ALL
            .into_iter()
            .map(|reason| Prom::by_reason(&self.prom.runs_retired, reason.as_str()))
            .sum()
    }

    /// `runs_retired_total{reason}`.
    pub fn runs_retired_for(&self, reason: RetireReason) -> u64 {
        Prom::by_reason(&self.prom.runs_retired, reason.as_str())
    }

    /// `polls_total`.
    pub fn polls(&self) -> u64 {
        self.prom.polls.get()
    }

    /// `polls_unchanged_total`.
    pub fn polls_unchanged(&self) -> u64 {
        self.prom.polls_unchanged.get()
    }

    /// `poll_errors_total`.
    pub fn poll_errors(&self) -> u64 {
        self.prom.poll_errors.get()
    }

    /// `spans_exported_total`.
    pub fn spans_exported(&self) -> u64 {
        self.prom.spans_exported.get()
    }

    /// `spans_rejected_total`.
    pub fn spans_rejected(&self) -> u64 {
        self.prom.spans_rejected.get()
    }

    /// `log_records_exported_total`.
    pub fn log_records_exported(&self) -> u64 {
        self.prom.log_records_exported.get()
    }

    /// `log_records_rejected_total`.
    pub fn log_records_rejected(&self) -> u64 {
        self.prom.log_records_rejected.get()
    }

    /// `invalid_events_total`, all reasons.
    pub fn invalid_elements(&self) -> u64 {
        InvalidReason::ALL
            .into_iter()
            .map(|reason| Prom::by_reason(&self.prom.invalid_events, reason.as_str()))
            .sum()
    }

    pub fn add_pending(&self, spans: usize) {
        let spans = i64::try_from(spans).unwrap_or(i64::MAX);
        let before = self.prom.pending_spans.inc_by(spans);
        if before == 0 && spans > 0 {
            self.health.spans_waiting();
        }
        let now = usize::try_from(before.saturating_add(spans)).unwrap_or(0);
        self.peak_pending_spans.fetch_max(now, Ordering::Relaxed);
    }

    pub fn remove_pending(&self, spans: usize) {
        self.prom.pending_spans.dec_by(i64::try_from(spans).unwrap_or(i64::MAX));
    }

    /// `pending_spans`: spans and log records converted and queued but not yet acknowledged by
    /// the collector.
    pub fn pending(&self) -> usize {
        usize::try_from(self.prom.pending_spans.get()).unwrap_or(0)
    }

    /// `/readyz`: `Err(reason)` while not ready (see [`Health::readiness`]).
    pub fn readiness(&self) -> Result<(), super::TelemetryError> {
        self.health.readiness(std::time::Instant::now(), self.pending())
    }

    /// `poll_lag_seconds` (and its OTLP twin when the push runs: the SDK has no asynchronous
    /// histogram to read this one from).
    pub(super) fn observe_poll_lag(&self, lag: Duration) {
        self.prom.poll_lag.observe(lag.as_secs_f64());
        if let Some(otlp) = self.otlp_histograms.get() {
            otlp.poll_lag.record(lag.as_secs_f64(), &[]);
        }
    }

    /// `export_batch_duration_seconds` (and its OTLP twin when the push runs).
    pub(super) fn observe_export_batch(&self, duration: Duration) {
        self.prom.export_batch_duration.observe(duration.as_secs_f64());
        if let Some(otlp) = self.otlp_histograms.get() {
            otlp.export_batch_duration.record(duration.as_secs_f64(), &[]);
        }
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn encode_openmetrics(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.prom.registry);
        text
    }

    /// The Prometheus text exposition, format 0.0.4.
    pub fn encode_prometheus(&self) -> String {
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
        for reason in RetireReason::ALL {
            let line = format!(
                "trigger_otel_bridge_runs_retired_total{{reason=\"{}\"}} 0\n",
                reason.as_str()
            );
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        for endpoint in API_ENDPOINTS {
            for status in API_STATUSES_AT_START {
                let line = format!(
                    "trigger_otel_bridge_api_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} 0\n"
                );
                assert!(text.contains(&line), "{line} missing:\n{text}");
            }
        }
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
            "polls_total",
            "polls_unchanged_total",
            "poll_errors_total",
            "log_records_exported_total",
            "log_records_export_failed_total",
            "log_records_rejected_total",
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
    fn the_accessors_read_the_registry() {
        let metrics = Metrics::new();
        metrics.prom.polls.inc_by(3);
        metrics.prom.spans_exported.inc_by(7);
        metrics
            .prom
            .runs_retired
            .get_or_create(&ReasonLabel { reason: "settled" })
            .inc_by(2);
        metrics
            .prom
            .runs_retired
            .get_or_create(&ReasonLabel { reason: "removed" })
            .inc();
        metrics.runs_watched.set(4);
        metrics.add_pending(5);
        metrics.add_pending(2);
        metrics.remove_pending(6);
        assert_eq!(metrics.polls(), 3);
        assert_eq!(metrics.spans_exported(), 7);
        assert_eq!(metrics.runs_retired(), 3);
        assert_eq!(metrics.runs_retired_for(RetireReason::Settled), 2);
        assert_eq!((metrics.runs_watched.get(), metrics.pending()), (4, 1));
        assert_eq!(metrics.peak_pending_spans.load(Ordering::Relaxed), 7);
        let text = metrics.encode_prometheus();
        for line in [
            "trigger_otel_bridge_polls_total 3",
            "trigger_otel_bridge_runs_watched 4",
            "trigger_otel_bridge_pending_spans 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn api_series_are_listed_once_with_their_counts() {
        let metrics = Metrics::new();
        let labels = |status: &'static str| ApiLabels {
            endpoint: "events",
            status: Cow::Borrowed(status),
        };
        metrics.prom.api_series_get_or_create(labels("200")).inc();
        metrics.prom.api_series_get_or_create(labels("503")).inc();
        metrics.prom.api_series_get_or_create(labels("503")).inc();
        let mut series = metrics.prom.api_requests_by_series();
        series.sort_by(|a, b| (a.0.endpoint, &a.0.status).cmp(&(b.0.endpoint, &b.0.status)));
        assert_eq!(series.len(), API_ENDPOINTS.len() * API_STATUSES_AT_START.len() + 1);
        assert!(series.contains(&(labels("200"), 1)), "{series:?}");
        assert!(series.contains(&(labels("503"), 2)), "{series:?}");
        assert!(series.contains(&(labels("error"), 0)), "{series:?}");
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
