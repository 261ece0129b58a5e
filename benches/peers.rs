//! The bridge against the SDK peers (`../shared/peers/`, issue 12's CPU target): `export` of three
//! 25,000-event runs (~9 MB body each) to one OTLP/HTTP receiver, protobuf without compression
//! (the peers send none), one run at a time, beside the scripts a Trigger.dev user would write on
//! the official OpenTelemetry SDKs for Node.js and Python — the same fake API (the test kit's,
//! serving the pre-serialised bodies, with the run endpoint and a trace endpoint that gives the
//! trace id and no spans) and the same counting receiver, in one sitting.
//!
//! Each command runs under `/usr/bin/time`: CPU is its user + system seconds, memory its peak
//! RSS. Every command must deliver every span (the receiver counts distinct span ids).
//!
//! `cargo bench --bench peers`; the peers take part when `PEER_PYTHON` and `PEER_NODE_MODULES`
//! are set (the two lines `../shared/peers/setup.sh` prints), else only the bridge is measured
//! and the summary says so. `PEERS_REPEAT=N` (default 3) repeats each command; the median is
//! reported. `PEERS_DIR` overrides where the peer scripts are (default `../shared/peers`).
//! `PEERS_BASELINE=/path/to/trigger-otel-bridge` adds another build of the bridge (an earlier
//! commit's), measured the same way in the same sitting: before and after a change.

#[path = "support/realistic.rs"]
mod realistic;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::fake_api::{FakeApi, SECRET_KEY};
use support::otlp_receiver::Receiver;
use support::{daemon, generate, process};
use trigger_otel_bridge::config::{Compression, Protocol};

const RUNS: usize = 3;
const EVENTS: usize = 25_000;

#[derive(Debug, Clone, Copy)]
struct Cost {
    cpu_s: f64,
    peak_rss_kib: u64,
    spans: u64,
}

/// Run `command` under `/usr/bin/time` to its end; its CPU seconds and peak RSS.
fn timed(name: &str, dir: &Path, command: Command) -> (f64, u64) {
    let report = dir.join(format!("{name}.time"));
    let log = dir.join(format!("{name}.log"));
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(ToOwned::to_owned).collect();
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "%U %S %M", "-o"])
        .arg(&report)
        .arg(program)
        .args(args)
        .envs(
            command
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
        .stderr(std::fs::File::create(&log).unwrap());
    if let Some(cwd) = command.get_current_dir() {
        wrapped.current_dir(cwd);
    }
    let status = wrapped.status().expect("/usr/bin/time runs");
    assert!(
        status.success(),
        "{name} failed ({status}): {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&report).unwrap();
    let fields: Vec<&str> = text.lines().last().unwrap_or_default().split_whitespace().collect();
    let number = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .expect("time's report")
    };
    (number(0) + number(1), number(2) as u64)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

type Build = Box<dyn Fn(&str, &str, &[String], &Path) -> Command>;

struct Contender {
    name: &'static str,
    command: Build,
}

/// `BINARY export RUN…` to the receiver over OTLP/HTTP protobuf, uncompressed, one run at a time.
fn bridge_export(binary: PathBuf) -> Build {
    Box::new(move |api, receiver, ids, dir| {
        let mut config = daemon::wired(api, receiver, &dir.join("state.db"), &[] as &[&str]);
        config.export.protocol = Protocol::HttpProtobuf;
        config.export.compression = Compression::None;
        config.runs.concurrency = 1;
        config.log.level = "warn".to_owned();
        let path = process::write_config(dir, "bridge.toml", &config);
        let mut command = process::command(&["export", "--config"]);
        command.arg(path).args(ids).env("TRIGGER_SECRET_KEY", SECRET_KEY);
        let mut command_of_binary = Command::new(&binary);
        command_of_binary
            .env_clear()
            .args(command.get_args())
            .envs(command.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
        command_of_binary
    })
}

fn peer(
    program: PathBuf,
    script: PathBuf,
    subcommand: Option<&'static str>,
    env: Option<(&'static str, String)>,
) -> Build {
    Box::new(move |api, receiver, ids, _| {
        let mut command = Command::new(&program);
        command.arg(&script).args(subcommand);
        command
            .args([
                "--api",
                api,
                "--key",
                SECRET_KEY,
                "--endpoint",
                &format!("{receiver}/v1/traces"),
            ])
            .args(ids)
            .envs(env.clone());
        command
    })
}

fn contenders() -> (Vec<Contender>, Option<String>) {
    let mut all = vec![Contender {
        name: "bridge export",
        command: bridge_export(PathBuf::from(process::BINARY)),
    }];
    if let Ok(baseline) = std::env::var("PEERS_BASELINE") {
        all.push(Contender {
            name: "baseline export",
            command: bridge_export(PathBuf::from(baseline)),
        });
    }
    let (Ok(python), Ok(modules)) = (std::env::var("PEER_PYTHON"), std::env::var("PEER_NODE_MODULES")) else {
        return (
            all,
            Some("PEER_PYTHON / PEER_NODE_MODULES unset: the peers were not run".to_owned()),
        );
    };
    let peers = std::env::var("PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers"));
    all.push(Contender {
        name: "peer_node.mjs",
        command: peer(
            PathBuf::from("node"),
            peers.join("peer_node.mjs"),
            None,
            Some(("PEER_NODE_MODULES", modules)),
        ),
    });
    all.push(Contender {
        name: "peer_python.py",
        command: peer(
            PathBuf::from(python),
            peers.join("peer_python.py"),
            Some("bridge"),
            None,
        ),
    });
    (all, None)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let repeat: usize = std::env::var("PEERS_REPEAT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let api = FakeApi::start([]).await;
    let mut ids = Vec::new();
    let mut body_bytes = 0;
    for i in 0..RUNS {
        let id = format!("run_peers_{i:02}");
        let events = realistic::run_events(&id, EVENTS, 11 + i as u64);
        body_bytes += serde_json::to_vec(&events).unwrap().len();
        let mut run = generate::fake_run_of(&id, "process-order", events, false);
        // The peers read the trace id from the trace endpoint (and nothing else of it): a trace
        // without spans, so the bridge's enrichment reads the same few bytes and adds nothing.
        run.trace =
            Some(serde_json::json!({"trace": {"traceId": format!("{:032x}", 0xa4c1_0000 + i), "rootSpan": null}}));
        api.add(run);
        ids.push(id);
    }
    println!(
        "{RUNS} runs × {EVENTS} events, {:.1} MB of events bodies; OTLP/HTTP protobuf, no compression, one run at a time",
        body_bytes as f64 / 1e6
    );
    let (contenders, note) = contenders();
    let mut results: Vec<(&str, Vec<Cost>)> = Vec::new();
    for contender in &contenders {
        let mut costs = Vec::new();
        for repetition in 0..repeat {
            let receiver = Receiver::counting().await;
            let dir = process::work_dir(&format!(
                "peers-{}-{repetition}",
                contender.name.replace([' ', '.'], "_")
            ));
            let command = (contender.command)(&api.url(), &receiver.http_endpoint(), &ids, &dir);
            let name = contender.name.to_owned();
            let run_dir = dir.clone();
            let (cpu_s, peak_rss_kib) = tokio::task::spawn_blocking(move || timed(&name, &run_dir, command))
                .await
                .unwrap();
            // The receiver may still be taking the last request in.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let spans = receiver.recorder.distinct_spans() as u64;
            receiver.stop().await;
            println!(
                "  {:<15} #{repetition}: {cpu_s:.2} CPU s, peak RSS {:.1} MiB, {spans} spans",
                contender.name,
                process::mib(peak_rss_kib)
            );
            costs.push(Cost {
                cpu_s,
                peak_rss_kib,
                spans,
            });
        }
        results.push((contender.name, costs));
    }
    let bridge_spans = results[0].1[0].spans;
    let bridge_cpu = median(results[0].1.iter().map(|c| c.cpu_s).collect());
    println!("\nsummary (median of {repeat}):");
    for (name, costs) in &results {
        let cpu = median(costs.iter().map(|c| c.cpu_s).collect());
        let rss = median(costs.iter().map(|c| c.peak_rss_kib as f64).collect());
        let all_delivered = costs.iter().all(|c| c.spans == bridge_spans);
        println!(
            "  {name:<15} {cpu:>6.2} CPU s ({:>5.0} ms per run)  peak RSS {:>6.1} MiB  {}  {}",
            cpu * 1000.0 / RUNS as f64,
            rss / 1024.0,
            if *name == results[0].0 {
                "1.0×".to_owned()
            } else {
                format!("{:.1}× the bridge's CPU", cpu / bridge_cpu)
            },
            if all_delivered {
                ""
            } else {
                "(span counts differ from the bridge's)"
            }
        );
    }
    if let Some(note) = note {
        println!("  ({note})");
    }
    api.stop().await;
}
