//! Scheduling: which due run is polled next, and how much export-queue capacity its poll may
//! fill. The earliest-due run goes first, so no run starves however many compete.

use super::poller::{poll, PollJob};
use super::watched::WatchedRun;
use super::Loop;
use crate::telemetry::events::PollStarted;
use std::cmp::Reverse;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl Loop {
    pub(super) fn insert(&mut self, run: WatchedRun) {
        let id = run.id.clone();
        self.runs.insert(id.clone(), run);
        self.stats.runs_watched.store(self.runs.len(), Ordering::Relaxed);
        self.schedule(&id, Duration::ZERO);
    }

    pub(super) fn schedule(&mut self, id: &Arc<str>, after: Duration) {
        self.sequence += 1;
        if let Some(run) = self.runs.get_mut(id) {
            run.scheduled = self.sequence;
            self.due
                .push(Reverse((Instant::now() + after, self.sequence, id.clone())));
        }
    }

    /// Capacity left in the export queue for new polls.
    pub(super) fn free_capacity(&self) -> usize {
        self.max_pending.saturating_sub(self.stats.pending() + self.reserved)
    }

    /// Polling pauses while the queue is full, or while the collector fails and spans wait.
    pub(super) fn may_poll(&self) -> bool {
        self.in_flight.len() < self.concurrency
            && self.free_capacity() > 0
            && !(self.sender.failing() && self.stats.pending() > 0)
    }

    /// Start polls of due runs while slots, budget and capacity allow.
    ///
    /// Each poll reserves a share of the free export capacity: one free poll slot's worth, so
    /// the other slots can still start polls of other runs. A run whose last poll was cut short
    /// by its share (its `backlog`: records it had beyond the share) waits until the queue has
    /// room for that backlog (at most the whole queue) and reserves it: a big run with a small
    /// `max_pending_spans` otherwise fetches and converts its whole body again for every small
    /// share.
    ///
    /// Returns when to try again: the head run's due time when it is not due yet. `None` when
    /// there is nothing to poll, or what holds the head back (poll slots, export capacity, a
    /// failing collector) is freed by a finished poll or an acknowledgement, which wake the loop
    /// themselves: a due time already past would wake it at once, again and again.
    pub(super) fn dispatch(&mut self) -> Option<Instant> {
        let now = Instant::now();
        while self.may_poll() {
            let Reverse((when, sequence, id)) = self.due.peek().cloned()?;
            let Some(run) = self.runs.get(&id).filter(|run| run.scheduled == sequence) else {
                self.due.pop(); // stale: the run was rescheduled or retired
                continue;
            };
            if when > now {
                return Some(when);
            }
            let free = self.free_capacity();
            if free < run.backlog.min(self.max_pending) {
                // A run with a backlog waits, first in line, until the queue has room for all of
                // it (or is empty): polling it with whatever trickle is free would fetch and
                // convert its whole body again for a few spans each time.
                return None;
            }
            self.due.pop();
            let free_slots = self.concurrency.saturating_sub(self.in_flight.len()).max(1);
            let share = (free / free_slots).max(1);
            let capacity = match run.backlog {
                backlog if backlog > share => backlog.min(free),
                _ => share,
            };
            self.start_poll(id, now - when, capacity);
        }
        None
    }

    /// Start one poll of `id`, reserving `capacity` spans of the export queue for it.
    pub(super) fn start_poll(&mut self, id: Arc<str>, lag: Duration, capacity: usize) {
        let Some(run) = self.runs.get(&id) else { return };
        PollStarted { run_id: &id, lag }.emit(&self.stats);
        let ask_status = run.wants_status(run.last_had_partials, Instant::now());
        // A trace id derived because the trace endpoint did not know the run (a run triggered a
        // moment ago can be in the events' buffer, not yet in a trace) is provisional until a
        // span is exported under it: until then, ask again. After that, the run stays in the
        // trace its first spans went to.
        let known_trace_id = match &run.trace_id {
            Some(None) if run.exported.is_empty() => None,
            known => known.clone(),
        };
        let job = PollJob {
            run_id: id.clone(),
            known_trace_id,
            ask_status,
            task_identifier: run.task_identifier.clone(),
            state: run.run_state(),
            exported: run.exported.clone(),
            logs: self.logs,
            capacity,
            enrich: self.enrich,
            span_properties: run.span_properties.clone(),
        };
        self.reserved += capacity;
        self.in_flight_capacity.insert(id.clone(), capacity);
        self.in_flight.spawn(poll(self.client.clone(), job));
    }
}
