//! The periodic summary line: what the daemon did since the last one, for operators who read logs
//! rather than `/metrics` (the numbers are the metrics' own, as differences).

use super::stats::DaemonStats;
use std::time::Duration;

/// How often the summary is logged (`DaemonOptions::summary_every`).
pub(super) const SUMMARY_EVERY: Duration = Duration::from_secs(300);

/// The counters a summary reports, as read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Totals {
    polls: u64,
    poll_errors: u64,
    spans: u64,
    log_records: u64,
    invalid_elements: u64,
    runs_retired: u64,
}

impl Totals {
    pub(super) fn read(stats: &DaemonStats) -> Totals {
        Totals {
            polls: stats.polls(),
            poll_errors: stats.poll_errors(),
            spans: stats.spans_exported(),
            log_records: stats.log_records_exported(),
            invalid_elements: stats.invalid_elements(),
            runs_retired: stats.runs_retired(),
        }
    }

    /// Logs what changed since `earlier`, over `window`, with what is watched and waiting now.
    pub(super) fn log_since(&self, earlier: &Totals, window: Duration, watched: usize, pending: usize) {
        let delta = |now: u64, then: u64| now.saturating_sub(then);
        tracing::info!(
            window = %crate::wording::human_duration(window),
            runs_watched = watched,
            polls = delta(self.polls, earlier.polls),
            poll_errors = delta(self.poll_errors, earlier.poll_errors),
            spans_exported = delta(self.spans, earlier.spans),
            log_records_exported = delta(self.log_records, earlier.log_records),
            invalid_elements = delta(self.invalid_elements, earlier.invalid_elements),
            runs_retired = delta(self.runs_retired, earlier.runs_retired),
            pending_spans = pending,
            "summary"
        );
    }
}
