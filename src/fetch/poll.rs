//! One poll of one run: trace id (first time), status (when asked), events; then conversion
//! against the spans already exported. Runs as its own task; the daemon loop applies the result.

use super::fingerprint::{fingerprint, shows_end};
use crate::config::LogsMode;
use crate::convert::ids::span_identity;
use crate::convert::{convert_events, is_log_record, InvalidReport, Record, RunInfo, RunState};
use crate::fetch::fetch_trace;
use crate::trigger::model::Field;
use crate::trigger::{ApiError, EventsFetch, RunDetails, RunTrace, TriggerClient};
use opentelemetry::trace::SpanId;
use serde_json::Value;
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::Arc;

/// What the daemon loop hands a poll task.
pub struct PollJob {
    pub run_id: Arc<str>,
    /// `None`: ask the trace endpoint (first poll); `Some(id)`: already known.
    pub known_trace_id: Option<Option<String>>,
    pub ask_status: bool,
    /// Ask the status after the events when they show that the run ended (its own span
    /// finished, a span cancelled) and no status read in this poll says so already: one request
    /// at the run's end, not one on every poll.
    pub ask_status_if_ended: bool,
    pub task_identifier: Option<String>,
    pub state: RunState,
    pub exported: Arc<HashSet<SpanId>>,
    pub logs: LogsMode,
    /// At most this many records (spans and log records) may be admitted to the export queue
    /// (backpressure).
    pub capacity: usize,
    /// `conversion.enrich`, and the span properties read from the trace so far.
    pub enrich: bool,
    pub span_properties: Option<Arc<HashMap<String, Value>>>,
    /// The body hash of the run's last parsed poll, when a byte-identical body may be skipped:
    /// the run is watched (not finalising, whose poll exports partial spans) and its last poll
    /// left nothing behind, so converting the same bytes again would give nothing new.
    pub skip_if_unchanged: Option<u64>,
}

pub struct PollResult {
    pub run_id: Arc<str>,
    /// The trace, when it was asked for on this poll.
    pub trace: Option<Option<RunTrace>>,
    pub details: Option<RunDetails>,
    /// The events body's [`crate::trigger::model::body_hash`].
    pub body_hash: u64,
    /// `None` when the body was byte-identical to the last one and not parsed (then nothing
    /// is to be exported, and the fingerprint and the end sign are the last poll's).
    pub fingerprint: Option<u64>,
    /// Whether the body shows the run's end ([`shows_end`]); `None` when not parsed, or the run
    /// is converted as ended already.
    pub shows_end: Option<bool>,
    /// The body showed the run's end and the status was asked for it (`ask_status_if_ended`).
    pub end_hint_checked: bool,
    /// Spans, then log records (`otlp_logs`), to export.
    pub records: Vec<Record>,
    /// Records `capacity` cut off (they come on a later poll); 0 when the poll was complete.
    pub left_behind: usize,
    pub invalid: InvalidReport,
    /// Fresh span properties, when the trace was read on this poll (enrichment).
    pub span_properties: Option<Arc<HashMap<String, Value>>>,
}

pub async fn poll(client: TriggerClient, job: PollJob) -> (Arc<str>, Result<PollResult, ApiError>) {
    let run_id = job.run_id.clone();
    (run_id, poll_inner(&client, job).await)
}

async fn poll_inner(client: &TriggerClient, job: PollJob) -> Result<PollResult, ApiError> {
    let run_id: &str = &job.run_id;
    let trace = match job.known_trace_id {
        Some(_) => None,
        None => Some(fetch_trace(client, run_id).await?),
    };
    let mut details = if job.ask_status {
        Some(client.retrieve_run(run_id).await?)
    } else {
        None
    };
    // Enrichment reuses the trace read for the trace id (also when the body is unchanged: it
    // serves the spans of a later body).
    let mut fresh_properties = trace
        .as_ref()
        .map(|t| t.as_ref().map(|t| Arc::new(t.span_properties.clone())));
    let (body_hash, mut events) = match client.events_unless_unchanged(run_id, job.skip_if_unchanged).await? {
        EventsFetch::Unchanged { hash } => {
            return Ok(PollResult {
                run_id: job.run_id.clone(),
                trace,
                details,
                body_hash: hash,
                fingerprint: None,
                shows_end: None,
                end_hint_checked: false,
                records: Vec::new(),
                left_behind: 0,
                invalid: InvalidReport::default(),
                span_properties: fresh_properties.flatten(),
            });
        }
        EventsFetch::Parsed { hash, events } => (hash, events),
    };
    let fingerprint = fingerprint(events.events());
    let ends = matches!(job.state, RunState::Live).then(|| shows_end(events.events()));
    let mut end_hint_checked = false;
    let ended_already = details.as_ref().is_some_and(RunDetails::is_terminal);
    if job.ask_status_if_ended && !ended_already && ends == Some(true) {
        // Read after the events, so the status cannot predate them (a status read before them
        // in this poll may: the run ended in between, and a later byte-identical body is not
        // parsed again to show the sign). A failure here costs the prompt notice, not the poll:
        // the sign is still there next time.
        match client.retrieve_run(run_id).await {
            Ok(asked) => {
                details = Some(asked);
                end_hint_checked = true;
            }
            Err(error) => {
                tracing::debug!(run_id = %run_id, %error, "the events show the run ended; its status could not be read")
            }
        }
    }

    // The trace is read again only when a finished span that is still to be exported is not in
    // it yet.
    if job.enrich && trace.is_none() {
        let known = job.span_properties.as_deref();
        let lacking = events.events().iter().any(|raw| {
            raw.is_partial != Some(Field::Bool(true))
                && !is_log_record(raw)
                && raw.span_id_str().is_some_and(|id| {
                    !known.is_some_and(|props| props.contains_key(id))
                        && span_identity(id).is_some_and(|identity| !job.exported.contains(&identity.id()))
                })
        });
        if lacking {
            // Enrichment is optional: a trace that cannot be read again costs these spans their
            // properties, never their export.
            match client.trace(run_id).await {
                Ok(Some(trace)) => fresh_properties = Some(Some(Arc::new(trace.span_properties))),
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(run_id = %run_id, %error, "cannot refresh span properties from the trace")
                }
            }
        }
    }
    let properties: Option<Arc<HashMap<String, Value>>> = match &fresh_properties {
        Some(fresh) => fresh.clone(),
        None => job.span_properties.clone(),
    };

    let trace_id: Option<&str> = match (&trace, &job.known_trace_id) {
        (Some(asked), _) => asked.as_ref().map(|t| t.trace_id.as_str()),
        (None, Some(known)) => known.as_deref(),
        (None, None) => None,
    };
    let task_identifier = details
        .as_ref()
        .and_then(|d| d.summary.task_identifier.as_deref())
        .or(job.task_identifier.as_deref());
    let mut run = RunInfo::new(run_id, trace_id, job.state);
    run.task_identifier = task_identifier;
    if job.enrich {
        run.span_properties = properties.as_deref();
    }
    let mut conversion = events.take_events(|events| convert_events(events, &run, job.logs, job.exported.as_ref()));
    let mut records = conversion.take_records();
    let left_behind = records.len().saturating_sub(job.capacity);
    records.truncate(job.capacity);
    Ok(PollResult {
        run_id: job.run_id.clone(),
        trace,
        details,
        body_hash,
        fingerprint: Some(fingerprint),
        shows_end: ends,
        end_hint_checked,
        records,
        left_behind,
        invalid: conversion.invalid,
        span_properties: fresh_properties.flatten(),
    })
}
