//! The daemon in-process against the fake API and a real OTLP receiver: runs that progress from
//! executing to finished while watched, runs that end still partial, discovery and shards,
//! backpressure while the collector is down, and an API that fails often.

mod support;

use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::daemon::{config, fast_options, Fakes, Running};
use support::fake_api::{FakeApi, FakeRun};
use support::generate;
use support::hex;
use support::otlp_receiver::Receiver;
use support::process::wait_until;
use trigger_otel_bridge::config::Shard;

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a opentelemetry_proto::tonic::common::v1::any_value::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn run_id_of(span: &Span) -> String {
    match attr(span, "trigger.run_id") {
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(id)) => id.clone(),
        other => panic!("span without run id: {other:?}"),
    }
}

/// The executing fixture as it looks once finished: partial copies dropped when a finished copy
/// exists, the other partial spans finished, the run COMPLETED.
fn finished_version(run: &FakeRun) -> FakeRun {
    let mut run = run.clone();
    let events = run.events["events"].as_array().unwrap().clone();
    let finished_ids: Vec<String> = events
        .iter()
        .filter(|e| e["isPartial"] == false)
        .map(|e| e["spanId"].as_str().unwrap().to_owned())
        .collect();
    let done: Vec<serde_json::Value> = events
        .into_iter()
        .filter(|e| !(e["isPartial"] == true && finished_ids.contains(&e["spanId"].as_str().unwrap().to_owned())))
        .map(|mut e| {
            if e["isPartial"] == true {
                e["isPartial"] = false.into();
                e["duration"] = 9_000_000_000u64.into();
            }
            e
        })
        .collect();
    run.events = serde_json::json!({ "events": done });
    run.run["status"] = "COMPLETED".into();
    run.run["finishedAt"] = "2025-09-23T13:05:25.000Z".into();
    run.run["isCompleted"] = true.into();
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_that_finish_while_watched_arrive_exactly_once_and_finished() {
    let executing = FakeRun::fixture("executing_run");
    let ended_partial = generate::fake_run("run_endspartial", "generated-task", 30, true);
    let fakes = Fakes::start([executing.clone(), ended_partial.clone()]).await;
    let (api, receiver) = (&fakes.api, &fakes.receiver);
    let daemon = Running::start(fakes.config(&["run_cm1executing1", "run_endspartial"]), fast_options());
    // While executing: only finished spans arrive. Wait for the export itself (it runs apart
    // from polling), then for a few more polls that must not add partial spans.
    let executing_spans = || {
        receiver
            .recorder
            .spans()
            .iter()
            .filter(|s| run_id_of(s) == "run_cm1executing1")
            .count()
    };
    wait_until("the 4 finished spans", Duration::from_secs(10), || {
        executing_spans() >= 4
    })
    .await;
    let polls = daemon.stats.polls();
    daemon
        .wait_for("more polls", Duration::from_secs(10), |s| s.polls() >= polls + 4)
        .await;
    let early = receiver.recorder.spans();
    assert!(
        early.iter().all(|s| attr(s, "trigger.partial").is_none()),
        "no partial span while running"
    );
    assert_eq!(
        early.iter().filter(|s| run_id_of(s) == "run_cm1executing1").count(),
        4,
        "the 4 finished spans"
    );
    // The first run finishes; the second ends (cancelled) with its root still partial.
    api.set(finished_version(&executing));
    api.update("run_endspartial", |run| run.run["status"] = "CANCELED".into());
    daemon.wait_retired(2, Duration::from_secs(20)).await;

    let spans = receiver.recorder.spans();
    let mut per_id: BTreeMap<(String, String), usize> = BTreeMap::new();
    for span in &spans {
        *per_id.entry((run_id_of(span), hex(&span.span_id))).or_default() += 1;
    }
    assert!(per_id.values().all(|&n| n == 1), "each span exactly once: {per_id:?}");
    let of = |run: &str| spans.iter().filter(|s| run_id_of(s) == run).collect::<Vec<_>>();
    assert_eq!(of("run_cm1executing1").len(), 7, "all 7 spans, each once");
    assert!(of("run_cm1executing1")
        .iter()
        .all(|s| attr(s, "trigger.partial").is_none()));
    let partial_root = of("run_endspartial")
        .into_iter()
        .find(|s| s.parent_span_id.is_empty())
        .expect("the cancelled run's root arrived");
    assert_eq!(
        attr(partial_root, "trigger.partial"),
        Some(&opentelemetry_proto::tonic::common::v1::any_value::Value::BoolValue(
            true
        ))
    );
    assert_eq!(of("run_endspartial").len(), generate::span_count(30));
    // The right parents: every child of the generated run points at its root.
    let root_id = partial_root.span_id.clone();
    assert!(of("run_endspartial")
        .iter()
        .filter(|s| s.span_id != root_id)
        .all(|s| s.parent_span_id == root_id));
    // Retired runs are not polled any more.
    let polls = api.request_count();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(api.request_count(), polls, "no polling after retirement");
    fakes.stop_with(daemon).await;
}

/// A live run re-read on every poll: a byte-identical body is hashed, not parsed, and exports
/// nothing; the first body that differs is parsed and its newly finished spans go out, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_body_is_not_parsed_again_and_the_next_change_is_exported_once() {
    let executing = FakeRun::fixture("executing_run");
    let fakes = Fakes::start([executing.clone()]).await;
    let (api, receiver) = (&fakes.api, &fakes.receiver);
    let daemon = Running::start(fakes.config(&["run_cm1executing1"]), fast_options());
    wait_until("the 4 finished spans", Duration::from_secs(10), || {
        receiver.recorder.spans().len() >= 4
    })
    .await;
    daemon
        .wait_for("three polls of an unchanged body", Duration::from_secs(10), |s| {
            s.polls_unchanged() >= 3
        })
        .await;
    assert_eq!(receiver.recorder.spans().len(), 4, "an unchanged body exports nothing");
    let polls = daemon.stats.polls();
    let unchanged = daemon.stats.polls_unchanged();
    assert!(unchanged < polls, "the first poll parsed: {unchanged} of {polls}");

    api.set(finished_version(&executing));
    daemon.wait_retired(1, Duration::from_secs(20)).await;
    all_spans_once(receiver, &[("run_cm1executing1".to_owned(), 7)]);
    fakes.stop_with(daemon).await;
}

fn all_spans_once(receiver: &Receiver, runs: &[(String, usize)]) {
    let spans = receiver.recorder.spans();
    let mut per_id: BTreeMap<(String, String), usize> = BTreeMap::new();
    for span in &spans {
        *per_id.entry((run_id_of(span), hex(&span.span_id))).or_default() += 1;
    }
    for (run, count) in runs {
        let arrived = per_id.keys().filter(|(r, _)| r == run).count();
        assert_eq!(arrived, *count, "{run}: every span arrived");
    }
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    assert_eq!(duplicates, 0, "no duplicates without a crash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_down_for_20_s_loses_nothing_and_pending_spans_stay_bounded() {
    let (ids, runs) = generate::fake_runs("run_down", 10, 120);
    let fakes = Fakes::start(runs).await;
    let receiver = &fakes.receiver;
    *receiver.recorder.down_until.lock().unwrap() = Some(Instant::now() + Duration::from_secs(20));
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut config = fakes.config(&id_refs);
    config.export.max_pending_spans = 200;
    let daemon = Running::start(config, fast_options());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let polls_mid_outage = daemon.stats.polls();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        daemon.stats.polls(),
        polls_mid_outage,
        "polling of new data pauses while the collector fails"
    );
    assert!(daemon.stats.pending() <= 200);
    daemon.wait_retired(10, Duration::from_secs(40)).await;
    let peak = daemon.stats.peak_pending_spans.load(Ordering::Relaxed);
    assert!(peak <= 200, "pending spans peaked at {peak}, above the limit of 200");
    assert!(peak > 0);
    let expected: Vec<(String, usize)> = ids.iter().map(|id| (id.clone(), generate::span_count(120))).collect();
    all_spans_once(receiver, &expected);
    fakes.stop_with(daemon).await;
}

/// One run with more spans than `export.max_pending_spans`, and nothing else due: each poll may
/// admit the whole free capacity, so the run's events are fetched about spans / max_pending_spans
/// times, not once per free poll slot's share of the capacity (which made a lone big run
/// refetch its whole body `runs.concurrency` times as often).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_run_behind_a_small_queue_takes_the_free_capacity_it_needs() {
    let run_id = "run_bigalone01";
    let fakes = Fakes::start([generate::fake_run(run_id, "t", 1000, false)]).await;
    let (api, receiver) = (&fakes.api, &fakes.receiver);
    let mut config = fakes.config(&[run_id]);
    config.runs.concurrency = 4;
    config.export.max_pending_spans = 100;
    config.export.max_batch_spans = 100;
    // Finalise as soon as the run is fully exported: no settle-time polls in the count.
    config.runs.settle = Duration::ZERO;
    let daemon = Running::start(config, fast_options());
    daemon.wait_retired(1, Duration::from_secs(30)).await;
    let spans = generate::span_count(1000);
    all_spans_once(receiver, &[(run_id.to_owned(), spans)]);
    let fetches = api.requests_to(&format!("/api/v1/runs/{run_id}/events"));
    // The first poll takes one slot's share (25 of 100); knowing its backlog, each later poll
    // takes all that is free: ceil(901 / 100) = 10 polls admit the rest, one final poll (run
    // ended) finds nothing left. A slot's share on every poll was 38 fetches.
    let needed = spans.div_ceil(100);
    assert!(
        fetches <= needed + 2,
        "the events were fetched {fetches} times for {spans} spans at most 100 at a time (expected at most {})",
        needed + 2
    );
    assert!(daemon.stats.peak_pending_spans.load(Ordering::Relaxed) <= 100);
    fakes.stop_with(daemon).await;
}

/// A run polled before the trace endpoint knows it (404, no events yet) is not stuck with a
/// derived trace id: the trace is asked for again until a span is exported, so the run's spans
/// join Trigger.dev's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_that_appears_after_the_first_polls_names_the_spans() {
    let finished = FakeRun::fixture("finished_run");
    let run_id = finished.id();
    let mut queued = finished.clone();
    queued.trace = None;
    queued.events = serde_json::json!({ "events": [] });
    queued.run["status"] = "QUEUED".into();
    queued.run["finishedAt"] = serde_json::Value::Null;
    queued.run["isCompleted"] = false.into();
    let fakes = Fakes::start([queued]).await;
    let trace_path = format!("/api/v1/runs/{run_id}/trace");
    let daemon = Running::start(fakes.config(&[&run_id]), fast_options());
    daemon.wait_polls(3, Duration::from_secs(10)).await;
    assert!(
        fakes.api.requests_to(&trace_path) >= 3,
        "the trace is asked for on every poll while nothing was exported under a derived id"
    );
    fakes.api.set(finished.clone());
    daemon.wait_retired(1, Duration::from_secs(20)).await;
    let want = finished.trace.as_ref().unwrap()["trace"]["traceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let spans = fakes.receiver.recorder.spans();
    assert!(!spans.is_empty());
    for span in &spans {
        assert_eq!(hex(&span.trace_id), want, "span {} is in another trace", span.name);
    }
    fakes.stop_with(daemon).await;
}

/// Reload from the config file (not SIGHUP): a run taken out of `runs.ids` is retired as
/// removed; named again, it is watched again (a removal is not a verdict on the run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_taken_out_of_the_config_file_and_named_again_is_watched_again() {
    let run_id = "run_again0001";
    let fakes = Fakes::start([generate::fake_run(run_id, "t", 10, true)]).await;
    let config = fakes.config(&[run_id]);
    let write = |ids: &[&str], modified_in: u64| {
        let mut config = config.clone();
        config.runs.ids = ids.iter().map(|id| id.to_string()).collect();
        let path = support::process::write_config(fakes.dir.path(), "bridge.toml", &config);
        // The modification time must move however coarse the file system's clock is.
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(std::time::SystemTime::now() + Duration::from_secs(modified_in))
            .unwrap();
        path
    };
    let path = write(&[run_id], 0);
    let options = trigger_otel_bridge::daemon::DaemonOptions {
        config_path: Some(path),
        ..fast_options()
    };
    let daemon = Running::start(config.clone(), options);
    let events = format!("/api/v1/runs/{run_id}/events");
    daemon.wait_polls(2, Duration::from_secs(10)).await;
    write(&[], 10);
    daemon.wait_retired(1, Duration::from_secs(15)).await;
    let polled_before = fakes.api.requests_to(&events);
    write(&[run_id], 20);
    daemon
        .wait_for("the run watched again", Duration::from_secs(15), |s| {
            s.runs_watched.get() == 1
        })
        .await;
    wait_until("the run polled again", Duration::from_secs(10), || {
        fakes.api.requests_to(&events) > polled_before
    })
    .await;
    fakes.stop_with(daemon).await;
}

/// A reload that changes `conversion.logs` converts the same body differently: the logs a
/// live, unchanging run had dropped are exported after the reload, though its body never changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_the_logs_mode_reaches_runs_whose_body_did_not_change() {
    let run_id = "run_cm1executing1";
    let fakes = Fakes::start([FakeRun::fixture("executing_run")]).await;
    let mut config = fakes.config(&[run_id]);
    config.conversion.logs = trigger_otel_bridge::config::LogsMode::Drop;
    let path = support::process::write_config(fakes.dir.path(), "bridge.toml", &config);
    let options = trigger_otel_bridge::daemon::DaemonOptions {
        config_path: Some(path.clone()),
        ..fast_options()
    };
    let daemon = Running::start(config.clone(), options);
    daemon
        .wait_for("two polls of the unchanged body", Duration::from_secs(10), |s| {
            s.polls_unchanged() >= 2
        })
        .await;
    let spans = || fakes.receiver.recorder.spans();
    let logs = || {
        spans()
            .iter()
            .filter(|s| {
                attr(s, "trigger.level").is_some_and(|l| {
                    *l != opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue("TRACE".into())
                })
            })
            .count()
    };
    assert_eq!(logs(), 0, "logs dropped");
    config.conversion.logs = trigger_otel_bridge::config::LogsMode::Spans;
    support::process::write_config(fakes.dir.path(), "bridge.toml", &config);
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(10))
        .unwrap();
    // The run's four finished logs (DEBUG, INFO, WARN, INFO) become spans of their own.
    wait_until("the logs exported after the reload", Duration::from_secs(15), || {
        logs() == 4
    })
    .await;
    fakes.stop_with(daemon).await;
}

/// While a run with a backlog waits for a slow collector to make room, the loop sleeps until an
/// acknowledgement or a finished poll wakes it; its due time, already past, must not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waiting_for_queue_room_does_not_spin_the_loop() {
    let run_id = "run_waitroom01";
    let fakes = Fakes::start([generate::fake_run(run_id, "t", 600, false)]).await;
    // ~6 batches of 100 at 250 ms each: the run waits for room for about 1.5 s.
    *fakes.receiver.recorder.delay.lock().unwrap() = Duration::from_millis(250);
    let mut config = fakes.config(&[run_id]);
    config.export.max_pending_spans = 100;
    config.export.max_batch_spans = 100;
    config.runs.settle = Duration::ZERO;
    let daemon = Running::start(config, fast_options());
    daemon.wait_retired(1, Duration::from_secs(30)).await;
    all_spans_once(&fakes.receiver, &[(run_id.to_owned(), generate::span_count(600))]);
    // Each wake has a cause: a heartbeat a second, a poll started or finished, a batch
    // acknowledged, a due time. A few dozen in all; a loop woken by a past due time makes
    // hundreds of thousands.
    let wakeups = daemon.stats.loop_wakeups.load(Ordering::Relaxed);
    assert!(wakeups < 300, "the daemon loop woke {wakeups} times");
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_failing_often_loses_nothing_and_no_request_precedes_a_429_reset() {
    use rand::SeedableRng;
    let (ids, runs) = generate::fake_runs("run_chaos", 6, 40);
    let fakes = Fakes::start(runs).await;
    let (api, receiver) = (&fakes.api, &fakes.receiver);
    api.set_chaos(support::fake_api::Chaos {
        rng: rand::rngs::StdRng::seed_from_u64(7),
        p500: 0.2,
        p429: 0.1,
        reset_after: Duration::from_millis(700),
    });
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut config = fakes.config(&id_refs);
    // One request at a time, so a request in flight when a 429 is answered cannot be mistaken
    // for one sent after it.
    config.runs.concurrency = 1;
    let daemon = Running::start(config, fast_options());
    daemon.wait_retired(6, Duration::from_secs(50)).await;
    let expected: Vec<(String, usize)> = ids.iter().map(|id| (id.clone(), generate::span_count(40))).collect();
    all_spans_once(receiver, &expected);
    assert!(
        !api.rate_limited().is_empty(),
        "the chaos answered some 429s ({} requests)",
        api.request_count()
    );
    let early = api.requests_before_a_reset();
    assert!(early.is_empty(), "requests before the 429's reset: {early:?}");
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_picks_up_new_runs_matching_the_filters_only() {
    let fakes = Fakes::start([
        generate::fake_run("run_wanted01", "wanted", 20, false),
        generate::fake_run("run_other001", "other", 20, false),
    ])
    .await;
    let (api, receiver) = (&fakes.api, &fakes.receiver);
    let mut config = fakes.config(&[]);
    config.discovery.enabled = true;
    config.discovery.interval = Duration::from_millis(200);
    config.discovery.tasks = vec!["wanted".into()];
    let daemon = Running::start(config, fast_options());
    daemon
        .wait_for("the first run", Duration::from_secs(10), |s| s.runs_retired() >= 1)
        .await;
    // Runs created while the daemon runs.
    api.add(generate::fake_run("run_wanted02", "wanted", 20, false));
    api.add(generate::fake_run("run_other002", "other", 20, false));
    daemon
        .wait_for("the new run", Duration::from_secs(10), |s| s.runs_retired() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = receiver.recorder.spans();
    let runs: std::collections::BTreeSet<String> = spans.iter().map(run_id_of).collect();
    assert_eq!(
        runs.into_iter().collect::<Vec<_>>(),
        vec!["run_wanted01", "run_wanted02"]
    );
    for other in ["run_other001", "run_other002"] {
        assert_eq!(
            api.requests_to(&format!("/api/v1/runs/{other}/events")),
            0,
            "{other} was polled"
        );
    }
    // All but the start-up check's page of one.
    let list_queries: Vec<String> = api
        .queries_to("/api/v1/runs")
        .into_iter()
        .filter(|q| q != "page%5Bsize%5D=1")
        .collect();
    assert!(
        list_queries
            .iter()
            .all(|q| q.contains("filter%5BtaskIdentifier%5D=wanted")),
        "{list_queries:?}"
    );
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_split_runs_with_no_overlap_and_no_gap() {
    let (ids, runs) = generate::fake_runs("run_shard", 12, 10);
    let api = FakeApi::start(runs).await;
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let receivers = [Receiver::start().await, Receiver::start().await];
    let mut daemons = Vec::new();
    for (index, receiver) in receivers.iter().enumerate() {
        let mut config = config(
            &api,
            &receiver.grpc_endpoint(),
            &dir.path().join(format!("state-{index}.db")),
            &id_refs,
        );
        config.runs.shard = Shard::new(index as u32, 2).unwrap();
        daemons.push(Running::start(config, fast_options()));
    }
    let started = Instant::now();
    while daemons.iter().map(|d| d.stats.runs_retired()).sum::<u64>() < 12 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "shards did not retire all runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let runs_of = |receiver: &Receiver| -> std::collections::BTreeSet<String> {
        receiver.recorder.spans().iter().map(run_id_of).collect()
    };
    let (first, second) = (runs_of(&receivers[0]), runs_of(&receivers[1]));
    assert!(
        first.is_disjoint(&second),
        "overlap: {:?}",
        first.intersection(&second).collect::<Vec<_>>()
    );
    let union: std::collections::BTreeSet<String> = first.union(&second).cloned().collect();
    assert_eq!(union, ids.iter().cloned().collect(), "gap between the shards");
    assert!(!first.is_empty() && !second.is_empty());
    for daemon in daemons {
        daemon.stop().await;
    }
    api.stop().await;
    for receiver in receivers {
        receiver.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrichment_puts_trace_properties_on_the_right_spans_reading_the_trace_once() {
    let fakes = Fakes::start([FakeRun::fixture("finished_run")]).await;
    let (api, receiver) = (&fakes.api, &fakes.receiver);
    let daemon = Running::start(fakes.config(&["run_cm1finished01"]), fast_options());
    daemon.wait_retired(1, Duration::from_secs(15)).await;
    let spans = receiver.recorder.spans();
    assert_eq!(spans.len(), 12);
    let trace = FakeRun::fixture("finished_run").trace.unwrap();
    // Every span whose trace node has properties carries them, flattened; the bridge's own
    // `trigger.*` attributes stay as the converter made them.
    let mut stack = vec![trace["trace"]["rootSpan"].clone()];
    let mut checked = 0;
    while let Some(node) = stack.pop() {
        if let Some(children) = node["children"].as_array() {
            stack.extend(children.iter().cloned());
        }
        let Some(properties) = node["data"]["properties"].as_object() else {
            continue;
        };
        let span = spans
            .iter()
            .find(|s| hex(&s.span_id) == node["id"].as_str().unwrap())
            .expect("span exported");
        for (key, value) in properties {
            if value.is_object() || key.starts_with("trigger.") {
                continue;
            }
            let got = attr(span, key).unwrap_or_else(|| panic!("{} lacks {key}", node["id"]));
            let text = match got {
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => serde_json::json!(s),
                opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(i) => serde_json::json!(i),
                opentelemetry_proto::tonic::common::v1::any_value::Value::BoolValue(b) => serde_json::json!(b),
                opentelemetry_proto::tonic::common::v1::any_value::Value::DoubleValue(d) => serde_json::json!(d),
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(&text, value, "{key} on {}", node["id"]);
            checked += 1;
        }
        assert_eq!(
            attr(span, "trigger.run_id"),
            Some(&opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                "run_cm1finished01".into()
            ))
        );
    }
    assert!(checked >= 12, "only {checked} properties checked");
    assert_eq!(
        api.requests_to("/api/v1/runs/run_cm1finished01/trace"),
        1,
        "the trace is read once"
    );
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrichment_reads_the_trace_again_only_when_a_new_finished_span_lacks_properties() {
    let run_id = "run_enrich001";
    let node = |id: String, properties: serde_json::Value| serde_json::json!({"id": id, "data": {"properties": properties}, "children": []});
    let mut run = generate::fake_run(run_id, "t", 1, true);
    let root = generate::span_id(run_id, 0);
    run.trace = Some(
        serde_json::json!({"trace": {"traceId": "0af7651916cd43dd8448eb211c80319c", "rootSpan": node(root.clone(), serde_json::json!({"a": 1}))}}),
    );
    let fakes = Fakes::start([run.clone()]).await;
    let (api, receiver) = (&fakes.api, &fakes.receiver);
    let daemon = Running::start(fakes.config(&[run_id]), fast_options());
    daemon.wait_polls(3, Duration::from_secs(10)).await;
    assert_eq!(
        api.requests_to(&format!("/api/v1/runs/{run_id}/trace")),
        1,
        "nothing new: no second read"
    );
    // A child finishes, and the trace now knows its properties.
    let mut grown = run.clone();
    grown.events = generate::events(run_id, 3, true);
    let mut root_node = node(root.clone(), serde_json::json!({"a": 1}));
    root_node["children"] = serde_json::json!([
        node(generate::span_id(run_id, 1), serde_json::json!({"child": "one"})),
        node(generate::span_id(run_id, 2), serde_json::json!({"child": "two"}))
    ]);
    grown.trace =
        Some(serde_json::json!({"trace": {"traceId": "0af7651916cd43dd8448eb211c80319c", "rootSpan": root_node}}));
    api.set(grown);
    daemon
        .wait_for("the children", Duration::from_secs(10), |_| {
            receiver.recorder.spans().len() >= 2
        })
        .await;
    let spans = receiver.recorder.spans();
    for (index, expected) in [(1, "one"), (2, "two")] {
        let child = spans
            .iter()
            .find(|s| hex(&s.span_id) == generate::span_id(run_id, index))
            .unwrap();
        assert_eq!(
            attr(child, "child"),
            Some(&opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                expected.into()
            ))
        );
    }
    assert_eq!(
        api.requests_to(&format!("/api/v1/runs/{run_id}/trace")),
        2,
        "read again once"
    );
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_trace_re_read_costs_enrichment_never_the_export() {
    let mut run = FakeRun::fixture("child_run");
    run.run["status"] = "EXECUTING".into();
    run.run.as_object_mut().unwrap().remove("finishedAt");
    let id = run.id();
    let fakes = Fakes::start([run]).await;
    let (api, receiver) = (&fakes.api, &fakes.receiver);
    let daemon = Running::start(fakes.config(&[&id]), fast_options());
    daemon
        .wait_for("the 5 finished spans", Duration::from_secs(10), |_| {
            receiver.recorder.spans().len() >= 5
        })
        .await;
    // The trace endpoint starts failing, and a new finished span shows up in the events.
    let trace_path = format!("/api/v1/runs/{id}/trace");
    api.script(
        &trace_path,
        std::iter::repeat_n(support::fake_api::Scripted::status(500, "trace store down"), 10_000),
    );
    api.update(&id, |run| {
        let events = run.events["events"].as_array_mut().unwrap();
        let mut late = events[3].clone();
        late["spanId"] = "00000000000000aa".into();
        late["message"] = "late span".into();
        events.push(late);
    });
    daemon
        .wait_for("the late span", Duration::from_secs(10), |_| {
            receiver.recorder.spans().len() >= 6
        })
        .await;
    assert!(receiver.recorder.spans().iter().any(|s| s.name == "late span"));
    fakes.stop_with(daemon).await;
}
