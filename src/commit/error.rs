//! `StateError`: every way the state store can fail, each naming the state file.

use std::path::PathBuf;

use rusqlite::ffi::ErrorCode;
use thiserror::Error;

/// A failed state store operation. Every variant names the state file (`:memory:` for an in-memory
/// store). None of them is ever handled by recreating or discarding the file: the operator decides.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StateError {
    /// The file could not be opened or created at all (missing directory, permissions, a directory
    /// in its place …).
    #[error("cannot open the state file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// The file is not a SQLite database, or SQLite found it damaged.
    #[error(
        "the state file {} is corrupt or not a SQLite database ({reason}); the bridge leaves it untouched: move it \
         aside (keep it for inspection) or restore a backup, then start again (a new state file means every run \
         the bridge is given is exported again from the start)",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },

    /// The file was written by a newer trigger-otel-bridge whose schema this binary does not know.
    #[error(
        "the state file {} has schema version {found}, but this trigger-otel-bridge supports versions up to \
         {supported}: run the newer release that wrote it (the file is left untouched)",
        path.display()
    )]
    NewerSchema { path: PathBuf, found: u32, supported: u32 },

    /// The file is a SQLite database of some other application.
    #[error(
        "{} is a SQLite database but not a trigger-otel-bridge state file ({detail}); it is left untouched: point \
         state.path at a new file",
        path.display()
    )]
    NotBridgeState { path: PathBuf, detail: String },

    /// A statement failed on a recognised state file.
    #[error("state file {}: {operation} failed: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

/// Why the state file refuses a write for now, while it may take it later: the daemon keeps what
/// it would have written, pauses polling, fails `/readyz` and tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFault {
    /// `SQLITE_FULL`: the disk (or a quota) is full.
    Full,
    /// `SQLITE_READONLY`: the file or its file system became read-only.
    ReadOnly,
    /// `SQLITE_IOERR`: the operating system failed a write or sync (ENOSPC in the WAL among them).
    Io,
    /// `SQLITE_BUSY` / `SQLITE_LOCKED` past the busy timeout: another process holds the file.
    Busy,
}

impl WriteFault {
    /// For logs and `/readyz`.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteFault::Full => "disk full",
            WriteFault::ReadOnly => "read-only",
            WriteFault::Io => "I/O error",
            WriteFault::Busy => "locked by another process",
        }
    }
}

impl StateError {
    /// `Some` when the failure may pass without anyone touching the file (room freed, the file
    /// system writable again); damage and schema problems are never transient.
    pub fn write_fault(&self) -> Option<WriteFault> {
        let StateError::Sqlite { source, .. } = self else {
            return None;
        };
        match source.sqlite_error_code()? {
            ErrorCode::DiskFull => Some(WriteFault::Full),
            ErrorCode::ReadOnly => Some(WriteFault::ReadOnly),
            ErrorCode::SystemIoFailure => Some(WriteFault::Io),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(WriteFault::Busy),
            _ => None,
        }
    }

    /// Classifies a SQLite error from `operation`: damage (`SQLITE_CORRUPT`, `SQLITE_NOTADB`) is
    /// [`StateError::Corrupt`] wherever it is found, anything else [`StateError::Sqlite`].
    pub(crate) fn sqlite(path: &std::path::Path, operation: &'static str, source: rusqlite::Error) -> Self {
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StateError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("{operation}: {source}"),
            },
            _ => StateError::Sqlite {
                path: path.to_path_buf(),
                operation,
                source,
            },
        }
    }
}
