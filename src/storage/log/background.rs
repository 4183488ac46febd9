//! The log's background thread, under `Always` and `Interval`: interval syncs, the periodic
//! recovery-point checkpoint, and group commits that a caller waiting on several logs at
//! once hands to it, so that those logs' fsyncs overlap without a thread spawned per wait
//! (a put_records over 4 shards from 8 producers spawned 2.6 threads per call, half of the
//! durable phase's CPU).

use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Shared;
use crate::storage::options::Durability;
use crate::storage::segment::lock;

/// What callers ask of the background thread.
#[derive(Debug, Default)]
pub(super) struct Wake {
    /// Set once, by close: the thread exits.
    stopped: bool,
    /// Whether the thread is there to answer (false before it starts and after it exits,
    /// a failure included).
    running: bool,
    /// The greatest log position a caller asked to be synced and the thread has not yet
    /// taken up.
    sync_to: Option<u64>,
}

/// The [`Wake`] state and the condition variable the thread sleeps on.
pub(super) type WakeSignal = (Mutex<Wake>, Condvar);

impl Shared {
    /// Starts the background thread, whose period is the interval under `Interval` (or the
    /// checkpoint interval, if shorter) and the checkpoint interval under `Always`. `None`
    /// mode has none: it syncs (and so checkpoints) only at rolls and close.
    pub(super) fn start_background(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        let interval = match self.options.durability {
            Durability::Interval(interval) => interval.min(self.options.checkpoint_interval),
            Durability::Always => self.options.checkpoint_interval,
            Durability::None => return None,
        };
        lock(&self.wake.0).running = true;
        let weak = Arc::downgrade(self);
        let wake = self.wake.clone();
        let spawned = std::thread::Builder::new()
            .name("shardlog-sync".into())
            .spawn(move || {
                run(&weak, &wake, interval);
                lock(&wake.0).running = false;
            });
        match spawned {
            Ok(handle) => Some(handle),
            Err(_) => {
                lock(&self.wake.0).running = false;
                None
            }
        }
    }

    /// Asks the background thread to sync the log up to `target`, joining or leading a
    /// group commit as any waiter does. Returns `false`, asking nothing, if there is no
    /// thread to ask; the caller then leads the sync itself.
    pub(super) fn request_sync(&self, target: u64) -> bool {
        let mut wake = lock(&self.wake.0);
        if !wake.running || wake.stopped {
            return false;
        }
        wake.sync_to = Some(wake.sync_to.map_or(target, |t| t.max(target)));
        drop(wake);
        self.wake.1.notify_one();
        true
    }

    /// Tells the background thread to exit (the caller joins it).
    pub(super) fn stop_background(&self) {
        lock(&self.wake.0).stopped = true;
        self.wake.1.notify_all();
    }
}

/// The thread's loop. It holds the log only weakly, so that it never keeps a dropped log
/// alive; any failure has poisoned the log, and appenders see it on their next call.
fn run(shared: &Weak<Shared>, wake: &WakeSignal, interval: Duration) {
    let mut last_sync = Instant::now();
    let mut last_upkeep = Instant::now();
    loop {
        let requested = {
            let timeout = interval.saturating_sub(last_upkeep.elapsed());
            let state = lock(&wake.0);
            let (mut state, _) = wake
                .1
                .wait_timeout_while(state, timeout, |w| !w.stopped && w.sync_to.is_none())
                .unwrap_or_else(PoisonError::into_inner);
            if state.stopped {
                return;
            }
            state.sync_to.take()
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Some(target) = requested {
            if shared.sync_to(target).is_err() {
                return;
            }
        }
        if last_upkeep.elapsed() < interval {
            continue;
        }
        last_upkeep = Instant::now();
        if let Durability::Interval(every) = shared.options.durability {
            if last_sync.elapsed() >= every {
                last_sync = Instant::now();
                let target = lock(&shared.writer).lsn;
                if shared.sync_to(target).is_err() {
                    return;
                }
            }
        }
        if shared.checkpoint_if_due().is_err() {
            return;
        }
    }
}
