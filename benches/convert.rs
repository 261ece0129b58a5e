//! The converter on one core (issue 6, item 4): a generated 25,000-event run body (the cloud
//! store's cap; ~70 % spans, 30 % logs, span events on 10 %), in events per second.
//!
//! - `full_path`: body bytes → `EventsBody` → `convert_events` → `export_request` → OTLP
//!   protobuf bytes, the work the daemon does per response before the exporter compresses it.
//! - the floor, measured in the same bench: `floor/parse` (the body into the typed structs
//!   alone) and `floor/encode` (the already-built `ExportTraceServiceRequest` to protobuf
//!   alone). Target: `full_path` within 2× of their sum.
//! - stages, to see where the rest goes: `stage/convert_events`, `stage/export_request`, and
//!   `info/gzip` (what the exporter's default compression adds on top).
//!
//! `cargo bench --bench convert` runs it and prints the full path / floor ratio at the end
//! (from criterion's estimates of this run; after a filtered run, the others are older).
//! BENCHMARKS.md has the figures.

#[path = "support/realistic.rs"]
mod realistic;

use criterion::{BatchSize, Criterion, Throughput};
use prost::Message;
use std::hint::black_box;
use std::io::Write;
use std::time::Duration;
use trigger_otel_bridge::config::LogsMode;
use trigger_otel_bridge::convert::otlp::{export_request, ResourceSettings};
use trigger_otel_bridge::convert::{convert_events, BridgeSpan, NothingExported, RunInfo, RunState};
use trigger_otel_bridge::trigger::model::{EventsBody, RawEvent};

const EVENTS: usize = 25_000;
const RUN_ID: &str = "run_cm1benchmark01";
const TRACE_ID: &str = "a4c123b1612dd272d1371c17149d4395";
const GROUP: &str = "convert_25k";

fn run_info() -> RunInfo<'static> {
    RunInfo::new(
        RUN_ID,
        Some(TRACE_ID),
        RunState::Ended {
            finished_at: Some(realistic::BASE_NS + 3_600_000_000_000),
        },
    )
}

fn convert(events: Vec<RawEvent>) -> Vec<BridgeSpan> {
    convert_events(events, &run_info(), LogsMode::SpanEvents, &NothingExported).spans
}

/// The whole path, bytes in, protobuf bytes out.
fn full_path(body: &[u8], settings: &ResourceSettings) -> Vec<u8> {
    let events = EventsBody::from_slice(body).expect("generated body parses").events;
    export_request(convert(events), settings).encode_to_vec()
}

fn benches(c: &mut Criterion) {
    let body = realistic::run_body(RUN_ID, EVENTS, 2026);
    let settings = ResourceSettings::default();
    let events = EventsBody::from_slice(&body).unwrap().events;
    let spans = convert(events.clone());
    let request = export_request(spans.clone(), &settings);
    let encoded = request.encode_to_vec();
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

    let mut group = c.benchmark_group(GROUP);
    group
        .throughput(Throughput::Elements(EVENTS as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(12));
    group.bench_function("full_path", |b| b.iter(|| full_path(black_box(&body), &settings)));
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
    let (Some(full), Some(parse), Some(encode)) =
        (mean_ns("full_path"), mean_ns("floor/parse"), mean_ns("floor/encode"))
    else {
        return;
    };
    let per_s = |ns: f64| EVENTS as f64 / (ns / 1e9);
    println!("\nsummary (criterion's estimates of this run, {EVENTS} events per iteration):");
    println!("  full path     {:>9.2} ms  {:>10.0} events/s", full / 1e6, per_s(full));
    println!(
        "  floor: parse  {:>9.2} ms  {:>10.0} events/s",
        parse / 1e6,
        per_s(parse)
    );
    println!(
        "  floor: encode {:>9.2} ms  {:>10.0} events/s",
        encode / 1e6,
        per_s(encode)
    );
    println!(
        "  floor (sum)   {:>9.2} ms  {:>10.0} events/s",
        (parse + encode) / 1e6,
        per_s(parse + encode)
    );
    println!(
        "  full path / floor = {:.2}x (target: within 2x)",
        full / (parse + encode)
    );
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    summary();
}
