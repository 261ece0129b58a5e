//! The daemon: wiring only. `run` connects the stages (discover → schedule → fetch → convert →
//! export → commit) to watch runs, poll them fairly within the API budget, export each finished
//! span once, remember what was exported and survive crashes. The only module that knows them all.
//!
//! One loop owns all per-run memory. Polls run as tasks (at most `runs.concurrency`); their
//! results come back to the loop, which queues spans for the export task and reschedules the
//! run. The export task acknowledges batches after committing them, and the loop retires runs
//! whose last spans were acknowledged. Backpressure: the loop admits new spans only within
//! `export.max_pending_spans` (reserved before each poll), and stops polling while the collector
//! fails.

mod api_check;
mod discovery;
mod dispatch;
mod event_loop;
pub mod signals;
mod state_writes;
pub mod stats;
mod summary;
mod tracking;

use crate::commit::export_queue::{self, run_queue, Ack, ExportItem};
use crate::commit::{unix_now_ns, StateStore};
use crate::config::reload::ConfigSource;
use crate::config::{BridgeConfig, LogsMode, Shard};
use crate::discover::realtime::{StreamEvent, SubscriberTuning};
use crate::discover::Listed;
use crate::export::{BackoffPolicy, OtlpSender};
use crate::fetch::poll::PollResult;
use crate::schedule::watched::{Lifecycle, WatchedRun};
use crate::schedule::{DueQueue, Reservations};
use crate::telemetry::logging::LevelControl;
use crate::trigger::{ApiError, ClientTuning, TriggerClient};
use stats::DaemonStats;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    State(#[from] crate::commit::StateError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error("export queue: {0}")]
    Queue(#[from] export_queue::QueueError),
    #[error("a daemon task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Listen(#[from] crate::telemetry::TelemetryError),
}

/// What tests and embedders may tune beyond the config file.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub client_tuning: ClientTuning,
    pub export_backoff: BackoffPolicy,
    /// SIGTERM: in-flight exports get this long to finish and commit.
    pub shutdown_deadline: Duration,
    /// The process environment (OTEL_EXPORTER_OTLP_*, HOSTNAME for `shard = "auto/N"`).
    pub env: HashMap<String, String>,
    /// Told of each run as it is retired, after all its spans were acknowledged (`demo`).
    pub retired: Option<mpsc::UnboundedSender<RetiredRun>>,
    /// `/readyz` fails while spans wait and the collector accepted nothing for this long.
    pub readiness_export_bound: Duration,
    /// `/readyz` fails while spans wait and every export attempt has failed for this long.
    pub readiness_export_grace: Duration,
    /// How often the summary line is logged (`summary::SUMMARY_EVERY`).
    pub summary_every: Duration,
    /// The realtime stream's backoff and retry (`discovery.source` `auto` or `realtime`).
    pub realtime_tuning: SubscriberTuning,
    /// Reload: the config file to watch (and read again on SIGHUP) …
    pub config_path: Option<PathBuf>,
    /// … the SIGHUP count the binary forwards …
    pub sighup: Option<watch::Receiver<u64>>,
    /// … and the control of the log level. Reload is on when a path or SIGHUP is given.
    pub log_level: Option<LevelControl>,
    /// Tests only: given the state store once it is open.
    #[doc(hidden)]
    pub state_tap: crate::commit::StateTap,
}

/// A run the daemon stopped watching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredRun {
    pub run_id: String,
    /// `settled`, `max_age` or `not_found`.
    pub reason: &'static str,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            client_tuning: ClientTuning::default(),
            export_backoff: BackoffPolicy::default(),
            shutdown_deadline: Duration::from_secs(10),
            env: HashMap::new(),
            retired: None,
            readiness_export_bound: crate::telemetry::health::DEFAULT_EXPORT_BOUND,
            readiness_export_grace: crate::telemetry::health::EXPORT_FAILING_GRACE,
            summary_every: summary::SUMMARY_EVERY,
            realtime_tuning: SubscriberTuning::default(),
            config_path: None,
            sighup: None,
            log_level: None,
            state_tap: crate::commit::StateTap::default(),
        }
    }
}

/// Run until `shutdown` resolves; then finish in-flight exports within the deadline and return.
pub async fn run(
    config: BridgeConfig,
    options: DaemonOptions,
    stats: Arc<DaemonStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    config.trigger.require_secret_key()?;
    let shard = match config.runs.shard.is_auto() {
        true => config
            .runs
            .shard
            .resolve_ordinal(options.env.get("HOSTNAME").map(String::as_str).unwrap_or_default())?,
        false => config.runs.shard,
    };
    let sender = Arc::new(crate::export::build_sender(
        &config,
        &options.env,
        options.export_backoff,
        None,
    )?);
    let mut trigger = config.trigger.clone();
    let default_budget = crate::config::TriggerConfig::default().requests_per_minute;
    if shard.count() > 1 && trigger.requests_per_minute == default_budget {
        // Replicas share one key's budget: left at its default, each takes its share.
        trigger.requests_per_minute = (default_budget / shard.count()).max(1);
        tracing::info!(
            requests_per_minute = trigger.requests_per_minute,
            replicas = shard.count(),
            "request budget split between shards"
        );
    }
    let client = TriggerClient::with_tuning(&trigger, options.client_tuning.clone())?;
    // Replicas draw on one bucket: each spreads only its share of what is above the reserve.
    client.rate_limiter().set_sharers(shard.count());
    sender.set_metrics(stats.clone());
    client.set_metrics(stats.clone());
    stats.health.set_export_bound(options.readiness_export_bound);
    stats.health.set_export_grace(options.readiness_export_grace);
    stats.health.set_config_loaded(true);
    let server = match config.server.listen.as_deref() {
        Some(listen) => Some(crate::telemetry::start(listen, stats.clone()).await?),
        None => None,
    };
    let otlp_metrics = crate::telemetry::OtlpMetrics::start(
        &config.telemetry,
        options.env.get("HOSTNAME").map(String::as_str),
        stats.clone(),
    )?;
    let store = StateStore::open(&config.state.path)?;
    stats.health.set_state_open(true);
    let state = Arc::new(Mutex::new(store));
    options.state_tap.fill(state.clone());
    tracing::info!(
        state = %config.state.path.display(),
        shard = %format!("{}/{}", shard.index().unwrap_or(0), shard.count()),
        "trigger-otel-bridge daemon starting"
    );

    let (queue_tx, queue_rx) = mpsc::unbounded_channel::<ExportItem>();
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Ack>();
    let queue_task = tokio::spawn(run_queue(
        queue_rx,
        ack_tx,
        sender.clone(),
        state.clone(),
        config.export.max_batch_spans,
        stats.clone(),
    ));
    let (found_tx, found_rx) = mpsc::unbounded_channel::<Listed>();
    let (streamed_tx, streamed_rx) = mpsc::unbounded_channel::<(u64, StreamEvent)>();
    // Polling and discovery wait for the start-up check (`api_check`).
    let (checked_tx, checked_rx) = oneshot::channel();
    let check_task = tokio::spawn(api_check::check_until_passed(client.clone(), stats.clone(), checked_tx));
    let reload = (options.config_path.is_some() || options.sighup.is_some())
        .then(|| ConfigSource::new(options.config_path.clone(), options.env.clone(), options.sighup.clone()));

    let mut daemon = Loop {
        lifecycle: Lifecycle::from_runs(&config.runs),
        logs: config.conversion.logs,
        enrich: config.conversion.enrich,
        concurrency: config.runs.concurrency.max(1),
        max_pending: config.export.max_pending_spans.max(1),
        retention: config.state.retention,
        shard,
        client,
        sender,
        state,
        stats,
        queue_tx,
        runs: HashMap::new(),
        due: DueQueue::default(),
        reserved: Reservations::default(),
        in_flight: JoinSet::new(),
        retired: options.retired.clone(),
        deferred_writes: Vec::new(),
        state_write_failing: false,
        found_tx,
        streamed_tx,
        discovery_generation: 0,
        realtime_tuning: options.realtime_tuning.clone(),
        api_checked: false,
        summary_every: options.summary_every,
        discovery: None,
        log_level: options.log_level.clone(),
        config: config.clone(),
    };
    daemon.prune().await?;
    daemon.resume().await?;
    for id in &config.runs.ids {
        daemon.add_run(id, true).await?;
    }
    let result = daemon
        .event_loop(
            shutdown,
            ack_rx,
            discovery::Found {
                listed: found_rx,
                streamed: streamed_rx,
            },
            checked_rx,
            queue_task,
            reload,
        )
        .await;
    check_task.abort();

    // Staged shutdown: no new polls or discoveries; abandon polls in flight (their spans were
    // never queued, so nothing is lost); let the export queue finish within the deadline.
    daemon.stop_discovery();
    daemon.in_flight.abort_all();
    // Runs' records the state file refused: one last try. What is still refused is only a
    // record (a retired run is resumed and finds nothing new; a recorded end is learnt again).
    if let Err(error) = daemon.flush_state_writes() {
        tracing::warn!(%error, "writing the runs' records at shutdown failed");
    }
    if !daemon.deferred_writes.is_empty() {
        tracing::warn!(
            writes = daemon.deferred_writes.len(),
            "the state file still refuses the runs' records at shutdown; those runs are resumed after restart and their committed spans are not sent again"
        );
    }
    let Loop {
        queue_tx,
        found_tx,
        streamed_tx,
        ..
    } = daemon;
    drop(streamed_tx);
    drop(queue_tx);
    drop(found_tx);
    let (queue_task, loop_result) = result?;
    if let Some(mut queue_task) = queue_task {
        match tokio::time::timeout(options.shutdown_deadline, &mut queue_task).await {
            Ok(joined) => joined??,
            Err(_) => {
                queue_task.abort();
                tracing::warn!(
                    deadline = %crate::wording::human_duration(options.shutdown_deadline),
                    "in-flight exports did not finish before the deadline; their spans were never committed, so the next start exports them"
                );
            }
        }
    }
    if let Some(server) = server {
        server.stop().await;
    }
    otlp_metrics.shutdown().await;
    tracing::info!("trigger-otel-bridge daemon stopped");
    loop_result
}

struct Loop {
    /// The configuration in effect (settings that need a restart keep their starting values).
    config: BridgeConfig,
    found_tx: mpsc::UnboundedSender<Listed>,
    streamed_tx: mpsc::UnboundedSender<(u64, StreamEvent)>,
    /// Starts of discovery so far (`discovery::DiscoveryTask::generation`).
    discovery_generation: u64,
    realtime_tuning: SubscriberTuning,
    /// The start-up check passed: polls and discovery may start.
    api_checked: bool,
    summary_every: Duration,
    discovery: Option<discovery::DiscoveryTask>,
    log_level: Option<LevelControl>,
    lifecycle: Lifecycle,
    logs: LogsMode,
    enrich: bool,
    concurrency: usize,
    max_pending: usize,
    retention: Duration,
    shard: Shard,
    client: TriggerClient,
    sender: Arc<OtlpSender>,
    state: Arc<Mutex<StateStore>>,
    stats: Arc<DaemonStats>,
    queue_tx: mpsc::UnboundedSender<ExportItem>,
    runs: HashMap<Arc<str>, WatchedRun>,
    /// Runs by due time, earliest first.
    due: DueQueue,
    /// Export-queue capacity promised to polls in flight.
    reserved: Reservations,
    in_flight: JoinSet<(Arc<str>, Result<PollResult, ApiError>)>,
    retired: Option<mpsc::UnboundedSender<RetiredRun>>,
    /// The loop's state writes the file refused for now, in order (`state_writes`).
    deferred_writes: Vec<state_writes::StateWrite>,
    state_write_failing: bool,
}

impl Loop {
    fn with_state<T>(&self, f: impl FnOnce(&mut StateStore) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn prune(&self) -> Result<(), DaemonError> {
        match self.with_state(|s| s.prune(self.retention, unix_now_ns())) {
            Ok(report) => tracing::debug!(?report, "pruned the state of long-retired runs"),
            // Pruning frees room; it can wait for the next hour.
            Err(error) if error.write_fault().is_some() => tracing::warn!(%error, "pruning the state file failed"),
            Err(error) => return Err(error.into()),
        }
        Ok(())
    }
}
