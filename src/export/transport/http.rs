//! OTLP/HTTP: an encoded request POSTed to `/v1/traces` or `/v1/logs` with the bridge's
//! reqwest client, its body compressed once when it is encoded.

use super::connection::{checked_url, header_map, http_client};
use super::failure::Destination;
use super::observe::partial_success;
use super::OtlpRequest;
use crate::config::{Compression, Protocol};
use crate::export::policy::{classify_http, parse_retry_after, Disposition};
use crate::export::settings::ExportSettings;
use crate::export::ExportError;
use crate::net::error_chain::error_chain;
use crate::telemetry::events::Signal;
use bytes::Bytes;
use std::io::Write;
use std::time::SystemTime;

/// The most of an answer's body that is read: a collector's answer is small, and a misbehaving
/// one must not bloat the bridge.
const MAX_ANSWER: usize = 1 << 20;

/// The most of a failed answer's body that is read, for the excerpt its reason quotes.
const MAX_ERROR_ANSWER: usize = 4 << 10;

pub(in crate::export) struct HttpWire {
    client: reqwest::Client,
    /// `export.headers` (the file's over `OTEL_EXPORTER_OTLP_HEADERS`), set on every request
    /// over any header of the same name. Values are secrets: this type has no `Debug`.
    headers: http::HeaderMap,
    traces_url: String,
    logs_url: String,
    json: bool,
    compression: Compression,
    /// How failures of each signal's requests name the URL and the setting to check.
    traces_at: Destination,
    logs_at: Destination,
}

impl HttpWire {
    pub(super) fn new(settings: &ExportSettings) -> Result<Self, ExportError> {
        Ok(HttpWire {
            client: http_client(settings)?,
            headers: header_map(settings)?,
            traces_url: checked_url(settings.http_traces_url())?,
            logs_url: checked_url(settings.http_logs_url())?,
            json: settings.protocol == Protocol::HttpJson,
            compression: settings.compression,
            traces_at: Destination::new(settings, Signal::Traces),
            logs_at: Destination::new(settings, Signal::Logs),
        })
    }

    /// OTLP/JSON (`http/json`) rather than protobuf.
    pub(super) fn json(&self) -> bool {
        self.json
    }

    /// `body` as it is sent, with its `Content-Encoding` (gzip at flate2's default level, zstd
    /// at zstd's, as `opentelemetry-otlp` compressed).
    pub(super) fn compress(&self, body: Vec<u8>) -> Result<(Vec<u8>, Option<&'static str>), ExportError> {
        let failed = |e: std::io::Error| ExportError::Encode(format!("compressing the request: {e}"));
        match self.compression {
            Compression::None => Ok((body, None)),
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(&body).map_err(failed)?;
                Ok((encoder.finish().map_err(failed)?, Some("gzip")))
            }
            Compression::Zstd => Ok((zstd::bulk::compress(&body, 0).map_err(failed)?, Some("zstd"))),
        }
    }

    /// One POST of `body`, an encoded `R`.
    pub(super) async fn send<R: OtlpRequest>(
        &self,
        body: Bytes,
        content_encoding: Option<&'static str>,
    ) -> Disposition {
        let (url, to) = match R::SIGNAL {
            Signal::Traces => (&self.traces_url, &self.traces_at),
            Signal::Logs => (&self.logs_url, &self.logs_at),
        };
        let content_type = if self.json {
            "application/json"
        } else {
            "application/x-protobuf"
        };
        let mut request = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(encoding) = content_encoding {
            request = request.header(http::header::CONTENT_ENCODING, encoding);
        }
        // Last, so the configured headers replace any of the same name.
        let request = request.headers(self.headers.clone());
        let mut response = match request.send().await {
            Ok(response) => response,
            // No answer (connection refused, TLS, timeout): retried. reqwest's URL is left out
            // of the cause: it may carry credentials (the reason names it redacted).
            Err(e) if e.is_timeout() => {
                return Disposition::Retry {
                    after: None,
                    reason: to.timed_out(),
                }
            }
            Err(e) => {
                return Disposition::Retry {
                    after: None,
                    reason: to.no_answer(None, &e.without_url()),
                }
            }
        };
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let status = response.status().as_u16();
        match classify_http(status, retry_after) {
            Disposition::Delivered { .. } => {
                // Accepted: the status says so. A body that breaks off only hides the
                // partial success it may have held.
                let mut answer = Vec::new();
                while answer.len() < MAX_ANSWER {
                    match response.chunk().await {
                        Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(error = %error_chain(&e.without_url()), "the collector's answer broke off");
                            break;
                        }
                    }
                }
                partial_success::<R>(&answer, self.json)
            }
            failed => {
                // The start of the body tells a collector's refusal from a web server's page.
                let mut answer = Vec::new();
                while answer.len() < MAX_ERROR_ANSWER {
                    match response.chunk().await {
                        Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                failed.with_reason(to.http_status(status, &answer))
            }
        }
    }
}
