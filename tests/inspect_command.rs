//! `inspect`: the waterfall of the finished fixture against a golden file, a live run's running
//! spans, and the built binary against the fake Trigger.dev API (waterfall, `--json`, errors),
//! exporting nothing.
//!
//! `UPDATE_GOLDEN=1 cargo test --test inspect_command` rewrites the golden file from the current
//! output; check the diff by eye before committing it.

mod support;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use std::path::PathBuf;
use std::process::Output;
use support::fake_api::{FakeApi, FakeRun};
use support::otlp_receiver::Receiver;
use support::process::bridge_by_env;
use trigger_otel_bridge::commands::inspect::{convert_for_inspect, print_run, InspectOptions};
use trigger_otel_bridge::commands::waterfall::{render_spans, RenderOptions};
use trigger_otel_bridge::config::{BridgeConfig, LogsMode};
use trigger_otel_bridge::fetch::FetchedRun;
use trigger_otel_bridge::trigger::model::EventsResponse;
use trigger_otel_bridge::trigger::{RunDetails, RunTrace};

fn fixture(name: &str, suffix: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.{suffix}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The run as `FetchedRun::fetch` would return it from the fixture files.
fn fetched(name: &str) -> FetchedRun {
    let value = |suffix| serde_json::from_slice::<serde_json::Value>(&fixture(name, suffix)).unwrap();
    let details = RunDetails::from_value(&value("run")).unwrap();
    FetchedRun {
        run_id: details.summary.id.clone(),
        trace: Some(RunTrace::from_value(&value("trace")).unwrap()),
        details,
        events: EventsResponse::parse(fixture(name, "events"), |_, err| err).unwrap(),
    }
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/finished_run.waterfall.txt")
}

fn golden() -> String {
    std::fs::read_to_string(golden_path()).expect("tests/golden/finished_run.waterfall.txt")
}

#[test]
fn the_finished_fixture_renders_as_the_golden_waterfall() {
    let mut run = fetched("finished_run");
    let (conversion, live) = convert_for_inspect(&mut run, LogsMode::SpanEvents, true, 0);
    assert!(!live);
    let text = render_spans(conversion.spans.iter().map(|s| &s.span), &RenderOptions::default());
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty()) {
        std::fs::create_dir_all(golden_path().parent().unwrap()).unwrap();
        std::fs::write(golden_path(), &text).unwrap();
    }
    assert_eq!(
        text,
        golden(),
        "the waterfall changed; if that is intended, rerun with UPDATE_GOLDEN=1 and check the diff"
    );
}

#[test]
fn a_live_run_is_drawn_up_to_now_with_its_running_spans_marked() {
    let run = fetched("executing_run");
    // 10 s after the root started: the partial spans run until then.
    let now = 1_758_632_711_402_000_000 + 10_000_000_000;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let options = InspectOptions {
        run_id: run.run_id.clone(),
        json: false,
        color: false,
    };
    print_run(&BridgeConfig::default(), run, &options, now, &mut out, &mut err).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("run run_cm1executing1 · generate-report · EXECUTING · still executing"),
        "{text}"
    );
    assert!(
        text.contains("7 spans · 4 logs · 0 errors · 10s so far (still running)"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.ends_with("│ running")).count(),
        3,
        "root, Attempt 1, upload-report:\n{text}"
    );
    assert!(text.contains("upload-report"), "{text}");
    assert!(text.contains("· WARN "), "logs under running spans are shown: {text}");
    assert!(err.is_empty());
}

/// Were anything exported, it would land in `receiver`.
fn bridge(api: &FakeApi, receiver: &Receiver) -> tokio::process::Command {
    bridge_by_env(&api.url(), &receiver.grpc_endpoint())
}

async fn inspect(mut cmd: tokio::process::Command, args: &[&str]) -> (Output, String, String) {
    support::process::output(cmd.arg("inspect").args(args)).await
}

#[tokio::test]
async fn inspect_prints_a_run_from_the_api_as_a_waterfall_or_as_otlp_json_and_exports_nothing() {
    let api = FakeApi::start(["finished_run", "child_run"].map(FakeRun::fixture)).await;
    let receiver = Receiver::start().await;

    let (output, stdout, stderr) = inspect(bridge(&api, &receiver), &["run_cm1finished01"]).await;
    assert!(output.status.success(), "{stderr}");
    let expected = format!(
        "run run_cm1finished01 · process-order · COMPLETED · finished 2025-09-23T12:32:58.285Z\n{}",
        golden()
    );
    assert_eq!(stdout, expected, "not a terminal: no colours, and the golden waterfall");

    let (output, stdout, stderr) = inspect(bridge(&api, &receiver), &["run_cm1finished01", "--json"]).await;
    assert!(output.status.success(), "{stderr}");
    let request: ExportTraceServiceRequest = serde_json::from_str(stdout.trim()).expect("one OTLP/JSON request");
    let spans = support::otlp_receiver::spans_of(&request);
    assert_eq!(spans.len(), 12);
    assert!(spans.iter().all(|s| s.trace_id
        == [0xa4, 0xc1, 0x23, 0xb1, 0x61, 0x2d, 0xd2, 0x72, 0xd1, 0x37, 0x1c, 0x17, 0x14, 0x9d, 0x43, 0x95]));
    let logs: usize = spans
        .iter()
        .map(|s| s.events.iter().filter(|e| e.name == "log").count())
        .sum();
    assert_eq!(logs, 7);

    // The child run alone: its root's parent lives in the parent run.
    let (output, stdout, stderr) = inspect(bridge(&api, &receiver), &["run_cm1childrun01"]).await;
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("· triggered by run_cm1finished01"), "{stdout}");
    let root = stdout
        .lines()
        .find(|l| l.starts_with("send-confirmation-email "))
        .unwrap_or_else(|| panic!("the child's root at the top level:\n{stdout}"));
    assert!(
        root.ends_with("↖ parent b7d72347fccfd9de is outside this run"),
        "{root}"
    );

    // An unknown run is a runtime failure; a missing key is a configuration error.
    let (output, _, stderr) = inspect(bridge(&api, &receiver), &["run_doesnotexist"]).await;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("run_doesnotexist"), "{stderr}");
    let mut no_key = bridge(&api, &receiver);
    no_key.env_remove("TRIGGER_SECRET_KEY");
    let (output, _, stderr) = inspect(no_key, &["run_cm1finished01"]).await;
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("TRIGGER_SECRET_KEY"), "{stderr}");

    assert_eq!(
        *receiver.recorder.attempts.lock().unwrap(),
        0,
        "inspect exports nothing"
    );
    api.stop().await;
    receiver.stop().await;
}
