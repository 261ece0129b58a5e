//! `demo`: the bridge end to end in about 20 seconds, with no Trigger.dev account and no network
//! beyond loopback.
//!
//! An embedded fake Trigger.dev API (`server.rs`) serves bundled sample runs (`samples.json`,
//! `samples.rs`) that progress by the wall clock: a run whose first attempt fails and whose second
//! succeeds, a parent run and the child it triggered with `triggerAndWait` (one trace), a run
//! cancelled midway, and logs at every level. The real daemon (`daemon::run`, the code path of
//! `run`) watches them with a temporary state file and short poll intervals.
//!
//! With `--otlp-endpoint` the spans go to that collector. Without one they go over OTLP/HTTP to
//! the embedded server's own `/v1/traces`, and each trace is printed as a waterfall as soon as
//! the daemon retires its last run (the daemon reports retirements through
//! `DaemonOptions::retired`). The demo ends by itself once every run is retired, with a summary.

pub mod samples;
pub mod server;

use crate::commands::waterfall::{render, RenderOptions, SpanView, Tally};
use crate::commit::unix_now_ns;
use crate::config::secret::SecretString;
use crate::config::{BridgeConfig, Compression, Protocol};
use crate::daemon::{self, stats::DaemonStats, DaemonError, DaemonOptions, RetiredRun};
use crate::wording::plural;
use samples::{Expected, Timeline};
use server::DemoServer;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Environment variable: how many times faster than written the samples run (tests use 10).
pub const SPEED_VAR: &str = "TRIGGER_OTEL_BRIDGE_DEMO_SPEED";

/// The fake API's secret key (the embedded server does not check it).
const DEMO_SECRET_KEY: &str = "tr_dev_demo0000000000000000";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Export there instead of printing waterfalls.
    pub otlp_endpoint: Option<String>,
    /// The protocol for `otlp_endpoint`.
    pub protocol: Protocol,
    /// Timeline speed-up (1 = about 20 s).
    pub speed: f64,
    /// ANSI colours in the waterfalls.
    pub color: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            otlp_endpoint: None,
            protocol: Protocol::Grpc,
            speed: 1.0,
            color: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo's speed must be between 0.01 and 1000, not {0:?}")]
    Speed(f64),
    #[error("--protocol {0} cannot be used by the demo; use grpc, http/protobuf or http/json")]
    Protocol(Protocol),
    #[error("cannot start the demo: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// How the demo went.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSummary {
    /// Runs retired by the daemon, of `expected.runs`.
    pub runs: usize,
    /// Spans exported, logs and errors among them.
    pub spans: u64,
    pub logs: usize,
    pub errors: usize,
    /// What the samples hold.
    pub expected: Expected,
    pub elapsed: Duration,
    /// Where the spans went.
    pub destination: String,
}

impl DemoSummary {
    /// Every run retired with every span.
    pub fn is_complete(&self) -> bool {
        self.runs == self.expected.runs && self.spans == self.expected.spans as u64
    }
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "demo finished in {:.1}s: {}, {}, {}, {} exported to {}",
            self.elapsed.as_secs_f64(),
            plural(self.runs as u64, "run"),
            plural(self.spans, "span"),
            plural(self.logs as u64, "log"),
            plural(self.errors as u64, "error"),
            self.destination
        )?;
        if !self.is_complete() {
            write!(
                f,
                " (incomplete: expected {} and {})",
                plural(self.expected.runs as u64, "run"),
                plural(self.expected.spans as u64, "span")
            )?;
        }
        Ok(())
    }
}

/// Keep loopback away from proxies: reqwest sends every host not in `NO_PROXY` through
/// `HTTP(S)_PROXY`/`ALL_PROXY`, 127.0.0.1 included, and the demo talks only to itself. Sets a
/// process environment variable, so call it before any other thread starts.
pub fn exclude_loopback_from_proxies() {
    let current = std::env::var("NO_PROXY")
        .or_else(|_| std::env::var("no_proxy"))
        .unwrap_or_default();
    if current.split(',').any(|host| host.trim() == "127.0.0.1") {
        return;
    }
    let value = if current.trim().is_empty() {
        "127.0.0.1,localhost".to_owned()
    } else {
        format!("{current},127.0.0.1,localhost")
    };
    std::env::set_var("NO_PROXY", value);
}

/// "1 span is" / "3 spans are".
fn spans_are(count: u64) -> String {
    match count {
        1 => "1 span is".to_owned(),
        _ => format!("{count} spans are"),
    }
}

/// What becomes of the spans not delivered when the demo stops short. Not what `run` does (its
/// state file keeps the acknowledged span ids, so a restart sends only what was not
/// acknowledged): the demo's state file is temporary and its sample runs are new each time, so
/// nothing of this demo is ever sent again.
const UNDELIVERED_NOTE: &str = "The spans not delivered are not sent later: the demo's state file is temporary. \
     Start the collector and run the demo again. (`run` keeps the acknowledged span ids in its state file: \
     after a restart it sends only what was not acknowledged.)";

fn scaled(duration: Duration, speed: f64, floor: Duration) -> Duration {
    duration.div_f64(speed).max(floor)
}

/// The daemon's configuration for the demo: the embedded API, the sample runs, fast polling,
/// a temporary state file, and the collector (or the embedded receiver).
fn demo_config(options: &DemoOptions, timeline: &Timeline, api_url: &str, state: &std::path::Path) -> BridgeConfig {
    let speed = timeline.speed();
    let mut config = BridgeConfig::default();
    config.trigger.api_url = api_url.to_owned();
    config.trigger.secret_key = SecretString::new(DEMO_SECRET_KEY);
    config.trigger.requests_per_minute = 60_000;
    config.trigger.timeout = Duration::from_secs(5);
    config.runs.ids = timeline.runs.iter().map(|r| r.id.clone()).collect();
    config.runs.poll_interval = scaled(Duration::from_millis(500), speed, Duration::from_millis(20));
    // No back-off: a run with a span left running (the cancelled one) has its status checked
    // every 10th poll only, so polls must stay frequent for it to settle within the demo.
    config.runs.max_poll_interval = config.runs.poll_interval;
    config.runs.settle = scaled(Duration::from_secs(2), speed, config.runs.poll_interval * 2);
    config.runs.concurrency = 8;
    config.discovery.enabled = false;
    match &options.otlp_endpoint {
        Some(endpoint) => {
            config.export.endpoint = endpoint.clone();
            config.export.protocol = options.protocol;
        }
        None => {
            config.export.endpoint = api_url.to_owned();
            config.export.protocol = Protocol::HttpProtobuf;
            config.export.compression = Compression::None;
        }
    }
    config.state.path = state.join("demo-state.db");
    // No metrics server: the demo must not take a port a real bridge may be using.
    config.server.listen = None;
    config
}

/// Run the demo, writing its story to `out`.
pub async fn run(options: DemoOptions, out: &mut (dyn Write + Send)) -> Result<DemoSummary, DemoError> {
    // Bounded: at extreme speeds the scaled intervals and deadlines overflow a Duration.
    if !(0.01..=1000.0).contains(&options.speed) {
        return Err(DemoError::Speed(options.speed));
    }
    if options.otlp_endpoint.is_some() && options.protocol == Protocol::Stdout {
        return Err(DemoError::Protocol(options.protocol));
    }
    let started = Instant::now();
    let seed = unix_now_ns() ^ u64::from(std::process::id()).rotate_left(32);
    let timeline = Arc::new(Timeline::new(seed, unix_now_ns(), options.speed));
    let state_dir = tempfile::Builder::new().prefix("trigger-otel-bridge-demo-").tempdir()?;
    let server = DemoServer::start(timeline.clone()).await?;
    let received = server.received.clone();
    let config = demo_config(&options, &timeline, &server.url(), state_dir.path());
    let destination = match &options.otlp_endpoint {
        Some(endpoint) => format!("{endpoint} ({})", options.protocol),
        None => "the demo's in-process receiver".to_owned(),
    };
    let expected = timeline.expected();

    writeln!(
        out,
        "trigger-otel-bridge demo: a fake Trigger.dev API on {} serves {} sample runs for about {:.0}s;\n\
         the bridge's daemon polls them every {} (settling {} after each run ends) and exports to {}.\n",
        server.url(),
        expected.runs,
        timeline.last_end_ms() as f64 / 1000.0 / timeline.speed(),
        humantime::format_duration(config.runs.poll_interval),
        humantime::format_duration(config.runs.settle),
        destination,
    )?;

    let (retired_tx, mut retired_rx) = mpsc::unbounded_channel::<RetiredRun>();
    let daemon_options = DaemonOptions {
        shutdown_deadline: Duration::from_secs(5),
        retired: Some(retired_tx),
        ..DaemonOptions::default()
    };
    let stats = Arc::new(DaemonStats::default());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let mut daemon = tokio::spawn(daemon::run(config, daemon_options, stats.clone(), async {
        let _ = stop_rx.await;
    }));

    let traces = timeline.traces();
    let mut printed: HashSet<String> = HashSet::new();
    let mut retired: HashMap<String, &'static str> = HashMap::new();
    let mut milestones = timeline.milestones().into_iter().peekable();
    let to_instant = |at_ms: u64| started + Duration::from_secs_f64(at_ms as f64 / 1000.0 / timeline.speed());
    // Generous: the timeline, then a minute for a slow machine or a collector that is down.
    let deadline = to_instant(timeline.last_end_ms()) + Duration::from_secs(60);
    let mut daemon_result: Option<Result<(), DaemonError>> = None;
    // Spans waiting for the collector without progress for a while: say so, once.
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let (mut exported_before, mut stuck_since, mut warned) = (0u64, None::<Instant>, false);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);

    while retired.len() < timeline.runs.len() {
        let next = milestones.peek().map(|m| to_instant(m.at_ms));
        tokio::select! {
            Some(run) = retired_rx.recv() => {
                retired.insert(run.run_id.clone(), run.reason);
                for (trace_id, runs) in &traces {
                    if printed.contains(trace_id) || !runs.iter().all(|r| retired.contains_key(&r.id)) {
                        continue;
                    }
                    printed.insert(trace_id.clone());
                    let names: Vec<String> = runs
                        .iter()
                        .map(|r| {
                            let reason = retired.get(&r.id).copied().unwrap_or("settled");
                            let note = if reason == "settled" { String::new() } else { format!(", retired: {reason}") };
                            format!("{} ({}, {}{note})", r.task, r.id, r.status)
                        })
                        .collect();
                    let elapsed = started.elapsed().as_secs_f64();
                    if options.otlp_endpoint.is_some() {
                        writeln!(out, "{elapsed:6.1}s  exported trace {trace_id}: {}", names.join(" → "))?;
                        continue;
                    }
                    let views: Vec<SpanView> = received
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .map(SpanView::from_otlp)
                        .filter(|s| &s.trace_id == trace_id)
                        .collect();
                    let render_options = RenderOptions { color: options.color, ..RenderOptions::default() };
                    writeln!(out, "\n{elapsed:6.1}s  ━━ {} ━━", names.join(" → "))?;
                    writeln!(out, "{}", render(&views, &render_options))?;
                }
            }
            _ = tokio::time::sleep_until(next.unwrap_or(deadline)), if next.is_some() => {
                if let Some(milestone) = milestones.next() {
                    writeln!(out, "{:6.1}s  {}", started.elapsed().as_secs_f64(), milestone.text)?;
                }
            }
            _ = check.tick(), if !warned => {
                let exported = stats.spans_exported();
                if stats.pending() == 0 || exported != exported_before {
                    stuck_since = None;
                } else if stuck_since.get_or_insert_with(Instant::now).elapsed() >= Duration::from_secs(5) {
                    warned = true;
                    writeln!(
                        out,
                        "{:6.1}s  {} waiting for {destination}: is the collector running? \
                         (the bridge keeps retrying; the demo gives up at {:.0}s)",
                        started.elapsed().as_secs_f64(),
                        spans_are(stats.pending() as u64),
                        (deadline - started).as_secs_f64()
                    )?;
                }
                exported_before = exported;
            }
            _ = &mut interrupted => {
                writeln!(out, "\ninterrupted: stopping the daemon")?;
                break;
            }
            _ = tokio::time::sleep_until(deadline) => {
                writeln!(
                    out,
                    "\ntimed out: {} of {} retired. Is the collector at {destination} accepting spans?",
                    retired.len(),
                    plural(timeline.runs.len() as u64, "run")
                )?;
                break;
            }
            joined = &mut daemon => {
                daemon_result = Some(joined.unwrap_or_else(|e| Err(DaemonError::Task(e))));
                break;
            }
        }
    }

    let _ = stop_tx.send(());
    let result = match daemon_result {
        Some(result) => result,
        None => daemon.await.unwrap_or_else(|e| Err(DaemonError::Task(e))),
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), server.stop()).await;
    drop(state_dir);
    result?;

    let summary = match options.otlp_endpoint {
        // The embedded receiver saw the spans: count what arrived.
        None => {
            let received = received.lock().unwrap_or_else(|e| e.into_inner());
            let tally = Tally::of(&received.iter().map(SpanView::from_otlp).collect::<Vec<_>>());
            DemoSummary {
                runs: retired.len(),
                spans: received.len() as u64,
                logs: tally.logs,
                errors: tally.errors,
                expected,
                elapsed: started.elapsed(),
                destination,
            }
        }
        // A remote collector: what the samples hold, once everything was exported.
        Some(_) => {
            let spans = stats.spans_exported();
            let complete = retired.len() == expected.runs && spans == expected.spans as u64;
            DemoSummary {
                runs: retired.len(),
                spans,
                logs: if complete { expected.logs } else { 0 },
                errors: if complete { expected.errors } else { 0 },
                expected,
                elapsed: started.elapsed(),
                destination,
            }
        }
    };
    writeln!(out, "\n{summary}")?;
    if !summary.is_complete() {
        writeln!(out, "{UNDELIVERED_NOTE}")?;
    }
    if summary.is_complete() {
        let next = match &options.otlp_endpoint {
            Some(_) => "Find the traces in your tracing UI (with deploy/docker-compose.yml: Jaeger at http://localhost:16686, service \"trigger.dev\").",
            None => "Next: send them to a real tracing UI with `demo --otlp-endpoint http://localhost:4317` (see README: the compose stack).",
        };
        writeln!(out, "{next}")?;
    }
    out.flush()?;
    Ok(summary)
}
