//! jq (jaq) programs: `MetadataExtraction` partition keys and the `Lakehose.Jq` transform.
//!
//! Invariants:
//! - A program is compiled once ([`JqProgram::compile`]) and only run afterwards; values
//!   (`jaq_json::Val`, reference counted and not `Send`) live only inside one synchronous call.
//! - Records are parsed as strict JSON (exactly one value, surrounding whitespace allowed).
//! - The environment is sandboxed: `env` returns `{}`, `debug`/`stderr` print nothing, module
//!   imports are refused, and `halt`/`halt_error` fail the record (jaq's `unwrap_valr` would
//!   exit the process, so it is never used).
//! - Transform outputs are written as compact JSON (keys in the program's order); values that
//!   JSON cannot represent (byte strings, non-string keys) fail the record; NaN becomes
//!   `null` and ±infinity the largest finite double, as jq 1.6 does.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use jaq_core::data::JustLut;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::native::{Fun, bome, run, v};
use jaq_core::{Compiler, Ctx, Vars};
use jaq_json::{Num, Val};

use crate::{
    KeyMap, MAX_JQ_OUTPUTS, MAX_PARTITION_KEYS, Outcomes, Work, codes, error_output,
    validate_partition_value,
};

type D = JustLut<Val>;

/// A compiled jq program.
pub(crate) struct JqProgram {
    filter: jaq_core::Filter<D>,
    source: String,
    /// Set when the program only projects fields (`{k: .a.b, ...}`, the usual Firehose
    /// `MetadataExtractionQuery`): then partition keys are read without running jq, with the
    /// same results (`projection_matches_jq` checks that).
    projection: Option<Projection>,
}

/// `{name: .path.to.field, ...}`: output key -> field path.
#[derive(Debug, PartialEq)]
struct Projection {
    /// (output key, field path), in the program's order.
    entries: Vec<(String, Vec<String>)>,
    /// The distinct first path segments: the record's members the projection reads.
    members: Vec<String>,
    /// For each entry, the index of its first path segment in `members`.
    slots: Vec<usize>,
}

impl Projection {
    fn new(entries: Vec<(String, Vec<String>)>) -> Self {
        let mut members: Vec<String> = Vec::new();
        let slots = entries
            .iter()
            .map(
                |(_, path)| match members.iter().position(|m| *m == path[0]) {
                    Some(i) => i,
                    None => {
                        members.push(path[0].clone());
                        members.len() - 1
                    }
                },
            )
            .collect();
        Projection {
            entries,
            members,
            slots,
        }
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Recognises `{a: .x.y, "b": .z, c}` (whitespace allowed; `c` is short for `c: .c`).
fn parse_projection(code: &str) -> Option<Projection> {
    let body = code.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut entries = Vec::new();
    for entry in body.split(',') {
        let entry = entry.trim();
        let (key, path) = match entry.split_once(':') {
            Some((k, p)) => (k.trim(), p.trim()),
            None => (entry, ""),
        };
        let key = match key.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
            Some(quoted) if !quoted.contains(['"', '\\']) => quoted.to_string(),
            Some(_) => return None,
            None if is_ident(key) => key.to_string(),
            None => return None,
        };
        let path: Vec<String> = if path.is_empty() {
            vec![key.clone()]
        } else {
            let rest = path.strip_prefix('.')?;
            let parts: Vec<&str> = rest.split('.').collect();
            if !parts.iter().all(|p| is_ident(p)) {
                return None;
            }
            parts.into_iter().map(String::from).collect()
        };
        entries.push((key, path));
    }
    (!entries.is_empty()).then(|| Projection::new(entries))
}

/// Appends a partition key value from JSON to `out`, as [`key_value`] makes it from a jq
/// value.
fn write_json_key_value(v: &serde_json::Value, out: &mut String) -> Result<(), String> {
    use std::fmt::Write as _;
    match v {
        serde_json::Value::String(s) => out.push_str(s),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => write!(out, "{i}").expect("writing to a String"),
            (_, Some(u), _) => write!(out, "{u}").expect("writing to a String"),
            (_, _, Some(f)) => out.push_str(&number_text(&Num::Float(f))?),
            _ => write!(out, "{n}").expect("writing to a String"),
        },
        serde_json::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        serde_json::Value::Null => return Err("is null (missing from the record?)".into()),
        serde_json::Value::Array(_) => return Err("is an array".into()),
        serde_json::Value::Object(_) => return Err("is an object".into()),
    }
    Ok(())
}

/// Native filters replaced by inert versions (name, arity).
const SANDBOXED: &[(&str, usize)] = &[("env", 0), ("debug_empty", 0), ("stderr_empty", 0)];

fn sandbox_funs() -> impl Iterator<Item = Fun<D>> {
    [
        run(("env", v(0), |_| bome(Ok(Val::obj(Default::default()))))),
        run(("debug_empty", v(0), |_| Box::new(std::iter::empty()))),
        run(("stderr_empty", v(0), |_| Box::new(std::iter::empty()))),
    ]
    .into_iter()
}

fn is_sandboxed(name: &str, arity: usize) -> bool {
    SANDBOXED.contains(&(name, arity))
}

fn excerpt(s: &str) -> String {
    let t: String = s.chars().take(24).collect();
    if t.is_empty() {
        "end of program".into()
    } else {
        format!("`{t}`")
    }
}

impl JqProgram {
    /// Parses and compiles `code` with jq's standard library.
    pub(crate) fn compile(code: &str) -> Result<Self, String> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs())
            .filter(|(name, args, _)| !is_sandboxed(name, args.len()))
            .chain(sandbox_funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errs| {
                let mut msgs = Vec::new();
                for (_file, e) in errs {
                    match e {
                        jaq_core::load::Error::Io(v) => {
                            msgs.extend(v.into_iter().map(|(path, e)| format!("{path}: {e}")))
                        }
                        jaq_core::load::Error::Lex(v) => {
                            msgs.extend(v.into_iter().map(|(expect, at)| {
                                format!("expected {} at {}", expect.as_str(), excerpt(at))
                            }))
                        }
                        jaq_core::load::Error::Parse(v) => {
                            msgs.extend(v.into_iter().map(|(expect, at)| {
                                format!("expected {} at {}", expect.as_str(), excerpt(at))
                            }))
                        }
                    }
                }
                format!("syntax error: {}", msgs.join("; "))
            })?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| {
                let msgs: Vec<String> = errs
                    .into_iter()
                    .flat_map(|(_file, v)| v)
                    .map(|(name, undefined)| format!("undefined {} `{name}`", undefined.as_str()))
                    .collect();
                msgs.join("; ")
            })?;
        Ok(JqProgram {
            filter,
            source: code.to_owned(),
            projection: parse_projection(code),
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Runs the program on `input`; at most `max_outputs` outputs.
    pub(crate) fn run(&self, input: Val, max_outputs: usize) -> Result<Vec<Val>, String> {
        let ctx = Ctx::<D>::new(&self.filter.lut, Vars::new([]));
        let mut outputs = Vec::new();
        for item in self.filter.id.run((ctx, input)) {
            match item {
                Ok(v) => {
                    if outputs.len() == max_outputs {
                        return Err(format!(
                            "the program produced more than {max_outputs} outputs"
                        ));
                    }
                    outputs.push(v);
                }
                Err(exn) => {
                    return Err(match exn.get_err() {
                        Ok(e) => format!("jq error: {e}"),
                        Err(_) => "the program called halt".into(),
                    });
                }
            }
        }
        Ok(outputs)
    }
}

/// Parses one strict JSON value.
pub(crate) fn parse_json(data: &[u8]) -> Result<Val, String> {
    serde_json::from_slice::<Val>(data).map_err(|e| e.to_string())
}

/// Text of a number: integers as is, integral doubles without a fraction, others shortest.
fn number_text(n: &Num) -> Result<String, String> {
    match n {
        Num::Float(f) if !f.is_finite() => Err(format!("{n} is not a finite number")),
        Num::Float(f) if f.fract() == 0.0 && f.abs() < 1e17 => Ok(format!("{}", *f as i64)),
        n => Ok(n.to_string()),
    }
}

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "string is not valid UTF-8".to_string())
}

/// A partition key value: strings unquoted, numbers as JSON text, booleans.
fn key_value(v: &Val) -> Result<String, String> {
    match v {
        Val::TStr(s) => Ok(utf8(s)?.to_owned()),
        Val::Num(n) => number_text(n),
        Val::Bool(b) => Ok(b.to_string()),
        Val::Null => Err("is null (missing from the record?)".into()),
        Val::BStr(_) => Err("is a byte string".into()),
        Val::Arr(_) => Err("is an array".into()),
        Val::Obj(_) => Err("is an object".into()),
    }
}

/// Writes `v` as compact JSON.
pub(crate) fn write_json(v: &Val, out: &mut Vec<u8>) -> Result<(), String> {
    match v {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Val::Num(n) => match n {
            Num::Float(f) if f.is_nan() => out.extend_from_slice(b"null"),
            Num::Float(f) if f.is_infinite() => {
                let max = if *f > 0.0 { f64::MAX } else { f64::MIN };
                out.extend_from_slice(serde_json::to_string(&max).unwrap_or_default().as_bytes())
            }
            Num::Float(f) if f.fract() == 0.0 && f.abs() < 1e17 => {
                out.extend_from_slice((*f as i64).to_string().as_bytes())
            }
            n => out.extend_from_slice(n.to_string().as_bytes()),
        },
        Val::TStr(s) => {
            serde_json::to_writer(&mut *out, utf8(s)?).map_err(|e| e.to_string())?;
        }
        Val::BStr(_) => return Err("a byte string cannot be written as JSON".into()),
        Val::Arr(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(x, out)?;
            }
            out.push(b']');
        }
        Val::Obj(o) => {
            out.push(b'{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match k {
                    Val::TStr(s) => {
                        serde_json::to_writer(&mut *out, utf8(s)?).map_err(|e| e.to_string())?
                    }
                    _ => {
                        return Err(
                            "an object key that is not a string cannot be written as JSON".into(),
                        );
                    }
                }
                out.push(b':');
                write_json(x, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// A `Lakehose.Jq` result: the outputs as compact JSON records, or `(error code, message)`.
pub(crate) type TransformResult = Result<Vec<Bytes>, (&'static str, String)>;

/// `Lakehose.Jq` on one record.
pub(crate) fn transform_one(program: &JqProgram, data: &[u8]) -> TransformResult {
    let failed = |msg: String| (codes::JQ_TRANSFORM_FAILED, msg);
    let input = parse_json(data)
        .map_err(|e| failed(format!("The record is not a single JSON value: {e}")))?;
    let values = program.run(input, MAX_JQ_OUTPUTS).map_err(failed)?;
    let mut records = Vec::with_capacity(values.len());
    for v in &values {
        let mut buf = Vec::new();
        write_json(v, &mut buf).map_err(failed)?;
        records.push(Bytes::from(buf));
    }
    Ok(records)
}

/// Applies a `Lakehose.Jq` result to its record: each output becomes one record; none drops
/// it; an error fails it.
pub(crate) fn apply_transform(
    w: Work,
    result: TransformResult,
    out: &mut Vec<Work>,
    o: &mut Outcomes,
) {
    match result {
        Ok(records) if records.is_empty() => o.drop_record(&w),
        Ok(records) => out.extend(records.into_iter().map(|data| w.with_data(data))),
        Err((code, msg)) => o.fail(&w, error_output::PROCESSING_FAILED, code, msg),
    }
}

/// `Lakehose.Jq`: each output value of the program becomes one record (compact JSON).
pub(crate) fn transform(program: &JqProgram, w: Work, out: &mut Vec<Work>, o: &mut Outcomes) {
    let result = transform_one(program, &w.data);
    apply_transform(w, result, out, o);
}

/// Applies a `MetadataExtraction` result to its record: whether the record goes on (else
/// it failed).
pub(crate) fn apply_keys(
    w: &mut Work,
    result: Result<KeyMap, (&'static str, String)>,
    o: &mut Outcomes,
) -> bool {
    match result {
        Ok(keys) => {
            w.keys.from_query = keys;
            true
        }
        Err((code, msg)) => {
            o.fail(w, error_output::PROCESSING_FAILED, code, msg);
            false
        }
    }
}

/// `MetadataExtraction`: the program's single object output becomes the record's
/// `partitionKeyFromQuery` keys (shared through `cache` with the batch's other records that
/// have the same keys).
pub(crate) fn extract_keys(
    query: &JqProgram,
    cache: &mut KeyCache,
    w: &mut Work,
    o: &mut Outcomes,
) -> bool {
    let result = match &query.projection {
        Some(projection) => cache.project(projection, &w.data),
        None => keys_of(query, &w.data).map(|keys| cache.intern(keys)),
    };
    apply_keys(w, result, o)
}

/// Most distinct key maps a [`KeyCache`] remembers (beyond, maps are built per record).
const MAX_CACHED_KEY_MAPS: usize = 4096;

/// `MetadataExtraction` state of one batch: reusable buffers, and the key maps made so far,
/// so that records with the same keys share one [`KeyMap`] instead of each building its own.
#[derive(Default)]
pub(crate) struct KeyCache {
    /// The record's members a projection reads (reused).
    found: Vec<Option<serde_json::Value>>,
    /// A projection's key values, in entry order (reused).
    values: Vec<String>,
    /// Projection key values -> their map.
    by_values: HashMap<Vec<String>, KeyMap>,
    /// Maps from jq (or the sandbox) -> the shared copy.
    by_map: HashMap<BTreeMap<String, String>, KeyMap>,
}

impl KeyCache {
    /// The shared map equal to `keys`.
    pub(crate) fn intern(&mut self, keys: BTreeMap<String, String>) -> KeyMap {
        if keys.is_empty() {
            return KeyMap::default();
        }
        if let Some(shared) = self.by_map.get(&keys) {
            return shared.clone();
        }
        if self.by_map.len() >= MAX_CACHED_KEY_MAPS {
            return KeyMap::from(keys);
        }
        let shared = KeyMap::from(keys.clone());
        self.by_map.insert(keys, shared.clone());
        shared
    }

    /// [`keys_of`] for a [`Projection`], as a shared map: the values are read into reused
    /// buffers, and a map is built only for values not seen before in the batch.
    fn project(
        &mut self,
        projection: &Projection,
        data: &[u8],
    ) -> Result<KeyMap, (&'static str, String)> {
        project_values(projection, data, &mut self.found, &mut self.values)?;
        if let Some(shared) = self.by_values.get(self.values.as_slice()) {
            return Ok(shared.clone());
        }
        let shared = KeyMap::from(values_map(projection, &self.values));
        if self.by_values.len() < MAX_CACHED_KEY_MAPS {
            self.by_values.insert(self.values.clone(), shared.clone());
        }
        Ok(shared)
    }
}

/// Partition keys, or `(error code, message)`.
pub(crate) type KeysResult = Result<BTreeMap<String, String>, (&'static str, String)>;

/// Whether the program reads partition keys without running jq (a plain projection).
pub(crate) fn is_projection(query: &JqProgram) -> bool {
    query.projection.is_some()
}

pub(crate) fn keys_of(query: &JqProgram, data: &[u8]) -> KeysResult {
    let failed = |msg: String| (codes::METADATA_EXTRACTION_FAILED, msg);
    if let Some(projection) = &query.projection {
        return project_keys(projection, data);
    }
    let input = parse_json(data).map_err(|e| failed(format!("Non JSON record provided: {e}")))?;
    let outputs = query.run(input, 1).map_err(|e| {
        failed(format!(
            "The MetadataExtractionQuery failed on the record: {e}"
        ))
    })?;
    let [Val::Obj(map)] = outputs.as_slice() else {
        return Err(failed(format!(
            "The MetadataExtractionQuery must produce exactly one JSON object; it produced {}.",
            match outputs.as_slice() {
                [] => "no output".to_string(),
                [v] => format!("{v}"),
                _ => "several outputs".to_string(),
            }
        )));
    };
    if map.len() > MAX_PARTITION_KEYS {
        return Err(failed(format!(
            "The query produced {} partition keys; the limit is {MAX_PARTITION_KEYS}.",
            map.len()
        )));
    }
    let mut keys = BTreeMap::new();
    for (k, v) in map.iter() {
        let Val::TStr(k) = k else {
            return Err(failed("A partition key name is not a string.".into()));
        };
        let name = utf8(k).map_err(failed)?.to_owned();
        let value = key_value(v).map_err(|e| failed(format!("Partition key {name:?} {e}.")))?;
        validate_partition_value(&value).map_err(|e| {
            (
                codes::INVALID_PARTITION_KEY,
                format!("Partition key {name:?}: {e}."),
            )
        })?;
        keys.insert(name, value);
    }
    Ok(keys)
}

/// The top level of a record, as a projection needs it.
enum Top {
    /// An object: the members the projection reads are in [`Members::found`].
    Object,
    /// `null`.
    Null,
    /// Any other JSON value.
    Other,
}

/// Reads a record's top level, building only the members named in `wanted` into `found`
/// (the last of duplicates, as jq keeps); every other member is checked but skipped without
/// allocating.
struct Members<'w> {
    wanted: &'w [String],
    found: &'w mut Vec<Option<serde_json::Value>>,
}

/// A member name, borrowed from the record unless it contains escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Members<'_> {
    type Value = Top;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Members<'_> {
    type Value = Top;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        self.found.clear();
        self.found.resize(self.wanted.len(), None);
        while let Some(Key(key)) = map.next_key()? {
            match self.wanted.iter().position(|w| *w == key) {
                Some(i) => self.found[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Top::Object)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Top::Other)
    }
    fn visit_unit<E>(self) -> Result<Top, E> {
        Ok(Top::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Top, E> {
        Ok(Top::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other)
    }
}

/// [`keys_of`] for a [`Projection`]: one pass over the record that builds only the members
/// the projection reads, no jq.
fn project_keys(projection: &Projection, data: &[u8]) -> KeysResult {
    let mut values = Vec::new();
    project_values(projection, data, &mut Vec::new(), &mut values)?;
    Ok(values_map(projection, &values))
}

/// The key map of a projection's values (as [`project_values`] leaves them).
fn values_map(projection: &Projection, values: &[String]) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    for ((name, _), value) in projection.entries.iter().zip(values) {
        keys.insert(name.clone(), value.clone());
    }
    keys
}

/// Reads a [`Projection`]'s key values from the record into `values` (one per entry, in
/// order; the buffers are reused), checked as [`keys_of`] checks them, with its errors.
fn project_values(
    projection: &Projection,
    data: &[u8],
    found: &mut Vec<Option<serde_json::Value>>,
    values: &mut Vec<String>,
) -> Result<(), (&'static str, String)> {
    use serde::de::DeserializeSeed as _;
    let failed = |msg: String| (codes::METADATA_EXTRACTION_FAILED, msg);
    let mut de = serde_json::Deserializer::from_slice(data);
    let top = Members {
        wanted: &projection.members,
        found: &mut *found,
    }
    .deserialize(&mut de)
    .and_then(|top| de.end().map(|()| top))
    .map_err(|e| failed(format!("Non JSON record provided: {e}")))?;
    let cannot_index = |field: &str, what: &str| {
        failed(format!(
            "The MetadataExtractionQuery failed on the record: jq error: cannot index {what} \
             with \"{field}\""
        ))
    };
    let null = serde_json::Value::Null;
    values.resize_with(projection.entries.len(), String::new);
    for (n, (name, path)) in projection.entries.iter().enumerate() {
        let mut v = match &top {
            Top::Object => found[projection.slots[n]].as_ref().unwrap_or(&null),
            Top::Null => &null,
            Top::Other => return Err(cannot_index(&path[0], "the record")),
        };
        for field in &path[1..] {
            v = match v {
                serde_json::Value::Object(map) => map.get(field).unwrap_or(&null),
                serde_json::Value::Null => &null,
                _ => return Err(cannot_index(field, "a non-object value")),
            };
        }
        let value = &mut values[n];
        value.clear();
        write_json_key_value(v, value)
            .map_err(|e| failed(format!("Partition key {name:?} {e}.")))?;
        validate_partition_value(value).map_err(|e| {
            (
                codes::INVALID_PARTITION_KEY,
                format!("Partition key {name:?}: {e}."),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_is_recognised_only_for_plain_field_paths() {
        let p = parse_projection(r#"{ customer_id: .customer_id, "y": .a.b_2, z }"#).unwrap();
        assert_eq!(
            p.entries,
            vec![
                ("customer_id".to_string(), vec!["customer_id".to_string()]),
                ("y".to_string(), vec!["a".to_string(), "b_2".to_string()]),
                ("z".to_string(), vec!["z".to_string()]),
            ]
        );
        for not_plain in [
            "{a: .x | tostring}",
            "{a: (.x % 10)}",
            ".x",
            "{a: .x[0]}",
            "{}",
            "{a: .x, b: {c: .d}}",
        ] {
            assert_eq!(parse_projection(not_plain), None, "{not_plain}");
        }
    }

    #[test]
    fn projection_matches_jq() {
        let code = "{c: .customer_id, y: .t.year, ok: .flag}";
        let fast = JqProgram::compile(code).unwrap();
        assert!(fast.projection.is_some());
        let mut slow = JqProgram::compile(code).unwrap();
        slow.projection = None;
        let records: [&[u8]; 15] = [
            br#"{"customer_id":"a1","t":{"year":2026},"flag":true}"#,
            br#"{"customer_id":"first","customer_id":"last","t":{"year":1},"flag":true}"#,
            br#"{"cust\u006fmer_id":"escaped","t":{"year":1},"flag":true,"big":[1,{"x":[2]}]}"#,
            br#"null"#,
            br#"  {"customer_id":"a","t":{"year":1},"flag":true}  "#,
            br#"{"customer_id":"a","t":{"year":1},"flag":true} trailing"#,
            br#"{"customer_id":"a","t":null,"flag":true}"#,
            br#"{"customer_id":7,"t":{"year":2.0e3},"flag":false}"#,
            br#"{"customer_id":1.5,"t":{"year":-3},"flag":true}"#,
            br#"{"customer_id":"a","t":{},"flag":true}"#,
            br#"{"customer_id":"a","t":"x","flag":true}"#,
            br#"{"customer_id":["x"],"t":{"year":1},"flag":true}"#,
            br#"{"customer_id":"../x","t":{"year":1},"flag":true}"#,
            br#"[1,2]"#,
            b"not json",
        ];
        for r in records {
            let f = keys_of(&fast, r);
            let s = keys_of(&slow, r);
            assert_eq!(
                f.as_ref().ok(),
                s.as_ref().ok(),
                "{}",
                String::from_utf8_lossy(r)
            );
            assert_eq!(
                f.as_ref().err().map(|e| e.0),
                s.as_ref().err().map(|e| e.0),
                "{}",
                String::from_utf8_lossy(r)
            );
        }
    }

    #[test]
    fn projection_reading_one_member_twice_matches_jq() {
        let code = "{y: .t.year, m: .t.month, a: .t, c: .c}";
        let fast = JqProgram::compile(code).unwrap();
        let p = fast.projection.as_ref().unwrap();
        assert_eq!(p.members, ["t", "c"]);
        assert_eq!(p.slots, [0, 0, 0, 1]);
        let mut slow = JqProgram::compile(code).unwrap();
        slow.projection = None;
        for r in [
            br#"{"t":{"year":2026,"month":"11"},"c":"x"}"#.as_slice(),
            br#"{"t":{"year":2026},"c":"x"}"#,
            br#"{"t":3,"c":"x"}"#,
        ] {
            let f = keys_of(&fast, r);
            let s = keys_of(&slow, r);
            assert_eq!(f.as_ref().ok(), s.as_ref().ok());
            assert_eq!(f.err().map(|e| e.0), s.err().map(|e| e.0));
        }
    }

    #[test]
    fn key_cache_shares_one_map_per_distinct_keys() {
        for code in [
            "{c: .customer, n: .n}",
            "{c: .customer, n: (.n | tostring)}",
        ] {
            let q = JqProgram::compile(code).unwrap();
            let mut cache = KeyCache::default();
            let mut extract = |r: &[u8]| match &q.projection {
                Some(p) => cache.project(p, r),
                None => keys_of(&q, r).map(|k| cache.intern(k)),
            };
            let a1 = extract(br#"{"customer":"a","n":1}"#).unwrap();
            let b = extract(br#"{"customer":"b","n":1}"#).unwrap();
            let a2 = extract(br#"{"n":1,"x":[],"customer":"a"}"#).unwrap();
            assert_eq!(a1, a2);
            assert_ne!(a1, b);
            assert!(std::ptr::eq(&*a1, &*a2), "{code}");
            assert_eq!(*a1, keys_of(&q, br#"{"customer":"a","n":1}"#).unwrap());
            assert_eq!(b["c"], "b");
            assert_eq!(b["n"], "1");
            // Failures are those of `keys_of`, and leave the cache usable.
            for bad in [
                br#"{"customer":"a/b","n":1}"#.as_slice(),
                br#"{"n":1}"#,
                b"[1]",
                b"nope",
            ] {
                let e = extract(bad).unwrap_err();
                let want = keys_of(&q, bad).unwrap_err();
                assert_eq!(e.0, want.0, "{code}");
                if q.projection.is_some() {
                    assert_eq!(e.1, want.1);
                }
            }
            assert!(std::ptr::eq(
                &*a1,
                &*extract(br#"{"customer":"a","n":1}"#).unwrap()
            ));
        }
    }

    fn run_str(code: &str, input: &str) -> Result<Vec<String>, String> {
        let p = JqProgram::compile(code)?;
        let vals = p.run(parse_json(input.as_bytes())?, 100)?;
        Ok(vals
            .iter()
            .map(|v| {
                let mut b = Vec::new();
                write_json(v, &mut b).unwrap();
                String::from_utf8(b).unwrap()
            })
            .collect())
    }

    #[test]
    fn compiles_and_runs_with_stdlib() {
        assert_eq!(run_str(".a", r#"{"a":1}"#).unwrap(), ["1"]);
        assert_eq!(run_str(".[] | . * 2", "[1,2.5]").unwrap(), ["2", "5"]);
        assert_eq!(
            run_str(
                "{z: .b, a: (.a | ascii_upcase)}",
                r#"{"a":"x","b":[1,{"c":null}]}"#
            )
            .unwrap(),
            [r#"{"z":[1,{"c":null}],"a":"X"}"#]
        );
        assert_eq!(
            run_str(r#".ts | strftime("%Y/%m")"#, r#"{"ts":1700000000}"#).unwrap(),
            [r#""2023/11""#]
        );
        assert_eq!(
            run_str("map(select(. > 1)) | length", "[1,2,3]").unwrap(),
            ["2"]
        );
        assert_eq!(run_str(r#""a\nb\"""#, "null").unwrap(), [r#""a\nb\"""#]);
        assert_eq!(
            run_str("nan, infinite", "null").unwrap(),
            ["null", "1.7976931348623157e+308"]
        );
    }

    #[test]
    fn compile_errors_are_readable() {
        let e = JqProgram::compile("{a: .a").err().unwrap();
        assert!(e.contains("syntax error"), "{e}");
        let e = JqProgram::compile("nosuchfunction(1)").err().unwrap();
        assert!(e.contains("nosuchfunction"), "{e}");
        let e = JqProgram::compile(r#"import "x" as x; ."#).err().unwrap();
        assert!(!e.is_empty());
    }

    #[test]
    fn sandbox() {
        assert_eq!(run_str("env", "null").unwrap(), ["{}"]);
        // `$ENV` is not bound: the program does not compile.
        assert!(run_str("$ENV", "null").is_err());
        assert_eq!(run_str("debug | stderr | .", "1").unwrap(), ["1"]);
        let e = run_str("halt", "1").unwrap_err();
        assert!(e.contains("halt"), "{e}");
        let e = run_str(r#""bye" | halt_error(3)"#, "1").unwrap_err();
        assert!(e.contains("halt"), "{e}");
        let e = run_str("repeat(1)", "null").unwrap_err();
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn key_values() {
        let q = JqProgram::compile("{s: .s, i: .i, f: .f, b: .b, big: .big}").unwrap();
        let keys = keys_of(&q, br#"{"s":"x y","i":42,"f":1.5,"b":true,"big":2e3}"#).unwrap();
        assert_eq!(keys["s"], "x y");
        assert_eq!(keys["i"], "42");
        assert_eq!(keys["f"], "1.5");
        assert_eq!(keys["b"], "true");
        assert_eq!(keys["big"], "2000");
        let (code, msg) = keys_of(&q, br#"{"s":"x"}"#).unwrap_err();
        assert_eq!(code, codes::METADATA_EXTRACTION_FAILED);
        assert!(msg.contains("null"), "{msg}");
        let (code, _) = keys_of(&q, b"nope").unwrap_err();
        assert_eq!(code, codes::METADATA_EXTRACTION_FAILED);
        let (code, _) = keys_of(&q, br#"{"s":"a/b","i":1,"f":1,"b":1,"big":1}"#).unwrap_err();
        assert_eq!(code, codes::INVALID_PARTITION_KEY);
        let arr = JqProgram::compile(".[]").unwrap();
        assert!(keys_of(&arr, b"[{},{}]").is_err());
        assert!(keys_of(&arr, b"[1]").is_err());
        assert!(keys_of(&arr, b"[]").is_err());
    }
}
