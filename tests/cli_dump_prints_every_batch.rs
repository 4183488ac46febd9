//! `shardlog dump PATH` prints every batch of a segment, the entries of an index and the
//! fields of a checkpoint; it exits 1 at the first invalid batch (naming its offset) and 2,
//! with one line on stderr, for a file that is not shardlog's.

mod common;

use std::process::Command;

use common::*;
use shardlog::storage::{segment_file_name, Durability, Log, LogOptions};

fn dump(path: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .arg("dump")
        .arg(path)
        .args(extra)
        .output()
        .expect("run shardlog");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("utf8"),
        String::from_utf8(out.stderr).expect("utf8"),
    )
}

#[test]
fn dump_lists_batches_index_entries_and_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LogOptions {
        durability: Durability::None,
        segment_bytes_max: 4096,
        index_interval_bytes: 512,
        ..Default::default()
    };
    let log = Log::open(dir.path(), options).expect("open");
    for i in 0..20 {
        append_numbered(&log, i * 3, 3).expect("append");
    }
    log.close().expect("close");
    let segment = dir.path().join(segment_file_name(0));
    let (code, out, _) = dump(&segment, &["--records"]);
    assert_eq!(code, 0);
    let batches = out.lines().filter(|l| l.starts_with("batch @")).count();
    let records = out.lines().filter(|l| l.starts_with("  record ")).count();
    assert!(out.contains("footer @"), "{out}");
    let summary = out.lines().last().expect("summary");
    assert_eq!(
        summary,
        format!(
            "{batches} batches, {records} records, {} bytes of batches",
            std::fs::metadata(&segment).unwrap().len() - 32 - 64
        )
    );
    assert!(records >= 3 && records % 3 == 0);

    let (code, out, _) = dump(&segment.with_extension("idx"), &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("index: base sequence 0,"), "{out}");
    assert!(out.contains("entry 1: sequence"), "{out}");

    let (code, out, _) = dump(&dir.path().join("checkpoint"), &[]);
    assert_eq!(code, 0);
    assert!(out.starts_with("checkpoint: clean shutdown true"), "{out}");

    // Damage the second batch: the first is printed, then the offset of the bad one.
    let mut bytes = std::fs::read(&segment).expect("read");
    let first_len = u32::from_le_bytes(bytes[36..40].try_into().unwrap()) as usize;
    bytes[32 + first_len + 60] ^= 0x40;
    std::fs::write(&segment, &bytes).expect("write");
    let (code, out, _) = dump(&segment, &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!(
            "invalid batch @{}: checksum mismatch",
            32 + first_len
        )),
        "{out}"
    );

    let (code, out, err) = dump(&dir.path().join("LOCK"), &[]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("not a shardlog"), "{err}");
}
