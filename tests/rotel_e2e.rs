//! End to end through a collector nobody on this project wrote: Rotel (a Rust OpenTelemetry
//! collector, `rotel-agent` from PyPI's `rotel` wheel) receives what the built bridge sends, with
//! `--exporter blackhole --debug-log traces --debug-log-verbosity detailed`, and prints every span
//! it decoded. The test parses that printout and checks every span of every fixture, field by
//! field (trace id, span id, parent id, name, kind, start and end to the nanosecond, status,
//! events and attributes, in order), against what the library's converter makes of the same
//! fixtures — for `export` and for the `run` daemon, over gRPC and over OTLP/HTTP protobuf.
//!
//! Rotel is found through `ROTEL_AGENT` (the `rotel-agent` binary). `.ci/run` installs it and sets
//! the variable; without it the test writes `SKIPPED …` and why to the terminal of whoever runs
//! `cargo test`, and passes (under `CI=true` it fails instead: CI must never skip it).
//!
//! What Rotel prints per span (the OpenTelemetry Collector's debug exporter layout):
//! ```text
//! ResourceSpans #0
//! Resource SchemaURL:
//! Resource attributes:
//!      -> service.name: Str(trigger.dev)
//! ScopeSpans #0
//! ScopeSpans SchemaURL:
//! InstrumentationScope trigger-otel-bridge 0.1.0
//! Span #0
//!     Trace ID       : 2aabfe228f219e9cb0eb53f16947ccf2
//!     Parent ID      :
//!     ID             : e838a3ea8e4dbcc8
//!     Name           : sync-inventory
//!     Kind           : SPAN_KIND_SERVER
//! Start time: 1758636603118402917
//! End time: 1758636609742118204
//!     Status code    : STATUS_CODE_UNSET
//!     Status message :
//! Attributes:
//!      -> trigger.run_id: Str(run_cm1selfhosted)
//!      -> trigger.cancelled: Bool(true)
//! Events:
//! SpanEvent #0
//!      -> Name: cancellation
//!      -> Timestamp: 1758636609742000000
//!      -> DroppedAttributesCount: 0
//!      -> Attributes::
//!           -> reason: Str(Canceled by user)
//! ```
//! Values are `Str(…)`, `Int(…)`, `Bool(…)`, `Double(…)` (Rust's `Display` of the f64) and
//! `Slice(v, v)`; strings are printed raw, so a multi-line stack trace continues on the next lines.

mod support;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::daemon;
use support::fake_api::{FakeApi, FakeRun};
use support::hex;
use support::process::{self, bridge, external_tool, free_port, terminate};
use tokio::process::{Child, Command};
use trigger_otel_bridge::config::{ExportConfig, LogsMode};
use trigger_otel_bridge::convert::otlp::{export_request, ResourceSettings};
use trigger_otel_bridge::convert::NothingExported;
use trigger_otel_bridge::fetch::FetchedRun;
use trigger_otel_bridge::trigger::model::EventsResponse;
use trigger_otel_bridge::trigger::{RunDetails, RunTrace};

/// The resource attribute that tells the four deliveries apart in Rotel's output.
const SCENARIO_KEY: &str = "e2e.scenario";

/// The runs served by the fake API: the four fixture runs, plus `invalid_run` (no run or trace
/// file: COMPLETED without `finishedAt`, and the trace endpoint answers 404 so its trace id is
/// derived).
fn runs() -> Vec<FakeRun> {
    let mut runs: Vec<FakeRun> = ["finished_run", "executing_run", "selfhosted_run", "child_run"]
        .map(FakeRun::fixture)
        .into();
    let mut invalid = FakeRun::fixture("invalid_run");
    invalid.trace = None;
    invalid.run = json!({"id": "run_cm1invalid001", "status": "COMPLETED", "taskIdentifier": "import-csv"});
    runs.push(invalid);
    runs
}

// ---------------------------------------------------------------------------------------------
// What the converter makes of the fixtures, shown the way Rotel shows it.

#[derive(Debug, Clone, PartialEq, Eq)]
struct ShownEvent {
    name: String,
    time: u64,
    dropped_attributes: u32,
    attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ShownSpan {
    resource: Vec<(String, String)>,
    scope: String,
    trace_id: String,
    parent_id: String,
    span_id: String,
    name: String,
    kind: String,
    trace_state: String,
    start: u64,
    end: u64,
    status_code: String,
    status_message: String,
    attributes: Vec<(String, String)>,
    events: Vec<ShownEvent>,
}

/// An attribute value in Rotel's notation.
fn render(value: &AnyValue) -> String {
    match value.value.as_ref() {
        Some(any_value::Value::StringValue(s)) => format!("Str({s})"),
        Some(any_value::Value::BoolValue(b)) => format!("Bool({b})"),
        Some(any_value::Value::IntValue(i)) => format!("Int({i})"),
        Some(any_value::Value::DoubleValue(d)) => format!("Double({d})"),
        Some(any_value::Value::ArrayValue(array)) => {
            let items: Vec<String> = array.values.iter().map(render).collect();
            format!("Slice({})", items.join(", "))
        }
        other => panic!("the converter does not emit {other:?}"),
    }
}

fn render_all(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), render(kv.value.as_ref().expect("attribute value"))))
        .collect()
}

fn shown(resource: &[(String, String)], scope: &str, span: &Span) -> ShownSpan {
    let status = span.status.clone().unwrap_or_default();
    ShownSpan {
        resource: resource.to_vec(),
        scope: scope.to_owned(),
        trace_id: hex(&span.trace_id),
        parent_id: hex(&span.parent_span_id),
        span_id: hex(&span.span_id),
        name: span.name.clone(),
        kind: SpanKind::try_from(span.kind).unwrap().as_str_name().to_owned(),
        trace_state: span.trace_state.clone(),
        start: span.start_time_unix_nano,
        end: span.end_time_unix_nano,
        status_code: StatusCode::try_from(status.code).unwrap().as_str_name().to_owned(),
        status_message: status.message,
        attributes: render_all(&span.attributes),
        events: span
            .events
            .iter()
            .map(|event| ShownEvent {
                name: event.name.clone(),
                time: event.time_unix_nano,
                dropped_attributes: event.dropped_attributes_count,
                attributes: render_all(&event.attributes),
            })
            .collect(),
    }
}

/// The library's conversion of every fixture run, as the bridge fetches it (`fetch::FetchedRun`):
/// the trace id of the trace fixture (derived when there is none), the task identifier and state
/// of the run fixture (ended runs end their partial spans at `finishedAt`; live runs hold them
/// back), and the bridge's default conversion settings.
fn expected_spans(runs: &[FakeRun], scenario: &str) -> Vec<ShownSpan> {
    let settings = ResourceSettings {
        attributes: BTreeMap::from([(SCENARIO_KEY.to_owned(), scenario.to_owned())]),
        ..ResourceSettings::default()
    };
    let mut spans = Vec::new();
    for run in runs {
        let body = EventsResponse::parse(serde_json::to_vec(&run.events).unwrap(), |_, err| err).unwrap();
        let mut fetched = FetchedRun {
            run_id: run.id(),
            trace: run.trace.as_ref().map(|t| RunTrace::from_value(t).unwrap()),
            details: RunDetails::from_value(&run.run).unwrap(),
            events: body,
        };
        // The bridge's defaults: logs as span events, enriched with the trace's span properties.
        spans.extend(fetched.convert(LogsMode::SpanEvents, &NothingExported).spans);
    }
    let request = export_request(spans, &settings);
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let mut resource = render_all(&resource_spans.resource.as_ref().unwrap().attributes);
        // An SDK `Resource` keeps its attributes in a hash map: their order means nothing.
        resource.sort();
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans.scope.as_ref().unwrap();
            let scope = format!("{} {}", scope.name, scope.version);
            out.extend(scope_spans.spans.iter().map(|span| shown(&resource, &scope, span)));
        }
    }
    assert!(!out.is_empty());
    // Every expectation must be unique, or a duplicate in Rotel's output could hide behind it.
    let keys: std::collections::BTreeSet<(String, String)> =
        out.iter().map(|s| (s.trace_id.clone(), s.span_id.clone())).collect();
    assert_eq!(keys.len(), out.len(), "the fixtures hold a (trace id, span id) twice");
    out
}

// ---------------------------------------------------------------------------------------------
// Rotel's detailed debug log, parsed.

/// Which value a line that matches nothing continues (strings are printed raw, newlines too).
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Nothing,
    ResourceAttribute,
    SpanName,
    StatusMessage,
    SpanAttribute,
    EventName,
    EventAttribute,
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Resource,
    Span,
    SpanAttributes,
    Events,
    Links,
}

fn key_value(text: &str) -> (String, String) {
    let (key, value) = text
        .split_once(": ")
        .unwrap_or_else(|| panic!("attribute line without `: `: {text:?}"));
    (key.to_owned(), value.to_owned())
}

fn number<T: std::str::FromStr>(text: &str, what: &str) -> T {
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{what} is not a number in Rotel's log: {text:?}"))
}

/// A line of Rotel's own logging (`tracing`, with or without ANSI colours), not of the dump.
fn is_log_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    line.starts_with('\u{1b}') || (bytes.len() > 20 && bytes[4] == b'-' && bytes[7] == b'-' && bytes[10] == b'T')
}

/// The span header fields, by the prefix Rotel prints them with.
const HEADER: [&str; 10] = [
    "    Trace ID       : ",
    "    Parent ID      : ",
    "    ID             : ",
    "    Name           : ",
    "    Kind           : ",
    "    TraceState     : ",
    "Start time: ",
    "End time: ",
    "    Status code    : ",
    "    Status message : ",
];

fn set_header(span: &mut ShownSpan, index: usize, value: &str) -> Open {
    let value = value.to_owned();
    match index {
        0 => span.trace_id = value,
        1 => span.parent_id = value,
        2 => span.span_id = value,
        3 => {
            span.name = value;
            return Open::SpanName;
        }
        4 => span.kind = value,
        5 => span.trace_state = value,
        6 => span.start = number(&value, "a start time"),
        7 => span.end = number(&value, "an end time"),
        8 => span.status_code = value,
        _ => {
            span.status_message = value;
            return Open::StatusMessage;
        }
    }
    Open::Nothing
}

/// Every span in Rotel's detailed trace dump. Panics on a line it does not understand, so a
/// change of format fails loudly instead of silently matching nothing.
fn parse_rotel(text: &str) -> Vec<ShownSpan> {
    let mut spans: Vec<ShownSpan> = Vec::new();
    let mut resource: Vec<(String, String)> = Vec::new();
    let mut scope = String::new();
    let mut section = Section::Resource;
    let mut open = Open::Nothing;
    for line in text.lines() {
        if is_log_line(line) {
            open = Open::Nothing;
            continue;
        }
        // An empty value is printed as the prefix with its trailing space, or without it.
        let header = HEADER
            .iter()
            .position(|prefix| line.starts_with(prefix) || line == prefix.trim_end())
            .filter(|_| section == Section::Span);
        if let Some(index) = header {
            let value = line.get(HEADER[index].len()..).unwrap_or("");
            open = set_header(spans.last_mut().unwrap(), index, value);
        } else if line.starts_with("ResourceSpans #") {
            resource.clear();
            section = Section::Resource;
            open = Open::Nothing;
        } else if line.starts_with("Resource SchemaURL:")
            || line.starts_with("ScopeSpans #")
            || line.starts_with("ScopeSpans SchemaURL:")
            || line == "Resource attributes:"
        {
            open = Open::Nothing;
        } else if let Some(name) = line.strip_prefix("InstrumentationScope ") {
            scope = name.to_owned();
            open = Open::Nothing;
        } else if line.starts_with("Span #") {
            let mut sorted = resource.clone();
            sorted.sort();
            spans.push(ShownSpan {
                resource: sorted,
                scope: scope.clone(),
                trace_id: String::new(),
                parent_id: String::new(),
                span_id: String::new(),
                name: String::new(),
                kind: String::new(),
                trace_state: String::new(),
                start: 0,
                end: 0,
                status_code: String::new(),
                status_message: String::new(),
                attributes: Vec::new(),
                events: Vec::new(),
            });
            section = Section::Span;
            open = Open::Nothing;
        } else if section != Section::Resource && ["Attributes:", "Events:", "Links:"].contains(&line) {
            section = match line {
                "Attributes:" => Section::SpanAttributes,
                "Events:" => Section::Events,
                _ => Section::Links,
            };
            open = Open::Nothing;
        } else if section == Section::Events && line.starts_with("SpanEvent #") {
            spans.last_mut().unwrap().events.push(ShownEvent {
                name: String::new(),
                time: 0,
                dropped_attributes: 0,
                attributes: Vec::new(),
            });
            open = Open::Nothing;
        } else if let Some(rest) = line
            .strip_prefix("          -> ")
            .filter(|_| section == Section::Events)
        {
            let event = spans
                .last_mut()
                .unwrap()
                .events
                .last_mut()
                .expect("event attribute outside an event");
            event.attributes.push(key_value(rest));
            open = Open::EventAttribute;
        } else if let Some(rest) = line.strip_prefix("     -> ") {
            open = match section {
                Section::Resource => {
                    resource.push(key_value(rest));
                    Open::ResourceAttribute
                }
                Section::SpanAttributes => {
                    spans.last_mut().unwrap().attributes.push(key_value(rest));
                    Open::SpanAttribute
                }
                Section::Events => {
                    let event = spans
                        .last_mut()
                        .unwrap()
                        .events
                        .last_mut()
                        .expect("event field outside an event");
                    if let Some(name) = rest.strip_prefix("Name:") {
                        event.name = name.strip_prefix(' ').unwrap_or(name).to_owned();
                        Open::EventName
                    } else if let Some(time) = rest.strip_prefix("Timestamp: ") {
                        event.time = number(time, "an event timestamp");
                        Open::Nothing
                    } else if let Some(dropped) = rest.strip_prefix("DroppedAttributesCount: ") {
                        event.dropped_attributes = number(dropped, "DroppedAttributesCount");
                        Open::Nothing
                    } else if rest == "Attributes::" {
                        Open::Nothing
                    } else {
                        panic!("unknown span event field in Rotel's log: {line:?}")
                    }
                }
                // The converter makes no links; whatever Rotel says about them is ignored.
                Section::Links => Open::Nothing,
                Section::Span => panic!("unexpected attribute line in Rotel's log: {line:?}"),
            };
        } else if section == Section::Links && open == Open::Nothing {
            // (links are ignored, see above)
        } else {
            continue_value(&mut spans, &mut resource, open, line);
        }
    }
    spans
}

fn continue_value(spans: &mut [ShownSpan], resource: &mut [(String, String)], open: Open, line: &str) {
    let target: &mut String = match open {
        Open::Nothing => panic!("a line of Rotel's log this parser does not understand: {line:?}"),
        Open::ResourceAttribute => &mut resource.last_mut().unwrap().1,
        Open::SpanName => &mut spans.last_mut().unwrap().name,
        Open::StatusMessage => &mut spans.last_mut().unwrap().status_message,
        Open::SpanAttribute => &mut spans.last_mut().unwrap().attributes.last_mut().unwrap().1,
        Open::EventName => &mut spans.last_mut().unwrap().events.last_mut().unwrap().name,
        Open::EventAttribute => {
            &mut spans
                .last_mut()
                .unwrap()
                .events
                .last_mut()
                .unwrap()
                .attributes
                .last_mut()
                .unwrap()
                .1
        }
    };
    target.push('\n');
    target.push_str(line);
}

// ---------------------------------------------------------------------------------------------
// Rotel, the bridge, and the comparison.

struct Rotel {
    child: Child,
    grpc: u16,
    http: u16,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Rotel {
    async fn start(agent: &Path, dir: &Path) -> Rotel {
        let (grpc, http) = (free_port(), free_port());
        let stdout = dir.join("rotel.stdout");
        let stderr = dir.join("rotel.stderr");
        // A clean environment: no ROTEL_* variable of the caller can add an exporter or telemetry.
        // Everything listens on loopback; the blackhole exporter sends nothing anywhere.
        let child = Command::new(agent)
            .args(["start", "--exporter", "blackhole"])
            .args(["--debug-log", "traces", "--debug-log-verbosity", "detailed"])
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc}"))
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--pid-file")
            .arg(dir.join("rotel.pid"))
            .arg("--log-file")
            .arg(dir.join("rotel.log"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("rotel-agent starts");
        let mut rotel = Rotel {
            child,
            grpc,
            http,
            stdout,
            stderr,
        };
        let started = Instant::now();
        for port in [grpc, http] {
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                if let Some(status) = rotel.child.try_wait().unwrap() {
                    panic!("rotel-agent exited with {status}: {}", rotel.output());
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "rotel-agent did not listen on {port}: {}",
                    rotel.output()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        rotel
    }

    fn output(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!("stdout:\n{}\nstderr:\n{}", read(&self.stdout), read(&self.stderr))
    }

    fn spans(&self) -> Vec<ShownSpan> {
        parse_rotel(&std::fs::read_to_string(&self.stdout).unwrap())
    }

    fn spans_of(&self, scenario: &str) -> Vec<ShownSpan> {
        self.spans()
            .into_iter()
            .filter(|s| {
                s.resource
                    .iter()
                    .any(|(k, v)| k == SCENARIO_KEY && *v == format!("Str({scenario})"))
            })
            .collect()
    }

    async fn wait_for(&self, scenario: &str, count: usize, limit: Duration) {
        let started = Instant::now();
        while self.spans_of(scenario).len() < count {
            assert!(
                started.elapsed() < limit,
                "{scenario}: Rotel logged {} of {count} spans in {limit:?}",
                self.spans_of(scenario).len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) -> String {
        terminate(&mut self.child, Duration::from_secs(10)).await;
        self.output()
    }
}

fn write_config(dir: &Path, api: &FakeApi, endpoint: &str, protocol: &str, scenario: &str, ids: &[String]) -> PathBuf {
    let state = dir.join(format!("{scenario}.db"));
    let mut config = daemon::config_at(&api.url(), endpoint, &state, ids);
    config.runs.max_poll_interval = Duration::from_millis(300);
    config.export.protocol = protocol.parse().unwrap();
    config.export.max_batch_spans = ExportConfig::default().max_batch_spans;
    config
        .export
        .resource
        .attributes
        .insert(SCENARIO_KEY.to_owned(), scenario.to_owned());
    process::write_config(dir, &format!("{scenario}.toml"), &config)
}

/// The fields of two spans that differ, as `field: rotel … expected …` lines.
fn differences(have: &ShownSpan, want: &ShownSpan) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!(
                "  {name}: rotel {a}\n  {:width$}  expected {b}",
                "",
                width = name.len()
            ));
        }
    };
    field(
        "resource",
        format!("{:?}", have.resource),
        format!("{:?}", want.resource),
    );
    field("scope", have.scope.clone(), want.scope.clone());
    field("parent_id", have.parent_id.clone(), want.parent_id.clone());
    field("name", have.name.clone(), want.name.clone());
    field("kind", have.kind.clone(), want.kind.clone());
    field("trace_state", have.trace_state.clone(), want.trace_state.clone());
    field("start", have.start.to_string(), want.start.to_string());
    field("end", have.end.to_string(), want.end.to_string());
    field("status_code", have.status_code.clone(), want.status_code.clone());
    field(
        "status_message",
        have.status_message.clone(),
        want.status_message.clone(),
    );
    field(
        "attributes",
        format!("{:?}", have.attributes),
        format!("{:?}", want.attributes),
    );
    field("events", format!("{:?}", have.events), format!("{:?}", want.events));
    out
}

/// Rotel's spans of one scenario equal the expectation: the same set, each span exactly once,
/// every field equal. Differences are listed span by span.
fn compare(scenario: &str, got: &[ShownSpan], expected: &[ShownSpan]) {
    let key = |s: &ShownSpan| (s.trace_id.clone(), s.span_id.clone());
    let mut seen: HashMap<(String, String), &ShownSpan> = HashMap::new();
    for span in got {
        assert!(
            seen.insert(key(span), span).is_none(),
            "{scenario}: Rotel received span {}/{} twice",
            span.trace_id,
            span.span_id
        );
    }
    let mut problems = Vec::new();
    for want in expected {
        match seen.remove(&key(want)) {
            None => problems.push(format!("missing: {want:#?}")),
            Some(have) if have != want => problems.push(format!(
                "span {} ({}) differs:\n{}",
                want.span_id,
                want.name,
                differences(have, want).join("\n")
            )),
            Some(_) => {}
        }
    }
    for extra in seen.values() {
        problems.push(format!("unexpected: {extra:#?}"));
    }
    assert!(problems.is_empty(), "{scenario}: {}", problems.join("\n"));
    println!("{scenario}: {} spans, every field as converted", got.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_span_reaches_rotel_exactly_as_converted() {
    let Some(agent) = external_tool(
        "ROTEL_AGENT",
        "target/ci-tools/venv",
        "It names the rotel-agent binary of PyPI's `rotel` (pip install --pre rotel; the binary is in the package folder)",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rotel = Rotel::start(&agent, dir.path()).await;
    let runs = runs();
    let ids: Vec<String> = runs.iter().map(FakeRun::id).collect();
    let api = FakeApi::start(runs.clone()).await;

    for (mode, protocol) in [
        ("export", "grpc"),
        ("export", "http/protobuf"),
        ("run", "grpc"),
        ("run", "http/protobuf"),
    ] {
        let scenario = format!("{mode}-{}", protocol.replace('/', "-"));
        let endpoint = match protocol {
            "grpc" => format!("http://127.0.0.1:{}", rotel.grpc),
            _ => format!("http://127.0.0.1:{}", rotel.http),
        };
        let expected = expected_spans(&runs, &scenario);
        let log = dir.path().join(format!("{scenario}.log"));
        match mode {
            "export" => {
                let config = write_config(dir.path(), &api, &endpoint, protocol, &scenario, &[]);
                let mut args = vec!["export"];
                args.extend(ids.iter().map(String::as_str));
                let status = tokio::time::timeout(Duration::from_secs(60), bridge(&args, &config, &log).status())
                    .await
                    .expect("export finishes within a minute")
                    .unwrap();
                let stderr = std::fs::read_to_string(&log).unwrap();
                assert!(status.success(), "{scenario}: {status}\n{stderr}");
                rotel.wait_for(&scenario, expected.len(), Duration::from_secs(30)).await;
            }
            _ => {
                let config = write_config(dir.path(), &api, &endpoint, protocol, &scenario, &ids);
                let mut child = bridge(&["run"], &config, &log).spawn().unwrap();
                rotel.wait_for(&scenario, expected.len(), Duration::from_secs(60)).await;
                // Let a late duplicate show up if there were one, then stop the daemon.
                tokio::time::sleep(Duration::from_millis(800)).await;
                assert!(child.try_wait().unwrap().is_none(), "the daemon exited on its own");
                let status = terminate(&mut child, Duration::from_secs(15))
                    .await
                    .expect("the daemon stops on SIGTERM");
                let stderr = std::fs::read_to_string(&log).unwrap();
                assert_eq!(status.code(), Some(0), "{scenario}: {stderr}");
            }
        }
        // Rotel flushes a batch every 200 ms: anything sent twice would be logged by now.
        tokio::time::sleep(Duration::from_millis(600)).await;
        compare(&scenario, &rotel.spans_of(&scenario), &expected);
    }

    let all = rotel.spans();
    api.stop().await;
    let output = rotel.stop().await;
    assert_eq!(
        all.len(),
        4 * expected_spans(&runs, "x").len(),
        "Rotel logged spans outside the four scenarios:\n{output}"
    );
}
