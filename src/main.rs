//! The `trigger-otel-bridge` binary: parse the command line, call the library, map the
//! outcome to an exit code (0 success, 1 runtime failure, 2 bad usage or configuration).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use trigger_otel_bridge::commands::check_config::check_config;
use trigger_otel_bridge::commands::convert::{convert_body, read_input, ConvertOptions};
use trigger_otel_bridge::commands::export::{run_export, BackfillOptions};
use trigger_otel_bridge::commands::ExitStatus;
use trigger_otel_bridge::config::{load, resolve_path};
use trigger_otel_bridge::config::{process_env, LogsMode};
use trigger_otel_bridge::daemon::{self, stats::DaemonStats, DaemonOptions};

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
    /// Config file for `run` when no subcommand is given.
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
    let command = cli.command.unwrap_or(Command::Run { config: cli.config });
    let status = match command {
        Command::Run { config } => run_daemon(config),
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
            config,
            run_ids,
            tasks,
            tags,
            statuses,
            since,
        } => export(
            config,
            BackfillOptions {
                run_ids,
                tasks,
                tags,
                statuses,
                since,
            },
        ),
        Command::CheckConfig { config } => match check_config(config, &process_env(), &mut std::io::stdout().lock()) {
            Ok(()) => ExitStatus::Success,
            Err(error) => {
                eprintln!("error: {error}");
                ExitStatus::Usage
            }
        },
    };
    ExitCode::from(status as u8)
}

fn export(config_flag: Option<PathBuf>, options: BackfillOptions) -> ExitStatus {
    let env = process_env();
    let config = match load(resolve_path(config_flag, &env).as_deref(), &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitStatus::Usage;
        }
    };
    trigger_otel_bridge::logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitStatus::Failure;
        }
    };
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
            eprintln!("error: {error}");
            if error.is_usage() {
                ExitStatus::Usage
            } else {
                ExitStatus::Failure
            }
        }
    }
}

/// The daemon: load the config, set up logging, run until SIGTERM/SIGINT (a second one exits at
/// once), map the outcome to an exit code.
fn run_daemon(config_flag: Option<PathBuf>) -> ExitStatus {
    let env = process_env();
    let config = match load(resolve_path(config_flag, &env).as_deref(), &env) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitStatus::Usage;
        }
    };
    trigger_otel_bridge::logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitStatus::Failure;
        }
    };
    let options = DaemonOptions {
        env,
        ..DaemonOptions::default()
    };
    let stats = Arc::new(DaemonStats::default());
    let result = runtime.block_on(async move {
        let shutdown = async {
            first_signal().await;
            // A second signal while shutting down: stop at once.
            tokio::spawn(async {
                first_signal().await;
                eprintln!("second signal: exiting now");
                std::process::exit(130);
            });
        };
        daemon::run(config, options, stats, shutdown).await
    });
    match result {
        Ok(()) => ExitStatus::Success,
        Err(error) => {
            eprintln!("error: {error}");
            if error.is_config() {
                ExitStatus::Usage
            } else {
                ExitStatus::Failure
            }
        }
    }
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn first_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
