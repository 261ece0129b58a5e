//! Adversarial API soak: Stoplight Prism serves `tests/openapi/trigger-api.yaml` in dynamic mode
//! (`prism mock -d`, json-schema-faker), so every answer is a random body that is valid against a
//! schema written to admit what a broken server could send: start times that are words, floats or
//! negative, durations that are negative, strings or null, span ids that are words, numbers or
//! zeros, flags of every type, elements that are not objects, unknown fields everywhere. The built
//! daemon (`run`) polls 20 runs through it for 60 s and exports to the in-process OTLP receiver.
//!
//! Checked: no panic, the process still runs at the end and exits 0 on SIGTERM; its RSS stays flat
//! after a warm-up; every element Prism sent is exported, held back as partial (the run looked
//! live), or skipped as invalid, and the bridge's own invalid count agrees with an oracle written
//! here from docs/mapping.md; everything exported was accepted and decoded by the receiver, with
//! well-formed ids, each (trace, span) once.
//!
//! A transparent recording proxy sits between the bridge and Prism, so the test knows every body
//! the bridge received. Prism is found through `PRISM` (the `prism` executable); `.ci/run`
//! installs it and sets the variable; without it the test writes `SKIPPED …` and why to the
//! terminal of whoever runs `cargo test` (under `CI=true` it fails instead: CI must never skip it).

mod support;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::daemon;
use support::fake_api::{FakeApi, Request};
use support::otlp_receiver::Receiver;
use support::process::{self, external_tool, free_port};
use tokio::process::{Child, Command};
use trigger_otel_bridge::config::{LogsMode, Protocol};
use trigger_otel_bridge::convert::{convert_events, InvalidReason, NothingExported, RunInfo, RunState};
use trigger_otel_bridge::trigger::model::EventsBody;

const SOAK: Duration = Duration::from_secs(60);
const WARM_UP: Duration = Duration::from_secs(15);
const RUNS: usize = 20;
/// Growth of VmRSS allowed after the warm-up.
const RSS_BOUND_KB: u64 = 20 * 1024;
const VALIDATION_REASONS: [InvalidReason; 5] = [
    InvalidReason::NotAnObject,
    InvalidReason::SpanId,
    InvalidReason::StartTime,
    InvalidReason::Duration,
    InvalidReason::Flag,
];

// ---------------------------------------------------------------------------------------------
// Prism, and the recording proxy in front of it.

async fn start_prism(prism: &Path, dir: &Path) -> (Child, u16) {
    let port = free_port();
    let document = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi/trigger-api.yaml");
    let mut child = Command::new(prism)
        .args(["mock", "--dynamic", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--verboseLevel", "warn"])
        .arg(&document)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("prism.log")).unwrap())
        .stderr(std::fs::File::create(dir.join("prism.err")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("prism starts");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("prism exited with {status}: {}", read(&dir.join("prism.err")));
        }
        assert!(started.elapsed() < Duration::from_secs(60), "prism did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, port)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// One answer the bridge got, in order.
struct Answer {
    run: String,
    endpoint: &'static str,
    status: u16,
    /// The body of an events answer with status 200.
    events: Option<Bytes>,
}

#[derive(Default)]
struct Recording {
    answers: Mutex<Vec<Answer>>,
    /// While set, events requests are answered 503 (the final count). Trace and retrieve-run
    /// requests still pass, so a poll that already holds its events body can finish.
    frozen: AtomicBool,
}

impl Recording {
    /// Every events body with its run, and whether the poll that fetched it surely succeeded. A
    /// poll reads the events last, except that enrichment may read the trace again after them;
    /// if that fails, the poll fails and the body is discarded. So a body followed by a failed
    /// answer for its run before that run's next events request is uncertain.
    fn bodies(&self) -> Vec<(String, Bytes, bool)> {
        let answers = self.answers.lock().unwrap();
        let mut out = Vec::new();
        for (i, answer) in answers.iter().enumerate() {
            let Some(body) = &answer.events else { continue };
            let certain = answers[i + 1..]
                .iter()
                .filter(|later| later.run == answer.run)
                .take_while(|later| later.endpoint != "events")
                .all(|later| later.status == 200);
            out.push((answer.run.clone(), body.clone(), certain));
        }
        out
    }

    fn by_status(&self) -> BTreeMap<(&'static str, u16), u64> {
        let mut counts = BTreeMap::new();
        for answer in self.answers.lock().unwrap().iter() {
            *counts.entry((answer.endpoint, answer.status)).or_default() += 1;
        }
        counts
    }
}

fn endpoint_of(path: &str) -> &'static str {
    if path.ends_with("/events") {
        "events"
    } else if path.ends_with("/trace") {
        "trace"
    } else if path.starts_with("/api/v3/runs/") {
        "retrieve"
    } else {
        "other"
    }
}

/// One request forwarded to Prism, its answer recorded and passed back.
async fn proxy(upstream: &str, client: &reqwest::Client, recording: &Recording, request: Request) -> Response {
    let path = request.path.as_str();
    let endpoint = endpoint_of(path);
    let run = path
        .trim_start_matches("/api/v1/runs/")
        .trim_start_matches("/api/v3/runs/")
        .trim_end_matches("/events")
        .trim_end_matches("/trace")
        .to_owned();
    if endpoint == "events" && recording.frozen.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "frozen by the test").into_response();
    }
    let query = if request.query.is_empty() {
        String::new()
    } else {
        format!("?{}", request.query)
    };
    let mut forwarded = client.get(format!("{upstream}{path}{query}"));
    for name in ["authorization", "accept", "x-trigger-api-version", "x-trigger-branch"] {
        if let Some(value) = request.headers.get(name).and_then(|v| v.to_str().ok()) {
            forwarded = forwarded.header(name, value);
        }
    }
    let (status, content_type, body) = match forwarded.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            match response.bytes().await {
                Ok(body) => (status, content_type, body),
                Err(_) => (
                    502,
                    "text/plain".to_owned(),
                    Bytes::from_static(b"upstream body failed"),
                ),
            }
        }
        Err(_) => (502, "text/plain".to_owned(), Bytes::from_static(b"upstream failed")),
    };
    recording.answers.lock().unwrap().push(Answer {
        run,
        endpoint,
        status,
        events: (endpoint == "events" && status == 200).then(|| body.clone()),
    });
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", content_type)],
        body,
    )
        .into_response()
}

/// The test kit's fake API, answering every request by forwarding it to Prism.
async fn start_proxy(prism_port: u16, recording: Arc<Recording>) -> FakeApi {
    let upstream = Arc::new(format!("http://127.0.0.1:{prism_port}"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    FakeApi::answering(move |request, _| {
        let (upstream, client, recording) = (upstream.clone(), client.clone(), recording.clone());
        async move { proxy(&upstream, &client, &recording, request).await }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The oracle: what docs/mapping.md says becomes of each element, written independently of src/.

/// Rule 2: a span id as the converter must emit it, or `None` when the element is invalid.
fn oracle_span_id(value: Option<&Value>) -> Option<[u8; 8]> {
    let text = value?.as_str().filter(|t| !t.is_empty())?;
    if text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()) && text.bytes().any(|b| b != b'0') {
        let mut id = [0u8; 8];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
        }
        return Some(id);
    }
    let digest = Sha256::digest(format!("trigger.dev/span/{text}").as_bytes());
    let first: [u8; 8] = digest[..8].try_into().unwrap();
    Some(if first == [0; 8] {
        digest[8..16].try_into().unwrap()
    } else {
        first
    })
}

/// Rule 6: a string of ASCII digits that fits u64, or a non-negative JSON integer.
fn oracle_start_ok(value: Option<&Value>) -> bool {
    match value {
        Some(Value::String(text)) => {
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u64>().is_ok()
        }
        Some(Value::Number(n)) => n.as_u64().is_some(),
        _ => false,
    }
}

fn text_field<'a>(element: &'a Value, key: &str) -> Option<&'a str> {
    element.get(key).and_then(Value::as_str).filter(|t| !t.is_empty())
}

/// Rule 13 / C3: `kind = LOG`, or a level that is present and not `TRACE`.
fn oracle_is_log(element: &Value) -> bool {
    text_field(element, "kind") == Some("LOG") || text_field(element, "level").is_some_and(|l| l != "TRACE")
}

#[derive(Default, Debug)]
struct Tally {
    bodies: u64,
    body_errors: u64,
    elements: u64,
    skipped: u64,
    valid: u64,
    held_or_partial: u64,
    must_export: u64,
    missing: Vec<String>,
    /// Shapes Prism produced, for the report.
    shapes: BTreeMap<&'static str, u64>,
    /// The library's invalid counts per reason over every body.
    library_invalid: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn shape(&mut self, what: &'static str) {
        *self.shapes.entry(what).or_default() += 1;
    }

    fn note_shapes(&mut self, element: &Value) {
        let Some(object) = element.as_object() else {
            self.shape("element not an object");
            return;
        };
        match object.get("startTime") {
            Some(Value::String(t)) if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() => {
                self.shape("startTime digit string")
            }
            Some(Value::String(_)) => self.shape("startTime other string"),
            Some(Value::Number(n)) if n.is_f64() => self.shape("startTime float"),
            Some(Value::Number(n)) if n.is_i64() && n.as_i64().unwrap() < 0 => self.shape("startTime negative int"),
            Some(Value::Number(_)) => self.shape("startTime integer"),
            Some(Value::Null) | None => self.shape("startTime null/missing"),
            Some(_) => self.shape("startTime other"),
        }
        match object.get("duration") {
            Some(Value::Number(n)) if n.as_f64().is_some_and(|d| d < 0.0) => self.shape("duration negative"),
            Some(Value::Number(n)) if n.is_f64() => self.shape("duration float"),
            Some(Value::String(_)) => self.shape("duration string"),
            Some(Value::Null) | None => self.shape("duration null/missing"),
            _ => {}
        }
        match object.get("spanId") {
            Some(Value::String(s)) if s.is_empty() => self.shape("spanId empty"),
            Some(Value::String(s)) if s.len() == 16 && s.bytes().all(|b| b == b'0') => self.shape("spanId zeros"),
            Some(Value::String(s)) if s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                self.shape("spanId hex")
            }
            Some(Value::String(_)) => self.shape("spanId words"),
            _ => self.shape("spanId not a string"),
        }
        for flag in ["isError", "isCancelled", "isPartial"] {
            if object.get(flag).is_some_and(|v| !v.is_boolean() && !v.is_null()) {
                self.shape("flag of a wrong type");
            }
        }
        if object.get("events").is_some_and(|e| !e.is_array() && !e.is_null()) {
            self.shape("events not an array");
        }
    }
}

/// One events body: classify each element by the oracle, check the valid ones were exported (or
/// legitimately held back), and compare the skip count with the library's invalid report.
fn account_body(
    tally: &mut Tally,
    run_id: &str,
    body: &[u8],
    exported: &HashSet<[u8; 8]>,
    certain: bool,
) -> BTreeMap<&'static str, u64> {
    tally.bodies += 1;
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let elements: Option<Vec<Value>> = match parsed.as_ref().and_then(|b| b.get("events")) {
        Some(Value::Array(list)) => Some(list.clone()),
        Some(Value::Null) => Some(Vec::new()),
        _ => None,
    };
    let library = EventsBody::from_slice(body);
    let Some(elements) = elements else {
        tally.body_errors += 1;
        assert!(
            library.is_err(),
            "the oracle rejects a body the library reads: {run_id}"
        );
        return BTreeMap::new();
    };
    // The library's invalid report for this body (state and trace id do not change it).
    let info = RunInfo::new(run_id, None, RunState::Ended { finished_at: None });
    let conversion = convert_events(library.unwrap().events, &info, LogsMode::SpanEvents, &NothingExported);
    let counts: BTreeMap<&'static str, u64> = conversion
        .invalid
        .iter()
        .map(|(reason, of_reason)| (reason.as_str(), of_reason.count))
        .collect();
    for (reason, count) in &counts {
        *tally.library_invalid.entry(reason).or_default() += count;
    }
    let library_skipped: u64 = conversion
        .invalid
        .iter()
        .filter(|(reason, _)| reason.skips_element())
        .map(|(_, t)| t.count)
        .sum();

    // Spans that are partial (their logs wait for them while the run looks live).
    let partial_spans: HashSet<[u8; 8]> = elements
        .iter()
        .filter(|e| e.is_object() && !oracle_is_log(e) && e.get("isPartial") == Some(&Value::Bool(true)))
        .filter(|e| oracle_start_ok(e.get("startTime")))
        .filter_map(|e| oracle_span_id(e.get("spanId")))
        .collect();
    let mut skipped = 0;
    for element in &elements {
        tally.elements += 1;
        tally.note_shapes(element);
        let id = element
            .is_object()
            .then(|| oracle_span_id(element.get("spanId")))
            .flatten();
        let Some(id) = id.filter(|_| oracle_start_ok(element.get("startTime"))) else {
            skipped += 1;
            continue;
        };
        tally.valid += 1;
        let is_log = oracle_is_log(element);
        let parent = element
            .get("parentId")
            .filter(|p| p.is_string())
            .and_then(|p| oracle_span_id(Some(p)));
        let may_wait = if is_log {
            parent.is_some_and(|p| partial_spans.contains(&p))
        } else {
            element.get("isPartial") == Some(&Value::Bool(true))
        };
        if may_wait {
            tally.held_or_partial += 1;
            continue;
        }
        tally.must_export += 1;
        if certain && !exported.contains(&id) {
            tally.missing.push(format!(
                "run {run_id}: element {} (span id {}) was neither exported nor counted invalid",
                element,
                support::hex(&id)
            ));
        }
    }
    tally.skipped += skipped;
    assert_eq!(
        library_skipped,
        skipped,
        "run {run_id}: the library skipped {library_skipped} elements, the oracle {skipped}, of body {}",
        String::from_utf8_lossy(body)
    );
    counts
}

// ---------------------------------------------------------------------------------------------
// The bridge process.

fn write_config(dir: &Path, api: &str, endpoint: &str, listen: &str) -> PathBuf {
    let ids: Vec<String> = (0..RUNS).map(|i| format!("run_soak{i:02}")).collect();
    let mut config = daemon::config_at(api, endpoint, &dir.join("state.db"), &ids);
    config.trigger.requests_per_minute = 3000;
    config.runs.poll_interval = Duration::from_millis(200);
    config.runs.max_poll_interval = Duration::from_secs(1);
    config.runs.settle = Duration::from_secs(45);
    config.export.protocol = Protocol::HttpProtobuf;
    config.export.max_batch_spans = 256;
    config.server.listen = Some(listen.to_owned());
    process::write_config(dir, "bridge.toml", &config)
}

/// The text without ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `/metrics` when the bridge serves it (src/telemetry), as `name{labels} → value`.
async fn scrape_metrics(listen: &str) -> Option<BTreeMap<String, f64>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let response = client.get(format!("http://{listen}/metrics")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    let mut metrics = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        if let Some((name, value)) = line.rsplit_once(' ') {
            if let Ok(value) = value.parse::<f64>() {
                metrics.insert(name.to_owned(), value);
            }
        }
    }
    Some(metrics)
}

fn metric_sum(metrics: &BTreeMap<String, f64>, name: &str) -> Option<f64> {
    let matching: Vec<f64> = metrics
        .iter()
        .filter(|(key, _)| *key == name || key.starts_with(&format!("{name}{{")))
        .map(|(_, v)| *v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

fn metric_for_reason(metrics: &BTreeMap<String, f64>, name: &str, reason: &str) -> f64 {
    metrics
        .iter()
        .filter(|(key, _)| key.starts_with(&format!("{name}{{")) && key.contains(&format!("reason=\"{reason}\"")))
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_seconds_of_schema_valid_garbage() {
    let Some(prism) = external_tool(
        "PRISM",
        "target/ci-tools/prism",
        "It names the prism executable of npm's @stoplight/prism-cli \
         (npm install --prefix target/ci-tools/prism @stoplight/prism-cli@5.16.0)",
    ) else {
        return;
    };
    trigger_otel_bridge::net::tls::install_crypto_provider(); // for the proxy's reqwest client
    let dir = tempfile::tempdir().unwrap();
    let (mut prism_child, prism_port) = start_prism(&prism, dir.path()).await;
    let recording = Arc::new(Recording::default());
    let api = start_proxy(prism_port, recording.clone()).await;
    let receiver = Receiver::start().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let config = write_config(dir.path(), &api.url(), &receiver.http_endpoint(), &listen);
    let log = dir.path().join("bridge.log");

    let started = Instant::now();
    let mut bridge = process::bridge(&["run"], &config, &log).spawn().unwrap();
    let pid = bridge.id().unwrap();

    // The soak: sample RSS every 2 s; the bridge must stay up throughout.
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    while started.elapsed() < SOAK {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if let Some(status) = bridge.try_wait().unwrap() {
            panic!("the bridge exited with {status} during the soak:\n{}", read(&log));
        }
        if let Some(usage) = process::usage(pid) {
            samples.push((started.elapsed(), usage.rss_kib));
        }
    }
    assert!(
        bridge.try_wait().unwrap().is_none(),
        "the bridge must still run after {SOAK:?}"
    );

    // Freeze the API and let the bridge export what it already fetched.
    recording.frozen.store(true, Ordering::SeqCst);
    let mut last = (receiver.recorder.spans().len(), Instant::now());
    while last.1.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = receiver.recorder.spans().len();
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    let metrics = scrape_metrics(&listen).await;
    let status = process::terminate(&mut bridge, Duration::from_secs(15))
        .await
        .expect("the bridge stops within 15 s of SIGTERM");
    let log_text = read(&log);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}\n{log_text}"
    );
    assert!(!log_text.contains("panicked"), "the bridge panicked:\n{log_text}");
    let _ = prism_child.kill().await;

    // Everything exported was accepted and decoded, with well-formed ids, each span once.
    let decode_errors = receiver.recorder.decode_errors.lock().unwrap().clone();
    assert!(
        decode_errors.is_empty(),
        "the receiver could not decode: {decode_errors:?}"
    );
    let spans = receiver.recorder.spans();
    let mut keys = HashSet::new();
    for span in &spans {
        assert_eq!(span.trace_id.len(), 16, "trace id of {span:?}");
        assert!(span.trace_id.iter().any(|b| *b != 0), "all-zero trace id: {span:?}");
        assert_eq!(span.span_id.len(), 8, "span id of {span:?}");
        assert!(span.span_id.iter().any(|b| *b != 0), "all-zero span id: {span:?}");
        assert!(
            span.parent_span_id.is_empty() || span.parent_span_id.len() == 8,
            "{span:?}"
        );
        assert!(
            span.end_time_unix_nano >= span.start_time_unix_nano,
            "ends before it starts: {span:?}"
        );
        assert!(
            keys.insert((span.trace_id.clone(), span.span_id.clone())),
            "span exported twice: {span:?}"
        );
    }
    // No export failure of any kind: every batch was accepted whole (the text log's level is the
    // second word of a line; messages themselves may quote Prism's words, "ERROR" among them).
    let mut other_warnings = Vec::new();
    for line in log_text.lines().map(strip_ansi) {
        let level = line.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            level != "ERROR" && !line.contains("batch rejected") && !line.contains("export failed"),
            "the bridge reported a failure: {line}"
        );
        if level == "WARN" && !line.contains("invalid elements in run") {
            other_warnings.push(line);
        }
    }

    // Every element Prism sent: exported, held back as partial, or skipped as invalid.
    let mut exported: HashSet<[u8; 8]> = HashSet::new();
    for span in &spans {
        exported.insert(span.span_id.as_slice().try_into().unwrap());
        for event in span.events.iter().filter(|e| e.name == "log") {
            let id = event.attributes.iter().find(|kv| kv.key == "trigger.span_id");
            if let Some(Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(raw))) =
                id.map(|kv| kv.value.as_ref().and_then(|v| v.value.clone()))
            {
                exported.extend(oracle_span_id(Some(&Value::String(raw))));
            }
        }
    }
    let bodies = recording.bodies();
    let uncertain = bodies.iter().filter(|(_, _, certain)| !certain).count();
    let mut tally = Tally::default();
    // What the daemon's invalid_events_total must say: the API resends a run's whole body on
    // every poll, so the daemon counts, per run and reason, only what exceeds the most it counted
    // before for that run (the same invalid elements are not counted again on each poll). Over
    // random bodies that is the sum over runs of the largest count of any one body.
    // Uncertain bodies (see `Recording::bodies`) may or may not have been counted: the metric
    // must lie between the sums without and with them.
    let mut per_run_max: BTreeMap<(String, &'static str), (u64, u64)> = BTreeMap::new();
    for (run_id, body, certain) in &bodies {
        for (reason, count) in account_body(&mut tally, run_id, body, &exported, *certain) {
            let (low, high) = per_run_max.entry((run_id.clone(), reason)).or_default();
            if *certain {
                *low = (*low).max(count);
            }
            *high = (*high).max(count);
        }
    }
    let mut expected_metric: BTreeMap<&'static str, (u64, u64)> = BTreeMap::new();
    for ((_, reason), (low, high)) in &per_run_max {
        let (sum_low, sum_high) = expected_metric.entry(reason).or_default();
        *sum_low += low;
        *sum_high += high;
    }
    let invalid_total: u64 = tally.library_invalid.values().sum();

    // Memory: flat after the warm-up.
    let after: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= WARM_UP)
        .map(|(_, rss)| *rss)
        .collect();
    assert!(after.len() >= 10, "too few RSS samples: {samples:?}");
    let growth = after.iter().max().unwrap() - after[0];

    let answers = recording.by_status();
    let retired = log_text.matches("run retired").count();
    println!(
        "prism soak: {:?}, RSS samples (s, kB): {:?}",
        SOAK,
        samples.iter().map(|(t, kb)| (t.as_secs(), *kb)).collect::<Vec<_>>()
    );
    println!("  API answers (endpoint, status) → count: {answers:?}");
    println!(
        "  {} events bodies ({uncertain} uncertain, {} body errors), {} elements: {} skipped as invalid, {} valid ({} exported or folded, {} partial / waiting on a partial)",
        tally.bodies, tally.body_errors, tally.elements, tally.skipped, tally.valid, tally.must_export, tally.held_or_partial
    );
    println!(
        "  invalid by reason (library, every body): {:?}, total {invalid_total}",
        tally.library_invalid
    );
    println!("  shapes Prism sent: {:?}", tally.shapes);
    if let Some(metrics) = &metrics {
        let bridge: Vec<_> = metrics
            .iter()
            .filter(|(k, _)| k.contains("invalid_events_total"))
            .collect();
        println!("  /metrics invalid_events_total: {bridge:?}; expected (per-run high-water): {expected_metric:?}");
    }
    println!(
        "  {} warnings other than invalid elements, the first: {:?}",
        other_warnings.len(),
        other_warnings.iter().take(5).collect::<Vec<_>>()
    );
    println!(
        "  {} spans received in {} requests; {retired} runs retired; RSS growth after warm-up {growth} kB",
        spans.len(),
        receiver.recorder.requests.lock().unwrap().len()
    );

    // The bridge's own counters, when it serves /metrics.
    match &metrics {
        Some(metrics) => {
            let name = "trigger_otel_bridge_invalid_events_total";
            assert!(metric_sum(metrics, name).is_some(), "/metrics has no {name}");
            // The reasons judged when an element is read, whatever the run's state. `span_event` and
            // `event_time` are judged when a span is built, so a span held back (live run) or
            // already exported is not counted there: the library's count here is an upper bound.
            for reason in VALIDATION_REASONS {
                let (low, high) = expected_metric.get(reason.as_str()).copied().unwrap_or((0, 0));
                let have = metric_for_reason(metrics, name, reason.as_str()) as u64;
                assert!(
                    (low..=high).contains(&have),
                    "{name}{{reason=\"{}\"}} is {have}, expected {low}..={high} from the bodies served",
                    reason.as_str()
                );
            }
            if let Some(exported_total) = metric_sum(metrics, "trigger_otel_bridge_spans_exported_total") {
                assert_eq!(
                    exported_total as usize,
                    spans.len(),
                    "spans_exported_total vs the receiver"
                );
            }
        }
        None => println!("no /metrics on {listen}: the invalid counts are checked per body against the library"),
    }

    assert!(
        tally.missing.is_empty(),
        "{} valid elements were lost:\n{}",
        tally.missing.len(),
        tally.missing.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        tally.bodies >= 100,
        "the soak fetched only {} events bodies",
        tally.bodies
    );
    assert!(tally.must_export > 0 && !spans.is_empty(), "nothing was exported");
    assert!(
        growth < RSS_BOUND_KB,
        "RSS grew by {growth} kB after the warm-up: {samples:?}"
    );
    api.stop().await;
    receiver.stop().await;
}
