//! One shard's poller: read, filter (and de-aggregate on request), batch (BatchSize, batching
//! window, 6 MB), group into tumbling windows, split batches into lanes by partition key
//! (each lane's rules live in `lane.rs`), checkpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::checkpoint::ShardCheckpoint;
use super::config::StartingPosition;
use super::decisions::Decision;
use super::event::{PolledRecord, EVENT_ENVELOPE_BYTES};
use super::mapping::EventSourceMapping;
use super::window::{LaneWindow, OpenWindow, WindowBounds};
use crate::error::{Error, Result};
use crate::format::kpl;
use crate::stream::{KinesisRecord, SequenceNumber, ShardIteratorType};
use bytestring::ByteString;

/// Lambda's synchronous invocation payload limit: 6 MB.
pub const INVOKE_PAYLOAD_BYTES_MAX: usize = 6 * 1000 * 1000;

/// Most records a poller asks get_records for at once (GetRecords' own limit, as Lambda
/// polls); a page holds at most this many records and 10 MiB, shared with the stored batches.
const POLL_PAGE_RECORDS: usize = 10_000;

/// One record as the function will see it (a user record when de-aggregating).
struct Unit {
    sequence_number: SequenceNumber,
    partition_key: ByteString,
    data: bytes::Bytes,
    sub_sequence_number: Option<u64>,
}

/// The units of one stream record, without a vector for the common single one.
enum Units {
    One(Option<Unit>),
    Many(std::vec::IntoIter<Unit>),
}

impl Iterator for Units {
    type Item = Unit;

    fn next(&mut self) -> Option<Unit> {
        match self {
            Units::One(unit) => unit.take(),
            Units::Many(units) => units.next(),
        }
    }
}

/// The records gathered for the next invocation, with what the batching rules count.
struct Gathered {
    records: Vec<Pending>,
    /// Stream records behind `records` (fewer than its entries when aggregates are
    /// expanded): BatchSize counts these.
    stream_records: usize,
    /// Bytes of the invocation payload so far, envelope and window fields included.
    payload_bytes: usize,
    /// Records reserved at the first push: a batch's worth, so gathering does not copy the
    /// batch as its vector doubles (that was a sixth of a 1,000-record batch's polling).
    expected_records: usize,
}

impl Gathered {
    /// Nothing gathered yet, for an invocation in `window` (if any) of about
    /// `expected_records` records (BatchSize, at most 10,000).
    fn empty(window: Option<&OpenWindow>, expected_records: usize) -> Gathered {
        Gathered {
            records: Vec::new(),
            stream_records: 0,
            payload_bytes: EVENT_ENVELOPE_BYTES + window.map_or(0, OpenWindow::overhead_bytes),
            expected_records,
        }
    }

    /// Takes what was gathered, leaving it empty outside any window (a caller still in one
    /// starts afresh with [`Gathered::empty`] once the batch has updated the state).
    fn take(&mut self) -> Vec<Pending> {
        let expected = self.expected_records;
        std::mem::replace(self, Gathered::empty(None, expected)).records
    }

    /// Whether adding a record whose JSON takes `json_len` bytes would pass 6 MB.
    fn would_overflow(&self, json_len: usize) -> bool {
        !self.records.is_empty() && self.payload_bytes + json_len + 1 > INVOKE_PAYLOAD_BYTES_MAX
    }

    /// Adds a record; `new_stream_record` when it is the first one of its stream record.
    fn push(&mut self, pending: Pending, new_stream_record: bool) {
        self.stream_records += usize::from(new_stream_record);
        self.payload_bytes += pending.json_len + 1;
        if self.records.capacity() == 0 {
            self.records.reserve_exact(self.expected_records);
        }
        self.records.push(pending);
    }
}

/// A shard's coalesced checkpoint: when it was last written and what waits to be.
#[derive(Debug, Default)]
pub(crate) struct PendingCheckpoint {
    written_ms: Option<i64>,
    sequence: Option<SequenceNumber>,
}

/// A record waiting for its invocation.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) record: PolledRecord,
    /// Bytes of its event JSON (built only when an invocation asks for JSON).
    pub(crate) json_len: usize,
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

    /// Records that everything up to `sequence_number` is processed. The write is coalesced:
    /// at most one per `checkpoint_interval` per shard, the latest position kept pending in
    /// memory until then (a crash in between redelivers, never skips); [`Self::flush_checkpoint`]
    /// writes it when the poller ends.
    pub(crate) fn checkpoint(
        &self,
        shard: &str,
        sequence_number: SequenceNumber,
        finished: bool,
    ) -> Result<()> {
        let interval_ms =
            i64::try_from(self.options.checkpoint_interval.as_millis()).unwrap_or(i64::MAX);
        if finished || interval_ms == 0 {
            return self.set_checkpoint(shard, Some(sequence_number.to_string()), finished);
        }
        let now = self.options.clock.now_ms();
        let due = {
            let mut pending = self
                .pending_checkpoints
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = pending.entry(shard.to_string()).or_default();
            let due = entry
                .written_ms
                .is_none_or(|at| now.saturating_sub(at) >= interval_ms);
            if due {
                entry.written_ms = Some(now);
                entry.sequence = None;
            } else {
                // Formatted only when written: most batches' checkpoints are coalesced.
                entry.sequence = Some(sequence_number);
            }
            due
        };
        if due {
            self.set_checkpoint(shard, Some(sequence_number.to_string()), false)?;
        }
        Ok(())
    }

    /// Writes a shard's pending checkpoint, if any.
    pub(crate) fn flush_checkpoint(&self, shard: &str) -> Result<()> {
        let pending = self
            .pending_checkpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(shard)
            .and_then(|p| p.sequence.take());
        match pending {
            Some(sequence) => self.set_checkpoint(shard, Some(sequence.to_string()), false),
            None => Ok(()),
        }
    }

    fn set_checkpoint(&self, shard: &str, sequence: Option<String>, finished: bool) -> Result<()> {
        if finished {
            // The end of the shard supersedes anything pending.
            self.pending_checkpoints
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(shard);
        }
        self.decide(|at_ms| Decision::Checkpoint {
            at_ms,
            shard: shard.to_string(),
            sequence: sequence.clone(),
            finished,
        });
        self.checkpoints.set(
            shard,
            ShardCheckpoint {
                sequence_number: sequence,
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
        let mut pending = Gathered::empty(None, self.gathered_records_expected());
        let mut read_upto: Option<SequenceNumber> = None;
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
            // Pages as large as GetRecords allows, as Lambda polls; batches are cut from them
            // at BatchSize. Small pages made every BatchSize records cost a get_records call
            // and a fresh check of the batch they start in.
            let want = POLL_PAGE_RECORDS;
            let page = match self.source.get_records(&iterator, want) {
                Ok(page) => page,
                Err(Error::ProvisionedThroughputExceeded(_)) => {
                    self.backoff(shard, 0, 1);
                    continue;
                }
                Err(Error::ExpiredIterator(_)) => {
                    // Re-acquire by sequence number, never from the starting position: just
                    // after the last record read (everything up to it is processed, pending or
                    // filtered, and pending batches and an open window are kept), or from the
                    // checkpoint when this run has read nothing yet.
                    let resume = match &read_upto {
                        Some(seq) => ShardIteratorType::AfterSequenceNumber(seq.to_string()),
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
                // The sequence number read before this record.
                let previous = read_upto.replace(r.sequence_number);
                let seconds = r.approximate_arrival_timestamp_ms as f64 / 1000.0;
                let arrival_ms = r.approximate_arrival_timestamp_ms;
                // Whether a unit of this stream record is among the gathered ones.
                let mut counted = false;
                for unit in self.units(r) {
                    if !self.filters.keep(
                        &unit.partition_key,
                        unit.sequence_number,
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
                            if !self.finish_window(shard, &mut pending, open, previous, stop)? {
                                return Ok(());
                            }
                            batching_start = self.options.clock.now_ms();
                        }
                        if tumbling.is_none() {
                            let open = OpenWindow::containing(arrival_ms, tumbling_ms, lanes);
                            pending =
                                Gathered::empty(Some(&open), self.gathered_records_expected());
                            tumbling = Some(open);
                        }
                    }
                    let record = PolledRecord {
                        sequence_number: unit.sequence_number,
                        partition_key: unit.partition_key,
                        data: unit.data,
                        arrival_ms,
                        sub_sequence_number: unit.sub_sequence_number,
                    };
                    let json_len = self.identity_json.record_len(shard, &record);
                    // 6 MB: invoke what is gathered before this record would pass the limit.
                    if pending.would_overflow(json_len) {
                        counted = false;
                        // Everything before this stream record is done (part of an aggregate
                        // may still be pending, so not the record itself).
                        let done = previous;
                        if !self.invoke_gathered(shard, &mut pending, &mut tumbling, done, stop)? {
                            return Ok(());
                        }
                        batching_start = self.options.clock.now_ms();
                    }
                    pending.push(Pending { record, json_len }, !counted);
                    counted = true;
                }
                if pending.stream_records >= batch_size {
                    // Every unit of this stream record was gathered and is now done.
                    let done = read_upto;
                    if !self.invoke_gathered(shard, &mut pending, &mut tumbling, done, stop)? {
                        return Ok(());
                    }
                    batching_start = self.options.clock.now_ms();
                }
            }
            let end_of_shard = page.next_shard_iterator.is_none();
            let caught_up = page.millis_behind_latest == 0 && (count as usize) < want;
            let now = self.options.clock.now_ms();
            let window_over = now.saturating_sub(batching_start) >= batching_window_ms;
            let flush = pending.stream_records >= batch_size
                || end_of_shard
                || (window_over && !pending.records.is_empty());
            if flush {
                // Stopped mid-batch: the checkpoint stays before it. Otherwise it is moved
                // below, once nothing is pending.
                if !pending.records.is_empty()
                    && !self.invoke_gathered(shard, &mut pending, &mut tumbling, None, stop)?
                {
                    return Ok(());
                }
                batching_start = self.options.clock.now_ms();
            }
            // A tumbling window closes at the shard's end, or once its end has passed and the
            // shard is caught up (no record of it can still arrive). An idle run waits for it.
            if let Some(open) = &tumbling {
                let mut closes = end_of_shard || (caught_up && now >= open.bounds.end_ms);
                if !closes && caught_up && until_idle && pending.records.is_empty() {
                    let wait_ms = open.bounds.end_ms.saturating_sub(now).max(1);
                    (self.options.sleeper)(Duration::from_millis(wait_ms.unsigned_abs()));
                    closes = self.options.clock.now_ms() >= open.bounds.end_ms;
                }
                if closes {
                    if let Some(open) = tumbling.take() {
                        if !self.finish_window(shard, &mut pending, open, read_upto, stop)? {
                            return Ok(());
                        }
                    }
                }
            }
            if pending.records.is_empty() && tumbling.is_none() {
                if let Some(seq) = read_upto {
                    self.checkpoint(shard, seq, false)?;
                }
            }
            match page.next_shard_iterator {
                None => {
                    let last = read_upto
                        .map(String::from)
                        .or_else(|| self.checkpoints.get(shard).and_then(|c| c.sequence_number));
                    self.set_checkpoint(shard, last, true)?;
                    return Ok(());
                }
                Some(next) => iterator = next,
            }
            if caught_up {
                let idle = pending.records.is_empty() && tumbling.is_none();
                if until_idle && idle {
                    return Ok(());
                }
                if idle {
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
    fn units(&self, r: KinesisRecord) -> Units {
        if !self.config.deaggregate_records {
            return Units::One(Some(Unit {
                sequence_number: r.sequence_number,
                partition_key: r.partition_key,
                data: r.data,
                sub_sequence_number: None,
            }));
        }
        let users: Vec<Unit> = kpl::deaggregate(&r.partition_key, None, &r.data)
            .into_iter()
            .map(|user| Unit {
                sequence_number: r.sequence_number,
                partition_key: user.partition_key.into(),
                data: user.data.into(),
                sub_sequence_number: user.sub_sequence_number,
            })
            .collect();
        Units::Many(users.into_iter())
    }

    /// Records a batch usually gathers: BatchSize (at most 10,000, a page).
    fn gathered_records_expected(&self) -> usize {
        (self.config.batch_size as usize).min(POLL_PAGE_RECORDS)
    }

    /// Invokes what is gathered and starts gathering afresh, then checkpoints `done` unless a
    /// tumbling window is open (its records are done only after its final invocation).
    /// Returns `false` when stopped mid-batch.
    fn invoke_gathered(
        &self,
        shard: &str,
        pending: &mut Gathered,
        tumbling: &mut Option<OpenWindow>,
        done: Option<SequenceNumber>,
        stop: &AtomicBool,
    ) -> Result<bool> {
        let batch = pending.take();
        if !self.process_batch(shard, batch, stop, tumbling.as_mut())? {
            return Ok(false);
        }
        // The window's state may have grown: count it afresh.
        *pending = Gathered::empty(tumbling.as_ref(), self.gathered_records_expected());
        if let (Some(done), None) = (done, tumbling.as_ref()) {
            self.checkpoint(shard, done, false)?;
        }
        Ok(true)
    }

    /// Invokes what is gathered of a tumbling window, makes its final invocations, and then
    /// checkpoints `upto` (the last record read before the next window). Returns `false` when
    /// stopped before the window finished.
    fn finish_window(
        &self,
        shard: &str,
        pending: &mut Gathered,
        mut window: OpenWindow,
        upto: Option<SequenceNumber>,
        stop: &AtomicBool,
    ) -> Result<bool> {
        // What follows the window is gathered without window fields.
        let batch = pending.take();
        if !batch.is_empty() && !self.process_batch(shard, batch, stop, Some(&mut window))? {
            return Ok(false);
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
}
