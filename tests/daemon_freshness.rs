//! Polling that spends requests where they buy freshness (issue 13): an active run keeps the
//! poll interval, a quiet one backs off; a run's end is learnt from its own span in the same
//! poll, or from discovery's listing without a request of its own.

mod support;

use serde_json::json;
use std::time::Duration;
use support::daemon::{fast_options, Fakes, Running};
use support::generate;
use support::process::wait_until;

fn events_path(run_id: &str) -> String {
    format!("/api/v1/runs/{run_id}/events")
}

fn status_path(run_id: &str) -> String {
    format!("/api/v3/runs/{run_id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_run_keeps_the_poll_interval_and_a_quiet_one_backs_off() {
    let run = generate::fake_run("run_activequiet", "t", 20, true);
    let fakes = Fakes::start([run]).await;
    let mut config = fakes.config(&["run_activequiet"]);
    config.runs.poll_interval = Duration::from_millis(100);
    config.runs.max_poll_interval = Duration::from_secs(2);
    config.runs.quiet_after = Duration::from_secs(1);
    let daemon = Running::start(config, fast_options());
    let polls = || fakes.api.requests_to(&events_path("run_activequiet"));
    wait_until("the first poll", Duration::from_secs(10), || polls() >= 1).await;

    // Unchanged but active: every 100 ms (±20 %), not backing off (which would be 3 polls).
    let before = polls();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let active = polls() - before;
    // Backing off (the old rule) gives 3 at most: 100, 200 and 400 ms apart.
    assert!(active >= 4, "{active} polls in 800 ms while active");

    // Quiet since about 1 s: 2 s (to 2.4 s) apart.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = polls();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let quiet = polls() - before;
    assert!(quiet <= 2, "{quiet} polls in 3 s while quiet");

    // A change makes it active again: the next change arrives within a poll of the first one.
    let add_span = |index: usize| {
        fakes.api.update("run_activequiet", |run| {
            let root = run.events["events"][0]["spanId"].clone();
            run.events["events"].as_array_mut().unwrap().push(json!({
                "spanId": format!("{index:016x}"), "parentId": root, "runId": "run_activequiet",
                "message": "late step", "startTime": "1758630768120000000", "duration": 5,
                "isError": false, "isCancelled": false, "isPartial": false, "level": "TRACE",
                "kind": "UNSPECIFIED", "attemptNumber": 1, "events": []
            }));
        })
    };
    let spans = || fakes.receiver.recorder.spans().len();
    let exported = spans();
    add_span(0xa1);
    wait_until("the first new span", Duration::from_secs(5), || spans() > exported).await;
    let before = polls();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(polls() - before >= 3, "active again after a change");
    daemon.stop().await;
    fakes.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_s_own_span_ending_asks_its_status_in_the_same_poll() {
    // A child still running when the run is cancelled: the status is not asked for want of
    // partial spans; the own span's end is the sign.
    let mut run = generate::fake_run("run_ownspanend", "t", 12, true);
    run.events["events"][1]["isPartial"] = true.into();
    run.events["events"][1]["duration"] = 0.into();
    let fakes = Fakes::start([run]).await;
    let mut config = fakes.config(&["run_ownspanend"]);
    config.runs.poll_interval = Duration::from_millis(200);
    config.runs.quiet_after = Duration::from_secs(60);
    let daemon = Running::start(config, fast_options());
    let asked = || fakes.api.requests_to(&status_path("run_ownspanend"));
    // The first poll asks, then the safety net once (after six intervals, 1.2 s): the next one
    // is 1.2 s away, so only the sign can explain a status request sooner.
    wait_until("the periodic status request", Duration::from_secs(10), || asked() >= 2).await;

    // The run is cancelled: the server finishes its own span (cancelled); the child stays partial.
    let changed = std::time::Instant::now();
    fakes.api.update("run_ownspanend", |run| {
        let root = &mut run.events["events"][0];
        root["isPartial"] = false.into();
        root["isCancelled"] = true.into();
        root["duration"] = 50_000_000.into();
        run.run["status"] = "CANCELED".into();
    });
    wait_until("the status asked for the sign", Duration::from_secs(10), || {
        asked() >= 3
    })
    .await;
    let after = changed.elapsed();
    assert!(
        after < Duration::from_millis(900),
        "asked {after:?} after the end, not at the next poll"
    );
    daemon.wait_retired(1, Duration::from_secs(10)).await;
    let requests = fakes.api.requests();
    let paths: Vec<&str> = requests
        .iter()
        .map(|r| r.path.as_str())
        .filter(|p| p.contains("run_ownspanend"))
        .collect();
    // Asked after the events that showed the end, in the same poll.
    let last = paths.iter().rposition(|p| *p == status_path("run_ownspanend")).unwrap();
    assert_eq!(paths[last - 1], events_path("run_ownspanend"), "{paths:?}");
    assert_eq!(
        asked(),
        3,
        "the first poll, the safety net, then once for the sign: {paths:?}"
    );
    // The child left running was exported as partial.
    let partial = fakes
        .receiver
        .recorder
        .spans()
        .iter()
        .any(|s| s.attributes.iter().any(|kv| kv.key == "trigger.partial"));
    assert!(partial, "the running child exported as partial");
    daemon.stop().await;
    fakes.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_listed_as_ended_settles_without_a_status_request() {
    let fakes = Fakes::start([generate::fake_run("run_listedend", "t", 12, true)]).await;
    let mut config = fakes.config(&[]);
    config.discovery.enabled = true;
    config.discovery.interval = Duration::from_millis(100);
    config.runs.poll_interval = Duration::from_millis(300);
    config.runs.quiet_after = Duration::from_secs(60);
    let daemon = Running::start(config, fast_options());
    let polls = || fakes.api.requests_to(&events_path("run_listedend"));
    wait_until("a poll", Duration::from_secs(10), || polls() >= 1).await;
    // The root stays partial (nothing in the events shows the end); only the listing says so.
    fakes
        .api
        .update("run_listedend", |run| run.run["status"] = "CANCELED".into());
    daemon
        .wait_for("the run retired", Duration::from_secs(10), |s| s.runs_retired() == 1)
        .await;
    assert_eq!(
        fakes.api.requests_to(&status_path("run_listedend")),
        0,
        "the listing stood in for every status request"
    );
    let spans = fakes.receiver.recorder.spans();
    assert!(spans
        .iter()
        .any(|s| s.attributes.iter().any(|kv| kv.key == "trigger.partial")));
    daemon.stop().await;
    fakes.stop().await;
}
