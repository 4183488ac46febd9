//! `shardlog consume`: runs an event source mapping whose function is a command.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::{Map, Value};
use shardlog::consumer::{
    CheckpointStore, DecisionLog, Destination, EsmConfig, EventSourceMapping, ExecFunction,
    KeepAliveFunction, MappingOptions, MetricsSnapshot,
};
use shardlog::storage::RealFs;
use shardlog::stream::validate_stream_name;

use super::{print_json, reader_store, stream_of, writer_store, Failure, Outcome};

/// Arguments of `shardlog consume`; the mapping flags are the AWS CLI's own names.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Stream name.
    name: String,
    /// The mapping's name: its checkpoints live under it, so running it again resumes.
    #[arg(long)]
    mapping: String,
    /// AWS CreateEventSourceMapping JSON (flags override its fields).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// The function: a command run per batch, event JSON on stdin, response JSON on stdout.
    #[arg(long)]
    exec: String,
    /// Keep one handler process per lane alive, one event per stdin line and one response per
    /// stdout line, like Lambda's warm containers.
    #[arg(long)]
    keep_alive: bool,
    /// Function timeout in seconds (Lambda's default: 3).
    #[arg(long, default_value_t = 3.0)]
    timeout: f64,
    /// Exit once every shard is caught up and nothing is in flight.
    #[arg(long)]
    until_idle: bool,
    /// Print the metrics at exit as one JSON object.
    #[arg(long)]
    json: bool,
    /// Write every decision of the mapping (invocations, outcomes, backoffs, bisects,
    /// discards, checkpoints) to FILE as JSON lines at exit.
    #[arg(long, value_name = "FILE")]
    decision_log: Option<std::path::PathBuf>,
    /// TRIM_HORIZON, LATEST or AT_TIMESTAMP.
    #[arg(long)]
    starting_position: Option<String>,
    /// For AT_TIMESTAMP: epoch seconds.
    #[arg(long)]
    starting_position_timestamp: Option<f64>,
    /// BatchSize.
    #[arg(long)]
    batch_size: Option<u32>,
    /// MaximumBatchingWindowInSeconds.
    #[arg(long)]
    maximum_batching_window_in_seconds: Option<u32>,
    /// ParallelizationFactor.
    #[arg(long)]
    parallelization_factor: Option<u32>,
    /// BisectBatchOnFunctionError.
    #[arg(long, overrides_with = "no_bisect_batch_on_function_error")]
    bisect_batch_on_function_error: bool,
    /// Not BisectBatchOnFunctionError.
    #[arg(long)]
    no_bisect_batch_on_function_error: bool,
    /// MaximumRetryAttempts.
    #[arg(long, allow_hyphen_values = true)]
    maximum_retry_attempts: Option<i64>,
    /// MaximumRecordAgeInSeconds.
    #[arg(long, allow_hyphen_values = true)]
    maximum_record_age_in_seconds: Option<i64>,
    /// FunctionResponseTypes (ReportBatchItemFailures).
    #[arg(long, num_args = 0..)]
    function_response_types: Option<Vec<String>>,
    /// FilterCriteria as JSON.
    #[arg(long)]
    filter_criteria: Option<String>,
    /// TumblingWindowInSeconds.
    #[arg(long)]
    tumbling_window_in_seconds: Option<u32>,
    /// DestinationConfig as JSON.
    #[arg(long)]
    destination_config: Option<String>,
    /// Deliver the user records inside KPL aggregates instead of the aggregates (a shardlog
    /// extension; the config key is DeaggregateRecords).
    #[arg(long)]
    deaggregate_records: bool,
    /// Shortcut for the on-failure destination: a file path or stream:NAME.
    #[arg(long)]
    on_failure: Option<String>,
}

fn json_arg(text: &str, what: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| Failure::usage(format!("--{what} is not JSON: {e}")))
}

/// The mapping configuration: the file's fields, then the flags over them.
fn config(args: &ConsumeArgs) -> Result<EsmConfig, Failure> {
    let mut fields: Map<String, Value> = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))?;
            match json_arg(&text, "config")? {
                Value::Object(map) => map,
                _ => return Err(Failure::usage("--config must hold a JSON object")),
            }
        }
        None => Map::new(),
    };
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            fields.insert(key.to_string(), value);
        }
    };
    set(
        "StartingPosition",
        args.starting_position.clone().map(Value::from),
    );
    set(
        "StartingPositionTimestamp",
        args.starting_position_timestamp.map(Value::from),
    );
    set("BatchSize", args.batch_size.map(Value::from));
    set(
        "MaximumBatchingWindowInSeconds",
        args.maximum_batching_window_in_seconds.map(Value::from),
    );
    set(
        "ParallelizationFactor",
        args.parallelization_factor.map(Value::from),
    );
    if args.bisect_batch_on_function_error {
        set("BisectBatchOnFunctionError", Some(Value::Bool(true)));
    }
    if args.no_bisect_batch_on_function_error {
        set("BisectBatchOnFunctionError", Some(Value::Bool(false)));
    }
    set(
        "MaximumRetryAttempts",
        args.maximum_retry_attempts.map(Value::from),
    );
    set(
        "MaximumRecordAgeInSeconds",
        args.maximum_record_age_in_seconds.map(Value::from),
    );
    set(
        "FunctionResponseTypes",
        args.function_response_types.clone().map(Value::from),
    );
    set(
        "FilterCriteria",
        args.filter_criteria
            .as_deref()
            .map(|t| json_arg(t, "filter-criteria"))
            .transpose()?,
    );
    set(
        "TumblingWindowInSeconds",
        args.tumbling_window_in_seconds.map(Value::from),
    );
    set(
        "DestinationConfig",
        args.destination_config
            .as_deref()
            .map(|t| json_arg(t, "destination-config"))
            .transpose()?,
    );
    if args.deaggregate_records {
        set("DeaggregateRecords", Some(Value::Bool(true)));
    }
    if let Some(target) = &args.on_failure {
        let destination = if target.starts_with("stream:") || target.starts_with("arn:") {
            target.clone()
        } else {
            format!("file:{target}")
        };
        set(
            "DestinationConfig",
            Some(serde_json::json!({ "OnFailure": { "Destination": destination } })),
        );
    }
    fields
        .entry("StartingPosition".to_string())
        .or_insert_with(|| Value::from("TRIM_HORIZON"));
    Ok(EsmConfig::from_json(&Value::Object(fields).to_string())?)
}

fn destination(dir: &Path, config: &EsmConfig) -> Result<Destination, Failure> {
    let Some(target) = config.destination_config.on_failure.destination.as_deref() else {
        return Ok(Destination::None);
    };
    if let Some(path) = target.strip_prefix("file:") {
        return Ok(Destination::file(path));
    }
    let name = target
        .strip_prefix("stream:")
        .or_else(|| target.split(":stream/").nth(1).filter(|_| target.starts_with("arn:aws:kinesis:")))
        .ok_or_else(|| {
            Failure::usage(format!(
                "InvalidParameterValueException: destination '{target}' is not a stream ARN, stream:NAME or file:PATH"
            ))
        })?;
    let store = writer_store(dir)?;
    Ok(Destination::Stream(stream_of(&store, name)?))
}

fn print_metrics(metrics: &MetricsSnapshot, json: bool) {
    if json {
        print_json(metrics);
        return;
    }
    if let Ok(Value::Object(fields)) = serde_json::to_value(&metrics.totals) {
        for (name, value) in fields {
            println!("{name}: {value}");
        }
    }
}

/// Runs `shardlog consume`.
pub fn run(dir: &Path, args: ConsumeArgs) -> Outcome {
    validate_stream_name(&args.mapping).map_err(|_| {
        Failure::usage(format!(
            "--mapping '{}' must be 1-128 characters of [a-zA-Z0-9_.-]",
            args.mapping
        ))
    })?;
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 900.0) {
        return Err(Failure::usage(
            "--timeout must be between 0 and 900 seconds",
        ));
    }
    let config = config(&args)?;
    let destination = destination(dir, &config)?;
    let store = reader_store(dir)?;
    let stream = stream_of(&store, &args.name)?;
    let checkpoints_path = dir.join("mappings").join(&args.mapping).join("checkpoints");
    let checkpoints = Arc::new(CheckpointStore::open(&checkpoints_path, Arc::new(RealFs))?);
    let timeout = Duration::from_secs_f64(args.timeout);
    let function: Arc<dyn shardlog::consumer::Function> = if args.keep_alive {
        Arc::new(KeepAliveFunction::new(args.exec.clone(), timeout))
    } else {
        Arc::new(ExecFunction::new(args.exec.clone(), timeout))
    };
    let decision_log = args
        .decision_log
        .as_ref()
        .map(|_| Arc::new(DecisionLog::default()));
    let options = MappingOptions {
        name: args.mapping.clone(),
        decision_log: decision_log.clone(),
        ..MappingOptions::default()
    };
    let mapping =
        EventSourceMapping::new(config, stream, function, destination, checkpoints, options)?;
    let metrics = if args.until_idle {
        mapping.run_until_idle()?
    } else {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .map_err(|e| Failure::usage(format!("cannot handle Ctrl-C: {e}")))?;
        mapping.run(&stop)?
    };
    if let (Some(path), Some(log)) = (&args.decision_log, &decision_log) {
        std::fs::write(path, log.to_json_lines()).map_err(|e| {
            Failure::usage(format!(
                "cannot write the decision log {}: {e}",
                path.display()
            ))
        })?;
    }
    print_metrics(&metrics, args.json);
    Ok(ExitCode::SUCCESS)
}
