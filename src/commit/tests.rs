use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opentelemetry::trace::SpanId;
use rusqlite::Connection;

use super::schema::{APPLICATION_ID, SCHEMA_VERSION};
use super::{PruneReport, Reopened, RunRecord, StateCounts, StateError, StateStore};

const SEC: u64 = 1_000_000_000;
const DAY: u64 = 86_400 * SEC;
const T0: u64 = 1_767_225_600 * SEC; // 2026-01-01T00:00:00Z

fn span(n: u64) -> SpanId {
    SpanId::from_bytes(n.to_be_bytes())
}

fn spans(run_id: &str, ids: impl IntoIterator<Item = u64>) -> Vec<(String, SpanId)> {
    ids.into_iter().map(|n| (run_id.to_owned(), span(n))).collect()
}

fn full_record(run_id: &str) -> RunRecord {
    RunRecord {
        run_id: run_id.to_owned(),
        trace_id: Some("0af7651916cd43dd8448eb211c80319c".to_owned()),
        trace_id_derived: true,
        status: Some("EXECUTING".to_owned()),
        task_identifier: Some("send-email".to_owned()),
        created_at: Some(T0 - SEC),
        first_seen_at: T0,
        ended_at: None,
        finished_at: None,
        last_polled_at: Some(T0 + SEC),
        retired_at: None,
        retire_reason: None,
        reopened_at: None,
        span_ids_pruned_at: None,
    }
}

fn state_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state.db")
}

/// The file and its WAL/SHM companions, for "left untouched" checks.
fn snapshot(path: &Path) -> (Vec<u8>, bool, bool) {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let shm = PathBuf::from(format!("{}-shm", path.display()));
    (std::fs::read(path).unwrap(), wal.exists(), shm.exists())
}

#[test]
fn runs_and_span_ids_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(&state_path(&dir)).unwrap();

    let run = full_record("run_a");
    store.upsert_run(&run).unwrap();
    assert_eq!(store.run("run_a").unwrap(), Some(run.clone()));
    assert_eq!(store.run("run_missing").unwrap(), None);

    let mut ended = run.clone();
    ended.status = Some("COMPLETED".to_owned());
    ended.ended_at = Some(T0 + 10 * SEC);
    ended.finished_at = Some(T0 + 9 * SEC);
    store.upsert_run(&ended).unwrap();
    assert_eq!(store.run("run_a").unwrap(), Some(ended));

    assert_eq!(store.commit_exported(&spans("run_a", [1, 2, u64::MAX])).unwrap(), 3);
    assert_eq!(store.commit_exported(&spans("run_b", [1])).unwrap(), 1);
    assert_eq!(
        store.exported_span_ids("run_a").unwrap(),
        HashSet::from([span(1), span(2), span(u64::MAX)])
    );
    assert_eq!(store.exported_span_ids("run_b").unwrap(), HashSet::from([span(1)]));
    assert!(store.exported_span_ids("run_c").unwrap().is_empty());
    assert_eq!(
        store.counts().unwrap(),
        StateCounts {
            runs: 1,
            unretired: 1,
            span_ids: 4
        }
    );

    // Stored as the 8 big-endian bytes, so `hex(span_id)` is the usual form.
    let hex: String = store
        .conn
        .query_row(
            "SELECT hex(span_id) FROM exported_spans WHERE run_id = 'run_a' ORDER BY span_id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hex, "0000000000000001");
}

#[test]
fn upsert_never_forgets_a_fact() {
    let mut store = StateStore::open_in_memory().unwrap();
    store.upsert_run(&full_record("run_a")).unwrap();

    // A sparse, stale record: None fields keep, trace id is write-once, first_seen_at keeps the earliest.
    let mut sparse = RunRecord::new("run_a", T0 + DAY);
    sparse.trace_id = Some("ffffffffffffffffffffffffffffffff".to_owned());
    sparse.trace_id_derived = false;
    sparse.status = Some("COMPLETED".to_owned());
    store.upsert_run(&sparse).unwrap();
    let stored = store.run("run_a").unwrap().unwrap();
    assert_eq!(stored.trace_id.as_deref(), Some("0af7651916cd43dd8448eb211c80319c"));
    assert!(stored.trace_id_derived);
    assert_eq!(stored.status.as_deref(), Some("COMPLETED"));
    assert_eq!(stored.task_identifier.as_deref(), Some("send-email"));
    assert_eq!(stored.first_seen_at, T0);
    assert_eq!(stored.last_polled_at, Some(T0 + SEC));

    // A trace id is set once when none was stored.
    store.upsert_run(&RunRecord::new("run_b", T0)).unwrap();
    let mut with_trace = RunRecord::new("run_b", T0);
    with_trace.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned());
    store.upsert_run(&with_trace).unwrap();
    assert_eq!(store.run("run_b").unwrap().unwrap().trace_id, with_trace.trace_id);

    // A derived trace id stays against records that know no better…
    let mut derived = RunRecord::new("run_c", T0);
    derived.trace_id_derived = true;
    store.upsert_run(&derived).unwrap();
    store.upsert_run(&RunRecord::new("run_c", T0 + SEC)).unwrap();
    let stored = store.run("run_c").unwrap().unwrap();
    assert_eq!((stored.trace_id, stored.trace_id_derived), (None, true));
    // … and is provisional: the run's real trace id, once known, replaces it (and then stays).
    store
        .upsert_run(&RunRecord {
            run_id: "run_c".to_owned(),
            ..with_trace.clone()
        })
        .unwrap();
    let stored = store.run("run_c").unwrap().unwrap();
    assert_eq!(
        (stored.trace_id.clone(), stored.trace_id_derived),
        (with_trace.trace_id.clone(), false)
    );
    store.upsert_run(&derived).unwrap();
    let stored = store.run("run_c").unwrap().unwrap();
    assert_eq!((stored.trace_id, stored.trace_id_derived), (with_trace.trace_id, false));

    // Retirement is one-way: a stale unretired record does not bring the run back.
    store.retire("run_a", "settled", T0 + 2 * DAY).unwrap();
    store.upsert_run(&full_record("run_a")).unwrap();
    let stored = store.run("run_a").unwrap().unwrap();
    assert_eq!(
        (stored.retired_at, stored.retire_reason.as_deref()),
        (Some(T0 + 2 * DAY), Some("settled"))
    );
    assert!(store.is_retired("run_a").unwrap());
}

#[test]
fn retire_is_idempotent_and_creates_unknown_runs() {
    let mut store = StateStore::open_in_memory().unwrap();
    assert!(!store.is_retired("run_gone").unwrap());
    store.retire("run_gone", "not_found", T0).unwrap();
    store.retire("run_gone", "max_age", T0 + DAY).unwrap();
    let stored = store.run("run_gone").unwrap().unwrap();
    assert_eq!(stored.first_seen_at, T0);
    assert_eq!(
        (stored.retired_at, stored.retire_reason.as_deref()),
        (Some(T0), Some("not_found"))
    );
    assert!(stored.is_retired());
    assert!(store.unretired_runs().unwrap().is_empty());
}

#[test]
fn reopening_resumes_unretired_runs_and_keeps_retired_ones_retired() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    {
        let mut store = StateStore::open(&path).unwrap();
        for (i, id) in ["run_c", "run_a", "run_b"].iter().enumerate() {
            store.upsert_run(&RunRecord::new(*id, T0 + i as u64)).unwrap();
        }
        store.commit_exported(&spans("run_a", 0..100)).unwrap();
        store.commit_exported(&spans("run_b", 0..10)).unwrap();
        store.retire("run_b", "settled", T0 + DAY).unwrap();
    }
    let store = StateStore::open(&path).unwrap();
    let resumed: Vec<String> = store.unretired_runs().unwrap().into_iter().map(|r| r.run_id).collect();
    assert_eq!(resumed, ["run_c", "run_a"], "oldest first seen first");
    assert!(store.is_retired("run_b").unwrap());
    assert!(!store.is_retired("run_a").unwrap());
    assert_eq!(store.exported_span_ids("run_a").unwrap().len(), 100);
    assert_eq!(store.exported_span_ids("run_b").unwrap().len(), 10);
    assert_eq!(
        store.counts().unwrap(),
        StateCounts {
            runs: 3,
            unretired: 2,
            span_ids: 110
        }
    );
}

#[test]
fn commit_counts_only_new_ids_even_with_duplicates_in_the_batch() {
    let mut store = StateStore::open_in_memory().unwrap();
    let mut batch = spans("run_a", [1, 2, 2, 3]);
    batch.extend(spans("run_b", [2]));
    assert_eq!(store.commit_exported(&batch).unwrap(), 4);
    assert_eq!(store.commit_exported(&spans("run_a", [3, 4])).unwrap(), 1);
    assert_eq!(store.commit_exported(&[]).unwrap(), 0);
    assert_eq!(store.exported_span_ids("run_a").unwrap().len(), 4);
}

#[test]
fn a_failing_batch_commits_nothing() {
    let mut store = StateStore::open_in_memory().unwrap();
    store.commit_exported(&spans("run_a", [1])).unwrap();
    // Make the third insert of the next batch fail, as a full disk or I/O error would.
    store
        .conn
        .execute_batch(
            "CREATE TRIGGER fail_on_ff BEFORE INSERT ON exported_spans
             WHEN NEW.span_id = x'00000000000000ff' BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .unwrap();
    let mut batch = spans("run_a", [2, 3, 0xff, 4]);
    batch.extend(spans("run_b", [5]));
    let err = store.commit_exported(&batch).unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Sqlite {
                operation: "committing exported span ids",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.exported_span_ids("run_a").unwrap(), HashSet::from([span(1)]));
    assert!(store.exported_span_ids("run_b").unwrap().is_empty());

    // The store is usable afterwards (no transaction left open).
    store.conn.execute_batch("DROP TRIGGER fail_on_ff").unwrap();
    assert_eq!(store.commit_exported(&batch).unwrap(), 5);
}

#[test]
fn a_large_batch_commits_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(&state_path(&dir)).unwrap();
    let batch: Vec<(String, SpanId)> = (0..50_000u64)
        .map(|i| (format!("run_{}", i % 50), span(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))))
        .collect();
    let started = Instant::now();
    assert_eq!(store.commit_exported(&batch).unwrap(), 50_000);
    let elapsed = started.elapsed();
    assert_eq!(store.commit_exported(&batch).unwrap(), 0);
    assert_eq!(store.exported_span_ids("run_7").unwrap().len(), 1_000);
    // Generous for debug builds on a loaded CI machine; a release build takes tens of milliseconds.
    assert!(elapsed < Duration::from_secs(10), "50,000 ids took {elapsed:?}");
}

#[test]
fn prune_removes_only_span_ids_of_runs_retired_longer_than_retention_ago() {
    let mut store = StateStore::open_in_memory().unwrap();
    let now = T0 + 30 * DAY;
    let retention = Duration::from_secs(7 * 86_400);
    for id in ["run_old", "run_edge", "run_recent", "run_live"] {
        store.upsert_run(&RunRecord::new(id, T0)).unwrap();
        store.commit_exported(&spans(id, 0..5)).unwrap();
    }
    store.retire("run_old", "settled", now - 8 * DAY).unwrap();
    store.retire("run_edge", "settled", now - 7 * DAY).unwrap(); // exactly `retention` ago: kept
    store.retire("run_recent", "max_age", now - DAY).unwrap();

    assert_eq!(
        store.prune(retention, now).unwrap(),
        PruneReport { runs: 1, span_ids: 5 }
    );
    assert!(store.exported_span_ids("run_old").unwrap().is_empty());
    for id in ["run_edge", "run_recent", "run_live"] {
        assert_eq!(store.exported_span_ids(id).unwrap().len(), 5, "{id}");
    }
    // The pruned run stays known and retired, so it is never polled (and exported) again.
    assert!(store.is_retired("run_old").unwrap());
    assert_eq!(
        store.counts().unwrap(),
        StateCounts {
            runs: 4,
            unretired: 1,
            span_ids: 15
        }
    );
    assert_eq!(store.prune(retention, now).unwrap(), PruneReport::default());

    // A retention longer than the epoch prunes nothing; a zero retention prunes every retired run.
    assert_eq!(store.prune(Duration::MAX, now).unwrap(), PruneReport::default());
    assert_eq!(
        store.prune(Duration::ZERO, now).unwrap(),
        PruneReport { runs: 2, span_ids: 10 }
    );
    assert_eq!(store.exported_span_ids("run_live").unwrap().len(), 5);
}

#[test]
fn a_new_or_empty_file_gets_the_schema_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("new.db");
    let zero_bytes = dir.path().join("zero.db");
    std::fs::write(&zero_bytes, b"").unwrap();
    let empty_sqlite = dir.path().join("empty-sqlite.db");
    Connection::open(&empty_sqlite)
        .unwrap()
        .execute_batch("PRAGMA page_size = 8192; VACUUM;")
        .unwrap();
    assert!(std::fs::metadata(&empty_sqlite).unwrap().len() > 0);

    for path in [&missing, &zero_bytes, &empty_sqlite] {
        let store = StateStore::open(path).unwrap();
        let conn = &store.conn;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal", "{}", path.display());
        let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(synchronous, 1, "NORMAL");
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let app: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).unwrap();
        assert_eq!(app, APPLICATION_ID);
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["exported_spans", "runs"]);
        assert_eq!(store.counts().unwrap(), StateCounts::default());
        drop(store);
        // Reopening a current file migrates nothing and keeps working.
        let store = StateStore::open(path).unwrap();
        assert_eq!(store.path(), path.as_path());
    }
}

#[test]
fn garbage_is_corrupt_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let garbage: Vec<u8> = (0..16_384u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let before = snapshot(&path);

    let err = StateStore::open(&path).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(snapshot(&path), before);
    assert_eq!(before.0, garbage);
}

#[test]
fn a_damaged_state_file_is_corrupt_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    {
        let mut store = StateStore::open(&path).unwrap();
        for run in 0..20 {
            store.commit_exported(&spans(&format!("run_{run}"), 0..500)).unwrap();
        }
    } // closing checkpoints the WAL into the file
    let mut bytes = std::fs::read(&path).unwrap();
    let page_size = 4096;
    assert!(bytes.len() > 8 * page_size);
    for (i, byte) in bytes[3 * page_size..5 * page_size].iter_mut().enumerate() {
        *byte = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    let before = snapshot(&path);

    let err = StateStore::open(&path).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    assert_eq!(snapshot(&path).0, before.0);
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    drop(StateStore::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let before = snapshot(&path);

    let err = StateStore::open(&path).unwrap_err();
    match &err {
        StateError::NewerSchema {
            found,
            supported,
            path: reported,
        } => {
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            assert_eq!(reported, &path);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(snapshot(&path).0, before.0);
}

#[test]
fn another_applications_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'a');")
        .unwrap();
    let before = snapshot(&path);

    let err = StateStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StateError::NotBridgeState { detail, .. } if detail.contains("users")),
        "{err:?}"
    );
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    assert_eq!(snapshot(&path), before, "not switched to WAL, not written");

    // An application id of its own, even without tables, is not ours either.
    let other = dir.path().join("other.db");
    Connection::open(&other)
        .unwrap()
        .pragma_update(None, "application_id", 0x1234)
        .unwrap();
    let err = StateStore::open(&other).unwrap_err();
    assert!(matches!(err, StateError::NotBridgeState { .. }), "{err:?}");
}

#[test]
fn an_unopenable_path_is_an_open_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for path in [
        dir.path().to_path_buf(),
        dir.path().join("missing-dir").join("state.db"),
    ] {
        let err = StateStore::open(&path).unwrap_err();
        assert!(matches!(err, StateError::Open { .. }), "{}: {err:?}", path.display());
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }
}

#[test]
fn in_memory_store_works() {
    let mut store = StateStore::open_in_memory().unwrap();
    assert_eq!(store.path(), Path::new(":memory:"));
    store.upsert_run(&RunRecord::new("run_a", T0)).unwrap();
    store.commit_exported(&spans("run_a", [1])).unwrap();
    assert_eq!(
        store.counts().unwrap(),
        StateCounts {
            runs: 1,
            unretired: 1,
            span_ids: 1
        }
    );
}

#[test]
fn commits_survive_a_process_that_never_closed_the_file() {
    // What a SIGKILL leaves on disk: the main file plus an un-checkpointed WAL (the shared-memory
    // index is rebuilt from the WAL). Copy exactly that and open the copy.
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    let mut store = StateStore::open(&path).unwrap();
    store.upsert_run(&full_record("run_a")).unwrap();
    assert_eq!(store.commit_exported(&spans("run_a", 0..1_000)).unwrap(), 1_000);
    store.retire("run_a", "settled", T0 + DAY).unwrap();

    let copy = dir.path().join("after-kill.db");
    std::fs::copy(&path, &copy).unwrap();
    let wal = std::fs::read(format!("{}-wal", path.display())).unwrap();
    assert!(!wal.is_empty(), "the commits are still in the WAL");
    std::fs::write(format!("{}-wal", copy.display()), wal).unwrap();
    std::mem::forget(store); // never closed, never checkpointed

    let reopened = StateStore::open(&copy).unwrap();
    assert_eq!(reopened.exported_span_ids("run_a").unwrap().len(), 1_000);
    assert!(reopened.is_retired("run_a").unwrap());
}

#[test]
fn only_a_run_retired_for_its_removal_is_reopened() {
    let mut store = StateStore::open_in_memory().unwrap();
    store.upsert_run(&RunRecord::new("run_removed", T0)).unwrap();
    store.retire("run_removed", "removed", T0 + SEC).unwrap();
    store.upsert_run(&RunRecord::new("run_settled", T0)).unwrap();
    store.retire("run_settled", "settled", T0 + SEC).unwrap();
    assert!(!store.reopen("run_settled", "removed").unwrap());
    assert!(store.run("run_settled").unwrap().unwrap().retired_at.is_some());
    assert!(!store.reopen("run_unknown", "removed").unwrap());
    assert!(store.reopen("run_removed", "removed").unwrap());
    let reopened = store.run("run_removed").unwrap().unwrap();
    assert_eq!((reopened.retired_at, reopened.retire_reason), (None, None));
    assert!(store
        .unretired_runs()
        .unwrap()
        .iter()
        .any(|r| r.run_id == "run_removed"));
    // Once open, there is nothing to reopen.
    assert!(!store.reopen("run_removed", "removed").unwrap());
}

#[test]
fn a_full_file_fails_a_commit_as_full_and_the_same_commit_succeeds_with_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(&state_path(&dir)).unwrap();
    store.commit_exported(&spans("run_a", 0..10)).unwrap();
    store.simulate_full_disk(true).unwrap();
    // Enough ids to need new pages (WAL mode: the cap still applies to the database's size).
    let batch = spans("run_a", 1_000..6_000);
    let error = store.commit_exported(&batch).unwrap_err();
    assert_eq!(error.write_fault(), Some(super::WriteFault::Full), "{error}");
    assert!(error.to_string().contains("full"), "{error}");
    // Nothing of the failed batch was kept; the ids before it were.
    assert_eq!(store.exported_span_ids("run_a").unwrap().len(), 10);
    store.simulate_full_disk(false).unwrap();
    assert_eq!(store.commit_exported(&batch).unwrap(), 5_000);
    assert_eq!(store.exported_span_ids("run_a").unwrap().len(), 5_010);
}

#[test]
fn only_passing_write_failures_are_write_faults() {
    let path = PathBuf::from("/x/state.db");
    let sqlite = |code: i32| StateError::Sqlite {
        path: path.clone(),
        operation: "committing",
        source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None),
    };
    use super::WriteFault;
    use rusqlite::ffi;
    assert_eq!(sqlite(ffi::SQLITE_FULL).write_fault(), Some(WriteFault::Full));
    assert_eq!(sqlite(ffi::SQLITE_READONLY).write_fault(), Some(WriteFault::ReadOnly));
    assert_eq!(sqlite(ffi::SQLITE_IOERR_WRITE).write_fault(), Some(WriteFault::Io));
    assert_eq!(sqlite(ffi::SQLITE_BUSY).write_fault(), Some(WriteFault::Busy));
    assert_eq!(sqlite(ffi::SQLITE_CONSTRAINT).write_fault(), None);
    let corrupt = StateError::Corrupt {
        path: path.clone(),
        reason: "x".into(),
    };
    assert_eq!(corrupt.write_fault(), None);
}

#[test]
fn a_version_1_file_migrates_forward_and_keeps_its_runs_and_span_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = state_path(&dir);
    {
        // A state file as release 1 wrote it: the first migration only.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(super::schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID).unwrap();
        conn.execute(
            "INSERT INTO runs (run_id, status, first_seen_at, retired_at, retire_reason)
             VALUES ('run_old', 'EXECUTING', ?1, ?2, 'not_found')",
            [T0 as i64, (T0 + SEC) as i64],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO exported_spans (run_id, span_id) VALUES ('run_old', ?1)",
            [span(7).to_bytes().to_vec()],
        )
        .unwrap();
    }
    let mut store = StateStore::open(&path).unwrap();
    let version: u32 = store.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 2);
    let record = store.run("run_old").unwrap().unwrap();
    assert_eq!(record.status.as_deref(), Some("EXECUTING"));
    assert_eq!(record.retire_reason.as_deref(), Some("not_found"));
    assert_eq!((record.reopened_at, record.span_ids_pruned_at), (None, None));
    assert_eq!(store.exported_span_ids("run_old").unwrap(), HashSet::from([span(7)]));
    // The new columns work on the migrated file.
    assert_eq!(
        store.reopen_retired("run_old", false, T0 + 2 * SEC).unwrap(),
        Reopened::Reopened {
            reason: "not_found".into(),
            span_ids: 1
        }
    );
    assert_eq!(store.run("run_old").unwrap().unwrap().reopened_at, Some(T0 + 2 * SEC));
    drop(store);
    // Opening again migrates nothing.
    let store = StateStore::open(&path).unwrap();
    assert_eq!(store.unretired_runs().unwrap().len(), 1);
}

#[test]
fn pruning_marks_the_runs_whose_span_ids_it_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::open(&state_path(&dir)).unwrap();
    store.commit_exported(&spans("run_a", 0..3)).unwrap();
    store.retire("run_a", "settled", T0).unwrap();
    store.retire("run_b", "settled", T0 + 100 * SEC).unwrap();
    store.prune(Duration::from_secs(50), T0 + 60 * SEC).unwrap();
    assert_eq!(
        store.run("run_a").unwrap().unwrap().span_ids_pruned_at,
        Some(T0 + 60 * SEC)
    );
    assert_eq!(
        store.run("run_b").unwrap().unwrap().span_ids_pruned_at,
        None,
        "retired after the cutoff"
    );
    assert_eq!(
        store.reopen_retired("run_a", false, T0 + 61 * SEC).unwrap(),
        Reopened::Pruned {
            pruned_at: T0 + 60 * SEC
        }
    );
    assert!(store.is_retired("run_a").unwrap(), "left retired");
}
