//! Freshness (issue 13): how long after a span ends it reaches the collector, with the daemon's
//! defaults (poll 5 s, quiet after 2 min, max 60 s, settle 30 s), runs that evolve while watched,
//! and an application sharing Trigger.dev's rate-limit bucket.
//!
//! Each run lasts 16–40 s: its root and attempt spans run throughout, and twelve child spans
//! start partial and finish one after another. A third of the runs complete; a third are
//! cancelled and the server reports their running spans cancelled (the ClickHouse store); a third
//! crash, fail, time out, expire or fail in the system (in turn), and their running spans stay
//! partial, exported by the bridge after `settle`. The fake API
//! serves them behind Trigger.dev's token bucket (750 tokens, +250 every 10 s), and an application
//! makes `FRESH_APP_RPM` requests a minute (default 600) with the same key.
//!
//! Reported: the delay from a span's end to its first arrival (p50, p95, max; the root spans
//! included), the delay from a crashed run's end to its partial spans' arrival, the bridge's
//! requests, and the application's 429s.
//!
//! `cargo bench --bench freshness`; `FRESH_RUNS=N` (default 50). In-process: it measures the code
//! it is built with (copy it into another checkout for a before/after). A report, not a test.
//!
//! `FRESH_DISCOVERY=realtime` or `list` (issue 15): the runs are not named in `runs.ids` but
//! created one after another over 20 s while the daemon runs, and discovered through the fake's
//! realtime stream (`discovery.source = "auto"`) or the list endpoint (`"list"`, every 30 s).
//! Also reported then: how long after its creation each run was first polled, how long after its
//! end the daemon learnt it (the state file's `ended_at`), and the REST requests spent on
//! discovery and status.

#[path = "../tests/support/mod.rs"]
mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::daemon::{wired, Running};
use support::fake_api::{FakeApi, FakeRun, RateLimit, SECRET_KEY};
use support::generate;
use support::otlp_receiver::Receiver;
use trigger_otel_bridge::daemon::DaemonOptions;

const BASE_NS: u64 = 1_765_000_000_000_000_000;
const CHILDREN: usize = 12;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ending {
    Completed,
    /// Cancelled; the store reports the running spans cancelled (finished).
    CancelledReported,
    /// Crashed; the running spans stay partial.
    CrashedPartial,
}

struct Child {
    id: String,
    start_ns: u64,
    /// Seconds after the start.
    ends_after: f64,
}

struct Script {
    id: String,
    root: String,
    attempt: String,
    children: Vec<Child>,
    lasts: f64,
    ending: Ending,
    /// The terminal status of a run that ends with its running spans left partial.
    failure: &'static str,
}

fn element(
    id: &str,
    parent: Option<&str>,
    run: &str,
    start_ns: u64,
    duration: u64,
    partial: bool,
    cancelled: bool,
) -> Value {
    json!({
        "spanId": id, "parentId": parent, "runId": run, "message": format!("span {id}"),
        "startTime": start_ns.to_string(), "duration": if partial { 0 } else { duration },
        "isError": false, "isCancelled": cancelled, "isPartial": partial, "level": "TRACE",
        "kind": "UNSPECIFIED", "attemptNumber": 1, "events": []
    })
}

impl Script {
    fn new(index: usize, rng: &mut StdRng) -> Script {
        let id = format!("run_fresh{index:04}");
        let lasts = rng.random_range(16.0..40.0);
        let mut ends: Vec<f64> = (0..CHILDREN).map(|_| rng.random_range(1.0..lasts)).collect();
        ends.sort_by(f64::total_cmp);
        let children = ends
            .into_iter()
            .enumerate()
            .map(|(n, ends_after)| Child {
                id: generate::span_id(&id, n + 2),
                start_ns: BASE_NS + (ends_after * 0.5 * 1e9) as u64,
                ends_after,
            })
            .collect();
        Script {
            root: generate::span_id(&id, 0),
            attempt: generate::span_id(&id, 1),
            ending: [Ending::Completed, Ending::CancelledReported, Ending::CrashedPartial][index % 3],
            failure: ["CRASHED", "FAILED", "SYSTEM_FAILURE", "TIMED_OUT", "EXPIRED"][index / 3 % 5],
            id,
            children,
            lasts,
        }
    }

    /// The run as the API serves it `elapsed` seconds after its start.
    fn at(&self, elapsed: f64) -> FakeRun {
        let ended = elapsed >= self.lasts;
        let ns = |secs: f64| (secs * 1e9) as u64;
        let (status, tail_cancelled, tail_partial) = match (ended, self.ending) {
            (false, _) => ("EXECUTING", false, true),
            (true, Ending::Completed) => ("COMPLETED", false, false),
            (true, Ending::CancelledReported) => ("CANCELED", true, false),
            // Every other terminal status, in turn: the end shows the same way (the own span).
            (true, Ending::CrashedPartial) => (self.failure, false, true),
        };
        let mut events = vec![
            element(
                &self.root,
                None,
                &self.id,
                BASE_NS,
                ns(self.lasts),
                !ended,
                self.ending == Ending::CancelledReported && ended,
            ),
            element(
                &self.attempt,
                Some(&self.root),
                &self.id,
                BASE_NS + 1_000_000,
                ns(self.lasts) - 1_000_000,
                tail_partial,
                tail_cancelled,
            ),
        ];
        for child in &self.children {
            let finished = elapsed >= child.ends_after;
            let duration = ns(child.ends_after) - (child.start_ns - BASE_NS);
            events.push(match finished {
                true => element(
                    &child.id,
                    Some(&self.attempt),
                    &self.id,
                    child.start_ns,
                    duration,
                    false,
                    false,
                ),
                false => element(
                    &child.id,
                    Some(&self.attempt),
                    &self.id,
                    child.start_ns,
                    duration,
                    tail_partial,
                    tail_cancelled,
                ),
            });
        }
        let mut run = generate::run(&self.id, "fresh-task", status, ended);
        if ended {
            run["finishedAt"] = generate::now_iso().into();
        }
        FakeRun {
            events: json!({ "events": events }),
            trace: None,
            run,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs = env_usize("FRESH_RUNS", 50);
    let app_rpm = env_usize("FRESH_APP_RPM", 600);
    let discovery = std::env::var("FRESH_DISCOVERY").unwrap_or_default();
    let discovered = matches!(discovery.as_str(), "realtime" | "list");
    // Discovered runs are created one after another over 20 s; named ones all exist at start.
    let created_after = |index: usize| match discovered {
        true => index as f64 * 20.0 / runs as f64,
        false => 0.0,
    };
    let mut rng = StdRng::seed_from_u64(13);
    let scripts: Vec<Script> = (0..runs).map(|i| Script::new(i, &mut rng)).collect();
    let api = FakeApi::start(scripts.iter().filter(|_| !discovered).map(|s| s.at(0.0))).await;
    api.rate_limit(RateLimit::TRIGGER_DEV);
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<&str> = match discovered {
        true => Vec::new(),
        false => scripts.iter().map(|s| s.id.as_str()).collect(),
    };
    let mut config = wired(
        &api.url(),
        &receiver.grpc_endpoint(),
        &dir.path().join("state.db"),
        &ids,
    );
    if discovered {
        config.discovery.enabled = true;
        config.discovery.tasks = vec!["fresh-task".into()];
        config.discovery.source = match discovery.as_str() {
            "list" => trigger_otel_bridge::config::DiscoverySource::List,
            _ => trigger_otel_bridge::config::DiscoverySource::Auto,
        };
    }
    let poll = config.runs.poll_interval;
    let settle = config.runs.settle;
    println!(
        "{runs} runs of 16–40 s, {CHILDREN} child spans each; poll {}, settle {}, quiet after {}; Trigger.dev's bucket; an application at {app_rpm}/min",
        humantime::format_duration(poll),
        humantime::format_duration(settle),
        humantime::format_duration(config.runs.quiet_after)
    );

    // The application, on the same key and bucket.
    trigger_otel_bridge::net::tls::install_crypto_provider();
    let app_429 = Arc::new(AtomicU64::new(0));
    let app_sent = Arc::new(AtomicU64::new(0));
    let app = {
        let (url, app_429, app_sent) = (api.url(), app_429.clone(), app_sent.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut tick = tokio::time::interval(Duration::from_secs(60) / app_rpm.max(1) as u32);
            loop {
                tick.tick().await;
                let sent = client
                    .get(format!("{url}/api/v3/runs/run_application"))
                    .bearer_auth(SECRET_KEY)
                    .send()
                    .await;
                app_sent.fetch_add(1, Ordering::Relaxed);
                if sent.is_ok_and(|r| r.status() == 429) {
                    app_429.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let started = Instant::now();
    let options = DaemonOptions::default();
    let tap = options.state_tap.clone();
    let daemon = Running::start(config, options);
    let mut created: Vec<Option<Instant>> = vec![None; runs];
    let mut ended_unix: Vec<Option<u64>> = vec![None; runs];
    // The runs evolve; each span's end and each run's end are recorded as they happen.
    let mut ended_at: HashMap<Vec<u8>, Instant> = HashMap::new();
    let mut partial_at_end: HashMap<Vec<u8>, Instant> = HashMap::new();
    let mut shown: Vec<usize> = vec![usize::MAX; runs];
    let longest = scripts.iter().map(|s| s.lasts).fold(0.0, f64::max);
    let latest = created_after(runs.saturating_sub(1));
    let deadline = Duration::from_secs_f64(longest + latest) + settle + poll * 3 + Duration::from_secs(10);
    while started.elapsed() < deadline {
        let now = Instant::now();
        for (index, script) in scripts.iter().enumerate() {
            let since_start = started.elapsed().as_secs_f64() - created_after(index);
            if since_start < 0.0 {
                continue;
            }
            if created[index].is_none() {
                created[index] = Some(now);
                if discovered {
                    api.add(script.at(0.0));
                }
            }
            let elapsed = since_start;
            if elapsed >= script.lasts && ended_unix[index].is_none() {
                ended_unix[index] = Some(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos() as u64,
                );
            }
            let finished = script.children.iter().filter(|c| elapsed >= c.ends_after).count();
            let state = finished + usize::from(elapsed >= script.lasts) * (CHILDREN + 1);
            if shown[index] == state {
                continue;
            }
            shown[index] = state;
            for child in script.children.iter().filter(|c| elapsed >= c.ends_after) {
                ended_at.entry(hex_bytes(&child.id)).or_insert(now);
            }
            if elapsed >= script.lasts {
                ended_at.entry(hex_bytes(&script.root)).or_insert(now);
                let tail = std::iter::once(&script.attempt).chain(
                    script
                        .children
                        .iter()
                        .filter(|c| c.ends_after > script.lasts)
                        .map(|c| &c.id),
                );
                for id in tail {
                    match script.ending {
                        Ending::CrashedPartial => partial_at_end.entry(hex_bytes(id)).or_insert(now),
                        _ => ended_at.entry(hex_bytes(id)).or_insert(now),
                    };
                }
            }
            api.set(script.at(elapsed));
        }
        let expected = runs * (CHILDREN + 2);
        if receiver.recorder.distinct_spans() >= expected && ended_unix.iter().all(Option::is_some) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    app.abort();
    let arrivals = receiver.recorder.first_arrival.lock().unwrap().clone();
    let delays = |ends: &HashMap<Vec<u8>, Instant>| {
        let mut delays: Vec<Duration> = ends
            .iter()
            .filter_map(|(id, end)| arrivals.get(id).map(|arrived| arrived.saturating_duration_since(*end)))
            .collect();
        delays.sort();
        (delays, ends.keys().filter(|id| !arrivals.contains_key(*id)).count())
    };
    let (finished, finished_missing) = delays(&ended_at);
    let (partial, partial_missing) = delays(&partial_at_end);
    println!(
        "finished spans: {} arrived, {finished_missing} missing; delay after their end p50 {:.1} s, p95 {:.1} s, max {:.1} s (targets p95 ≤ {:.0} s, max ≤ {:.0} s)",
        finished.len(),
        percentile(&finished, 0.5).as_secs_f64(),
        percentile(&finished, 0.95).as_secs_f64(),
        finished.last().copied().unwrap_or_default().as_secs_f64(),
        (poll + Duration::from_secs(2)).as_secs_f64(),
        (poll * 2 + Duration::from_secs(2)).as_secs_f64(),
    );
    println!(
        "spans left partial by a crash: {} arrived, {partial_missing} missing; after the run's end p50 {:.1} s, max {:.1} s (target ≤ settle + poll + 2 s = {:.0} s)",
        partial.len(),
        percentile(&partial, 0.5).as_secs_f64(),
        partial.last().copied().unwrap_or_default().as_secs_f64(),
        (settle + poll + Duration::from_secs(2)).as_secs_f64(),
    );
    let requests = api.request_count() as u64 - app_sent.load(Ordering::Relaxed);
    println!(
        "bridge: {requests} requests in {:.0} s ({:.0} a minute), {} status requests, {} answered 429; application: {} requests, {} answered 429",
        took.as_secs_f64(),
        requests as f64 / took.as_secs_f64() * 60.0,
        scripts.iter().map(|s| api.requests_to(&format!("/api/v3/runs/{}", s.id))).sum::<usize>(),
        api.rate_limited().len().saturating_sub(app_429.load(Ordering::Relaxed) as usize),
        app_sent.load(Ordering::Relaxed),
        app_429.load(Ordering::Relaxed),
    );
    if discovered {
        // Creation → first poll of the run's events.
        let requests = api.requests();
        let mut watched: Vec<Duration> = scripts
            .iter()
            .zip(&created)
            .filter_map(|(script, created)| {
                let path = format!("/api/v1/runs/{}/events", script.id);
                let first = requests.iter().find(|r| r.path == path)?;
                Some(first.at.saturating_duration_since((*created)?))
            })
            .collect();
        watched.sort();
        // End → the daemon recorded it (the state file's `ended_at`).
        let mut noticed: Vec<Duration> = scripts
            .iter()
            .zip(&ended_unix)
            .filter_map(|(script, ended)| {
                let recorded = tap
                    .with(|store| store.run(&script.id).ok().flatten()?.ended_at)
                    .flatten()?;
                Some(Duration::from_nanos(recorded.saturating_sub((*ended)?)))
            })
            .collect();
        noticed.sort();
        let lists = api.queries_to("/api/v1/runs").len();
        println!(
            "discovery ({discovery}): {} of {runs} runs watched, after their creation p50 {:.2} s, max {:.2} s; {} ends recorded, after the end p50 {:.2} s, max {:.2} s (targets ≤ 2 s); {lists} list requests ({} after the start-up check and listing), {} stream requests",
            watched.len(),
            percentile(&watched, 0.5).as_secs_f64(),
            watched.last().copied().unwrap_or_default().as_secs_f64(),
            noticed.len(),
            percentile(&noticed, 0.5).as_secs_f64(),
            noticed.last().copied().unwrap_or_default().as_secs_f64(),
            lists.saturating_sub(2),
            api.stream_requests().len(),
        );
    }
    daemon.stop().await;
    api.stop().await;
    receiver.stop().await;
}

fn hex_bytes(id: &str) -> Vec<u8> {
    (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&id[i..i + 2], 16).unwrap())
        .collect()
}
