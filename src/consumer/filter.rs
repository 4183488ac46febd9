//! FilterCriteria patterns: the EventBridge pattern subset that Lambda supports for Kinesis.
//!
//! A pattern is a JSON object. Each key names a field of the event (metadata fields at the
//! top level, the payload under `data`); its value is a list of matchers (any may match) or a
//! nested pattern; every key must match (AND), and `$or` takes a list of patterns. Matchers:
//! exact strings, numbers (by their text), booleans, `null`, and the operators `anything-but`,
//! `numeric`, `exists`, `prefix`, `suffix` and `equals-ignore-case`. An array in the event
//! matches if any element does.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::stream::SequenceNumber;

fn invalid(detail: &str) -> Error {
    Error::InvalidParameterValue(format!("Invalid filter pattern definition. ({detail})"))
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Exact(Value),
    AnythingBut(Vec<Value>),
    Numeric(Vec<(String, f64)>),
    Exists(bool),
    Prefix { text: String, ignore_case: bool },
    Suffix { text: String, ignore_case: bool },
    EqualsIgnoreCase(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Matchers(Vec<Matcher>),
    Nested(Pattern),
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    fields: Vec<(String, Node)>,
    any_of: Vec<Vec<Pattern>>,
}

fn text_operand(value: &Value, op: &str) -> Result<(String, bool)> {
    match value {
        Value::String(s) => Ok((s.clone(), false)),
        Value::Object(o) => match o.get("equals-ignore-case") {
            Some(Value::String(s)) if o.len() == 1 => Ok((s.clone(), true)),
            _ => Err(invalid(&format!(
                "{op} takes a string or {{\"equals-ignore-case\": string}}"
            ))),
        },
        _ => Err(invalid(&format!("{op} takes a string"))),
    }
}

fn parse_matcher(value: &Value) -> Result<Matcher> {
    let Value::Object(op) = value else {
        return match value {
            Value::Array(_) => Err(invalid("nested arrays")),
            other => Ok(Matcher::Exact(other.clone())),
        };
    };
    let (name, operand) = match op.iter().next() {
        Some(entry) if op.len() == 1 => entry,
        _ => return Err(invalid("a matcher object has exactly one operator")),
    };
    Ok(match name.as_str() {
        "anything-but" => Matcher::AnythingBut(match operand {
            Value::Array(values) => values.clone(),
            Value::Object(_) => return Err(invalid("anything-but variants are not supported")),
            single => vec![single.clone()],
        }),
        "numeric" => {
            let Value::Array(parts) = operand else {
                return Err(invalid("numeric takes a list"));
            };
            let mut conditions = Vec::new();
            for pair in parts.chunks(2) {
                match pair {
                    [Value::String(op), Value::Number(n)]
                        if ["=", "<", "<=", ">", ">="].contains(&op.as_str()) =>
                    {
                        conditions.push((
                            op.clone(),
                            n.as_f64().ok_or_else(|| invalid("numeric bound"))?,
                        ));
                    }
                    _ => return Err(invalid("numeric takes operator, number pairs")),
                }
            }
            if conditions.is_empty() {
                return Err(invalid("numeric needs a condition"));
            }
            Matcher::Numeric(conditions)
        }
        "exists" => match operand {
            Value::Bool(b) => Matcher::Exists(*b),
            _ => return Err(invalid("exists takes true or false")),
        },
        "prefix" => {
            let (text, ignore_case) = text_operand(operand, "prefix")?;
            Matcher::Prefix { text, ignore_case }
        }
        "suffix" => {
            let (text, ignore_case) = text_operand(operand, "suffix")?;
            Matcher::Suffix { text, ignore_case }
        }
        "equals-ignore-case" => match operand {
            Value::String(s) => Matcher::EqualsIgnoreCase(s.clone()),
            _ => return Err(invalid("equals-ignore-case takes a string")),
        },
        other => return Err(invalid(&format!("unsupported operator {other}"))),
    })
}

impl Pattern {
    /// Parses a pattern string; a pattern that is not a JSON object of matchers is
    /// `InvalidParameterValueException: Invalid filter pattern definition.`
    pub fn parse(text: &str) -> Result<Pattern> {
        let value: Value = serde_json::from_str(text).map_err(|_| invalid("not JSON"))?;
        match value {
            Value::Object(object) => Pattern::from_object(&object, 0),
            _ => Err(invalid("a pattern is a JSON object")),
        }
    }

    fn from_object(object: &Map<String, Value>, depth: usize) -> Result<Pattern> {
        if depth > 32 {
            return Err(invalid("nested too deeply"));
        }
        let mut pattern = Pattern {
            fields: Vec::new(),
            any_of: Vec::new(),
        };
        for (key, value) in object {
            if key == "$or" {
                let Value::Array(alternatives) = value else {
                    return Err(invalid("$or takes a list"));
                };
                let mut parsed = Vec::new();
                for alternative in alternatives {
                    let Value::Object(o) = alternative else {
                        return Err(invalid("$or takes objects"));
                    };
                    parsed.push(Pattern::from_object(o, depth + 1)?);
                }
                if parsed.len() < 2 {
                    return Err(invalid("$or needs two alternatives"));
                }
                pattern.any_of.push(parsed);
                continue;
            }
            let node = match value {
                Value::Array(matchers) if !matchers.is_empty() => {
                    Node::Matchers(matchers.iter().map(parse_matcher).collect::<Result<_>>()?)
                }
                Value::Object(o) => Node::Nested(Pattern::from_object(o, depth + 1)?),
                _ => {
                    return Err(invalid(&format!(
                        "field {key} must be a non-empty list or an object"
                    )))
                }
            };
            pattern.fields.push((key.clone(), node));
        }
        Ok(pattern)
    }

    /// Whether `event` (a JSON object) matches.
    pub fn matches(&self, event: &Value) -> bool {
        let fields_match = self.fields.iter().all(|(key, node)| {
            let value = event.get(key);
            match node {
                Node::Nested(inner) => value.is_some_and(|v| v.is_object() && inner.matches(v)),
                Node::Matchers(matchers) => matchers.iter().any(|m| matcher_matches(m, value)),
            }
        });
        fields_match
            && self
                .any_of
                .iter()
                .all(|alts| alts.iter().any(|p| p.matches(event)))
    }
}

fn matcher_matches(matcher: &Matcher, value: Option<&Value>) -> bool {
    match (matcher, value) {
        (Matcher::Exists(expected), v) => v.is_some() == *expected,
        (_, None) => false,
        (m, Some(Value::Array(items))) => items.iter().any(|item| scalar_matches(m, item)),
        (m, Some(v)) => scalar_matches(m, v),
    }
}

fn scalar_matches(matcher: &Matcher, value: &Value) -> bool {
    let text = value.as_str();
    match matcher {
        Matcher::Exact(expected) => match (expected, value) {
            (Value::Number(a), Value::Number(b)) => a.to_string() == b.to_string(),
            (a, b) => a == b,
        },
        Matcher::AnythingBut(values) => !values
            .iter()
            .any(|v| scalar_matches(&Matcher::Exact(v.clone()), value)),
        Matcher::Numeric(conditions) => value.as_f64().is_some_and(|n| {
            conditions.iter().all(|(op, bound)| match op.as_str() {
                "=" => n == *bound,
                "<" => n < *bound,
                "<=" => n <= *bound,
                ">" => n > *bound,
                _ => n >= *bound,
            })
        }),
        Matcher::Exists(_) => true,
        Matcher::Prefix {
            text: p,
            ignore_case,
        } => text.is_some_and(|t| {
            if *ignore_case {
                t.to_lowercase().starts_with(&p.to_lowercase())
            } else {
                t.starts_with(p.as_str())
            }
        }),
        Matcher::Suffix {
            text: s,
            ignore_case,
        } => text.is_some_and(|t| {
            if *ignore_case {
                t.to_lowercase().ends_with(&s.to_lowercase())
            } else {
                t.ends_with(s.as_str())
            }
        }),
        Matcher::EqualsIgnoreCase(s) => text.is_some_and(|t| t.to_lowercase() == s.to_lowercase()),
    }
}

/// The filters of a mapping: a record is kept if any pattern matches (or if there are none).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    patterns: Vec<Pattern>,
    uses_data: bool,
}

impl Filters {
    /// Parses the mapping's filter patterns.
    pub fn parse(patterns: &[String]) -> Result<Filters> {
        let parsed: Vec<Pattern> = patterns
            .iter()
            .map(|p| Pattern::parse(p))
            .collect::<Result<_>>()?;
        let uses_data = parsed
            .iter()
            .any(|p| p.fields.iter().any(|(k, _)| k == "data"));
        Ok(Filters {
            patterns: parsed,
            uses_data,
        })
    }

    /// Whether a record is kept. Its `data` is parsed as JSON for matching only; data that is
    /// not JSON never matches a pattern on `data`.
    pub fn keep(
        &self,
        partition_key: &str,
        sequence_number: SequenceNumber,
        arrival_seconds: f64,
        data: &[u8],
    ) -> bool {
        if self.patterns.is_empty() {
            return true;
        }
        let mut event = Map::new();
        event.insert("partitionKey".into(), Value::String(partition_key.into()));
        event.insert(
            "sequenceNumber".into(),
            Value::String(sequence_number.to_string()),
        );
        event.insert("kinesisSchemaVersion".into(), Value::String("1.0".into()));
        if let Some(n) = serde_json::Number::from_f64(arrival_seconds) {
            event.insert("approximateArrivalTimestamp".into(), Value::Number(n));
        }
        if self.uses_data {
            if let Ok(parsed) = serde_json::from_slice::<Value>(data) {
                event.insert("data".into(), parsed);
            }
        }
        let event = Value::Object(event);
        self.patterns.iter().any(|p| p.matches(&event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn m(pattern: &str, event: Value) -> bool {
        Pattern::parse(pattern).unwrap().matches(&event)
    }

    #[test]
    fn operators_match_as_eventbridge_does() {
        let e = json!({"partitionKey": "us-east-7", "data": {"kind": "click", "n": 300, "tags": ["a", "b"], "z": null, "s": ""}});
        assert!(m(r#"{"data": {"kind": ["click", "view"]}}"#, e.clone()));
        assert!(!m(r#"{"data": {"kind": ["view"]}}"#, e.clone()));
        assert!(m(r#"{"data": {"n": [300]}}"#, e.clone()));
        assert!(
            !m(r#"{"data": {"n": [300.0]}}"#, e.clone()),
            "exact numbers compare by text"
        );
        assert!(m(
            r#"{"data": {"n": [{"numeric": [">", 10, "<=", 300]}]}}"#,
            e.clone()
        ));
        assert!(!m(
            r#"{"data": {"n": [{"numeric": ["<", 300]}]}}"#,
            e.clone()
        ));
        assert!(
            m(r#"{"data": {"tags": ["b"]}}"#, e.clone()),
            "any array element"
        );
        assert!(m(r#"{"data": {"z": [null]}}"#, e.clone()));
        assert!(m(r#"{"data": {"s": [""]}}"#, e.clone()));
        assert!(m(
            r#"{"data": {"missing": [{"exists": false}]}}"#,
            e.clone()
        ));
        assert!(!m(r#"{"data": {"kind": [{"exists": false}]}}"#, e.clone()));
        assert!(m(r#"{"partitionKey": [{"prefix": "us-"}]}"#, e.clone()));
        assert!(m(
            r#"{"partitionKey": [{"suffix": {"equals-ignore-case": "EAST-7"}}]}"#,
            e.clone()
        ));
        assert!(m(
            r#"{"data": {"kind": [{"equals-ignore-case": "CLICK"}]}}"#,
            e.clone()
        ));
        assert!(m(
            r#"{"data": {"kind": [{"anything-but": ["view", "scroll"]}]}}"#,
            e.clone()
        ));
        assert!(!m(
            r#"{"data": {"kind": [{"anything-but": "click"}]}}"#,
            e.clone()
        ));
        assert!(m(
            r#"{"$or": [{"data": {"kind": ["view"]}}, {"partitionKey": ["us-east-7"]}]}"#,
            e.clone()
        ));
        assert!(
            !m(
                r#"{"data": {"kind": ["click"]}, "partitionKey": ["other"]}"#,
                e
            ),
            "all fields must match"
        );
    }

    #[test]
    fn non_json_data_never_matches_a_data_pattern() {
        let filters = Filters::parse(&[r#"{"data": {"kind": ["click"]}}"#.to_string()]).unwrap();
        assert!(filters.keep("k", SequenceNumber::new(1, 0), 1.0, br#"{"kind":"click"}"#));
        assert!(!filters.keep("k", SequenceNumber::new(1, 0), 1.0, b"kind=click"));
        let metadata = Filters::parse(&[r#"{"partitionKey": ["k"]}"#.to_string()]).unwrap();
        assert!(metadata.keep("k", SequenceNumber::new(1, 0), 1.0, b"not json"));
        assert!(Filters::default().keep("x", SequenceNumber::new(1, 0), 1.0, b""));
    }

    #[test]
    fn bad_patterns_are_typed_errors() {
        for bad in [
            "",
            "[]",
            "1",
            r#"{"a": 1}"#,
            r#"{"a": []}"#,
            r#"{"a": [{"wildcard": "x*"}]}"#,
            r#"{"a": [{"numeric": [">"]}]}"#,
            r#"{"$or": [{"a": ["x"]}]}"#,
        ] {
            let err = Pattern::parse(bad).unwrap_err();
            assert_eq!(
                err.kinesis_name(),
                "InvalidParameterValueException",
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn arbitrary_patterns_and_events_never_panic(pattern in ".{0,80}", event in ".{0,80}") {
            if let Ok(p) = Pattern::parse(&pattern) {
                if let Ok(e) = serde_json::from_str::<Value>(&event) {
                    let _ = p.matches(&e);
                }
            }
        }
    }
}
