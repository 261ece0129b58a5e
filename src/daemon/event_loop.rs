//! The daemon's event loop: wait for whatever comes next (a due run, a finished poll, an
//! export acknowledgement, a discovered run, a new configuration, shutdown) and hand it on;
//! a reloaded configuration applied.

use super::summary::Totals;
use super::{DaemonError, Loop};
use crate::commit::export_queue::{self, Ack};
use crate::config::reload::{self, ConfigSource};
use crate::config::{BridgeConfig, ConfigError};
use crate::schedule::watched::{Lifecycle, Phase, RetireReason};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How often retired runs' span ids are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often the loop proves it is alive (`/healthz`) when nothing else wakes it.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

type QueueTask = tokio::task::JoinHandle<Result<(), export_queue::QueueError>>;

/// The next configuration from `source`, or never when reload is off.
async fn next_config(source: &mut Option<ConfigSource>) -> Result<BridgeConfig, ConfigError> {
    match source {
        Some(source) => source.next().await,
        None => std::future::pending().await,
    }
}

impl Loop {
    pub(super) async fn event_loop(
        &mut self,
        shutdown: impl Future<Output = ()>,
        mut acks: mpsc::UnboundedReceiver<Ack>,
        mut found: super::discovery::Found,
        mut api_checked: oneshot::Receiver<()>,
        queue_task: QueueTask,
        mut reload: Option<ConfigSource>,
    ) -> Result<(Option<QueueTask>, Result<(), DaemonError>), DaemonError> {
        tokio::pin!(shutdown);
        let mut queue_task = queue_task;
        let mut prune_timer = tokio::time::interval_at(Instant::now() + PRUNE_EVERY, PRUNE_EVERY);
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        let summary_every = self.summary_every.max(Duration::from_millis(10));
        let mut summary_timer = tokio::time::interval_at(Instant::now() + summary_every, summary_every);
        let mut summarised = (Totals::read(&self.stats), Instant::now());
        loop {
            self.stats.health.beat();
            self.stats.loop_wakeups.fetch_add(1, Ordering::Relaxed);
            let wait_for_due = self.dispatch();
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
                checked = &mut api_checked, if !self.api_checked => {
                    if checked.is_err() {
                        // Only a panic ends the check without an answer: polls will show the
                        // fault the check would have, so go on rather than wait forever.
                        tracing::error!("the start-up check ended without a result; polling anyway");
                    }
                    self.api_checked = true;
                    self.start_discovery();
                }
                Some(joined) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    let (id, result) = joined?;
                    self.on_poll(id, result).await?;
                }
                Some(ack) = acks.recv() => self.on_ack(&ack).await?,
                Some(listed) = found.listed.recv() => self.on_listed(listed).await?,
                Some(event) = found.streamed.recv() => self.on_stream_event(event).await?,
                loaded = next_config(&mut reload) => match loaded {
                    Ok(new) => self.apply_reload(new).await?,
                    // One line per error: a log line holds no newline (every error of the file
                    // is found in one pass).
                    Err(reason) => for error in reason.into_list() {
                        tracing::error!(%error, "the new configuration is invalid; keeping the running one");
                    },
                },
                _ = prune_timer.tick() => self.prune().await?,
                _ = heartbeat.tick() => self.flush_state_writes()?,
                _ = summary_timer.tick() => {
                    let (now, at) = (Totals::read(&self.stats), Instant::now());
                    now.log_since(&summarised.0, at - summarised.1, self.runs.len(), self.stats.pending());
                    summarised = (now, at);
                }
                _ = tokio::time::sleep_until(wait_for_due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))), if wait_for_due.is_some() => {}
            }
        }
    }

    /// Apply what can change while running; say what needs a restart.
    pub(super) async fn apply_reload(&mut self, new: BridgeConfig) -> Result<(), DaemonError> {
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
        running.trigger = crate::config::TriggerConfig {
            rate_limit_reserve: running.trigger.rate_limit_reserve,
            ..self.config.trigger.clone()
        };
        if let Some(reserve) = plan.rate_limit_reserve {
            self.client.rate_limiter().set_reserve(reserve);
            tracing::info!(reserve, "trigger.rate_limit_reserve changed");
        }
        running.runs.shard = self.config.runs.shard;
        running.log.format = self.config.log.format;
        self.config = running;
        self.lifecycle = Lifecycle::from_runs(&self.config.runs);
        self.concurrency = self.config.runs.concurrency.max(1);
        if (self.logs, self.enrich) != (self.config.conversion.logs, self.config.conversion.enrich) {
            // The same body converts differently now (logs dropped or held back before may be
            // exported): no run may skip its next body as unchanged.
            for run in self.runs.values_mut() {
                run.body_hash = None;
            }
        }
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
            self.add_run(run_id, true).await?;
        }
        // Runs `state reopen` made unretired since the start.
        self.resume().await?;
        tracing::info!(
            added = plan.added_runs.len(),
            removed = plan.removed_runs.len(),
            "configuration reloaded"
        );
        Ok(())
    }
}
