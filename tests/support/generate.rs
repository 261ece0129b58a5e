//! Synthetic Trigger.dev runs for load and lifecycle tests: valid ids, ns start times, a root
//! span, children, and a log record every tenth element.

use super::fake_api::FakeRun;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const BASE_NS: u64 = 1_758_630_769_000_000_000;

pub fn span_id(run_id: &str, index: usize) -> String {
    let digest = Sha256::digest(format!("{run_id}/{index}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `count` elements: element 0 is the root (partial while `running`), every tenth a log record
/// under the previous span, the rest finished children of the root.
pub fn events(run_id: &str, count: usize, running: bool) -> Value {
    let root = span_id(run_id, 0);
    let elements: Vec<Value> = (0..count)
        .map(|i| {
            let start = BASE_NS + i as u64 * 1_000_000;
            if i == 0 {
                return json!({
                    "spanId": root, "parentId": null, "runId": run_id, "message": "generated-task",
                    "startTime": start.to_string(), "duration": if running { 0 } else { count as u64 * 1_000_000 + 5 },
                    "isError": false, "isCancelled": false, "isPartial": running, "level": "TRACE",
                    "kind": "UNSPECIFIED", "attemptNumber": null, "events": []
                });
            }
            let is_log = i % 10 == 0;
            json!({
                "spanId": span_id(run_id, i),
                "parentId": if is_log { span_id(run_id, i - 1) } else { root.clone() },
                "runId": run_id,
                "message": format!("{} {i}", if is_log { "log" } else { "step" }),
                "startTime": start.to_string(),
                "duration": if is_log { 0 } else { 500_000 },
                "isError": false, "isCancelled": false, "isPartial": false,
                "level": if is_log { "INFO" } else { "TRACE" },
                "kind": "UNSPECIFIED", "attemptNumber": 1, "events": []
            })
        })
        .collect();
    json!({ "events": elements })
}

/// Spans (not logs) a generated run exports once ended: every element but the logs.
pub fn span_count(count: usize) -> usize {
    count - (1..count).filter(|i| i % 10 == 0).count()
}

pub fn run(run_id: &str, task: &str, status: &str, finished: bool) -> Value {
    json!({
        "id": run_id, "status": status, "taskIdentifier": task, "tags": [],
        "createdAt": now_iso(),
        "finishedAt": if finished { Value::from("2025-09-23T12:40:00.000Z") } else { Value::Null },
        "isCompleted": finished, "isTest": false
    })
}

/// A run of [`events`] as the fake API serves it: no trace (404), EXECUTING while `running`,
/// else COMPLETED.
pub fn fake_run(run_id: &str, task: &str, count: usize, running: bool) -> FakeRun {
    fake_run_of(run_id, task, events(run_id, count, running), running)
}

/// [`fake_run`] with these `events`.
pub fn fake_run_of(run_id: &str, task: &str, events: Value, running: bool) -> FakeRun {
    FakeRun {
        events,
        trace: None,
        run: run(run_id, task, if running { "EXECUTING" } else { "COMPLETED" }, !running),
    }
}

/// `count` ended runs `{prefix}00`, `{prefix}01`… of `elements` elements each: their ids, and the
/// runs.
pub fn fake_runs(prefix: &str, count: usize, elements: usize) -> (Vec<String>, Vec<FakeRun>) {
    let ids: Vec<String> = (0..count).map(|i| format!("{prefix}{i:02}")).collect();
    let runs = ids.iter().map(|id| fake_run(id, "t", elements, false)).collect();
    (ids, runs)
}

/// Now as RFC 3339, so discovery's lookback edge sees the run as fresh.
pub fn now_iso() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
