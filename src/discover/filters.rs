//! `[discovery]`'s filters applied in the bridge, to the realtime stream's rows (the list
//! endpoint applies the same filters on the server): tasks, tags (any of them, as the list
//! endpoint's `filter[tag]` means; the stream's own `tags` would mean all), statuses, test runs,
//! and runs created within `lookback`.

use super::realtime::RealtimeRun;
use crate::config::DiscoveryConfig;
use crate::trigger::api_types::run_status;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The oldest creation time (unix ns) discovery takes now: `lookback` before now, for the list
/// endpoint's rounds and the stream's rows alike.
pub fn lookback_edge(lookback: Duration) -> u64 {
    SystemTime::now()
        .checked_sub(lookback)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Whether discovery watches `run`, created no earlier than `edge_ns` (unix ns).
pub fn wanted(discovery: &DiscoveryConfig, run: &RealtimeRun, edge_ns: u64) -> bool {
    let task = discovery.tasks.is_empty()
        || run
            .task_identifier
            .as_deref()
            .is_some_and(|task| discovery.tasks.iter().any(|wanted| wanted == task));
    let tag = discovery.tags.is_empty() || run.tags.iter().any(|tag| discovery.tags.contains(tag));
    let status = discovery.statuses.is_empty()
        || discovery
            .statuses
            .iter()
            .any(|wanted| run_status(wanted).unwrap_or(wanted) == run.status);
    let test = discovery.include_test || !run.is_test;
    let recent = run.created_at.is_none_or(|created| created >= edge_ns);
    task && tag && status && test && recent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RealtimeRun {
        RealtimeRun {
            id: "run_a".into(),
            status: "EXECUTING".into(),
            db_status: "EXECUTING".into(),
            terminal: false,
            task_identifier: Some("email".into()),
            tags: vec!["user:1".into(), "prod".into()],
            is_test: false,
            created_at: Some(1_000),
            updated_at: Some(1_000),
            completed_at: None,
        }
    }

    #[test]
    fn each_filter_applies_and_tags_match_any() {
        let all = DiscoveryConfig::default();
        assert!(wanted(&all, &run(), 0));
        assert!(!wanted(&all, &run(), 2_000), "created before the lookback");
        let tasks = DiscoveryConfig {
            tasks: vec!["other".into()],
            ..DiscoveryConfig::default()
        };
        assert!(!wanted(&tasks, &run(), 0));
        let tags = DiscoveryConfig {
            tags: vec!["prod".into(), "staging".into()],
            ..DiscoveryConfig::default()
        };
        assert!(wanted(&tags, &run(), 0), "any of the tags");
        let statuses = DiscoveryConfig {
            statuses: vec!["executing".into()],
            ..DiscoveryConfig::default()
        };
        assert!(wanted(&statuses, &run(), 0), "case does not matter");
        let completed = DiscoveryConfig {
            statuses: vec!["COMPLETED".into()],
            ..DiscoveryConfig::default()
        };
        assert!(!wanted(&completed, &run(), 0));
        let mut test_run = run();
        test_run.is_test = true;
        assert!(!wanted(&all, &test_run, 0));
        let with_tests = DiscoveryConfig {
            include_test: true,
            ..DiscoveryConfig::default()
        };
        assert!(wanted(&with_tests, &test_run, 0));
    }
}
