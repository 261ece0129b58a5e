//! What the waterfall draws, as plain data: [`SpanView`] and [`EventView`], made from OTLP spans
//! (the converter's, or what a collector received).

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;

/// One span as the waterfall needs it. Times are Unix nanoseconds; ids are lowercase hex.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanView {
    pub trace_id: String,
    pub span_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub start: u64,
    pub end: u64,
    /// Status ERROR, with its description.
    pub error: Option<String>,
    /// `trigger.cancelled`.
    pub cancelled: bool,
    /// `trigger.partial`: the span had not finished; its end is assumed.
    pub partial: bool,
    /// `trigger.level`: a span made from a log record has a level other than `TRACE`.
    pub level: Option<String>,
    pub run_id: Option<String>,
    pub events: Vec<EventView>,
}

/// One span event (a log record folded into its span is an event named `log`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventView {
    pub name: String,
    pub time: u64,
    /// Attribute values as text, in the order sent.
    pub attributes: Vec<(String, String)>,
}

impl EventView {
    pub(super) fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub(super) fn is_log(&self) -> bool {
        self.name == "log"
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn any_value_text(value: Option<&AnyValue>) -> String {
    use any_value::Value;
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(text)) => text.clone(),
        Some(Value::BoolValue(flag)) => flag.to_string(),
        Some(Value::IntValue(number)) => number.to_string(),
        Some(Value::DoubleValue(number)) => number.to_string(),
        Some(Value::ArrayValue(array)) => format!(
            "[{}]",
            array
                .values
                .iter()
                .map(|v| any_value_text(Some(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Value::KvlistValue(list)) => format!(
            "{{{}}}",
            list.values
                .iter()
                .map(|kv| format!("{}: {}", kv.key, any_value_text(kv.value.as_ref())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Value::BytesValue(bytes)) => hex(bytes),
        Some(Value::StringValueStrindex(_)) | None => String::new(),
    }
}

impl SpanView {
    /// From a span as OTLP carries it (what a collector receives).
    pub fn from_otlp(span: &OtlpSpan) -> SpanView {
        let attribute = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key == key)
                .map(|kv| any_value_text(kv.value.as_ref()))
        };
        let flag = |key: &str| attribute(key).is_some_and(|v| v == "true");
        SpanView {
            trace_id: hex(&span.trace_id),
            span_id: hex(&span.span_id),
            parent_id: (!span.parent_span_id.is_empty() && span.parent_span_id.iter().any(|b| *b != 0))
                .then(|| hex(&span.parent_span_id)),
            name: span.name.clone(),
            start: span.start_time_unix_nano,
            end: span.end_time_unix_nano,
            error: span
                .status
                .as_ref()
                .filter(|status| status.code == StatusCode::Error as i32)
                .map(|status| status.message.clone()),
            cancelled: flag("trigger.cancelled"),
            partial: flag("trigger.partial"),
            level: attribute("trigger.level"),
            run_id: attribute("trigger.run_id"),
            events: span
                .events
                .iter()
                .map(|event| EventView {
                    name: event.name.clone(),
                    time: event.time_unix_nano,
                    attributes: event
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), any_value_text(kv.value.as_ref())))
                        .collect(),
                })
                .collect(),
        }
    }

    /// A span made from a log record (`conversion.logs = "spans"`, or a log without its parent).
    pub(super) fn is_log(&self) -> bool {
        self.level.as_deref().is_some_and(|level| level != "TRACE")
    }

    pub(super) fn duration(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_of_the_converters_spans_and_of_the_request_agree() {
        use crate::config::LogsMode;
        use crate::convert::otlp::{export_request, ResourceSettings};
        use crate::convert::{convert_events, NothingExported, RunInfo, RunState};
        use crate::trigger::model::EventsBody;
        let body = br#"{"events": [
            {"spanId": "aaaaaaaaaaaaaaaa", "parentId": null, "runId": "run_1", "message": "task",
             "startTime": "1758630768000000000", "duration": 0, "isPartial": true, "isError": false,
             "isCancelled": true, "level": "TRACE", "kind": "UNSPECIFIED", "events": []},
            {"spanId": "bbbbbbbbbbbbbbbb", "parentId": "aaaaaaaaaaaaaaaa", "runId": "run_1", "message": "step",
             "startTime": "1758630768100000000", "duration": 200000000, "isError": true, "level": "TRACE",
             "events": [{"name": "exception", "time": "2025-09-23T12:32:48.250Z",
                         "properties": {"exception": {"message": "boom"}}}]},
            {"spanId": "cccccccccccccccc", "parentId": "bbbbbbbbbbbbbbbb", "runId": "run_1", "message": "hi",
             "startTime": "1758630768150000000", "duration": 0, "level": "WARN"}
        ]}"#;
        let events = EventsBody::from_slice(body).unwrap().events;
        let run = RunInfo::new(
            "run_1",
            Some("0af7651916cd43dd8448eb211c80319c"),
            RunState::Ended {
                finished_at: Some(1_758_630_769_000_000_000),
            },
        );
        let conversion = convert_events(events, &run, LogsMode::SpanEvents, &NothingExported);
        let from_data: Vec<SpanView> = conversion.spans.iter().map(|s| SpanView::from_otlp(&s.span)).collect();
        let request = export_request(conversion.spans, &ResourceSettings::default());
        let from_otlp: Vec<SpanView> = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(SpanView::from_otlp)
            .collect();
        assert_eq!(from_data, from_otlp);
        assert_eq!(from_data.len(), 2);
        let root = &from_data[0];
        assert!(root.cancelled && root.partial && root.parent_id.is_none());
        assert_eq!(root.end, 1_758_630_769_000_000_000);
        let step = &from_data[1];
        assert_eq!(step.error.as_deref(), Some("boom"));
        assert_eq!(step.parent_id.as_deref(), Some("aaaaaaaaaaaaaaaa"));
        assert_eq!(step.run_id.as_deref(), Some("run_1"));
        assert_eq!(step.events.len(), 2);
        assert_eq!(step.events[1].attribute("log.severity"), Some("WARN"));
    }
}
