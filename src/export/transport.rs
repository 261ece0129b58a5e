//! Transport: one attempt to deliver one batch of one resource, over `opentelemetry-otlp`
//! (gRPC, OTLP/HTTP protobuf or JSON) or as an OTLP/JSON line on stdout.
//!
//! Each attempt's outcome is read precisely, because the bridge decides delivery itself:
//! - OTLP/HTTP goes through [`ObservingHttpClient`], our `HttpClient` for `opentelemetry-otlp`,
//!   which records the status, `Retry-After` and the body. The body holds the collector's
//!   `partial_success`, which `opentelemetry-otlp` only logs and reports as success.
//! - gRPC errors reach us as text ("… failed with gRPC code: Unavailable"); the code name is
//!   parsed from it. A gRPC partial success is logged by `opentelemetry-otlp` and not visible
//!   here (a known limit, see docs/export.md).
//!
//! `opentelemetry-otlp`'s own retry is disabled: retrying is the sender's job.

use super::policy::{classify_grpc, classify_http, parse_retry_after, Disposition};
use super::settings::ExportSettings;
use crate::config::{Compression, Protocol};
use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;
use prost::Message;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("invalid export endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot build the OTLP exporter: {0}")]
    Build(String),
    #[error("export.cert_file and export.key_file must be set together")]
    HalfIdentity,
    #[error("invalid TLS material: {0}")]
    Tls(String),
}

/// What one response said, as seen by [`ObservingHttpClient`].
#[derive(Debug, Clone)]
struct Observed {
    status: u16,
    retry_after: Option<Duration>,
    body: Bytes,
}

/// `opentelemetry-otlp`'s HTTP client, on the bridge's reqwest client, remembering the last
/// response so the sender can read its status and partial success. Sends through one
/// [`Transport`] are serialised, so "the last response" is the one of the current attempt.
#[derive(Debug, Clone)]
pub struct ObservingHttpClient {
    client: reqwest::Client,
    last: Arc<Mutex<Option<Observed>>>,
}

#[async_trait]
impl HttpClient for ObservingHttpClient {
    async fn send_bytes(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
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

enum Backend {
    Otlp {
        /// One exporter per resource (service name), created on first use; they share the
        /// gRPC channel or the HTTP client.
        exporters: tokio::sync::Mutex<HashMap<String, opentelemetry_otlp::SpanExporter>>,
        build: Box<dyn Fn() -> Result<opentelemetry_otlp::SpanExporter, TransportError> + Send + Sync>,
        observed: Option<Arc<Mutex<Option<Observed>>>>,
        json: bool,
    },
    Stdout(Mutex<Box<dyn Write + Send>>),
}

/// Sends batches, one attempt at a time.
pub struct Transport {
    backend: Backend,
    protocol: Protocol,
}

impl Transport {
    pub fn new(settings: &ExportSettings) -> Result<Self, TransportError> {
        Self::with_stdout(settings, Box::new(std::io::stdout()))
    }

    /// Like [`Transport::new`]; `stdout` receives the OTLP/JSON lines of protocol `stdout`.
    pub fn with_stdout(settings: &ExportSettings, stdout: Box<dyn Write + Send>) -> Result<Self, TransportError> {
        let backend = match settings.protocol {
            Protocol::Stdout => Backend::Stdout(Mutex::new(stdout)),
            Protocol::Grpc => {
                let channel = grpc_channel(settings)?;
                let metadata = grpc_metadata(settings)?;
                let compression = otlp_compression(settings.compression);
                let timeout = settings.timeout;
                let build = move || {
                    let mut builder = opentelemetry_otlp::SpanExporter::builder()
                        .with_tonic()
                        .with_channel(channel.clone())
                        .with_metadata(metadata.clone())
                        .with_timeout(timeout)
                        .with_retry_policy(RetryPolicy::disabled());
                    if let Some(compression) = compression {
                        builder = builder.with_compression(compression);
                    }
                    builder.build().map_err(|e| TransportError::Build(e.to_string()))
                };
                Backend::Otlp {
                    exporters: Default::default(),
                    build: Box::new(build),
                    observed: None,
                    json: false,
                }
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let client = ObservingHttpClient {
                    client: http_client(settings)?,
                    last: Arc::default(),
                };
                let observed = client.last.clone();
                let shared: Arc<dyn HttpClient> = Arc::new(client);
                let url = settings.http_traces_url();
                let _: http::Uri = url
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| TransportError::Endpoint {
                        endpoint: url.clone(),
                        reason: e.to_string(),
                    })?;
                let headers: HashMap<String, String> = settings
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                    .collect();
                let protocol = if settings.protocol == Protocol::HttpJson {
                    opentelemetry_otlp::Protocol::HttpJson
                } else {
                    opentelemetry_otlp::Protocol::HttpBinary
                };
                let compression = otlp_compression(settings.compression);
                let timeout = settings.timeout;
                let build = move || {
                    let mut builder = opentelemetry_otlp::SpanExporter::builder()
                        .with_http()
                        .with_shared_http_client(shared.clone())
                        .with_endpoint(url.clone())
                        .with_protocol(protocol)
                        .with_headers(headers.clone())
                        .with_timeout(timeout)
                        .with_retry_policy(RetryPolicy::disabled());
                    if let Some(compression) = compression {
                        builder = builder.with_compression(compression);
                    }
                    builder.build().map_err(|e| TransportError::Build(e.to_string()))
                };
                Backend::Otlp {
                    exporters: Default::default(),
                    build: Box::new(build),
                    observed: Some(observed),
                    json: settings.protocol == Protocol::HttpJson,
                }
            }
        };
        Ok(Transport {
            backend,
            protocol: settings.protocol,
        })
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// One attempt to deliver `batch` under `resource` (named by `service_name`).
    pub async fn send(&self, service_name: &str, resource: &Resource, batch: Vec<SpanData>) -> Disposition {
        match &self.backend {
            Backend::Stdout(out) => {
                let resource_spans =
                    group_spans_by_resource_and_scope(batch, &ResourceAttributesWithSchema::from(resource));
                let line = match serde_json::to_string(&ExportTraceServiceRequest { resource_spans }) {
                    Ok(line) => line,
                    Err(e) => {
                        return Disposition::Retry {
                            after: None,
                            reason: e.to_string(),
                        }
                    }
                };
                let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                match writeln!(out, "{line}").and_then(|_| out.flush()) {
                    Ok(()) => Disposition::Delivered {
                        rejected: 0,
                        message: String::new(),
                    },
                    Err(e) => Disposition::Retry {
                        after: None,
                        reason: format!("stdout: {e}"),
                    },
                }
            }
            Backend::Otlp {
                exporters,
                build,
                observed,
                json,
            } => {
                // Serialise attempts: the observed slot belongs to the attempt in flight.
                let mut exporters = exporters.lock().await;
                if !exporters.contains_key(service_name) {
                    let mut exporter = match build() {
                        Ok(exporter) => exporter,
                        Err(e) => {
                            return Disposition::Retry {
                                after: None,
                                reason: e.to_string(),
                            }
                        }
                    };
                    exporter.set_resource(resource);
                    exporters.insert(service_name.to_owned(), exporter);
                }
                let exporter = &exporters[service_name];
                if let Some(slot) = observed {
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
                let result = exporter.export(batch).await;
                let seen = observed
                    .as_ref()
                    .and_then(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).take());
                outcome(seen, result, |body| partial_success(body, *json))
            }
        }
    }
}

/// One attempt's disposition from what the observing HTTP client saw (OTLP/HTTP) or from
/// `opentelemetry-otlp`'s result (gRPC, or no response at all).
fn outcome(
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
fn grpc_code(text: &str) -> Option<&str> {
    let rest = text.split("gRPC code: ").nth(1)?;
    let code = rest.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
    (!code.is_empty()).then_some(code)
}

/// OTLP/HTTP success bodies may carry `partial_success` (spans the collector refused).
fn partial_success(body: &[u8], json: bool) -> Disposition {
    let response: Option<ExportTraceServiceResponse> = if body.is_empty() {
        None
    } else if json {
        serde_json::from_slice(body).ok()
    } else {
        ExportTraceServiceResponse::decode(body).ok()
    };
    match response.and_then(|r| r.partial_success) {
        Some(partial) if partial.rejected_spans > 0 || !partial.error_message.is_empty() => Disposition::Delivered {
            rejected: partial.rejected_spans.max(0) as u64,
            message: partial.error_message,
        },
        _ => Disposition::Delivered {
            rejected: 0,
            message: String::new(),
        },
    }
}

fn otlp_compression(compression: Compression) -> Option<opentelemetry_otlp::Compression> {
    match compression {
        Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
        Compression::Zstd => Some(opentelemetry_otlp::Compression::Zstd),
        Compression::None => None,
    }
}

fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|source| TransportError::ReadFile {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn grpc_channel(settings: &ExportSettings) -> Result<tonic::transport::Channel, TransportError> {
    let bad = |reason: String| TransportError::Endpoint {
        endpoint: settings.endpoint.clone(),
        reason,
    };
    let mut endpoint = tonic::transport::Channel::from_shared(settings.endpoint.clone())
        .map_err(|e| bad(e.to_string()))?
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout);
    let tls_wanted = settings.endpoint.starts_with("https://") || settings.ca_file.is_some();
    if tls_wanted {
        crate::tls::install_crypto_provider();
        let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &settings.ca_file {
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(read("CA file", ca)?));
        }
        match (&settings.cert_file, &settings.key_file) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(tonic::transport::Identity::from_pem(
                    read("client certificate", cert)?,
                    read("client key", key)?,
                ));
            }
            (None, None) => {}
            _ => return Err(TransportError::HalfIdentity),
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| TransportError::Tls(e.to_string()))?;
    }
    Ok(endpoint.connect_lazy())
}

fn grpc_metadata(settings: &ExportSettings) -> Result<tonic::metadata::MetadataMap, TransportError> {
    let mut headers = http::HeaderMap::new();
    for (key, value) in &settings.headers {
        let name = http::HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| TransportError::Build(format!("export.headers: {key:?} is not a valid header name")))?;
        let value = http::HeaderValue::from_str(value.expose()).map_err(|_| {
            TransportError::Build(format!("export.headers.{key}: the value is not a valid header value"))
        })?;
        headers.insert(name, value);
    }
    Ok(tonic::metadata::MetadataMap::from_headers(headers))
}

fn http_client(settings: &ExportSettings) -> Result<reqwest::Client, TransportError> {
    crate::tls::install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .user_agent(concat!("trigger-otel-bridge/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &settings.ca_file {
        let cert =
            reqwest::Certificate::from_pem(&read("CA file", ca)?).map_err(|e| TransportError::Tls(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
    }
    match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => {
            let mut pem = read("client certificate", cert)?;
            pem.extend(read("client key", key)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| TransportError::Tls(e.to_string()))?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => return Err(TransportError::HalfIdentity),
    }
    builder.build().map_err(|e| TransportError::Build(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(partial_success(&response.encode_to_vec(), false), expected);
        assert_eq!(partial_success(&serde_json::to_vec(&response).unwrap(), true), expected);
        assert_eq!(
            partial_success(b"", false),
            Disposition::Delivered {
                rejected: 0,
                message: String::new()
            }
        );
    }
}
