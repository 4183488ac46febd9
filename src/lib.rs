//! shardlog: an embeddable, persistent log engine.
//!
//! The layers (see DESIGN.md): [`format`](mod@format) holds the byte layouts, with no I/O; [`storage`]
//! holds one shard's log on disk: segments, sparse indexes, recovery, retention, durability and
//! checkpoints, all through one I/O seam ([`storage::Vfs`]) that tests replace with a simulated
//! disk.
//!
//! ```
//! use shardlog::storage::{Log, LogOptions, Durability, ReadLimits};
//! use shardlog::format::batch::RecordIn;
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), LogOptions { durability: Durability::Always, ..LogOptions::default() })?;
//! let appended = log.append(&[RecordIn {
//!     timestamp_ms: 1_700_000_000_000,
//!     partition_key: b"user-1",
//!     explicit_hash_key: None,
//!     data: b"hello",
//! }])?;
//! let records = log.read(appended.first_sequence, ReadLimits::default())?;
//! assert_eq!(records[0].data, b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod consumer;
pub mod error;
pub mod format;
pub mod producer;
pub mod storage;
pub mod stream;
pub mod testing;

pub use error::{Error, Result};

/// The README's Rust example, compiled and run by `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
