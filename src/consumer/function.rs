//! The function a mapping invokes: any [`Function`], or [`ExecFunction`], which runs a command
//! per batch with the event JSON on stdin and reads the response JSON from stdout, so a handler
//! written for Lambda runs unchanged.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::event::{PolledRecord, EVENT_ENVELOPE_BYTES};
use super::poller::Pending;
use super::record_json::IdentityJson;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// The function returned; `None` when it returned nothing.
    Returned(Option<Value>),
    /// The function failed (an exception, a crash, a non-zero exit, a timeout): Lambda's
    /// `FunctionError: "Unhandled"`. Counts as an attempt.
    FunctionError(String),
    /// The function could not be invoked (throttled, service error): retried without
    /// counting as an attempt.
    ServiceError(String),
}

/// The name of an invocation's ending in decision logs.
pub(crate) fn outcome_name(outcome: &Invocation) -> &'static str {
    match outcome {
        Invocation::Returned(_) => "Success",
        Invocation::FunctionError(_) => "FunctionError",
        Invocation::ServiceError(_) => "ServiceError",
    }
}

/// A function invoked with the Lambda Kinesis event (JSON).
///
/// Any `Fn(&str) -> Invocation` is one. An in-process consumer that wants the records rather
/// than their JSON implements [`Function::invoke_batch`] too:
///
/// ```
/// use shardlog::consumer::{EventBatch, Function, Invocation};
///
/// /// Counts the bytes it is given; fails a batch holding an empty record.
/// struct ByteCounter(std::sync::atomic::AtomicU64);
///
/// impl Function for ByteCounter {
///     fn invoke(&self, _lane: usize, _event: &str) -> Invocation {
///         Invocation::FunctionError("this function takes records, not JSON".into())
///     }
///
///     fn invoke_batch(&self, _lane: usize, batch: &EventBatch<'_>) -> Invocation {
///         let mut bytes = 0;
///         for record in batch.records() {
///             if record.data.is_empty() {
///                 return Invocation::FunctionError("empty record".into());
///             }
///             bytes += record.data.len() as u64;
///         }
///         self.0.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
///         Invocation::Returned(None)
///     }
/// }
/// ```
pub trait Function: Send + Sync {
    /// Invokes the function for one batch. `lane` is the batch's lane within its shard
    /// (`0..ParallelizationFactor`); lanes of one shard may be invoked concurrently.
    fn invoke(&self, lane: usize, event: &str) -> Invocation;

    /// Invokes the function with the batch itself. The default builds the Lambda event JSON
    /// and calls [`Function::invoke`]; an in-process function that wants the records, not
    /// their JSON, overrides this and skips building (and base64-encoding) the event.
    fn invoke_batch(&self, lane: usize, batch: &EventBatch<'_>) -> Invocation {
        self.invoke(lane, &batch.to_json())
    }
}

/// One invocation's batch. The Lambda event JSON is built only if asked for.
pub struct EventBatch<'a> {
    pub(crate) shard_id: &'a str,
    pub(crate) records: &'a [Pending],
    pub(crate) fields: &'a [(&'a str, String)],
    pub(crate) identity: &'a IdentityJson,
}

impl EventBatch<'_> {
    /// The shard every record of the batch came from.
    pub fn shard_id(&self) -> &str {
        self.shard_id
    }

    /// The records, in shard order (user records when the mapping de-aggregates).
    pub fn records(&self) -> impl ExactSizeIterator<Item = &PolledRecord> {
        self.records.iter().map(|p| &p.record)
    }

    /// Records in the batch (0 for a tumbling window's final invocation).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch has no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The event's top-level fields besides `Records` as (name, JSON text), in Lambda's
    /// order: empty, or the tumbling-window fields (`window`, `state`, `shardId`,
    /// `eventSourceARN`, `isFinalInvokeForWindow`, `isWindowTerminatedEarly`).
    pub fn fields(&self) -> &[(&str, String)] {
        self.fields
    }

    /// The exact Lambda Kinesis event JSON.
    pub fn to_json(&self) -> String {
        let capacity = EVENT_ENVELOPE_BYTES
            + self.records.iter().map(|p| p.json_len + 1).sum::<usize>()
            + self
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>();
        let mut out = String::with_capacity(capacity);
        out.push_str(r#"{"Records":["#);
        for (i, pending) in self.records.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            self.identity
                .write(&mut out, self.shard_id, &pending.record);
        }
        out.push(']');
        for (key, value) in self.fields {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":");
            out.push_str(value);
        }
        out.push('}');
        out
    }
}

impl<F: Fn(&str) -> Invocation + Send + Sync> Function for F {
    fn invoke(&self, _lane: usize, event: &str) -> Invocation {
        self(event)
    }
}

/// Lambda's default function timeout.
pub const FUNCTION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(3);

/// Runs `sh -c COMMAND` per batch: event JSON on stdin, response JSON on stdout; a non-zero
/// exit or passing the timeout is a function error.
#[derive(Debug, Clone)]
pub struct ExecFunction {
    command: String,
    timeout: Duration,
}

impl ExecFunction {
    /// A function running `command` with `timeout` per invocation.
    pub fn new(command: impl Into<String>, timeout: Duration) -> Self {
        ExecFunction {
            command: command.into(),
            timeout,
        }
    }
}

impl Function for ExecFunction {
    fn invoke(&self, _lane: usize, event: &str) -> Invocation {
        let child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => {
                return Invocation::ServiceError(format!("cannot start '{}': {e}", self.command))
            }
        };
        let stdin = child.stdin.take();
        let event = event.to_string();
        let writer = std::thread::spawn(move || {
            if let Some(mut stdin) = stdin {
                // A handler that exits without reading its input is not an error here.
                let _ = stdin.write_all(event.as_bytes());
            }
        });
        let stdout = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(mut stdout) = stdout {
                let _ = stdout.read_to_end(&mut out);
            }
            out
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() >= self.timeout => break None,
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => {
                    return Invocation::ServiceError(format!("waiting for '{}': {e}", self.command))
                }
            }
        };
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            return Invocation::FunctionError(format!(
                "Task timed out after {:.2} seconds",
                self.timeout.as_secs_f64()
            ));
        };
        let _ = writer.join();
        let out = reader.join().unwrap_or_default();
        if !status.success() {
            return Invocation::FunctionError(format!("'{}' exited with {status}", self.command));
        }
        let text = String::from_utf8_lossy(&out);
        let text = text.trim();
        if text.is_empty() {
            return Invocation::Returned(None);
        }
        Invocation::Returned(Some(
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
        ))
    }
}

/// One long-lived process of a [`KeepAliveFunction`] lane.
struct Worker {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    responses: std::sync::mpsc::Receiver<String>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Like Lambda's warm containers: one long-lived `sh -c COMMAND` process per lane, sent one
/// event per line on stdin and answering one JSON response per line on stdout. A process
/// that exits, answers nothing within the timeout, or breaks the protocol is a function
/// error and is replaced at the next invocation.
pub struct KeepAliveFunction {
    command: String,
    timeout: Duration,
    workers: std::sync::Mutex<std::collections::BTreeMap<usize, Worker>>,
}

impl std::fmt::Debug for KeepAliveFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepAliveFunction")
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

impl KeepAliveFunction {
    /// A function keeping `command` alive per lane, with `timeout` per invocation.
    pub fn new(command: impl Into<String>, timeout: Duration) -> Self {
        KeepAliveFunction {
            command: command.into(),
            timeout,
            workers: std::sync::Mutex::new(Default::default()),
        }
    }

    fn spawn(&self) -> std::io::Result<Worker> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (tx, responses) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Worker {
            child,
            stdin,
            responses,
        })
    }
}

impl Function for KeepAliveFunction {
    fn invoke(&self, lane: usize, event: &str) -> Invocation {
        // The lane's process is taken out while it works, so lanes run in parallel.
        let idle = self
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&lane);
        let mut worker = match idle {
            Some(worker) => worker,
            None => match self.spawn() {
                Ok(worker) => worker,
                Err(e) => {
                    return Invocation::ServiceError(format!(
                        "cannot start '{}': {e}",
                        self.command
                    ))
                }
            },
        };
        // The event is one line: serialized JSON has no raw newlines.
        let sent = worker
            .stdin
            .write_all(event.as_bytes())
            .and_then(|()| worker.stdin.write_all(b"\n"))
            .and_then(|()| worker.stdin.flush());
        let outcome = match sent {
            Err(e) => Err(format!("'{}' stopped reading: {e}", self.command)),
            Ok(()) => match worker.responses.recv_timeout(self.timeout) {
                Ok(line) => Ok(line),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
                    "Task timed out after {:.2} seconds",
                    self.timeout.as_secs_f64()
                )),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    Err(format!("'{}' exited", self.command))
                }
            },
        };
        match outcome {
            Ok(line) => {
                self.workers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(lane, worker);
                let text = line.trim();
                if text.is_empty() || text == "null" {
                    return Invocation::Returned(None);
                }
                Invocation::Returned(Some(
                    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
                ))
            }
            Err(message) => {
                // Replaced at the next invocation: a crashed or stuck handler must not answer
                // later events (dropping the worker kills it).
                drop(worker);
                Invocation::FunctionError(message)
            }
        }
    }
}
