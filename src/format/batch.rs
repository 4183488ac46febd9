//! The record batch: the unit of framing, checksum, compression and atomicity.
//!
//! A batch is a 48-byte header followed by the record section, stored raw or as one zstd frame.
//! FORMAT.md §"Record batch" is the normative description; the constants below are its offsets.
//! Encoding validates its input before a byte is produced, and decoding re-validates every
//! field and every record after the checksum matches (a paired assertion at the format boundary):
//! a batch that decodes is one the encoder could have written.

use super::codec::{CodecId, Compression, DecodeScratch, EncodeScratch};
use super::le;
use super::varint;

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

/// Encodes `records` as one batch starting at `base_sequence`, replacing the contents of `out`.
///
/// On success `out` holds exactly the batch bytes, and decoding them yields `records` back.
pub fn encode_batch(
    out: &mut Vec<u8>,
    scratch: &mut EncodeScratch,
    base_sequence: u64,
    records: &[RecordIn<'_>],
    compression: Compression,
    aggregated: bool,
) -> Result<(), EncodeError> {
    let unsequenced = encode_unsequenced(out, scratch, records, compression, aggregated)?;
    unsequenced.sequence(out, base_sequence)
}

/// A batch encoded by [`encode_unsequenced`]: complete but for its base sequence number and
/// checksum, which [`Unsequenced::sequence`] adds in time independent of the batch's size.
/// A writer encodes (copies, compresses and checksums the records) before it takes its log's
/// lock, and sequences under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a batch is invalid until it is sequenced"]
pub struct Unsequenced {
    record_count: u32,
    max_timestamp_ms: i64,
    /// CRC-32 of everything after the header.
    payload_crc: u32,
    payload_len: u64,
}

impl Unsequenced {
    /// Records in the batch.
    pub fn record_count(&self) -> u32 {
        self.record_count
    }

    /// The greatest record timestamp, as the header holds it.
    pub fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms
    }

    /// Writes `base_sequence` into the batch in `out` and its checksum, combining the
    /// header's CRC with the payload's computed at encoding.
    pub fn sequence(self, out: &mut [u8], base_sequence: u64) -> Result<(), EncodeError> {
        base_sequence
            .checked_add(u64::from(self.record_count))
            .ok_or(EncodeError::SequenceOverflow)?;
        let written = le::put_at(out, BASE_SEQ_OFFSET, &base_sequence.to_le_bytes());
        debug_assert!(written, "the batch holds its header");
        let mut crc = crc32fast::Hasher::new();
        crc.update(
            out.get(VERSION_OFFSET..BATCH_HEADER_LEN)
                .unwrap_or_default(),
        );
        crc.combine(&crc32fast::Hasher::new_with_initial_len(
            self.payload_crc,
            self.payload_len,
        ));
        le::put_at(out, CRC_OFFSET, &crc.finalize().to_le_bytes());
        Ok(())
    }
}

/// Encodes `records` as one batch without its base sequence number and checksum (see
/// [`Unsequenced`]), replacing the contents of `out`.
pub fn encode_unsequenced(
    out: &mut Vec<u8>,
    scratch: &mut EncodeScratch,
    records: &[RecordIn<'_>],
    compression: Compression,
    aggregated: bool,
) -> Result<Unsequenced, EncodeError> {
    out.clear();
    let first = records.first().ok_or(EncodeError::Empty)?;
    if records.len() > BATCH_RECORDS_MAX {
        return Err(EncodeError::TooManyRecords {
            count: records.len(),
            max: BATCH_RECORDS_MAX,
        });
    }
    let record_count = u32::try_from(records.len()).map_err(|_| EncodeError::TooManyRecords {
        count: records.len(),
        max: BATCH_RECORDS_MAX,
    })?;
    let first_timestamp_ms = first.timestamp_ms;
    let max_timestamp_ms = records
        .iter()
        .map(|r| r.timestamp_ms)
        .max()
        .unwrap_or(first_timestamp_ms);

    out.resize(BATCH_HEADER_LEN, 0);
    let section = match compression {
        Compression::None => &mut *out,
        Compression::Zstd { .. } => scratch.records_buffer(),
    };
    let section_start = section.len();
    for record in records {
        write_record(section, first_timestamp_ms, record)?;
    }
    let records_len = section.len() - section_start;
    if records_len > RECORDS_BYTES_MAX {
        return Err(EncodeError::TooLarge {
            bytes: records_len,
            max: RECORDS_BYTES_MAX,
        });
    }
    let codec = match compression {
        Compression::None => CodecId::None,
        Compression::Zstd { .. } if records_len < COMPRESSION_MIN_BYTES => {
            out.extend_from_slice(scratch.records());
            CodecId::None
        }
        Compression::Zstd { level } => {
            scratch.compress_records_into(out, level)?;
            if out.len() - BATCH_HEADER_LEN >= records_len {
                // Incompressible: the raw section is smaller and cheaper to read.
                out.truncate(BATCH_HEADER_LEN);
                out.extend_from_slice(scratch.records());
                CodecId::None
            } else {
                CodecId::Zstd
            }
        }
    };
    if out.len() > BATCH_BYTES_MAX {
        return Err(EncodeError::TooLarge {
            bytes: out.len(),
            max: BATCH_BYTES_MAX,
        });
    }
    let length = out.len() as u32; // <= BATCH_BYTES_MAX, checked above
    let flags = codec.flag_bits() | if aggregated { FLAG_AGGREGATED } else { 0 };
    let header = out.as_mut_slice();
    let fields: [(usize, &[u8]); 9] = [
        (MAGIC_OFFSET, &BATCH_MAGIC),
        (LENGTH_OFFSET, &length.to_le_bytes()),
        (VERSION_OFFSET, &[BATCH_VERSION]),
        (FLAGS_OFFSET, &[flags]),
        (RESERVED_OFFSET, &[0, 0]),
        (RECORD_COUNT_OFFSET, &record_count.to_le_bytes()),
        (RECORDS_LEN_OFFSET, &(records_len as u32).to_le_bytes()),
        (FIRST_TIMESTAMP_OFFSET, &first_timestamp_ms.to_le_bytes()),
        (MAX_TIMESTAMP_OFFSET, &max_timestamp_ms.to_le_bytes()),
    ];
    for (offset, value) in fields {
        let written = le::put_at(header, offset, value);
        debug_assert!(written, "header field at {offset} lies inside the header");
    }
    let payload = out.get(BATCH_HEADER_LEN..).unwrap_or_default();
    Ok(Unsequenced {
        record_count,
        max_timestamp_ms,
        payload_crc: crc32fast::hash(payload),
        payload_len: payload.len() as u64,
    })
}

fn write_record(
    out: &mut Vec<u8>,
    first_timestamp_ms: i64,
    record: &RecordIn<'_>,
) -> Result<(), EncodeError> {
    let ts_delta = varint::zigzag(record.timestamp_ms.wrapping_sub(first_timestamp_ms));
    let key_len = record.partition_key.len() as u64;
    let data_len = record.data.len() as u64;
    let ehk_len = record
        .explicit_hash_key
        .map_or(0, |_| EXPLICIT_HASH_KEY_LEN);
    let body_len = varint::len_u64(ts_delta)
        + 1
        + varint::len_u64(key_len)
        + record.partition_key.len()
        + ehk_len
        + varint::len_u64(data_len)
        + record.data.len();
    if body_len > RECORDS_BYTES_MAX {
        return Err(EncodeError::TooLarge {
            bytes: body_len,
            max: RECORDS_BYTES_MAX,
        });
    }
    varint::put_u64(out, body_len as u64);
    varint::put_u64(out, ts_delta);
    match record.explicit_hash_key {
        Some(_) => out.push(RECORD_ATTR_EXPLICIT_HASH_KEY),
        None => out.push(0),
    }
    varint::put_u64(out, key_len);
    out.extend_from_slice(record.partition_key);
    if let Some(hash_key) = record.explicit_hash_key {
        out.extend_from_slice(&hash_key.to_be_bytes());
    }
    varint::put_u64(out, data_len);
    out.extend_from_slice(record.data);
    Ok(())
}

/// Reads and checks the fixed header fields of the batch at the front of `bytes`, without
/// the checksum. Used to learn a batch's length before the whole batch is available.
pub fn peek_header(bytes: &[u8]) -> Result<BatchHeader, DecodeError> {
    let truncated = || DecodeError::Truncated {
        needed: BATCH_HEADER_LEN as u64,
        available: bytes.len() as u64,
    };
    let magic: [u8; 4] = le::array(bytes, MAGIC_OFFSET).ok_or_else(truncated)?;
    if magic != BATCH_MAGIC {
        return Err(DecodeError::BadMagic { found: magic });
    }
    let length = le::u32_at(bytes, LENGTH_OFFSET).ok_or_else(truncated)?;
    if (length as usize) < BATCH_HEADER_LEN || length as usize > BATCH_BYTES_MAX {
        return Err(DecodeError::LengthOutOfRange {
            length: u64::from(length),
            min: BATCH_HEADER_LEN as u64,
            max: BATCH_BYTES_MAX as u64,
        });
    }
    let header = bytes.get(..BATCH_HEADER_LEN).ok_or_else(truncated)?;
    let field = |offset| le::u64_at(header, offset).unwrap_or_default();
    let version = header.get(VERSION_OFFSET).copied().unwrap_or_default();
    if version != BATCH_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: BATCH_VERSION,
        });
    }
    let flags = header.get(FLAGS_OFFSET).copied().unwrap_or_default();
    if flags & !FLAGS_KNOWN != 0 {
        return invalid("flags", u64::from(flags));
    }
    let codec =
        CodecId::from_flag_bits(flags & FLAG_CODEC_MASK).ok_or(DecodeError::InvalidField {
            field: "codec",
            value: u64::from(flags & FLAG_CODEC_MASK),
        })?;
    let reserved = le::u16_at(header, RESERVED_OFFSET).unwrap_or_default();
    if reserved != 0 {
        return invalid("reserved", u64::from(reserved));
    }
    let record_count = le::u32_at(header, RECORD_COUNT_OFFSET).unwrap_or_default();
    if record_count == 0 || record_count as usize > BATCH_RECORDS_MAX {
        return invalid("record_count", u64::from(record_count));
    }
    let records_len = le::u32_at(header, RECORDS_LEN_OFFSET).unwrap_or_default();
    if records_len as usize > RECORDS_BYTES_MAX || records_len < record_count {
        return invalid("records_len", u64::from(records_len));
    }
    let base_sequence = field(BASE_SEQ_OFFSET);
    if base_sequence.checked_add(u64::from(record_count)).is_none() {
        return invalid("base_sequence", base_sequence);
    }
    let first_timestamp_ms = le::i64_at(header, FIRST_TIMESTAMP_OFFSET).unwrap_or_default();
    let max_timestamp_ms = le::i64_at(header, MAX_TIMESTAMP_OFFSET).unwrap_or_default();
    if max_timestamp_ms < first_timestamp_ms {
        return invalid("max_timestamp", max_timestamp_ms as u64);
    }
    Ok(BatchHeader {
        length,
        codec,
        aggregated: flags & FLAG_AGGREGATED != 0,
        base_sequence,
        record_count,
        records_len,
        first_timestamp_ms,
        max_timestamp_ms,
    })
}

fn invalid<T>(field: &'static str, value: u64) -> Result<T, DecodeError> {
    Err(DecodeError::InvalidField { field, value })
}

/// A batch whose checksum, header and every record have been validated.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    header: BatchHeader,
    records: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// The batch's header fields.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The validated record section (inflated, if the batch was compressed).
    pub fn records_section(&self) -> &'a [u8] {
        self.records
    }

    /// A batch validated earlier, whose record section has moved to `records` (into shared
    /// storage). Only the length is checked against the header: comparing the bytes would cost
    /// as much as the move did, and they were copied from validated bytes.
    pub(crate) fn moved(header: BatchHeader, records: &[u8]) -> Option<BatchView<'_>> {
        (records.len() == header.records_len as usize).then_some(BatchView { header, records })
    }

    /// The records in sequence order.
    pub fn records(&self) -> RecordIter<'a> {
        RecordIter {
            remaining: self.records,
            next_sequence: self.header.base_sequence,
            first_timestamp_ms: self.header.first_timestamp_ms,
            index: 0,
        }
    }
}

/// Decodes and fully validates the batch at the front of `bytes` (trailing bytes are ignored).
///
/// A compressed record section is inflated into `scratch`, never past [`RECORDS_BYTES_MAX`].
pub fn decode_batch<'a>(
    bytes: &'a [u8],
    scratch: &'a mut DecodeScratch,
) -> Result<BatchView<'a>, DecodeError> {
    let header = peek_header(bytes)?;
    let length = header.length as usize;
    let batch = bytes.get(..length).ok_or(DecodeError::Truncated {
        needed: length as u64,
        available: bytes.len() as u64,
    })?;
    let stored = le::u32_at(batch, CRC_OFFSET).unwrap_or_default();
    let computed = crc32fast::hash(batch.get(VERSION_OFFSET..).unwrap_or_default());
    if stored != computed {
        return Err(DecodeError::ChecksumMismatch { stored, computed });
    }
    let payload = batch.get(BATCH_HEADER_LEN..).unwrap_or_default();
    let records = match header.codec {
        CodecId::None => payload,
        CodecId::Zstd => scratch.decompress(payload, header.records_len as usize)?,
    };
    if records.len() != header.records_len as usize {
        return Err(DecodeError::HeaderMismatch {
            problem: "record section length differs from records_len",
        });
    }
    let view = BatchView { header, records };
    validate_records(&view)?;
    Ok(view)
}

fn validate_records(view: &BatchView<'_>) -> Result<(), DecodeError> {
    let header = view.header;
    let mut iter = view.records();
    let mut count: u32 = 0;
    let mut max_timestamp_ms = i64::MIN;
    while let Some(record) = iter.next_checked()? {
        if count == 0 && record.timestamp_ms != header.first_timestamp_ms {
            return Err(DecodeError::HeaderMismatch {
                problem: "first record's timestamp differs from first_timestamp",
            });
        }
        max_timestamp_ms = max_timestamp_ms.max(record.timestamp_ms);
        count += 1;
    }
    if count != header.record_count {
        return Err(DecodeError::HeaderMismatch {
            problem: "record count differs from record_count",
        });
    }
    if max_timestamp_ms != header.max_timestamp_ms {
        return Err(DecodeError::HeaderMismatch {
            problem: "greatest record timestamp differs from max_timestamp",
        });
    }
    Ok(())
}

/// Iterates the records of a validated batch.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    remaining: &'a [u8],
    next_sequence: u64,
    first_timestamp_ms: i64,
    index: u32,
}

impl<'a> RecordIter<'a> {
    fn next_checked(&mut self) -> Result<Option<RecordRef<'a>>, DecodeError> {
        if self.remaining.is_empty() {
            return Ok(None);
        }
        let index = self.index;
        let fail = |problem| DecodeError::Record { index, problem };
        let (body_len, used) = varint::get_u64(self.remaining).map_err(|_| fail("bad length"))?;
        let body_end = usize::try_from(body_len)
            .ok()
            .and_then(|len| used.checked_add(len))
            .ok_or_else(|| fail("length overflows"))?;
        let body = self
            .remaining
            .get(used..body_end)
            .ok_or_else(|| fail("length runs past the record section"))?;
        let mut cursor = Cursor { bytes: body };
        let ts_delta = cursor.varint().ok_or_else(|| fail("bad timestamp"))?;
        let attributes = cursor.take(1).and_then(|b| b.first().copied());
        let attributes = attributes.ok_or_else(|| fail("missing attributes"))?;
        if attributes & !RECORD_ATTR_EXPLICIT_HASH_KEY != 0 {
            return Err(fail("unknown attribute bits"));
        }
        let key_len = cursor.varint().ok_or_else(|| fail("bad key length"))?;
        let partition_key = cursor.take_u64(key_len).ok_or_else(|| fail("bad key"))?;
        let explicit_hash_key = if attributes & RECORD_ATTR_EXPLICIT_HASH_KEY != 0 {
            let bytes = cursor
                .take(EXPLICIT_HASH_KEY_LEN)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| fail("bad explicit hash key"))?;
            Some(u128::from_be_bytes(bytes))
        } else {
            None
        };
        let data_len = cursor.varint().ok_or_else(|| fail("bad data length"))?;
        let data = cursor.take_u64(data_len).ok_or_else(|| fail("bad data"))?;
        if !cursor.bytes.is_empty() {
            return Err(fail("trailing bytes in record"));
        }
        let record = RecordRef {
            sequence: self.next_sequence,
            timestamp_ms: self
                .first_timestamp_ms
                .wrapping_add(varint::unzigzag(ts_delta)),
            partition_key,
            explicit_hash_key,
            data,
        };
        self.remaining = self.remaining.get(body_end..).unwrap_or_default();
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.index = self.index.wrapping_add(1);
        Ok(Some(record))
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        // Batches are validated before a RecordIter is handed out, so an error here cannot
        // happen; stopping is the safe answer if it ever did.
        self.next_checked().ok().flatten()
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Option<u64> {
        let (value, used) = varint::get_u64(self.bytes).ok()?;
        self.bytes = self.bytes.get(used..)?;
        Some(value)
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let taken = self.bytes.get(..len)?;
        self.bytes = self.bytes.get(len..)?;
        Some(taken)
    }

    fn take_u64(&mut self, len: u64) -> Option<&'a [u8]> {
        self.take(usize::try_from(len).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct OwnedRecord {
        timestamp_ms: i64,
        partition_key: Vec<u8>,
        explicit_hash_key: Option<u128>,
        data: Vec<u8>,
    }

    fn owned_record() -> impl Strategy<Value = OwnedRecord> {
        (
            any::<i64>(),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::option::of(any::<u128>()),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(timestamp_ms, partition_key, explicit_hash_key, data)| {
                OwnedRecord {
                    timestamp_ms,
                    partition_key,
                    explicit_hash_key,
                    data,
                }
            })
    }

    fn borrow(records: &[OwnedRecord]) -> Vec<RecordIn<'_>> {
        records
            .iter()
            .map(|r| RecordIn {
                timestamp_ms: r.timestamp_ms,
                partition_key: &r.partition_key,
                explicit_hash_key: r.explicit_hash_key,
                data: &r.data,
            })
            .collect()
    }

    fn compression() -> impl Strategy<Value = Compression> {
        prop_oneof![
            Just(Compression::None),
            (1i32..=5).prop_map(|level| Compression::Zstd { level }),
        ]
    }

    proptest! {
        #[test]
        fn batches_round_trip(
            records in proptest::collection::vec(owned_record(), 1..30),
            base in 0u64..u64::MAX / 2,
            compression in compression(),
            aggregated: bool,
        ) {
            let input = borrow(&records);
            let mut out = Vec::new();
            let mut enc = EncodeScratch::default();
            // What `encode_batch` does, keeping what the writer reads of the unsequenced batch.
            let unsequenced = encode_unsequenced(&mut out, &mut enc, &input, compression, aggregated)
                .expect("encodes");
            unsequenced.sequence(&mut out, base).expect("sequences");
            let mut dec = DecodeScratch::default();
            let view = decode_batch(&out, &mut dec).expect("decodes");
            prop_assert_eq!(unsequenced.record_count(), view.header().record_count);
            prop_assert_eq!(unsequenced.max_timestamp_ms(), view.header().max_timestamp_ms);
            prop_assert_eq!(view.header().length as usize, out.len());
            prop_assert_eq!(view.header().aggregated, aggregated);
            prop_assert_eq!(view.header().base_sequence, base);
            let decoded: Vec<_> = view.records().collect();
            prop_assert_eq!(decoded.len(), input.len());
            for (i, (got, want)) in decoded.iter().zip(&input).enumerate() {
                prop_assert_eq!(got.sequence, base + i as u64);
                prop_assert_eq!(got.timestamp_ms, want.timestamp_ms);
                prop_assert_eq!(got.partition_key, want.partition_key);
                prop_assert_eq!(got.explicit_hash_key, want.explicit_hash_key);
                prop_assert_eq!(got.data, want.data);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            let mut dec = DecodeScratch::default();
            let _ = decode_batch(&bytes, &mut dec);
        }

        #[test]
        fn any_single_bit_flip_is_detected(
            records in proptest::collection::vec(owned_record(), 1..5),
            compression in compression(),
            bit in any::<proptest::sample::Index>(),
        ) {
            let input = borrow(&records);
            let mut out = Vec::new();
            encode_batch(&mut out, &mut EncodeScratch::default(), 7, &input, compression, false)
                .expect("encodes");
            let bit = bit.index(out.len() * 8);
            out[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode_batch(&out, &mut DecodeScratch::default()).is_err());
        }
    }

    fn sample(compression: Compression) -> Vec<u8> {
        let data = vec![b'x'; 1000];
        let input = [RecordIn {
            timestamp_ms: 5,
            partition_key: b"k",
            explicit_hash_key: None,
            data: &data,
        }];
        let mut out = Vec::new();
        encode_batch(
            &mut out,
            &mut EncodeScratch::default(),
            0,
            &input,
            compression,
            false,
        )
        .expect("encodes");
        out
    }

    fn reseal(bytes: &mut [u8]) {
        let crc = crc32fast::hash(&bytes[VERSION_OFFSET..]);
        bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn rejects_empty_and_oversized_input() {
        let mut out = vec![1, 2, 3];
        let err = encode_batch(
            &mut out,
            &mut EncodeScratch::default(),
            0,
            &[],
            Compression::None,
            false,
        );
        assert_eq!(err, Err(EncodeError::Empty));
        assert!(out.is_empty(), "a failed encode leaves nothing behind");
        let big = vec![0u8; RECORDS_BYTES_MAX + 1];
        let input = [RecordIn {
            timestamp_ms: 0,
            partition_key: b"k",
            explicit_hash_key: None,
            data: &big,
        }];
        let err = encode_batch(
            &mut out,
            &mut EncodeScratch::default(),
            0,
            &input,
            Compression::None,
            false,
        );
        assert!(matches!(err, Err(EncodeError::TooLarge { .. })));
        let input = [RecordIn {
            timestamp_ms: 0,
            partition_key: b"k",
            explicit_hash_key: None,
            data: b"",
        }];
        let err = encode_batch(
            &mut out,
            &mut EncodeScratch::default(),
            u64::MAX,
            &input,
            Compression::None,
            false,
        );
        assert_eq!(err, Err(EncodeError::SequenceOverflow));
    }

    #[test]
    fn compression_shrinks_repetitive_data() {
        assert!(sample(Compression::Zstd { level: 1 }).len() * 5 < sample(Compression::None).len());
    }

    #[test]
    fn small_or_incompressible_sections_are_stored_raw() {
        let encode = |data: &[u8]| {
            let input = [RecordIn {
                timestamp_ms: 0,
                partition_key: b"k",
                explicit_hash_key: None,
                data,
            }];
            let mut out = Vec::new();
            encode_batch(
                &mut out,
                &mut EncodeScratch::default(),
                0,
                &input,
                Compression::Zstd { level: 3 },
                false,
            )
            .expect("encodes");
            peek_header(&out).expect("header").codec
        };
        assert_eq!(
            encode(&[b'a'; 100]),
            CodecId::None,
            "under COMPRESSION_MIN_BYTES"
        );
        assert_eq!(encode(&[b'a'; 1000]), CodecId::Zstd);
        let mut rng = crate::storage::SimRng::new(7);
        let noise: Vec<u8> = (0..1000).map(|_| rng.next_u64() as u8).collect();
        assert_eq!(encode(&noise), CodecId::None, "incompressible");
    }

    #[test]
    fn inflation_past_the_declared_length_is_corrupt_not_oom() {
        let mut bytes = sample(Compression::Zstd { level: 1 });
        // Claim the section inflates to fewer bytes than it really does.
        bytes[RECORDS_LEN_OFFSET..RECORDS_LEN_OFFSET + 4].copy_from_slice(&10u32.to_le_bytes());
        reseal(&mut bytes);
        let err = decode_batch(&bytes, &mut DecodeScratch::default()).unwrap_err();
        assert_eq!(err, DecodeError::Decompression { records_len: 10 });
        // Claim more than the bound: rejected before any allocation.
        let claim = (RECORDS_BYTES_MAX as u32) + 1;
        bytes[RECORDS_LEN_OFFSET..RECORDS_LEN_OFFSET + 4].copy_from_slice(&claim.to_le_bytes());
        reseal(&mut bytes);
        let err = decode_batch(&bytes, &mut DecodeScratch::default()).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::InvalidField {
                field: "records_len",
                ..
            }
        ));
    }

    #[test]
    fn newer_version_is_rejected_clearly() {
        let mut bytes = sample(Compression::None);
        bytes[VERSION_OFFSET] = BATCH_VERSION + 1;
        reseal(&mut bytes);
        let err = decode_batch(&bytes, &mut DecodeScratch::default()).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        );
    }

    #[test]
    fn every_proper_prefix_is_truncated_or_invalid() {
        let bytes = sample(Compression::None);
        for len in 0..bytes.len() {
            let err = decode_batch(&bytes[..len], &mut DecodeScratch::default()).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated { .. }),
                "prefix {len}: {err:?}"
            );
        }
    }

    #[test]
    fn all_zero_bytes_are_not_a_batch() {
        let zeros = [0u8; 128];
        assert!(matches!(
            decode_batch(&zeros, &mut DecodeScratch::default()),
            Err(DecodeError::BadMagic { .. })
        ));
    }
}
