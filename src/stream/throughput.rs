//! Optional per-shard throughput limits, as provisioned Kinesis shards enforce them, for
//! testing how an application behaves when it is throttled. Usage is counted in fixed
//! one-second windows per shard.

use std::collections::BTreeMap;

/// Per-shard limits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThroughputLimits {
    /// Records written per second per shard.
    pub write_records_per_sec: u64,
    /// Bytes (data plus partition keys) written per second per shard.
    pub write_bytes_per_sec: u64,
    /// `get_records` calls per second per shard.
    pub reads_per_sec: u64,
    /// Bytes returned by `get_records` per second per shard.
    pub read_bytes_per_sec: u64,
}

impl ThroughputLimits {
    /// A provisioned Kinesis shard: 1,000 records and 1 MiB written, 5 reads and 2 MiB read,
    /// per second.
    pub const KINESIS: ThroughputLimits = ThroughputLimits {
        write_records_per_sec: 1_000,
        write_bytes_per_sec: 1024 * 1024,
        reads_per_sec: 5,
        read_bytes_per_sec: 2 * 1024 * 1024,
    };
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    window_second: i64,
    write_records: u64,
    write_bytes: u64,
    reads: u64,
    read_bytes: u64,
}

/// Usage counters of every shard.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    usage: BTreeMap<u32, Usage>,
}

impl Meter {
    fn window(&mut self, shard: u32, now_ms: i64) -> &mut Usage {
        let second = now_ms.div_euclid(1000);
        let usage = self.usage.entry(shard).or_default();
        if usage.window_second != second {
            *usage = Usage {
                window_second: second,
                ..Usage::default()
            };
        }
        usage
    }

    /// Counts one record of `bytes` written, or returns `false` (and counts nothing) if it
    /// would pass a write limit.
    pub(crate) fn admit_write(
        &mut self,
        limits: &ThroughputLimits,
        shard: u32,
        now_ms: i64,
        bytes: u64,
    ) -> bool {
        let usage = self.window(shard, now_ms);
        if usage.write_records + 1 > limits.write_records_per_sec
            || usage.write_bytes + bytes > limits.write_bytes_per_sec
        {
            return false;
        }
        usage.write_records += 1;
        usage.write_bytes += bytes;
        true
    }

    /// Counts one read call, or returns `false` if the shard's read limits are used up.
    pub(crate) fn admit_read(
        &mut self,
        limits: &ThroughputLimits,
        shard: u32,
        now_ms: i64,
    ) -> bool {
        let usage = self.window(shard, now_ms);
        if usage.reads >= limits.reads_per_sec || usage.read_bytes >= limits.read_bytes_per_sec {
            return false;
        }
        usage.reads += 1;
        true
    }

    /// Counts the bytes a read returned.
    pub(crate) fn record_read_bytes(&mut self, shard: u32, now_ms: i64, bytes: u64) {
        self.window(shard, now_ms).read_bytes += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_reset_each_second() {
        let limits = ThroughputLimits {
            write_records_per_sec: 2,
            write_bytes_per_sec: 100,
            reads_per_sec: 1,
            read_bytes_per_sec: 10,
        };
        let mut meter = Meter::default();
        assert!(meter.admit_write(&limits, 0, 1000, 10));
        assert!(meter.admit_write(&limits, 0, 1500, 10));
        assert!(
            !meter.admit_write(&limits, 0, 1999, 10),
            "third record in a second"
        );
        assert!(
            meter.admit_write(&limits, 1, 1999, 10),
            "other shards have their own budget"
        );
        assert!(meter.admit_write(&limits, 0, 2000, 90));
        assert!(!meter.admit_write(&limits, 0, 2001, 11), "bytes");
        assert!(meter.admit_read(&limits, 0, 3000));
        assert!(!meter.admit_read(&limits, 0, 3001));
        assert!(meter.admit_read(&limits, 0, 4000));
        meter.record_read_bytes(0, 4000, 10);
    }
}
