//! LEB128 unsigned varints and zigzag signed varints.
//!
//! A varint stores 7 bits per byte, least significant group first; the high bit of a byte says
//! another byte follows. A `u64` takes at most [`VARINT_LEN_MAX`] bytes. Decoding rejects
//! encodings longer than that, encodings whose tenth byte carries bits past bit 63, and
//! encodings padded with zero groups, so every value has exactly one accepted encoding and
//! decoding never overflows.

/// The longest encoding of a `u64`: ceil(64 / 7) bytes.
pub const VARINT_LEN_MAX: usize = 10;

/// Why a varint could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The input ended inside the varint.
    Truncated,
    /// The varint runs past ten bytes or past 64 bits.
    Overlong,
    /// The varint has padding groups (a longer encoding than the value needs).
    NonCanonical,
}

/// Appends `value` to `out` as an unsigned LEB128 varint.
pub fn put_u64(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The number of bytes [`put_u64`] writes for `value`.
pub fn len_u64(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Decodes an unsigned varint from the front of `input`, returning it and the bytes used.
pub fn get_u64(input: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (i, byte) in input.iter().take(VARINT_LEN_MAX).enumerate() {
        let group = u64::from(byte & 0x7f);
        // The tenth byte may only carry bit 63.
        if i == VARINT_LEN_MAX - 1 && group > 1 {
            return Err(VarintError::Overlong);
        }
        value |= group << (7 * i);
        if byte & 0x80 == 0 {
            // A zero final group after the first byte is padding: reject it, so that every
            // value has exactly one accepted encoding and decode-then-encode is the identity.
            if *byte == 0 && i > 0 {
                return Err(VarintError::NonCanonical);
            }
            return Ok((value, i + 1));
        }
    }
    if input.len() >= VARINT_LEN_MAX {
        Err(VarintError::Overlong)
    } else {
        Err(VarintError::Truncated)
    }
}

/// Maps a signed value to an unsigned one so that small magnitudes encode in few bytes.
pub fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn u64_round_trips(value: u64, tail: Vec<u8>) {
            let mut buf = Vec::new();
            put_u64(&mut buf, value);
            prop_assert_eq!(buf.len(), len_u64(value));
            buf.extend_from_slice(&tail);
            let (decoded, used) = get_u64(&buf).expect("valid varint");
            prop_assert_eq!(decoded, value);
            prop_assert_eq!(used, len_u64(value));
        }

        #[test]
        fn zigzag_round_trips(value: i64) {
            prop_assert_eq!(unzigzag(zigzag(value)), value);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes: Vec<u8>) {
            if let Ok((_, used)) = get_u64(&bytes) {
                prop_assert!(used <= VARINT_LEN_MAX && used <= bytes.len());
            }
        }
    }

    #[test]
    fn small_magnitudes_are_short() {
        assert_eq!(len_u64(0), 1);
        assert_eq!(len_u64(127), 1);
        assert_eq!(len_u64(128), 2);
        assert_eq!(len_u64(u64::MAX), 10);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        assert_eq!(get_u64(&[]), Err(VarintError::Truncated));
        assert_eq!(get_u64(&[0x80, 0x80]), Err(VarintError::Truncated));
        assert_eq!(get_u64(&[0xff; 11]), Err(VarintError::Overlong));
        // Ten bytes whose last group carries bit 64.
        let mut overflow = vec![0xff; 9];
        overflow.push(0x02);
        assert_eq!(get_u64(&overflow), Err(VarintError::Overlong));
        assert_eq!(get_u64(&[0x80, 0x00]), Err(VarintError::NonCanonical));
        assert_eq!(get_u64(&[0x81, 0x80, 0x00]), Err(VarintError::NonCanonical));
    }
}
