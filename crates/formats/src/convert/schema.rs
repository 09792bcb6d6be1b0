//! Schema inference from JSON records, and schema evolution.
//!
//! Conversion itself only takes Arrow schemas; mapping Hive (Glue) column types to Arrow is the
//! catalog's job (`lakehose_catalog::hive_to_arrow`).
//!
//! Invariants: inferred schemas have lower-case names and only nullable fields; merging never
//! changes an existing column (name, type or position), it only appends.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::ConvertError;
use super::json::Parser;
use super::time;

/// A JSON value's inferred type.
#[derive(Clone, Debug, PartialEq)]
enum IType {
    Null,
    Bool,
    Int,
    Float,
    Str,
    Timestamp,
    List(Box<IType>),
    Struct(Vec<(String, IType)>),
}

impl IType {
    fn merge(self, other: IType) -> IType {
        use IType::*;
        match (self, other) {
            (Null, t) | (t, Null) => t,
            (a, b) if a == b => a,
            (Int, Float) | (Float, Int) => Float,
            (List(a), List(b)) => List(Box::new(a.merge(*b))),
            (Struct(mut a), Struct(b)) => {
                for (name, t) in b {
                    merge_field(&mut a, name, t);
                }
                Struct(a)
            }
            _ => Str,
        }
    }

    fn to_arrow(&self) -> DataType {
        match self {
            IType::Null | IType::Str => DataType::Utf8,
            IType::Bool => DataType::Boolean,
            IType::Int => DataType::Int64,
            IType::Float => DataType::Float64,
            IType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            IType::List(t) => DataType::List(Arc::new(Field::new_list_field(t.to_arrow(), true))),
            // An object seen only empty cannot be a Parquet group: keep its JSON text.
            IType::Struct(f) if f.is_empty() => DataType::Utf8,
            IType::Struct(f) => DataType::Struct(
                f.iter()
                    .map(|(n, t)| Field::new(n, t.to_arrow(), true))
                    .collect::<Vec<_>>()
                    .into(),
            ),
        }
    }
}

fn merge_field(fields: &mut Vec<(String, IType)>, name: String, t: IType) {
    if let Some(slot) = fields.iter_mut().find(|(n, _)| *n == name) {
        let old = std::mem::replace(&mut slot.1, IType::Null);
        slot.1 = old.merge(t);
    } else {
        fields.push((name, t));
    }
}

/// Nesting beyond this is typed as a string (its JSON text).
const INFER_MAX_DEPTH: u32 = 64;

fn infer_value(p: &mut Parser, scratch: &mut Vec<u8>, depth: u32) -> Result<IType, ()> {
    if depth > INFER_MAX_DEPTH {
        p.skip_value(0).map_err(|_| ())?;
        return Ok(IType::Str);
    }
    Ok(match p.peek() {
        b'"' => {
            let s = p.string_ref(scratch).map_err(|_| ())?;
            if looks_like_timestamp(s) {
                IType::Timestamp
            } else {
                IType::Str
            }
        }
        b'-' | b'0'..=b'9' => {
            let (text, is_int) = p.number().map_err(|_| ())?;
            if is_int && super::decode::parse_i64(text).is_some() {
                IType::Int
            } else {
                IType::Float
            }
        }
        b't' => {
            p.lit(b"true").map_err(|_| ())?;
            IType::Bool
        }
        b'f' => {
            p.lit(b"false").map_err(|_| ())?;
            IType::Bool
        }
        b'n' => {
            p.lit(b"null").map_err(|_| ())?;
            IType::Null
        }
        b'[' => {
            p.pos += 1;
            p.ws();
            let mut t = IType::Null;
            if p.peek() == b']' {
                p.pos += 1;
            } else {
                loop {
                    t = t.merge(infer_value(p, scratch, depth + 1)?);
                    p.ws();
                    match p.peek() {
                        b',' => {
                            p.pos += 1;
                            p.ws();
                        }
                        b']' => {
                            p.pos += 1;
                            break;
                        }
                        _ => return Err(()),
                    }
                }
            }
            IType::List(Box::new(t))
        }
        b'{' => IType::Struct(infer_object(p, scratch, depth)?),
        _ => return Err(()),
    })
}

fn infer_object(
    p: &mut Parser,
    scratch: &mut Vec<u8>,
    depth: u32,
) -> Result<Vec<(String, IType)>, ()> {
    p.pos += 1;
    p.ws();
    let mut fields = Vec::new();
    if p.peek() == b'}' {
        p.pos += 1;
        return Ok(fields);
    }
    loop {
        if p.peek() != b'"' {
            return Err(());
        }
        let name = String::from_utf8_lossy(p.string_ref(scratch).map_err(|_| ())?).to_lowercase();
        p.ws();
        p.expect(b':', "':'").map_err(|_| ())?;
        p.ws();
        let t = infer_value(p, scratch, depth + 1)?;
        merge_field(&mut fields, name, t);
        p.ws();
        match p.peek() {
            b',' => {
                p.pos += 1;
                p.ws();
            }
            b'}' => {
                p.pos += 1;
                return Ok(fields);
            }
            _ => return Err(()),
        }
    }
}

/// A string inferred as a timestamp: an ISO-8601 / `yyyy-MM-dd HH:mm:ss` date *and* time.
fn looks_like_timestamp(s: &[u8]) -> bool {
    s.len() >= 16
        && s.len() <= 40
        && s[0].is_ascii_digit()
        && s[4] == b'-'
        && time::parse_default_timestamp(s, false).is_some()
}

/// The schema of a batch of JSON records (see [`super::infer_schema`]).
pub(crate) fn infer(records: &[&[u8]]) -> Result<Schema, ConvertError> {
    let mut fields: Vec<(String, IType)> = Vec::new();
    let mut objects = 0usize;
    let mut scratch = Vec::new();
    for rec in records {
        if std::str::from_utf8(rec).is_err() {
            continue;
        }
        // Infer from a record only when all of it parses, as conversion would accept it.
        let mut p = Parser::new(rec);
        let mut rec_fields: Vec<(String, IType)> = Vec::new();
        let mut n = 0;
        let ok = loop {
            p.ws();
            if p.at_end() {
                break n > 0;
            }
            if p.peek() != b'{' {
                break false;
            }
            match infer_object(&mut p, &mut scratch, 0) {
                Ok(f) => {
                    for (name, t) in f {
                        merge_field(&mut rec_fields, name, t);
                    }
                    n += 1;
                }
                Err(()) => break false,
            }
        };
        if ok {
            objects += n;
            for (name, t) in rec_fields {
                merge_field(&mut fields, name, t);
            }
        }
    }
    if objects == 0 {
        return Err(ConvertError::NoRecords(
            "no record is a valid JSON object: cannot infer a schema".into(),
        ));
    }
    Ok(Schema::new(
        fields
            .iter()
            .map(|(n, t)| Field::new(n, t.to_arrow(), true))
            .collect::<Vec<_>>(),
    ))
}

/// See [`super::merge_schema`].
pub(crate) fn merge(current: &Schema, new_fields: &Schema) -> Option<Schema> {
    let mut fields: Vec<Arc<Field>> = current.fields().iter().cloned().collect();
    let mut added = false;
    for f in new_fields.fields() {
        let exists = fields
            .iter()
            .any(|c| c.name().eq_ignore_ascii_case(f.name()));
        if !exists {
            fields.push(Arc::new(
                Field::new(f.name().to_lowercase(), f.data_type().clone(), true)
                    .with_metadata(f.metadata().clone()),
            ));
            added = true;
        }
    }
    added.then(|| Schema::new_with_metadata(fields, current.metadata().clone()))
}
