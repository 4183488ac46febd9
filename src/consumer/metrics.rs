//! A mapping's counters under AWS's metric names, for the whole mapping and per shard.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// Counters of one mapping (or one shard of it) for this run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Counters {
    /// Records read from the stream.
    pub polled_event_count: u64,
    /// Records dropped by the filters.
    pub filtered_out_event_count: u64,
    /// Records sent in invocations.
    pub invoked_event_count: u64,
    /// Records in invocations that failed (function error or partial failure).
    pub failed_invoke_event_count: u64,
    /// Records discarded (age or retries) without reaching a destination.
    pub dropped_event_count: u64,
    /// Records reported to the on-failure destination.
    pub on_failure_destination_delivered_event_count: u64,
    /// Invocations, failed ones included.
    pub invocations: u64,
    /// Invocations that ended in a function error.
    pub errors: u64,
    /// Invocations refused before reaching the function.
    pub throttles: u64,
    /// Failed writes to the on-failure destination.
    pub destination_delivery_failures: u64,
    /// Invocations repeated after a failure (not counting bisect halves or throttles).
    pub retries: u64,
    /// Batches split in two after a function error.
    pub bisects: u64,
    /// Age in ms of the last record of the latest batch when it was invoked.
    pub iterator_age: u64,
}

/// The mapping's counters, and the same per shard.
#[derive(Debug, Default)]
pub struct Metrics {
    shards: Mutex<BTreeMap<String, Counters>>,
}

/// A snapshot for printing: the totals flat, plus `Shards`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricsSnapshot {
    /// Totals over all shards (IteratorAge: the greatest).
    #[serde(flatten)]
    pub totals: Counters,
    /// Per shard.
    pub shards: BTreeMap<String, Counters>,
}

impl Metrics {
    /// Applies `update` to a shard's counters.
    pub fn update(&self, shard: &str, update: impl FnOnce(&mut Counters)) {
        let mut shards = self.shards.lock().unwrap_or_else(PoisonError::into_inner);
        update(shards.entry(shard.to_string()).or_default());
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let shards = self
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut totals = Counters::default();
        for c in shards.values() {
            totals.polled_event_count += c.polled_event_count;
            totals.filtered_out_event_count += c.filtered_out_event_count;
            totals.invoked_event_count += c.invoked_event_count;
            totals.failed_invoke_event_count += c.failed_invoke_event_count;
            totals.dropped_event_count += c.dropped_event_count;
            totals.on_failure_destination_delivered_event_count +=
                c.on_failure_destination_delivered_event_count;
            totals.invocations += c.invocations;
            totals.errors += c.errors;
            totals.throttles += c.throttles;
            totals.destination_delivery_failures += c.destination_delivery_failures;
            totals.retries += c.retries;
            totals.bisects += c.bisects;
            totals.iterator_age = totals.iterator_age.max(c.iterator_age);
        }
        MetricsSnapshot { totals, shards }
    }
}
