//! Tumbling windows (`TumblingWindowInSeconds` 1..=900): records are grouped by the aligned
//! window containing their arrival time; each invocation of a window carries the state the
//! previous one returned, and the window ends with a final invocation
//! (`isFinalInvokeForWindow`) that hands over the aggregated state. Only after it succeeds
//! does the shard's checkpoint move past the window, so a consumer that dies mid-window
//! replays the whole window from empty state (at-least-once, as Lambda does).
//!
//! State lives per lane: with ParallelizationFactor > 1 each lane aggregates the partition
//! keys routed to it, and each lane that saw records gets its own final invocation.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

use super::decisions::Decision;
use super::event::iso_seconds;
use super::function::{outcome_name, EventBatch, Invocation};
use super::mapping::EventSourceMapping;

/// Largest state a window may carry (Lambda: 1 MB per shard); a larger state ends the
/// window early (`isWindowTerminatedEarly`).
pub const WINDOW_STATE_BYTES_MAX: usize = 1024 * 1024;

/// Room kept in a windowed invocation's payload for the window fields besides the state.
pub(crate) const WINDOW_FIELDS_BYTES: usize = 512;

/// The open window of one lane.
#[derive(Debug, Clone)]
pub(crate) struct LaneWindow {
    /// Whether an invocation of this window reached the lane (it then gets a final one).
    pub touched: bool,
    /// The state the last invocation returned (`{}` at the start).
    pub state: Value,
}

impl Default for LaneWindow {
    fn default() -> Self {
        LaneWindow {
            touched: false,
            state: Value::Object(Map::new()),
        }
    }
}

/// Where a window starts and ends (ms since the epoch; the end is exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowBounds {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// The window a shard is filling.
#[derive(Debug, Clone)]
pub(crate) struct OpenWindow {
    pub bounds: WindowBounds,
    pub lanes: Vec<LaneWindow>,
}

impl OpenWindow {
    /// The aligned window of `length_ms` that contains `arrival_ms`.
    pub(crate) fn containing(arrival_ms: i64, length_ms: i64, lanes: usize) -> OpenWindow {
        let start_ms = arrival_ms - arrival_ms.rem_euclid(length_ms.max(1));
        OpenWindow {
            bounds: WindowBounds {
                start_ms,
                end_ms: start_ms.saturating_add(length_ms),
            },
            lanes: vec![LaneWindow::default(); lanes.max(1)],
        }
    }

    /// Whether `arrival_ms` falls in this window.
    pub(crate) fn contains(&self, arrival_ms: i64) -> bool {
        self.bounds.start_ms <= arrival_ms && arrival_ms < self.bounds.end_ms
    }

    /// Bytes the window fields add to an invocation payload.
    pub(crate) fn overhead_bytes(&self) -> usize {
        self.lanes
            .iter()
            .map(|l| l.state.to_string().len())
            .max()
            .unwrap_or(0)
            + WINDOW_FIELDS_BYTES
    }
}

/// What a windowed invocation's answer means.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WindowAnswer {
    /// The answer carried a state; the rest of it is judged as a partial batch response.
    State(Value),
    /// No `state` property: the invocation counts as failed.
    Missing,
}

/// Reads the `state` of a windowed invocation's response. Lambda requires an object with a
/// `state` property; anything else fails the invocation.
pub(crate) fn answer_state(response: Option<&Value>) -> WindowAnswer {
    match response.and_then(|r| r.get("state")) {
        Some(state) if !state.is_null() => WindowAnswer::State(state.clone()),
        _ => WindowAnswer::Missing,
    }
}

/// Whether a state is too large to carry on (the window then ends early).
pub(crate) fn state_too_large(state: &Value) -> bool {
    state.to_string().len() > WINDOW_STATE_BYTES_MAX
}

/// The window fields of an invocation as JSON texts, in the order Lambda sends them.
pub(crate) fn window_fields(
    window: &WindowBounds,
    state: &Value,
    shard: &str,
    stream_arn: &str,
    is_final: bool,
    terminated_early: bool,
) -> Vec<(&'static str, String)> {
    let text = |s: &str| Value::from(s).to_string();
    vec![
        (
            "window",
            format!(
                r#"{{"start":{},"end":{}}}"#,
                text(&iso_seconds(window.start_ms)),
                text(&iso_seconds(window.end_ms))
            ),
        ),
        ("state", state.to_string()),
        ("shardId", text(shard)),
        ("eventSourceARN", text(stream_arn)),
        ("isFinalInvokeForWindow", is_final.to_string()),
        ("isWindowTerminatedEarly", terminated_early.to_string()),
    ]
}

impl EventSourceMapping {
    /// Makes the final invocation of one lane's window (no records, the aggregated state),
    /// retried under the mapping's retry policy. Returns `false` when `stop` interrupted it
    /// (the window is then replayed by the next run).
    pub(crate) fn final_invoke(
        &self,
        shard: &str,
        lane: usize,
        window: &WindowBounds,
        state: &Value,
        terminated_early: bool,
        stop: &AtomicBool,
    ) -> bool {
        let fields = window_fields(
            window,
            state,
            shard,
            &self.identity.stream_arn,
            true,
            terminated_early,
        );
        let event = EventBatch {
            shard_id: shard,
            records: &[],
            fields: &fields,
            identity: &self.identity_json,
        };
        let max_age_ms = self
            .config
            .maximum_record_age_in_seconds
            .saturating_mul(1000);
        let mut invokes = 0u64;
        loop {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            invokes += 1;
            self.decide(|at_ms| Decision::Invoke {
                at_ms,
                shard: shard.to_string(),
                lane,
                first_sequence: None,
                last_sequence: None,
                records: 0,
                attempt: invokes,
                final_for_window: true,
            });
            let outcome = self.function.invoke_batch(lane, &event);
            self.decide(|at_ms| Decision::Outcome {
                at_ms,
                shard: shard.to_string(),
                lane,
                outcome: outcome_name(&outcome).into(),
            });
            let counted = !matches!(outcome, Invocation::ServiceError(_));
            self.metrics.update(shard, |c| {
                if counted {
                    c.invocations += 1;
                } else {
                    c.throttles += 1;
                }
            });
            match outcome {
                Invocation::Returned(_) => return true,
                Invocation::ServiceError(_) => {
                    invokes -= 1;
                    self.backoff(shard, lane, invokes.max(1));
                }
                Invocation::FunctionError(_) => {
                    self.metrics.update(shard, |c| c.errors += 1);
                    // The window's state is given up once its records would have been
                    // discarded: retries exhausted, or the window older than the record age.
                    let now = self.options.clock.now_ms();
                    let too_old = max_age_ms >= 0 && now.saturating_sub(window.end_ms) > max_age_ms;
                    if self.exhausted(invokes) || too_old {
                        return true;
                    }
                    self.backoff(shard, lane, invokes);
                }
            }
        }
    }

    /// Closes a window: the final invocation of every lane that saw records.
    pub(crate) fn close_window(&self, shard: &str, window: &OpenWindow, stop: &AtomicBool) -> bool {
        window.lanes.iter().enumerate().all(|(lane, open)| {
            !open.touched
                || self.final_invoke(shard, lane, &window.bounds, &open.state, false, stop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::event::MappingIdentity;
    use crate::consumer::function::EventBatch;
    use crate::consumer::record_json::IdentityJson;
    use serde_json::json;

    #[test]
    fn windows_are_aligned_to_their_length() {
        let w = OpenWindow::containing(1_000_123_456, 60_000, 2);
        assert_eq!(w.bounds.start_ms, 1_000_080_000);
        assert_eq!(w.bounds.end_ms, 1_000_140_000);
        assert!(w.contains(1_000_080_000) && w.contains(1_000_139_999));
        assert!(!w.contains(1_000_140_000) && !w.contains(1_000_079_999));
        assert_eq!(w.lanes.len(), 2);
    }

    #[test]
    fn a_response_must_carry_a_state() {
        assert_eq!(
            answer_state(Some(&json!({"state": {"n": 1}}))),
            WindowAnswer::State(json!({"n": 1}))
        );
        for missing in [json!({}), json!({"state": null}), json!([1]), json!("x")] {
            assert_eq!(
                answer_state(Some(&missing)),
                WindowAnswer::Missing,
                "{missing}"
            );
        }
        assert_eq!(answer_state(None), WindowAnswer::Missing);
    }

    #[test]
    fn window_fields_follow_lambdas_order_and_format() {
        let w = OpenWindow::containing(1_596_128_400_000, 300_000, 1);
        let fields = window_fields(
            &w.bounds,
            &json!({"1": 282}),
            "shardId-000000000006",
            "arn",
            false,
            false,
        );
        let identity = IdentityJson::new(&MappingIdentity {
            stream_arn: "arn".into(),
            function_arn: "f".into(),
            role_arn: "r".into(),
            region: "us-east-1".into(),
        });
        let event = EventBatch {
            shard_id: "shardId-000000000006",
            records: &[],
            fields: &fields,
            identity: &identity,
        }
        .to_json();
        assert_eq!(
            event,
            r#"{"Records":[],"window":{"start":"2020-07-30T17:00:00Z","end":"2020-07-30T17:05:00Z"},"state":{"1":282},"shardId":"shardId-000000000006","eventSourceARN":"arn","isFinalInvokeForWindow":false,"isWindowTerminatedEarly":false}"#
        );
    }

    #[test]
    fn states_past_one_mebibyte_are_too_large() {
        let big = json!({"s": "x".repeat(WINDOW_STATE_BYTES_MAX)});
        assert!(state_too_large(&big));
        assert!(!state_too_large(&json!({"s": "x".repeat(1000)})));
    }
}
