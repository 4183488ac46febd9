//! Kinesis sequence numbers: decimal strings that encode the shard and the record's place in
//! the shard's log.
//!
//! A sequence number is the decimal form of `(log_sequence << 32) | shard_index`. Within a
//! shard it increases with the log sequence; a child shard's log starts at or after its
//! parents' next log sequence, so its numbers are greater than any of theirs; the shard index
//! in the low bits makes numbers unique across sibling shards and lets an iterator request be
//! checked against the shard it names.

use crate::error::{Error, Result};

/// A stream-wide sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SequenceNumber(u128);

impl SequenceNumber {
    /// The number of the record at `log_sequence` in the shard with `shard_index`.
    pub fn new(shard_index: u32, log_sequence: u64) -> Self {
        SequenceNumber((u128::from(log_sequence) << 32) | u128::from(shard_index))
    }

    /// The shard the number belongs to.
    pub fn shard_index(self) -> u32 {
        (self.0 & 0xffff_ffff) as u32
    }

    /// The position in the shard's log.
    pub fn log_sequence(self) -> u64 {
        (self.0 >> 32) as u64
    }

    /// Length of the decimal form, without formatting it.
    pub fn decimal_len(self) -> usize {
        // As in `Display`: the u128 logarithm is a slow loop, u64's a few instructions.
        match u64::try_from(self.0) {
            Ok(small) => small
                .checked_ilog10()
                .map_or(1, |digits| digits as usize + 1),
            Err(_) => self.0.ilog10() as usize + 1,
        }
    }

    /// Parses a sequence number given by a caller; `what` names the parameter in the error.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let pattern_ok = text == "0"
            || (!text.is_empty()
                && text.len() <= 129
                && !text.starts_with('0')
                && text.bytes().all(|b| b.is_ascii_digit()));
        if !pattern_ok {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value '{text}' at '{what}' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,128}})"
            )));
        }
        let value = text.parse::<u128>().ok().filter(|v| (v >> 96) == 0).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{what} {text} used in GetShardIterator on shard is invalid because it did not come from this stream."
            ))
        })?;
        Ok(SequenceNumber(value))
    }
}

impl std::fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // u128 formatting divides in 128 bits; numbers of logs shorter than 2^32 records fit
        // in a u64, which formats several times faster (one call per record read).
        match u64::try_from(self.0) {
            Ok(small) => write!(f, "{small}"),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

impl serde::Serialize for SequenceNumber {
    /// As Kinesis shows it: a decimal string.
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl From<SequenceNumber> for String {
    fn from(number: SequenceNumber) -> String {
        number.to_string()
    }
}

/// Compares with a decimal string without allocating: equal only if `text` is exactly this
/// number's decimal form (no leading zeros, no sign).
impl PartialEq<str> for SequenceNumber {
    fn eq(&self, text: &str) -> bool {
        let canonical = text == "0" || !text.starts_with('0');
        canonical && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u128>() == Ok(self.0)
    }
}

compares_with_text!(SequenceNumber);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sequence_numbers_round_trip_and_order(shard in any::<u32>(), a in any::<u64>(), b in any::<u64>()) {
            let x = SequenceNumber::new(shard, a);
            prop_assert_eq!(SequenceNumber::parse(&x.to_string(), "s").unwrap(), x);
            prop_assert_eq!(x.shard_index(), shard);
            prop_assert_eq!(x.decimal_len(), x.to_string().len());
            let text = x.to_string();
            prop_assert!(x == text.as_str() && text == x);
            let (padded, longer) = (format!("0{}", x), format!("{}0", x));
            prop_assert!(x != padded.as_str() && x != longer.as_str());
            prop_assert_eq!(x.log_sequence(), a);
            prop_assert_eq!(a < b, x < SequenceNumber::new(shard, b));
        }

        #[test]
        fn a_child_starting_at_the_parents_next_is_greater(parent in 0u32..1000, child_offset in 1u32..1000, last in 0u64..u64::MAX) {
            let parent_last = SequenceNumber::new(parent, last);
            let child_first = SequenceNumber::new(parent + child_offset, last + 1);
            prop_assert!(child_first > parent_last);
        }
    }

    #[test]
    fn bad_numbers_are_typed_errors() {
        assert!(matches!(
            SequenceNumber::parse("", "s"),
            Err(Error::Validation(_))
        ));
        assert!(matches!(
            SequenceNumber::parse("012", "s"),
            Err(Error::Validation(_))
        ));
        assert!(matches!(
            SequenceNumber::parse("abc", "s"),
            Err(Error::Validation(_))
        ));
        let huge = "9".repeat(60);
        assert!(matches!(
            SequenceNumber::parse(&huge, "s"),
            Err(Error::InvalidArgument(_))
        ));
    }
}
