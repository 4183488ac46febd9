//! The checkpoint file of a log: its recovery point and its clean-shutdown mark, in 64 bytes.
//!
//! The recovery point is a position in the active segment up to which every byte is known to
//! be synced; recovery validates only what lies after it. `clean` is set only by an orderly
//! close after a successful final sync, and is cleared (by rewriting the file) at open, before
//! any other write.

use super::le;
use super::segment::{check_crc, check_magic_version, SegmentMetaError};

/// Magic bytes of a checkpoint file.
pub const CHECKPOINT_MAGIC: [u8; 4] = *b"SLGC";
/// The checkpoint format version this build writes and reads.
pub const CHECKPOINT_VERSION: u8 = 1;

/// Offset of the clean-shutdown byte (0 or 1).
pub const CHECKPOINT_CLEAN_OFFSET: usize = 8;
/// Offset of the base sequence number of the active segment (`u64`).
pub const CHECKPOINT_ACTIVE_BASE_OFFSET: usize = CHECKPOINT_CLEAN_OFFSET + 8;
/// Offset of the recovery position within the active segment (`u64`).
pub const CHECKPOINT_POSITION_OFFSET: usize = CHECKPOINT_ACTIVE_BASE_OFFSET + 8;
/// Offset of the sequence number of the first record at the recovery position (`u64`).
pub const CHECKPOINT_NEXT_SEQ_OFFSET: usize = CHECKPOINT_POSITION_OFFSET + 8;
/// Offset of the greatest timestamp in the active segment before the recovery position (`i64`).
pub const CHECKPOINT_MAX_TS_OFFSET: usize = CHECKPOINT_NEXT_SEQ_OFFSET + 8;
/// Offset of the xxh3-64 digest of the active segment's index file (`u64`, meaningful if clean).
pub const CHECKPOINT_INDEX_DIGEST_OFFSET: usize = CHECKPOINT_MAX_TS_OFFSET + 8;
/// Offset of the CRC-32 over `[0, CHECKPOINT_CRC_OFFSET)`.
pub const CHECKPOINT_CRC_OFFSET: usize = CHECKPOINT_INDEX_DIGEST_OFFSET + 8;
/// Length of the checkpoint file.
pub const CHECKPOINT_LEN: usize = CHECKPOINT_CRC_OFFSET + 4 + 4;
const _: () = assert!(CHECKPOINT_LEN == 64);

/// The contents of a checkpoint file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Whether the log was closed in an orderly way after a successful final sync.
    pub clean: bool,
    /// Base sequence number of the active segment.
    pub active_base: u64,
    /// Byte position in the active segment up to which data is known synced.
    pub recovery_position: u64,
    /// Sequence number of the first record at `recovery_position`.
    pub next_sequence: u64,
    /// Greatest record timestamp in the active segment before `recovery_position`.
    pub max_timestamp_ms: i64,
    /// Digest of the active segment's index file when `clean`; zero otherwise.
    pub index_digest: u64,
}

impl Checkpoint {
    /// The file's 64 bytes.
    pub fn encode(&self) -> [u8; CHECKPOINT_LEN] {
        let mut out = [0u8; CHECKPOINT_LEN];
        le::put_at(&mut out, 0, &CHECKPOINT_MAGIC);
        le::put_at(&mut out, 4, &[CHECKPOINT_VERSION]);
        le::put_at(&mut out, CHECKPOINT_CLEAN_OFFSET, &[u8::from(self.clean)]);
        le::put_at(
            &mut out,
            CHECKPOINT_ACTIVE_BASE_OFFSET,
            &self.active_base.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            CHECKPOINT_POSITION_OFFSET,
            &self.recovery_position.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            CHECKPOINT_NEXT_SEQ_OFFSET,
            &self.next_sequence.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            CHECKPOINT_MAX_TS_OFFSET,
            &self.max_timestamp_ms.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            CHECKPOINT_INDEX_DIGEST_OFFSET,
            &self.index_digest.to_le_bytes(),
        );
        let crc = crc32fast::hash(out.get(..CHECKPOINT_CRC_OFFSET).unwrap_or_default());
        le::put_at(&mut out, CHECKPOINT_CRC_OFFSET, &crc.to_le_bytes());
        out
    }

    /// Decodes a whole checkpoint file.
    pub fn decode(bytes: &[u8]) -> Result<Self, SegmentMetaError> {
        if bytes.len() != CHECKPOINT_LEN {
            return Err(SegmentMetaError::Truncated);
        }
        check_magic_version(bytes, CHECKPOINT_MAGIC, 4, CHECKPOINT_VERSION)?;
        check_crc(bytes, CHECKPOINT_CRC_OFFSET)?;
        let padding_ok = bytes.get(CHECKPOINT_CLEAN_OFFSET + 1..CHECKPOINT_ACTIVE_BASE_OFFSET)
            == Some(&[0u8; 7][..])
            && le::u32_at(bytes, CHECKPOINT_CRC_OFFSET + 4) == Some(0);
        if !padding_ok {
            return Err(SegmentMetaError::InvalidField("reserved"));
        }
        let clean = match bytes.get(CHECKPOINT_CLEAN_OFFSET) {
            Some(0) => false,
            Some(1) => true,
            _ => return Err(SegmentMetaError::InvalidField("clean")),
        };
        let u64_field = |offset| le::u64_at(bytes, offset).unwrap_or_default();
        Ok(Checkpoint {
            clean,
            active_base: u64_field(CHECKPOINT_ACTIVE_BASE_OFFSET),
            recovery_position: u64_field(CHECKPOINT_POSITION_OFFSET),
            next_sequence: u64_field(CHECKPOINT_NEXT_SEQ_OFFSET),
            max_timestamp_ms: le::i64_at(bytes, CHECKPOINT_MAX_TS_OFFSET).unwrap_or_default(),
            index_digest: u64_field(CHECKPOINT_INDEX_DIGEST_OFFSET),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn checkpoints_round_trip(clean: bool, active_base: u64, recovery_position: u64,
                                  next_sequence: u64, max_timestamp_ms: i64, index_digest: u64) {
            let cp = Checkpoint { clean, active_base, recovery_position, next_sequence, max_timestamp_ms, index_digest };
            prop_assert_eq!(Checkpoint::decode(&cp.encode()), Ok(cp));
        }

        #[test]
        fn bit_flips_are_detected(bit in 0usize..CHECKPOINT_LEN * 8) {
            let cp = Checkpoint { clean: true, active_base: 1, recovery_position: 2, next_sequence: 3, max_timestamp_ms: 4, index_digest: 5 };
            let mut bytes = cp.encode();
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Checkpoint::decode(&bytes).is_err());
        }
    }
}
