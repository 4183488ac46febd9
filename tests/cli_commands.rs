//! End-to-end tests of the `shardlog` binary: each command's happy path and its errors
//! (unknown stream, bad arguments, locked directory, corrupt segment for `verify`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn shardlog(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run shardlog")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = shardlog(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

fn fails(dir: &Path, args: &[&str], code: i32, needle: &str) {
    let out = shardlog(dir, args);
    assert_eq!(out.status.code(), Some(code), "{args:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("panicked"));
}

fn put_lines(dir: &Path, args: &[&str], input: &str) -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .arg("--data-dir")
        .arg(dir)
        .arg("put-lines")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("summary JSON")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn stream_lifecycle_put_get_reshard_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        d,
        &[
            "stream",
            "create",
            "orders",
            "--shards",
            "2",
            "--retention",
            "90m",
            "--compression",
            "zstd:1",
            "--durability",
            "interval:50",
        ],
    );
    assert_eq!(
        ok(d, &["stream", "list"]).trim(),
        r#"{"StreamNames":["orders"]}"#
    );
    let described: Value = serde_json::from_str(&ok(d, &["stream", "describe", "orders"])).unwrap();
    assert_eq!(
        described["StreamDescription"]["RetentionPeriodHours"], 2,
        "whole hours, rounded up"
    );
    assert_eq!(described["RetentionPeriod"], "1h 30m");
    assert_eq!(
        described["StreamDescription"]["Shards"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let put: Value = serde_json::from_str(&ok(
        d,
        &["put", "orders", "--partition-key", "a", "--data", "first"],
    ))
    .unwrap();
    assert!(put["ShardId"].as_str().unwrap().starts_with("shardId-"));
    let shard = put["ShardId"].as_str().unwrap().to_string();
    let lines: String = (0..300)
        .map(|i| format!("{{\"user\":\"u{}\",\"n\":{i}}}\n", i % 7))
        .collect();
    let summary = put_lines(d, &["orders", "--partition-key-field", "user"], &lines);
    assert_eq!(summary["Records"], 300);
    assert_eq!(summary["FailedRecordCount"], 0);

    let got = json_lines(&ok(d, &["get", "orders", "--shard", &shard, "--decode"]));
    assert_eq!(got[0]["Data"], "first");
    assert_eq!(got[0]["SequenceNumber"], put["SequenceNumber"]);
    let other = if shard.ends_with('0') {
        "shardId-000000000001"
    } else {
        "shardId-000000000000"
    };
    let total = got.len() + json_lines(&ok(d, &["get", "orders", "--shard", other])).len();
    assert_eq!(total, 301, "every record, once, across the shards");
    assert_eq!(
        json_lines(&ok(
            d,
            &["get", "orders", "--shard", &shard, "--limit", "5"]
        ))
        .len(),
        5
    );
    let after = json_lines(&ok(
        d,
        &[
            "get",
            "orders",
            "--shard",
            &shard,
            "--iterator-type",
            "AFTER_SEQUENCE_NUMBER",
            "--sequence-number",
            put["SequenceNumber"].as_str().unwrap(),
            "--limit",
            "1",
        ],
    ));
    assert_ne!(after[0]["SequenceNumber"], put["SequenceNumber"]);
    let at_time = json_lines(&ok(
        d,
        &[
            "get",
            "orders",
            "--shard",
            &shard,
            "--iterator-type",
            "AT_TIMESTAMP",
            "--timestamp",
            "0.5",
        ],
    ));
    assert_eq!(at_time.len(), got.len());
    assert!(json_lines(&ok(
        d,
        &[
            "get",
            "orders",
            "--shard",
            &shard,
            "--iterator-type",
            "LATEST"
        ]
    ))
    .is_empty());
    let base64 = json_lines(&ok(
        d,
        &["get", "orders", "--shard", &shard, "--limit", "1"],
    ));
    assert_eq!(base64[0]["Data"], "Zmlyc3Q=");

    let shards: Value = serde_json::from_str(&ok(
        d,
        &[
            "reshard",
            "orders",
            "split",
            "--shard",
            "shardId-000000000000",
        ],
    ))
    .unwrap();
    assert_eq!(shards["Shards"].as_array().unwrap().len(), 4);
    ok(
        d,
        &[
            "reshard",
            "orders",
            "merge",
            "--shard",
            "shardId-000000000002",
            "--adjacent-shard",
            "shardId-000000000003",
        ],
    );
    let scaled: Value =
        serde_json::from_str(&ok(d, &["reshard", "orders", "scale", "--shards", "3"])).unwrap();
    let open = scaled["Shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["SequenceNumberRange"]
                .get("EndingSequenceNumber")
                .is_none()
        })
        .count();
    assert_eq!(open, 3);
    ok(d, &["stream", "retention", "orders", "7d"]);
    let described: Value = serde_json::from_str(&ok(d, &["stream", "describe", "orders"])).unwrap();
    assert_eq!(described["StreamDescription"]["RetentionPeriodHours"], 168);

    let report = ok(d, &["verify"]);
    assert!(
        report.ends_with("1 streams checked, 0 problems\n"),
        "{report}"
    );
    ok(d, &["stream", "delete", "orders"]);
    assert_eq!(ok(d, &["stream", "list"]).trim(), r#"{"StreamNames":[]}"#);
}

#[test]
fn put_lines_aggregate_and_get_deaggregate_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["stream", "create", "agg"]);
    let lines: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    let summary = put_lines(d, &["agg", "--partition-key", "k", "--aggregate"], &lines);
    assert_eq!(summary["Records"], 1000);
    let raw = json_lines(&ok(d, &["get", "agg", "--shard", "shardId-000000000000"]));
    assert!(raw.len() < 20, "aggregated into {} records", raw.len());
    let users = json_lines(&ok(
        d,
        &[
            "get",
            "agg",
            "--shard",
            "shardId-000000000000",
            "--deaggregate",
            "--decode",
        ],
    ));
    assert_eq!(users.len(), 1000);
    for (i, user) in users.iter().enumerate() {
        assert_eq!(user["Data"], format!("line {i}"));
        assert_eq!(user["PartitionKey"], "k");
        assert!(user.get("SubSequenceNumber").is_some());
    }
}

#[test]
fn get_follow_crosses_into_child_shards() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["stream", "create", "live", "--durability", "none"]);
    ok(
        d,
        &["put", "live", "--partition-key", "k", "--data", "before"],
    );
    let mut follower = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .arg("--data-dir")
        .arg(d)
        .args([
            "get",
            "live",
            "--shard",
            "shardId-000000000000",
            "--follow",
            "--decode",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("follower");
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let mut next_line =
        || -> Value { serde_json::from_str(&lines.next().expect("line").expect("read")).unwrap() };
    assert_eq!(next_line()["Data"], "before");
    ok(
        d,
        &["put", "live", "--partition-key", "k", "--data", "during"],
    );
    assert_eq!(next_line()["Data"], "during");
    ok(
        d,
        &[
            "reshard",
            "live",
            "split",
            "--shard",
            "shardId-000000000000",
        ],
    );
    ok(
        d,
        &[
            "put",
            "live",
            "--partition-key",
            "k",
            "--data",
            "after-split",
        ],
    );
    let started = Instant::now();
    assert_eq!(
        next_line()["Data"],
        "after-split",
        "followed into the child"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    follower.kill().unwrap();
    follower.wait().unwrap();
}

#[test]
fn errors_are_one_line_with_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fails(d, &["get", "nope", "--shard", "0"], 2, "no shardlog data");
    ok(d, &["stream", "create", "s"]);
    fails(
        d,
        &["get", "nope", "--shard", "0"],
        2,
        "ResourceNotFoundException",
    );
    fails(
        d,
        &["put", "nope", "--partition-key", "k", "--data", "x"],
        2,
        "ResourceNotFoundException",
    );
    fails(d, &["stream", "create", "s"], 2, "ResourceInUseException");
    fails(d, &["stream", "create", "../x"], 2, "ValidationException");
    fails(
        d,
        &["stream", "retention", "s", "soon"],
        2,
        "not a duration",
    );
    fails(
        d,
        &[
            "get",
            "s",
            "--shard",
            "0",
            "--iterator-type",
            "AT_TIMESTAMP",
            "--timestamp",
            "yesterday",
        ],
        2,
        "ISO-8601",
    );
    fails(
        d,
        &["put", "s", "--partition-key", "", "--data", "x"],
        2,
        "ValidationException",
    );
    fails(
        d,
        &[
            "reshard",
            "s",
            "merge",
            "--shard",
            "0",
            "--adjacent-shard",
            "7",
        ],
        2,
        "ResourceNotFoundException",
    );

    // A writer holding the stream: a second writer is refused, naming it; readers are not.
    let mut holder = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .arg("--data-dir")
        .arg(d)
        .args(["put-lines", "s", "--partition-key", "k"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("holder");
    let mut stdin = holder.stdin.take().unwrap();
    writeln!(stdin, "held").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok(d, &["get", "s", "--shard", "0"]).is_empty() {
        assert!(Instant::now() < deadline, "put-lines never wrote");
        std::thread::sleep(Duration::from_millis(20));
    }
    fails(
        d,
        &["put", "s", "--partition-key", "k", "--data", "x"],
        2,
        &format!("locked by another writer (process {})", holder.id()),
    );
    drop(stdin);
    assert!(holder.wait().unwrap().success());
    ok(d, &["put", "s", "--partition-key", "k", "--data", "x"]);

    // verify finds a flipped byte in the active segment's last batch, and exits 1.
    let segment = d.join("streams/s/shards/shardId-000000000000/00000000000000000000.seg");
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    let out = shardlog(d, &["verify", "s"]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("1 problems") && report.contains("corrupt data in"),
        "{report}"
    );
}

#[test]
fn bench_runs_every_phase_and_reports_the_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let out = shardlog(
        dir.path(),
        &[
            "bench",
            "--records",
            "5000",
            "--durable-records",
            "1000",
            "--durability",
            "interval:50",
            "--compression",
            "zstd:2",
            "--json",
            "--dir",
            dir.path().join("b").to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let ratios = report["ratios"].as_object().expect("ratios");
    let mut keys: Vec<&str> = ratios.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "append_vs_naive",
            "clean_reopen_vs_verify",
            "consume_vs_get_records",
            "durable_p99_vs_fdatasync_p50",
            "durable_vs_fdatasync",
            "read_vs_naive",
            "zstd_append_vs_naive",
            "zstd_disk_vs_naive",
        ]
    );
    assert!(
        ratios
            .values()
            .all(|v| v.as_f64().is_some_and(|x| x.is_finite() && x > 0.0)),
        "{ratios:?}"
    );
    assert!(report["peak_rss_bytes"].as_u64().unwrap() > 0);
    let figures = &report["figures"];
    assert_eq!(
        figures["poison_found_in_destination"],
        figures["poison_planted"]
    );
    assert!(figures["poison_planted"].as_u64().unwrap() > 0);
    assert_eq!(figures["durability"], "Interval(50ms)");
    assert_eq!(figures["compression"], "Zstd { level: 2 }");
    // The kill -9 phase: whatever the child wrote is readable after the reopen, and the scan
    // covers at most the stream's bytes.
    let kill9 = &figures["kill9"];
    assert!(kill9["bytes_scanned"].as_u64().unwrap() <= kill9["stream_bytes"].as_u64().unwrap());
    assert!(kill9["records_recovered"].as_u64().unwrap() <= 5000);
    assert_eq!(figures["verify_problems"], 0);
    // Each side of the append ratio ran twice; the ratio's figures are the faster runs.
    for (runs, best) in [
        ("append_runs_mb_per_s", "append_mb_per_s"),
        ("naive_append_runs_mb_per_s", "naive_append_mb_per_s"),
    ] {
        let runs: Vec<f64> = figures[runs]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(runs.len(), 2, "{figures}");
        let fastest = runs.iter().copied().fold(0.0, f64::max);
        assert!((fastest - figures[best].as_f64().unwrap()).abs() < 1e-6 * fastest);
    }
    assert!(figures["read_one_thread_mb_per_s"].as_f64().unwrap() > 0.0);
    // The durable phase ran at the batch size (the ratios') and at puts of 100.
    assert_eq!(figures["durable_records_per_put"], 500);
    let small_puts = &figures["durable_small_puts"];
    assert_eq!(small_puts["records_per_put"], 100);
    assert!(small_puts["mb_per_s"].as_f64().unwrap() > 0.0);
    assert!(
        small_puts["put_p50_ms"].as_f64().unwrap() <= small_puts["put_p99_ms"].as_f64().unwrap()
    );
    // The first run's stream was deleted; the kept stream holds every record.
    let streams = shardlog(
        dir.path().join("b").join("store").as_path(),
        &["stream", "list"],
    );
    let listed = String::from_utf8_lossy(&streams.stdout);
    assert!(
        !listed.contains("bench-first-run") && listed.contains("bench"),
        "{listed}"
    );
    for durable in ["bench-durable", "bench-durable-small-puts"] {
        assert!(listed.contains(durable), "{listed}");
    }
}
