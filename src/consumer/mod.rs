//! The consumer layer: event source mappings with AWS Lambda's semantics for Kinesis
//! (`../shared/reference/esm-kinesis-semantics.md` part 3): batching, parallelization by
//! partition key, retries, record age, bisect, partial batch responses, filters, on-failure
//! destinations, durable checkpoints and metrics. It reads only through [`RecordSource`].

mod checkpoint;
mod config;
mod config_builder;
mod decisions;
mod destination;
mod event;
mod filter;
mod function;
mod lane;
mod mapping;
mod metrics;
mod poller;
mod record_json;
mod response;
mod source;
mod window;

pub use checkpoint::{CheckpointStore, ShardCheckpoint, CHECKPOINTS_MAGIC, CHECKPOINTS_VERSION};
pub use config::{
    DestinationConfig, EsmConfig, Filter, FilterCriteria, MetricsConfig, OnFailure,
    StartingPosition,
};
pub use config_builder::EsmConfigBuilder;
pub use decisions::{Decision, DecisionLog, DECISION_LOG_ENTRIES_MAX};
pub use destination::Destination;
pub use event::{
    event_record_json, failure_record, iso_ms, Condition, DiscardedBatch, MappingIdentity,
    PolledRecord,
};
pub use filter::{Filters, Pattern};
pub use function::{
    EventBatch, ExecFunction, Function, Invocation, KeepAliveFunction, FUNCTION_TIMEOUT_DEFAULT,
};
pub use mapping::{EventSourceMapping, MappingOptions};
pub use metrics::{Counters, MetricsSnapshot};
pub use poller::INVOKE_PAYLOAD_BYTES_MAX;
pub use response::{judge, BatchVerdict};
pub use source::RecordSource;
pub use window::WINDOW_STATE_BYTES_MAX;
