//! What the daemon's log says it did (issue 14, item 5): each retired run on one line with what
//! was sent of it, a run given up with the command that undoes it, and the periodic summary with
//! the metrics' own numbers. One test per binary: it installs the process's log subscriber.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::daemon::{fast_options, Fakes, Running};
use support::generate;
use trigger_otel_bridge::daemon::DaemonOptions;

/// Every log line the process writes, as JSON.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self, message: &str) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["fields"]["message"] == message)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retired_runs_and_the_summary_say_what_was_exported() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .init();

    let fakes = Fakes::start([
        generate::fake_run("run_logged01", "t", 30, false),
        generate::fake_run("run_logged02", "t", 5, true),
    ])
    .await;
    let mut config = fakes.config(&["run_logged01", "run_logged02"]);
    config.runs.max_age = Duration::from_millis(1500);
    let options = DaemonOptions {
        summary_every: Duration::from_millis(400),
        ..fast_options()
    };
    let daemon = Running::start(config, options);
    daemon.wait_retired(2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let exported = daemon.stats.spans_exported();
    daemon.stop().await;

    let retired = captured.lines("run retired");
    let of = |run: &str| {
        retired
            .iter()
            .find(|line| line["fields"]["run_id"] == run)
            .unwrap_or_else(|| panic!("no line for {run}: {retired:?}"))
            .clone()
    };
    let finished = of("run_logged01");
    assert_eq!(finished["fields"]["reason"], "settled");
    assert_eq!(finished["fields"]["spans"], generate::span_count(30) as u64);
    assert_eq!(
        finished["fields"]["span_ids_committed"], 30,
        "the spans and the logs folded into them"
    );
    assert!(
        finished["fields"].get("undo").is_none(),
        "a settled run needs no undo: {finished}"
    );
    let given_up = of("run_logged02");
    assert_eq!(given_up["fields"]["reason"], "max_age");
    assert_eq!(
        given_up["fields"]["undo"],
        "trigger-otel-bridge state reopen run_logged02"
    );

    let summaries = captured.lines("summary");
    assert!(summaries.len() >= 2, "{summaries:?}");
    let summed: u64 = summaries
        .iter()
        .map(|line| line["fields"]["spans_exported"].as_u64().unwrap())
        .sum();
    assert_eq!(summed, exported, "the summaries add up to the counter: {summaries:?}");
    let retired_in_summaries: u64 = summaries
        .iter()
        .map(|line| line["fields"]["runs_retired"].as_u64().unwrap())
        .sum();
    assert_eq!(retired_in_summaries, 2);
    fakes.stop().await;
}
