//! `convert` end to end: the built binary on every fixture, its stdout decoded with
//! opentelemetry-proto's own OTLP/JSON (serde) types, checked against mapping.md rule by rule.
//!
//! For the well-formed fixtures the expected spans are recomputed here from the fixture JSON by
//! the plain rules (the oracle is deliberately simpler than the converter: it handles only valid
//! input), then a few facts are asserted by hand so the oracle cannot be wrong in the same way.

mod support;

use assert_cmd::Command;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use support::hex;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture_path(name)).unwrap()).unwrap()
}

fn bridge() -> Command {
    Command::from_std(support::process::command(&[]))
}

struct Converted {
    spans: Vec<Span>,
    stderr: String,
}

fn convert(args: &[&str]) -> Converted {
    let output = bridge().arg("convert").args(args).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "convert {args:?} failed: {stderr}");
    let request: ExportTraceServiceRequest = serde_json::from_slice(&output.stdout).expect("stdout is OTLP/JSON");
    let spans = request
        .resource_spans
        .into_iter()
        .flat_map(|rs| {
            let service = rs.resource.unwrap().attributes;
            assert!(service.iter().any(|kv| kv.key == "service.name"));
            rs.scope_spans
        })
        .flat_map(|ss| {
            let scope = ss.scope.unwrap();
            assert_eq!(
                (scope.name.as_str(), scope.version.as_str()),
                ("trigger-otel-bridge", env!("CARGO_PKG_VERSION"))
            );
            ss.spans
        })
        .collect();
    Converted { spans, stderr }
}

fn trace_id_of(run: &str) -> String {
    fixture(&format!("{run}.trace.json"))["trace"]["traceId"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn convert_fixture(run: &str) -> Converted {
    let trace_id = trace_id_of(run);
    let path = fixture_path(&format!("{run}.events.json"));
    convert(&[path.to_str().unwrap(), "--trace-id", &trace_id])
}

fn attrs(list: &[KeyValue]) -> BTreeMap<String, any_value::Value> {
    list.iter()
        .map(|kv| (kv.key.clone(), kv.value.clone().unwrap().value.unwrap()))
        .collect()
}

fn string(text: &str) -> any_value::Value {
    any_value::Value::StringValue(text.to_owned())
}

fn iso_to_nanos(text: &str) -> u64 {
    OffsetDateTime::parse(text, &Rfc3339).unwrap().unix_timestamp_nanos() as u64
}

/// The span the rules say an element becomes (ids, parent, times, kind, status, events).
#[derive(Debug, PartialEq)]
struct Expected {
    span_id: String,
    parent: String,
    name: String,
    start: u64,
    end: u64,
    kind: SpanKind,
    status: (StatusCode, String),
    /// (name, time) of span events, logs included.
    events: Vec<(String, u64)>,
    partial: bool,
}

fn is_log(e: &Value) -> bool {
    e["level"] != "TRACE" || e["kind"] == "LOG"
}

fn kind_of(e: &Value) -> SpanKind {
    match e["kind"].as_str().unwrap_or("") {
        "SERVER" => SpanKind::Server,
        "CLIENT" => SpanKind::Client,
        "PRODUCER" => SpanKind::Producer,
        "CONSUMER" => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

/// The oracle for well-formed fixtures of an ended run (what `convert` assumes).
fn expected_spans(run: &str) -> BTreeMap<String, Expected> {
    let events = fixture(&format!("{run}.events.json"))["events"]
        .as_array()
        .unwrap()
        .clone();
    let start = |e: &Value| e["startTime"].as_str().unwrap().parse::<u64>().unwrap();
    let end = |e: &Value| start(e) + e["duration"].as_u64().unwrap();
    let latest_end = events.iter().map(end).max().unwrap();
    // Rule 4: one element per span id, the finished copy preferred.
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for e in &events {
        let id = e["spanId"].as_str().unwrap().to_lowercase();
        let keep_existing = by_id.get(&id).is_some_and(|old| old["isPartial"] == false);
        if !keep_existing {
            by_id.insert(id, e.clone());
        }
    }
    let mut expected = BTreeMap::new();
    for (id, e) in by_id.iter().filter(|(_, e)| !is_log(e)) {
        let partial = e["isPartial"] == true;
        let description = e["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|ev| ev["name"] == "exception" || ev["name"] == "attempt_failed")
            .find_map(|ev| ev["properties"]["exception"]["message"].as_str())
            .unwrap_or("error");
        let mut span_events: Vec<(String, u64)> = e["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ev| {
                (
                    ev["name"].as_str().unwrap().to_owned(),
                    iso_to_nanos(ev["time"].as_str().unwrap()),
                )
            })
            .collect();
        let mut logs: Vec<(String, u64)> = by_id
            .values()
            .filter(|l| is_log(l) && l["parentId"].as_str() == Some(id.as_str()))
            .map(|l| ("log".to_owned(), start(l)))
            .collect();
        logs.sort();
        span_events.extend(logs);
        expected.insert(
            id.clone(),
            Expected {
                span_id: id.clone(),
                parent: e["parentId"].as_str().unwrap_or("").to_owned(),
                name: e["message"].as_str().unwrap().to_owned(),
                start: start(e),
                end: if partial { latest_end.max(start(e)) } else { end(e) },
                kind: kind_of(e),
                status: if e["isError"] == true {
                    (StatusCode::Error, description.to_owned())
                } else {
                    (StatusCode::Unset, String::new())
                },
                events: span_events,
                partial,
            },
        );
    }
    // Logs whose parent is not a span of this run become zero-duration spans.
    for (id, l) in by_id.iter().filter(|(_, e)| is_log(e)) {
        let parent = l["parentId"].as_str().unwrap_or("");
        if !expected.contains_key(parent) {
            expected.insert(
                id.clone(),
                Expected {
                    span_id: id.clone(),
                    parent: parent.to_owned(),
                    name: l["message"].as_str().unwrap().to_owned(),
                    start: start(l),
                    end: start(l),
                    kind: SpanKind::Internal,
                    status: (StatusCode::Unset, String::new()),
                    events: vec![],
                    partial: false,
                },
            );
        }
    }
    expected
}

fn actual(span: &Span) -> Expected {
    let status = span.status.clone().unwrap_or_default();
    Expected {
        span_id: hex(&span.span_id),
        parent: hex(&span.parent_span_id),
        name: span.name.clone(),
        start: span.start_time_unix_nano,
        end: span.end_time_unix_nano,
        kind: SpanKind::try_from(span.kind).unwrap(),
        status: (StatusCode::try_from(status.code).unwrap(), status.message),
        events: span.events.iter().map(|e| (e.name.clone(), e.time_unix_nano)).collect(),
        partial: attrs(&span.attributes).get("trigger.partial") == Some(&any_value::Value::BoolValue(true)),
    }
}

fn check_against_oracle(run: &str) -> Converted {
    let converted = convert_fixture(run);
    let expected = expected_spans(run);
    let trace_id = trace_id_of(run);
    assert_eq!(converted.spans.len(), expected.len(), "{run}: span count");
    for span in &converted.spans {
        assert_eq!(
            hex(&span.trace_id),
            trace_id,
            "{run}: every span carries the run's trace id"
        );
        let got = actual(span);
        let want = expected
            .get(&got.span_id)
            .unwrap_or_else(|| panic!("{run}: unexpected span {}", got.span_id));
        assert_eq!(&got, want, "{run}: span {}", got.span_id);
        let a = attrs(&span.attributes);
        assert!(
            a.contains_key("trigger.run_id"),
            "{run}: {} lacks trigger.run_id",
            got.span_id
        );
        assert_eq!(a.get("trigger.trace_id_derived"), None);
    }
    converted
}

fn span_by_id<'a>(spans: &'a [Span], id: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| hex(&s.span_id) == id)
        .unwrap_or_else(|| panic!("no span {id}"))
}

#[test]
fn finished_run_matches_the_rules() {
    let out = check_against_oracle("finished_run");
    assert_eq!(out.spans.len(), 12, "12 spans; the 7 logs ride on their parents");
    let root = span_by_id(&out.spans, "64d32c5a798e81ae");
    assert!(root.parent_span_id.is_empty());
    assert_eq!(
        root.status.as_ref().unwrap().code,
        StatusCode::Unset as i32,
        "the run succeeded on attempt 2"
    );
    let attempt_failed = &root.events[0];
    assert_eq!(attempt_failed.name, "attempt_failed");
    let props = attrs(&attempt_failed.attributes);
    assert!(props.contains_key("exception.message") && props.contains_key("exception.type"));
    assert_eq!(props.get("attemptNumber"), Some(&any_value::Value::IntValue(1)));
    let attempt1 = span_by_id(&out.spans, "e5e6dc6d8fcb6dc7");
    let status = attempt1.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert!(!status.message.is_empty() && status.message != "error");
    let a = attrs(&attempt1.attributes);
    assert_eq!(a.get("trigger.run_id"), Some(&string("run_cm1finished01")));
    assert_eq!(a.get("trigger.attempt_number"), Some(&any_value::Value::IntValue(1)));
    assert_eq!(a.get("trigger.level"), Some(&string("TRACE")));
    // Logs as span events: message and severity.
    let log_attrs = span_by_id(&out.spans, "e5e6dc6d8fcb6dc7")
        .events
        .iter()
        .map(|e| attrs(&e.attributes))
        .find(|a| a.get("trigger.span_id") == Some(&string("85f5ce36c6939fec")))
        .expect("attempt 1 carries its ERROR log");
    assert_eq!(log_attrs.get("log.severity"), Some(&string("ERROR")));
    assert_eq!(
        log_attrs.get("log.message"),
        Some(&string("Failed to reserve inventory for order ord_7Hq2kXb9"))
    );
    assert_eq!(log_attrs.get("trigger.span_id"), Some(&string("85f5ce36c6939fec")));
    assert!(
        out.stderr
            .contains("converted 12 spans from 19 elements (0 invalid skipped, 0 repaired)"),
        "{}",
        out.stderr
    );
}

#[test]
fn executing_run_exports_partials_as_partial_and_the_finished_duplicate() {
    let out = check_against_oracle("executing_run");
    let duplicate = span_by_id(&out.spans, "b5f1d03b649ce44f");
    assert!(
        duplicate.end_time_unix_nano > duplicate.start_time_unix_nano,
        "the finished copy wins"
    );
    let partials = out.spans.iter().filter(|s| actual(s).partial).count();
    assert_eq!(partials, 3, "root, attempt and upload-report are still running");
}

#[test]
fn selfhosted_run_keeps_nanoseconds_kinds_and_extra_fields() {
    let out = check_against_oracle("selfhosted_run");
    assert!(
        out.spans.iter().any(|s| s.start_time_unix_nano % 1_000_000 != 0),
        "full-ns precision survives"
    );
    assert!(out.spans.iter().all(|s| s.start_time_unix_nano > 1 << 53));
    let kinds: Vec<i32> = out.spans.iter().map(|s| s.kind).collect();
    assert!(kinds.contains(&(SpanKind::Server as i32)) && kinds.contains(&(SpanKind::Consumer as i32)));
    let root = out.spans.iter().find(|s| s.parent_span_id.is_empty()).unwrap();
    let a = attrs(&root.attributes);
    assert_eq!(a.get("trigger.cancelled"), Some(&any_value::Value::BoolValue(true)));
    assert_eq!(a.get("trigger.environment_type"), Some(&string("DEVELOPMENT")));
    assert_eq!(a.get("trigger.task_slug"), Some(&string("sync-inventory")));
    assert!(a.contains_key("trigger.idempotency_key"));
    assert!(root.events.iter().any(|e| e.name == "cancellation"));
}

#[test]
fn child_run_joins_its_parent_run_in_one_trace() {
    let child = check_against_oracle("child_run");
    let parent = convert_fixture("finished_run");
    assert_eq!(hex(&child.spans[0].trace_id), hex(&parent.spans[0].trace_id));
    let root = child
        .spans
        .iter()
        .find(|s| hex(&s.parent_span_id) == "b7d72347fccfd9de")
        .expect("child root");
    assert!(span_by_id(&parent.spans, "b7d72347fccfd9de")
        .name
        .contains("triggerAndWait"));
    // Span flags: the parent context is remote (bit 0x200) with "has is_remote" set (0x100).
    assert_eq!(root.flags & 0x300, 0x300);
    assert!(child
        .spans
        .iter()
        .filter(|s| s.span_id != root.span_id)
        .all(|s| s.flags & 0x200 == 0));
}

#[test]
fn invalid_run_keeps_every_valid_element_and_reports_each_reason_once() {
    let path = fixture_path("invalid_run.events.json");
    let out = convert(&[path.to_str().unwrap()]);
    let reasons: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
    for reason in ["not_an_object", "span_id", "start_time", "duration", "event_time"] {
        assert_eq!(
            reasons
                .iter()
                .filter(|l| l.contains(&format!("(reason={reason})")))
                .count(),
            1,
            "{reason}: {}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("from 28 elements (7 invalid skipped, 4 repaired)"),
        "{}",
        out.stderr
    );
    // Derived trace id (no --trace-id): every span says so.
    for span in &out.spans {
        assert_eq!(
            attrs(&span.attributes).get("trigger.trace_id_derived"),
            Some(&any_value::Value::BoolValue(true))
        );
    }
    // Every element with a valid spanId and startTime is somewhere in the output.
    let raw = fixture("invalid_run.events.json");
    let covered: usize = out
        .spans
        .iter()
        .map(|s| 1 + s.events.iter().filter(|e| e.name == "log").count())
        .sum();
    let valid = raw["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["spanId"].as_str().is_some_and(|id| !id.is_empty()))
        .filter(|e| e["startTime"].as_str().is_some_and(|t| t.parse::<u64>().is_ok()) || e["startTime"].is_u64())
        .count();
    assert_eq!(covered, valid);
    assert_eq!(valid, 21);
}

#[test]
fn stdin_bare_array_and_options() {
    let body = r#"[{"spanId":"00000000000000a1","parentId":null,"runId":"run_x","message":"root","startTime":"1758630769250000000","duration":1000,"level":"TRACE","taskSlug":"t"},
                   {"spanId":"00000000000000b1","parentId":"00000000000000a1","runId":"run_x","message":"hi","startTime":"1758630769250000500","duration":0,"level":"INFO"}]"#;
    for (logs, spans) in [("span_events", 1), ("spans", 2), ("drop", 1)] {
        let output = bridge()
            .args([
                "convert",
                "-",
                "--logs",
                logs,
                "--service-name",
                "shop",
                "--run-id",
                "run_y",
            ])
            .write_stdin(body)
            .output()
            .unwrap();
        assert!(output.status.success());
        let request: ExportTraceServiceRequest = serde_json::from_slice(&output.stdout).unwrap();
        let resource = request.resource_spans[0].resource.clone().unwrap();
        assert_eq!(attrs(&resource.attributes).get("service.name"), Some(&string("shop")));
        let got: Vec<&Span> = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        assert_eq!(got.len(), spans, "--logs {logs}");
        // --run-id decides the derived trace id; runId on the element stays the span's attribute.
        let derived = trigger_otel_bridge::convert::ids::derive_trace_id("run_y");
        assert_eq!(hex(&got[0].trace_id), format!("{derived}"));
    }
}

#[test]
fn a_number_beyond_f64_invalidates_its_field_not_the_body() {
    let body = r#"{"events":[{"spanId":"00000000000000a1","startTime":"1758630769250000000","duration":1e400,"message":"bad"},
                             {"spanId":"00000000000000a2","startTime":"1758630769250000000","duration":1000,"message":"good"}]}"#;
    let output = bridge()
        .args(["convert", "-", "--run-id", "run_x"])
        .write_stdin(body)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    let request: ExportTraceServiceRequest = serde_json::from_slice(&output.stdout).unwrap();
    let spans: Vec<Span> = request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect();
    assert_eq!(spans.len(), 2, "{stderr}");
    let good = span_by_id(&spans, "00000000000000a2");
    assert_eq!(good.end_time_unix_nano - good.start_time_unix_nano, 1000);
    let bad = span_by_id(&spans, "00000000000000a1");
    assert_eq!(bad.end_time_unix_nano, bad.start_time_unix_nano);
    assert_eq!(
        attrs(&bad.attributes).get("trigger.duration_invalid"),
        Some(&any_value::Value::BoolValue(true))
    );
    assert!(
        stderr.contains("1 element repaired (reason=duration); first: element #0 (spanId \"00000000000000a1\"): duration 1e400 (a number beyond the range of a 64-bit float)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("converted 2 spans from 2 elements (0 invalid skipped, 1 repaired)"),
        "{stderr}"
    );
}

#[test]
fn malformed_json_is_a_clear_error_with_line_and_column_and_no_stdout() {
    let output = bridge()
        .args(["convert", "-"])
        .write_stdin("{\"events\": [\n  {\"spanId\": \"a\",,}\n]}")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    // The position once (serde_json's own " at line 2 column 18" is not repeated).
    assert_eq!(
        stderr,
        "error: standard input is not a Trigger.dev events body: key must be a string (line 2, column 18)\n"
    );
}

fn convert_stdin(body: &str, args: &[&str]) -> (Vec<Span>, String) {
    let output = bridge()
        .args(["convert", "-", "--run-id", "run_x"])
        .args(args)
        .write_stdin(body)
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    let request: ExportTraceServiceRequest = serde_json::from_slice(&output.stdout).unwrap();
    let spans = request
        .resource_spans
        .into_iter()
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect();
    (spans, stderr)
}

/// Elements are counted, not the fields repaired in them: one element with two bad flags and a
/// bad duration is one element repaired, in each reason's line and in the summary.
#[test]
fn an_element_with_several_bad_fields_counts_once() {
    let body = r#"[{"spanId":"00000000000000a1","startTime":"1758630769250000000","duration":-5,"message":"bad","isError":"yes","isPartial":3},
                   {"spanId":"00000000000000a2","startTime":"1758630769250000000","duration":10,"message":"also","isCancelled":"no"}]"#;
    let (spans, stderr) = convert_stdin(body, &[]);
    assert_eq!(spans.len(), 2, "{stderr}");
    assert!(
        stderr.contains(
            "warning: 2 elements repaired (reason=flag); first: element #0: isError is \"yes\", taken as false\n"
        ),
        "elements #0 and #1, not three flags: {stderr}"
    );
    assert!(
        stderr.contains("warning: 1 element repaired (reason=duration); first: element #0"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("converted 2 spans from 2 elements (0 invalid skipped, 2 repaired)\n"),
        "{stderr}"
    );
}

/// `--logs drop` is the user's choice: said as information, not a warning about invalid
/// elements, and not counted among the skipped.
#[test]
fn logs_dropped_by_choice_are_information_not_a_warning() {
    let body = r#"[{"spanId":"00000000000000a1","startTime":"1758630769250000000","duration":1000,"message":"root","level":"TRACE"},
                   {"spanId":"00000000000000b1","parentId":"00000000000000a1","startTime":"1758630769250000500","duration":0,"message":"hi","level":"INFO"},
                   {"spanId":"00000000000000b2","parentId":"00000000000000a1","startTime":"1758630769250000600","duration":0,"message":"ho","level":"WARN"}]"#;
    let (spans, stderr) = convert_stdin(body, &["--logs", "drop"]);
    assert_eq!(spans.len(), 1, "{stderr}");
    assert_eq!(
        stderr,
        "2 log elements dropped (--logs drop)\nconverted 1 span from 3 elements (0 invalid skipped, 0 repaired)\n"
    );
    let (_, stderr) = convert_stdin(body, &[]);
    assert!(!stderr.contains("dropped"), "{stderr}");
}

#[test]
fn missing_file_and_bad_options_fail_with_the_right_exit_codes() {
    let missing = bridge().args(["convert", "/nonexistent/events.json"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/events.json"));
    let path = fixture_path("finished_run.events.json");
    let bad_trace = bridge()
        .args(["convert", path.to_str().unwrap(), "--trace-id", "xyz"])
        .output()
        .unwrap();
    assert_eq!(bad_trace.status.code(), Some(2));
    assert!(bad_trace.stdout.is_empty());
    let bad_logs = bridge()
        .args(["convert", path.to_str().unwrap(), "--logs", "loud"])
        .output()
        .unwrap();
    assert_eq!(bad_logs.status.code(), Some(2));
}

/// `--logs otlp_logs`: a second line holds the logs request; every log element of the fixture is
/// a record with its severity, body, time, the run's trace id and its parent span's id, and no
/// log is in the trace request as a span or an event.
#[test]
fn otlp_logs_prints_a_logs_request_after_the_trace_request() {
    let path = fixture_path("finished_run.events.json");
    let trace_id = "a4c123b1612dd272d1371c17149d4395";
    let output = bridge()
        .args([
            "convert",
            path.to_str().unwrap(),
            "--logs",
            "otlp_logs",
            "--trace-id",
            trace_id,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<&[u8]> = output.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "a trace request line and a logs request line");
    let traces: ExportTraceServiceRequest = serde_json::from_slice(lines[0]).unwrap();
    let logs: opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest =
        serde_json::from_slice(lines[1]).unwrap();

    let events = fixture("finished_run.events.json")["events"]
        .as_array()
        .unwrap()
        .clone();
    let expected: BTreeMap<String, &Value> = events
        .iter()
        .filter(|e| e["level"] != "TRACE")
        .map(|e| (e["spanId"].as_str().unwrap().to_owned(), e))
        .collect();
    assert_eq!(expected.len(), 7, "the fixture's log elements");
    let spans: Vec<Span> = traces
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect();
    assert_eq!(spans.len(), events.len() - expected.len());
    assert!(
        spans.iter().flat_map(|s| &s.events).all(|e| e.name != "log"),
        "no log became a span event"
    );

    let mut seen = BTreeMap::new();
    for resource_logs in &logs.resource_logs {
        let service = &resource_logs.resource.as_ref().unwrap().attributes;
        assert!(service.iter().any(|kv| kv.key == "service.name"));
        for scope_logs in &resource_logs.scope_logs {
            assert_eq!(scope_logs.scope.as_ref().unwrap().name, "trigger-otel-bridge");
            for record in &scope_logs.log_records {
                let own_id = record
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "trigger.span_id")
                    .and_then(string_value)
                    .expect("the log's own id is an attribute");
                seen.insert(own_id, record.clone());
            }
        }
    }
    assert_eq!(seen.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (id, record) in &seen {
        let event = expected[id];
        assert_eq!(hex(&record.trace_id), trace_id, "{id}");
        assert_eq!(hex(&record.span_id), event["parentId"].as_str().unwrap(), "{id}");
        let body = record.body.as_ref().and_then(|b| b.value.clone());
        assert_eq!(
            body,
            Some(any_value::Value::StringValue(
                event["message"].as_str().unwrap().to_owned()
            )),
            "{id}"
        );
        let level = event["level"].as_str().unwrap();
        let number = match level {
            "DEBUG" => 5,
            "LOG" | "INFO" => 9,
            "WARN" => 13,
            "ERROR" => 17,
            other => panic!("unexpected level {other}"),
        };
        assert_eq!(
            (record.severity_number, record.severity_text.as_str()),
            (number, level),
            "{id}"
        );
        let start: u64 = event["startTime"].as_str().unwrap().parse().unwrap();
        assert_eq!(record.time_unix_nano, start, "{id}");
        assert_eq!(record.observed_time_unix_nano, start, "{id}");
        assert_eq!(record.flags, 1, "sampled");
    }
    assert!(stderr.contains("and 7 log records"), "{stderr}");
}

fn string_value(kv: &KeyValue) -> Option<String> {
    match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(text) => Some(text.clone()),
        _ => None,
    }
}
