//! What a collector's answer means for the attempt: a gRPC status ([`grpc_status`]), and the
//! `partial_success` of an accepted request, over both protocols ([`partial_success`]). HTTP
//! statuses are classified by `policy::classify_http` directly.

use super::failure::Destination;
use super::OtlpRequest;
use crate::export::policy::{classify_grpc, Disposition};
use prost::Message;
use tonic_types::StatusExt;

/// A gRPC error status sent to `to` as a disposition, by its code (`policy::classify_grpc`),
/// with the delay of a `google.rpc.RetryInfo` in its details when the collector gave one.
///
/// The reason ([`Destination::grpc_status`]) names the endpoint, the code, and for a status tonic
/// made itself (no answer: connection refused, TLS, timeout; an answer that was not gRPC) what
/// went wrong, and the setting to check. Never the collector's message: it may echo a request's
/// header, and header values are secrets.
pub(super) fn grpc_status(status: &tonic::Status, to: &Destination) -> Disposition {
    let after = status.get_details_retry_info().and_then(|info| info.retry_delay);
    let reason = to.grpc_status(status);
    match classify_grpc(status.code()) {
        Disposition::Retry { .. } => Disposition::Retry { after, reason },
        Disposition::Shrink { .. } => Disposition::Shrink { after, reason },
        Disposition::Reject { .. } => Disposition::Reject { reason },
        delivered => delivered,
    }
}

/// An accepted request's answer: `Delivered`, with the records the collector reported in its
/// `partial_success` (a `message` with nothing rejected is a warning, as OTLP allows). An
/// empty or unreadable answer rejected nothing.
pub(super) fn partial_success<R: OtlpRequest>(body: &[u8], json: bool) -> Disposition {
    let rejected = if body.is_empty() {
        None
    } else if json {
        json_partial_success(body)
    } else {
        R::Response::decode(body).ok().and_then(R::rejected)
    };
    match rejected {
        Some((rejected, message)) if rejected > 0 || !message.is_empty() => Disposition::Delivered {
            rejected: rejected.max(0) as u64,
            message,
        },
        _ => Disposition::Delivered {
            rejected: 0,
            message: String::new(),
        },
    }
}

/// `partialSuccess` of an OTLP/JSON answer, read by hand: the proto3 JSON mapping writes int64
/// as a decimal string (`"rejectedSpans":"2"`, as the OTel Collector does), which
/// opentelemetry-proto's derived `Deserialize` refuses; a number is accepted too.
fn json_partial_success(body: &[u8]) -> Option<(i64, String)> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let partial = answer.get("partialSuccess").or_else(|| answer.get("partial_success"))?;
    let rejected = [
        "rejectedSpans",
        "rejectedLogRecords",
        "rejected_spans",
        "rejected_log_records",
    ]
    .iter()
    .find_map(|key| partial.get(*key))
    .and_then(|count| match count {
        serde_json::Value::String(text) => text.parse().ok(),
        other => other.as_i64(),
    })
    .unwrap_or(0);
    let message = partial
        .get("errorMessage")
        .or_else(|| partial.get("error_message"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some((rejected, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
    };
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use std::time::Duration;

    #[test]
    fn partial_success_of_log_records_is_read() {
        let response = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "body too long".into(),
            }),
        };
        let expected = Disposition::Delivered {
            rejected: 3,
            message: "body too long".into(),
        };
        assert_eq!(
            partial_success::<ExportLogsServiceRequest>(&response.encode_to_vec(), false),
            expected
        );
        assert_eq!(
            partial_success::<ExportLogsServiceRequest>(&serde_json::to_vec(&response).unwrap(), true),
            expected
        );
    }

    #[test]
    fn partial_success_is_read_from_both_encodings() {
        let response = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "too old".into(),
            }),
        };
        let expected = Disposition::Delivered {
            rejected: 2,
            message: "too old".into(),
        };
        type Traces = ExportTraceServiceRequest;
        assert_eq!(partial_success::<Traces>(&response.encode_to_vec(), false), expected);
        assert_eq!(
            partial_success::<Traces>(&serde_json::to_vec(&response).unwrap(), true),
            expected
        );
        let nothing = Disposition::Delivered {
            rejected: 0,
            message: String::new(),
        };
        assert_eq!(partial_success::<Traces>(b"", false), nothing);
        assert_eq!(partial_success::<Traces>(b"\xff\xff not protobuf", false), nothing);
        // A warning: nothing rejected, a message.
        let warning = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 0,
                error_message: "deprecated attribute".into(),
            }),
        };
        assert_eq!(
            partial_success::<Traces>(&warning.encode_to_vec(), false),
            Disposition::Delivered {
                rejected: 0,
                message: "deprecated attribute".into()
            }
        );
    }

    /// The OTel Collector writes int64 as a decimal string in OTLP/JSON (the proto3 JSON mapping).
    #[test]
    fn an_otlp_json_count_written_as_a_string_is_read() {
        type Traces = ExportTraceServiceRequest;
        type Logs = ExportLogsServiceRequest;
        let expected = |rejected, message: &str| Disposition::Delivered {
            rejected,
            message: message.into(),
        };
        assert_eq!(
            partial_success::<Traces>(
                br#"{"partialSuccess":{"rejectedSpans":"2","errorMessage":"too old"}}"#,
                true
            ),
            expected(2, "too old")
        );
        assert_eq!(
            partial_success::<Logs>(br#"{"partialSuccess":{"rejectedLogRecords":"5"}}"#, true),
            expected(5, "")
        );
        assert_eq!(partial_success::<Traces>(br#"{}"#, true), expected(0, ""));
        assert_eq!(partial_success::<Traces>(b"<html>", true), expected(0, ""));
    }

    #[test]
    fn grpc_statuses_keep_their_code_and_retry_info_but_not_the_collectors_message() {
        let settings = crate::export::ExportSettings::resolve(
            &crate::config::ExportConfig {
                endpoint: "http://collector:4317".into(),
                ..crate::config::ExportConfig::default()
            },
            &std::collections::HashMap::new(),
        )
        .unwrap();
        let to = Destination::new(&settings, crate::telemetry::events::Signal::Traces);
        let status = tonic::Status::unavailable("token Bearer s3cr3t is unknown");
        assert_eq!(
            grpc_status(&status, &to),
            Disposition::Retry {
                after: None,
                reason: "gRPC http://collector:4317: Unavailable".into()
            }
        );
        let with_delay = tonic::Status::with_error_details(
            tonic::Code::ResourceExhausted,
            "memory limiter",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(7))),
        );
        assert_eq!(
            grpc_status(&with_delay, &to),
            Disposition::Shrink {
                after: Some(Duration::from_secs(7)),
                reason: "gRPC http://collector:4317: ResourceExhausted".into()
            }
        );
        assert_eq!(
            grpc_status(&tonic::Status::invalid_argument("bad span"), &to),
            Disposition::Reject {
                reason: "gRPC http://collector:4317: InvalidArgument".into()
            }
        );
        // Made by tonic itself: the cause is told, and the setting to check.
        let local = tonic::Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        )));
        let Disposition::Retry { reason, .. } = grpc_status(&local, &to) else {
            panic!("a connection failure is retried")
        };
        assert!(
            reason.contains("connection refused; check export.endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)"),
            "{reason}"
        );
    }
}
