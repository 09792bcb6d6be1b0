//! Which reader a table (or partition) needs, from its Glue definition.
//!
//! The order of evidence is the one Athena uses: the SerDe library first, then the input
//! format, then the `classification` table parameter. Text SerDes keep their delimiter,
//! quote, escape, header and null settings in [`TextOptions`].
//!
//! Invariant: detection never guesses from object names; a table whose format cannot be
//! determined or is not supported is a user error naming what was found.

use lakehose_catalog::{StorageDescriptor, Table};

/// The file format of a table's objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum FileFormat {
    Parquet,
    Orc,
    /// Newline-delimited JSON (OpenX / Hive / HCatalog JSON SerDe).
    Json,
    /// Delimited text (LazySimpleSerDe, OpenCSVSerde).
    Text(TextOptions),
}

/// How delimited text is split into columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TextOptions {
    pub delimiter: u8,
    /// `None` for LazySimpleSerDe (no quoting).
    pub quote: Option<u8>,
    pub escape: Option<u8>,
    /// Lines skipped at the start of every file (`skip.header.line.count`).
    pub skip_header: usize,
    /// The text that stands for NULL (`serialization.null.format`, `\N` by default).
    pub null_marker: String,
}

/// The SerDe of `sd`, when it names a library.
fn serde_of(sd: Option<&StorageDescriptor>) -> Option<&lakehose_catalog::SerDeInfo> {
    sd.and_then(|sd| sd.serde_info.as_ref())
        .filter(|s| s.serialization_library.is_some())
}

/// The format of data stored with `sd` (a partition's, or the table's when `None` or when it
/// says nothing), falling back to the table's `classification`.
pub(crate) fn detect(table: &Table, sd: Option<&StorageDescriptor>) -> Result<FileFormat, String> {
    let table_sd = table.storage_descriptor.as_ref();
    let serde = serde_of(sd).or_else(|| serde_of(table_sd));
    let input_of = |sd: Option<&StorageDescriptor>| sd.and_then(|sd| sd.input_format.clone());
    let input = input_of(sd)
        .or_else(|| input_of(table_sd))
        .unwrap_or_default();
    let input = input.to_ascii_lowercase();
    let classification = table
        .parameters
        .get("classification")
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();

    if let Some(serde) = serde {
        let lib = serde
            .serialization_library
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let params = &serde.parameters;
        if lib.contains("parquet") {
            return Ok(FileFormat::Parquet);
        }
        if lib.contains(".orc.") || lib.ends_with("orcserde") {
            return Ok(FileFormat::Orc);
        }
        if lib.contains("json") {
            return Ok(FileFormat::Json);
        }
        if lib.ends_with("opencsvserde") {
            let delimiter = delim(params.get("separatorChar"), b',')?;
            let quote = delim(params.get("quoteChar"), b'"')?;
            let escape = delim(params.get("escapeChar"), b'\\')?;
            return Ok(FileFormat::Text(TextOptions {
                delimiter,
                quote: Some(quote),
                escape: Some(escape),
                skip_header: skip_header(table),
                // OpenCSVSerde has no NULL marker: empty fields are empty strings.
                null_marker: String::new(),
            }));
        }
        if lib.ends_with("lazysimpleserde") {
            let field = params
                .get("field.delim")
                .or_else(|| params.get("serialization.format"));
            let delimiter = delim(field, 1)?;
            let escape = match params.get("escape.delim") {
                Some(e) => Some(delim(Some(e), b'\\')?),
                None => None,
            };
            return Ok(FileFormat::Text(TextOptions {
                delimiter,
                quote: None,
                escape,
                skip_header: skip_header(table),
                null_marker: params
                    .get("serialization.null.format")
                    .cloned()
                    .unwrap_or_else(|| "\\N".to_string()),
            }));
        }
        return Err(format!(
            "SerDe '{}' is not supported (supported: Parquet, ORC, JSON, LazySimpleSerDe, \
             OpenCSVSerde)",
            serde.serialization_library.as_deref().unwrap_or_default()
        ));
    }
    if input.contains("parquet") {
        return Ok(FileFormat::Parquet);
    }
    if input.contains(".orc.") || input.ends_with("orcinputformat") {
        return Ok(FileFormat::Orc);
    }
    match classification.as_str() {
        "parquet" => return Ok(FileFormat::Parquet),
        "orc" => return Ok(FileFormat::Orc),
        "json" => return Ok(FileFormat::Json),
        "csv" | "tsv" => {
            return Ok(FileFormat::Text(TextOptions {
                delimiter: if classification == "csv" { b',' } else { b'\t' },
                quote: Some(b'"'),
                escape: Some(b'\\'),
                skip_header: skip_header(table),
                null_marker: String::new(),
            }));
        }
        _ => {}
    }
    if input.ends_with("textinputformat") {
        return Ok(FileFormat::Text(TextOptions {
            delimiter: 1,
            quote: None,
            escape: None,
            skip_header: skip_header(table),
            null_marker: "\\N".to_string(),
        }));
    }
    Err(format!(
        "the format of table '{}' cannot be determined (no SerDe, input format or \
         classification it could be read with)",
        table.name
    ))
}

fn skip_header(table: &Table) -> usize {
    table
        .parameters
        .get("skip.header.line.count")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A one-byte delimiter from a SerDe parameter: a single character, an escape (`\t`,
/// `\u0001`, `\001`), or a decimal byte value (`1`).
fn delim(value: Option<&String>, default: u8) -> Result<u8, String> {
    let Some(v) = value else {
        return Ok(default);
    };
    let bytes = v.as_bytes();
    if bytes.len() == 1 {
        return Ok(bytes[0]);
    }
    if v.is_empty() {
        return Ok(default);
    }
    let parsed = match v.as_str() {
        "\\t" => Some(b'\t'),
        "\\n" => Some(b'\n'),
        _ if v.starts_with("\\u") => u8::from_str_radix(&v[2..], 16).ok(),
        _ if v.starts_with('\\') => u8::from_str_radix(&v[1..], 8).ok(),
        _ if v.chars().all(|c| c.is_ascii_digit()) => v.parse::<u8>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("delimiter '{v}' is not supported: it must be one byte"))
}

/// How an object is compressed, from its name.
pub(crate) fn compression_of(key: &str) -> Option<Compression> {
    let lower = key.to_ascii_lowercase();
    if lower.ends_with(".gz") || lower.ends_with(".gzip") {
        Some(Compression::Gzip)
    } else if lower.ends_with(".bz2") {
        Some(Compression::Bzip2)
    } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
        Some(Compression::Zstd)
    } else if lower.ends_with(".xz") {
        Some(Compression::Xz)
    } else {
        None
    }
}

/// Whole-object compression of text and JSON objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Compression {
    Gzip,
    Bzip2,
    Zstd,
    Xz,
}

impl Compression {
    pub fn file_compression_type(
        self,
    ) -> datafusion::datasource::file_format::file_compression_type::FileCompressionType {
        use datafusion::datasource::file_format::file_compression_type::FileCompressionType as F;
        match self {
            Compression::Gzip => F::GZIP,
            Compression::Bzip2 => F::BZIP2,
            Compression::Zstd => F::ZSTD,
            Compression::Xz => F::XZ,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lakehose_catalog::{Column, SerDeInfo};

    fn table(lib: Option<&str>, input: Option<&str>, params: &[(&str, &str)]) -> Table {
        let mut t = Table::new("t", vec![Column::new("a", "int")], vec![], None);
        let sd = t.storage_descriptor.as_mut().unwrap();
        sd.input_format = input.map(str::to_string);
        sd.serde_info = lib.map(|l| SerDeInfo {
            serialization_library: Some(l.to_string()),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        });
        t
    }

    #[test]
    fn serdes() {
        let p = table(
            Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"),
            None,
            &[],
        );
        assert_eq!(detect(&p, None).unwrap(), FileFormat::Parquet);
        let o = table(Some("org.apache.hadoop.hive.ql.io.orc.OrcSerde"), None, &[]);
        assert_eq!(detect(&o, None).unwrap(), FileFormat::Orc);
        let j = table(Some("org.openx.data.jsonserde.JsonSerDe"), None, &[]);
        assert_eq!(detect(&j, None).unwrap(), FileFormat::Json);
        let l = table(
            Some("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"),
            None,
            &[("field.delim", "\\t")],
        );
        let FileFormat::Text(o) = detect(&l, None).unwrap() else {
            panic!()
        };
        assert_eq!(o.delimiter, b'\t');
        assert_eq!(o.null_marker, "\\N");
        let c = table(
            Some("org.apache.hadoop.hive.serde2.OpenCSVSerde"),
            None,
            &[("separatorChar", ";")],
        );
        let FileFormat::Text(o) = detect(&c, None).unwrap() else {
            panic!()
        };
        assert_eq!((o.delimiter, o.quote), (b';', Some(b'"')));
        let a = table(
            Some("org.apache.hadoop.hive.serde2.avro.AvroSerDe"),
            None,
            &[],
        );
        assert!(detect(&a, None).unwrap_err().contains("not supported"));
    }

    #[test]
    fn fallbacks() {
        let t = table(
            None,
            Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"),
            &[],
        );
        assert_eq!(detect(&t, None).unwrap(), FileFormat::Parquet);
        let mut c = table(None, None, &[]);
        c.parameters.insert("classification".into(), "ORC".into());
        assert_eq!(detect(&c, None).unwrap(), FileFormat::Orc);
        assert!(detect(&table(None, None, &[]), None).is_err());
    }

    #[test]
    fn delimiters() {
        assert_eq!(delim(Some(&"\\u0001".into()), 0).unwrap(), 1);
        assert_eq!(delim(Some(&"\\001".into()), 0).unwrap(), 1);
        assert_eq!(delim(Some(&"1".into()), 0).unwrap(), b'1');
        assert_eq!(delim(Some(&"9".into()), 0).unwrap(), b'9');
        assert_eq!(delim(Some(&"44".into()), 0).unwrap(), 44);
        assert!(delim(Some(&"ab".into()), 0).is_err());
        assert_eq!(compression_of("a/b.json.gz"), Some(Compression::Gzip));
        assert_eq!(compression_of("a/b.json"), None);
    }
}
