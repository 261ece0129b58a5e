//! The bridge's own telemetry: Prometheus and OTLP metrics, internal events that log and count, health, and the HTTP server for them.
//!
//! - `metrics`: [`Metrics`], the counters, held once in a prometheus-client registry.
//! - `events`: one struct per observable occurrence; `emit()` logs it and counts it.
//! - `otlp`: the same metrics pushed over OTLP (`[telemetry]`), started by the daemon.
//! - `health`: liveness (the daemon loop ticks) and readiness rules.
//! - `server`: `/metrics`, `/healthz`, `/readyz` (axum), started by the daemon on `server.listen`.
//! - `error`: [`TelemetryError`], what all of them report.

mod error;
pub mod events;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod otlp;
pub mod server;

pub use error::TelemetryError;
pub use health::Health;
pub use metrics::Metrics;
pub use otlp::OtlpMetrics;

use crate::net::serving::Served;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The running telemetry server; dropping it stops it at once, [`TelemetryServer::stop`]
/// lets requests in flight finish.
pub struct TelemetryServer {
    served: Served,
}

/// Bind `listen` (`host:port`; port 0 picks one) and serve `metrics` there.
pub async fn start(listen: &str, metrics: Arc<Metrics>) -> Result<TelemetryServer, TelemetryError> {
    let error = |source| TelemetryError::Listen {
        listen: listen.to_owned(),
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(error)?;
    let served = Served::spawn(listener, server::router(metrics)).map_err(error)?;
    tracing::info!(addr = %served.addr(), "telemetry server listening (/metrics, /healthz, /readyz)");
    Ok(TelemetryServer { served })
}

impl TelemetryServer {
    /// The address bound (the real port when `listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.served.addr()
    }

    /// Stop accepting connections and wait (briefly) for requests in flight.
    pub async fn stop(self) {
        if let Err(error) = self.served.stop(Duration::from_secs(2)).await {
            tracing::warn!(%error, "telemetry server failed");
        }
    }
}
