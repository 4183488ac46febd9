//! The event source mapping: one poller per shard, children started only after all their
//! parents are drained and checkpointed at their end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::checkpoint::CheckpointStore;
use super::config::EsmConfig;
use super::decisions::{Decision, DecisionLog};
use super::destination::Destination;
use super::event::MappingIdentity;
use super::filter::Filters;
use super::function::Function;
use super::metrics::{Metrics, MetricsSnapshot};
use super::poller::PendingCheckpoint;
use super::record_json::IdentityJson;
use super::source::RecordSource;
use crate::error::{Error, Result};
use crate::producer::Sleeper;
use crate::storage::{Clock, SimRng};

/// Runtime settings of a mapping that are not part of AWS's configuration.
#[derive(Clone)]
pub struct MappingOptions {
    /// The mapping's name (the function ARN's last part).
    pub name: String,
    /// Region in ARNs and events.
    pub region: String,
    /// Account in ARNs.
    pub account: String,
    /// Time source for record ages, windows and failure records.
    pub clock: Clock,
    /// How pollers and retries wait.
    pub sleeper: Sleeper,
    /// Pause between polls of a caught-up shard (Lambda: one second).
    pub poll_interval: Duration,
    /// First retry backoff; doubles per attempt, with full jitter.
    pub retry_backoff_base: Duration,
    /// Cap of the retry backoff.
    pub retry_backoff_max: Duration,
    /// Seed of the jitter and request ids (one generator per shard and lane is derived from
    /// it).
    pub seed: u64,
    /// Where to record every decision the mapping makes, if anywhere.
    pub decision_log: Option<Arc<DecisionLog>>,
    /// Longest a shard's processed progress waits before its checkpoint is written (default
    /// 100 ms); writes in between are coalesced into one. A shard's end is written at once,
    /// and pending progress is written when a poller stops or goes idle. Zero writes after
    /// every batch, as Lambda does, at the cost of two fsyncs per batch.
    pub checkpoint_interval: Duration,
}

impl std::fmt::Debug for MappingOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappingOptions")
            .field("name", &self.name)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl Default for MappingOptions {
    fn default() -> Self {
        MappingOptions {
            name: "mapping".into(),
            region: "us-east-1".into(),
            account: "000000000000".into(),
            clock: Clock::system(),
            sleeper: Arc::new(std::thread::sleep),
            poll_interval: Duration::from_secs(1),
            retry_backoff_base: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(10),
            seed: 0x5eed,
            decision_log: None,
            checkpoint_interval: Duration::from_millis(100),
        }
    }
}

/// An event source mapping from one stream to one function.
pub struct EventSourceMapping {
    pub(crate) config: EsmConfig,
    pub(crate) filters: Filters,
    pub(crate) source: Arc<dyn RecordSource>,
    pub(crate) function: Arc<dyn Function>,
    pub(crate) destination: Destination,
    pub(crate) checkpoints: Arc<CheckpointStore>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) identity: MappingIdentity,
    /// The identity's parts of every record's JSON, escaped once.
    pub(crate) identity_json: IdentityJson,
    pub(crate) options: MappingOptions,
    /// Jitter and request-id generators, one per (shard, lane).
    pub(crate) rngs: std::sync::Mutex<BTreeMap<(String, usize), SimRng>>,
    /// Coalesced checkpoints, per shard.
    pub(crate) pending_checkpoints: std::sync::Mutex<BTreeMap<String, PendingCheckpoint>>,
}

impl std::fmt::Debug for EventSourceMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSourceMapping")
            .field("config", &self.config)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl EventSourceMapping {
    /// A mapping; `config` is validated as AWS does.
    pub fn new(
        config: EsmConfig,
        source: Arc<dyn RecordSource>,
        function: Arc<dyn Function>,
        destination: Destination,
        checkpoints: Arc<CheckpointStore>,
        options: MappingOptions,
    ) -> Result<EventSourceMapping> {
        config.validate()?;
        let patterns: Vec<String> = config
            .filter_criteria
            .filters
            .iter()
            .map(|f| f.pattern.clone())
            .collect();
        let filters = Filters::parse(&patterns)?;
        let identity = MappingIdentity {
            stream_arn: source.stream_arn(),
            function_arn: format!(
                "arn:aws:lambda:{}:{}:function:{}",
                options.region, options.account, options.name
            ),
            role_arn: format!("arn:aws:iam::{}:role/{}", options.account, options.name),
            region: options.region.clone(),
        };
        Ok(EventSourceMapping {
            config,
            filters,
            source,
            function,
            destination,
            checkpoints,
            metrics: Arc::new(Metrics::default()),
            identity_json: IdentityJson::new(&identity),
            identity,
            options,
            rngs: std::sync::Mutex::new(BTreeMap::new()),
            pending_checkpoints: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// The counters so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Runs until every shard is caught up (or finished) and nothing is in flight.
    pub fn run_until_idle(&self) -> Result<MetricsSnapshot> {
        let stop = AtomicBool::new(false);
        self.drive(&stop, true)?;
        Ok(self.metrics())
    }

    /// Runs until every shard is caught up and nothing is in flight, or until `stop` is set;
    /// batches in flight when it is set are abandoned between attempts, their records left
    /// after the checkpoint for the next run.
    pub fn run_until_idle_or_stopped(&self, stop: &AtomicBool) -> Result<MetricsSnapshot> {
        self.drive(stop, true)?;
        Ok(self.metrics())
    }

    /// Runs until `stop` is set; batches in flight then are abandoned between attempts,
    /// their records left after the checkpoint for the next run.
    pub fn run(&self, stop: &AtomicBool) -> Result<MetricsSnapshot> {
        self.drive(stop, false)?;
        Ok(self.metrics())
    }

    fn drive(&self, stop: &AtomicBool, until_idle: bool) -> Result<()> {
        if !self.config.enabled {
            return Ok(());
        }
        let (exited_tx, exited_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| -> Result<()> {
            let mut running: BTreeMap<String, std::thread::ScopedJoinHandle<'_, Result<()>>> =
                BTreeMap::new();
            let mut failure: Option<Error> = None;
            // Shards whose poller returned (idle or finished): not restarted in this run.
            let mut exited: BTreeSet<String> = BTreeSet::new();
            loop {
                // Reap finished pollers.
                let done: Vec<String> = running
                    .iter()
                    .filter(|(_, h)| h.is_finished())
                    .map(|(s, _)| s.clone())
                    .collect();
                for shard in done {
                    exited.insert(shard.clone());
                    if let Some(handle) = running.remove(&shard) {
                        match handle.join() {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => failure = Some(e),
                            Err(_) => {
                                failure =
                                    Some(Error::Internal(format!("poller of {shard} panicked")))
                            }
                        }
                    }
                }
                if failure.is_some() {
                    stop.store(true, Ordering::SeqCst);
                }
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let shards = self.source.list_shards()?;
                let listed: BTreeSet<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
                let finished = |id: &str| self.checkpoints.get(id).is_some_and(|c| c.finished);
                let mut startable = 0;
                for shard in &shards {
                    if running.contains_key(&shard.shard_id)
                        || finished(&shard.shard_id)
                        || exited.contains(&shard.shard_id)
                    {
                        continue;
                    }
                    let parents_done = shard
                        .parent_shard_id
                        .iter()
                        .chain(&shard.adjacent_parent_shard_id)
                        .all(|p| finished(p) || !listed.contains(p.as_str()));
                    if !parents_done {
                        continue;
                    }
                    startable += 1;
                    let id = shard.shard_id.clone();
                    let tx = exited_tx.clone();
                    let handle = scope.spawn(move || {
                        // Completed progress is written whatever ended the poller.
                        let polled = self.poll_shard(&id, stop, until_idle);
                        let flushed = self.flush_checkpoint(&id);
                        let result = polled.and(flushed);
                        let _ = tx.send(());
                        result
                    });
                    running.insert(shard.shard_id.clone(), handle);
                }
                if until_idle && running.is_empty() && startable == 0 {
                    break;
                }
                // Wake when a poller exits (its children may start) or, to discover new shards,
                // after a poll interval of real time: the coordinator never moves a test clock.
                let _ =
                    exited_rx.recv_timeout(self.options.poll_interval.min(Duration::from_secs(1)));
            }
            for (_, handle) in running {
                match handle.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failure = Some(e),
                    Err(_) => failure = Some(Error::Internal("a poller panicked".into())),
                }
            }
            failure.map_or(Ok(()), Err)
        })
    }

    /// Records a decision, stamped with the mapping's clock, when a log is configured.
    pub(crate) fn decide(&self, decision: impl FnOnce(i64) -> Decision) {
        if let Some(log) = &self.options.decision_log {
            log.record(decision(self.options.clock.now_ms()));
        }
    }

    /// The next value of the (shard, lane) generator.
    fn next_random(&self, shard: &str, lane: usize) -> u64 {
        let mut rngs = self
            .rngs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seed = self.options.seed
            ^ xxhash_rust::xxh3::xxh3_64(shard.as_bytes())
            ^ (lane as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        rngs.entry((shard.to_string(), lane))
            .or_insert_with(|| SimRng::new(seed))
            .next_u64()
    }

    /// Full-jitter exponential backoff before invoke attempt `attempt + 1`.
    pub(crate) fn backoff(&self, shard: &str, lane: usize, attempt: u64) {
        let exp = self
            .options
            .retry_backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.options.retry_backoff_max);
        let cap_us = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        let pause_us = self.next_random(shard, lane) % cap_us.saturating_add(1);
        self.decide(|at_ms| Decision::Backoff {
            at_ms,
            shard: shard.to_string(),
            lane,
            pause_us,
        });
        (self.options.sleeper)(Duration::from_micros(pause_us));
    }

    /// A request id in UUID form.
    pub(crate) fn request_id(&self, shard: &str, lane: usize) -> String {
        let (a, b) = (self.next_random(shard, lane), self.next_random(shard, lane));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            (b >> 48 & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }
}
