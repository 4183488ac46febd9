//! On-failure destinations: another stream of the store, or a JSON-lines file appended and
//! synced. Without one, discarded records are counted as dropped.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, Result};
use crate::stream::{PutRecordsEntry, Stream};

/// Where discarded batches are reported.
#[derive(Debug, Clone)]
pub enum Destination {
    /// None configured: discarded records are counted as dropped.
    None,
    /// A stream: each failure record is put with the failed shard's id as partition key.
    Stream(Arc<Stream>),
    /// A file of JSON lines, appended and fsynced per record.
    File(PathBuf, Arc<Mutex<()>>),
}

impl Destination {
    /// A JSON-lines file destination.
    pub fn file(path: impl Into<PathBuf>) -> Destination {
        Destination::File(path.into(), Arc::new(Mutex::new(())))
    }

    /// Whether a destination is configured.
    pub fn is_some(&self) -> bool {
        !matches!(self, Destination::None)
    }

    /// Delivers one failure record durably.
    pub fn deliver(&self, shard_id: &str, record: &str) -> Result<()> {
        match self {
            Destination::None => Ok(()),
            Destination::Stream(stream) => {
                let entry = PutRecordsEntry {
                    data: record.as_bytes().to_vec(),
                    partition_key: shard_id.to_string(),
                    explicit_hash_key: None,
                };
                stream.put_record(entry, None).map(|_| ())
            }
            Destination::File(path, lock) => {
                let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| Error::io(path, "open destination", e))?;
                file.write_all(format!("{record}\n").as_bytes())
                    .and_then(|()| file.sync_data())
                    .map_err(|e| Error::io(path, "append destination", e))
            }
        }
    }
}
