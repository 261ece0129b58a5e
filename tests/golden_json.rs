//! The JSON outputs stay byte for byte what they were (issue 12): `convert`, `inspect --json`,
//! `export` with protocol `stdout`, and the body an OTLP/HTTP collector receives with
//! `http/json`, for every fixture, against the golden files in `tests/golden/`.
//!
//! The golden files were written by the build of `ed1c363`, the last one whose converter built
//! the SDK's `SpanData` and sent it through `opentelemetry-otlp` and `opentelemetry-proto`'s
//! transform; the converter now builds OTLP messages directly and the bridge sends them itself.
//! `UPDATE_GOLDEN=1 cargo test --test golden_json` rewrites them from the build under test
//! (`TRIGGER_OTEL_BRIDGE_BIN=path` runs another build, which is how they were made).

mod support;

use std::path::{Path, PathBuf};
use support::fake_api::{FakeApi, FakeRun};
use support::otlp_receiver::Receiver;
use support::process::{self, bridge_by_env};

const FIXTURES: [&str; 5] = [
    "finished_run",
    "child_run",
    "executing_run",
    "selfhosted_run",
    "invalid_run",
];
/// The fixtures the fake API serves (the others have no run record).
const SERVED: [(&str, &str); 4] = [
    ("finished_run", "run_cm1finished01"),
    ("child_run", "run_cm1childrun01"),
    ("executing_run", "run_cm1executing1"),
    ("selfhosted_run", "run_cm1selfhosted"),
];

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.events.json"))
}

/// `actual` is the golden file `name`, byte for byte (or becomes it, with UPDATE_GOLDEN=1).
fn check(name: &str, actual: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if actual != expected {
        let at = actual
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(actual.len().min(expected.len()));
        let around = |bytes: &[u8]| {
            String::from_utf8_lossy(&bytes[at.saturating_sub(60)..(at + 60).min(bytes.len())]).into_owned()
        };
        panic!(
            "{name}: differs from its golden file at byte {at} ({} bytes, golden {}):\n  now:    {}\n  golden: {}",
            actual.len(),
            expected.len(),
            around(actual),
            around(&expected)
        );
    }
}

#[tokio::test]
async fn convert_prints_the_golden_json_in_every_logs_mode() {
    for fixture in FIXTURES {
        for logs in ["span_events", "spans", "drop", "otlp_logs"] {
            let path = fixture_path(fixture);
            let mut command = process::binary(&["convert", path.to_str().unwrap(), "--logs", logs]);
            let (output, stdout, stderr) = process::output(&mut command).await;
            assert!(output.status.success(), "{fixture} {logs}: {stderr}");
            check(&format!("{fixture}.{logs}.convert.json"), stdout.as_bytes());
        }
    }
}

/// An API serving the fixtures, a receiver, and the bridge configured by environment.
async fn served() -> (FakeApi, Receiver) {
    let api = FakeApi::start(SERVED.map(|(name, _)| FakeRun::fixture(name))).await;
    (api, Receiver::start().await)
}

#[tokio::test]
async fn inspect_json_prints_the_golden_json() {
    let (api, receiver) = served().await;
    // Not the executing run: `inspect` ends its running spans at the clock's now.
    for (fixture, run_id) in SERVED.into_iter().filter(|(fixture, _)| *fixture != "executing_run") {
        let mut command = bridge_by_env(&api.url(), &receiver.grpc_endpoint());
        let (output, stdout, stderr) = process::output(command.args(["inspect", run_id, "--json"])).await;
        assert!(output.status.success(), "{fixture}: {stderr}");
        check(&format!("{fixture}.inspect.json"), stdout.as_bytes());
    }
    api.stop().await;
    receiver.stop().await;
}

#[tokio::test]
async fn exports_over_stdout_and_http_json_carry_the_golden_json() {
    let (api, receiver) = served().await;
    let runs: Vec<&str> = SERVED.iter().map(|(_, id)| *id).collect();
    for protocol in ["stdout", "http/json"] {
        let endpoint = match protocol {
            "stdout" => receiver.grpc_endpoint(),
            _ => receiver.http_endpoint(),
        };
        let mut command = bridge_by_env(&api.url(), &endpoint);
        command
            .env("TRIGGER_OTEL_BRIDGE__EXPORT__PROTOCOL", protocol)
            .env("TRIGGER_OTEL_BRIDGE__EXPORT__COMPRESSION", "none")
            // One run at a time, in the order named: the output's order is fixed.
            .env("TRIGGER_OTEL_BRIDGE__RUNS__CONCURRENCY", "1")
            .arg("export")
            .args(&runs);
        let (output, stdout, stderr) = process::output(&mut command).await;
        assert!(output.status.success(), "{protocol}: {stderr}");
        match protocol {
            "stdout" => check("export.stdout.json", stdout.as_bytes()),
            _ => {
                let bodies = receiver.recorder.bodies.lock().unwrap().clone();
                assert_eq!(bodies.len(), runs.len(), "one request a run");
                check("export.http_json.json", &bodies.join(&b"\n"[..]));
            }
        }
    }
    api.stop().await;
    receiver.stop().await;
}
