//! Discovery, as the daemon runs it: the list endpoint's rounds, and (with `discovery.source`
//! `auto` or `realtime`) Trigger.dev's realtime stream, switched by `discover::source`.

use super::Loop;
use crate::discover::source::SourceChoice;
use crate::discover::Discovery;
use crate::telemetry::events::DiscoverySourceInUse;
use crate::trigger::RunFilters;
use tokio::sync::watch;

/// Running discovery: the list endpoint's task, the switch of its rounds, and what stops it.
pub(super) struct DiscoveryTask {
    list: tokio::task::JoinHandle<()>,
    /// Whether the list endpoint's rounds run (after the one at start).
    rounds: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    pub(super) source: SourceChoice,
}

impl Loop {
    /// Starts discovery when it is on and the start-up check has passed: the list endpoint's
    /// first round at once (it covers what the stream's window does not), then its rounds or
    /// the stream as `discovery.source` says.
    pub(super) fn start_discovery(&mut self) {
        if !self.config.discovery.enabled || !self.api_checked {
            return;
        }
        let source = SourceChoice::new(self.config.discovery.source);
        let (stop, stopped) = watch::channel(false);
        let (rounds, rounds_on) = watch::channel(source.wants_list_rounds());
        let discovery = Discovery {
            client: self.client.clone(),
            filters: RunFilters::from_discovery(&self.config.discovery),
            interval: self.config.discovery.interval,
            lookback: self.config.discovery.lookback,
        };
        let list = tokio::spawn(discovery.run(self.found_tx.clone(), rounds_on, stopped));
        DiscoverySourceInUse {
            source: source.active().as_str(),
            reason: "start",
            detail: "",
        }
        .emit(&self.stats);
        self.discovery = Some(DiscoveryTask {
            list,
            rounds,
            stop,
            source,
        });
    }

    pub(super) fn stop_discovery(&mut self) {
        if let Some(discovery) = self.discovery.take() {
            let _ = discovery.stop.send(true);
            let _ = discovery.rounds.send(false);
            discovery.list.abort();
        }
    }
}
