//! Property tests of the converter (issue 6, item 3), with generated input nobody hand-picked:
//!
//! - arbitrary JSON, and element-shaped objects whose fields are anything from valid values to
//!   arbitrary JSON, parsed as an events body and converted in every logs mode, live and ended,
//!   with and without spans exported before: nothing panics, and every element is accounted for
//!   exactly (in the output, in the invalid report, held back, dropped on purpose, or exported
//!   before);
//! - valid elements round-trip through the converter and the OTLP protobuf encoding: span and
//!   parent ids byte for byte, start and end to the nanosecond (start times far above 2^53);
//! - flattening `properties` never emits a key twice, and keeps the first of each;
//! - hashing malformed ids is deterministic and never yields the all-zero (invalid) id.
//!
//! Case counts keep the whole file well under 30 s in a debug build.

mod support;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Otlp;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use proptest::prelude::*;
use proptest::sample::select;
use prost::Message;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use support::otlp_receiver::spans_of;
use trigger_otel_bridge::config::LogsMode;
use trigger_otel_bridge::convert::ids::{derive_trace_id, span_identity, SpanIdentity};
use trigger_otel_bridge::convert::otlp::{encode_export_request, export_request, ResourceSettings};
use trigger_otel_bridge::convert::time::parse_start_time;
use trigger_otel_bridge::convert::{
    convert_events, flatten_properties, proto, Conversion, InvalidReason, NothingExported, RunInfo, RunState,
};
use trigger_otel_bridge::trigger::model::{EventsBody, Field, RawEvent};

const ALL_MODES: [LogsMode; 4] = [
    LogsMode::SpanEvents,
    LogsMode::Spans,
    LogsMode::Drop,
    LogsMode::OtlpLogs,
];

/// Field names the converter knows (top level, span events, style, properties), mixed into
/// generated keys so objects hit the interesting paths.
const KNOWN_KEYS: &[&str] = &[
    "spanId",
    "parentId",
    "runId",
    "message",
    "startTime",
    "duration",
    "isError",
    "isCancelled",
    "isPartial",
    "level",
    "kind",
    "attemptNumber",
    "taskSlug",
    "events",
    "style",
    "properties",
    "name",
    "time",
    "exception",
    "icon",
    "variant",
    "events",
    "HTTPStatus",
    "span_id",
    "trigger.span_id",
    "trigger.time_invalid",
    "a.b",
    "a",
    "b",
    "",
];

/// A small pool of span ids so that elements collide (duplicates) and find their parents:
/// valid hex in both cases (two spellings of one id), the all-zero id, malformed strings.
const ID_POOL: &[&str] = &[
    "8c9b2eb73200c02b",
    "8C9B2EB73200C02B",
    "64d32c5a798e81ae",
    "85f5ce36c6939fec",
    "0123456789abcdef",
    "fedcba9876543210",
    "0000000000000000",
    "zz-not-hex",
    "span_1",
    "0123456789abcdeg",
    "0123456789abcdef0",
    "ünïcødé",
];

// ---------------------------------------------------------------------------------------------
// Strategies

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ((i64::MAX as u64)..=u64::MAX).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        (0.0f64..1e19).prop_map(|f| json!(f)),
        Just(json!(1.5e18)),
        Just(json!(-0.0)),
        Just(json!(0)),
    ]
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,12}",
        "[0-9]{1,25}",
        "[0-9a-fA-F]{16}",
        "[0-9a-fA-F]{0,34}",
        "[+-]?[0-9]{0,20}(\\.[0-9]{0,5})?([eE][+-]?[0-9]{1,3})?",
        "(19|20)[0-9]{2}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,12})?(Z|[+-][0-2][0-9]:[0-5][0-9])?",
        select(vec!["", "NaN", "inf", "-inf", "null", "true", "TRACE", "LOG", " 12 ", "0x10"]).prop_map(str::to_owned),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        select(KNOWN_KEYS).prop_map(str::to_owned),
        ".{0,6}",
        "[a-zA-Z][a-zA-Z0-9]{0,10}"
    ]
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        arb_text().prop_map(Value::String),
    ]
}

/// Any JSON value: objects (keys arbitrary or known), arrays, strings, numbers of every range.
fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn pool_id() -> impl Strategy<Value = Value> {
    select(ID_POOL).prop_map(Value::from)
}

fn start_time() -> impl Strategy<Value = Value> {
    prop_oneof![
        // The cloud store: a decimal string of ms-precision ns.
        4 => (1_700_000_000_000u64..1_800_000_000_000).prop_map(|ms| Value::from((ms * 1_000_000).to_string())),
        2 => any::<u64>().prop_map(|ns| Value::from(ns.to_string())),
        1 => any::<u64>().prop_map(Value::from),
        2 => arb_json(),
    ]
}

fn duration() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (0u64..10_000_000_000).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => (0.0f64..1e12).prop_map(|f| json!(f)),
        1 => any::<u64>().prop_map(|ns| Value::from(ns.to_string())),
        2 => arb_json(),
    ]
}

fn flag() -> impl Strategy<Value = Value> {
    prop_oneof![4 => any::<bool>().prop_map(Value::Bool), 1 => Just(Value::Null), 1 => arb_json()]
}

fn level() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => select(vec!["TRACE", "INFO", "WARN", "ERROR", "DEBUG", "LOG", "trace", ""]).prop_map(Value::from),
        1 => arb_json(),
    ]
}

fn kind() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => select(vec!["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER", "LOG", "server"])
            .prop_map(Value::from),
        1 => arb_json(),
    ]
}

/// One entry of a span's `events[]`: mostly event-shaped, sometimes anything.
fn span_event() -> impl Strategy<Value = Value> {
    let shaped = (
        prop_oneof![
            select(vec!["exception", "attempt_failed", "cancellation", "log"]).prop_map(Value::from),
            arb_json()
        ],
        prop_oneof![
            3 => "20[0-9]{2}-0[1-9]-[0-2][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\\.[0-9]{3}Z".prop_map(Value::from),
            1 => arb_json(),
        ],
        prop_oneof![
            2 => arb_text().prop_map(|m| json!({"exception": {"type": "Error", "message": m}})),
            2 => arb_json(),
        ],
    )
        .prop_map(|(name, time, properties)| json!({"name": name, "time": time, "properties": properties}));
    prop_oneof![4 => shaped, 1 => arb_json()]
}

/// An element as a list of fields (written by hand, so keys may repeat as they can on the wire).
type Fields = Vec<(String, Value)>;

fn element() -> impl Strategy<Value = Fields> {
    let ids = (
        prop::option::weighted(
            0.95,
            prop_oneof![6 => pool_id(), 1 => arb_text().prop_map(Value::from), 1 => arb_json()],
        ),
        prop::option::weighted(0.7, prop_oneof![6 => pool_id(), 1 => arb_json()]),
        prop::option::of(prop_oneof![Just(Value::from("run_cm1abc")), arb_json()]),
        prop::option::of(prop_oneof![arb_text().prop_map(Value::from), arb_json()]),
        prop::option::weighted(0.95, start_time()),
        prop::option::weighted(0.9, duration()),
    );
    let flags = (
        prop::option::of(flag()),
        prop::option::of(flag()),
        prop::option::of(flag()),
        prop::option::of(level()),
        prop::option::of(kind()),
        prop::option::of(prop_oneof![(0i64..4).prop_map(Value::from), arb_json()]),
    );
    let rest = (
        prop::option::of(prop_oneof![Just(Value::from("process-order")), arb_json()]),
        prop::option::of(prop_oneof![
            3 => prop::collection::vec(span_event(), 0..4).prop_map(Value::Array),
            1 => arb_json(),
        ]),
        prop::option::of(prop_oneof![
            (arb_json(), arb_json()).prop_map(|(icon, variant)| json!({"icon": icon, "variant": variant})),
            arb_json(),
        ]),
        prop::collection::vec((arb_key(), arb_json()), 0..3),
        any::<prop::sample::Index>(),
    );
    (ids, flags, rest).prop_map(
        |(
            (span_id, parent_id, run_id, message, start, duration),
            (is_error, is_cancelled, is_partial, level, kind, attempt),
            (task_slug, events, style, unknown, insert_at),
        )| {
            let named = [
                ("spanId", span_id),
                ("parentId", parent_id),
                ("runId", run_id),
                ("message", message),
                ("startTime", start),
                ("duration", duration),
                ("isError", is_error),
                ("isCancelled", is_cancelled),
                ("isPartial", is_partial),
                ("level", level),
                ("kind", kind),
                ("attemptNumber", attempt),
                ("taskSlug", task_slug),
                ("events", events),
                ("style", style),
            ];
            let mut fields: Fields = named
                .into_iter()
                .filter_map(|(key, value)| value.map(|v| (key.to_owned(), v)))
                .collect();
            // Unknown fields (or repeated known ones) somewhere among the others.
            let at = insert_at.index(fields.len() + 1);
            for (offset, field) in unknown.into_iter().enumerate() {
                fields.insert((at + offset).min(fields.len()), field);
            }
            fields
        },
    )
}

/// An array element: mostly element-shaped, sometimes any JSON at all.
fn array_element() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => element().prop_map(|fields| object_text(&fields)),
        1 => arb_json().prop_map(|value| value.to_string()),
    ]
}

fn object_text(fields: &Fields) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("{}:{}", Value::from(key.as_str()), value))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// A whole body: `{"events": [...]}` with other top-level keys, or a bare array.
fn body() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(array_element(), 0..20),
        any::<bool>(),
        prop::collection::vec(
            (arb_key().prop_filter("not events", |k| k != "events"), arb_json()),
            0..2,
        ),
    )
        .prop_map(|(elements, bare, extra)| {
            let array = format!("[{}]", elements.join(","));
            if bare {
                return array;
            }
            let mut parts: Vec<String> = extra
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
                .collect();
            parts.push(format!("\"events\":{array}"));
            format!("{{{}}}", parts.join(","))
        })
}

fn run_state() -> impl Strategy<Value = RunState> {
    prop_oneof![
        Just(RunState::Live),
        Just(RunState::Ended { finished_at: None }),
        any::<u64>().prop_map(|at| RunState::Ended { finished_at: Some(at) }),
        (1_700_000_000_000_000_000u64..1_800_000_000_000_000_000)
            .prop_map(|at| RunState::Ended { finished_at: Some(at) }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Checks

/// The span id an element is converted under, when it passes validation (rules 2 and 6):
/// computed from the public id and time functions, independently of `convert_events`.
fn valid_id(raw: &RawEvent) -> Option<SpanId> {
    if raw.not_an_object {
        return None;
    }
    let id = raw.span_id_str().and_then(span_identity)?.id();
    parse_start_time(raw.start_time.as_ref())?;
    Some(id)
}

fn keys_are_unique(attributes: &[KeyValue]) -> Result<(), TestCaseError> {
    let mut seen = HashSet::new();
    for kv in attributes {
        prop_assert!(
            seen.insert(kv.key.as_str()),
            "key {:?} twice in {:?}",
            kv.key,
            attributes
        );
    }
    Ok(())
}

fn span_id(span: &OtlpSpan) -> SpanId {
    SpanId::from_bytes(span.span_id.as_slice().try_into().expect("8 bytes"))
}

fn trace_id(span: &OtlpSpan) -> TraceId {
    TraceId::from_bytes(span.trace_id.as_slice().try_into().expect("16 bytes"))
}

fn parent_id(span: &OtlpSpan) -> SpanId {
    match span.parent_span_id.as_slice() {
        [] => SpanId::INVALID,
        bytes => SpanId::from_bytes(bytes.try_into().expect("8 bytes")),
    }
}

/// The OTLP request of a conversion, encoded to protobuf and decoded again.
fn through_protobuf(conversion: &Conversion) -> Vec<OtlpSpan> {
    let request = export_request(conversion.spans.clone(), &ResourceSettings::default());
    let bytes = request.encode_to_vec();
    let decoded = ExportTraceServiceRequest::decode(&bytes[..]).expect("our own encoding decodes");
    spans_of(&decoded)
}

/// Every element of `events` is accounted for exactly once, and every output span is sane.
fn check_conversion(
    events: &[RawEvent],
    run: &RunInfo,
    mode: LogsMode,
    exported: &HashSet<SpanId>,
    conversion: &Conversion,
) -> Result<(), TestCaseError> {
    let invalid = &conversion.invalid;
    // 1. Elements failing validation are each counted under exactly one skip reason.
    let skipped = events.iter().filter(|e| valid_id(e).is_none()).count() as u64;
    prop_assert_eq!(
        invalid.count(InvalidReason::NotAnObject),
        events.iter().filter(|e| e.not_an_object).count() as u64
    );
    prop_assert_eq!(
        invalid.count(InvalidReason::NotAnObject)
            + invalid.count(InvalidReason::SpanId)
            + invalid.count(InvalidReason::StartTime),
        skipped
    );

    // 2. Valid elements, one per span id (rule 4), land in exactly one place.
    let unique: HashSet<SpanId> = events.iter().filter_map(valid_id).collect();
    let exported_before: HashSet<SpanId> = unique.intersection(exported).copied().collect();
    prop_assert_eq!(conversion.already_exported, exported_before.len());

    let mut placed: HashSet<SpanId> = HashSet::new();
    for span in &conversion.spans {
        prop_assert!(!span.covers.is_empty());
        prop_assert_eq!(span.covers[0], span_id(&span.span), "a span covers itself first");
        for id in &span.covers {
            prop_assert!(unique.contains(id), "output id {} is no valid input element", id);
            prop_assert!(!exported.contains(id), "{} was exported before", id);
            prop_assert!(placed.insert(*id), "{} placed twice", id);
        }
        if mode != LogsMode::SpanEvents {
            prop_assert_eq!(span.covers.len(), 1, "only span_events folds logs into spans");
        }
    }
    for log in &conversion.logs {
        prop_assert!(unique.contains(&log.span_id));
        prop_assert!(!exported.contains(&log.span_id));
        prop_assert!(placed.insert(log.span_id), "{} placed twice", log.span_id);
    }
    if mode != LogsMode::OtlpLogs {
        prop_assert!(conversion.logs.is_empty());
    }
    let dropped = invalid.count(InvalidReason::LogDropped) as usize;
    if mode != LogsMode::Drop {
        prop_assert_eq!(dropped, 0);
    }
    if matches!(run.state, RunState::Ended { .. }) {
        prop_assert_eq!(conversion.held_back, 0, "an ended run holds nothing back");
    }
    // The identity: unique valid = output + exported before + held back + dropped on purpose.
    let unplaced = unique.len() - placed.len() - exported_before.len();
    prop_assert_eq!(
        unplaced,
        conversion.held_back + dropped,
        "unique valid {}, placed {}, exported before {}, held back {}, dropped {}",
        unique.len(),
        placed.len(),
        exported_before.len(),
        conversion.held_back,
        dropped
    );

    // 3. Every output span: this run's trace, a real id, an end not before its start, sorted,
    // no attribute key twice, and start and parent exactly as the (unique) element said.
    let copies: HashMap<SpanId, Vec<&RawEvent>> = events.iter().fold(HashMap::new(), |mut map, e| {
        if let Some(id) = valid_id(e) {
            map.entry(id).or_default().push(e);
        }
        map
    });
    let mut previous: Option<(u64, [u8; 8])> = None;
    for span in &conversion.spans {
        let data: &OtlpSpan = &span.span;
        let id = span_id(data);
        prop_assert_eq!(trace_id(data), run.trace_id);
        prop_assert_ne!(trace_id(data), TraceId::INVALID);
        prop_assert_ne!(id, SpanId::INVALID);
        prop_assert!(data.end_time_unix_nano >= data.start_time_unix_nano);
        let key = (data.start_time_unix_nano, id.to_bytes());
        prop_assert!(previous.is_none_or(|p| p <= key), "spans sorted by start then id");
        previous = Some(key);
        keys_are_unique(&data.attributes)?;
        for event in &data.events {
            keys_are_unique(&event.attributes)?;
        }
        if let [only] = copies[&id].as_slice() {
            prop_assert_eq!(
                Some(data.start_time_unix_nano),
                parse_start_time(only.start_time.as_ref())
            );
            let parent = only
                .parent_id
                .as_ref()
                .and_then(Field::as_str)
                .and_then(span_identity)
                .map_or(SpanId::INVALID, SpanIdentity::id);
            prop_assert_eq!(parent_id(data), parent);
        }
    }

    // 4. The OTLP protobuf request carries the same spans, byte for byte and ns for ns.
    let mut sent: Vec<(Vec<u8>, u64, u64)> = conversion
        .spans
        .iter()
        .map(|s| {
            (
                s.span.span_id.clone(),
                s.span.start_time_unix_nano,
                s.span.end_time_unix_nano,
            )
        })
        .collect();
    let mut received: Vec<(Vec<u8>, u64, u64)> = through_protobuf(conversion)
        .into_iter()
        .map(|s| (s.span_id, s.start_time_unix_nano, s.end_time_unix_nano))
        .collect();
    sent.sort();
    received.sort();
    prop_assert_eq!(sent, received);

    // 5. The sender's in-place encoding is prost's encoding of the request, byte for byte, under
    // one resource and under one per task.
    let per_task = ResourceSettings {
        service_name_from_task: true,
        attributes: [("deployment.environment".to_owned(), "prod".to_owned())].into(),
        ..ResourceSettings::default()
    };
    for settings in [ResourceSettings::default(), per_task] {
        let in_place = encode_export_request(&conversion.spans, &settings);
        let reference = export_request(conversion.spans.clone(), &settings).encode_to_vec();
        prop_assert_eq!(in_place, reference);
    }
    Ok(())
}

fn convert_all_ways(
    events: &[RawEvent],
    run_id: &str,
    trace_id: Option<&str>,
    state: RunState,
    mask: u64,
) -> Result<(), TestCaseError> {
    // Span ids exported before: the input's own ids picked by `mask`, plus one stranger.
    let mut exported: HashSet<SpanId> = events
        .iter()
        .filter_map(valid_id)
        .enumerate()
        .filter(|(i, _)| mask & (1 << (i % 64)) != 0)
        .map(|(_, id)| id)
        .collect();
    exported.insert(SpanId::from_bytes([7; 8]));
    for mode in ALL_MODES {
        let run = RunInfo::new(run_id, trace_id, state);
        let fresh = convert_events(events.to_vec(), &run, mode, &NothingExported);
        check_conversion(events, &run, mode, &HashSet::new(), &fresh)?;
        let again = convert_events(events.to_vec(), &run, mode, &exported);
        check_conversion(events, &run, mode, &exported, &again)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties

/// `cases` per property, or `PROPTEST_CASES` when set (for a longer hunt:
/// `PROPTEST_CASES=20000 cargo test --release --test properties`).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(200))]

    /// Element-shaped bodies (the fields the API sends, with valid and wild values, unknown
    /// fields, repeated keys, non-object elements) convert without panicking, in every logs
    /// mode, live and ended, and every element is accounted for.
    #[test]
    fn every_element_is_accounted_for(
        text in body(),
        run_id in prop_oneof![Just("run_cm1abc".to_owned()), ".{0,10}"],
        trace_id in prop::option::of(prop_oneof!["[0-9a-fA-F]{32}", ".{0,33}"]),
        state in run_state(),
        mask in prop_oneof![Just(0u64), any::<u64>()],
    ) {
        let body = EventsBody::from_slice(text.as_bytes());
        prop_assert!(body.is_ok(), "a well-formed body must parse: {:?}\n{}", body.err(), text);
        let events = body.unwrap().events;
        convert_all_ways(&events, &run_id, trace_id.as_deref(), state, mask)?;
    }

    /// Any JSON value at all as the body: parsing may refuse it (wrong shape), never panics, and
    /// whatever parses converts with the same accounting.
    #[test]
    fn arbitrary_json_never_panics(value in arb_json(), wrap in any::<bool>(), state in run_state()) {
        let value = if wrap { json!({"events": value}) } else { value };
        let text = serde_json::to_vec(&value).unwrap();
        if let Ok(body) = EventsBody::from_slice(&text) {
            convert_all_ways(&body.events, "run_x", None, state, 0)?;
        }
    }

    /// Number literals of any size in any field: huge integers and decimals never fail the body
    /// (a start time beyond u64 is invalid, a huge duration saturates, and a literal beyond the
    /// range of a 64-bit float, such as 1e400, is read as null: that field is invalid).
    #[test]
    fn huge_number_literals_are_judged_per_element(
        start in "-?(0|[1-9][0-9]{0,39})([eE][+]?[0-9]{3})?",
        duration in "-?(0|[1-9][0-9]{0,39})(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?",
        extra in "-?(0|[1-9][0-9]{0,39})(\\.[0-9]{1,10})?([eE][+-]?[0-9]{1,3})?",
        quoted in any::<bool>(),
    ) {
        let start = if quoted { format!("\"{start}\"") } else { start };
        let text = format!(
            r#"[{{"spanId":"0123456789abcdef","startTime":{start},"duration":{duration},"attemptNumber":{extra},"events":[{{"name":"e","properties":{{"n":{extra}}}}}]}}]"#
        );
        let body = EventsBody::from_slice(text.as_bytes());
        prop_assert!(body.is_ok(), "{:?}: {}", body.err(), text);
        let events = body.unwrap().events;
        let beyond_f64 = |literal: &str| literal.parse::<f64>().is_ok_and(f64::is_infinite);
        prop_assert_eq!(events[0].out_of_range("duration").is_some(), beyond_f64(&duration));
        prop_assert_eq!(events[0].out_of_range("attemptNumber").is_some(), beyond_f64(&extra));
        prop_assert_eq!(events[0].out_of_range("events").is_some(), beyond_f64(&extra));
        prop_assert_eq!(events[0].out_of_range("startTime").is_some(), !quoted && beyond_f64(&start));
        convert_all_ways(&events, "run_x", None, RunState::Ended { finished_at: None }, 0)?;
    }
}

/// Float durations are only generated below 2^53 ns, where every integer is an exact float
/// (above it, `duration as f64` itself rounds). This was 10^15 until serde_json's
/// `float_roundtrip` feature was enabled: without it the JSON float `7211576275691951.0` (exactly
/// representable) parsed as `7211576275691950.0`, a duration 1 ns short. Found by this property;
/// see BENCHMARKS.md's findings.
const FLOAT_EXACT_BELOW: u64 = 1 << 53;

/// One valid element of the round-trip property.
#[derive(Debug, Clone)]
struct Valid {
    id: [u8; 8],
    upper: bool,
    start: u64,
    start_as_number: bool,
    duration: u64,
    /// How the duration is written: 0 integer, 1 decimal string, 2 float (below
    /// `FLOAT_EXACT_BELOW` only).
    duration_form: u8,
    /// An index into the run's elements, or an id from another run.
    parent: Option<Result<prop::sample::Index, [u8; 8]>>,
    is_log: bool,
}

fn valid_element() -> impl Strategy<Value = Valid> {
    (
        any::<[u8; 8]>().prop_filter("not the invalid id", |id| *id != [0; 8]),
        any::<bool>(),
        prop_oneof![
            Just(0u64),
            any::<u64>(),
            (1u64 << 53)..=u64::MAX,
            (1_700_000_000_000u64..1_800_000_000_000).prop_map(|ms| ms * 1_000_000),
            Just(u64::MAX),
        ],
        any::<bool>(),
        prop_oneof![
            any::<u64>(),
            0u64..10_000_000_000,
            // 16 significant digits, still exact as floats: what `float_roundtrip` is for.
            1_000_000_000_000_000u64..FLOAT_EXACT_BELOW,
            Just(0u64),
            Just(u64::MAX)
        ],
        0u8..3,
        prop::option::of(prop_oneof![
            4 => any::<prop::sample::Index>().prop_map(Ok),
            1 => any::<[u8; 8]>().prop_filter("not the invalid id", |id| *id != [0; 8]).prop_map(Err),
        ]),
        prop::bool::weighted(0.3),
    )
        .prop_map(
            |(id, upper, start, start_as_number, duration, duration_form, parent, is_log)| Valid {
                id,
                upper,
                start,
                start_as_number,
                duration,
                duration_form: if duration_form == 2 && duration >= FLOAT_EXACT_BELOW {
                    0
                } else {
                    duration_form
                },
                parent,
                is_log,
            },
        )
}

fn hex(bytes: &[u8], upper: bool) -> String {
    let text = support::hex(bytes);
    if upper {
        text.to_uppercase()
    } else {
        text
    }
}

proptest! {
    #![proptest_config(config(200))]

    /// Valid elements come out exactly as they went in: span id and parent bytes, start and
    /// end to the nanosecond (also above 2^53, where f64 would lose them), through the OTLP
    /// protobuf encoding too; logs become events at their exact time, or zero-length spans.
    #[test]
    fn valid_elements_round_trip(mut elements in prop::collection::vec(valid_element(), 1..16), spans_mode in any::<bool>()) {
        let mut seen = HashSet::new();
        elements.retain(|e| seen.insert(e.id));
        let parents: Vec<Option<[u8; 8]>> = elements
            .iter()
            .map(|e| e.parent.as_ref().map(|p| match p {
                Ok(index) => elements[index.index(elements.len())].id,
                Err(outside) => *outside,
            }))
            .collect();
        let body: Vec<Value> = elements
            .iter()
            .zip(&parents)
            .map(|(e, parent)| {
                let duration = match e.duration_form {
                    0 => json!(e.duration),
                    1 => json!(e.duration.to_string()),
                    _ => json!(e.duration as f64),
                };
                let start = if e.start_as_number { json!(e.start) } else { json!(e.start.to_string()) };
                let mut fields = Map::new();
                fields.insert("spanId".into(), json!(hex(&e.id, e.upper)));
                fields.insert("parentId".into(), parent.map_or(Value::Null, |p| json!(hex(&p, !e.upper))));
                fields.insert("startTime".into(), start);
                fields.insert("duration".into(), duration);
                fields.insert("message".into(), json!("step"));
                fields.insert("level".into(), json!(if e.is_log { "INFO" } else { "TRACE" }));
                fields.insert("isPartial".into(), json!(false));
                Value::Object(fields)
            })
            .collect();
        let text = serde_json::to_vec(&json!({ "events": body })).unwrap();
        let events = EventsBody::from_slice(&text).unwrap().events;
        let trace = "0af7651916cd43dd8448eb211c80319c";
        let run = RunInfo::new("run_rt", Some(trace), RunState::Ended { finished_at: None });
        let mode = if spans_mode { LogsMode::Spans } else { LogsMode::SpanEvents };
        let conversion = convert_events(events, &run, mode, &NothingExported);
        prop_assert!(conversion.invalid.is_empty(), "{:?}", conversion.invalid);

        let by_id: HashMap<[u8; 8], &OtlpSpan> = conversion
            .spans
            .iter()
            .map(|s| (span_id(&s.span).to_bytes(), &s.span))
            .collect();
        let otlp: HashMap<Vec<u8>, OtlpSpan> = through_protobuf(&conversion)
            .into_iter()
            .map(|s| (s.span_id.clone(), s))
            .collect();
        let in_run: HashMap<[u8; 8], &Valid> = elements.iter().map(|e| (e.id, e)).collect();
        let span_parent = |p: &[u8; 8]| in_run.get(p).is_some_and(|e| !e.is_log);
        for (e, parent) in elements.iter().zip(&parents) {
            let folded = e.is_log && !spans_mode && parent.as_ref().is_some_and(span_parent);
            if folded {
                // An event named `log` on its parent, at the log's exact time.
                let host = by_id[&parent.unwrap()];
                let covering = conversion.spans.iter().find(|s| s.covers.contains(&SpanId::from_bytes(e.id)));
                prop_assert_eq!(covering.map(|s| span_id(&s.span).to_bytes()), Some(parent.unwrap()));
                let event = host.events.iter().find(|ev| {
                    ev.attributes.iter().any(|kv| {
                        kv.key == "trigger.span_id"
                            && matches!(proto::value(kv), Some(Otlp::StringValue(v)) if v.eq_ignore_ascii_case(&hex(&e.id, false)))
                    })
                });
                prop_assert!(event.is_some(), "log {} is an event on its parent", hex(&e.id, false));
                let event = event.unwrap();
                prop_assert_eq!(event.name.as_str(), "log");
                prop_assert_eq!(event.time_unix_nano, e.start);
                prop_assert!(!by_id.contains_key(&e.id));
                continue;
            }
            let data = by_id.get(&e.id);
            prop_assert!(data.is_some(), "element {} has its span", hex(&e.id, false));
            let data = data.unwrap();
            let end = if e.is_log { e.start } else { e.start.saturating_add(e.duration) };
            prop_assert_eq!(format!("{}", trace_id(data)), trace);
            prop_assert_eq!(data.start_time_unix_nano, e.start);
            prop_assert_eq!(data.end_time_unix_nano, end);
            prop_assert_eq!(parent_id(data).to_bytes(), parent.unwrap_or([0; 8]));
            // C6: a parent that is not a span of this response (absent, or a log) is remote.
            let remote = parent.is_some_and(|p| !span_parent(&p));
            prop_assert_eq!(data.flags & proto::IS_REMOTE != 0, remote);

            let wire = &otlp[&e.id.to_vec()];
            prop_assert_eq!(&wire.trace_id, &TraceId::from_hex(trace).unwrap().to_bytes().to_vec());
            prop_assert_eq!(wire.start_time_unix_nano, e.start);
            prop_assert_eq!(wire.end_time_unix_nano, end);
            prop_assert_eq!(&wire.parent_span_id, &parent.map_or(Vec::new(), |p| p.to_vec()));
            prop_assert_eq!(wire.flags, if remote { 0x301 } else { 0x101 });
        }
    }
}

/// The keys a flattening should produce, in order: every leaf path (an empty object is a
/// leaf), joined with dots; a non-object, non-null value is the single key `properties`.
fn leaf_paths(value: &Value) -> Vec<String> {
    fn walk(prefix: &str, map: &Map<String, Value>, out: &mut Vec<String>) {
        for (key, value) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Object(inner) if !inner.is_empty() => walk(&path, inner, out),
                _ => out.push(path),
            }
        }
    }
    let mut out = Vec::new();
    match value {
        Value::Object(map) => walk("", map, &mut out),
        Value::Null => {}
        _ => out.push("properties".to_owned()),
    }
    out
}

proptest! {
    #![proptest_config(config(400))]

    /// Flattening never emits a key twice, keeps what was already there, and emits exactly the
    /// first occurrence of every leaf path (`{"a.b":1,"a":{"b":2}}` gives one `a.b`).
    #[test]
    fn flattening_never_duplicates_keys(properties in arb_json(), marker in any::<bool>()) {
        let mut out = Vec::new();
        if marker {
            out.push(proto::kv("trigger.time_invalid", Otlp::BoolValue(true)));
        }
        flatten_properties(&properties, &mut out);
        keys_are_unique(&out)?;
        let mut expected: Vec<String> = Vec::new();
        if marker {
            expected.push("trigger.time_invalid".into());
        }
        for path in leaf_paths(&properties) {
            if !expected.contains(&path) {
                expected.push(path);
            }
        }
        let got: Vec<&str> = out.iter().map(|kv| kv.key.as_str()).collect();
        prop_assert_eq!(got, expected.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Hashing malformed ids is deterministic and never gives the invalid (all-zero) id; valid
    /// ids parse to their bytes whatever their case; derived trace ids are stable and non-zero.
    #[test]
    fn id_hashing_is_deterministic_and_never_zero(
        text in prop_oneof![".{0,40}", "[0-9a-fA-F]{14,18}", "0{16}", "[0-9a-fA-F]{16}"],
    ) {
        match span_identity(&text) {
            None => prop_assert!(text.is_empty()),
            Some(identity) => {
                prop_assert_eq!(Some(identity), span_identity(&text), "stable");
                prop_assert_ne!(identity.id(), SpanId::INVALID);
                let hex16 = text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit());
                let zero = text.bytes().all(|b| b == b'0');
                match identity {
                    SpanIdentity::Parsed(id) => {
                        prop_assert!(hex16 && !zero);
                        prop_assert_eq!(format!("{id}"), text.to_lowercase());
                        prop_assert_eq!(span_identity(&text.to_uppercase()), Some(identity));
                    }
                    SpanIdentity::Derived(_) => prop_assert!(!hex16 || zero),
                }
            }
        }
        let trace = derive_trace_id(&text);
        prop_assert_eq!(trace, derive_trace_id(&text));
        prop_assert_ne!(trace, TraceId::INVALID);
    }
}
