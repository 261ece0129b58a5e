//! Idle scale (issue 6, item 4): 10,000 watched runs whose events never change, within the
//! default request budget of 1,200 a minute. The built `trigger-otel-bridge run` runs as a child
//! process against a fake API on loopback serving tiny running runs (EXECUTING; a partial root,
//! one finished span and one log each) and a counting OTLP receiver.
//!
//! After a warm-up it measures, over a window: the bridge's CPU (share of one core, from
//! /proc/<pid>/stat), its RSS and peak RSS (/proc/<pid>/status), and the requests the fake API
//! received, per minute and in the busiest 60 s of the whole run (the budget: 1,200 a minute plus
//! the limiter's 2 s burst).
//!
//! `cargo bench --bench idle_scale`; `IDLE_RUNS`, `IDLE_WARMUP_S` (default 60) and
//! `IDLE_MEASURE_S` (default 120) change the scale and the windows. A report, not a test.

#[path = "support/api.rs"]
mod api;
#[path = "support/collector.rs"]
mod collector;
#[path = "support/process.rs"]
mod process;

use axum::body::Bytes;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const BUDGET_PER_MINUTE: u32 = 1200;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small run that is still executing: the root is partial (held back), one child span finished
/// (exported on the first poll), one log under it (folded into it).
fn tiny_running_run(run_id: &str, i: usize) -> Bytes {
    let id = |n: usize| format!("{:08x}{:08x}", i as u32 + 1, n as u32 + 1);
    let start = 1_758_630_768_120_000_000u64 + i as u64 * 1_000_000;
    let body = json!({"events": [
        {"spanId": id(0), "parentId": null, "runId": run_id, "message": "watch-inventory",
         "style": {"icon": "task", "variant": "primary"}, "startTime": start.to_string(), "duration": 0,
         "isError": false, "isPartial": true, "isCancelled": false, "level": "TRACE", "kind": "UNSPECIFIED",
         "attemptNumber": null, "events": []},
        {"spanId": id(1), "parentId": id(0), "runId": run_id, "message": "GET https://inventory.internal/stock",
         "style": {"icon": "http", "variant": "primary"}, "startTime": (start + 5_000_000).to_string(),
         "duration": 42_000_000, "isError": false, "isPartial": false, "isCancelled": false, "level": "TRACE",
         "kind": "UNSPECIFIED", "attemptNumber": 1, "events": []},
        {"spanId": id(2), "parentId": id(1), "runId": run_id, "message": "stock level 12",
         "style": {"icon": "info", "variant": "primary"}, "startTime": (start + 20_000_000).to_string(),
         "duration": 0, "isError": false, "isPartial": false, "isCancelled": false, "level": "INFO",
         "kind": "UNSPECIFIED", "attemptNumber": 1, "events": []}
    ]});
    Bytes::from(serde_json::to_vec(&body).unwrap())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let runs = env_or("IDLE_RUNS", 10_000) as usize;
    let warmup = Duration::from_secs(env_or("IDLE_WARMUP_S", 60));
    let window = Duration::from_secs(env_or("IDLE_MEASURE_S", 120));

    let mut served = HashMap::new();
    let mut ids = Vec::with_capacity(runs);
    for i in 0..runs {
        let id = format!("run_idle{i:06}");
        served.insert(
            id.clone(),
            api::Served {
                events: tiny_running_run(&id, i),
                run: api::run_body(&id, false),
            },
        );
        ids.push(id);
    }
    let body_bytes = served.values().map(|s| s.events.len()).max().unwrap_or(0);
    let api = api::FakeApi::start(served).await;
    let collector = collector::Collector::start().await;
    let dir = process::work_dir("idle_scale");
    let id_list: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    let config = dir.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"[trigger]
api_url = "{api}"
requests_per_minute = {BUDGET_PER_MINUTE}
[runs]
ids = [{ids}]
[export]
endpoint = "{endpoint}"
protocol = "grpc"
[state]
path = "{state}"
[server]
listen = ""
[log]
level = "warn"
"#,
            api = api.url(),
            ids = id_list.join(", "),
            endpoint = collector.endpoint(),
            state = dir.join("state.db").display(),
        ),
    )
    .unwrap();
    println!(
        "idle scale: {runs} running runs (events body {body_bytes} bytes each, never changing), budget {BUDGET_PER_MINUTE} requests/min, default poll intervals (5 s, backing off to 60 s), concurrency 8; warm-up {warmup:?}, window {window:?}; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let started = Instant::now();
    let mut child = process::spawn_bridge(&config, &dir.join("bridge.log"), api::SECRET_KEY);
    let pid = child.id();
    let mut first_request: Option<Duration> = None;
    let mut ticks = 0u64;
    while started.elapsed() < warmup {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if first_request.is_none() && api.counters.total() > 0 {
            first_request = Some(started.elapsed());
        }
        ticks += 1;
        if ticks.is_multiple_of(100) {
            let u = process::usage(pid).unwrap_or_default();
            println!(
                "  warm-up {:>4.0} s: {} requests, {} spans received, RSS {:.1} MiB, CPU {:.2} s",
                started.elapsed().as_secs_f64(),
                api.counters.total(),
                collector.received.spans(),
                process::mib(u.rss_kib),
                u.cpu_s
            );
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the bridge exited ({status}): {}",
                std::fs::read_to_string(dir.join("bridge.log")).unwrap_or_default()
            );
        }
    }
    let before = process::usage(pid).expect("the bridge runs");
    let window_start = Instant::now();
    let spans_before = collector.received.spans();
    let mut peak_rss = before.rss_kib;
    while window_start.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(u) = process::usage(pid) {
            peak_rss = peak_rss.max(u.rss_kib);
        }
    }
    let window_end = Instant::now();
    let after = process::usage(pid).expect("the bridge runs");
    let elapsed = window_end.duration_since(window_start).as_secs_f64();
    let cpu_share = (after.cpu_s - before.cpu_s) / elapsed;
    let requests = api.counters.between(window_start, window_end);
    let per_minute = requests as f64 / (elapsed / 60.0);
    let busiest = api.counters.max_in_window(started, window_end, Duration::from_secs(60));
    let by_kind = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let status = process::stop(&mut child, Duration::from_secs(20));

    println!(
        "  first request {:.2} s after start",
        first_request.map_or(f64::NAN, |d| d.as_secs_f64())
    );
    println!(
        "  window of {elapsed:.0} s: CPU {:.2} s = {:.2}% of one core (target < 5%)",
        after.cpu_s - before.cpu_s,
        100.0 * cpu_share
    );
    println!(
        "  RSS {:.1} MiB at the end, {:.1} MiB highest sampled in the window, peak (VmHWM) {:.1} MiB over the whole run (target < 200 MB)",
        process::mib(after.rss_kib),
        process::mib(peak_rss),
        process::mib(after.peak_rss_kib)
    );
    println!(
        "  requests: {requests} in the window = {per_minute:.0}/min; busiest 60 s of the whole run: {busiest} (budget {BUDGET_PER_MINUTE}/min + 40 burst); totals: {} events, {} trace, {} retrieve-run",
        by_kind(&api.counters.events),
        by_kind(&api.counters.trace),
        by_kind(&api.counters.retrieve)
    );
    println!(
        "  spans received: {} in total, {} in the window; the bridge stopped with {status:?}",
        collector.received.spans(),
        collector.received.spans() - spans_before
    );
}
