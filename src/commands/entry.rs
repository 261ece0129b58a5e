//! The commands as the binary calls them: configuration loaded (with logging set up as it says),
//! a runtime started, the command run, its outcome a `Result<(), CommandError>`. The binary only
//! parses the command line and turns the error into its exit code.

use super::check_config::{check_config, CheckFor};
use super::convert::{convert_body, read_input, ConvertOptions};
use super::demo::DemoOptions;
use super::export::{run_export, BackfillOptions};
use super::inspect::{inspect, InspectOptions};
use super::state::ListOptions as StateListOptions;
use super::waterfall::stdout_wants_color;
use super::CommandError;
use crate::config::{load, process_env, resolve_path, BridgeConfig, LogConfig, Protocol};
use crate::daemon::{self, signals::Signals, stats::DaemonStats, DaemonOptions};
use crate::telemetry::logging::{self, LevelControl};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::runtime::{Builder, Runtime};

/// What every command that reads the configuration starts with.
struct Prepared {
    env: HashMap<String, String>,
    config: BridgeConfig,
    /// The file the configuration came from, if any (watched by `run` for reloads).
    path: Option<PathBuf>,
    /// Changes the log level on reload; `None` when `RUST_LOG` fixes it.
    log_level: Option<LevelControl>,
    runtime: Runtime,
}

/// The environment, the configuration, logging as configured, and a runtime from `builder`.
fn prepare(flag: Option<PathBuf>, builder: Builder) -> Result<Prepared, CommandError> {
    let env = process_env();
    let path = resolve_path(flag, &env);
    let config = load(path.as_deref(), &env)?;
    let log_level = logging::init(&config.log);
    Ok(Prepared {
        env,
        config,
        path,
        log_level,
        runtime: runtime(builder)?,
    })
}

fn runtime(mut builder: Builder) -> Result<Runtime, CommandError> {
    builder.enable_all().build().map_err(CommandError::Runtime)
}

/// `run`: the daemon, until SIGTERM or SIGINT.
pub fn run_daemon(config_flag: Option<PathBuf>) -> Result<(), CommandError> {
    let Prepared {
        env,
        config,
        path,
        log_level,
        runtime,
    } = prepare(config_flag, Builder::new_multi_thread())?;
    let stats = Arc::new(DaemonStats::default());
    runtime.block_on(async move {
        let (shutdown, sighup) = Signals::register().map_err(CommandError::Signals)?.into_shutdown();
        let options = DaemonOptions {
            env,
            config_path: path,
            sighup: Some(sighup),
            log_level,
            ..DaemonOptions::default()
        };
        Ok(daemon::run(config, options, stats, shutdown).await?)
    })
}

/// `convert`: offline, from a file or standard input.
pub fn convert(options: ConvertOptions) -> Result<(), CommandError> {
    let body = read_input(&options, &mut std::io::stdin().lock())?;
    convert_body(&options, &body, &mut std::io::stdout().lock(), &mut std::io::stderr())?;
    Ok(())
}

/// `export`: the summary goes to stderr; a run that failed makes the command fail.
pub fn export(config_flag: Option<PathBuf>, options: BackfillOptions) -> Result<(), CommandError> {
    let Prepared {
        runtime, config, env, ..
    } = prepare(config_flag, Builder::new_multi_thread())?;
    let summary = runtime.block_on(run_export(&config, &options, &env))?;
    eprint!("{summary}");
    if summary.failed().next().is_some() {
        return Err(CommandError::Incomplete("some runs were not exported"));
    }
    Ok(())
}

/// `inspect`: one run as a waterfall, or as OTLP/JSON.
pub fn inspect_run(config_flag: Option<PathBuf>, run_id: String, json: bool) -> Result<(), CommandError> {
    let Prepared { runtime, config, .. } = prepare(config_flag, Builder::new_current_thread())?;
    let options = InspectOptions {
        run_id,
        json,
        color: stdout_wants_color(),
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    Ok(runtime.block_on(inspect(&config, &options, &mut out, &mut err))?)
}

/// `demo`: the sample runs on the embedded fake API, watched by the real daemon.
pub fn demo(otlp_endpoint: Option<String>, protocol: Protocol, speed: f64) -> Result<(), CommandError> {
    super::demo::exclude_loopback_from_proxies();
    // The demo tells its own story on stdout; the daemon's logs only when something is wrong.
    // The daemon's own warnings (`daemon::*`: about its state file, reloads, exports cut short at
    // shutdown) are about a state file that outlives the process, and would promise that
    // unacknowledged spans are "sent again after restart": the demo's state file is deleted
    // when it ends, so the demo says itself what was not delivered (`demo::unsent_note`).
    logging::init(&LogConfig {
        level: "warn,trigger_otel_bridge::daemon=error".to_owned(),
        ..LogConfig::default()
    });
    let runtime = runtime(Builder::new_multi_thread())?;
    let options = DemoOptions {
        otlp_endpoint,
        protocol,
        speed,
        color: stdout_wants_color(),
    };
    let summary = runtime.block_on(super::demo::run(options, &mut std::io::stdout()))?;
    match summary.is_complete() {
        true => Ok(()),
        false => Err(CommandError::Incomplete(
            "the demo did not see every sample run through",
        )),
    }
}

/// `check-config`: the effective configuration on stdout, secrets redacted; with `--for`, also
/// what that command would refuse at its start.
pub fn check(config_flag: Option<PathBuf>, for_command: Option<CheckFor>) -> Result<(), CommandError> {
    Ok(check_config(
        config_flag,
        for_command,
        &process_env(),
        &mut std::io::stdout().lock(),
    )?)
}

/// `state list`: the state file's runs on stdout.
pub fn state_list(config_flag: Option<PathBuf>, options: StateListOptions) -> Result<(), CommandError> {
    let Prepared { config, .. } = prepare(config_flag, Builder::new_current_thread())?;
    super::state::list(&config, &options, &mut std::io::stdout().lock())?;
    Ok(())
}

/// `state reopen`: fails when a named run was not reopened (unknown, or pruned without --resend).
pub fn state_reopen(config_flag: Option<PathBuf>, run_ids: &[String], resend: bool) -> Result<(), CommandError> {
    let Prepared { config, .. } = prepare(config_flag, Builder::new_current_thread())?;
    let summary = super::state::reopen(&config, run_ids, resend, &mut std::io::stdout().lock())?;
    match summary.not_reopened.is_empty() {
        true => Ok(()),
        false => Err(CommandError::Incomplete("some runs were not reopened")),
    }
}
