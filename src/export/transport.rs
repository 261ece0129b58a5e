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
//!
//! `transport/observe.rs` reads what an attempt did; `transport/connection.rs` builds the channel,
//! client and TLS material the exporters send through.

use super::policy::Disposition;
use super::settings::ExportSettings;
use super::ExportError;
use crate::config::Protocol;
use crate::convert::otlp::SdkLogs;
use crate::convert::BridgeLog;
use opentelemetry_http::HttpClient;
use opentelemetry_otlp::{RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod connection;
mod observe;
use connection::{checked_url, grpc_channel, grpc_metadata, header_map, http_client, otlp_compression};
pub use observe::ObservingHttpClient;
use observe::{attempt, Slot};

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
        .map_err(|e| ExportError::Build(e.to_string()))
    };
}

impl Recipe {
    fn span_exporter(&self) -> Result<opentelemetry_otlp::SpanExporter, ExportError> {
        build_exporter!(self, opentelemetry_otlp::SpanExporter::builder(), traces, traces_url)
    }

    fn log_exporter(&self) -> Result<opentelemetry_otlp::LogExporter, ExportError> {
        build_exporter!(self, opentelemetry_otlp::LogExporter::builder(), logs, logs_url)
    }

    fn grpc<B: WithTonicConfig + WithExportConfig>(
        &self,
        builder: B,
        channel: &tonic::transport::Channel,
        metadata: &tonic::metadata::MetadataMap,
    ) -> B {
        // An interceptor, not `with_metadata`: opentelemetry-otlp appends the values of
        // OTEL_EXPORTER_OTLP_HEADERS to the metadata it is given, and runs the interceptor
        // after that, so here the bridge's resolved headers (the file's win) replace them.
        let metadata = metadata.clone();
        let resolved = move |mut request: tonic::Request<()>| {
            for entry in metadata.iter() {
                match entry {
                    tonic::metadata::KeyAndValueRef::Ascii(key, value) => {
                        request.metadata_mut().insert(key.clone(), value.clone());
                    }
                    // A name ending in `-bin` is binary metadata (its value base64 on the wire).
                    tonic::metadata::KeyAndValueRef::Binary(key, value) => {
                        request.metadata_mut().insert_bin(key.clone(), value.clone());
                    }
                }
            }
            Ok(request)
        };
        let builder = builder
            .with_channel(channel.clone())
            .with_interceptor(resolved)
            .with_timeout(self.timeout)
            .with_retry_policy(RetryPolicy::disabled());
        match self.compression {
            Some(compression) => builder.with_compression(compression),
            None => builder,
        }
    }

    fn http<B: WithHttpConfig + WithExportConfig>(&self, builder: B, url: &str) -> B {
        let Wire::Http { client, protocol, .. } = &self.wire else {
            unreachable!("http() is only called for the HTTP wire")
        };
        let builder = builder
            .with_shared_http_client(client.clone())
            .with_endpoint(url)
            .with_protocol(*protocol)
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
        observed: Option<Slot>,
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
    pub fn new(settings: &ExportSettings) -> Result<Self, ExportError> {
        Self::with_stdout(settings, Box::new(std::io::stdout()))
    }

    /// Like [`Transport::new`]; `stdout` receives the OTLP/JSON lines of protocol `stdout`.
    pub fn with_stdout(settings: &ExportSettings, stdout: Box<dyn Write + Send>) -> Result<Self, ExportError> {
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
                // The headers go on each request in the client, not through `with_headers`:
                // opentelemetry-otlp would let OTEL_EXPORTER_OTLP_HEADERS replace the file's.
                let client = ObservingHttpClient::new(http_client(settings)?, header_map(settings)?);
                let observed = client.slot();
                let traces_url = checked_url(settings.http_traces_url())?;
                let logs_url = checked_url(settings.http_logs_url())?;
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
    build: impl FnOnce() -> Result<E, ExportError>,
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
