//! One OpenTelemetry instrument per `/metrics` family, with the same name and labels.
//!
//! Names: `trigger_otel_bridge_<family>`, without the suffixes the Prometheus text adds. A
//! Prometheus exporter (the collector's `prometheus` or `prometheusremotewrite` exporter, or
//! Prometheus's own OTLP receiver) adds them back as the OpenTelemetry-to-Prometheus
//! compatibility rules say: `_total` to a monotonic sum (our counters), and the unit's suffix
//! to a metric with a unit (`s` → `_seconds`, the two histograms). So
//! `trigger_otel_bridge_spans_exported` arrives as `trigger_otel_bridge_spans_exported_total`,
//! and `trigger_otel_bridge_poll_lag` (unit `s`) as `trigger_otel_bridge_poll_lag_seconds`:
//! dashboards and alerts written for `/metrics` work on either.
//!
//! Counters and gauges are asynchronous instruments whose callbacks read the registry's values
//! at each push. The SDK has no asynchronous histogram, so the two histograms are recorded by the
//! same call that feeds `/metrics`'s (`Metrics::observe_poll_lag`, `observe_export_batch`), with
//! the same bucket bounds.

use super::super::metrics::{
    export_batch_buckets, help, poll_lag_buckets, Prom, API_ENDPOINTS, DISCOVERY_SOURCES, HOLD_REASONS, PREFIX,
    SWITCH_REASONS,
};
use super::super::Metrics;
use crate::convert::InvalidReason;
use crate::schedule::watched::RetireReason;
use opentelemetry::metrics::{AsyncInstrument, Histogram, Meter};
use opentelemetry::KeyValue;
use std::sync::Arc;

/// The synchronous side of the push: recorded with `/metrics`'s histograms.
pub(in crate::telemetry) struct Histograms {
    pub poll_lag: Histogram<f64>,
    pub export_batch_duration: Histogram<f64>,
}

/// A gauge's value now; `None` while it is absent from `/metrics`.
type ReadGauge = fn(&Metrics) -> Option<i64>;

fn name(family: &str) -> String {
    format!("{PREFIX}_{family}")
}

/// Registers every instrument on `meter`, reading `metrics`; returns the histograms to record.
pub(super) fn register(meter: &Meter, metrics: &Arc<Metrics>) -> Histograms {
    let version = KeyValue::new("version", env!("CARGO_PKG_VERSION"));
    meter
        .i64_observable_gauge(name("build_info"))
        .with_description(help::BUILD_INFO)
        .with_callback(move |o| o.observe(1, std::slice::from_ref(&version)))
        .build();

    let gauges: [(&str, &str, ReadGauge); 5] = [
        ("runs_watched", help::RUNS_WATCHED, |m| {
            Some(i64::try_from(m.runs_watched.get()).unwrap_or(i64::MAX))
        }),
        ("pending_spans", help::PENDING_SPANS, |m| {
            Some(i64::try_from(m.pending()).unwrap_or(i64::MAX))
        }),
        // Absent until a response said them, as on `/metrics`.
        ("api_rate_limit_remaining", help::RATE_LIMIT_REMAINING, |m| {
            m.prom.rate_limit_remaining.get(&Vec::new()).map(|g| g.get())
        }),
        ("api_rate_limit_limit", help::RATE_LIMIT_LIMIT, |m| {
            m.prom.rate_limit_limit.get(&Vec::new()).map(|g| g.get())
        }),
        ("api_rate_limit_reserve", help::RATE_LIMIT_RESERVE, |m| {
            Some(m.prom.rate_limit_reserve.get())
        }),
    ];
    for (family, description, read) in gauges {
        let metrics = metrics.clone();
        meter
            .i64_observable_gauge(name(family))
            .with_description(description)
            .with_callback(move |o| {
                if let Some(value) = read(&metrics) {
                    o.observe(value, &[]);
                }
            })
            .build();
    }
    let read = metrics.clone();
    meter
        .f64_observable_gauge(name("api_allowed_requests_per_minute"))
        .with_description(help::ALLOWED_REQUESTS_PER_MINUTE)
        .with_callback(move |o| o.observe(read.prom.allowed_requests_per_minute.get(), &[]))
        .build();

    // Clones of a prometheus-client counter or family share its values.
    for (family, description, counter) in metrics.prom.plain_counters() {
        let counter = counter.clone();
        meter
            .u64_observable_counter(name(family))
            .with_description(description)
            .with_callback(move |o| o.observe(counter.get(), &[]))
            .build();
    }

    let invalid_reasons: Vec<&'static str> = InvalidReason::ALL.iter().map(|r| r.as_str()).collect();
    let by_reason = [
        (
            "runs_retired",
            help::RUNS_RETIRED,
            metrics.prom.runs_retired.clone(),
            RetireReason::ALL.map(RetireReason::as_str).to_vec(),
        ),
        (
            "invalid_events",
            help::INVALID_EVENTS,
            metrics.prom.invalid_events.clone(),
            invalid_reasons,
        ),
        (
            "api_holds",
            help::API_HOLDS,
            metrics.prom.api_holds.clone(),
            HOLD_REASONS.to_vec(),
        ),
        (
            "discovery_source_switches",
            help::DISCOVERY_SOURCE_SWITCHES,
            metrics.prom.discovery_source_switches.clone(),
            SWITCH_REASONS.to_vec(),
        ),
    ];
    for (family, description, counters, reasons) in by_reason {
        meter
            .u64_observable_counter(name(family))
            .with_description(description)
            .with_callback(move |o| {
                for &reason in &reasons {
                    o.observe(Prom::by_reason(&counters, reason), &[KeyValue::new("reason", reason)]);
                }
            })
            .build();
    }

    let read = metrics.clone();
    meter
        .i64_observable_gauge(name("discovery_source"))
        .with_description(help::DISCOVERY_SOURCE)
        .with_callback(move |o| {
            for source in DISCOVERY_SOURCES {
                o.observe(read.prom.source_active(source), &[KeyValue::new("source", source)]);
            }
        })
        .build();

    let read = metrics.clone();
    meter
        .u64_observable_counter(name("api_requests"))
        .with_description(help::API_REQUESTS)
        .with_callback(move |o| observe_api_requests(&read, o))
        .build();

    Histograms {
        poll_lag: meter
            .f64_histogram(name("poll_lag"))
            .with_description(help::POLL_LAG)
            .with_unit("s")
            .with_boundaries(poll_lag_buckets())
            .build(),
        export_batch_duration: meter
            .f64_histogram(name("export_batch_duration"))
            .with_description(help::EXPORT_BATCH_DURATION)
            .with_unit("s")
            .with_boundaries(export_batch_buckets())
            .build(),
    }
}

fn observe_api_requests(metrics: &Metrics, o: &dyn AsyncInstrument<u64>) {
    for (labels, count) in metrics.prom.api_requests_by_series() {
        debug_assert!(API_ENDPOINTS.contains(&labels.endpoint), "{labels:?}");
        let attributes = [
            KeyValue::new("endpoint", labels.endpoint),
            KeyValue::new("status", labels.status.into_owned()),
        ];
        o.observe(count, &attributes);
    }
}
