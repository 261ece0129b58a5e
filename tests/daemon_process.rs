//! The daemon as a process: killed with SIGKILL at random moments while it exports thousands
//! of spans (and, with `otlp_logs`, log records) and restarted on the same state file (nothing lost, duplicates bounded by one batch
//! per kill), and stopped with SIGTERM mid-export (exit 0 in time, state committed, nothing sent
//! twice after a restart).

mod support;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::daemon;
use support::fake_api::{FakeApi, SECRET_KEY};
use support::generate;
use support::otlp_receiver::Receiver;
use support::process::{self, terminate, wait_until};
use tokio::process::Child;
use trigger_otel_bridge::config::LogsMode;

const BATCH: usize = 50;

fn write_config(dir: &Path, api: &FakeApi, receiver: &Receiver, runs: &[String], max_pending: usize) -> PathBuf {
    write_config_with_logs(dir, api, receiver, runs, max_pending, LogsMode::SpanEvents)
}

fn write_config_with_logs(
    dir: &Path,
    api: &FakeApi,
    receiver: &Receiver,
    runs: &[String],
    max_pending: usize,
    logs: LogsMode,
) -> PathBuf {
    let mut config = daemon::config_at(&api.url(), &receiver.grpc_endpoint(), &dir.join("state.db"), runs);
    config.runs.max_poll_interval = Duration::from_millis(300);
    config.runs.settle = Duration::from_millis(200);
    config.conversion.logs = logs;
    config.export.max_batch_spans = BATCH;
    config.export.max_pending_spans = max_pending;
    process::write_config(dir, "bridge.toml", &config)
}

fn spawn(config: &Path, log: &Path) -> Child {
    process::bridge(&["run"], config, log).spawn().unwrap()
}

/// Received spans by (run id attribute, span id), with how often each arrived.
fn received(receiver: &Receiver) -> HashMap<(String, Vec<u8>), usize> {
    let mut counts = HashMap::new();
    for span in receiver.recorder.spans() {
        *counts
            .entry((attribute(&span.attributes, "trigger.run_id"), span.span_id.clone()))
            .or_default() += 1;
    }
    counts
}

/// Received log records by (run id, the log's own Trigger.dev span id), with how often each
/// arrived.
fn received_logs(receiver: &Receiver) -> HashMap<(String, String), usize> {
    let mut counts = HashMap::new();
    for record in receiver.recorder.logs() {
        let key = (
            attribute(&record.attributes, "trigger.run_id"),
            attribute(&record.attributes, "trigger.span_id"),
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

fn attribute(attributes: &[KeyValue], key: &str) -> String {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .map(|v| format!("{:?}", v.value))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
    crash_loop(LogsMode::SpanEvents, 10, 2026).await;
}

/// The same with `conversion.logs = "otlp_logs"`: every log record arrives as an OTLP log record
/// (with the run's trace and its parent span), none lost across the kills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_log_record() {
    crash_loop(LogsMode::OtlpLogs, 6, 2027).await;
}

/// Kill the daemon with SIGKILL `kills_wanted` times at random moments while it exports 8 runs,
/// then let it finish: everything arrived, duplicates at most one batch per kill.
async fn crash_loop(logs_mode: LogsMode, kills_wanted: usize, seed: u64) {
    let otlp_logs = logs_mode == LogsMode::OtlpLogs;
    let elements = 600;
    let (runs, served) = generate::fake_runs("run_crash", 8, elements);
    let api = FakeApi::start(served).await;
    let receiver = Receiver::start().await;
    // A collector that takes a moment per batch, so kills land while batches are in flight.
    *receiver.recorder.delay.lock().unwrap() = Duration::from_millis(60);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with_logs(dir.path(), &api, &receiver, &runs, 100_000, logs_mode);
    let log = dir.path().join("bridge.log");
    let expected = runs.len() * generate::span_count(elements);
    let expected_logs = if otlp_logs {
        runs.len() * (elements - generate::span_count(elements))
    } else {
        0
    };
    let done = || received(&receiver).len() >= expected && received_logs(&receiver).len() >= expected_logs;

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut kills = 0;
    let starts = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .matches("daemon starting")
            .count()
    };
    while kills < kills_wanted {
        let mut child = spawn(&config, &log);
        // Kill only a daemon that got going: a kill before it logged its start would make the
        // start count, and the test's idea of progress, wrong.
        wait_until("the daemon to start", Duration::from_secs(10), || {
            starts(&log) == kills + 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..700))).await;
        child.kill().await.unwrap(); // SIGKILL
        kills += 1;
        if done() {
            break;
        }
    }
    // Finally let it run to the end (and install its signal handlers before the SIGTERM).
    let mut child = spawn(&config, &log);
    wait_until("the last start", Duration::from_secs(10), || starts(&log) == kills + 1).await;
    wait_until("every span and log record", Duration::from_secs(45), done).await;
    let status = terminate(&mut child, Duration::from_secs(15)).await.unwrap();
    assert!(status.success(), "{status:?}");

    let counts = received(&receiver);
    assert_eq!(counts.len(), expected, "every finished span arrived, none missing");
    let log_counts = received_logs(&receiver);
    assert_eq!(
        log_counts.len(),
        expected_logs,
        "every log record arrived, none missing"
    );
    if otlp_logs {
        let spans = receiver.recorder.spans();
        assert!(
            spans.iter().flat_map(|s| &s.events).all(|e| e.name != "log"),
            "otlp_logs: no log also became a span event"
        );
        // Each record names its parent span (a span that arrived) and that span's trace.
        let span_traces: HashMap<Vec<u8>, Vec<u8>> =
            spans.iter().map(|s| (s.span_id.clone(), s.trace_id.clone())).collect();
        for record in receiver.recorder.logs() {
            let trace = span_traces
                .get(&record.span_id)
                .expect("the record's span id is a span");
            assert_eq!(&record.trace_id, trace, "the record is in its span's trace");
        }
    }
    let duplicates: usize = counts.values().chain(log_counts.values()).map(|n| n - 1).sum();
    println!(
        "crash test ({logs_mode}): {kills} SIGKILLs, {expected} spans, {expected_logs} log records, {duplicates} duplicates (bound {})",
        kills * BATCH
    );
    assert!(
        duplicates <= kills * BATCH,
        "{duplicates} duplicates after {kills} kills exceed one batch ({BATCH}) per kill"
    );
    assert!(
        kills >= kills_wanted || duplicates == 0,
        "the export finished before {kills_wanted} kills: make it slower"
    );
    api.stop().await;
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_export_exits_cleanly_and_a_restart_sends_nothing_twice() {
    let elements = 300;
    let (runs, served) = generate::fake_runs("run_term", 4, elements);
    let api = FakeApi::start(served).await;
    let receiver = Receiver::start().await;
    *receiver.recorder.delay.lock().unwrap() = Duration::from_millis(150);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &api, &receiver, &runs, 300);
    let log = dir.path().join("bridge.log");
    let expected = runs.len() * generate::span_count(elements);

    let mut child = spawn(&config, &log);
    wait_until("the first batches", Duration::from_secs(20), || {
        received(&receiver).len() >= 2 * BATCH
    })
    .await;
    let asked = Instant::now();
    let status = terminate(&mut child, Duration::from_secs(15))
        .await
        .expect("exits within the shutdown deadline");
    assert_eq!(status.code(), Some(0), "{}", std::fs::read_to_string(&log).unwrap());
    assert!(asked.elapsed() < Duration::from_secs(11), "took {:?}", asked.elapsed());
    let before_restart = received(&receiver).len();
    assert!(before_restart < expected, "the test must stop the daemon mid-export");

    let mut child = spawn(&config, &log);
    wait_until("every span", Duration::from_secs(45), || {
        received(&receiver).len() >= expected
    })
    .await;
    let status = terminate(&mut child, Duration::from_secs(15)).await.unwrap();
    assert!(status.success());
    let counts = received(&receiver);
    assert_eq!(counts.len(), expected);
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    assert_eq!(duplicates, 0, "the restart sent {duplicates} spans twice");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(!log_text.contains(SECRET_KEY), "the key leaked into the log");
    api.stop().await;
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_and_removes_runs_and_a_bad_reload_keeps_the_old_config() {
    let ids = ["run_reload_a", "run_reload_b", "run_reload_c"].map(String::from);
    // Runs that keep running, so they stay watched until removed.
    let api = FakeApi::start(ids.iter().map(|id| generate::fake_run(id, "t", 5, true))).await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &api, &receiver, &ids[..2], 100_000);
    let log = dir.path().join("bridge.log");
    let mut child = spawn(&config, &log);
    let polls = |run: &str| api.requests_to(&format!("/api/v1/runs/{run}/events"));
    wait_until("a and b polled", Duration::from_secs(15), || {
        polls("run_reload_a") > 0 && polls("run_reload_b") > 0
    })
    .await;
    assert_eq!(polls("run_reload_c"), 0);

    // Swap a for c, then SIGHUP.
    write_config(dir.path(), &api, &receiver, &ids[1..], 100_000);
    process::signal(&child, libc::SIGHUP);
    wait_until("c polled", Duration::from_secs(15), || polls("run_reload_c") > 0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a_after_removal = polls("run_reload_a");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        polls("run_reload_a"),
        a_after_removal,
        "a removed run is not polled any more"
    );

    // A broken config: refused, the old one stays in effect.
    std::fs::write(&config, "[runs]\nconcurrency = \"many\"\npol_interval = \"1s\"\n").unwrap();
    process::signal(&child, libc::SIGHUP);
    let refused = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("keeping the running one")
    };
    wait_until("the refusal logged", Duration::from_secs(10), refused).await;
    let (b, c) = (polls("run_reload_b"), polls("run_reload_c"));
    wait_until("b and c still polled", Duration::from_secs(10), || {
        polls("run_reload_b") > b && polls("run_reload_c") > c
    })
    .await;
    // Both errors, one line each, each naming its key.
    let text = std::fs::read_to_string(&log).unwrap();
    let refusals: Vec<&str> = text.lines().filter(|l| l.contains("keeping the running one")).collect();
    assert_eq!(refusals.len(), 2, "{refusals:#?}");
    assert!(refusals.iter().any(|l| l.contains("runs.concurrency")), "{refusals:#?}");
    assert!(
        refusals.iter().any(|l| l.contains("runs.pol_interval")),
        "{refusals:#?}"
    );

    let status = terminate(&mut child, Duration::from_secs(15)).await.unwrap();
    assert!(status.success());
    api.stop().await;
    receiver.stop().await;
}
