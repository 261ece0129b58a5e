//! The bridge's own telemetry: Prometheus metrics, internal events that log and count, health, and the HTTP server for them.
//!
//! - `metrics`: [`Metrics`], the counters (in process and as a prometheus-client registry).
//! - `events`: one struct per observable occurrence; `emit()` logs it and counts it.
//! - `health`: liveness (the daemon loop ticks) and readiness rules.
//! - `server`: `/metrics`, `/healthz`, `/readyz` (axum), started by the daemon on `server.listen`.

pub mod events;
pub mod health;
pub mod metrics;
pub mod server;

pub use health::Health;
pub use metrics::Metrics;
pub use server::serve;

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The running telemetry server; dropping it stops it at once, [`TelemetryServer::stop`]
/// lets requests in flight finish.
pub struct TelemetryServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {listen:?} (server.listen): {source}")]
pub struct ListenError {
    pub listen: String,
    #[source]
    pub source: std::io::Error,
}

/// Bind `listen` (`host:port`; port 0 picks one) and serve `metrics` there.
pub async fn start(listen: &str, metrics: Arc<Metrics>) -> Result<TelemetryServer, ListenError> {
    let error = |source| ListenError {
        listen: listen.to_owned(),
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(error)?;
    let addr = listener.local_addr().map_err(error)?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, metrics, async {
        let _ = stopped.await;
    }));
    tracing::info!(%addr, "telemetry server listening (/metrics, /healthz, /readyz)");
    Ok(TelemetryServer {
        addr,
        stop: Some(stop),
        task: Some(task),
    })
}

impl TelemetryServer {
    /// The address bound (the real port when `listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting connections and wait (briefly) for requests in flight.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(std::time::Duration::from_secs(2), &mut task).await {
                Ok(Ok(Err(error))) => tracing::warn!(%error, "telemetry server failed"),
                Ok(_) => {}
                Err(_) => task.abort(),
            }
        }
    }
}

impl Drop for TelemetryServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
