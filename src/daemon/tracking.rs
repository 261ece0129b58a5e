//! Per-run bookkeeping: runs watched (configured, discovered, resumed after a restart), poll
//! results taken in (spans queued, status and trace id remembered), runs retired once
//! everything of theirs was acknowledged.

use super::state_writes::StateWrite;
use super::{unix_now_ns, DaemonError, Loop, RetiredRun};
use crate::commit::export_queue::{per_run_totals, Ack, ExportItem};
use crate::commit::RunRecord;
use crate::convert::Record;
use crate::discover::{shard, Listed, Via};
use crate::fetch::poll::PollResult;
use crate::schedule::watched::{
    self, Next, ObservedStatus, Phase, PollOutcome, RetireReason, StatusSource, TraceIdState, WatchedRun,
};
use crate::telemetry::events::{BodyUnchanged, InvalidElements, PollFailed, PollFinished, RunNotFound, RunRetired};
use crate::trigger::ApiError;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl Loop {
    /// Every run not retired in the state store and not watched yet is watched (again): at start,
    /// and on reload, which picks up the runs `state reopen` brought back.
    pub(super) async fn resume(&mut self) -> Result<(), DaemonError> {
        let records = self.with_state(|s| s.unretired_runs())?;
        for record in records {
            if !shard::owns(&self.shard, &record.run_id)
                || self.runs.contains_key(record.run_id.as_str())
                || self.retire_pending(&record.run_id)
            {
                continue;
            }
            let exported = self.with_state(|s| s.exported_span_ids(&record.run_id))?;
            let id: Arc<str> = Arc::from(record.run_id.as_str());
            let now = Instant::now();
            // A run reopened by `state reopen` gets a whole `max_age` again.
            let watched_from = record.reopened_at.unwrap_or(record.first_seen_at);
            let since = watched::watched_since(watched_from, unix_now_ns(), now);
            let mut run = WatchedRun::new(id.clone(), &self.lifecycle, since);
            run.trace_id = match (&record.trace_id, record.trace_id_derived) {
                (_, true) => TraceIdState::Derived,
                (Some(trace), false) => TraceIdState::Known(trace.clone()),
                (None, false) => TraceIdState::NotAsked,
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
    /// `named`: it is in `runs.ids` (not found by discovery); a run retired only because it was
    /// taken out of `runs.ids` is then watched again, with what it had exported.
    pub(super) async fn add_run(&mut self, run_id: &str, named: bool) -> Result<(), DaemonError> {
        if run_id.is_empty() || self.runs.contains_key(run_id) {
            return Ok(());
        }
        if !shard::owns(&self.shard, run_id) {
            tracing::debug!(run_id = %run_id, "another shard owns this run");
            return Ok(());
        }
        if !named && self.retire_pending(run_id) {
            // Retired here, its retirement waiting for the state file: not back through the
            // stream's next row meanwhile.
            return Ok(());
        }
        let mut exported = HashSet::new();
        if let Some(record) = self.with_state(|s| s.run(run_id))? {
            if record.retired_at.is_some() {
                // Decided from the record just read, so the write can wait with the others
                // while the state file refuses writes.
                let removed = RetireReason::Removed.as_str();
                if !(named && record.retire_reason.as_deref() == Some(removed)) {
                    if !named {
                        // Listed or streamed again: normal until it leaves the lookback.
                        tracing::debug!(run_id = %run_id, "discovered again; retired already");
                        return Ok(());
                    }
                    tracing::info!(
                        run_id = %run_id,
                        reason = record.retire_reason.as_deref().unwrap_or("unknown"),
                        undo = %format_args!("trigger-otel-bridge state reopen {run_id}"),
                        "run already retired; not polling it again"
                    );
                    return Ok(());
                }
                tracing::info!(run_id = %run_id, "named in runs.ids again after its removal; watching it again");
                self.write_state(StateWrite::Reopen {
                    run_id: run_id.to_owned(),
                    reason: removed,
                })?;
            }
            exported = self.with_state(|s| s.exported_span_ids(run_id))?;
        }
        let record = RunRecord::new(run_id, unix_now_ns());
        let first_seen_ns = record.first_seen_at;
        self.write_state(StateWrite::Upsert(record))?;
        let id: Arc<str> = Arc::from(run_id);
        tracing::info!(run_id = %run_id, "watching run");
        let mut run = WatchedRun::new(id, &self.lifecycle, Instant::now());
        run.first_seen_ns = first_seen_ns;
        run.exported = Arc::new(exported);
        self.insert(run);
        Ok(())
    }

    /// A run discovery listed: watched when new; the status of a watched run is observed, so
    /// its end is learnt without a request of its own (and a new run's first poll need not ask).
    pub(super) async fn on_listed(&mut self, listed: Listed) -> Result<(), DaemonError> {
        // Watched before this listing (resumed, named in runs.ids, or listed before): a new run
        // is scheduled by `add_run` itself.
        let watched_before = self.runs.contains_key(listed.id.as_str());
        if listed.new {
            self.add_run(&listed.id, false).await?;
        }
        let in_poll = self.reserved.holds(&listed.id);
        let now = Instant::now();
        let Some(run) = self.runs.get_mut(listed.id.as_str()) else {
            return Ok(());
        };
        if listed.status.is_empty() {
            return Ok(());
        }
        let observed = ObservedStatus {
            status: &listed.status,
            finished_at: listed.finished_at,
            task_identifier: listed.task_identifier.as_deref(),
            source: match listed.via {
                Via::List => StatusSource::Listing,
                Via::Realtime => StatusSource::Realtime,
            },
        };
        let change = run.on_status(observed, now, unix_now_ns());
        if !change.record_changed {
            return Ok(());
        }
        let id = run.id.clone();
        let ended = change.ended;
        if ended {
            let source = match listed.via {
                Via::List => "listing",
                Via::Realtime => "realtime",
            };
            tracing::info!(run_id = %id, status = %listed.status, source, "run ended; settling");
        }
        let record = run_record(run);
        self.write_state(StateWrite::Upsert(record))?;
        if (ended || change.moved) && !in_poll && watched_before {
            // Poll now, and through the settle time (a quiet run's next poll may be a minute
            // off); or, pushed by the stream, a run that moved on (waiting → executing) has new
            // spans coming: poll it now rather than at its quiet pace.
            self.schedule(&id, Duration::ZERO);
        }
        Ok(())
    }

    pub(super) async fn on_poll(
        &mut self,
        id: Arc<str>,
        result: Result<PollResult, ApiError>,
    ) -> Result<(), DaemonError> {
        self.reserved.release(&id);
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
            Err(ApiError::NotFound { endpoint, message }) => {
                return match run.on_not_found(&self.lifecycle, self.client.last_success(), now) {
                    Some(wait) => {
                        let error = ApiError::NotFound { endpoint, message };
                        PollFailed {
                            run_id: &id,
                            error: &error,
                            retry_in: Some(wait),
                        }
                        .emit(&self.stats);
                        self.schedule(&id, wait);
                        Ok(())
                    }
                    None => {
                        RunNotFound {
                            run_id: &id,
                            endpoint: &endpoint,
                        }
                        .emit(&self.stats);
                        self.retire_if_done(&id).await
                    }
                };
            }
            Err(error) => {
                let wait = run.after_error(&self.lifecycle, now);
                PollFailed {
                    run_id: &id,
                    error: &error,
                    retry_in: wait,
                }
                .emit(&self.stats);
                return match wait {
                    Some(wait) => {
                        self.schedule(&id, wait);
                        Ok(())
                    }
                    None => self.retire_if_done(&id).await,
                };
            }
        };

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
        if result.fingerprint.is_none() {
            BodyUnchanged { run_id: &id }.emit(&self.stats);
        }
        let outcome = PollOutcome {
            trace_id: result.trace.map(|asked| asked.map(|trace| trace.trace_id)),
            status: result.details.as_ref().map(|details| ObservedStatus {
                status: &details.summary.status,
                finished_at: details.summary.finished_at,
                task_identifier: details.summary.task_identifier.as_deref(),
                source: StatusSource::Poll,
            }),
            body_hash: result.body_hash,
            fingerprint: result.fingerprint,
            shows_end: result.shows_end,
            end_hint_checked: result.end_hint_checked,
            records: result.records.len(),
            left_behind: result.left_behind,
        };
        let effects = run.on_poll(&self.lifecycle, outcome, now, unix_now_ns());
        if effects.ended {
            tracing::info!(run_id = %id, status = run.status.as_deref().unwrap_or("unknown"), "run ended; settling");
        }
        if !result.records.is_empty() {
            let exported = Arc::make_mut(&mut run.exported);
            for record in &result.records {
                exported.extend(record.covers().iter().copied());
                match record {
                    Record::Span(_) => run.sent.spans += 1,
                    Record::Log(_) => run.sent.log_records += 1,
                }
            }
            run.forget_exported_properties();
            self.stats.add_pending(result.records.len());
            let _ = self.queue_tx.send(ExportItem {
                run_id: id.clone(),
                records: result.records,
            });
        }
        if effects.record_changed {
            let record = run_record(run);
            self.write_state(StateWrite::Upsert(record))?;
        }
        match effects.next {
            Next::PollIn(wait) => self.schedule(&id, wait),
            Next::Retire => self.retire_if_done(&id).await?,
        }
        Ok(())
    }

    pub(super) async fn on_ack(&mut self, ack: &Ack) -> Result<(), DaemonError> {
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
    pub(super) async fn retire_if_done(&mut self, id: &Arc<str>) -> Result<(), DaemonError> {
        let Some(run) = self.runs.get(id) else { return Ok(()) };
        let Phase::Retiring(reason) = run.phase else {
            return Ok(());
        };
        if run.queued > 0 {
            return Ok(());
        }
        let run_id = id.to_string();
        self.write_state(StateWrite::retire(&run_id, reason.as_str()))?;
        let Some(run) = self.runs.remove(id) else { return Ok(()) };
        self.stats.runs_watched.set(self.runs.len());
        RunRetired {
            run_id: &run_id,
            reason: reason.as_str(),
            spans: run.sent.spans,
            log_records: run.sent.log_records,
            invalid_elements: run.invalid_counted.values().sum(),
            span_ids_committed: run.exported.len(),
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
        trace_id: match &run.trace_id {
            TraceIdState::Known(id) => Some(id.clone()),
            _ => None,
        },
        trace_id_derived: run.trace_id == TraceIdState::Derived,
        status: run.status.clone(),
        task_identifier: run.task_identifier.clone(),
        ended_at: run.ended_ns,
        finished_at: run.finished_at,
        last_polled_at: Some(unix_now_ns()),
        ..RunRecord::new(run.id.to_string(), run.first_seen_ns)
    }
}
