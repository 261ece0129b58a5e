//! Transport: one OTLP request of one batch, encoded once ([`Transport::encode`]), then sent as
//! often as the sender asks ([`Transport::send`]): over gRPC (tonic), OTLP/HTTP (the bridge's
//! reqwest client) or as an OTLP/JSON line on stdout.
//!
//! The bridge sends the requests itself, as software that forwards telemetry does (the OTel
//! Collector, Rotel, Vector), rather than through an SDK exporter: a retry resends the bytes it
//! already has, and each attempt's answer is read whole — status, `Retry-After` or gRPC
//! `RetryInfo`, and the collector's `partial_success` over both protocols.
//!
//! - `transport/connection.rs`: the gRPC channel, the HTTP client, TLS material, headers.
//! - `transport/grpc.rs`: the gRPC call of pre-encoded bytes.
//! - `transport/http.rs`: the OTLP/HTTP POST and its body compression.
//! - `transport/observe.rs`: what an answer means ([`Disposition`]), partial success included.
//! - `transport/failure.rs`: a failed attempt told in full: endpoint, cause, setting to check.

use super::policy::Disposition;
use super::settings::ExportSettings;
use super::ExportError;
use crate::config::Protocol;
use crate::telemetry::events::Signal;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use std::io::Write;
use std::marker::PhantomData;
use std::sync::Mutex;

mod connection;
mod failure;
mod grpc;
mod http;
mod observe;

/// An OTLP export request of one signal: what it is sent as, and how its answer reports
/// records the collector rejected.
pub trait OtlpRequest: prost::Message + serde::Serialize + Send + Sync + Sized + 'static {
    const SIGNAL: Signal;
    /// The gRPC method that takes this request.
    const GRPC_PATH: &'static str;
    type Response: prost::Message + Default + serde::de::DeserializeOwned;
    /// The answer's `partial_success`: records rejected and the collector's message.
    fn rejected(response: Self::Response) -> Option<(i64, String)>;
}

impl OtlpRequest for ExportTraceServiceRequest {
    const SIGNAL: Signal = Signal::Traces;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    type Response = ExportTraceServiceResponse;
    fn rejected(response: Self::Response) -> Option<(i64, String)> {
        response
            .partial_success
            .map(|partial| (partial.rejected_spans, partial.error_message))
    }
}

impl OtlpRequest for ExportLogsServiceRequest {
    const SIGNAL: Signal = Signal::Logs;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    type Response = ExportLogsServiceResponse;
    fn rejected(response: Self::Response) -> Option<(i64, String)> {
        response
            .partial_success
            .map(|partial| (partial.rejected_log_records, partial.error_message))
    }
}

/// One request as the configured protocol sends it: protobuf (gRPC, `http/protobuf`) or
/// OTLP/JSON (`http/json`, `stdout`), compressed already for OTLP/HTTP (gRPC compresses per
/// call, inside tonic). Cheap to resend: the bytes are shared, not copied.
pub struct Encoded<R> {
    bytes: Bytes,
    /// `Content-Encoding` of an OTLP/HTTP body.
    content_encoding: Option<&'static str>,
    request: PhantomData<fn() -> R>,
}

impl<R> Encoded<R> {
    /// The encoded (and, for OTLP/HTTP, compressed) size.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

// One per transport: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Grpc(grpc::GrpcWire),
    Http(http::HttpWire),
    Stdout(Mutex<Box<dyn Write + Send>>),
}

/// Sends encoded requests of spans or log records, one attempt per call. Attempts of different
/// batches may be in flight at once (the `export` command sends several runs concurrently).
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
        let backend = match settings.protocol {
            Protocol::Stdout => Backend::Stdout(Mutex::new(stdout)),
            Protocol::Grpc => Backend::Grpc(grpc::GrpcWire::new(settings)?),
            Protocol::HttpProtobuf | Protocol::HttpJson => Backend::Http(http::HttpWire::new(settings)?),
        };
        Ok(Transport {
            backend,
            protocol: settings.protocol,
        })
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// A request as every attempt of it will send it: its protobuf encoding, which `protobuf`
    /// writes (gRPC, and OTLP/HTTP protobuf compressed as configured), or the OTLP/JSON of the
    /// request `request` builds (http/json, stdout). Once per batch: the sender keeps the result
    /// for the batch's retries. On the protobuf path no request is built at all: the sender
    /// encodes a batch's spans in place.
    pub fn encode<R: OtlpRequest>(
        &self,
        protobuf: impl FnOnce() -> Vec<u8>,
        request: impl FnOnce() -> R,
    ) -> Result<Encoded<R>, ExportError> {
        let encoded = |bytes: Vec<u8>, content_encoding| Encoded {
            bytes: Bytes::from(bytes),
            content_encoding,
            request: PhantomData,
        };
        let json_error = |e: serde_json::Error| ExportError::Encode(format!("OTLP/JSON: {e}"));
        Ok(match &self.backend {
            Backend::Grpc(_) => encoded(protobuf(), None),
            Backend::Http(wire) => {
                // http/json as `opentelemetry-otlp` wrote it (pretty-printed), byte for byte.
                let body = if wire.json() {
                    serde_json::to_vec_pretty(&request()).map_err(json_error)?
                } else {
                    protobuf()
                };
                let (body, content_encoding) = wire.compress(body)?;
                encoded(body, content_encoding)
            }
            Backend::Stdout(_) => {
                let mut line = serde_json::to_vec(&request()).map_err(json_error)?;
                line.push(b'\n');
                encoded(line, None)
            }
        })
    }

    /// One attempt to deliver `request`.
    pub async fn send<R: OtlpRequest>(&self, request: &Encoded<R>) -> Disposition {
        match &self.backend {
            Backend::Grpc(wire) => wire.send::<R>(request.bytes.clone()).await,
            Backend::Http(wire) => wire.send::<R>(request.bytes.clone(), request.content_encoding).await,
            Backend::Stdout(out) => write_line(out, &request.bytes),
        }
    }
}

/// Protocol `stdout`: one OTLP/JSON request per line (`line` ends with its newline).
fn write_line(out: &Mutex<Box<dyn Write + Send>>, line: &[u8]) -> Disposition {
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    match out.write_all(line).and_then(|_| out.flush()) {
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
