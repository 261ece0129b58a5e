//! `state list` and `state reopen` through the binary, on a state file a daemon wrote: a run given
//! up past `runs.max_age` is listed with its reason, reopened, and watched again by the next
//! start, which sends only what was never acknowledged (none of the spans twice).

mod support;

use std::time::Duration;
use support::daemon::{fast_options, Fakes, Running};
use support::{generate, process};

const RUN: &str = "run_reopen01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_given_up_is_listed_reopened_and_finished_without_duplicates() {
    let fakes = Fakes::start([generate::fake_run(RUN, "t", 20, true)]).await;
    let mut config = fakes.config(&[RUN]);
    config.runs.max_age = Duration::from_millis(800);
    let daemon = Running::start(config.clone(), fast_options());
    daemon.wait_retired(1, Duration::from_secs(20)).await;
    daemon.stop().await;
    let first = fakes.receiver.recorder.span_count();
    assert!(
        first > 0,
        "the live run's finished spans were exported before it was given up"
    );

    // The binary reads the same state file.
    let config_path = process::write_config(fakes.dir.path(), "bridge.toml", &config);
    let config_arg = config_path.to_str().unwrap();
    let (status, listed, stderr) =
        process::output(&mut process::binary(&["state", "list", "--config", config_arg])).await;
    assert!(status.status.success(), "{stderr}");
    let line = listed
        .lines()
        .find(|l| l.starts_with(RUN))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("retired: max_age"), "{listed}");
    // RUN, "retired:", "max_age", STATUS, SPAN IDS …: spans and the logs folded into them.
    let committed: u64 = line
        .split_whitespace()
        .nth(4)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(committed >= first, "every span sent was committed: {listed}");
    let (status, only, _) = process::output(&mut process::binary(&[
        "state",
        "list",
        "--retired",
        "--reason",
        "not_found",
        "--config",
        config_arg,
    ]))
    .await;
    assert!(status.status.success());
    assert_eq!(only.lines().count(), 1, "the header only: {only}");

    // An unknown run fails the command, after reopening the known one.
    let (status, said, _) = process::output(&mut process::binary(&[
        "state",
        "reopen",
        RUN,
        "run_unknown1",
        "--config",
        config_arg,
    ]))
    .await;
    assert_eq!(status.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("{RUN}: reopened (it was retired as max_age)")),
        "{said}"
    );
    assert!(
        said.contains(&format!("{committed} committed span ids are kept")),
        "{said}"
    );
    assert!(said.contains("run_unknown1: not in the state file"), "{said}");

    // The run goes on and ends; the next start watches it again and sends only the rest.
    fakes.api.set(generate::fake_run(RUN, "t", 40, false));
    config.runs.max_age = Duration::from_secs(3600);
    let daemon = Running::start(config, fast_options());
    daemon.wait_retired(1, Duration::from_secs(20)).await;
    daemon.stop().await;
    // Plus "log 20": its parent span was acknowledged before the run was given up, so the log
    // becomes a span of its own (docs/mapping.md), as after any restart.
    let expected = generate::span_count(40) + 1;
    assert_eq!(
        fakes.receiver.recorder.distinct_spans(),
        expected,
        "every span of the run"
    );
    assert_eq!(fakes.receiver.recorder.span_count(), expected as u64, "none twice");
    let (_, listed, _) = process::output(&mut process::binary(&["state", "list", "--config", config_arg])).await;
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(RUN) && l.contains("retired: settled")),
        "{listed}"
    );
    fakes.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_path_with_no_file_is_a_usage_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("missing.db");
    let config = dir.path().join("bridge.toml");
    std::fs::write(&config, format!("[state]\npath = {:?}\n", state.display().to_string())).unwrap();
    let (status, _, stderr) = process::output(&mut process::binary(&[
        "state",
        "list",
        "--config",
        config.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(status.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no state file at") && stderr.contains("state.path"),
        "{stderr}"
    );
    assert!(!state.exists());
}
