//! The naive floor of issue 12: what the minimal honest job costs, written the obvious way.
//!
//! - **Parse** ([`parse`]): serde-derive structs of only the fields docs/mapping.md reads,
//!   borrowed from the body. Text that may hold escapes (`message`, `runId`, `taskSlug`, `level`,
//!   `style.icon`/`variant`, an event's `name`) is a `Cow<str>` borrowed unless the JSON string
//!   has an escape; ids, `kind` and event times are `&str` (hex, enum words and ISO dates carry no
//!   escapes). An event's `properties` is a `serde_json::Value` (owned: its strings are copied
//!   once at parse, once more into the attributes). Every other field is skipped unparsed.
//! - **Build and encode** ([`build`], [`build_encode`]): `opentelemetry-proto` `Span`s with the
//!   bridge's spans, attributes and span events (ids from hex, name, start and end, ERROR status
//!   with the exception message, the `trigger.*` attributes, span events with flattened
//!   properties, log elements folded as `log` events onto their parent span or kept as
//!   zero-duration spans when it is not in the body), grouped into one
//!   `ExportTraceServiceRequest` under the configured service name and prost-encoded.
//!
//! What a floor leaves out: it is lenient only where serde is (a wrongly typed field fails the
//! whole body, where the bridge reports one invalid element), an element without a hex span id
//! or a start time is dropped rather than repaired or counted, ids are not hashed (rules 1–3), no
//! deduplication (rule 4), no held-back partial spans (a partial span ends at the run's end),
//! unknown top-level fields are not kept as attributes (C14), flattened keys are not checked for
//! repeats, no enrichment, one resource (no `service_name_from_task`), and the spans stay in body
//! order (the bridge sorts them by start, then id).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Attr;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use trigger_otel_bridge::convert::otlp::ResourceSettings;
use trigger_otel_bridge::convert::proto;

/// Text borrowed from the body unless it holds an escape (`Option<Cow<str>>` alone would always
/// own: serde borrows only into a field whose type is exactly `Cow<str>`).
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl Text<'_> {
    fn non_empty(text: &Option<Self>) -> Option<&str> {
        text.as_ref().map(|t| &*t.0).filter(|t| !t.is_empty())
    }
}

#[derive(Debug, Deserialize)]
pub struct Body<'a> {
    #[serde(borrow)]
    pub events: Vec<Element<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Element<'a> {
    pub span_id: Option<&'a str>,
    pub parent_id: Option<&'a str>,
    #[serde(borrow)]
    pub run_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub message: Option<Text<'a>>,
    #[serde(default)]
    pub start_time: Nanos,
    #[serde(default)]
    pub duration: Nanos,
    pub is_error: Option<bool>,
    pub is_cancelled: Option<bool>,
    pub is_partial: Option<bool>,
    #[serde(borrow)]
    pub level: Option<Text<'a>>,
    pub kind: Option<&'a str>,
    pub attempt_number: Option<i64>,
    #[serde(borrow)]
    pub task_slug: Option<Text<'a>>,
    #[serde(borrow)]
    pub events: Option<Vec<SpanEvent<'a>>>,
    #[serde(borrow)]
    pub style: Option<Style<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct SpanEvent<'a> {
    #[serde(borrow)]
    pub name: Option<Text<'a>>,
    pub time: Option<&'a str>,
    pub properties: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Style<'a> {
    #[serde(borrow)]
    pub icon: Option<Text<'a>>,
    #[serde(borrow)]
    pub variant: Option<Text<'a>>,
}

/// Nanoseconds as the API sends them: a string of digits or a JSON number (a float rounded);
/// `None` for anything else readable as a scalar.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nanos(pub Option<u64>);

impl<'de> Deserialize<'de> for Nanos {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NanosVisitor;
        impl Visitor<'_> for NanosVisitor {
            type Value = Nanos;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("nanoseconds")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Nanos, E> {
                let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
                Ok(Nanos(digits.then(|| text.parse().ok()).flatten()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Nanos, E> {
                Ok(Nanos(Some(n)))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Nanos, E> {
                Ok(Nanos(u64::try_from(n).ok()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Nanos, E> {
                Ok(Nanos((n.is_finite() && n >= 0.0).then(|| n.round() as u64)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Nanos, E> {
                Ok(Nanos(None))
            }
        }
        deserializer.deserialize_any(NanosVisitor)
    }
}

/// The body into the borrowed structs.
pub fn parse(body: &[u8]) -> Body<'_> {
    serde_json::from_slice(body).expect("the naive floor parses the generated body")
}

/// What the build needs to know about the run.
pub struct Run<'a> {
    pub run_id: &'a str,
    pub trace_id: [u8; 16],
    /// Where a partial span ends (the run's end).
    pub end: u64,
}

/// Build the request and prost-encode it.
pub fn build_encode(body: &Body, run: &Run, settings: &ResourceSettings) -> Vec<u8> {
    build(body, run, settings).encode_to_vec()
}

/// Parse, build and encode: the whole floor.
pub fn floor(body: &[u8], run: &Run, settings: &ResourceSettings) -> Vec<u8> {
    build_encode(&parse(body), run, settings)
}

/// Exactly `N` bytes of hex.
pub fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

fn kv(key: impl Into<String>, value: Attr) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

fn text(value: &str) -> Attr {
    Attr::StringValue(value.to_owned())
}

fn is_log(element: &Element) -> bool {
    element.kind == Some("LOG") || Text::non_empty(&element.level).is_some_and(|level| level != "TRACE")
}

/// The attribute table's entries a span gets, in the bridge's order.
fn span_attributes(element: &Element, run: &Run, out: &mut Vec<KeyValue>) {
    let run_id = Text::non_empty(&element.run_id).unwrap_or(run.run_id);
    if !run_id.is_empty() {
        out.push(kv("trigger.run_id", text(run_id)));
    }
    if let Some(slug) = Text::non_empty(&element.task_slug) {
        out.push(kv("trigger.task_slug", text(slug)));
    }
    attempt(element, out);
    if let Some(level) = Text::non_empty(&element.level) {
        out.push(kv("trigger.level", text(level)));
    }
    style(element, out);
}

fn attempt(element: &Element, out: &mut Vec<KeyValue>) {
    if let Some(attempt) = element.attempt_number {
        out.push(kv("trigger.attempt_number", Attr::IntValue(attempt)));
    }
}

fn style(element: &Element, out: &mut Vec<KeyValue>) {
    let Some(style) = &element.style else {
        return;
    };
    for (value, key) in [
        (&style.icon, "trigger.style.icon"),
        (&style.variant, "trigger.style.variant"),
    ] {
        if let Some(value) = value {
            out.push(kv(key, text(&value.0)));
        }
    }
}

/// An event's `properties`, flattened: nested objects join keys with `.`, scalars keep their
/// type, arrays of one scalar type are arrays, anything else is its JSON text.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<KeyValue>) {
    match value {
        Value::Object(map) if prefix.is_empty() || !map.is_empty() => {
            for (key, inner) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, inner, out);
            }
        }
        Value::Null if prefix.is_empty() => {}
        other if prefix.is_empty() => out.push(kv("properties", json_attribute(other))),
        other => out.push(kv(prefix, json_attribute(other))),
    }
}

fn json_attribute(value: &Value) -> Attr {
    match value {
        Value::String(s) => text(s),
        Value::Bool(b) => Attr::BoolValue(*b),
        Value::Number(n) => match (n.as_i64(), n.is_u64()) {
            (Some(i), _) => Attr::IntValue(i),
            (None, true) => Attr::StringValue(n.to_string()),
            (None, false) => Attr::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Array(items) => array_attribute(items).unwrap_or_else(|| Attr::StringValue(value.to_string())),
        Value::Null | Value::Object(_) => Attr::StringValue(value.to_string()),
    }
}

fn array_attribute(items: &[Value]) -> Option<Attr> {
    let values: Vec<Attr> = match items.first()? {
        Value::String(_) => items.iter().map(|v| v.as_str().map(text)).collect::<Option<_>>()?,
        Value::Bool(_) => items
            .iter()
            .map(|v| v.as_bool().map(Attr::BoolValue))
            .collect::<Option<_>>()?,
        Value::Number(_) => match items.iter().map(Value::as_i64).collect::<Option<Vec<_>>>() {
            Some(ints) => ints.into_iter().map(Attr::IntValue).collect(),
            None => items
                .iter()
                .map(|v| v.as_f64().map(Attr::DoubleValue))
                .collect::<Option<_>>()?,
        },
        _ => return None,
    };
    Some(Attr::ArrayValue(ArrayValue {
        values: values
            .into_iter()
            .map(|value| AnyValue { value: Some(value) })
            .collect(),
    }))
}

fn event_time(time: Option<&str>) -> Option<u64> {
    use time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(time?, &Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos()).ok()
}

fn span_events(element: &Element, start: u64) -> Vec<Event> {
    let Some(events) = &element.events else {
        return Vec::new();
    };
    events
        .iter()
        .map(|event| {
            let mut attributes = Vec::new();
            let time = event_time(event.time).unwrap_or_else(|| {
                attributes.push(kv("trigger.time_invalid", Attr::BoolValue(true)));
                start
            });
            if let Some(properties) = &event.properties {
                flatten("", properties, &mut attributes);
            }
            Event {
                time_unix_nano: time,
                name: Text::non_empty(&event.name).unwrap_or("event").to_owned(),
                attributes,
                dropped_attributes_count: 0,
            }
        })
        .collect()
}

/// The `exception.message` of the first `exception` or `attempt_failed` event, else `error`.
fn error_message(element: &Element) -> String {
    element
        .events
        .iter()
        .flatten()
        .filter(|event| matches!(event.name.as_ref().map(|n| &*n.0), Some("exception" | "attempt_failed")))
        .find_map(|event| event.properties.as_ref()?.pointer("/exception/message")?.as_str())
        .unwrap_or("error")
        .to_owned()
}

fn kind(element: &Element) -> SpanKind {
    match element.kind {
        Some("SERVER") => SpanKind::Server,
        Some("CLIENT") => SpanKind::Client,
        Some("PRODUCER") => SpanKind::Producer,
        Some("CONSUMER") => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

/// One span of `element`; `None` without a hex span id or a start time.
fn span(element: &Element, run: &Run, log: bool) -> Option<Span> {
    let id = hex::<8>(element.span_id?)?;
    let start = element.start_time.0?;
    let is_error = element.is_error == Some(true) && !log;
    let partial = element.is_partial == Some(true) && !log;
    let end = match (partial, element.duration.0) {
        (true, _) => run.end,
        (false, duration) => start.saturating_add(duration.unwrap_or(0)),
    };
    let mut attributes = Vec::with_capacity(8);
    span_attributes(element, run, &mut attributes);
    if element.duration.0.is_none() {
        attributes.push(kv("trigger.duration_invalid", Attr::BoolValue(true)));
    }
    if element.is_cancelled == Some(true) && !is_error {
        attributes.push(kv("trigger.cancelled", Attr::BoolValue(true)));
    }
    if partial {
        attributes.push(kv("trigger.partial", Attr::BoolValue(true)));
    }
    let status = if is_error {
        Status {
            message: error_message(element),
            code: StatusCode::Error as i32,
        }
    } else {
        Status::default()
    };
    let name = Text::non_empty(&element.message)
        .or(Text::non_empty(&element.task_slug))
        .unwrap_or("trigger.span");
    Some(Span {
        trace_id: run.trace_id.to_vec(),
        span_id: id.to_vec(),
        trace_state: String::new(),
        parent_span_id: element
            .parent_id
            .and_then(hex::<8>)
            .map_or_else(Vec::new, |p| p.to_vec()),
        // Sampled, and whether the parent is remote is known (set below).
        flags: proto::SAMPLED | proto::HAS_IS_REMOTE,
        name: name.to_owned(),
        kind: if log { SpanKind::Internal } else { kind(element) } as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end.max(start),
        attributes,
        dropped_attributes_count: 0,
        events: span_events(element, start),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Some(status),
    })
}

/// A log element as a `log` event on its parent span.
fn log_event(element: &Element, start: u64) -> Event {
    let mut attributes = Vec::with_capacity(6);
    let message = Text::non_empty(&element.message).unwrap_or_default();
    attributes.push(kv("log.message", text(message)));
    if let Some(level) = Text::non_empty(&element.level) {
        attributes.push(kv("log.severity", text(level)));
    }
    // The parent span already carries the run, task and level.
    attempt(element, &mut attributes);
    style(element, &mut attributes);
    attributes.push(kv("trigger.span_id", text(element.span_id.unwrap_or_default())));
    Event {
        time_unix_nano: start,
        name: "log".to_owned(),
        attributes,
        dropped_attributes_count: 0,
    }
}

fn id_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// The request of `body`'s elements: spans first, then each log folded onto its parent span.
pub fn build(body: &Body, run: &Run, settings: &ResourceSettings) -> ExportTraceServiceRequest {
    let mut spans: Vec<Span> = Vec::with_capacity(body.events.len());
    let mut index: HashMap<u64, usize> = HashMap::with_capacity(body.events.len());
    for element in body.events.iter().filter(|e| !is_log(e)) {
        if let Some(span) = span(element, run, false) {
            index.insert(id_of(&span.span_id).expect("8 bytes"), spans.len());
            spans.push(span);
        }
    }
    // A parent that is not a span of this body is remote (another run's).
    for span in &mut spans {
        if id_of(&span.parent_span_id).is_some_and(|parent| !index.contains_key(&parent)) {
            span.flags |= proto::IS_REMOTE;
        }
    }
    for element in body.events.iter().filter(|e| is_log(e)) {
        let parent = element.parent_id.and_then(hex::<8>).map(u64::from_be_bytes);
        match (parent.and_then(|p| index.get(&p)), element.start_time.0) {
            (Some(&at), Some(start)) if element.span_id.and_then(hex::<8>).is_some() => {
                spans[at].events.push(log_event(element, start));
            }
            // No parent span here: a zero-duration span, so no log is lost.
            _ => {
                if let Some(mut span) = span(element, run, true) {
                    span.end_time_unix_nano = span.start_time_unix_nano;
                    if !span.parent_span_id.is_empty() {
                        span.flags |= proto::IS_REMOTE;
                    }
                    spans.push(span);
                }
            }
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(settings.resource(&settings.service_name)),
            scope_spans: vec![ScopeSpans {
                scope: Some(proto::scope()),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}
