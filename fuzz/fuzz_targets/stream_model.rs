//! A structured sequence of stream operations (puts, put_records, reads, splits, merges,
//! retention changes, clock jumps, I/O faults, crashes with torn or reordered writes) checked
//! against an in-memory model: nothing acknowledged and synced is lost, nothing is invented
//! or reordered, and sequence numbers never change.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shardlog::testing::stream_model(data);
});
