//! Discovery: every `discovery.interval`, list the runs matching the filters, newest first, and
//! report the ones not seen before. Paging stops at the first page holding a run already seen
//! (everything older was seen then too) or at the lookback edge.

use crate::trigger::{RunFilters, TriggerClient};
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

pub struct Discovery {
    pub client: TriggerClient,
    pub filters: RunFilters,
    pub interval: Duration,
    pub lookback: Duration,
}

impl Discovery {
    /// Runs until `stop` turns true or the receiver of `found` is gone.
    pub async fn run(self, found: mpsc::UnboundedSender<String>, mut stop: watch::Receiver<bool>) {
        let mut seen: HashSet<String> = HashSet::new();
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
        }
    }

    async fn round(
        &self,
        seen: &mut HashSet<String>,
        found: &mpsc::UnboundedSender<String>,
    ) -> Result<usize, crate::trigger::ApiError> {
        let edge = SystemTime::now()
            .checked_sub(self.lookback)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
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
                if seen.insert(run.id.clone()) {
                    new += 1;
                    let _ = found.send(run.id.clone());
                } else {
                    reached_known = true;
                }
            }
            match page.next_cursor {
                Some(next) if !reached_known && Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => return Ok(new),
            }
        }
    }
}
