//! Which source discovers runs (`discovery.source`): Trigger.dev's realtime stream or the list
//! endpoint, switched by what the stream reports. Pure: the daemon feeds it the stream's news and
//! starts or stops the list endpoint's rounds as it says.

use crate::config::DiscoverySource;

/// The source in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Active {
    Realtime,
    List,
}

impl Active {
    /// The `discovery_source{source}` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Active::Realtime => "realtime",
            Active::List => "list",
        }
    }
}

/// A change of source, and why (`discovery_source_switches_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch {
    pub to: Active,
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
pub struct SourceChoice {
    setting: DiscoverySource,
    active: Active,
}

impl SourceChoice {
    /// At start: the stream for `auto` and `realtime` (the list endpoint covers the runs before
    /// its first snapshot once, at start, either way), the list endpoint for `list`.
    pub fn new(setting: DiscoverySource) -> Self {
        let active = match setting {
            DiscoverySource::Auto | DiscoverySource::Realtime => Active::Realtime,
            DiscoverySource::List => Active::List,
        };
        SourceChoice { setting, active }
    }

    pub fn active(&self) -> Active {
        self.active
    }

    /// Whether the stream is to be subscribed at all.
    pub fn wants_stream(&self) -> bool {
        self.setting != DiscoverySource::List
    }

    /// Whether the list endpoint's rounds run now (besides the one at start).
    pub fn wants_list_rounds(&self) -> bool {
        self.active == Active::List
    }

    /// The stream delivered (a snapshot or a change): with `auto`, back on it.
    pub fn stream_up(&mut self) -> Option<Switch> {
        self.switch(Active::Realtime, "recovered")
    }

    /// The stream is unavailable for `reason` (`not_served`, `refused`, `busy`, `failing`):
    /// with `auto`, the list endpoint takes over. With `realtime` nothing switches: the stream
    /// keeps being tried and the log says why runs are not discovered meanwhile.
    pub fn stream_down(&mut self, reason: &'static str) -> Option<Switch> {
        self.switch(Active::List, reason)
    }

    fn switch(&mut self, to: Active, reason: &'static str) -> Option<Switch> {
        if self.setting != DiscoverySource::Auto || self.active == to {
            return None;
        }
        self.active = to;
        Some(Switch { to, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_the_list_endpoint_and_returns() {
        let mut choice = SourceChoice::new(DiscoverySource::Auto);
        assert_eq!(choice.active(), Active::Realtime);
        assert!(choice.wants_stream() && !choice.wants_list_rounds());
        assert_eq!(choice.stream_up(), None, "already on the stream");
        assert_eq!(
            choice.stream_down("busy"),
            Some(Switch {
                to: Active::List,
                reason: "busy"
            })
        );
        assert!(
            choice.wants_list_rounds() && choice.wants_stream(),
            "the stream is still tried"
        );
        assert_eq!(choice.stream_down("failing"), None, "already on the list endpoint");
        assert_eq!(
            choice.stream_up(),
            Some(Switch {
                to: Active::Realtime,
                reason: "recovered"
            })
        );
        assert!(!choice.wants_list_rounds());
    }

    #[test]
    fn realtime_and_list_never_switch() {
        let mut realtime = SourceChoice::new(DiscoverySource::Realtime);
        assert_eq!(realtime.stream_down("not_served"), None);
        assert!(!realtime.wants_list_rounds() && realtime.wants_stream());
        let mut list = SourceChoice::new(DiscoverySource::List);
        assert_eq!(list.stream_up(), None);
        assert!(list.wants_list_rounds() && !list.wants_stream());
    }
}
