//! No permanent verdict on a misconfigured answer (issue 14): a 404 retires a run as not found
//! only after `runs.not_found_after` of 404s while other calls succeed. A wrong `api_url` answers
//! 404 for everything: the start-up check names it and nothing is polled; a URL that goes wrong
//! after the check retires nothing either; once fixed every run is exported.

mod support;

use std::time::Duration;
use support::daemon::{fast_options, Fakes, Running};
use support::generate;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_url_retires_nothing_and_once_fixed_every_run_is_exported() {
    let fakes = Fakes::start([
        generate::fake_run("run_wrongurl1", "t", 20, false),
        generate::fake_run("run_wrongurl2", "t", 20, false),
    ])
    .await;
    let runs = ["run_wrongurl1", "run_wrongurl2"];
    let mut wrong = fakes.config(&runs);
    // A path prefix the API does not have: every call answers 404.
    wrong.trigger.api_url = format!("{}/trigger", fakes.api.url());
    wrong.runs.not_found_after = Duration::from_millis(300);
    // The start-up check finds it out, and nothing is polled behind it (the 404 window is for a
    // URL that goes wrong after the check: the next test).
    let daemon = Running::serving(wrong, fast_options()).await;
    daemon
        .readyz_says("is not a Trigger.dev API", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(daemon.stats.runs_retired(), 0, "retired on 404s alone");
    assert_eq!(daemon.stats.polls(), 0, "polled behind a wrong URL");
    daemon.stop().await;

    // Fixed (a restart with the right URL, on the same state file): every run is exported.
    let mut fixed = fakes.config(&runs);
    fixed.runs.not_found_after = Duration::from_millis(300);
    let daemon = Running::start(fixed, fast_options());
    daemon.wait_retired(2, Duration::from_secs(15)).await;
    let expected = 2 * generate::span_count(20) as u64;
    assert_eq!(fakes.receiver.recorder.span_count(), expected);
    assert_eq!(fakes.receiver.recorder.distinct_spans() as u64, expected);
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_api_does_not_know_is_retired_once_other_calls_succeed_for_the_window() {
    // A live run keeps the API answering; the other run does not exist.
    let fakes = Fakes::start([generate::fake_run("run_known01", "t", 20, true)]).await;
    let mut config = fakes.config(&["run_known01", "run_missing1"]);
    config.runs.not_found_after = Duration::from_millis(600);
    let options = fast_options();
    let tap = options.state_tap.clone();
    let daemon = Running::start(config, options);
    let started = std::time::Instant::now();
    daemon.wait_retired(1, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "retired before the window: {:?}",
        started.elapsed()
    );
    let reason = tap
        .with(|store| store.run("run_missing1").unwrap().and_then(|r| r.retire_reason))
        .flatten();
    assert_eq!(reason.as_deref(), Some("not_found"));
    let known = tap.with(|store| store.run("run_known01").unwrap().and_then(|r| r.retire_reason));
    assert_eq!(known, Some(None), "the known run is still watched");
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_answers_404_for_everything_after_the_check_retires_nothing() {
    // The check passed; then every call answers 404 (a proxy reconfigured, say): no call
    // succeeds after the first 404, so the window never gives a verdict.
    let runs = ["run_later404a", "run_later404b"];
    let fakes = Fakes::start(runs.map(|id| generate::fake_run(id, "t", 20, false))).await;
    let not_found = support::fake_api::Scripted::status(404, r#"{"error":"Not found"}"#);
    for id in runs {
        for path in [
            format!("/api/v1/runs/{id}/events"),
            format!("/api/v1/runs/{id}/trace"),
            format!("/api/v3/runs/{id}"),
        ] {
            fakes.api.script(&path, std::iter::repeat_n(not_found.clone(), 10_000));
        }
    }
    let mut config = fakes.config(&runs);
    config.runs.not_found_after = Duration::from_millis(300);
    let daemon = Running::start(config, fast_options());
    daemon
        .wait_for("404s for longer than the window", Duration::from_secs(10), |s| {
            s.poll_errors() >= 8
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(daemon.stats.runs_retired(), 0, "retired on 404s alone");

    // The API answers again: every run is exported.
    fakes.api.clear_scripts();
    daemon.wait_retired(2, Duration::from_secs(15)).await;
    let expected = 2 * generate::span_count(20) as u64;
    assert_eq!(fakes.receiver.recorder.span_count(), expected);
    assert_eq!(fakes.receiver.recorder.distinct_spans() as u64, expected);
    fakes.stop_with(daemon).await;
}
