//! Events → spans: the conversion contract of docs/mapping.md, as pure functions.
//!
//! No I/O, no clock, no globals: a run's raw events, what is known about the run (its trace id,
//! whether it has ended and when) and the set of span ids already exported go in; spans come out,
//! with a report of every element that was skipped or repaired.
//!
//! **One span representation: the wire's.** The output is OTLP messages (`opentelemetry-proto`'s
//! `Span`, with its events and attributes), built straight from the parsed elements, as software
//! that forwards telemetry does (the OTel Collector's pdata, Rotel, Vector). The SDK's `SpanData`
//! is made for instrumenting a process and cost a second copy of every span on its way to the
//! wire. `otlp::export_request` only groups the spans under their resource and scope, so the
//! daemon's exports, `convert` and `inspect --json` all carry the very same messages.

mod attributes;
mod element;
pub mod ids;
pub mod invalid;
pub mod otlp;
pub mod proto;
mod span;
pub mod time;

use crate::config::LogsMode;
use crate::trigger::model::RawEvent;
/// Rule 12's flattening of `properties`, public for the property tests (tests/properties.rs).
pub use attributes::flatten_properties;
pub use element::is_log_record;
use element::{raw_span_id, string_field, take_string, validate, Element};
use ids::{derive_trace_id, parse_trace_id};
pub use invalid::{InvalidReason, InvalidReport};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use span::{element_attributes, log_event, SpanBuild};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

/// Instrumentation scope name of every span (rule 15).
pub const SCOPE_NAME: &str = "trigger-otel-bridge";

/// Whether the run can still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Still executing: partial spans are held back.
    Live,
    /// Ended (or retired): partial spans are exported, ending at `finished_at` (Unix ns) when
    /// known, else at the latest end of any span in the run.
    Ended { finished_at: Option<u64> },
}

/// What is known about the run being converted.
#[derive(Debug, Clone)]
pub struct RunInfo<'a> {
    /// The run being polled ("" when unknown); `runId` of an element wins.
    pub run_id: &'a str,
    pub trace_id: TraceId,
    /// The trace id was derived from the run id (rule 1): every span says so.
    pub trace_id_derived: bool,
    /// `taskIdentifier` from retrieve-run, for elements without `taskSlug`.
    pub task_identifier: Option<&'a str>,
    pub state: RunState,
    /// `conversion.enrich`: each span's `data.properties` from the trace endpoint, by span id
    /// as the API writes it; flattened onto the span, the bridge's own attributes winning.
    pub span_properties: Option<&'a HashMap<String, serde_json::Value>>,
}

impl<'a> RunInfo<'a> {
    /// Rule 1: the API's trace id when it is valid, else one derived from the run id.
    pub fn new(run_id: &'a str, api_trace_id: Option<&str>, state: RunState) -> Self {
        let parsed = api_trace_id.and_then(parse_trace_id);
        RunInfo {
            run_id,
            trace_id: parsed.unwrap_or_else(|| derive_trace_id(run_id)),
            trace_id_derived: parsed.is_none(),
            task_identifier: None,
            state,
            span_properties: None,
        }
    }
}

/// The span ids already acknowledged by the collector (rule 4: a span is exported once).
pub trait ExportedSpans {
    fn contains(&self, span_id: SpanId) -> bool;
}

impl ExportedSpans for HashSet<SpanId> {
    fn contains(&self, span_id: SpanId) -> bool {
        HashSet::contains(self, &span_id)
    }
}

/// For one-shot conversions: nothing was exported before.
pub struct NothingExported;

impl ExportedSpans for NothingExported {
    fn contains(&self, _: SpanId) -> bool {
        false
    }
}

/// One output span and the source span ids it accounts for (itself, plus log records folded
/// into it as events), which are what the state store marks as exported.
#[derive(Debug, Clone)]
pub struct BridgeSpan {
    pub span: Span,
    pub task_slug: Option<String>,
    pub covers: Vec<SpanId>,
}

/// A log record for `conversion.logs = "otlp_logs"`. `span_id` is the log's own id in
/// Trigger.dev (what the state store records); the OTLP record carries `trace_id` and `parent`
/// as its trace context (`otlp::log_record`).
#[derive(Debug, Clone)]
pub struct BridgeLog {
    pub span_id: SpanId,
    pub trace_id: TraceId,
    pub parent: Option<SpanId>,
    /// Unix nanoseconds.
    pub time: u64,
    pub severity: Option<String>,
    pub body: String,
    pub task_slug: Option<String>,
    pub attributes: Vec<KeyValue>,
}

/// What flows from conversion to export: a span, or (with `otlp_logs`) a log record.
#[derive(Debug, Clone)]
// Records are mostly spans, so boxing the span variant would cost an allocation per span for
// nothing, and boxing the smaller log variant would not shrink the enum.
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Span(BridgeSpan),
    Log(BridgeLog),
}

impl Record {
    /// The source span ids this record accounts for (what the state store commits).
    pub fn covers(&self) -> &[SpanId] {
        match self {
            Record::Span(span) => &span.covers,
            Record::Log(log) => log.covers(),
        }
    }
}

impl From<BridgeSpan> for Record {
    fn from(span: BridgeSpan) -> Self {
        Record::Span(span)
    }
}

impl From<BridgeLog> for Record {
    fn from(log: BridgeLog) -> Self {
        Record::Log(log)
    }
}

impl BridgeLog {
    /// The source span ids it accounts for: its own.
    pub fn covers(&self) -> &[SpanId] {
        std::slice::from_ref(&self.span_id)
    }
}

/// The result of converting one response.
#[derive(Debug, Default)]
pub struct Conversion {
    /// Spans ready to export, ordered by start time then span id.
    pub spans: Vec<BridgeSpan>,
    /// Log records, only with `LogsMode::OtlpLogs`.
    pub logs: Vec<BridgeLog>,
    pub invalid: InvalidReport,
    /// Partial spans (and logs waiting on them) of a live run: exported on a later poll.
    pub held_back: usize,
    /// Elements skipped because their span id was exported before.
    pub already_exported: usize,
}

impl Conversion {
    /// Everything to export, spans first and then log records (taking both lists).
    pub fn take_records(&mut self) -> Vec<Record> {
        let mut records: Vec<Record> = Vec::with_capacity(self.spans.len() + self.logs.len());
        records.extend(self.spans.drain(..).map(Record::Span));
        records.extend(self.logs.drain(..).map(Record::Log));
        records
    }
}

/// Convert one events response (see the module documentation).
pub fn convert_events(
    mut events: Vec<RawEvent>,
    run: &RunInfo,
    logs: LogsMode,
    exported: &dyn ExportedSpans,
) -> Conversion {
    let mut conversion = Conversion::default();
    // Elements are small (the raw fields stay in `events`, taken when each one is built), so
    // partitioning and sorting move little; each raw element is freed as soon as it is built.
    let elements = deduplicate(&events, &mut conversion.invalid);
    let (mut spans, mut log_records): (Vec<Element>, Vec<Element>) = elements.into_iter().partition(|e| !e.is_log);
    spans.sort_by_key(|e| (e.start, e.span.id().to_bytes()));
    log_records.sort_by_key(|e| (e.start, e.span.id().to_bytes()));

    let spans_in_run: HashSet<SpanId> = spans.iter().map(|e| e.span.id()).collect();
    let latest_end = spans.iter().chain(&log_records).map(Element::end).max().unwrap_or(0);
    let partial_end = match run.state {
        RunState::Ended { finished_at: Some(at) } => Some(at),
        RunState::Ended { finished_at: None } => Some(latest_end),
        RunState::Live => None,
    };

    let mut output_index: HashMap<SpanId, usize> = HashMap::new();
    let mut held: HashSet<SpanId> = HashSet::new();
    for element in &spans {
        let id = element.span.id();
        if exported.contains(id) {
            conversion.already_exported += 1;
            continue;
        }
        let (end, partial) = match (element.is_partial, partial_end) {
            (false, _) => (element.end(), false),
            (true, Some(end)) => (end, true),
            (true, None) => {
                conversion.held_back += 1;
                held.insert(id);
                continue;
            }
        };
        let parent_in_run = element.parent.is_some_and(|p| spans_in_run.contains(&p.id()));
        // Borrowed in place: the fields a span takes are moved out one by one (copying the
        // whole element out and a default one in cost more than the fields).
        let raw = &mut events[element.index];
        let task_slug = task_slug(raw, run);
        let data = SpanBuild {
            element,
            end,
            partial,
            parent_in_run,
        }
        .build(raw, run, &mut conversion.invalid);
        output_index.insert(id, conversion.spans.len());
        conversion.spans.push(BridgeSpan {
            span: data,
            task_slug,
            covers: vec![id],
        });
    }

    for log in &log_records {
        let id = log.span.id();
        if exported.contains(id) {
            conversion.already_exported += 1;
            continue;
        }
        let raw = &mut events[log.index];
        match logs {
            LogsMode::Drop => {
                conversion.invalid.record(InvalidReason::LogDropped, log.index, || {
                    format!("element #{} (spanId {:?}) is a log record", log.index, raw_span_id(raw))
                });
                continue;
            }
            LogsMode::OtlpLogs => {
                conversion.logs.push(bridge_log(log, raw, run));
                continue;
            }
            LogsMode::SpanEvents => {
                let parent = log.parent.map(|p| p.id());
                if let Some(&at) = parent.and_then(|p| output_index.get(&p)) {
                    let target = &mut conversion.spans[at];
                    target.span.events.push(log_event(log, raw, run));
                    target.covers.push(id);
                    continue;
                }
                if parent.is_some_and(|p| held.contains(&p)) {
                    // Its parent is still running: the log rides along when the parent ends.
                    conversion.held_back += 1;
                    continue;
                }
            }
            LogsMode::Spans => {}
        }
        // A log as a zero-duration span: `spans` mode, or a parent outside this run or
        // already exported, so no log is lost.
        let parent_in_run = log.parent.is_some_and(|p| spans_in_run.contains(&p.id()));
        let task_slug = task_slug(raw, run);
        let data = SpanBuild {
            element: log,
            end: log.start,
            partial: false,
            parent_in_run,
        }
        .build(raw, run, &mut conversion.invalid);
        conversion.spans.push(BridgeSpan {
            span: data,
            task_slug,
            covers: vec![id],
        });
    }
    // Span ids are 8 big-endian bytes: comparing them as bytes orders them as numbers.
    conversion.spans.sort_by(|a, b| {
        (a.span.start_time_unix_nano, &a.span.span_id).cmp(&(b.span.start_time_unix_nano, &b.span.span_id))
    });
    conversion
}

/// Validate every element and keep one per span id (rule 4): a finished copy beats a partial
/// one; between finished copies the longer wins; otherwise the first seen stays.
fn deduplicate(events: &[RawEvent], invalid: &mut InvalidReport) -> Vec<Element> {
    let mut kept: Vec<Element> = Vec::with_capacity(events.len());
    let mut position: HashMap<SpanId, usize> = HashMap::with_capacity(events.len());
    for (index, raw) in events.iter().enumerate() {
        let Some(element) = validate(index, raw, invalid) else {
            continue;
        };
        match position.entry(element.span.id()) {
            Entry::Vacant(slot) => {
                slot.insert(kept.len());
                kept.push(element);
            }
            Entry::Occupied(slot) => {
                let current = &mut kept[*slot.get()];
                let replace = match (current.is_partial, element.is_partial) {
                    (true, false) => true,
                    (false, false) => element.duration.unwrap_or(0) > current.duration.unwrap_or(0),
                    _ => false,
                };
                if replace {
                    *current = element;
                }
            }
        }
    }
    kept
}

fn task_slug(raw: &RawEvent, run: &RunInfo) -> Option<String> {
    string_field(&raw.task_slug).or(run.task_identifier).map(str::to_owned)
}

fn bridge_log(log: &Element, raw: &mut RawEvent, run: &RunInfo) -> BridgeLog {
    // Like `log_event`: the log's own valid id is an attribute, as nothing else carries it.
    let mut extra = Vec::new();
    if !log.span.is_derived() {
        extra.push(proto::kv("trigger.span_id", proto::string(raw_span_id(raw))));
    }
    let severity = string_field(&raw.level).map(str::to_owned);
    let body = take_string(&mut raw.message).unwrap_or_default();
    let task_slug = task_slug(raw, run);
    BridgeLog {
        span_id: log.span.id(),
        trace_id: run.trace_id,
        parent: log.parent.map(|p| p.id()),
        time: log.start,
        severity,
        body,
        task_slug,
        attributes: element_attributes(log, raw, run, extra),
    }
}

#[cfg(test)]
mod tests;
