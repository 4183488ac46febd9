//! Replays the checked-in seed corpus and every input a fuzzer ever crashed on
//! (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`) through the same harnesses the fuzz
//! targets run, so plain `cargo test` keeps every fuzz finding fixed.

use std::path::Path;

use shardlog::testing::{
    decode_batch_round_trip, filter_pattern_total, kpl_deaggregate_total, recover_log_with_damage,
};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("entry").path();
            out.push((
                path.display().to_string(),
                std::fs::read(&path).expect("input"),
            ));
        }
    }
    out.sort();
    out
}

fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let inputs = inputs(target);
    for (name, bytes) in &inputs {
        if let Err(panic) = std::panic::catch_unwind(|| harness(bytes)) {
            std::panic::resume_unwind(Box::new(format!("{name}: {panic:?}")));
        }
    }
    inputs.len()
}

#[test]
fn decode_batch_inputs_replay() {
    assert!(
        replay("decode_batch", decode_batch_round_trip) >= 3,
        "seed corpus present"
    );
}

#[test]
fn recover_segment_inputs_replay() {
    assert!(
        replay("recover_segment", recover_log_with_damage) >= 5,
        "seed corpus present"
    );
}

#[test]
fn kpl_deaggregate_inputs_replay() {
    assert!(
        replay("kpl_deaggregate", kpl_deaggregate_total) >= 3,
        "seed corpus present"
    );
}

#[test]
fn filter_pattern_inputs_replay() {
    assert!(
        replay("filter_pattern", filter_pattern_total) >= 3,
        "seed corpus present"
    );
}

/// Writes the seed corpus. Run with `SHARDLOG_WRITE_SEEDS=1 cargo test --release --test
/// fuzz_regressions -- --ignored`.
#[test]
#[ignore = "writes fuzz/seeds"]
fn write_seed_corpus() {
    use shardlog::format::batch::{encode_batch, RecordIn};
    use shardlog::format::codec::{Compression, EncodeScratch};
    assert_eq!(std::env::var("SHARDLOG_WRITE_SEEDS").as_deref(), Ok("1"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let decode = root.join("decode_batch");
    std::fs::create_dir_all(&decode).expect("dir");
    let data = b"{\"event\":1,\"kind\":\"click\",\"kind\":\"click\",\"kind\":\"click\"}".repeat(8);
    for (name, compression, ehk) in [
        ("raw", Compression::None, None),
        ("raw_ehk", Compression::None, Some(u128::MAX)),
        ("zstd", Compression::Zstd { level: 1 }, None),
    ] {
        let records: Vec<_> = (0..3)
            .map(|i| RecordIn {
                timestamp_ms: 1_000 + i,
                partition_key: b"pk",
                explicit_hash_key: ehk,
                data: &data,
            })
            .collect();
        let mut out = Vec::new();
        encode_batch(
            &mut out,
            &mut EncodeScratch::default(),
            42,
            &records,
            compression,
            name == "raw",
        )
        .expect("encode");
        std::fs::write(decode.join(name), out).expect("write");
    }
    let kpl = root.join("kpl_deaggregate");
    std::fs::create_dir_all(&kpl).expect("dir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kpl");
    for name in [
        "single.bin",
        "three_keys.bin",
        "explicit_hash_keys.bin",
        "bad_digest.bin",
    ] {
        std::fs::copy(fixtures.join(name), kpl.join(name)).expect("copy vector");
    }
    let filter = root.join("filter_pattern");
    std::fs::create_dir_all(&filter).expect("dir");
    for (name, text) in [
        ("exact", "{\"data\":{\"kind\":[\"click\"]}}\n{\"data\":{\"kind\":\"click\"}}"),
        ("numeric", "{\"data\":{\"n\":[{\"numeric\":[\">\",1,\"<=\",5]}]}}\n{\"data\":{\"n\":3}}"),
        ("or_prefix", "{\"$or\":[{\"partitionKey\":[{\"prefix\":\"us-\"}]},{\"data\":{\"x\":[{\"exists\":false}]}}]}\n{\"partitionKey\":\"us-1\"}"),
    ] {
        std::fs::write(filter.join(name), text).expect("write");
    }
    let recover = root.join("recover_segment");
    std::fs::create_dir_all(&recover).expect("dir");
    for selector in 0u8..5 {
        let mut input = vec![selector, 128];
        input.extend_from_slice(b"SLGB\x40\x00\x00\x00garbage after a torn batch header");
        std::fs::write(recover.join(format!("damage_{selector}")), input).expect("write");
    }
}

#[test]
fn stream_model_inputs_replay() {
    assert!(
        replay("stream_model", shardlog::testing::stream_model) >= 5,
        "seed corpus present"
    );
}

#[test]
fn esm_model_inputs_replay() {
    assert!(
        replay("esm_model", shardlog::testing::esm_model) >= 5,
        "seed corpus present"
    );
}
