//! The sender: spans → batches of at most `max_batch_spans` per resource → delivered, retried
//! or split, following `policy`. It decides when a span counts as delivered.

use super::policy::{BackoffPolicy, Disposition};
use super::transport::Transport;
use crate::convert::otlp::ResourceSettings;
use crate::convert::BridgeSpan;
use crate::telemetry::events::{ExportBatchFailed, ExportBatchSent, SpanRejected};
use crate::telemetry::Metrics;
use opentelemetry::trace::SpanId;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SenderOptions {
    pub max_batch_spans: usize,
    pub backoff: BackoffPolicy,
    /// `None` (the daemon): retry retryable failures forever, never drop. `Some` (one-shot
    /// commands): fail after retrying this long.
    pub give_up_after: Option<Duration>,
}

/// What became of the spans handed to [`SpanSender::send`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SendReport {
    /// Source span ids now acknowledged by the collector (what the state store commits).
    pub delivered: Vec<SpanId>,
    pub delivered_spans: u64,
    /// Single spans the collector refused as data (400/413/InvalidArgument): dropped, counted.
    pub rejected_spans: u64,
    /// Spans a collector reported in `partial_success.rejected_spans` of an accepted batch.
    pub collector_rejected_spans: u64,
    pub retries: u64,
    pub batches: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the collector did not accept spans within {waited:?}: {last_reason} ({delivered} spans delivered before)")]
pub struct GaveUp {
    pub waited: Duration,
    pub last_reason: String,
    pub delivered: u64,
    /// Whatever was delivered before giving up still counts.
    pub partial: SendReport,
}

pub struct SpanSender {
    transport: Transport,
    resources: ResourceSettings,
    options: SenderOptions,
    /// Attempts that failed since the last accepted one (the daemon pauses polling meanwhile).
    consecutive_failures: AtomicU32,
    /// Counts attempts, failures and rejections when set ([`SpanSender::set_metrics`]).
    metrics: OnceLock<Arc<Metrics>>,
}

impl SpanSender {
    pub fn new(transport: Transport, resources: ResourceSettings, options: SenderOptions) -> Self {
        SpanSender {
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

    /// Deliver `spans`; returns only when every span is delivered or dropped as rejected (or,
    /// with `give_up_after`, when that time ran out).
    pub async fn send(&self, spans: Vec<BridgeSpan>) -> Result<SendReport, GaveUp> {
        let mut report = SendReport::default();
        let max = self.options.max_batch_spans.max(1);
        let mut groups: Vec<(String, Vec<BridgeSpan>)> = Vec::new();
        for span in spans {
            let name = self.resources.service_name_for(span.task_slug.as_deref()).to_owned();
            match groups.iter_mut().find(|(group, _)| *group == name) {
                Some((_, members)) => members.push(span),
                None => groups.push((name, vec![span])),
            }
        }
        for (service_name, members) in groups {
            let resource = self.resources.resource(&service_name);
            let mut work: VecDeque<Vec<BridgeSpan>> = VecDeque::new();
            let mut members = members;
            while !members.is_empty() {
                let rest = members.split_off(members.len().min(max));
                work.push_back(std::mem::replace(&mut members, rest));
            }
            while let Some(batch) = work.pop_front() {
                let started = tokio::time::Instant::now();
                let mut attempt = 0u32;
                loop {
                    attempt += 1;
                    report.batches += 1;
                    let data = batch.iter().map(|s| s.data.clone()).collect();
                    let attempt_started = tokio::time::Instant::now();
                    match self.transport.send(&service_name, &resource, data).await {
                        Disposition::Delivered { rejected, message } => {
                            self.consecutive_failures.store(0, Ordering::Relaxed);
                            ExportBatchSent {
                                spans: batch.len(),
                                duration: attempt_started.elapsed(),
                            }
                            .emit(self.metrics.get().map(Arc::as_ref));
                            if rejected > 0 || !message.is_empty() {
                                tracing::error!(
                                    rejected_spans = rejected,
                                    collector_message = %message,
                                    batch_spans = batch.len(),
                                    "the collector accepted the batch but rejected some of its spans"
                                );
                            }
                            report.collector_rejected_spans += rejected;
                            report.delivered_spans += batch.len() as u64;
                            report
                                .delivered
                                .extend(batch.iter().flat_map(|s| s.covers.iter().copied()));
                            break;
                        }
                        Disposition::Reject { reason } if batch.len() > 1 => {
                            self.consecutive_failures.store(0, Ordering::Relaxed);
                            tracing::warn!(%reason, batch_spans = batch.len(), "batch rejected; splitting it to isolate the offending spans");
                            let mut first = batch;
                            let second = first.split_off(first.len() / 2);
                            work.push_front(second);
                            work.push_front(first);
                            break;
                        }
                        Disposition::Reject { reason } => {
                            self.consecutive_failures.store(0, Ordering::Relaxed);
                            let span = &batch[0];
                            SpanRejected {
                                run_id: run_id_of(span),
                                span_id: &span.data.span_context.span_id(),
                                span_name: &span.data.name,
                                reason: &reason,
                            }
                            .emit(self.metrics.get().map(Arc::as_ref));
                            report.rejected_spans += 1;
                            // Committed as handled: re-sending a poisoned span would fail forever.
                            report.delivered.extend(span.covers.iter().copied());
                            break;
                        }
                        Disposition::Retry { after, reason } => {
                            self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
                            let delay = self.options.backoff.delay(attempt, after);
                            if let Some(limit) = self.options.give_up_after {
                                if started.elapsed() + delay > limit {
                                    return Err(GaveUp {
                                        waited: started.elapsed(),
                                        last_reason: reason,
                                        delivered: report.delivered_spans,
                                        partial: report,
                                    });
                                }
                            }
                            ExportBatchFailed {
                                spans: batch.len(),
                                attempt,
                                retry_in: delay,
                                reason: &reason,
                                duration: attempt_started.elapsed(),
                            }
                            .emit(self.metrics.get().map(Arc::as_ref));
                            report.retries += 1;
                            tokio::time::sleep(delay).await;
                        }
                    }
                }
            }
        }
        Ok(report)
    }
}

/// The `trigger.run_id` attribute every converted span carries, for logs about one span.
fn run_id_of(span: &BridgeSpan) -> Option<&str> {
    span.data
        .attributes
        .iter()
        .find_map(|kv| match (kv.key.as_str(), &kv.value) {
            ("trigger.run_id", opentelemetry::Value::String(id)) => Some(id.as_str()),
            _ => None,
        })
}
