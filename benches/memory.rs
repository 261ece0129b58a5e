//! Where the memory of one big response goes (issue 6, item 4, the RSS target): live heap bytes,
//! counted by a global allocator, at each stage of the daemon's per-response path for the same
//! generated 25,000-event body as benches/convert.rs: the body, the parsed `EventsBody`, the
//! conversion (while the parsed events are still alive inside it, and after), the OTLP request,
//! and its protobuf bytes. Also the peak of live bytes across the whole path.
//!
//! `cargo bench --bench memory`. A report, not a test.

#[path = "support/realistic.rs"]
mod realistic;

use prost::Message;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use trigger_otel_bridge::config::LogsMode;
use trigger_otel_bridge::convert::otlp::{export_request, ResourceSettings};
use trigger_otel_bridge::convert::{convert_events, NothingExported, RunInfo, RunState};
use trigger_otel_bridge::trigger::model::EventsBody;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1048576.0
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    const EVENTS: usize = 25_000;
    let body = realistic::run_body("run_cm1benchmark01", EVENTS, 2026);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let live = || LIVE.load(Ordering::Relaxed);
    println!(
        "{EVENTS} events, body {:.1} MiB (live bytes above the body are what each stage holds)",
        mib(body.len())
    );

    let events = EventsBody::from_slice(&body).unwrap().events;
    let parsed = live() - base;
    println!(
        "  parsed EventsBody:               {:>7.1} MiB ({:.1}x the body, {} bytes per event)",
        mib(parsed),
        parsed as f64 / body.len() as f64,
        parsed / EVENTS
    );

    let run = RunInfo::new(
        "run_cm1benchmark01",
        None,
        RunState::Ended {
            finished_at: Some(realistic::BASE_NS + 3_600_000_000_000),
        },
    );
    let conversion = convert_events(events, &run, LogsMode::SpanEvents, &NothingExported);
    let peak_convert = PEAK.load(Ordering::Relaxed) - base;
    let converted = live() - base;
    println!(
        "  peak while converting:           {:>7.1} MiB (parsed events and spans alive together)",
        mib(peak_convert)
    );
    println!(
        "  conversion ({} spans):        {:>7.1} MiB ({} bytes per span); the parsed events are freed",
        conversion.spans.len(),
        mib(converted),
        converted / conversion.spans.len().max(1)
    );

    let request = export_request(conversion.spans, &ResourceSettings::default());
    let requested = live() - base;
    println!("  OTLP request (proto structs):    {:>7.1} MiB", mib(requested));
    let encoded = request.encode_to_vec();
    println!(
        "  + protobuf bytes:                {:>7.1} MiB ({:.1} MiB of them the encoding)",
        mib(live() - base),
        mib(encoded.len())
    );
    drop(request);
    println!(
        "  peak of the whole path:          {:>7.1} MiB above the body ({:.1}x the body, {:.1}x with it)",
        mib(PEAK.load(Ordering::Relaxed) - base),
        (PEAK.load(Ordering::Relaxed) - base) as f64 / body.len() as f64,
        (PEAK.load(Ordering::Relaxed) - base + body.len()) as f64 / body.len() as f64
    );
    drop(encoded);
}
