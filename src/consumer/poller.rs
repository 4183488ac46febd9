//! One shard's poller: read, filter, batch (BatchSize, window, 6 MB), invoke with Lambda's
//! retry, record-age, bisect and partial-failure rules, report discarded batches, checkpoint.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::checkpoint::ShardCheckpoint;
use super::config::StartingPosition;
use super::event::{
    event_json, event_record_json, failure_record, Condition, PolledRecord, EVENT_ENVELOPE_BYTES,
};
use super::function::Invocation;
use super::mapping::EventSourceMapping;
use super::response::{judge, BatchVerdict};
use super::window::{
    answer_state, state_too_large, window_fields, LaneWindow, OpenWindow, WindowAnswer,
    WindowBounds,
};
use crate::error::{Error, Result};
use crate::format::kpl;
use crate::stream::{KinesisRecord, ShardIteratorType};

/// Lambda's synchronous invocation payload limit: 6 MB.
pub const INVOKE_PAYLOAD_BYTES_MAX: usize = 6 * 1000 * 1000;

/// One record as the function will see it (a user record when de-aggregating).
struct Unit {
    sequence_number: String,
    partition_key: String,
    data: Vec<u8>,
    sub_sequence_number: Option<u64>,
}

/// A record with its event JSON, built once.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    record: PolledRecord,
    json: String,
}

impl EventSourceMapping {
    fn start_position(&self, shard: &str) -> ShardIteratorType {
        if let Some(ShardCheckpoint {
            sequence_number: Some(seq),
            ..
        }) = self.checkpoints.get(shard)
        {
            return ShardIteratorType::AfterSequenceNumber(seq);
        }
        match self.config.starting_position {
            Some(StartingPosition::Latest) => ShardIteratorType::Latest,
            Some(StartingPosition::AtTimestamp) => ShardIteratorType::AtTimestamp(
                (self.config.starting_position_timestamp.unwrap_or(0.0) * 1000.0) as i64,
            ),
            _ => ShardIteratorType::TrimHorizon,
        }
    }

    fn checkpoint(&self, shard: &str, sequence_number: &str, finished: bool) -> Result<()> {
        self.checkpoints.set(
            shard,
            ShardCheckpoint {
                sequence_number: Some(sequence_number.to_string()),
                finished,
            },
        )
    }

    /// Polls one shard until it is finished, idle (when asked) or stopped.
    pub(crate) fn poll_shard(
        &self,
        shard: &str,
        stop: &AtomicBool,
        until_idle: bool,
    ) -> Result<()> {
        let mut iterator = self
            .source
            .get_shard_iterator(shard, &self.start_position(shard))?;
        let mut pending: Vec<Pending> = Vec::new();
        // Stream records behind `pending` (fewer than its entries when aggregates are
        // expanded): BatchSize counts these.
        let mut pending_records = 0usize;
        let mut pending_bytes = EVENT_ENVELOPE_BYTES;
        let mut read_upto: Option<String> = None;
        let batching_window_ms = i64::from(self.config.maximum_batching_window_in_seconds) * 1000;
        let tumbling_ms = i64::from(self.config.tumbling_window_in_seconds) * 1000;
        let lanes = self.config.parallelization_factor as usize;
        // The tumbling window being filled; while one is open the checkpoint stays before it.
        let mut tumbling: Option<OpenWindow> = None;
        let mut batching_start = self.options.clock.now_ms();
        let batch_size = self.config.batch_size as usize;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let appends_seen = self.source.appends();
            let want = batch_size.saturating_sub(pending_records).max(1);
            let page = match self.source.get_records(&iterator, want) {
                Ok(page) => page,
                Err(Error::ProvisionedThroughputExceeded(_)) => {
                    self.backoff(1);
                    continue;
                }
                Err(Error::ExpiredIterator(_)) => {
                    // Re-acquire by sequence number, never from the starting position: just
                    // after the last record read (everything up to it is processed, pending or
                    // filtered, and pending batches and an open window are kept), or from the
                    // checkpoint when this run has read nothing yet.
                    let resume = match &read_upto {
                        Some(seq) => ShardIteratorType::AfterSequenceNumber(seq.clone()),
                        None => self.start_position(shard),
                    };
                    iterator = self.source.get_shard_iterator(shard, &resume)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let count = page.records.len() as u64;
            self.metrics
                .update(shard, |c| c.polled_event_count += count);
            for r in page.records {
                let previous = read_upto.replace(r.sequence_number.clone());
                let seconds = r.approximate_arrival_timestamp_ms as f64 / 1000.0;
                let arrival_ms = r.approximate_arrival_timestamp_ms;
                let mut counted = false;
                for unit in self.units(r) {
                    if !self.filters.keep(
                        &unit.partition_key,
                        &unit.sequence_number,
                        seconds,
                        &unit.data,
                    ) {
                        self.metrics
                            .update(shard, |c| c.filtered_out_event_count += 1);
                        continue;
                    }
                    if tumbling_ms > 0 {
                        if let Some(open) = tumbling.take_if(|w| !w.contains(arrival_ms)) {
                            // A record of a later window: finish the open one first.
                            if !self.finish_window(
                                shard,
                                &mut pending,
                                open,
                                previous.as_deref(),
                                stop,
                            )? {
                                return Ok(());
                            }
                            pending_records = 0;
                            pending_bytes = EVENT_ENVELOPE_BYTES;
                            batching_start = self.options.clock.now_ms();
                        }
                        if tumbling.is_none() {
                            tumbling = Some(OpenWindow::containing(arrival_ms, tumbling_ms, lanes));
                            pending_bytes = EVENT_ENVELOPE_BYTES
                                + tumbling.as_ref().map_or(0, OpenWindow::overhead_bytes);
                        }
                    }
                    let record = PolledRecord {
                        shard_id: shard.to_string(),
                        sequence_number: unit.sequence_number,
                        partition_key: unit.partition_key,
                        data: unit.data,
                        arrival_ms,
                        sub_sequence_number: unit.sub_sequence_number,
                    };
                    let json = event_record_json(&record, &self.identity);
                    // 6 MB: invoke what is gathered before this record would pass the limit.
                    if !pending.is_empty()
                        && pending_bytes + json.len() + 1 > INVOKE_PAYLOAD_BYTES_MAX
                    {
                        let batch = std::mem::take(&mut pending);
                        pending_records = 0;
                        counted = false;
                        if !self.process_batch(shard, batch, stop, tumbling.as_mut())? {
                            return Ok(());
                        }
                        pending_bytes = EVENT_ENVELOPE_BYTES
                            + tumbling.as_ref().map_or(0, OpenWindow::overhead_bytes);
                        // Everything before this stream record is done (part of an aggregate
                        // may still be pending, so not the record itself).
                        if let (Some(done), None) = (&previous, &tumbling) {
                            self.checkpoint(shard, done, false)?;
                        }
                        batching_start = self.options.clock.now_ms();
                    }
                    if !counted {
                        pending_records += 1;
                        counted = true;
                    }
                    pending_bytes += json.len() + 1;
                    pending.push(Pending { record, json });
                }
            }
            let end_of_shard = page.next_shard_iterator.is_none();
            let caught_up = page.millis_behind_latest == 0 && (count as usize) < want;
            let now = self.options.clock.now_ms();
            let window_over = now.saturating_sub(batching_start) >= batching_window_ms;
            let flush = pending_records >= batch_size
                || end_of_shard
                || (window_over && !pending.is_empty());
            if flush {
                if !pending.is_empty() {
                    let batch = std::mem::take(&mut pending);
                    pending_records = 0;
                    if !self.process_batch(shard, batch, stop, tumbling.as_mut())? {
                        // Stopped mid-batch: the checkpoint stays before it.
                        return Ok(());
                    }
                    pending_bytes = EVENT_ENVELOPE_BYTES
                        + tumbling.as_ref().map_or(0, OpenWindow::overhead_bytes);
                }
                batching_start = self.options.clock.now_ms();
            }
            // A tumbling window closes at the shard's end, or once its end has passed and the
            // shard is caught up (no record of it can still arrive). An idle run waits for it.
            if let Some(open) = &tumbling {
                let mut closes = end_of_shard || (caught_up && now >= open.bounds.end_ms);
                if !closes && caught_up && until_idle && pending.is_empty() {
                    let wait_ms = open.bounds.end_ms.saturating_sub(now).max(1);
                    (self.options.sleeper)(Duration::from_millis(wait_ms.unsigned_abs()));
                    closes = self.options.clock.now_ms() >= open.bounds.end_ms;
                }
                if closes {
                    if let Some(open) = tumbling.take() {
                        let upto = read_upto.clone();
                        if !self.finish_window(shard, &mut pending, open, upto.as_deref(), stop)? {
                            return Ok(());
                        }
                        pending_records = 0;
                        pending_bytes = EVENT_ENVELOPE_BYTES;
                    }
                }
            }
            if pending.is_empty() && tumbling.is_none() {
                if let Some(seq) = &read_upto {
                    self.checkpoint(shard, seq, false)?;
                }
            }
            match page.next_shard_iterator {
                None => {
                    let last = read_upto
                        .clone()
                        .or_else(|| self.checkpoints.get(shard).and_then(|c| c.sequence_number));
                    self.checkpoints.set(
                        shard,
                        ShardCheckpoint {
                            sequence_number: last,
                            finished: true,
                        },
                    )?;
                    return Ok(());
                }
                Some(next) => iterator = next,
            }
            if caught_up {
                if until_idle && pending.is_empty() && tumbling.is_none() {
                    return Ok(());
                }
                if pending.is_empty() && tumbling.is_none() {
                    // Caught up: wake on the next put in this process (or after a poll interval).
                    self.source
                        .wait_for_append(appends_seen, self.options.poll_interval);
                } else {
                    // A batching or tumbling window is open: wait for it (on the mapping's
                    // clock).
                    (self.options.sleeper)(
                        self.options.poll_interval.min(Duration::from_millis(100)),
                    );
                }
            }
        }
    }

    /// What one stream record becomes in events: itself, or with `DeaggregateRecords` the
    /// user records of a KPL aggregate (a record that is not one passes through whole).
    fn units(&self, r: KinesisRecord) -> Vec<Unit> {
        if !self.config.deaggregate_records {
            return vec![Unit {
                sequence_number: r.sequence_number,
                partition_key: r.partition_key,
                data: r.data,
                sub_sequence_number: None,
            }];
        }
        kpl::deaggregate(&r.partition_key, None, &r.data)
            .into_iter()
            .map(|user| Unit {
                sequence_number: r.sequence_number.clone(),
                partition_key: user.partition_key,
                data: user.data,
                sub_sequence_number: user.sub_sequence_number,
            })
            .collect()
    }

    /// Invokes what is pending of a tumbling window, makes its final invocations, and then
    /// checkpoints `upto` (the last record read before the next window). Returns `false` when
    /// stopped before the window finished.
    fn finish_window(
        &self,
        shard: &str,
        pending: &mut Vec<Pending>,
        mut window: OpenWindow,
        upto: Option<&str>,
        stop: &AtomicBool,
    ) -> Result<bool> {
        if !pending.is_empty() {
            let batch = std::mem::take(pending);
            if !self.process_batch(shard, batch, stop, Some(&mut window))? {
                return Ok(false);
            }
        }
        if !self.close_window(shard, &window, stop) {
            return Ok(false);
        }
        if let Some(upto) = upto {
            self.checkpoint(shard, upto, false)?;
        }
        Ok(true)
    }

    /// Processes one batch, split into lanes by partition key when ParallelizationFactor > 1
    /// (per-key order holds; lanes run concurrently); returns when every lane is done, with
    /// `false` when `stop` made a lane abandon its records (nothing past the checkpoint may
    /// then be checkpointed).
    fn process_batch(
        &self,
        shard: &str,
        batch: Vec<Pending>,
        stop: &AtomicBool,
        window: Option<&mut OpenWindow>,
    ) -> Result<bool> {
        let lanes = self.config.parallelization_factor as usize;
        let (bounds, mut lane_windows): (Option<WindowBounds>, Vec<Option<&mut LaneWindow>>) =
            match window {
                Some(w) => (Some(w.bounds), w.lanes.iter_mut().map(Some).collect()),
                None => (None, Vec::new()),
            };
        lane_windows.resize_with(lanes.max(1), || None);
        if lanes <= 1 {
            let lane_window = lane_windows.into_iter().next().flatten();
            let window = bounds.zip(lane_window);
            return self.process_lane(shard, 0, batch, stop, window);
        }
        let mut by_lane: Vec<Vec<Pending>> = vec![Vec::new(); lanes];
        for p in batch {
            let lane = (xxhash_rust::xxh3::xxh3_64(p.record.partition_key.as_bytes())
                % lanes as u64) as usize;
            if let Some(slot) = by_lane.get_mut(lane) {
                slot.push(p);
            }
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = by_lane
                .into_iter()
                .zip(lane_windows)
                .enumerate()
                .filter(|(_, (records, _))| !records.is_empty())
                .map(|(lane, (records, lane_window))| {
                    let window = bounds.zip(lane_window);
                    scope.spawn(move || self.process_lane(shard, lane, records, stop, window))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Internal("a lane panicked".into())))
                })
                .collect::<Result<Vec<bool>>>()
                .map(|completed| completed.iter().all(|c| *c))
        })
    }

    pub(crate) fn exhausted(&self, invokes: u64) -> bool {
        self.config.maximum_retry_attempts >= 0
            && invokes > self.config.maximum_retry_attempts as u64
    }

    /// Invokes one lane's records until each is done, filtered or discarded (`true`), or
    /// until `stop` is set between attempts (`false`: the rest is abandoned, to be redelivered
    /// from the checkpoint by the next run).
    fn process_lane(
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
            if max_age_ms >= 0 {
                let now = self.options.clock.now_ms();
                let (expired, young): (Vec<Pending>, Vec<Pending>) = batch
                    .into_iter()
                    .partition(|p| now.saturating_sub(p.record.arrival_ms) > max_age_ms);
                if !expired.is_empty() {
                    self.discard(
                        shard,
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
            let jsons: Vec<&str> = batch.iter().map(|p| p.json.as_str()).collect();
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
            let event = event_json(&jsons, &fields);
            let mut outcome = self.function.invoke(lane, &event);
            if let (Some((bounds, open)), Invocation::Returned(response)) =
                (window.as_mut(), &outcome)
            {
                open.touched = true;
                match answer_state(response.as_ref()) {
                    WindowAnswer::State(state) => open.state = state,
                    WindowAnswer::Missing => {
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
            match outcome {
                Invocation::ServiceError(_) => {
                    // Never reached the function: retried without using an attempt.
                    self.backoff(invokes);
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
                        queue.push_front((second, 0));
                        queue.push_front((batch, 0));
                    } else if self.exhausted(invokes) {
                        self.discard(
                            shard,
                            &batch,
                            Condition::RetryAttemptsExhausted,
                            invokes,
                            Some("Unhandled"),
                        )?;
                    } else {
                        self.backoff(invokes);
                        queue.push_front((batch, invokes));
                    }
                }
                Invocation::Returned(response) => {
                    if !self.config.reports_batch_item_failures() {
                        continue;
                    }
                    let seqs: Vec<&str> = batch
                        .iter()
                        .map(|p| p.record.sequence_number.as_str())
                        .collect();
                    let retry_from = match judge(response.as_ref(), &seqs) {
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
                        self.checkpoint(shard, &done.record.sequence_number, false)?;
                    }
                    if self.exhausted(invokes) {
                        self.discard(
                            shard,
                            &rest,
                            Condition::RetryAttemptsExhausted,
                            invokes,
                            None,
                        )?;
                    } else {
                        self.backoff(invokes);
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
        batch: &[Pending],
        condition: Condition,
        invokes: u64,
        function_error: Option<&str>,
    ) -> Result<()> {
        let len = batch.len() as u64;
        if !self.destination.is_some() {
            self.metrics.update(shard, |c| c.dropped_event_count += len);
            return Ok(());
        }
        let records: Vec<PolledRecord> = batch.iter().map(|p| p.record.clone()).collect();
        let request_id = self.request_id();
        let now = self.options.clock.now_ms();
        let record = failure_record(
            &self.identity,
            &request_id,
            condition,
            invokes,
            function_error,
            now,
            &records,
        );
        match self.destination.deliver(shard, &record) {
            Ok(()) => self.metrics.update(shard, |c| {
                c.on_failure_destination_delivered_event_count += len
            }),
            Err(_) => self.metrics.update(shard, |c| {
                c.destination_delivery_failures += 1;
                c.dropped_event_count += len;
            }),
        }
        Ok(())
    }
}
