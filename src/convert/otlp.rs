//! Resources (rule 14), OTLP log records (`otlp_logs`), and the OTLP requests that carry
//! converted spans and logs.
//!
//! Grouping into `ResourceSpans`/`ResourceLogs` is `opentelemetry-proto`'s own transform, the one
//! the OTLP exporters use, so `convert`'s JSON and what goes over the wire cannot drift apart.

use super::span::scope;
use super::{BridgeLog, BridgeSpan};
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{SpanId, TraceFlags};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;
use std::collections::BTreeMap;
use std::sync::OnceLock;

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

    /// The resource for one service name: the configured attributes plus `service.name`
    /// (which always wins over an attribute of the same key).
    pub fn resource(&self, service_name: &str) -> Resource {
        Resource::builder_empty()
            .with_attributes(
                self.attributes
                    .iter()
                    .filter(|(key, _)| key.as_str() != "service.name")
                    .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
            )
            .with_service_name(service_name.to_owned())
            .build()
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

    /// Spans grouped by the resource they belong to, in first-seen order.
    pub fn group(&self, spans: Vec<BridgeSpan>) -> Vec<(Resource, Vec<SpanData>)> {
        self.group_by_service(spans, |span| span.task_slug.as_deref())
            .into_iter()
            .map(|(name, members)| (self.resource(&name), members.into_iter().map(|s| s.data).collect()))
            .collect()
    }
}

/// One OTLP request holding every span, grouped by resource and scope.
pub fn export_request(spans: Vec<BridgeSpan>, settings: &ResourceSettings) -> ExportTraceServiceRequest {
    let resource_spans = settings
        .group(spans)
        .into_iter()
        .flat_map(|(resource, members)| {
            group_spans_by_resource_and_scope(members, &ResourceAttributesWithSchema::from(&resource))
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// One OTLP logs request holding every record, grouped by resource and scope.
pub fn export_logs_request(logs: Vec<BridgeLog>, settings: &ResourceSettings) -> ExportLogsServiceRequest {
    let resource_logs = settings
        .group_by_service(logs, |log| log.task_slug.as_deref())
        .into_iter()
        .flat_map(|(name, members)| {
            let records = SdkLogs::new(&members);
            let pairs = records.pairs();
            let resource = settings.resource(&name);
            group_logs_by_resource_and_scope(&LogBatch::new(&pairs), &ResourceAttributesWithSchema::from(&resource))
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// Trigger.dev's level → the OTLP severity number and text. Trigger.dev's `LOG` is console.log,
/// so INFO in number; the text keeps Trigger.dev's own word. Unknown levels get no severity
/// (their text is still in the `trigger.level` attribute).
pub fn severity(level: &str) -> Option<(Severity, &'static str)> {
    let mapped = match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => (Severity::Trace, "TRACE"),
        "DEBUG" => (Severity::Debug, "DEBUG"),
        "LOG" => (Severity::Info, "LOG"),
        "INFO" => (Severity::Info, "INFO"),
        "WARN" | "WARNING" => (Severity::Warn, "WARN"),
        "ERROR" => (Severity::Error, "ERROR"),
        "FATAL" => (Severity::Fatal, "FATAL"),
        _ => return None,
    };
    Some(mapped)
}

/// The SDK log record of one converted log: what `opentelemetry-otlp`'s log exporter takes.
/// Its trace context is the run's trace and the span the log was written in (no span id when
/// the log has no parent). The observed time is the log's own time: the converter has no
/// clock, and `opentelemetry-proto` requires one.
pub fn log_record(log: &BridgeLog) -> SdkLogRecord {
    let mut record = logger().create_log_record();
    record.set_timestamp(log.time);
    record.set_observed_timestamp(log.time);
    if let Some((number, text)) = log.severity.as_deref().and_then(severity) {
        record.set_severity_number(number);
        record.set_severity_text(text);
    }
    record.set_body(AnyValue::from(log.body.clone()));
    record.set_trace_context(
        log.trace_id,
        log.parent.unwrap_or(SpanId::INVALID),
        Some(TraceFlags::SAMPLED),
    );
    for attribute in &log.attributes {
        record.add_attribute(attribute.key.clone(), any_value(&attribute.value));
    }
    record
}

/// Converted logs as the SDK's log records with their scope (the spans' scope, rule 15): what
/// a `LogBatch`, the log exporter's and the proto transform's input, borrows.
pub struct SdkLogs {
    records: Vec<SdkLogRecord>,
    scope: opentelemetry::InstrumentationScope,
}

impl SdkLogs {
    pub fn new(logs: &[BridgeLog]) -> Self {
        SdkLogs {
            records: logs.iter().map(log_record).collect(),
            scope: scope(),
        }
    }

    /// The (record, scope) pairs a [`LogBatch`] is made of: `LogBatch::new(&logs.pairs())`.
    pub fn pairs(&self) -> Vec<(&SdkLogRecord, &opentelemetry::InstrumentationScope)> {
        self.records.iter().map(|record| (record, &self.scope)).collect()
    }
}

/// `SdkLogRecord` has no public constructor; a logger of a provider without processors makes
/// them (it never emits anything).
fn logger() -> &'static SdkLogger {
    static LOGGER: OnceLock<SdkLogger> = OnceLock::new();
    LOGGER.get_or_init(|| SdkLoggerProvider::builder().build().logger_with_scope(scope()))
}

fn any_value(value: &Value) -> AnyValue {
    fn list<T: Clone + Into<AnyValue>>(items: &[T]) -> AnyValue {
        AnyValue::ListAny(Box::new(items.iter().cloned().map(Into::into).collect()))
    }
    match value {
        Value::Bool(b) => AnyValue::Boolean(*b),
        Value::I64(i) => AnyValue::Int(*i),
        Value::F64(f) => AnyValue::Double(*f),
        Value::String(text) => AnyValue::String(text.clone()),
        Value::Array(Array::Bool(items)) => list(items),
        Value::Array(Array::I64(items)) => list(items),
        Value::Array(Array::F64(items)) => list(items),
        Value::Array(Array::String(items)) => list(items),
        // `Value` is non-exhaustive; anything newer is kept as its text.
        other => AnyValue::from(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceId;
    use std::time::{Duration, UNIX_EPOCH};

    fn log(severity: Option<&str>, parent: Option<SpanId>) -> BridgeLog {
        BridgeLog {
            span_id: SpanId::from(0xb1),
            trace_id: TraceId::from(0xa4c1),
            parent,
            time: UNIX_EPOCH + Duration::from_nanos(1_758_630_769_250_000_123),
            severity: severity.map(str::to_owned),
            body: "hello".to_owned(),
            task_slug: Some("task".to_owned()),
            attributes: vec![
                KeyValue::new("trigger.run_id", "run_a"),
                KeyValue::new("n", 3_i64),
                KeyValue::new("tags", Value::Array(Array::String(vec!["a".into(), "b".into()]))),
            ],
        }
    }

    #[test]
    fn levels_map_to_otlp_severities_case_insensitively() {
        let cases = [
            ("TRACE", Some((Severity::Trace, "TRACE"))),
            ("debug", Some((Severity::Debug, "DEBUG"))),
            ("LOG", Some((Severity::Info, "LOG"))),
            ("Info", Some((Severity::Info, "INFO"))),
            ("WARN", Some((Severity::Warn, "WARN"))),
            ("warning", Some((Severity::Warn, "WARN"))),
            ("ERROR", Some((Severity::Error, "ERROR"))),
            ("FATAL", Some((Severity::Fatal, "FATAL"))),
            ("LOUD", None),
            ("", None),
        ];
        for (level, expected) in cases {
            assert_eq!(severity(level), expected, "{level:?}");
        }
    }

    #[test]
    fn a_log_record_carries_trace_context_severity_body_and_attributes() {
        let record = log_record(&log(Some("warn"), Some(SpanId::from(0xa1))));
        let context = record.trace_context().unwrap();
        assert_eq!(
            (context.trace_id, context.span_id, context.trace_flags),
            (TraceId::from(0xa4c1), SpanId::from(0xa1), Some(TraceFlags::SAMPLED))
        );
        assert_eq!(record.severity_number(), Some(Severity::Warn));
        assert_eq!(record.severity_text(), Some("WARN"));
        assert_eq!(record.body(), Some(&AnyValue::from("hello".to_owned())));
        assert_eq!(record.timestamp(), record.observed_timestamp());
        let attributes: Vec<(String, AnyValue)> = record
            .attributes_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(
            attributes,
            vec![
                ("trigger.run_id".to_owned(), AnyValue::from("run_a".to_owned())),
                ("n".to_owned(), AnyValue::Int(3)),
                (
                    "tags".to_owned(),
                    AnyValue::ListAny(Box::new(vec![AnyValue::from("a"), AnyValue::from("b")]))
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
