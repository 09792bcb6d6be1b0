//! Hive column types — the `Type` strings of Glue columns — parsed into [`HiveType`] and mapped
//! to and from Arrow.
//!
//! | Hive | Arrow |
//! |---|---|
//! | `string`, `char(n)`, `varchar(n)` | `Utf8` |
//! | `tinyint` / `smallint` / `int` (`integer`) / `bigint` | `Int8` / `Int16` / `Int32` / `Int64` |
//! | `float` / `double` | `Float32` / `Float64` |
//! | `boolean` | `Boolean` |
//! | `timestamp` | `Timestamp(Millisecond, None)` — Athena/Hive timestamps have millisecond precision |
//! | `date` | `Date32` |
//! | `decimal`, `decimal(p)`, `decimal(p,s)` | `Decimal128(p, s)` (default `(10,0)`, `1 <= p <= 38`, `0 <= s <= p`) |
//! | `binary` | `Binary` |
//! | `array<T>` | `List` of a nullable field `item` |
//! | `map<K,V>` | `Map` of non-null `entries: struct<key: K not null, value: V>`, keys unsorted |
//! | `struct<a:T,b:U>` | `Struct` of nullable fields |
//!
//! Parsing follows Hive's `TypeInfoParser`: type names are case-insensitive, whitespace around
//! tokens is ignored, and errors read like Hive's (and so Glue's), e.g. `Error: type expected at
//! the position 0 of 'double precision' but 'double precision' is found.` Struct field names may
//! contain any character but `:`, `,`, `<`, `>`, `(`, `)` and `` ` ``; others can be written in backquotes
//! (`` struct<`a:b`:int> ``). `uniontype<...>` parses (Glue accepts it) but has no Arrow
//! mapping. Nesting is limited to [`MAX_DEPTH`] levels so hostile input cannot exhaust the stack.

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, TimeUnit};

use crate::{CatalogError, Result};

/// Deepest nesting of `array`/`map`/`struct`/`uniontype` accepted.
pub const MAX_DEPTH: usize = 64;
/// Largest decimal precision (Hive's and `Decimal128`'s).
pub const MAX_DECIMAL_PRECISION: u32 = 38;

/// A parsed Hive type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HiveType {
    /// `string`.
    String,
    /// `char(n)`, `1 <= n <= 255`.
    Char(u32),
    /// `varchar(n)`, `1 <= n <= 65535`.
    Varchar(u32),
    /// `boolean`.
    Boolean,
    /// `tinyint`.
    TinyInt,
    /// `smallint`.
    SmallInt,
    /// `int` (also written `integer`).
    Int,
    /// `bigint`.
    BigInt,
    /// `float`.
    Float,
    /// `double`.
    Double,
    /// `date`.
    Date,
    /// `timestamp`.
    Timestamp,
    /// `binary`.
    Binary,
    /// `decimal(precision, scale)`.
    Decimal(u8, i8),
    /// `array<T>`.
    Array(Box<HiveType>),
    /// `map<K,V>`.
    Map(Box<HiveType>, Box<HiveType>),
    /// `struct<name:T,...>` (at least one field).
    Struct(Vec<(String, HiveType)>),
    /// `uniontype<T,...>` (no Arrow mapping).
    Union(Vec<HiveType>),
}

/// The Arrow type of a Hive type string (see the module table).
pub fn hive_to_arrow(hive_type: &str) -> Result<DataType, CatalogError> {
    HiveType::parse(hive_type)?.to_arrow()
}

/// The Hive type string of an Arrow type, for schema inference; `None` when Hive has no
/// equivalent (`Null`, time of day, durations, intervals, unions, empty structs).
pub fn arrow_to_hive(dt: &DataType) -> Option<String> {
    HiveType::from_arrow(dt).map(|t| t.to_string())
}

impl HiveType {
    /// Parses a Hive type string.
    pub fn parse(s: &str) -> Result<Self> {
        let mut p = Parser {
            src: s,
            chars: s.chars().collect(),
            pos: 0,
        };
        let t = p.parse_type(0)?;
        p.skip_ws();
        if p.pos < p.chars.len() {
            let (at, tok) = p.token_at(p.pos);
            return Err(invalid(format!(
                "Error: unexpected '{tok}' at the position {at} of '{s}'."
            )));
        }
        Ok(t)
    }

    /// Whether this is a primitive (non-nested) type; partition keys must be.
    pub fn is_primitive(&self) -> bool {
        !matches!(
            self,
            HiveType::Array(_) | HiveType::Map(..) | HiveType::Struct(_) | HiveType::Union(_)
        )
    }

    /// Whether values compare as numbers (integers, floats, decimals).
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            HiveType::TinyInt
                | HiveType::SmallInt
                | HiveType::Int
                | HiveType::BigInt
                | HiveType::Float
                | HiveType::Double
                | HiveType::Decimal(..)
        )
    }

    /// The Arrow type (see the module table).
    pub fn to_arrow(&self) -> Result<DataType> {
        Ok(match self {
            HiveType::String | HiveType::Char(_) | HiveType::Varchar(_) => DataType::Utf8,
            HiveType::Boolean => DataType::Boolean,
            HiveType::TinyInt => DataType::Int8,
            HiveType::SmallInt => DataType::Int16,
            HiveType::Int => DataType::Int32,
            HiveType::BigInt => DataType::Int64,
            HiveType::Float => DataType::Float32,
            HiveType::Double => DataType::Float64,
            HiveType::Date => DataType::Date32,
            HiveType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
            HiveType::Binary => DataType::Binary,
            HiveType::Decimal(p, s) => DataType::Decimal128(*p, *s),
            HiveType::Array(item) => {
                DataType::List(Arc::new(Field::new_list_field(item.to_arrow()?, true)))
            }
            HiveType::Map(k, v) => {
                let entries = Fields::from(vec![
                    Field::new("key", k.to_arrow()?, false),
                    Field::new("value", v.to_arrow()?, true),
                ]);
                DataType::Map(
                    Arc::new(Field::new("entries", DataType::Struct(entries), false)),
                    false,
                )
            }
            HiveType::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|(name, t)| Ok(Field::new(name, t.to_arrow()?, true)))
                    .collect::<Result<Fields>>()?,
            ),
            HiveType::Union(_) => {
                return Err(invalid(format!(
                    "Type '{self}' is not supported: uniontype has no Arrow mapping."
                )));
            }
        })
    }

    /// The Hive type for an Arrow type; `None` when there is none (see [`arrow_to_hive`]).
    pub fn from_arrow(dt: &DataType) -> Option<Self> {
        Some(match dt {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => HiveType::String,
            DataType::Boolean => HiveType::Boolean,
            DataType::Int8 => HiveType::TinyInt,
            DataType::Int16 | DataType::UInt8 => HiveType::SmallInt,
            DataType::Int32 | DataType::UInt16 => HiveType::Int,
            DataType::Int64 | DataType::UInt32 => HiveType::BigInt,
            DataType::UInt64 => HiveType::Decimal(20, 0),
            DataType::Float16 | DataType::Float32 => HiveType::Float,
            DataType::Float64 => HiveType::Double,
            DataType::Date32 | DataType::Date64 => HiveType::Date,
            DataType::Timestamp(_, _) => HiveType::Timestamp,
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => HiveType::Binary,
            DataType::Decimal32(p, s)
            | DataType::Decimal64(p, s)
            | DataType::Decimal128(p, s)
            | DataType::Decimal256(p, s) => {
                if *p == 0 || u32::from(*p) > MAX_DECIMAL_PRECISION || *s < 0 || *s as u8 > *p {
                    return None;
                }
                HiveType::Decimal(*p, *s)
            }
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::ListView(f)
            | DataType::LargeListView(f)
            | DataType::FixedSizeList(f, _) => {
                HiveType::Array(Box::new(Self::from_arrow(f.data_type())?))
            }
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => HiveType::Map(
                    Box::new(Self::from_arrow(kv[0].data_type())?),
                    Box::new(Self::from_arrow(kv[1].data_type())?),
                ),
                _ => return None,
            },
            DataType::Struct(fields) if !fields.is_empty() => HiveType::Struct(
                fields
                    .iter()
                    .map(|f| Some((f.name().clone(), Self::from_arrow(f.data_type())?)))
                    .collect::<Option<Vec<_>>>()?,
            ),
            DataType::Dictionary(_, v) => Self::from_arrow(v)?,
            DataType::RunEndEncoded(_, v) => Self::from_arrow(v.data_type())?,
            _ => return None,
        })
    }
}

impl fmt::Display for HiveType {
    /// The canonical (lower-case, no spaces) Hive spelling; it parses back to `self`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HiveType::String => f.write_str("string"),
            HiveType::Char(n) => write!(f, "char({n})"),
            HiveType::Varchar(n) => write!(f, "varchar({n})"),
            HiveType::Boolean => f.write_str("boolean"),
            HiveType::TinyInt => f.write_str("tinyint"),
            HiveType::SmallInt => f.write_str("smallint"),
            HiveType::Int => f.write_str("int"),
            HiveType::BigInt => f.write_str("bigint"),
            HiveType::Float => f.write_str("float"),
            HiveType::Double => f.write_str("double"),
            HiveType::Date => f.write_str("date"),
            HiveType::Timestamp => f.write_str("timestamp"),
            HiveType::Binary => f.write_str("binary"),
            HiveType::Decimal(p, s) => write!(f, "decimal({p},{s})"),
            HiveType::Array(t) => write!(f, "array<{t}>"),
            HiveType::Map(k, v) => write!(f, "map<{k},{v}>"),
            HiveType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, (name, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write_field_name(f, name)?;
                    write!(f, ":{t}")?;
                }
                f.write_str(">")
            }
            HiveType::Union(types) => {
                f.write_str("uniontype<")?;
                for (i, t) in types.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str(">")
            }
        }
    }
}

/// Writes a struct field name, backquoted when it would not parse back bare.
fn write_field_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    let bare = !name.is_empty()
        && name.trim() == name
        && !name.contains([':', ',', '<', '>', '(', ')', '`']);
    if bare {
        f.write_str(name)
    } else {
        write!(f, "`{}`", name.replace('`', "``"))
    }
}

fn invalid(message: String) -> CatalogError {
    CatalogError::InvalidInput(message)
}

/// Characters of a word token, as in Hive's `TypeInfoParser.isTypeChar` (space included, so
/// `double precision` is one, unknown, token — as in Hive).
fn is_type_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ' ' | '$')
}

struct Parser<'a> {
    src: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    /// The token starting at `at` (after whitespace), for error messages: its position and text.
    fn token_at(&self, at: usize) -> (usize, String) {
        let mut start = at;
        while self.chars.get(start).is_some_and(|c| c.is_whitespace()) {
            start += 1;
        }
        let Some(&c) = self.chars.get(start) else {
            return (start, String::new());
        };
        if is_type_char(c) {
            let end = (start..self.chars.len())
                .find(|&i| !is_type_char(self.chars[i]))
                .unwrap_or(self.chars.len());
            let text: String = self.chars[start..end].iter().collect();
            (start, text.trim_end().to_string())
        } else {
            (start, c.to_string())
        }
    }

    fn expected(&self, item: &str, at: usize) -> CatalogError {
        let (at, tok) = self.token_at(at);
        if at >= self.chars.len() {
            invalid(format!(
                "Error: {item} expected at the end of '{}'",
                self.src
            ))
        } else {
            invalid(format!(
                "Error: {item} expected at the position {at} of '{}' but '{tok}' is found.",
                self.src
            ))
        }
    }

    /// A word of type characters, trimmed; returns its start and text (empty if none).
    fn word(&mut self) -> (usize, String) {
        self.skip_ws();
        let start = self.pos;
        while self.chars.get(self.pos).is_some_and(|&c| is_type_char(c)) {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        (start, text.trim_end().to_string())
    }

    /// Consumes `sym` (after whitespace) if it is next.
    fn eat(&mut self, sym: char) -> bool {
        self.skip_ws();
        if self.chars.get(self.pos) == Some(&sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: char) -> Result<()> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(self.expected(&sym.to_string(), self.pos))
        }
    }

    fn number(&mut self) -> Result<u32> {
        let (at, text) = self.word();
        text.parse::<u32>().map_err(|_| self.expected("number", at))
    }

    /// A `(n)` length for `char`/`varchar`, checked against `1..=max`.
    fn length(&mut self, name: &str, max: u32) -> Result<u32> {
        if !self.eat('(') {
            return Err(invalid(format!(
                "{name} type is specified without length: {}",
                self.src
            )));
        }
        let n = self.number()?;
        self.expect(')')?;
        let label = if name == "char" { "Char" } else { "Varchar" };
        if n == 0 || n > max {
            return Err(invalid(format!(
                "{label} length {n} out of allowed range [1, {max}]"
            )));
        }
        Ok(n)
    }

    fn field_name(&mut self) -> Result<String> {
        self.skip_ws();
        let start = self.pos;
        if self.eat('`') {
            let mut name = String::new();
            loop {
                match self.chars.get(self.pos) {
                    None => return Err(self.expected("`", self.pos)),
                    Some('`') if self.chars.get(self.pos + 1) == Some(&'`') => {
                        name.push('`');
                        self.pos += 2;
                    }
                    Some('`') => {
                        self.pos += 1;
                        return Ok(name);
                    }
                    Some(&c) => {
                        name.push(c);
                        self.pos += 1;
                    }
                }
            }
        }
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| !matches!(c, ':' | ',' | '<' | '>' | '(' | ')' | '`'))
        {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        let name = name.trim();
        if name.is_empty() {
            return Err(self.expected("name", start));
        }
        Ok(name.to_string())
    }

    fn parse_type(&mut self, depth: usize) -> Result<HiveType> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!(
                "Error: type '{}' nests deeper than {MAX_DEPTH} levels.",
                self.src
            )));
        }
        let (at, word) = self.word();
        if word.is_empty() {
            return Err(self.expected("type", at));
        }
        Ok(match word.to_ascii_lowercase().as_str() {
            "string" => HiveType::String,
            "boolean" => HiveType::Boolean,
            "tinyint" => HiveType::TinyInt,
            "smallint" => HiveType::SmallInt,
            "int" | "integer" => HiveType::Int,
            "bigint" => HiveType::BigInt,
            "float" => HiveType::Float,
            "double" => HiveType::Double,
            "date" => HiveType::Date,
            "timestamp" => HiveType::Timestamp,
            "binary" => HiveType::Binary,
            "char" => HiveType::Char(self.length("char", 255)?),
            "varchar" => HiveType::Varchar(self.length("varchar", 65535)?),
            "decimal" => {
                let (mut p, mut s) = (10, 0);
                if self.eat('(') {
                    p = self.number()?;
                    s = if self.eat(',') { self.number()? } else { 0 };
                    self.expect(')')?;
                }
                if p == 0 || p > MAX_DECIMAL_PRECISION {
                    return Err(invalid(format!(
                        "Decimal precision out of allowed range [1,{MAX_DECIMAL_PRECISION}]"
                    )));
                }
                if s > p {
                    return Err(invalid(
                        "Decimal scale must be less than or equal to precision".to_string(),
                    ));
                }
                // Both bounded by 38 above.
                HiveType::Decimal(p as u8, s as i8)
            }
            "array" => {
                self.expect('<')?;
                let item = self.parse_type(depth + 1)?;
                self.expect('>')?;
                HiveType::Array(Box::new(item))
            }
            "map" => {
                self.expect('<')?;
                let k = self.parse_type(depth + 1)?;
                self.expect(',')?;
                let v = self.parse_type(depth + 1)?;
                self.expect('>')?;
                HiveType::Map(Box::new(k), Box::new(v))
            }
            "struct" => {
                self.expect('<')?;
                let mut fields = Vec::new();
                loop {
                    let name = self.field_name()?;
                    self.expect(':')?;
                    fields.push((name, self.parse_type(depth + 1)?));
                    if !self.eat(',') {
                        break;
                    }
                }
                self.expect('>')?;
                HiveType::Struct(fields)
            }
            "uniontype" => {
                self.expect('<')?;
                let mut types = vec![self.parse_type(depth + 1)?];
                while self.eat(',') {
                    types.push(self.parse_type(depth + 1)?);
                }
                self.expect('>')?;
                HiveType::Union(types)
            }
            _ => {
                return Err(invalid(format!(
                    "Error: type expected at the position {at} of '{}' but '{word}' is found.",
                    self.src
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(t: DataType) -> DataType {
        DataType::List(Arc::new(Field::new("item", t, true)))
    }

    fn map(k: DataType, v: DataType) -> DataType {
        DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", k, false),
                    Field::new("value", v, true),
                ])),
                false,
            )),
            false,
        )
    }

    fn strukt(fields: Vec<(&str, DataType)>) -> DataType {
        DataType::Struct(
            fields
                .into_iter()
                .map(|(n, t)| Field::new(n, t, true))
                .collect(),
        )
    }

    #[test]
    fn primitives() {
        let cases = [
            ("string", DataType::Utf8),
            ("char(10)", DataType::Utf8),
            ("varchar(65535)", DataType::Utf8),
            ("boolean", DataType::Boolean),
            ("tinyint", DataType::Int8),
            ("smallint", DataType::Int16),
            ("int", DataType::Int32),
            ("integer", DataType::Int32),
            ("bigint", DataType::Int64),
            ("float", DataType::Float32),
            ("double", DataType::Float64),
            ("date", DataType::Date32),
            (
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, None),
            ),
            ("binary", DataType::Binary),
            ("decimal", DataType::Decimal128(10, 0)),
            ("decimal(12)", DataType::Decimal128(12, 0)),
            ("decimal(38,10)", DataType::Decimal128(38, 10)),
            ("decimal( 5 , 2 )", DataType::Decimal128(5, 2)),
        ];
        for (hive, arrow) in cases {
            assert_eq!(hive_to_arrow(hive).unwrap(), arrow, "{hive}");
        }
    }

    #[test]
    fn case_and_whitespace_insensitive() {
        assert_eq!(hive_to_arrow("  BIGINT ").unwrap(), DataType::Int64);
        assert_eq!(hive_to_arrow("String").unwrap(), DataType::Utf8);
        assert_eq!(
            hive_to_arrow(" ARRAY < Map < STRING , INT > > ").unwrap(),
            list(map(DataType::Utf8, DataType::Int32))
        );
        assert_eq!(
            hive_to_arrow("Struct< a : Int, B:Decimal(4,1) >").unwrap(),
            strukt(vec![
                ("a", DataType::Int32),
                ("B", DataType::Decimal128(4, 1))
            ])
        );
    }

    #[test]
    fn nested() {
        assert_eq!(hive_to_arrow("array<int>").unwrap(), list(DataType::Int32));
        assert_eq!(
            hive_to_arrow("map<string,array<double>>").unwrap(),
            map(DataType::Utf8, list(DataType::Float64))
        );
        let t = "struct<id:bigint,tags:array<string>,attrs:map<string,struct<x:int,y:timestamp>>,inner:struct<d:date,b:binary>>";
        assert_eq!(
            hive_to_arrow(t).unwrap(),
            strukt(vec![
                ("id", DataType::Int64),
                ("tags", list(DataType::Utf8)),
                (
                    "attrs",
                    map(
                        DataType::Utf8,
                        strukt(vec![
                            ("x", DataType::Int32),
                            ("y", DataType::Timestamp(TimeUnit::Millisecond, None))
                        ])
                    )
                ),
                (
                    "inner",
                    strukt(vec![("d", DataType::Date32), ("b", DataType::Binary)])
                ),
            ])
        );
        assert_eq!(
            hive_to_arrow("array<array<array<boolean>>>").unwrap(),
            list(list(list(DataType::Boolean)))
        );
    }

    #[test]
    fn field_names() {
        assert_eq!(
            hive_to_arrow("struct<first name:string,user-id:int,`a:b`:int,`x``y`:int>").unwrap(),
            strukt(vec![
                ("first name", DataType::Utf8),
                ("user-id", DataType::Int32),
                ("a:b", DataType::Int32),
                ("x`y", DataType::Int32),
            ])
        );
    }

    #[test]
    fn errors_read_like_hive() {
        let msg = |s: &str| match HiveType::parse(s) {
            Err(CatalogError::InvalidInput(m)) => m,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(
            msg("double precision"),
            "Error: type expected at the position 0 of 'double precision' but 'double precision' is found."
        );
        assert_eq!(
            msg("array<foo>"),
            "Error: type expected at the position 6 of 'array<foo>' but 'foo' is found."
        );
        assert_eq!(
            msg("array<int"),
            "Error: > expected at the end of 'array<int'"
        );
        assert_eq!(
            msg("struct<a:>"),
            "Error: type expected at the position 9 of 'struct<a:>' but '>' is found."
        );
        assert_eq!(msg(""), "Error: type expected at the end of ''");
        assert_eq!(
            msg("map<string>"),
            "Error: , expected at the position 10 of 'map<string>' but '>' is found."
        );
        assert!(msg("int>").contains("unexpected '>'"));
        assert!(msg("decimal(39,1)").contains("precision out of allowed range"));
        assert!(msg("decimal(5,6)").contains("scale"));
        assert!(msg("char(0)").contains("Char length 0"));
        assert!(msg("varchar(70000)").contains("Varchar length"));
        assert!(msg("varchar").contains("without length"));
        assert!(msg("struct<>").contains("name expected"));
        let deep = "array<".repeat(MAX_DEPTH + 2) + "int" + &">".repeat(MAX_DEPTH + 2);
        assert!(msg(&deep).contains("nests deeper"));
        let ok = "array<".repeat(MAX_DEPTH) + "int" + &">".repeat(MAX_DEPTH);
        assert!(HiveType::parse(&ok).is_ok());
    }

    #[test]
    fn union_parses_but_has_no_arrow_type() {
        let t = HiveType::parse("uniontype<int,string>").unwrap();
        assert!(!t.is_primitive());
        assert!(t.to_arrow().is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "string",
            "char(3)",
            "varchar(20)",
            "decimal(10,2)",
            "array<map<string,struct<a:int,`b:c`:array<bigint>>>>",
            "uniontype<int,double>",
            "struct<first name:string>",
        ] {
            let t = HiveType::parse(s).unwrap();
            assert_eq!(t.to_string(), s);
            assert_eq!(HiveType::parse(&t.to_string()).unwrap(), t);
        }
    }

    #[test]
    fn arrow_round_trip() {
        for s in [
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
            "binary",
            "decimal(38,9)",
            "array<string>",
            "map<string,bigint>",
            "struct<a:int,b:array<struct<c:double>>,m:map<int,date>>",
        ] {
            let arrow = hive_to_arrow(s).unwrap();
            assert_eq!(arrow_to_hive(&arrow).as_deref(), Some(s), "{s}");
        }
    }

    #[test]
    fn arrow_to_hive_widens_and_refuses() {
        assert_eq!(arrow_to_hive(&DataType::LargeUtf8).unwrap(), "string");
        assert_eq!(arrow_to_hive(&DataType::UInt32).unwrap(), "bigint");
        assert_eq!(arrow_to_hive(&DataType::UInt64).unwrap(), "decimal(20,0)");
        assert_eq!(
            arrow_to_hive(&DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some("UTC".into())
            ))
            .unwrap(),
            "timestamp"
        );
        assert_eq!(
            arrow_to_hive(&DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8)
            ))
            .unwrap(),
            "string"
        );
        assert_eq!(
            arrow_to_hive(&DataType::LargeList(Arc::new(Field::new(
                "x",
                DataType::Int64,
                true
            ))))
            .unwrap(),
            "array<bigint>"
        );
        assert_eq!(
            arrow_to_hive(&strukt(vec![("a:b", DataType::Int32)])).unwrap(),
            "struct<`a:b`:int>"
        );
        assert!(arrow_to_hive(&DataType::Null).is_none());
        assert!(arrow_to_hive(&list(DataType::Null)).is_none());
        assert!(arrow_to_hive(&DataType::Struct(Fields::empty())).is_none());
        assert!(arrow_to_hive(&DataType::Decimal256(76, 2)).is_none());
        assert!(arrow_to_hive(&DataType::Time64(TimeUnit::Microsecond)).is_none());
    }
}
