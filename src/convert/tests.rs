//! Rule-by-rule tests of the converter (docs/mapping.md), with good and bad input.
//!
//! The converter's output is OTLP messages; the assertions read them back as the OTel API types
//! the rules are written in (`SpanData`, `Status`, `SpanKind`, attribute `Value`s), through
//! [`span_data`], a reading independent of how the messages are built.

use super::*;
use crate::trigger::model::EventsBody;
use opentelemetry::trace::{Event, SpanContext, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{Array, InstrumentationScope, Value as AttrValue};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Otlp;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const RUN: &str = "run_test0001";
const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const T0: u64 = 1_758_630_769_250_000_000;

fn span(id: &str, parent: Option<&str>, start: u64, duration: u64) -> Value {
    json!({
        "spanId": id, "parentId": parent, "runId": RUN, "message": format!("span {id}"),
        "startTime": start.to_string(), "duration": duration, "isError": false,
        "isCancelled": false, "isPartial": false, "level": "TRACE", "kind": "UNSPECIFIED",
        "attemptNumber": 1, "events": []
    })
}

fn log(id: &str, parent: Option<&str>, start: u64, level: &str, message: &str) -> Value {
    json!({
        "spanId": id, "parentId": parent, "runId": RUN, "message": message,
        "startTime": start.to_string(), "duration": 0, "isError": false,
        "isCancelled": false, "isPartial": false, "level": level, "kind": "UNSPECIFIED",
        "attemptNumber": 1, "events": []
    })
}

fn with(mut value: Value, key: &str, field: Value) -> Value {
    value[key] = field;
    value
}

fn parse(events: Vec<Value>) -> Vec<RawEvent<'static>> {
    EventsBody::from_slice(&serde_json::to_vec(&json!({ "events": events })).unwrap())
        .unwrap()
        .into_owned()
        .events
}

fn run_info(state: RunState) -> RunInfo<'static> {
    RunInfo::new(RUN, Some(TRACE), state)
}

fn ended() -> RunInfo<'static> {
    run_info(RunState::Ended { finished_at: None })
}

/// One output span, read back: its message as `data`, what it covers, its task.
struct Read {
    data: SpanData,
    covers: Vec<SpanId>,
    span: BridgeSpan,
}

/// A conversion with its spans read back.
struct Out {
    spans: Vec<Read>,
    logs: Vec<BridgeLog>,
    invalid: InvalidReport,
    held_back: usize,
    already_exported: usize,
}

fn read(conversion: Conversion) -> Out {
    Out {
        spans: conversion
            .spans
            .into_iter()
            .map(|span| Read {
                data: span_data(&span.span),
                covers: span.covers.clone(),
                span,
            })
            .collect(),
        logs: conversion.logs,
        invalid: conversion.invalid,
        held_back: conversion.held_back,
        already_exported: conversion.already_exported,
    }
}

/// An OTLP span as the SDK's `SpanData` (the inverse of `opentelemetry-proto`'s transform).
fn span_data(span: &Span) -> SpanData {
    let id = |bytes: &[u8]| SpanId::from_bytes(bytes.try_into().expect("8 bytes"));
    let time = |nanos: u64| UNIX_EPOCH + Duration::from_nanos(nanos);
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .iter()
        .map(|event| {
            Event::new(
                event.name.clone(),
                time(event.time_unix_nano),
                api_attributes(&event.attributes),
                0,
            )
        })
        .collect();
    let status = span.status.clone().unwrap_or_default();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(span.trace_id.as_slice().try_into().expect("16 bytes")),
            id(&span.span_id),
            TraceFlags::new((span.flags & 0xff) as u8),
            false,
            TraceState::NONE,
        ),
        parent_span_id: match span.parent_span_id.is_empty() {
            true => SpanId::INVALID,
            false => id(&span.parent_span_id),
        },
        parent_span_is_remote: span.flags & proto::IS_REMOTE != 0,
        span_kind: match span.kind {
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            1 => SpanKind::Internal,
            other => panic!("span kind {other} (unspecified or unknown)"),
        },
        name: Cow::Owned(span.name.clone()),
        start_time: time(span.start_time_unix_nano),
        end_time: time(span.end_time_unix_nano),
        attributes: api_attributes(&span.attributes),
        dropped_attributes_count: span.dropped_attributes_count,
        events,
        links: SpanLinks::default(),
        status: match StatusCode::try_from(status.code) {
            Ok(StatusCode::Error) => Status::Error {
                description: status.message.into(),
            },
            Ok(StatusCode::Ok) => Status::Ok,
            _ => Status::Unset,
        },
        instrumentation_scope: InstrumentationScope::builder("").build(),
    }
}

fn api_attributes(attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Vec<opentelemetry::KeyValue> {
    attributes
        .iter()
        .map(|kv| opentelemetry::KeyValue::new(kv.key.clone(), api_value(proto::value(kv).expect("a value"))))
        .collect()
}

fn api_value(value: &Otlp) -> AttrValue {
    let scalar =
        |v: &opentelemetry_proto::tonic::common::v1::AnyValue| v.value.as_ref().map(api_value).expect("a value");
    match value {
        Otlp::StringValue(text) => AttrValue::from(text.clone()),
        Otlp::BoolValue(flag) => AttrValue::Bool(*flag),
        Otlp::IntValue(int) => AttrValue::I64(*int),
        Otlp::DoubleValue(float) => AttrValue::F64(*float),
        Otlp::ArrayValue(array) => {
            let items: Vec<AttrValue> = array.values.iter().map(scalar).collect();
            AttrValue::Array(match items.first() {
                Some(AttrValue::Bool(_)) => {
                    Array::Bool(items.iter().map(|v| matches!(v, AttrValue::Bool(true))).collect())
                }
                Some(AttrValue::I64(_)) => Array::I64(
                    items
                        .iter()
                        .map(|v| match v {
                            AttrValue::I64(i) => *i,
                            _ => panic!("mixed"),
                        })
                        .collect(),
                ),
                Some(AttrValue::F64(_)) => Array::F64(
                    items
                        .iter()
                        .map(|v| match v {
                            AttrValue::F64(f) => *f,
                            _ => panic!("mixed"),
                        })
                        .collect(),
                ),
                _ => Array::String(items.iter().map(|v| v.as_str().into_owned().into()).collect()),
            })
        }
        other => panic!("an attribute value the converter never makes: {other:?}"),
    }
}

fn convert(events: Vec<Value>, run: &RunInfo, logs: LogsMode) -> Out {
    read(convert_events(parse(events), run, logs, &NothingExported))
}

fn convert_default(events: Vec<Value>) -> Out {
    convert(events, &ended(), LogsMode::SpanEvents)
}

fn ns(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn attr<'a>(span: &'a Read, key: &str) -> Option<&'a AttrValue> {
    span.data
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn find<'a>(conversion: &'a Out, id: &str) -> &'a Read {
    let id = ids::span_identity(id).unwrap().id();
    conversion
        .spans
        .iter()
        .find(|s| s.data.span_context.span_id() == id)
        .unwrap_or_else(|| panic!("span {id} not in output"))
}

// ---- Rule 1: trace id -------------------------------------------------------------------

#[test]
fn api_trace_id_is_used_lowercased_and_not_marked() {
    let run = RunInfo::new(RUN, Some("0AF7651916CD43DD8448EB211C80319C"), RunState::Live);
    let out = convert(vec![span("0000000000000001", None, T0, 5)], &run, LogsMode::SpanEvents);
    assert_eq!(format!("{}", out.spans[0].data.span_context.trace_id()), TRACE);
    assert_eq!(attr(&out.spans[0], "trigger.trace_id_derived"), None);
}

#[test]
fn bad_or_missing_api_trace_id_is_derived_and_marked() {
    for api in [None, Some("00000000000000000000000000000000"), Some("xyz"), Some("")] {
        let run = RunInfo::new(RUN, api, RunState::Live);
        assert_eq!(run.trace_id, ids::derive_trace_id(RUN));
        let out = convert(vec![span("0000000000000001", None, T0, 5)], &run, LogsMode::SpanEvents);
        assert_eq!(
            attr(&out.spans[0], "trigger.trace_id_derived"),
            Some(&AttrValue::Bool(true))
        );
    }
}

// ---- Rules 2–4: span ids, parents, duplicates -------------------------------------------

#[test]
fn span_ids_are_lowercased_and_bad_ones_hashed_with_the_original_kept() {
    let out = convert_default(vec![
        span("ABCDEF0123456789", None, T0, 10),
        span("zz-not-hex", None, T0 + 1, 10),
        span("abc", None, T0 + 2, 10),
        span("0000000000000000", None, T0 + 3, 10),
    ]);
    assert_eq!(out.spans.len(), 4);
    assert!(
        out.invalid.is_empty(),
        "hashed ids are repairs, not losses: {:?}",
        out.invalid
    );
    let upper = find(&out, "abcdef0123456789");
    assert_eq!(attr(upper, "trigger.span_id"), None);
    for bad in ["zz-not-hex", "abc", "0000000000000000"] {
        let hashed = find(&out, bad);
        assert_eq!(hashed.data.span_context.span_id(), ids::derive_span_id(bad));
        assert_eq!(attr(hashed, "trigger.span_id"), Some(&AttrValue::from(bad)));
    }
}

#[test]
fn missing_empty_or_non_string_span_id_skips_only_that_element() {
    let mut no_id = span("x", None, T0, 1);
    no_id.as_object_mut().unwrap().remove("spanId");
    let out = convert_default(vec![
        no_id,
        with(span("x", None, T0, 1), "spanId", json!("")),
        with(span("x", None, T0, 1), "spanId", json!(42)),
        span("0000000000000001", None, T0, 1),
    ]);
    assert_eq!(out.spans.len(), 1);
    assert_eq!(out.invalid.count(InvalidReason::SpanId), 3);
}

#[test]
fn parents_in_and_outside_the_response() {
    let out = convert_default(vec![
        span("00000000000000a1", None, T0, 100),
        span("00000000000000a2", Some("00000000000000a1"), T0 + 1, 10),
        // The parent run's span, absent here: kept as is, flagged remote.
        span("00000000000000a3", Some("ffffffffffff0001"), T0 + 2, 10),
        span("00000000000000a4", Some(""), T0 + 3, 10),
        span("00000000000000a5", Some("not-a-hex-id"), T0 + 4, 10),
    ]);
    let root = find(&out, "00000000000000a1");
    assert_eq!(root.data.parent_span_id, SpanId::INVALID);
    let child = find(&out, "00000000000000a2");
    assert_eq!(child.data.parent_span_id, SpanId::from_hex("00000000000000a1").unwrap());
    assert!(!child.data.parent_span_is_remote);
    let cross_run = find(&out, "00000000000000a3");
    assert_eq!(
        cross_run.data.parent_span_id,
        SpanId::from_hex("ffffffffffff0001").unwrap()
    );
    assert!(cross_run.data.parent_span_is_remote);
    assert_eq!(find(&out, "00000000000000a4").data.parent_span_id, SpanId::INVALID);
    let hashed_parent = find(&out, "00000000000000a5");
    assert_eq!(hashed_parent.data.parent_span_id, ids::derive_span_id("not-a-hex-id"));
    assert_eq!(
        attr(hashed_parent, "trigger.parent_id"),
        Some(&AttrValue::from("not-a-hex-id"))
    );
}

#[test]
fn duplicate_partial_and_finished_keeps_the_finished_copy_in_either_order() {
    let partial = with(span("00000000000000d1", None, T0, 0), "isPartial", json!(true));
    let finished = span("00000000000000d1", None, T0, 500);
    for events in [vec![partial.clone(), finished.clone()], vec![finished, partial]] {
        let out = convert(events, &run_info(RunState::Live), LogsMode::SpanEvents);
        assert_eq!(out.spans.len(), 1);
        assert_eq!(ns(out.spans[0].data.end_time), T0 + 500);
        assert_eq!(out.held_back, 0);
    }
}

#[test]
fn duplicate_finished_copies_keep_the_longer() {
    let out = convert_default(vec![
        span("00000000000000d2", None, T0, 300),
        span("00000000000000d2", None, T0, 700),
        span("00000000000000d2", None, T0, 100),
    ]);
    assert_eq!(out.spans.len(), 1);
    assert_eq!(ns(out.spans[0].data.end_time), T0 + 700);
}

#[test]
fn already_exported_spans_are_not_sent_again() {
    let exported: HashSet<SpanId> = [SpanId::from_hex("00000000000000e1").unwrap()].into();
    let out = read(convert_events(
        parse(vec![
            span("00000000000000e1", None, T0, 5),
            span("00000000000000e2", None, T0, 5),
        ]),
        &ended(),
        LogsMode::SpanEvents,
        &exported,
    ));
    assert_eq!(out.spans.len(), 1);
    assert_eq!(out.already_exported, 1);
    assert_eq!(out.spans[0].covers, vec![SpanId::from_hex("00000000000000e2").unwrap()]);
}

// ---- Rules 5–8: name, times, kind -------------------------------------------------------

#[test]
fn name_falls_back_to_task_slug_then_run_task_then_fixed() {
    let mut run = ended();
    let out = convert(
        vec![
            with(span("0000000000000001", None, T0, 1), "message", json!("")),
            with(
                with(span("0000000000000002", None, T0, 1), "message", json!("")),
                "taskSlug",
                json!("send-email"),
            ),
        ],
        &run,
        LogsMode::SpanEvents,
    );
    assert_eq!(find(&out, "0000000000000001").data.name, "trigger.span");
    assert_eq!(find(&out, "0000000000000002").data.name, "send-email");
    run.task_identifier = Some("process-order");
    let out = convert(
        vec![with(span("0000000000000001", None, T0, 1), "message", Value::Null)],
        &run,
        LogsMode::SpanEvents,
    );
    assert_eq!(out.spans[0].data.name, "process-order");
    assert_eq!(
        attr(&out.spans[0], "trigger.task_slug"),
        Some(&AttrValue::from("process-order"))
    );
}

#[test]
fn start_above_2_pow_53_and_full_ns_times_are_exact() {
    let full_ns = 1_758_630_769_250_123_457u64;
    let out = convert_default(vec![
        span("0000000000000001", None, full_ns, 1_234_567),
        with(
            span("0000000000000002", None, 0, 1),
            "startTime",
            json!(9_007_199_254_740_993u64),
        ),
    ]);
    let a = find(&out, "0000000000000001");
    assert_eq!(ns(a.data.start_time), full_ns);
    assert_eq!(ns(a.data.end_time), full_ns + 1_234_567);
    assert_eq!(
        ns(find(&out, "0000000000000002").data.start_time),
        9_007_199_254_740_993
    );
}

#[test]
fn bad_start_times_skip_the_element_and_keep_its_neighbours() {
    let out = convert_default(vec![
        with(span("0000000000000001", None, 0, 1), "startTime", json!("est eu velit")),
        with(span("0000000000000002", None, 0, 1), "startTime", json!("-5")),
        with(
            span("0000000000000003", None, 0, 1),
            "startTime",
            json!("99999999999999999999"),
        ),
        with(span("0000000000000004", None, 0, 1), "startTime", Value::Null),
        span("0000000000000005", None, T0, 1),
    ]);
    assert_eq!(out.spans.len(), 1);
    assert_eq!(out.invalid.count(InvalidReason::StartTime), 4);
}

#[test]
fn durations_float_negative_nan_string_and_overflow() {
    let out = convert_default(vec![
        with(span("0000000000000001", None, T0, 0), "duration", json!(1500000.6)),
        with(span("0000000000000002", None, T0, 0), "duration", json!(-5)),
        with(span("0000000000000003", None, T0, 0), "duration", json!("NaN")),
        with(span("0000000000000004", None, T0, 0), "duration", json!("abc")),
        with(span("0000000000000005", None, u64::MAX - 10, 0), "duration", json!(100)),
        with(span("0000000000000006", None, T0, 0), "duration", Value::Null),
    ]);
    assert_eq!(out.spans.len(), 6, "invalid durations are repaired, never dropped");
    assert_eq!(ns(find(&out, "0000000000000001").data.end_time), T0 + 1_500_001);
    for repaired in [
        "0000000000000002",
        "0000000000000003",
        "0000000000000004",
        "0000000000000006",
    ] {
        let s = find(&out, repaired);
        assert_eq!(s.data.end_time, s.data.start_time);
        assert_eq!(attr(s, "trigger.duration_invalid"), Some(&AttrValue::Bool(true)));
    }
    assert_eq!(ns(find(&out, "0000000000000005").data.end_time), u64::MAX);
    assert_eq!(out.invalid.count(InvalidReason::Duration), 4);
}

#[test]
fn float_durations_with_16_and_more_digits_are_exact() {
    // Written as the API would (text, not through `json!`): the float literal must be parsed with
    // correct rounding. These floats are exact integers; a parser that is off by one ulp
    // (serde_json without `float_roundtrip`) gives an end 1 ns short.
    let cases = [
        ("7211576275691951.0", 7_211_576_275_691_951u64),
        ("7.211576275691951e15", 7_211_576_275_691_951),
        ("9007199254740991.0", 9_007_199_254_740_991),
        ("1234567890123457.0", 1_234_567_890_123_457),
    ];
    for (literal, duration) in cases {
        let body = format!(r#"[{{"spanId":"0000000000000001","startTime":"0","duration":{literal}}}]"#);
        let raw = EventsBody::from_slice(body.as_bytes()).unwrap();
        let out = read(convert_events(
            raw.events,
            &ended(),
            LogsMode::SpanEvents,
            &NothingExported,
        ));
        assert!(out.invalid.is_empty(), "{literal}: {:?}", out.invalid);
        assert_eq!(ns(out.spans[0].data.end_time), duration, "duration {literal}");
    }
}

#[test]
fn a_value_nested_too_deeply_invalidates_only_its_field() {
    // serde_json stops at 128 levels and used to fail the whole body: every valid span of the
    // run was lost on every poll.
    let deep = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
    let body = format!(
        r#"{{"events":[
            {{"spanId":"0000000000000001","startTime":"{T0}","duration":{},"message":"deep duration"}},
            {{"spanId":"0000000000000002","startTime":"{T0}","duration":7,"message":"good","extra":{}}},
            {{"spanId":"0000000000000003","startTime":"{T0}","duration":7,"message":"also good"}}
        ]}}"#,
        deep(200),
        deep(300)
    );
    let raw = EventsBody::from_slice(body.as_bytes()).expect("the body parses");
    let out = read(convert_events(
        raw.events,
        &ended(),
        LogsMode::SpanEvents,
        &NothingExported,
    ));
    assert_eq!(out.spans.len(), 3, "every element keeps its span");
    let deep_duration = find(&out, "0000000000000001");
    assert_eq!(
        attr(deep_duration, "trigger.duration_invalid"),
        Some(&AttrValue::Bool(true))
    );
    assert_eq!(ns(find(&out, "0000000000000002").data.end_time), T0 + 7);
    assert_eq!(ns(find(&out, "0000000000000003").data.end_time), T0 + 7);
    let (_, tally) = out
        .invalid
        .iter()
        .find(|(reason, _)| *reason == InvalidReason::Duration)
        .expect("the deep duration is reported");
    assert!(
        tally
            .first
            .contains("a value nested more than 100 levels deep in the body"),
        "{}",
        tally.first
    );
}

#[test]
fn a_number_beyond_f64_invalidates_only_its_field() {
    // serde_json cannot hold these literals; they used to fail the whole body.
    let body = format!(
        r#"{{"events":[
            {{"spanId":"0000000000000001","startTime":"{T0}","duration":1e400,"message":"huge duration"}},
            {{"spanId":"0000000000000002","startTime":"{T0}","duration":7,"message":"good"}},
            {{"spanId":"0000000000000003","startTime":1e400,"duration":7}},
            {{"spanId":-1e400,"startTime":"{T0}","duration":7}},
            {{"spanId":"0000000000000005","startTime":"{T0}","duration":7,"isError":1e400,
              "events":[{{"name":"e","time":"2025-09-23T12:32:49.250Z","properties":{{"n":1e400,"m":2}}}}]}}
        ]}}"#
    );
    let raw = EventsBody::from_slice(body.as_bytes()).expect("the body parses");
    let out = read(convert_events(
        raw.events,
        &ended(),
        LogsMode::SpanEvents,
        &NothingExported,
    ));
    assert_eq!(
        out.spans.len(),
        3,
        "the bad start time and span id skip only their elements"
    );

    let good = find(&out, "0000000000000002");
    assert_eq!(ns(good.data.end_time), T0 + 7);
    assert_eq!(attr(good, "trigger.duration_invalid"), None);

    let huge = find(&out, "0000000000000001");
    assert_eq!(huge.data.end_time, huge.data.start_time);
    assert_eq!(attr(huge, "trigger.duration_invalid"), Some(&AttrValue::Bool(true)));

    let flagged = find(&out, "0000000000000005");
    assert_eq!(flagged.data.status, Status::Unset, "isError taken as false");
    let event = &flagged.data.events.events[0];
    let property = |key: &str| {
        event
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    };
    assert_eq!(property("m"), Some(&AttrValue::I64(2)), "its neighbours are kept");

    let first = |reason| {
        out.invalid
            .iter()
            .find(|(r, _)| *r == reason)
            .map(|(_, tally)| (tally.count, tally.first.clone()))
            .unwrap_or_else(|| panic!("{reason} not reported: {:?}", out.invalid))
    };
    let beyond = "1e400 (a number beyond the range of a 64-bit float)";
    assert_eq!(
        first(InvalidReason::Duration),
        (
            1,
            format!(r#"element #0 (spanId "0000000000000001"): duration {beyond}"#)
        )
    );
    assert_eq!(
        first(InvalidReason::StartTime),
        (
            1,
            format!(r#"element #2 (spanId "0000000000000003"): startTime {beyond}"#)
        )
    );
    assert_eq!(
        first(InvalidReason::SpanId),
        (1, format!("element #3: spanId -{beyond}"))
    );
    assert_eq!(
        first(InvalidReason::Flag),
        (1, format!("element #4: isError is {beyond}, taken as false"))
    );
    assert_eq!(out.invalid.total(), 4);
}

#[test]
fn kinds_map_and_unknown_kinds_are_internal() {
    let cases = [
        ("SERVER", SpanKind::Server),
        ("CLIENT", SpanKind::Client),
        ("PRODUCER", SpanKind::Producer),
        ("CONSUMER", SpanKind::Consumer),
        ("INTERNAL", SpanKind::Internal),
        ("UNSPECIFIED", SpanKind::Internal),
        ("UNRECOGNIZED", SpanKind::Internal),
        ("BANANA", SpanKind::Internal),
    ];
    for (kind, expected) in cases {
        let out = convert_default(vec![with(span("0000000000000001", None, T0, 1), "kind", json!(kind))]);
        assert_eq!(out.spans[0].data.span_kind, expected, "{kind}");
    }
    let mut no_kind = span("0000000000000001", None, T0, 1);
    no_kind.as_object_mut().unwrap().remove("kind");
    assert_eq!(
        convert_default(vec![no_kind]).spans[0].data.span_kind,
        SpanKind::Internal
    );
}

// ---- Rule 9: status -----------------------------------------------------------------------

#[test]
fn errors_take_the_exception_message_and_success_stays_unset() {
    let failed = with(
        with(span("0000000000000001", None, T0, 10), "isError", json!(true)),
        "events",
        json!([
            {"name": "trigger.dev/start", "time": "2025-09-23T12:32:49.250Z", "properties": {}},
            {"name": "exception", "time": "2025-09-23T12:32:49.260Z", "properties": {"exception": {"type": "Error", "message": "Card declined"}}}
        ]),
    );
    let bare_error = with(span("0000000000000002", None, T0, 10), "isError", json!(true));
    let out = convert_default(vec![failed, bare_error, span("0000000000000003", None, T0, 10)]);
    assert_eq!(
        find(&out, "0000000000000001").data.status,
        Status::error("Card declined")
    );
    assert_eq!(find(&out, "0000000000000002").data.status, Status::error("error"));
    assert_eq!(find(&out, "0000000000000003").data.status, Status::Unset);
}

#[test]
fn attempt_failed_message_describes_the_error() {
    let root = with(
        with(span("0000000000000001", None, T0, 10), "isError", json!(true)),
        "events",
        json!([{"name": "attempt_failed", "time": "2025-09-23T12:32:49.250Z",
                "properties": {"exception": {"message": "Timeout", "type": "TimeoutError"}, "attemptNumber": 1, "runId": RUN}}]),
    );
    let out = convert_default(vec![root]);
    let s = &out.spans[0];
    assert_eq!(s.data.status, Status::error("Timeout"));
    let event = &s.data.events.events[0];
    assert_eq!(event.name, "attempt_failed");
    let keys: Vec<&str> = event.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["exception.message", "exception.type", "attemptNumber", "runId"]
    );
}

#[test]
fn cancelled_is_unset_with_a_marker_unless_also_error() {
    let out = convert_default(vec![
        with(span("0000000000000001", None, T0, 10), "isCancelled", json!(true)),
        with(
            with(span("0000000000000002", None, T0, 10), "isCancelled", json!(true)),
            "isError",
            json!(true),
        ),
    ]);
    let cancelled = find(&out, "0000000000000001");
    assert_eq!(cancelled.data.status, Status::Unset);
    assert_eq!(attr(cancelled, "trigger.cancelled"), Some(&AttrValue::Bool(true)));
    let both = find(&out, "0000000000000002");
    assert_eq!(both.data.status, Status::error("error"));
    assert_eq!(attr(both, "trigger.cancelled"), None);
}

#[test]
fn wrongly_typed_flags_are_false_and_counted() {
    let out = convert_default(vec![with(
        span("0000000000000001", None, T0, 10),
        "isError",
        json!("yes"),
    )]);
    assert_eq!(out.spans[0].data.status, Status::Unset);
    assert_eq!(out.invalid.count(InvalidReason::Flag), 1);
}

// ---- Rule 10: partial spans -------------------------------------------------------------------

#[test]
fn partial_spans_wait_while_the_run_is_live() {
    let out = convert(
        vec![
            with(span("0000000000000001", None, T0, 0), "isPartial", json!(true)),
            span("0000000000000002", Some("0000000000000001"), T0 + 5, 10),
        ],
        &run_info(RunState::Live),
        LogsMode::SpanEvents,
    );
    assert_eq!(out.spans.len(), 1);
    assert_eq!(out.held_back, 1);
}

#[test]
fn partial_spans_of_an_ended_run_end_at_finished_at_or_the_latest_end() {
    let events = vec![
        with(span("0000000000000001", None, T0, 0), "isPartial", json!(true)),
        span("0000000000000002", Some("0000000000000001"), T0 + 5, 1000),
        // Starts after everything else ended: its end must not precede its start.
        with(span("0000000000000003", None, T0 + 5000, 0), "isPartial", json!(true)),
    ];
    let out = convert(
        events.clone(),
        &run_info(RunState::Ended {
            finished_at: Some(T0 + 2000),
        }),
        LogsMode::SpanEvents,
    );
    let root = find(&out, "0000000000000001");
    assert_eq!(ns(root.data.end_time), T0 + 2000);
    assert_eq!(attr(root, "trigger.partial"), Some(&AttrValue::Bool(true)));
    assert_eq!(attr(find(&out, "0000000000000002"), "trigger.partial"), None);
    let late = find(&out, "0000000000000003");
    assert_eq!(late.data.end_time, late.data.start_time);

    // Without finishedAt: the latest end in the run, where a partial span's start counts too
    // (the run was alive then), so the root reaches the late partial span.
    let out = convert(events, &ended(), LogsMode::SpanEvents);
    assert_eq!(ns(find(&out, "0000000000000001").data.end_time), T0 + 5000);
    let out = convert(events_without_late_partial(), &ended(), LogsMode::SpanEvents);
    assert_eq!(ns(find(&out, "0000000000000001").data.end_time), T0 + 1005);
}

fn events_without_late_partial() -> Vec<Value> {
    vec![
        with(span("0000000000000001", None, T0, 0), "isPartial", json!(true)),
        span("0000000000000002", Some("0000000000000001"), T0 + 5, 1000),
    ]
}

#[test]
fn partial_error_span_keeps_error_status_when_exported() {
    let failed = with(
        with(span("0000000000000001", None, T0, 0), "isPartial", json!(true)),
        "isError",
        json!(true),
    );
    let out = convert_default(vec![failed]);
    assert_eq!(out.spans[0].data.status, Status::error("error"));
}

// ---- Attributes -----------------------------------------------------------------------------

#[test]
fn attribute_table_and_unknown_top_level_fields() {
    let element = json!({
        "spanId": "0000000000000001", "parentId": null, "runId": "run_other", "message": "m",
        "startTime": T0.to_string(), "duration": 5, "level": "TRACE", "kind": "SERVER",
        "attemptNumber": 2, "taskSlug": "send-email",
        "style": {"icon": "task", "variant": "primary", "accessory": {"text": "x", "style": "codepath"}},
        "environmentType": "DEVELOPMENT", "idempotencyKey": "k-1", "someCount": 3,
        "nested": {"ignored": true}, "nothing": null
    });
    let out = convert_default(vec![element]);
    let s = &out.spans[0];
    let expected = [
        ("trigger.run_id", AttrValue::from("run_other")),
        ("trigger.task_slug", AttrValue::from("send-email")),
        ("trigger.attempt_number", AttrValue::I64(2)),
        ("trigger.level", AttrValue::from("TRACE")),
        ("trigger.style.icon", AttrValue::from("task")),
        ("trigger.style.variant", AttrValue::from("primary")),
        ("trigger.environment_type", AttrValue::from("DEVELOPMENT")),
        ("trigger.idempotency_key", AttrValue::from("k-1")),
        ("trigger.some_count", AttrValue::I64(3)),
    ];
    let got: Vec<(String, AttrValue)> = s
        .data
        .attributes
        .iter()
        .map(|kv| (kv.key.to_string(), kv.value.clone()))
        .collect();
    let expected: Vec<(String, AttrValue)> = expected.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(got, expected);
}

#[test]
fn run_id_falls_back_to_the_polled_run() {
    let out = convert_default(vec![with(span("0000000000000001", None, T0, 5), "runId", Value::Null)]);
    assert_eq!(attr(&out.spans[0], "trigger.run_id"), Some(&AttrValue::from(RUN)));
}

#[test]
fn style_accessory_in_both_shapes_is_tolerated() {
    let documented = with(
        span("0000000000000001", None, T0, 5),
        "style",
        json!({"icon": "i", "accessory": {"text": "GET", "style": "codepath"}}),
    );
    let server = with(
        span("0000000000000002", None, T0, 5),
        "style",
        json!({"variant": "v", "accessory": {"items": [{"text": "a"}, {"text": "b"}], "style": "codepath"}}),
    );
    let odd = with(span("0000000000000003", None, T0, 5), "style", json!({"icon": 5}));
    let out = convert_default(vec![documented, server, odd]);
    assert_eq!(out.spans.len(), 3);
    assert!(out.invalid.is_empty());
    assert_eq!(
        attr(find(&out, "0000000000000001"), "trigger.style.icon"),
        Some(&AttrValue::from("i"))
    );
    assert_eq!(
        attr(find(&out, "0000000000000002"), "trigger.style.variant"),
        Some(&AttrValue::from("v"))
    );
    assert_eq!(attr(find(&out, "0000000000000003"), "trigger.style.icon"), None);
}

// ---- Rules 11–12: span events -------------------------------------------------------------------

#[test]
fn event_times_and_bad_events() {
    let events = json!([
        {"name": "a", "time": "2025-09-23T12:32:49Z", "properties": {"k": "v"}},
        {"name": "b", "time": "2025-09-23T14:32:49.123456789+02:00"},
        {"name": "c", "time": "yesterday"},
        42,
        {"time": "2025-09-23T12:32:49.5Z"}
    ]);
    let out = convert_default(vec![with(span("0000000000000001", None, T0, 5), "events", events)]);
    let got = &out.spans[0].data.events.events;
    assert_eq!(got.len(), 4);
    assert_eq!(
        (got[0].name.as_ref(), ns(got[0].timestamp)),
        ("a", 1_758_630_769_000_000_000)
    );
    assert_eq!(got[0].attributes, vec![opentelemetry::KeyValue::new("k", "v")]);
    assert_eq!(ns(got[1].timestamp), 1_758_630_769_123_456_789);
    assert_eq!((got[2].name.as_ref(), ns(got[2].timestamp)), ("c", T0));
    assert_eq!(
        got[2].attributes,
        vec![opentelemetry::KeyValue::new("trigger.time_invalid", true)]
    );
    assert_eq!(got[3].name, "event");
    assert_eq!(out.invalid.count(InvalidReason::EventTime), 1);
    assert_eq!(out.invalid.count(InvalidReason::SpanEvent), 1);
}

#[test]
fn empty_events_array_and_events_of_the_wrong_type() {
    let out = convert_default(vec![
        span("0000000000000001", None, T0, 5),
        with(span("0000000000000002", None, T0, 5), "events", json!("nope")),
    ]);
    assert!(out.spans.iter().all(|s| s.data.events.events.is_empty()));
    assert_eq!(out.spans.len(), 2);
}

#[test]
fn empty_response_converts_to_nothing() {
    let out = convert_default(vec![]);
    assert!(out.spans.is_empty() && out.invalid.is_empty());
}

#[test]
fn non_object_elements_are_counted_and_neighbours_kept() {
    let body = format!(r#"{{"events":[42,{}]}}"#, span("0000000000000001", None, T0, 5));
    let raw = EventsBody::from_slice(body.as_bytes()).unwrap();
    let out = read(convert_events(
        raw.events,
        &ended(),
        LogsMode::SpanEvents,
        &NothingExported,
    ));
    assert_eq!(out.spans.len(), 1);
    assert_eq!(out.invalid.count(InvalidReason::NotAnObject), 1);
}

#[test]
fn unicode_and_4_kib_messages_pass_through_untouched() {
    let long = "ü".repeat(2048); // 4 KiB of UTF-8
    let out = convert_default(vec![
        with(
            span("0000000000000001", None, T0, 5),
            "message",
            json!("处理订单 🚀 — ok"),
        ),
        log("0000000000000002", Some("0000000000000001"), T0 + 1, "INFO", &long),
    ]);
    let s = &out.spans[0];
    assert_eq!(s.data.name, "处理订单 🚀 — ok");
    assert_eq!(
        s.data.events.events[0].attributes[0],
        opentelemetry::KeyValue::new("log.message", long)
    );
}

// ---- Rule 13: logs ---------------------------------------------------------------------------------

fn logs_fixture() -> Vec<Value> {
    vec![
        span("00000000000000a1", None, T0, 1000),
        log("00000000000000b1", Some("00000000000000a1"), T0 + 10, "INFO", "hello"),
        log("00000000000000b2", Some("00000000000000a1"), T0 + 5, "WARN", "careful"),
        // Its parent lives in another run (or nowhere): must not be lost.
        log("00000000000000b3", Some("ffffffffffff0001"), T0 + 20, "ERROR", "orphan"),
        with(
            log(
                "00000000000000b4",
                Some("00000000000000a1"),
                T0 + 30,
                "TRACE",
                "self-hosted log",
            ),
            "kind",
            json!("LOG"),
        ),
    ]
}

#[test]
fn logs_as_span_events_on_their_parent() {
    let out = convert_default(logs_fixture());
    assert_eq!(out.spans.len(), 2, "the root span plus the orphan log as a span");
    let root = find(&out, "00000000000000a1");
    let names: Vec<(&str, u64)> = root
        .data
        .events
        .events
        .iter()
        .map(|e| (e.name.as_ref(), ns(e.timestamp)))
        .collect();
    assert_eq!(names, vec![("log", T0 + 5), ("log", T0 + 10), ("log", T0 + 30)]);
    let first = &root.data.events.events[0].attributes;
    assert!(first.contains(&opentelemetry::KeyValue::new("log.message", "careful")));
    assert!(first.contains(&opentelemetry::KeyValue::new("log.severity", "WARN")));
    assert!(first.contains(&opentelemetry::KeyValue::new("trigger.span_id", "00000000000000b2")));
    let mut covers = root.covers.clone();
    covers.sort_by_key(|id| id.to_bytes());
    let expected: Vec<SpanId> = [
        "00000000000000a1",
        "00000000000000b1",
        "00000000000000b2",
        "00000000000000b4",
    ]
    .iter()
    .map(|id| SpanId::from_hex(id).unwrap())
    .collect();
    assert_eq!(covers, expected);
    let orphan = find(&out, "00000000000000b3");
    assert_eq!(orphan.data.start_time, orphan.data.end_time);
    assert_eq!(orphan.data.name, "orphan");
    assert_eq!(attr(orphan, "trigger.level"), Some(&AttrValue::from("ERROR")));
}

#[test]
fn log_whose_parent_was_already_exported_becomes_a_span() {
    let exported: HashSet<SpanId> = [SpanId::from_hex("00000000000000a1").unwrap()].into();
    let out = read(convert_events(
        parse(logs_fixture()),
        &ended(),
        LogsMode::SpanEvents,
        &exported,
    ));
    assert_eq!(out.spans.len(), 4);
    assert!(out.spans.iter().all(|s| s.data.start_time == s.data.end_time));
}

#[test]
fn log_under_a_running_parent_waits_for_it() {
    let mut events = logs_fixture();
    events[0] = with(events[0].clone(), "isPartial", json!(true));
    let out = convert(events, &run_info(RunState::Live), LogsMode::SpanEvents);
    assert_eq!(out.spans.len(), 1, "only the orphan log");
    assert_eq!(out.held_back, 4, "the partial root and the three logs under it");
}

#[test]
fn logs_as_spans() {
    let out = convert(logs_fixture(), &ended(), LogsMode::Spans);
    assert_eq!(out.spans.len(), 5);
    let log_span = find(&out, "00000000000000b1");
    assert_eq!(log_span.data.name, "hello");
    assert_eq!(log_span.data.span_kind, SpanKind::Internal);
    assert_eq!(log_span.data.status, Status::Unset);
    assert_eq!(
        log_span.data.parent_span_id,
        SpanId::from_hex("00000000000000a1").unwrap()
    );
    assert_eq!(log_span.data.start_time, log_span.data.end_time);
    assert!(find(&out, "00000000000000a1").data.events.events.is_empty());
}

#[test]
fn logs_dropped_are_counted() {
    let out = convert(logs_fixture(), &ended(), LogsMode::Drop);
    assert_eq!(out.spans.len(), 1);
    assert_eq!(out.invalid.count(InvalidReason::LogDropped), 4);
}

#[test]
fn logs_as_otlp_log_records_are_returned_separately() {
    let out = convert(logs_fixture(), &ended(), LogsMode::OtlpLogs);
    assert_eq!(out.spans.len(), 1);
    assert_eq!(out.logs.len(), 4);
    let hello = out.logs.iter().find(|l| l.body == "hello").unwrap();
    assert_eq!(hello.parent, Some(SpanId::from_hex("00000000000000a1").unwrap()));
    assert_eq!(hello.severity.as_deref(), Some("INFO"));
    assert_eq!(hello.time, T0 + 10);
}

// ---- Output ordering, scope -----------------------------------------------------------------------

#[test]
fn output_is_sorted_and_scoped() {
    let out = convert_default(vec![
        span("0000000000000002", None, T0 + 2, 1),
        span("0000000000000001", None, T0 + 1, 1),
    ]);
    assert!(out.spans[0].data.start_time < out.spans[1].data.start_time);
    let spans: Vec<BridgeSpan> = out.spans.iter().map(|s| s.span.clone()).collect();
    let request = otlp::export_request(spans, &otlp::ResourceSettings::default());
    let scope = request.resource_spans[0].scope_spans[0].scope.clone().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        (SCOPE_NAME, env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(out.spans[0].data.start_time, UNIX_EPOCH + Duration::from_nanos(T0 + 1));
}

#[test]
fn unknown_fields_never_duplicate_the_bridges_markers() {
    let cancelled = with(
        with(
            with(span("0000000000000001", None, T0, 0), "isCancelled", json!(true)),
            "isPartial",
            json!(true),
        ),
        "cancelled",
        json!("no"),
    );
    let cancelled = with(
        with(cancelled, "partial", json!(7)),
        "spanId",
        json!("0000000000000001"),
    );
    let log_with_span_id_field = with(
        log("0000000000000002", Some("0000000000000001"), T0 + 1, "INFO", "hi"),
        "span_id",
        json!("shadow"),
    );
    let out = convert_default(vec![cancelled, log_with_span_id_field]);
    let s = &out.spans[0];
    let keys: Vec<&str> = s.data.attributes.iter().map(|kv| kv.key.as_str()).collect();
    let unique: HashSet<&str> = keys.iter().copied().collect();
    assert_eq!(keys.len(), unique.len(), "{keys:?}");
    assert_eq!(attr(s, "trigger.cancelled"), Some(&AttrValue::Bool(true)));
    assert_eq!(attr(s, "trigger.partial"), Some(&AttrValue::Bool(true)));
    let event_keys: Vec<&str> = s.data.events.events[0]
        .attributes
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert_eq!(
        event_keys.iter().filter(|k| **k == "trigger.span_id").count(),
        1,
        "{event_keys:?}"
    );
}

#[test]
fn log_spans_are_unset_even_when_flagged_as_errors() {
    let errored_log = with(
        log("0000000000000002", None, T0, "ERROR", "boom"),
        "isError",
        json!(true),
    );
    let out = convert(vec![errored_log], &ended(), LogsMode::Spans);
    assert_eq!(out.spans[0].data.status, Status::Unset);
}

#[test]
fn a_log_flagged_both_errored_and_cancelled_keeps_its_cancelled_marker() {
    let log_record = with(
        with(
            log("0000000000000002", None, T0, "ERROR", "aborted"),
            "isError",
            json!(true),
        ),
        "isCancelled",
        json!(true),
    );
    let out = convert(vec![log_record], &ended(), LogsMode::Spans);
    assert_eq!(out.spans[0].data.status, Status::Unset);
    assert!(
        out.spans[0]
            .data
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "trigger.cancelled" && kv.value == opentelemetry::Value::Bool(true)),
        "{:?}",
        out.spans[0].data.attributes
    );
}

#[test]
fn enrichment_flattens_trace_properties_onto_spans_and_the_bridge_wins() {
    let properties: HashMap<String, Value> = [
        (
            "0000000000000001".to_owned(),
            json!({"http": {"method": "GET", "status_code": 200}, "trigger": {"run_id": "spoofed"}}),
        ),
        ("0000000000000002".to_owned(), Value::Null),
        // A log's id: logs are not enriched (the trace tree has no logs).
        ("0000000000000003".to_owned(), json!({"should": "not appear"})),
    ]
    .into();
    let mut run = ended();
    run.span_properties = Some(&properties);
    let out = convert(
        vec![
            span("0000000000000001", None, T0, 5),
            span("0000000000000002", None, T0, 5),
            log("0000000000000003", None, T0, "INFO", "x"),
        ],
        &run,
        LogsMode::Spans,
    );
    let enriched = find(&out, "0000000000000001");
    assert_eq!(attr(enriched, "http.method"), Some(&AttrValue::from("GET")));
    assert_eq!(attr(enriched, "http.status_code"), Some(&AttrValue::I64(200)));
    assert_eq!(
        attr(enriched, "trigger.run_id"),
        Some(&AttrValue::from(RUN)),
        "the bridge's key wins"
    );
    let keys: Vec<&str> = enriched.data.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys.iter().filter(|k| **k == "trigger.run_id").count(), 1);
    assert_eq!(attr(find(&out, "0000000000000002"), "http.method"), None);
    assert_eq!(attr(find(&out, "0000000000000003"), "should"), None);
}
