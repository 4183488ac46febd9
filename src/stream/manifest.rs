//! The stream manifest: settings, shards, hash ranges and lineage, replaced atomically.
//!
//! On disk (FORMAT.md §10): a 24-byte envelope (magic `SLGM`, version, reserved, JSON length,
//! xxh3 of the JSON) followed by the JSON document of [`Manifest`].

use serde::{Deserialize, Serialize};

use super::hash_key::{parse_hash_key, HashKeyRange};
use crate::format::envelope::{self, EnvelopeError};

/// Magic bytes of a manifest file.
pub const MANIFEST_MAGIC: [u8; 4] = *b"SLGM";
/// The manifest version this build writes and reads.
pub const MANIFEST_VERSION: u8 = 2;
/// The largest manifest accepted (a stream of 10,000 shards fits easily).
pub const MANIFEST_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// How a stream's batches are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "codec", rename_all = "lowercase")]
pub enum CompressionSetting {
    /// Raw batches.
    None,
    /// zstd at a level.
    Zstd {
        /// The level, 1..=19.
        level: i32,
    },
}

/// When a put is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilitySetting {
    /// fdatasync before acknowledging (group commit).
    Always,
    /// Background sync every `interval_ms`.
    Interval {
        /// Milliseconds between syncs.
        interval_ms: u64,
    },
    /// OS page cache only.
    None,
}

/// One shard's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShardMeta {
    pub index: u32,
    /// Decimal, inclusive.
    pub hash_start: String,
    /// Decimal, inclusive.
    pub hash_end: String,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    /// First log sequence of the shard's log.
    pub first_log_sequence: u64,
    /// Set when a split or merge closed the shard.
    pub closed: Option<ClosedMeta>,
    pub created_ms: i64,
}

/// How a closed shard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClosedMeta {
    /// The log sequence after its last record.
    pub next_log_sequence: u64,
    pub closed_ms: i64,
}

impl ShardMeta {
    pub(crate) fn range(&self) -> Option<HashKeyRange> {
        Some(HashKeyRange {
            start: parse_hash_key(&self.hash_start)?,
            end: parse_hash_key(&self.hash_end)?,
        })
    }
}

/// Everything that defines a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub name: String,
    pub created_ms: i64,
    pub retention_ms: u64,
    /// Records that arrived before this time stay unreadable whatever the retention: set when
    /// retention is lengthened, so that records already expired are not brought back (as
    /// IncreaseStreamRetentionPeriod promises). Absent in version 1 manifests (0).
    #[serde(default)]
    pub expired_before_ms: i64,
    pub compression: CompressionSetting,
    pub durability: DurabilitySetting,
    pub max_record_bytes: u64,
    pub next_shard_index: u32,
    pub shards: Vec<ShardMeta>,
}

/// Why manifest bytes are unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ManifestError {
    Corrupt(&'static str),
    UnsupportedVersion(u8),
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        envelope::encode(MANIFEST_MAGIC, MANIFEST_VERSION, &json)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        // Version 1 is version 2 without `expired_before_ms`; both are read.
        let json = envelope::decode(bytes, MANIFEST_MAGIC, MANIFEST_VERSION)
            .or_else(|e| match e {
                EnvelopeError::UnsupportedVersion(1) => envelope::decode(bytes, MANIFEST_MAGIC, 1),
                other => Err(other),
            })
            .map_err(|e| match e {
                EnvelopeError::Corrupt(reason) => ManifestError::Corrupt(reason),
                EnvelopeError::UnsupportedVersion(v) => ManifestError::UnsupportedVersion(v),
            })?;
        let manifest: Manifest =
            serde_json::from_slice(json).map_err(|_| ManifestError::Corrupt("invalid JSON"))?;
        if manifest.shards.iter().any(|s| s.range().is_none()) {
            return Err(ManifestError::Corrupt("invalid hash key range"));
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            name: "orders".into(),
            created_ms: 5,
            retention_ms: 86_400_000,
            expired_before_ms: 0,
            compression: CompressionSetting::Zstd { level: 3 },
            durability: DurabilitySetting::Interval { interval_ms: 100 },
            max_record_bytes: 1 << 20,
            next_shard_index: 1,
            shards: vec![ShardMeta {
                index: 0,
                hash_start: "0".into(),
                hash_end: u128::MAX.to_string(),
                parent: None,
                adjacent_parent: None,
                first_log_sequence: 0,
                closed: Some(ClosedMeta {
                    next_log_sequence: 9,
                    closed_ms: 7,
                }),
                created_ms: 5,
            }],
        }
    }

    #[test]
    fn manifests_round_trip_and_detect_damage() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes), Ok(m));
        for at in [0usize, 4, 9, 17, 30, bytes.len() - 2] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            assert!(Manifest::decode(&damaged).is_err(), "flip at {at}");
        }
        let mut newer = bytes.clone();
        newer[4] = 3;
        assert_eq!(
            Manifest::decode(&newer),
            Err(ManifestError::UnsupportedVersion(3))
        );
        assert!(Manifest::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn version_1_manifests_read_with_no_expiry_floor() {
        let mut m = sample();
        m.expired_before_ms = 77;
        let mut json: serde_json::Value = serde_json::to_value(&m).unwrap();
        json.as_object_mut().unwrap().remove("expired_before_ms");
        let v1 = envelope::encode(MANIFEST_MAGIC, 1, &serde_json::to_vec(&json).unwrap());
        let read = Manifest::decode(&v1).unwrap();
        assert_eq!(read.expired_before_ms, 0);
        assert_eq!(read.shards, m.shards);
        assert_eq!(Manifest::decode(&m.encode()).unwrap().expired_before_ms, 77);
    }
}
