//! Event source mapping settings, read from AWS's own JSON (`aws lambda
//! create-event-source-mapping --cli-input-json`) with AWS's defaults, ranges and errors.

use serde::Deserialize;

use crate::error::{Error, Result};

/// Where a mapping starts reading a shard it has no checkpoint for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StartingPosition {
    /// The oldest retained record.
    TrimHorizon,
    /// Only records written after the mapping starts.
    Latest,
    /// The first record that arrived at or after `StartingPositionTimestamp`.
    AtTimestamp,
}

/// `DestinationConfig.OnFailure`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct OnFailure {
    /// A stream ARN (`arn:aws:kinesis:...:stream/NAME`), `stream:NAME` or `file:PATH`.
    pub destination: Option<String>,
}

/// `DestinationConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DestinationConfig {
    /// Where discarded batches are reported.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Not supported for event source mappings (rejected, as AWS does).
    pub on_success: Option<serde_json::Value>,
}

/// One `FilterCriteria.Filters` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Filter {
    /// An EventBridge-style pattern, as a JSON string.
    pub pattern: String,
}

/// `FilterCriteria`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FilterCriteria {
    /// A record is kept if any filter matches.
    #[serde(default)]
    pub filters: Vec<Filter>,
}

/// The settings of an event source mapping, named and defaulted as AWS does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct EsmConfig {
    /// Accepted and ignored: the function is given separately.
    #[serde(default)]
    pub function_name: Option<String>,
    /// Accepted and ignored: the stream is given separately.
    #[serde(default)]
    pub event_source_arn: Option<String>,
    /// Required for Kinesis.
    pub starting_position: Option<StartingPosition>,
    /// For `AT_TIMESTAMP`: epoch seconds.
    #[serde(default)]
    pub starting_position_timestamp: Option<f64>,
    /// Most records per invocation, 1..=10,000 (default 100).
    #[serde(default = "defaults::batch_size")]
    pub batch_size: u32,
    /// Seconds to gather records before invoking, 0..=300 (default 0).
    #[serde(default)]
    pub maximum_batching_window_in_seconds: u32,
    /// Batches of one shard in flight at once, 1..=10 (default 1).
    #[serde(default = "defaults::one")]
    pub parallelization_factor: u32,
    /// Split a failing batch in two and retry the halves (default false).
    #[serde(default)]
    pub bisect_batch_on_function_error: bool,
    /// -1 (until the records expire) or 0..=10,000 (default -1).
    #[serde(default = "defaults::minus_one")]
    pub maximum_retry_attempts: i64,
    /// -1 (no limit) or 60..=604,800 (default -1).
    #[serde(default = "defaults::minus_one")]
    pub maximum_record_age_in_seconds: i64,
    /// Where discarded batches are reported.
    #[serde(default)]
    pub destination_config: DestinationConfig,
    /// `[]` or `["ReportBatchItemFailures"]`.
    #[serde(default)]
    pub function_response_types: Vec<String>,
    /// Records kept only if a filter matches.
    #[serde(default)]
    pub filter_criteria: FilterCriteria,
    /// Tumbling window length, 0 (off) ..= 900 seconds.
    #[serde(default)]
    pub tumbling_window_in_seconds: u32,
    /// Whether the mapping polls (default true).
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// AWS's opt-in for event-count metrics (`{"Metrics": ["EventCount"]}`); accepted and
    /// validated. shardlog always counts them, so it changes nothing here.
    #[serde(default)]
    pub metrics_config: MetricsConfig,
    /// A shardlog extension, off by default (Lambda never does it): expand KPL-aggregated
    /// records into their user records, each an event record of its own with the outer
    /// sequence number and a `subSequenceNumber`. Filters then see user records; BatchSize
    /// counts stream records, so an aggregate is never split across invocations.
    #[serde(default)]
    pub deaggregate_records: bool,
}

/// `MetricsConfig` of CreateEventSourceMapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MetricsConfig {
    /// `EventCount` and/or `ErrorCount`.
    #[serde(default)]
    pub metrics: Vec<String>,
}

mod defaults {
    pub fn batch_size() -> u32 {
        100
    }
    pub fn one() -> u32 {
        1
    }
    pub fn minus_one() -> i64 {
        -1
    }
    pub fn yes() -> bool {
        true
    }
}

impl Default for EsmConfig {
    fn default() -> Self {
        EsmConfig {
            function_name: None,
            event_source_arn: None,
            starting_position: Some(StartingPosition::TrimHorizon),
            starting_position_timestamp: None,
            batch_size: 100,
            maximum_batching_window_in_seconds: 0,
            parallelization_factor: 1,
            bisect_batch_on_function_error: false,
            maximum_retry_attempts: -1,
            maximum_record_age_in_seconds: -1,
            destination_config: DestinationConfig::default(),
            function_response_types: Vec::new(),
            filter_criteria: FilterCriteria::default(),
            tumbling_window_in_seconds: 0,
            enabled: true,
            metrics_config: MetricsConfig::default(),
            deaggregate_records: false,
        }
    }
}

fn range_error(name: &str, value: i64, constraint: &str) -> Error {
    Error::InvalidParameterValue(format!(
        "1 validation error detected: Value '{value}' at '{name}' failed to satisfy constraint: {constraint}"
    ))
}

impl EsmConfig {
    /// Parses AWS's CreateEventSourceMapping JSON and validates it.
    pub fn from_json(json: &str) -> Result<EsmConfig> {
        let config: EsmConfig = serde_json::from_str(json)
            .map_err(|e| Error::InvalidParameterValue(format!("mapping configuration: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Whether the function reports partial batch failures.
    pub fn reports_batch_item_failures(&self) -> bool {
        self.function_response_types
            .iter()
            .any(|t| t == "ReportBatchItemFailures")
    }

    /// Checks every setting against AWS's ranges.
    pub fn validate(&self) -> Result<()> {
        let Some(position) = self.starting_position else {
            return Err(Error::InvalidParameterValue(
                "StartingPosition is required for a Kinesis event source (TRIM_HORIZON, LATEST or AT_TIMESTAMP)".into(),
            ));
        };
        match (position, self.starting_position_timestamp) {
            (StartingPosition::AtTimestamp, None) => {
                return Err(Error::InvalidParameterValue(
                    "StartingPositionTimestamp is required with AT_TIMESTAMP".into(),
                ))
            }
            (StartingPosition::AtTimestamp, Some(t)) if !t.is_finite() || t < 0.0 => {
                return Err(Error::InvalidParameterValue(format!(
                    "StartingPositionTimestamp {t} is not a time"
                )))
            }
            (StartingPosition::TrimHorizon | StartingPosition::Latest, Some(_)) => {
                return Err(Error::InvalidParameterValue(
                    "StartingPositionTimestamp is only allowed with AT_TIMESTAMP".into(),
                ))
            }
            _ => {}
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return Err(range_error(
                "batchSize",
                self.batch_size.into(),
                "Member must have value between 1 and 10000",
            ));
        }
        if self.maximum_batching_window_in_seconds > 300 {
            return Err(range_error(
                "maximumBatchingWindowInSeconds",
                self.maximum_batching_window_in_seconds.into(),
                "Member must have value less than or equal to 300",
            ));
        }
        if !(1..=10).contains(&self.parallelization_factor) {
            return Err(range_error(
                "parallelizationFactor",
                self.parallelization_factor.into(),
                "Member must have value between 1 and 10",
            ));
        }
        if !(self.maximum_retry_attempts == -1
            || (0..=10_000).contains(&self.maximum_retry_attempts))
        {
            return Err(range_error(
                "maximumRetryAttempts",
                self.maximum_retry_attempts,
                "Member must have value between -1 and 10000",
            ));
        }
        let age = self.maximum_record_age_in_seconds;
        if !(age == -1 || (60..=604_800).contains(&age)) {
            return Err(range_error(
                "maximumRecordAgeInSeconds",
                age,
                "Member must be -1 or have value between 60 and 604800",
            ));
        }
        if let Some(bad) = self
            .metrics_config
            .metrics
            .iter()
            .find(|m| !matches!(m.as_str(), "EventCount" | "ErrorCount"))
        {
            return Err(Error::InvalidParameterValue(format!(
                "1 validation error detected: Value '[{bad}]' at 'metricsConfig.metrics' failed to satisfy constraint: Member must satisfy enum value set: [EventCount, ErrorCount]"
            )));
        }
        if self.tumbling_window_in_seconds > 900 {
            return Err(range_error(
                "tumblingWindowInSeconds",
                self.tumbling_window_in_seconds.into(),
                "Member must have value less than or equal to 900",
            ));
        }
        if self.function_response_types.len() > 1
            || self
                .function_response_types
                .iter()
                .any(|t| t != "ReportBatchItemFailures")
        {
            return Err(Error::InvalidParameterValue(format!(
                "FunctionResponseTypes {:?}: the only value is ReportBatchItemFailures",
                self.function_response_types
            )));
        }
        if self.destination_config.on_success.is_some() {
            return Err(Error::InvalidParameterValue(
                "Unsupported DestinationConfig parameter for given event source mapping type."
                    .into(),
            ));
        }
        if self.filter_criteria.filters.len() > 5 {
            return Err(Error::InvalidParameterValue(format!(
                "FilterCriteria has {} filters; the limit is 5",
                self.filter_criteria.filters.len()
            )));
        }
        for filter in &self.filter_criteria.filters {
            super::filter::Pattern::parse(&filter.pattern)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_config_is_accepted_and_checked() {
        let config = EsmConfig::from_json(
            r#"{"StartingPosition":"LATEST","MetricsConfig":{"Metrics":["EventCount"]}}"#,
        )
        .unwrap();
        assert_eq!(
            config.metrics_config.metrics,
            vec!["EventCount".to_string()]
        );
        let err = EsmConfig::from_json(
            r#"{"StartingPosition":"LATEST","MetricsConfig":{"Metrics":["KafkaMetrics"]}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("metricsConfig.metrics"), "{err}");
    }

    #[test]
    fn aws_json_with_defaults() {
        let config = EsmConfig::from_json(
            r#"{"FunctionName":"f","EventSourceArn":"arn:x","StartingPosition":"LATEST"}"#,
        )
        .unwrap();
        assert_eq!(config.batch_size, 100);
        assert_eq!(config.maximum_retry_attempts, -1);
        assert_eq!(config.maximum_record_age_in_seconds, -1);
        assert_eq!(config.parallelization_factor, 1);
        assert!(config.enabled);
        let full = EsmConfig::from_json(
            r#"{"StartingPosition":"AT_TIMESTAMP","StartingPositionTimestamp":1700000000.5,"BatchSize":10,
                "MaximumBatchingWindowInSeconds":5,"ParallelizationFactor":4,"BisectBatchOnFunctionError":true,
                "MaximumRetryAttempts":2,"MaximumRecordAgeInSeconds":60,
                "DestinationConfig":{"OnFailure":{"Destination":"file:/tmp/f.jsonl"}},
                "FunctionResponseTypes":["ReportBatchItemFailures"],
                "FilterCriteria":{"Filters":[{"Pattern":"{\"data\":{\"kind\":[\"click\"]}}"}]},
                "TumblingWindowInSeconds":30,"Enabled":false}"#,
        )
        .unwrap();
        assert!(full.reports_batch_item_failures());
        assert_eq!(
            full.destination_config.on_failure.destination.as_deref(),
            Some("file:/tmp/f.jsonl")
        );
    }

    #[test]
    fn out_of_range_values_are_invalid_parameter_values() {
        for bad in [
            r#"{"BatchSize":100}"#,
            r#"{"StartingPosition":"LATEST","BatchSize":0}"#,
            r#"{"StartingPosition":"LATEST","BatchSize":10001}"#,
            r#"{"StartingPosition":"LATEST","MaximumBatchingWindowInSeconds":301}"#,
            r#"{"StartingPosition":"LATEST","ParallelizationFactor":11}"#,
            r#"{"StartingPosition":"LATEST","MaximumRetryAttempts":-2}"#,
            r#"{"StartingPosition":"LATEST","MaximumRecordAgeInSeconds":59}"#,
            r#"{"StartingPosition":"LATEST","TumblingWindowInSeconds":901}"#,
            r#"{"StartingPosition":"LATEST","FunctionResponseTypes":["Nope"]}"#,
            r#"{"StartingPosition":"LATEST","DestinationConfig":{"OnSuccess":{"Destination":"x"}}}"#,
            r#"{"StartingPosition":"AT_TIMESTAMP"}"#,
            r#"{"StartingPosition":"LATEST","Unknown":1}"#,
            r#"{"StartingPosition":"LATEST","FilterCriteria":{"Filters":[{"Pattern":"not json"}]}}"#,
        ] {
            let err = EsmConfig::from_json(bad).unwrap_err();
            assert_eq!(
                err.kinesis_name(),
                "InvalidParameterValueException",
                "{bad}: {err}"
            );
        }
    }
}
