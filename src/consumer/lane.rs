//! One lane's share of a batch: invoke, then apply Lambda's rules until every record is
//! processed or discarded — record age (expired records split off), retries with backoff,
//! bisect on function error (halves start afresh), partial batch responses (retry from the
//! lowest failure), tumbling-window state — and report discarded records.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use super::decisions::Decision;
use super::event::{failure_record, Condition, DiscardedBatch, PolledRecord};
use super::function::{outcome_name, EventBatch, Invocation};
use super::mapping::EventSourceMapping;
use super::poller::Pending;
use super::response::{judge, BatchVerdict};
use super::window::{
    answer_state, state_too_large, window_fields, LaneWindow, WindowAnswer, WindowBounds,
};
use crate::error::Result;
use crate::stream::SequenceNumber;

impl EventSourceMapping {
    pub(crate) fn exhausted(&self, invokes: u64) -> bool {
        self.config.maximum_retry_attempts >= 0
            && invokes > self.config.maximum_retry_attempts as u64
    }

    /// Invokes one lane's records until each is done, filtered or discarded (`true`), or
    /// until `stop` is set between attempts (`false`: the rest is abandoned, to be redelivered
    /// from the checkpoint by the next run).
    pub(crate) fn process_lane(
        &self,
        shard: &str,
        lane: usize,
        records: Vec<Pending>,
        stop: &AtomicBool,
        mut window: Option<(WindowBounds, &mut LaneWindow)>,
    ) -> Result<bool> {
        let mut queue: VecDeque<(Vec<Pending>, u64)> = VecDeque::from([(records, 0)]);
        let max_age_ms = self
            .config
            .maximum_record_age_in_seconds
            .saturating_mul(1000);
        while let Some((mut batch, mut invokes)) = queue.pop_front() {
            if stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            // Records retention removed from the stream while they were retried are gone:
            // Lambda moves on without a failure record and without counting them dropped.
            if let Some(cutoff) = self.source.expired_before_ms() {
                let before = batch.len();
                batch.retain(|p| p.record.arrival_ms >= cutoff);
                let gone = before - batch.len();
                if gone > 0 {
                    self.decide(|at_ms| Decision::Expired {
                        at_ms,
                        shard: shard.to_string(),
                        lane,
                        records: gone,
                    });
                }
            }
            if max_age_ms >= 0 {
                let now = self.options.clock.now_ms();
                let (expired, young): (Vec<Pending>, Vec<Pending>) = batch
                    .into_iter()
                    .partition(|p| now.saturating_sub(p.record.arrival_ms) > max_age_ms);
                if !expired.is_empty() {
                    self.discard(
                        shard,
                        lane,
                        &expired,
                        Condition::RecordAgeExceeded,
                        invokes.max(1),
                        None,
                    )?;
                }
                batch = young;
            }
            if batch.is_empty() {
                continue;
            }
            invokes += 1;
            if invokes > 1 {
                self.metrics.update(shard, |c| c.retries += 1);
            }
            let len = batch.len() as u64;
            let now = self.options.clock.now_ms();
            let age = batch
                .last()
                .map_or(0, |p| now.saturating_sub(p.record.arrival_ms).max(0) as u64);
            let fields = window.as_ref().map_or_else(Vec::new, |(bounds, open)| {
                window_fields(
                    bounds,
                    &open.state,
                    shard,
                    &self.identity.stream_arn,
                    false,
                    false,
                )
            });
            let event = EventBatch {
                shard_id: shard,
                records: &batch,
                fields: &fields,
                identity: &self.identity_json,
            };
            self.decide(|at_ms| Decision::Invoke {
                at_ms,
                shard: shard.to_string(),
                lane,
                first_sequence: batch.first().map(|p| p.record.sequence_number.to_string()),
                last_sequence: batch.last().map(|p| p.record.sequence_number.to_string()),
                records: batch.len(),
                attempt: invokes,
                final_for_window: false,
            });
            let mut outcome = self.function.invoke_batch(lane, &event);
            let mut window_state_missing = false;
            if let (Some((bounds, open)), Invocation::Returned(response)) =
                (window.as_mut(), &outcome)
            {
                open.touched = true;
                match answer_state(response.as_ref()) {
                    WindowAnswer::State(state) => open.state = state,
                    WindowAnswer::Missing => {
                        window_state_missing = true;
                        outcome = Invocation::FunctionError(
                            "the response of a tumbling-window invocation has no state".into(),
                        );
                    }
                }
                if state_too_large(&open.state) {
                    // Past 1 MB the window ends early; its remaining records start afresh.
                    let state = std::mem::take(&mut open.state);
                    **open = LaneWindow::default();
                    if !self.final_invoke(shard, lane, bounds, &state, true, stop) {
                        return Ok(false);
                    }
                }
            }
            let counted = !matches!(outcome, Invocation::ServiceError(_));
            self.metrics.update(shard, |c| {
                if counted {
                    c.invocations += 1;
                    c.invoked_event_count += len;
                    c.iterator_age = age;
                } else {
                    c.throttles += 1;
                }
            });
            let verdict = match &outcome {
                Invocation::Returned(response) if self.config.reports_batch_item_failures() => {
                    let seqs: Vec<SequenceNumber> =
                        batch.iter().map(|p| p.record.sequence_number).collect();
                    judge(response.as_ref(), &seqs)
                }
                _ => BatchVerdict::Success,
            };
            self.decide(|at_ms| Decision::Outcome {
                at_ms,
                shard: shard.to_string(),
                lane,
                outcome: match (&outcome, verdict) {
                    (Invocation::FunctionError(_), _) if window_state_missing => {
                        "MissingWindowState".into()
                    }
                    (Invocation::Returned(_), BatchVerdict::RetryFrom(i)) => {
                        format!("RetryFrom({i})")
                    }
                    (Invocation::Returned(_), BatchVerdict::WholeFailure) => "WholeFailure".into(),
                    (other, _) => outcome_name(other).into(),
                },
            });
            match outcome {
                Invocation::ServiceError(_) => {
                    // Never reached the function: retried without using an attempt.
                    self.backoff(shard, lane, invokes);
                    queue.push_front((batch, invokes - 1));
                }
                Invocation::FunctionError(_) => {
                    self.metrics.update(shard, |c| {
                        c.errors += 1;
                        c.failed_invoke_event_count += len;
                    });
                    if self.config.bisect_batch_on_function_error && batch.len() > 1 {
                        // Halves start afresh: a split is not a retry.
                        self.metrics.update(shard, |c| c.bisects += 1);
                        let second = batch.split_off(batch.len() / 2);
                        self.decide(|at_ms| Decision::Bisect {
                            at_ms,
                            shard: shard.to_string(),
                            lane,
                            first_half: batch.len(),
                            second_half: second.len(),
                        });
                        queue.push_front((second, 0));
                        queue.push_front((batch, 0));
                    } else if self.exhausted(invokes) {
                        self.discard(
                            shard,
                            lane,
                            &batch,
                            Condition::RetryAttemptsExhausted,
                            invokes,
                            Some("Unhandled"),
                        )?;
                    } else {
                        self.backoff(shard, lane, invokes);
                        queue.push_front((batch, invokes));
                    }
                }
                Invocation::Returned(_) => {
                    let retry_from = match verdict {
                        BatchVerdict::Success => continue,
                        BatchVerdict::RetryFrom(index) => index,
                        BatchVerdict::WholeFailure => 0,
                    };
                    let rest = batch.split_off(retry_from.min(batch.len()));
                    let failed = rest.len() as u64;
                    self.metrics
                        .update(shard, |c| c.failed_invoke_event_count += failed);
                    // Everything before the lowest failure is done: checkpoint it (inside a
                    // tumbling window the checkpoint waits for the window's end).
                    if let (Some(done), 1, None) = (
                        batch.last(),
                        self.config.parallelization_factor,
                        window.as_ref(),
                    ) {
                        self.checkpoint(shard, done.record.sequence_number, false)?;
                    }
                    if self.exhausted(invokes) {
                        self.discard(
                            shard,
                            lane,
                            &rest,
                            Condition::RetryAttemptsExhausted,
                            invokes,
                            None,
                        )?;
                    } else {
                        self.backoff(shard, lane, invokes);
                        queue.push_front((rest, invokes));
                    }
                }
            }
        }
        Ok(true)
    }

    /// Reports a discarded batch to the destination (or counts it dropped).
    fn discard(
        &self,
        shard: &str,
        lane: usize,
        batch: &[Pending],
        condition: Condition,
        invokes: u64,
        function_error: Option<&str>,
    ) -> Result<()> {
        let len = batch.len() as u64;
        let decision = |reported: bool| {
            let sequence = |p: Option<&Pending>| {
                p.map(|p| p.record.sequence_number.to_string())
                    .unwrap_or_default()
            };
            move |at_ms| Decision::Discard {
                at_ms,
                shard: shard.to_string(),
                lane,
                condition: condition.name().to_string(),
                first_sequence: sequence(batch.first()),
                last_sequence: sequence(batch.last()),
                records: batch.len(),
                approximate_invoke_count: invokes,
                reported,
            }
        };
        if !self.destination.is_some() {
            self.decide(decision(false));
            self.metrics.update(shard, |c| c.dropped_event_count += len);
            return Ok(());
        }
        let records: Vec<PolledRecord> = batch.iter().map(|p| p.record.clone()).collect();
        let request_id = self.request_id(shard, lane);
        let now = self.options.clock.now_ms();
        let record = failure_record(
            &self.identity,
            &request_id,
            condition,
            invokes,
            function_error,
            now,
            DiscardedBatch {
                shard_id: shard,
                records: &records,
            },
        );
        let delivered = self.destination.deliver(shard, &record).is_ok();
        self.decide(decision(delivered));
        if delivered {
            self.metrics.update(shard, |c| {
                c.on_failure_destination_delivered_event_count += len
            });
        } else {
            self.metrics.update(shard, |c| {
                c.destination_delivery_failures += 1;
                c.dropped_event_count += len;
            });
        }
        Ok(())
    }
}
