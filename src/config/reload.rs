//! Configuration reload: on SIGHUP or when the config file changes, load it again and work out
//! what can change while running (runs, discovery, intervals, log level) and what needs a
//! restart (said in the log). An invalid new config keeps the old one, and says why.

use crate::config::{load, BridgeConfig, ConfigError};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How often the config file's modification time is checked.
pub const FILE_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Where a new configuration comes from: the file and environment it was loaded from, the
/// SIGHUP count forwarded by the binary, and the file's modification time.
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pub env: HashMap<String, String>,
    pub requests: Option<watch::Receiver<u64>>,
    modified: Option<SystemTime>,
    /// Kept across calls of [`ConfigSource::next`]: the event loop polls `next` afresh on every
    /// pass, and woken every second by its heartbeat, a sleep made inside `next` would never
    /// reach its end.
    file_check: tokio::time::Interval,
}

impl ConfigSource {
    pub fn new(path: Option<PathBuf>, env: HashMap<String, String>, requests: Option<watch::Receiver<u64>>) -> Self {
        let modified = path.as_deref().and_then(modified_at);
        let mut file_check = tokio::time::interval_at(tokio::time::Instant::now() + FILE_CHECK_EVERY, FILE_CHECK_EVERY);
        file_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ConfigSource {
            path,
            env,
            requests,
            modified,
            file_check,
        }
    }

    /// Wait for SIGHUP or a change of the file; then load it. `Err` says why the new config was
    /// refused. Cancel-safe: dropped before it finishes, no signal or file check is lost.
    pub async fn next(&mut self) -> Result<BridgeConfig, ConfigError> {
        loop {
            tokio::select! {
                changed = sighup(&mut self.requests) => {
                    if changed.is_err() {
                        // No signal source any more: only the file can trigger a reload.
                        self.requests = None;
                        continue;
                    }
                    tracing::info!("SIGHUP: reloading the configuration");
                    break;
                }
                _ = self.file_check.tick(), if self.path.is_some() => {
                    let now = self.path.as_deref().and_then(modified_at);
                    if now != self.modified {
                        tracing::info!(path = %self.path.as_deref().map(|p| p.display().to_string()).unwrap_or_default(), "the config file changed: reloading");
                        break;
                    }
                }
            }
        }
        self.modified = self.path.as_deref().and_then(modified_at);
        load(self.path.as_deref(), &self.env)
    }
}

async fn sighup(requests: &mut Option<watch::Receiver<u64>>) -> Result<(), watch::error::RecvError> {
    match requests {
        Some(requests) => requests.changed().await,
        None => std::future::pending().await,
    }
}

fn modified_at(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What a reload changes.
#[derive(Debug, Default, PartialEq)]
pub struct ReloadPlan {
    pub added_runs: Vec<String>,
    pub removed_runs: Vec<String>,
    pub discovery_changed: bool,
    pub log_level: Option<String>,
    /// `trigger.rate_limit_reserve`, when it changed: the one `[trigger]` key applied live (the
    /// limiter reads it on every request; the others are baked into the HTTP client).
    pub rate_limit_reserve: Option<f64>,
    /// Settings that changed but only take effect after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Compare the running configuration with the new one.
pub fn plan(old: &BridgeConfig, new: &BridgeConfig) -> ReloadPlan {
    let old_ids: BTreeSet<&String> = old.runs.ids.iter().collect();
    let new_ids: BTreeSet<&String> = new.runs.ids.iter().collect();
    let mut needs_restart = Vec::new();
    let mut restart_if = |changed: bool, key: &'static str| {
        if changed {
            needs_restart.push(key);
        }
    };
    restart_if(old.state != new.state, "state");
    restart_if(old.server != new.server, "server.listen");
    // The meter provider and its exporter are built once, at start.
    restart_if(old.telemetry != new.telemetry, "telemetry");
    restart_if(old.export != new.export, "export");
    let reserve_changed = old.trigger.rate_limit_reserve != new.trigger.rate_limit_reserve;
    let trigger_but_reserve = crate::config::TriggerConfig {
        rate_limit_reserve: old.trigger.rate_limit_reserve,
        ..new.trigger.clone()
    };
    restart_if(old.trigger != trigger_but_reserve, "trigger");
    restart_if(old.runs.shard != new.runs.shard, "runs.shard");
    restart_if(old.log.format != new.log.format, "log.format");
    ReloadPlan {
        added_runs: new_ids.difference(&old_ids).map(|id| id.to_string()).collect(),
        removed_runs: old_ids.difference(&new_ids).map(|id| id.to_string()).collect(),
        discovery_changed: old.discovery != new.discovery,
        log_level: (old.log.level != new.log.level).then(|| new.log.level.clone()),
        rate_limit_reserve: reserve_changed.then_some(new.trigger.rate_limit_reserve),
        needs_restart,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_lists_runs_added_and_removed_and_what_needs_a_restart() {
        let mut old = BridgeConfig::default();
        old.runs.ids = vec!["run_a".into(), "run_b".into()];
        let mut new = old.clone();
        new.runs.ids = vec!["run_b".into(), "run_c".into()];
        new.discovery.tags = vec!["prod".into()];
        new.log.level = "debug".into();
        new.state.path = "/elsewhere.db".into();
        let plan = plan(&old, &new);
        assert_eq!(plan.added_runs, vec!["run_c"]);
        assert_eq!(plan.removed_runs, vec!["run_a"]);
        assert!(plan.discovery_changed);
        assert_eq!(plan.log_level.as_deref(), Some("debug"));
        assert_eq!(plan.needs_restart, vec!["state"]);
    }

    #[test]
    fn the_reserve_is_live_and_the_rest_of_trigger_needs_a_restart() {
        let old = BridgeConfig::default();
        let mut new = old.clone();
        new.trigger.rate_limit_reserve = 0.5;
        let reserve_only = plan(&old, &new);
        assert_eq!(reserve_only.rate_limit_reserve, Some(0.5));
        assert!(reserve_only.needs_restart.is_empty(), "{reserve_only:?}");
        new.trigger.api_url = "https://trigger.example.com".into();
        let both = plan(&old, &new);
        assert_eq!(both.rate_limit_reserve, Some(0.5));
        assert_eq!(both.needs_restart, vec!["trigger"]);
    }

    #[test]
    fn the_otlp_metrics_push_needs_a_restart() {
        let old = BridgeConfig::default();
        let mut new = old.clone();
        new.telemetry.otlp_endpoint = Some("http://otel:4317".into());
        assert_eq!(plan(&old, &new).needs_restart, vec!["telemetry"]);
    }

    #[test]
    fn an_unchanged_config_plans_nothing() {
        let config = BridgeConfig::default();
        assert_eq!(plan(&config, &config.clone()), ReloadPlan::default());
    }

    #[tokio::test]
    async fn a_changed_file_is_reloaded_and_a_broken_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.toml");
        std::fs::write(&path, "[runs]\nids = [\"run_a\"]\n").unwrap();
        let mut source = ConfigSource::new(Some(path.clone()), HashMap::new(), None);
        // Make sure the modification time moves even on coarse file systems.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, "[runs]\nids = [\"run_a\", \"run_b\"]\n").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5)).unwrap();
        let config = tokio::time::timeout(Duration::from_secs(10), source.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(config.runs.ids, vec!["run_a", "run_b"]);

        std::fs::write(&path, "[runs]\nconcurrency = \"many\"\n").unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(10)).unwrap();
        let refused = tokio::time::timeout(Duration::from_secs(10), source.next())
            .await
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(refused.contains("runs.concurrency"), "{refused}");
    }

    /// The daemon's loop drops `next` whenever anything else wakes it, at least every second
    /// (its heartbeat): a file change must still be seen.
    #[tokio::test(start_paused = true)]
    async fn a_change_is_seen_though_every_wait_is_cut_short_by_a_heartbeat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.toml");
        std::fs::write(&path, "[runs]\nids = [\"run_a\"]\n").unwrap();
        let mut source = ConfigSource::new(Some(path.clone()), HashMap::new(), None);
        std::fs::write(&path, "[runs]\nids = [\"run_b\"]\n").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5)).unwrap();
        let mut heartbeats = 0;
        let config = loop {
            match tokio::time::timeout(Duration::from_secs(1), source.next()).await {
                Ok(loaded) => break loaded.unwrap(),
                Err(_) => heartbeats += 1,
            }
            assert!(heartbeats < 5, "the change was not seen after {heartbeats} heartbeats");
        };
        assert_eq!(config.runs.ids, vec!["run_b"]);
    }

    #[tokio::test]
    async fn sighup_reloads_without_a_file_change() {
        let (tx, rx) = watch::channel(0u64);
        let mut source = ConfigSource::new(None, HashMap::new(), Some(rx));
        tx.send(1).unwrap();
        let config = tokio::time::timeout(Duration::from_secs(5), source.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(config, BridgeConfig::default());
    }
}
