//! Fetch: one poll of one run. `poll` is the daemon's (trace id, status when asked, the events
//! body — skipped when byte-identical to the last — and its conversion against what was
//! exported); [`FetchedRun`] is everything the one-shot commands (`export`, `inspect`) need of a
//! run, and its conversion. `fingerprint` tells whether a body changed in what matters.

pub mod fingerprint;
pub mod poll;

use crate::config::LogsMode;
use crate::convert::{convert_events, Conversion, ExportedSpans, RunInfo, RunState};
use crate::trigger::model::EventsResponse;
use crate::trigger::{ApiError, RunDetails, RunTrace, TriggerClient};

/// One run as fetched: its trace (when the API has one), its state, and its events body with
/// its parse (which borrows from the body).
#[derive(Debug)]
pub struct FetchedRun {
    pub run_id: String,
    pub trace: Option<RunTrace>,
    pub details: RunDetails,
    pub events: EventsResponse,
}

/// The run's trace. A trace the bridge cannot have (unreadable, over the size limit, refused
/// with a 4xx other than 401/403) costs the run its own trace id (derived instead), never its
/// spans. Failures that may pass (5xx, timeouts, 429) and a refused key fail the poll, which is
/// retried: deriving on a passing failure would put the run's spans in the wrong trace for good.
pub async fn fetch_trace(client: &TriggerClient, run_id: &str) -> Result<Option<RunTrace>, ApiError> {
    match client.trace(run_id).await {
        Ok(trace) => Ok(trace),
        Err(error) if error.is_retryable() || matches!(error, ApiError::Unauthorized { .. }) => Err(error),
        Err(error) => {
            tracing::warn!(run_id = %run_id, %error, "the trace cannot be read; deriving the trace id from the run id");
            Ok(None)
        }
    }
}

impl FetchedRun {
    /// Trace id first (it names the trace every span joins), then the run's state, then the
    /// events: read last, so a run seen as ended cannot have produced events after them.
    pub async fn fetch(client: &TriggerClient, run_id: &str) -> Result<FetchedRun, ApiError> {
        let trace = fetch_trace(client, run_id).await?;
        let details = client.retrieve_run(run_id).await?;
        let events = client.events(run_id).await?;
        Ok(FetchedRun {
            run_id: run_id.to_owned(),
            trace,
            details,
            events,
        })
    }

    pub fn is_ended(&self) -> bool {
        self.details.is_terminal()
    }

    /// The run as the converter sees it: ended at its `finishedAt`, or live.
    pub fn run_state(&self) -> RunState {
        if self.is_ended() {
            RunState::Ended {
                finished_at: self.details.summary.finished_at,
            }
        } else {
            RunState::Live
        }
    }

    /// Convert the events (consuming them: the body is not kept after conversion), enriched
    /// with the trace's span properties (`conversion.enrich`'s default).
    pub fn convert(&mut self, logs: LogsMode, exported: &dyn ExportedSpans) -> Conversion {
        self.convert_with(logs, true, exported)
    }

    /// [`FetchedRun::convert`] with enrichment on or off.
    pub fn convert_with(&mut self, logs: LogsMode, enrich: bool, exported: &dyn ExportedSpans) -> Conversion {
        let state = self.run_state();
        self.convert_as(state, logs, enrich, exported)
    }

    /// [`FetchedRun::convert_with`] with the run seen in `state` (`inspect` shows a live run's
    /// running spans by converting it as if it ended now).
    pub fn convert_as(
        &mut self,
        state: RunState,
        logs: LogsMode,
        enrich: bool,
        exported: &dyn ExportedSpans,
    ) -> Conversion {
        let mut run = RunInfo::new(&self.run_id, self.trace.as_ref().map(|t| t.trace_id.as_str()), state);
        run.task_identifier = self.details.summary.task_identifier.as_deref();
        if enrich {
            run.span_properties = self.trace.as_ref().map(|trace| &trace.span_properties);
        }
        self.events
            .take_events(|events| convert_events(events, &run, logs, exported))
    }
}
