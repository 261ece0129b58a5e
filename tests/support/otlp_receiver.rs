//! The OTLP receiver of every test and benchmark: opentelemetry-proto's generated tonic
//! `TraceService`, `LogsService` and `MetricsService` on one loopback port, and axum
//! `/v1/traces`, `/v1/logs` and `/v1/metrics` endpoints on another (protobuf or JSON as the
//! library's `OtlpEncoding` reads them, the demo's receiver's core; gzip or zstd bodies). It
//! records every request it accepted, or for a benchmark only counts them
//! ([`Receiver::counting`]), and can be scripted to fail, or to accept with a partial success
//! ([`Recorder::partial_success`]).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use trigger_otel_bridge::commands::demo::server::OtlpEncoding;
use trigger_otel_bridge::net::serving::Served;

/// A scripted answer for the next request instead of accepting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 / gRPC Unavailable.
    Unavailable,
}

#[derive(Default)]
pub struct Recorder {
    pub requests: Mutex<Vec<ExportTraceServiceRequest>>,
    pub log_requests: Mutex<Vec<ExportLogsServiceRequest>>,
    pub metric_requests: Mutex<Vec<ExportMetricsServiceRequest>>,
    /// Keep only the counts below, not the requests (a benchmark's receiver must stay small).
    pub counting_only: AtomicBool,
    /// Spans accepted, duplicates included.
    pub span_count: AtomicU64,
    /// Distinct span ids accepted (to tell duplicates from new spans).
    pub span_ids: Mutex<HashSet<Vec<u8>>>,
    /// When each span id first arrived (freshness benchmarks).
    pub first_arrival: Mutex<HashMap<Vec<u8>, std::time::Instant>>,
    pub faults: Mutex<VecDeque<Fault>>,
    /// Requests holding a span with this name, or a log record with this body, are rejected as
    /// invalid data (400 / InvalidArgument).
    pub poison_name: Mutex<Option<String>>,
    pub attempts: Mutex<u64>,
    /// Every request before this instant is answered as unavailable (a collector outage).
    pub down_until: Mutex<Option<std::time::Instant>>,
    /// Requests with more records than this are refused as too large (gRPC ResourceExhausted,
    /// as a Go collector answers a message over its size limit; HTTP 413).
    pub max_records: Mutex<Option<usize>>,
    /// Added before answering each request (a slow collector).
    pub delay: Mutex<std::time::Duration>,
    pub content_encodings: Mutex<Vec<String>>,
    /// The headers (HTTP) or metadata (gRPC) of every request.
    pub headers: Mutex<Vec<HeaderMap>>,
    /// Bodies the HTTP endpoints could not decode (answered 400), with the decoder's error.
    pub decode_errors: Mutex<Vec<String>>,
    /// Every OTLP/HTTP body as it arrived, decompressed (byte-exact comparisons).
    pub bodies: Mutex<Vec<Vec<u8>>>,
    /// Accepted requests are answered with this `partial_success` (records rejected, message),
    /// over gRPC and HTTP, as a collector that drops some of what it accepted.
    pub partial_success: Mutex<Option<(i64, String)>>,
}

pub enum Verdict {
    Accept,
    Unavailable,
    Invalid,
    TooLarge,
}

/// A request of any signal, as decoded.
pub trait Export: prost::Message + Default + serde::de::DeserializeOwned + Clone + 'static {
    type Response: prost::Message + Default + serde::Serialize;
    /// What a record is, for error messages.
    const RECORD: &'static str;
    /// Span names, log bodies or metric names (what `poison_name` is matched against).
    fn names(&self) -> Vec<String>;
    fn record(self, recorder: &Recorder);
    /// An answer whose `partial_success` reports `rejected` records and `message`.
    fn partial(rejected: i64, message: String) -> Self::Response;
}

impl Export for ExportTraceServiceRequest {
    type Response = ExportTraceServiceResponse;
    const RECORD: &'static str = "span";
    fn names(&self) -> Vec<String> {
        spans_of(self).into_iter().map(|s| s.name).collect()
    }
    fn partial(rejected: i64, message: String) -> Self::Response {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
        ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message,
            }),
        }
    }
    fn record(self, recorder: &Recorder) {
        let mut count = 0;
        {
            let mut ids = recorder.span_ids.lock().unwrap();
            let mut arrivals = recorder.first_arrival.lock().unwrap();
            let now = std::time::Instant::now();
            for span in self
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
            {
                if ids.insert(span.span_id.clone()) {
                    arrivals.insert(span.span_id.clone(), now);
                }
                count += 1;
            }
        }
        recorder.span_count.fetch_add(count, Ordering::Relaxed);
        if !recorder.counting_only.load(Ordering::Relaxed) {
            recorder.requests.lock().unwrap().push(self);
        }
    }
}

impl Export for ExportLogsServiceRequest {
    type Response = ExportLogsServiceResponse;
    const RECORD: &'static str = "log record";
    fn names(&self) -> Vec<String> {
        logs_of(self).into_iter().map(|l| body_text(&l)).collect()
    }
    fn partial(rejected: i64, message: String) -> Self::Response {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
        ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: message,
            }),
        }
    }
    fn record(self, recorder: &Recorder) {
        recorder.log_requests.lock().unwrap().push(self);
    }
}

impl Export for ExportMetricsServiceRequest {
    type Response = ExportMetricsServiceResponse;
    const RECORD: &'static str = "metric";
    fn names(&self) -> Vec<String> {
        metrics_of(self).into_iter().map(|m| m.name).collect()
    }
    fn partial(rejected: i64, message: String) -> Self::Response {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;
        ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: message,
            }),
        }
    }
    fn record(self, recorder: &Recorder) {
        recorder.metric_requests.lock().unwrap().push(self);
    }
}

impl Recorder {
    fn judge<R: Export>(&self, request: &R) -> Verdict {
        *self.attempts.lock().unwrap() += 1;
        if let Some(Fault::Unavailable) = self.faults.lock().unwrap().pop_front() {
            return Verdict::Unavailable;
        }
        if self
            .down_until
            .lock()
            .unwrap()
            .is_some_and(|until| std::time::Instant::now() < until)
        {
            return Verdict::Unavailable;
        }
        if self
            .max_records
            .lock()
            .unwrap()
            .is_some_and(|max| request.names().len() > max)
        {
            return Verdict::TooLarge;
        }
        if let Some(poison) = self.poison_name.lock().unwrap().as_deref() {
            if request.names().iter().any(|name| name == poison) {
                return Verdict::Invalid;
            }
        }
        request.clone().record(self);
        Verdict::Accept
    }

    /// The answer to an accepted request: empty, or the scripted partial success.
    fn accepted<R: Export>(&self) -> Option<R::Response> {
        let partial = self.partial_success.lock().unwrap().clone();
        partial.map(|(rejected, message)| R::partial(rejected, message))
    }

    pub fn spans(&self) -> Vec<Span> {
        self.requests.lock().unwrap().iter().flat_map(spans_of).collect()
    }

    pub fn logs(&self) -> Vec<LogRecord> {
        self.log_requests.lock().unwrap().iter().flat_map(logs_of).collect()
    }

    pub fn metrics(&self) -> Vec<Metric> {
        self.metric_requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(metrics_of)
            .collect()
    }

    /// Spans accepted so far, duplicates included (kept by a counting receiver too).
    pub fn span_count(&self) -> u64 {
        self.span_count.load(Ordering::Relaxed)
    }

    /// Distinct span ids accepted so far (kept by a counting receiver too).
    pub fn distinct_spans(&self) -> usize {
        self.span_ids.lock().unwrap().len()
    }
}

pub fn spans_of(request: &ExportTraceServiceRequest) -> Vec<Span> {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect()
}

pub fn logs_of(request: &ExportLogsServiceRequest) -> Vec<LogRecord> {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| s.log_records.clone())
        .collect()
}

pub fn metrics_of(request: &ExportMetricsServiceRequest) -> Vec<Metric> {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| s.metrics.clone())
        .collect()
}

/// A log record's body as text ("" when it is not a string).
pub fn body_text(record: &LogRecord) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(text)) => text.clone(),
        _ => String::new(),
    }
}

struct Grpc(Arc<Recorder>);

impl Grpc {
    async fn export<R: Export>(
        &self,
        request: tonic::Request<R>,
    ) -> Result<tonic::Response<R::Response>, tonic::Status> {
        self.0
            .headers
            .lock()
            .unwrap()
            .push(request.metadata().clone().into_headers());
        let delay = *self.0.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        match self.0.judge(request.get_ref()) {
            Verdict::Accept => Ok(tonic::Response::new(self.0.accepted::<R>().unwrap_or_default())),
            Verdict::Unavailable => Err(tonic::Status::unavailable("scripted outage")),
            Verdict::Invalid => Err(tonic::Status::invalid_argument(format!("poisoned {}", R::RECORD))),
            Verdict::TooLarge => Err(tonic::Status::resource_exhausted("received message larger than max")),
        }
    }
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        Grpc::export(self, request).await
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        Grpc::export(self, request).await
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        Grpc::export(self, request).await
    }
}

/// `/v1/traces`, `/v1/logs` and `/v1/metrics`: decompress, decode, judge, answer like a
/// collector.
async fn http_export<R: Export>(
    State(recorder): State<Arc<Recorder>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let encoding = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_owned();
    recorder.content_encodings.lock().unwrap().push(encoding.clone());
    recorder.headers.lock().unwrap().push(headers.clone());
    let raw = match encoding.as_str() {
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out).unwrap();
            out
        }
        // The zstd crate is the bridge's own (it compresses OTLP/HTTP bodies with it).
        "zstd" => zstd::stream::decode_all(&body[..]).unwrap(),
        _ => body.to_vec(),
    };
    recorder.bodies.lock().unwrap().push(raw.clone());
    let otlp = OtlpEncoding::of(&headers);
    let request: R = match otlp.decode(&raw) {
        Ok(request) => request,
        Err(error) => {
            recorder.decode_errors.lock().unwrap().push(error.clone());
            return (StatusCode::BAD_REQUEST, error).into_response();
        }
    };
    let delay = *recorder.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    match recorder.judge(&request) {
        Verdict::Accept => match recorder.accepted::<R>() {
            None => otlp.accepted::<R::Response>(),
            Some(response) => {
                let (content_type, body) = match otlp {
                    OtlpEncoding::Json => ("application/json", serde_json::to_vec(&response).unwrap()),
                    OtlpEncoding::Protobuf => ("application/x-protobuf", prost::Message::encode_to_vec(&response)),
                };
                (StatusCode::OK, [("content-type", content_type)], body).into_response()
            }
        },
        Verdict::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "0")],
            "scripted outage",
        )
            .into_response(),
        Verdict::Invalid => (StatusCode::BAD_REQUEST, "poisoned record").into_response(),
        Verdict::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "request too large").into_response(),
    }
}

/// gRPC messages up to this size are read: any batch a benchmark sends (tonic's default is
/// 4 MiB).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

pub struct Receiver {
    pub recorder: Arc<Recorder>,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    grpc_stop: oneshot::Sender<()>,
    grpc: tokio::task::JoinHandle<()>,
    http: Served,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::serve(Recorder::default()).await
    }

    /// A receiver that keeps only counts of what it accepted ([`Recorder::span_count`],
    /// [`Recorder::distinct_spans`]), for benchmarks.
    pub async fn counting() -> Receiver {
        Receiver::serve(Recorder {
            counting_only: AtomicBool::new(true),
            ..Recorder::default()
        })
        .await
    }

    async fn serve(recorder: Recorder) -> Receiver {
        let recorder = Arc::new(recorder);
        let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc_addr = grpc_listener.local_addr().unwrap();
        let http_addr = http_listener.local_addr().unwrap();
        let (grpc_stop, grpc_stopped) = oneshot::channel::<()>();
        use tonic::codec::CompressionEncoding::{Gzip, Zstd};
        let traces = TraceServiceServer::new(Grpc(recorder.clone()))
            .accept_compressed(Gzip)
            .accept_compressed(Zstd)
            .max_decoding_message_size(MAX_MESSAGE);
        let logs = LogsServiceServer::new(Grpc(recorder.clone()))
            .accept_compressed(Gzip)
            .accept_compressed(Zstd)
            .max_decoding_message_size(MAX_MESSAGE);
        let metrics = MetricsServiceServer::new(Grpc(recorder.clone()))
            .accept_compressed(Gzip)
            .accept_compressed(Zstd)
            .max_decoding_message_size(MAX_MESSAGE);
        let grpc = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(traces)
                .add_service(logs)
                .add_service(metrics)
                .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(grpc_listener), async {
                    let _ = grpc_stopped.await;
                })
                .await
                .unwrap();
        });
        let app = axum::Router::new()
            .route(
                "/v1/traces",
                axum::routing::post(http_export::<ExportTraceServiceRequest>),
            )
            .route("/v1/logs", axum::routing::post(http_export::<ExportLogsServiceRequest>))
            .route(
                "/v1/metrics",
                axum::routing::post(http_export::<ExportMetricsServiceRequest>),
            )
            .with_state(recorder.clone())
            // Like the gRPC side: any size a test or a peer sends (axum's default stops at 2 MB;
            // the SDK peers send a whole run in one request).
            .layer(axum::extract::DefaultBodyLimit::max(256 << 20));
        let http = Served::spawn(http_listener, app).unwrap();
        Receiver {
            recorder,
            grpc_addr,
            http_addr,
            grpc_stop,
            grpc,
            http,
        }
    }

    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    pub async fn stop(self) {
        let _ = self.grpc_stop.send(());
        let _ = self.grpc.await;
        self.http.stop(std::time::Duration::from_secs(5)).await.unwrap();
    }
}
