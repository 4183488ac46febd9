//! Group commit: appends under `Always` are acknowledged by an fdatasync that one waiter
//! leads for everyone waiting, and a caller appending to several logs (a put_records across
//! shards) writes to all of them before waiting, so their syncs overlap.

use super::{Appended, Log, Shared};
use crate::error::{Error, Result};
use crate::format::batch::RecordIn;
use crate::storage::recovery::tip_of;
use crate::storage::segment::lock;

/// What an [`Log::append_deferred`] batch still waits for: the group commit that makes it
/// durable under [`Durability::Always`](crate::storage::Durability::Always) (nothing in the
/// other modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a deferred append is acknowledged only by Log::wait_durable"]
pub struct PendingSync {
    pub(super) target_lsn: Option<u64>,
}

impl Log {
    /// Like [`Log::append_batch`], but returns as soon as the batch is written, with what
    /// is left to wait for under [`Durability::Always`](crate::storage::Durability::Always). A caller appending to several logs
    /// writes to all of them and then waits on each, so their fsyncs overlap instead of
    /// queueing one after another. The batch is acknowledged (durable, and visible to readers
    /// under `Always`) only once [`Log::wait_durable`] returns `Ok`; until then an fsync
    /// failure may still lose it.
    pub fn append_deferred(
        &self,
        records: &[RecordIn<'_>],
        aggregated: bool,
    ) -> Result<(Appended, PendingSync)> {
        self.shared.write(records, aggregated)
    }

    /// Returns once the batch behind `pending` is as durable as the log's mode promises
    /// (at once unless the mode is `Always`); joins or leads a group commit.
    pub fn wait_durable(&self, pending: PendingSync) -> Result<()> {
        match pending.target_lsn {
            Some(target) => self.shared.sync_to(target),
            None => Ok(()),
        }
    }

    /// [`Log::wait_durable`] for batches in several logs at once, one result per entry in
    /// order. Each log's background thread is asked to lead the syncs this thread would
    /// otherwise lead one after another, so the logs' syncs overlap: the whole wait costs
    /// about the slowest sync rather than their sum.
    pub fn wait_durable_all(pending: &[(&Log, PendingSync)]) -> Vec<Result<()>> {
        // Only syncs no one leads yet are handed over (joining one costs nothing), and not
        // the first, which this thread leads while the others run.
        for (log, p) in pending.iter().skip(1) {
            if let Some(target) = p.target_lsn.filter(|&t| log.shared.needs_leader(t)) {
                // Unanswered (no background thread), the wait below leads it.
                let _ = log.shared.request_sync(target);
            }
        }
        pending
            .iter()
            .map(|(log, p)| log.wait_durable(*p))
            .collect()
    }
}

impl Shared {
    /// Whether a wait for `target` would find no sync under way to join (a hint: the state
    /// may change at once).
    fn needs_leader(&self, target: u64) -> bool {
        let state = lock(&self.sync);
        state.synced_lsn < target && !state.leader
    }

    /// Group commit: returns once everything up to `target` is synced. One caller syncs for
    /// all that wait; an error poisons the log and fails every waiter.
    pub(super) fn sync_to(&self, target: u64) -> Result<()> {
        // Segments become durable in order: seals before the active segment first.
        self.finish_seals()?;
        let mut state = lock(&self.sync);
        loop {
            self.check_poison()?;
            if state.synced_lsn >= target {
                return Ok(());
            }
            if !state.leader {
                break;
            }
            state = self
                .synced_cv
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        state.leader = true;
        drop(state);
        let (lsn, active, tip) = {
            let writer = lock(&self.writer);
            (writer.lsn, writer.active.clone(), tip_of(&writer.cursor))
        };
        let result = active.file.sync_data();
        let mut state = lock(&self.sync);
        state.leader = false;
        let outcome = match result {
            Ok(()) => {
                if lsn > state.synced_lsn {
                    state.synced_lsn = lsn;
                    state.synced = (active.clone(), tip);
                }
                active.publish(tip);
                Ok(())
            }
            Err(e) => Err(self.poison("fsync", Error::io(&active.path, "fsync", e))),
        };
        drop(state);
        self.synced_cv.notify_all();
        outcome
    }
}
