//! Record format conversion: Firehose's `DataFormatConversionConfiguration`, JSON records ->
//! one Parquet (or ORC) file with exactly the Glue table's schema.
//!
//! The delivery pipeline calls [`convert`] once per buffered batch. Invariants:
//!
//! - **Exact schema.** The file has exactly the given Arrow schema (names, types, nullability,
//!   metadata, in order), whatever the records hold. Keys without a column are ignored
//!   ([`Converted::unknown_keys`] lists them, for schema evolution); columns without a key are
//!   null.
//! - **Per-record failure.** A record converts completely or not at all. A record that is not
//!   JSON fails with `DataFormatConversion.ParseError`, one whose values do not fit the schema
//!   with `DataFormatConversion.MalformedData` (Firehose's codes); it is reported in
//!   [`Converted::failed`] with its index and the rest of the batch is written. Only a problem
//!   of the batch as a whole (a schema conversion cannot produce, a writer failure) is an
//!   `Err`.
//! - **Rows in order.** Rows appear in input order; a record holding several concatenated
//!   JSON objects gives several consecutive rows.
//! - **Deterministic.** The same records, schema, configuration and thread count give the same
//!   bytes. Row groups are cut by size (`BlockSizeBytes`), not by thread.
//! - **No file without rows.** [`Converted::file`] is empty when no row was written.
//!
//! Semantics follow Hive's JSON SerDes as Firehose runs them (see [`InputSerde`]):
//! keys match columns case-insensitively by default, `ColumnToJsonKeyMappings` and
//! `ConvertDotsInJsonKeysToUnderscores` rename keys, JSON null and missing keys are null,
//! numbers fill int/bigint/float/double/decimal columns (decimals exactly, from the number's
//! text, rounded half-up to the column's scale), strings fill timestamp (see [`InputSerde`])
//! and date (`yyyy-MM-dd`) columns, objects fill struct and map columns and arrays list
//! columns.
//! Timestamps are stored in the column's unit, in UTC.
//!
//! Speed: one pass per record, straight from the bytes into column builders (no intermediate
//! tree, no re-serialisation), then Arrow's Parquet column writers, chunk by chunk so memory
//! stays bounded. With two or more threads each chunk is split in contiguous parts decoded in
//! parallel, then the columns are encoded in parallel (see [`Converter`]).

mod config;
mod decode;
mod json;
mod schema;
mod time;

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, ArrowWriterOptions,
    compute_leaves,
};
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;

pub use config::{
    ConversionConfig, InputSerde, OrcCompression, OrcOptions, OutputFormat, ParquetCompression,
    ParquetOptions, ParquetWriterVersion,
};
pub use decode::{MALFORMED_DATA, PARSE_ERROR};

use decode::RecordDecoder;

/// A conversion that could not run at all (records that fail are [`FailedRecord`]s instead).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The `DataFormatConversionConfiguration` is invalid (an `InvalidArgumentException`).
    #[error("{0}")]
    InvalidConfig(String),
    /// The table's schema has a type the output cannot hold.
    #[error("unsupported schema: {0}")]
    UnsupportedSchema(String),
    /// Schema inference found no JSON object.
    #[error("{0}")]
    NoRecords(String),
    /// The Parquet/ORC writer failed (an internal error).
    #[error("conversion failed: {0}")]
    Internal(String),
}

impl ConvertError {
    /// The Firehose-like error code for records of a batch that failed as a whole.
    pub fn error_code(&self) -> &'static str {
        match self {
            ConvertError::InvalidConfig(_) | ConvertError::UnsupportedSchema(_) => {
                "DataFormatConversion.InvalidSchema"
            }
            ConvertError::NoRecords(_) => MALFORMED_DATA,
            ConvertError::Internal(_) => "DataFormatConversion.ConversionFailureException",
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ConvertError {
    ConvertError::Internal(e.to_string())
}

/// The result of converting one batch.
#[derive(Debug, Default)]
pub struct Converted {
    /// The Parquet/ORC file; empty when no row was written.
    pub file: Vec<u8>,
    /// Rows written (a record of several concatenated objects gives several rows).
    pub rows: usize,
    /// Records that were not converted, in input order.
    pub failed: Vec<FailedRecord>,
    /// Top-level JSON keys (as matched: lower-cased when case-insensitive) that fill no
    /// column, sorted, at most 1,000 per thread. Non-empty means the table may need new
    /// columns ([`infer_schema`] + [`merge_schema`]).
    pub unknown_keys: Vec<String>,
}

/// One record that could not be converted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedRecord {
    /// The record's index in the batch.
    pub index: usize,
    /// [`PARSE_ERROR`] (not JSON) or [`MALFORMED_DATA`] (does not fit the schema).
    pub error_code: String,
    /// What went wrong, Hive/Jackson style, with the column when known.
    pub error_message: String,
}

/// How to run a conversion.
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Threads to use; 0 = automatic (the machine's cores, only for batches of 16 MiB or
    /// more, at least 8 MiB per thread).
    pub threads: usize,
}

const AUTO_MIN_BYTES_PER_THREAD: usize = 8 << 20;
/// Each thread decodes about this much JSON at a time before the rows go to the writers.
const CHUNK_BYTES_PER_THREAD: usize = 4 << 20;

/// Converts a batch of JSON records (see the module docs) with automatic threading.
pub fn convert(
    records: &[&[u8]],
    schema: &SchemaRef,
    config: &ConversionConfig,
) -> Result<Converted, ConvertError> {
    convert_with(records, schema, config, &ConvertOptions::default())
}

/// [`convert`] with explicit options.
pub fn convert_with(
    records: &[&[u8]],
    schema: &SchemaRef,
    config: &ConversionConfig,
    options: &ConvertOptions,
) -> Result<Converted, ConvertError> {
    let threads = match options.threads {
        0 => {
            let total: usize = records.iter().map(|r| r.len()).sum();
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cores.min(total / AUTO_MIN_BYTES_PER_THREAD).max(1)
        }
        n => n,
    };
    let mut converter = Converter::new(schema, config, &ConvertOptions { threads })?;
    converter.push(records)?;
    converter.finish()
}

/// Decodes JSON records into Arrow rows of `schema` with `config`'s input SerDe, without
/// writing a file: what a query sees of records that are not delivered yet. Rows and failures
/// are exactly those [`convert`] would give for the same records.
pub fn decode(
    records: &[&[u8]],
    schema: &SchemaRef,
    config: &ConversionConfig,
) -> Result<(Vec<RecordBatch>, Vec<FailedRecord>), ConvertError> {
    let decoded = decode_counted(records, schema, config)?;
    Ok((decoded.batches, decoded.failed))
}

/// What [`decode_counted`] returns.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The rows, in input order.
    pub batches: Vec<RecordBatch>,
    /// Records that gave no row because they failed, in input order.
    pub failed: Vec<FailedRecord>,
    /// For each input record, the rows it gave (0 when it failed, more than 1 for concatenated
    /// objects): record `i`'s rows follow those of records `0..i`.
    pub rows_per_record: Vec<u32>,
}

/// [`decode`], also saying which rows came from which record (a streaming query needs each
/// row's arrival time).
pub fn decode_counted(
    records: &[&[u8]],
    schema: &SchemaRef,
    config: &ConversionConfig,
) -> Result<Decoded, ConvertError> {
    const ROWS_PER_BATCH: usize = 8192;
    let mut decoder = RecordDecoder::new(schema, config, ROWS_PER_BATCH)?;
    let mut out = Decoded {
        rows_per_record: Vec::with_capacity(records.len()),
        ..Decoded::default()
    };
    for (i, r) in records.iter().enumerate() {
        let before = decoder.rows();
        decoder.decode(r, i);
        out.rows_per_record.push((decoder.rows() - before) as u32);
        if decoder.rows() >= ROWS_PER_BATCH {
            out.batches.push(decoder.finish()?);
        }
    }
    if decoder.rows() > 0 {
        out.batches.push(decoder.finish()?);
    }
    out.failed = std::mem::take(&mut decoder.failed);
    Ok(out)
}

/// The schema of a batch of JSON records, for a table Lakehose creates itself: names
/// lower-cased, every field nullable, fields in order of first appearance; integers -> Int64,
/// other numbers (or integers mixed with them) -> Float64, booleans, strings holding an
/// ISO-8601 / `yyyy-MM-dd HH:mm:ss` date and time -> Timestamp(ms), other strings -> Utf8,
/// objects -> Struct (fields merged across records), arrays -> List (element types merged),
/// conflicting types and values only ever null -> Utf8. Records that are not JSON objects are
/// skipped; an error only when none is.
pub fn infer_schema(records: &[&[u8]]) -> Result<Schema, ConvertError> {
    schema::infer(records)
}

/// Schema evolution: `current` with the columns of `new_fields` it lacks (compared
/// case-insensitively) appended as nullable columns, or `None` when nothing is new. Existing
/// columns keep their names, types and positions.
pub fn merge_schema(current: &Schema, new_fields: &Schema) -> Option<Schema> {
    schema::merge(current, new_fields)
}

/// Streaming conversion into one file: [`Converter::push`] records as they come (memory stays
/// bounded by the row group being built and the file itself), then [`Converter::finish`].
/// [`convert`] is one `push` and a `finish`.
///
/// Each push is processed in chunks: the chunk is split in `threads` contiguous parts decoded
/// in parallel, then the columns are shared out between the threads and encoded in parallel,
/// every part in order. So rows keep their input order and row groups are cut by size
/// (`BlockSizeBytes`), whatever the thread count.
pub struct Converter {
    schema: SchemaRef,
    decoders: Vec<RecordDecoder>,
    sink: Sink,
    next_index: usize,
    rows: usize,
    failed: Vec<FailedRecord>,
    /// Rows decoded and not yet encoded.
    pending: Vec<RecordBatch>,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("threads", &self.decoders.len())
            .field("records", &self.next_index)
            .field("rows", &self.rows)
            .field("failed", &self.failed.len())
            .finish_non_exhaustive()
    }
}

enum Sink {
    Parquet(Box<ParquetSink>),
    #[cfg(feature = "orc")]
    Orc(Box<OrcSink>),
}

impl Converter {
    /// A converter writing one file of `schema` as `config` says; `options.threads` 0 means
    /// the machine's cores. Fails when the schema or the configuration cannot be converted.
    pub fn new(
        schema: &SchemaRef,
        config: &ConversionConfig,
        options: &ConvertOptions,
    ) -> Result<Self, ConvertError> {
        if schema.fields().is_empty() {
            return Err(ConvertError::UnsupportedSchema(
                "the table has no columns".into(),
            ));
        }
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let decoders = (0..threads)
            .map(|_| RecordDecoder::new(schema, config, 4096))
            .collect::<Result<Vec<_>, _>>()?;
        let sink = match &config.output {
            OutputFormat::Parquet(opts) => Sink::Parquet(Box::new(ParquetSink::new(schema, opts)?)),
            OutputFormat::Orc(opts) => orc_sink(schema, opts)?,
        };
        Ok(Converter {
            schema: schema.clone(),
            decoders,
            sink,
            next_index: 0,
            rows: 0,
            failed: Vec::new(),
            pending: Vec::new(),
        })
    }

    /// Converts more records. Their indexes (in [`FailedRecord::index`]) continue from the
    /// records pushed before.
    pub fn push(&mut self, records: &[&[u8]]) -> Result<(), ConvertError> {
        let target = CHUNK_BYTES_PER_THREAD * self.decoders.len();
        let mut start = 0;
        // Chunk k is decoded while chunk k-1 is encoded; the last chunk decoded waits for the
        // next push (or `finish`).
        while start < records.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < records.len() && bytes < target {
                bytes += records[end].len();
                end += 1;
            }
            let chunk = Chunk {
                records: &records[start..end],
                bytes,
                base: self.next_index,
            };
            self.next_index += end - start;
            let previous = std::mem::take(&mut self.pending);
            self.pending = self.step(Some(chunk), previous)?;
            start = end;
        }
        Ok(())
    }

    /// Decodes `chunk` and encodes `batches` (the previous chunk's rows) at the same time;
    /// returns the chunk's rows.
    fn step(
        &mut self,
        chunk: Option<Chunk>,
        batches: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>, ConvertError> {
        let threads = self.decoders.len();
        let mut tasks: Vec<Task> = Vec::new();
        // Decoding first: the biggest tasks.
        if let Some(chunk) = &chunk {
            let parts = split(chunk.records, threads, chunk.bytes);
            for (dec, range) in self.decoders.iter_mut().zip(parts) {
                tasks.push(Task::Decode {
                    dec,
                    records: &chunk.records[range.clone()],
                    base: chunk.base + range.start,
                });
            }
        }
        let n_decode = tasks.len();
        if !batches.is_empty() {
            match &mut self.sink {
                Sink::Parquet(p) => p.encode_tasks(&batches, &self.schema, &mut tasks)?,
                // The ORC writer is not Send: it writes here, after the decoding.
                #[cfg(feature = "orc")]
                Sink::Orc(_) => {}
            }
        }
        let outs = run_tasks(tasks, threads)?;
        #[cfg(feature = "orc")]
        if let Sink::Orc(o) = &mut self.sink {
            o.write(&batches)?;
        }
        let mut decoded = Vec::new();
        for (i, out) in outs.into_iter().enumerate() {
            match out {
                TaskOut::Decoded { batch, mut failed } => {
                    debug_assert!(i < n_decode);
                    self.failed.append(&mut failed);
                    if let Some(b) = batch {
                        self.rows += b.num_rows();
                        decoded.push(b);
                    }
                }
                TaskOut::Encoded { column, nanos } => {
                    if let Sink::Parquet(p) = &mut self.sink {
                        p.cost[column] = nanos;
                    }
                }
            }
        }
        if !batches.is_empty()
            && let Sink::Parquet(p) = &mut self.sink
        {
            p.maybe_flush()?;
        }
        Ok(decoded)
    }

    /// Rows converted so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Finishes the file.
    pub fn finish(mut self) -> Result<Converted, ConvertError> {
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            self.step(None, pending)?;
        }
        let mut unknown: Vec<String> = self
            .decoders
            .iter_mut()
            .flat_map(RecordDecoder::unknown_keys)
            .collect();
        unknown.sort();
        unknown.dedup();
        let file = if self.rows == 0 {
            Vec::new()
        } else {
            match self.sink {
                Sink::Parquet(p) => p.finish()?,
                #[cfg(feature = "orc")]
                Sink::Orc(o) => o.finish()?,
            }
        };
        Ok(Converted {
            file,
            rows: self.rows,
            failed: self.failed,
            unknown_keys: unknown,
        })
    }
}

/// Contiguous ranges of about `total / n` bytes each.
fn split(records: &[&[u8]], n: usize, total: usize) -> Vec<std::ops::Range<usize>> {
    if n <= 1 || records.len() < 2 {
        return std::iter::once(0..records.len()).collect();
    }
    let mut parts = Vec::with_capacity(n);
    let mut start = 0;
    let mut acc = 0usize;
    for (i, r) in records.iter().enumerate() {
        acc += r.len();
        if acc * n >= total * (parts.len() + 1) && parts.len() + 1 < n {
            parts.push(start..i + 1);
            start = i + 1;
        }
    }
    parts.push(start..records.len());
    parts.retain(|r| !r.is_empty());
    parts
}

/// Records to decode, numbered from `base`.
struct Chunk<'a> {
    records: &'a [&'a [u8]],
    bytes: usize,
    base: usize,
}

/// One unit of work of a conversion step.
enum Task<'a> {
    /// Decode consecutive records into one batch.
    Decode {
        dec: &'a mut RecordDecoder,
        records: &'a [&'a [u8]],
        base: usize,
    },
    /// Encode one top-level column of `batches` into its leaf writers.
    Encode {
        column: usize,
        field: &'a arrow_schema::FieldRef,
        writers: &'a mut [ArrowColumnWriter],
        batches: &'a [RecordBatch],
    },
}

enum TaskOut {
    Decoded {
        batch: Option<RecordBatch>,
        failed: Vec<FailedRecord>,
    },
    Encoded {
        column: usize,
        nanos: u64,
    },
}

impl Task<'_> {
    fn run(self) -> Result<TaskOut, ConvertError> {
        match self {
            Task::Decode { dec, records, base } => {
                for (i, r) in records.iter().enumerate() {
                    dec.decode(r, base + i);
                }
                let batch = if dec.rows() == 0 {
                    None
                } else {
                    Some(dec.finish()?)
                };
                Ok(TaskOut::Decoded {
                    batch,
                    failed: std::mem::take(&mut dec.failed),
                })
            }
            Task::Encode {
                column,
                field,
                writers,
                batches,
            } => {
                let started = std::time::Instant::now();
                for batch in batches {
                    let leaves = compute_leaves(field, batch.column(column)).map_err(internal)?;
                    if leaves.len() != writers.len() {
                        return Err(internal("leaf count mismatch"));
                    }
                    for (w, leaf) in writers.iter_mut().zip(&leaves) {
                        w.write(leaf).map_err(internal)?;
                    }
                }
                Ok(TaskOut::Encoded {
                    column,
                    nanos: (started.elapsed().as_nanos() as u64).max(1),
                })
            }
        }
    }
}

/// Runs `tasks` on `threads` threads (this one included), each thread taking the next task
/// not yet taken, so the big tasks listed first spread and the small ones fill the gaps.
/// Results come back in task order.
fn run_tasks(tasks: Vec<Task>, threads: usize) -> Result<Vec<TaskOut>, ConvertError> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let n = tasks.len();
    if threads <= 1 || n <= 1 {
        return tasks.into_iter().map(Task::run).collect();
    }
    let slots: Vec<Mutex<Option<Task>>> = tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let outs: Vec<Mutex<Option<Result<TaskOut, ConvertError>>>> =
        (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let task = slots[i].lock().ok().and_then(|mut t| t.take());
            let out = match task {
                Some(t) => t.run(),
                None => Err(internal("a conversion task was lost")),
            };
            if let Ok(mut slot) = outs[i].lock() {
                *slot = Some(out);
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads.min(n) {
            s.spawn(work);
        }
        work();
    });
    outs.into_iter()
        .map(|o| {
            o.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(internal("a conversion thread panicked")))
        })
        .collect()
}

/// The Parquet writer settings of a `ParquetSerDe` configuration.
pub fn parquet_writer_properties(o: &ParquetOptions) -> WriterProperties {
    let compression = match o.compression {
        ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
        ParquetCompression::Snappy => Compression::SNAPPY,
        ParquetCompression::Gzip => Compression::GZIP(GzipLevel::default()),
        ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::default()),
    };
    WriterProperties::builder()
        .set_compression(compression)
        .set_writer_version(match o.writer_version {
            ParquetWriterVersion::V1 => WriterVersion::PARQUET_1_0,
            ParquetWriterVersion::V2 => WriterVersion::PARQUET_2_0,
        })
        .set_data_page_size_limit(o.page_size_bytes as usize)
        .set_dictionary_enabled(o.enable_dictionary)
        // Row groups are cut here by size (BlockSizeBytes), not by the writer's row count.
        .set_max_row_group_row_count(None)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build()
}

/// Number of Parquet leaf columns under an Arrow type.
fn leaf_count(dt: &arrow_schema::DataType) -> usize {
    use arrow_schema::DataType;
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            leaf_count(f.data_type())
        }
        DataType::Map(f, _) => leaf_count(f.data_type()),
        DataType::Struct(fields) => fields.iter().map(|f| leaf_count(f.data_type())).sum(),
        _ => 1,
    }
}

struct ParquetSink {
    file: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    writers: Option<Vec<ArrowColumnWriter>>,
    /// Per top-level column, how many leaf writers it has.
    leaves: Vec<usize>,
    /// Per top-level column, how long encoding it took last time (ns): the most expensive
    /// columns are started first. Zero until measured.
    cost: Vec<u64>,
    block_size: usize,
    row_groups: usize,
}

impl ParquetSink {
    fn new(schema: &SchemaRef, opts: &ParquetOptions) -> Result<Self, ConvertError> {
        let writer = ArrowWriter::try_new_with_options(
            Vec::new(),
            schema.clone(),
            ArrowWriterOptions::new().with_properties(parquet_writer_properties(opts)),
        )
        .map_err(internal)?;
        let (file, factory) = writer.into_serialized_writer().map_err(internal)?;
        Ok(ParquetSink {
            file,
            factory,
            writers: None,
            leaves: schema
                .fields()
                .iter()
                .map(|f| leaf_count(f.data_type()))
                .collect(),
            cost: vec![0; schema.fields().len()],
            block_size: opts.block_size_bytes as usize,
            row_groups: 0,
        })
    }

    /// Adds one encoding task per top-level column (most expensive first) for `batches`.
    fn encode_tasks<'a>(
        &'a mut self,
        batches: &'a [RecordBatch],
        schema: &'a Schema,
        tasks: &mut Vec<Task<'a>>,
    ) -> Result<(), ConvertError> {
        if self.writers.is_none() {
            self.writers = Some(
                self.factory
                    .create_column_writers(self.row_groups)
                    .map_err(internal)?,
            );
        }
        let Some(writers) = self.writers.as_mut() else {
            return Err(internal("no column writers"));
        };
        let mut rest = writers.as_mut_slice();
        let mut column_tasks = Vec::with_capacity(self.leaves.len());
        for (column, &n) in self.leaves.iter().enumerate() {
            let (mine, others) = rest.split_at_mut(n.min(rest.len()));
            rest = others;
            column_tasks.push((
                self.cost[column],
                Task::Encode {
                    column,
                    field: &schema.fields()[column],
                    writers: mine,
                    batches,
                },
            ));
        }
        column_tasks.sort_by_key(|(cost, _)| std::cmp::Reverse(*cost));
        tasks.extend(column_tasks.into_iter().map(|(_, t)| t));
        Ok(())
    }

    /// Closes the row group once its encoded size reaches `BlockSizeBytes`.
    fn maybe_flush(&mut self) -> Result<(), ConvertError> {
        let size: usize = self
            .writers
            .iter()
            .flatten()
            .map(|w| w.get_estimated_total_bytes())
            .sum();
        if size >= self.block_size {
            self.flush_row_group()?;
        }
        Ok(())
    }

    fn flush_row_group(&mut self) -> Result<(), ConvertError> {
        let Some(writers) = self.writers.take() else {
            return Ok(());
        };
        let chunks: Vec<ArrowColumnChunk> = writers
            .into_iter()
            .map(|w| w.close().map_err(internal))
            .collect::<Result<_, _>>()?;
        let mut rg = self.file.next_row_group().map_err(internal)?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut rg).map_err(internal)?;
        }
        rg.close().map_err(internal)?;
        self.row_groups += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<u8>, ConvertError> {
        self.flush_row_group()?;
        self.file.into_inner().map_err(internal)
    }
}

/// The ORC writer's output buffer (the writer owns its `Write` until it closes).
#[cfg(feature = "orc")]
#[derive(Clone, Default)]
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(feature = "orc")]
impl std::io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "orc")]
struct OrcSink {
    buf: SharedBuf,
    writer: orc_rust::ArrowWriter<SharedBuf>,
}

#[cfg(feature = "orc")]
impl OrcSink {
    fn write(&mut self, batches: &[RecordBatch]) -> Result<(), ConvertError> {
        for b in batches {
            self.writer.write(b).map_err(internal)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>, ConvertError> {
        self.writer.close().map_err(internal)?;
        let mut guard = self
            .buf
            .0
            .lock()
            .map_err(|_| internal("ORC buffer poisoned"))?;
        Ok(std::mem::take(&mut *guard))
    }
}

#[cfg(feature = "orc")]
fn orc_sink(schema: &SchemaRef, opts: &OrcOptions) -> Result<Sink, ConvertError> {
    let buf = SharedBuf::default();
    let mut builder = orc_rust::ArrowWriterBuilder::new(buf.clone(), schema.clone())
        .with_stripe_byte_size(opts.stripe_size_bytes as usize);
    builder = match opts.compression {
        OrcCompression::None => builder,
        OrcCompression::Zlib => {
            builder.with_compression(orc_rust::compression::CompressionType::Zlib)
        }
        OrcCompression::Snappy => {
            builder.with_compression(orc_rust::compression::CompressionType::Snappy)
        }
    };
    // The writer checks the schema before writing anything: a type it cannot encode is the
    // table's problem (every Hive type can be written), not an internal error.
    let writer = builder.try_build().map_err(|e| {
        ConvertError::UnsupportedSchema(format!("ORC output cannot write this table: {e}"))
    })?;
    Ok(Sink::Orc(Box::new(OrcSink { buf, writer })))
}

#[cfg(not(feature = "orc"))]
fn orc_sink(_schema: &SchemaRef, _opts: &OrcOptions) -> Result<Sink, ConvertError> {
    Err(ConvertError::UnsupportedSchema(
        "this build has no ORC support (feature `orc`)".into(),
    ))
}

#[cfg(test)]
mod tests;
