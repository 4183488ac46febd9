//! Format version 1 stays readable: `tests/fixtures/v1/` holds logs written by version 1
//! (one raw, one zstd-compressed), which this build must open cleanly and read exactly; and
//! the raw log must be byte-identical to what this build writes for the same input, so any
//! change to a byte layout shows up here and forces a version bump (FORMAT.md §10).
//!
//! Regenerate (only together with a version bump): `SHARDLOG_WRITE_FIXTURES=1 cargo test
//! --release --test format_v1_fixture_loads -- --ignored`.

mod common;

use std::path::{Path, PathBuf};

use shardlog::format::batch::RecordIn;
use shardlog::format::codec::Compression;
use shardlog::storage::{Clock, Durability, Log, LogOptions, ReadLimits};

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v1")
        .join(name)
}

fn options(compression: Compression) -> LogOptions {
    LogOptions {
        durability: Durability::None,
        compression,
        segment_bytes_max: 4096,
        index_interval_bytes: 512,
        clock: Clock::new(|| 1_767_225_600_000),
        ..LogOptions::default()
    }
}

fn record_data(i: u64) -> Vec<u8> {
    format!(
        "{{\"event\":{i},\"kind\":\"click\",\"pad\":\"{}\"}}",
        "z".repeat((i % 13) as usize)
    )
    .into_bytes()
}

fn write_log(dir: &Path, compression: Compression) {
    let log = Log::open(dir, options(compression)).expect("open");
    for batch in 0..40u64 {
        let datas: Vec<Vec<u8>> = (0..5).map(|i| record_data(batch * 5 + i)).collect();
        let keys: Vec<String> = (0..5)
            .map(|i| format!("user-{}", (batch + i) % 7))
            .collect();
        let records: Vec<RecordIn<'_>> = (0..5)
            .map(|i| RecordIn {
                timestamp_ms: 1_767_225_600_000 + (batch * 5 + i as u64) as i64 * 10,
                partition_key: keys[i].as_bytes(),
                explicit_hash_key: (i == 2).then_some(u128::MAX - u128::from(batch)),
                data: &datas[i],
            })
            .collect();
        log.append_batch(&records, batch % 4 == 0).expect("append");
    }
    log.close().expect("close");
}

fn log_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "LOCK"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn copy_to_temp(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in log_files(src) {
        std::fs::write(dir.path().join(name), bytes).expect("copy");
    }
    dir
}

#[test]
#[ignore = "writes the fixtures; run only with a format version bump"]
fn write_fixtures() {
    assert_eq!(
        std::env::var("SHARDLOG_WRITE_FIXTURES").as_deref(),
        Ok("1"),
        "set SHARDLOG_WRITE_FIXTURES=1"
    );
    for (name, compression) in [
        ("raw", Compression::None),
        ("zstd", Compression::Zstd { level: 3 }),
    ] {
        let dir = fixture_dir(name);
        let _ = std::fs::remove_dir_all(&dir);
        write_log(&dir, compression);
        let _ = std::fs::remove_file(dir.join("LOCK"));
    }
}

#[test]
fn version_1_logs_open_cleanly_and_read_exactly() {
    for name in ["raw", "zstd"] {
        let dir = copy_to_temp(&fixture_dir(name));
        let log = Log::open(dir.path(), options(Compression::None)).expect("open v1 fixture");
        assert!(
            log.recovery_report().clean_shutdown,
            "{name}: written by a clean close"
        );
        assert!(
            log.segment_count() >= 2,
            "{name}: sealed and active segments"
        );
        let records = log.read(0, ReadLimits::records(1000)).expect("read");
        assert_eq!(records.len(), 200, "{name}");
        for (n, r) in records.iter().enumerate() {
            let n = n as u64;
            assert_eq!(r.sequence, n);
            assert_eq!(r.data, record_data(n), "{name} record {n}");
            assert_eq!(
                r.partition_key,
                format!("user-{}", (n / 5 + n % 5) % 7).as_bytes()
            );
            assert_eq!(
                r.explicit_hash_key,
                (n % 5 == 2).then_some(u128::MAX - u128::from(n / 5))
            );
            assert_eq!(r.timestamp_ms, 1_767_225_600_000 + n as i64 * 10);
        }
        assert_eq!(
            log.sequence_at_timestamp(1_767_225_600_000 + 1234)
                .expect("seek"),
            124
        );
    }
}

#[test]
fn this_build_writes_version_1_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_log(dir.path(), Compression::None);
    let written = log_files(dir.path());
    let fixture = log_files(&fixture_dir("raw"));
    assert_eq!(written.len(), fixture.len(), "same files");
    for ((name, bytes), (fixture_name, fixture_bytes)) in written.iter().zip(&fixture) {
        assert_eq!(name, fixture_name);
        assert!(
            bytes == fixture_bytes,
            "{name} differs from the v1 fixture: a format change needs a version bump"
        );
    }
}
