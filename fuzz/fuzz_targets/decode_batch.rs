//! Arbitrary bytes into the batch decoder (both codecs): no panic, no unbounded allocation,
//! and a batch that decodes re-encodes to the same records (the same bytes when raw).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shardlog::testing::decode_batch_round_trip(data);
});
