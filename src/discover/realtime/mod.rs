//! Realtime: the run changes Trigger.dev pushes over `GET /realtime/v1/runs` (an Electric SQL shape
//! over HTTP long polling; docs/realtime-protocol-notes.md), as [`StreamEvent`]s.
//!
//! Three roles, one file each: `shape` keeps the protocol's state and the rows (pure), `row` turns
//! a row into a [`RealtimeRun`] (database statuses, zone-less timestamps, Postgres arrays), and
//! `subscriber` runs the HTTP loop with its backoff and tells when the stream cannot be used.

pub mod row;
pub mod shape;
pub mod subscriber;

pub use subscriber::{created_at_param, Subscriber, SubscriberTuning, MAX_WINDOW, SKIP_COLUMNS};

/// A run as the stream shows it (after merging partial updates into the row kept from its insert).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtimeRun {
    /// The public `run_…` id (`friendlyId`), never the internal cuid.
    pub id: String,
    /// The REST API's status (API version 2025-07-16), e.g. `COMPLETED`, `WAITING`; a value the
    /// bridge does not know is kept as it came.
    pub status: String,
    /// As on the wire, e.g. `COMPLETED_SUCCESSFULLY`.
    pub db_status: String,
    /// A final database status, or `completedAt` set.
    pub terminal: bool,
    pub task_identifier: Option<String>,
    pub tags: Vec<String>,
    pub is_test: bool,
    /// Unix nanoseconds.
    pub created_at: Option<u64>,
    pub updated_at: Option<u64>,
    pub completed_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream is up to date; `runs` are the rows that changed since the last event (all rows
    /// after a snapshot: `snapshot: true`, the first batch or the first after a must-refetch).
    /// Emitted only after a body whose last message is `up-to-date` (as the SDK does), one entry
    /// per run in its final state; an idle live poll emits nothing, except the first batch after
    /// an [`StreamEvent::Unavailable`], which tells that the stream is back (even with no runs).
    Runs { runs: Vec<RealtimeRun>, snapshot: bool },
    /// The stream cannot be used for now; the subscriber keeps trying on its own (once per
    /// episode: again only when the kind changes, or after a `Runs` event ended the episode).
    Unavailable { kind: Unavailable, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// 404 (no realtime on this instance), 400 (query refused), another 4xx, or a persistent 503
    /// `Network error occurred` (self-hosted without Electric: 3 in a row with no 2xx). Tried
    /// again after [`SubscriberTuning::retry_unavailable_after`].
    NotServed,
    /// 401/403: the key is refused here. Tried again after `retry_unavailable_after`.
    Refused,
    /// 429: too many concurrent live connections in the environment. Backoff.
    Busy,
    /// 5xx, network error, timeout, malformed body. Backoff.
    Failing,
}

impl Unavailable {
    /// For logs and metrics: `not_served`, `refused`, `busy`, `failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailable::NotServed => "not_served",
            Unavailable::Refused => "refused",
            Unavailable::Busy => "busy",
            Unavailable::Failing => "failing",
        }
    }
}
