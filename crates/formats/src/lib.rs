//! Output formats of delivered objects.
//!
//! - [`compress`] / [`decompress`]: the compression codecs of raw (concatenated) delivery, each
//!   producing exactly what the standard tools read (`gunzip`, `unzip`, python-snappy's framed
//!   stream reader, Hadoop's `SnappyCodec`).
//! - [`convert`]: Firehose's record format conversion, JSON records -> one Parquet (or ORC)
//!   file with exactly the Glue table's schema, per-record failures reported with Firehose's
//!   error codes; plus schema inference and evolution for tables Lakehose creates itself.

mod compression;
pub mod convert;

pub use compression::{Codec, CompressError, compress, decompress};
