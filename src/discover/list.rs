//! Discovery: every `discovery.interval`, list the runs matching the filters, newest first, and
//! report every run listed: the ones not seen before to be watched, and each one's status (a
//! watched run's end, learnt without a request of its own).
//!
//! Paging stops at the lookback edge, or earlier at the first page holding a run that a
//! *completed* round already listed: everything older was listed then too. Two cases must page
//! on to the edge instead: a round that failed midway listed only its first pages, so runs it
//! saw prove nothing about the pages after; and with a status filter a run joins the list when
//! it reaches that status, but sorts by creation time, possibly behind runs seen long ago.

use crate::trigger::{RunFilters, TriggerClient};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A run discovery reported, with what the listing (or the stream) says of its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    pub status: String,
    pub finished_at: Option<u64>,
    pub task_identifier: Option<String>,
    /// Not reported before, and matching the filters: to be watched.
    pub new: bool,
    /// Where it came from: the stream's status is as new as a poll's request, a listing's may lag.
    pub via: Via,
}

/// The source of a [`Listed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    List,
    Realtime,
}

pub struct Discovery {
    pub client: TriggerClient,
    pub filters: RunFilters,
    pub interval: Duration,
    pub lookback: Duration,
}

/// What discovery remembers between rounds.
#[derive(Debug, Default)]
struct Seen {
    /// Every run reported, with its creation time (Unix ns): reported once, forgotten once
    /// older than the lookback (the list never shows it again).
    reported: HashMap<String, Option<u64>>,
    /// The runs listed by rounds that completed: only these may stop a round's paging.
    settled: HashMap<String, Option<u64>>,
}

impl Seen {
    fn forget_before(&mut self, edge: u64) {
        let recent = |_: &String, created: &mut Option<u64>| created.is_none_or(|created| created >= edge);
        self.reported.retain(recent);
        self.settled.retain(recent);
    }
}

impl Discovery {
    /// Runs until `stop` turns true or the receiver of `found` is gone: one round at once, then
    /// one every `interval` while `rounds` is true (with `discovery.source = "auto"` the list
    /// endpoint rests while the realtime stream delivers; what it has seen is kept meanwhile, so
    /// runs it reported are not reported again when it takes over).
    pub async fn run(
        self,
        found: mpsc::UnboundedSender<Listed>,
        mut rounds: watch::Receiver<bool>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut seen = Seen::default();
        loop {
            match self.round(&mut seen, &found).await {
                Ok(new) if new > 0 => tracing::info!(new_runs = new, "discovery found runs"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "discovery failed; trying again next interval"),
            }
            if found.is_closed() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            tokio::select! {
                resting = rounds.wait_for(|on| *on) => if resting.is_err() { return },
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    async fn round(
        &self,
        seen: &mut Seen,
        found: &mpsc::UnboundedSender<Listed>,
    ) -> Result<usize, crate::trigger::ApiError> {
        let edge = super::filters::lookback_edge(self.lookback);
        seen.forget_before(edge);
        let may_stop_early = self.filters.statuses.is_empty();
        let mut listed: Vec<(String, Option<u64>)> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut new = 0;
        loop {
            let page = self.client.list_runs(&self.filters, cursor.as_deref()).await?;
            let mut reached_known = false;
            for run in &page.runs {
                if run.created_at.is_some_and(|created| created < edge) {
                    reached_known = true;
                    continue;
                }
                if seen.settled.contains_key(&run.id) && may_stop_early {
                    reached_known = true;
                }
                listed.push((run.id.clone(), run.created_at));
                let is_new = seen.reported.insert(run.id.clone(), run.created_at).is_none();
                new += usize::from(is_new);
                let _ = found.send(Listed {
                    id: run.id.clone(),
                    status: run.status.clone(),
                    finished_at: run.finished_at,
                    task_identifier: run.task_identifier.clone(),
                    new: is_new,
                    via: Via::List,
                });
            }
            match page.next_cursor {
                Some(next) if !reached_known && Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => break,
            }
        }
        // Only now, the round complete, may its runs stop a later round's paging.
        seen.settled.extend(listed);
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::secret::SecretString;
    use crate::config::TriggerConfig;
    use crate::net::serving::Served;
    use crate::trigger::ClientTuning;
    use axum::extract::{Query, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use serde_json::{json, Value};
    use std::sync::{Arc, Mutex};

    /// The list endpoint: `runs` newest first, two a page; the page after `fail_after` answers
    /// 400 (not retried) while it is set.
    #[derive(Default)]
    struct Listing {
        runs: Mutex<Vec<Value>>,
        fail_after: Mutex<Option<usize>>,
    }

    async fn list(State(listing): State<Arc<Listing>>, Query(query): Query<HashMap<String, String>>) -> Response {
        let start: usize = query.get("page[after]").and_then(|c| c.parse().ok()).unwrap_or(0);
        if *listing.fail_after.lock().unwrap() == Some(start) {
            return (StatusCode::BAD_REQUEST, "scripted failure").into_response();
        }
        let runs = listing.runs.lock().unwrap().clone();
        let page: Vec<Value> = runs.iter().skip(start).take(2).cloned().collect();
        let next = (start + 2 < runs.len()).then(|| (start + 2).to_string());
        axum::Json(json!({"data": page, "pagination": {"next": next}})).into_response()
    }

    fn run(id: &str, minutes_ago: u64) -> Value {
        let created = time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago as i64);
        let created = created.format(&time::format_description::well_known::Rfc3339).unwrap();
        json!({"id": id, "status": "COMPLETED", "taskIdentifier": "t", "createdAt": created})
    }

    async fn discovery(listing: &Arc<Listing>, statuses: &[&str]) -> (Discovery, Served) {
        let served = Served::on_loopback(axum::Router::new().fallback(list).with_state(listing.clone()))
            .await
            .unwrap();
        let config = TriggerConfig {
            api_url: served.url(),
            secret_key: SecretString::new("tr_dev_test"),
            ..TriggerConfig::default()
        };
        let discovery = Discovery {
            client: TriggerClient::with_tuning(&config, ClientTuning::default()).unwrap(),
            filters: RunFilters {
                statuses: statuses.iter().map(|s| s.to_string()).collect(),
                ..RunFilters::default()
            },
            interval: Duration::from_secs(1),
            lookback: Duration::from_secs(3600),
        };
        (discovery, served)
    }

    /// The new runs reported (every listed run is reported; the others only with their status).
    fn drain(found: &mut mpsc::UnboundedReceiver<Listed>) -> Vec<String> {
        std::iter::from_fn(|| found.try_recv().ok())
            .filter(|listed| listed.new)
            .map(|listed| listed.id)
            .collect()
    }

    #[tokio::test]
    async fn every_listed_run_is_reported_with_its_status_new_ones_once() {
        let listing = Arc::new(Listing::default());
        *listing.runs.lock().unwrap() = vec![run("run_1", 1)];
        let (discovery, served) = discovery(&listing, &[]).await;
        let (tx, mut found) = mpsc::unbounded_channel();
        let mut seen = Seen::default();
        discovery.round(&mut seen, &tx).await.unwrap();
        let first = found.try_recv().unwrap();
        assert_eq!(
            (first.id.as_str(), first.status.as_str(), first.new),
            ("run_1", "COMPLETED", true)
        );
        discovery.round(&mut seen, &tx).await.unwrap();
        let again = found.try_recv().unwrap();
        assert_eq!(
            (again.id.as_str(), again.new),
            ("run_1", false),
            "reported again, as known"
        );
        assert!(found.try_recv().is_err());
        served.stop(Duration::from_secs(2)).await.unwrap();
    }

    #[tokio::test]
    async fn a_round_that_failed_midway_does_not_hide_the_pages_it_missed() {
        let listing = Arc::new(Listing::default());
        *listing.runs.lock().unwrap() = vec![run("run_1", 1), run("run_2", 2), run("run_3", 3), run("run_4", 4)];
        *listing.fail_after.lock().unwrap() = Some(2);
        let (discovery, served) = discovery(&listing, &[]).await;
        let (tx, mut found) = mpsc::unbounded_channel();
        let mut seen = Seen::default();
        assert!(discovery.round(&mut seen, &tx).await.is_err());
        assert_eq!(drain(&mut found), ["run_1", "run_2"]);
        *listing.fail_after.lock().unwrap() = None;
        assert_eq!(discovery.round(&mut seen, &tx).await.unwrap(), 2);
        assert_eq!(drain(&mut found), ["run_3", "run_4"]);
        // Complete now: a new run is found on the first page, and paging stops there.
        listing.runs.lock().unwrap().insert(0, run("run_0", 0));
        assert_eq!(discovery.round(&mut seen, &tx).await.unwrap(), 1);
        assert_eq!(drain(&mut found), ["run_0"]);
        served.stop(Duration::from_secs(2)).await.unwrap();
    }

    #[tokio::test]
    async fn with_a_status_filter_a_run_reaching_the_status_late_is_found_behind_known_ones() {
        let listing = Arc::new(Listing::default());
        *listing.runs.lock().unwrap() = vec![run("run_1", 1), run("run_2", 2), run("run_4", 4)];
        let (discovery, served) = discovery(&listing, &["COMPLETED"]).await;
        let (tx, mut found) = mpsc::unbounded_channel();
        let mut seen = Seen::default();
        assert_eq!(discovery.round(&mut seen, &tx).await.unwrap(), 3);
        drain(&mut found);
        // run_3, created before run_4, completes now and joins the list on the second page.
        listing.runs.lock().unwrap().insert(2, run("run_3", 3));
        assert_eq!(discovery.round(&mut seen, &tx).await.unwrap(), 1);
        assert_eq!(drain(&mut found), ["run_3"]);
        served.stop(Duration::from_secs(2)).await.unwrap();
    }

    #[test]
    fn runs_older_than_the_lookback_are_forgotten() {
        let mut seen = Seen::default();
        seen.reported.insert("old".into(), Some(10));
        seen.reported.insert("new".into(), Some(30));
        seen.reported.insert("undated".into(), None);
        seen.settled.insert("old".into(), Some(10));
        seen.forget_before(20);
        let mut kept: Vec<&String> = seen.reported.keys().collect();
        kept.sort();
        assert_eq!(kept, ["new", "undated"]);
        assert!(seen.settled.is_empty());
    }
}
