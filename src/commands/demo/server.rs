//! The demo's embedded server on 127.0.0.1 (a port the OS picks): a fake Trigger.dev API
//! answering for the sample runs as they progress, and an OTLP/HTTP `/v1/traces` receiver (the
//! demo's in-process sink, used when no collector is given).

use super::samples::Timeline;
use crate::net::serving::Served;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Shared {
    timeline: Arc<Timeline>,
    started: Instant,
    received: Arc<Mutex<Vec<Span>>>,
}

impl Shared {
    /// Demo time: wall-clock time since the start, times the speed.
    fn now_ms(&self) -> u64 {
        (self.started.elapsed().as_secs_f64() * 1000.0 * self.timeline.speed()) as u64
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({"error": "Run not found"}))
}

async fn events(State(shared): State<Arc<Shared>>, Path(run): Path<String>) -> Response {
    match shared.timeline.run(&run) {
        Some(run) => json_response(StatusCode::OK, &shared.timeline.events_body(run, shared.now_ms())),
        None => not_found(),
    }
}

async fn trace(State(shared): State<Arc<Shared>>, Path(run): Path<String>) -> Response {
    match shared.timeline.run(&run) {
        Some(run) => json_response(StatusCode::OK, &shared.timeline.trace_body(run, shared.now_ms())),
        None => not_found(),
    }
}

async fn retrieve(State(shared): State<Arc<Shared>>, Path(run): Path<String>) -> Response {
    match shared.timeline.run(&run) {
        Some(run) => json_response(StatusCode::OK, &shared.timeline.run_body(run, shared.now_ms())),
        None => not_found(),
    }
}

/// OTLP/HTTP, protobuf or JSON, uncompressed (the demo configures its exporter so).
async fn traces(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let request = if json {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| e.to_string())
    } else {
        ExportTraceServiceRequest::decode(&body[..]).map_err(|e| e.to_string())
    };
    let request = match request {
        Ok(request) => request,
        Err(error) => return (StatusCode::BAD_REQUEST, error).into_response(),
    };
    let spans = request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans);
    shared.received.lock().unwrap_or_else(|e| e.into_inner()).extend(spans);
    let response = ExportTraceServiceResponse::default();
    if json {
        let body = serde_json::to_string(&response).unwrap_or_else(|_| "{}".to_owned());
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response()
    }
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
        let shared = Arc::new(Shared {
            timeline,
            started: Instant::now(),
            received: received.clone(),
        });
        let app = axum::Router::new()
            .route("/api/v1/runs/{run}/events", axum::routing::get(events))
            .route("/api/v1/runs/{run}/trace", axum::routing::get(trace))
            .route("/api/v3/runs/{run}", axum::routing::get(retrieve))
            .route("/v1/traces", axum::routing::post(traces))
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(shared);
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
