//! Hive (Glue) column types <-> Arrow types, schema inference from JSON records, and schema
//! evolution.
//!
//! Invariants: inferred schemas have lower-case names and only nullable fields; merging never
//! changes an existing column (name, type or position), it only appends.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};

use super::ConvertError;
use super::json::Parser;
use super::time;

/// The Arrow type conversion produces for a Hive type string: `string`/`varchar(n)`/`char(n)`
/// -> Utf8, `tinyint`..`bigint` -> Int8..Int64, `float`/`double`, `boolean`, `timestamp` ->
/// Timestamp(ms, none) (UTC), `date` -> Date32, `decimal(p,s)` -> Decimal128, `binary`,
/// `array<T>` -> List(item), `map<K,V>` -> Map(entries{key,value}), `struct<a:T,...>`.
pub fn hive_type_to_arrow(hive: &str) -> Result<DataType, ConvertError> {
    let mut p = TypeParser {
        s: hive.as_bytes(),
        i: 0,
    };
    let t = p.parse()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err());
    }
    Ok(t)
}

/// A schema from `(name, hive type)` columns; names are lower-cased, every field nullable.
pub fn hive_columns_to_schema<S: AsRef<str>, T: AsRef<str>>(
    columns: &[(S, T)],
) -> Result<Schema, ConvertError> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, t)| {
            Ok(Field::new(
                n.as_ref().to_lowercase(),
                hive_type_to_arrow(t.as_ref())?,
                true,
            ))
        })
        .collect::<Result<_, ConvertError>>()?;
    Ok(Schema::new(fields))
}

/// The Hive type of an Arrow type (the inverse of [`hive_type_to_arrow`]), `None` for types
/// Hive has no name for.
pub fn arrow_to_hive_type(dt: &DataType) -> Option<String> {
    Some(match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Binary | DataType::LargeBinary => "binary".into(),
        DataType::List(f) | DataType::LargeList(f) => {
            format!("array<{}>", arrow_to_hive_type(f.data_type())?)
        }
        DataType::Map(e, _) => match e.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{},{}>",
                arrow_to_hive_type(kv[0].data_type())?,
                arrow_to_hive_type(kv[1].data_type())?
            ),
            _ => return None,
        },
        DataType::Struct(fields) => {
            let parts: Option<Vec<String>> = fields
                .iter()
                .map(|f| {
                    Some(format!(
                        "{}:{}",
                        f.name(),
                        arrow_to_hive_type(f.data_type())?
                    ))
                })
                .collect();
            format!("struct<{}>", parts?.join(","))
        }
        _ => return None,
    })
}

struct TypeParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl TypeParser<'_> {
    fn err(&self) -> ConvertError {
        ConvertError::UnsupportedSchema(format!(
            "cannot parse Hive type '{}' at position {}",
            String::from_utf8_lossy(self.s),
            self.i
        ))
    }

    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn word(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).to_lowercase()
    }

    fn number(&mut self) -> Result<u32, ConvertError> {
        let w = self.word();
        w.parse().map_err(|_| self.err())
    }

    fn parse(&mut self) -> Result<DataType, ConvertError> {
        let name = self.word();
        Ok(match name.as_str() {
            "string" => DataType::Utf8,
            "varchar" | "char" => {
                if self.eat(b'(') {
                    self.number()?;
                    if !self.eat(b')') {
                        return Err(self.err());
                    }
                }
                DataType::Utf8
            }
            "boolean" => DataType::Boolean,
            "tinyint" => DataType::Int8,
            "smallint" => DataType::Int16,
            "int" | "integer" => DataType::Int32,
            "bigint" => DataType::Int64,
            "float" => DataType::Float32,
            "double" => DataType::Float64,
            "date" => DataType::Date32,
            "timestamp" => DataType::Timestamp(TimeUnit::Millisecond, None),
            "binary" => DataType::Binary,
            "decimal" | "numeric" => {
                let (mut p, mut s) = (10, 0);
                if self.eat(b'(') {
                    p = self.number()?;
                    if self.eat(b',') {
                        s = self.number()?;
                    }
                    if !self.eat(b')') {
                        return Err(self.err());
                    }
                }
                if p == 0 || p > 38 || s > p {
                    return Err(self.err());
                }
                DataType::Decimal128(p as u8, s as i8)
            }
            "array" => {
                if !self.eat(b'<') {
                    return Err(self.err());
                }
                let item = self.parse()?;
                if !self.eat(b'>') {
                    return Err(self.err());
                }
                DataType::List(Arc::new(Field::new_list_field(item, true)))
            }
            "map" => {
                if !self.eat(b'<') {
                    return Err(self.err());
                }
                let k = self.parse()?;
                if !self.eat(b',') {
                    return Err(self.err());
                }
                let v = self.parse()?;
                if !self.eat(b'>') {
                    return Err(self.err());
                }
                map_type(k, v)
            }
            "struct" => {
                if !self.eat(b'<') {
                    return Err(self.err());
                }
                let mut fields = Vec::new();
                if !self.eat(b'>') {
                    loop {
                        self.ws();
                        let start = self.i;
                        while self
                            .s
                            .get(self.i)
                            .is_some_and(|c| !matches!(c, b':' | b',' | b'<' | b'>'))
                        {
                            self.i += 1;
                        }
                        let name = String::from_utf8_lossy(&self.s[start..self.i])
                            .trim()
                            .trim_matches('`')
                            .to_lowercase();
                        if name.is_empty() || !self.eat(b':') {
                            return Err(self.err());
                        }
                        fields.push(Field::new(name, self.parse()?, true));
                        if self.eat(b'>') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(self.err());
                        }
                    }
                }
                if fields.is_empty() {
                    return Err(self.err());
                }
                DataType::Struct(Fields::from(fields))
            }
            _ => return Err(self.err()),
        })
    }
}

/// Arrow's map type as conversion builds it: `entries` struct of non-null `key` and nullable
/// `value`, keys unsorted.
pub fn map_type(key: DataType, value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", key, false),
                Field::new("value", value, true),
            ])),
            false,
        )),
        false,
    )
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_types_round_trip() {
        for t in [
            "string",
            "boolean",
            "tinyint",
            "smallint",
            "int",
            "bigint",
            "float",
            "double",
            "date",
            "timestamp",
            "decimal(12,3)",
            "binary",
            "array<string>",
            "map<string,int>",
            "struct<a:int,b:array<struct<c:string>>>",
        ] {
            let dt = hive_type_to_arrow(t).unwrap();
            assert_eq!(arrow_to_hive_type(&dt).unwrap(), t);
        }
        assert_eq!(hive_type_to_arrow("varchar(10)").unwrap(), DataType::Utf8);
        assert_eq!(
            hive_type_to_arrow("decimal").unwrap(),
            DataType::Decimal128(10, 0)
        );
        assert_eq!(
            hive_type_to_arrow(" STRUCT< A : INT , `b c`:string > ").unwrap(),
            DataType::Struct(
                vec![
                    Field::new("a", DataType::Int32, true),
                    Field::new("b c", DataType::Utf8, true)
                ]
                .into()
            )
        );
        for bad in [
            "",
            "strin",
            "array<int",
            "decimal(40,2)",
            "map<int>",
            "struct<>",
            "int x",
        ] {
            assert!(hive_type_to_arrow(bad).is_err(), "{bad}");
        }
    }
}
