//! The segment file's header (first 32 bytes) and footer (last 64 bytes of a sealed segment).
//!
//! A segment is `header, batch*, [footer]`. The footer is written once, when the segment is
//! sealed; it states where the batches end, the sequence range they cover and the digest of the
//! segment's index file, so a sealed segment is trusted on open without being rescanned.

use super::le;

/// Magic bytes that open every segment file.
pub const SEGMENT_MAGIC: [u8; 4] = *b"SLGS";
/// Magic bytes that open a segment footer.
pub const FOOTER_MAGIC: [u8; 4] = *b"SLGF";
/// The segment format version this build writes and reads.
pub const SEGMENT_VERSION: u8 = 1;

/// Offset of the header's version byte.
pub const SEGMENT_VERSION_OFFSET: usize = SEGMENT_MAGIC.len();
/// Offset of the header's base sequence number (`u64`).
pub const SEGMENT_BASE_OFFSET: usize = SEGMENT_VERSION_OFFSET + 1 + 3;
/// Offset of the header's creation time in milliseconds (`i64`), which drives age-based rolls.
pub const SEGMENT_CREATED_OFFSET: usize = SEGMENT_BASE_OFFSET + 8;
/// Offset of the header's CRC-32 over bytes `[0, SEGMENT_CRC_OFFSET)`.
pub const SEGMENT_CRC_OFFSET: usize = SEGMENT_CREATED_OFFSET + 8;
/// Length of the segment header; the first batch starts here.
pub const SEGMENT_HEADER_LEN: usize = SEGMENT_CRC_OFFSET + 4 + 4;
const _: () = assert!(SEGMENT_HEADER_LEN == 32);

/// Offset of the footer's version byte.
pub const FOOTER_VERSION_OFFSET: usize = FOOTER_MAGIC.len();
/// Offset of the footer's base sequence number (`u64`).
pub const FOOTER_BASE_OFFSET: usize = FOOTER_VERSION_OFFSET + 1 + 3;
/// Offset of the sequence number after the segment's last record (`u64`).
pub const FOOTER_NEXT_SEQ_OFFSET: usize = FOOTER_BASE_OFFSET + 8;
/// Offset of the end of the last batch, which is where the footer starts (`u64`).
pub const FOOTER_DATA_END_OFFSET: usize = FOOTER_NEXT_SEQ_OFFSET + 8;
/// Offset of the greatest record timestamp in the segment (`i64`).
pub const FOOTER_MAX_TS_OFFSET: usize = FOOTER_DATA_END_OFFSET + 8;
/// Offset of the xxh3-64 digest of the segment's index file (`u64`).
pub const FOOTER_INDEX_DIGEST_OFFSET: usize = FOOTER_MAX_TS_OFFSET + 8;
/// Offset of the index file's length in bytes (`u64`).
pub const FOOTER_INDEX_LEN_OFFSET: usize = FOOTER_INDEX_DIGEST_OFFSET + 8;
/// Offset of the footer's CRC-32 over bytes `[0, FOOTER_CRC_OFFSET)`.
pub const FOOTER_CRC_OFFSET: usize = FOOTER_INDEX_LEN_OFFSET + 8;
/// Length of the footer.
pub const FOOTER_LEN: usize = FOOTER_CRC_OFFSET + 4 + 4;
const _: () = assert!(FOOTER_LEN == 64);

/// Why a segment header or footer is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentMetaError {
    /// Not enough bytes.
    #[error("truncated")]
    Truncated,
    /// Magic bytes do not match.
    #[error("bad magic")]
    BadMagic,
    /// A version this build does not read.
    #[error("format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u8,
        /// Version this build reads.
        supported: u8,
    },
    /// The checksum does not match.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// A field holds an impossible value.
    #[error("invalid field {0}")]
    InvalidField(&'static str),
}

/// The fields of a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Sequence number of the first record the segment may hold; also its file name.
    pub base_sequence: u64,
    /// When the segment was created, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

impl SegmentHeader {
    /// The header's 32 bytes.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut out = [0u8; SEGMENT_HEADER_LEN];
        le::put_at(&mut out, 0, &SEGMENT_MAGIC);
        le::put_at(&mut out, SEGMENT_VERSION_OFFSET, &[SEGMENT_VERSION]);
        le::put_at(
            &mut out,
            SEGMENT_BASE_OFFSET,
            &self.base_sequence.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            SEGMENT_CREATED_OFFSET,
            &self.created_ms.to_le_bytes(),
        );
        let crc = crc32fast::hash(out.get(..SEGMENT_CRC_OFFSET).unwrap_or_default());
        le::put_at(&mut out, SEGMENT_CRC_OFFSET, &crc.to_le_bytes());
        out
    }

    /// Decodes and checks the header at the front of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, SegmentMetaError> {
        let header = bytes
            .get(..SEGMENT_HEADER_LEN)
            .ok_or(SegmentMetaError::Truncated)?;
        check_magic_version(
            header,
            SEGMENT_MAGIC,
            SEGMENT_VERSION_OFFSET,
            SEGMENT_VERSION,
        )?;
        check_crc(header, SEGMENT_CRC_OFFSET)?;
        if le::u32_at(header, SEGMENT_CRC_OFFSET + 4) != Some(0) {
            return Err(SegmentMetaError::InvalidField("reserved"));
        }
        Ok(SegmentHeader {
            base_sequence: le::u64_at(header, SEGMENT_BASE_OFFSET).unwrap_or_default(),
            created_ms: le::i64_at(header, SEGMENT_CREATED_OFFSET).unwrap_or_default(),
        })
    }
}

/// The fields of a sealed segment's footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFooter {
    /// Base sequence number, equal to the header's.
    pub base_sequence: u64,
    /// The sequence number after the last record; the next segment's base.
    pub next_sequence: u64,
    /// Byte offset where the batches end and the footer begins.
    pub data_end: u64,
    /// Greatest record timestamp in the segment (`i64::MIN` if it holds no records).
    pub max_timestamp_ms: i64,
    /// xxh3-64 of the whole index file.
    pub index_digest: u64,
    /// Length of the index file in bytes.
    pub index_len: u64,
}

impl SegmentFooter {
    /// The footer's 64 bytes.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = [0u8; FOOTER_LEN];
        le::put_at(&mut out, 0, &FOOTER_MAGIC);
        le::put_at(&mut out, FOOTER_VERSION_OFFSET, &[SEGMENT_VERSION]);
        le::put_at(
            &mut out,
            FOOTER_BASE_OFFSET,
            &self.base_sequence.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            FOOTER_NEXT_SEQ_OFFSET,
            &self.next_sequence.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            FOOTER_DATA_END_OFFSET,
            &self.data_end.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            FOOTER_MAX_TS_OFFSET,
            &self.max_timestamp_ms.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            FOOTER_INDEX_DIGEST_OFFSET,
            &self.index_digest.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            FOOTER_INDEX_LEN_OFFSET,
            &self.index_len.to_le_bytes(),
        );
        let crc = crc32fast::hash(out.get(..FOOTER_CRC_OFFSET).unwrap_or_default());
        le::put_at(&mut out, FOOTER_CRC_OFFSET, &crc.to_le_bytes());
        out
    }

    /// Decodes and checks a footer from exactly [`FOOTER_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, SegmentMetaError> {
        if bytes.len() != FOOTER_LEN {
            return Err(SegmentMetaError::Truncated);
        }
        check_magic_version(bytes, FOOTER_MAGIC, FOOTER_VERSION_OFFSET, SEGMENT_VERSION)?;
        check_crc(bytes, FOOTER_CRC_OFFSET)?;
        if le::u32_at(bytes, FOOTER_CRC_OFFSET + 4) != Some(0) {
            return Err(SegmentMetaError::InvalidField("reserved"));
        }
        let u64_field = |offset| le::u64_at(bytes, offset).unwrap_or_default();
        let footer = SegmentFooter {
            base_sequence: u64_field(FOOTER_BASE_OFFSET),
            next_sequence: u64_field(FOOTER_NEXT_SEQ_OFFSET),
            data_end: u64_field(FOOTER_DATA_END_OFFSET),
            max_timestamp_ms: le::i64_at(bytes, FOOTER_MAX_TS_OFFSET).unwrap_or_default(),
            index_digest: u64_field(FOOTER_INDEX_DIGEST_OFFSET),
            index_len: u64_field(FOOTER_INDEX_LEN_OFFSET),
        };
        if footer.next_sequence < footer.base_sequence {
            return Err(SegmentMetaError::InvalidField("next_sequence"));
        }
        if footer.data_end < SEGMENT_HEADER_LEN as u64 {
            return Err(SegmentMetaError::InvalidField("data_end"));
        }
        Ok(footer)
    }
}

pub(super) fn check_magic_version(
    bytes: &[u8],
    magic: [u8; 4],
    version_offset: usize,
    version: u8,
) -> Result<(), SegmentMetaError> {
    if le::array::<4>(bytes, 0) != Some(magic) {
        return Err(SegmentMetaError::BadMagic);
    }
    let found = bytes.get(version_offset).copied().unwrap_or_default();
    if found != version {
        return Err(SegmentMetaError::UnsupportedVersion {
            found,
            supported: version,
        });
    }
    if bytes.get(version_offset + 1..version_offset + 4) != Some(&[0u8; 3][..]) {
        return Err(SegmentMetaError::InvalidField("reserved"));
    }
    Ok(())
}

pub(super) fn check_crc(bytes: &[u8], crc_offset: usize) -> Result<(), SegmentMetaError> {
    let covered = bytes.get(..crc_offset).ok_or(SegmentMetaError::Truncated)?;
    let stored = le::u32_at(bytes, crc_offset).ok_or(SegmentMetaError::Truncated)?;
    if crc32fast::hash(covered) != stored {
        return Err(SegmentMetaError::ChecksumMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_round_trips(base_sequence: u64, created_ms: i64) {
            let header = SegmentHeader { base_sequence, created_ms };
            prop_assert_eq!(SegmentHeader::decode(&header.encode()), Ok(header));
        }

        #[test]
        fn footer_round_trips(base in 0u64..1 << 62, count in 0u64..1 << 20, data_end in 32u64..1 << 40,
                              max_timestamp_ms: i64, index_digest: u64, index_len: u64) {
            let footer = SegmentFooter {
                base_sequence: base,
                next_sequence: base + count,
                data_end,
                max_timestamp_ms,
                index_digest,
                index_len,
            };
            prop_assert_eq!(SegmentFooter::decode(&footer.encode()), Ok(footer));
        }

        #[test]
        fn footer_bit_flips_are_detected(bit in 0usize..FOOTER_LEN * 8) {
            let footer = SegmentFooter {
                base_sequence: 10, next_sequence: 20, data_end: 4096,
                max_timestamp_ms: 99, index_digest: 1, index_len: 24,
            };
            let mut bytes = footer.encode();
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(SegmentFooter::decode(&bytes).is_err());
        }
    }

    #[test]
    fn zeros_are_neither_header_nor_footer() {
        assert!(SegmentHeader::decode(&[0u8; SEGMENT_HEADER_LEN]).is_err());
        assert!(SegmentFooter::decode(&[0u8; FOOTER_LEN]).is_err());
    }
}
