//! The sparse index file of a segment: a header, then fixed-size, individually checksummed
//! entries, one every [`INDEX_INTERVAL_BYTES`] or so of log.
//!
//! An entry names a batch: its first sequence number, its byte position in the segment, and the
//! greatest record timestamp of every batch *before* it. Sequence numbers and positions strictly
//! increase, and the timestamp is a running maximum, so both "from sequence S" and "from time T"
//! are a binary search for the last entry that is not past the target, then a short forward scan.
//! The index is derived data: readers check it against the log and it is rebuilt when it
//! disagrees. Each entry's CRC covers its bytes and its own ordinal, so an entry copied to the
//! wrong slot, or a run of zero bytes, never parses as a valid entry.

use super::le;
use super::segment::{check_crc, check_magic_version, SegmentMetaError};

/// Magic bytes that open an index file.
pub const INDEX_MAGIC: [u8; 4] = *b"SLGI";
/// The index format version this build writes and reads.
pub const INDEX_VERSION: u8 = 1;
/// Log bytes between index entries (Kafka's `index.interval.bytes` default).
pub const INDEX_INTERVAL_BYTES: u64 = 4096;

/// Offset of the header's base sequence number (`u64`).
pub const INDEX_BASE_OFFSET: usize = 8;
/// Offset of the header's CRC-32 over `[0, INDEX_CRC_OFFSET)`.
pub const INDEX_CRC_OFFSET: usize = INDEX_BASE_OFFSET + 8;
/// Length of the index header; entries start here.
pub const INDEX_HEADER_LEN: usize = INDEX_CRC_OFFSET + 4 + 4;
const _: () = assert!(INDEX_HEADER_LEN == 24);

/// Offset of an entry's sequence number (`u64`).
pub const ENTRY_SEQUENCE_OFFSET: usize = 0;
/// Offset of an entry's byte position in the segment (`u64`).
pub const ENTRY_POSITION_OFFSET: usize = ENTRY_SEQUENCE_OFFSET + 8;
/// Offset of the running maximum timestamp before the entry's batch (`i64`).
pub const ENTRY_MAX_TS_OFFSET: usize = ENTRY_POSITION_OFFSET + 8;
/// Offset of the entry's CRC-32 over its first 24 bytes followed by its ordinal as `u64`.
pub const ENTRY_CRC_OFFSET: usize = ENTRY_MAX_TS_OFFSET + 8;
/// Length of one entry.
pub const INDEX_ENTRY_LEN: usize = ENTRY_CRC_OFFSET + 4 + 4;
const _: () = assert!(INDEX_ENTRY_LEN == 32);

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// First sequence number of the batch at `position`.
    pub sequence: u64,
    /// Byte offset of that batch in the segment file.
    pub position: u64,
    /// Greatest record timestamp of all batches before `position` (`i64::MIN` if none).
    pub max_timestamp_before_ms: i64,
}

impl IndexEntry {
    /// Encodes the entry that sits at `ordinal` (0 for the first entry after the header).
    pub fn encode(&self, ordinal: u64) -> [u8; INDEX_ENTRY_LEN] {
        let mut out = [0u8; INDEX_ENTRY_LEN];
        le::put_at(
            &mut out,
            ENTRY_SEQUENCE_OFFSET,
            &self.sequence.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            ENTRY_POSITION_OFFSET,
            &self.position.to_le_bytes(),
        );
        le::put_at(
            &mut out,
            ENTRY_MAX_TS_OFFSET,
            &self.max_timestamp_before_ms.to_le_bytes(),
        );
        let crc = entry_crc(&out, ordinal);
        le::put_at(&mut out, ENTRY_CRC_OFFSET, &crc.to_le_bytes());
        out
    }

    /// Decodes the entry at `ordinal`, or `None` if its checksum or reserved bytes are wrong.
    pub fn decode(bytes: &[u8], ordinal: u64) -> Option<Self> {
        let entry = bytes.get(..INDEX_ENTRY_LEN)?;
        if entry.iter().all(|&b| b == 0) {
            return None;
        }
        if le::u32_at(entry, ENTRY_CRC_OFFSET)? != entry_crc(entry, ordinal)
            || le::u32_at(entry, ENTRY_CRC_OFFSET + 4)? != 0
        {
            return None;
        }
        Some(IndexEntry {
            sequence: le::u64_at(entry, ENTRY_SEQUENCE_OFFSET)?,
            position: le::u64_at(entry, ENTRY_POSITION_OFFSET)?,
            max_timestamp_before_ms: le::i64_at(entry, ENTRY_MAX_TS_OFFSET)?,
        })
    }
}

fn entry_crc(entry: &[u8], ordinal: u64) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(entry.get(..ENTRY_CRC_OFFSET).unwrap_or_default());
    hasher.update(&ordinal.to_le_bytes());
    hasher.finalize()
}

/// The index header's 24 bytes for the segment based at `base_sequence`.
pub fn encode_index_header(base_sequence: u64) -> [u8; INDEX_HEADER_LEN] {
    let mut out = [0u8; INDEX_HEADER_LEN];
    le::put_at(&mut out, 0, &INDEX_MAGIC);
    le::put_at(&mut out, 4, &[INDEX_VERSION]);
    le::put_at(&mut out, INDEX_BASE_OFFSET, &base_sequence.to_le_bytes());
    let crc = crc32fast::hash(out.get(..INDEX_CRC_OFFSET).unwrap_or_default());
    le::put_at(&mut out, INDEX_CRC_OFFSET, &crc.to_le_bytes());
    out
}

/// Checks an index header and returns the base sequence number it names.
pub fn decode_index_header(bytes: &[u8]) -> Result<u64, SegmentMetaError> {
    let header = bytes
        .get(..INDEX_HEADER_LEN)
        .ok_or(SegmentMetaError::Truncated)?;
    check_magic_version(header, INDEX_MAGIC, 4, INDEX_VERSION)?;
    check_crc(header, INDEX_CRC_OFFSET)?;
    if le::u32_at(header, INDEX_CRC_OFFSET + 4) != Some(0) {
        return Err(SegmentMetaError::InvalidField("reserved"));
    }
    le::u64_at(header, INDEX_BASE_OFFSET).ok_or(SegmentMetaError::Truncated)
}

/// Decodes the longest prefix of valid, strictly increasing entries of a whole index file
/// for the segment based at `base_sequence`. Returns the entries and whether the whole file
/// was valid (a torn or corrupt entry, or a trailing partial entry, makes it `false`).
pub fn decode_index_entries(bytes: &[u8], base_sequence: u64) -> (Vec<IndexEntry>, bool) {
    match decode_index_header(bytes) {
        Ok(base) if base == base_sequence => {}
        _ => return (Vec::new(), false),
    }
    let body = bytes.get(INDEX_HEADER_LEN..).unwrap_or_default();
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(body.len() / INDEX_ENTRY_LEN);
    for (ordinal, chunk) in body.chunks(INDEX_ENTRY_LEN).enumerate() {
        let Some(entry) = IndexEntry::decode(chunk, ordinal as u64) else {
            return (entries, false);
        };
        let ordered = match entries.last() {
            Some(prev) => {
                entry.sequence > prev.sequence
                    && entry.position > prev.position
                    && entry.max_timestamp_before_ms >= prev.max_timestamp_before_ms
            }
            None => entry.sequence >= base_sequence,
        };
        if !ordered {
            return (entries, false);
        }
        entries.push(entry);
    }
    (entries, true)
}

/// Encodes a whole index file.
pub fn encode_index_file(base_sequence: u64, entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_HEADER_LEN + entries.len() * INDEX_ENTRY_LEN);
    out.extend_from_slice(&encode_index_header(base_sequence));
    for (ordinal, entry) in entries.iter().enumerate() {
        out.extend_from_slice(&entry.encode(ordinal as u64));
    }
    out
}

/// The xxh3-64 digest recorded in footers and checkpoints for an index file's bytes.
pub fn index_digest(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entries_strategy() -> impl Strategy<Value = Vec<IndexEntry>> {
        proptest::collection::vec((1u64..1000, 1u64..100_000, 0i64..1000), 0..50).prop_map(
            |steps| {
                let (mut seq, mut pos, mut ts) = (100u64, 32u64, i64::MIN);
                steps
                    .into_iter()
                    .map(|(ds, dp, dt)| {
                        let entry = IndexEntry {
                            sequence: seq,
                            position: pos,
                            max_timestamp_before_ms: ts,
                        };
                        seq += ds;
                        pos += dp;
                        ts = if ts == i64::MIN { dt } else { ts + dt };
                        entry
                    })
                    .collect()
            },
        )
    }

    proptest! {
        #[test]
        fn index_files_round_trip(entries in entries_strategy()) {
            let bytes = encode_index_file(100, &entries);
            prop_assert_eq!(decode_index_entries(&bytes, 100), (entries, true));
        }

        #[test]
        fn any_byte_flip_shortens_or_fails(entries in entries_strategy(), at: proptest::sample::Index, flip in 1u8..=255) {
            let mut bytes = encode_index_file(100, &entries);
            let at = at.index(bytes.len());
            bytes[at] ^= flip;
            let (decoded, whole) = decode_index_entries(&bytes, 100);
            prop_assert!(!whole);
            prop_assert!(decoded.len() <= entries.len());
            prop_assert_eq!(&decoded[..], &entries[..decoded.len()]);
        }
    }

    #[test]
    fn zeroed_entries_and_misplaced_entries_do_not_parse() {
        assert_eq!(IndexEntry::decode(&[0u8; INDEX_ENTRY_LEN], 0), None);
        let entry = IndexEntry {
            sequence: 5,
            position: 40,
            max_timestamp_before_ms: 1,
        };
        assert_eq!(IndexEntry::decode(&entry.encode(3), 3), Some(entry));
        assert_eq!(IndexEntry::decode(&entry.encode(3), 4), None);
        let mut file = encode_index_header(0).to_vec();
        file.extend_from_slice(&[0u8; INDEX_ENTRY_LEN * 4]);
        assert_eq!(decode_index_entries(&file, 0), (Vec::new(), false));
        assert_eq!(
            decode_index_entries(&encode_index_header(1), 0),
            (Vec::new(), false)
        );
    }
}
