//! Decoding: the header is checked before the checksum, the checksum before the record
//! section is decompressed, and every record is validated before a reader sees one.

use super::*;
use crate::format::codec::DecodeScratch;
use crate::format::{le, varint};

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
