//! Build the OTel span of one validated element (rules 5, 9–12 and the attribute table).

use super::attributes::{flatten_properties, scalar_to_attribute, snake_case};
use super::element::{raw_span_id, string_field, take_string, Element};
use super::ids::SpanIdentity;
use super::invalid::{InvalidReason, InvalidReport};
use super::time::parse_event_time;
use super::{RunInfo, SCOPE_NAME};
use crate::trigger::model::{Field, RawEvent};
use opentelemetry::trace::{Event, SpanContext, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue, Value as AttrValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::Value;
use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) fn nanos_to_time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

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
        attributes.push(KeyValue::new("trigger.run_id", run_id));
    }
    if let Some(slug) = string_field(&raw.task_slug).or(run.task_identifier) {
        attributes.push(KeyValue::new("trigger.task_slug", slug.to_owned()));
    }
    if let Some(attempt) = raw.attempt_number.as_ref().and_then(Field::as_i64) {
        attributes.push(KeyValue::new("trigger.attempt_number", attempt));
    }
    if let Some(level) = take_string(&mut raw.level) {
        attributes.push(KeyValue::new("trigger.level", level));
    }
    for (text, key) in [
        (raw.style.icon.take(), "trigger.style.icon"),
        (raw.style.variant.take(), "trigger.style.variant"),
    ] {
        if let Some(text) = text {
            attributes.push(KeyValue::new(key, text.into_string()));
        }
    }
    if element.span.is_derived() {
        attributes.push(KeyValue::new("trigger.span_id", raw_span_id(raw).to_owned()));
    }
    if element.parent.is_some_and(SpanIdentity::is_derived) {
        if let Some(text) = raw.parent_id.as_ref().and_then(Field::as_str) {
            attributes.push(KeyValue::new("trigger.parent_id", text.to_owned()));
        }
    }
    if run.trace_id_derived {
        attributes.push(KeyValue::new("trigger.trace_id_derived", true));
    }
    if element.duration.is_none() {
        attributes.push(KeyValue::new("trigger.duration_invalid", true));
    }
    attributes.extend(extra);
    // Unknown scalars last, so they can never shadow one of the bridge's own keys.
    for (name, value) in &raw.other {
        let Some(value) = scalar_to_attribute(value) else {
            continue;
        };
        let key = format!("trigger.{}", snake_case(name));
        if attributes.iter().all(|kv| kv.key.as_str() != key) {
            attributes.push(KeyValue::new(key, value));
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
            invalid.record(InvalidReason::SpanEvent, || {
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
                invalid.record(InvalidReason::EventTime, || {
                    format!(
                        "element #{} (spanId {:?}): events[{position}].time {}",
                        element.index,
                        raw_span_id(raw),
                        fields.get("time").map_or("missing".to_owned(), Value::to_string)
                    )
                });
                attributes.push(KeyValue::new("trigger.time_invalid", true));
                element.start
            }
        };
        if let Some(properties) = fields.get("properties") {
            flatten_properties(properties, &mut attributes);
        }
        events.push(Event::new(name, nanos_to_time(time), attributes, 0));
    }
    events
}

/// Rule 9: the `exception.message` of the first `exception` or `attempt_failed` event.
fn error_description(raw: &RawEvent) -> Cow<'static, str> {
    let Some(Field::Array(items)) = &raw.events else {
        return Cow::Borrowed("error");
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
        .map_or(Cow::Borrowed("error"), |message| Cow::Owned(message.to_owned()))
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
    pub fn build(self, mut raw: RawEvent, run: &RunInfo, invalid: &mut InvalidReport) -> SpanData {
        let element = self.element;
        let mut markers = Vec::new();
        // An errored span is an error, not a cancellation (C13). A log record's status is always
        // UNSET (C19), so for it `isError` decides nothing and the cancellation still shows.
        if element.is_cancelled && (!element.is_error || element.is_log) {
            markers.push(KeyValue::new("trigger.cancelled", true));
        }
        if self.partial {
            markers.push(KeyValue::new("trigger.partial", true));
        }
        let mut attributes = element_attributes(element, &mut raw, run, markers);
        // Enrichment last: `flatten_properties` skips keys already present, so the bridge's own
        // attributes win on conflict. Log records are not in the trace tree.
        if !element.is_log {
            if let Some(properties) = run.span_properties.and_then(|all| all.get(raw_span_id(&raw))) {
                flatten_properties(properties, &mut attributes);
            }
        }
        // Rule 13: a log record's span is always UNSET; its level already says how bad it was.
        let status = if element.is_error && !element.is_log {
            Status::Error {
                description: error_description(&raw),
            }
        } else {
            Status::Unset
        };
        let kind = if element.is_log {
            SpanKind::Internal
        } else {
            element.kind.clone()
        };
        let parent = element.parent.map(|parent| parent.id());
        // `SpanEvents` is non-exhaustive: fill a default one.
        let mut events = SpanEvents::default();
        events.events = span_events(element, &raw, invalid);
        SpanData {
            span_context: SpanContext::new(
                run.trace_id,
                element.span.id(),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: parent.unwrap_or(opentelemetry::trace::SpanId::INVALID),
            // A parent outside this response lives in another run (the parent run of a
            // triggerAndWait): mark it remote, as a propagated context would be.
            parent_span_is_remote: parent.is_some() && !self.parent_in_run,
            span_kind: kind,
            name: Cow::Owned(span_name(&mut raw, run)),
            start_time: nanos_to_time(element.start),
            end_time: nanos_to_time(self.end.max(element.start)),
            attributes,
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status,
            instrumentation_scope: scope(),
        }
    }
}

/// Rule 13, `span_events`: a log record as an event named `log` on its parent span.
pub(crate) fn log_event(log: &Element, mut raw: RawEvent, run: &RunInfo) -> Event {
    let mut attributes = vec![KeyValue::new(
        "log.message",
        take_string(&mut raw.message).unwrap_or_default(),
    )];
    if let Some(level) = string_field(&raw.level) {
        attributes.push(KeyValue::new("log.severity", level.to_owned()));
    }
    // element_attributes adds trigger.span_id only for a derived id; an event has no id of its
    // own, so keep the log's valid id too: it is how Trigger.dev's dashboard names the log.
    let mut extra = Vec::new();
    if !log.span.is_derived() {
        extra.push(KeyValue::new(
            "trigger.span_id",
            AttrValue::from(raw_span_id(&raw).to_owned()),
        ));
    }
    attributes.extend(element_attributes(log, &mut raw, run, extra).into_iter().filter(|kv| {
        // The parent span already carries the run, task and level; repeating them is noise.
        !matches!(
            kv.key.as_str(),
            "trigger.run_id" | "trigger.task_slug" | "trigger.level" | "trigger.trace_id_derived"
        )
    }));
    Event::new("log", nanos_to_time(log.start), attributes, 0)
}
