//! Reading a function's partial batch response (ReportBatchItemFailures), with AWS's recorded
//! rules for what counts as success and what as a whole-batch failure.

use serde_json::Value;

/// What a response says about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Every record is done.
    Success,
    /// Records before this index are done; retry from it to the end of the batch.
    RetryFrom(usize),
    /// The response is malformed or names an unknown record: retry the whole batch.
    WholeFailure,
}

/// Judges a response against the batch's sequence numbers (in batch order), anything that
/// compares with the identifiers' decimal text.
pub fn judge<S: PartialEq<str>>(response: Option<&Value>, sequence_numbers: &[S]) -> BatchVerdict {
    let failures = match response {
        None | Some(Value::Null) => return BatchVerdict::Success,
        Some(Value::String(s)) if s.is_empty() => return BatchVerdict::Success,
        Some(Value::Array(a)) if a.is_empty() => return BatchVerdict::Success,
        Some(Value::Object(o)) => match o.get("batchItemFailures") {
            None | Some(Value::Null) => return BatchVerdict::Success,
            Some(Value::Array(items)) if items.is_empty() => return BatchVerdict::Success,
            Some(Value::Array(items)) => items,
            Some(_) => return BatchVerdict::WholeFailure,
        },
        Some(_) => return BatchVerdict::WholeFailure,
    };
    let mut lowest: Option<usize> = None;
    for item in failures {
        let Some(Value::String(id)) = item.get("itemIdentifier") else {
            return BatchVerdict::WholeFailure;
        };
        let Some(index) = sequence_numbers.iter().position(|s| s.eq(id.as_str())) else {
            return BatchVerdict::WholeFailure;
        };
        lowest = Some(lowest.map_or(index, |l: usize| l.min(index)));
    }
    match lowest {
        Some(index) => BatchVerdict::RetryFrom(index),
        None => BatchVerdict::WholeFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aws_recorded_success_and_failure_cases() {
        let seqs = ["10", "20", "30"].map(String::from);
        for success in [
            json!(null),
            json!(""),
            json!([]),
            json!({}),
            json!({"batchItemFailures": []}),
            json!({"batchItemFailures": null}),
        ] {
            assert_eq!(
                judge(Some(&success), &seqs),
                BatchVerdict::Success,
                "{success}"
            );
        }
        assert_eq!(judge(None, &seqs), BatchVerdict::Success);
        assert_eq!(
            judge(
                Some(
                    &json!({"batchItemFailures": [{"itemIdentifier": "30"}, {"itemIdentifier": "20"}]})
                ),
                &seqs
            ),
            BatchVerdict::RetryFrom(1),
            "the lowest reported sequence number wins"
        );
        for failure in [
            json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            json!({"batchItemFailures": [{"itemIdentifier": null}]}),
            json!({"batchItemFailures": [{"foo": 123}]}),
            json!({"batchItemFailures": [{"itemIdentifier": 123}]}),
            json!({"batchItemFailures": [{"itemIdentifier": "99"}]}),
            json!({"batchItemFailures": [{"ItemIdentifier": "10"}]}),
            json!({"batchItemFailures": "10"}),
            json!("oops"),
            json!(5),
        ] {
            assert_eq!(
                judge(Some(&failure), &seqs),
                BatchVerdict::WholeFailure,
                "{failure}"
            );
        }
    }
}
