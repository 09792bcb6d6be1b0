//! Schema-driven JSON -> Arrow decoding, one pass, straight into column builders.
//!
//! Invariants:
//! - Every builder holds the same number of rows as its parent (top-level columns: the number
//!   of rows decoded so far). A record is decoded completely or not at all: on any error every
//!   column is truncated back to the row count before the record ([`Col::truncate`]), so one
//!   bad record never disturbs its neighbours.
//! - The arrays built by [`RecordDecoder::finish`] have exactly the schema's data types, field
//!   names, nullability and metadata (they are built from the schema's own `Field`s).
//! - Key matching is decided per struct and per key position: a small cache remembers which
//!   column the key at position k of the previous object went to, so records whose keys come
//!   in a stable order (the usual case) cost one byte comparison per key; anything else goes
//!   through the normalised lookup (case folding, dots to underscores, column mappings).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BinaryArray, BooleanArray, ListArray, MapArray, NullArray,
    PrimitiveArray, RecordBatch, RecordBatchOptions, StringArray, StructArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use arrow_buffer::{BooleanBufferBuilder, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, FieldRef, Fields, SchemaRef, TimeUnit};

use super::json::{Parser, key_eq};
use super::time::{self, TimestampFormat};
use super::{ConversionConfig, ConvertError, FailedRecord, InputSerde, OutputFormat};

/// Firehose's error code for a record that is not valid JSON.
pub const PARSE_ERROR: &str = "DataFormatConversion.ParseError";
/// Firehose's error code for a record whose values do not fit the schema.
pub const MALFORMED_DATA: &str = "DataFormatConversion.MalformedData";

/// Why one record failed.
#[derive(Debug)]
pub(crate) struct RecErr {
    parse: bool,
    msg: String,
    /// The column path, filled in while the error unwinds.
    path: String,
}

pub(crate) type Res<T = ()> = Result<T, Box<RecErr>>;

impl RecErr {
    #[cold]
    pub(crate) fn parse(msg: String) -> Box<RecErr> {
        Box::new(RecErr {
            parse: true,
            msg,
            path: String::new(),
        })
    }

    #[cold]
    pub(crate) fn malformed(msg: String) -> Box<RecErr> {
        Box::new(RecErr {
            parse: false,
            msg,
            path: String::new(),
        })
    }

    #[cold]
    fn in_column(mut self: Box<Self>, name: &str) -> Box<Self> {
        self.path = if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{name}.{}", self.path)
        };
        self
    }

    pub(crate) fn code(&self) -> &'static str {
        if self.parse {
            PARSE_ERROR
        } else {
            MALFORMED_DATA
        }
    }

    pub(crate) fn message(&self) -> String {
        let mut m = if self.parse {
            format!("Encountered malformed JSON. {}", self.msg)
        } else {
            self.msg.clone()
        };
        if !self.path.is_empty() {
            m.push_str(&format!(" (column '{}')", self.path));
        }
        m
    }
}

#[cold]
fn mismatch(detail: impl std::fmt::Display) -> Box<RecErr> {
    RecErr::malformed(format!("Data does not match the schema. {detail}"))
}

#[cold]
fn bad_input(text: &[u8]) -> Box<RecErr> {
    mismatch(format_args!(
        "For input string: \"{}\"",
        String::from_utf8_lossy(&text[..text.len().min(200)])
    ))
}

/// What a JSON token is, for messages.
fn token_name(c: u8) -> &'static str {
    match c {
        b'{' => "START_OBJECT",
        b'[' => "START_ARRAY",
        b'"' => "VALUE_STRING",
        b't' | b'f' => "VALUE_BOOLEAN",
        b'-' | b'0'..=b'9' => "VALUE_NUMBER",
        _ => "an unexpected token",
    }
}

#[cold]
fn wrong_token(c: u8, want: &str) -> Box<RecErr> {
    mismatch(format_args!(
        "Current token ({}) cannot be read as {want}",
        token_name(c)
    ))
}

/// The deserializer's rules, resolved once per conversion.
pub(crate) struct Ctx {
    /// OpenX leniency (see [`InputSerde::OpenX`]).
    lenient: bool,
    openx: bool,
    case_insensitive: bool,
    dots: bool,
    formats: Vec<TimestampFormat>,
    /// The output is ORC, which cannot store every instant (see [`Ctx::timestamp`]).
    orc: bool,
}

impl Ctx {
    pub(crate) fn new(config: &ConversionConfig) -> Result<Self, ConvertError> {
        let orc = matches!(config.output, OutputFormat::Orc(_));
        Ok(match &config.input {
            InputSerde::OpenX {
                case_insensitive,
                convert_dots_to_underscores,
                ..
            } => Ctx {
                lenient: true,
                openx: true,
                case_insensitive: *case_insensitive,
                dots: *convert_dots_to_underscores,
                formats: Vec::new(),
                orc,
            },
            InputSerde::Hive { timestamp_formats } => Ctx {
                lenient: false,
                openx: false,
                case_insensitive: true,
                dots: false,
                formats: timestamp_formats
                    .iter()
                    .map(|f| {
                        TimestampFormat::compile(f).map_err(|e| {
                            ConvertError::InvalidConfig(format!(
                                "invalid timestamp format '{f}': {e}"
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?,
                orc,
            },
        })
    }

    /// `(secs, nanos)` as a column value in `unit`. A record whose instant the output cannot
    /// store fails alone: out of range, or, in ORC, within the last second before 1970 with a
    /// fraction of a millisecond or more, which ORC's encoding cannot tell from an instant one
    /// second later (ORC-763; the writer would refuse the whole batch).
    fn timestamp(&self, secs: i64, nanos: u32, unit: TimeUnit) -> Result<i64, Box<RecErr>> {
        let v =
            time::to_unit(secs, nanos, unit).ok_or_else(|| mismatch("Timestamp out of range"))?;
        if self.orc && secs == -1 {
            let (_, stored_nanos) = time::from_unit(v, unit);
            if stored_nanos > 999_999 {
                return Err(mismatch(
                    "ORC cannot store an instant in the last second before 1970 with a fraction \
                     of a millisecond or more (ORC-763)",
                ));
            }
        }
        Ok(v)
    }

    /// The key as matched against columns: dots to underscores, case folded, as configured.
    fn normalize(&self, key: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(key);
        if self.dots {
            for b in out.iter_mut() {
                if *b == b'.' {
                    *b = b'_';
                }
            }
        }
        if self.case_insensitive {
            if out.is_ascii() {
                out.make_ascii_lowercase();
            } else {
                let lower = String::from_utf8_lossy(out).to_lowercase();
                out.clear();
                out.extend_from_slice(lower.as_bytes());
            }
        }
    }

    fn timestamp_str(&self, s: &[u8]) -> Option<(i64, u32)> {
        for f in &self.formats {
            if let Some(v) = f.parse(s) {
                return Some(v);
            }
        }
        if let Some(v) = time::parse_default_timestamp(s, true) {
            return Some(v);
        }
        if self.openx && !s.is_empty() {
            let is_int = s
                .iter()
                .enumerate()
                .all(|(i, &c)| c.is_ascii_digit() || (i == 0 && c == b'-'));
            return self.timestamp_number(s, is_int);
        }
        None
    }

    /// A JSON number as a timestamp. OpenX: integers of 13 digits or more are epoch
    /// milliseconds, shorter ones epoch seconds, fractions epoch seconds. Hive: integers are
    /// epoch milliseconds.
    fn timestamp_number(&self, text: &[u8], is_int: bool) -> Option<(i64, u32)> {
        if is_int {
            let v = parse_i64(text)?;
            let digits = text.len() - usize::from(text.first() == Some(&b'-'));
            if !self.openx || digits >= 13 {
                Some(time::from_millis(v))
            } else {
                Some((v, 0))
            }
        } else if self.openx {
            let f: f64 = std::str::from_utf8(text).ok()?.parse().ok()?;
            if !f.is_finite() || f.abs() > 9.2e15 {
                return None;
            }
            let secs = f.floor();
            let nanos = ((f - secs) * 1e9).round().min(999_999_999.0) as u32;
            Some((secs as i64, nanos))
        } else {
            None
        }
    }
}

/// An integer's text as i64 (`None` on overflow or a non-digit).
#[inline]
pub(crate) fn parse_i64(text: &[u8]) -> Option<i64> {
    let (neg, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() <= 18 {
        let mut v: i64 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (d - b'0') as i64;
        }
        return Some(if neg { -v } else { v });
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_sub((d - b'0') as i64)?;
    }
    if neg { Some(v) } else { v.checked_neg() }
}

/// A JSON number (or, leniently, a string) as an integer: integral values only.
fn int_of_text(text: &[u8], is_int: bool) -> Option<i64> {
    if is_int {
        return parse_i64(text);
    }
    let f: f64 = std::str::from_utf8(text).ok()?.trim().parse().ok()?;
    (f.is_finite()
        && f.fract() == 0.0
        && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f))
    .then_some(f as i64)
}

/// Exact decimal text (`-12.345`, `1e-3`, ...) to an unscaled i128 at `scale`, rounding half
/// up (Hive's rule) and refusing values with more than `precision` digits.
pub(crate) fn parse_decimal(s: &[u8], precision: u8, scale: i8) -> Result<i128, &'static str> {
    let mut i = 0;
    let neg = match s.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    // Significant digits (leading zeros dropped), at most 96 kept: later ones cannot change
    // the rounded value of a decimal of precision <= 38.
    let mut ds = [0u8; 96];
    let mut nd = 0usize;
    let mut point: i64 = 0; // digits before the decimal point, of the significant digits
    let mut any = false;
    let mut seen_point = false;
    while i < s.len() {
        match s[i] {
            c @ b'0'..=b'9' => {
                any = true;
                let d = c - b'0';
                if nd == 0 && d == 0 {
                    if seen_point {
                        point -= 1;
                    }
                } else {
                    if nd < ds.len() {
                        ds[nd] = d;
                    }
                    nd += 1;
                    if !seen_point {
                        point += 1;
                    }
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if !any {
        return Err("not a number");
    }
    if i < s.len() {
        if s[i] != b'e' && s[i] != b'E' {
            return Err("not a number");
        }
        let exp = parse_i64(&s[i + 1..]).ok_or("not a number")?;
        point = point.saturating_add(exp.clamp(-100_000, 100_000));
    }
    let nd = nd.min(ds.len());
    if nd == 0 {
        return Ok(0);
    }
    let keep = point + scale as i64; // digits of the unscaled value
    if keep > precision as i64 {
        return Err("out of range");
    }
    let keep_digits = keep.max(0) as usize;
    let mut v: i128 = 0;
    for &digit in &ds[..keep_digits.min(nd)] {
        v = v * 10 + digit as i128;
    }
    for _ in nd..keep_digits {
        v *= 10;
    }
    let round_digit = if keep >= 0 && (keep as usize) < nd {
        ds[keep as usize]
    } else {
        0
    };
    if round_digit >= 5 {
        v += 1;
        if v >= 10i128.pow(precision as u32) {
            return Err("out of range");
        }
    }
    Ok(if neg { -v } else { v })
}

/// A primitive column builder.
struct Prim<T: ArrowPrimitiveType> {
    v: Vec<T::Native>,
    nulls: NullBufferBuilder,
    dt: DataType,
}

impl<T: ArrowPrimitiveType> Prim<T> {
    fn new(dt: &DataType, cap: usize) -> Self {
        Prim {
            v: Vec::with_capacity(cap),
            nulls: NullBufferBuilder::new(cap),
            dt: dt.clone(),
        }
    }

    #[inline(always)]
    fn push(&mut self, x: T::Native) {
        self.v.push(x);
        self.nulls.append_non_null();
    }

    #[inline]
    fn push_null(&mut self) {
        self.v.push(T::Native::default());
        self.nulls.append_null();
    }

    fn truncate(&mut self, n: usize) {
        self.v.truncate(n);
        self.nulls.truncate(n);
    }

    fn take(&mut self) -> (ScalarBuffer<T::Native>, Option<arrow_buffer::NullBuffer>) {
        let n = self.v.len();
        let v = std::mem::replace(&mut self.v, Vec::with_capacity(n));
        (ScalarBuffer::from(v), self.nulls.finish())
    }

    fn finish(&mut self) -> ArrayRef {
        let (v, n) = self.take();
        Arc::new(PrimitiveArray::<T>::new(v, n).with_data_type(self.dt.clone()))
    }
}

/// Utf8 / Binary builder.
struct Bytes {
    offsets: Vec<i32>,
    data: Vec<u8>,
    nulls: NullBufferBuilder,
    binary: bool,
}

impl Bytes {
    #[inline(always)]
    fn close(&mut self) {
        self.offsets.push(self.data.len() as i32);
        self.nulls.append_non_null();
    }

    #[inline(always)]
    fn push(&mut self, s: &[u8]) {
        self.data.extend_from_slice(s);
        self.close();
    }

    fn push_null(&mut self) {
        self.offsets.push(self.data.len() as i32);
        self.nulls.append_null();
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn truncate(&mut self, n: usize) {
        self.offsets.truncate(n + 1);
        self.data.truncate(self.offsets[n] as usize);
        self.nulls.truncate(n);
    }

    fn finish(&mut self) -> Result<ArrayRef, ConvertError> {
        let (n, d) = (self.offsets.len(), self.data.len());
        let mut offsets = std::mem::replace(&mut self.offsets, Vec::with_capacity(n));
        self.offsets.push(0);
        // A Vec<u8> buffer keeps no alignment requirement; hand it over without copying.
        let data = std::mem::replace(&mut self.data, Vec::with_capacity(d));
        let nulls = self.nulls.finish();
        if offsets.is_empty() {
            offsets.push(0);
        }
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        let values = arrow_buffer::Buffer::from_vec(data);
        Ok(if self.binary {
            Arc::new(BinaryArray::try_new(offsets, values, nulls).map_err(internal)?)
        } else {
            Arc::new(StringArray::try_new(offsets, values, nulls).map_err(internal)?)
        })
    }
}

fn internal(e: impl std::fmt::Display) -> ConvertError {
    ConvertError::Internal(e.to_string())
}

struct ListCol {
    field: FieldRef,
    offsets: Vec<i32>,
    child: Col,
    nulls: NullBufferBuilder,
}

struct MapCol {
    entries: FieldRef,
    ordered: bool,
    offsets: Vec<i32>,
    keys: Col,
    values: Col,
    nulls: NullBufferBuilder,
}

/// A key as it appeared in an object, and the child it fills (`None`: no column).
type CachedKey = (Box<[u8]>, Option<u32>);

/// A struct column, or the record itself (the root).
pub(crate) struct StructCol {
    fields: Fields,
    children: Vec<Col>,
    /// Normalised JSON key -> child.
    lookup: HashMap<Box<[u8]>, u32>,
    /// Key position in the object -> (the key seen there last, its child).
    cache: Vec<Option<CachedKey>>,
    /// Per child, the key that fills it when written exactly as expected.
    exact: Vec<Box<[u8]>>,
    /// `seen[i] == gen` when child i got a value in the current object.
    seen: Vec<u32>,
    generation: u32,
    nulls: NullBufferBuilder,
    len: usize,
    /// Top-level keys that matched no column (the root only), for schema evolution.
    unknown: Option<HashSet<String>>,
}

const KEY_CACHE_POSITIONS: usize = 128;
const MAX_UNKNOWN_KEYS: usize = 1000;

impl StructCol {
    fn new(
        fields: &Fields,
        ctx: &Ctx,
        mappings: Option<&HashMap<String, String>>,
        cap: usize,
    ) -> Result<Self, ConvertError> {
        let mut lookup = HashMap::new();
        let mut cache = Vec::new();
        let mut exact_keys = Vec::with_capacity(fields.len());
        let mut norm = Vec::new();
        let mut children = Vec::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            let key = mappings
                .and_then(|m| m.get(&f.name().to_lowercase()))
                .map(String::as_str)
                .unwrap_or(f.name());
            ctx.normalize(key.as_bytes(), &mut norm);
            lookup
                .entry(norm.clone().into_boxed_slice())
                .or_insert(i as u32);
            let exact: Box<[u8]> = if ctx.case_insensitive || ctx.dots {
                norm.clone().into_boxed_slice()
            } else {
                key.as_bytes().into()
            };
            if i < KEY_CACHE_POSITIONS {
                cache.push(Some((exact.clone(), Some(i as u32))));
            }
            exact_keys.push(exact);
            children.push(Col::new(f, ctx, cap)?);
        }
        Ok(StructCol {
            fields: fields.clone(),
            children,
            lookup,
            cache,
            exact: exact_keys,
            seen: vec![0; fields.len()],
            generation: 0,
            nulls: NullBufferBuilder::new(cap),
            len: 0,
            unknown: None,
        })
    }

    /// The child the key at position `k` fills: the key seen at that position last time, or
    /// else the column after `prev` (the previous key's, for objects that omit a field), or
    /// else the normalised lookup.
    #[inline]
    fn resolve(&mut self, k: usize, key: &[u8], prev: Option<usize>, ctx: &Ctx) -> Option<usize> {
        if let Some(Some((cached, idx))) = self.cache.get(k)
            && key_eq(cached, key)
        {
            return idx.map(|i| i as usize);
        }
        let next = prev.map_or(0, |p| p + 1);
        if let Some(exact) = self.exact.get(next)
            && key_eq(exact, key)
        {
            return Some(next);
        }
        self.resolve_slow(k, key, ctx)
    }

    #[inline(never)]
    fn resolve_slow(&mut self, k: usize, key: &[u8], ctx: &Ctx) -> Option<usize> {
        let mut norm = Vec::with_capacity(key.len());
        ctx.normalize(key, &mut norm);
        let idx = self.lookup.get(norm.as_slice()).copied();
        if idx.is_none()
            && let Some(unknown) = &mut self.unknown
            && unknown.len() < MAX_UNKNOWN_KEYS
        {
            unknown.insert(String::from_utf8_lossy(&norm).into_owned());
        }
        if k < KEY_CACHE_POSITIONS {
            if self.cache.len() <= k {
                self.cache.resize(k + 1, None);
            }
            self.cache[k] = Some((key.into(), idx));
        }
        idx.map(|i| i as usize)
    }

    /// At `{`: one object as one row of this struct.
    fn object(&mut self, p: &mut Parser, ctx: &Ctx, scratch: &mut Vec<u8>) -> Res {
        p.pos += 1;
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.seen.fill(0);
            self.generation = 1;
        }
        let generation = self.generation;
        let mut matched = 0usize;
        let mut prev: Option<usize> = None;
        p.ws();
        if p.peek() == b'}' {
            p.pos += 1;
        } else {
            let mut k = 0usize;
            loop {
                if p.peek() != b'"' {
                    return Err(p.err("a double-quoted field name"));
                }
                let key = p.string_ref(scratch)?;
                let idx = self.resolve(k, key, prev, ctx);
                if idx.is_some() {
                    prev = idx;
                }
                p.ws();
                p.expect(b':', "':' after a field name")?;
                p.ws();
                match idx {
                    Some(i) => {
                        if self.seen[i] == generation {
                            return Err(mismatch(format_args!(
                                "Duplicate key \"{}\"",
                                self.fields[i].name()
                            )));
                        }
                        self.seen[i] = generation;
                        matched += 1;
                        if let Err(e) = self.children[i].value(p, ctx, scratch) {
                            return Err(e.in_column(self.fields[i].name()));
                        }
                    }
                    None => p.skip_value(0)?,
                }
                k += 1;
                p.ws();
                match p.peek() {
                    b',' => {
                        p.pos += 1;
                        p.ws();
                    }
                    b'}' => {
                        p.pos += 1;
                        break;
                    }
                    _ => return Err(p.err("',' or '}'")),
                }
            }
        }
        if matched < self.children.len() {
            for (i, child) in self.children.iter_mut().enumerate() {
                if self.seen[i] != generation
                    && let Err(e) = child.null()
                {
                    return Err(e.in_column(self.fields[i].name()));
                }
            }
        }
        self.nulls.append_non_null();
        self.len += 1;
        Ok(())
    }

    fn push_null(&mut self) {
        for c in &mut self.children {
            c.placeholder();
        }
        self.nulls.append_null();
        self.len += 1;
    }

    fn truncate(&mut self, n: usize) {
        for c in &mut self.children {
            c.truncate(n);
        }
        self.nulls.truncate(n);
        self.len = n;
    }

    fn finish_children(&mut self) -> Result<Vec<ArrayRef>, ConvertError> {
        self.len = 0;
        self.children.iter_mut().map(Col::finish).collect()
    }
}

enum Kind {
    Null(usize),
    Bool(BooleanBufferBuilder, NullBufferBuilder),
    I8(Prim<Int8Type>),
    I16(Prim<Int16Type>),
    I32(Prim<Int32Type>),
    I64(Prim<Int64Type>),
    F32(Prim<Float32Type>),
    F64(Prim<Float64Type>),
    Date(Prim<Date32Type>),
    Ts(Prim<Int64Type>, TimeUnit, Option<Arc<str>>),
    Dec(Prim<Decimal128Type>, u8, i8),
    Bytes(Bytes),
    List(Box<ListCol>),
    Map(Box<MapCol>),
    Struct(Box<StructCol>),
}

/// One column builder.
struct Col {
    nullable: bool,
    kind: Kind,
}

macro_rules! int_value {
    ($prim:expr, $p:expr, $ctx:expr, $scratch:expr, $c:expr, $t:ty, $name:literal) => {{
        let prim = $prim;
        match $c {
            b'-' | b'0'..=b'9' => {
                let (text, is_int) = $p.number()?;
                let v = int_of_text(text, is_int).ok_or_else(|| bad_input(text))?;
                let v = <$t>::try_from(v).map_err(|_| {
                    mismatch(format_args!(
                        "Numeric value ({}) out of range of {}",
                        String::from_utf8_lossy(text),
                        $name
                    ))
                })?;
                prim.push(v);
                Ok(())
            }
            b'"' if $ctx.lenient => {
                let s = $p.string_ref($scratch)?;
                let v = int_of_text(s, false).ok_or_else(|| bad_input(s))?;
                let v = <$t>::try_from(v).map_err(|_| bad_input(s))?;
                prim.push(v);
                Ok(())
            }
            c => Err(wrong_token(c, $name)),
        }
    }};
}

impl Col {
    fn new(field: &Field, ctx: &Ctx, cap: usize) -> Result<Col, ConvertError> {
        let dt = field.data_type();
        let kind = match dt {
            DataType::Null => Kind::Null(0),
            DataType::Boolean => {
                Kind::Bool(BooleanBufferBuilder::new(cap), NullBufferBuilder::new(cap))
            }
            DataType::Int8 => Kind::I8(Prim::new(dt, cap)),
            DataType::Int16 => Kind::I16(Prim::new(dt, cap)),
            DataType::Int32 => Kind::I32(Prim::new(dt, cap)),
            DataType::Int64 => Kind::I64(Prim::new(dt, cap)),
            DataType::Float32 => Kind::F32(Prim::new(dt, cap)),
            DataType::Float64 => Kind::F64(Prim::new(dt, cap)),
            DataType::Date32 => Kind::Date(Prim::new(dt, cap)),
            DataType::Timestamp(unit, tz) => {
                Kind::Ts(Prim::new(&DataType::Int64, cap), *unit, tz.clone())
            }
            DataType::Decimal128(p, s) => Kind::Dec(Prim::new(dt, cap), *p, *s),
            DataType::Utf8 | DataType::Binary => {
                let mut offsets = Vec::with_capacity(cap + 1);
                offsets.push(0);
                Kind::Bytes(Bytes {
                    offsets,
                    data: Vec::new(),
                    nulls: NullBufferBuilder::new(cap),
                    binary: *dt == DataType::Binary,
                })
            }
            DataType::List(item) => Kind::List(Box::new(ListCol {
                field: item.clone(),
                offsets: vec![0],
                child: Col::new(item, ctx, cap)?,
                nulls: NullBufferBuilder::new(cap),
            })),
            DataType::Map(entries, ordered) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return Err(unsupported(field));
                };
                if kv.len() != 2 {
                    return Err(unsupported(field));
                }
                Kind::Map(Box::new(MapCol {
                    entries: entries.clone(),
                    ordered: *ordered,
                    offsets: vec![0],
                    keys: Col::new(&kv[0], ctx, cap)?,
                    values: Col::new(&kv[1], ctx, cap)?,
                    nulls: NullBufferBuilder::new(cap),
                }))
            }
            DataType::Struct(fields) => {
                if fields.is_empty() {
                    return Err(ConvertError::UnsupportedSchema(format!(
                        "column '{}' is a struct without fields",
                        field.name()
                    )));
                }
                Kind::Struct(Box::new(StructCol::new(fields, ctx, None, cap)?))
            }
            _ => return Err(unsupported(field)),
        };
        Ok(Col {
            nullable: field.is_nullable(),
            kind,
        })
    }

    fn len(&self) -> usize {
        match &self.kind {
            Kind::Null(n) => *n,
            Kind::Bool(_, n) => n.len(),
            Kind::I8(p) => p.v.len(),
            Kind::I16(p) => p.v.len(),
            Kind::I32(p) => p.v.len(),
            Kind::I64(p) => p.v.len(),
            Kind::F32(p) => p.v.len(),
            Kind::F64(p) => p.v.len(),
            Kind::Date(p) => p.v.len(),
            Kind::Ts(p, ..) => p.v.len(),
            Kind::Dec(p, ..) => p.v.len(),
            Kind::Bytes(b) => b.len(),
            Kind::List(l) => l.offsets.len() - 1,
            Kind::Map(m) => m.offsets.len() - 1,
            Kind::Struct(s) => s.len,
        }
    }

    /// A JSON `null` or a missing key.
    #[inline]
    fn null(&mut self) -> Res {
        if !self.nullable {
            return Err(mismatch("Null value for a non-nullable column"));
        }
        self.placeholder();
        Ok(())
    }

    /// A null slot, also where the schema forbids nulls (the slot is masked by a null parent).
    fn placeholder(&mut self) {
        match &mut self.kind {
            Kind::Null(n) => *n += 1,
            Kind::Bool(v, n) => {
                v.append(false);
                n.append_null();
            }
            Kind::I8(p) => p.push_null(),
            Kind::I16(p) => p.push_null(),
            Kind::I32(p) => p.push_null(),
            Kind::I64(p) => p.push_null(),
            Kind::F32(p) => p.push_null(),
            Kind::F64(p) => p.push_null(),
            Kind::Date(p) => p.push_null(),
            Kind::Ts(p, ..) => p.push_null(),
            Kind::Dec(p, ..) => p.push_null(),
            Kind::Bytes(b) => b.push_null(),
            Kind::List(l) => {
                l.offsets.push(l.child.len() as i32);
                l.nulls.append_null();
            }
            Kind::Map(m) => {
                m.offsets.push(m.keys.len() as i32);
                m.nulls.append_null();
            }
            Kind::Struct(s) => s.push_null(),
        }
    }

    fn truncate(&mut self, n: usize) {
        match &mut self.kind {
            Kind::Null(len) => *len = n,
            Kind::Bool(v, nulls) => {
                v.truncate(n);
                nulls.truncate(n);
            }
            Kind::I8(p) => p.truncate(n),
            Kind::I16(p) => p.truncate(n),
            Kind::I32(p) => p.truncate(n),
            Kind::I64(p) => p.truncate(n),
            Kind::F32(p) => p.truncate(n),
            Kind::F64(p) => p.truncate(n),
            Kind::Date(p) => p.truncate(n),
            Kind::Ts(p, ..) => p.truncate(n),
            Kind::Dec(p, ..) => p.truncate(n),
            Kind::Bytes(b) => b.truncate(n),
            Kind::List(l) => {
                l.offsets.truncate(n + 1);
                l.child.truncate(l.offsets[n] as usize);
                l.nulls.truncate(n);
            }
            Kind::Map(m) => {
                m.offsets.truncate(n + 1);
                let e = m.offsets[n] as usize;
                m.keys.truncate(e);
                m.values.truncate(e);
                m.nulls.truncate(n);
            }
            Kind::Struct(s) => s.truncate(n),
        }
    }

    /// One JSON value (the parser is at its first byte).
    fn value(&mut self, p: &mut Parser, ctx: &Ctx, scratch: &mut Vec<u8>) -> Res {
        let c = p.peek();
        if c == b'n' {
            p.lit(b"null")?;
            return self.null();
        }
        match &mut self.kind {
            Kind::Bytes(b) => match c {
                b'"' => {
                    p.string_into(&mut b.data)?;
                    b.close();
                    Ok(())
                }
                b'-' | b'0'..=b'9' => {
                    let (text, _) = p.number()?;
                    b.push(text);
                    Ok(())
                }
                b't' => {
                    p.lit(b"true")?;
                    b.push(b"true");
                    Ok(())
                }
                b'f' => {
                    p.lit(b"false")?;
                    b.push(b"false");
                    Ok(())
                }
                b'{' | b'[' if ctx.lenient => {
                    let start = p.pos;
                    p.skip_value(0)?;
                    b.push(&p.buf[start..p.pos]);
                    Ok(())
                }
                b'{' | b'[' => Err(mismatch(
                    "One or more fields have incorrect format: a string column got a JSON object or array",
                )),
                _ => Err(p.err("a JSON value")),
            },
            Kind::I64(prim) => int_value!(prim, p, ctx, scratch, c, i64, "long"),
            Kind::I32(prim) => int_value!(prim, p, ctx, scratch, c, i32, "int"),
            Kind::I16(prim) => int_value!(prim, p, ctx, scratch, c, i16, "short"),
            Kind::I8(prim) => int_value!(prim, p, ctx, scratch, c, i8, "byte"),
            Kind::F64(prim) => {
                let v = float_value(p, ctx, scratch, c)?;
                prim.push(v);
                Ok(())
            }
            Kind::F32(prim) => {
                let v = float_value(p, ctx, scratch, c)?;
                prim.push(v as f32);
                Ok(())
            }
            Kind::Bool(v, n) => {
                let b = match c {
                    b't' => {
                        p.lit(b"true")?;
                        true
                    }
                    b'f' => {
                        p.lit(b"false")?;
                        false
                    }
                    b'"' if ctx.lenient => {
                        let s = p.string_ref(scratch)?;
                        if s.eq_ignore_ascii_case(b"true") {
                            true
                        } else if s.eq_ignore_ascii_case(b"false") {
                            false
                        } else {
                            return Err(bad_input(s));
                        }
                    }
                    c => return Err(wrong_token(c, "boolean")),
                };
                v.append(b);
                n.append_non_null();
                Ok(())
            }
            Kind::Ts(prim, unit, _) => {
                let (secs, nanos) = match c {
                    b'"' => {
                        let s = p.string_ref(scratch)?;
                        ctx.timestamp_str(s).ok_or_else(|| timestamp_err(s))?
                    }
                    b'-' | b'0'..=b'9' => {
                        let (text, is_int) = p.number()?;
                        ctx.timestamp_number(text, is_int)
                            .ok_or_else(|| timestamp_err(text))?
                    }
                    c => return Err(wrong_token(c, "timestamp")),
                };
                prim.push(ctx.timestamp(secs, nanos, *unit)?);
                Ok(())
            }
            Kind::Date(prim) => match c {
                b'"' => {
                    let s = p.string_ref(scratch)?;
                    let d = time::parse_date(s).ok_or_else(|| {
                        mismatch(format_args!(
                            "Unparseable date: \"{}\" (expected yyyy-MM-dd)",
                            String::from_utf8_lossy(s)
                        ))
                    })?;
                    prim.push(d);
                    Ok(())
                }
                c => Err(wrong_token(c, "date")),
            },
            Kind::Dec(prim, precision, scale) => {
                let text = match c {
                    b'-' | b'0'..=b'9' => p.number()?.0,
                    b'"' if ctx.lenient => p.string_ref(scratch)?,
                    c => return Err(wrong_token(c, "decimal")),
                };
                let v = parse_decimal(text, *precision, *scale).map_err(|why| {
                    if why == "out of range" {
                        mismatch(format_args!(
                            "Value {} does not fit decimal({precision},{scale})",
                            String::from_utf8_lossy(text)
                        ))
                    } else {
                        bad_input(text)
                    }
                })?;
                prim.push(v);
                Ok(())
            }
            Kind::List(l) => {
                if c == b'[' {
                    p.pos += 1;
                    p.ws();
                    if p.peek() == b']' {
                        p.pos += 1;
                    } else {
                        loop {
                            l.child.value(p, ctx, scratch)?;
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
                                _ => return Err(p.err("',' or ']'")),
                            }
                        }
                    }
                } else if ctx.lenient {
                    l.child.value(p, ctx, scratch)?;
                } else {
                    return Err(mismatch("Start of Array expected"));
                }
                l.offsets.push(l.child.len() as i32);
                l.nulls.append_non_null();
                Ok(())
            }
            Kind::Map(m) => {
                if c != b'{' {
                    return Err(mismatch("Start of Object expected for a map column"));
                }
                p.pos += 1;
                p.ws();
                if p.peek() == b'}' {
                    p.pos += 1;
                } else {
                    loop {
                        if p.peek() != b'"' {
                            return Err(p.err("a double-quoted field name"));
                        }
                        let key = p.string_ref(scratch)?;
                        m.keys.text(key, ctx)?;
                        p.ws();
                        p.expect(b':', "':' after a field name")?;
                        p.ws();
                        m.values.value(p, ctx, scratch)?;
                        p.ws();
                        match p.peek() {
                            b',' => {
                                p.pos += 1;
                                p.ws();
                            }
                            b'}' => {
                                p.pos += 1;
                                break;
                            }
                            _ => return Err(p.err("',' or '}'")),
                        }
                    }
                }
                m.offsets.push(m.keys.len() as i32);
                m.nulls.append_non_null();
                Ok(())
            }
            Kind::Struct(s) => {
                if c == b'{' {
                    s.object(p, ctx, scratch)
                } else if ctx.lenient {
                    p.skip_value(0)?;
                    s.push_null();
                    Ok(())
                } else {
                    Err(mismatch("Start of Object expected"))
                }
            }
            Kind::Null(n) => {
                p.skip_value(0)?;
                *n += 1;
                Ok(())
            }
        }
    }

    /// A map key (always a JSON string) converted to this column's type.
    fn text(&mut self, s: &[u8], ctx: &Ctx) -> Res {
        let int = || int_of_text(s, false).ok_or_else(|| bad_input(s));
        let range = |_| bad_input(s);
        match &mut self.kind {
            Kind::Bytes(b) => b.push(s),
            Kind::I8(p) => p.push(i8::try_from(int()?).map_err(range)?),
            Kind::I16(p) => p.push(i16::try_from(int()?).map_err(range)?),
            Kind::I32(p) => p.push(i32::try_from(int()?).map_err(range)?),
            Kind::I64(p) => p.push(int()?),
            Kind::F32(p) => p.push(parse_f64(s).ok_or_else(|| bad_input(s))? as f32),
            Kind::F64(p) => p.push(parse_f64(s).ok_or_else(|| bad_input(s))?),
            Kind::Bool(v, n) => {
                v.append(if s.eq_ignore_ascii_case(b"true") {
                    true
                } else if s.eq_ignore_ascii_case(b"false") {
                    false
                } else {
                    return Err(bad_input(s));
                });
                n.append_non_null();
            }
            Kind::Date(p) => p.push(time::parse_date(s).ok_or_else(|| bad_input(s))?),
            Kind::Ts(p, unit, _) => {
                let (secs, nanos) = ctx.timestamp_str(s).ok_or_else(|| timestamp_err(s))?;
                p.push(ctx.timestamp(secs, nanos, *unit)?);
            }
            Kind::Dec(p, precision, scale) => {
                p.push(parse_decimal(s, *precision, *scale).map_err(|_| bad_input(s))?)
            }
            _ => return Err(mismatch("Map keys must be of a primitive type")),
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef, ConvertError> {
        Ok(match &mut self.kind {
            Kind::Null(n) => {
                let a = Arc::new(NullArray::new(*n));
                *n = 0;
                a
            }
            Kind::Bool(v, n) => {
                let cap = v.len();
                let values = std::mem::replace(v, BooleanBufferBuilder::new(cap)).finish();
                Arc::new(BooleanArray::new(values, n.finish()))
            }
            Kind::I8(p) => p.finish(),
            Kind::I16(p) => p.finish(),
            Kind::I32(p) => p.finish(),
            Kind::I64(p) => p.finish(),
            Kind::F32(p) => p.finish(),
            Kind::F64(p) => p.finish(),
            Kind::Date(p) => p.finish(),
            Kind::Dec(p, ..) => p.finish(),
            Kind::Ts(p, unit, tz) => {
                let (v, n) = p.take();
                match unit {
                    TimeUnit::Second => {
                        Arc::new(TimestampSecondArray::new(v, n).with_timezone_opt(tz.clone()))
                    }
                    TimeUnit::Millisecond => {
                        Arc::new(TimestampMillisecondArray::new(v, n).with_timezone_opt(tz.clone()))
                    }
                    TimeUnit::Microsecond => {
                        Arc::new(TimestampMicrosecondArray::new(v, n).with_timezone_opt(tz.clone()))
                    }
                    TimeUnit::Nanosecond => {
                        Arc::new(TimestampNanosecondArray::new(v, n).with_timezone_opt(tz.clone()))
                    }
                }
            }
            Kind::Bytes(b) => b.finish()?,
            Kind::List(l) => {
                let n = l.offsets.len();
                let offsets = std::mem::replace(&mut l.offsets, Vec::with_capacity(n));
                l.offsets.push(0);
                let child = l.child.finish()?;
                Arc::new(
                    ListArray::try_new(
                        l.field.clone(),
                        OffsetBuffer::new(ScalarBuffer::from(offsets)),
                        child,
                        l.nulls.finish(),
                    )
                    .map_err(internal)?,
                )
            }
            Kind::Map(m) => {
                let n = m.offsets.len();
                let offsets = std::mem::replace(&mut m.offsets, Vec::with_capacity(n));
                m.offsets.push(0);
                let DataType::Struct(kv) = m.entries.data_type() else {
                    return Err(internal("map entries are not a struct"));
                };
                let entries = StructArray::try_new(
                    kv.clone(),
                    vec![m.keys.finish()?, m.values.finish()?],
                    None,
                )
                .map_err(internal)?;
                Arc::new(
                    MapArray::try_new(
                        m.entries.clone(),
                        OffsetBuffer::new(ScalarBuffer::from(offsets)),
                        entries,
                        m.nulls.finish(),
                        m.ordered,
                    )
                    .map_err(internal)?,
                )
            }
            Kind::Struct(s) => {
                let nulls = s.nulls.finish();
                let len = s.len;
                let children = s.finish_children()?;
                let a = StructArray::try_new_with_length(s.fields.clone(), children, nulls, len)
                    .map_err(internal)?;
                Arc::new(a)
            }
        })
    }
}

fn unsupported(field: &Field) -> ConvertError {
    ConvertError::UnsupportedSchema(format!(
        "column '{}' has type {} which conversion does not support",
        field.name(),
        field.data_type()
    ))
}

#[cold]
fn timestamp_err(s: &[u8]) -> Box<RecErr> {
    mismatch(format_args!(
        "Unparseable timestamp: \"{}\"",
        String::from_utf8_lossy(&s[..s.len().min(200)])
    ))
}

fn parse_f64(s: &[u8]) -> Option<f64> {
    std::str::from_utf8(s).ok()?.trim().parse().ok()
}

#[inline]
fn float_value(p: &mut Parser, ctx: &Ctx, scratch: &mut Vec<u8>, c: u8) -> Res<f64> {
    match c {
        b'-' | b'0'..=b'9' => {
            let (text, _) = p.number()?;
            // The text is ASCII digits, sign, '.', 'e': always valid UTF-8.
            std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| bad_input(text))
        }
        b'"' if ctx.lenient => {
            let s = p.string_ref(scratch)?;
            parse_f64(s).ok_or_else(|| bad_input(s))
        }
        c => Err(wrong_token(c, "double")),
    }
}

/// Decodes records into a [`RecordBatch`] of the target schema, isolating bad records.
pub(crate) struct RecordDecoder {
    schema: SchemaRef,
    root: StructCol,
    ctx: Ctx,
    scratch: Vec<u8>,
    /// Records that failed, in input order.
    pub(crate) failed: Vec<FailedRecord>,
}

impl RecordDecoder {
    /// A decoder for `schema`; fails when the schema holds a type conversion cannot produce.
    pub(crate) fn new(
        schema: &SchemaRef,
        config: &ConversionConfig,
        capacity: usize,
    ) -> Result<Self, ConvertError> {
        let ctx = Ctx::new(config)?;
        let mappings = match &config.input {
            InputSerde::OpenX {
                column_to_json_key, ..
            } if !column_to_json_key.is_empty() => Some(column_to_json_key),
            _ => None,
        };
        let mut root = StructCol::new(schema.fields(), &ctx, mappings, capacity)?;
        root.unknown = Some(HashSet::new());
        Ok(RecordDecoder {
            schema: schema.clone(),
            root,
            ctx,
            scratch: Vec::new(),
            failed: Vec::new(),
        })
    }

    /// Rows decoded and not yet finished.
    pub(crate) fn rows(&self) -> usize {
        self.root.len
    }

    /// Decodes one record (one or more concatenated JSON objects, each a row). On failure the
    /// record leaves no row behind and is added to `failed` with `index`.
    pub(crate) fn decode(&mut self, record: &[u8], index: usize) {
        let before = self.root.len;
        if let Err(e) = self.decode_inner(record) {
            self.root.truncate(before);
            self.failed.push(FailedRecord {
                index,
                error_code: e.code().to_owned(),
                error_message: e.message(),
            });
        }
    }

    fn decode_inner(&mut self, record: &[u8]) -> Res {
        if simdutf8::basic::from_utf8(record).is_err() {
            let at = std::str::from_utf8(record)
                .err()
                .map_or(0, |e| e.valid_up_to());
            return Err(RecErr::parse(format!(
                "Invalid UTF-8 byte sequence at byte {at}"
            )));
        }
        let mut p = Parser::new(record);
        let mut objects = 0;
        loop {
            p.ws();
            if p.at_end() {
                break;
            }
            match p.peek() {
                b'{' => {
                    self.root.object(&mut p, &self.ctx, &mut self.scratch)?;
                    objects += 1;
                }
                b'[' => {
                    p.skip_value(0)?;
                    return Err(mismatch(
                        "A JSON array is not a valid record: send one JSON object per record \
                         (or several concatenated)",
                    ));
                }
                _ => {
                    p.skip_value(0)?;
                    return Err(RecErr::malformed(
                        "The input JSON contained a primitive at the top level. The top level \
                         must be an object or array."
                            .into(),
                    ));
                }
            }
        }
        if objects == 0 {
            return Err(RecErr::malformed(
                "The record was empty or contained only whitespace.".into(),
            ));
        }
        Ok(())
    }

    /// The rows decoded since the last call, as a batch of exactly the target schema.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, ConvertError> {
        let rows = self.root.len;
        let columns = self.root.finish_children()?;
        self.root.nulls.finish();
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(internal)
    }

    /// Top-level keys (normalised) that matched no column, at most 1,000.
    pub(crate) fn unknown_keys(&mut self) -> Vec<String> {
        let mut v: Vec<String> = self
            .root
            .unknown
            .take()
            .unwrap_or_default()
            .into_iter()
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        let d = |s: &str, p, sc| parse_decimal(s.as_bytes(), p, sc);
        assert_eq!(d("12.34", 10, 2), Ok(1234));
        assert_eq!(d("-12.345", 10, 2), Ok(-1235));
        assert_eq!(d("12.344", 10, 2), Ok(1234));
        assert_eq!(d("0.005", 10, 2), Ok(1));
        assert_eq!(d("1e3", 10, 2), Ok(100_000));
        assert_eq!(d("1.5E-1", 10, 2), Ok(15));
        assert_eq!(d("0", 10, 2), Ok(0));
        assert_eq!(d("000.000", 10, 2), Ok(0));
        assert_eq!(d("99999999.99", 10, 2), Ok(9_999_999_999));
        assert_eq!(d("99999999.995", 10, 2), Err("out of range"));
        assert_eq!(d("123456789", 10, 2), Err("out of range"));
        assert_eq!(
            d("12345678901234567890123456789012345678", 38, 0),
            Ok(12_345_678_901_234_567_890_123_456_789_012_345_678)
        );
        assert_eq!(
            d("0.1000000000000000055511151231257827", 38, 30),
            Ok(100_000_000_000_000_005_551_115_123_126)
        );
        assert_eq!(d("abc", 10, 2), Err("not a number"));
        assert_eq!(d("1.2.3", 10, 2), Err("not a number"));
        assert_eq!(d("1e999999999999", 10, 2), Err("out of range"));
        assert_eq!(d("1e-999999999999", 10, 2), Ok(0));
    }

    #[test]
    fn integers() {
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(int_of_text(b"1e3", false), Some(1000));
        assert_eq!(int_of_text(b"1.5", false), None);
    }
}
