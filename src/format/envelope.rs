//! A checksummed envelope for small JSON metadata documents (stream manifests, consumer
//! checkpoints): magic (4), version (1), reserved zero (3), JSON length (`u64`), xxh3 of the
//! JSON (`u64`), then the JSON.

use super::le;

/// Length of the envelope before the JSON.
pub const ENVELOPE_HEADER_LEN: usize = 24;

/// Why an envelope is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Damaged, truncated or not this kind of file.
    Corrupt(&'static str),
    /// Written by another version.
    UnsupportedVersion(u8),
}

/// Wraps `json` in an envelope.
pub fn encode(magic: [u8; 4], version: u8, json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + json.len());
    out.extend_from_slice(&magic);
    out.push(version);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(json).to_le_bytes());
    out.extend_from_slice(json);
    out
}

/// The JSON inside a valid envelope.
pub fn decode(bytes: &[u8], magic: [u8; 4], version: u8) -> Result<&[u8], EnvelopeError> {
    if le::array::<4>(bytes, 0) != Some(magic) {
        return Err(EnvelopeError::Corrupt("bad magic"));
    }
    match bytes.get(4) {
        Some(&v) if v == version => {}
        Some(&v) => return Err(EnvelopeError::UnsupportedVersion(v)),
        None => return Err(EnvelopeError::Corrupt("truncated")),
    }
    if bytes.get(5..8) != Some(&[0u8; 3][..]) {
        return Err(EnvelopeError::Corrupt("reserved bytes"));
    }
    let len = le::u64_at(bytes, 8).ok_or(EnvelopeError::Corrupt("truncated"))?;
    let digest = le::u64_at(bytes, 16).ok_or(EnvelopeError::Corrupt("truncated"))?;
    let json = bytes.get(ENVELOPE_HEADER_LEN..).unwrap_or_default();
    if json.len() as u64 != len {
        return Err(EnvelopeError::Corrupt("length differs from the file"));
    }
    if xxhash_rust::xxh3::xxh3_64(json) != digest {
        return Err(EnvelopeError::Corrupt("digest mismatch"));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn envelopes_round_trip_and_detect_flips(json: Vec<u8>, at: proptest::sample::Index, flip in 1u8..=255) {
            let bytes = encode(*b"TEST", 1, &json);
            prop_assert_eq!(decode(&bytes, *b"TEST", 1), Ok(&json[..]));
            let mut damaged = bytes.clone();
            let at = at.index(damaged.len());
            damaged[at] ^= flip;
            prop_assert!(decode(&damaged, *b"TEST", 1).is_err());
        }
    }
}
