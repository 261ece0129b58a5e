//! The daemon in-process for tests: a configuration with fast polling against the fake API,
//! fast retry options, and a running daemon (optionally serving its telemetry on a port-0
//! listener) that tests wait on and stop cleanly.

use super::fake_api::{FakeApi, FakeRun, SECRET_KEY};
use super::otlp_receiver::Receiver;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use trigger_otel_bridge::config::secret::SecretString;
use trigger_otel_bridge::config::BridgeConfig;
use trigger_otel_bridge::daemon::{self, stats::DaemonStats, DaemonOptions};
use trigger_otel_bridge::export::BackoffPolicy;
use trigger_otel_bridge::telemetry;
use trigger_otel_bridge::trigger::{ClientTuning, RateLimitTuning, RetryPolicy};

/// Watch `runs` on `api`, export to `endpoint` (gRPC unless changed), keep state in `state`;
/// polling, settling and batches sized for tests.
pub fn config(api: &FakeApi, endpoint: &str, state: &Path, runs: &[&str]) -> BridgeConfig {
    config_at(&api.url(), endpoint, state, runs)
}

/// [`config`] for an API at `api_url` (another fake, such as Prism).
pub fn config_at(api_url: &str, endpoint: &str, state: &Path, runs: &[impl AsRef<str>]) -> BridgeConfig {
    let mut config = wired(api_url, endpoint, state, runs);
    config.runs.poll_interval = Duration::from_millis(100);
    config.runs.max_poll_interval = Duration::from_millis(400);
    // Unchanged for 300 ms: quiet, polled every 400 ms (as the tests' runs backed off before).
    config.runs.quiet_after = Duration::from_millis(300);
    config.runs.settle = Duration::from_millis(300);
    config.runs.concurrency = 4;
    config.export.max_batch_spans = 100;
    config
}

/// The defaults, wired to an API at `api_url` (with the fake API's key), the collector at
/// `endpoint` (gRPC unless changed) and state in `state`, watching `runs`; no metrics server
/// (tests and benchmarks run in parallel: `Running::serving` serves the metrics on a port of its
/// own).
pub fn wired(api_url: &str, endpoint: &str, state: &Path, runs: &[impl AsRef<str>]) -> BridgeConfig {
    let mut config = BridgeConfig::default();
    config.trigger.api_url = api_url.to_owned();
    config.trigger.secret_key = SecretString::new(SECRET_KEY);
    config.runs.ids = runs.iter().map(|r| r.as_ref().to_owned()).collect();
    config.export.endpoint = endpoint.to_owned();
    config.state.path = state.to_path_buf();
    config.server.listen = None;
    config
}

/// What a daemon test runs against: the fake Trigger.dev API, a collector, and a directory for
/// the state file. Stopped together.
pub struct Fakes {
    pub api: FakeApi,
    pub receiver: Receiver,
    pub dir: tempfile::TempDir,
}

impl Fakes {
    pub async fn start(runs: impl IntoIterator<Item = FakeRun>) -> Fakes {
        Fakes {
            api: FakeApi::start(runs).await,
            receiver: Receiver::start().await,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// [`config`] watching `runs` on the API, exporting to the receiver over gRPC.
    pub fn config(&self, runs: &[&str]) -> BridgeConfig {
        config(
            &self.api,
            &self.receiver.grpc_endpoint(),
            &self.dir.path().join("state.db"),
            runs,
        )
    }

    pub async fn stop(self) {
        self.api.stop().await;
        self.receiver.stop().await;
    }

    /// Stops `daemon` (it must stop cleanly), then the fakes.
    pub async fn stop_with(self, daemon: Running) {
        daemon.stop().await;
        self.stop().await;
    }
}

/// Retries and backoffs in milliseconds, not seconds.
pub fn fast_options() -> DaemonOptions {
    DaemonOptions {
        client_tuning: ClientTuning {
            retry: RetryPolicy {
                initial_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(100),
                ..RetryPolicy::default()
            },
            rate_limit: RateLimitTuning {
                jitter: Duration::from_millis(20),
                ..RateLimitTuning::default()
            },
            ..ClientTuning::default()
        },
        export_backoff: BackoffPolicy {
            initial: Duration::from_millis(50),
            multiplier: 1.5,
            max: Duration::from_millis(300),
        },
        shutdown_deadline: Duration::from_secs(10),
        env: HashMap::new(),
        ..DaemonOptions::default()
    }
}

/// A daemon running in-process until [`Running::stop`].
pub struct Running {
    pub stats: Arc<DaemonStats>,
    /// Where its telemetry is served (with [`Running::serving`]).
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), daemon::DaemonError>>,
    server: Option<telemetry::TelemetryServer>,
}

impl Running {
    pub fn start(config: BridgeConfig, options: DaemonOptions) -> Running {
        let stats = Arc::new(DaemonStats::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(daemon::run(config, options, stats.clone(), async {
            let _ = stopped.await;
        }));
        Running {
            stats,
            stop: Some(stop),
            task,
            server: None,
        }
    }

    /// Like [`Running::start`], with `/metrics`, `/healthz` and `/readyz` on a loopback port.
    pub async fn serving(config: BridgeConfig, options: DaemonOptions) -> Running {
        let mut running = Running::start(config, options);
        running.server = Some(telemetry::start("127.0.0.1:0", running.stats.clone()).await.unwrap());
        running
    }

    /// The telemetry server's address (only for a daemon started with [`Running::serving`]).
    pub fn addr(&self) -> SocketAddr {
        self.server
            .as_ref()
            .expect("the daemon was started with Running::serving")
            .addr()
    }

    pub async fn wait_for(&self, what: &str, limit: Duration, condition: impl Fn(&DaemonStats) -> bool) {
        let started = Instant::now();
        while !condition(&self.stats) {
            assert!(
                started.elapsed() < limit,
                "timed out waiting for {what}: {:?}",
                self.stats
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Until exactly `runs` runs have been retired.
    pub async fn wait_retired(&self, runs: u64, limit: Duration) {
        let what = format!("{runs} runs retired");
        self.wait_for(&what, limit, |s| s.runs_retired() == runs).await;
    }

    /// Until at least `polls` polls have been made.
    pub async fn wait_polls(&self, polls: u64, limit: Duration) {
        let what = format!("{polls} polls");
        self.wait_for(&what, limit, |s| s.polls() >= polls).await;
    }

    /// `/readyz` (of a daemon started with [`Running::serving`]) until it answers `status`
    /// within `limit`; returns its body.
    pub async fn readyz_becomes(&self, status: u16, limit: Duration) -> String {
        self.readyz_until(limit, &format!("{status}"), |got, _| got == status)
            .await
    }

    /// `/readyz` until it answers 503 with a body containing `needle` within `limit`; returns
    /// the body.
    pub async fn readyz_says(&self, needle: &str, limit: Duration) -> String {
        self.readyz_until(limit, &format!("503 with {needle:?}"), |got, body| {
            got == 503 && body.contains(needle)
        })
        .await
    }

    /// `/readyz` until its answer is what `wanted` (status, body) looks for; fails after `limit`
    /// saying what it last answered instead of `what`.
    async fn readyz_until(&self, limit: Duration, what: &str, wanted: impl Fn(u16, &str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let (got, body) = http_get(self.addr(), "/readyz").await;
            if wanted(got, &body) {
                return body;
            }
            assert!(
                started.elapsed() < limit,
                "/readyz stayed {got} ({body:?}) instead of {what}: {:?}",
                self.stats
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the daemon stops within its deadline")
            .unwrap()
            .expect("the daemon stops cleanly");
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

/// One HTTP/1.1 GET over a fresh connection: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = get_with(addr, path, "").await;
    (status, body)
}

/// A GET with `headers` (each line ending in CRLF) added: (status, content type, body).
pub async fn get_with(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}
