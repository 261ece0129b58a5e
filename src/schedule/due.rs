//! The due queue and the export capacity a poll may fill. The earliest-due run is polled first,
//! so no run starves however many compete for the request budget; each poll reserves a share of
//! the export queue before it starts (backpressure without buffering).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use tokio::time::Instant;

/// Runs by due time. Rescheduling a run pushes a new entry with a new sequence number, which the
/// run keeps; entries whose number the run no longer holds are stale and skipped.
#[derive(Debug, Default)]
pub struct DueQueue {
    heap: BinaryHeap<Reverse<(Instant, u64, Arc<str>)>>,
    sequence: u64,
}

impl DueQueue {
    /// Due `id` at `at`; returns the entry's sequence number, for the run to keep.
    pub fn push(&mut self, id: Arc<str>, at: Instant) -> u64 {
        self.sequence += 1;
        self.heap.push(Reverse((at, self.sequence, id)));
        self.sequence
    }

    /// The earliest entry: when it is due, its sequence number and its run.
    pub fn peek(&self) -> Option<(Instant, u64, Arc<str>)> {
        self.heap.peek().map(|Reverse(entry)| entry.clone())
    }

    /// Drop the earliest entry (polled, or stale).
    pub fn pop(&mut self) {
        self.heap.pop();
    }
}

/// Export-queue capacity promised to polls in flight, per run.
#[derive(Debug, Default)]
pub struct Reservations {
    total: usize,
    per_run: HashMap<Arc<str>, usize>,
}

impl Reservations {
    pub fn reserve(&mut self, id: Arc<str>, capacity: usize) {
        self.total += capacity;
        self.per_run.insert(id, capacity);
    }

    /// The poll of `id` ended: its reservation is freed.
    pub fn release(&mut self, id: &Arc<str>) {
        if let Some(capacity) = self.per_run.remove(id) {
            self.total = self.total.saturating_sub(capacity);
        }
    }

    /// Whether a poll of `id` is in flight.
    pub fn holds(&self, id: &str) -> bool {
        self.per_run.contains_key(id)
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

/// How many records the poll of a due run may admit to the export queue, or `None` when it must
/// wait for room.
///
/// A poll reserves one free poll slot's share of the free capacity, so the other slots can still
/// start polls of other runs. A run whose last poll was cut short by its share (its `backlog`:
/// records it had beyond the share) waits, first in line, until the queue has room for that
/// backlog (at most the whole queue, `max_pending`) and reserves it: polling it with whatever
/// trickle is free would fetch and convert its whole body again for a few spans each time.
pub fn poll_capacity(free: usize, free_slots: usize, backlog: usize, max_pending: usize) -> Option<usize> {
    if free < backlog.min(max_pending) {
        return None;
    }
    let share = (free / free_slots.max(1)).max(1);
    Some(match backlog {
        backlog if backlog > share => backlog.min(free),
        _ => share,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_earliest_entry_comes_first_and_ties_keep_their_order() {
        let now = Instant::now();
        let mut due = DueQueue::default();
        due.push(Arc::from("late"), now + Duration::from_secs(2));
        let first = due.push(Arc::from("a"), now);
        let second = due.push(Arc::from("b"), now);
        assert_eq!(due.peek(), Some((now, first, Arc::from("a"))));
        due.pop();
        assert_eq!(due.peek(), Some((now, second, Arc::from("b"))));
        due.pop();
        assert_eq!(due.peek().map(|(_, _, id)| id), Some(Arc::from("late")));
        due.pop();
        assert_eq!(due.peek(), None);
    }

    #[test]
    fn a_poll_takes_one_free_slots_share() {
        assert_eq!(poll_capacity(800, 8, 0, 1000), Some(100));
        assert_eq!(poll_capacity(3, 8, 0, 1000), Some(1), "at least one record");
        assert_eq!(poll_capacity(800, 0, 0, 1000), Some(800), "no free slot counts as one");
    }

    #[test]
    fn a_run_with_a_backlog_waits_for_room_for_all_of_it() {
        assert_eq!(poll_capacity(500, 8, 900, 1000), None);
        assert_eq!(poll_capacity(900, 8, 900, 1000), Some(900));
        // A backlog bigger than the whole queue takes the whole queue once it is empty.
        assert_eq!(poll_capacity(100, 8, 5000, 100), Some(100));
        // A backlog within the share takes the share.
        assert_eq!(poll_capacity(800, 8, 50, 1000), Some(100));
    }

    #[test]
    fn reservations_are_freed_per_run() {
        let mut reserved = Reservations::default();
        reserved.reserve(Arc::from("a"), 10);
        reserved.reserve(Arc::from("b"), 5);
        assert_eq!(reserved.total(), 15);
        reserved.release(&Arc::from("a"));
        reserved.release(&Arc::from("a"));
        assert_eq!(reserved.total(), 5);
    }
}
