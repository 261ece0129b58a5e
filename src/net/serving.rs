//! An axum router served on a bound listener until stopped. The telemetry server, the demo's
//! embedded API and the test fakes all start and stop this way: take the listener (so callers
//! and tests bind port 0 and learn the real address), serve in a task, and on `stop` let
//! requests in flight finish within a grace period.

use axum::Router;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A router being served; dropping it aborts the server at once, [`Served::stop`] is graceful.
pub struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Served {
    /// Serve `router` on `listener` from now on.
    pub fn spawn(listener: TcpListener, router: Router) -> std::io::Result<Served> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Served {
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Bind 127.0.0.1 on a port the OS picks and serve `router` there.
    pub async fn on_loopback(router: Router) -> std::io::Result<Served> {
        Served::spawn(TcpListener::bind("127.0.0.1:0").await?, router)
    }

    /// The address bound (the real port when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` and the address.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop accepting connections and wait up to `grace` for requests in flight; past it, stop
    /// waiting (axum runs each connection in a task of its own: one still busy is left to end
    /// with its client or the runtime). Returns the server's own error, if it failed.
    pub async fn stop(mut self, grace: Duration) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(grace, &mut task).await {
            Ok(Ok(served)) => served,
            // The task panicked or was aborted: nothing is left to stop.
            Ok(Err(_)) => Ok(()),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::Notify;

    async fn get_text(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok(response)
    }

    #[tokio::test]
    async fn serves_until_stopped_then_refuses() {
        let served = Served::on_loopback(Router::new().route("/", get(|| async { "hello" })))
            .await
            .unwrap();
        let addr = served.addr();
        assert_ne!(addr.port(), 0);
        assert_eq!(served.url(), format!("http://{addr}"));
        let response = get_text(addr, "/").await.unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200") && response.ends_with("hello"),
            "{response}"
        );
        served.stop(Duration::from_secs(2)).await.unwrap();
        assert!(TcpStream::connect(addr).await.is_err(), "still listening after stop");
    }

    #[tokio::test]
    async fn a_request_in_flight_finishes_within_the_grace_period() {
        let release = Arc::new(Notify::new());
        let entered = Arc::new(Notify::new());
        let (wait, signal) = (release.clone(), entered.clone());
        let router = Router::new().route(
            "/slow",
            get(move || async move {
                signal.notify_one();
                wait.notified().await;
                "done"
            }),
        );
        let served = Served::on_loopback(router).await.unwrap();
        let request = tokio::spawn(get_text(served.addr(), "/slow"));
        entered.notified().await;
        let stopping = tokio::spawn(served.stop(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.notify_one();
        let response = request.await.unwrap().unwrap();
        assert!(response.ends_with("done"), "{response}");
        stopping.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn stop_waits_no_longer_than_the_grace_period() {
        let router = Router::new().route("/never", get(std::future::pending::<&'static str>));
        let served = Served::on_loopback(router).await.unwrap();
        let addr = served.addr();
        let _request = tokio::spawn(get_text(addr, "/never"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let stopped = tokio::time::timeout(Duration::from_secs(5), served.stop(Duration::from_millis(200))).await;
        assert!(
            matches!(stopped, Ok(Ok(()))),
            "stop returns once the grace period is over"
        );
        assert!(started.elapsed() >= Duration::from_millis(200), "but not before");
        assert!(TcpStream::connect(addr).await.is_err(), "no new connections after stop");
    }

    #[tokio::test]
    async fn dropping_aborts_the_server() {
        let served = Served::on_loopback(Router::new().route("/", get(|| async { "x" })))
            .await
            .unwrap();
        let addr = served.addr();
        drop(served);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err(), "still listening after drop");
    }
}
