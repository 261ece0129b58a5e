//! Internal events (Vector's pattern): each observable occurrence is a struct whose `emit()` logs it and counts it with the same labels.

use super::metrics::{ApiLabels, Metrics, ReasonLabel};
use std::borrow::Cow;
use std::fmt::Display;
use std::time::Duration;

/// A run stops being watched, with what this process sent of it.
pub struct RunRetired<'a> {
    pub run_id: &'a str,
    /// `settled`, `max_age`, `not_found` or `removed` (`RetireReason::as_str`).
    pub reason: &'static str,
    /// Spans and log records sent since this process began watching the run.
    pub spans: u64,
    pub log_records: u64,
    /// Elements skipped as invalid (in the run's last events body).
    pub invalid_elements: u64,
    /// Span ids committed for the run in all, across restarts (what is never sent again).
    pub span_ids_committed: usize,
}

impl RunRetired<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        // A run given up on (not its normal end) says how to undo it; `removed` is undone by
        // naming the run in `runs.ids` again.
        let undo = matches!(self.reason, "not_found" | "max_age")
            .then(|| format!("trigger-otel-bridge state reopen {}", self.run_id));
        tracing::info!(
            run_id = %self.run_id,
            reason = self.reason,
            spans = self.spans,
            log_records = self.log_records,
            invalid_elements = self.invalid_elements,
            span_ids_committed = self.span_ids_committed,
            undo = undo.as_deref(),
            "run retired"
        );
        metrics
            .prom
            .runs_retired
            .get_or_create(&ReasonLabel { reason: self.reason })
            .inc();
    }
}

/// The source discovering runs is now `source` (`realtime` or `list`): at start (`reason`
/// `start`, not counted as a switch), or switched for `reason` (the stream's unavailability:
/// `not_served`, `refused`, `busy`, `failing`; or `recovered`), with the stream's own words.
pub struct DiscoverySourceInUse<'a> {
    pub source: &'static str,
    pub reason: &'static str,
    pub detail: &'a str,
}

impl DiscoverySourceInUse<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        match (self.reason, self.source) {
            ("start", _) => tracing::info!(source = self.source, "discovering runs"),
            (_, "list") => tracing::warn!(
                source = self.source,
                reason = self.reason,
                detail = self.detail,
                "the realtime stream is unavailable; the list endpoint discovers runs until it is back"
            ),
            _ => tracing::info!(
                source = self.source,
                reason = self.reason,
                "the realtime stream is back; the list endpoint stops"
            ),
        }
        for source in super::metrics::DISCOVERY_SOURCES {
            metrics
                .prom
                .discovery_source
                .get_or_create(&super::metrics::SourceLabel { source })
                .set(i64::from(source == self.source));
        }
        if self.reason != "start" {
            metrics
                .prom
                .discovery_source_switches
                .get_or_create(&ReasonLabel { reason: self.reason })
                .inc();
        }
    }
}

/// A poll starts, `lag` after the run was due.
pub struct PollStarted<'a> {
    pub run_id: &'a str,
    pub lag: Duration,
}

impl PollStarted<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        tracing::trace!(
            run_id = %self.run_id,
            lag_ms = self.lag.as_millis() as u64,
            "polling run"
        );
        metrics.observe_poll_lag(self.lag);
    }
}

/// A poll came back (successful or not).
pub struct PollFinished<'a> {
    pub run_id: &'a str,
    pub spans: usize,
}

impl PollFinished<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        tracing::debug!(run_id = %self.run_id, new_spans = self.spans, "polled run");
        metrics.prom.polls.inc();
    }
}

/// A poll's events body was byte-identical to the last one, so it was not parsed again.
pub struct BodyUnchanged<'a> {
    pub run_id: &'a str,
}

impl BodyUnchanged<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        tracing::trace!(run_id = %self.run_id, "events body unchanged; not parsed");
        metrics.prom.polls_unchanged.inc();
    }
}

/// A poll failed after the client's retries; the run is polled again later.
pub struct PollFailed<'a, E: Display> {
    pub run_id: &'a str,
    pub error: &'a E,
    /// `None`: not retried, the run is past `runs.max_age` and retired.
    pub retry_in: Option<Duration>,
}

impl<E: Display> PollFailed<'_, E> {
    pub fn emit(&self, metrics: &Metrics) {
        match self.retry_in {
            Some(retry_in) => tracing::warn!(
                run_id = %self.run_id,
                error = %self.error,
                retry_in = %crate::wording::human_duration(retry_in),
                "poll failed"
            ),
            None => tracing::warn!(
                run_id = %self.run_id,
                error = %self.error,
                "poll failed and the run is past runs.max_age: retiring it without its final export"
            ),
        }
        metrics.prom.poll_errors.inc();
    }
}

/// The API does not know the run (404 after its retries): it is retired.
pub struct RunNotFound<'a> {
    pub run_id: &'a str,
    pub endpoint: &'a str,
}

impl RunNotFound<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        tracing::warn!(
            run_id = %self.run_id,
            endpoint = self.endpoint,
            "run not found (404 for runs.not_found_after while other calls succeeded); retiring it"
        );
        metrics.prom.poll_errors.inc();
    }
}

/// Elements of a run skipped as invalid: `count` not counted before, of `total` in the response.
pub struct InvalidElements<'a> {
    pub run_id: &'a str,
    pub reason: &'static str,
    pub count: u64,
    pub total: u64,
    /// A description of the first one.
    pub first: &'a str,
}

impl InvalidElements<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        tracing::warn!(
            run_id = %self.run_id,
            reason = self.reason,
            count = self.count,
            total = self.total,
            first = self.first,
            "invalid elements in run"
        );
        metrics
            .prom
            .invalid_events
            .get_or_create(&ReasonLabel { reason: self.reason })
            .inc_by(self.count);
    }
}

/// What an export carries: spans, or log records (`conversion.logs = "otlp_logs"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Logs,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }
}

/// A batch the collector acknowledged was committed to the state store.
pub struct SpansExported {
    pub spans: u64,
    pub log_records: u64,
    /// Sending it, retries included.
    pub duration: Duration,
}

impl SpansExported {
    pub fn emit(&self, metrics: &Metrics) {
        tracing::debug!(
            spans = self.spans,
            log_records = self.log_records,
            duration_ms = self.duration.as_millis() as u64,
            "batch exported and committed"
        );
        metrics.prom.spans_exported.inc_by(self.spans);
        metrics.prom.log_records_exported.inc_by(self.log_records);
    }
}

/// One export attempt the collector accepted (possibly reporting partial rejections).
pub struct ExportBatchSent {
    pub duration: Duration,
}

impl ExportBatchSent {
    /// Counts only: the sender logs what is worth logging about an accepted batch.
    pub fn emit(&self, metrics: Option<&Metrics>) {
        let Some(metrics) = metrics else { return };
        metrics.observe_export_batch(self.duration);
        metrics.health.export_progressed();
    }
}

/// One export attempt failed and will be retried (collector down, 5xx, 429, timeout).
pub struct ExportBatchFailed<'a> {
    pub signal: Signal,
    /// Spans or log records in the batch.
    pub records: usize,
    pub attempt: u32,
    pub retry_in: Duration,
    pub reason: &'a str,
    pub duration: Duration,
}

impl ExportBatchFailed<'_> {
    pub fn emit(&self, metrics: Option<&Metrics>) {
        tracing::warn!(
            signal = self.signal.as_str(),
            reason = self.reason,
            attempt = self.attempt,
            retry_in = %crate::wording::human_duration(self.retry_in),
            batch_size = self.records,
            "export failed; retrying"
        );
        let Some(metrics) = metrics else { return };
        metrics.health.export_failed(self.reason);
        metrics.observe_export_batch(self.duration);
        let failed = match self.signal {
            Signal::Traces => &metrics.prom.spans_export_failed,
            Signal::Logs => &metrics.prom.log_records_export_failed,
        };
        failed.inc_by(self.records as u64);
    }
}

/// The collector refused one span or log record as invalid data: it is dropped (and committed
/// as handled).
pub struct RecordRejected<'a> {
    pub signal: Signal,
    pub run_id: Option<&'a str>,
    pub span_id: &'a dyn Display,
    /// The span's name, or the log record's body.
    pub name: &'a str,
    pub reason: &'a str,
}

impl RecordRejected<'_> {
    pub fn emit(&self, metrics: Option<&Metrics>) {
        let (run_id, reason, span_id, name) = (self.run_id.unwrap_or("-"), self.reason, self.span_id, self.name);
        match self.signal {
            Signal::Traces => tracing::error!(
                run_id = %run_id,
                reason,
                %span_id,
                span_name = name,
                "the collector rejected this span; it is dropped"
            ),
            Signal::Logs => tracing::error!(
                run_id = %run_id,
                reason,
                %span_id,
                body = name,
                "the collector rejected this log record; it is dropped"
            ),
        }
        let Some(metrics) = metrics else { return };
        let rejected = match self.signal {
            Signal::Traces => &metrics.prom.spans_rejected,
            Signal::Logs => &metrics.prom.log_records_rejected,
        };
        rejected.inc();
        metrics.health.export_progressed();
    }
}

/// The collector accepted a request but reported, in its `partial_success`, records it rejected
/// (dropped on its side; the request is not sent again), or with nothing rejected a warning.
/// Counted with the records rejected as invalid data, over gRPC and OTLP/HTTP alike.
pub struct PartialSuccess<'a> {
    pub signal: Signal,
    pub rejected: u64,
    /// The collector's `error_message`.
    pub message: &'a str,
    pub batch_size: usize,
}

impl PartialSuccess<'_> {
    pub fn emit(&self, metrics: Option<&Metrics>) {
        let (signal, rejected, message, batch_size) =
            (self.signal.as_str(), self.rejected, self.message, self.batch_size);
        if rejected > 0 {
            tracing::error!(
                signal,
                rejected,
                collector_message = message,
                batch_size,
                "the collector accepted the batch but rejected some of it"
            );
        } else {
            tracing::warn!(
                signal,
                collector_message = message,
                batch_size,
                "the collector accepted the batch with a warning"
            );
        }
        let Some(metrics) = metrics else { return };
        let counter = match self.signal {
            Signal::Traces => &metrics.prom.spans_rejected,
            Signal::Logs => &metrics.prom.log_records_rejected,
        };
        counter.inc_by(rejected);
    }
}

/// One Trigger.dev API attempt ended: with an HTTP status, or without a response (`None`).
pub struct ApiResponse {
    /// `events`, `trace`, `run` or `list`.
    pub endpoint: &'static str,
    pub status: Option<u16>,
}

impl ApiResponse {
    /// Counts only: the client logs every response (debug) and every retry (warn) itself.
    pub fn emit(&self, metrics: &Metrics) {
        let status = match self.status {
            Some(status) => Cow::Owned(status.to_string()),
            None => Cow::Borrowed("error"),
        };
        metrics
            .prom
            .api_series_get_or_create(ApiLabels {
                endpoint: self.endpoint,
                status,
            })
            .inc();
        if let Some(status) = self.status {
            metrics.health.api_status(status);
        }
    }
}

/// The rate limiter's view of Trigger.dev's bucket after a response, a hold or a 429.
pub struct ApiBudget {
    /// `x-ratelimit-limit`, once a response said it.
    pub limit: Option<u64>,
    /// Tokens left to the application (`trigger.rate_limit_reserve` of the limit).
    pub reserve: u64,
    /// The lowest `x-ratelimit-remaining` seen in the current refill window.
    pub remaining: Option<u64>,
    /// The pace the bridge allows itself now; 0 while holding.
    pub allowed_per_minute: f64,
}

impl ApiBudget {
    pub fn emit(&self, metrics: &Metrics) {
        let prom = &metrics.prom;
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        // Absent until known: a limit or remaining count of 0 would read as "exhausted".
        if let Some(limit) = self.limit {
            prom.rate_limit_limit.get_or_create(&Vec::new()).set(gauge(limit));
        }
        if let Some(remaining) = self.remaining {
            prom.rate_limit_remaining
                .get_or_create(&Vec::new())
                .set(gauge(remaining));
        }
        prom.rate_limit_reserve.set(gauge(self.reserve));
        prom.allowed_requests_per_minute.set(self.allowed_per_minute);
    }
}

/// Requests held: at the reserve (once per hold begun) or by a 429 (once per 429).
pub struct ApiHold {
    /// `reserve` or `rate_limited`.
    pub reason: &'static str,
}

impl ApiHold {
    /// Counts only: a 429 is logged with its retry, and a hold at the reserve is the normal
    /// pacing at a busy time, not worth a line each.
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .prom
            .api_holds
            .get_or_create(&ReasonLabel { reason: self.reason })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_count_with_their_labels() {
        let metrics = Metrics::new();
        RunRetired {
            run_id: "run_a",
            reason: "settled",
            spans: 3,
            log_records: 0,
            invalid_elements: 1,
            span_ids_committed: 4,
        }
        .emit(&metrics);
        ApiResponse {
            endpoint: "events",
            status: Some(200),
        }
        .emit(&metrics);
        ApiBudget {
            limit: Some(1500),
            reserve: 495,
            remaining: Some(1499),
            allowed_per_minute: 72.5,
        }
        .emit(&metrics);
        ApiResponse {
            endpoint: "list",
            status: None,
        }
        .emit(&metrics);
        ApiHold { reason: "reserve" }.emit(&metrics);
        InvalidElements {
            run_id: "run_a",
            reason: "start_time",
            count: 3,
            total: 3,
            first: "x",
        }
        .emit(&metrics);
        ExportBatchFailed {
            signal: Signal::Traces,
            records: 4,
            attempt: 1,
            retry_in: Duration::ZERO,
            reason: "down",
            duration: Duration::from_millis(3),
        }
        .emit(Some(&metrics));
        ExportBatchFailed {
            signal: Signal::Logs,
            records: 2,
            attempt: 1,
            retry_in: Duration::ZERO,
            reason: "down",
            duration: Duration::from_millis(3),
        }
        .emit(Some(&metrics));
        RecordRejected {
            signal: Signal::Logs,
            run_id: Some("run_a"),
            span_id: &"00000000000000b1",
            name: "hello",
            reason: "too big",
        }
        .emit(Some(&metrics));
        SpansExported {
            spans: 5,
            log_records: 3,
            duration: Duration::from_millis(1),
        }
        .emit(&metrics);
        let text = metrics.encode_prometheus();
        for line in [
            "trigger_otel_bridge_runs_retired_total{reason=\"settled\"} 1",
            "trigger_otel_bridge_api_requests_total{endpoint=\"events\",status=\"200\"} 1",
            "trigger_otel_bridge_api_requests_total{endpoint=\"list\",status=\"error\"} 1",
            "trigger_otel_bridge_api_rate_limit_remaining 1499",
            "trigger_otel_bridge_api_rate_limit_limit 1500",
            "trigger_otel_bridge_api_rate_limit_reserve 495",
            "trigger_otel_bridge_api_allowed_requests_per_minute 72.5",
            "trigger_otel_bridge_api_holds_total{reason=\"reserve\"} 1",
            "trigger_otel_bridge_api_holds_total{reason=\"rate_limited\"} 0",
            "trigger_otel_bridge_invalid_events_total{reason=\"start_time\"} 3",
            "trigger_otel_bridge_spans_export_failed_total 4",
            "trigger_otel_bridge_log_records_export_failed_total 2",
            "trigger_otel_bridge_log_records_rejected_total 1",
            "trigger_otel_bridge_spans_rejected_total 0",
            "trigger_otel_bridge_spans_exported_total 5",
            "trigger_otel_bridge_log_records_exported_total 3",
            "trigger_otel_bridge_export_batch_duration_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert_eq!(metrics.runs_retired(), 1);
        assert_eq!(metrics.invalid_elements(), 3);
        assert_eq!(metrics.log_records_rejected(), 1);
    }
}
