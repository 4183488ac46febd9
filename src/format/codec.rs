//! Batch compression: none or zstd, chosen per batch, with bounded decompression.

use super::batch::{DecodeError, EncodeError, RECORDS_BYTES_MAX};

/// The smallest zstd level a stream may configure.
pub const ZSTD_LEVEL_MIN: i32 = 1;
/// The largest zstd level a stream may configure.
pub const ZSTD_LEVEL_MAX: i32 = 19;

/// How a log compresses the batches it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Records are stored as encoded.
    #[default]
    None,
    /// The record section of each batch is one zstd frame.
    Zstd {
        /// Compression level, [`ZSTD_LEVEL_MIN`]..=[`ZSTD_LEVEL_MAX`].
        level: i32,
    },
}

impl Compression {
    /// Whether the level is within the supported range.
    pub fn is_valid(&self) -> bool {
        match self {
            Compression::None => true,
            Compression::Zstd { level } => (ZSTD_LEVEL_MIN..=ZSTD_LEVEL_MAX).contains(level),
        }
    }
}

/// The codec recorded in a batch's flags (bits 0-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecId {
    /// Stored raw (code 0).
    None,
    /// One zstd frame (code 1).
    Zstd,
}

impl CodecId {
    /// The flag bits for this codec.
    pub fn flag_bits(self) -> u8 {
        match self {
            CodecId::None => 0,
            CodecId::Zstd => 1,
        }
    }

    /// The codec for flag bits, or `None` for a code this version does not define.
    pub fn from_flag_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(CodecId::None),
            1 => Some(CodecId::Zstd),
            _ => None,
        }
    }
}

/// Buffers and a compression context reused across encodes, so steady-state encoding
/// allocates nothing.
#[derive(Default)]
pub struct EncodeScratch {
    records: Vec<u8>,
    compressor: Option<(i32, zstd::bulk::Compressor<'static>)>,
}

impl std::fmt::Debug for EncodeScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodeScratch").finish_non_exhaustive()
    }
}

impl EncodeScratch {
    pub(super) fn records(&self) -> &[u8] {
        &self.records
    }

    pub(super) fn records_buffer(&mut self) -> &mut Vec<u8> {
        self.records.clear();
        &mut self.records
    }

    /// Appends the zstd frame of the buffered record section to `out`.
    pub(super) fn compress_records_into(
        &mut self,
        out: &mut Vec<u8>,
        level: i32,
    ) -> Result<(), EncodeError> {
        let failed = |e: std::io::Error| EncodeError::Compression(e.to_string());
        let compressor = match &mut self.compressor {
            Some((current, compressor)) if *current == level => compressor,
            slot => {
                let compressor = zstd::bulk::Compressor::new(level).map_err(failed)?;
                &mut slot.insert((level, compressor)).1
            }
        };
        let start = out.len();
        let bound = zstd::zstd_safe::compress_bound(self.records.len());
        // zstd writes a `Vec` from its start, so hand it the tail as a slice instead.
        out.resize(start + bound, 0);
        let tail = out.get_mut(start..).unwrap_or_default();
        let written = compressor
            .compress_to_buffer(&self.records, tail)
            .map_err(failed)?;
        out.truncate(start + written);
        Ok(())
    }
}

/// A buffer and a decompression context reused across decodes.
#[derive(Default)]
pub struct DecodeScratch {
    records: Vec<u8>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl std::fmt::Debug for DecodeScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeScratch").finish_non_exhaustive()
    }
}

impl DecodeScratch {
    /// Takes the last inflated record section out (the next inflation allocates afresh), so
    /// that records can be shared past the next batch.
    pub(crate) fn take_records(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.records)
    }

    /// Inflates `frame`, which must produce exactly `records_len` bytes. The output buffer is
    /// sized by `records_len`, which the caller has checked against [`RECORDS_BYTES_MAX`], and
    /// zstd stops with an error rather than write past it.
    pub(super) fn decompress(
        &mut self,
        frame: &[u8],
        records_len: usize,
    ) -> Result<&[u8], DecodeError> {
        debug_assert!(records_len <= RECORDS_BYTES_MAX);
        let corrupt = DecodeError::Decompression {
            records_len: records_len as u32,
        };
        let decompressor = match &mut self.decompressor {
            Some(d) => d,
            slot => slot.insert(zstd::bulk::Decompressor::new().map_err(|_| corrupt.clone())?),
        };
        self.records.clear();
        self.records.reserve_exact(records_len);
        // `decompress_to_buffer` writes only into spare capacity: it cannot grow the buffer.
        let spare = self.records.capacity();
        let written = decompressor
            .decompress_to_buffer(frame, &mut self.records)
            .map_err(|_| corrupt.clone())?;
        if written != records_len || spare < records_len {
            return Err(corrupt);
        }
        Ok(&self.records)
    }
}
