//! The decision log: an optional, bounded record of every choice a mapping makes — each
//! invocation with its batch boundaries and attempt, how it ended, each backoff pause, bisect,
//! discard (with its condition and whether the destination took it) and checkpoint — stamped
//! with the mapping's clock. With a virtual clock, a fixed seed and a deterministic function,
//! replaying a scenario gives the identical log; a diff of two logs shows where runs diverged.
//!
//! Jitter and request ids come from one seeded generator per (shard, lane), so a lane's
//! decisions do not depend on how threads of other lanes interleave.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Entries a log keeps by default before it stops recording (and counts what it dropped).
pub const DECISION_LOG_ENTRIES_MAX: usize = 1_000_000;

/// One decision of a mapping. `lane` is the lane within the shard (0 without parallelization).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "Decision")]
pub enum Decision {
    /// An invocation is made.
    Invoke {
        /// Mapping clock, ms.
        at_ms: i64,
        /// Shard.
        shard: String,
        /// Lane.
        lane: usize,
        /// First record's sequence number (`None` for a window's final invocation).
        first_sequence: Option<String>,
        /// Last record's sequence number.
        last_sequence: Option<String>,
        /// Records in the event.
        records: usize,
        /// Attempt number for these records (1 for the first).
        attempt: u64,
        /// A tumbling window's final invocation.
        final_for_window: bool,
    },
    /// How the invocation ended: `Success`, `FunctionError`, `ServiceError`,
    /// `MissingWindowState`, `RetryFrom(i)` or `WholeFailure`.
    Outcome {
        /// Mapping clock, ms.
        at_ms: i64,
        /// Shard.
        shard: String,
        /// Lane.
        lane: usize,
        /// The outcome.
        outcome: String,
    },
    /// A pause before the next attempt.
    Backoff {
        /// Mapping clock, ms.
        at_ms: i64,
        /// Shard.
        shard: String,
        /// Lane.
        lane: usize,
        /// The pause, µs.
        pause_us: u64,
    },
    /// A failed batch split in two.
    Bisect {
        /// Mapping clock, ms.
        at_ms: i64,
        /// Shard.
        shard: String,
        /// Lane.
        lane: usize,
        /// Records in the first half.
        first_half: usize,
        /// Records in the second half.
        second_half: usize,
    },
    /// Records given up on.
    Discard {
        /// Mapping clock, ms.
        at_ms: i64,
        /// Shard.
        shard: String,
        /// Lane.
        lane: usize,
        /// `RetryAttemptsExhausted` or `RecordAgeExceeded`.
        condition: String,
        /// First record's sequence number.
        first_sequence: String,
        /// Last record's sequence number.
        last_sequence: String,
        /// Records discarded.
        records: usize,
        /// Invocations they had.
        approximate_invoke_count: u64,
        /// Whether the on-failure destination took the failure record (else: dropped).
        reported: bool,
    },
    /// Records retention removed from the stream while they were being retried: dropped
    /// without a failure record, as Lambda does.
    Expired {
        /// Mapping clock, ms.
        at_ms: i64,
        /// Shard.
        shard: String,
        /// Lane.
        lane: usize,
        /// Records that left.
        records: usize,
    },
    /// A checkpoint written.
    Checkpoint {
        /// Mapping clock, ms.
        at_ms: i64,
        /// Shard.
        shard: String,
        /// Last processed sequence number.
        sequence: Option<String>,
        /// The shard is finished (read to its end and processed).
        finished: bool,
    },
}

/// A bounded, thread-safe list of [`Decision`]s; share it through `MappingOptions`.
#[derive(Debug)]
pub struct DecisionLog {
    entries: Mutex<Vec<Decision>>,
    dropped: AtomicU64,
    entries_max: usize,
}

impl Default for DecisionLog {
    fn default() -> Self {
        DecisionLog::with_entries_max(DECISION_LOG_ENTRIES_MAX)
    }
}

impl DecisionLog {
    /// A log that keeps at most `entries_max` decisions and counts the rest as dropped.
    pub fn with_entries_max(entries_max: usize) -> DecisionLog {
        DecisionLog {
            entries: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            entries_max,
        }
    }

    /// Appends a decision (or counts it dropped once the log is full).
    pub fn record(&self, decision: Decision) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() < self.entries_max {
            entries.push(decision);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The decisions so far, in the order they were recorded.
    pub fn entries(&self) -> Vec<Decision> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Decisions not kept because the log was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The decisions as JSON lines.
    pub fn to_json_lines(&self) -> String {
        self.entries()
            .iter()
            .filter_map(|d| serde_json::to_string(d).ok())
            .map(|line| line + "\n")
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(n: i64) -> Decision {
        Decision::Checkpoint {
            at_ms: n,
            shard: "shardId-000000000000".into(),
            sequence: Some(n.to_string()),
            finished: false,
        }
    }

    #[test]
    fn a_full_log_counts_what_it_drops() {
        let log = DecisionLog::with_entries_max(2);
        for n in 0..5 {
            log.record(checkpoint(n));
        }
        assert_eq!(log.entries(), vec![checkpoint(0), checkpoint(1)]);
        assert_eq!(log.dropped(), 3);
    }

    #[test]
    fn decisions_serialise_as_tagged_json_lines() {
        let log = DecisionLog::default();
        log.record(checkpoint(7));
        assert_eq!(
            log.to_json_lines(),
            "{\"Decision\":\"Checkpoint\",\"at_ms\":7,\"shard\":\"shardId-000000000000\",\"sequence\":\"7\",\"finished\":false}\n"
        );
    }
}
