//! The `trigger-otel-bridge` binary: parse the command line (`cli.rs`), call the library
//! (`commands::entry`), and turn the outcome into the exit code (`CommandError::exit_status`).

mod cli;

use clap::Parser;
use cli::{Cli, Command, StateAction};
use std::process::ExitCode;
use trigger_otel_bridge::commands::convert::ConvertOptions;
use trigger_otel_bridge::commands::entry;
use trigger_otel_bridge::commands::export::BackfillOptions;
use trigger_otel_bridge::commands::state::ListOptions as StateListOptions;
use trigger_otel_bridge::commands::{CommandError, ExitStatus};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let result = Cli::parse()
        .into_command()
        .map_err(CommandError::Usage)
        .and_then(execute);
    let status = match result {
        Ok(()) => ExitStatus::Success,
        Err(error) => {
            if error.needs_report() {
                eprintln!("error: {error}");
            }
            error.exit_status()
        }
    };
    ExitCode::from(status as u8)
}

fn execute(command: Command) -> Result<(), CommandError> {
    match command {
        Command::Run { config } => entry::run_daemon(config),
        Command::Convert {
            file,
            trace_id,
            run_id,
            logs,
            service_name,
        } => entry::convert(ConvertOptions {
            input: file,
            trace_id,
            run_id,
            logs,
            service_name,
        }),
        Command::Export {
            config,
            run_ids,
            tasks,
            tags,
            statuses,
            since,
        } => entry::export(
            config,
            BackfillOptions {
                run_ids,
                tasks,
                tags,
                statuses,
                since,
            },
        ),
        Command::Inspect { run_id, config, json } => entry::inspect_run(config, run_id, json),
        Command::Demo {
            otlp_endpoint,
            protocol,
            speed,
        } => entry::demo(otlp_endpoint, protocol, speed),
        Command::CheckConfig { config, for_command } => entry::check(config, for_command),
        Command::State { action } => match action {
            StateAction::List {
                config,
                retired,
                reason,
            } => entry::state_list(
                config,
                StateListOptions {
                    retired_only: retired,
                    reason,
                },
            ),
            StateAction::Reopen {
                run_ids,
                config,
                resend,
            } => entry::state_reopen(config, &run_ids, resend),
        },
    }
}
