//! Counters the daemon keeps about itself, readable while it runs (tests, later `/metrics`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct DaemonStats {
    pub runs_watched: AtomicUsize,
    pub runs_retired: AtomicU64,
    pub polls: AtomicU64,
    pub poll_errors: AtomicU64,
    pub spans_exported: AtomicU64,
    pub spans_rejected: AtomicU64,
    pub invalid_elements: AtomicU64,
    /// Spans converted and queued but not yet acknowledged by the collector.
    pub pending_spans: AtomicUsize,
    /// The highest `pending_spans` ever reached.
    pub peak_pending_spans: AtomicUsize,
    pub export_batches: AtomicU64,
    pub export_nanos_total: AtomicU64,
}

impl DaemonStats {
    pub fn add_pending(&self, spans: usize) {
        let now = self.pending_spans.fetch_add(spans, Ordering::SeqCst) + spans;
        self.peak_pending_spans.fetch_max(now, Ordering::SeqCst);
    }

    pub fn remove_pending(&self, spans: usize) {
        self.pending_spans.fetch_sub(spans, Ordering::SeqCst);
    }

    pub fn pending(&self) -> usize {
        self.pending_spans.load(Ordering::SeqCst)
    }
}
