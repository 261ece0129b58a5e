//! The sender: spans and log records → batches of at most `max_batch_spans` per resource and
//! signal → delivered, retried or split, following `policy`. It decides when a record counts as
//! delivered. One loop serves both signals ([`Payload`]).
//!
//! Each batch's OTLP request is built and encoded once, before its first attempt: retries
//! resend the same bytes, and only a split encodes again (each half).

use super::policy::{BackoffPolicy, Disposition, SHRINK_AFTER};
use super::transport::{OtlpRequest, Transport};
use super::{ExportError, GaveUp};
use crate::convert::otlp::{encode_export_request, export_logs_request, export_request, ResourceSettings};
use crate::convert::proto;
use crate::convert::{BridgeLog, BridgeSpan, Record};
use crate::telemetry::events::{ExportBatchFailed, ExportBatchSent, PartialSuccess, RecordRejected, Signal};
use crate::telemetry::Metrics;
use opentelemetry::trace::SpanId;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SenderOptions {
    /// The most spans, or log records, in one request.
    pub max_batch_spans: usize,
    pub backoff: BackoffPolicy,
    /// `None` (the daemon): retry retryable failures forever, never drop. `Some` (one-shot
    /// commands): fail once a batch has not been accepted this long after its first attempt.
    /// The last retry is made at that moment, however the backoff falls; giving up waits only
    /// for an attempt then in flight (at most `export.timeout`).
    pub give_up_after: Option<Duration>,
}

/// What became of the records handed to [`OtlpSender::send`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// Source span ids now acknowledged by the collector (what the state store commits).
    pub delivered: Vec<SpanId>,
    pub delivered_spans: u64,
    pub delivered_logs: u64,
    /// Single spans the collector refused as data (400/413/InvalidArgument): dropped, counted.
    pub rejected_spans: u64,
    pub rejected_logs: u64,
    /// Spans a collector reported in `partial_success.rejected_spans` of an accepted batch.
    pub collector_rejected_spans: u64,
    /// Log records a collector reported in `partial_success.rejected_log_records`.
    pub collector_rejected_logs: u64,
    pub retries: u64,
    pub batches: u64,
}

impl SendReport {
    /// The counters of one signal.
    fn tally(&mut self, signal: Signal) -> Tally<'_> {
        match signal {
            Signal::Traces => Tally {
                delivered: &mut self.delivered_spans,
                rejected: &mut self.rejected_spans,
                collector_rejected: &mut self.collector_rejected_spans,
            },
            Signal::Logs => Tally {
                delivered: &mut self.delivered_logs,
                rejected: &mut self.rejected_logs,
                collector_rejected: &mut self.collector_rejected_logs,
            },
        }
    }
}

struct Tally<'a> {
    delivered: &'a mut u64,
    rejected: &'a mut u64,
    collector_rejected: &'a mut u64,
}

/// What the sender's loop needs of a span or a log record.
pub trait Payload: Sized + Send + Sync {
    const SIGNAL: Signal = <Self::Request as OtlpRequest>::SIGNAL;
    /// The OTLP request that carries this kind of record.
    type Request: OtlpRequest;
    fn task_slug(&self) -> Option<&str>;
    fn covers(&self) -> &[SpanId];
    /// The source id, run and name (span name or log body) for the log of a rejection.
    fn identity(&self) -> (SpanId, Option<&str>, &str);
    /// The request holding `batch`, records of one resource: the one `convert` prints. The
    /// batch is kept (a split needs its records), so this builds from a copy of it (the JSON
    /// protocols only).
    fn request(batch: &[Self], resources: &ResourceSettings) -> Self::Request;
    /// The protobuf encoding of [`Payload::request`].
    fn encode(batch: &[Self], resources: &ResourceSettings) -> Vec<u8>;
}

impl Payload for BridgeSpan {
    type Request = ExportTraceServiceRequest;

    fn task_slug(&self) -> Option<&str> {
        self.task_slug.as_deref()
    }

    fn covers(&self) -> &[SpanId] {
        &self.covers
    }

    fn identity(&self) -> (SpanId, Option<&str>, &str) {
        (self.covers[0], run_id_of(&self.span.attributes), &self.span.name)
    }

    fn request(batch: &[Self], resources: &ResourceSettings) -> Self::Request {
        export_request(batch.to_vec(), resources)
    }

    /// In place: the spans are not copied into a request first.
    fn encode(batch: &[Self], resources: &ResourceSettings) -> Vec<u8> {
        encode_export_request(batch, resources)
    }
}

impl Payload for BridgeLog {
    type Request = ExportLogsServiceRequest;

    fn task_slug(&self) -> Option<&str> {
        self.task_slug.as_deref()
    }

    fn covers(&self) -> &[SpanId] {
        BridgeLog::covers(self)
    }

    fn identity(&self) -> (SpanId, Option<&str>, &str) {
        (self.span_id, run_id_of(&self.attributes), &self.body)
    }

    fn request(batch: &[Self], resources: &ResourceSettings) -> Self::Request {
        export_logs_request(batch.to_vec(), resources)
    }

    fn encode(batch: &[Self], resources: &ResourceSettings) -> Vec<u8> {
        use prost::Message;
        Self::request(batch, resources).encode_to_vec()
    }
}

pub struct OtlpSender {
    transport: Transport,
    resources: ResourceSettings,
    options: SenderOptions,
    /// Attempts that failed since the last accepted one (the daemon pauses polling meanwhile).
    consecutive_failures: AtomicU32,
    /// Counts attempts, failures and rejections when set ([`OtlpSender::set_metrics`]).
    metrics: OnceLock<Arc<Metrics>>,
}

impl OtlpSender {
    pub fn new(transport: Transport, resources: ResourceSettings, options: SenderOptions) -> Self {
        OtlpSender {
            transport,
            resources,
            options,
            consecutive_failures: AtomicU32::new(0),
            metrics: OnceLock::new(),
        }
    }

    /// Count export attempts in `metrics` (the daemon); the first call wins.
    pub fn set_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// Whether the collector's last answer was a failure still being retried.
    pub fn failing(&self) -> bool {
        self.consecutive_failures.load(Ordering::Relaxed) > 0
    }

    /// Deliver `records` (spans, then log records); returns only when every one is delivered or
    /// dropped as rejected (or, with `give_up_after`, when that time ran out: [`ExportError::GaveUp`]).
    pub async fn send<R: Into<Record>>(&self, records: impl IntoIterator<Item = R>) -> Result<SendReport, ExportError> {
        let (mut spans, mut logs) = (Vec::new(), Vec::new());
        for record in records {
            match record.into() {
                Record::Span(span) => spans.push(span),
                Record::Log(log) => logs.push(log),
            }
        }
        let mut report = SendReport::default();
        self.deliver(spans, &mut report).await?;
        self.deliver(logs, &mut report).await?;
        Ok(report)
    }

    /// The retry-and-split loop for one signal, adding to `report`.
    async fn deliver<P: Payload>(&self, items: Vec<P>, report: &mut SendReport) -> Result<(), ExportError> {
        let max = self.options.max_batch_spans.max(1);
        let metrics = || self.metrics.get().map(Arc::as_ref);
        for (_, mut members) in self.resources.group_by_service(items, |item| item.task_slug()) {
            let mut work: VecDeque<Vec<P>> = VecDeque::new();
            while !members.is_empty() {
                let rest = members.split_off(members.len().min(max));
                work.push_back(std::mem::replace(&mut members, rest));
            }
            while let Some(batch) = work.pop_front() {
                let started = tokio::time::Instant::now();
                let deadline = self.options.give_up_after.map(|limit| started + limit);
                // Once per batch: its bytes are kept for every attempt (a request is built only
                // for the JSON protocols, and dropped here).
                let encoded = self.transport.encode(
                    || P::encode(&batch, &self.resources),
                    || P::request(&batch, &self.resources),
                );
                let mut attempt = 0u32;
                loop {
                    attempt += 1;
                    report.batches += 1;
                    let attempt_started = tokio::time::Instant::now();
                    let disposition = match &encoded {
                        Ok(encoded) => self.transport.send(encoded).await,
                        // Retrying cannot help: the data is at fault, as if the collector said so.
                        Err(error) => Disposition::Reject {
                            reason: error.to_string(),
                        },
                    };
                    match disposition {
                        Disposition::Delivered { rejected, message } => {
                            self.consecutive_failures.store(0, Ordering::Relaxed);
                            ExportBatchSent {
                                duration: attempt_started.elapsed(),
                            }
                            .emit(metrics());
                            if rejected > 0 || !message.is_empty() {
                                PartialSuccess {
                                    signal: P::SIGNAL,
                                    rejected,
                                    message: &message,
                                    batch_size: batch.len(),
                                }
                                .emit(metrics());
                            }
                            let tally = report.tally(P::SIGNAL);
                            *tally.collector_rejected += rejected;
                            *tally.delivered += batch.len() as u64;
                            report
                                .delivered
                                .extend(batch.iter().flat_map(|p| p.covers().iter().copied()));
                            break;
                        }
                        Disposition::Reject { reason } if batch.len() > 1 => {
                            self.consecutive_failures.store(0, Ordering::Relaxed);
                            tracing::warn!(%reason, signal = P::SIGNAL.as_str(), batch_size = batch.len(), "batch rejected; splitting it to isolate the offending records");
                            split_in_front(&mut work, batch);
                            break;
                        }
                        // Too large, perhaps: halves cannot be worse, and nothing is dropped.
                        Disposition::Shrink { reason, .. } if batch.len() > 1 && attempt >= SHRINK_AFTER => {
                            tracing::warn!(%reason, signal = P::SIGNAL.as_str(), batch_size = batch.len(), "the collector keeps refusing the batch, perhaps as too large; splitting it in halves (nothing is dropped)");
                            split_in_front(&mut work, batch);
                            break;
                        }
                        Disposition::Reject { reason } => {
                            self.consecutive_failures.store(0, Ordering::Relaxed);
                            let poisoned = &batch[0];
                            let (span_id, run_id, name) = poisoned.identity();
                            RecordRejected {
                                signal: P::SIGNAL,
                                run_id,
                                span_id: &span_id,
                                name,
                                reason: &reason,
                            }
                            .emit(metrics());
                            *report.tally(P::SIGNAL).rejected += 1;
                            // Committed as handled: re-sending a poisoned record would fail forever.
                            report.delivered.extend(poisoned.covers().iter().copied());
                            break;
                        }
                        Disposition::Retry { after, reason } | Disposition::Shrink { after, reason } => {
                            self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
                            // Whole milliseconds: the jitter's nanoseconds mean nothing in a log.
                            let mut delay =
                                Duration::from_millis(self.options.backoff.delay(attempt, after).as_millis() as u64);
                            if let Some(deadline) = deadline {
                                let now = tokio::time::Instant::now();
                                if now >= deadline {
                                    return Err(ExportError::GaveUp(Box::new(GaveUp {
                                        waited: now - started,
                                        last_reason: reason,
                                        delivered: report.delivered_spans + report.delivered_logs,
                                        partial: std::mem::take(report),
                                    })));
                                }
                                // A backoff reaching past the deadline is cut short: the last
                                // retry is made at the deadline, not skipped (giving up early,
                                // after 98–108 s of a documented 120, was the old behaviour).
                                delay = delay.min(deadline - now);
                            }
                            ExportBatchFailed {
                                signal: P::SIGNAL,
                                records: batch.len(),
                                attempt,
                                retry_in: delay,
                                reason: &reason,
                                duration: attempt_started.elapsed(),
                            }
                            .emit(metrics());
                            report.retries += 1;
                            tokio::time::sleep(delay).await;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// `batch` in two halves at the front of `work`, the first half first.
fn split_in_front<T>(work: &mut VecDeque<Vec<T>>, mut batch: Vec<T>) {
    let second = batch.split_off(batch.len() / 2);
    work.push_front(second);
    work.push_front(batch);
}

/// The `trigger.run_id` attribute every converted span and log record carries.
fn run_id_of(attributes: &[KeyValue]) -> Option<&str> {
    attributes
        .iter()
        .find_map(|kv| match (kv.key.as_str(), proto::value(kv)) {
            ("trigger.run_id", Some(any_value::Value::StringValue(id))) => Some(id.as_str()),
            _ => None,
        })
}
