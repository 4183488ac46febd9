//! Shard ids as values: a shard's index, shown as Kinesis shows it (`shardId-000000000007`).

/// A shard of a stream, by index. It displays and serialises as Kinesis' `shardId-` form and
/// compares with that text without allocating, so a put's result needs no string per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(u32);

impl ShardId {
    /// The shard with `index`.
    pub fn new(index: u32) -> Self {
        ShardId(index)
    }

    /// The shard's index in its stream.
    pub fn index(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shardId-{:012}", self.0)
    }
}

impl serde::Serialize for ShardId {
    /// As Kinesis shows it: `shardId-000000000007`.
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl From<ShardId> for String {
    fn from(id: ShardId) -> String {
        id.to_string()
    }
}

/// Equal only to this shard's exact `shardId-` form: twelve digits, zero-padded.
impl PartialEq<str> for ShardId {
    fn eq(&self, text: &str) -> bool {
        text.strip_prefix("shardId-").is_some_and(|digits| {
            digits.len() == 12
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.parse::<u32>() == Ok(self.0)
        })
    }
}

compares_with_text!(ShardId);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn shard_ids_compare_with_their_text_only(index in any::<u32>(), other in any::<u32>()) {
            let id = ShardId::new(index);
            let text = id.to_string();
            prop_assert_eq!(text.len(), "shardId-".len() + 12);
            prop_assert!(id == text.as_str() && text == id);
            prop_assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
            prop_assert_eq!(crate::stream::parse_shard_id(&text), Some(index));
            let bare = index.to_string();
            prop_assert!(id != bare.as_str());
            let padded = format!("shardId-0{:012}", index);
            prop_assert!(id != padded.as_str());
            let other_text = ShardId::new(other).to_string();
            prop_assert_eq!(id == other_text, index == other);
        }
    }
}
