//! The record batch: the unit of framing, checksum, compression and atomicity.
//!
//! A batch is a 48-byte header followed by the record section, stored raw or as one zstd frame.
//! FORMAT.md §"Record batch" is the normative description; the constants below are its offsets.
//! Encoding validates its input before a byte is produced, and decoding re-validates every
//! field and every record after the checksum matches (a paired assertion at the format boundary):
//! a batch that decodes is one the encoder could have written.

use super::codec::CodecId;

mod decode;
mod encode;

pub use decode::{decode_batch, peek_header, BatchView, RecordIter};
pub use encode::{encode_batch, encode_unsequenced, Unsequenced};

/// The four bytes every batch starts with.
pub const BATCH_MAGIC: [u8; 4] = *b"SLGB";
/// The batch format version this build writes and reads.
pub const BATCH_VERSION: u8 = 1;

/// Offset of the magic bytes.
pub const MAGIC_OFFSET: usize = 0;
/// Offset of the total batch length (`u32`, header included).
pub const LENGTH_OFFSET: usize = MAGIC_OFFSET + BATCH_MAGIC.len();
/// Offset of the CRC-32 of bytes `[VERSION_OFFSET, length)`.
pub const CRC_OFFSET: usize = LENGTH_OFFSET + 4;
/// Offset of the format version byte; the checksum covers everything from here on.
pub const VERSION_OFFSET: usize = CRC_OFFSET + 4;
/// Offset of the flags byte (codec and aggregation).
pub const FLAGS_OFFSET: usize = VERSION_OFFSET + 1;
/// Offset of two reserved bytes that must be zero.
pub const RESERVED_OFFSET: usize = FLAGS_OFFSET + 1;
/// Offset of the sequence number of the first record (`u64`).
pub const BASE_SEQ_OFFSET: usize = RESERVED_OFFSET + 2;
/// Offset of the number of records (`u32`).
pub const RECORD_COUNT_OFFSET: usize = BASE_SEQ_OFFSET + 8;
/// Offset of the uncompressed length of the record section (`u32`).
pub const RECORDS_LEN_OFFSET: usize = RECORD_COUNT_OFFSET + 4;
/// Offset of the first record's timestamp in milliseconds (`i64`).
pub const FIRST_TIMESTAMP_OFFSET: usize = RECORDS_LEN_OFFSET + 4;
/// Offset of the greatest record timestamp in milliseconds (`i64`).
pub const MAX_TIMESTAMP_OFFSET: usize = FIRST_TIMESTAMP_OFFSET + 8;
/// Length of the batch header.
pub const BATCH_HEADER_LEN: usize = MAX_TIMESTAMP_OFFSET + 8;
const _: () = assert!(BATCH_HEADER_LEN == 48);

/// The largest encoded batch, header included. A longer length field is corruption.
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
/// The largest uncompressed record section; bounds decompression so a batch that claims to
/// inflate past it is corrupt rather than an out-of-memory.
pub const RECORDS_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Record sections shorter than this are stored raw even when the log compresses: zstd's
/// per-call cost outweighs what it saves on a few hundred bytes.
pub const COMPRESSION_MIN_BYTES: usize = 256;
/// The most records one batch may hold.
pub const BATCH_RECORDS_MAX: usize = 1 << 20;

const FLAG_CODEC_MASK: u8 = 0b0000_0011;
const FLAG_AGGREGATED: u8 = 0b0000_0100;
const FLAGS_KNOWN: u8 = FLAG_CODEC_MASK | FLAG_AGGREGATED;
const RECORD_ATTR_EXPLICIT_HASH_KEY: u8 = 0b0000_0001;
const EXPLICIT_HASH_KEY_LEN: usize = 16;

/// One record to be appended: borrowed, so encoding allocates nothing per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordIn<'a> {
    /// Arrival timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Routing key bytes (the stream layer keeps them UTF-8).
    pub partition_key: &'a [u8],
    /// A hash key that overrides the partition key's hash, if the producer gave one.
    pub explicit_hash_key: Option<u128>,
    /// The payload.
    pub data: &'a [u8],
}

/// One decoded record, borrowing from the batch it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The record's sequence number: the batch base plus its index in the batch.
    pub sequence: u64,
    /// Arrival timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Routing key bytes.
    pub partition_key: &'a [u8],
    /// The explicit hash key, if the record carried one.
    pub explicit_hash_key: Option<u128>,
    /// The payload.
    pub data: &'a [u8],
}

/// The validated fixed fields of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Total encoded length, header included.
    pub length: u32,
    /// How the record section is stored.
    pub codec: CodecId,
    /// Whether the producer marked the records as KPL-aggregated.
    pub aggregated: bool,
    /// Sequence number of the first record.
    pub base_sequence: u64,
    /// Number of records; at least one.
    pub record_count: u32,
    /// Uncompressed length of the record section.
    pub records_len: u32,
    /// Timestamp of the first record.
    pub first_timestamp_ms: i64,
    /// Greatest timestamp of any record.
    pub max_timestamp_ms: i64,
}

impl BatchHeader {
    /// Sequence number of the last record in the batch.
    pub fn last_sequence(&self) -> u64 {
        self.base_sequence
            .saturating_add(u64::from(self.record_count))
            .saturating_sub(1)
    }

    /// Sequence number the next batch must start at.
    pub fn next_sequence(&self) -> u64 {
        self.base_sequence
            .saturating_add(u64::from(self.record_count))
    }
}

/// Why bytes are not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the header or the declared length need: at a log's tail, a torn or
    /// in-progress write.
    #[error("truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the decoder needed.
        needed: u64,
        /// Bytes that were there.
        available: u64,
    },
    /// The magic bytes are wrong.
    #[error("bad magic {found:02x?}")]
    BadMagic {
        /// What was found instead.
        found: [u8; 4],
    },
    /// Written by a format version this build does not read.
    #[error("format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The length field is outside `[header length, limit]`.
    #[error("length {length} outside [{min}, {max}]")]
    LengthOutOfRange {
        /// The declared length.
        length: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// The stored checksum does not match the bytes.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Checksum in the header.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// A header field holds a value the format does not allow.
    #[error("invalid header field {field}: {value}")]
    InvalidField {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The record section does not decompress to exactly its declared length.
    #[error("record section does not decompress to its declared {records_len} bytes")]
    Decompression {
        /// The declared uncompressed length.
        records_len: u32,
    },
    /// A record's framing is inconsistent.
    #[error("record {index}: {problem}")]
    Record {
        /// Index of the record within the batch.
        index: u32,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The record section disagrees with the header (count, timestamps, trailing bytes).
    #[error("record section disagrees with header: {problem}")]
    HeaderMismatch {
        /// What disagrees.
        problem: &'static str,
    },
}

/// Why a batch could not be encoded. Nothing is written when encoding fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A batch needs at least one record.
    #[error("a batch needs at least one record")]
    Empty,
    /// More records than [`BATCH_RECORDS_MAX`].
    #[error("{count} records exceed the batch limit of {max}; split the append")]
    TooManyRecords {
        /// Records given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The records or the encoded batch exceed a byte limit.
    #[error("batch of {bytes} bytes exceeds the limit of {max}; split the append")]
    TooLarge {
        /// Bytes the batch would need.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// The sequence numbers would pass `u64::MAX`.
    #[error("sequence numbers would overflow u64")]
    SequenceOverflow,
    /// The compressor failed.
    #[error("zstd compression failed: {0}")]
    Compression(String),
}

#[cfg(test)]
mod tests;
