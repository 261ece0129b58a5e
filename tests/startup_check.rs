//! The start-up check against real sockets: a wrong `api_url` (404 under a path prefix, an HTML
//! page), a rejected key and a closed port are told apart on `/readyz`, each naming the setting to
//! change; nothing is polled (so nothing is retired) until the check passes; an idle replica is
//! ready once it passes; and exports that all fail make the bridge not ready within the grace.

mod support;

use axum::response::IntoResponse;
use std::time::Duration;
use support::daemon::{fast_options, Fakes, Running};
use support::fake_api::FakeApi;
use support::{generate, process};
use trigger_otel_bridge::config::secret::SecretString;
use trigger_otel_bridge::daemon::DaemonOptions;

const LIMIT: Duration = Duration::from_secs(10);

/// A daemon watching `run_check001` on an API at `api_url`, serving `/readyz`.
async fn daemon_at(
    fakes: &Fakes,
    api_url: &str,
    change: impl FnOnce(&mut trigger_otel_bridge::config::BridgeConfig),
) -> Running {
    let mut config = fakes.config(&["run_check001"]);
    config.trigger.api_url = api_url.to_owned();
    change(&mut config);
    Running::serving(config, fast_options()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_path_prefix_is_named_and_nothing_is_polled() {
    let fakes = Fakes::start([generate::fake_run("run_check001", "t", 5, true)]).await;
    let daemon = daemon_at(&fakes, &format!("{}/trigger", fakes.api.url()), |_| {}).await;
    let reason = daemon.readyz_says("start-up check", LIMIT).await;
    assert!(
        reason.contains("is not a Trigger.dev API")
            && reason.contains("HTTP 404")
            && reason.contains("trigger.api_url (TRIGGER_API_URL)")
            && reason.contains("/trigger/api/v1/runs answered HTTP 404"),
        "{reason}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        fakes.api.requests_to("/trigger/api/v1/runs/run_check001/events"),
        0,
        "no poll before the check passes"
    );
    assert_eq!(daemon.stats.runs_retired(), 0);
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_page_is_a_wrong_api_url() {
    let fakes = Fakes::start([]).await;
    let site = FakeApi::answering(|_, _| async {
        (
            [("content-type", "text/html")],
            "<!DOCTYPE html><html><body>Welcome</body></html>",
        )
            .into_response()
    })
    .await;
    let daemon = daemon_at(&fakes, &site.url(), |_| {}).await;
    let reason = daemon.readyz_says("start-up check", LIMIT).await;
    assert!(
        reason.contains("not JSON") && reason.contains("<!DOCTYPE html>") && reason.contains("trigger.api_url"),
        "{reason}"
    );
    fakes.stop_with(daemon).await;
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_names_the_key_setting() {
    let fakes = Fakes::start([generate::fake_run("run_check001", "t", 5, true)]).await;
    let url = fakes.api.url();
    let daemon = daemon_at(&fakes, &url, |config| {
        config.trigger.secret_key = SecretString::new("tr_dev_notTheRightKey000");
    })
    .await;
    let reason = daemon.readyz_says("start-up check", LIMIT).await;
    assert!(
        reason.contains("HTTP 401") && reason.contains("TRIGGER_SECRET_KEY") && reason.contains("tr_dev_"),
        "{reason}"
    );
    assert!(
        !reason.contains("notTheRightKey"),
        "the key itself is never shown: {reason}"
    );
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_unreachable() {
    let fakes = Fakes::start([]).await;
    let closed = format!("http://127.0.0.1:{}", process::free_port());
    let daemon = daemon_at(&fakes, &closed, |_| {}).await;
    let reason = daemon.readyz_says("start-up check", LIMIT).await;
    assert!(
        reason.contains("cannot reach Trigger.dev at")
            && reason.contains(&closed)
            && reason.contains("trigger.api_url"),
        "{reason}"
    );
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_replica_is_ready_once_the_check_passes() {
    // No runs, discovery off: the check is the only request, and it makes the replica ready.
    let fakes = Fakes::start([]).await;
    let url = fakes.api.url();
    let daemon = daemon_at(&fakes, &url, |config| config.runs.ids.clear()).await;
    assert_eq!(daemon.readyz_becomes(200, LIMIT).await, "ok\n");
    let queries = fakes.api.queries_to("/api/v1/runs");
    assert_eq!(queries.len(), 1, "one request: {queries:?}");
    assert!(
        queries[0].contains("page%5Bsize%5D=1") || queries[0].contains("page[size]=1"),
        "{queries:?}"
    );
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_that_all_fail_are_not_ready_within_the_grace_and_say_why() {
    let fakes = Fakes::start([generate::fake_run("run_check001", "t", 20, false)]).await;
    let closed = format!("http://127.0.0.1:{}", process::free_port());
    let mut config = fakes.config(&["run_check001"]);
    config.export.endpoint = closed.clone();
    let options = DaemonOptions {
        readiness_export_grace: Duration::from_secs(1),
        readiness_export_bound: Duration::from_secs(600),
        shutdown_deadline: Duration::from_millis(200),
        ..fast_options()
    };
    let daemon = Running::serving(config, options).await;
    daemon.readyz_becomes(200, LIMIT).await;
    let reason = daemon.readyz_says("every export attempt failed", LIMIT).await;
    assert!(
        reason.contains("every export attempt failed for") && reason.contains("spans waiting"),
        "{reason}"
    );
    fakes.stop_with(daemon).await;
}
