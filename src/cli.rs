//! The command line: the clap schema of DESIGN.md's "Command line". Values with a fixed set of
//! spellings are the configuration's own types (`LogsMode`, `Protocol`), so the two never differ.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use trigger_otel_bridge::commands::check_config::CheckFor;
use trigger_otel_bridge::commands::demo::SPEED_VAR;
use trigger_otel_bridge::config::{LogsMode, Protocol};

#[derive(Debug, Parser)]
#[command(
    name = "trigger-otel-bridge",
    version,
    about = "Trigger.dev runs as OpenTelemetry traces"
)]
pub struct Cli {
    /// With no subcommand: `run`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Config file, for `run` when no subcommand is given, or for the subcommand that follows
    /// (`--config PATH run` is `run --config PATH`).
    #[arg(long, value_name = "PATH", global = false)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
        #[arg(long, value_enum, default_value_t = LogsMode::SpanEvents)]
        logs: LogsMode,
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
        since: Option<Duration>,
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
        /// The collector's protocol.
        #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
        protocol: Protocol,
        /// How many times faster than written the sample runs progress (tests).
        #[arg(long, hide = true, env = SPEED_VAR, default_value_t = 1.0)]
        speed: f64,
    },
    /// Validate the configuration and print it, secrets redacted (as comments). Every error is
    /// reported at once.
    CheckConfig {
        /// Config file; default: $TRIGGER_OTEL_BRIDGE_CONFIG, ./bridge.toml, config/bridge.toml.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Also refuse what this command would refuse at its start (no secret key, for one).
        #[arg(long = "for", value_name = "COMMAND", value_enum)]
        for_command: Option<CheckFor>,
    },
    /// The state file: list its runs, or watch retired runs again.
    State {
        #[command(subcommand)]
        action: StateAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Every run the state file knows: watched or retired (and why), its committed span ids.
    List {
        /// Config file (for `state.path`); default: $TRIGGER_OTEL_BRIDGE_CONFIG, ./bridge.toml,
        /// config/bridge.toml.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Only retired runs.
        #[arg(long)]
        retired: bool,
        /// Only runs retired for this reason: settled, max_age, not_found, removed.
        #[arg(long, value_name = "REASON")]
        reason: Option<String>,
    },
    /// Watch retired runs again (after a wrong api_url, or past runs.max_age), keeping their
    /// committed span ids so nothing acknowledged is sent twice; a running daemon picks them up on
    /// reload (SIGHUP) or restart.
    Reopen {
        /// The runs (run_…).
        #[arg(value_name = "RUN_ID", required = true)]
        run_ids: Vec<String>,
        /// Config file (for `state.path`); default: $TRIGGER_OTEL_BRIDGE_CONFIG, ./bridge.toml,
        /// config/bridge.toml.
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Reopen a run whose span ids were pruned (state.retention) although its spans will be
        /// exported a second time.
        #[arg(long)]
        resend: bool,
    },
}

impl StateAction {
    fn config_mut(&mut self) -> &mut Option<PathBuf> {
        match self {
            StateAction::List { config, .. } | StateAction::Reopen { config, .. } => config,
        }
    }
}

impl Cli {
    /// The command to run (`run` when none is named), with a `--config` given before it moved
    /// into it (the subcommand's own wins). One before a command that reads no configuration is
    /// refused, not silently ignored.
    pub fn into_command(self) -> Result<Command, String> {
        let command = self.command.unwrap_or(Command::Run { config: None });
        let Some(top) = self.config else { return Ok(command) };
        let own = match command {
            Command::Convert { .. } | Command::Demo { .. } => {
                return Err("--config is not used by `convert` or `demo`".to_owned())
            }
            Command::Run { ref config }
            | Command::Export { ref config, .. }
            | Command::Inspect { ref config, .. }
            | Command::CheckConfig { ref config, .. } => config.is_some(),
            Command::State { ref action } => match action {
                StateAction::List { config, .. } | StateAction::Reopen { config, .. } => config.is_some(),
            },
        };
        Ok(match own {
            true => command,
            false => command.with_config(top),
        })
    }
}

impl Command {
    fn with_config(mut self, path: PathBuf) -> Command {
        match &mut self {
            Command::Run { config }
            | Command::Export { config, .. }
            | Command::Inspect { config, .. }
            | Command::CheckConfig { config, .. } => *config = Some(path),
            Command::State { action } => *action.config_mut() = Some(path),
            Command::Convert { .. } | Command::Demo { .. } => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        let cli = Cli::try_parse_from(std::iter::once("trigger-otel-bridge").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.into_command()
    }

    #[test]
    fn the_schema_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn enums_take_the_configuration_spellings() {
        for mode in LogsMode::ALL {
            let Ok(Command::Convert { logs, .. }) = parse(&["convert", "--logs", mode.as_str()]) else {
                panic!("--logs {mode} refused");
            };
            assert_eq!(logs, *mode);
        }
        let Ok(Command::Demo { protocol, .. }) = parse(&["demo", "--protocol", "http/protobuf"]) else {
            panic!("--protocol http/protobuf refused");
        };
        assert_eq!(protocol, Protocol::HttpProtobuf);
        let error = parse(&["convert", "--logs", "spans_events"]).unwrap_err();
        assert!(error.contains("span_events"), "lists the valid values: {error}");
    }

    #[test]
    fn a_config_before_the_subcommand_is_the_subcommands() {
        let Ok(Command::Export { config, .. }) = parse(&["--config", "a.toml", "export", "run_1"]) else {
            panic!("not export");
        };
        assert_eq!(config, Some(PathBuf::from("a.toml")));
        let Ok(Command::Inspect { config, .. }) =
            parse(&["--config", "a.toml", "inspect", "run_1", "--config", "b.toml"])
        else {
            panic!("not inspect");
        };
        assert_eq!(config, Some(PathBuf::from("b.toml")), "the subcommand's own wins");
        assert!(matches!(parse(&[]), Ok(Command::Run { config: None })));
        let Ok(Command::State {
            action:
                StateAction::Reopen {
                    config,
                    run_ids,
                    resend,
                },
        }) = parse(&["--config", "a.toml", "state", "reopen", "run_1", "run_2"])
        else {
            panic!("not state reopen");
        };
        assert_eq!(
            (config, run_ids.len(), resend),
            (Some(PathBuf::from("a.toml")), 2, false)
        );
        assert!(parse(&["state", "reopen"]).is_err(), "a run is required");
        assert!(parse(&["--config", "a.toml", "demo"]).is_err());
    }

    #[test]
    fn check_config_for_takes_the_commands_that_need_a_key() {
        let Ok(Command::CheckConfig { for_command, .. }) = parse(&["check-config", "--for", "export"]) else {
            panic!("--for export refused");
        };
        assert_eq!(for_command, Some(CheckFor::Export));
        let error = parse(&["check-config", "--for", "convert"]).unwrap_err();
        assert!(
            error.contains("run, export, inspect"),
            "lists the valid values: {error}"
        );
    }
}
