//! A producer's batch built in buffers it reuses: the records' bytes in one buffer and their
//! partition keys in another, lent to `put_records_ref` without a copy or an allocation per
//! record, as a producer that cares about its CPU would build its batches.

use std::ops::Range;

use shardlog::stream::PutRecordsEntryRef;

use super::Workload;

/// Records of one `put_records` call: data and keys end to end, with where each one ends.
#[derive(Debug, Default)]
pub(super) struct BatchArena {
    data: Vec<u8>,
    keys: String,
    /// Each record's end in `data` and its key's end in `keys`.
    ends: Vec<(usize, usize)>,
}

impl BatchArena {
    /// An arena holding `records` of `work`.
    pub(super) fn of(work: &Workload, records: Range<usize>) -> BatchArena {
        let mut arena = BatchArena::default();
        arena.fill(work, records);
        arena
    }

    /// Replaces what the arena holds by `records` of `work`, keeping its buffers.
    pub(super) fn fill(&mut self, work: &Workload, records: Range<usize>) {
        self.data.clear();
        self.keys.clear();
        self.ends.clear();
        for i in records {
            work.record_into(i, &mut self.data);
            work.key_into(i, &mut self.keys);
            self.ends.push((self.data.len(), self.keys.len()));
        }
    }

    /// The entries to put, in record order.
    pub(super) fn entries(&self) -> Vec<PutRecordsEntryRef<'_>> {
        let mut starts = (0, 0);
        self.ends
            .iter()
            .map(|&(data_end, key_end)| {
                let entry = PutRecordsEntryRef {
                    data: self.data.get(starts.0..data_end).unwrap_or_default(),
                    partition_key: self.keys.get(starts.1..key_end).unwrap_or_default(),
                    explicit_hash_key: None,
                };
                starts = (data_end, key_end);
                entry
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arena_lends_the_records_and_keys_the_workload_makes() {
        let work = Workload::new(300, 64, super::super::Payload::Events);
        let mut arena = BatchArena::of(&work, 10..40);
        assert!(arena
            .entries()
            .iter()
            .any(|e| e.partition_key.starts_with("poison")));
        // Refilled with fewer, shorter-keyed records: nothing of the first batch remains.
        arena.fill(&work, 3..7);
        let entries = arena.entries();
        assert_eq!(entries.len(), 4);
        for (entry, i) in entries.iter().zip(3..7) {
            assert_eq!(entry.data, work.record(i).as_slice());
            assert_eq!(entry.partition_key, work.key(i));
            assert_eq!(entry.explicit_hash_key, None);
        }
    }
}
