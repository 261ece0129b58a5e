//! Why an element (or part of one) was skipped or repaired: the `reason` label of
//! `invalid_events_total`, with a count and the first example, so callers log once per run.

use std::collections::BTreeMap;
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
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How often one reason occurred, and a description of its first occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonTally {
    pub count: u64,
    pub first: String,
}

/// Every reason seen in one conversion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvalidReport {
    by_reason: BTreeMap<InvalidReason, ReasonTally>,
}

impl InvalidReport {
    pub fn record(&mut self, reason: InvalidReason, describe: impl FnOnce() -> String) {
        self.by_reason
            .entry(reason)
            .and_modify(|tally| tally.count += 1)
            .or_insert_with(|| ReasonTally {
                count: 1,
                first: describe(),
            });
    }

    pub fn count(&self, reason: InvalidReason) -> u64 {
        self.by_reason.get(&reason).map_or(0, |tally| tally.count)
    }

    pub fn total(&self) -> u64 {
        self.by_reason.values().map(|tally| tally.count).sum()
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
        report.record(InvalidReason::StartTime, || "first".into());
        report.record(InvalidReason::StartTime, || "second".into());
        report.record(InvalidReason::Duration, || "d".into());
        assert_eq!(report.count(InvalidReason::StartTime), 2);
        assert_eq!(report.total(), 3);
        let (reason, tally) = report.iter().find(|(r, _)| *r == InvalidReason::StartTime).unwrap();
        assert_eq!((reason.as_str(), tally.first.as_str()), ("start_time", "first"));
    }
}
