//! The converter on one core (issue 6, item 4): a generated 25,000-event run body (the cloud
//! store's cap; ~70 % spans, 30 % logs, span events on 10 %), in events per second.
//!
//! - `full_path`: body bytes → `EventsBody::from_slice` → `convert_events` →
//!   `encode_export_request` (the spans encoded in place) → OTLP protobuf bytes, the work the
//!   daemon does per response before the exporter compresses it.
//! - `full_path_via_request`: the same through `export_request(..).encode_to_vec()`, the request
//!   message that `convert` and the JSON outputs build.
//! - the naive floor of issue 12 (`support/naive_floor.rs`): `floor/naive`, a serde-derive parse
//!   of only the fields the mapping reads, borrowed from the body, then `opentelemetry-proto`
//!   spans with the same spans, attributes and span events, prost-encoded; and its halves
//!   `floor/naive_parse` and `floor/naive_build_encode`. Target: `full_path` at or below it.
//!   The counts printed first (spans, attributes, events, bytes) show the two outputs compare.
//! - the old floor: `floor/parse` (the body into the bridge's lenient structs alone) and
//!   `floor/encode` (the already-built `ExportTraceServiceRequest` to protobuf alone). Old
//!   target: `full_path` within 2× of their sum.
//! - stages, to see where the rest goes: `stage/convert_events`, `stage/export_request`,
//!   `stage/encode_export_request`, and `info/gzip` (what the exporter's default compression adds
//!   on top).
//!
//! `cargo bench --bench convert` runs it and prints the ratios at the end (from criterion's
//! estimates of this run; after a filtered run, the others are older; none after `--test`).
//! BENCHMARKS.md has the figures.

#[path = "support/naive_floor.rs"]
mod naive_floor;
#[path = "support/realistic.rs"]
mod realistic;

use criterion::{BatchSize, Criterion, Throughput};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::borrow::Cow;
use std::hint::black_box;
use std::io::Write;
use std::time::Duration;
use trigger_otel_bridge::config::LogsMode;
use trigger_otel_bridge::convert::otlp::{encode_export_request, export_request, ResourceSettings};
use trigger_otel_bridge::convert::{convert_events, BridgeSpan, NothingExported, RunInfo, RunState};
use trigger_otel_bridge::trigger::model::{EventsBody, RawEvent};

const EVENTS: usize = 25_000;
const RUN_ID: &str = "run_cm1benchmark01";
const TRACE_ID: &str = "a4c123b1612dd272d1371c17149d4395";
const GROUP: &str = "convert_25k";
const FINISHED_AT: u64 = realistic::BASE_NS + 3_600_000_000_000;

fn run_info() -> RunInfo<'static> {
    RunInfo::new(
        RUN_ID,
        Some(TRACE_ID),
        RunState::Ended {
            finished_at: Some(FINISHED_AT),
        },
    )
}

fn convert(events: Vec<RawEvent>) -> Vec<BridgeSpan> {
    convert_events(events, &run_info(), LogsMode::SpanEvents, &NothingExported).spans
}

/// The whole path as the daemon runs it, bytes in, protobuf bytes out: the spans encoded in
/// place (what the sender does with each batch).
fn full_path(body: &[u8], settings: &ResourceSettings) -> Vec<u8> {
    let events = EventsBody::from_slice(body).expect("generated body parses").events;
    encode_export_request(&convert(events), settings)
}

/// The same through the request message (what `convert` and the JSON outputs build).
fn full_path_via_request(body: &[u8], settings: &ResourceSettings) -> Vec<u8> {
    let events = EventsBody::from_slice(body).expect("generated body parses").events;
    export_request(convert(events), settings).encode_to_vec()
}

fn naive_run() -> naive_floor::Run<'static> {
    naive_floor::Run {
        run_id: RUN_ID,
        trace_id: naive_floor::hex::<16>(TRACE_ID).expect("a hex trace id"),
        end: FINISHED_AT,
    }
}

/// Spans, their attributes, their events, and the events' attributes of a request.
fn counts(request: &ExportTraceServiceRequest) -> [usize; 4] {
    let spans = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans);
    spans.fold([0; 4], |[n, attributes, events, event_attributes], span| {
        [
            n + 1,
            attributes + span.attributes.len(),
            events + span.events.len(),
            event_attributes + span.events.iter().map(|e| e.attributes.len()).sum::<usize>(),
        ]
    })
}

/// A request's spans in one order (start, then id) and each span's events in one order (time,
/// then encoding), to compare two requests built in different orders.
fn normalized(request: &ExportTraceServiceRequest) -> Vec<Span> {
    let mut spans: Vec<Span> = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.iter().cloned())
        .collect();
    spans.sort_by(|a, b| (a.start_time_unix_nano, &a.span_id).cmp(&(b.start_time_unix_nano, &b.span_id)));
    for span in &mut spans {
        span.events
            .sort_by_cached_key(|e| (e.time_unix_nano, e.encode_to_vec()));
    }
    spans
}

/// What the naive floor gives beside the bridge, printed so a reader can check they compare.
fn compare_outputs(body: &[u8], bridge: &ExportTraceServiceRequest, bridge_bytes: usize, settings: &ResourceSettings) {
    let parsed = naive_floor::parse(body);
    let texts = parsed.events.iter().filter_map(|e| e.message.as_ref());
    let (borrowed, messages) = texts.fold((0, 0), |(b, n), m| {
        (b + matches!(m.0, Cow::Borrowed(_)) as usize, n + 1)
    });
    let naive = naive_floor::build(&parsed, &naive_run(), settings);
    let naive_bytes = naive_floor::build_encode(&parsed, &naive_run(), settings).len();
    println!("output (spans, span attributes, span events, event attributes, protobuf bytes):");
    for (name, request, bytes) in [("bridge", bridge, bridge_bytes), ("naive floor", &naive, naive_bytes)] {
        let [spans, attributes, events, event_attributes] = counts(request);
        println!("  {name:<12} {spans:>6} spans {attributes:>7} attributes {events:>6} events {event_attributes:>7} event attributes {bytes:>9} bytes");
    }
    let (ours, theirs) = (normalized(bridge), normalized(&naive));
    let differing = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count() + ours.len().abs_diff(theirs.len());
    println!(
        "  same spans as the bridge's up to the order of spans and of events: {} ({differing} of {} differ); \
         naive parse borrowed {borrowed} of {messages} messages",
        if differing == 0 { "yes" } else { "NO" },
        ours.len()
    );
}

fn benches(c: &mut Criterion) {
    let body = realistic::run_body(RUN_ID, EVENTS, 2026);
    let settings = ResourceSettings::default();
    let events = EventsBody::from_slice(&body).unwrap().events;
    let spans = convert(events.clone());
    let request = export_request(spans.clone(), &settings);
    let encoded = encode_export_request(&spans, &settings);
    assert_eq!(encoded, request.encode_to_vec(), "in-place encoding equals prost's");
    let logs = events
        .iter()
        .filter(|e| e.level.as_ref().is_some_and(|l| l != "TRACE"))
        .count();
    let with_events = events
        .iter()
        .filter(|e| {
            e.events
                .as_ref()
                .and_then(|v| v.as_array())
                .is_some_and(|a| !a.is_empty())
        })
        .count();
    println!(
        "input: {EVENTS} events ({} spans, {logs} logs, {with_events} with span events), body {} bytes; \
         output: {} OTLP spans, {} protobuf bytes",
        EVENTS - logs,
        body.len(),
        spans.len(),
        encoded.len()
    );
    compare_outputs(&body, &request, encoded.len(), &settings);
    let naive_parsed = naive_floor::parse(&body);
    let naive_run = naive_run();

    let mut group = c.benchmark_group(GROUP);
    group
        .throughput(Throughput::Elements(EVENTS as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(12));
    group.bench_function("full_path", |b| b.iter(|| full_path(black_box(&body), &settings)));
    group.bench_function("full_path_via_request", |b| {
        b.iter(|| full_path_via_request(black_box(&body), &settings))
    });
    group.bench_function("floor/naive", |b| {
        b.iter(|| naive_floor::floor(black_box(&body), &naive_run, &settings))
    });
    group.bench_function("floor/naive_parse", |b| b.iter(|| naive_floor::parse(black_box(&body))));
    group.bench_function("floor/naive_build_encode", |b| {
        b.iter(|| naive_floor::build_encode(black_box(&naive_parsed), &naive_run, &settings))
    });
    group.bench_function("floor/parse", |b| {
        b.iter(|| EventsBody::from_slice(black_box(&body)).unwrap())
    });
    group.bench_function("floor/encode", |b| b.iter(|| black_box(&request).encode_to_vec()));
    group.bench_function("stage/convert_events", |b| {
        b.iter_batched(|| events.clone(), convert, BatchSize::LargeInput)
    });
    group.bench_function("stage/export_request", |b| {
        b.iter_batched(
            || spans.clone(),
            |spans| export_request(spans, &settings),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("stage/encode_export_request", |b| {
        b.iter(|| encode_export_request(black_box(&spans), &settings))
    });
    group.bench_function("info/gzip", |b| {
        b.iter(|| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(black_box(&encoded)).unwrap();
            gz.finish().unwrap()
        })
    });
    group.finish();
}

/// Criterion's estimate (ns per iteration) of one function of this run, if it ran: the slope when
/// it sampled linearly (the figure it prints), else the mean.
fn mean_ns(function: &str) -> Option<f64> {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let path = format!(
        "{target}/criterion/{GROUP}/{}/new/estimates.json",
        function.replace('/', "_")
    );
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| value["mean"]["point_estimate"].as_f64())
}

fn summary() {
    let (Some(full), Some(naive), Some(parse), Some(encode)) = (
        mean_ns("full_path"),
        mean_ns("floor/naive"),
        mean_ns("floor/parse"),
        mean_ns("floor/encode"),
    ) else {
        return;
    };
    let per_s = |ns: f64| EVENTS as f64 / (ns / 1e9);
    let line = |name: &str, ns: f64| println!("  {name:<28} {:>9.2} ms  {:>10.0} events/s", ns / 1e6, per_s(ns));
    println!("\nsummary (criterion's estimates of this run, {EVENTS} events per iteration):");
    line("full path", full);
    if let Some(via_request) = mean_ns("full_path_via_request") {
        line("full path via the request", via_request);
    }
    line("naive floor", naive);
    for (name, function) in [
        ("naive floor: parse", "floor/naive_parse"),
        ("naive floor: build, encode", "floor/naive_build_encode"),
    ] {
        if let Some(ns) = mean_ns(function) {
            line(name, ns);
        }
    }
    line("old floor: parse", parse);
    line("old floor: encode", encode);
    line("old floor (sum)", parse + encode);
    println!(
        "  full path / naive floor = {:.2}x (target: at most 1.0x)",
        full / naive
    );
    println!(
        "  full path / old floor   = {:.2}x (target: within 2x)",
        full / (parse + encode)
    );
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    // `--test` runs each function once and leaves no estimates: the ones on disk are older.
    if std::env::args().any(|arg| arg == "--test") {
        println!("\nno summary after --test (criterion keeps no estimates of a test run)");
    } else {
        summary();
    }
}
