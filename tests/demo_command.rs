//! `demo` end to end: the built binary runs its sample runs to completion on loopback, ten times
//! faster than a person would watch them, once printing waterfalls and once exporting to a real
//! OTLP receiver (gRPC).

mod support;

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use support::hex;
use support::otlp_receiver::Receiver;

/// Nothing from the environment (no collector, no config): the demo needs none.
fn demo_command() -> tokio::process::Command {
    let mut cmd = support::process::binary(&["demo"]);
    cmd.env("TRIGGER_OTEL_BRIDGE_DEMO_SPEED", "10");
    cmd
}

/// The demo ends by itself.
async fn run(mut cmd: tokio::process::Command) -> (Output, String, String) {
    support::process::output(&mut cmd).await
}

/// The bundled samples: 4 runs; 35 spans; 16 logs; 3 errors (attempt 1 of process-order, its
/// charge-payment and the POST under it).
const SUMMARY: &str = "4 runs, 35 spans, 16 logs, 3 errors exported to";

/// A collector that is down, and the demo stopped (Ctrl-C) while spans wait for it: the demo
/// says what becomes of them, truthfully (its state file is temporary: they are not sent again
/// after a restart, as the daemon's shutdown warning would have promised), in the right number.
#[tokio::test]
async fn stopped_while_the_collector_is_down_it_says_nothing_is_sent_later() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let endpoint = format!("http://127.0.0.1:{}", support::process::free_port());
    let mut cmd = demo_command();
    cmd.args(["--otlp-endpoint", &endpoint])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    let waiting = tokio::time::timeout(std::time::Duration::from_secs(40), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            stdout.push_str(&line);
            stdout.push('\n');
            if line.contains("waiting for") {
                return line;
            }
        }
        panic!("the demo ended without saying spans wait:\n{stdout}");
    })
    .await
    .unwrap_or_else(|_| panic!("no waiting line in time:\n{stdout}"));
    let count = waiting.split_whitespace().nth(1).unwrap();
    let expected = match count {
        "1" => format!("1 span is waiting for {endpoint} (grpc): is the collector running?"),
        n => format!("{n} spans are waiting for {endpoint} (grpc): is the collector running?"),
    };
    assert!(waiting.contains(&expected), "{waiting}");
    support::process::signal(&child, libc::SIGINT);
    while let Some(line) = lines.next_line().await.unwrap() {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "incomplete:\n{stdout}\n{stderr}");
    assert!(stdout.contains("\ninterrupted: stopping the daemon\n"), "{stdout}");
    assert!(
        stdout.contains("(incomplete: expected 4 runs and 35 spans)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "The spans not delivered are not sent later: the demo's state file is temporary. Start the \
             collector and run the demo again. (`run` keeps the acknowledged span ids in its state file: after \
             a restart it sends only what was not acknowledged.)"
        ),
        "{stdout}"
    );
    for text in [&stdout, &*stderr] {
        assert!(!text.contains("sent again after restart"), "{text}");
    }
}

#[tokio::test]
async fn demo_runs_its_samples_to_completion_and_prints_each_trace() {
    // Any HTTP request beyond loopback would go to this dead proxy and fail.
    let mut cmd = demo_command();
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        cmd.env(var, "http://127.0.0.1:9");
    }
    let (output, stdout, stderr) = run(cmd).await;
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("a fake Trigger.dev API on http://127.0.0.1:"),
        "loopback only:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("{SUMMARY} the demo's in-process receiver")),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'), "no colours when not on a terminal");

    // One waterfall per trace: the parent and its child run share one.
    let headers: Vec<&str> = stdout.lines().filter(|l| l.contains(" ━━ ")).collect();
    assert_eq!(headers.len(), 3, "{stdout}");
    // A trace's header names its run (and `also`); its counts are printed.
    let trace = |run: &str, also: &str, counts: &str| {
        let header = headers
            .iter()
            .find(|h| h.contains(run))
            .unwrap_or_else(|| panic!("{run}:\n{stdout}"));
        assert!(header.contains(also), "{header}");
        assert!(stdout.contains(counts), "{counts}:\n{stdout}");
    };
    trace(
        "process-order (run_order_",
        "COMPLETED",
        "· 12 spans · 8 logs · 3 errors ·",
    );
    let child = "send-digest-email (run_email_";
    trace("build-digest (run_digest_", child, "· 16 spans · 5 logs · 0 errors ·");
    trace("import-csv (run_import_", "CANCELED", "· 7 spans · 3 logs · 0 errors ·");
    // The child run is drawn inside the parent's triggerAndWait span.
    let trigger = stdout
        .lines()
        .position(|l| l.contains("send-digest-email.triggerAndWait()"))
        .expect("the triggerAndWait span");
    assert!(
        stdout
            .lines()
            .nth(trigger + 1)
            .unwrap()
            .contains("└─ send-digest-email "),
        "{stdout}"
    );
    // The cancelled run: cancelled spans, and the batch that was still running is partial.
    assert!(stdout
        .lines()
        .any(|l| l.starts_with("import-csv ") && l.ends_with("cancelled")));
    assert!(stdout
        .lines()
        .any(|l| l.contains("insert-batch 3/5") && l.ends_with("partial")));
    // Logs at every level, inline.
    for level in ["DEBUG", "LOG  ", "INFO ", "WARN ", "ERROR"] {
        assert!(stdout.contains(&format!("· {level} ")), "{level}:\n{stdout}");
    }
    assert!(stdout.contains("Attempt 1 failed (Payment gateway timed out after 3000 ms), retrying"));
}

fn run_id(span: &Span) -> String {
    span.attributes
        .iter()
        .find(|kv| kv.key == "trigger.run_id")
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(id) => id.clone(),
            other => panic!("{other:?}"),
        })
        .expect("every span names its run")
}

#[tokio::test]
async fn demo_exports_every_sample_span_to_a_collector_with_the_right_trace_ids() {
    let receiver = Receiver::start().await;
    let mut cmd = demo_command();
    cmd.args(["--otlp-endpoint", &receiver.grpc_endpoint(), "--protocol", "grpc"]);
    let (output, stdout, stderr) = run(cmd).await;
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(&format!("{SUMMARY} {} (grpc)", receiver.grpc_endpoint())),
        "{stdout}"
    );
    assert_eq!(stdout.matches("exported trace ").count(), 3, "{stdout}");

    let spans = receiver.recorder.spans();
    assert_eq!(spans.len(), 35);
    let ids: BTreeSet<String> = spans.iter().map(|s| hex(&s.span_id)).collect();
    assert_eq!(ids.len(), 35, "no span twice");
    let logs: usize = spans
        .iter()
        .map(|s| s.events.iter().filter(|e| e.name == "log").count())
        .sum();
    assert_eq!(logs, 16);

    let mut traces_by_run: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for span in &spans {
        traces_by_run
            .entry(run_id(span))
            .or_default()
            .insert(hex(&span.trace_id));
    }
    assert_eq!(traces_by_run.len(), 4, "{traces_by_run:?}");
    assert!(
        traces_by_run.values().all(|t| t.len() == 1),
        "one trace per run: {traces_by_run:?}"
    );
    let trace_of = |prefix: &str| {
        let (_, traces) = traces_by_run.iter().find(|(run, _)| run.starts_with(prefix)).unwrap();
        traces.iter().next().unwrap().clone()
    };
    let (order, digest, email, import) = (
        trace_of("run_order_"),
        trace_of("run_digest_"),
        trace_of("run_email_"),
        trace_of("run_import_"),
    );
    assert_eq!(digest, email, "the child run joins its parent's trace");
    assert_eq!(BTreeSet::from([&order, &digest, &import]).len(), 3);

    // The child's root hangs off the parent's triggerAndWait span (a remote parent).
    let trigger = spans
        .iter()
        .find(|s| s.name == "send-digest-email.triggerAndWait()")
        .unwrap();
    let child_root = spans.iter().find(|s| s.name == "send-digest-email").unwrap();
    assert_eq!(child_root.parent_span_id, trigger.span_id);
    assert_eq!(child_root.flags & 0x300, 0x300, "remote parent");

    // conversion.enrich (on by default): the trace endpoint's properties are on the spans.
    let cms = spans
        .iter()
        .find(|s| s.name.starts_with("GET https://cms.example.com"))
        .unwrap();
    let address = cms.attributes.iter().find(|kv| kv.key == "server.address");
    assert_eq!(
        address.and_then(|kv| kv.value.as_ref()?.value.clone()),
        Some(AnyValue::StringValue("cms.example.com".into())),
        "{:?}",
        cms.attributes
    );
    receiver.stop().await;
}
