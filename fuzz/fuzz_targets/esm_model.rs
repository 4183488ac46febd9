//! An event source mapping whose function answers from a fuzzer-chosen script (successes,
//! errors, partial failures with any identifiers, throttles) and whose consumer crashes at
//! chosen points, checked against a model of Lambda's rules: no record skipped without being
//! filtered, reported or counted as dropped; checkpoints never move backwards; invocation
//! counts match the retry rules.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shardlog::testing::esm_model(data);
});
