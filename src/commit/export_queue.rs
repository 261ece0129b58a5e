//! The export queue: spans and log records of many runs → batches → the collector → one state
//! transaction per acknowledged batch → acknowledgements back to the daemon loop. A span id
//! reaches the state store only after the collector accepted the batch that held it.

use crate::commit::StateStore;
use crate::convert::Record;
use crate::daemon::stats::DaemonStats;
use crate::export::OtlpSender;
use crate::telemetry::events::SpansExported;
use crate::telemetry::health::StateWriter;
use opentelemetry::trace::SpanId;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Spans and log records of one run, waiting to be exported.
pub struct ExportItem {
    pub run_id: Arc<str>,
    pub records: Vec<Record>,
}

/// Records of these runs are exported and committed: `(run, number of records)`.
pub struct Ack {
    pub per_run: Vec<(Arc<str>, usize)>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot record exported spans: {0}")]
    State(#[from] crate::commit::StateError),
    #[error("the state store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Drain `items` until the channel closes: cut the queued records (of any runs) into batches of
/// at most `max_batch_spans`, send each (the sender retries until the collector accepts or
/// rejects every record; spans and log records of a batch go in one request per signal),
/// commit its ids in one transaction, acknowledge. Committing per batch is
/// what bounds the duplicates of a crash to one batch. A state file that refuses writes for now
/// holds the queue until it takes them ([`commit_durably`]); any other state-store failure stops
/// it: better stop than export without being able to remember it.
pub async fn run_queue(
    mut items: mpsc::UnboundedReceiver<ExportItem>,
    acks: mpsc::UnboundedSender<Ack>,
    sender: Arc<OtlpSender>,
    state: Arc<Mutex<StateStore>>,
    max_batch_spans: usize,
    stats: Arc<DaemonStats>,
) -> Result<(), QueueError> {
    let max_batch_spans = max_batch_spans.max(1);
    let mut queued: VecDeque<(Arc<str>, Record)> = VecDeque::new();
    loop {
        if queued.is_empty() {
            match items.recv().await {
                Some(item) => queued.extend(item.records.into_iter().map(|record| (item.run_id.clone(), record))),
                None => return Ok(()),
            }
        }
        while let Ok(item) = items.try_recv() {
            queued.extend(item.records.into_iter().map(|record| (item.run_id.clone(), record)));
        }
        let take = queued.len().min(max_batch_spans);
        let mut per_run: Vec<(Arc<str>, usize)> = Vec::new();
        let mut commit: Vec<(String, SpanId)> = Vec::with_capacity(take);
        let mut records: Vec<Record> = Vec::with_capacity(take);
        for (run_id, record) in queued.drain(..take) {
            match per_run.last_mut() {
                Some((last, count)) if *last == run_id => *count += 1,
                _ => per_run.push((run_id.clone(), 1)),
            }
            commit.extend(record.covers().iter().map(|id| (run_id.to_string(), *id)));
            records.push(record);
        }
        let started = tokio::time::Instant::now();
        // The daemon's sender never gives up (no `give_up_after`), so this returns once every
        // record was accepted or rejected as data.
        let report = match sender.send(records).await {
            Ok(report) => report,
            Err(error) => error.into_partial(),
        };
        let duration = started.elapsed();
        // Only what the sender counts as handled (accepted, or rejected as data) is committed.
        // Today that is the whole batch; were the daemon ever to give up, the rest would be
        // sent again after a restart rather than be recorded as exported.
        let delivered: HashSet<SpanId> = report.delivered.iter().copied().collect();
        commit.retain(|(_, id)| delivered.contains(id));
        commit_durably(&state, commit, &stats).await?;
        // Rejected records were counted by the sender as they were rejected (`RecordRejected`).
        SpansExported {
            spans: report.delivered_spans,
            log_records: report.delivered_logs,
            duration,
        }
        .emit(&stats);
        let _ = acks.send(Ack { per_run });
    }
}

/// Commit a delivered batch's ids, riding out a state file that refuses writes for now (a full
/// disk, a file system turned read-only): the batch waits here, in memory, with its ids already
/// in each run's exported set (so no poll converts them again) and no later batch sent, polling
/// pauses and `/readyz` fails (`Health`), and the commit is tried again until it succeeds. Nothing
/// delivered is lost and nothing is sent twice; only a stop during the fault (SIGTERM past the
/// shutdown deadline, a crash) leaves this one batch to be sent again after the restart. Any
/// other failure (a damaged file) stops the queue, as before.
async fn commit_durably(
    state: &Arc<Mutex<StateStore>>,
    commit: Vec<(String, SpanId)>,
    stats: &DaemonStats,
) -> Result<(), QueueError> {
    let commit = Arc::new(commit);
    let mut wait = COMMIT_RETRY_FIRST;
    let mut failing_since: Option<tokio::time::Instant> = None;
    loop {
        let (store, ids) = (state.clone(), commit.clone());
        let committed =
            tokio::task::spawn_blocking(move || store.lock().unwrap_or_else(|e| e.into_inner()).commit_exported(&ids))
                .await?;
        let error = match committed {
            Ok(_) => {
                if let Some(since) = failing_since {
                    stats.health.state_write_recovered(StateWriter::Queue);
                    tracing::warn!(
                        spans = commit.len(),
                        after = %crate::wording::human_duration(since.elapsed()),
                        "the state file takes writes again: the waiting batch is committed; polling resumes"
                    );
                }
                return Ok(());
            }
            Err(error) => error,
        };
        let Some(fault) = error.write_fault() else {
            return Err(error.into());
        };
        if failing_since.is_none() {
            tracing::error!(
                %error,
                spans = commit.len(),
                "cannot commit exported span ids ({}): the delivered batch waits in memory and polling pauses until the state file can be written",
                fault.as_str()
            );
            failing_since = Some(tokio::time::Instant::now());
        }
        stats.health.state_write_failed(StateWriter::Queue, fault.as_str());
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(COMMIT_RETRY_MAX);
    }
}

/// The first wait before committing again after a write fault, and the longest.
const COMMIT_RETRY_FIRST: Duration = Duration::from_millis(250);
const COMMIT_RETRY_MAX: Duration = Duration::from_secs(5);

/// Sum an ack per run (several items of one run can share a batch).
pub fn per_run_totals(ack: &Ack) -> HashMap<Arc<str>, usize> {
    let mut totals: HashMap<Arc<str>, usize> = HashMap::new();
    for (run, count) in &ack.per_run {
        *totals.entry(run.clone()).or_default() += count;
    }
    totals
}
