//! Idle scale (issue 6, item 4): 10,000 watched runs whose events never change, within the
//! default request budget of 1,200 a minute. The built `trigger-otel-bridge run` runs as a child
//! process against the test kit's fake API on loopback serving tiny running runs (EXECUTING; a
//! partial root, one finished span and one log each) and its OTLP receiver in counting mode.
//!
//! After a warm-up it measures, over a window: the bridge's CPU (share of one core, from
//! /proc/<pid>/stat), its RSS and peak RSS (/proc/<pid>/status), and the requests the fake API
//! received, per minute and in the busiest 60 s of the whole run (the budget: 1,200 a minute plus
//! the limiter's 2 s burst).
//!
//! `cargo bench --bench idle_scale`; `IDLE_RUNS`, `IDLE_WARMUP_S` (default 60) and
//! `IDLE_MEASURE_S` (default 120) change the scale and the windows. A report, not a test.

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::fake_api::{FakeApi, Request};
use support::otlp_receiver::Receiver;
use support::{daemon, generate, process};

const BUDGET_PER_MINUTE: u32 = 1200;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A small run that is still executing: the root is partial (held back), one child span finished
/// (exported on the first poll), one log under it (folded into it).
fn tiny_running_run(run_id: &str, i: usize) -> Value {
    let id = |n: usize| format!("{:08x}{:08x}", i as u32 + 1, n as u32 + 1);
    let start = 1_758_630_768_120_000_000u64 + i as u64 * 1_000_000;
    json!({"events": [
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
    ]})
}

/// Requests that arrived in `[from, to)`.
fn between(requests: &[Request], from: Instant, to: Instant) -> usize {
    requests.iter().filter(|r| r.at >= from && r.at < to).count()
}

/// The most requests in any window of `window` that lies inside `[from, to)`.
fn max_in_window(requests: &[Request], from: Instant, to: Instant, window: Duration) -> usize {
    let times: Vec<Instant> = requests
        .iter()
        .map(|r| r.at)
        .filter(|t| *t >= from && *t < to)
        .collect();
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let runs = env_or("IDLE_RUNS", 10_000) as usize;
    let warmup = Duration::from_secs(env_or("IDLE_WARMUP_S", 60));
    let window = Duration::from_secs(env_or("IDLE_MEASURE_S", 120));

    let api = FakeApi::start([]).await;
    let mut ids = Vec::with_capacity(runs);
    let mut body_bytes = 0;
    for i in 0..runs {
        let id = format!("run_idle{i:06}");
        let events = tiny_running_run(&id, i);
        body_bytes = body_bytes.max(serde_json::to_vec(&events).unwrap().len());
        api.add(generate::fake_run_of(&id, "process-order", events, true));
        ids.push(id);
    }
    let receiver = Receiver::counting().await;
    let dir = process::work_dir("idle_scale");
    let mut config = daemon::wired(&api.url(), &receiver.grpc_endpoint(), &dir.join("state.db"), &ids);
    config.trigger.requests_per_minute = BUDGET_PER_MINUTE;
    config.log.level = "warn".to_owned();
    let config = process::write_config(&dir, "bridge.toml", &config);
    println!(
        "idle scale: {runs} running runs (events body {body_bytes} bytes each, never changing), budget {BUDGET_PER_MINUTE} requests/min, default poll intervals (5 s, backing off to 60 s), concurrency 8; warm-up {warmup:?}, window {window:?}; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let started = Instant::now();
    let mut child = process::bridge(&["run"], &config, &dir.join("bridge.log"))
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut first_request: Option<Duration> = None;
    let mut ticks = 0u64;
    while started.elapsed() < warmup {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if first_request.is_none() && api.request_count() > 0 {
            first_request = Some(started.elapsed());
        }
        ticks += 1;
        if ticks.is_multiple_of(100) {
            let u = process::usage(pid).unwrap_or_default();
            println!(
                "  warm-up {:>4.0} s: {} requests, {} spans received, RSS {:.1} MiB, CPU {:.2} s",
                started.elapsed().as_secs_f64(),
                api.request_count(),
                receiver.recorder.span_count(),
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
    let spans_before = receiver.recorder.span_count();
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
    let seen = api.requests();
    let requests = between(&seen, window_start, window_end);
    let per_minute = requests as f64 / (elapsed / 60.0);
    let busiest = max_in_window(&seen, started, window_end, Duration::from_secs(60));
    let by_kind = |kind: fn(&str) -> bool| seen.iter().filter(|r| kind(&r.path)).count();
    let status = process::terminate(&mut child, Duration::from_secs(20)).await;

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
        by_kind(|path| path.ends_with("/events")),
        by_kind(|path| path.ends_with("/trace")),
        by_kind(|path| path.starts_with("/api/v3/runs/"))
    );
    println!(
        "  spans received: {} in total, {} in the window; the bridge stopped with {status:?}",
        receiver.recorder.span_count(),
        receiver.recorder.span_count() - spans_before
    );
    api.stop().await;
    receiver.stop().await;
}
