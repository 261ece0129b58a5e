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
use crate::convert::otlp::SdkLogs;
use crate::convert::BridgeLog;
use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _};
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

/// How to build an `opentelemetry-otlp` exporter of either signal: the protocol-specific part
/// (a shared gRPC channel or HTTP client) plus what both protocols take.
struct Recipe {
    wire: Wire,
    compression: Option<opentelemetry_otlp::Compression>,
    timeout: Duration,
}

enum Wire {
    Grpc {
        traces: tonic::transport::Channel,
        /// The traces channel again unless `logs_endpoint` names another collector.
        logs: tonic::transport::Channel,
        metadata: tonic::metadata::MetadataMap,
    },
    Http {
        client: Arc<dyn HttpClient>,
        traces_url: String,
        logs_url: String,
        headers: HashMap<String, String>,
        protocol: opentelemetry_otlp::Protocol,
    },
}

/// The span and log exporter builders take the same calls but are different types, each with
/// its own inherent `build`: one body for both.
macro_rules! build_exporter {
    ($recipe:expr, $builder:expr, $channel:ident, $url:ident) => {
        match &$recipe.wire {
            Wire::Grpc { $channel, metadata, .. } => $recipe.grpc($builder.with_tonic(), $channel, metadata).build(),
            Wire::Http { $url, .. } => $recipe.http($builder.with_http(), $url).build(),
        }
        .map_err(|e| TransportError::Build(e.to_string()))
    };
}

impl Recipe {
    fn span_exporter(&self) -> Result<opentelemetry_otlp::SpanExporter, TransportError> {
        build_exporter!(self, opentelemetry_otlp::SpanExporter::builder(), traces, traces_url)
    }

    fn log_exporter(&self) -> Result<opentelemetry_otlp::LogExporter, TransportError> {
        build_exporter!(self, opentelemetry_otlp::LogExporter::builder(), logs, logs_url)
    }

    fn grpc<B: WithTonicConfig + WithExportConfig>(
        &self,
        builder: B,
        channel: &tonic::transport::Channel,
        metadata: &tonic::metadata::MetadataMap,
    ) -> B {
        let builder = builder
            .with_channel(channel.clone())
            .with_metadata(metadata.clone())
            .with_timeout(self.timeout)
            .with_retry_policy(RetryPolicy::disabled());
        match self.compression {
            Some(compression) => builder.with_compression(compression),
            None => builder,
        }
    }

    fn http<B: WithHttpConfig + WithExportConfig>(&self, builder: B, url: &str) -> B {
        let Wire::Http {
            client,
            headers,
            protocol,
            ..
        } = &self.wire
        else {
            unreachable!("http() is only called for the HTTP wire")
        };
        let builder = builder
            .with_shared_http_client(client.clone())
            .with_endpoint(url)
            .with_protocol(*protocol)
            .with_headers(headers.clone())
            .with_timeout(self.timeout)
            .with_retry_policy(RetryPolicy::disabled());
        match self.compression {
            Some(compression) => builder.with_compression(compression),
            None => builder,
        }
    }
}

/// One exporter per resource (service name) and signal, created on first use; they share the
/// gRPC channel or the HTTP client.
#[derive(Default)]
struct Exporters {
    spans: HashMap<String, opentelemetry_otlp::SpanExporter>,
    logs: HashMap<String, opentelemetry_otlp::LogExporter>,
}

// One per transport: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Otlp {
        recipe: Recipe,
        /// Also serialises attempts: the observed slot belongs to the attempt in flight.
        exporters: tokio::sync::Mutex<Exporters>,
        observed: Option<Arc<Mutex<Option<Observed>>>>,
        json: bool,
    },
    Stdout(Mutex<Box<dyn Write + Send>>),
}

/// Sends batches of spans or log records, one attempt at a time.
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
        let compression = otlp_compression(settings.compression);
        let timeout = settings.timeout;
        let otlp = |wire, observed, json| Backend::Otlp {
            recipe: Recipe {
                wire,
                compression,
                timeout,
            },
            exporters: Default::default(),
            observed,
            json,
        };
        let backend = match settings.protocol {
            Protocol::Stdout => Backend::Stdout(Mutex::new(stdout)),
            Protocol::Grpc => {
                let traces = grpc_channel(settings, &settings.endpoint)?;
                let logs = match &settings.logs_endpoint {
                    Some(endpoint) => grpc_channel(settings, endpoint)?,
                    None => traces.clone(),
                };
                let metadata = grpc_metadata(settings)?;
                otlp(Wire::Grpc { traces, logs, metadata }, None, false)
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let client = ObservingHttpClient {
                    client: http_client(settings)?,
                    last: Arc::default(),
                };
                let observed = client.last.clone();
                let traces_url = checked_url(settings.http_traces_url())?;
                let logs_url = checked_url(settings.http_logs_url())?;
                let headers: HashMap<String, String> = settings
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_owned()))
                    .collect();
                let json = settings.protocol == Protocol::HttpJson;
                let protocol = if json {
                    opentelemetry_otlp::Protocol::HttpJson
                } else {
                    opentelemetry_otlp::Protocol::HttpBinary
                };
                let wire = Wire::Http {
                    client: Arc::new(client),
                    traces_url,
                    logs_url,
                    headers,
                    protocol,
                };
                otlp(wire, Some(observed), json)
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
                write_line(out, &ExportTraceServiceRequest { resource_spans })
            }
            Backend::Otlp {
                recipe,
                exporters,
                observed,
                json,
            } => {
                let mut exporters = exporters.lock().await;
                let exporter =
                    match exporter_for(&mut exporters.spans, service_name, resource, || recipe.span_exporter()) {
                        Ok(exporter) => exporter,
                        Err(refused) => return refused,
                    };
                attempt(
                    observed.as_ref(),
                    *json,
                    exporter.export(batch),
                    |r: ExportTraceServiceResponse| r.partial_success.map(|p| (p.rejected_spans, p.error_message)),
                )
                .await
            }
        }
    }

    /// One attempt to deliver the log records `batch` under `resource`.
    pub async fn send_logs(&self, service_name: &str, resource: &Resource, batch: &[BridgeLog]) -> Disposition {
        let records = SdkLogs::new(batch);
        let pairs = records.pairs();
        let logs = LogBatch::new(&pairs);
        match &self.backend {
            Backend::Stdout(out) => {
                let resource_logs =
                    group_logs_by_resource_and_scope(&logs, &ResourceAttributesWithSchema::from(resource));
                write_line(out, &ExportLogsServiceRequest { resource_logs })
            }
            Backend::Otlp {
                recipe,
                exporters,
                observed,
                json,
            } => {
                let mut exporters = exporters.lock().await;
                let exporter = match exporter_for(&mut exporters.logs, service_name, resource, || recipe.log_exporter())
                {
                    Ok(exporter) => exporter,
                    Err(refused) => return refused,
                };
                attempt(
                    observed.as_ref(),
                    *json,
                    exporter.export(logs),
                    |r: ExportLogsServiceResponse| r.partial_success.map(|p| (p.rejected_log_records, p.error_message)),
                )
                .await
            }
        }
    }
}

/// The exporter of `service_name`, built and given its resource on first use. A failure to
/// build is retried like a failed attempt.
fn exporter_for<'a, E: ExporterWithResource>(
    exporters: &'a mut HashMap<String, E>,
    service_name: &str,
    resource: &Resource,
    build: impl FnOnce() -> Result<E, TransportError>,
) -> Result<&'a E, Disposition> {
    if !exporters.contains_key(service_name) {
        let mut exporter = build().map_err(|e| Disposition::Retry {
            after: None,
            reason: e.to_string(),
        })?;
        exporter.apply_resource(resource);
        exporters.insert(service_name.to_owned(), exporter);
    }
    Ok(&exporters[service_name])
}

/// `set_resource` is a method of two different SDK traits (spans and logs).
trait ExporterWithResource {
    fn apply_resource(&mut self, resource: &Resource);
}

impl ExporterWithResource for opentelemetry_otlp::SpanExporter {
    fn apply_resource(&mut self, resource: &Resource) {
        opentelemetry_sdk::trace::SpanExporter::set_resource(self, resource);
    }
}

impl ExporterWithResource for opentelemetry_otlp::LogExporter {
    fn apply_resource(&mut self, resource: &Resource) {
        opentelemetry_sdk::logs::LogExporter::set_resource(self, resource);
    }
}

/// One export attempt and its disposition: the observed slot is cleared before and read after;
/// `read` takes the rejected count and message out of the signal's response type.
async fn attempt<R: Message + Default + serde::de::DeserializeOwned>(
    observed: Option<&Arc<Mutex<Option<Observed>>>>,
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

/// Protocol `stdout`: one OTLP/JSON request per line.
fn write_line(out: &Mutex<Box<dyn Write + Send>>, request: &impl serde::Serialize) -> Disposition {
    let line = match serde_json::to_string(request) {
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

fn checked_url(url: String) -> Result<String, TransportError> {
    match url.parse::<http::Uri>() {
        Ok(_) => Ok(url),
        Err(e) => Err(TransportError::Endpoint {
            endpoint: url,
            reason: e.to_string(),
        }),
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

/// OTLP/HTTP success bodies may carry `partial_success` (records the collector refused);
/// `read` takes the rejected count and message out of the signal's response type.
fn partial_success<R: Message + Default + serde::de::DeserializeOwned>(
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

/// A lazily connecting channel to `url`, with the TLS settings of `[export]`.
fn grpc_channel(settings: &ExportSettings, url: &str) -> Result<tonic::transport::Channel, TransportError> {
    let bad = |reason: String| TransportError::Endpoint {
        endpoint: url.to_owned(),
        reason,
    };
    let mut endpoint = tonic::transport::Channel::from_shared(url.to_owned())
        .map_err(|e| bad(e.to_string()))?
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout);
    let tls_wanted = url.starts_with("https://") || settings.ca_file.is_some();
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
