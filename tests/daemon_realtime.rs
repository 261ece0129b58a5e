//! Discovery through Trigger.dev's realtime stream (issue 15), against the kit's fake: a run
//! created while the daemon runs is watched as soon as the stream pushes it and its end is
//! learnt the same way, with no REST request for discovery after the start-up listing and none
//! for its status; when the stream is unavailable (404, too many connections, connections dropped
//! three times in a row) the list endpoint
//! takes over and nothing is lost, and once the stream is back the daemon returns to it.

mod support;

use std::time::{Duration, Instant};
use support::daemon::{fast_options, get_with, Fakes, Running};
use support::generate;
use support::realtime::Availability;
use trigger_otel_bridge::config::BridgeConfig;
use trigger_otel_bridge::daemon::DaemonOptions;
use trigger_otel_bridge::discover::realtime::SubscriberTuning;

fn options() -> DaemonOptions {
    DaemonOptions {
        realtime_tuning: SubscriberTuning {
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(300),
            retry_unavailable_after: Duration::from_millis(500),
            ..SubscriberTuning::default()
        },
        ..fast_options()
    }
}

fn discovering(fakes: &Fakes, interval: Duration) -> BridgeConfig {
    let mut config = fakes.config(&[]);
    config.discovery.enabled = true;
    config.discovery.interval = interval;
    config
}

/// `name{labels}`'s value on `/metrics`, 0 when absent.
async fn metric(daemon: &Running, series: &str) -> f64 {
    let (_, _, text) = get_with(daemon.addr(), "/metrics", "").await;
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

async fn until_metric(daemon: &Running, series: &str, value: f64, limit: Duration) {
    let started = Instant::now();
    loop {
        let now = metric(daemon, series).await;
        if now == value {
            return;
        }
        assert!(started.elapsed() < limit, "{series} stayed {now}, not {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_their_ends_arrive_through_the_stream_with_no_rest_discovery() {
    let fakes = Fakes::start([]).await;
    // Rounds of the list endpoint would show here: a minute apart, none is due during the test.
    let daemon = Running::serving(discovering(&fakes, Duration::from_secs(60)), options()).await;
    daemon.readyz_becomes(200, Duration::from_secs(10)).await;
    until_metric(
        &daemon,
        "trigger_otel_bridge_discovery_source{source=\"realtime\"}",
        1.0,
        Duration::from_secs(5),
    )
    .await;
    // The stream is live (held polls) before the run is created.
    until("a live poll", Duration::from_secs(5), || {
        fakes.api.stream().live_now() > 0
    })
    .await;

    let run = "run_streamed01";
    fakes.api.add(generate::fake_run(run, "t", 20, true));
    let events = format!("/api/v1/runs/{run}/events");
    let watched_after = until("the new run's first poll", Duration::from_secs(5), || {
        fakes.api.requests_to(&events) > 0
    })
    .await;
    assert!(
        watched_after < Duration::from_secs(2),
        "watched {watched_after:?} after its creation"
    );

    // It ends: the stream says so, and the run settles and is retired without a status request.
    fakes.api.set(generate::fake_run(run, "t", 20, false));
    daemon.wait_retired(1, Duration::from_secs(10)).await;
    assert_eq!(
        fakes.api.requests_to(&format!("/api/v3/runs/{run}")),
        0,
        "no status request for a streamed run"
    );
    let expected = generate::span_count(20) as u64;
    assert_eq!(fakes.receiver.recorder.span_count(), expected);
    assert_eq!(fakes.receiver.recorder.distinct_spans() as u64, expected);

    // REST discovery: the start-up check's page of one and the start-up listing, nothing more.
    let lists = fakes.api.queries_to("/api/v1/runs");
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert_eq!(
        metric(
            &daemon,
            "trigger_otel_bridge_discovery_source_switches_total{reason=\"recovered\"}"
        )
        .await,
        0.0
    );
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_endpoint_takes_over_while_the_stream_is_unavailable_and_hands_back() {
    for (unavailable, reason) in [
        ("404", "not_served"),
        ("too many connections", "busy"),
        ("dropped connections", "failing"),
    ] {
        let fakes = Fakes::start([]).await;
        match unavailable {
            "404" => fakes.api.stream().set_availability(Availability::NotFound),
            "dropped connections" => fakes.api.stream().set_availability(Availability::Dropped),
            _ => fakes.api.stream().configure(|options| options.max_live = 0),
        }
        let interval = Duration::from_millis(500);
        let daemon = Running::serving(discovering(&fakes, interval), options()).await;
        daemon.readyz_becomes(200, Duration::from_secs(10)).await;
        let switched = format!("trigger_otel_bridge_discovery_source_switches_total{{reason=\"{reason}\"}}");
        until_metric(&daemon, &switched, 1.0, Duration::from_secs(5)).await;
        until_metric(
            &daemon,
            "trigger_otel_bridge_discovery_source{source=\"list\"}",
            1.0,
            Duration::from_secs(1),
        )
        .await;

        // A run created meanwhile is found by the list endpoint within one interval (and a poll).
        let run = "run_listed0001";
        fakes.api.add(generate::fake_run(run, "t", 20, false));
        let events = format!("/api/v1/runs/{run}/events");
        let found_after = until("the run found by listing", Duration::from_secs(5), || {
            fakes.api.requests_to(&events) > 0
        })
        .await;
        assert!(
            found_after < interval + Duration::from_secs(1),
            "{unavailable}: found after {found_after:?}"
        );
        daemon.wait_retired(1, Duration::from_secs(10)).await;

        // The stream recovers: back on it, and the list endpoint rests.
        match unavailable {
            "404" | "dropped connections" => fakes.api.stream().set_availability(Availability::Served),
            _ => fakes.api.stream().configure(|options| options.max_live = 10),
        }
        until_metric(
            &daemon,
            "trigger_otel_bridge_discovery_source{source=\"realtime\"}",
            1.0,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            metric(
                &daemon,
                "trigger_otel_bridge_discovery_source_switches_total{reason=\"recovered\"}"
            )
            .await,
            1.0
        );
        tokio::time::sleep(interval).await;
        let lists = fakes.api.queries_to("/api/v1/runs").len();
        tokio::time::sleep(interval * 3).await;
        assert_eq!(
            fakes.api.queries_to("/api/v1/runs").len(),
            lists,
            "{unavailable}: the list endpoint rests"
        );

        // And a run created now arrives through the stream; nothing was lost or sent twice.
        let run = "run_streamed02";
        fakes.api.add(generate::fake_run(run, "t", 20, false));
        daemon.wait_retired(2, Duration::from_secs(10)).await;
        let expected = 2 * generate::span_count(20) as u64;
        assert_eq!(fakes.receiver.recorder.span_count(), expected, "{unavailable}");
        assert_eq!(
            fakes.receiver.recorder.distinct_spans() as u64,
            expected,
            "{unavailable}"
        );
        fakes.stop_with(daemon).await;
    }
}
