//! Reading what an attempt did: [`ObservingHttpClient`] keeps the last OTLP/HTTP response
//! (status, `Retry-After`, body), and [`outcome`] turns it, or a gRPC error's text, into a
//! [`Disposition`], with an OTLP/HTTP body's `partial_success` counted.

use crate::export::policy::{classify_grpc, classify_http, parse_retry_after, Disposition};
use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError};
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What one response said, as seen by [`ObservingHttpClient`].
#[derive(Debug, Clone)]
pub(super) struct Observed {
    status: u16,
    retry_after: Option<Duration>,
    body: Bytes,
}

/// `opentelemetry-otlp`'s HTTP client, on the bridge's reqwest client, remembering the last
/// response so the sender can read its status and partial success. Sends through one
/// [`Transport`] are serialised, so "the last response" is the one of the current attempt.
#[derive(Clone)]
pub struct ObservingHttpClient {
    client: reqwest::Client,
    /// `export.headers`: values are secrets, so `Debug` shows only the names.
    headers: http::HeaderMap,
    last: Slot,
}

impl std::fmt::Debug for ObservingHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservingHttpClient")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ObservingHttpClient {
    /// `headers` go on every request, replacing any of the same name.
    pub(super) fn new(client: reqwest::Client, headers: http::HeaderMap) -> Self {
        Self {
            client,
            headers,
            last: Slot::default(),
        }
    }

    /// Where the last response is kept, for [`attempt`] to clear and read.
    pub(super) fn slot(&self) -> Slot {
        self.last.clone()
    }
}

/// The last response an [`ObservingHttpClient`] saw.
pub(super) type Slot = Arc<Mutex<Option<Observed>>>;

#[async_trait]
impl HttpClient for ObservingHttpClient {
    async fn send_bytes(&self, mut request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        for (name, value) in &self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        let request = reqwest::Request::try_from(request)?;
        let response = self.client.execute(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let retry_after = headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        // A collector's answer is small; cap what we keep so a misbehaving one cannot bloat us.
        let body = response.bytes().await?;
        let body = if body.len() > 1 << 20 {
            body.slice(..1 << 20)
        } else {
            body
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Observed {
            status: status.as_u16(),
            retry_after,
            body: body.clone(),
        });
        let mut builder = http::Response::builder().status(status);
        if let Some(h) = builder.headers_mut() {
            *h = headers;
        }
        Ok(builder.body(body)?)
    }
}

/// One attempt's disposition from what the observing HTTP client saw (OTLP/HTTP) or from
/// `opentelemetry-otlp`'s result (gRPC, or no response at all).
pub(super) fn outcome(
    seen: Option<Observed>,
    result: opentelemetry_sdk::error::OTelSdkResult,
    partial: impl Fn(&[u8]) -> Disposition,
) -> Disposition {
    match (seen, result) {
        (Some(seen), _) => match classify_http(seen.status, seen.retry_after) {
            Disposition::Delivered { .. } => partial(&seen.body),
            other => other,
        },
        (None, Ok(())) => Disposition::Delivered {
            rejected: 0,
            message: String::new(),
        },
        (None, Err(error)) => {
            let text = error.to_string();
            match grpc_code(&text) {
                Some(code) => match classify_grpc(code) {
                    Disposition::Retry { after, .. } => Disposition::Retry { after, reason: text },
                    Disposition::Reject { .. } => Disposition::Reject { reason: text },
                    Disposition::Shrink { after, .. } => Disposition::Shrink { after, reason: text },
                    delivered => delivered,
                },
                // No response at all (connection refused, timeout): retry.
                None => Disposition::Retry {
                    after: None,
                    reason: text,
                },
            }
        }
    }
}

/// The code name in opentelemetry-otlp's "… failed with gRPC code: Unavailable: …" text.
pub(super) fn grpc_code(text: &str) -> Option<&str> {
    let rest = text.split("gRPC code: ").nth(1)?;
    let code = rest.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
    (!code.is_empty()).then_some(code)
}

/// OTLP/HTTP success bodies may carry `partial_success` (records the collector refused);
/// `read` takes the rejected count and message out of the signal's response type.
pub(super) fn partial_success<R: Message + Default + serde::de::DeserializeOwned>(
    body: &[u8],
    json: bool,
    read: impl Fn(R) -> Option<(i64, String)>,
) -> Disposition {
    let response: Option<R> = if body.is_empty() {
        None
    } else if json {
        serde_json::from_slice(body).ok()
    } else {
        R::decode(body).ok()
    };
    match response.and_then(read) {
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

/// One export attempt and its disposition: the observed slot is cleared before and read after;
/// `read` takes the rejected count and message out of the signal's response type.
pub(super) async fn attempt<R: Message + Default + serde::de::DeserializeOwned>(
    observed: Option<&Slot>,
    json: bool,
    export: impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult>,
    read: impl Fn(R) -> Option<(i64, String)>,
) -> Disposition {
    if let Some(slot) = observed {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    let result = export.await;
    let seen = observed.and_then(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).take());
    outcome(seen, result, |body| partial_success(body, json, &read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;

    #[test]
    fn grpc_codes_are_read_from_opentelemetry_otlp_errors() {
        assert_eq!(
            grpc_code("TonicTracesClient export failed with gRPC code: Unavailable: transport error"),
            Some("Unavailable")
        );
        assert_eq!(
            grpc_code("TonicTracesClient export failed with gRPC code: InvalidArgument"),
            Some("InvalidArgument")
        );
        assert_eq!(grpc_code("something else"), None);
    }

    #[test]
    fn partial_success_of_log_records_is_read() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
        let response = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "body too long".into(),
            }),
        };
        let read = |r: ExportLogsServiceResponse| r.partial_success.map(|p| (p.rejected_log_records, p.error_message));
        let expected = Disposition::Delivered {
            rejected: 3,
            message: "body too long".into(),
        };
        assert_eq!(partial_success(&response.encode_to_vec(), false, read), expected);
        assert_eq!(
            partial_success(&serde_json::to_vec(&response).unwrap(), true, read),
            expected
        );
    }

    #[test]
    fn partial_success_is_read_from_both_encodings() {
        let response = ExportTraceServiceResponse {
            partial_success: Some(
                opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess {
                    rejected_spans: 2,
                    error_message: "too old".into(),
                },
            ),
        };
        let expected = Disposition::Delivered {
            rejected: 2,
            message: "too old".into(),
        };
        let read = |r: ExportTraceServiceResponse| r.partial_success.map(|p| (p.rejected_spans, p.error_message));
        assert_eq!(partial_success(&response.encode_to_vec(), false, read), expected);
        assert_eq!(
            partial_success(&serde_json::to_vec(&response).unwrap(), true, read),
            expected
        );
        assert_eq!(
            partial_success(b"", false, read),
            Disposition::Delivered {
                rejected: 0,
                message: String::new()
            }
        );
    }
}
