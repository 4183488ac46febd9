//! Arbitrary bytes into the KPL de-aggregator: user records or a whole pass-through.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shardlog::testing::kpl_deaggregate_total(data);
});
