//! The `trigger-otel-bridge` binary: parse the command line, call the library, map the
//! outcome to an exit code (0 success, 1 runtime failure, 2 bad usage or configuration).

use clap::{Parser, Subcommand, ValueEnum};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use trigger_otel_bridge::commands::check_config::check_config;
use trigger_otel_bridge::commands::convert::{convert_body, read_input, ConvertOptions};
use trigger_otel_bridge::commands::export::{run_export, BackfillOptions};
use trigger_otel_bridge::commands::inspect::{inspect, InspectOptions};
use trigger_otel_bridge::commands::waterfall::stdout_wants_color;
use trigger_otel_bridge::commands::ExitStatus;
use trigger_otel_bridge::config::{load, resolve_path, BridgeConfig};
use trigger_otel_bridge::config::{process_env, LogConfig, LogsMode, Protocol};
use trigger_otel_bridge::daemon::{self, stats::DaemonStats, DaemonOptions};
use trigger_otel_bridge::telemetry::logging::LevelControl;

#[derive(Debug, Parser)]
#[command(
    name = "trigger-otel-bridge",
    version,
    about = "Trigger.dev runs as OpenTelemetry traces"
)]
struct Cli {
    /// With no subcommand: `run`.
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file, for `run` when no subcommand is given, or for the subcommand that follows
    /// (`--config PATH run` is `run --config PATH`).
    #[arg(long, value_name = "PATH", global = false)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The daemon: watch runs, export each finished span once, survive restarts.
    Run {
        /// Config file; default: $TRIGGER_OTEL_BRIDGE_CONFIG, ./bridge.toml, config/bridge.toml.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Offline: a Trigger.dev events body (JSON) → one OTLP/JSON ExportTraceServiceRequest on stdout.
    Convert {
        /// The events body: `{"events": [...]}` or a bare array; `-` or nothing reads stdin.
        file: Option<PathBuf>,
        /// The run's trace id (32 hex); derived from the run id when absent.
        #[arg(long, value_name = "HEX")]
        trace_id: Option<String>,
        /// The run id; else the first `runId` in the input.
        #[arg(long, value_name = "ID")]
        run_id: Option<String>,
        /// What log records become.
        #[arg(long, value_enum, default_value_t = LogsArg::SpanEvents)]
        logs: LogsArg,
        /// `service.name` of the resource.
        #[arg(long, value_name = "NAME")]
        service_name: Option<String>,
    },
    /// One-shot backfill: export the named runs and/or the runs the filters find.
    Export {
        /// Config file; default: $TRIGGER_OTEL_BRIDGE_CONFIG, ./bridge.toml, config/bridge.toml.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Runs to export (run_…).
        #[arg(value_name = "RUN_ID")]
        run_ids: Vec<String>,
        /// Runs of this task (repeatable).
        #[arg(long = "task", value_name = "TASK")]
        tasks: Vec<String>,
        /// Runs with this tag (repeatable).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Runs in this status (repeatable), e.g. COMPLETED, FAILED.
        #[arg(long = "status", value_name = "STATUS")]
        statuses: Vec<String>,
        /// Runs created within this long before now, e.g. 2h, 7d.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
    },
    /// Fetch one run and print it as a waterfall (or, with --json, as OTLP/JSON); nothing is exported.
    Inspect {
        /// The run (run_…).
        #[arg(value_name = "RUN_ID")]
        run_id: String,
        /// Config file; default: $TRIGGER_OTEL_BRIDGE_CONFIG, ./bridge.toml, config/bridge.toml.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Print the OTLP/JSON ExportTraceServiceRequest instead of the waterfall.
        #[arg(long)]
        json: bool,
    },
    /// A self-contained tour: sample runs on an embedded fake Trigger.dev, watched by the real daemon.
    Demo {
        /// Export to this OTLP collector (e.g. http://localhost:4317) instead of printing waterfalls.
        #[arg(long, value_name = "URL")]
        otlp_endpoint: Option<String>,
        /// The collector's protocol: grpc, http/protobuf or http/json.
        #[arg(long, value_name = "P", default_value = "grpc")]
        protocol: Protocol,
        /// How many times faster than written the sample runs progress (tests).
        #[arg(long, hide = true, env = trigger_otel_bridge::commands::demo::SPEED_VAR, default_value_t = 1.0)]
        speed: f64,
    },
    /// Validate the configuration and print it, secrets redacted.
    CheckConfig {
        /// Config file; default: $TRIGGER_OTEL_BRIDGE_CONFIG, ./bridge.toml, config/bridge.toml.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
enum LogsArg {
    SpanEvents,
    Spans,
    Drop,
    OtlpLogs,
}

impl From<LogsArg> for LogsMode {
    fn from(arg: LogsArg) -> Self {
        match arg {
            LogsArg::SpanEvents => LogsMode::SpanEvents,
            LogsArg::Spans => LogsMode::Spans,
            LogsArg::Drop => LogsMode::Drop,
            LogsArg::OtlpLogs => LogsMode::OtlpLogs,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run { config: None });
    // A `--config` before the subcommand counts as the subcommand's own (which wins if both are
    // given); one before a subcommand that reads no config is refused, not silently ignored.
    let top_config = cli.config;
    let config = |own: Option<PathBuf>| own.or(top_config.clone());
    if top_config.is_some() && matches!(command, Command::Convert { .. } | Command::Demo { .. }) {
        let status = fail("--config is not used by `convert` or `demo`", true);
        return ExitCode::from(status as u8);
    }
    let status = match command {
        Command::Run { config: own } => run_daemon(config(own)),
        Command::Convert {
            file,
            trace_id,
            run_id,
            logs,
            service_name,
        } => {
            let options = ConvertOptions {
                input: file,
                trace_id,
                run_id,
                logs: logs.into(),
                service_name,
            };
            let result = read_input(&options, &mut std::io::stdin().lock())
                .and_then(|body| convert_body(&options, &body, &mut std::io::stdout().lock(), &mut std::io::stderr()));
            match result {
                Ok(_) => ExitStatus::Success,
                Err(error) => {
                    eprintln!("error: {error}");
                    error.exit_status()
                }
            }
        }
        Command::Export {
            config: own,
            run_ids,
            tasks,
            tags,
            statuses,
            since,
        } => export(
            config(own),
            BackfillOptions {
                run_ids,
                tasks,
                tags,
                statuses,
                since,
            },
        ),
        Command::Inspect {
            run_id,
            config: own,
            json,
        } => inspect_run(config(own), run_id, json),
        Command::Demo {
            otlp_endpoint,
            protocol,
            speed,
        } => demo(otlp_endpoint, protocol, speed),
        Command::CheckConfig { config: own } => {
            match check_config(config(own), &process_env(), &mut std::io::stdout().lock()) {
                Ok(()) => ExitStatus::Success,
                Err(error) => fail(error, true),
            }
        }
    };
    ExitCode::from(status as u8)
}

/// What every command that reads the configuration starts with.
struct Prepared {
    env: HashMap<String, String>,
    config: BridgeConfig,
    /// The file the configuration came from, if any (watched by `run` for reloads).
    path: Option<PathBuf>,
    /// Changes the log level on reload; `None` when `RUST_LOG` fixes it.
    log_level: Option<LevelControl>,
    runtime: tokio::runtime::Runtime,
}

/// The environment, the configuration (a bad one is reported and is exit code 2), logging as
/// configured, and a runtime from `builder`.
fn prepare(flag: Option<PathBuf>, builder: tokio::runtime::Builder) -> Result<Prepared, ExitStatus> {
    let env = process_env();
    let path = resolve_path(flag, &env);
    let config = load(path.as_deref(), &env).map_err(|error| fail(error, true))?;
    let log_level = trigger_otel_bridge::telemetry::logging::init(&config.log);
    Ok(Prepared {
        env,
        config,
        path,
        log_level,
        runtime: runtime(builder)?,
    })
}

fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, ExitStatus> {
    builder
        .enable_all()
        .build()
        .map_err(|error| fail(format!("cannot start the async runtime: {error}"), false))
}

/// Report `error` on stderr; its exit code is 2 when it is about usage or configuration, else 1.
fn fail(error: impl std::fmt::Display, usage: bool) -> ExitStatus {
    eprintln!("error: {error}");
    if usage {
        ExitStatus::Usage
    } else {
        ExitStatus::Failure
    }
}

fn export(config_flag: Option<PathBuf>, options: BackfillOptions) -> ExitStatus {
    let prepared = match prepare(config_flag, tokio::runtime::Builder::new_multi_thread()) {
        Ok(prepared) => prepared,
        Err(status) => return status,
    };
    let Prepared {
        runtime, config, env, ..
    } = prepared;
    match runtime.block_on(run_export(&config, &options, &env)) {
        Ok(summary) => {
            eprint!("{summary}");
            if summary.failed().next().is_some() {
                ExitStatus::Failure
            } else {
                ExitStatus::Success
            }
        }
        Err(error) => {
            let usage = error.is_usage();
            fail(error, usage)
        }
    }
}

fn inspect_run(config_flag: Option<PathBuf>, run_id: String, json: bool) -> ExitStatus {
    let Prepared { runtime, config, .. } = match prepare(config_flag, tokio::runtime::Builder::new_current_thread()) {
        Ok(prepared) => prepared,
        Err(status) => return status,
    };
    let options = InspectOptions {
        run_id,
        json,
        color: stdout_wants_color(),
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    match runtime.block_on(inspect(&config, &options, &mut out, &mut err)) {
        Ok(()) => ExitStatus::Success,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_status()
        }
    }
}

fn demo(otlp_endpoint: Option<String>, protocol: Protocol, speed: f64) -> ExitStatus {
    trigger_otel_bridge::commands::demo::exclude_loopback_from_proxies();
    // The demo tells its own story on stdout; the daemon's logs only when something is wrong.
    trigger_otel_bridge::telemetry::logging::init(&LogConfig {
        level: "warn".to_owned(),
        ..LogConfig::default()
    });
    let runtime = match runtime(tokio::runtime::Builder::new_multi_thread()) {
        Ok(runtime) => runtime,
        Err(status) => return status,
    };
    let options = trigger_otel_bridge::commands::demo::DemoOptions {
        otlp_endpoint,
        protocol,
        speed,
        color: stdout_wants_color(),
    };
    let mut out = std::io::stdout();
    match runtime.block_on(trigger_otel_bridge::commands::demo::run(options, &mut out)) {
        Ok(summary) if summary.is_complete() => ExitStatus::Success,
        Ok(_) => ExitStatus::Failure,
        Err(error) => {
            let usage = error.is_usage();
            fail(error, usage)
        }
    }
}

/// The daemon: load the config, set up logging, run until SIGTERM/SIGINT (a second one exits at
/// once), map the outcome to an exit code.
fn run_daemon(config_flag: Option<PathBuf>) -> ExitStatus {
    let Prepared {
        env,
        config,
        path,
        log_level,
        runtime,
    } = match prepare(config_flag, tokio::runtime::Builder::new_multi_thread()) {
        Ok(prepared) => prepared,
        Err(status) => return status,
    };
    let stats = Arc::new(DaemonStats::default());
    let result = runtime.block_on(async move {
        // Registered before anything else, so no signal meets the default action (death).
        let mut signals = match Signals::register() {
            Ok(signals) => signals,
            Err(error) => return Ok(Err(fail(format!("cannot install signal handlers: {error}"), false))),
        };
        let (hup_tx, hup_rx) = tokio::sync::watch::channel(0u64);
        let options = DaemonOptions {
            env,
            config_path: path,
            sighup: Some(hup_rx),
            log_level,
            ..DaemonOptions::default()
        };
        let shutdown = async move {
            signals.stop_requested(&hup_tx).await;
            // A second signal while shutting down: stop at once.
            tokio::spawn(async move {
                signals.stop_requested(&hup_tx).await;
                eprintln!("second signal: exiting now");
                std::process::exit(130);
            });
        };
        daemon::run(config, options, stats, shutdown).await.map(Ok)
    });
    match result {
        Ok(Ok(())) => ExitStatus::Success,
        Ok(Err(status)) => status,
        Err(error) => {
            let usage = error.is_config();
            fail(error, usage)
        }
    }
}

/// SIGTERM and SIGINT stop the daemon; SIGHUP reloads its configuration.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Wait for SIGTERM or SIGINT, forwarding every SIGHUP meanwhile as a reload request.
    async fn stop_requested(&mut self, reload: &tokio::sync::watch::Sender<u64>) {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return,
                _ = self.interrupt.recv() => return,
                _ = self.hangup.recv() => {
                    reload.send_modify(|count| *count += 1);
                }
            }
        }
    }
}
