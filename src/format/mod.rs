//! Pure byte layouts: no I/O happens in this layer.
//!
//! Every structure here has an encoder and a decoder; decoders accept any byte string and
//! answer with a value or a typed error, never a panic, and never allocate by an unchecked
//! length. FORMAT.md is the normative description of each layout.

pub mod batch;
pub mod checkpoint;
pub mod codec;
pub mod envelope;
pub mod index;
pub mod kpl;
pub mod le;
pub mod segment;
pub mod varint;
