//! Why an element (or part of one) was skipped or repaired: the `reason` label of
//! `invalid_events_total`, with a count and the first example, so callers log once per run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InvalidReason {
    /// An array element that is not a JSON object (skipped).
    NotAnObject,
    /// Missing, empty or non-string `spanId` (skipped).
    SpanId,
    /// Missing or unparseable `startTime` (skipped).
    StartTime,
    /// Negative, non-numeric or missing `duration` (kept, end = start).
    Duration,
    /// A boolean field (`isError`, `isCancelled`, `isPartial`) of another type (taken as false).
    Flag,
    /// An element of `events[]` that is not an object (that span event skipped).
    SpanEvent,
    /// A span event time that is not RFC 3339 (kept at the span's start).
    EventTime,
    /// A log record discarded by `conversion.logs = "drop"`.
    LogDropped,
}

impl InvalidReason {
    /// Every reason (the metric's series exist from the start, at 0).
    pub const ALL: [InvalidReason; 8] = [
        InvalidReason::NotAnObject,
        InvalidReason::SpanId,
        InvalidReason::StartTime,
        InvalidReason::Duration,
        InvalidReason::Flag,
        InvalidReason::SpanEvent,
        InvalidReason::EventTime,
        InvalidReason::LogDropped,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::NotAnObject => "not_an_object",
            InvalidReason::SpanId => "span_id",
            InvalidReason::StartTime => "start_time",
            InvalidReason::Duration => "duration",
            InvalidReason::Flag => "flag",
            InvalidReason::SpanEvent => "span_event",
            InvalidReason::EventTime => "event_time",
            InvalidReason::LogDropped => "log_dropped",
        }
    }

    /// Whether the element was lost (as opposed to repaired and kept).
    pub fn skips_element(self) -> bool {
        matches!(
            self,
            InvalidReason::NotAnObject | InvalidReason::SpanId | InvalidReason::StartTime | InvalidReason::LogDropped
        )
    }

    /// Whether the input was at fault. A log record dropped by `conversion.logs = "drop"` was
    /// valid: the user chose to drop it, so it is information, not a warning about the input.
    pub fn is_invalid(self) -> bool {
        self != InvalidReason::LogDropped
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many elements one reason was found in, and a description of its first occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonTally {
    /// Elements, not occurrences: one element with two bad flags is one element repaired.
    pub count: u64,
    pub first: String,
}

/// Every reason seen in one conversion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvalidReport {
    by_reason: BTreeMap<InvalidReason, ReasonTally>,
    /// Each (reason, element index) once, so that counts are of elements. Holds only elements
    /// that had something wrong, so it stays empty for a valid body.
    seen: BTreeSet<(InvalidReason, usize)>,
}

impl InvalidReport {
    /// Records that element `element` (its index in the body) had `reason`; `describe` is
    /// called for the first occurrence of each reason only.
    pub fn record(&mut self, reason: InvalidReason, element: usize, describe: impl FnOnce() -> String) {
        if !self.seen.insert((reason, element)) {
            return;
        }
        self.by_reason
            .entry(reason)
            .and_modify(|tally| tally.count += 1)
            .or_insert_with(|| ReasonTally {
                count: 1,
                first: describe(),
            });
    }

    /// Elements that had `reason`.
    pub fn count(&self, reason: InvalidReason) -> u64 {
        self.by_reason.get(&reason).map_or(0, |tally| tally.count)
    }

    /// Elements that had any reason, each once.
    pub fn total(&self) -> u64 {
        self.elements(|_| true)
    }

    /// Elements that had any reason `which` selects, each once however many it had (an element
    /// with a bad duration and a bad flag is one element repaired).
    pub fn elements(&self, which: impl Fn(InvalidReason) -> bool) -> u64 {
        let elements: BTreeSet<usize> = self
            .seen
            .iter()
            .filter(|(reason, _)| which(*reason))
            .map(|(_, element)| *element)
            .collect();
        elements.len() as u64
    }

    /// Invalid elements skipped (lost), not counting log records dropped by choice.
    pub fn skipped(&self) -> u64 {
        self.elements(|reason| reason.is_invalid() && reason.skips_element())
    }

    /// Invalid elements repaired and kept.
    pub fn repaired(&self) -> u64 {
        self.elements(|reason| !reason.skips_element())
    }

    pub fn is_empty(&self) -> bool {
        self.by_reason.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (InvalidReason, &ReasonTally)> {
        self.by_reason.iter().map(|(reason, tally)| (*reason, tally))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_keeps_the_first_example() {
        let mut report = InvalidReport::default();
        report.record(InvalidReason::StartTime, 0, || "first".into());
        report.record(InvalidReason::StartTime, 1, || "second".into());
        report.record(InvalidReason::Duration, 2, || "d".into());
        assert_eq!(report.count(InvalidReason::StartTime), 2);
        assert_eq!(report.total(), 3);
        let (reason, tally) = report.iter().find(|(r, _)| *r == InvalidReason::StartTime).unwrap();
        assert_eq!((reason.as_str(), tally.first.as_str()), ("start_time", "first"));
    }

    #[test]
    fn counts_elements_not_occurrences() {
        let mut report = InvalidReport::default();
        // Element 4: two bad flags and a bad duration; element 5: a bad flag.
        report.record(InvalidReason::Flag, 4, || "isError".into());
        report.record(InvalidReason::Flag, 4, || "isPartial".into());
        report.record(InvalidReason::Duration, 4, || "duration".into());
        report.record(InvalidReason::Flag, 5, || "isError".into());
        report.record(InvalidReason::SpanId, 6, || "span id".into());
        report.record(InvalidReason::LogDropped, 7, || "a log".into());
        assert_eq!(report.count(InvalidReason::Flag), 2);
        assert_eq!(report.count(InvalidReason::Duration), 1);
        assert_eq!(report.repaired(), 2, "elements 4 and 5");
        assert_eq!(report.skipped(), 1, "element 6; the dropped log was chosen");
        assert_eq!(report.total(), 4);
        let (_, tally) = report.iter().find(|(r, _)| *r == InvalidReason::Flag).unwrap();
        assert_eq!(tally.first, "isError");
    }
}
