//! A small, strict JSON tokenizer over one record's bytes, shared by the decoder and by schema
//! inference. It never allocates on the happy path except to decode escaped strings.
//!
//! Invariants: `pos` only moves forward; every function that returns `Ok` leaves `pos` just
//! after what it consumed; the caller validated the whole record as UTF-8 first, so slices cut
//! at ASCII delimiters are valid UTF-8 too.

use super::decode::{RecErr, Res};

pub(crate) struct Parser<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

/// Nesting deeper than this fails the record (as Jackson's default limits do).
const MAX_DEPTH: u32 = 1000;

/// `a == b` for the short keys of JSON objects, without a call into libc.
#[inline(always)]
pub(crate) fn key_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n > 16 {
        return a == b;
    }
    if n < 8 {
        return a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0;
    }
    let word =
        |s: &[u8], from: usize| u64::from_le_bytes(s[from..from + 8].try_into().unwrap_or([0; 8]));
    word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8)
}

/// True when `s` holds a byte below 0x20 (JSON forbids raw control characters in strings).
#[inline]
fn has_control(s: &[u8]) -> bool {
    s.iter().fold(0xffu8, |m, &b| m.min(b)) < 0x20
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` that is `"`, `\` or below 0x20. Bytes above the first
/// such byte may be flagged falsely (borrows), the lowest flag is always exact.
#[inline(always)]
fn special_mask(w: u64) -> u64 {
    let q = w ^ (ONES * b'"' as u64);
    let b = w ^ (ONES * b'\\' as u64);
    let zq = q.wrapping_sub(ONES) & !q;
    let zb = b.wrapping_sub(ONES) & !b;
    let lt = w.wrapping_sub(ONES * 0x20) & !w;
    (zq | zb | lt) & HIGH
}

/// The index of the first `"`, `\` or control byte of `s`: eight bytes at a time for the
/// short strings JSON is mostly made of, memchr beyond 64 bytes.
#[inline(always)]
fn find_special(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let m = special_mask(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])));
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
        if i >= 64 {
            return find_special_long(s, i);
        }
    }
    s[i..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|p| i + p)
}

#[inline(never)]
fn find_special_long(s: &[u8], from: usize) -> Option<usize> {
    let rest = &s[from..];
    let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    if has_control(&rest[..end]) {
        return rest[..end].iter().position(|&b| b < 0x20).map(|p| from + p);
    }
    (end < rest.len()).then_some(from + end)
}

impl<'a> Parser<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Parser { buf, pos: 0 }
    }

    /// The current byte, 0 at the end.
    #[inline(always)]
    pub(crate) fn peek(&self) -> u8 {
        match self.buf.get(self.pos) {
            Some(&b) => b,
            None => 0,
        }
    }

    #[inline(always)]
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline(always)]
    pub(crate) fn ws(&mut self) {
        while let Some(&b) = self.buf.get(self.pos) {
            if b == b' ' || b == b'\n' || b == b'\r' || b == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// A ParseError naming what was expected at the current position.
    #[cold]
    pub(crate) fn err(&self, expected: &str) -> Box<RecErr> {
        let msg = match self.buf.get(self.pos) {
            None => format!(
                "Unexpected end-of-input: expected {expected} (at byte {})",
                self.pos
            ),
            Some(&c) if c.is_ascii_graphic() => format!(
                "Unexpected character ('{}' (code {c})): expected {expected} (at byte {})",
                c as char, self.pos
            ),
            Some(&c) => format!(
                "Unexpected character (code {c}): expected {expected} (at byte {})",
                self.pos
            ),
        };
        RecErr::parse(msg)
    }

    #[inline]
    pub(crate) fn expect(&mut self, c: u8, what: &str) -> Res {
        if self.peek() == c {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    #[inline]
    pub(crate) fn lit(&mut self, word: &[u8]) -> Res {
        if self.buf[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("a JSON value ('true', 'false' or 'null')"))
        }
    }

    /// At `"`: appends the decoded string to `out`.
    #[inline]
    pub(crate) fn string_into(&mut self, out: &mut Vec<u8>) -> Res {
        self.pos += 1;
        loop {
            let rest = &self.buf[self.pos..];
            let Some(i) = find_special(rest) else {
                self.pos = self.buf.len();
                return Err(self.err("closing quote of a string"));
            };
            out.extend_from_slice(&rest[..i]);
            self.pos += i;
            match rest[i] {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => self.escape(out)?,
                _ => return Err(self.control_err()),
            }
        }
    }

    /// At `"`: the string's content, borrowed from the record when it has no escapes,
    /// otherwise decoded into `scratch` (cleared first).
    #[inline]
    pub(crate) fn string_ref<'s>(&mut self, scratch: &'s mut Vec<u8>) -> Res<&'s [u8]>
    where
        'a: 's,
    {
        let start = self.pos + 1;
        let rest = &self.buf[start..];
        match find_special(rest) {
            Some(i) if rest[i] == b'"' => {
                self.pos = start + i + 1;
                Ok(&rest[..i])
            }
            _ => {
                scratch.clear();
                self.string_into(scratch)?;
                Ok(scratch.as_slice())
            }
        }
    }

    /// At a raw control character inside a string.
    #[cold]
    fn control_err(&self) -> Box<RecErr> {
        let c = self.peek();
        RecErr::parse(format!(
            "Illegal unquoted character ((CTRL-CHAR, code {c})): has to be escaped using \
             backslash to be included in string value (at byte {})",
            self.pos
        ))
    }

    /// At `\`: decodes one escape sequence into `out`.
    fn escape(&mut self, out: &mut Vec<u8>) -> Res {
        let c = self.buf.get(self.pos + 1).copied();
        self.pos += 1;
        let b = match c {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'b') => 8,
            Some(b'f') => 12,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                self.pos += 1;
                let hi = self.hex4()?;
                let cp = if (0xD800..0xDC00).contains(&hi) {
                    if !self.buf[self.pos..].starts_with(b"\\u") {
                        return Err(self.err("a low surrogate escape after a high surrogate"));
                    }
                    self.pos += 2;
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(self.err("a low surrogate escape"));
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else if (0xDC00..0xE000).contains(&hi) {
                    return Err(self.err("a high surrogate before a low surrogate"));
                } else {
                    hi
                };
                let ch = char::from_u32(cp).ok_or_else(|| self.err("a valid \\u escape"))?;
                let mut tmp = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                return Ok(());
            }
            _ => return Err(self.err("a valid escape sequence")),
        };
        self.pos += 1;
        out.push(b);
        Ok(())
    }

    fn hex4(&mut self) -> Res<u32> {
        let Some(h) = self.buf.get(self.pos..self.pos + 4) else {
            return Err(self.err("4 hex digits"));
        };
        let mut v = 0u32;
        for &c in h {
            let d = (c as char)
                .to_digit(16)
                .ok_or_else(|| self.err("4 hex digits"))?;
            v = v * 16 + d;
        }
        self.pos += 4;
        Ok(v)
    }

    /// At `-` or a digit: scans a JSON number, returning its text and whether it is an
    /// integer (no fraction, no exponent).
    #[inline]
    pub(crate) fn number(&mut self) -> Res<(&'a [u8], bool)> {
        let b = self.buf;
        let start = self.pos;
        let mut i = start;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                i += 1;
                while let Some(b'0'..=b'9') = b.get(i) {
                    i += 1;
                }
            }
            _ => {
                self.pos = i;
                return Err(self.err("a digit"));
            }
        }
        let mut int = true;
        if b.get(i) == Some(&b'.') {
            int = false;
            i += 1;
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                self.pos = i;
                return Err(self.err("a digit after the decimal point"));
            }
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            int = false;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                self.pos = i;
                return Err(self.err("a digit in the exponent"));
            }
            while let Some(b'0'..=b'9') = b.get(i) {
                i += 1;
            }
        }
        self.pos = i;
        Ok((&b[start..i], int))
    }

    /// At `"`: skips a string, validating it.
    fn skip_string(&mut self) -> Res {
        self.pos += 1;
        loop {
            let rest = &self.buf[self.pos..];
            let Some(i) = find_special(rest) else {
                self.pos = self.buf.len();
                return Err(self.err("closing quote of a string"));
            };
            self.pos += i;
            match rest[i] {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {}
                _ => return Err(self.control_err()),
            }
            match self.buf.get(self.pos + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                Some(b'u') => {
                    self.pos += 2;
                    self.hex4()?;
                }
                _ => {
                    self.pos += 1;
                    return Err(self.err("a valid escape sequence"));
                }
            }
        }
    }

    /// Skips one JSON value of any kind, validating its syntax.
    pub(crate) fn skip_value(&mut self, depth: u32) -> Res {
        match self.peek() {
            b'"' => self.skip_string(),
            b'{' => {
                if depth >= MAX_DEPTH {
                    return Err(self.err("less nesting"));
                }
                self.pos += 1;
                self.ws();
                if self.peek() == b'}' {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    if self.peek() != b'"' {
                        return Err(self.err("a double-quoted field name"));
                    }
                    self.skip_string()?;
                    self.ws();
                    self.expect(b':', "':' after a field name")?;
                    self.ws();
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        b',' => {
                            self.pos += 1;
                            self.ws();
                        }
                        b'}' => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.err("',' or '}'")),
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(self.err("less nesting"));
                }
                self.pos += 1;
                self.ws();
                if self.peek() == b']' {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        b',' => {
                            self.pos += 1;
                            self.ws();
                        }
                        b']' => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.err("',' or ']'")),
                    }
                }
            }
            b't' => self.lit(b"true"),
            b'f' => self.lit(b"false"),
            b'n' => self.lit(b"null"),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            _ => Err(self.err("a JSON value")),
        }
    }
}
