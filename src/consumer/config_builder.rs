//! [`EsmConfig`] built in Rust: the same fields, defaults and checks as AWS's JSON, so a
//! mapping configured in code and one read from a file cannot differ.

use super::config::{EsmConfig, Filter, StartingPosition};
use crate::error::Result;

/// Builds an [`EsmConfig`]; [`EsmConfigBuilder::build`] applies AWS's ranges, exactly as
/// [`EsmConfig::from_json`] does.
#[derive(Debug, Clone)]
#[must_use]
pub struct EsmConfigBuilder {
    config: EsmConfig,
}

impl EsmConfig {
    /// A builder starting from AWS's defaults and `starting_position` (required for Kinesis).
    pub fn builder(starting_position: StartingPosition) -> EsmConfigBuilder {
        EsmConfigBuilder {
            config: EsmConfig {
                starting_position: Some(starting_position),
                ..EsmConfig::default()
            },
        }
    }
}

impl EsmConfigBuilder {
    /// `StartingPositionTimestamp`, epoch seconds (with `AT_TIMESTAMP` only).
    pub fn starting_position_timestamp(mut self, epoch_seconds: f64) -> Self {
        self.config.starting_position_timestamp = Some(epoch_seconds);
        self
    }

    /// `BatchSize`, 1..=10,000 (default 100).
    pub fn batch_size(mut self, records: u32) -> Self {
        self.config.batch_size = records;
        self
    }

    /// `MaximumBatchingWindowInSeconds`, 0..=300 (default 0).
    pub fn maximum_batching_window_in_seconds(mut self, seconds: u32) -> Self {
        self.config.maximum_batching_window_in_seconds = seconds;
        self
    }

    /// `ParallelizationFactor`, 1..=10 (default 1).
    pub fn parallelization_factor(mut self, lanes: u32) -> Self {
        self.config.parallelization_factor = lanes;
        self
    }

    /// `BisectBatchOnFunctionError` (default false).
    pub fn bisect_batch_on_function_error(mut self, bisect: bool) -> Self {
        self.config.bisect_batch_on_function_error = bisect;
        self
    }

    /// `MaximumRetryAttempts`, -1 (until the records expire) or 0..=10,000 (default -1).
    pub fn maximum_retry_attempts(mut self, attempts: i64) -> Self {
        self.config.maximum_retry_attempts = attempts;
        self
    }

    /// `MaximumRecordAgeInSeconds`, -1 or 60..=604,800 (default -1).
    pub fn maximum_record_age_in_seconds(mut self, seconds: i64) -> Self {
        self.config.maximum_record_age_in_seconds = seconds;
        self
    }

    /// `DestinationConfig.OnFailure.Destination`: a stream ARN, `stream:NAME` or `file:PATH`.
    pub fn on_failure(mut self, destination: impl Into<String>) -> Self {
        self.config.destination_config.on_failure.destination = Some(destination.into());
        self
    }

    /// `FunctionResponseTypes: ["ReportBatchItemFailures"]` when `true`.
    pub fn report_batch_item_failures(mut self, report: bool) -> Self {
        self.config.function_response_types = if report {
            vec!["ReportBatchItemFailures".to_string()]
        } else {
            Vec::new()
        };
        self
    }

    /// Adds a `FilterCriteria` filter (an EventBridge pattern as JSON text; at most 5).
    pub fn filter(mut self, pattern: impl Into<String>) -> Self {
        self.config.filter_criteria.filters.push(Filter {
            pattern: pattern.into(),
        });
        self
    }

    /// `TumblingWindowInSeconds`, 0 (off) ..= 900.
    pub fn tumbling_window_in_seconds(mut self, seconds: u32) -> Self {
        self.config.tumbling_window_in_seconds = seconds;
        self
    }

    /// `Enabled` (default true).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }

    /// The shardlog extension `DeaggregateRecords` (default false).
    pub fn deaggregate_records(mut self, deaggregate: bool) -> Self {
        self.config.deaggregate_records = deaggregate;
        self
    }

    /// The configuration, checked against AWS's ranges.
    pub fn build(self) -> Result<EsmConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_and_aws_json_give_the_same_config() {
        let built = EsmConfig::builder(StartingPosition::TrimHorizon)
            .batch_size(500)
            .maximum_batching_window_in_seconds(2)
            .parallelization_factor(4)
            .bisect_batch_on_function_error(true)
            .maximum_retry_attempts(3)
            .maximum_record_age_in_seconds(3600)
            .on_failure("file:failures.jsonl")
            .report_batch_item_failures(true)
            .filter(r#"{"data":{"kind":["order"]}}"#)
            .tumbling_window_in_seconds(60)
            .build()
            .unwrap();
        let from_json = EsmConfig::from_json(
            r#"{"StartingPosition":"TRIM_HORIZON","BatchSize":500,
                "MaximumBatchingWindowInSeconds":2,"ParallelizationFactor":4,
                "BisectBatchOnFunctionError":true,"MaximumRetryAttempts":3,
                "MaximumRecordAgeInSeconds":3600,
                "DestinationConfig":{"OnFailure":{"Destination":"file:failures.jsonl"}},
                "FunctionResponseTypes":["ReportBatchItemFailures"],
                "FilterCriteria":{"Filters":[{"Pattern":"{\"data\":{\"kind\":[\"order\"]}}"}]},
                "TumblingWindowInSeconds":60}"#,
        )
        .unwrap();
        assert_eq!(built, from_json);
    }

    #[test]
    fn the_builder_rejects_what_aws_rejects_with_the_same_message() {
        let built = EsmConfig::builder(StartingPosition::Latest)
            .parallelization_factor(11)
            .build()
            .unwrap_err();
        let from_json =
            EsmConfig::from_json(r#"{"StartingPosition":"LATEST","ParallelizationFactor":11}"#)
                .unwrap_err();
        assert_eq!(built.to_string(), from_json.to_string());
    }
}
