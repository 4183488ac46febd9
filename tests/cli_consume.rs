//! `shardlog consume` runs a Lambda Python handler unchanged (partial batch failures
//! included), prints AWS-named metrics, resumes at its checkpoint, and reports discarded
//! batches to an on-failure file.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn shardlog(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = shardlog(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const HANDLER: &str = r#"
import base64, json, sys

def lambda_handler(event, context):
    failures = []
    for record in event["Records"]:
        if base64.b64decode(record["kinesis"]["data"]) == b"bad":
            failures.append({"itemIdentifier": record["kinesis"]["sequenceNumber"]})
    return {"batchItemFailures": failures}

print(json.dumps(lambda_handler(json.load(sys.stdin), None)))
"#;

#[test]
fn consume_runs_a_python_handler_with_partial_failures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let handler = d.join("handler.py");
    std::fs::write(&handler, HANDLER).unwrap();
    ok(d, &["stream", "create", "orders"]);
    for data in ["a", "b", "bad", "c"] {
        ok(
            d,
            &["put", "orders", "--partition-key", "k", "--data", data],
        );
    }
    let failures = d.join("failures.jsonl");
    let exec = format!("python3 {}", handler.display());
    let config = d.join("esm.json");
    std::fs::write(&config, r#"{"FunctionName":"ignored","EventSourceArn":"ignored","StartingPosition":"TRIM_HORIZON","BatchSize":10}"#).unwrap();
    let metrics: Value = serde_json::from_str(&ok(
        d,
        &[
            "consume",
            "orders",
            "--mapping",
            "m1",
            "--config",
            config.to_str().unwrap(),
            "--exec",
            &exec,
            "--function-response-types",
            "ReportBatchItemFailures",
            "--maximum-retry-attempts",
            "1",
            "--on-failure",
            failures.to_str().unwrap(),
            "--until-idle",
            "--json",
            "--timeout",
            "20",
        ],
    ))
    .unwrap();
    assert_eq!(metrics["PolledEventCount"], 4);
    assert_eq!(
        metrics["Invocations"], 2,
        "the batch, then one retry from 'bad'"
    );
    assert_eq!(
        metrics["OnFailureDestinationDeliveredEventCount"], 2,
        "'bad' and 'c' after the retry"
    );
    assert_eq!(metrics["Shards"]["shardId-000000000000"]["Invocations"], 2);
    let lines = std::fs::read_to_string(&failures).unwrap();
    let record: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(record["KinesisBatchInfo"]["batchSize"], 2);
    assert_eq!(
        record["requestContext"]["functionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:m1"
    );

    // The same mapping again resumes at its checkpoint: nothing to do.
    let again = ok(
        d,
        &[
            "consume",
            "orders",
            "--mapping",
            "m1",
            "--exec",
            &exec,
            "--until-idle",
        ],
    );
    assert!(again.contains("PolledEventCount: 0"), "{again}");
    // Another mapping starts from its own starting position.
    let other: Value = serde_json::from_str(&ok(
        d,
        &[
            "consume",
            "orders",
            "--mapping",
            "m2",
            "--exec",
            "cat > /dev/null",
            "--until-idle",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(other["InvokedEventCount"], 4);
}

#[test]
fn consume_rejects_bad_settings_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["stream", "create", "s"]);
    for (args, needle) in [
        (vec!["--batch-size", "0"], "InvalidParameterValueException"),
        (
            vec!["--maximum-record-age-in-seconds", "30"],
            "InvalidParameterValueException",
        ),
        (
            vec!["--parallelization-factor", "11"],
            "InvalidParameterValueException",
        ),
        (vec!["--filter-criteria", "{not json"], "not JSON"),
        (vec!["--tumbling-window-in-seconds", "30"], "not supported"),
        (
            vec!["--on-failure", "stream:missing"],
            "ResourceNotFoundException",
        ),
    ] {
        let mut full = vec![
            "consume",
            "s",
            "--mapping",
            "m",
            "--exec",
            "true",
            "--until-idle",
        ];
        full.extend(args.iter().copied());
        let out = shardlog(d, &full);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
