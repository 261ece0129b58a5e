//! Dispatch: the daemon's side of scheduling. Runs join the due queue, due runs start their polls
//! while poll slots, export capacity and the collector allow (the rules: `crate::schedule`).

use super::Loop;
use crate::fetch::poll::{poll, PollJob};
use crate::schedule::poll_capacity;
use crate::schedule::watched::{Phase, TraceIdState, WatchedRun};
use crate::telemetry::events::PollStarted;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl Loop {
    pub(super) fn insert(&mut self, run: WatchedRun) {
        let id = run.id.clone();
        self.runs.insert(id.clone(), run);
        self.stats.runs_watched.set(self.runs.len());
        self.schedule(&id, Duration::ZERO);
    }

    pub(super) fn schedule(&mut self, id: &Arc<str>, after: Duration) {
        if let Some(run) = self.runs.get_mut(id) {
            run.scheduled = self.due.push(id.clone(), Instant::now() + after);
        }
    }

    /// Capacity left in the export queue for new polls.
    pub(super) fn free_capacity(&self) -> usize {
        self.max_pending
            .saturating_sub(self.stats.pending() + self.reserved.total())
    }

    /// Polling waits for the start-up check (a wrong `api_url` or key would make every poll fail
    /// the same way), and pauses while the queue is full, while the collector fails and spans
    /// wait, and while the state file refuses writes (what polls find could not be remembered).
    pub(super) fn may_poll(&self) -> bool {
        self.api_checked
            && self.in_flight.len() < self.concurrency
            && self.free_capacity() > 0
            && !(self.sender.failing() && self.stats.pending() > 0)
            && self.stats.health.state_writable()
    }

    /// Start polls of due runs while slots, budget and capacity allow, each with the export
    /// capacity [`poll_capacity`] gives it.
    ///
    /// Returns when to try again: the head run's due time when it is not due yet. `None` when
    /// there is nothing to poll, or what holds the head back (poll slots, export capacity, a
    /// failing collector) is freed by a finished poll or an acknowledgement, which wake the loop
    /// themselves: a due time already past would wake it at once, again and again.
    pub(super) fn dispatch(&mut self) -> Option<Instant> {
        let now = Instant::now();
        while self.may_poll() {
            let (when, sequence, id) = self.due.peek()?;
            let Some(run) = self.runs.get(&id).filter(|run| run.scheduled == sequence) else {
                self.due.pop(); // stale: the run was rescheduled or retired
                continue;
            };
            if when > now {
                return Some(when);
            }
            let free_slots = self.concurrency.saturating_sub(self.in_flight.len());
            let Some(capacity) = poll_capacity(self.free_capacity(), free_slots, run.backlog, self.max_pending) else {
                // The head run waits, first in line, for room for its backlog.
                return None;
            };
            self.due.pop();
            self.start_poll(id, now - when, capacity);
        }
        None
    }

    /// Start one poll of `id`, reserving `capacity` spans of the export queue for it.
    pub(super) fn start_poll(&mut self, id: Arc<str>, lag: Duration, capacity: usize) {
        let Some(run) = self.runs.get(&id) else { return };
        PollStarted { run_id: &id, lag }.emit(&self.stats);
        let ask_status = run.wants_status(&self.lifecycle, Instant::now());
        // A trace id derived because the trace endpoint did not know the run (a run triggered a
        // moment ago can be in the events' buffer, not yet in a trace) is provisional until a
        // span is exported under it: until then, ask again. After that, the run stays in the
        // trace its first spans went to.
        let known_trace_id = match &run.trace_id {
            TraceIdState::Derived if run.exported.is_empty() => None,
            known => known.for_poll(),
        };
        let job = PollJob {
            run_id: id.clone(),
            known_trace_id,
            ask_status,
            ask_status_if_ended: run.wants_status_if_ended(),
            task_identifier: run.task_identifier.clone(),
            state: run.run_state(),
            exported: run.exported.clone(),
            logs: self.logs,
            capacity,
            enrich: self.enrich,
            span_properties: run.span_properties.clone(),
            skip_if_unchanged: run
                .body_hash
                .filter(|_| run.phase == Phase::Watching && run.backlog == 0),
        };
        self.reserved.reserve(id.clone(), capacity);
        self.in_flight.spawn(poll(self.client.clone(), job));
    }
}
