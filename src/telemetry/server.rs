//! The telemetry HTTP server (axum): `/metrics`, `/healthz`, `/readyz` on `server.listen`.

use super::error::TelemetryError;
use super::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Instant;

/// The routes (served by [`super::start`]).
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(metrics)
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the 0.0.4 text format.
async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (content_type, body) = if openmetrics {
        (OPENMETRICS_CONTENT_TYPE, metrics.encode_openmetrics())
    } else {
        (PROMETHEUS_CONTENT_TYPE, metrics.encode_prometheus())
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn plain(result: Result<(), TelemetryError>) -> Response {
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match result {
        Ok(()) => (StatusCode::OK, text, "ok\n".to_owned()).into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, text, format!("{reason}\n")).into_response(),
    }
}

async fn healthz(State(metrics): State<Arc<Metrics>>) -> Response {
    plain(metrics.health.liveness(Instant::now()))
}

async fn readyz(State(metrics): State<Arc<Metrics>>) -> Response {
    plain(metrics.readiness())
}
