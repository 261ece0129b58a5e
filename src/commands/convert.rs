//! `convert`: a Trigger.dev events body (file or stdin) → one OTLP/JSON trace request on stdout,
//! and with `--logs otlp_logs` a second line: the OTLP/JSON logs request.
//!
//! The input is taken as the final state of an ended run, so partial spans are exported by
//! rule 10. Problems go to stderr, one line per reason; stdout carries only the requests, and
//! nothing at all when the input is not JSON.

use crate::config::LogsMode;
use crate::convert::otlp::{export_logs_request, export_request, ResourceSettings};
use crate::convert::{convert_events, ids, InvalidReason, NothingExported, RunInfo, RunState};
use crate::trigger::model::{EventsBody, Field};
use crate::wording::plural;
use std::io::{Read, Write};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// `None` or `-`: standard input.
    pub input: Option<PathBuf>,
    pub trace_id: Option<String>,
    pub run_id: Option<String>,
    pub logs: LogsMode,
    pub service_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("--trace-id {0:?} is not 32 hex characters (or is all zeros)")]
    BadTraceId(String),
    #[error("cannot read {origin}: {source}")]
    Read { origin: String, source: std::io::Error },
    #[error("{origin} is not a Trigger.dev events body: {}", json_message(.source))]
    Json { origin: String, source: serde_json::Error },
    #[error("cannot write the output: {0}")]
    Write(#[source] std::io::Error),
}

/// serde_json's message with its position said once, as `(line L, column C)`: its own
/// `Display` ends in " at line L column C", which the message used to repeat.
fn json_message(error: &serde_json::Error) -> String {
    let (line, column) = (error.line(), error.column());
    let text = error.to_string();
    // Line 0: an error with no position (an I/O error); nothing to add or strip.
    if line == 0 {
        return text;
    }
    let message = text
        .strip_suffix(&format!(" at line {line} column {column}"))
        .unwrap_or(&text);
    format!("{message} (line {line}, column {column})")
}

/// What a conversion produced, for the summary line and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertSummary {
    pub elements: usize,
    pub spans: usize,
    /// Log records, with `--logs otlp_logs`.
    pub logs: usize,
    /// Invalid elements skipped, each once.
    pub skipped: u64,
    /// Invalid elements repaired, each once however many of its fields were.
    pub repaired: u64,
    /// Log records dropped by `--logs drop` (valid: not among the skipped).
    pub logs_dropped: u64,
}

/// Read the input named by `options` (stdin when `None` or `-`).
pub fn read_input(options: &ConvertOptions, stdin: &mut dyn Read) -> Result<Vec<u8>, ConvertError> {
    let mut body = Vec::new();
    match options.input.as_deref().filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            body = std::fs::read(path).map_err(|source| ConvertError::Read {
                origin: path.display().to_string(),
                source,
            })?;
        }
        None => {
            stdin.read_to_end(&mut body).map_err(|source| ConvertError::Read {
                origin: "standard input".to_owned(),
                source,
            })?;
        }
    }
    Ok(body)
}

fn origin(options: &ConvertOptions) -> String {
    match options.input.as_deref().filter(|p| p.as_os_str() != "-") {
        Some(path) => path.display().to_string(),
        None => "standard input".to_owned(),
    }
}

/// Convert `body` and write the request to `out`, warnings and the summary to `err`.
pub fn convert_body(
    options: &ConvertOptions,
    body: &[u8],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ConvertSummary, ConvertError> {
    if let Some(text) = &options.trace_id {
        if ids::parse_trace_id(text).is_none() {
            return Err(ConvertError::BadTraceId(text.clone()));
        }
    }
    let parsed = EventsBody::from_slice(body).map_err(|source| ConvertError::Json {
        origin: origin(options),
        source,
    })?;
    let elements = parsed.events.len();
    let run_id = options
        .run_id
        .clone()
        .or_else(|| {
            parsed
                .events
                .iter()
                .find_map(|e| e.run_id.as_ref().and_then(Field::as_str).map(str::to_owned))
        })
        .unwrap_or_default();
    if run_id.is_empty() && options.trace_id.is_none() {
        let _ = writeln!(
            err,
            "warning: no run id in the input and no --run-id: the trace id is derived from an empty run id"
        );
    }
    let run = RunInfo::new(
        &run_id,
        options.trace_id.as_deref(),
        RunState::Ended { finished_at: None },
    );
    let conversion = convert_events(parsed.events, &run, options.logs, &NothingExported);

    let (skipped, repaired) = (conversion.invalid.skipped(), conversion.invalid.repaired());
    let logs_dropped = conversion.invalid.count(InvalidReason::LogDropped);
    for (reason, tally) in conversion.invalid.iter().filter(|(reason, _)| reason.is_invalid()) {
        let fate = match reason.skips_element() {
            true => "skipped",
            false => "repaired",
        };
        let _ = writeln!(
            err,
            "warning: {} {fate} (reason={reason}); first: {}",
            plural(tally.count, "element"),
            tally.first
        );
    }
    // What the user asked for, said as such: not a warning, and not among the invalid.
    if logs_dropped > 0 {
        let _ = writeln!(err, "{} dropped (--logs drop)", plural(logs_dropped, "log element"));
    }
    let (spans, logs) = (conversion.spans.len(), conversion.logs.len());
    let mut settings = ResourceSettings::default();
    if let Some(name) = &options.service_name {
        settings.service_name = name.clone();
    }
    write_line(out, &export_request(conversion.spans, &settings))?;
    if options.logs == LogsMode::OtlpLogs {
        write_line(out, &export_logs_request(conversion.logs, &settings))?;
    }
    out.flush().map_err(ConvertError::Write)?;
    let logs_text = match options.logs {
        LogsMode::OtlpLogs => format!(" and {}", plural(logs as u64, "log record")),
        _ => String::new(),
    };
    let _ = writeln!(
        err,
        "converted {}{logs_text} from {} ({skipped} invalid skipped, {repaired} repaired)",
        plural(spans as u64, "span"),
        plural(elements as u64, "element")
    );
    Ok(ConvertSummary {
        elements,
        spans,
        logs,
        skipped,
        repaired,
        logs_dropped,
    })
}

/// One request as one line of JSON.
fn write_line(out: &mut dyn Write, request: &impl serde::Serialize) -> Result<(), ConvertError> {
    serde_json::to_writer(&mut *out, request).map_err(|e| ConvertError::Write(e.into()))?;
    writeln!(out).map_err(ConvertError::Write)
}
