//! Shard iterator tokens: opaque, checksummed, and valid for five minutes after issue.
//!
//! A token is URL-safe base64 (no padding) of 37 bytes: version (1), shard index (`u32`),
//! log sequence of the next record to read (`u64`), issue time in ms (`i64`), xxh3 of the
//! stream name (`u64`), and xxh3 of the 29 bytes before it (`u64`), all little-endian.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::{Error, Result};
use crate::format::le;

/// How long an iterator stays valid (Kinesis: 5 minutes).
pub const ITERATOR_TTL_MS: i64 = 300_000;
const TOKEN_VERSION: u8 = 1;
const TOKEN_LEN: usize = 37;

/// A decoded iterator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IteratorToken {
    pub shard_index: u32,
    pub log_sequence: u64,
    pub issued_ms: i64,
}

fn name_digest(stream: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(stream.as_bytes())
}

impl IteratorToken {
    pub(crate) fn encode(&self, stream: &str) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.push(TOKEN_VERSION);
        bytes.extend_from_slice(&self.shard_index.to_le_bytes());
        bytes.extend_from_slice(&self.log_sequence.to_le_bytes());
        bytes.extend_from_slice(&self.issued_ms.to_le_bytes());
        bytes.extend_from_slice(&name_digest(stream).to_le_bytes());
        let check = xxhash_rust::xxh3::xxh3_64(&bytes);
        bytes.extend_from_slice(&check.to_le_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a token for `stream`, checking its integrity and age at `now_ms`.
    pub(crate) fn decode(token: &str, stream: &str, now_ms: i64) -> Result<Self> {
        let invalid = || Error::InvalidArgument("Invalid ShardIterator.".into());
        if token.is_empty() || token.len() > 512 {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if bytes.len() != TOKEN_LEN || bytes.first() != Some(&TOKEN_VERSION) {
            return Err(invalid());
        }
        let body = bytes.get(..TOKEN_LEN - 8).ok_or_else(invalid)?;
        if le::u64_at(&bytes, TOKEN_LEN - 8) != Some(xxhash_rust::xxh3::xxh3_64(body)) {
            return Err(invalid());
        }
        if le::u64_at(&bytes, 21) != Some(name_digest(stream)) {
            return Err(invalid());
        }
        let token = IteratorToken {
            shard_index: le::u32_at(&bytes, 1).ok_or_else(invalid)?,
            log_sequence: le::u64_at(&bytes, 5).ok_or_else(invalid)?,
            issued_ms: le::i64_at(&bytes, 13).ok_or_else(invalid)?,
        };
        if now_ms.saturating_sub(token.issued_ms) > ITERATOR_TTL_MS {
            return Err(Error::ExpiredIterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ITERATOR_TTL_MS} milliseconds.",
                token.issued_ms, now_ms
            )));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_expire_and_reject_tampering() {
        let token = IteratorToken {
            shard_index: 3,
            log_sequence: 99,
            issued_ms: 1_000,
        };
        let text = token.encode("orders");
        assert!(text.len() <= 512);
        assert_eq!(
            IteratorToken::decode(&text, "orders", 1_000 + ITERATOR_TTL_MS).unwrap(),
            token
        );
        assert!(matches!(
            IteratorToken::decode(&text, "orders", 1_001 + ITERATOR_TTL_MS),
            Err(Error::ExpiredIterator(_))
        ));
        assert!(matches!(
            IteratorToken::decode(&text, "other", 1_000),
            Err(Error::InvalidArgument(_))
        ));
        let mut tampered = text.into_bytes();
        tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(matches!(
            IteratorToken::decode(&tampered, "orders", 1_000),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            IteratorToken::decode("", "orders", 0),
            Err(Error::InvalidArgument(_))
        ));
    }
}
