//! An arbitrary pattern and event: parse errors are typed, matching never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shardlog::testing::filter_pattern_total(data);
});
