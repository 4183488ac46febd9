//! Encoding: a batch is built and checked in one pass over its records, then sequenced (its
//! base sequence number and checksum written) under the writer's lock.

use super::*;
use crate::format::codec::{Compression, EncodeScratch};
use crate::format::{le, varint};

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
