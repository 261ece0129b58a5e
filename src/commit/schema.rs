//! The state file's schema: an application id that marks a SQLite file as ours, a version in
//! `PRAGMA user_version`, and numbered migrations applied in one transaction on open.
//!
//! Adding a migration: append one SQL script to [`MIGRATIONS`] (never edit a released one). The
//! script at index `i` upgrades version `i` to `i + 1`; [`SCHEMA_VERSION`] follows.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::error::StateError;

/// `PRAGMA application_id` of every state file: "TOTB" (Trigger OTel Bridge) in ASCII. SQLite keeps
/// it in the file header, so `file(1)` and any SQLite tool can tell the file apart.
pub(crate) const APPLICATION_ID: i32 = 0x544F_5442;

/// Schema version 1: runs and the span ids the collector acknowledged.
///
/// Timestamps are unix nanoseconds (INTEGER, fits until 2262). Span ids are the 8 bytes of the
/// OTLP span id, big-endian as in hex (`SELECT hex(span_id)` prints the usual form). Tables are
/// STRICT (SQLite ≥ 3.37 reads them) so a wrongly typed value is an error, not a silent coercion.
const V1: &str = "
CREATE TABLE runs (
    run_id           TEXT    NOT NULL PRIMARY KEY,
    trace_id         TEXT,
    trace_id_derived INTEGER NOT NULL DEFAULT 0 CHECK (trace_id_derived IN (0, 1)),
    status           TEXT,
    task_identifier  TEXT,
    created_at       INTEGER,
    first_seen_at    INTEGER NOT NULL,
    ended_at         INTEGER,
    finished_at      INTEGER,
    last_polled_at   INTEGER,
    retired_at       INTEGER,
    retire_reason    TEXT
) STRICT, WITHOUT ROWID;

-- Serves both `retired_at IS NULL` (resume on start) and `retired_at < cutoff` (prune).
CREATE INDEX runs_by_retired_at ON runs (retired_at);

CREATE TABLE exported_spans (
    run_id  TEXT NOT NULL,
    span_id BLOB NOT NULL CHECK (length(span_id) = 8),
    PRIMARY KEY (run_id, span_id)
) STRICT, WITHOUT ROWID;
";

/// Schema version 2: a retirement can be undone (`state reopen`), so a run remembers when it was
/// last reopened (its `runs.max_age` counts from then, not from when it was first seen) and when
/// its span ids were pruned (reopening such a run would export its spans a second time, so
/// `state reopen` asks before it does).
const V2: &str = "
ALTER TABLE runs ADD COLUMN reopened_at INTEGER;
ALTER TABLE runs ADD COLUMN span_ids_pruned_at INTEGER;
";

/// Every migration, in order; index `i` upgrades schema version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2];

/// The schema version this binary writes and the newest it can read.
pub(crate) const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// What the file header says, read before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// No tables, no application id, version 0: a new or empty database; it becomes ours.
    Empty,
    /// A state file at this schema version (already current, or older and to be migrated).
    Bridge { version: u32 },
}

/// Reads the header and recognises the file, without writing to it: a file that is not SQLite is
/// [`StateError::Corrupt`], another application's database [`StateError::NotBridgeState`], a state
/// file from a newer release [`StateError::NewerSchema`]. Then runs `PRAGMA quick_check`.
pub(crate) fn inspect(conn: &Connection, path: &Path) -> Result<Found, StateError> {
    // The first statement that reads the file: a non-SQLite file fails here with SQLITE_NOTADB.
    let application_id: i32 = conn
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(|source| match source.sqlite_error_code() {
            Some(rusqlite::ffi::ErrorCode::CannotOpen) => StateError::Open {
                path: path.to_path_buf(),
                source,
            },
            _ => StateError::sqlite(path, "reading the file header", source),
        })?;
    let user_version: i32 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|source| StateError::sqlite(path, "reading the schema version", source))?;
    let objects = schema_objects(conn).map_err(|source| StateError::sqlite(path, "listing tables", source))?;

    let found = if application_id == APPLICATION_ID {
        let version = u32::try_from(user_version).map_err(|_| StateError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("negative schema version {user_version}"),
        })?;
        if version > SCHEMA_VERSION {
            return Err(StateError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Found::Bridge { version }
    } else if application_id == 0 && user_version == 0 && objects.is_empty() {
        Found::Empty
    } else {
        let tables = if objects.is_empty() {
            "no tables".to_owned()
        } else {
            let shown: Vec<&str> = objects.iter().take(5).map(String::as_str).collect();
            let more = objects.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!("tables {}{more}", shown.join(", "))
        };
        return Err(StateError::NotBridgeState {
            path: path.to_path_buf(),
            detail: format!(
                "application_id {application_id:#010x} instead of {APPLICATION_ID:#010x}, user_version {user_version}, \
                 {tables}"
            ),
        });
    };

    quick_check(conn, path)?;
    Ok(found)
}

/// Names of the tables, indexes, views and triggers in the file.
fn schema_objects(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_schema ORDER BY type DESC, name")?;
    let names = stmt.query_map([], |row| row.get(0))?;
    names.collect()
}

/// `PRAGMA quick_check`: the b-tree structure and page bookkeeping, without the (slower) index
/// content cross-check of `integrity_check`. Linear in the file size; run once per open.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let mut stmt = conn
        .prepare("PRAGMA quick_check(5)")
        .map_err(|source| StateError::sqlite(path, "checking the file (quick_check)", source))?;
    let problems: Vec<String> = stmt
        .query_map([], |row| row.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|source| StateError::sqlite(path, "checking the file (quick_check)", source))?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    // Each row may hold several lines, the first often "*** in database main ***".
    let lines: Vec<&str> = problems
        .iter()
        .flat_map(|p| p.lines())
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("***"))
        .collect();
    Err(StateError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("quick_check: {}", lines.join("; ")),
    })
}

/// Brings a recognised file to [`SCHEMA_VERSION`]: every pending migration, the new version and the
/// application id in one immediate transaction, so a crash leaves the old version or the new one.
pub(crate) fn migrate(conn: &mut Connection, path: &Path, found: Found) -> Result<(), StateError> {
    if found
        == (Found::Bridge {
            version: SCHEMA_VERSION,
        })
    {
        return Ok(());
    }
    let err = |source| StateError::sqlite(path, "migrating the schema", source);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    // Read again under the write lock: another process may have migrated the file since `inspect`.
    let current: u32 = tx.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(err)?;
    if current > SCHEMA_VERSION {
        return Err(StateError::NewerSchema {
            path: path.to_path_buf(),
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for script in &MIGRATIONS[current as usize..] {
        tx.execute_batch(script).map_err(err)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(err)?;
    tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(err)?;
    tx.commit().map_err(err)?;
    if current < SCHEMA_VERSION {
        tracing::info!(path = %path.display(), from = current, to = SCHEMA_VERSION, "state file schema migrated");
    }
    Ok(())
}
