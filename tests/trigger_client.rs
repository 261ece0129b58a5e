//! `TriggerClient` against the test kit's fake Trigger.dev API on 127.0.0.1, each test shaping
//! every answer itself (`FakeApi::answering`), broken bodies included (`fake_api::broken`: cut
//! short, trickling, stalled, endless); and against endpoints that are not the API
//! (`support::faulty`: a closed port, a web server's 404 page, an untrusted certificate), whose
//! errors must name the URL, the cause once and the setting to check.

mod support;

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use support::fake_api::{broken, set_limit_headers, too_many_requests, FakeApi};
use support::faulty::{closed_port, NotFoundHtml, UntrustedTls};
use support::SharedBuffer;

use trigger_otel_bridge::config::TriggerConfig;
use trigger_otel_bridge::trigger::{
    ApiError, ClientTuning, ErrorBody, RateLimitTuning, RetryPolicy, RunFilters, TriggerClient,
};

const KEY: &str = "tr_dev_SECRETplanted0123456789";
const MB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Helpers

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).expect(&path)
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(body).expect("gzip");
    encoder.finish().expect("gzip")
}

fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [("content-type", "application/json")], body.into()).into_response()
}

fn gzip_response(body: &[u8]) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json"), ("content-encoding", "gzip")],
        gzip(body),
    )
        .into_response()
}

fn ok_json(value: Value) -> Response {
    json_response(StatusCode::OK, value.to_string())
}

/// The `x-ratelimit-reset` (unix ms) of the answer to the first request.
fn announced_reset(api: &FakeApi) -> u64 {
    api.answer(0)
        .expect("answered")
        .header("x-ratelimit-reset")
        .parse()
        .unwrap()
}

fn tuning() -> ClientTuning {
    ClientTuning {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            max_attempts: 3,
            not_found_retries: 3,
            max_rate_limited: 10,
        },
        rate_limit: RateLimitTuning {
            jitter: Duration::from_millis(50),
            ..RateLimitTuning::default()
        },
        ..ClientTuning::default()
    }
}

fn test_config(url: &str) -> TriggerConfig {
    TriggerConfig {
        api_url: url.to_owned(),
        secret_key: KEY.into(),
        requests_per_minute: 60_000,
        timeout: Duration::from_secs(10),
        ..TriggerConfig::default()
    }
}

fn client(url: &str) -> TriggerClient {
    TriggerClient::with_tuning(&test_config(url), tuning()).expect("client")
}

fn assert_no_key(text: &str) {
    assert!(!text.contains("SECRETplanted"), "the key leaked: {text}");
}

/// An events body of about `target` bytes: elements with a 2,000-char message.
fn big_events_body(target: usize) -> (Vec<u8>, usize) {
    let message = "x".repeat(2000);
    let mut body = Vec::with_capacity(target + 4096);
    body.extend_from_slice(b"{\"events\":[");
    let mut count = 0;
    while body.len() < target {
        if count > 0 {
            body.push(b',');
        }
        write!(
            body,
            r#"{{"spanId":"{count:016x}","parentId":null,"runId":"run_big","message":"{message}","startTime":"1758630768120000000","duration":1000000,"isError":false,"isPartial":false,"isCancelled":false,"level":"TRACE","kind":"UNSPECIFIED"}}"#
        )
        .expect("write");
        count += 1;
    }
    body.extend_from_slice(b"]}");
    (body, count)
}

// ---------------------------------------------------------------------------------------------
// Happy paths

#[tokio::test]
async fn all_four_endpoints_send_auth_version_agent_and_accept_gzip() {
    let api = FakeApi::answering(|hit, _| async move {
        match hit.path.as_str() {
            "/api/v1/runs/run_cm1finished01/events" => gzip_response(&fixture("finished_run.events.json")),
            "/api/v1/runs/run_cm1finished01/trace" => gzip_response(&fixture("finished_run.trace.json")),
            "/api/v3/runs/run_cm1finished01" => json_response(StatusCode::OK, fixture("finished_run.run.json")),
            "/api/v1/runs" => ok_json(json!({
                "data": [{"id": "run_cm1finished01", "status": "COMPLETED", "taskIdentifier": "process-order",
                          "createdAt": "2025-09-23T12:32:48.120Z", "finishedAt": "2025-09-23T12:32:58.285Z"}],
                "pagination": {"next": null}
            })),
            "/api/v1/runs/run%20with%2Fslash%3F/events" => ok_json(json!({"events": []})),
            _ => json_response(StatusCode::NOT_FOUND, r#"{"error":"Run not found"}"#),
        }
    })
    .await;
    let client = client(&api.url());

    let events = client.events("run_cm1finished01").await.expect("events");
    assert_eq!(events.events().len(), 19);

    let trace = client.trace("run_cm1finished01").await.expect("trace").expect("found");
    assert_eq!(trace.trace_id, "a4c123b1612dd272d1371c17149d4395");
    assert_eq!(trace.span_properties.len(), 12);
    assert_eq!(
        trace.span_properties["fde53c9c0a28e52c"]["ctx.task.id"],
        json!("process-order")
    );

    let run = client.retrieve_run("run_cm1finished01").await.expect("run");
    assert_eq!(run.summary.status, "COMPLETED");
    assert_eq!(run.summary.task_identifier.as_deref(), Some("process-order"));
    assert_eq!(run.summary.finished_at, Some(1_758_630_778_285_000_000));
    assert!(run.is_terminal());

    let page = client.list_runs(&RunFilters::default(), None).await.expect("list");
    assert_eq!(page.runs.len(), 1);
    assert_eq!(page.runs[0].created_at, Some(1_758_630_768_120_000_000));
    assert_eq!(page.next_cursor, None);

    // A run id is one escaped path segment.
    let odd = client.events("run with/slash?").await.expect("escaped id");
    assert!(odd.events().is_empty());

    let hits = api.requests();
    assert_eq!(hits.len(), 5);
    for hit in &hits {
        assert_eq!(hit.header("authorization"), format!("Bearer {KEY}"), "{}", hit.path);
        assert_eq!(hit.header("x-trigger-api-version"), "2025-07-16");
        assert_eq!(
            hit.header("user-agent"),
            format!("trigger-otel-bridge/{}", env!("CARGO_PKG_VERSION"))
        );
        assert!(hit.header("accept-encoding").contains("gzip"), "{:?}", hit.headers);
        assert!(
            hit.headers.get("x-trigger-branch").is_none(),
            "no branch unless configured"
        );
    }
    assert_eq!(client.remaining(), None);
    api.stop().await;
}

/// A preview environment's key needs its branch in `x-trigger-branch`, as the SDK sends it.
#[tokio::test]
async fn a_preview_branch_is_sent_with_every_request() {
    let api = FakeApi::answering(|_, _| async { ok_json(json!({"events": []})) }).await;
    let config = TriggerConfig {
        secret_key: "tr_preview_SECRETplanted".into(),
        preview_branch: Some("feature/login".into()),
        ..test_config(&api.url())
    };
    let client = TriggerClient::with_tuning(&config, tuning()).expect("client");
    client.events("run_a").await.expect("events");
    client.events("run_b").await.expect("events");
    let hits = api.requests();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|hit| hit.header("x-trigger-branch") == "feature/login"));
    api.stop().await;
}

#[tokio::test]
async fn list_runs_sends_filters_and_follows_the_cursor() {
    let api = FakeApi::answering(|hit, _| async move {
        match hit.param("page[after]").as_deref() {
            None => ok_json(json!({
                "data": [{"id": "run_3", "status": "EXECUTING"}, {"id": "run_2", "status": "COMPLETED"}],
                "pagination": {"next": "cursor_2"}
            })),
            Some("cursor_2") => ok_json(json!({
                "data": [{"id": "run_1", "status": "FAILED", "tags": ["a"]}],
                "pagination": {"next": null, "previous": "cursor_2"}
            })),
            Some(_) => json_response(StatusCode::BAD_REQUEST, r#"{"error":"bad cursor"}"#),
        }
    })
    .await;
    let client = client(&api.url());
    let filters = RunFilters {
        statuses: vec!["COMPLETED".into(), "FAILED".into()],
        task_identifiers: vec!["process-order".into(), "send-email".into()],
        tags: vec!["customer_1".into()],
        versions: vec!["20250923.4".into()],
        is_test: Some(false),
        created_period: Some("90m".into()),
        page_size: Some(2),
        ..RunFilters::default()
    };

    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client.list_runs(&filters, cursor.as_deref()).await.expect("page");
        ids.extend(page.runs.into_iter().map(|run| run.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(ids, vec!["run_3", "run_2", "run_1"]);

    let hits = api.requests();
    assert_eq!(hits.len(), 2);
    let first = &hits[0];
    assert_eq!(first.path, "/api/v1/runs");
    assert_eq!(first.param("filter[status]").as_deref(), Some("COMPLETED,FAILED"));
    assert_eq!(
        first.param("filter[taskIdentifier]").as_deref(),
        Some("process-order,send-email")
    );
    assert_eq!(first.param("filter[tag]").as_deref(), Some("customer_1"));
    assert_eq!(first.param("filter[version]").as_deref(), Some("20250923.4"));
    assert_eq!(first.param("filter[isTest]").as_deref(), Some("false"));
    assert_eq!(first.param("filter[createdAt][period]").as_deref(), Some("90m"));
    assert_eq!(first.param("page[size]").as_deref(), Some("2"));
    assert_eq!(first.param("page[after]").as_deref(), None);
    assert_eq!(hits[1].param("page[after]").as_deref(), Some("cursor_2"));
    assert_eq!(hits[1].param("filter[status]").as_deref(), Some("COMPLETED,FAILED"));
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[tokio::test]
async fn a_429_holds_every_request_until_the_reset() {
    let api = FakeApi::answering(|_, index| async move {
        if index == 0 {
            return too_many_requests(1500, 0, Duration::from_secs(2));
        }
        let mut response = ok_json(json!({"events": []}));
        response
            .headers_mut()
            .insert("x-ratelimit-remaining", "1499".parse().unwrap());
        response
    })
    .await;
    let client = client(&api.url());
    let started = Instant::now();
    let first = {
        let client = client.clone();
        tokio::spawn(async move { client.events("run_a").await })
    };
    // Once the 429 has been answered, a second request from a clone must wait as well.
    while api.requests().is_empty() || client.rate_limiter().held_for().is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second = client.events("run_b").await.expect("second");
    assert!(second.events().is_empty());
    first.await.expect("task").expect("first succeeds after the reset");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1900), "waited only {waited:?}");

    let hits = api.requests();
    let reset = announced_reset(&api);
    assert_eq!(hits.len(), 3, "{hits:?}");
    for hit in &hits[1..] {
        assert!(
            hit.at_unix_ms >= reset,
            "{} reached the server {} ms before the reset",
            hit.path,
            reset - hit.at_unix_ms
        );
    }
    assert_eq!(client.remaining(), Some(1499));
    api.stop().await;
}

#[tokio::test]
async fn a_429_reset_from_the_problem_body_alone_is_honoured() {
    let api = FakeApi::answering(|_, index| async move {
        if index == 0 {
            let body = json!({"status": 429, "secondsUntilReset": 1});
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("content-type", "application/problem+json")],
                body.to_string(),
            )
                .into_response();
        }
        ok_json(json!({"id": "run_a", "status": "QUEUED"}))
    })
    .await;
    let client = client(&api.url());
    let run = client.retrieve_run("run_a").await.expect("run");
    assert_eq!(run.summary.status, "QUEUED");
    let hits = api.requests();
    assert!(hits[1].at_unix_ms - hits[0].at_unix_ms >= 990, "{hits:?}");
    api.stop().await;
}

#[tokio::test]
async fn low_remaining_makes_the_next_request_wait_for_the_reset() {
    let api = FakeApi::answering(|_, index| async move {
        let mut response = ok_json(json!({"events": []}));
        if index == 0 {
            set_limit_headers(response.headers_mut(), 1500, 1, now_ms() + 1500);
        }
        response
    })
    .await;
    let client = client(&api.url());
    client.events("run_a").await.expect("first");
    assert_eq!(client.remaining(), Some(1));
    client.events("run_a").await.expect("second");
    let hits = api.requests();
    let reset = announced_reset(&api);
    assert!(
        hits[1].at_unix_ms >= reset,
        "second request {} ms early",
        reset - hits[1].at_unix_ms
    );
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Retries and errors

#[tokio::test]
async fn server_errors_are_retried_then_succeed_and_retries_are_logged_without_the_key() {
    let logs = SharedBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let api = FakeApi::answering(|_, index| async move {
        if index < 2 {
            return json_response(StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"Something went wrong"}"#);
        }
        gzip_response(&fixture("executing_run.events.json"))
    })
    .await;
    let client = client(&api.url());
    let events = client
        .events("run_cm1executing1")
        .await
        .expect("third attempt succeeds");
    assert_eq!(events.events().len(), 12);
    assert_eq!(api.requests().len(), 3);

    let logs = logs.text();
    assert_eq!(logs.matches("retrying").count(), 2, "{logs}");
    assert!(
        logs.contains("run_id=\"run_cm1executing1\"") || logs.contains("run_id=run_cm1executing1"),
        "{logs}"
    );
    assert!(logs.contains("HTTP 500"), "{logs}");
    assert_no_key(&logs);
    assert!(!logs.to_lowercase().contains("authorization"), "{logs}");
    api.stop().await;
}

#[tokio::test]
async fn server_errors_give_up_after_max_attempts() {
    let api = FakeApi::answering(|_, _| async move { json_response(StatusCode::BAD_GATEWAY, "") }).await;
    let client = client(&api.url());
    let err = client.retrieve_run("run_a").await.expect_err("always 502");
    assert!(
        matches!(
            err,
            ApiError::Server {
                status: 502,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(api.requests().len(), 3);
    api.stop().await;
}

#[tokio::test]
async fn unauthorized_names_the_environment_never_the_key() {
    let api = FakeApi::answering(|_, _| async move {
        json_response(StatusCode::UNAUTHORIZED, r#"{"error":"Invalid or Missing API key"}"#)
    })
    .await;
    let client = client(&api.url());
    let err = client.events("run_a").await.expect_err("401");
    assert!(
        matches!(
            err,
            ApiError::Unauthorized {
                environment: Some("dev"),
                status: 401,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("tr_dev_"), "{message}");
    assert!(message.contains("/api/v1/runs/run_a/events"), "{message}");
    assert_no_key(&message);
    assert_no_key(&format!("{err:?}"));
    assert!(!err.is_retryable());
    assert_eq!(api.requests().len(), 1, "a rejected key is not retried");
    api.stop().await;
}

#[tokio::test]
async fn a_404_marked_should_retry_is_retried_until_found() {
    let api = FakeApi::answering(|hit, index| async move {
        if hit.path.ends_with("/trace") {
            // Never found: retried `not_found_retries` times, then None.
            return (
                StatusCode::NOT_FOUND,
                [("x-should-retry", "true")],
                r#"{"error":"Trace not found"}"#,
            )
                .into_response();
        }
        if index < 2 {
            return (
                StatusCode::NOT_FOUND,
                [("x-should-retry", "true")],
                r#"{"error":"Run not found"}"#,
            )
                .into_response();
        }
        json_response(StatusCode::OK, fixture("executing_run.run.json"))
    })
    .await;
    let client = client(&api.url());
    let run = client
        .retrieve_run("run_cm1executing1")
        .await
        .expect("found on the third try");
    assert_eq!(run.summary.status, "EXECUTING");
    assert!(!run.is_terminal());
    assert_eq!(api.requests().len(), 3);

    assert_eq!(client.trace("run_cm1executing1").await.expect("no error"), None);
    assert_eq!(api.requests().len(), 3 + 4, "1 try + 3 retries");
    api.stop().await;
}

#[tokio::test]
async fn a_plain_404_is_not_found_at_once() {
    let api =
        FakeApi::answering(|_, _| async move { json_response(StatusCode::NOT_FOUND, r#"{"error":"Run not found"}"#) })
            .await;
    let client = client(&api.url());
    let err = client.events("run_gone").await.expect_err("404");
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("Run not found"), "{err}");
    assert!(err.to_string().contains("run_gone"), "{err}");
    // Trigger.dev's own 404: the URL is right, the run is what to check.
    assert!(
        err.to_string()
            .contains("check the run id, and that trigger.secret_key (TRIGGER_SECRET_KEY)"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(api.requests().len(), 1);

    assert_eq!(client.trace("run_gone").await.expect("None, not an error"), None);
    assert_eq!(api.requests().len(), 2);
    api.stop().await;
}

#[tokio::test]
async fn a_slow_server_times_out_is_retried_then_the_error_names_the_timeout() {
    let api = FakeApi::answering(|_, _| async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        ok_json(json!({"events": []}))
    })
    .await;
    let mut config = test_config(&api.url());
    config.timeout = Duration::from_millis(200);
    let client = TriggerClient::with_tuning(&config, tuning()).expect("client");
    let started = Instant::now();
    let err = client.events("run_slow").await.expect_err("timeout");
    assert!(matches!(err, ApiError::Timeout { attempts: 3, .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("timed out after 200ms"), "{message}");
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(api.requests().len(), 3);
    drop(client);
    api.stop().await;
}

#[tokio::test]
async fn a_body_that_stalls_for_the_timeout_is_a_timeout() {
    let api = FakeApi::answering(|_, _| async { broken::stall(Duration::from_secs(3)) }).await;
    let mut config = test_config(&api.url());
    config.timeout = Duration::from_millis(200);
    let client = TriggerClient::with_tuning(&config, tuning()).expect("client");
    let started = Instant::now();
    let err = client.events("run_stalled").await.expect_err("stalled body");
    assert!(matches!(err, ApiError::Timeout { attempts: 3, .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(api.request_count(), 3);
    api.stop().await;
}

/// A server sending a valid events body in 8 pieces 200 ms apart (1.6 s in all), and a config
/// whose 1 s timeout no pause reaches (800 ms of slack for a loaded machine between two pieces).
async fn trickling() -> (FakeApi, TriggerConfig) {
    let api = FakeApi::answering(|_, _| async {
        broken::trickle(&fixture("finished_run.events.json"), 8, Duration::from_millis(200))
    })
    .await;
    let mut config = test_config(&api.url());
    config.timeout = Duration::from_secs(1);
    (api, config)
}

#[tokio::test]
async fn a_body_slower_than_the_timeout_in_total_but_never_stalled_succeeds() {
    let (api, config) = trickling().await;
    let client = TriggerClient::with_tuning(&config, tuning()).expect("client");
    let started = Instant::now();
    let events = client.events("run_trickle").await.expect("steady body");
    assert_eq!(events.events().len(), 19);
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert_eq!(api.request_count(), 1);
    api.stop().await;
}

/// A body that never stalls for `timeout` but goes on past the overall deadline (a proxy that
/// trickles) is cut there, retried, then reported: it cannot hold a poll slot forever.
#[tokio::test]
async fn a_body_still_arriving_at_the_overall_deadline_is_cut() {
    // Never stalls for the timeout, but outlasts the deadline.
    let (api, config) = trickling().await;
    let tuning = ClientTuning {
        body_deadline: Duration::from_millis(500),
        ..tuning()
    };
    let client = TriggerClient::with_tuning(&config, tuning).expect("client");
    let err = client.events("run_trickle").await.expect_err("past the deadline");
    assert!(matches!(err, ApiError::BodyCut { attempts: 3, .. }), "{err:?}");
    assert!(err.to_string().contains("still arriving after 500ms in all"), "{err}");
    assert_eq!(api.request_count(), 3);
    api.stop().await;
}

#[tokio::test]
async fn a_body_cut_midway_is_retried_then_reported() {
    let api = FakeApi::answering(|_, _| async { broken::cut_short() }).await;
    let client = client(&api.url());
    let err = client.events("run_cut").await.expect_err("cut body");
    assert!(matches!(err, ApiError::BodyCut { attempts: 3, .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("cut off") && message.contains("/api/v1/runs/run_cut/events"),
        "{message}"
    );
    assert!(err.is_retryable());
    assert_eq!(api.request_count(), 3);
    api.stop().await;
}

#[tokio::test]
async fn a_non_json_body_is_quoted() {
    let page = format!(
        "<html><head><title>502 Bad Gateway</title></head><body>{}</body></html>",
        "z".repeat(500)
    );
    let api = FakeApi::answering(move |_, _| {
        let page = page.clone();
        async move { (StatusCode::OK, [("content-type", "text/html")], page).into_response() }
    })
    .await;
    let client = client(&api.url());
    let err = client.events("run_html").await.expect_err("not JSON");
    let ApiError::NotJson { snippet, endpoint } = &err else {
        panic!("{err:?}");
    };
    assert!(snippet.starts_with("<html><head><title>502 Bad Gateway"), "{snippet}");
    assert_eq!(snippet.len(), 200);
    assert_eq!(endpoint, &format!("{}/api/v1/runs/run_html/events", api.url()));
    assert!(err.to_string().contains("502 Bad Gateway"), "{err}");
    assert!(
        err.to_string().contains("check trigger.api_url (TRIGGER_API_URL)"),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(api.requests().len(), 1);
    api.stop().await;
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_invalid_not_retried() {
    let api = FakeApi::answering(|_, _| async move { ok_json(json!({"error": "odd", "data": 1})) }).await;
    let client = client(&api.url());
    let err = client.events("run_a").await.expect_err("no events key");
    assert!(matches!(err, ApiError::Invalid { .. }), "{err:?}");
    let err = client
        .list_runs(&RunFilters::default(), None)
        .await
        .expect_err("data not an array");
    assert!(matches!(err, ApiError::Invalid { .. }), "{err:?}");
    assert_eq!(api.requests().len(), 2);
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Body limits

#[tokio::test]
async fn bodies_past_max_body_bytes_are_refused_without_reading_them_all() {
    let (body, _) = big_events_body(50 * MB);
    let plain = Bytes::from(body.clone());
    let compressed = Bytes::from(gzip(&body));
    assert!(
        compressed.len() < 10 * MB,
        "the gzip case must be under the limit on the wire"
    );
    let api = FakeApi::answering(move |hit, _| {
        let (plain, compressed) = (plain.clone(), compressed.clone());
        async move {
            if hit.path.contains("gzip") {
                (
                    StatusCode::OK,
                    [("content-type", "application/json"), ("content-encoding", "gzip")],
                    compressed,
                )
                    .into_response()
            } else {
                json_response(StatusCode::OK, plain)
            }
        }
    })
    .await;
    let mut config = test_config(&api.url());
    config.max_body_bytes = 10 * MB as u64;
    let client = TriggerClient::with_tuning(&config, tuning()).expect("client");

    // Content-Length says 50 MB: refused before reading.
    let err = client.events("run_plain").await.expect_err("too large");
    assert!(
        matches!(err, ApiError::BodyTooLarge { limit, .. } if limit == 10 * MB as u64),
        "{err:?}"
    );
    assert!(err.to_string().contains("run_plain"), "{err}");
    assert!(!err.is_retryable());

    // Small on the wire, 50 MB decompressed: stopped while streaming.
    let err = client.events("run_gzip").await.expect_err("too large decompressed");
    assert!(matches!(err, ApiError::BodyTooLarge { .. }), "{err:?}");
    assert_eq!(api.requests().len(), 2, "not retried");
    api.stop().await;

    // No Content-Length at all (chunked): stopped while streaming too.
    let api = FakeApi::answering(|_, _| async { broken::endless(50 * MB) }).await;
    let mut config = test_config(&api.url());
    config.max_body_bytes = 10 * MB as u64;
    let client = TriggerClient::with_tuning(&config, tuning()).expect("client");
    let err = client.events("run_endless").await.expect_err("too large");
    assert!(matches!(err, ApiError::BodyTooLarge { .. }), "{err:?}");
    assert_eq!(api.request_count(), 1);
    api.stop().await;
}

#[tokio::test]
async fn a_50_mb_body_under_the_limit_parses() {
    let (body, count) = big_events_body(50 * MB);
    let body = Bytes::from(body);
    let api = FakeApi::answering(move |_, _| {
        let body = body.clone();
        async move { json_response(StatusCode::OK, body) }
    })
    .await;
    let mut config = test_config(&api.url());
    config.max_body_bytes = 64 * MB as u64;
    let client = TriggerClient::with_tuning(&config, tuning()).expect("client");
    let events = client.events("run_big").await.expect("parses");
    assert_eq!(events.events().len(), count);
    assert_eq!(
        events.events()[count - 1].span_id_str(),
        Some(format!("{:016x}", count - 1).as_str())
    );
    api.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Not the API: each error names the URL, the cause once, and the setting to check

/// The message's `: `-separated links, none the same as the one before it (the cause told once).
fn assert_cause_told_once(message: &str) {
    let links: Vec<&str> = message.split(": ").collect();
    for pair in links.windows(2) {
        assert_ne!(pair[0], pair[1], "a cause told twice: {message}");
    }
}

#[tokio::test]
async fn a_closed_port_is_named_with_the_refusal_and_trigger_api_url() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let client = client(&url);
    let err = client.retrieve_run("run_x").await.expect_err("nothing listens");
    assert!(matches!(err, ApiError::Connection { attempts: 3, .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("GET {url}/api/v3/runs/run_x: ")),
        "{message}"
    );
    assert!(message.contains("Connection refused"), "{message}");
    assert!(
        message.contains("check trigger.api_url (TRIGGER_API_URL): nothing listens at its host and port"),
        "{message}"
    );
    assert_eq!(message.matches("tcp connect error").count(), 1, "{message}");
    assert_cause_told_once(&message);
    assert_no_key(&message);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_wrong_path_prefix_answering_a_web_page_is_told_apart_from_a_missing_run() {
    let web = NotFoundHtml::start().await;
    // Credentials in the URL and a query are never shown.
    let base = web.url().replacen("http://", "http://user:pass@", 1);
    let client = client(&format!("{base}/trigger?token=abc"));
    let err = client.retrieve_run("run_x").await.expect_err("404");
    let ApiError::NotFound {
        message: Some(ErrorBody::NotJson(excerpt)),
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(excerpt.contains("<title>404 Not Found</title>"), "{excerpt}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "GET {}/trigger/api/v3/runs/run_x: not found (HTTP 404: not Trigger.dev's JSON but",
            web.url()
        )),
        "{message}"
    );
    assert!(message.contains("nginx"), "{message}");
    assert!(
        message.contains("check trigger.api_url (TRIGGER_API_URL): the API's base URL, such as https://api.trigger.dev, without a path"),
        "{message}"
    );
    assert!(!message.contains("pass") && !message.contains("token"), "{message}");
    assert!(!message.contains("check the run id"), "{message}");
    // Still a 404 to the daemon: no verdict is drawn from it but after `runs.not_found_after`.
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn an_untrusted_certificate_is_named_with_rustls_words_and_the_cure() {
    let tls = UntrustedTls::start();
    let client = client(&tls.url());
    let err = client.events("run_x").await.expect_err("untrusted");
    assert!(matches!(err, ApiError::Connection { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("GET {}/api/v1/runs/run_x/events: ", tls.url())),
        "{message}"
    );
    assert_eq!(
        message.matches("invalid peer certificate: UnknownIssuer").count(),
        1,
        "{message}"
    );
    assert!(message.contains("check trigger.api_url (TRIGGER_API_URL)"), "{message}");
    assert!(message.contains("SSL_CERT_FILE"), "{message}");
    assert!(message.contains("after 1 attempt(s)"), "not retried: {message}");
    assert_cause_told_once(&message);
    assert_no_key(&message);
}

#[tokio::test]
async fn a_page_echoing_the_key_is_quoted_without_it() {
    let api = FakeApi::answering(|hit, _| async move {
        let echoed = format!(
            "<p>bad gateway for {}</p>",
            hit.authorization().unwrap_or_default().to_owned()
        );
        (StatusCode::BAD_REQUEST, [("content-type", "text/html")], echoed).into_response()
    })
    .await;
    let err = client(&api.url()).retrieve_run("run_x").await.expect_err("400");
    let message = err.to_string();
    assert!(message.contains("bad gateway for Bearer ****"), "{message}");
    assert!(message.contains("check trigger.api_url"), "{message}");
    assert_no_key(&message);
    api.stop().await;
}
