//! `export` end to end: the built binary against the fake Trigger.dev API and a real OTLP
//! receiver, both on loopback.

mod support;

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;
use support::fake_api::{FakeApi, FakeRun, Scripted, SECRET_KEY};
use support::hex;
use support::otlp_receiver::Receiver;
use support::process::bridge_by_env;

fn bridge_command(api: &FakeApi, receiver: &Receiver, protocol: &str) -> tokio::process::Command {
    let endpoint = if protocol == "grpc" {
        receiver.grpc_endpoint()
    } else {
        receiver.http_endpoint()
    };
    let mut cmd = bridge_by_env(&api.url(), &endpoint);
    cmd.env("TRIGGER_OTEL_BRIDGE__EXPORT__PROTOCOL", protocol)
        .env("TRIGGER_OTEL_BRIDGE__RUNS__CONCURRENCY", "2");
    cmd
}

/// The list endpoint's queries but the start-up check's page of one.
fn listing_queries(api: &FakeApi) -> Vec<String> {
    let mut queries = api.queries_to("/api/v1/runs");
    queries.retain(|q| q != "page%5Bsize%5D=1");
    queries
}

async fn run(mut cmd: tokio::process::Command, args: &[&str]) -> (Output, String) {
    let (output, _, stderr) = support::process::output(cmd.arg("export").args(args)).await;
    (output, stderr)
}

fn all_fixture_runs() -> Vec<FakeRun> {
    ["finished_run", "executing_run", "selfhosted_run", "child_run"]
        .map(FakeRun::fixture)
        .into()
}

/// The configured header must win over OTEL_EXPORTER_OTLP_HEADERS (the variable only adds names
/// it lacks), over gRPC and OTLP/HTTP, with one value per name.
#[tokio::test]
async fn configured_headers_win_over_otel_exporter_otlp_headers() {
    let api = FakeApi::start([FakeRun::fixture("child_run")]).await;
    let receiver = Receiver::start().await;
    for protocol in ["grpc", "http/protobuf"] {
        receiver.recorder.headers.lock().unwrap().clear();
        // A `-bin` name is binary gRPC metadata (base64 on the wire): it must be sent too.
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bridge.toml");
        std::fs::write(&config, "[export.headers]\n\"x-token-bin\" = \"AQID\"\n").unwrap();
        let mut cmd = bridge_command(&api, &receiver, protocol);
        cmd.env("TRIGGER_OTEL_BRIDGE_CONFIG", &config)
            .env("TRIGGER_OTEL_BRIDGE__EXPORT__HEADERS__TENANT", "from-config")
            .env("OTEL_EXPORTER_OTLP_HEADERS", "tenant=from-otel-env,extra=added");
        let (output, stderr) = run(cmd, &["run_cm1childrun01"]).await;
        assert!(output.status.success(), "{protocol}: {stderr}");
        let seen = receiver.recorder.headers.lock().unwrap().clone();
        assert!(!seen.is_empty(), "{protocol}");
        for headers in seen {
            let values = |name: &str| -> Vec<String> {
                headers
                    .get_all(name)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_owned())
                    .collect()
            };
            assert_eq!(values("tenant"), ["from-config"], "{protocol}");
            assert_eq!(values("extra"), ["added"], "{protocol}");
            assert_eq!(values("x-token-bin"), ["AQID"], "{protocol}");
        }
    }
    api.stop().await;
    receiver.stop().await;
}

/// `compression = "none"` in the file holds against OTEL_EXPORTER_OTLP_COMPRESSION in the
/// environment, over both protocols (the variable only fills a compression left at its default).
#[tokio::test]
async fn configured_no_compression_wins_over_otel_exporter_otlp_compression() {
    let api = FakeApi::start([FakeRun::fixture("child_run")]).await;
    let receiver = Receiver::start().await;
    for protocol in ["grpc", "http/protobuf"] {
        receiver.recorder.headers.lock().unwrap().clear();
        receiver.recorder.content_encodings.lock().unwrap().clear();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bridge.toml");
        std::fs::write(&config, "[export]\ncompression = \"none\"\n").unwrap();
        let mut cmd = bridge_command(&api, &receiver, protocol);
        cmd.env("TRIGGER_OTEL_BRIDGE_CONFIG", &config)
            .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip");
        let (output, stderr) = run(cmd, &["run_cm1childrun01"]).await;
        assert!(output.status.success(), "{protocol}: {stderr}");
        let seen = receiver.recorder.headers.lock().unwrap().clone();
        assert!(!seen.is_empty(), "{protocol}");
        for headers in seen {
            assert!(headers.get("grpc-encoding").is_none(), "{protocol}: {headers:?}");
            assert!(headers.get("content-encoding").is_none(), "{protocol}: {headers:?}");
        }
    }
    // And the variable alone still turns it on (the file's default is gzip; zstd here).
    receiver.recorder.headers.lock().unwrap().clear();
    let mut cmd = bridge_command(&api, &receiver, "grpc");
    cmd.env("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd");
    let (output, stderr) = run(cmd, &["run_cm1childrun01"]).await;
    assert!(output.status.success(), "{stderr}");
    let seen = receiver.recorder.headers.lock().unwrap().clone();
    assert!(!seen.is_empty());
    for headers in seen {
        assert_eq!(headers.get("grpc-encoding").unwrap(), "zstd", "{headers:?}");
    }
    api.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn exports_named_runs_finished_entirely_and_executing_ones_by_their_finished_spans() {
    let api = FakeApi::start(all_fixture_runs()).await;
    let receiver = Receiver::start().await;
    for protocol in ["grpc", "http/protobuf"] {
        receiver.recorder.requests.lock().unwrap().clear();
        let (output, stderr) = run(
            bridge_command(&api, &receiver, protocol),
            &[
                "run_cm1finished01",
                "run_cm1executing1",
                "run_cm1selfhosted",
                "run_cm1childrun01",
            ],
        )
        .await;
        assert!(output.status.success(), "{protocol}: {stderr}");
        // 12 + the 4 finished spans of the executing run + 7 + 5; logs ride on their parents.
        assert!(
            stderr.contains("exported 28 spans from 4 runs (0 invalid elements skipped, 0 runs failed)"),
            "{stderr}"
        );
        assert!(stderr.contains("run_cm1executing1: still executing"), "{stderr}");
        let spans = receiver.recorder.spans();
        assert_eq!(spans.len(), 28);
        let ids: BTreeSet<String> = spans.iter().map(|s| hex(&s.span_id)).collect();
        assert_eq!(ids.len(), 28, "no span twice");
        // The executing run's partial spans stay back; its finished duplicate came once, finished.
        assert!(spans
            .iter()
            .all(|s| !s.attributes.iter().any(|kv| kv.key == "trigger.partial")));
        let duplicate = spans.iter().find(|s| hex(&s.span_id) == "b5f1d03b649ce44f").unwrap();
        assert!(duplicate.end_time_unix_nano > duplicate.start_time_unix_nano);
        // Parent and child runs share Trigger.dev's trace id.
        let trace_of = |span_id: &str| hex(&spans.iter().find(|s| hex(&s.span_id) == span_id).unwrap().trace_id);
        assert_eq!(trace_of("64d32c5a798e81ae"), "a4c123b1612dd272d1371c17149d4395");
        assert_eq!(trace_of("a3888ce30d59af2f"), "a4c123b1612dd272d1371c17149d4395");
    }
    // Every request carried the key.
    assert!(api
        .requests()
        .iter()
        .all(|r| r.authorization() == Some(&*format!("Bearer {SECRET_KEY}"))));
    api.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn filters_find_runs_through_the_list_endpoint_with_paging() {
    let api = FakeApi::start(all_fixture_runs()).await;
    let receiver = Receiver::start().await;
    let (output, stderr) = run(
        bridge_command(&api, &receiver, "grpc"),
        &["--status", "COMPLETED", "--since", "2h"],
    )
    .await;
    assert!(output.status.success(), "{stderr}");
    // finished_run and child_run are COMPLETED.
    assert!(stderr.contains("exported 17 spans from 2 runs"), "{stderr}");
    let list_queries = listing_queries(&api);
    assert!(
        list_queries.iter().all(|q| q.contains("filter%5Bstatus%5D=COMPLETED")),
        "{list_queries:?}"
    );
    assert!(
        list_queries[0].contains("filter%5BcreatedAt%5D%5Bfrom%5D"),
        "{list_queries:?}"
    );
    api.stop().await;
    receiver.stop().await;
}

/// The API's statuses are upper case: `--status completed` is sent as COMPLETED, and a status
/// the API does not have is refused before any call, with the valid ones listed (the API would
/// answer an empty list, as if no run matched).
#[tokio::test]
async fn statuses_are_normalised_and_unknown_ones_refused() {
    let api = FakeApi::start(all_fixture_runs()).await;
    let receiver = Receiver::start().await;
    let (output, stderr) = run(
        bridge_command(&api, &receiver, "grpc"),
        &["--status", "completed", "--status", "Failed"],
    )
    .await;
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("exported 17 spans from 2 runs"), "{stderr}");
    let list_queries = listing_queries(&api);
    assert!(
        !list_queries.is_empty()
            && list_queries
                .iter()
                .all(|q| q.contains("filter%5Bstatus%5D=COMPLETED%2CFAILED")),
        "{list_queries:?}"
    );

    let calls = api.requests().len();
    let (output, stderr) = run(bridge_command(&api, &receiver, "grpc"), &["--status", "done"]).await;
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        "error: --status \"done\" is not a run status; valid: PENDING_VERSION, QUEUED, DEQUEUED, EXECUTING, \
         WAITING, DELAYED, COMPLETED, CANCELED, FAILED, CRASHED, INTERRUPTED, SYSTEM_FAILURE, EXPIRED, TIMED_OUT\n"
    );
    assert_eq!(api.requests().len(), calls, "no API call");
    api.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_failing_run_is_reported_and_the_others_exported() {
    let api = FakeApi::start(all_fixture_runs()).await;
    let receiver = Receiver::start().await;
    let (output, stderr) = run(
        bridge_command(&api, &receiver, "grpc"),
        &["run_cm1finished01", "run_doesnotexist"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exported 12 spans from 1 run (0 invalid elements skipped, 1 run failed)"),
        "{stderr}"
    );
    assert!(stderr.contains("run_doesnotexist: failed:"), "{stderr}");
    assert_eq!(receiver.recorder.spans().len(), 12);
    api.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn server_errors_are_retried_and_nothing_is_lost() {
    let api = FakeApi::start(all_fixture_runs()).await;
    api.script(
        "/api/v1/runs/run_cm1finished01/events",
        [Scripted::status(500, "boom"), Scripted::status(500, "boom")],
    );
    let receiver = Receiver::start().await;
    let (output, stderr) = run(bridge_command(&api, &receiver, "grpc"), &["run_cm1finished01"]).await;
    assert!(output.status.success(), "{stderr}");
    assert_eq!(api.requests_to("/api/v1/runs/run_cm1finished01/events"), 3);
    assert_eq!(receiver.recorder.spans().len(), 12);
    api.stop().await;
    receiver.stop().await;
}

/// A trace the bridge cannot have (here refused with a 400) costs the run its own trace id, never
/// its spans; a trace endpoint failing for a moment (500) is retried, not given up on.
#[tokio::test]
async fn a_trace_refused_for_good_derives_the_trace_id_and_a_passing_failure_is_retried() {
    let api = FakeApi::start(all_fixture_runs()).await;
    let receiver = Receiver::start().await;
    api.script(
        "/api/v1/runs/run_cm1finished01/trace",
        [Scripted::status(400, r#"{"error":"bad request"}"#)],
    );
    let (output, stderr) = run(bridge_command(&api, &receiver, "grpc"), &["run_cm1finished01"]).await;
    assert!(output.status.success(), "{stderr}");
    let spans = receiver.recorder.spans();
    assert_eq!(spans.len(), 12);
    let derived = |span: &opentelemetry_proto::tonic::trace::v1::Span| {
        span.attributes.iter().any(|kv| kv.key == "trigger.trace_id_derived")
    };
    assert!(spans.iter().all(derived), "every span carries the derived trace id");

    receiver.recorder.requests.lock().unwrap().clear();
    api.script("/api/v1/runs/run_cm1finished01/trace", [Scripted::status(500, "boom")]);
    let (output, stderr) = run(bridge_command(&api, &receiver, "grpc"), &["run_cm1finished01"]).await;
    assert!(output.status.success(), "{stderr}");
    let spans = receiver.recorder.spans();
    assert_eq!(spans.len(), 12);
    assert!(!spans.iter().any(derived), "the retry found the trace");
    api.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_rejected_key_is_a_clear_error_with_exit_1_and_no_secret() {
    let api = FakeApi::start(all_fixture_runs()).await;
    let receiver = Receiver::start().await;
    let mut cmd = bridge_command(&api, &receiver, "grpc");
    cmd.env("TRIGGER_SECRET_KEY", "tr_dev_WRONGkeyPLANTED");
    let (output, stderr) = run(cmd, &["run_cm1finished01"]).await;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rejected") && stderr.contains("tr_dev_"), "{stderr}");
    assert!(!stderr.contains("WRONGkeyPLANTED"), "{stderr}");
    assert!(stderr.contains("1 run failed"), "{stderr}");
    api.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn a_wrong_api_url_is_said_once_with_exit_2_and_no_run_is_tried() {
    let api = FakeApi::start(all_fixture_runs()).await;
    let receiver = Receiver::start().await;
    let mut cmd = bridge_command(&api, &receiver, "grpc");
    cmd.env("TRIGGER_API_URL", format!("{}/trigger", api.url()));
    let (output, stderr) = run(cmd, &["run_cm1finished01", "run_cm1finished02"]).await;
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is not a Trigger.dev API") && stderr.contains("trigger.api_url (TRIGGER_API_URL)"),
        "{stderr}"
    );
    assert_eq!(api.request_count(), 1, "the check's page of one, no run: {stderr}");
    assert_eq!(receiver.recorder.span_count(), 0);
    api.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn no_runs_and_no_filters_is_a_usage_error() {
    let api = FakeApi::start([]).await;
    let receiver = Receiver::start().await;
    let (output, stderr) = run(bridge_command(&api, &receiver, "grpc"), &[]).await;
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("name runs to export"), "{stderr}");
    api.stop().await;
    receiver.stop().await;
}

/// `export ARGS` on a pseudo-terminal (`script`): its exit status, and what the terminal showed.
async fn export_on_a_terminal(api: &FakeApi, receiver: &Receiver, args: &str) -> (Output, String) {
    // `script` gives the bridge a pseudo-terminal; its output file is the terminal transcript.
    let transcript = tempfile::NamedTempFile::new().unwrap();
    let cmd = bridge_command(api, receiver, "grpc");
    let mut script = tokio::process::Command::new("script");
    script
        .args(["-q", "-e", "-c"])
        .arg(format!("{} export {args}", support::process::BINARY))
        .arg(transcript.path());
    for (key, value) in cmd.as_std().get_envs() {
        if let Some(value) = value {
            script.env(key, value);
        }
    }
    script
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let (output, _, _) = support::process::output(&mut script).await;
    (output, std::fs::read_to_string(transcript.path()).unwrap())
}

#[tokio::test]
async fn on_a_terminal_a_progress_bar_is_drawn_and_the_summary_printed() {
    let api = FakeApi::start(all_fixture_runs()).await;
    api.delay_events(Duration::from_millis(400));
    let receiver = Receiver::start().await;
    let (output, shown) = export_on_a_terminal(&api, &receiver, "run_cm1finished01 run_cm1selfhosted").await;
    assert!(output.status.success(), "{shown}");
    assert!(shown.contains("exporting runs ["), "no progress bar drawn: {shown:?}");
    assert!(shown.contains("] 0/2 · 0 spans"), "the bar starts empty: {shown:?}");
    assert!(shown.contains("exported 19 spans from 2 runs"), "{shown}");
    api.stop().await;
    receiver.stop().await;
}

/// Filters that match no run: no bar (indicatif would draw one of length 0 full, `0/0`), and the
/// summary says that nothing matched.
#[tokio::test]
async fn on_a_terminal_no_run_matched_draws_no_bar() {
    let api = FakeApi::start(all_fixture_runs()).await;
    let receiver = Receiver::start().await;
    let (output, shown) = export_on_a_terminal(&api, &receiver, "--tag no-such-tag").await;
    assert!(output.status.success(), "{shown}");
    assert!(!shown.contains("exporting runs") && !shown.contains("0/0"), "{shown:?}");
    assert!(
        shown.contains("no run matched the filters: nothing exported"),
        "{shown:?}"
    );
    assert!(!api.queries_to("/api/v1/runs").is_empty());
    api.stop().await;
    receiver.stop().await;
}

/// `conversion.logs = "otlp_logs"` over OTLP/HTTP: the finished run's 12 spans go to
/// `/v1/traces` and its 7 log records to `/v1/logs`, in its Trigger.dev trace, each naming the
/// span it was written in; the summary counts both.
#[tokio::test]
async fn otlp_logs_exports_log_records_beside_the_spans() {
    let api = FakeApi::start(all_fixture_runs()).await;
    let receiver = Receiver::start().await;
    let mut cmd = bridge_command(&api, &receiver, "http/protobuf");
    cmd.env("TRIGGER_OTEL_BRIDGE__CONVERSION__LOGS", "otlp_logs");
    let (output, stderr) = run(cmd, &["run_cm1finished01"]).await;
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("exported 12 spans and 7 log records from 1 run "),
        "{stderr}"
    );
    let spans = receiver.recorder.spans();
    let logs = receiver.recorder.logs();
    assert_eq!((spans.len(), logs.len()), (12, 7));
    let span_ids: BTreeSet<String> = spans.iter().map(|s| hex(&s.span_id)).collect();
    for record in &logs {
        assert_eq!(hex(&record.trace_id), "a4c123b1612dd272d1371c17149d4395");
        assert!(span_ids.contains(&hex(&record.span_id)), "{record:?}");
    }
    api.stop().await;
    receiver.stop().await;
}
