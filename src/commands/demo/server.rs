//! The demo's embedded server on 127.0.0.1 (a port the OS picks): a fake Trigger.dev API
//! answering for the sample runs as they progress (and listing them, for the daemon's start-up
//! check), and an OTLP/HTTP `/v1/traces` receiver (the
//! demo's in-process sink, used when no collector is given).
//!
//! Its two halves are also the core of the test kit's fakes (tests/support), so that the tree has
//! one fake API and one receiver: [`run_routes`] answers the run endpoints from any
//! [`RunBodies`] (here the sample timeline; there runs a test changes, behind faults, a
//! rate-limit bucket and the list endpoint), and [`OtlpEncoding`] decodes and answers an OTLP/HTTP
//! export (there also compressed, for logs and metrics, over gRPC too).

use super::samples::Timeline;
use crate::net::serving::Served;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a fake Trigger.dev API answers for a run at this moment: the JSON bodies of its events,
/// trace and retrieve-run endpoints, serialised; `None` for a run (or trace) it does not know.
pub trait RunBodies: Send + Sync + 'static {
    fn events(&self, run_id: &str) -> Option<Bytes>;
    fn trace(&self, run_id: &str) -> Option<Bytes>;
    fn run(&self, run_id: &str) -> Option<Bytes>;
}

/// `GET /api/v1/runs/{id}/events`, `GET /api/v1/runs/{id}/trace` and `GET /api/v3/runs/{id}`
/// answered from `runs` as Trigger.dev answers them: the JSON body, or 404 with
/// `{"error": "Run not found"}` (`"Trace not found"` from the trace endpoint).
pub fn run_routes<R: RunBodies>(runs: Arc<R>) -> Router {
    Router::new()
        .route(
            "/api/v1/runs/{run}/events",
            get(|State(runs): State<Arc<R>>, Path(id): Path<String>| async move {
                found(runs.events(&id), "Run not found")
            }),
        )
        .route(
            "/api/v1/runs/{run}/trace",
            get(|State(runs): State<Arc<R>>, Path(id): Path<String>| async move {
                found(runs.trace(&id), "Trace not found")
            }),
        )
        .route(
            "/api/v3/runs/{run}",
            get(|State(runs): State<Arc<R>>, Path(id): Path<String>| async move {
                found(runs.run(&id), "Run not found")
            }),
        )
        .with_state(runs)
}

fn found(body: Option<Bytes>, missing: &str) -> Response {
    match body {
        Some(body) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": missing }).to_string(),
        )
            .into_response(),
    }
}

/// How an OTLP/HTTP export is encoded, by its content type: protobuf, or JSON when the type says
/// so. The answer goes back in the same encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    Protobuf,
    Json,
}

impl OtlpEncoding {
    pub fn of(headers: &HeaderMap) -> OtlpEncoding {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        if json {
            OtlpEncoding::Json
        } else {
            OtlpEncoding::Protobuf
        }
    }

    /// One export request from an uncompressed body; the decoder's error otherwise.
    pub fn decode<R: Message + Default + serde::de::DeserializeOwned>(self, body: &[u8]) -> Result<R, String> {
        match self {
            OtlpEncoding::Json => serde_json::from_slice(body).map_err(|e| e.to_string()),
            OtlpEncoding::Protobuf => R::decode(body).map_err(|e| e.to_string()),
        }
    }

    /// 200 with an empty export response `R` (full success), as a collector answers.
    pub fn accepted<R: Message + Default + serde::Serialize>(self) -> Response {
        self.answer(&R::default())
    }

    /// 200 with `response` (an export response, a partial success perhaps) in this encoding.
    pub fn answer<R: Message + serde::Serialize>(self, response: &R) -> Response {
        match self {
            OtlpEncoding::Json => {
                let body = serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec());
                (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
            }
            OtlpEncoding::Protobuf => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                response.encode_to_vec(),
            )
                .into_response(),
        }
    }
}

/// The sample runs as they stand at demo time now.
struct Samples {
    timeline: Arc<Timeline>,
    started: Instant,
}

impl Samples {
    /// Demo time: wall-clock time since the start, times the speed.
    fn now_ms(&self) -> u64 {
        (self.started.elapsed().as_secs_f64() * 1000.0 * self.timeline.speed()) as u64
    }

    fn body(
        &self,
        run_id: &str,
        make: fn(&Timeline, &super::samples::DemoRun, u64) -> serde_json::Value,
    ) -> Option<Bytes> {
        let run = self.timeline.run(run_id)?;
        Some(Bytes::from(make(&self.timeline, run, self.now_ms()).to_string()))
    }
}

impl RunBodies for Samples {
    fn events(&self, run_id: &str) -> Option<Bytes> {
        self.body(run_id, Timeline::events_body)
    }

    fn trace(&self, run_id: &str) -> Option<Bytes> {
        self.body(run_id, Timeline::trace_body)
    }

    fn run(&self, run_id: &str) -> Option<Bytes> {
        self.body(run_id, Timeline::run_body)
    }
}

/// OTLP/HTTP, protobuf or JSON, uncompressed (the demo configures its exporter so).
async fn traces(State(received): State<Arc<Mutex<Vec<Span>>>>, headers: HeaderMap, body: Bytes) -> Response {
    let encoding = OtlpEncoding::of(&headers);
    let request: ExportTraceServiceRequest = match encoding.decode(&body) {
        Ok(request) => request,
        Err(error) => return (StatusCode::BAD_REQUEST, error).into_response(),
    };
    let spans = request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans);
    received.lock().unwrap_or_else(|e| e.into_inner()).extend(spans);
    encoding.accepted::<ExportTraceServiceResponse>()
}

/// The running server; [`DemoServer::stop`] shuts it down.
pub struct DemoServer {
    pub addr: SocketAddr,
    /// Every span the `/v1/traces` receiver accepted.
    pub received: Arc<Mutex<Vec<Span>>>,
    served: Served,
}

impl DemoServer {
    /// Serve `timeline` on 127.0.0.1 from now on (demo time 0 is now).
    pub async fn start(timeline: Arc<Timeline>) -> std::io::Result<DemoServer> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let samples = Arc::new(Samples {
            timeline,
            started: Instant::now(),
        });
        let receiver = Router::new()
            .route("/v1/traces", post(traces))
            .with_state(received.clone());
        let list = Router::new()
            .route(
                "/api/v1/runs",
                get(|State(samples): State<Arc<Samples>>| async move {
                    let body = samples.timeline.list_body(samples.now_ms()).to_string();
                    found(Some(Bytes::from(body)), "")
                }),
            )
            .with_state(samples.clone());
        let app = run_routes(samples)
            .merge(list)
            .merge(receiver)
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024));
        let served = Served::on_loopback(app).await?;
        Ok(DemoServer {
            addr: served.addr(),
            received,
            served,
        })
    }

    pub fn url(&self) -> String {
        self.served.url()
    }

    pub async fn stop(self) {
        if let Err(error) = self.served.stop(Duration::from_secs(5)).await {
            tracing::warn!(%error, "the demo's embedded server failed");
        }
    }
}
