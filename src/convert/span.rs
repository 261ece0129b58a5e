//! Build the OTLP span of one validated element (rules 5, 9–12 and the attribute table).

use super::attributes::{flatten_properties, scalar_to_attribute, snake_case};
use super::element::{raw_span_id, string_field, take_string, Element};
use super::ids::SpanIdentity;
use super::invalid::{InvalidReason, InvalidReport};
use super::proto::{kv, string, HAS_IS_REMOTE, IS_REMOTE, SAMPLED};
use super::time::parse_event_time;
use super::RunInfo;
use crate::trigger::model::{Field, RawEvent};
use opentelemetry::trace::SpanKind;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AttrValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::{self, Event};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use serde_json::Value;

/// Rule 5: the message, else the task slug, else a fixed name (the message is moved out).
fn span_name(raw: &mut RawEvent, run: &RunInfo) -> String {
    take_string(&mut raw.message).unwrap_or_else(|| {
        string_field(&raw.task_slug)
            .or(run.task_identifier)
            .unwrap_or("trigger.span")
            .to_owned()
    })
}

/// The attribute table of mapping.md, plus the bridge's repair markers.
/// `extra` (the bridge's markers) goes before the unknown fields, which never shadow a key.
/// The values it needs are moved out of `raw` (its `runId`, `level`, `style` and unknown fields).
pub(crate) fn element_attributes(
    element: &Element,
    raw: &mut RawEvent,
    run: &RunInfo,
    extra: Vec<KeyValue>,
) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(8 + extra.len() + raw.other.len());
    let run_id =
        take_string(&mut raw.run_id).or_else(|| Some(run.run_id).filter(|id| !id.is_empty()).map(str::to_owned));
    if let Some(run_id) = run_id {
        attributes.push(kv("trigger.run_id", string(run_id)));
    }
    if let Some(slug) = string_field(&raw.task_slug).or(run.task_identifier) {
        attributes.push(kv("trigger.task_slug", string(slug)));
    }
    if let Some(attempt) = raw.attempt_number.as_ref().and_then(Field::as_i64) {
        attributes.push(kv("trigger.attempt_number", AttrValue::IntValue(attempt)));
    }
    if let Some(level) = take_string(&mut raw.level) {
        attributes.push(kv("trigger.level", string(level)));
    }
    for (text, key) in [
        (raw.style.icon.take(), "trigger.style.icon"),
        (raw.style.variant.take(), "trigger.style.variant"),
    ] {
        if let Some(text) = text {
            attributes.push(kv(key, string(text.into_string())));
        }
    }
    if element.span.is_derived() {
        attributes.push(kv("trigger.span_id", string(raw_span_id(raw))));
    }
    if element.parent.is_some_and(SpanIdentity::is_derived) {
        if let Some(text) = raw.parent_id.as_ref().and_then(Field::as_str) {
            attributes.push(kv("trigger.parent_id", string(text)));
        }
    }
    if run.trace_id_derived {
        attributes.push(kv("trigger.trace_id_derived", AttrValue::BoolValue(true)));
    }
    if element.duration.is_none() {
        attributes.push(kv("trigger.duration_invalid", AttrValue::BoolValue(true)));
    }
    attributes.extend(extra);
    // Unknown scalars last, so they can never shadow one of the bridge's own keys.
    for (name, value) in &raw.other {
        let Some(value) = scalar_to_attribute(value) else {
            continue;
        };
        let key = format!("trigger.{}", snake_case(name));
        if attributes.iter().all(|attribute| attribute.key != key) {
            attributes.push(kv(key, value));
        }
    }
    attributes
}

/// Rule 11–12: the element's own `events[]` as span events.
fn span_events(element: &Element, raw: &RawEvent, invalid: &mut InvalidReport) -> Vec<Event> {
    let Some(Field::Array(items)) = &raw.events else {
        return Vec::new();
    };
    let mut events = Vec::with_capacity(items.len());
    for (position, item) in items.iter().enumerate() {
        let Value::Object(fields) = item else {
            invalid.record(InvalidReason::SpanEvent, element.index, || {
                format!(
                    "element #{} (spanId {:?}): events[{position}] is not an object",
                    element.index,
                    raw_span_id(raw)
                )
            });
            continue;
        };
        let name = fields.get("name").and_then(Value::as_str).unwrap_or("event").to_owned();
        let mut attributes = Vec::new();
        let time = match parse_event_time(fields.get("time")) {
            Some(time) => time,
            None => {
                invalid.record(InvalidReason::EventTime, element.index, || {
                    format!(
                        "element #{} (spanId {:?}): events[{position}].time {}",
                        element.index,
                        raw_span_id(raw),
                        fields.get("time").map_or("missing".to_owned(), Value::to_string)
                    )
                });
                attributes.push(kv("trigger.time_invalid", AttrValue::BoolValue(true)));
                element.start
            }
        };
        if let Some(properties) = fields.get("properties") {
            flatten_properties(properties, &mut attributes);
        }
        events.push(Event {
            time_unix_nano: time,
            name,
            attributes,
            dropped_attributes_count: 0,
        });
    }
    events
}

/// Rule 9: the `exception.message` of the first `exception` or `attempt_failed` event.
fn error_description(raw: &RawEvent) -> String {
    let Some(Field::Array(items)) = &raw.events else {
        return "error".to_owned();
    };
    items
        .iter()
        .filter(|item| {
            matches!(
                item.get("name").and_then(Value::as_str),
                Some("exception" | "attempt_failed")
            )
        })
        .find_map(|item| item.pointer("/properties/exception/message").and_then(Value::as_str))
        .unwrap_or("error")
        .to_owned()
}

/// A span for `element`, consuming its raw fields. `end` overrides the element's own end
/// (partial spans, rule 10); a log record's element gives its zero-duration span (rule 13).
pub(crate) struct SpanBuild<'a> {
    pub element: &'a Element,
    pub end: u64,
    pub partial: bool,
    pub parent_in_run: bool,
}

impl SpanBuild<'_> {
    pub fn build(self, raw: &mut RawEvent, run: &RunInfo, invalid: &mut InvalidReport) -> Span {
        let element = self.element;
        let mut markers = Vec::new();
        // An errored span is an error, not a cancellation (C13). A log record's status is always
        // UNSET (C19), so for it `isError` decides nothing and the cancellation still shows.
        if element.is_cancelled && (!element.is_error || element.is_log) {
            markers.push(kv("trigger.cancelled", AttrValue::BoolValue(true)));
        }
        if self.partial {
            markers.push(kv("trigger.partial", AttrValue::BoolValue(true)));
        }
        let mut attributes = element_attributes(element, raw, run, markers);
        // Enrichment last: `flatten_properties` skips keys already present, so the bridge's own
        // attributes win on conflict. Log records are not in the trace tree.
        if !element.is_log {
            if let Some(properties) = run.span_properties.and_then(|all| all.get(raw_span_id(raw))) {
                flatten_properties(properties, &mut attributes);
            }
        }
        // Rule 13: a log record's span is always UNSET; its level already says how bad it was.
        let status = if element.is_error && !element.is_log {
            Status {
                message: error_description(raw),
                code: StatusCode::Error as i32,
            }
        } else {
            Status::default()
        };
        let kind = if element.is_log {
            SpanKind::Internal
        } else {
            element.kind.clone()
        };
        let parent = element.parent.map(|parent| parent.id());
        // A parent outside this response lives in another run (the parent run of a
        // triggerAndWait): mark it remote, as a propagated context would be.
        let remote = parent.is_some() && !self.parent_in_run;
        let events = span_events(element, raw, invalid);
        Span {
            trace_id: run.trace_id.to_bytes().to_vec(),
            span_id: element.span.id().to_bytes().to_vec(),
            trace_state: String::new(),
            parent_span_id: parent.map_or_else(Vec::new, |p| p.to_bytes().to_vec()),
            flags: SAMPLED | HAS_IS_REMOTE | if remote { IS_REMOTE } else { 0 },
            name: span_name(raw, run),
            kind: otlp_kind(kind) as i32,
            start_time_unix_nano: element.start,
            end_time_unix_nano: self.end.max(element.start),
            attributes,
            dropped_attributes_count: 0,
            events,
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Some(status),
        }
    }
}

fn otlp_kind(kind: SpanKind) -> span::SpanKind {
    match kind {
        SpanKind::Client => span::SpanKind::Client,
        SpanKind::Server => span::SpanKind::Server,
        SpanKind::Producer => span::SpanKind::Producer,
        SpanKind::Consumer => span::SpanKind::Consumer,
        SpanKind::Internal => span::SpanKind::Internal,
    }
}

/// Rule 13, `span_events`: a log record as an event named `log` on its parent span.
pub(crate) fn log_event(log: &Element, raw: &mut RawEvent, run: &RunInfo) -> Event {
    let mut attributes = vec![kv(
        "log.message",
        string(take_string(&mut raw.message).unwrap_or_default()),
    )];
    if let Some(level) = string_field(&raw.level) {
        attributes.push(kv("log.severity", string(level)));
    }
    // element_attributes adds trigger.span_id only for a derived id; an event has no id of its
    // own, so keep the log's valid id too: it is how Trigger.dev's dashboard names the log.
    let mut extra = Vec::new();
    if !log.span.is_derived() {
        extra.push(kv("trigger.span_id", string(raw_span_id(raw))));
    }
    attributes.extend(element_attributes(log, raw, run, extra).into_iter().filter(|kv| {
        // The parent span already carries the run, task and level; repeating them is noise.
        !matches!(
            kv.key.as_str(),
            "trigger.run_id" | "trigger.task_slug" | "trigger.level" | "trigger.trace_id_derived"
        )
    }));
    Event {
        time_unix_nano: log.start,
        name: "log".to_owned(),
        attributes,
        dropped_attributes_count: 0,
    }
}
