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
pub mod shard;
pub mod stats;
pub mod watched;

use crate::config::{BridgeConfig, LogsMode, Shard};
use crate::export::{BackoffPolicy, SpanSender};
use crate::state::{RunRecord, StateStore};
use crate::trigger::{ApiError, ClientTuning, RunFilters, TriggerClient};
use discovery::Discovery;
use export_queue::{per_run_totals, run_queue, Ack, ExportItem};
use poller::{poll, PollJob, PollResult};
use stats::DaemonStats;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use watched::{Lifecycle, Phase, RetireReason, WatchedRun};

/// How often retired runs' span ids are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("conversion.logs = \"otlp_logs\" is not supported by the daemon yet; use span_events, spans or drop")]
    OtlpLogsUnsupported,
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
}

impl DaemonError {
    /// Configuration problems are exit code 2, the rest 1.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            DaemonError::Config(_) | DaemonError::OtlpLogsUnsupported | DaemonError::Export(_)
        )
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
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            client_tuning: ClientTuning::default(),
            export_backoff: BackoffPolicy::default(),
            shutdown_deadline: Duration::from_secs(10),
            env: HashMap::new(),
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
    if config.conversion.logs == LogsMode::OtlpLogs {
        return Err(DaemonError::OtlpLogsUnsupported);
    }
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
    let client = TriggerClient::with_tuning(&config.trigger, options.client_tuning.clone())?;
    let store = StateStore::open(&config.state.path)?;
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
    let (stop_tx, stop_rx) = watch::channel(false);
    let (found_tx, found_rx) = mpsc::unbounded_channel::<String>();
    let discovery_task = config.discovery.enabled.then(|| {
        tokio::spawn(
            Discovery {
                client: client.clone(),
                filters: RunFilters::from_discovery(&config.discovery),
                interval: config.discovery.interval,
                lookback: config.discovery.lookback,
            }
            .run(found_tx.clone(), stop_rx.clone()),
        )
    });

    let mut daemon = Loop {
        lifecycle: Lifecycle {
            poll_interval: config.runs.poll_interval,
            max_poll_interval: config.runs.max_poll_interval,
            settle: config.runs.settle,
            max_age: config.runs.max_age,
        },
        logs: config.conversion.logs,
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
    };
    daemon.prune().await?;
    daemon.resume().await?;
    for id in &config.runs.ids {
        daemon.add_run(id).await?;
    }
    let result = daemon.event_loop(shutdown, ack_rx, found_rx, queue_task).await;

    // Staged shutdown: no new polls or discoveries; abandon polls in flight (their spans were
    // never queued, so nothing is lost); let the export queue finish within the deadline.
    let _ = stop_tx.send(true);
    daemon.in_flight.abort_all();
    let Loop { queue_tx, .. } = daemon;
    drop(queue_tx);
    drop(found_tx);
    if let Some(task) = discovery_task {
        task.abort();
    }
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
    tracing::info!("trigger-otel-bridge daemon stopped");
    loop_result
}

type QueueTask = tokio::task::JoinHandle<Result<(), export_queue::QueueError>>;

struct Loop {
    lifecycle: Lifecycle,
    logs: LogsMode,
    concurrency: usize,
    max_pending: usize,
    retention: Duration,
    shard: Shard,
    client: TriggerClient,
    sender: Arc<SpanSender>,
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
    fn dispatch(&mut self) {
        let now = Instant::now();
        while self.may_poll() {
            let Some(Reverse((when, sequence, id))) = self.due.peek().cloned() else {
                return;
            };
            let Some(run) = self.runs.get(&id).filter(|run| run.scheduled == sequence) else {
                self.due.pop();
                continue;
            };
            if when > now {
                return;
            }
            self.due.pop();
            let free_slots = (self.concurrency - self.in_flight.len()).max(1);
            let capacity = (self.free_capacity() / free_slots).max(1);
            let ask_status = run.wants_status(run.last_had_partials);
            let job = PollJob {
                run_id: id.clone(),
                known_trace_id: run.trace_id.clone(),
                ask_status,
                task_identifier: run.task_identifier.clone(),
                state: run.run_state(),
                exported: run.exported.clone(),
                logs: self.logs,
                capacity,
            };
            self.reserved += capacity;
            self.in_flight_capacity.insert(id.clone(), capacity);
            self.in_flight.spawn(poll(self.client.clone(), job));
        }
    }

    async fn event_loop(
        &mut self,
        shutdown: impl Future<Output = ()>,
        mut acks: mpsc::UnboundedReceiver<Ack>,
        mut found: mpsc::UnboundedReceiver<String>,
        queue_task: QueueTask,
    ) -> Result<(Option<QueueTask>, Result<(), DaemonError>), DaemonError> {
        tokio::pin!(shutdown);
        let mut queue_task = queue_task;
        let mut prune_timer = tokio::time::interval_at(Instant::now() + PRUNE_EVERY, PRUNE_EVERY);
        loop {
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
                _ = prune_timer.tick() => self.prune().await?,
                _ = tokio::time::sleep_until(wait_for_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if wait_for_due.is_some() => {}
            }
        }
    }

    async fn on_poll(&mut self, id: Arc<str>, result: Result<PollResult, ApiError>) -> Result<(), DaemonError> {
        if let Some(capacity) = self.in_flight_capacity.remove(&id) {
            self.reserved = self.reserved.saturating_sub(capacity);
        }
        self.stats.polls.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let Some(run) = self.runs.get_mut(&id) else {
            return Ok(());
        };
        let result = match result {
            Ok(result) => result,
            Err(ApiError::NotFound { endpoint, .. }) => {
                tracing::warn!(run_id = %id, %endpoint, "run not found; retiring it");
                self.stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                run.phase = Phase::Retiring(RetireReason::NotFound);
                return self.retire_if_done(&id).await;
            }
            Err(error) => {
                self.stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                let wait = run.after_error(&self.lifecycle);
                tracing::warn!(run_id = %id, %error, retry_in = ?wait, "poll failed");
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
                run.status = Some(details.status.clone());
                run.finished_at = details.finished_at;
                if run.task_identifier.is_none() {
                    run.task_identifier = details.task_identifier.clone();
                }
                if details.is_terminal() && run.ended_seen.is_none() {
                    tracing::info!(run_id = %id, status = %details.status, "run ended; settling");
                    run.ended_seen = Some(now);
                    run.ended_ns = Some(unix_now_ns());
                }
                record_changed = true;
            }
            None => run.polls_since_status += 1,
        }
        run.last_had_partials = result.had_partials;
        for (reason, tally) in result.invalid.iter() {
            self.stats.invalid_elements.fetch_add(tally.count, Ordering::Relaxed);
            if run.logged_reasons.insert(reason.as_str()) {
                tracing::warn!(run_id = %id, reason = reason.as_str(), count = tally.count, first = %tally.first, "invalid elements in run");
            }
        }
        let changed = run.fingerprint != Some(result.fingerprint) || !result.spans.is_empty();
        run.fingerprint = Some(result.fingerprint);
        if !result.spans.is_empty() {
            let exported = Arc::make_mut(&mut run.exported);
            for span in &result.spans {
                exported.extend(span.covers.iter().copied());
            }
            run.queued += result.spans.len();
            self.stats.add_pending(result.spans.len());
            let _ = self.queue_tx.send(ExportItem {
                run_id: id.clone(),
                spans: result.spans,
            });
        }
        let record = record_changed.then(|| run_record(run));
        let next = match run.phase {
            Phase::Finalizing(reason) if result.complete => {
                run.phase = Phase::Retiring(reason);
                None
            }
            Phase::Retiring(_) => None,
            // Capacity cut this poll short: fetch the rest as soon as capacity allows.
            _ if !result.complete => Some(Duration::ZERO),
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
        self.stats.runs_retired.fetch_add(1, Ordering::Relaxed);
        tracing::info!(run_id = %id, reason = reason.as_str(), "run retired");
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
