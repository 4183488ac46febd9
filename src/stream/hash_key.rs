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
///
/// Keys of up to [`HASH_CACHE_KEY_BYTES_MAX`] bytes are remembered in a small per-thread
/// cache, since producers repeat keys (users, devices, orders) and MD5 was a tenth of a
/// put's CPU; the result is the same with or without it.
pub fn partition_key_hash(partition_key: &str) -> u128 {
    let key = partition_key.as_bytes();
    if key.len() > HASH_CACHE_KEY_BYTES_MAX {
        return md5_hash(key);
    }
    // Without the cache (a thread being torn down, or a borrow that cannot happen since
    // hashing calls nothing back) the hash is computed directly.
    HASH_CACHE
        .try_with(|cache| {
            cache
                .try_borrow_mut()
                .map_or_else(|_| md5_hash(key), |mut cache| cache.hash(key))
        })
        .unwrap_or_else(|_| md5_hash(key))
}

fn md5_hash(key: &[u8]) -> u128 {
    let digest: [u8; 16] = Md5::digest(key).into();
    u128::from_be_bytes(digest)
}

/// How many partition keys each thread remembers the hash of: a bound of
/// `HASH_CACHE_SLOTS` x 64 bytes (256 KiB) per thread that puts. The slots form sets of
/// [`HASH_CACHE_WAYS`]: a working set of 1,000 keys misses on 1% of its lookups, one of
/// 2,000 on 11% (when each key had a single slot, 1,000 keys missed on a fifth).
pub const HASH_CACHE_SLOTS: usize = 4096;

/// Slots a key may occupy: the set its cheap hash picks holds this many keys at once.
pub const HASH_CACHE_WAYS: usize = 4;

const HASH_CACHE_SETS: usize = HASH_CACHE_SLOTS / HASH_CACHE_WAYS;

/// The longest partition key, in bytes, that the hash cache holds (a UUID's 36 fit); longer
/// keys are hashed every time.
pub const HASH_CACHE_KEY_BYTES_MAX: usize = 40;

thread_local! {
    static HASH_CACHE: std::cell::RefCell<HashCache> = std::cell::RefCell::new(HashCache::default());
}

/// One remembered key and its hash (big-endian bytes, so the slot packs into one cache
/// line). `len` is `EMPTY_SLOT` until the slot is filled.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct CachedHash {
    key: [u8; HASH_CACHE_KEY_BYTES_MAX],
    hash: [u8; 16],
    len: u8,
}

// One slot, one cache line: the bound in HASH_CACHE_SLOTS' doc counts on it.
const _: () = assert!(std::mem::size_of::<CachedHash>() == 64);
const _: () = assert!(HASH_CACHE_SLOTS % HASH_CACHE_WAYS == 0);

const EMPTY_SLOT: u8 = u8::MAX;

/// A set-associative cache: a cheap hash of a key picks its set of [`HASH_CACHE_WAYS`]
/// adjacent slots; a new key takes an empty slot of the set, or evicts the set's slots in
/// turn. Allocated on a thread's first put.
#[derive(Default)]
struct HashCache {
    slots: Vec<CachedHash>,
    /// Per set, the slot the next eviction takes.
    next_eviction: Vec<u8>,
    /// Lookups that computed MD5.
    misses: u64,
}

impl HashCache {
    fn hash(&mut self, key: &[u8]) -> u128 {
        if self.slots.is_empty() {
            let empty = CachedHash {
                key: [0; HASH_CACHE_KEY_BYTES_MAX],
                hash: [0; 16],
                len: EMPTY_SLOT,
            };
            self.slots = vec![empty; HASH_CACHE_SLOTS];
            self.next_eviction = vec![0; HASH_CACHE_SETS];
        }
        // xxh3 (the index digest's hash) takes a few nanoseconds on a short key, MD5 about a
        // hundred.
        let set = xxhash_rust::xxh3::xxh3_64(key) as usize % HASH_CACHE_SETS;
        let first = set * HASH_CACHE_WAYS;
        let Some(ways) = self.slots.get_mut(first..first + HASH_CACHE_WAYS) else {
            return md5_hash(key);
        };
        let holds = |slot: &CachedHash| {
            usize::from(slot.len) == key.len() && slot.key.get(..key.len()) == Some(key)
        };
        if let Some(slot) = ways.iter().find(|slot| holds(slot)) {
            return u128::from_be_bytes(slot.hash);
        }
        self.misses += 1;
        let hash = md5_hash(key);
        let way = match ways.iter().position(|slot| slot.len == EMPTY_SLOT) {
            Some(empty) => empty,
            None => match self.next_eviction.get_mut(set) {
                Some(turn) => {
                    let way = usize::from(*turn) % HASH_CACHE_WAYS;
                    *turn = turn.wrapping_add(1);
                    way
                }
                None => 0,
            },
        };
        if let Some(slot) = ways.get_mut(way) {
            if let Some(stored) = slot.key.get_mut(..key.len()) {
                stored.copy_from_slice(key);
                // `key.len()` is at most HASH_CACHE_KEY_BYTES_MAX (40), below EMPTY_SLOT.
                slot.len = key.len() as u8;
                slot.hash = hash.to_be_bytes();
            }
        }
        hash
    }
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

    /// The cache returns MD5 exactly: for keys that share a slot and evict one another,
    /// for keys at and past the cached length, for the empty key and for repeats.
    #[test]
    fn cached_hashes_equal_md5() {
        let mut keys: Vec<String> = (0..5 * HASH_CACHE_SLOTS)
            .map(|i| format!("user-{i}"))
            .collect();
        keys.push(String::new());
        keys.push("k".repeat(HASH_CACHE_KEY_BYTES_MAX));
        keys.push("k".repeat(HASH_CACHE_KEY_BYTES_MAX + 1));
        keys.push("é".repeat(20));
        keys.push("é".repeat(21));
        for round in 0..3 {
            for key in keys.iter().rev().chain(&keys) {
                assert_eq!(
                    partition_key_hash(key),
                    md5_hash(key.as_bytes()),
                    "{key} round {round}"
                );
            }
        }
    }

    /// The bound's promise: once seen, a working set of 1,000 keys (the bench's) misses on at
    /// most 1% of its lookups, one of 2,000 on at most 15%.
    #[test]
    fn a_working_set_within_the_cache_mostly_hits() {
        for (keys, misses_max_percent) in [(1000usize, 1u64), (2000, 15)] {
            let mut cache = HashCache::default();
            let names: Vec<String> = (0..keys).map(|i| format!("user-{i}")).collect();
            for name in &names {
                cache.hash(name.as_bytes());
            }
            cache.misses = 0;
            let rounds = 5;
            for _ in 0..rounds {
                for name in &names {
                    assert_eq!(cache.hash(name.as_bytes()), md5_hash(name.as_bytes()));
                }
            }
            let lookups = (rounds * keys) as u64;
            assert!(
                cache.misses * 100 <= lookups * misses_max_percent,
                "{keys} keys: {} misses of {lookups} lookups",
                cache.misses
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn any_key_hashes_as_md5(keys in proptest::collection::vec(".{0,60}", 1..50)) {
            for key in keys.iter().chain(&keys) {
                proptest::prop_assert_eq!(partition_key_hash(key), md5_hash(key.as_bytes()));
            }
        }
    }

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
