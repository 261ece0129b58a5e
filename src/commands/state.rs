//! `state list` and `state reopen`: what the state file knows of each run, and undoing a
//! retirement (a run given up as `not_found` behind a wrong URL, or past `runs.max_age`) without
//! sending again what the collector already acknowledged.

use crate::commit::{ListedRun, Reopened, StateError, StateStore};
use crate::config::BridgeConfig;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum StateCommandError {
    /// `state.path` names no file: there is no state to show or change (opening would create one).
    #[error("no state file at {} (state.path): the daemon has not run with this configuration", .0.display())]
    NoStateFile(std::path::PathBuf),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
}

/// What `state list` shows.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only retired runs.
    pub retired_only: bool,
    /// Only runs retired for this reason (`settled`, `max_age`, `not_found`, `removed`).
    pub reason: Option<String>,
}

/// What `state reopen` did, run by run.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReopenSummary {
    pub reopened: Vec<String>,
    /// Named runs the file does not know, or whose reopening was refused.
    pub not_reopened: Vec<String>,
}

fn open_existing(path: &Path) -> Result<StateStore, StateCommandError> {
    if !path.exists() {
        return Err(StateCommandError::NoStateFile(path.to_path_buf()));
    }
    Ok(StateStore::open(path)?)
}

/// `state list`: one line per run, most recently seen (or reopened) first.
pub fn list(config: &BridgeConfig, options: &ListOptions, out: &mut impl Write) -> Result<usize, StateCommandError> {
    let store = open_existing(&config.state.path)?;
    let runs = store.list_runs(options.retired_only, options.reason.as_deref())?;
    let rows: Vec<[String; 6]> = runs.iter().map(row).collect();
    let header = ["RUN", "STATE", "STATUS", "SPAN IDS", "SEEN", "RETIRED"].map(str::to_owned);
    let mut widths = header.each_ref().map(String::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for line in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(rows.len())
}

fn row(run: &ListedRun) -> [String; 6] {
    let record = &run.record;
    let state = match (&record.retire_reason, record.is_retired()) {
        (Some(reason), true) => format!("retired: {reason}"),
        (None, true) => "retired".to_owned(),
        (_, false) if record.reopened_at.is_some() => "watched (reopened)".to_owned(),
        (_, false) => "watched".to_owned(),
    };
    let span_ids = match record.span_ids_pruned_at {
        Some(_) => "pruned".to_owned(),
        None => run.span_ids.to_string(),
    };
    [
        record.run_id.clone(),
        state,
        record.status.clone().unwrap_or_else(|| "-".to_owned()),
        span_ids,
        timestamp(Some(record.reopened_at.unwrap_or(record.first_seen_at))),
        timestamp(record.retired_at),
    ]
}

/// Unix nanoseconds as RFC 3339 UTC, to the second; `-` when unknown.
fn timestamp(unix_ns: Option<u64>) -> String {
    match unix_ns {
        Some(ns) => humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(ns)).to_string(),
        None => "-".to_owned(),
    }
}

/// `state reopen RUN…`: each named run retired for any reason is watched again by the next daemon
/// start (or a running daemon's reload), keeping its committed span ids. Says what it did for
/// each run on `out`.
pub fn reopen(
    config: &BridgeConfig,
    run_ids: &[String],
    allow_resend: bool,
    out: &mut impl Write,
) -> Result<ReopenSummary, StateCommandError> {
    let mut store = open_existing(&config.state.path)?;
    let now = crate::commit::unix_now_ns();
    let mut summary = ReopenSummary::default();
    for run_id in run_ids {
        let outcome = store.reopen_retired(run_id, allow_resend, now)?;
        match outcome {
            Reopened::Reopened { reason, span_ids } => {
                let kept = match span_ids {
                    1 => "1 committed span id is kept".to_owned(),
                    n => format!("{n} committed span ids are kept"),
                };
                writeln!(
                    out,
                    "{run_id}: reopened (it was retired as {reason}); {kept}, so nothing acknowledged is sent again"
                )?;
                summary.reopened.push(run_id.clone());
            }
            Reopened::NotRetired => {
                writeln!(out, "{run_id}: not retired; nothing to undo")?;
            }
            Reopened::Unknown => {
                writeln!(out, "{run_id}: not in the state file; name it in runs.ids to watch it")?;
                summary.not_reopened.push(run_id.clone());
            }
            Reopened::Pruned { pruned_at } => {
                writeln!(
                    out,
                    "{run_id}: left retired: its span ids were pruned at {} (state.retention), so watching it \
                     again would export its spans a second time; add --resend to accept that",
                    timestamp(Some(pruned_at))
                )?;
                summary.not_reopened.push(run_id.clone());
            }
        }
    }
    if !summary.reopened.is_empty() {
        writeln!(
            out,
            "A running daemon watches reopened runs after a reload (SIGHUP) or a restart."
        )?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::RunRecord;
    use opentelemetry::trace::SpanId;

    fn config_in(dir: &tempfile::TempDir) -> BridgeConfig {
        let mut config = BridgeConfig::default();
        config.state.path = dir.path().join("state.db");
        config
    }

    fn text(out: Vec<u8>) -> String {
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_missing_state_file_is_said_and_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(&dir);
        let error = list(&config, &ListOptions::default(), &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("no state file at"), "{error}");
        assert!(error.to_string().contains("state.path"), "{error}");
        assert!(!config.state.path.exists());
    }

    #[test]
    fn reopening_keeps_span_ids_and_refuses_pruned_runs_without_resend() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(&dir);
        {
            let mut store = StateStore::open(&config.state.path).unwrap();
            store.upsert_run(&RunRecord::new("run_lost", 1)).unwrap();
            let ids: Vec<_> = (1..=3u64)
                .map(|n| ("run_lost".to_owned(), SpanId::from_bytes(n.to_be_bytes())))
                .collect();
            store.commit_exported(&ids).unwrap();
            store.retire("run_lost", "not_found", 2).unwrap();
            store.upsert_run(&RunRecord::new("run_live", 1)).unwrap();
            store.retire("run_old", "settled", 1).unwrap();
            store.prune(Duration::ZERO, 10).unwrap();
        }
        // `run_lost` was pruned too (retired before the cutoff): refused without --resend.
        let mut out = Vec::new();
        let names = ["run_lost", "run_live", "run_nope"].map(str::to_owned);
        let summary = reopen(&config, &names, false, &mut out).unwrap();
        let said = text(out);
        assert!(summary.reopened.is_empty(), "{said}");
        assert!(
            said.contains("run_lost: left retired: its span ids were pruned"),
            "{said}"
        );
        assert!(said.contains("run_live: not retired"), "{said}");
        assert!(said.contains("run_nope: not in the state file"), "{said}");
        assert_eq!(summary.not_reopened, ["run_lost", "run_nope"]);

        let mut out = Vec::new();
        let summary = reopen(&config, &names[..1], true, &mut out).unwrap();
        assert_eq!(summary.reopened, ["run_lost"], "{}", text(out));
        let store = StateStore::open(&config.state.path).unwrap();
        let record = store.run("run_lost").unwrap().unwrap();
        assert!(!record.is_retired() && record.reopened_at.is_some() && record.span_ids_pruned_at.is_none());
    }

    #[test]
    fn the_list_shows_each_run_with_its_state_and_span_ids() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(&dir);
        {
            let mut store = StateStore::open(&config.state.path).unwrap();
            let mut record = RunRecord::new("run_a", 1_700_000_000_000_000_000);
            record.status = Some("COMPLETED".into());
            store.upsert_run(&record).unwrap();
            store
                .commit_exported(&[("run_a".to_owned(), SpanId::from_bytes([1; 8]))])
                .unwrap();
            store.retire("run_a", "not_found", 1_700_000_100_000_000_000).unwrap();
            store
                .upsert_run(&RunRecord::new("run_b", 1_700_000_200_000_000_000))
                .unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(list(&config, &ListOptions::default(), &mut out).unwrap(), 2);
        let said = text(out);
        let lines: Vec<&str> = said.lines().collect();
        assert!(lines[0].starts_with("RUN") && lines[0].contains("SPAN IDS"), "{said}");
        assert!(lines[1].starts_with("run_b") && lines[1].contains("watched"), "{said}");
        assert!(
            lines[2].starts_with("run_a")
                && lines[2].contains("retired: not_found")
                && lines[2].contains("COMPLETED")
                && lines[2].contains("2023-11-14T22:13:20Z"),
            "{said}"
        );
        let mut out = Vec::new();
        let only = ListOptions {
            retired_only: true,
            reason: Some("not_found".into()),
        };
        assert_eq!(list(&config, &only, &mut out).unwrap(), 1);
        let mut out = Vec::new();
        let other = ListOptions {
            retired_only: false,
            reason: Some("max_age".into()),
        };
        assert_eq!(list(&config, &other, &mut out).unwrap(), 0);
    }
}
