//! Round trips, rejections and the paired checks of the batch format.

use super::*;
use crate::format::codec::{Compression, DecodeScratch, EncodeScratch};
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
        .prop_map(
            |(timestamp_ms, partition_key, explicit_hash_key, data)| OwnedRecord {
                timestamp_ms,
                partition_key,
                explicit_hash_key,
                data,
            },
        )
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
