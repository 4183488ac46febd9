//! What `esm_model` checks after the last run: every record accounted for, and the metrics
//! and failure records agree with what the function saw.

use serde_json::Value;

use super::esm_model::{lock, parse, ModelFunction, Scenario};
use crate::consumer::MetricsSnapshot;
use crate::stream::{ShardIteratorType, Store, Stream};

/// After the last run: every record is accounted for, and the metrics agree with what the
/// function saw.
pub(super) fn check_final(
    s: &Scenario,
    function: &ModelFunction,
    store: &Store,
    runs: &[MetricsSnapshot],
    crashed: bool,
) {
    let observed = lock(&function.observed);
    let sum = |f: fn(&MetricsSnapshot) -> u64| runs.iter().map(f).sum::<u64>();
    assert_eq!(
        sum(|m| m.totals.invocations),
        observed.reached_function,
        "Invocations counts every attempt that reached the function"
    );
    // Failure records in the destination, by shard: the sequence ranges they cover.
    let mut reported: Vec<(String, u128, u128)> = Vec::new();
    let mut reported_records = 0;
    if s.destination {
        let Ok(dlq) = store.stream("dlq") else {
            panic!("the destination stream exists");
        };
        for record in read_all(&dlq) {
            let Ok(failure) = serde_json::from_slice::<Value>(&record) else {
                panic!("a failure record is JSON");
            };
            let text = |pointer: &str| failure.pointer(pointer).and_then(Value::as_str);
            let shard = text("/KinesisBatchInfo/shardId")
                .unwrap_or_default()
                .to_string();
            let start = parse(text("/KinesisBatchInfo/startSequenceNumber").unwrap_or("x"));
            let end = parse(text("/KinesisBatchInfo/endSequenceNumber").unwrap_or("x"));
            reported_records += failure
                .pointer("/KinesisBatchInfo/batchSize")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            reported.push((shard, start, end));
            let condition = text("/requestContext/condition");
            let invokes = failure
                .pointer("/requestContext/approximateInvokeCount")
                .and_then(Value::as_i64);
            let retries = i64::from(s.retries).clamp(-1, 4);
            if condition == Some("RetryAttemptsExhausted") {
                assert!(retries >= 0, "retries exhausted although infinite");
                let ok = if crashed {
                    invokes.is_some_and(|n| n >= 1 && n <= retries + 1)
                } else {
                    invokes == Some(retries + 1)
                };
                assert!(
                    ok,
                    "approximateInvokeCount {invokes:?} with MaximumRetryAttempts {retries}"
                );
            }
        }
        assert_eq!(
            reported_records,
            sum(|m| m.totals.on_failure_destination_delivered_event_count),
            "the destination holds every record counted as delivered there"
        );
    }
    let dropped = sum(|m| m.totals.dropped_event_count);
    let mut unaccounted = 0u64;
    for (sequence, put) in &function.puts {
        if !put.matches || observed.processed_ever.contains(sequence) {
            continue;
        }
        let in_destination = reported
            .iter()
            .any(|(shard, start, end)| shard == &put.shard && start <= sequence && sequence <= end);
        if !in_destination {
            unaccounted += 1;
        }
    }
    if crashed {
        assert!(
            unaccounted <= dropped,
            "{unaccounted} records neither processed, reported nor dropped ({dropped} dropped)"
        );
    } else {
        assert_eq!(
            unaccounted, dropped,
            "records neither processed nor reported must be exactly the dropped ones"
        );
        let filtered = function.puts.values().filter(|p| !p.matches).count() as u64;
        assert_eq!(sum(|m| m.totals.filtered_out_event_count), filtered);
    }
    // Every shard's checkpoint reaches its last record.
    let checkpoints = lock(&function.checkpoints);
    for (sequence, put) in function.puts.iter().rev() {
        let checkpoint = checkpoints
            .get(&put.shard)
            .and_then(|c| c.sequence_number)
            .map_or(0, |c| parse(&c));
        assert!(
            checkpoint >= *sequence,
            "{} is not checkpointed to its last record after an idle run",
            put.shard
        );
    }
}

fn read_all(stream: &Stream) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let Ok(shards) = stream.list_shards() else {
        panic!("list_shards");
    };
    for shard in shards {
        let Ok(mut iterator) =
            stream.get_shard_iterator(&shard.shard_id, &ShardIteratorType::TrimHorizon)
        else {
            panic!("iterator");
        };
        loop {
            let Ok(page) = stream.get_records(&iterator, 10_000) else {
                panic!("get_records");
            };
            let empty = page.records.is_empty();
            out.extend(page.records.into_iter().map(|r| r.data.to_vec()));
            match page.next_shard_iterator {
                Some(next) if !empty => iterator = next,
                _ => break,
            }
        }
    }
    out
}
