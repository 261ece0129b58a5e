//! The metric exporter, wrapped so that a collector that is down costs one log line per outage.
//!
//! The periodic reader pushes every `telemetry.otlp_interval` whatever the last push did; the
//! SDK's own report of a failure is an internal log per push (not compiled in: no
//! `internal-logs` feature). Here the first failure of an episode is one warning naming the
//! endpoint, the protocol and the cause; later failures are silent (debug) until a push
//! succeeds, which is one info line.

use super::http::Causes;
use crate::config::MetricsProtocol;
use opentelemetry_otlp::MetricExporter;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub(super) struct Logged {
    inner: MetricExporter,
    url: String,
    protocol: MetricsProtocol,
    /// The HTTP client's last transport failure (OTLP/HTTP only: over gRPC the exporter's error
    /// carries the cause already).
    causes: Option<Causes>,
    failing: AtomicBool,
}

impl Logged {
    pub fn new(inner: MetricExporter, url: String, protocol: MetricsProtocol, causes: Option<Causes>) -> Self {
        Logged {
            inner,
            url,
            protocol,
            causes,
            failing: AtomicBool::new(false),
        }
    }

    /// The exporter's error, with the transport's cause when it has one of its own.
    fn cause(&self, error: &dyn std::fmt::Display) -> String {
        let transport = self
            .causes
            .as_ref()
            .and_then(|causes| causes.lock().unwrap_or_else(|e| e.into_inner()).take());
        let text = match transport {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        };
        once_each(&text)
    }

    fn observe(&self, result: &OTelSdkResult) {
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(endpoint = %self.url, "the bridge's own metrics reach the OTLP collector again");
                }
            }
            Err(error) => {
                let cause = self.cause(error);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        endpoint = %self.url,
                        protocol = self.protocol.as_str(),
                        error = %cause,
                        "pushing the bridge's own metrics over OTLP failed; check telemetry.otlp_endpoint and the \
                         collector. Spans are not affected. Tried again every telemetry.otlp_interval, logged again \
                         once it works"
                    );
                } else {
                    tracing::debug!(endpoint = %self.url, error = %cause, "OTLP metrics push failed again");
                }
            }
        }
    }
}

/// `a: b: b: c` as `a: b: c`: hyper's connect error repeats its source's text, and tonic's
/// transport error chain as opentelemetry-otlp renders it shows it twice.
fn once_each(text: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

impl PushMetricExporter for Logged {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.observe(&result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_repeated_by_its_source_is_said_once() {
        assert_eq!(
            once_each(
                "gRPC code: Unavailable: transport error: tcp connect error: tcp connect error: Connection refused"
            ),
            "gRPC code: Unavailable: transport error: tcp connect error: Connection refused"
        );
        assert_eq!(once_each("HTTP 503"), "HTTP 503");
    }
}
