//! A re-poll of a live run with nothing new (issue 12, item 4): the API has no cursor, so every
//! poll of a live run returns its whole body. On a generated 25,000-event body (~9 MB):
//!
//! - `reparse`: what a re-poll cost before an unchanged body was recognised, and still costs
//!   when the body changed: parse, fingerprint, and convert as a live run whose every span id
//!   was exported already (nothing comes out);
//! - `unchanged`: what a byte-identical body costs now: its hash ([`body_hash`]);
//! - `reference/ignored_any`: `serde_json::from_slice::<IgnoredAny>` of the same bytes, the
//!   issue's yardstick for a re-poll (target: ≤ 2× of it; an unchanged body ≈ the hash).
//!
//! `cargo bench --bench repoll`; BENCHMARKS.md has the figures.

#[path = "support/realistic.rs"]
mod realistic;

use criterion::{Criterion, Throughput};
use opentelemetry::trace::SpanId;
use serde::de::IgnoredAny;
use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;
use trigger_otel_bridge::config::LogsMode;
use trigger_otel_bridge::convert::{convert_events, NothingExported, RunInfo, RunState};
use trigger_otel_bridge::fetch::fingerprint::fingerprint;
use trigger_otel_bridge::trigger::model::{body_hash, EventsBody};

const EVENTS: usize = 25_000;
const RUN_ID: &str = "run_cm1benchmark01";
const TRACE_ID: &str = "a4c123b1612dd272d1371c17149d4395";

fn live() -> RunInfo<'static> {
    RunInfo::new(RUN_ID, Some(TRACE_ID), RunState::Live)
}

/// The re-poll as it was: everything parsed and judged again, nothing new out.
fn reparse(body: &[u8], exported: &HashSet<SpanId>) -> usize {
    let events = EventsBody::from_slice(body).expect("generated body parses").events;
    black_box(fingerprint(&events));
    let mut conversion = convert_events(events, &live(), LogsMode::SpanEvents, exported);
    conversion.take_records().len()
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let body = realistic::run_body(RUN_ID, EVENTS, 2026);
    let events = EventsBody::from_slice(&body).unwrap().events;
    let mut first = convert_events(events, &live(), LogsMode::SpanEvents, &NothingExported);
    let exported: HashSet<SpanId> = first
        .take_records()
        .iter()
        .flat_map(|record| record.covers().iter().copied())
        .collect();
    assert_eq!(
        reparse(&body, &exported),
        0,
        "a re-poll with everything exported exports nothing"
    );
    println!(
        "body {} bytes, {} span ids exported before the re-poll",
        body.len(),
        exported.len()
    );

    let mut group = criterion.benchmark_group("repoll_25k");
    group
        .throughput(Throughput::Bytes(body.len() as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8));
    group.bench_function("reparse", |b| b.iter(|| reparse(black_box(&body), &exported)));
    group.bench_function("unchanged", |b| b.iter(|| body_hash(black_box(&body))));
    group.bench_function("reference/ignored_any", |b| {
        b.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(&body)).unwrap())
    });
    group.finish();
    criterion.final_summary();
}
