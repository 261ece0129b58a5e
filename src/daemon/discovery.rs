//! Discovery, as the daemon runs it: the list endpoint's rounds, and (with `discovery.source`
//! `auto` or `realtime`) Trigger.dev's realtime stream, switched by `discover::source`. The
//! stream's rows are filtered here (`discover::filters`) and observed as statuses: a run it covers
//! needs no status request of its own.

use super::{DaemonError, Loop};
use crate::config::DiscoverySource;
use crate::discover::realtime::row::map_status;
use crate::discover::realtime::{StreamEvent, Subscriber, MAX_WINDOW};
use crate::discover::source::{SourceChoice, Switch};
use crate::discover::{filters, Discovery, Listed, Via};
use crate::telemetry::events::DiscoverySourceInUse;
use crate::trigger::RunFilters;
use std::collections::HashSet;
use tokio::sync::{mpsc, watch};

/// What discovery sends the loop: runs the list endpoint reported, and the stream's events with
/// the generation of the discovery that subscribed (events of a stopped one are dropped).
pub(super) struct Found {
    pub listed: mpsc::UnboundedReceiver<Listed>,
    pub streamed: mpsc::UnboundedReceiver<(u64, StreamEvent)>,
}

/// Running discovery: the list endpoint's task, the switch of its rounds, the stream's task, and
/// what stops them.
pub(super) struct DiscoveryTask {
    list: tokio::task::JoinHandle<()>,
    stream: Option<tokio::task::JoinHandle<()>>,
    /// Whether the list endpoint's rounds run (after the one at start).
    rounds: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    source: SourceChoice,
    /// Counts starts: a reload restarts discovery, and the old stream's last events must not
    /// mark runs covered by a stream that is gone.
    generation: u64,
    /// The list endpoint's rounds run whatever the source (`lookback_outgrows_the_stream`).
    rounds_always: bool,
}

/// The stream holds runs created within a day at most. With a longer `lookback` and a status or
/// tag filter, a run older than that can come to match (it fails now, it is tagged now): only the
/// list endpoint's rounds see it.
fn lookback_outgrows_the_stream(discovery: &crate::config::DiscoveryConfig) -> bool {
    discovery.lookback > MAX_WINDOW && (!discovery.statuses.is_empty() || !discovery.tags.is_empty())
}

impl Loop {
    /// Starts discovery when it is on and the start-up check has passed: the list endpoint's
    /// first round at once (it covers what the stream's window of at most a day does not), then
    /// its rounds or the stream as `discovery.source` says.
    pub(super) fn start_discovery(&mut self) {
        if !self.config.discovery.enabled || !self.api_checked {
            return;
        }
        let source = SourceChoice::new(self.config.discovery.source);
        let (stop, stopped) = watch::channel(false);
        let rounds_always = source.wants_stream() && lookback_outgrows_the_stream(&self.config.discovery);
        let (rounds, rounds_on) = watch::channel(source.wants_list_rounds() || rounds_always);
        let discovery = Discovery {
            client: self.client.clone(),
            filters: RunFilters::from_discovery(&self.config.discovery),
            interval: self.config.discovery.interval,
            lookback: self.config.discovery.lookback,
        };
        let list = tokio::spawn(discovery.run(self.found_tx.clone(), rounds_on, stopped.clone()));
        self.discovery_generation += 1;
        let generation = self.discovery_generation;
        let stream = source.wants_stream().then(|| {
            let subscriber =
                Subscriber::new(&self.client, self.config.discovery.lookback).with_tuning(self.realtime_tuning.clone());
            let (events, mut received) = mpsc::unbounded_channel();
            let streamed = self.streamed_tx.clone();
            tokio::spawn(async move {
                let subscribed = tokio::spawn(subscriber.run(events, stopped));
                while let Some(event) = received.recv().await {
                    if streamed.send((generation, event)).is_err() {
                        break;
                    }
                }
                subscribed.abort();
            })
        });
        DiscoverySourceInUse {
            source: source.active().as_str(),
            reason: "start",
            detail: "",
        }
        .emit(&self.stats);
        self.discovery = Some(DiscoveryTask {
            list,
            stream,
            rounds,
            stop,
            source,
            generation,
            rounds_always,
        });
    }

    pub(super) fn stop_discovery(&mut self) {
        if let Some(discovery) = self.discovery.take() {
            // The subscriber aborts its long poll on `stop` (the server frees the connection slot
            // at once); the tasks are aborted too, for whatever they were awaiting.
            let _ = discovery.stop.send(true);
            let _ = discovery.rounds.send(false);
            discovery.list.abort();
            if let Some(stream) = discovery.stream {
                stream.abort();
            }
        }
        for run in self.runs.values_mut() {
            run.stream_lost();
        }
    }

    /// What the stream reported: runs to watch and statuses observed, or that it is unavailable
    /// (the list endpoint takes over with `auto`).
    pub(super) async fn on_stream_event(&mut self, (generation, event): (u64, StreamEvent)) -> Result<(), DaemonError> {
        let Some(discovery) = self.discovery.as_mut().filter(|d| d.generation == generation) else {
            return Ok(());
        };
        match event {
            StreamEvent::Runs { runs, snapshot } => {
                let switch = discovery.source.stream_up();
                self.switched(switch, "");
                if snapshot {
                    // Runs the new snapshot does not hold (created before its window) are no
                    // longer covered: their status is asked by polls again.
                    let held: HashSet<&str> = runs.iter().map(|run| run.id.as_str()).collect();
                    for run in self.runs.values_mut().filter(|run| !held.contains(&*run.id)) {
                        run.stream_lost();
                    }
                }
                let edge = filters::lookback_edge(self.config.discovery.lookback);
                for run in runs {
                    let wanted = filters::wanted(&self.config.discovery, &run, edge);
                    if !wanted && !self.runs.contains_key(run.id.as_str()) {
                        continue;
                    }
                    // A database status this bridge does not know (a new one, say) is read like
                    // a listing's: it covers nothing, so the run's own status requests go on
                    // and can tell its end.
                    let via = match map_status(&run.db_status).known {
                        true => Via::Realtime,
                        false => Via::List,
                    };
                    let listed = Listed {
                        id: run.id,
                        status: run.status,
                        finished_at: run.completed_at,
                        task_identifier: run.task_identifier,
                        new: wanted,
                        via,
                    };
                    self.on_listed(listed).await?;
                }
            }
            StreamEvent::Unavailable { kind, reason } => {
                for run in self.runs.values_mut() {
                    run.stream_lost();
                }
                let switch = discovery.source.stream_down(kind.as_str());
                if switch.is_none() && self.config.discovery.source == DiscoverySource::Realtime {
                    tracing::warn!(
                        reason = kind.as_str(),
                        detail = %reason,
                        "the realtime stream is unavailable; no new run is discovered until it is back (discovery.source = \"realtime\")"
                    );
                }
                self.switched(switch, &reason);
            }
        }
        Ok(())
    }

    /// Carries out a change of source: the list endpoint's rounds on or off, logged and counted.
    fn switched(&mut self, switch: Option<Switch>, detail: &str) {
        let (Some(switch), Some(discovery)) = (switch, self.discovery.as_ref()) else {
            return;
        };
        let _ = discovery
            .rounds
            .send(switch.to == crate::discover::source::Active::List || discovery.rounds_always);
        DiscoverySourceInUse {
            source: switch.to.as_str(),
            reason: switch.reason,
            detail,
        }
        .emit(&self.stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DiscoveryConfig;
    use std::time::Duration;

    #[test]
    fn a_lookback_past_the_streams_day_keeps_the_rounds_only_when_old_runs_can_come_to_match() {
        let week = Duration::from_secs(7 * 86_400);
        let config = |lookback, statuses: &[&str], tags: &[&str]| DiscoveryConfig {
            lookback,
            statuses: statuses.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            ..DiscoveryConfig::default()
        };
        assert!(lookback_outgrows_the_stream(&config(week, &["FAILED"], &[])));
        assert!(lookback_outgrows_the_stream(&config(week, &[], &["prod"])));
        assert!(
            !lookback_outgrows_the_stream(&config(week, &[], &[])),
            "a new run is always created now"
        );
        assert!(!lookback_outgrows_the_stream(&config(
            Duration::from_secs(3600),
            &["FAILED"],
            &[]
        )));
    }
}
