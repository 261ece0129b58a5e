//! Resources (rule 14), OTLP log records (`otlp_logs`), and the OTLP requests that carry
//! converted spans and logs: the converter's messages grouped under their resource and scope
//! (one scope, rule 15), in the order they came.

use super::proto::{self, SAMPLED};
use super::{BridgeLog, BridgeSpan};
use opentelemetry::trace::SpanId;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use std::collections::BTreeMap;

/// `[export.resource]` as the converter needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSettings {
    pub service_name: String,
    pub service_name_from_task: bool,
    pub attributes: BTreeMap<String, String>,
}

impl Default for ResourceSettings {
    fn default() -> Self {
        ResourceSettings {
            service_name: "trigger.dev".to_owned(),
            service_name_from_task: false,
            attributes: BTreeMap::new(),
        }
    }
}

impl ResourceSettings {
    /// The `service.name` a span is reported under.
    pub fn service_name_for<'a>(&'a self, task_slug: Option<&'a str>) -> &'a str {
        match task_slug {
            Some(slug) if self.service_name_from_task => slug,
            _ => &self.service_name,
        }
    }

    /// The resource for one service name, as OTLP carries it: `service.name` (which always wins
    /// over a configured attribute of the same key), then the configured attributes in key
    /// order, so every request orders them alike (the SDK's `Resource` kept them in a `HashMap`
    /// whose order changed from one resource to the next).
    pub fn resource(&self, service_name: &str) -> OtlpResource {
        let service = proto::kv("service.name", proto::string(service_name));
        let configured = self
            .attributes
            .iter()
            .filter(|(key, _)| key.as_str() != "service.name")
            .map(|(key, value)| proto::kv(key.as_str(), proto::string(value.as_str())));
        OtlpResource {
            attributes: std::iter::once(service).chain(configured).collect(),
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        }
    }

    /// `items` grouped by the service name they are reported under, in first-seen order.
    pub fn group_by_service<T>(&self, items: Vec<T>, task_slug: impl Fn(&T) -> Option<&str>) -> Vec<(String, Vec<T>)> {
        let mut groups: Vec<(String, Vec<T>)> = Vec::new();
        for item in items {
            let name = self.service_name_for(task_slug(&item));
            match groups.iter().position(|(group, _)| group == name) {
                Some(at) => groups[at].1.push(item),
                None => groups.push((name.to_owned(), vec![item])),
            }
        }
        groups
    }
}

/// One OTLP request holding every span, grouped by resource and scope.
pub fn export_request(spans: Vec<BridgeSpan>, settings: &ResourceSettings) -> ExportTraceServiceRequest {
    let resource_spans = settings
        .group_by_service(spans, |span| span.task_slug.as_deref())
        .into_iter()
        .map(|(name, members)| ResourceSpans {
            resource: Some(settings.resource(&name)),
            scope_spans: vec![ScopeSpans {
                scope: Some(proto::scope()),
                spans: members.into_iter().map(|member| member.span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// The protobuf encoding of [`export_request`] of these spans, written from them in place: the
/// sender keeps a batch's spans (a split needs them) and encodes each batch without copying it
/// into a request first. Byte for byte what prost encodes for the request (a property test in
/// tests/properties.rs holds the two equal).
pub fn encode_export_request(spans: &[BridgeSpan], settings: &ResourceSettings) -> Vec<u8> {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, message, WireType};
    let groups = settings.group_by_service(spans.iter().collect(), |span: &&BridgeSpan| span.task_slug.as_deref());
    let scope = proto::scope();
    // Per resource: its message, its spans, and the lengths of its ScopeSpans and ResourceSpans
    // (no schema URLs: empty strings are not encoded).
    let sized: Vec<_> = groups
        .into_iter()
        .map(|(name, members)| {
            let resource = settings.resource(&name);
            let scope_spans_len = message::encoded_len(1, &scope)
                + members
                    .iter()
                    .map(|span| message::encoded_len(2, &span.span))
                    .sum::<usize>();
            let resource_spans_len = message::encoded_len(1, &resource)
                + key_len(2)
                + encoded_len_varint(scope_spans_len as u64)
                + scope_spans_len;
            (resource, members, scope_spans_len, resource_spans_len)
        })
        .collect();
    let total: usize = sized
        .iter()
        .map(|(.., len)| key_len(1) + encoded_len_varint(*len as u64) + len)
        .sum();
    let mut buf = Vec::with_capacity(total);
    for (resource, members, scope_spans_len, resource_spans_len) in &sized {
        encode_key(1, WireType::LengthDelimited, &mut buf);
        encode_varint(*resource_spans_len as u64, &mut buf);
        message::encode(1, resource, &mut buf);
        encode_key(2, WireType::LengthDelimited, &mut buf);
        encode_varint(*scope_spans_len as u64, &mut buf);
        message::encode(1, &scope, &mut buf);
        for span in members {
            message::encode(2, &span.span, &mut buf);
        }
    }
    debug_assert_eq!(buf.len(), total);
    buf
}

/// One OTLP logs request holding every record, grouped by resource and scope.
pub fn export_logs_request(logs: Vec<BridgeLog>, settings: &ResourceSettings) -> ExportLogsServiceRequest {
    let resource_logs = settings
        .group_by_service(logs, |log| log.task_slug.as_deref())
        .into_iter()
        .map(|(name, members)| ResourceLogs {
            resource: Some(settings.resource(&name)),
            scope_logs: vec![ScopeLogs {
                scope: Some(proto::scope()),
                log_records: members.into_iter().map(log_record).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// Trigger.dev's level → the OTLP severity number and text. Trigger.dev's `LOG` is console.log,
/// so INFO in number; the text keeps Trigger.dev's own word. Unknown levels get no severity
/// (their text is still in the `trigger.level` attribute).
pub fn severity(level: &str) -> Option<(SeverityNumber, &'static str)> {
    let mapped = match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => (SeverityNumber::Trace, "TRACE"),
        "DEBUG" => (SeverityNumber::Debug, "DEBUG"),
        "LOG" => (SeverityNumber::Info, "LOG"),
        "INFO" => (SeverityNumber::Info, "INFO"),
        "WARN" | "WARNING" => (SeverityNumber::Warn, "WARN"),
        "ERROR" => (SeverityNumber::Error, "ERROR"),
        "FATAL" => (SeverityNumber::Fatal, "FATAL"),
        _ => return None,
    };
    Some(mapped)
}

/// The OTLP log record of one converted log. Its trace context is the run's trace and the span
/// the log was written in (the zero span id when the log has no parent). The observed time is
/// the log's own time: the converter has no clock.
pub fn log_record(log: BridgeLog) -> LogRecord {
    let (severity_number, severity_text) = match log.severity.as_deref().and_then(severity) {
        Some((number, text)) => (number, text.to_owned()),
        None => (SeverityNumber::Unspecified, String::new()),
    };
    LogRecord {
        time_unix_nano: log.time,
        observed_time_unix_nano: log.time,
        severity_number: severity_number as i32,
        severity_text,
        body: Some(AnyValue {
            value: Some(proto::string(log.body)),
        }),
        attributes: log.attributes,
        dropped_attributes_count: 0,
        flags: SAMPLED,
        trace_id: log.trace_id.to_bytes().to_vec(),
        span_id: log.parent.unwrap_or(SpanId::INVALID).to_bytes().to_vec(),
        event_name: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceId;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Otlp;

    fn log(severity: Option<&str>, parent: Option<SpanId>) -> BridgeLog {
        BridgeLog {
            span_id: SpanId::from(0xb1),
            trace_id: TraceId::from(0xa4c1),
            parent,
            time: 1_758_630_769_250_000_123,
            severity: severity.map(str::to_owned),
            body: "hello".to_owned(),
            task_slug: Some("task".to_owned()),
            attributes: vec![
                proto::kv("trigger.run_id", proto::string("run_a")),
                proto::kv("n", Otlp::IntValue(3)),
                proto::kv("tags", proto::array([proto::string("a"), proto::string("b")])),
            ],
        }
    }

    #[test]
    fn levels_map_to_otlp_severities_case_insensitively() {
        let cases = [
            ("TRACE", Some((SeverityNumber::Trace, "TRACE"))),
            ("debug", Some((SeverityNumber::Debug, "DEBUG"))),
            ("LOG", Some((SeverityNumber::Info, "LOG"))),
            ("Info", Some((SeverityNumber::Info, "INFO"))),
            ("WARN", Some((SeverityNumber::Warn, "WARN"))),
            ("warning", Some((SeverityNumber::Warn, "WARN"))),
            ("ERROR", Some((SeverityNumber::Error, "ERROR"))),
            ("FATAL", Some((SeverityNumber::Fatal, "FATAL"))),
            ("LOUD", None),
            ("", None),
        ];
        for (level, expected) in cases {
            assert_eq!(severity(level), expected, "{level:?}");
        }
    }

    #[test]
    fn a_log_record_carries_trace_context_severity_body_and_attributes() {
        let record = log_record(log(Some("warn"), Some(SpanId::from(0xa1))));
        assert_eq!(
            (record.trace_id, record.span_id, record.flags),
            (
                TraceId::from(0xa4c1).to_bytes().to_vec(),
                SpanId::from(0xa1).to_bytes().to_vec(),
                1
            ),
            "sampled, in the run's trace and the span it was written in"
        );
        assert_eq!(record.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(record.severity_text, "WARN");
        assert_eq!(record.body.and_then(|b| b.value), Some(proto::string("hello")));
        assert_eq!(record.time_unix_nano, record.observed_time_unix_nano);
        let attributes: Vec<(String, Otlp)> = record
            .attributes
            .iter()
            .map(|kv| (kv.key.clone(), proto::value(kv).unwrap().clone()))
            .collect();
        assert_eq!(
            attributes,
            vec![
                ("trigger.run_id".to_owned(), proto::string("run_a")),
                ("n".to_owned(), Otlp::IntValue(3)),
                (
                    "tags".to_owned(),
                    proto::array([proto::string("a"), proto::string("b")])
                ),
            ]
        );
    }

    #[test]
    fn a_log_without_parent_or_known_level_has_no_span_id_and_no_severity() {
        let request = export_logs_request(vec![log(Some("LOUD"), None)], &ResourceSettings::default());
        let record = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(record.span_id, vec![0; 8], "SpanId::INVALID: no span");
        assert_eq!(record.trace_id.len(), 16);
        assert_eq!((record.severity_number, record.severity_text.as_str()), (0, ""));
        assert_eq!(record.time_unix_nano, 1_758_630_769_250_000_123);
        let scope = request.resource_logs[0].scope_logs[0].scope.as_ref().unwrap();
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            (SCOPE_NAME_FOR_TEST, env!("CARGO_PKG_VERSION"))
        );
    }

    const SCOPE_NAME_FOR_TEST: &str = crate::convert::SCOPE_NAME;
}
