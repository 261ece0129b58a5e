//! Validate one raw element into a typed `Element` (rules 2, 3, 6–8, 13), or say why not.

use super::ids::{span_identity, SpanIdentity};
use super::invalid::{InvalidReason, InvalidReport};
use super::time::{parse_duration, parse_start_time};
use crate::trigger::model::{Field, RawEvent};
use opentelemetry::trace::SpanKind;

/// An element that passed validation: what the converter decides with. Its raw fields stay in
/// the parsed events (`index`), read and consumed when its span or log is built, so sorting and
/// deduplication move only this small struct.
#[derive(Debug)]
pub(crate) struct Element {
    pub index: usize,
    pub span: SpanIdentity,
    pub parent: Option<SpanIdentity>,
    pub start: u64,
    /// `None` when the duration was invalid (end = start, flagged).
    pub duration: Option<u64>,
    pub is_error: bool,
    pub is_cancelled: bool,
    pub is_partial: bool,
    pub is_log: bool,
    pub kind: SpanKind,
}

impl Element {
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.duration.unwrap_or(0))
    }
}

/// A non-empty string field.
pub(crate) fn string_field<'a>(value: &'a Option<Field<'_>>) -> Option<&'a str> {
    value.as_ref().and_then(Field::as_str).filter(|s| !s.is_empty())
}

/// A non-empty string field, moved out of the element (for its last use).
pub(crate) fn take_string(value: &mut Option<Field>) -> Option<String> {
    match value {
        Some(Field::String(text)) if !text.is_empty() => match value.take() {
            Some(Field::String(text)) => Some(text.into_string()),
            _ => None,
        },
        Some(Field::Str(text)) if !text.is_empty() => {
            let text = (*text).to_owned();
            *value = None;
            Some(text)
        }
        _ => None,
    }
}

/// The element's `spanId` as it arrived (for messages and `trigger.span_id`).
pub(crate) fn raw_span_id<'a>(raw: &'a RawEvent<'_>) -> &'a str {
    raw.span_id_str().unwrap_or_default()
}

/// Validate `raw`; on failure record the reason and return `None`.
pub(crate) fn validate(index: usize, raw: &RawEvent, invalid: &mut InvalidReport) -> Option<Element> {
    if raw.not_an_object {
        invalid.record(InvalidReason::NotAnObject, index, || {
            format!("element #{index} is not a JSON object")
        });
        return None;
    }
    let Some(span) = raw.span_id_str().and_then(span_identity) else {
        invalid.record(InvalidReason::SpanId, index, || {
            format!(
                "element #{index}: spanId {}",
                describe_field(raw, "spanId", raw.span_id.as_ref())
            )
        });
        return None;
    };
    let Some(start) = parse_start_time(raw.start_time.as_ref()) else {
        invalid.record(InvalidReason::StartTime, index, || {
            format!(
                "element #{index} (spanId {:?}): startTime {}",
                raw.span_id_str().unwrap_or_default(),
                describe_field(raw, "startTime", raw.start_time.as_ref())
            )
        });
        return None;
    };
    let duration = parse_duration(raw.duration.as_ref());
    if duration.is_none() {
        invalid.record(InvalidReason::Duration, index, || {
            format!(
                "element #{index} (spanId {:?}): duration {}",
                raw.span_id_str().unwrap_or_default(),
                describe_field(raw, "duration", raw.duration.as_ref())
            )
        });
    }
    // Rule 3: null, missing or empty parent is a root; a non-string parent is taken as none too.
    let parent = raw.parent_id.as_ref().and_then(Field::as_str).and_then(span_identity);
    let mut flag = |value: &Option<Field>, name: &str| match value {
        None | Some(Field::Null) => {
            if let Some(unreadable) = raw.out_of_range(name) {
                invalid.record(InvalidReason::Flag, index, || {
                    format!(
                        "element #{index}: {name} is {} ({}), taken as false",
                        unreadable.literal, unreadable.why
                    )
                });
            }
            false
        }
        Some(Field::Bool(flag)) => *flag,
        Some(other) => {
            invalid.record(InvalidReason::Flag, index, || {
                format!("element #{index}: {name} is {other}, taken as false")
            });
            false
        }
    };
    let is_error = flag(&raw.is_error, "isError");
    let is_cancelled = flag(&raw.is_cancelled, "isCancelled");
    let is_partial = flag(&raw.is_partial, "isPartial");
    let kind_text = string_field(&raw.kind);
    let is_log = is_log_record(raw);
    Some(Element {
        index,
        span,
        parent,
        start,
        duration,
        is_error,
        is_cancelled,
        is_partial,
        is_log,
        kind: span_kind(kind_text),
    })
}

/// Rule 13: a log record, not a span. The cloud store always says UNSPECIFIED, so the level is
/// what tells logs apart. A missing level is read as a span: dropping a span into a log would
/// hide its duration.
pub fn is_log_record(raw: &RawEvent) -> bool {
    string_field(&raw.kind) == Some("LOG") || string_field(&raw.level).is_some_and(|level| level != "TRACE")
}

/// Rule 8.
fn span_kind(kind: Option<&str>) -> SpanKind {
    match kind {
        Some("SERVER") => SpanKind::Server,
        Some("CLIENT") => SpanKind::Client,
        Some("PRODUCER") => SpanKind::Producer,
        Some("CONSUMER") => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

/// A short, bounded description of the bad value of `field`: the unreadable value it held (an
/// out-of-range number, a value nested too deeply), or the value as parsed.
fn describe_field(raw: &RawEvent, field: &str, value: Option<&Field>) -> String {
    match raw.out_of_range(field) {
        Some(unreadable) => format!("{} ({})", unreadable.literal, unreadable.why),
        None => describe(value),
    }
}

/// A short, bounded description of a bad value for messages.
fn describe(value: Option<&Field>) -> String {
    match value {
        None => "missing".to_owned(),
        Some(value) => {
            let text = value.to_string();
            match text.char_indices().nth(64) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text,
            }
        }
    }
}
