//! The bench's record payloads: seeded, varied JSON, never repeated and never zero bytes,
//! made from a record's index so no run holds its records in memory.
//!
//! Building an event field by field takes about 2 µs, as long as a naive append of it
//! takes several times over: a producer that built each record would measure the builder.
//! So [`PayloadPool`] builds 4,096 distinct events once, and a record is a copy of one of
//! them with its own id and (for events) its own random UUID written in: about 0.1 µs.
//! Put batches hold at most 500 records, so no batch holds two copies of one event, and
//! the bytes on disk compress as the events themselves do.

use shardlog::storage::SimRng;

/// What a record's JSON looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Payload {
    /// A shop's clickstream event: random ids (a UUID, a session), timestamps, a user with
    /// country, device and browser, the page, cart items with SKUs, quantities and prices,
    /// and a note of words filling the record to its size.
    Events,
    /// A short event header, then words drawn uniformly from 16, with a random number every
    /// ~20 words, filling the record: free text with few repeats, the harder case for LZ
    /// compression (earlier runs of this bench used it).
    Words,
}

/// Distinct events a pool builds.
pub const POOL_EVENTS: usize = 4096;
/// Where the id's 16 hex digits sit: `{"id":"` is 7 bytes.
const ID_AT: std::ops::Range<usize> = 7..23;
/// Where an event's UUID sits, after `","event_id":"`.
const UUID_AT: usize = 37;

/// Events built once, from which each record is copied with its own id.
#[derive(Debug)]
pub struct PayloadPool {
    kind: Payload,
    size: usize,
    events: Vec<Vec<u8>>,
}

impl PayloadPool {
    /// Builds [`POOL_EVENTS`] events of `size` bytes.
    pub fn new(kind: Payload, size: usize) -> PayloadPool {
        let events = (0..POOL_EVENTS)
            .map(|k| generate(kind, &mut SimRng::new(0x5eed ^ k as u64), k, size))
            .collect();
        PayloadPool { kind, size, events }
    }

    /// Record `i`: the pool's event `i mod POOL_EVENTS` with `i` as its id and, for
    /// clickstream events, a UUID of its own.
    pub fn record(&self, i: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size);
        self.record_into(i, &mut out);
        out
    }

    /// Appends [`PayloadPool::record`]`(i)` to `buffer`, for producers that reuse their
    /// buffers.
    pub fn record_into(&self, i: usize, buffer: &mut Vec<u8>) {
        let start = buffer.len();
        buffer.extend_from_slice(self.events.get(i % POOL_EVENTS).map_or(&[], |e| e));
        let Some(out) = buffer.get_mut(start..) else {
            return;
        };
        let mut hex = [0u8; 16];
        write_hex(&mut hex, i as u64);
        overwrite(out, ID_AT.start, &hex);
        if self.kind == Payload::Events && self.size >= EVENT_BYTES_MIN {
            let mut rng = SimRng::new(0x5eed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (mut high, mut low) = ([0u8; 16], [0u8; 16]);
            write_hex(&mut high, rng.next_u64());
            write_hex(&mut low, rng.next_u64());
            // 8-4-4-4-12, keeping the version and variant digits the template holds.
            overwrite(out, UUID_AT, high.get(..8).unwrap_or_default());
            overwrite(out, UUID_AT + 9, high.get(8..12).unwrap_or_default());
            overwrite(out, UUID_AT + 15, high.get(12..15).unwrap_or_default());
            overwrite(out, UUID_AT + 20, low.get(..3).unwrap_or_default());
            overwrite(out, UUID_AT + 24, low.get(3..15).unwrap_or_default());
        }
    }
}

fn write_hex(out: &mut [u8; 16], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (k, slot) in out.iter_mut().enumerate() {
        let nibble = (value >> (60 - 4 * k)) & 0xf;
        *slot = DIGITS.get(nibble as usize).copied().unwrap_or(b'0');
    }
}

/// Writes `bytes` over `out` from `at`, as far as `out` reaches (records shorter than their
/// header are cut).
fn overwrite(out: &mut [u8], at: usize, bytes: &[u8]) {
    for (slot, byte) in out.iter_mut().skip(at).zip(bytes) {
        *slot = *byte;
    }
}

/// Records shorter than this cannot hold an event's fields: they get the `Words` shape.
pub const EVENT_BYTES_MIN: usize = 768;

/// The JSON of record `i`, exactly `size` bytes when `size` holds its fixed fields (about
/// 100 bytes; shorter records are cut).
pub fn generate(payload: Payload, rng: &mut SimRng, i: usize, size: usize) -> Vec<u8> {
    let mut text = match payload {
        Payload::Events if size >= EVENT_BYTES_MIN => clickstream_event(rng, i, size),
        Payload::Events | Payload::Words => words_header(rng, i),
    };
    fill_with_words(&mut text, rng, size);
    text.into_bytes()
}

const WORDS: [&str; 16] = [
    "click", "view", "purchase", "scroll", "search", "login", "logout", "cart", "checkout",
    "refund", "share", "like", "comment", "follow", "play", "pause",
];
const COUNTRIES: [&str; 12] = [
    "DE", "US", "FR", "GB", "NL", "ES", "IT", "PL", "SE", "BR", "JP", "IN",
];
const DEVICES: [&str; 3] = ["mobile", "desktop", "tablet"];
const AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:119.0) Gecko/20100101 Firefox/119.0",
];
const SECTIONS: [&str; 8] = [
    "garden", "kitchen", "outdoor", "books", "toys", "office", "sports", "audio",
];
const ADJECTIVES: [&str; 16] = [
    "red", "large", "compact", "wooden", "steel", "classic", "smart", "soft", "blue", "light",
    "heavy", "mini", "pro", "organic", "quiet", "folding",
];
const NOUNS: [&str; 16] = [
    "chair",
    "lamp",
    "kettle",
    "tent",
    "novel",
    "puzzle",
    "desk",
    "ball",
    "speaker",
    "pan",
    "backpack",
    "bottle",
    "blanket",
    "drone",
    "shelf",
    "headphones",
];
const REFERRERS: [&str; 6] = [
    "https://www.google.com/",
    "https://www.bing.com/",
    "https://news.example.org/deals",
    "https://mail.example.com/",
    "direct",
    "https://social.example.net/feed",
];

fn pick<'a>(rng: &mut SimRng, from: &[&'a str]) -> &'a str {
    from.get(rng.below(from.len() as u64) as usize)
        .copied()
        .unwrap_or_default()
}

fn hex(rng: &mut SimRng, digits: usize) -> String {
    let mut out = String::with_capacity(digits);
    while out.len() < digits {
        out.push_str(&format!("{:016x}", rng.next_u64()));
    }
    out.truncate(digits);
    out
}

/// UTC date-time with milliseconds for ms since the epoch (days to civil date, Howard
/// Hinnant's algorithm).
fn iso_time(ms: u64) -> String {
    let (days, day_ms) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

/// Every field of the event except the note, which [`fill_with_words`] completes; cart items
/// are added while they leave room for a note.
fn clickstream_event(rng: &mut SimRng, i: usize, size: usize) -> String {
    let ts = 1_700_000_000_000u64 + rng.below(86_400_000);
    let id = hex(rng, 32);
    let mut text = format!(
        "{{\"id\":\"{i:016x}\",\"event_id\":\"{}-{}-4{}-{:x}{}-{}\",\"ts\":{ts},\"time\":\"{}\",\"type\":\"{}\",\
         \"user\":{{\"id\":\"u{}\",\"session\":\"{}\",\"country\":\"{}\",\"device\":\"{}\",\"agent\":\"{}\"}},\
         \"page\":{{\"path\":\"/{}/{}-{}-{}\",\"referrer\":\"{}\"}},\"cart\":[",
        &id[..8],
        &id[8..12],
        &id[13..16],
        8 + rng.below(4),
        &id[17..20],
        &id[20..],
        iso_time(ts),
        pick(rng, &WORDS),
        rng.below(100_000),
        hex(rng, 16),
        pick(rng, &COUNTRIES),
        pick(rng, &DEVICES),
        pick(rng, &AGENTS),
        pick(rng, &SECTIONS),
        pick(rng, &ADJECTIVES),
        pick(rng, &NOUNS),
        rng.below(10_000),
        pick(rng, &REFERRERS),
    );
    let mut total_cents = 0u64;
    let mut first = true;
    loop {
        let cents = 99 + rng.below(20_000);
        let quantity = 1 + rng.below(4);
        let item = format!(
            "{}{{\"sku\":\"SKU-{:05}\",\"name\":\"{} {}\",\"qty\":{quantity},\"price\":{}.{:02}}}",
            if first { "" } else { "," },
            rng.below(100_000),
            pick(rng, &ADJECTIVES),
            pick(rng, &NOUNS),
            cents / 100,
            cents % 100
        );
        // Room for the item, the totals and a note of a few words.
        if text.len() + item.len() + 120 > size {
            break;
        }
        text.push_str(&item);
        total_cents += cents * quantity;
        first = false;
    }
    text.push_str(&format!(
        "],\"total\":{}.{:02},\"currency\":\"EUR\",\"note\":\"",
        total_cents / 100,
        total_cents % 100
    ));
    text
}

fn words_header(rng: &mut SimRng, i: usize) -> String {
    format!(
        "{{\"id\":\"{i:016x}\",\"ts\":{},\"user\":\"u{}\",\"kind\":\"{}\",\"amount\":{}.{:02},\"words\":\"",
        1_700_000_000_000u64 + rng.below(86_400_000),
        rng.below(100_000),
        pick(rng, &WORDS),
        rng.below(10_000),
        rng.below(100)
    )
}

/// Appends words (and now and then a number) and closes the string and the object, so the
/// text is exactly `size` bytes when it was shorter.
fn fill_with_words(text: &mut String, rng: &mut SimRng, size: usize) {
    while text.len() + 2 < size {
        text.push_str(pick(rng, &WORDS));
        text.push(' ');
        if rng.chance(20) {
            text.push_str(&rng.below(1_000_000).to_string());
            text.push(' ');
        }
    }
    text.truncate(size.saturating_sub(2));
    text.push_str("\"}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_json_of_the_exact_size_without_zero_bytes_or_repeats() {
        for (payload, size) in [
            (Payload::Events, 1024),
            (Payload::Events, EVENT_BYTES_MIN),
            (Payload::Events, 200),
            (Payload::Words, 1024),
        ] {
            let mut seen = std::collections::HashSet::new();
            for i in 0..200 {
                let mut rng = SimRng::new(i as u64);
                let bytes = generate(payload, &mut rng, i, size);
                assert_eq!(bytes.len(), size, "{payload:?}");
                assert!(!bytes.contains(&0));
                let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
                assert_eq!(value["id"], format!("{i:016x}"));
                assert!(seen.insert(bytes), "record {i} repeats");
            }
        }
    }

    #[test]
    fn pooled_records_are_distinct_json_with_their_own_id_and_uuid() {
        for (kind, size) in [
            (Payload::Events, 1024),
            (Payload::Words, 1024),
            (Payload::Events, 300),
        ] {
            let pool = PayloadPool::new(kind, size);
            let mut seen = std::collections::HashSet::new();
            let mut uuids = std::collections::HashSet::new();
            for i in (0..3 * POOL_EVENTS).step_by(7).chain([usize::MAX / 3]) {
                let bytes = pool.record(i);
                assert_eq!(bytes.len(), size);
                assert!(!bytes.contains(&0));
                assert!(seen.insert(bytes.clone()), "record {i} repeats");
                if size < EVENT_BYTES_MIN {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
                assert_eq!(value["id"], format!("{i:016x}"));
                if kind == Payload::Events {
                    let uuid = value["event_id"].as_str().expect("uuid").to_string();
                    let groups: Vec<usize> = uuid.split('-').map(str::len).collect();
                    assert_eq!(groups, [8, 4, 4, 4, 12], "{uuid}");
                    assert!(uuid.as_bytes()[14] == b'4' && b"89ab".contains(&uuid.as_bytes()[19]));
                    assert!(uuids.insert(uuid), "record {i}'s UUID repeats");
                }
            }
        }
    }

    #[test]
    fn iso_time_matches_known_dates() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
