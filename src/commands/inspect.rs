//! `inspect RUN_ID`: fetch one run, convert it exactly as the bridge would, and print it as a
//! terminal waterfall (`waterfall/`), or with `--json` as the OTLP/JSON request. Nothing is
//! exported and no state is read or written.
//!
//! A run that ended is converted as ended (partial spans end at its `finishedAt`, marked
//! `partial`). A run still executing is converted as if it ended now, so its running spans are
//! shown (marked `running`, ending now) instead of being held back as the daemon would.

use super::waterfall::{render, RenderOptions, SpanView};
use crate::commit::unix_now_ns;
use crate::config::{BridgeConfig, ConfigError, LogsMode};
use crate::convert::otlp::{export_request, ResourceSettings};
use crate::convert::{Conversion, NothingExported, RunState};
use crate::fetch::FetchedRun;
use crate::trigger::{ApiError, TriggerClient};
use std::io::Write;

#[derive(Debug, Clone)]
pub struct InspectOptions {
    pub run_id: String,
    /// Print the OTLP/JSON request instead of the waterfall.
    pub json: bool,
    /// ANSI colours in the waterfall.
    pub color: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot fetch run {run_id}: {source}")]
    Api { run_id: String, source: ApiError },
    #[error("cannot write the output: {0}")]
    Write(#[from] std::io::Error),
}

/// The run's trace id, state and events from the API configured in `[trigger]`.
pub async fn fetch_run(config: &BridgeConfig, run_id: &str) -> Result<FetchedRun, InspectError> {
    config.trigger.require_secret_key()?;
    let api = |source| InspectError::Api {
        run_id: run_id.to_owned(),
        source,
    };
    let client = TriggerClient::new(&config.trigger).map_err(api)?;
    FetchedRun::fetch(&client, run_id).await.map_err(api)
}

/// Convert for display: an ended run as ended, a live one as if it ended at `now_ns` (its
/// running spans end then, with `trigger.partial`). Returns whether the run is live.
/// `otlp_logs` shows the logs inline like `span_events`: a waterfall has no separate log pane.
/// `enrich`: `conversion.enrich` (span attributes from the trace endpoint).
pub fn convert_for_inspect(run: &mut FetchedRun, logs: LogsMode, enrich: bool, now_ns: u64) -> (Conversion, bool) {
    let logs = match logs {
        LogsMode::OtlpLogs => LogsMode::SpanEvents,
        other => other,
    };
    match run.run_state() {
        RunState::Live => {
            let state = RunState::Ended {
                finished_at: Some(now_ns),
            };
            (run.convert_as(state, logs, enrich, &NothingExported), true)
        }
        ended => (run.convert_as(ended, logs, enrich, &NothingExported), false),
    }
}

fn resource_settings(config: &BridgeConfig) -> ResourceSettings {
    let resource = &config.export.resource;
    ResourceSettings {
        service_name: resource.service_name.clone(),
        service_name_from_task: resource.service_name_from_task,
        attributes: resource.attributes.clone(),
    }
}

fn format_time(nanos: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| nanos.to_string())
}

/// Print `run` (already fetched) to `out`; warnings about invalid elements go to `err`.
pub fn print_run(
    config: &BridgeConfig,
    mut run: FetchedRun,
    options: &InspectOptions,
    now_ns: u64,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), InspectError> {
    let (conversion, live) = convert_for_inspect(&mut run, config.conversion.logs, config.conversion.enrich, now_ns);
    for (reason, tally) in conversion.invalid.iter() {
        let fate = if reason.skips_element() { "skipped" } else { "repaired" };
        writeln!(
            err,
            "warning: {} invalid element(s) {fate} (reason={reason}); first: {}",
            tally.count, tally.first
        )?;
    }
    if options.json {
        let request = export_request(conversion.spans, &resource_settings(config));
        serde_json::to_writer(&mut *out, &request).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(out.flush()?);
    }

    let details = &run.details;
    let mut line = format!("run {}", run.run_id);
    if let Some(task) = &details.summary.task_identifier {
        line.push_str(&format!(" · {task}"));
    }
    line.push_str(&format!(" · {}", details.summary.status));
    match (live, details.summary.finished_at) {
        (true, _) => line.push_str(" · still executing: running spans are drawn up to now"),
        (false, Some(at)) => line.push_str(&format!(" · finished {}", format_time(at))),
        (false, None) => {}
    }
    if let Some(parent) = &details.parent_run_id {
        line.push_str(&format!(" · triggered by {parent}"));
    }
    if run.trace.is_none() {
        line.push_str(" · trace id derived (the API gave none)");
    }
    writeln!(out, "{line}")?;
    let views: Vec<SpanView> = conversion
        .spans
        .iter()
        .map(|span| SpanView::from_otlp(&span.span))
        .collect();
    let render_options = RenderOptions {
        color: options.color,
        live,
        ..RenderOptions::default()
    };
    out.write_all(render(&views, &render_options).as_bytes())?;
    Ok(out.flush()?)
}

/// The whole command: fetch, convert, print.
pub async fn inspect(
    config: &BridgeConfig,
    options: &InspectOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), InspectError> {
    let run = fetch_run(config, &options.run_id).await?;
    print_run(config, run, options, unix_now_ns(), out, err)
}
