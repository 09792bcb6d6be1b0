//! Converts a newline-delimited JSON file to one Parquet/ORC file through
//! `lakehose_formats::convert` (the code the delivery pipeline runs), and prints a JSON summary.
//! Used by `bench/convert/run.sh` and `tests/python/test_parquet_roundtrip.py`.
//!
//! ```text
//! convert IN.jsonl OUT [--schema SCHEMA.json | --infer] [--config CONFIG.json]
//!                      [--threads N] [--failed FAILED.jsonl] [--engine lakehose|arrow-json]
//! ```
//!
//! - `SCHEMA.json`: `[["column", "hive type"], ...]`, e.g. `[["ts", "timestamp"],
//!   ["tags", "array<string>"]]`, mapped to Arrow as the catalog does
//!   (`lakehose_catalog::hive_to_arrow`). `--infer` infers the schema from the file instead.
//! - `CONFIG.json`: a `DataFormatConversionConfiguration` (default: OpenX JSON SerDe, Parquet
//!   with Firehose's defaults).
//! - `--threads N`: 0 = automatic (default 1).
//! - `--failed FILE`: failed records as JSON lines `{"index", "errorCode", "errorMessage"}`.
//! - `--engine arrow-json`: a plain arrow-json reader + parquet ArrowWriter with the same
//!   writer settings, as a baseline (single-threaded).
//!
//! Each line of IN is one record; blank lines are skipped.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use arrow_schema::{Field, Schema};

use lakehose_formats::convert::{
    ConversionConfig, ConvertOptions, Converter, InputSerde, OutputFormat, ParquetOptions,
    infer_schema, parquet_writer_properties,
};

/// The file is read in blocks of this size (grown when a line is longer).
const BLOCK: usize = 8 << 20;

/// The non-blank lines of `data`.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', data)
        .chain([data.len()])
        .filter_map(move |end| {
            let line = &data[start.min(end)..end];
            start = end + 1;
            (!line.iter().all(u8::is_ascii_whitespace)).then_some(line)
        })
}

/// The table schema of `(name, hive type)` columns, as the catalog maps it
/// (`lakehose_catalog::hive_to_arrow`): names lower-cased, every field nullable.
fn hive_columns_to_schema(cols: &[(String, String)]) -> Result<Schema, String> {
    cols.iter()
        .map(|(name, hive)| {
            let dt = lakehose_catalog::hive_to_arrow(hive)
                .map_err(|e| format!("column '{name}': {e}"))?;
            Ok(Field::new(name.to_lowercase(), dt, true))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Schema::new)
}

fn usage() -> ! {
    eprintln!(
        "usage: convert IN.jsonl OUT [--schema SCHEMA.json | --infer] [--config CONFIG.json] \
         [--threads N] [--failed FAILED.jsonl] [--engine lakehose|arrow-json]"
    );
    std::process::exit(2)
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("convert: {msg}");
    std::process::exit(1)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut positional = Vec::new();
    let (mut schema_path, mut config_path, mut failed_path) = (None, None, None);
    let mut infer = false;
    let mut threads = 1usize;
    let mut engine = "lakehose".to_owned();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--schema" => schema_path = Some(it.next().unwrap_or_else(|| usage())),
            "--config" => config_path = Some(it.next().unwrap_or_else(|| usage())),
            "--failed" => failed_path = Some(it.next().unwrap_or_else(|| usage())),
            "--infer" => infer = true,
            "--threads" => {
                threads = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--engine" => engine = it.next().unwrap_or_else(|| usage()),
            "-h" | "--help" => usage(),
            _ if a.starts_with("--") => usage(),
            _ => positional.push(a),
        }
    }
    let [input, output] = positional.as_slice() else {
        usage()
    };
    if schema_path.is_none() && !infer {
        fail("give --schema SCHEMA.json or --infer");
    }

    let config = match &config_path {
        Some(p) => {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| fail(format!("{p}: {e}")));
            let v: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| fail(format!("{p}: {e}")));
            ConversionConfig::from_json(&v).unwrap_or_else(|e| fail(format!("{p}: {e}")))
        }
        None => ConversionConfig::new(
            "bench",
            "events",
            InputSerde::default(),
            OutputFormat::default(),
        ),
    };

    let schema = if let Some(p) = &schema_path {
        let text = std::fs::read_to_string(p).unwrap_or_else(|e| fail(format!("{p}: {e}")));
        let cols: Vec<(String, String)> =
            serde_json::from_str(&text).unwrap_or_else(|e| fail(format!("{p}: {e}")));
        hive_columns_to_schema(&cols).unwrap_or_else(|e| fail(format!("{p}: {e}")))
    } else {
        // Inference reads the whole file first (it is not part of the timing).
        let data = std::fs::read(input).unwrap_or_else(|e| fail(format!("{input}: {e}")));
        let records: Vec<&[u8]> = lines(&data).collect();
        infer_schema(&records).unwrap_or_else(|e| fail(e))
    };
    let schema = Arc::new(schema);

    let start = Instant::now();
    let input_bytes: usize;
    let mut records_seen = 0usize;
    let (rows, failed, unknown, file_len) = match engine.as_str() {
        "lakehose" => {
            // Streams the file through one Converter: a reader thread fills blocks of BLOCK
            // bytes cut after their last newline, this thread pushes each block's lines.
            let mut converter = Converter::new(&schema, &config, &ConvertOptions { threads })
                .unwrap_or_else(|e| fail(e));
            let mut file =
                std::fs::File::open(input).unwrap_or_else(|e| fail(format!("{input}: {e}")));
            // Blocks travel as (buffer, length): buffers are reused without being zeroed again.
            let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(1);
            let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
            let reader = std::thread::spawn(move || -> std::io::Result<usize> {
                let mut total = 0;
                let mut carry: Vec<u8> = Vec::new();
                loop {
                    let mut buf = empty_rx.try_recv().unwrap_or_default();
                    let want = BLOCK.max(carry.len() * 2);
                    if buf.len() < want {
                        buf.resize(want, 0);
                    }
                    buf[..carry.len()].copy_from_slice(&carry);
                    let start = carry.len();
                    carry.clear();
                    let mut filled = start;
                    while filled < buf.len() {
                        let n = file.read(&mut buf[filled..])?;
                        if n == 0 {
                            break;
                        }
                        filled += n;
                    }
                    total += filled - start;
                    let eof = filled < buf.len();
                    let mut len = filled;
                    if !eof {
                        match memchr::memrchr(b'\n', &buf[..filled]) {
                            Some(i) => {
                                carry.extend_from_slice(&buf[i + 1..filled]);
                                len = i + 1;
                            }
                            None => {
                                // A line longer than the block: read on with a bigger one.
                                carry.extend_from_slice(&buf[..filled]);
                                continue;
                            }
                        }
                    }
                    if full_tx.send((buf, len)).is_err() || eof {
                        return Ok(total);
                    }
                }
            });
            for (block, len) in full_rx {
                let records: Vec<&[u8]> = lines(&block[..len]).collect();
                records_seen += records.len();
                converter.push(&records).unwrap_or_else(|e| fail(e));
                drop(records);
                let _ = empty_tx.send(block);
            }
            input_bytes = reader
                .join()
                .unwrap_or_else(|_| fail("the reader panicked"))
                .unwrap_or_else(|e| fail(format!("{input}: {e}")));
            let out = converter.finish().unwrap_or_else(|e| fail(e));
            std::fs::write(output, &out.file).unwrap_or_else(|e| fail(format!("{output}: {e}")));
            (out.rows, out.failed, out.unknown_keys, out.file.len())
        }
        "arrow-json" => {
            let opts = match &config.output {
                OutputFormat::Parquet(p) => p.clone(),
                OutputFormat::Orc(_) => ParquetOptions::default(),
            };
            let file = std::fs::File::open(input).unwrap_or_else(|e| fail(format!("{input}: {e}")));
            input_bytes = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
            let reader = arrow_json::ReaderBuilder::new(schema.clone())
                .with_batch_size(8192)
                .build(std::io::BufReader::with_capacity(1 << 20, file))
                .unwrap_or_else(|e| fail(e));
            let mut buf = Vec::new();
            let mut writer = parquet::arrow::ArrowWriter::try_new(
                &mut buf,
                schema.clone(),
                Some(parquet_writer_properties(&opts)),
            )
            .unwrap_or_else(|e| fail(e));
            let mut rows = 0;
            for batch in reader {
                let batch = batch.unwrap_or_else(|e| fail(e));
                rows += batch.num_rows();
                writer.write(&batch).unwrap_or_else(|e| fail(e));
            }
            writer.close().unwrap_or_else(|e| fail(e));
            records_seen = rows;
            std::fs::write(output, &buf).unwrap_or_else(|e| fail(format!("{output}: {e}")));
            (rows, Vec::new(), Vec::new(), buf.len())
        }
        other => fail(format!("unknown engine {other}")),
    };
    let seconds = start.elapsed().as_secs_f64();

    if let Some(p) = &failed_path {
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(p).unwrap_or_else(|e| fail(format!("{p}: {e}"))),
        );
        for r in &failed {
            let line = serde_json::json!({
                "index": r.index,
                "errorCode": r.error_code,
                "errorMessage": r.error_message,
            });
            writeln!(f, "{line}").unwrap_or_else(|e| fail(e));
        }
        f.flush().unwrap_or_else(|e| fail(e));
    }

    let mib = input_bytes as f64 / (1024.0 * 1024.0);
    let summary = serde_json::json!({
        "engine": engine,
        "threads": threads,
        "records": records_seen,
        "rows": rows,
        "failed": failed.len(),
        "input_bytes": input_bytes,
        "output_bytes": file_len,
        "seconds": seconds,
        "mib_per_s": mib / seconds,
        "rows_per_s": rows as f64 / seconds,
        "unknown_keys": unknown,
        "schema": schema.fields().iter().map(|f| {
            serde_json::json!([f.name(), lakehose_catalog::arrow_to_hive(f.data_type())])
        }).collect::<Vec<_>>(),
    });
    println!("{summary}");
}
