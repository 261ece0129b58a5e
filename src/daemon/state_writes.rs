//! The loop's own state writes (runs recorded, retired, reopened), kept in order and written again while
//! the state file refuses them for now (a full disk, a read-only file system). The run itself
//! goes on in memory; polling pauses (`Health::state_writable`) until the file takes writes.

use super::{unix_now_ns, DaemonError, Loop};
use crate::commit::{RunRecord, StateError, StateStore};
use crate::telemetry::health::StateWriter;

/// One write of the loop's.
#[derive(Debug)]
pub(super) enum StateWrite {
    Upsert(RunRecord),
    Retire {
        run_id: String,
        reason: &'static str,
        at: u64,
    },
    /// Watch again a run retired as `reason` (named in `runs.ids` again after its removal).
    Reopen {
        run_id: String,
        reason: &'static str,
    },
}

impl StateWrite {
    pub(super) fn retire(run_id: &str, reason: &'static str) -> Self {
        StateWrite::Retire {
            run_id: run_id.to_owned(),
            reason,
            at: unix_now_ns(),
        }
    }

    fn apply(&self, store: &mut StateStore) -> Result<(), StateError> {
        match self {
            StateWrite::Upsert(record) => store.upsert_run(record),
            StateWrite::Retire { run_id, reason, at } => store.retire(run_id, reason, *at),
            StateWrite::Reopen { run_id, reason } => store.reopen(run_id, reason).map(|_| ()),
        }
    }
}

impl Loop {
    /// The run was retired here and its retirement waits to be written: the file still shows it
    /// unretired, yet it is not to be watched again.
    pub(super) fn retire_pending(&self, run_id: &str) -> bool {
        self.deferred_writes
            .iter()
            .any(|write| matches!(write, StateWrite::Retire { run_id: id, .. } if id == run_id))
    }

    /// Write now, or after the writes already waiting (order matters: a run recorded, then
    /// retired). A write the file refuses for now waits with them; any other failure is the
    /// daemon's error, as before.
    pub(super) fn write_state(&mut self, write: StateWrite) -> Result<(), DaemonError> {
        self.deferred_writes.push(write);
        self.flush_state_writes()
    }

    /// Write what waits, in order, until the file refuses one for now (it stays, with the rest).
    /// Called on every write and on the loop's heartbeat.
    pub(super) fn flush_state_writes(&mut self) -> Result<(), DaemonError> {
        let was_failing = self.state_write_failing;
        while let Some(write) = self.deferred_writes.first() {
            let result = self.with_state(|store| write.apply(store));
            match result {
                Ok(()) => {
                    self.deferred_writes.remove(0);
                }
                Err(error) => {
                    let Some(fault) = error.write_fault() else {
                        return Err(error.into());
                    };
                    if !was_failing {
                        tracing::error!(
                            %error,
                            "cannot write the state file ({}): runs go on in memory, polling pauses until it can be written",
                            fault.as_str()
                        );
                    }
                    self.state_write_failing = true;
                    self.stats.health.state_write_failed(StateWriter::Loop, fault.as_str());
                    return Ok(());
                }
            }
        }
        if was_failing {
            self.state_write_failing = false;
            self.stats.health.state_write_recovered(StateWriter::Loop);
            tracing::warn!("the state file takes writes again: the runs' records are written");
        }
        Ok(())
    }
}
