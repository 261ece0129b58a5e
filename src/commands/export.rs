//! `export`: one-shot backfill of named runs and/or the runs found by filters. Each run is
//! fetched, converted and exported; finished runs entirely, runs still executing with their
//! finished spans. A progress bar on a terminal, and always a summary.

use crate::config::{BridgeConfig, ConversionConfig, LogsMode};
use crate::convert::NothingExported;
use crate::export::{BackoffPolicy, OtlpSender};
use crate::fetch::FetchedRun;
use crate::trigger::api_types::{run_status, run_statuses};
use crate::trigger::{RunFilters, TriggerClient};
use crate::wording::plural;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, Default)]
pub struct BackfillOptions {
    pub run_ids: Vec<String>,
    pub tasks: Vec<String>,
    pub tags: Vec<String>,
    pub statuses: Vec<String>,
    /// Runs created within this long before now.
    pub since: Option<Duration>,
}

impl BackfillOptions {
    fn has_filters(&self) -> bool {
        !self.tasks.is_empty() || !self.tags.is_empty() || !self.statuses.is_empty() || self.since.is_some()
    }
}

/// `--status` values as the API spells them: case does not matter (`completed` is
/// `COMPLETED`); a status the API does not have is refused with the list of those it has, since
/// the API would answer it with an empty list, as if no run matched.
pub fn normalise_statuses(statuses: &[String]) -> Result<Vec<String>, BackfillError> {
    statuses
        .iter()
        .map(|status| {
            run_status(status)
                .map(str::to_owned)
                .ok_or_else(|| BackfillError::UnknownStatus {
                    status: status.clone(),
                    valid: run_statuses().collect::<Vec<_>>().join(", "),
                })
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("name runs to export (RUN_ID…) or filters to find them (--task, --tag, --status, --since)")]
    NothingToExport,
    #[error("--status {status:?} is not a run status; valid: {valid}")]
    UnknownStatus { status: String, valid: String },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
    #[error(transparent)]
    Api(#[from] crate::trigger::ApiError),
    /// `trigger.api_url` is not Trigger.dev's API (the start-up check's verdict): every run
    /// would fail the same way, so none is tried.
    #[error(transparent)]
    WrongApiUrl(crate::trigger::StartupCheckError),
}

/// What happened to one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Exported {
        spans: u64,
        /// Log records (`conversion.logs = "otlp_logs"`).
        logs: u64,
        invalid_skipped: u64,
        still_running: bool,
    },
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillSummary {
    pub outcomes: Vec<(String, RunOutcome)>,
}

impl BackfillSummary {
    pub fn spans(&self) -> u64 {
        self.exported().map(|(spans, _, _)| spans).sum()
    }
    pub fn logs(&self) -> u64 {
        self.outcomes
            .iter()
            .map(|(_, outcome)| match outcome {
                RunOutcome::Exported { logs, .. } => *logs,
                RunOutcome::Failed { .. } => 0,
            })
            .sum()
    }
    pub fn invalid_skipped(&self) -> u64 {
        self.exported().map(|(_, invalid, _)| invalid).sum()
    }
    pub fn failed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.outcomes.iter().filter_map(|(run, outcome)| match outcome {
            RunOutcome::Failed { reason } => Some((run.as_str(), reason.as_str())),
            _ => None,
        })
    }
    fn exported(&self) -> impl Iterator<Item = (u64, u64, bool)> + '_ {
        self.outcomes.iter().filter_map(|(_, outcome)| match outcome {
            RunOutcome::Exported {
                spans,
                invalid_skipped,
                still_running,
                ..
            } => Some((*spans, *invalid_skipped, *still_running)),
            _ => None,
        })
    }
}

impl fmt::Display for BackfillSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.outcomes.is_empty() {
            // Only filters can select no run (naming none at all is refused before).
            return writeln!(f, "no run matched the filters: nothing exported");
        }
        let failed: Vec<(&str, &str)> = self.failed().collect();
        let logs = match self.logs() {
            0 => String::new(),
            n => format!(" and {}", plural(n, "log record")),
        };
        writeln!(
            f,
            "exported {}{logs} from {} ({} skipped, {} failed)",
            plural(self.spans(), "span"),
            plural((self.outcomes.len() - failed.len()) as u64, "run"),
            plural(self.invalid_skipped(), "invalid element"),
            plural(failed.len() as u64, "run")
        )?;
        for (run, outcome) in &self.outcomes {
            if let RunOutcome::Exported {
                spans,
                still_running: true,
                ..
            } = outcome
            {
                writeln!(
                    f,
                    "  {run}: still executing; exported its {}",
                    plural(*spans, "finished span")
                )?;
            }
        }
        for (run, reason) in failed {
            writeln!(f, "  {run}: failed: {reason}")?;
        }
        Ok(())
    }
}

/// The runs to export: the named ones, then those the filters find (newest first), once each.
pub async fn select_runs(client: &TriggerClient, options: &BackfillOptions) -> Result<Vec<String>, BackfillError> {
    if options.run_ids.is_empty() && !options.has_filters() {
        return Err(BackfillError::NothingToExport);
    }
    let mut runs = options.run_ids.clone();
    let mut seen: BTreeSet<String> = runs.iter().cloned().collect();
    if options.has_filters() {
        let filters = RunFilters {
            statuses: options.statuses.clone(),
            task_identifiers: options.tasks.clone(),
            tags: options.tags.clone(),
            // A `--since` reaching before 1970 means everything.
            created_from: options
                .since
                .map(|since| SystemTime::now().checked_sub(since).unwrap_or(SystemTime::UNIX_EPOCH)),
            page_size: Some(100),
            ..RunFilters::default()
        };
        let mut cursor: Option<String> = None;
        loop {
            let page = client.list_runs(&filters, cursor.as_deref()).await?;
            for run in page.runs {
                if seen.insert(run.id.clone()) {
                    runs.push(run.id);
                }
            }
            match page.next_cursor {
                Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
                _ => break,
            }
        }
    }
    Ok(runs)
}

/// How long `export` retries a batch a collector does not accept before it fails the run: the
/// two minutes README and docs/export.md promise (the sender makes its last retry at the bound).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// The sender `export` uses: the configured exporter, retrying a down collector for a while
/// (a one-shot command must end) instead of forever as the daemon does.
pub fn build_sender(config: &BridgeConfig, env: &HashMap<String, String>) -> Result<OtlpSender, BackfillError> {
    Ok(crate::export::build_sender(
        config,
        env,
        BackoffPolicy::default(),
        Some(GIVE_UP_AFTER),
    )?)
}

/// Export `runs`, `concurrency` at a time, drawing progress on `progress`.
pub async fn backfill(
    client: TriggerClient,
    sender: Arc<OtlpSender>,
    runs: Vec<String>,
    conversion: &ConversionConfig,
    concurrency: usize,
    progress: ProgressBar,
) -> Result<BackfillSummary, BackfillError> {
    let (logs, enrich) = (conversion.logs, conversion.enrich);
    progress.set_length(runs.len() as u64);
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let spans_done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, run_id) in runs.iter().cloned().enumerate() {
        // The permit is taken before the task starts, so runs start in the order named (with
        // `concurrency = 1`, the output's order is the command line's).
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (client, sender, progress, spans_done) =
            (client.clone(), sender.clone(), progress.clone(), spans_done.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let outcome = export_one(&client, &sender, &run_id, logs, enrich).await;
            if let RunOutcome::Exported { spans, .. } = &outcome {
                let total = spans_done.fetch_add(*spans, std::sync::atomic::Ordering::Relaxed) + spans;
                progress.set_message(plural(total, "span"));
            }
            progress.inc(1);
            (index, run_id, outcome)
        });
    }
    let mut outcomes = Vec::with_capacity(runs.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => outcomes.push(done),
            Err(panic) => std::panic::resume_unwind(panic.into_panic()),
        }
    }
    progress.finish_and_clear();
    outcomes.sort_by_key(|(index, _, _)| *index);
    Ok(BackfillSummary {
        outcomes: outcomes.into_iter().map(|(_, run, outcome)| (run, outcome)).collect(),
    })
}

async fn export_one(
    client: &TriggerClient,
    sender: &OtlpSender,
    run_id: &str,
    logs: LogsMode,
    enrich: bool,
) -> RunOutcome {
    let mut fetched = match FetchedRun::fetch(client, run_id).await {
        Ok(fetched) => fetched,
        Err(error) => {
            return RunOutcome::Failed {
                reason: error.to_string(),
            }
        }
    };
    let mut conversion = fetched.convert_with(logs, enrich, &NothingExported);
    // Log records dropped by `conversion.logs = "drop"` were asked for: not invalid, no warning.
    let invalid_skipped = conversion.invalid.skipped();
    for (reason, tally) in conversion.invalid.iter() {
        match reason.is_invalid() {
            true => tracing::warn!(run_id, %reason, count = tally.count, first = %tally.first, "invalid elements"),
            false => tracing::info!(
                run_id,
                count = tally.count,
                "log elements dropped (conversion.logs = \"drop\")"
            ),
        }
    }
    match sender.send(conversion.take_records()).await {
        Ok(report) => RunOutcome::Exported {
            spans: report.delivered_spans,
            logs: report.delivered_logs,
            invalid_skipped,
            still_running: !fetched.is_ended(),
        },
        Err(gave_up) => RunOutcome::Failed {
            reason: gave_up.to_string(),
        },
    }
}

/// A progress bar of `runs` runs with a span count, drawn on stderr only when it is a terminal.
pub fn progress_bar(runs: usize) -> ProgressBar {
    progress_bar_to(runs, ProgressDrawTarget::stderr())
}

/// [`progress_bar`] drawn on `target`. With no run there is no bar: indicatif draws a bar of
/// length 0 full (`0/0`, as if done), and the summary says that nothing matched.
fn progress_bar_to(runs: usize, target: ProgressDrawTarget) -> ProgressBar {
    if runs == 0 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(runs as u64), target);
    bar.set_style(
        ProgressStyle::with_template("{spinner} exporting runs [{bar:30}] {pos}/{len} · {msg} · {elapsed}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message("0 spans");
    // Redraw while runs are being fetched, not only when one completes.
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// The whole command: select the runs, export them, return the summary.
pub async fn run_export(
    config: &BridgeConfig,
    options: &BackfillOptions,
    env: &HashMap<String, String>,
) -> Result<BackfillSummary, BackfillError> {
    // The command line first: a mistake there is the cheapest to fix.
    let options = BackfillOptions {
        statuses: normalise_statuses(&options.statuses)?,
        ..options.clone()
    };
    config.trigger.require_secret_key()?;
    let sender = Arc::new(build_sender(config, env)?);
    let client = TriggerClient::new(&config.trigger)?;
    // One page of one run first: a wrong api_url is said once, not once per run. A rejected key
    // or an unreachable host is left to the runs' own errors (the summary says which failed).
    if let Err(error @ crate::trigger::StartupCheckError::WrongApiUrl { .. }) =
        crate::trigger::startup_check::check(&client).await
    {
        return Err(BackfillError::WrongApiUrl(error));
    }
    let runs = select_runs(&client, &options).await?;
    let progress = progress_bar(runs.len());
    backfill(
        client,
        sender,
        runs,
        &config.conversion,
        config.runs.concurrency,
        progress,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn statuses_are_taken_in_any_case_and_sent_as_the_api_spells_them() {
        let given = ["completed".to_owned(), "Failed".to_owned(), " TIMED_OUT ".to_owned()];
        assert_eq!(
            normalise_statuses(&given).expect("valid"),
            ["COMPLETED", "FAILED", "TIMED_OUT"]
        );
        let error = normalise_statuses(&["done".to_owned()]).expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "--status \"done\" is not a run status; valid: PENDING_VERSION, QUEUED, DEQUEUED, EXECUTING, \
             WAITING, DELAYED, COMPLETED, CANCELED, FAILED, CRASHED, INTERRUPTED, SYSTEM_FAILURE, EXPIRED, TIMED_OUT"
        );
    }

    /// What a bar drew, as a terminal would have received it.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn no_bar_is_drawn_for_no_run_and_a_bar_starts_empty() {
        let screen = Screen::default();
        let bar = progress_bar_to(0, ProgressDrawTarget::term_like(Box::new(screen.clone())));
        bar.tick();
        bar.finish_and_clear();
        assert!(bar.is_hidden());
        assert_eq!(*screen.0.lock().unwrap(), "", "no `0/0` bar drawn full");

        let bar = progress_bar_to(3, ProgressDrawTarget::term_like(Box::new(screen.clone())));
        bar.tick();
        let drawn = screen.0.lock().unwrap().clone();
        bar.finish_and_clear();
        assert!(
            drawn.contains("exporting runs [") && drawn.contains("] 0/3 · 0 spans ·"),
            "{drawn:?}"
        );
        assert!(!drawn.contains('='), "nothing done, nothing filled: {drawn:?}");
    }

    #[test]
    fn the_summary_counts_in_the_right_number() {
        let exported = |spans, logs| RunOutcome::Exported {
            spans,
            logs,
            invalid_skipped: 1,
            still_running: true,
        };
        let summary = BackfillSummary {
            outcomes: vec![
                ("run_a".to_owned(), exported(1, 1)),
                (
                    "run_b".to_owned(),
                    RunOutcome::Failed {
                        reason: "gone".to_owned(),
                    },
                ),
            ],
        };
        assert_eq!(
            summary.to_string(),
            "exported 1 span and 1 log record from 1 run (1 invalid element skipped, 1 run failed)\n  \
             run_a: still executing; exported its 1 finished span\n  run_b: failed: gone\n"
        );
        let summary = BackfillSummary {
            outcomes: vec![
                ("run_a".to_owned(), exported(2, 0)),
                ("run_b".to_owned(), exported(0, 0)),
            ],
        };
        assert!(summary
            .to_string()
            .starts_with("exported 2 spans from 2 runs (2 invalid elements skipped, 0 runs failed)\n"));
        assert_eq!(
            BackfillSummary::default().to_string(),
            "no run matched the filters: nothing exported\n"
        );
    }
}
