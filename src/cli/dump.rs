//! `shardlog dump PATH`: a segment, index or checkpoint file, field by field and batch by
//! batch. Exits 1 if the file holds invalid bytes (after printing everything valid before them).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use shardlog::format::batch::{decode_batch, BatchView};
use shardlog::format::checkpoint::{Checkpoint, CHECKPOINT_MAGIC};
use shardlog::format::codec::{CodecId, DecodeScratch};
use shardlog::format::index::{
    decode_index_entries, INDEX_ENTRY_LEN, INDEX_HEADER_LEN, INDEX_MAGIC,
};
use shardlog::format::segment::{
    SegmentFooter, SegmentHeader, FOOTER_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
};

/// Arguments of `shardlog dump`.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// The file: a `.seg` segment, an `.idx` index or a `checkpoint`.
    path: PathBuf,
    /// Also print every record of every batch.
    #[arg(long)]
    records: bool,
}

/// Runs the command, printing to stdout.
pub fn run(args: &DumpArgs) -> Result<ExitCode, String> {
    let bytes = std::fs::read(&args.path)
        .map_err(|e| format!("cannot read {}: {e}", args.path.display()))?;
    let mut out = String::new();
    let sound = match bytes.get(..4) {
        Some(m) if m == SEGMENT_MAGIC => dump_segment(&bytes, args.records, &mut out),
        Some(m) if m == INDEX_MAGIC => dump_index(&bytes, &mut out),
        Some(m) if m == CHECKPOINT_MAGIC => dump_checkpoint(&bytes, &mut out),
        _ => {
            return Err(format!(
                "{} is not a shardlog segment, index or checkpoint file (unknown magic bytes)",
                args.path.display()
            ))
        }
    };
    print!("{out}");
    Ok(if sound {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn codec_name(codec: CodecId) -> &'static str {
    match codec {
        CodecId::None => "none",
        CodecId::Zstd => "zstd",
    }
}

fn dump_batch(view: &BatchView<'_>, offset: usize, records: bool, out: &mut String) {
    let h = view.header();
    let _ = writeln!(
        out,
        "batch @{offset}: length {}, sequences {}..={} ({} records), codec {}, aggregated {}, first timestamp {}, max timestamp {}",
        h.length,
        h.base_sequence,
        h.last_sequence(),
        h.record_count,
        codec_name(h.codec),
        h.aggregated,
        h.first_timestamp_ms,
        h.max_timestamp_ms
    );
    if records {
        for r in view.records() {
            let key = String::from_utf8_lossy(r.partition_key);
            let _ = write!(
                out,
                "  record {}: timestamp {}, key {key:?}, {} bytes",
                r.sequence,
                r.timestamp_ms,
                r.data.len()
            );
            if let Some(hash_key) = r.explicit_hash_key {
                let _ = write!(out, ", explicit hash key {hash_key}");
            }
            let _ = writeln!(out);
        }
    }
}

fn dump_segment(bytes: &[u8], records: bool, out: &mut String) -> bool {
    let header = match SegmentHeader::decode(bytes) {
        Ok(h) => h,
        Err(e) => {
            let _ = writeln!(out, "invalid segment header: {e}");
            return false;
        }
    };
    let _ = writeln!(
        out,
        "segment: base sequence {}, created {} ms",
        header.base_sequence, header.created_ms
    );
    let footer = bytes
        .len()
        .checked_sub(FOOTER_LEN)
        .filter(|&at| at >= SEGMENT_HEADER_LEN)
        .and_then(|at| SegmentFooter::decode(bytes.get(at..).unwrap_or_default()).ok())
        .filter(|f| f.data_end as usize == bytes.len() - FOOTER_LEN);
    let data_end = footer.map_or(bytes.len(), |f| f.data_end as usize);
    let mut offset = SEGMENT_HEADER_LEN;
    let (mut batches, mut total) = (0u64, 0u64);
    let mut scratch = DecodeScratch::default();
    while offset < data_end {
        match decode_batch(
            bytes.get(offset..data_end).unwrap_or_default(),
            &mut scratch,
        ) {
            Ok(view) => {
                dump_batch(&view, offset, records, out);
                batches += 1;
                total += u64::from(view.header().record_count);
                offset += view.header().length as usize;
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "invalid batch @{offset}: {e} ({} bytes to the end of the data)",
                    data_end - offset
                );
                return false;
            }
        }
    }
    match footer {
        Some(f) => {
            let _ = writeln!(
                out,
                "footer @{}: sealed, next sequence {}, max timestamp {}, index {} bytes, index xxh3 {:#018x}",
                f.data_end, f.next_sequence, f.max_timestamp_ms, f.index_len, f.index_digest
            );
        }
        None => {
            let _ = writeln!(out, "no footer: the active segment");
        }
    }
    let _ = writeln!(
        out,
        "{batches} batches, {total} records, {} bytes of batches",
        data_end - SEGMENT_HEADER_LEN
    );
    true
}

fn dump_index(bytes: &[u8], out: &mut String) -> bool {
    let base = match shardlog::format::index::decode_index_header(bytes) {
        Ok(base) => base,
        Err(e) => {
            let _ = writeln!(out, "invalid index header: {e}");
            return false;
        }
    };
    let (entries, whole) = decode_index_entries(bytes, base);
    let _ = writeln!(
        out,
        "index: base sequence {base}, {} entries",
        entries.len()
    );
    for (ordinal, e) in entries.iter().enumerate() {
        let before = if e.max_timestamp_before_ms == i64::MIN {
            "none".to_string()
        } else {
            e.max_timestamp_before_ms.to_string()
        };
        let _ = writeln!(
            out,
            "entry {ordinal}: sequence {} at byte {}, max timestamp before {before}",
            e.sequence, e.position
        );
    }
    if !whole {
        let at = INDEX_HEADER_LEN + entries.len() * INDEX_ENTRY_LEN;
        let _ = writeln!(out, "invalid entry @{at}: checksum, order or length wrong; the index will be rebuilt from its segment");
    }
    whole
}

fn dump_checkpoint(bytes: &[u8], out: &mut String) -> bool {
    match Checkpoint::decode(bytes) {
        Ok(cp) => {
            let _ = writeln!(
                out,
                "checkpoint: clean shutdown {}, active segment {}, recovery position {}, next sequence {}, max timestamp {}, index digest {:#018x}",
                cp.clean, cp.active_base, cp.recovery_position, cp.next_sequence, cp.max_timestamp_ms, cp.index_digest
            );
            true
        }
        Err(e) => {
            let _ = writeln!(out, "invalid checkpoint: {e}");
            false
        }
    }
}
