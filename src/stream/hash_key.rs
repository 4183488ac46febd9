//! The 128-bit hash-key space: routing keys to shards as Kinesis does.

use md5::{Digest, Md5};

/// The greatest hash key, 2^128 - 1.
pub const HASH_KEY_MAX: u128 = u128::MAX;

/// An inclusive range of hash keys owned by a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HashKeyRange {
    /// First hash key of the range.
    pub start: u128,
    /// Last hash key of the range (inclusive).
    pub end: u128,
}

impl HashKeyRange {
    /// The whole space.
    pub const ALL: HashKeyRange = HashKeyRange {
        start: 0,
        end: HASH_KEY_MAX,
    };

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: u128) -> bool {
        self.start <= key && key <= self.end
    }

    /// Whether `other` starts right after this range ends.
    pub fn is_followed_by(&self, other: &HashKeyRange) -> bool {
        self.end.checked_add(1) == Some(other.start)
    }
}

/// The hash key of a partition key: MD5 of its UTF-8 bytes as a big-endian `u128`.
pub fn partition_key_hash(partition_key: &str) -> u128 {
    let digest: [u8; 16] = Md5::digest(partition_key.as_bytes()).into();
    u128::from_be_bytes(digest)
}

/// Parses a decimal hash key (`0|([1-9]\d{0,38})`, at most 2^128 - 1).
pub fn parse_hash_key(text: &str) -> Option<u128> {
    let canonical = text == "0"
        || (!text.is_empty()
            && text.len() <= 39
            && !text.starts_with('0')
            && text.bytes().all(|b| b.is_ascii_digit()));
    if !canonical {
        return None;
    }
    text.parse::<u128>().ok()
}

/// Kinesis' initial equal split of the space into `count` shards: `step = floor(2^128 / n)`,
/// shard `i` = `[i*step, (i+1)*step - 1]`, the last ending at 2^128 - 1.
pub fn uniform_ranges(count: u32) -> Vec<HashKeyRange> {
    if count == 0 {
        return Vec::new();
    }
    let n = u128::from(count);
    // floor(2^128 / n) computed without overflow: floor((2^128 - 1) / n), plus one when n
    // divides 2^128 exactly (n a power of two). For n = 1 the step is 2^128 itself, which
    // u128 cannot hold; the one shard owns the whole space.
    let Some(step) = (HASH_KEY_MAX / n).checked_add(u128::from(n.is_power_of_two())) else {
        return vec![HashKeyRange {
            start: 0,
            end: HASH_KEY_MAX,
        }];
    };
    (0..n)
        .map(|i| HashKeyRange {
            start: i * step,
            end: if i + 1 == n {
                HASH_KEY_MAX
            } else {
                (i + 1) * step - 1
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_routing_matches_kinesis() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661.
        assert_eq!(
            partition_key_hash("a"),
            0x0cc1_75b9_c0f1_b6a8_31c3_99e2_6977_2661
        );
    }

    /// Bug: `uniform_ranges(1)` computed its step as `(2^128 - 1) + 1`, which overflows u128:
    /// a panic in debug builds (every one-shard stream), a silent wrap to 0 in release. Found
    /// by the `stream_model` fuzz target, whose builds keep overflow checks on.
    #[test]
    fn uniform_ranges_partition_the_space() {
        for n in [1u32, 2, 3, 4, 5, 7, 8, 100, 1000] {
            let ranges = uniform_ranges(n);
            assert_eq!(ranges.len(), n as usize);
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges.last().unwrap().end, HASH_KEY_MAX);
            for pair in ranges.windows(2) {
                assert!(pair[0].is_followed_by(&pair[1]), "{n}: {pair:?}");
            }
        }
        let two = uniform_ranges(2);
        assert_eq!(two[0].end, (1u128 << 127) - 1);
        assert_eq!(two[1].start, 1u128 << 127);
        let three = uniform_ranges(3);
        assert_eq!(
            three[1].start,
            113_427_455_640_312_821_154_458_202_477_256_070_485
        );
    }

    #[test]
    fn hash_keys_parse_canonically() {
        assert_eq!(parse_hash_key("0"), Some(0));
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211455"),
            Some(u128::MAX)
        );
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211456"),
            None
        );
        assert_eq!(parse_hash_key("01"), None);
        assert_eq!(parse_hash_key(""), None);
        assert_eq!(parse_hash_key("-1"), None);
        assert_eq!(parse_hash_key("1e5"), None);
    }
}
