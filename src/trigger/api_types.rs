//! Typed views of the trace, retrieve-run and list-runs responses, and the list-runs filters.
//!
//! Like `model.rs`, parsing is lenient: a body is read as a `serde_json::Value` and each field is
//! picked out when it has the expected type; a missing, null or wrongly typed field becomes `None`
//! (or empty), never a failed response. Only what cannot be done without (a run's `id` and `status`,
//! a trace's `traceId`) is required. The events body has its own model, [`super::model::EventsBody`].

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::ApiError;
use crate::config::DiscoveryConfig;

/// Statuses after which a run records nothing new (see trigger-api.md: `isCompleted` misses the
/// last two, so a set `finishedAt` counts as terminal too).
pub const TERMINAL_STATUSES: [&str; 8] = [
    "COMPLETED",
    "CANCELED",
    "FAILED",
    "CRASHED",
    "INTERRUPTED",
    "SYSTEM_FAILURE",
    "EXPIRED",
    "TIMED_OUT",
];

/// The run statuses the list endpoint filters on, as the API spells them (upper case;
/// tests/openapi/trigger-api.yaml): those of runs not yet ended, then the terminal ones.
pub const ACTIVE_STATUSES: [&str; 6] = [
    "PENDING_VERSION",
    "QUEUED",
    "DEQUEUED",
    "EXECUTING",
    "WAITING",
    "DELAYED",
];

/// Every run status the API has: those of runs not yet ended, then the terminal ones.
pub fn run_statuses() -> impl Iterator<Item = &'static str> {
    ACTIVE_STATUSES.iter().chain(TERMINAL_STATUSES.iter()).copied()
}

/// `status` as the API spells it, whatever its case (`completed` is `COMPLETED`); `None` for a
/// status the API does not have (its list endpoint would answer it with no run at all).
pub fn run_status(status: &str) -> Option<&'static str> {
    let wanted = status.trim();
    run_statuses().find(|known| known.eq_ignore_ascii_case(wanted))
}

/// True for a terminal status, or whenever the run has a `finishedAt`.
pub fn is_terminal(status: &str, finished_at: Option<u64>) -> bool {
    finished_at.is_some() || TERMINAL_STATUSES.contains(&status)
}

/// `GET /api/v1/runs/{runId}/trace`: the run's trace id and each span's OTel attributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunTrace {
    /// As sent (normally 32 lowercase hex chars); the converter validates it.
    pub trace_id: String,
    /// Span id → `data.properties` of that span (`null` when it has none), for every span of the tree.
    pub span_properties: HashMap<String, Value>,
}

impl RunTrace {
    /// Reads `{"trace": {"traceId", "rootSpan": {id, data: {properties}, children: [...]}}}`.
    /// The tree is walked without recursion; nodes without an `id` are skipped but their children
    /// are still visited. `properties` is read from `data` or, failing that, from the node itself.
    pub fn from_value(body: &Value) -> Result<Self, ApiError> {
        let trace = body.get("trace").filter(|t| t.is_object()).unwrap_or(body);
        let trace_id = trace
            .get("traceId")
            .and_then(Value::as_str)
            .ok_or_else(|| shape("the trace has no string `traceId`"))?
            .to_owned();
        let mut span_properties = HashMap::new();
        let mut stack: Vec<&Value> = trace.get("rootSpan").into_iter().collect();
        while let Some(node) = stack.pop() {
            let Some(node) = node.as_object() else { continue };
            let properties = node
                .get("data")
                .and_then(|data| data.get("properties"))
                .or_else(|| node.get("properties"))
                .filter(|p| !p.is_null());
            // Every span of the tree is recorded, `null` when it has no properties, so a caller
            // can tell "not in the trace yet" from "nothing to add".
            if let Some(id) = node.get("id").and_then(Value::as_str) {
                span_properties.insert(id.to_owned(), properties.cloned().unwrap_or(Value::Null));
            }
            if let Some(children) = node.get("children").and_then(Value::as_array) {
                stack.extend(children.iter().rev());
            }
        }
        Ok(Self {
            trace_id,
            span_properties,
        })
    }
}

/// `GET /api/v3/runs/{runId}`: what the bridge uses of a run. Times are unix nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunDetails {
    /// The fields the list endpoint sends too (id, status, task, times…), read by the same code.
    pub summary: RunSummary,
    pub idempotency_key: Option<String>,
    pub updated_at: Option<u64>,
    pub is_completed: bool,
    pub is_success: bool,
    pub is_failed: bool,
    pub is_cancelled: bool,
    pub attempt_count: Option<u64>,
    pub duration_ms: Option<u64>,
    pub depth: Option<u64>,
    /// `relatedRuns.parent.id` / `relatedRuns.root.id`.
    pub parent_run_id: Option<String>,
    pub root_run_id: Option<String>,
}

impl RunDetails {
    /// Reads a retrieve-run body; only `id` and `status` are required.
    pub fn from_value(body: &Value) -> Result<Self, ApiError> {
        let run = body.as_object().ok_or_else(|| shape("the run is not a JSON object"))?;
        required(run, "id")?;
        required(run, "status")?;
        let related = run.get("relatedRuns");
        let related_id = |key: &str| {
            related.and_then(|r| r.get(key)).and_then(|r| match r {
                Value::String(id) => Some(id.clone()),
                other => string(other.as_object()?, "id"),
            })
        };
        Ok(Self {
            summary: RunSummary::read(run).expect("id was checked above"),
            idempotency_key: string(run, "idempotencyKey"),
            updated_at: timestamp(run, "updatedAt"),
            is_completed: flag(run, "isCompleted"),
            is_success: flag(run, "isSuccess"),
            is_failed: flag(run, "isFailed"),
            is_cancelled: flag(run, "isCancelled"),
            attempt_count: count(run, "attemptCount"),
            duration_ms: count(run, "durationMs"),
            depth: count(run, "depth"),
            parent_run_id: related_id("parent"),
            root_run_id: related_id("root"),
        })
    }

    /// The run will record nothing new: a terminal status, or `finishedAt` set.
    pub fn is_terminal(&self) -> bool {
        self.summary.is_terminal()
    }
}

/// One element of `GET /api/v1/runs`'s `data`, and the shared part of [`RunDetails`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub id: String,
    /// As sent; new statuses pass through untouched ("" when missing from a list element).
    pub status: String,
    pub task_identifier: Option<String>,
    pub version: Option<String>,
    pub tags: Vec<String>,
    pub is_test: bool,
    pub created_at: Option<u64>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
}

impl RunSummary {
    /// `None` for an element without a string `id` (the page skips it).
    fn from_value(run: &Value) -> Option<Self> {
        Self::read(run.as_object()?)
    }

    fn read(run: &serde_json::Map<String, Value>) -> Option<Self> {
        Some(Self {
            id: string(run, "id")?,
            status: string(run, "status").unwrap_or_default(),
            task_identifier: string(run, "taskIdentifier"),
            version: string(run, "version"),
            tags: strings(run, "tags"),
            is_test: flag(run, "isTest"),
            created_at: timestamp(run, "createdAt"),
            started_at: timestamp(run, "startedAt"),
            finished_at: timestamp(run, "finishedAt"),
        })
    }

    pub fn is_terminal(&self) -> bool {
        is_terminal(&self.status, self.finished_at)
    }
}

/// One page of `GET /api/v1/runs`, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunPage {
    pub runs: Vec<RunSummary>,
    /// `pagination.next`: pass it back as the cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// Elements of `data` without an `id`, left out of `runs`.
    pub skipped: usize,
}

impl RunPage {
    /// Reads `{"data": [...], "pagination": {"next": ...}}`; `data` must be an array.
    pub fn from_value(body: &Value) -> Result<Self, ApiError> {
        let data = body
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| shape("the run list has no `data` array"))?;
        let runs: Vec<RunSummary> = data.iter().filter_map(RunSummary::from_value).collect();
        let next_cursor = body
            .get("pagination")
            .and_then(|p| p.get("next"))
            .and_then(Value::as_str)
            .filter(|next| !next.is_empty())
            .map(str::to_owned);
        Ok(Self {
            skipped: data.len() - runs.len(),
            runs,
            next_cursor,
        })
    }
}

/// Filters of `GET /api/v1/runs`. Empty lists and `None` send nothing (the server's defaults:
/// every status, a 7-day window, 25 a page).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilters {
    pub statuses: Vec<String>,
    pub task_identifiers: Vec<String>,
    pub tags: Vec<String>,
    pub versions: Vec<String>,
    /// `Some(false)`: real runs only; `Some(true)`: test runs only; `None`: both.
    pub is_test: Option<bool>,
    /// `filter[createdAt][from]` / `[to]`, sent as RFC 3339 UTC with milliseconds.
    pub created_from: Option<SystemTime>,
    pub created_to: Option<SystemTime>,
    /// `filter[createdAt][period]`, such as `90m`, `2h`, `7d`; see [`RunFilters::period`].
    pub created_period: Option<String>,
    /// `page[size]`, clamped to 1–100.
    pub page_size: Option<u8>,
}

impl RunFilters {
    /// The filters `[discovery]` asks for: its tasks, tags and statuses, runs created within
    /// `lookback`, test runs only when `include_test`, 100 a page.
    pub fn from_discovery(discovery: &DiscoveryConfig) -> Self {
        Self {
            // Spelled as the API spells them (validation refused any it does not have).
            statuses: discovery
                .statuses
                .iter()
                .map(|status| run_status(status).map_or_else(|| status.clone(), str::to_owned))
                .collect(),
            task_identifiers: discovery.tasks.clone(),
            tags: discovery.tags.clone(),
            versions: Vec::new(),
            is_test: (!discovery.include_test).then_some(false),
            created_from: None,
            created_to: None,
            created_period: Some(Self::period(discovery.lookback)),
            page_size: Some(100),
        }
    }

    /// A period the server understands: whole minutes, rounded up, at least `1m`.
    pub fn period(lookback: Duration) -> String {
        let minutes = lookback.as_nanos().div_ceil(60_000_000_000);
        format!("{}m", minutes.max(1))
    }

    /// The query pairs, in a fixed order; `cursor` becomes `page[after]`.
    pub fn to_query(&self, cursor: Option<&str>) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        let lists = [
            ("filter[status]", &self.statuses),
            ("filter[taskIdentifier]", &self.task_identifiers),
            ("filter[tag]", &self.tags),
            ("filter[version]", &self.versions),
        ];
        for (key, values) in lists {
            let values: Vec<&str> = values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect();
            if !values.is_empty() {
                query.push((key, values.join(",")));
            }
        }
        if let Some(is_test) = self.is_test {
            query.push(("filter[isTest]", is_test.to_string()));
        }
        if let Some(from) = self.created_from.and_then(rfc3339) {
            query.push(("filter[createdAt][from]", from));
        }
        if let Some(to) = self.created_to.and_then(rfc3339) {
            query.push(("filter[createdAt][to]", to));
        }
        if let Some(period) = self.created_period.as_ref().filter(|p| !p.is_empty()) {
            query.push(("filter[createdAt][period]", period.clone()));
        }
        if let Some(size) = self.page_size {
            query.push(("page[size]", size.clamp(1, 100).to_string()));
        }
        if let Some(cursor) = cursor {
            query.push(("page[after]", cursor.to_owned()));
        }
        query
    }
}

/// ISO-8601 / RFC 3339 (`2025-09-23T12:32:49.250Z`) → unix nanoseconds; `None` when unparsable,
/// before 1970, or after 2262 (the state store keeps times as SQLite's signed 64-bit integers: a
/// later `finishedAt` would fail every save of the run, and the daemon with it).
pub fn parse_timestamp(text: &str) -> Option<u64> {
    let at = OffsetDateTime::parse(text.trim(), &Rfc3339).ok()?;
    let nanos = i64::try_from(at.unix_timestamp_nanos()).ok()?;
    u64::try_from(nanos).ok()
}

fn rfc3339(at: SystemTime) -> Option<String> {
    // Not `OffsetDateTime::from`, which panics outside the years -9999..=9999.
    let since_epoch = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::try_from(since_epoch.as_nanos()).ok()?).ok()?;
    let at = at.replace_nanosecond(at.millisecond() as u32 * 1_000_000).ok()?;
    at.format(&Rfc3339).ok()
}

fn required(run: &Map<String, Value>, key: &str) -> Result<String, ApiError> {
    string(run, key).ok_or_else(|| shape(&format!("the run has no string `{key}`")))
}

fn shape(reason: &str) -> ApiError {
    ApiError::Shape {
        reason: reason.to_owned(),
    }
}

fn string(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn strings(object: &Map<String, Value>, key: &str) -> Vec<String> {
    let Some(values) = object.get(key).and_then(Value::as_array) else {
        return Vec::new();
    };
    values.iter().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn flag(object: &Map<String, Value>, key: &str) -> bool {
    object.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn count(object: &Map<String, Value>, key: &str) -> Option<u64> {
    let value = object.get(key)?;
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f.round() as u64)
    })
}

fn timestamp(object: &Map<String, Value>, key: &str) -> Option<u64> {
    object.get(key).and_then(Value::as_str).and_then(parse_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(&path).expect(&path)).expect("fixture is JSON")
    }

    #[test]
    fn retrieve_run_fixtures() {
        let run = RunDetails::from_value(&fixture("finished_run.run.json")).expect("valid");
        assert_eq!(run.summary.id, "run_cm1finished01");
        assert_eq!(run.summary.status, "COMPLETED");
        assert_eq!(run.summary.task_identifier.as_deref(), Some("process-order"));
        assert_eq!(run.summary.tags, vec!["order_ord_7Hq2kXb9", "customer_cus_QmA12"]);
        assert_eq!(run.summary.created_at, Some(1_758_630_768_120_000_000));
        assert_eq!(run.summary.finished_at, Some(1_758_630_778_285_000_000));
        assert_eq!(run.attempt_count, Some(2));
        assert!(run.is_completed && run.is_terminal());
        assert_eq!(run.parent_run_id, None);

        let executing = RunDetails::from_value(&fixture("executing_run.run.json")).expect("valid");
        assert_eq!(executing.summary.finished_at, None);
        assert!(!executing.is_terminal());

        let child = RunDetails::from_value(&fixture("child_run.run.json")).expect("valid");
        assert_eq!(child.parent_run_id.as_deref(), Some("run_cm1finished01"));
        assert_eq!(child.root_run_id.as_deref(), Some("run_cm1finished01"));
        assert_eq!(child.depth, Some(1));

        let cancelled = RunDetails::from_value(&fixture("selfhosted_run.run.json")).expect("valid");
        assert!(cancelled.is_terminal());
    }

    #[test]
    fn terminal_statuses_and_finished_at() {
        for status in ["EXPIRED", "TIMED_OUT", "SYSTEM_FAILURE", "CANCELED"] {
            assert!(is_terminal(status, None), "{status}");
        }
        assert!(!is_terminal("EXECUTING", None));
        assert!(!is_terminal("WAITING_FOR_DEPLOY", None));
        assert!(is_terminal("SOMETHING_NEW", Some(1)));
    }

    #[test]
    fn retrieve_run_tolerates_odd_fields_but_needs_id_and_status() {
        let run = RunDetails::from_value(&json!({
            "id": "run_x", "status": "QUEUED", "tags": ["a", 1, null], "createdAt": "yesterday",
            "finishedAt": null, "startedAt": 5, "attemptCount": "two", "durationMs": 12.6,
            "relatedRuns": {"parent": "run_p", "root": {"id": 7}}, "isCompleted": "yes", "newField": {}
        }))
        .expect("valid");
        assert_eq!(run.summary.tags, vec!["a"]);
        assert_eq!(
            (run.summary.created_at, run.summary.started_at, run.summary.finished_at),
            (None, None, None)
        );
        assert_eq!((run.attempt_count, run.duration_ms), (None, Some(13)));
        assert_eq!(run.parent_run_id.as_deref(), Some("run_p"));
        assert_eq!(run.root_run_id, None);
        assert!(!run.is_completed);

        let message = RunDetails::from_value(&json!({"id": "run_x"}))
            .expect_err("no status")
            .to_string();
        assert!(message.contains("`status`"), "{message}");
        assert!(RunDetails::from_value(&json!([])).is_err());
    }

    #[test]
    fn trace_fixtures_collect_every_span() {
        let trace = RunTrace::from_value(&fixture("finished_run.trace.json")).expect("valid");
        assert_eq!(trace.trace_id, "a4c123b1612dd272d1371c17149d4395");
        assert_eq!(trace.span_properties.len(), 12);
        assert_eq!(
            trace.span_properties["64d32c5a798e81ae"]["ctx.queue.name"],
            json!("task/process-order")
        );
        let executing = RunTrace::from_value(&fixture("executing_run.trace.json")).expect("valid");
        assert_eq!(executing.span_properties.len(), 7);
    }

    #[test]
    fn trace_tolerates_missing_and_misplaced_fields() {
        let trace = RunTrace::from_value(&json!({"trace": {
            "traceId": "abc",
            "rootSpan": {"id": "a", "properties": {"k": 1}, "children": [
                {"data": {"properties": {"lost": true}}, "children": [{"id": "c", "data": {"properties": {"k": 3}}}]},
                {"id": "d", "data": {"properties": null}},
                {"id": "e", "data": 5, "children": "none"},
                42
            ]}
        }}))
        .expect("valid");
        assert_eq!(trace.trace_id, "abc");
        let mut ids: Vec<&str> = trace.span_properties.keys().map(String::as_str).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            vec!["a", "c", "d", "e"],
            "every node with an id, with or without properties"
        );
        assert_eq!(trace.span_properties["d"], Value::Null);
        assert_eq!(trace.span_properties["e"], Value::Null);

        let bare = RunTrace::from_value(&json!({"traceId": "t"})).expect("valid");
        assert!(bare.span_properties.is_empty());
        assert!(RunTrace::from_value(&json!({"trace": {"rootSpan": {}}})).is_err());
    }

    #[test]
    fn run_page_reads_data_and_cursor() {
        let page = RunPage::from_value(&json!({
            "data": [
                {"id": "run_2", "status": "EXECUTING", "taskIdentifier": "t", "createdAt": "2025-09-23T12:32:49.250Z"},
                {"status": "no id"},
                {"id": "run_1", "status": "COMPLETED", "finishedAt": "2025-09-23T12:32:50Z", "isTest": true}
            ],
            "pagination": {"next": "cursor_1", "previous": null}
        }))
        .expect("valid");
        assert_eq!(page.runs.len(), 2);
        assert_eq!(page.skipped, 1);
        assert_eq!(page.runs[0].created_at, Some(1_758_630_769_250_000_000));
        assert!(page.runs[1].is_terminal() && page.runs[1].is_test);
        assert_eq!(page.next_cursor.as_deref(), Some("cursor_1"));

        let last = RunPage::from_value(&json!({"data": [], "pagination": {"next": null}})).expect("valid");
        assert_eq!(last.next_cursor, None);
        assert!(RunPage::from_value(&json!({"error": "nope"})).is_err());
    }

    #[test]
    fn discovery_statuses_are_sent_as_the_api_spells_them() {
        let discovery = DiscoveryConfig {
            statuses: vec!["completed".into(), " Failed ".into()],
            ..DiscoveryConfig::default()
        };
        assert_eq!(RunFilters::from_discovery(&discovery).statuses, ["COMPLETED", "FAILED"]);
        assert_eq!(run_status("timed_out"), Some("TIMED_OUT"));
        assert_eq!(run_status("done"), None);
    }

    #[test]
    fn filters_to_query() {
        let filters = RunFilters {
            statuses: vec!["COMPLETED".into(), "FAILED".into()],
            task_identifiers: vec!["a".into(), " ".into()],
            tags: vec!["x".into()],
            versions: vec!["20250923.4".into()],
            is_test: Some(false),
            created_from: Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(1_758_630_769_250_123_456)),
            created_to: None,
            created_period: Some("2h".into()),
            page_size: Some(250),
        };
        let query = filters.to_query(Some("cur"));
        let expected: Vec<(&str, String)> = vec![
            ("filter[status]", "COMPLETED,FAILED".into()),
            ("filter[taskIdentifier]", "a".into()),
            ("filter[tag]", "x".into()),
            ("filter[version]", "20250923.4".into()),
            ("filter[isTest]", "false".into()),
            ("filter[createdAt][from]", "2025-09-23T12:32:49.25Z".into()),
            ("filter[createdAt][period]", "2h".into()),
            ("page[size]", "100".into()),
            ("page[after]", "cur".into()),
        ];
        assert_eq!(query, expected);
        assert!(RunFilters::default().to_query(None).is_empty());
        // A time no calendar year of -9999..=9999 holds is left out, not a panic.
        let far = RunFilters {
            created_from: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(400_000 * 365 * 86_400)),
            ..RunFilters::default()
        };
        assert!(far.to_query(None).is_empty());
    }

    #[test]
    fn filters_from_discovery() {
        let discovery = DiscoveryConfig {
            tasks: vec!["t".into()],
            statuses: vec!["FAILED".into()],
            lookback: Duration::from_secs(5400),
            ..DiscoveryConfig::default()
        };
        let filters = RunFilters::from_discovery(&discovery);
        assert_eq!(filters.task_identifiers, vec!["t"]);
        assert_eq!(filters.is_test, Some(false));
        assert_eq!(filters.created_period.as_deref(), Some("90m"));
        assert_eq!(filters.page_size, Some(100));
        let all = DiscoveryConfig {
            include_test: true,
            ..DiscoveryConfig::default()
        };
        assert_eq!(RunFilters::from_discovery(&all).is_test, None);
    }

    #[test]
    fn period_rounds_up_to_whole_minutes() {
        assert_eq!(RunFilters::period(Duration::from_secs(3600)), "60m");
        assert_eq!(RunFilters::period(Duration::from_secs(61)), "2m");
        assert_eq!(RunFilters::period(Duration::from_millis(60_500)), "2m");
        assert_eq!(RunFilters::period(Duration::ZERO), "1m");
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp("2025-09-23T12:32:49.250Z"),
            Some(1_758_630_769_250_000_000)
        );
        assert_eq!(
            parse_timestamp("2025-09-23T14:32:49.250+02:00"),
            Some(1_758_630_769_250_000_000)
        );
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), None);
        assert_eq!(parse_timestamp("soon"), None);
        // Past what the state store's signed 64-bit nanoseconds hold: unknown, not a failed save.
        assert_eq!(parse_timestamp("2300-01-01T00:00:00Z"), None);
        assert!(parse_timestamp("2262-04-11T23:47:16Z").is_some());
    }
}
