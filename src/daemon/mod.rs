//! The daemon (`run`): watch runs, poll them fairly within the API budget, export each finished
//! span once, remember what was exported, survive crashes. The only module that knows every
//! stage: discover → schedule → fetch → convert → export → commit.
//!
//! One loop owns all per-run memory. Polls run as tasks (at most `runs.concurrency`); their
//! results come back to the loop, which queues spans for the export task and reschedules the
//! run. The export task acknowledges batches after committing them, and the loop retires runs
//! whose last spans were acknowledged. Backpressure: the loop admits new spans only within
//! `export.max_pending_spans` (reserved before each poll), and stops polling while the collector
//! fails.

pub mod discovery;
pub mod export_queue;
pub mod poller;
pub mod reload;
pub mod shard;
pub mod stats;
pub mod watched;

use crate::config::{BridgeConfig, LogsMode, Shard};
use crate::export::{BackoffPolicy, OtlpSender};
use crate::logging::LevelControl;
use crate::state::{RunRecord, StateStore};
use crate::telemetry::events::{InvalidElements, PollFailed, PollFinished, PollStarted, RunNotFound, RunRetired};
use crate::trigger::{ApiError, ClientTuning, RunFilters, TriggerClient};
use discovery::Discovery;
use export_queue::{per_run_totals, run_queue, Ack, ExportItem};
use poller::{poll, PollJob, PollResult};
use reload::ConfigSource;
use stats::DaemonStats;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use watched::{Lifecycle, Phase, RetireReason, WatchedRun};

/// How often retired runs' span ids are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often the loop proves it is alive (`/healthz`) when nothing else wakes it.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Export(#[from] crate::export::BuildError),
    #[error("export queue: {0}")]
    Queue(#[from] export_queue::QueueError),
    #[error("a daemon task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Listen(#[from] crate::telemetry::ListenError),
}

impl DaemonError {
    /// Configuration problems are exit code 2, the rest 1.
    pub fn is_config(&self) -> bool {
        matches!(self, DaemonError::Config(_) | DaemonError::Export(_))
    }
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
    /// Reload: the config file to watch (and read again on SIGHUP) …
    pub config_path: Option<PathBuf>,
    /// … the SIGHUP count the binary forwards …
    pub sighup: Option<watch::Receiver<u64>>,
    /// … and the control of the log level. Reload is on when a path or SIGHUP is given.
    pub log_level: Option<LevelControl>,
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
            config_path: None,
            sighup: None,
            log_level: None,
        }
    }
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
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
    sender.set_metrics(stats.clone());
    client.set_metrics(stats.clone());
    stats.health.set_export_bound(options.readiness_export_bound);
    stats.health.set_config_loaded(true);
    let server = match config.server.listen.as_deref() {
        Some(listen) => Some(crate::telemetry::start(listen, stats.clone()).await?),
        None => None,
    };
    let store = StateStore::open(&config.state.path)?;
    stats.health.set_state_open(true);
    let state = Arc::new(Mutex::new(store));
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
    let (found_tx, found_rx) = mpsc::unbounded_channel::<String>();
    let reload = (options.config_path.is_some() || options.sighup.is_some())
        .then(|| ConfigSource::new(options.config_path.clone(), options.env.clone(), options.sighup.clone()));

    let mut daemon = Loop {
        lifecycle: Lifecycle {
            poll_interval: config.runs.poll_interval,
            max_poll_interval: config.runs.max_poll_interval,
            settle: config.runs.settle,
            max_age: config.runs.max_age,
        },
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
        due: BinaryHeap::new(),
        sequence: 0,
        reserved: 0,
        in_flight: JoinSet::new(),
        in_flight_capacity: HashMap::new(),
        retired: options.retired.clone(),
        found_tx,
        discovery: None,
        log_level: options.log_level.clone(),
        config: config.clone(),
    };
    daemon.start_discovery();
    daemon.prune().await?;
    daemon.resume().await?;
    for id in &config.runs.ids {
        daemon.add_run(id).await?;
    }
    let result = daemon.event_loop(shutdown, ack_rx, found_rx, queue_task, reload).await;

    // Staged shutdown: no new polls or discoveries; abandon polls in flight (their spans were
    // never queued, so nothing is lost); let the export queue finish within the deadline.
    daemon.stop_discovery();
    daemon.in_flight.abort_all();
    let Loop { queue_tx, found_tx, .. } = daemon;
    drop(queue_tx);
    drop(found_tx);
    let (queue_task, loop_result) = result?;
    if let Some(mut queue_task) = queue_task {
        match tokio::time::timeout(options.shutdown_deadline, &mut queue_task).await {
            Ok(joined) => joined??,
            Err(_) => {
                queue_task.abort();
                tracing::warn!(
                    deadline = ?options.shutdown_deadline,
                    "in-flight exports did not finish before the deadline; they will be sent again after restart"
                );
            }
        }
    }
    if let Some(server) = server {
        server.stop().await;
    }
    tracing::info!("trigger-otel-bridge daemon stopped");
    loop_result
}

type QueueTask = tokio::task::JoinHandle<Result<(), export_queue::QueueError>>;

/// The next configuration from `source`, or never when reload is off.
async fn next_config(source: &mut Option<ConfigSource>) -> Result<BridgeConfig, String> {
    match source {
        Some(source) => source.next().await,
        None => std::future::pending().await,
    }
}

/// A running discovery task and the switch that stops it.
struct DiscoveryTask {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

struct Loop {
    /// The configuration in effect (settings that need a restart keep their starting values).
    config: BridgeConfig,
    found_tx: mpsc::UnboundedSender<String>,
    discovery: Option<DiscoveryTask>,
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
    /// (when, sequence, run): the earliest-due run is polled first, so no run starves however
    /// many compete for the request budget. Stale entries (sequence mismatch) are skipped.
    due: BinaryHeap<Reverse<(Instant, u64, Arc<str>)>>,
    sequence: u64,
    /// Export-queue capacity promised to polls in flight.
    reserved: usize,
    in_flight: JoinSet<(Arc<str>, Result<PollResult, ApiError>)>,
    in_flight_capacity: HashMap<Arc<str>, usize>,
    retired: Option<mpsc::UnboundedSender<RetiredRun>>,
}

impl Loop {
    fn with_state<T>(&self, f: impl FnOnce(&mut StateStore) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn prune(&self) -> Result<(), DaemonError> {
        let report = self.with_state(|s| s.prune(self.retention, unix_now_ns()))?;
        tracing::debug!(?report, "pruned the state of long-retired runs");
        Ok(())
    }

    /// Every run not retired in the state store is watched again.
    async fn resume(&mut self) -> Result<(), DaemonError> {
        let records = self.with_state(|s| s.unretired_runs())?;
        for record in records {
            if !shard::owns(&self.shard, &record.run_id) {
                continue;
            }
            let exported = self.with_state(|s| s.exported_span_ids(&record.run_id))?;
            let id: Arc<str> = Arc::from(record.run_id.as_str());
            let mut run = WatchedRun::new(id.clone(), &self.lifecycle, Instant::now());
            run.trace_id = match (&record.trace_id, record.trace_id_derived) {
                (_, true) => Some(None),
                (Some(trace), false) => Some(Some(trace.clone())),
                (None, false) => None,
            };
            run.task_identifier = record.task_identifier.clone();
            run.status = record.status.clone();
            run.finished_at = record.finished_at;
            run.first_seen_ns = record.first_seen_at;
            run.ended_ns = record.ended_at;
            if record.ended_at.is_some() {
                // The settle time starts again: late events are what settling waits for.
                run.ended_seen = Some(Instant::now());
            }
            run.exported = Arc::new(exported);
            tracing::info!(run_id = %id, exported_spans = run.exported.len(), "resuming run");
            self.insert(run);
        }
        Ok(())
    }

    /// Watch `run_id` unless another shard owns it, it is watched already, or it was retired.
    async fn add_run(&mut self, run_id: &str) -> Result<(), DaemonError> {
        if run_id.is_empty() || self.runs.contains_key(run_id) {
            return Ok(());
        }
        if !shard::owns(&self.shard, run_id) {
            tracing::debug!(run_id, "another shard owns this run");
            return Ok(());
        }
        if let Some(record) = self.with_state(|s| s.run(run_id))? {
            if record.retired_at.is_some() {
                tracing::info!(run_id, reason = ?record.retire_reason, "run already retired; not polling it again");
                return Ok(());
            }
        }
        let record = RunRecord::new(run_id, unix_now_ns());
        self.with_state(|s| s.upsert_run(&record))?;
        let id: Arc<str> = Arc::from(run_id);
        tracing::info!(run_id, "watching run");
        let mut run = WatchedRun::new(id, &self.lifecycle, Instant::now());
        run.first_seen_ns = record.first_seen_at;
        self.insert(run);
        Ok(())
    }

    fn insert(&mut self, run: WatchedRun) {
        let id = run.id.clone();
        self.runs.insert(id.clone(), run);
        self.stats.runs_watched.store(self.runs.len(), Ordering::Relaxed);
        self.schedule(&id, Duration::ZERO);
    }

    fn schedule(&mut self, id: &Arc<str>, after: Duration) {
        self.sequence += 1;
        if let Some(run) = self.runs.get_mut(id) {
            run.scheduled = self.sequence;
            self.due
                .push(Reverse((Instant::now() + after, self.sequence, id.clone())));
        }
    }

    /// Capacity left in the export queue for new polls.
    fn free_capacity(&self) -> usize {
        self.max_pending.saturating_sub(self.stats.pending() + self.reserved)
    }

    /// Polling pauses while the queue is full, or while the collector fails and spans wait.
    fn may_poll(&self) -> bool {
        self.in_flight.len() < self.concurrency
            && self.free_capacity() > 0
            && !(self.sender.failing() && self.stats.pending() > 0)
    }

    /// Start polls of due runs while slots, budget and capacity allow.
    ///
    /// Each poll reserves a share of the free export capacity: one free poll slot's worth, so
    /// the other slots can still start polls of other runs. A run whose last poll was cut short
    /// by its share (its `backlog`: records it had beyond the share) waits until the queue has
    /// room for that backlog (at most the whole queue) and reserves it: a big run with a small
    /// `max_pending_spans` otherwise fetches and converts its whole body again for every small
    /// share.
    fn dispatch(&mut self) {
        let now = Instant::now();
        while self.may_poll() {
            let Some(Reverse((when, sequence, id))) = self.due.peek().cloned() else {
                return;
            };
            let Some(run) = self.runs.get(&id).filter(|run| run.scheduled == sequence) else {
                self.due.pop(); // stale: the run was rescheduled or retired
                continue;
            };
            if when > now {
                return;
            }
            let free = self.free_capacity();
            if free < run.backlog.min(self.max_pending) {
                // A run with a backlog waits, first in line, until the queue has room for all of
                // it (or is empty): polling it with whatever trickle is free would fetch and
                // convert its whole body again for a few spans each time.
                return;
            }
            self.due.pop();
            let free_slots = self.concurrency.saturating_sub(self.in_flight.len()).max(1);
            let share = (free / free_slots).max(1);
            let capacity = match run.backlog {
                backlog if backlog > share => backlog.min(free),
                _ => share,
            };
            self.start_poll(id, now - when, capacity);
        }
    }

    /// Start one poll of `id`, reserving `capacity` spans of the export queue for it.
    fn start_poll(&mut self, id: Arc<str>, lag: Duration, capacity: usize) {
        let Some(run) = self.runs.get(&id) else { return };
        PollStarted { run_id: &id, lag }.emit(&self.stats);
        let ask_status = run.wants_status(run.last_had_partials, Instant::now());
        let job = PollJob {
            run_id: id.clone(),
            known_trace_id: run.trace_id.clone(),
            ask_status,
            task_identifier: run.task_identifier.clone(),
            state: run.run_state(),
            exported: run.exported.clone(),
            logs: self.logs,
            capacity,
            enrich: self.enrich,
            span_properties: run.span_properties.clone(),
        };
        self.reserved += capacity;
        self.in_flight_capacity.insert(id.clone(), capacity);
        self.in_flight.spawn(poll(self.client.clone(), job));
    }

    async fn event_loop(
        &mut self,
        shutdown: impl Future<Output = ()>,
        mut acks: mpsc::UnboundedReceiver<Ack>,
        mut found: mpsc::UnboundedReceiver<String>,
        queue_task: QueueTask,
        mut reload: Option<ConfigSource>,
    ) -> Result<(Option<QueueTask>, Result<(), DaemonError>), DaemonError> {
        tokio::pin!(shutdown);
        let mut queue_task = queue_task;
        let mut prune_timer = tokio::time::interval_at(Instant::now() + PRUNE_EVERY, PRUNE_EVERY);
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        loop {
            self.stats.health.beat();
            // Readiness does not wait for Trigger.dev to confirm the key while there is nothing
            // to ask it about (see `Health::readiness`). Set only here, once starting is done,
            // so the moment before the configured and resumed runs are added does not count.
            self.stats
                .health
                .set_nothing_to_watch(self.runs.is_empty() && self.discovery.is_none());
            self.dispatch();
            let next_due = self.due.peek().map(|Reverse((when, _, _))| *when);
            let wait_for_due = next_due.filter(|_| self.may_poll());
            tokio::select! {
                _ = &mut shutdown => {
                    tracing::info!("shutting down: no new polls; finishing in-flight exports");
                    return Ok((Some(queue_task), Ok(())));
                }
                joined = &mut queue_task => {
                    // The queue only ends on a state-store failure while the loop runs.
                    let error = match joined {
                        Ok(Ok(())) => return Ok((None, Ok(()))),
                        Ok(Err(error)) => DaemonError::Queue(error),
                        Err(error) => DaemonError::Task(error),
                    };
                    return Ok((None, Err(error)));
                }
                Some(joined) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    let (id, result) = joined?;
                    self.on_poll(id, result).await?;
                }
                Some(ack) = acks.recv() => self.on_ack(&ack).await?,
                Some(run_id) = found.recv() => self.add_run(&run_id).await?,
                loaded = next_config(&mut reload) => match loaded {
                    Ok(new) => self.apply_reload(new).await?,
                    Err(reason) => tracing::error!(%reason, "the new configuration is invalid; keeping the running one"),
                },
                _ = prune_timer.tick() => self.prune().await?,
                _ = heartbeat.tick() => {}
                _ = tokio::time::sleep_until(wait_for_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if wait_for_due.is_some() => {}
            }
        }
    }

    fn start_discovery(&mut self) {
        if !self.config.discovery.enabled {
            return;
        }
        let (stop, stopped) = watch::channel(false);
        let discovery = Discovery {
            client: self.client.clone(),
            filters: RunFilters::from_discovery(&self.config.discovery),
            interval: self.config.discovery.interval,
            lookback: self.config.discovery.lookback,
        };
        let task = tokio::spawn(discovery.run(self.found_tx.clone(), stopped));
        self.discovery = Some(DiscoveryTask { task, stop });
    }

    fn stop_discovery(&mut self) {
        if let Some(discovery) = self.discovery.take() {
            let _ = discovery.stop.send(true);
            discovery.task.abort();
        }
    }

    /// Apply what can change while running; say what needs a restart.
    async fn apply_reload(&mut self, new: BridgeConfig) -> Result<(), DaemonError> {
        let plan = reload::plan(&self.config, &new);
        for setting in &plan.needs_restart {
            tracing::warn!(setting, "changed in the configuration; takes effect after a restart");
        }
        if let Some(level) = &plan.log_level {
            match self.log_level.as_ref().map(|control| control.set(level)) {
                Some(Ok(())) => tracing::info!(level = %level, "log level changed"),
                Some(Err(reason)) => tracing::warn!(%reason, "cannot change the log level"),
                None => tracing::warn!("the log level is fixed (RUST_LOG is set); log.level ignored"),
            }
        }
        let mut running = new;
        // Keep the starting values of what needs a restart, so the next reload compares
        // against what is really in effect.
        running.state = self.config.state.clone();
        running.server = self.config.server.clone();
        running.export = self.config.export.clone();
        running.trigger = self.config.trigger.clone();
        running.runs.shard = self.config.runs.shard;
        running.log.format = self.config.log.format;
        self.config = running;
        self.lifecycle = Lifecycle {
            poll_interval: self.config.runs.poll_interval,
            max_poll_interval: self.config.runs.max_poll_interval,
            settle: self.config.runs.settle,
            max_age: self.config.runs.max_age,
        };
        self.concurrency = self.config.runs.concurrency.max(1);
        self.logs = self.config.conversion.logs;
        self.enrich = self.config.conversion.enrich;
        if plan.discovery_changed {
            self.stop_discovery();
            self.start_discovery();
            tracing::info!(enabled = self.config.discovery.enabled, "discovery settings applied");
        }
        for run_id in &plan.removed_runs {
            if let Some(run) = self.runs.get_mut(run_id.as_str()) {
                tracing::info!(run_id = %run_id, "removed from runs.ids; no longer watched");
                run.phase = Phase::Retiring(RetireReason::Removed);
                let id = run.id.clone();
                self.retire_if_done(&id).await?;
            }
        }
        for run_id in &plan.added_runs {
            self.add_run(run_id).await?;
        }
        tracing::info!(
            added = plan.added_runs.len(),
            removed = plan.removed_runs.len(),
            "configuration reloaded"
        );
        Ok(())
    }

    async fn on_poll(&mut self, id: Arc<str>, result: Result<PollResult, ApiError>) -> Result<(), DaemonError> {
        if let Some(capacity) = self.in_flight_capacity.remove(&id) {
            self.reserved = self.reserved.saturating_sub(capacity);
        }
        PollFinished {
            run_id: &id,
            spans: result.as_ref().map_or(0, |r| r.records.len()),
        }
        .emit(&self.stats);
        let now = Instant::now();
        let Some(run) = self.runs.get_mut(&id) else {
            return Ok(());
        };
        let result = match result {
            Ok(result) => result,
            Err(ApiError::NotFound { endpoint, .. }) => {
                RunNotFound {
                    run_id: &id,
                    endpoint: &endpoint,
                }
                .emit(&self.stats);
                run.phase = Phase::Retiring(RetireReason::NotFound);
                return self.retire_if_done(&id).await;
            }
            Err(error) => {
                let wait = run.after_error(&self.lifecycle);
                PollFailed {
                    run_id: &id,
                    error: &error,
                    retry_in: wait,
                }
                .emit(&self.stats);
                self.schedule(&id, wait);
                return Ok(());
            }
        };

        let mut record_changed = false;
        if let Some(asked) = result.trace {
            run.trace_id = Some(asked.map(|trace| trace.trace_id));
            record_changed = true;
        }
        match result.details {
            Some(details) => {
                run.polls_since_status = 0;
                run.status_seen_at = Some(now);
                run.status = Some(details.summary.status.clone());
                run.finished_at = details.summary.finished_at;
                if run.task_identifier.is_none() {
                    run.task_identifier = details.summary.task_identifier.clone();
                }
                if details.is_terminal() && run.ended_seen.is_none() {
                    tracing::info!(run_id = %id, status = %details.summary.status, "run ended; settling");
                    run.ended_seen = Some(now);
                    run.ended_ns = Some(unix_now_ns());
                }
                record_changed = true;
            }
            None => run.polls_since_status += 1,
        }
        run.last_had_partials = result.had_partials;
        for (reason, tally) in result.invalid.iter() {
            let counted = run.invalid_counted.entry(reason.as_str()).or_default();
            if tally.count > *counted {
                InvalidElements {
                    run_id: &id,
                    reason: reason.as_str(),
                    count: tally.count - *counted,
                    total: tally.count,
                    first: &tally.first,
                }
                .emit(&self.stats);
                *counted = tally.count;
            }
        }
        if let Some(properties) = result.span_properties {
            run.span_properties = Some(properties);
        }
        let changed = run.fingerprint != Some(result.fingerprint) || !result.records.is_empty();
        run.fingerprint = Some(result.fingerprint);
        run.backlog = result.left_behind;
        if !result.records.is_empty() {
            let exported = Arc::make_mut(&mut run.exported);
            for record in &result.records {
                exported.extend(record.covers().iter().copied());
            }
            run.queued += result.records.len();
            run.forget_exported_properties();
            self.stats.add_pending(result.records.len());
            let _ = self.queue_tx.send(ExportItem {
                run_id: id.clone(),
                records: result.records,
            });
        }
        let record = record_changed.then(|| run_record(run));
        let next = match run.phase {
            Phase::Finalizing(reason) if result.left_behind == 0 => {
                run.phase = Phase::Retiring(reason);
                None
            }
            Phase::Retiring(_) => None,
            // Capacity cut this poll short: fetch the rest as soon as capacity allows.
            _ if result.left_behind > 0 => Some(Duration::ZERO),
            _ => Some(run.after_poll(&self.lifecycle, changed, now)),
        };
        if let Some(record) = record {
            self.with_state(|s| s.upsert_run(&record))?;
        }
        match next {
            Some(wait) => self.schedule(&id, wait),
            None => self.retire_if_done(&id).await?,
        }
        Ok(())
    }

    async fn on_ack(&mut self, ack: &Ack) -> Result<(), DaemonError> {
        for (id, count) in per_run_totals(ack) {
            self.stats.remove_pending(count);
            if let Some(run) = self.runs.get_mut(&id) {
                run.queued = run.queued.saturating_sub(count);
                if matches!(run.phase, Phase::Retiring(_)) {
                    self.retire_if_done(&id).await?;
                }
            }
        }
        Ok(())
    }

    /// Retire a run in `Retiring` once nothing of it waits for the collector.
    async fn retire_if_done(&mut self, id: &Arc<str>) -> Result<(), DaemonError> {
        let Some(run) = self.runs.get(id) else { return Ok(()) };
        let Phase::Retiring(reason) = run.phase else {
            return Ok(());
        };
        if run.queued > 0 {
            return Ok(());
        }
        let run_id = id.to_string();
        self.with_state(|s| s.retire(&run_id, reason.as_str(), unix_now_ns()))?;
        self.runs.remove(id);
        self.stats.runs_watched.store(self.runs.len(), Ordering::Relaxed);
        RunRetired {
            run_id: &run_id,
            reason: reason.as_str(),
        }
        .emit(&self.stats);
        if let Some(retired) = &self.retired {
            let _ = retired.send(RetiredRun {
                run_id,
                reason: reason.as_str(),
            });
        }
        Ok(())
    }
}

fn run_record(run: &WatchedRun) -> RunRecord {
    RunRecord {
        trace_id: run.trace_id.clone().flatten(),
        trace_id_derived: matches!(run.trace_id, Some(None)),
        status: run.status.clone(),
        task_identifier: run.task_identifier.clone(),
        ended_at: run.ended_ns,
        finished_at: run.finished_at,
        last_polled_at: Some(unix_now_ns()),
        ..RunRecord::new(run.id.to_string(), run.first_seen_ns)
    }
}
