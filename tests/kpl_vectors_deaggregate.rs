//! The KPL vectors made by the reference aws-kinesis-agg library (tests/fixtures/kpl/): every
//! vector de-aggregates to the manifest's expected records (bad digest, bad magic and
//! truncated records pass through whole), and aggregating the expected user records again
//! reproduces the reference library's bytes exactly.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use shardlog::format::kpl::{aggregate, deaggregate, UserRecord};

fn fixtures() -> (std::path::PathBuf, Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kpl");
    let manifest = std::fs::read(dir.join("manifest.json")).expect("manifest");
    (dir, serde_json::from_slice(&manifest).expect("json"))
}

#[test]
fn every_vector_deaggregates_to_the_expected_records() {
    let (dir, manifest) = fixtures();
    let vectors = manifest["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 9);
    for vector in vectors {
        let file = vector["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).expect("vector");
        let outer_key = vector["outer_partition_key"].as_str().unwrap();
        let outer_ehk = vector["outer_explicit_hash_key"].as_str();
        let got = deaggregate(outer_key, outer_ehk, &bytes);
        let expected = vector["expected_user_records"].as_array().unwrap();
        assert_eq!(got.len(), expected.len(), "{file}");
        for (i, (g, e)) in got.iter().zip(expected).enumerate() {
            assert_eq!(
                g.partition_key,
                e["partition_key"].as_str().unwrap(),
                "{file} #{i}"
            );
            assert_eq!(
                g.explicit_hash_key.as_deref(),
                e["explicit_hash_key"].as_str(),
                "{file} #{i}"
            );
            assert_eq!(
                g.sub_sequence_number,
                e["sub_sequence_number"].as_u64(),
                "{file} #{i}"
            );
            assert_eq!(
                g.aggregated,
                e["aggregated"].as_bool().unwrap(),
                "{file} #{i}"
            );
            assert_eq!(
                g.data,
                STANDARD.decode(e["data_base64"].as_str().unwrap()).unwrap(),
                "{file} #{i}"
            );
        }
    }
}

#[test]
fn aggregation_reproduces_the_reference_bytes() {
    let (dir, manifest) = fixtures();
    let mut compared = 0;
    for vector in manifest["vectors"].as_array().unwrap() {
        let expected = vector["expected_user_records"].as_array().unwrap();
        if !expected
            .iter()
            .all(|e| e["aggregated"].as_bool() == Some(true))
        {
            continue;
        }
        let file = vector["file"].as_str().unwrap();
        let records: Vec<UserRecord> = expected
            .iter()
            .map(|e| UserRecord {
                partition_key: e["partition_key"].as_str().unwrap().to_string(),
                explicit_hash_key: e["explicit_hash_key"].as_str().map(str::to_string),
                data: STANDARD.decode(e["data_base64"].as_str().unwrap()).unwrap(),
            })
            .collect();
        let reference = std::fs::read(dir.join(file)).expect("vector");
        assert!(
            aggregate(&records) == reference,
            "{file}: bytes differ from aws-kinesis-agg's"
        );
        compared += 1;
    }
    assert_eq!(compared, 6);
}
