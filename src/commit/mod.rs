//! Commit: what the collector acknowledged, made durable. The export queue (`export_queue`) sends
//! batches and commits each one's span ids only after the collector accepted it; the store (this
//! file, `schema`, `error`) keeps them.
//!
//! Durable state: the runs the bridge watches and the span ids the collector acknowledged, in an
//! embedded SQLite file (`state.path`), so that a restarted process resumes where the last one stopped.
//!
//! The delivery guarantee (DESIGN.md) rests on one rule kept by the caller: a span id is committed
//! here only after the collector acknowledged the batch holding it, with one
//! [`StateStore::commit_exported`] call (one transaction) per acknowledged batch.
//!
//! # Durability
//! The file is in WAL mode with `synchronous = NORMAL`. A commit returns once its pages are written
//! to the write-ahead log, that is, handed to the operating system; the fsync happens at checkpoints.
//! So everything committed survives the process being killed (SIGKILL, OOM kill, panic), which is
//! the failure the guarantee is about. A power loss or kernel crash can roll back the last few
//! commits (never corrupt the file): their spans are then exported again (duplicates, never loss,
//! since Trigger.dev still holds the events). `synchronous = FULL` would close that window at the
//! cost of an fsync per acknowledged batch; it is not worth it for a re-sendable id set. If the file
//! system cannot do WAL (some network file systems), the store falls back to the journal mode SQLite
//! keeps, with `synchronous = FULL`, and logs a warning.
//!
//! # Recognising the file
//! Opening never recreates, truncates or "repairs" a file. A new or empty file gets the schema. A
//! file that is not SQLite or fails `PRAGMA quick_check` is [`StateError::Corrupt`]; another
//! application's database (wrong `PRAGMA application_id`) is [`StateError::NotBridgeState`]; a state
//! file from a newer release is [`StateError::NewerSchema`]. Older state files are migrated
//! (`schema.rs`) in one transaction.
//!
//! # Retention
//! [`StateStore::prune`] deletes the span ids of runs retired longer than `state.retention` ago but
//! keeps their run rows (about 150 bytes each): a retired run must never be polled again, even when
//! it is still listed in `runs.ids` or found again by discovery, and re-polling a pruned run would
//! export its whole trace a second time. Freed pages are reused by later inserts, so the file stays
//! near the size of one retention window of span ids.
//!
//! The API is synchronous. The export queue commits batches from a blocking thread; the daemon's
//! loop makes its small per-run writes (a run's record, its retirement) in place, which blocks it
//! only while another process holds the file's write lock (the 5 s busy timeout). [`StateStore`] is
//! `Send` (not `Sync`): one owner at a time.

mod error;
pub mod export_queue;
mod schema;
/// Tests only: a handle on the daemon's state store once it is open, to make its file refuse
/// writes as a full disk would ([`StateStore::simulate_full_disk`]) while the daemon runs.
#[doc(hidden)]
#[derive(Clone, Default)]
pub struct StateTap(std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<std::sync::Mutex<StateStore>>>>>);

impl StateTap {
    pub fn fill(&self, store: std::sync::Arc<std::sync::Mutex<StateStore>>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    /// `f` on the store; `None` before the daemon opened it.
    pub fn with<T>(&self, f: impl FnOnce(&StateStore) -> T) -> Option<T> {
        let store = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        let guard = store.lock().unwrap_or_else(|e| e.into_inner());
        Some(f(&guard))
    }
}

impl std::fmt::Debug for StateTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateTap")
    }
}

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opentelemetry::trace::SpanId;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, ToSql, TransactionBehavior};

pub use error::{StateError, WriteFault};

/// Now, in unix nanoseconds: how the state file writes its timestamps (0 before 1970, which no
/// clock here shows).
pub fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// How long a statement waits for another connection's lock (e.g. `sqlite3` reading the file)
/// before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The `runs` columns [`StateStore::upsert_run`] writes, in [`RunRecord::from_row`] order, as a
/// literal for `concat!` (statement texts stay `&'static str`, so `prepare_cached` finds them
/// without formatting).
macro_rules! run_columns {
    () => {
        "run_id, trace_id, trace_id_derived, status, task_identifier, created_at, first_seen_at, ended_at, \
         finished_at, last_polled_at, retired_at, retire_reason"
    };
}

/// Every `runs` column [`RunRecord::from_row`] reads: the written ones, then those only
/// [`StateStore::reopen_retired`] and [`StateStore::prune`] set.
macro_rules! run_columns_read {
    () => {
        concat!(run_columns!(), ", reopened_at, span_ids_pruned_at")
    };
}

/// What is known about one run. Timestamps are unix nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub run_id: String,
    /// The trace id (32 lowercase hex digits) every span of the run is exported under.
    pub trace_id: Option<String>,
    /// Whether `trace_id` was derived from the run id because Trigger.dev gave none.
    pub trace_id_derived: bool,
    /// The run status exactly as Trigger.dev reports it (e.g. `EXECUTING`, `COMPLETED`).
    pub status: Option<String>,
    pub task_identifier: Option<String>,
    /// When Trigger.dev created the run.
    pub created_at: Option<u64>,
    /// When this bridge first learnt of the run.
    pub first_seen_at: u64,
    /// When the bridge learnt that the run ended (the start of `runs.settle`).
    pub ended_at: Option<u64>,
    /// The run's `finishedAt` as Trigger.dev reports it.
    pub finished_at: Option<u64>,
    pub last_polled_at: Option<u64>,
    /// Set once the run is retired; a retired run is never polled again.
    pub retired_at: Option<u64>,
    /// Why the run was retired: `settled`, `max_age`, `not_found` …
    pub retire_reason: Option<String>,
    /// When `state reopen` last undid its retirement (its `runs.max_age` counts from then).
    /// Written only by [`StateStore::reopen_retired`].
    pub reopened_at: Option<u64>,
    /// When its exported span ids were deleted by [`StateStore::prune`]. Written only there.
    pub span_ids_pruned_at: Option<u64>,
}

impl RunRecord {
    /// A run first seen at `first_seen_at`, with nothing else known yet.
    pub fn new(run_id: impl Into<String>, first_seen_at: u64) -> Self {
        RunRecord {
            run_id: run_id.into(),
            trace_id: None,
            trace_id_derived: false,
            status: None,
            task_identifier: None,
            created_at: None,
            first_seen_at,
            ended_at: None,
            finished_at: None,
            last_polled_at: None,
            retired_at: None,
            retire_reason: None,
            reopened_at: None,
            span_ids_pruned_at: None,
        }
    }

    /// Whether the run is retired.
    pub fn is_retired(&self) -> bool {
        self.retired_at.is_some()
    }

    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RunRecord {
            run_id: row.get(0)?,
            trace_id: row.get(1)?,
            trace_id_derived: row.get(2)?,
            status: row.get(3)?,
            task_identifier: row.get(4)?,
            created_at: Nanos::get_opt(row, 5)?,
            first_seen_at: row.get::<_, Nanos>(6)?.0,
            ended_at: Nanos::get_opt(row, 7)?,
            finished_at: Nanos::get_opt(row, 8)?,
            last_polled_at: Nanos::get_opt(row, 9)?,
            retired_at: Nanos::get_opt(row, 10)?,
            retire_reason: row.get(11)?,
            reopened_at: Nanos::get_opt(row, 12)?,
            span_ids_pruned_at: Nanos::get_opt(row, 13)?,
        })
    }
}

/// What [`StateStore::reopen_retired`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reopened {
    /// Retired for `reason` before; watched again at the next start or reload, with `span_ids`
    /// committed span ids (not sent again).
    Reopened { reason: String, span_ids: usize },
    /// Not retired: nothing to undo.
    NotRetired,
    /// Never stored.
    Unknown,
    /// Its span ids were pruned at `pruned_at` (unix ns): left retired, since reopening would
    /// send its spans again (`allow_resend` says to).
    Pruned { pruned_at: u64 },
}

/// A run as `state list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRun {
    pub record: RunRecord,
    /// Span ids committed as acknowledged by the collector.
    pub span_ids: u64,
}

/// What [`StateStore::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Retired runs whose span ids were deleted (their run rows stay).
    pub runs: usize,
    /// Span ids deleted.
    pub span_ids: usize,
}

/// Sizes of the store, for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Every run row, retired or not.
    pub runs: u64,
    /// Runs not yet retired: the ones a start resumes.
    pub unretired: u64,
    /// Exported span ids held (of all runs).
    pub span_ids: u64,
}

/// The state file, open. See the module documentation for durability and recognition rules.
#[derive(Debug)]
pub struct StateStore {
    conn: Connection,
    path: PathBuf,
}

// The daemon moves the store into a blocking thread.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<StateStore>();
};

impl StateStore {
    /// Opens the state file at `path`, creating it (not its directory) if missing, and migrates it to
    /// the current schema. Fails without touching the file if it is corrupt, not a state file, or
    /// from a newer release.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        // No SQLITE_OPEN_URI: a configured path is a file name, never a `file:` URI with options.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| StateError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Self::init(conn, path.to_path_buf(), false)
    }

    /// A store that lives and dies with the process (tests, one-shot commands that keep no state).
    pub fn open_in_memory() -> Result<Self, StateError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StateError::Open {
            path: path.clone(),
            source,
        })?;
        Self::init(conn, path, true)
    }

    fn init(mut conn: Connection, path: PathBuf, in_memory: bool) -> Result<Self, StateError> {
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|source| StateError::sqlite(&path, "setting the busy timeout", source))?;
        // Recognise the file before the first write (switching to WAL writes the header).
        let found = schema::inspect(&conn, &path)?;
        if !in_memory {
            set_durability(&conn, &path)?;
        }
        schema::migrate(&mut conn, &path, found)?;
        Ok(StateStore { conn, path })
    }

    /// The state file's path (`:memory:` for an in-memory store).
    /// Tests only: cap the file at its current size (`true`), so a write that needs a new page
    /// fails with `SQLITE_FULL` as on a full disk, or lift the cap (`false`).
    #[doc(hidden)]
    pub fn simulate_full_disk(&self, full: bool) -> Result<(), StateError> {
        let pages: i64 = match full {
            true => self
                .conn
                .query_row("PRAGMA page_count", [], |row| row.get(0))
                .map_err(self.err("reading the page count"))?,
            false => i64::from(u32::MAX >> 1),
        };
        self.conn
            .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(self.err("setting max_page_count"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, operation: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError + '_ {
        move |source| StateError::sqlite(&self.path, operation, source)
    }

    /// Inserts the run or merges `run` into the stored row. The merge never forgets a fact:
    /// - a `None` field keeps the stored value; a `Some` replaces it;
    /// - the trace id is decided once: once a trace id is stored it stays (spans already exported
    ///   under that trace must stay in one trace). A derived one (`trace_id_derived` set, no id
    ///   stored) is provisional: a record carrying the run's real trace id replaces it. The daemon
    ///   asks for the trace again only while nothing was exported under the derived id (see
    ///   `daemon::scheduling`), so this happens only before the first export;
    /// - `first_seen_at` keeps the earliest value;
    /// - retirement is one-way: a stored `retired_at`/`retire_reason` is kept, so a stale record
    ///   cannot bring a retired run back. Use [`StateStore::retire`] to retire.
    pub fn upsert_run(&mut self, run: &RunRecord) -> Result<(), StateError> {
        let sql = concat!(
            "INSERT INTO runs (",
            run_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
             ON CONFLICT (run_id) DO UPDATE SET
                trace_id_derived = CASE WHEN runs.trace_id IS NULL
                                             AND (NOT runs.trace_id_derived OR excluded.trace_id IS NOT NULL)
                                        THEN excluded.trace_id_derived ELSE runs.trace_id_derived END,
                trace_id = CASE WHEN runs.trace_id IS NULL
                                     AND (NOT runs.trace_id_derived OR excluded.trace_id IS NOT NULL)
                                THEN excluded.trace_id ELSE runs.trace_id END,
                status = COALESCE(excluded.status, runs.status),
                task_identifier = COALESCE(excluded.task_identifier, runs.task_identifier),
                created_at = COALESCE(excluded.created_at, runs.created_at),
                first_seen_at = MIN(runs.first_seen_at, excluded.first_seen_at),
                ended_at = COALESCE(excluded.ended_at, runs.ended_at),
                finished_at = COALESCE(excluded.finished_at, runs.finished_at),
                last_polled_at = COALESCE(excluded.last_polled_at, runs.last_polled_at),
                retire_reason = CASE WHEN runs.retired_at IS NULL THEN excluded.retire_reason
                                     ELSE runs.retire_reason END,
                retired_at = COALESCE(runs.retired_at, excluded.retired_at)"
        );
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err("saving a run"))?;
        stmt.execute(rusqlite::params![
            run.run_id,
            run.trace_id,
            run.trace_id_derived,
            run.status,
            run.task_identifier,
            run.created_at.map(Nanos),
            Nanos(run.first_seen_at),
            run.ended_at.map(Nanos),
            run.finished_at.map(Nanos),
            run.last_polled_at.map(Nanos),
            run.retired_at.map(Nanos),
            run.retire_reason,
        ])
        .map_err(self.err("saving a run"))?;
        Ok(())
    }

    /// The stored run, if any.
    pub fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StateError> {
        let sql = concat!("SELECT ", run_columns_read!(), " FROM runs WHERE run_id = ?1");
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.err("reading a run"))?;
        stmt.query_row([run_id], RunRecord::from_row)
            .optional()
            .map_err(self.err("reading a run"))
    }

    /// Every run not yet retired, oldest first seen first: what a start resumes.
    pub fn unretired_runs(&self) -> Result<Vec<RunRecord>, StateError> {
        let sql = concat!(
            "SELECT ",
            run_columns_read!(),
            " FROM runs WHERE retired_at IS NULL ORDER BY first_seen_at, run_id"
        );
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(self.err("listing unretired runs"))?;
        let rows = stmt
            .query_map([], RunRecord::from_row)
            .map_err(self.err("listing unretired runs"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("listing unretired runs"))
    }

    /// Whether the run is retired; `false` for a run never stored.
    pub fn is_retired(&self, run_id: &str) -> Result<bool, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT retired_at IS NOT NULL FROM runs WHERE run_id = ?1")
            .map_err(self.err("reading a run"))?;
        let retired: Option<bool> = stmt
            .query_row([run_id], |row| row.get(0))
            .optional()
            .map_err(self.err("reading a run"))?;
        Ok(retired.unwrap_or(false))
    }

    /// The span ids of the run that the collector acknowledged (none once pruned).
    pub fn exported_span_ids(&self, run_id: &str) -> Result<HashSet<SpanId>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT span_id FROM exported_spans WHERE run_id = ?1")
            .map_err(self.err("reading exported span ids"))?;
        let rows = stmt
            .query_map([run_id], |row| row.get::<_, [u8; 8]>(0).map(SpanId::from_bytes))
            .map_err(self.err("reading exported span ids"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.err("reading exported span ids"))
    }

    /// Records the span ids of one acknowledged batch, possibly spanning runs, in one transaction:
    /// after a crash either all of them are recorded or none. Ids already recorded are ignored;
    /// returns how many were new. The run rows need not exist (but span ids of a run that has no
    /// row are never pruned: upsert the run first).
    pub fn commit_exported(&mut self, spans: &[(String, SpanId)]) -> Result<usize, StateError> {
        if spans.is_empty() {
            return Ok(0);
        }
        let path = &self.path;
        let err = |source| StateError::sqlite(path, "committing exported span ids", source);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut inserted = 0;
        {
            let mut stmt = tx
                .prepare_cached("INSERT OR IGNORE INTO exported_spans (run_id, span_id) VALUES (?1, ?2)")
                .map_err(err)?;
            for (run_id, span_id) in spans {
                inserted += stmt
                    .execute(rusqlite::params![run_id, span_id.to_bytes()])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(inserted)
    }

    /// Retires the run at `at_unix_ns` for `reason`, creating its row if the run was never stored
    /// (e.g. a listed run that was never found). Retiring again keeps the first time and reason.
    pub fn retire(&mut self, run_id: &str, reason: &str, at_unix_ns: u64) -> Result<(), StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO runs (run_id, first_seen_at, retired_at, retire_reason) VALUES (?1, ?3, ?3, ?2)
                 ON CONFLICT (run_id) DO UPDATE SET
                    retire_reason = CASE WHEN runs.retired_at IS NULL THEN excluded.retire_reason
                                         ELSE runs.retire_reason END,
                    retired_at = COALESCE(runs.retired_at, excluded.retired_at)",
            )
            .map_err(self.err("retiring a run"))?;
        stmt.execute(rusqlite::params![run_id, reason, Nanos(at_unix_ns)])
            .map_err(self.err("retiring a run"))?;
        Ok(())
    }

    /// Watches again a run retired as `reason` (only that reason: the user named a run again after
    /// taking it out of `runs.ids`). Returns whether it was retired so. Its exported span ids are
    /// kept, unless pruned already.
    pub fn reopen(&mut self, run_id: &str, reason: &str) -> Result<bool, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "UPDATE runs SET retired_at = NULL, retire_reason = NULL
                 WHERE run_id = ?1 AND retired_at IS NOT NULL AND retire_reason = ?2",
            )
            .map_err(self.err("reopening a run"))?;
        let changed = stmt
            .execute(rusqlite::params![run_id, reason])
            .map_err(self.err("reopening a run"))?;
        Ok(changed > 0)
    }

    /// `state reopen`: undoes the retirement of `run_id`, whatever its reason, at `now_unix_ns`.
    /// Its committed span ids stay, so a daemon watching it again sends only what was never
    /// acknowledged. A run whose span ids were pruned is reopened only with `allow_resend` (its
    /// spans would be exported a second time).
    pub fn reopen_retired(
        &mut self,
        run_id: &str,
        allow_resend: bool,
        now_unix_ns: u64,
    ) -> Result<Reopened, StateError> {
        let Some(record) = self.run(run_id)? else {
            return Ok(Reopened::Unknown);
        };
        let Some(reason) = record.retire_reason.clone().filter(|_| record.is_retired()) else {
            return Ok(Reopened::NotRetired);
        };
        if let (Some(pruned_at), false) = (record.span_ids_pruned_at, allow_resend) {
            return Ok(Reopened::Pruned { pruned_at });
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "UPDATE runs SET retired_at = NULL, retire_reason = NULL, reopened_at = ?2,
                                 span_ids_pruned_at = NULL
                 WHERE run_id = ?1 AND retired_at IS NOT NULL",
            )
            .map_err(self.err("reopening a run"))?;
        stmt.execute(rusqlite::params![run_id, Nanos(now_unix_ns)])
            .map_err(self.err("reopening a run"))?;
        let span_ids = self.exported_span_ids(run_id)?.len();
        Ok(Reopened::Reopened { reason, span_ids })
    }

    /// `state list`: every run with its count of committed span ids, most recently seen first;
    /// only retired ones with `retired_only`, only those retired for `reason` when given.
    pub fn list_runs(&self, retired_only: bool, reason: Option<&str>) -> Result<Vec<ListedRun>, StateError> {
        let sql = concat!(
            "SELECT ",
            run_columns_read!(),
            ", (SELECT COUNT(*) FROM exported_spans AS s WHERE s.run_id = runs.run_id)
             FROM runs
             WHERE (NOT ?1 OR retired_at IS NOT NULL) AND (?2 IS NULL OR retire_reason = ?2)
             ORDER BY COALESCE(reopened_at, first_seen_at) DESC, run_id"
        );
        let mut stmt = self.conn.prepare(sql).map_err(self.err("listing runs"))?;
        let rows = stmt
            .query_map(rusqlite::params![retired_only, reason], |row| {
                Ok(ListedRun {
                    record: RunRecord::from_row(row)?,
                    span_ids: row.get::<_, i64>(14)? as u64,
                })
            })
            .map_err(self.err("listing runs"))?;
        rows.collect::<Result<_, _>>().map_err(self.err("listing runs"))
    }

    /// Deletes the span ids of runs retired more than `retention` before `now_unix_ns`, in one
    /// transaction. Run rows stay (see the module documentation), so pruned runs stay retired.
    pub fn prune(&mut self, retention: Duration, now_unix_ns: u64) -> Result<PruneReport, StateError> {
        let retention_ns = u64::try_from(retention.as_nanos()).unwrap_or(u64::MAX);
        // Clamped to what SQLite stores: a later cutoff selects the same (every retired) run.
        let cutoff = Nanos(now_unix_ns.saturating_sub(retention_ns).min(i64::MAX as u64));
        let path = &self.path;
        let err = |source| StateError::sqlite(path, "pruning span ids", source);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let report = {
            let mut count = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM runs WHERE retired_at < ?1
                     AND EXISTS (SELECT 1 FROM exported_spans AS s WHERE s.run_id = runs.run_id)",
                )
                .map_err(err)?;
            let runs: i64 = count.query_row([cutoff], |row| row.get(0)).map_err(err)?;
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM exported_spans WHERE run_id IN (SELECT run_id FROM runs WHERE retired_at < ?1)",
                )
                .map_err(err)?;
            let span_ids = delete.execute([cutoff]).map_err(err)?;
            // Remembered so `state reopen` can tell that reopening would send the spans again.
            tx.prepare_cached(
                "UPDATE runs SET span_ids_pruned_at = ?2 WHERE retired_at < ?1 AND span_ids_pruned_at IS NULL",
            )
            .map_err(err)?
            .execute(rusqlite::params![cutoff, Nanos(now_unix_ns)])
            .map_err(err)?;
            PruneReport {
                runs: runs as usize,
                span_ids,
            }
        };
        tx.commit().map_err(err)?;
        Ok(report)
    }

    /// Runs, unretired runs and span ids held. Counting span ids reads the whole span table (fast,
    /// but linear): call it for periodic metrics, not per poll.
    pub fn counts(&self) -> Result<StateCounts, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT (SELECT COUNT(*) FROM runs),
                        (SELECT COUNT(*) FROM runs WHERE retired_at IS NULL),
                        (SELECT COUNT(*) FROM exported_spans)",
            )
            .map_err(self.err("counting"))?;
        let count = |row: &Row<'_>, idx| row.get::<_, i64>(idx).map(|n| n as u64); // COUNT(*) is never negative
        stmt.query_row([], |row| {
            Ok(StateCounts {
                runs: count(row, 0)?,
                unretired: count(row, 1)?,
                span_ids: count(row, 2)?,
            })
        })
        .map_err(self.err("counting"))
    }
}

/// Unix nanoseconds as a SQLite INTEGER (an i64: until the year 2262). A value past `i64::MAX` is an
/// error, never a wrap to a negative time.
#[derive(Debug, Clone, Copy)]
struct Nanos(u64);

impl Nanos {
    fn get_opt(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<u64>> {
        Ok(row.get::<_, Option<Nanos>>(idx)?.map(|n| n.0))
    }
}

impl ToSql for Nanos {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let value = i64::try_from(self.0).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(ToSqlOutput::from(value))
    }
}

impl FromSql for Nanos {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let value = i64::column_result(value)?;
        u64::try_from(value)
            .map(Nanos)
            .map_err(|_| FromSqlError::OutOfRange(value))
    }
}

/// WAL with `synchronous = NORMAL` (see the module documentation); `FULL` if WAL is unavailable.
fn set_durability(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|source| StateError::sqlite(path, "switching to WAL", source))?;
    let synchronous = if mode.eq_ignore_ascii_case("wal") {
        "NORMAL"
    } else {
        tracing::warn!(
            path = %path.display(),
            journal_mode = %mode,
            "the state file cannot use WAL on this file system; using synchronous = FULL (slower commits)"
        );
        "FULL"
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(|source| StateError::sqlite(path, "setting synchronous", source))
}
