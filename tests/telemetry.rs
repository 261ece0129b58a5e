//! The bridge's own telemetry on loopback: `/metrics` counters move as spans are exported and
//! rejected and parse as Prometheus text, and every known series is there at 0 from the start;
//! `/healthz`; `/readyz` flips on a 401 from Trigger.dev and on a collector unreachable past the
//! bound (an idle replica: tests/startup_check.rs); the built
//! binary serves all three on `server.listen` and never shows a planted secret key in its logs,
//! metrics or errors.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::daemon::{config, fast_options, get_with, Fakes, Running};
use support::fake_api::{FakeApi, Scripted};
use support::generate;
use support::otlp_receiver::Receiver;
use support::process;
use trigger_otel_bridge::convert::InvalidReason;
use trigger_otel_bridge::daemon::{self, stats::DaemonStats, DaemonOptions};
use trigger_otel_bridge::schedule::watched::RetireReason;

const PLANTED_KEY: &str = "tr_dev_PLANTEDsecretTELEMETRY42";
const PLANTED_PART: &str = "PLANTEDsecret";

/// One HTTP/1.1 GET over a fresh connection: (status, content type, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    get_with(addr, path, "").await
}

/// Every line of a Prometheus text exposition is a comment or `name{labels} value`; returns the
/// samples by series (`name{labels}`).
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let kind = comment.split_whitespace().next().unwrap_or_default();
            assert!(matches!(kind, "HELP" | "TYPE" | "UNIT" | "EOF"), "odd comment: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "bad labels: {line}"
            );
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate series: {line}"
        );
    }
    samples
}

/// The daemon's `/metrics`, parsed.
async fn metrics_of(daemon: &Running) -> HashMap<String, f64> {
    let (status, content_type, body) = get(daemon.addr(), "/metrics").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    parse_prometheus(&body)
}

fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from {samples:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_as_spans_are_exported_and_rejected() {
    let fakes = Fakes::start([generate::fake_run("run_metrics1", "t", 30, false)]).await;
    *fakes.receiver.recorder.poison_name.lock().unwrap() = Some("step 5".into());
    let daemon = Running::serving(fakes.config(&["run_metrics1"]), fast_options()).await;
    let receiver = &fakes.receiver;

    let (status, _, body) = get(daemon.addr(), "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let before = metrics_of(&daemon).await;
    assert_eq!(
        sample(&before, "trigger_otel_bridge_build_info{version=\"0.1.0\"}"),
        1.0
    );

    daemon.wait_retired(1, Duration::from_secs(15)).await;
    let after = metrics_of(&daemon).await;
    let spans = generate::span_count(30) as f64;
    assert_eq!(sample(&after, "trigger_otel_bridge_spans_exported_total"), spans - 1.0);
    assert_eq!(sample(&after, "trigger_otel_bridge_spans_rejected_total"), 1.0);
    assert_eq!(sample(&after, "trigger_otel_bridge_spans_export_failed_total"), 0.0);
    assert_eq!(
        sample(&after, "trigger_otel_bridge_runs_retired_total{reason=\"settled\"}"),
        1.0
    );
    assert_eq!(sample(&after, "trigger_otel_bridge_runs_watched"), 0.0);
    assert_eq!(sample(&after, "trigger_otel_bridge_pending_spans"), 0.0);
    assert!(
        sample(
            &after,
            "trigger_otel_bridge_api_requests_total{endpoint=\"events\",status=\"200\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &after,
            "trigger_otel_bridge_api_requests_total{endpoint=\"run\",status=\"200\"}"
        ) >= 1.0
    );
    // Generated runs have no trace: the trace endpoint answers 404.
    assert_eq!(
        sample(
            &after,
            "trigger_otel_bridge_api_requests_total{endpoint=\"trace\",status=\"404\"}"
        ),
        1.0
    );
    assert!(sample(&after, "trigger_otel_bridge_export_batch_duration_seconds_count") >= 2.0);
    assert!(sample(&after, "trigger_otel_bridge_poll_lag_seconds_count") >= 1.0);
    assert_eq!(
        sample(&after, "trigger_otel_bridge_poll_lag_seconds_bucket{le=\"+Inf\"}"),
        sample(&after, "trigger_otel_bridge_poll_lag_seconds_count")
    );
    // The counters agree with what the collector holds.
    assert_eq!(receiver.recorder.spans().len() as f64, spans - 1.0);
    assert_eq!(daemon.stats.spans_exported() as f64, spans - 1.0);

    let body = daemon.readyz_becomes(200, Duration::from_secs(5)).await;
    assert_eq!(body, "ok\n");
    // Prometheus asks for OpenMetrics and gets it.
    let accept = "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n";
    let (status, content_type, body) = get_with(daemon.addr(), "/metrics", accept).await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"));
    parse_prometheus(&body);
    fakes.stop_with(daemon).await;
}

/// A fresh bridge with nothing to do yet: every family whose label values are known is on
/// `/metrics` at 0 (an `increase(...) > 0` alert then sees the first event, and a panel shows 0,
/// not "no data"); only the rate-limit headroom waits for Trigger.dev to state it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_known_series_is_exposed_at_0_on_a_fresh_bridge() {
    let api = FakeApi::start([]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&api, "http://127.0.0.1:1", &dir.path().join("state.db"), &[]);
    let daemon = Running::serving(config, fast_options()).await;
    daemon.readyz_becomes(200, Duration::from_secs(10)).await;
    let samples = metrics_of(&daemon).await;
    let mut at_zero: Vec<String> = [
        "runs_watched",
        "pending_spans",
        "polls_total",
        "polls_unchanged_total",
        "poll_errors_total",
        "spans_exported_total",
        "spans_export_failed_total",
        "spans_rejected_total",
        "log_records_exported_total",
        "log_records_export_failed_total",
        "log_records_rejected_total",
        "poll_lag_seconds_count",
        "export_batch_duration_seconds_count",
    ]
    .iter()
    .map(|name| format!("trigger_otel_bridge_{name}"))
    .collect();
    for reason in RetireReason::ALL {
        at_zero.push(format!(
            "trigger_otel_bridge_runs_retired_total{{reason=\"{}\"}}",
            reason.as_str()
        ));
    }
    for reason in InvalidReason::ALL {
        at_zero.push(format!(
            "trigger_otel_bridge_invalid_events_total{{reason=\"{}\"}}",
            reason.as_str()
        ));
    }
    for reason in ["reserve", "rate_limited"] {
        at_zero.push(format!("trigger_otel_bridge_api_holds_total{{reason=\"{reason}\"}}"));
    }
    for endpoint in ["events", "trace", "run", "list"] {
        for status in ["200", "error"] {
            if (endpoint, status) == ("list", "200") {
                // The start-up check's page of one may have been asked already: 0 or 1.
                let series = "trigger_otel_bridge_api_requests_total{endpoint=\"list\",status=\"200\"}";
                assert!(sample(&samples, series) <= 1.0, "{series}");
                continue;
            }
            at_zero.push(format!(
                "trigger_otel_bridge_api_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}}"
            ));
        }
    }
    for series in &at_zero {
        assert_eq!(sample(&samples, series), 0.0, "{series}");
    }
    assert_eq!(
        sample(&samples, "trigger_otel_bridge_build_info{version=\"0.1.0\"}"),
        1.0
    );
    for known in [
        "trigger_otel_bridge_api_rate_limit_reserve",
        "trigger_otel_bridge_api_allowed_requests_per_minute",
    ] {
        assert!(samples.contains_key(known), "{known} missing");
    }
    for unknown in [
        "trigger_otel_bridge_api_rate_limit_remaining",
        "trigger_otel_bridge_api_rate_limit_limit",
    ] {
        assert!(!samples.contains_key(unknown), "{unknown} before Trigger.dev said it");
    }
    daemon.stop().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_flips_to_not_ready_on_a_401_from_trigger_dev_and_back() {
    // A run that keeps executing, so the daemon keeps asking.
    let fakes = Fakes::start([generate::fake_run("run_auth0001", "t", 10, true)]).await;
    let daemon = Running::serving(fakes.config(&["run_auth0001"]), fast_options()).await;
    daemon.readyz_becomes(200, Duration::from_secs(5)).await;
    let api = &fakes.api;

    // The key is revoked: every endpoint answers 401.
    let unauthorized = Scripted::status(401, r#"{"error":"Invalid or Missing API key"}"#);
    for path in [
        "/api/v1/runs/run_auth0001/events",
        "/api/v3/runs/run_auth0001",
        "/api/v1/runs/run_auth0001/trace",
    ] {
        api.script(path, std::iter::repeat_n(unauthorized.clone(), 1000));
    }
    let reason = daemon.readyz_becomes(503, Duration::from_secs(5)).await;
    assert!(reason.contains("rejected the secret key (HTTP 401)"), "{reason}");
    let (status, _, _) = get(daemon.addr(), "/healthz").await;
    assert_eq!(status, 200, "alive while not ready");
    // Counted under the endpoint that got it: the run's trace, status or events request,
    // whichever its polls send first (a failed request ends the poll).
    let samples = metrics_of(&daemon).await;
    let rejected: f64 = ["events", "trace", "run"]
        .iter()
        .filter_map(|endpoint| {
            samples
                .get(&format!(
                    "trigger_otel_bridge_api_requests_total{{endpoint=\"{endpoint}\",status=\"401\"}}"
                ))
                .copied()
        })
        .sum();
    assert!(rejected >= 1.0, "{samples:#?}");

    // The key works again.
    api.clear_scripts();
    daemon.readyz_becomes(200, Duration::from_secs(5)).await;
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_flips_to_not_ready_when_the_collector_is_unreachable_past_the_bound() {
    let api = FakeApi::start([generate::fake_run("run_nocoll01", "t", 20, false)]).await;
    // A port nothing listens on.
    let closed = format!("127.0.0.1:{}", process::free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        &api,
        &format!("http://{closed}"),
        &dir.path().join("state.db"),
        &["run_nocoll01"],
    );
    let options = DaemonOptions {
        readiness_export_bound: Duration::from_secs(2),
        // The spans never leave: stopping abandons them to the next start.
        shutdown_deadline: Duration::from_millis(200),
        ..fast_options()
    };
    let daemon = Running::serving(config, options).await;
    // Ready while the spans have waited less than the bound…
    daemon.readyz_becomes(200, Duration::from_secs(5)).await;
    // …not ready once they waited longer.
    let reason = daemon.readyz_becomes(503, Duration::from_secs(10)).await;
    assert!(reason.contains("collector has accepted nothing"), "{reason}");
    let samples = metrics_of(&daemon).await;
    assert!(sample(&samples, "trigger_otel_bridge_spans_export_failed_total") > 0.0);
    assert!(sample(&samples, "trigger_otel_bridge_pending_spans") > 0.0);
    assert_eq!(sample(&samples, "trigger_otel_bridge_spans_exported_total"), 0.0);
    let (status, _, _) = get(daemon.addr(), "/healthz").await;
    assert_eq!(status, 200, "alive while not ready");
    daemon.stop().await;
    api.stop().await;
}

/// The daemon as a process, with a planted key and JSON logs at trace level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_telemetry_and_never_shows_the_key() {
    let invalid_run = "run_invalid01".to_owned();
    let mut with_invalid = generate::fake_run(&invalid_run, "t", 5, false);
    with_invalid.events["events"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(42));
    let api = FakeApi::start([generate::fake_run("run_planted1", "t", 20, false), with_invalid]).await;
    api.accept_key(PLANTED_KEY);
    let receiver = Receiver::start().await;
    *receiver.recorder.poison_name.lock().unwrap() = Some("step 13".into());
    let dir = tempfile::tempdir().unwrap();
    let config_text = format!(
        r#"
[trigger]
api_url = "{api}"
[runs]
ids = ["run_planted1", "{invalid_run}"]
poll_interval = "100ms"
max_poll_interval = "300ms"
settle = "200ms"
[export]
endpoint = "{endpoint}"
[state]
path = "{state}"
[server]
listen = "127.0.0.1:0"
[log]
format = "json"
level = "trace"
"#,
        api = api.url(),
        endpoint = receiver.grpc_endpoint(),
        state = dir.path().join("state.db").display(),
    );
    let config_path = dir.path().join("bridge.toml");
    std::fs::write(&config_path, config_text).unwrap();
    let log_path = dir.path().join("stderr.log");
    let mut child = process::bridge(&["run"], &config_path, &log_path)
        .env("TRIGGER_SECRET_KEY", PLANTED_KEY)
        .spawn()
        .unwrap();

    // The address it bound is in its log.
    let started = Instant::now();
    let addr: std::net::SocketAddr = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("telemetry server listening"))
            })
            .and_then(|l| l["fields"]["addr"].as_str().and_then(|a| a.parse().ok()));
        if let Some(addr) = found {
            break addr;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no listening line:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, _, _) = get(addr, "/healthz").await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let metrics_text = loop {
        let (_, _, body) = get(addr, "/metrics").await;
        let samples = parse_prometheus(&body);
        let retired = samples
            .iter()
            .filter(|(k, _)| k.starts_with("trigger_otel_bridge_runs_retired_total"))
            .map(|(_, v)| v)
            .sum::<f64>();
        if retired >= 2.0 {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "runs not retired:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let samples = parse_prometheus(&metrics_text);
    assert_eq!(sample(&samples, "trigger_otel_bridge_spans_rejected_total"), 1.0);
    assert!(samples
        .iter()
        .any(|(k, v)| k.starts_with("trigger_otel_bridge_invalid_events_total{reason=") && *v > 0.0));
    let (status, _, readyz) = get(addr, "/readyz").await;
    assert_eq!((status, readyz.as_str()), (200, "ok\n"));
    // The key was really sent (so not finding it below means something).
    assert!(api
        .requests()
        .iter()
        .any(|r| r.authorization() == Some(&*format!("Bearer {PLANTED_KEY}"))));

    let status = process::terminate(&mut child, Duration::from_secs(15))
        .await
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(!metrics_text.contains(PLANTED_PART), "the key in /metrics");
    assert!(!logs.contains(PLANTED_PART), "the key in the logs:\n{logs}");
    // Every line that mentions a run carries its run_id field.
    for line in logs.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        for run in ["run_planted1", invalid_run.as_str()] {
            if line.contains(run) {
                assert!(
                    value["fields"]["run_id"].is_string() || value["span"]["run_id"].is_string(),
                    "a line about {run} without run_id: {line}"
                );
            }
        }
    }
    for message in [
        "run retired",
        "the collector rejected this span; it is dropped",
        "invalid elements in run",
    ] {
        assert!(logs.contains(message), "{message:?} not logged:\n{logs}");
    }
    api.stop().await;
    receiver.stop().await;
}

/// Error output of the commands that use the key: a rejected key, check-config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_check_config_never_show_the_key() {
    let fakes = Fakes::start([generate::fake_run("run_errors01", "t", 5, false)]).await;
    let (api, receiver) = (&fakes.api, &fakes.receiver);
    let config_path = fakes.dir.path().join("bridge.toml");
    std::fs::write(
        &config_path,
        format!(
            "[trigger]\napi_url = \"{}\"\nsecret_key = \"{PLANTED_KEY}\"\n[export]\nendpoint = \"{}\"\n[state]\npath = \"{}\"\n[server]\nlisten = \"\"\n",
            api.url(),
            receiver.grpc_endpoint(),
            fakes.dir.path().join("state.db").display()
        ),
    )
    .unwrap();
    // The key is in the file alone.
    let bridge = |args: &[&str]| {
        let mut command = process::binary(args);
        command.env("RUST_LOG", "trace");
        async move { command.output().await.unwrap() }
    };
    let config_arg = config_path.to_str().unwrap();
    // The fake API does not know the planted key: 401.
    let output = bridge(&["export", "--config", config_arg, "run_errors01"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    let output = bridge(&["check-config", "--config", config_arg]).await;
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(stdout.contains("tr_dev_…****"), "{stdout}");
    // A config error in the same file.
    let broken = fakes.dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        format!("[trigger]\nsecret_key = \"{PLANTED_KEY}\"\ntimeout = \"soon\"\n"),
    )
    .unwrap();
    let broken_output = bridge(&["run", "--config", broken.to_str().unwrap()]).await;
    assert_eq!(broken_output.status.code(), Some(2));
    for text in [
        stderr,
        stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
        String::from_utf8_lossy(&broken_output.stderr).into_owned(),
        String::from_utf8_lossy(&broken_output.stdout).into_owned(),
    ] {
        assert!(!text.contains(PLANTED_PART), "the key shown:\n{text}");
    }
    fakes.stop().await;
}

#[tokio::test]
async fn the_daemon_binds_server_listen_and_a_taken_port_is_an_error() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = FakeApi::start([]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&api, "http://127.0.0.1:1", &dir.path().join("state.db"), &[]);
    config.server.listen = Some(taken.local_addr().unwrap().to_string());
    let stats = Arc::new(DaemonStats::default());
    let error = daemon::run(config, fast_options(), stats, std::future::pending())
        .await
        .expect_err("the port is taken");
    assert!(error.to_string().contains("server.listen"), "{error}");
    let status = trigger_otel_bridge::commands::CommandError::from(error).exit_status();
    assert_eq!(
        status,
        trigger_otel_bridge::commands::ExitStatus::Failure,
        "a taken port is not a config error"
    );
    api.stop().await;
}
