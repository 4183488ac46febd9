//! Durable consumer checkpoints: per mapping, the last processed sequence number of each shard
//! and whether the shard has been read to its end. Replaced atomically on every change, so a
//! crashed consumer resumes at its checkpoint: at-least-once, never at-most-once.
//!
//! File (FORMAT.md §13): the metadata envelope (magic `SLGK`, version 1) around JSON
//! `{"shards": {"shardId-...": {"sequence_number": "...", "finished": false}}}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::envelope::{self, EnvelopeError};
use crate::storage::{write_atomically, Vfs};

/// Magic bytes of a checkpoint file.
pub const CHECKPOINTS_MAGIC: [u8; 4] = *b"SLGK";
/// The checkpoint file version this build writes and reads.
pub const CHECKPOINTS_VERSION: u8 = 1;

/// One shard's checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCheckpoint {
    /// The last record processed (delivered, filtered or discarded), if any.
    pub sequence_number: Option<String>,
    /// The shard is closed and every record of it is processed.
    pub finished: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    shards: BTreeMap<String, ShardCheckpoint>,
}

/// The checkpoints of one mapping.
#[derive(Debug)]
pub struct CheckpointStore {
    path: PathBuf,
    vfs: Arc<dyn Vfs>,
    state: Mutex<File>,
}

fn numeric(seq: &str) -> u128 {
    seq.parse().unwrap_or(0)
}

impl CheckpointStore {
    /// Opens (or starts) the checkpoints kept in `path`.
    pub fn open(path: impl AsRef<Path>, vfs: Arc<dyn Vfs>) -> Result<CheckpointStore> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent() {
            vfs.create_dir_all(parent)
                .map_err(|e| Error::io(parent, "create dir", e))?;
        }
        let state = match vfs.read_file(&path, 64 * 1024 * 1024) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(Error::io(&path, "read checkpoints", e)),
            Ok(bytes) => {
                let json = envelope::decode(&bytes, CHECKPOINTS_MAGIC, CHECKPOINTS_VERSION)
                    .map_err(|e| match e {
                        EnvelopeError::UnsupportedVersion(found) => Error::UnsupportedFormat {
                            path: path.clone(),
                            found,
                            supported: CHECKPOINTS_VERSION,
                        },
                        EnvelopeError::Corrupt(reason) => {
                            Error::corrupt(&path, 0, crate::error::CorruptReason::Footer(reason))
                        }
                    })?;
                serde_json::from_slice(json).map_err(|_| {
                    Error::corrupt(
                        &path,
                        0,
                        crate::error::CorruptReason::Footer("invalid JSON"),
                    )
                })?
            }
        };
        Ok(CheckpointStore {
            path,
            vfs,
            state: Mutex::new(state),
        })
    }

    /// A shard's checkpoint, if it has one.
    pub fn get(&self, shard: &str) -> Option<ShardCheckpoint> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .shards
            .get(shard)
            .cloned()
    }

    /// Every shard's checkpoint.
    pub fn all(&self) -> BTreeMap<String, ShardCheckpoint> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .shards
            .clone()
    }

    /// Records progress durably. A checkpoint never moves backwards: a lower sequence number
    /// than the stored one is ignored.
    pub fn set(&self, shard: &str, checkpoint: ShardCheckpoint) -> Result<()> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let current = state.shards.get(shard).cloned().unwrap_or_default();
        let backwards = match (&current.sequence_number, &checkpoint.sequence_number) {
            (Some(old), Some(new)) => numeric(new) < numeric(old),
            (Some(_), None) => true,
            _ => false,
        };
        if backwards || (current.finished && !checkpoint.finished) || current == checkpoint {
            return Ok(());
        }
        state.shards.insert(shard.to_string(), checkpoint);
        let json = serde_json::to_vec(&*state).unwrap_or_default();
        let bytes = envelope::encode(CHECKPOINTS_MAGIC, CHECKPOINTS_VERSION, &json);
        write_atomically(self.vfs.as_ref(), &self.path, &bytes)
            .map_err(|e| Error::io(&self.path, "write checkpoints", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimDisk;

    #[test]
    fn checkpoints_persist_and_never_move_backwards() {
        let disk = SimDisk::new();
        let vfs: Arc<dyn Vfs> = Arc::new(disk.clone());
        let store = CheckpointStore::open("/m/checkpoints", vfs.clone()).unwrap();
        let at = |s: &str| ShardCheckpoint {
            sequence_number: Some(s.into()),
            finished: false,
        };
        store.set("shardId-000000000000", at("100")).unwrap();
        store.set("shardId-000000000000", at("99")).unwrap();
        assert_eq!(store.get("shardId-000000000000"), Some(at("100")));
        store.set("shardId-000000000000", at("1000")).unwrap();
        let reopened = CheckpointStore::open("/m/checkpoints", vfs.clone()).unwrap();
        assert_eq!(reopened.get("shardId-000000000000"), Some(at("1000")));
        disk.flip_bit(std::path::Path::new("/m/checkpoints"), 30, 1);
        assert!(matches!(
            CheckpointStore::open("/m/checkpoints", vfs),
            Err(Error::Corrupt { .. })
        ));
    }
}
