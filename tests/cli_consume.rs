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

/// Puts each line of `lines` into stream `s` with `shardlog put-lines`.
fn put_lines(dir: &Path, lines: &str) {
    put_lines_with(dir, lines, &[]);
}

fn put_lines_with(dir: &Path, lines: &str, extra: &[&str]) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardlog"))
        .arg("--data-dir")
        .arg(dir)
        .args(["put-lines", "s", "--partition-key", "k"])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("put-lines");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success());
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
        (
            vec!["--tumbling-window-in-seconds", "901"],
            "InvalidParameterValueException",
        ),
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

const LOOP_HANDLER: &str = r#"
import base64, json, os, sys

with open(sys.argv[2], "a") as starts:
    starts.write(f"{os.getpid()}\n")

def lambda_handler(event, context):
    for record in event["Records"]:
        data = base64.b64decode(record["kinesis"]["data"])
        if data == b"crash" and not os.path.exists(sys.argv[1]):
            open(sys.argv[1], "w").close()
            os._exit(1)
    return {"batchItemFailures": []}

for line in sys.stdin:
    print(json.dumps(lambda_handler(json.loads(line), None)), flush=True)
"#;

#[test]
fn keep_alive_handlers_serve_many_batches_and_restart_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let handler = d.join("loop.py");
    std::fs::write(&handler, LOOP_HANDLER).unwrap();
    ok(d, &["stream", "create", "s"]);
    let lines: String = (0..50)
        .map(|i| {
            if i == 25 {
                "crash\n".to_string()
            } else {
                format!("r{i}\n")
            }
        })
        .collect();
    put_lines(d, &lines);
    let starts = d.join("starts.txt");
    let exec = format!(
        "python3 {} {} {}",
        handler.display(),
        d.join("crashed-once").display(),
        starts.display()
    );
    let metrics: Value = serde_json::from_str(&ok(
        d,
        &[
            "consume",
            "s",
            "--mapping",
            "warm",
            "--exec",
            &exec,
            "--keep-alive",
            "--batch-size",
            "5",
            "--function-response-types",
            "ReportBatchItemFailures",
            "--until-idle",
            "--json",
            "--timeout",
            "20",
        ],
    ))
    .unwrap();
    assert_eq!(metrics["Errors"], 1, "the crash is one function error");
    assert_eq!(
        metrics["Invocations"], 11,
        "ten batches plus the retry after the crash"
    );
    assert_eq!(metrics["DroppedEventCount"], 0);
    assert!(d.join("crashed-once").exists());
    let processes = std::fs::read_to_string(&starts).unwrap().lines().count();
    assert_eq!(
        processes, 2,
        "one warm process, replaced once after its crash"
    );
}

const SLOW_HANDLER: &str = r#"
import base64, json, sys, time
event = json.load(sys.stdin)
with open(sys.argv[1], "a") as out:
    for record in event["Records"]:
        out.write(base64.b64decode(record["kinesis"]["data"]).decode() + "\n")
time.sleep(0.02)
print("{}")
"#;

#[test]
fn a_consumer_killed_mid_batch_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let handler = d.join("slow.py");
    std::fs::write(&handler, SLOW_HANDLER).unwrap();
    let delivered = d.join("delivered.txt");
    ok(d, &["stream", "create", "s", "--shards", "2"]);
    let lines: String = (0..300).map(|i| format!("r{i}\n")).collect();
    put_lines(d, &lines);
    let exec = format!("python3 {} {}", handler.display(), delivered.display());
    let consume = |until_idle: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_shardlog"));
        cmd.arg("--data-dir").arg(d).args([
            "consume",
            "s",
            "--mapping",
            "m",
            "--exec",
            &exec,
            "--batch-size",
            "7",
            "--timeout",
            "20",
        ]);
        if until_idle {
            cmd.arg("--until-idle");
        }
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    };
    // Kill it with SIGKILL a few times mid-run, each time after it delivered more.
    let mut rounds = 0;
    for _ in 0..3 {
        let before = std::fs::read_to_string(&delivered)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        let mut child = consume(false).spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::fs::read_to_string(&delivered)
            .map(|t| t.lines().count())
            .unwrap_or(0)
            < before + 20
        {
            assert!(
                std::time::Instant::now() < deadline,
                "consumer made no progress"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        rounds += 1;
    }
    assert!(consume(true).status().unwrap().success());
    let text = std::fs::read_to_string(&delivered).unwrap();
    let seen: std::collections::BTreeSet<&str> = text.lines().collect();
    for i in 0..300 {
        assert!(
            seen.contains(format!("r{i}").as_str()),
            "r{i} skipped after {rounds} kills"
        );
    }
    let redelivered = text.lines().count() - seen.len();
    assert!(
        redelivered < 300,
        "resumed at the checkpoint, not the start ({redelivered} repeats)"
    );
}

#[test]
fn consume_passes_window_state_and_deaggregates_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["stream", "create", "s"]);
    let lines: String = (0..50).map(|i| format!("line {i}\n")).collect();
    put_lines_with(d, &lines, &["--aggregate"]);
    let events = d.join("events.jsonl");
    // Appends each event as a line and answers with a state, as a windowed handler must.
    let handler = format!(
        r#"cat >> '{0}'; echo >> '{0}'; echo '{{"state":{{"seen":true}}}}'"#,
        events.display()
    );
    ok(
        d,
        &[
            "consume",
            "s",
            "--mapping",
            "w",
            "--exec",
            &handler,
            "--tumbling-window-in-seconds",
            "1",
            "--deaggregate-records",
            "--until-idle",
            "--decision-log",
            d.join("decisions.jsonl").to_str().unwrap(),
        ],
    );
    let decisions: Vec<Value> = std::fs::read_to_string(d.join("decisions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(decisions
        .iter()
        .any(|d| d["Decision"] == "Invoke" && d["final_for_window"] == true));
    assert!(decisions.iter().any(|d| d["Decision"] == "Checkpoint"));
    let seen: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let user_records: usize = seen
        .iter()
        .map(|e| e["Records"].as_array().unwrap().len())
        .sum();
    assert_eq!(user_records, 50, "every user record, de-aggregated");
    assert!(seen[0]["Records"][0]["kinesis"]["subSequenceNumber"].is_u64());
    let last = seen.last().unwrap();
    assert_eq!(
        last["isFinalInvokeForWindow"], true,
        "the window's final invocation"
    );
    assert_eq!(
        last["state"]["seen"], true,
        "carrying the state the handler returned"
    );
}
