//! The realtime `Subscriber` against the test kit's fake API (`support::realtime`) on 127.0.0.1:
//! the snapshot, live changes and new runs within the hold, a snapshot in chunks, a 409 that
//! starts over without the handle, 429 above the live-connection limit, 404 / 503 / dropped
//! connections / 401 as `Unavailable` and the way back, a stop that aborts a held poll and frees
//! its slot, and what every request carries (headers, `createdAt`, `skipColumns`, never the key).

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_api::{FakeApi, FakeRun, Request, SECRET_KEY};
use support::generate;
use support::process::wait_until;
use support::realtime::{parse_duration, Availability, StreamOptions, Timestamps, Updates};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use trigger_otel_bridge::config::TriggerConfig;
use trigger_otel_bridge::discover::realtime::{
    RealtimeRun, StreamEvent, Subscriber, SubscriberTuning, Unavailable, SKIP_COLUMNS,
};
use trigger_otel_bridge::trigger::TriggerClient;

/// Longest wait for an event that should come at once (a slow CI machine, not the protocol).
const PATIENCE: Duration = Duration::from_secs(10);

fn client_with_key(api: &FakeApi, key: &str) -> TriggerClient {
    TriggerClient::new(&TriggerConfig {
        api_url: api.url(),
        secret_key: key.into(),
        ..TriggerConfig::default()
    })
    .expect("client")
}

fn tuning() -> SubscriberTuning {
    SubscriberTuning {
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        retry_unavailable_after: Duration::from_millis(300),
        not_served_after: 3,
    }
}

fn run(id: &str, status: &str) -> FakeRun {
    let mut run = generate::fake_run(id, "rt-task", 3, status != "COMPLETED");
    run.run["status"] = json!(status);
    run.run["tags"] = json!(["user:1", "a b"]);
    run
}

/// A subscriber running in a task, its events and its stop.
struct Subscribed {
    events: mpsc::UnboundedReceiver<StreamEvent>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Subscribed {
    fn start(client: &TriggerClient, lookback: Duration) -> Subscribed {
        let subscriber = Subscriber::new(client, lookback).with_tuning(tuning());
        let (events, receiver) = mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(subscriber.run(events, stopped));
        Subscribed {
            events: receiver,
            stop,
            task,
        }
    }

    async fn next(&mut self) -> StreamEvent {
        tokio::time::timeout(PATIENCE, self.events.recv())
            .await
            .expect("an event in time")
            .expect("the subscriber is running")
    }

    /// The next `Runs` event: (runs, snapshot).
    async fn runs(&mut self) -> (Vec<RealtimeRun>, bool) {
        match self.next().await {
            StreamEvent::Runs { runs, snapshot } => (runs, snapshot),
            other => panic!("expected runs, got {other:?}"),
        }
    }

    async fn unavailable(&mut self) -> (Unavailable, String) {
        match self.next().await {
            StreamEvent::Unavailable { kind, reason } => (kind, reason),
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    /// No event for `quiet`.
    async fn nothing_for(&mut self, quiet: Duration) {
        if let Ok(event) = tokio::time::timeout(quiet, self.events.recv()).await {
            panic!("unexpected event {event:?}");
        }
    }

    /// Stops it and returns how long the task took to end.
    async fn stop(self) -> Duration {
        let started = Instant::now();
        self.stop.send_replace(true);
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("stopped in time")
            .expect("no panic");
        started.elapsed()
    }
}

fn by_id(runs: &[RealtimeRun], id: &str) -> RealtimeRun {
    runs.iter()
        .find(|run| run.id == id)
        .unwrap_or_else(|| panic!("{id} not in {runs:?}"))
        .clone()
}

fn ids(runs: &[RealtimeRun]) -> Vec<&str> {
    let mut ids: Vec<&str> = runs.iter().map(|run| run.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

/// The stream protocol's parameters of a request: `offset`, `handle`, `live`, `cursor`.
fn protocol(request: &Request) -> String {
    ["offset", "handle", "live", "cursor"]
        .iter()
        .filter_map(|key| request.param(key).map(|value| format!("{key}={value}")))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn snapshot_then_a_live_change_arrives_as_runs() {
    let api = FakeApi::start([run("run_rt_a", "EXECUTING"), run("run_rt_b", "COMPLETED")]).await;
    api.stream().configure(|o| o.hold = Duration::from_secs(10));
    let client = client_with_key(&api, SECRET_KEY);
    let mut subscribed = Subscribed::start(&client, Duration::from_secs(3600));

    let (runs, snapshot) = subscribed.runs().await;
    assert!(snapshot);
    assert_eq!(ids(&runs), ["run_rt_a", "run_rt_b"]);
    let a = by_id(&runs, "run_rt_a");
    assert_eq!(
        (a.status.as_str(), a.db_status.as_str(), a.terminal),
        ("EXECUTING", "EXECUTING", false)
    );
    assert_eq!(a.task_identifier.as_deref(), Some("rt-task"));
    assert_eq!(a.tags, ["user:1", "a b"]);
    assert!(a.created_at.is_some() && a.updated_at.is_some() && a.completed_at.is_none());
    let b = by_id(&runs, "run_rt_b");
    assert_eq!(
        (b.status.as_str(), b.db_status.as_str(), b.terminal),
        ("COMPLETED", "COMPLETED_SUCCESSFULLY", true)
    );
    assert!(b.completed_at.is_some());

    // The first live poll is held; a change ends it at once.
    wait_until("a held live poll", PATIENCE, || api.stream().live_now() == 1).await;
    let changed_at = Instant::now();
    api.update("run_rt_a", |run| {
        run.run["status"] = json!("FAILED");
        run.run["finishedAt"] = json!("2026-08-21T10:15:30.120Z");
    });
    let (runs, snapshot) = subscribed.runs().await;
    assert!(
        changed_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        changed_at.elapsed()
    );
    assert!(!snapshot);
    let [a] = &runs[..] else { panic!("{runs:?}") };
    // An update carries only the changed columns: the rest comes from the insert.
    assert_eq!(a.id, "run_rt_a");
    assert_eq!(
        (a.status.as_str(), a.db_status.as_str(), a.terminal),
        ("FAILED", "COMPLETED_WITH_ERRORS", true)
    );
    assert_eq!(a.task_identifier.as_deref(), Some("rt-task"));
    assert_eq!(a.tags, ["user:1", "a b"]);
    assert_eq!(a.completed_at, Some(1_787_307_330_120_000_000));

    // The protocol: a snapshot without a handle, then live polls with handle and cursor.
    let requests = api.stream_requests();
    let steps: Vec<String> = requests.iter().map(protocol).collect();
    assert_eq!(steps[0], "offset=-1");
    let handle = api.stream().handle();
    assert!(steps[1].starts_with("offset=") && steps[1].contains(&format!("handle={handle}&live=true")));
    assert!(
        !steps[1].contains("cursor"),
        "no cursor before a live answer: {}",
        steps[1]
    );
    wait_until("the next live poll", PATIENCE, || api.stream_requests().len() >= 3).await;
    let third = protocol(&api.stream_requests()[2]);
    assert!(third.contains("live=true&cursor="), "{third}");
    // Every request: the same createdAt and skipColumns, the headers, never the key in the URL.
    for request in api.stream_requests() {
        assert_eq!(request.path, "/realtime/v1/runs");
        assert_eq!(request.param("createdAt").as_deref(), Some("60m"));
        assert_eq!(request.param("skipColumns").as_deref(), Some(SKIP_COLUMNS));
        assert_eq!(request.authorization(), Some(format!("Bearer {SECRET_KEY}").as_str()));
        assert_eq!(request.header("x-trigger-api-version"), "2025-07-16");
        assert!(!request.header("x-trigger-electric-version").is_empty());
        assert!(!request.query.contains(SECRET_KEY) && !request.query.contains("tr_dev_"));
    }
    // Not one REST request.
    assert_eq!(api.rest_requests().len(), 0);

    assert!(subscribed.stop().await < Duration::from_secs(1));
    api.stop().await;
}

#[tokio::test]
async fn a_preview_branch_is_sent_as_its_header() {
    const PREVIEW_KEY: &str = "tr_preview_FAKEtestKEY0123456789";
    let api = FakeApi::start([run("run_rt_a", "EXECUTING")]).await;
    api.accept_key(PREVIEW_KEY);
    let client = TriggerClient::new(&TriggerConfig {
        api_url: api.url(),
        secret_key: PREVIEW_KEY.into(),
        preview_branch: Some("feature-x".into()),
        ..TriggerConfig::default()
    })
    .expect("client");
    let mut subscribed = Subscribed::start(&client, Duration::from_secs(600));
    subscribed.runs().await;
    subscribed.stop().await;
    for request in api.stream_requests() {
        assert_eq!(request.header("x-trigger-branch"), "feature-x");
        assert!(!request.query.contains(PREVIEW_KEY));
    }
    api.stop().await;
}

#[tokio::test]
async fn a_run_created_while_live_arrives_within_the_hold() {
    let api = FakeApi::start([run("run_rt_old", "EXECUTING")]).await;
    api.stream().configure(|o| o.hold = Duration::from_secs(10));
    let mut subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(600));
    let (runs, _) = subscribed.runs().await;
    assert_eq!(ids(&runs), ["run_rt_old"]);

    wait_until("a held live poll", PATIENCE, || api.stream().live_now() == 1).await;
    let created = Instant::now();
    api.add(run("run_rt_new", "QUEUED"));
    let (runs, snapshot) = subscribed.runs().await;
    let latency = created.elapsed();
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    assert!(!snapshot);
    let [new] = &runs[..] else { panic!("{runs:?}") };
    assert_eq!(
        (new.id.as_str(), new.status.as_str(), new.db_status.as_str()),
        ("run_rt_new", "QUEUED", "PENDING")
    );

    // An idle hold ends in a bare up-to-date: no event, and the stream polls again.
    api.stream().configure(|o| o.hold = Duration::from_millis(100));
    api.update("run_rt_new", |run| run.run["status"] = json!("EXECUTING"));
    let (runs, _) = subscribed.runs().await;
    assert_eq!(runs[0].status, "EXECUTING");
    let polls = api.stream().stats().live_polls;
    subscribed.nothing_for(Duration::from_millis(500)).await;
    assert!(api.stream().stats().live_polls >= polls + 2);

    subscribed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn a_snapshot_in_chunks_is_one_event() {
    let runs: Vec<FakeRun> = (0..5).map(|i| run(&format!("run_rt_{i}"), "EXECUTING")).collect();
    let api = FakeApi::start(runs).await;
    api.stream().configure(|o| o.snapshot_chunk = Some(2));
    let mut subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(600));
    let (runs, snapshot) = subscribed.runs().await;
    assert!(snapshot);
    assert_eq!(ids(&runs), ["run_rt_0", "run_rt_1", "run_rt_2", "run_rt_3", "run_rt_4"]);

    // Three answers for the snapshot (2 + 2 + 1 rows), none of them live; the chunks continue
    // with the handle.
    wait_until("the first live poll", PATIENCE, || api.stream_requests().len() >= 4).await;
    let steps: Vec<String> = api.stream_requests().iter().map(protocol).collect();
    let handle = api.stream().handle();
    assert_eq!(steps[0], "offset=-1");
    assert_eq!(steps[1], format!("offset=5_1&handle={handle}"));
    assert_eq!(steps[2], format!("offset=5_2&handle={handle}"));
    assert_eq!(steps[3], format!("offset=5_0&handle={handle}&live=true"));
    assert_eq!(api.stream().stats().snapshots, 1);
    subscribed.nothing_for(Duration::from_millis(300)).await;

    subscribed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn a_409_starts_over_without_the_handle_and_snapshots_again() {
    let api = FakeApi::start([run("run_rt_a", "EXECUTING"), run("run_rt_b", "WAITING")]).await;
    api.stream().configure(|o| o.hold = Duration::from_secs(10));
    let mut subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(600));
    let (runs, snapshot) = subscribed.runs().await;
    assert!(snapshot && runs.len() == 2);
    let old_handle = api.stream().handle();

    // The held poll is answered 409 must-refetch.
    wait_until("a held live poll", PATIENCE, || api.stream().live_now() == 1).await;
    api.stream().force_refetch();
    let (runs, snapshot) = subscribed.runs().await;
    assert!(snapshot, "the rows again, as a snapshot");
    assert_eq!(ids(&runs), ["run_rt_a", "run_rt_b"]);
    assert_eq!(by_id(&runs, "run_rt_b").status, "WAITING");
    assert_eq!(api.stream().stats().conflicts, 1);

    // The request after the 409: from the start, with no handle at all (not the old, not the new).
    let requests = api.stream_requests();
    let conflict = requests
        .iter()
        .position(|r| r.param("handle").as_deref() == Some(old_handle.as_str()) && r.param("live").is_some())
        .expect("the live poll");
    let after = &requests[conflict + 1];
    assert_eq!(protocol(after), "offset=-1");
    assert!(after.param("handle").is_none());
    // And it continues on the new handle.
    wait_until("a live poll on the new handle", PATIENCE, || {
        api.stream_requests()
            .iter()
            .any(|r| r.param("handle") == Some(api.stream().handle()) && r.param("live").is_some())
    })
    .await;
    assert_ne!(api.stream().handle(), old_handle);

    subscribed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn too_many_live_connections_is_busy_until_a_slot_frees() {
    let api = FakeApi::start([run("run_rt_a", "EXECUTING")]).await;
    api.stream().configure(|o| {
        o.hold = Duration::from_secs(10);
        o.max_live = 1;
    });
    let client = client_with_key(&api, SECRET_KEY);
    let mut first = Subscribed::start(&client, Duration::from_secs(600));
    first.runs().await;
    wait_until("the first live poll held", PATIENCE, || api.stream().live_now() == 1).await;

    // The second stream of the same key: its snapshot is free, its live poll is one too many.
    let mut second = Subscribed::start(&client, Duration::from_secs(600));
    let (runs, snapshot) = second.runs().await;
    assert!(snapshot && runs.len() == 1);
    let (kind, reason) = second.unavailable().await;
    assert_eq!(kind, Unavailable::Busy);
    assert!(
        reason.contains("429") && reason.contains("Too many concurrent requests"),
        "{reason}"
    );
    // Once per episode, however many 429s follow.
    wait_until("a few more 429s", PATIENCE, || api.stream().stats().too_many >= 3).await;

    // The first stops: its slot frees, the second gets it, and its first change says the
    // stream is back.
    assert!(first.stop().await < Duration::from_secs(1));
    wait_until("the second's live poll held", PATIENCE, || api.stream().live_now() == 1).await;
    api.update("run_rt_a", |run| run.run["status"] = json!("WAITING"));
    let (runs, snapshot) = second.runs().await;
    assert!(!snapshot);
    assert_eq!(ids(&runs), ["run_rt_a"]);
    assert!(api.stream().stats().live_peak <= 1);

    second.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn a_404_is_not_served_and_the_stream_comes_back() {
    let api = FakeApi::start([run("run_rt_a", "EXECUTING")]).await;
    api.stream().set_availability(Availability::NotFound);
    let mut subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(600));
    let (kind, reason) = subscribed.unavailable().await;
    assert_eq!(kind, Unavailable::NotServed);
    assert!(
        reason.contains("404") && reason.contains("/realtime/v1/runs"),
        "{reason}"
    );
    assert!(!reason.contains(SECRET_KEY));

    // Tried again after `retry_unavailable_after` (300 ms here), not in a tight loop.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let tries = api.stream_requests().len();
    assert!((2..=4).contains(&tries), "{tries} requests in 700 ms");

    let served_at = Instant::now();
    api.stream().set_availability(Availability::Served);
    let (runs, snapshot) = subscribed.runs().await;
    assert!(snapshot && runs.len() == 1);
    assert!(
        served_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        served_at.elapsed()
    );

    subscribed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn a_503_without_electric_fails_then_is_not_served() {
    let api = FakeApi::start([run("run_rt_a", "EXECUTING")]).await;
    api.stream().configure(|o| o.hold = Duration::from_millis(300));
    api.stream().set_availability(Availability::NoElectric);
    let mut subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(600));
    // The first two are failures not announced yet (a blip must not switch sources); the third
    // in a row says there is no Electric behind this instance.
    let (kind, reason) = subscribed.unavailable().await;
    assert_eq!(kind, Unavailable::NotServed);
    assert!(
        reason.contains("503") && reason.contains("Network error occurred"),
        "{reason}"
    );
    assert!(api.stream_requests().len() >= 3);

    api.stream().set_availability(Availability::Served);
    let (runs, snapshot) = subscribed.runs().await;
    assert!(snapshot && runs.len() == 1);

    // A 5xx while live: failing, and back on the same shape (no new snapshot).
    api.stream().set_availability(Availability::Status(502));
    let (kind, _) = subscribed.unavailable().await;
    assert_eq!(kind, Unavailable::Failing);
    api.stream().set_availability(Availability::Served);
    let (runs, snapshot) = subscribed.runs().await;
    assert!(runs.is_empty() && !snapshot);
    assert_eq!(api.stream().stats().snapshots, 1);

    subscribed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_is_failing_and_retried_with_backoff() {
    let api = FakeApi::start([run("run_rt_a", "EXECUTING")]).await;
    api.stream().set_availability(Availability::Dropped);
    let mut subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(600));
    let (kind, reason) = subscribed.unavailable().await;
    assert_eq!(kind, Unavailable::Failing);
    assert!(reason.contains("/realtime/v1/runs"), "{reason}");
    assert!(!reason.contains(SECRET_KEY));
    wait_until("a few retries", PATIENCE, || api.stream_requests().len() >= 4).await;
    api.stream().set_availability(Availability::Served);
    let (runs, snapshot) = subscribed.runs().await;
    assert!(snapshot && runs.len() == 1);

    subscribed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn a_refused_key_is_refused() {
    let api = FakeApi::start([run("run_rt_a", "EXECUTING")]).await;
    let mut subscribed = Subscribed::start(
        &client_with_key(&api, "tr_dev_WRONGkey000000000000"),
        Duration::from_secs(600),
    );
    let (kind, reason) = subscribed.unavailable().await;
    assert_eq!(kind, Unavailable::Refused);
    assert!(reason.contains("401"), "{reason}");
    assert!(!reason.contains("WRONGkey"), "{reason}");
    subscribed.nothing_for(Duration::from_millis(500)).await;
    subscribed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn stop_aborts_a_held_poll_at_once_and_frees_its_slot() {
    let api = FakeApi::start([run("run_rt_a", "EXECUTING")]).await;
    api.stream().configure(|o| o.hold = Duration::from_secs(30));
    let mut subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(600));
    subscribed.runs().await;
    wait_until("a held live poll", PATIENCE, || api.stream().live_now() == 1).await;
    let took = subscribed.stop().await;
    assert!(took < Duration::from_millis(500), "{took:?}");
    // The server sees the client go: the slot is free long before the 30 s hold.
    wait_until("the slot freed", Duration::from_secs(3), || {
        api.stream().live_now() == 0
    })
    .await;
    api.stop().await;
}

#[tokio::test]
async fn the_subscriber_ends_when_its_receiver_is_gone() {
    let api = FakeApi::start([run("run_rt_a", "EXECUTING")]).await;
    api.stream().configure(|o| o.hold = Duration::from_secs(30));
    let subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(600));
    wait_until("a held live poll", PATIENCE, || api.stream().live_now() == 1).await;
    drop(subscribed.events);
    tokio::time::timeout(Duration::from_secs(1), subscribed.task)
        .await
        .expect("ended")
        .unwrap();
    api.stop().await;
}

#[tokio::test]
async fn deleted_rows_are_forgotten_not_ended() {
    let api = FakeApi::start([run("run_rt_a", "EXECUTING"), run("run_rt_b", "EXECUTING")]).await;
    api.stream().configure(|o| o.hold = Duration::from_secs(10));
    let mut subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(600));
    subscribed.runs().await;
    wait_until("a held live poll", PATIENCE, || api.stream().live_now() == 1).await;
    api.remove("run_rt_a");
    // The delete alone is no event; the next change is, without the deleted run.
    subscribed.nothing_for(Duration::from_millis(300)).await;
    api.update("run_rt_b", |run| run.run["status"] = json!("CANCELED"));
    let (runs, _) = subscribed.runs().await;
    assert_eq!(ids(&runs), ["run_rt_b"]);
    assert!(runs[0].terminal);
    subscribed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn full_rows_and_native_timestamps_read_the_same() {
    let api = FakeApi::start([]).await;
    api.stream().set_options(StreamOptions {
        hold: Duration::from_secs(10),
        timestamps: Timestamps::Native,
        updates: Updates::Full,
        ..StreamOptions::default()
    });
    let mut created = run("run_rt_native", "EXECUTING");
    created.run["createdAt"] = json!("2026-08-21T10:15:30.120Z");
    created.run["tags"] = json!([]);
    api.add(created);
    let mut subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(600));
    let (runs, _) = subscribed.runs().await;
    assert_eq!(runs[0].created_at, Some(1_787_307_330_120_000_000));
    assert!(runs[0].tags.is_empty(), "null tags: none");
    wait_until("a held live poll", PATIENCE, || api.stream().live_now() == 1).await;
    api.update("run_rt_native", |run| {
        run.run["status"] = json!("WAITING");
        run.run["tags"] = json!(["x,y", "q\"uote"]);
    });
    let (runs, _) = subscribed.runs().await;
    let [run] = &runs[..] else { panic!("{runs:?}") };
    assert_eq!(
        (run.status.as_str(), run.db_status.as_str()),
        ("WAITING", "WAITING_TO_RESUME")
    );
    assert_eq!(run.tags, ["x,y", "q\"uote"]);
    assert_eq!(run.created_at, Some(1_787_307_330_120_000_000));
    subscribed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn database_statuses_arrive_as_the_api_s() {
    let cases = [
        ("QUEUED", None, "PENDING", "QUEUED", false),
        ("DELAYED", None, "DELAYED", "DELAYED", false),
        ("WAITING", None, "WAITING_TO_RESUME", "WAITING", false),
        ("WAITING", Some("PAUSED"), "PAUSED", "WAITING", false),
        (
            "EXECUTING",
            Some("RETRYING_AFTER_FAILURE"),
            "RETRYING_AFTER_FAILURE",
            "EXECUTING",
            false,
        ),
        (
            "PENDING_VERSION",
            Some("WAITING_FOR_DEPLOY"),
            "WAITING_FOR_DEPLOY",
            "PENDING_VERSION",
            false,
        ),
        ("DEQUEUED", None, "DEQUEUED", "DEQUEUED", false),
        ("COMPLETED", None, "COMPLETED_SUCCESSFULLY", "COMPLETED", true),
        ("FAILED", None, "COMPLETED_WITH_ERRORS", "FAILED", true),
        ("FAILED", Some("INTERRUPTED"), "INTERRUPTED", "FAILED", true),
        ("CANCELED", None, "CANCELED", "CANCELED", true),
        ("CRASHED", None, "CRASHED", "CRASHED", true),
        ("SYSTEM_FAILURE", None, "SYSTEM_FAILURE", "SYSTEM_FAILURE", true),
        ("EXPIRED", None, "EXPIRED", "EXPIRED", true),
        ("TIMED_OUT", None, "TIMED_OUT", "TIMED_OUT", true),
    ];
    let runs = cases.iter().enumerate().map(|(i, (status, db, ..))| {
        let mut run = run(&format!("run_rt_s{i:02}"), status);
        // The terminal rule is the status's here, not a finishedAt.
        run.run["finishedAt"] = Value::Null;
        if let Some(db) = db {
            run.run["dbStatus"] = json!(db);
        }
        run
    });
    let api = FakeApi::start(runs).await;
    let mut subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(600));
    let (runs, _) = subscribed.runs().await;
    for (i, (_, _, db, api_status, terminal)) in cases.iter().enumerate() {
        let run = by_id(&runs, &format!("run_rt_s{i:02}"));
        assert_eq!(
            (run.db_status.as_str(), run.status.as_str(), run.terminal),
            (*db, *api_status, *terminal),
            "{run:?}"
        );
    }
    subscribed.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn created_at_is_always_a_valid_duration_of_at_most_a_day() {
    let api = FakeApi::start([run("run_rt_a", "EXECUTING")]).await;
    let client = client_with_key(&api, SECRET_KEY);
    for (lookback, expected) in [
        (Duration::ZERO, "1m"),
        (Duration::from_millis(1500), "1m"),
        (Duration::from_secs(90 * 60), "90m"),
        (Duration::from_secs(23 * 3600 + 1), "1381m"),
        (Duration::from_secs(24 * 3600), "1d"),
        (Duration::from_secs(7 * 24 * 3600), "1d"),
    ] {
        let before = api.stream_requests().len();
        let mut subscribed = Subscribed::start(&client, lookback);
        subscribed.runs().await;
        subscribed.stop().await;
        let sent = api.stream_requests()[before].param("createdAt").expect("createdAt");
        assert_eq!(sent, expected, "{lookback:?}");
        let parsed = parse_duration(&sent).unwrap_or_else(|| panic!("{sent} is not a duration the server reads"));
        assert!(parsed <= Duration::from_secs(24 * 3600));
    }
    api.stop().await;
}

#[tokio::test]
async fn the_fake_s_window_keeps_runs_created_within_created_at() {
    // The fixture run was created in 2025: outside any window; a generated one, now.
    let api = FakeApi::start([FakeRun::fixture("finished_run"), run("run_rt_now", "EXECUTING")]).await;
    api.stream().configure(|o| o.window = true);
    let mut subscribed = Subscribed::start(&client_with_key(&api, SECRET_KEY), Duration::from_secs(3600));
    let (runs, _) = subscribed.runs().await;
    assert_eq!(ids(&runs), ["run_rt_now"]);
    subscribed.stop().await;
    api.stop().await;
}

/// `GET /realtime/v1/runs?{query}` on the fake, as a raw client: (status, headers, body).
async fn raw(api: &FakeApi, query: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Value) {
    trigger_otel_bridge::net::tls::install_crypto_provider();
    let mut request = reqwest::Client::new()
        .get(format!("{}/realtime/v1/runs?{query}", api.url()))
        .bearer_auth(SECRET_KEY);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
    (status, headers, body)
}

#[tokio::test]
async fn the_fake_speaks_the_wire_format() {
    let mut dequeued = run("run_rt_dq", "DEQUEUED");
    dequeued.run["createdAt"] = json!("2026-08-21T10:15:30.120Z");
    let api = FakeApi::start([dequeued]).await;
    let current = [
        ("x-trigger-electric-version", "1.0.0-beta.1"),
        ("x-trigger-api-version", "2025-07-16"),
    ];
    let text =
        |headers: &reqwest::header::HeaderMap, name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());

    // The snapshot: Electric's headers, database rows, the skipped columns left out (the
    // reserved ones kept), an internal id beside the public one.
    let (status, headers, body) = raw(&api, "offset=-1&skipColumns=payload,output,status", &current).await;
    assert_eq!(status, 200);
    let handle = text(&headers, "electric-handle").expect("handle");
    let offset = text(&headers, "electric-offset").expect("offset");
    assert!(text(&headers, "electric-schema").is_some() && text(&headers, "electric-cursor").is_none());
    assert!(headers.contains_key("electric-up-to-date"));
    let messages = body.as_array().unwrap();
    assert_eq!(messages.last().unwrap()["headers"]["control"], "up-to-date");
    let row = &messages[0]["value"];
    assert_eq!(messages[0]["headers"]["operation"], "insert");
    assert!(row["id"].as_str().unwrap().starts_with("cm"));
    assert_eq!(row["friendlyId"], "run_rt_dq");
    assert_eq!(
        messages[0]["key"],
        format!("\"public\".\"TaskRun\"/\"{}\"", row["id"].as_str().unwrap())
    );
    assert_eq!(row["status"], "DEQUEUED");
    assert!(row.get("payload").is_none() && row.get("output").is_none() && row.get("metadata").is_some());
    assert_eq!(row["createdAt"], "2026-08-21 10:15:30.12");
    assert_eq!(row["runTags"], "{user:1,\"a b\"}");
    assert_eq!(row["isTest"], "f");

    // Without the API version DEQUEUED reads EXECUTING; without the Electric version the headers
    // have their legacy names.
    let (_, headers, body) = raw(&api, "offset=-1", &[]).await;
    assert_eq!(body[0]["value"]["status"], "EXECUTING");
    assert!(text(&headers, "electric-shape-id").is_some() && text(&headers, "electric-handle").is_none());
    assert!(text(&headers, "electric-chunk-last-offset").is_some());

    // A change: the update carries only the changed columns and the id.
    api.update("run_rt_dq", |run| run.run["status"] = json!("EXECUTING"));
    let (status, headers, body) = raw(&api, &format!("offset={offset}&handle={handle}"), &current).await;
    assert_eq!(status, 200);
    assert!(text(&headers, "electric-cursor").is_none());
    let update = &body[0];
    assert_eq!(update["headers"]["operation"], "update");
    let mut columns: Vec<&str> = update["value"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    columns.sort_unstable();
    assert_eq!(columns, ["id", "status", "updatedAt"]);
    let offset = text(&headers, "electric-offset").unwrap();

    // Live: a cursor, no schema; an idle hold ends in a bare up-to-date.
    api.stream().configure(|o| o.hold = Duration::from_millis(50));
    let live = format!("offset={offset}&handle={handle}&live=true");
    let (status, headers, body) = raw(&api, &live, &current).await;
    assert_eq!(status, 200);
    assert!(text(&headers, "electric-cursor").is_some() && text(&headers, "electric-schema").is_none());
    assert_eq!(
        body,
        json!([{"headers": {"control": "up-to-date", "global_last_seen_lsn": "0"}}])
    );

    // What Electric refuses, and a handle that is no longer the shape's.
    assert_eq!(raw(&api, "offset=-1&live=true", &current).await.0, 400);
    assert_eq!(raw(&api, "live=true", &current).await.0, 400);
    assert_eq!(raw(&api, "offset=-1&tags=a,,b", &current).await.0, 400);
    api.stream().force_refetch();
    let (status, headers, body) = raw(&api, &live, &current).await;
    assert_eq!(status, 409);
    assert_eq!(body, json!([{"headers": {"control": "must-refetch"}}]));
    assert_eq!(text(&headers, "electric-handle"), Some(api.stream().handle()));

    // The live-connection limit answers as Trigger.dev does.
    api.stream().configure(|o| o.max_live = 0);
    let live = format!("offset={offset}&handle={}&live=true", api.stream().handle());
    let (status, headers, body) = raw(&api, &live, &current).await;
    assert_eq!(status, 429);
    assert_eq!(body, json!({"error": "Too many concurrent requests"}));
    assert!(text(&headers, "retry-after").is_none() && text(&headers, "electric-handle").is_none());
    api.stop().await;
}
