//! The demo's sample runs (`samples.json`, bundled) and what the fake API answers about them at
//! any moment: elements appear as they start, running spans are partial until they end, and
//! each run's status goes QUEUED → EXECUTING → its final status with `finishedAt`.
//!
//! Times in the file are milliseconds after the demo starts, at speed 1; at speed `s` everything
//! happens `s` times sooner, timestamps included. Run, trace and span ids are made fresh for each
//! demo (from a seed), so two demos never write into the same trace of a collector.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const SAMPLES: &str = include_str!("samples.json");

#[derive(Debug, Clone, Deserialize)]
struct SampleFile {
    runs: Vec<SampleRun>,
}

#[derive(Debug, Clone, Deserialize)]
struct SampleRun {
    key: String,
    task: String,
    /// Runs with the same `trace` share one trace id (a parent and the child it triggered).
    trace: String,
    #[serde(default)]
    parent_run: Option<String>,
    status: String,
    start: u64,
    end: u64,
    #[serde(default)]
    tags: Vec<String>,
    elements: Vec<SampleElement>,
}

#[derive(Debug, Clone, Deserialize)]
struct SampleElement {
    id: String,
    /// An element of the same run, or `run/element` of another run.
    #[serde(default)]
    parent: Option<String>,
    message: String,
    /// Spans: when they start and end (`null`: never).
    #[serde(default)]
    start: Option<u64>,
    #[serde(default)]
    end: Option<u64>,
    /// Log records: when they are written.
    #[serde(default)]
    at: Option<u64>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    attempt: Option<u64>,
    #[serde(default)]
    icon: Option<String>,
    #[serde(default)]
    error: bool,
    #[serde(default)]
    cancelled: bool,
    #[serde(default)]
    events: Vec<SampleEvent>,
}

impl SampleElement {
    fn is_log(&self) -> bool {
        self.level.is_some()
    }

    fn appears_at(&self) -> u64 {
        self.at.or(self.start).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Deserialize)]
struct SampleEvent {
    name: String,
    at: u64,
    #[serde(default)]
    properties: Value,
}

/// One sample run with its ids.
#[derive(Debug, Clone)]
pub struct DemoRun {
    pub id: String,
    pub task: String,
    pub trace_id: String,
    /// The trace's key in `samples.json` (runs sharing it share the trace).
    pub trace_key: String,
    /// The status it ends with.
    pub status: String,
    pub parent_run_id: Option<String>,
    /// Start and end, in ms of demo time.
    pub start_ms: u64,
    pub end_ms: u64,
    tags: Vec<String>,
    /// (span id, parent span id, sample).
    elements: Vec<(String, Option<String>, SampleElement)>,
}

/// What the runs should produce once everything was exported (`conversion.logs = span_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expected {
    pub runs: usize,
    pub spans: usize,
    pub logs: usize,
    pub errors: usize,
}

/// A moment worth telling while the demo runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Milestone {
    pub at_ms: u64,
    pub text: String,
}

/// The sample runs of one demo.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub runs: Vec<DemoRun>,
    t0_ns: u64,
    speed: f64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bytes` bytes of SHA-256 of the seed and `name`, never all zeros.
fn id(seed: u64, name: &str, bytes: usize) -> String {
    let digest = Sha256::digest(format!("trigger-otel-bridge demo/{seed:016x}/{name}").as_bytes());
    let mut chosen = digest[..bytes].to_vec();
    if chosen.iter().all(|b| *b == 0) {
        chosen[bytes - 1] = 1;
    }
    hex(&chosen)
}

impl Timeline {
    /// The bundled runs with ids from `seed`, starting at `t0_ns` (Unix ns), `speed` times faster
    /// than written.
    pub fn new(seed: u64, t0_ns: u64, speed: f64) -> Timeline {
        let file: SampleFile = serde_json::from_str(SAMPLES).expect("the bundled samples.json parses");
        let suffix = format!("{:06x}", seed & 0xff_ffff);
        let run_id = |key: &str| format!("run_{key}_{suffix}");
        let span_id = |reference: &str, run_key: &str| {
            let (run_key, element) = reference.split_once('/').unwrap_or((run_key, reference));
            id(seed, &format!("span/{run_key}/{element}"), 8)
        };
        let runs = file
            .runs
            .into_iter()
            .map(|run| DemoRun {
                id: run_id(&run.key),
                task: run.task.clone(),
                trace_id: id(seed, &format!("trace/{}", run.trace), 16),
                trace_key: run.trace.clone(),
                status: run.status.clone(),
                parent_run_id: run.parent_run.as_deref().map(run_id),
                start_ms: run.start,
                end_ms: run.end,
                tags: run.tags.clone(),
                elements: run
                    .elements
                    .iter()
                    .map(|e| {
                        (
                            span_id(&e.id, &run.key),
                            e.parent.as_deref().map(|p| span_id(p, &run.key)),
                            e.clone(),
                        )
                    })
                    .collect(),
            })
            .collect();
        Timeline {
            runs,
            t0_ns,
            speed: if speed.is_finite() && speed > 0.0 { speed } else { 1.0 },
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn run(&self, run_id: &str) -> Option<&DemoRun> {
        self.runs.iter().find(|r| r.id == run_id)
    }

    /// `GET /api/v1/runs` at demo time `now_ms`: the runs started by then, newest first, in one
    /// page (the daemon's start-up check reads it).
    pub fn list_body(&self, now_ms: u64) -> Value {
        let data: Vec<Value> = self
            .runs
            .iter()
            .rev()
            .filter(|run| run.start_ms <= now_ms)
            .map(|run| self.run_body(run, now_ms))
            .collect();
        serde_json::json!({ "data": data, "pagination": {} })
    }

    /// When the last run ends, in ms of demo time.
    pub fn last_end_ms(&self) -> u64 {
        self.runs.iter().map(|r| r.end_ms).max().unwrap_or(0)
    }

    /// Unix ns of a demo-time instant.
    fn ns(&self, at_ms: u64) -> u64 {
        self.t0_ns + (at_ms as f64 * 1e6 / self.speed).round() as u64
    }

    fn iso(&self, at_ms: u64) -> Value {
        let nanos = i128::from(self.ns(at_ms));
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .map_or(Value::Null, Value::from)
    }

    /// What the bridge should receive from these runs in the end.
    pub fn expected(&self) -> Expected {
        let mut expected = Expected {
            runs: self.runs.len(),
            ..Expected::default()
        };
        for (_, _, element) in self.runs.iter().flat_map(|r| &r.elements) {
            if element.is_log() {
                expected.logs += 1;
            } else {
                expected.spans += 1;
                expected.errors += usize::from(element.error);
            }
        }
        expected
    }

    /// Runs starting and ending, attempts failing: in demo-time order.
    pub fn milestones(&self) -> Vec<Milestone> {
        let mut milestones = Vec::new();
        for run in &self.runs {
            let name = format!("{} ({})", run.task, run.id);
            let started = match &run.parent_run_id {
                Some(parent) => format!("{name} started, triggered by {parent}"),
                None => format!("{name} started"),
            };
            milestones.push(Milestone {
                at_ms: run.start_ms,
                text: started,
            });
            for (_, _, element) in &run.elements {
                if element.error && element.message.starts_with("Attempt") {
                    let reason = element
                        .events
                        .iter()
                        .find_map(|e| e.properties.pointer("/exception/message").and_then(Value::as_str))
                        .unwrap_or("error");
                    milestones.push(Milestone {
                        at_ms: element.end.unwrap_or(run.end_ms),
                        text: format!("{name}: {} failed ({reason}), retrying", element.message),
                    });
                }
            }
            milestones.push(Milestone {
                at_ms: run.end_ms,
                text: format!("{name} ended: {}", run.status),
            });
        }
        milestones.sort_by_key(|m| m.at_ms);
        milestones
    }

    /// `GET /api/v1/runs/{id}/events` at demo time `now_ms`.
    pub fn events_body(&self, run: &DemoRun, now_ms: u64) -> Value {
        let ended = now_ms >= run.end_ms;
        let events: Vec<Value> = run
            .elements
            .iter()
            .filter(|(_, _, e)| e.appears_at() <= now_ms)
            .map(|(span_id, parent_id, e)| self.element(run, span_id, parent_id.as_deref(), e, now_ms, ended))
            .collect();
        json!({ "events": events })
    }

    fn element(
        &self,
        run: &DemoRun,
        span_id: &str,
        parent_id: Option<&str>,
        element: &SampleElement,
        now_ms: u64,
        run_ended: bool,
    ) -> Value {
        let start = element.appears_at();
        let finished = match (element.is_log(), element.end) {
            (true, _) => true,
            (false, Some(end)) => end <= now_ms,
            (false, None) => false,
        };
        let duration = match element.end {
            Some(end) if finished && !element.is_log() => self.ns(end) - self.ns(start),
            _ => 0,
        };
        let mut style = Map::new();
        if let Some(icon) = element
            .icon
            .clone()
            .or_else(|| element.level.as_ref().map(|l| l.to_lowercase()))
        {
            style.insert("icon".into(), icon.into());
        }
        if !element.is_log() {
            let variant = if finished && element.error { "error" } else { "primary" };
            style.insert("variant".into(), variant.into());
        }
        let events: Vec<Value> = element
            .events
            .iter()
            .filter(|e| e.at <= now_ms)
            .map(|e| json!({ "name": e.name, "time": self.iso(e.at), "properties": e.properties }))
            .collect();
        json!({
            "spanId": span_id,
            "parentId": parent_id,
            "runId": run.id,
            "message": element.message,
            "style": style,
            "startTime": self.ns(start).to_string(),
            "duration": duration,
            "isError": finished && element.error,
            "isPartial": !finished,
            // A cancelled run's spans are cancelled when it ends; running ones stay partial.
            "isCancelled": finished && element.cancelled && run_ended,
            "level": element.level.as_deref().unwrap_or("TRACE"),
            "kind": if element.is_log() { "LOG" } else { element.kind.as_deref().unwrap_or("UNSPECIFIED") },
            "attemptNumber": element.attempt,
            "environmentType": "DEVELOPMENT",
            "events": events,
        })
    }

    /// `GET /api/v3/runs/{id}` at demo time `now_ms`.
    pub fn run_body(&self, run: &DemoRun, now_ms: u64) -> Value {
        let (queued, ended) = (now_ms < run.start_ms, now_ms >= run.end_ms);
        let status = match (queued, ended) {
            (true, _) => "QUEUED",
            (false, false) => "EXECUTING",
            (false, true) => run.status.as_str(),
        };
        let attempts = run
            .elements
            .iter()
            .filter(|(_, _, e)| e.message.starts_with("Attempt") && e.start.is_some_and(|s| s <= now_ms))
            .count();
        let related = run.parent_run_id.as_ref().map(|parent| json!({"id": parent}));
        json!({
            "id": run.id,
            "status": status,
            "taskIdentifier": run.task,
            "version": "20250923.1",
            "tags": run.tags,
            "isTest": false,
            "createdAt": self.iso(run.start_ms.saturating_sub(50)),
            "startedAt": if queued { Value::Null } else { self.iso(run.start_ms) },
            "finishedAt": if ended { self.iso(run.end_ms) } else { Value::Null },
            "updatedAt": self.iso(now_ms.min(run.end_ms)),
            "isQueued": queued,
            "isExecuting": !queued && !ended,
            "isCompleted": ended,
            "isSuccess": ended && run.status == "COMPLETED",
            "isFailed": ended && run.status != "COMPLETED",
            "isCancelled": ended && run.status == "CANCELED",
            "attemptCount": attempts,
            "depth": u64::from(run.parent_run_id.is_some()),
            "relatedRuns": { "root": related, "parent": related, "children": [] },
        })
    }

    /// `GET /api/v1/runs/{id}/trace` at demo time `now_ms`: the trace id (shared by a parent and
    /// its child) and the tree of the run's spans so far, each with OTel-style `properties`
    /// (what `conversion.enrich` puts on the spans).
    pub fn trace_body(&self, run: &DemoRun, now_ms: u64) -> Value {
        let visible: Vec<&(String, Option<String>, SampleElement)> = run
            .elements
            .iter()
            .filter(|(_, _, e)| !e.is_log() && e.appears_at() <= now_ms)
            .collect();
        let root = visible
            .iter()
            .find(|(_, _, e)| e.id == "root")
            .map(|node| self.trace_node(run, node, &visible, now_ms));
        json!({ "trace": { "traceId": run.trace_id, "rootSpan": root } })
    }

    fn trace_node(
        &self,
        run: &DemoRun,
        (span_id, parent_id, element): &(String, Option<String>, SampleElement),
        visible: &[&(String, Option<String>, SampleElement)],
        now_ms: u64,
    ) -> Value {
        let children: Vec<Value> = visible
            .iter()
            .filter(|(_, parent, _)| parent.as_ref() == Some(span_id))
            .map(|node| self.trace_node(run, node, visible, now_ms))
            .collect();
        let start = element.appears_at();
        let finished = element.end.is_some_and(|end| end <= now_ms);
        let mut properties = json!({
            "ctx.environment.type": "DEVELOPMENT",
            "ctx.task.id": run.task,
            "ctx.run.id": run.id,
        });
        if let Some(attempt) = element.attempt {
            properties["ctx.attempt.number"] = attempt.into();
        }
        if let Some((method, url)) = element
            .message
            .split_once(' ')
            .filter(|(_, url)| url.starts_with("http"))
        {
            properties["http.request.method"] = method.into();
            properties["url.full"] = url.into();
            if let Some(host) = url.split("://").nth(1).and_then(|rest| rest.split('/').next()) {
                properties["server.address"] = host.into();
            }
        }
        if element.icon.as_deref() == Some("database") {
            properties["db.system"] = "postgresql".into();
        }
        json!({
            "id": span_id,
            "parentId": parent_id,
            "runId": run.id,
            "data": {
                "message": element.message,
                "taskSlug": run.task,
                "startTime": self.iso(start),
                "duration": if finished { element.end.unwrap_or(start).saturating_sub(start) } else { 0 },
                "isError": finished && element.error,
                "isPartial": !finished,
                "isCancelled": finished && element.cancelled,
                "level": "TRACE",
                "attemptNumber": element.attempt,
                "properties": properties,
                "events": [],
            },
            "children": children,
        })
    }

    /// Runs grouped by trace, in the order their traces first appear.
    pub fn traces(&self) -> Vec<(String, Vec<&DemoRun>)> {
        let mut traces: Vec<(String, Vec<&DemoRun>)> = Vec::new();
        let mut position: HashMap<&str, usize> = HashMap::new();
        for run in &self.runs {
            match position.get(run.trace_id.as_str()) {
                Some(&at) => traces[at].1.push(run),
                None => {
                    position.insert(&run.trace_id, traces.len());
                    traces.push((run.trace_id.clone(), vec![run]));
                }
            }
        }
        traces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogsMode;
    use crate::convert::{convert_events, NothingExported, RunInfo, RunState};
    use crate::trigger::model::EventsBody;
    use crate::trigger::{RunDetails, RunTrace};

    const T0: u64 = 1_758_630_000_000_000_000;

    fn timeline() -> Timeline {
        Timeline::new(42, T0, 1.0)
    }

    #[test]
    fn the_samples_cover_what_the_demo_promises() {
        let timeline = timeline();
        assert_eq!(
            timeline.expected(),
            Expected {
                runs: 4,
                spans: 35,
                logs: 16,
                errors: 3
            }
        );
        let levels: std::collections::BTreeSet<&str> = timeline
            .runs
            .iter()
            .flat_map(|r| &r.elements)
            .filter_map(|(_, _, e)| e.level.as_deref())
            .collect();
        assert_eq!(
            levels.into_iter().collect::<Vec<_>>(),
            ["DEBUG", "ERROR", "INFO", "LOG", "WARN"]
        );
        let statuses: Vec<&str> = timeline.runs.iter().map(|r| r.status.as_str()).collect();
        assert!(statuses.contains(&"CANCELED"));
        assert!(timeline.last_end_ms() <= 20_000);
        // Every parent reference names an element that exists.
        let ids: std::collections::HashSet<&str> = timeline
            .runs
            .iter()
            .flat_map(|r| &r.elements)
            .map(|(id, _, _)| id.as_str())
            .collect();
        for (_, parent, e) in timeline.runs.iter().flat_map(|r| &r.elements) {
            if let Some(parent) = parent {
                assert!(ids.contains(parent.as_str()), "parent of {}", e.id);
            }
        }
    }

    #[test]
    fn the_child_run_joins_its_parents_trace() {
        let timeline = timeline();
        let traces = timeline.traces();
        assert_eq!(traces.len(), 3);
        let digest = traces
            .iter()
            .find(|(_, runs)| runs.len() == 2)
            .expect("parent and child");
        let (parent, child) = (digest.1[0], digest.1[1]);
        assert_eq!(child.parent_run_id.as_deref(), Some(parent.id.as_str()));
        let child_root = &child.elements[0];
        let trigger = parent
            .elements
            .iter()
            .find(|(_, _, e)| e.message.ends_with("triggerAndWait()"))
            .unwrap();
        assert_eq!(child_root.1.as_deref(), Some(trigger.0.as_str()));
        assert_eq!(
            timeline.trace_body(child, 0)["trace"]["traceId"],
            timeline.trace_body(parent, 0)["trace"]["traceId"]
        );
        // The trace endpoint's tree: every span so far, with its properties.
        let trace = RunTrace::from_value(&timeline.trace_body(parent, parent.end_ms)).unwrap();
        let spans = parent.elements.iter().filter(|(_, _, e)| !e.is_log()).count();
        assert_eq!(trace.span_properties.len(), spans);
        let cms = parent.elements.iter().find(|(_, _, e)| e.id == "cms").unwrap();
        assert_eq!(
            trace.span_properties[&cms.0]["server.address"],
            serde_json::json!("cms.example.com")
        );
        let early = RunTrace::from_value(&timeline.trace_body(parent, 700)).unwrap();
        assert_eq!(
            early.span_properties.len(),
            5,
            "root, Dequeued, Attempt 1, fetch-articles, GET"
        );
        // Fresh ids for another demo.
        let other = Timeline::new(43, T0, 1.0);
        assert_ne!(other.runs[0].trace_id, timeline.runs[0].trace_id);
        assert_ne!(other.runs[0].id, timeline.runs[0].id);
    }

    fn convert_at(timeline: &Timeline, run: &DemoRun, now_ms: u64) -> (RunDetails, crate::convert::Conversion) {
        let details = RunDetails::from_value(&timeline.run_body(run, now_ms)).unwrap();
        let body = serde_json::to_vec(&timeline.events_body(run, now_ms)).unwrap();
        let events = EventsBody::from_slice(&body).unwrap().events;
        let state = if details.is_terminal() {
            RunState::Ended {
                finished_at: details.summary.finished_at,
            }
        } else {
            RunState::Live
        };
        let info = RunInfo::new(&run.id, Some(&run.trace_id), state);
        let conversion = convert_events(events, &info, LogsMode::SpanEvents, &NothingExported);
        (details, conversion)
    }

    #[test]
    fn runs_progress_from_queued_to_their_final_state() {
        let timeline = timeline();
        let import = timeline.runs.iter().find(|r| r.status == "CANCELED").unwrap();
        let (details, conversion) = convert_at(&timeline, import, 0);
        assert_eq!(details.summary.status, "QUEUED");
        assert!(conversion.spans.is_empty() && conversion.held_back == 0);

        let (details, conversion) = convert_at(&timeline, import, 8_000);
        assert_eq!(details.summary.status, "EXECUTING");
        assert!(details.summary.finished_at.is_none());
        assert!(conversion.held_back > 0, "running spans are partial");
        assert!(conversion.invalid.is_empty(), "{:?}", conversion.invalid);

        let (details, conversion) = convert_at(&timeline, import, 9_000);
        assert_eq!(details.summary.status, "CANCELED");
        assert_eq!(details.summary.finished_at, Some(timeline.ns(9_000)));
        assert_eq!(conversion.spans.len(), 7);
        let partial = conversion
            .spans
            .iter()
            .filter(|s| s.span.attributes.iter().any(|kv| kv.key == "trigger.partial"))
            .count();
        assert_eq!(partial, 1, "the batch still inserting when cancelled");

        for run in &timeline.runs {
            let (details, conversion) = convert_at(&timeline, run, run.end_ms);
            assert!(details.is_terminal(), "{}", run.id);
            assert!(conversion.invalid.is_empty(), "{}: {:?}", run.id, conversion.invalid);
            assert_eq!(conversion.held_back, 0);
            let errors = conversion
                .spans
                .iter()
                .filter(|s| {
                    s.span.status.as_ref().map(|status| status.code)
                        == Some(opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32)
                })
                .count();
            let expected = run.elements.iter().filter(|(_, _, e)| !e.is_log()).count();
            assert_eq!(conversion.spans.len(), expected, "{}", run.id);
            assert_eq!(errors, run.elements.iter().filter(|(_, _, e)| e.error).count());
        }
    }

    #[test]
    fn speed_compresses_the_timestamps_too() {
        let fast = Timeline::new(42, T0, 10.0);
        assert_eq!(fast.ns(13_600), T0 + 1_360_000_000);
        assert_eq!(Timeline::new(42, T0, -1.0).speed(), 1.0);
        let milestones = fast.milestones();
        assert!(milestones.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        assert!(milestones.iter().any(|m| m.text.contains("Attempt 1 failed")));
        assert!(milestones.iter().any(|m| m.text.ends_with("ended: CANCELED")));
    }
}
