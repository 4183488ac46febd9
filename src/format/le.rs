//! Fixed-width little-endian field access that never panics.
//!
//! Every on-disk integer is little-endian with an explicit width; nothing depends on the
//! pointer width of the machine that wrote it. Reads return `None` past the end of the slice.

/// Reads the `N` bytes at `offset`, or `None` if the slice is too short.
pub fn array<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    let end = offset.checked_add(N)?;
    bytes.get(offset..end)?.try_into().ok()
}

/// Reads a `u16` at `offset`.
pub fn u16_at(bytes: &[u8], offset: usize) -> Option<u16> {
    array(bytes, offset).map(u16::from_le_bytes)
}

/// Reads a `u32` at `offset`.
pub fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    array(bytes, offset).map(u32::from_le_bytes)
}

/// Reads a `u64` at `offset`.
pub fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    array(bytes, offset).map(u64::from_le_bytes)
}

/// Reads an `i64` at `offset`.
pub fn i64_at(bytes: &[u8], offset: usize) -> Option<i64> {
    array(bytes, offset).map(i64::from_le_bytes)
}

/// Overwrites the bytes at `offset` with `value`; returns `false` if they lie past the end.
pub fn put_at(bytes: &mut [u8], offset: usize, value: &[u8]) -> bool {
    let Some(end) = offset.checked_add(value.len()) else {
        return false;
    };
    match bytes.get_mut(offset..end) {
        Some(slot) => {
            slot.copy_from_slice(value);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let bytes = [1u8, 0, 0, 0, 2];
        assert_eq!(u32_at(&bytes, 0), Some(1));
        assert_eq!(u32_at(&bytes, 2), None);
        assert_eq!(u64_at(&bytes, usize::MAX), None);
        let mut buf = [0u8; 4];
        assert!(put_at(&mut buf, 0, &7u32.to_le_bytes()));
        assert!(!put_at(&mut buf, 1, &7u32.to_le_bytes()));
        assert_eq!(u32_at(&buf, 0), Some(7));
    }
}
