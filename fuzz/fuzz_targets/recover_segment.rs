//! Arbitrary bytes as the tail of a valid active segment, over it, or as a whole sealed
//! segment, index or checkpoint file: open never panics, the recovered log is a valid prefix,
//! and appending afterwards works and survives another reopen.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shardlog::testing::recover_log_with_damage(data);
});
