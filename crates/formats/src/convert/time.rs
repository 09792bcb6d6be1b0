//! Date and timestamp parsing for the JSON SerDes, without a time zone database: every
//! timestamp without an offset is UTC, every offset is applied to give UTC.
//!
//! - [`parse_default_timestamp`]: `yyyy-[M]M-[d]d[( |T)HH:mm[:ss[.f{1,9}]]][Z|±hh[[:]mm]]`,
//!   covering `java.sql.Timestamp.valueOf` (Hive's default) and the ISO-8601 forms OpenX reads.
//! - [`TimestampFormat`]: a Joda-Time `DateTimeFormat` pattern (HiveJsonSerDe's
//!   `TimestampFormats`), or `millis`.
//! - Values are `(seconds, nanoseconds)` since the epoch, nanoseconds in `0..1e9`.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

fn valid_date(y: i64, m: u32, d: u32) -> bool {
    (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

/// A byte cursor for the fixed-shape parsers.
struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Between `min` and `max` ASCII digits as a number.
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let mut n: u32 = 0;
        let start = self.i;
        while self.i - start < max {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    n = n * 10 + (c - b'0') as u32;
                    self.i += 1;
                }
                _ => break,
            }
        }
        (self.i - start >= min).then_some(n)
    }

    /// A fraction of a second of 1 to 9 digits (more are read and truncated) as nanoseconds.
    fn fraction(&mut self) -> Option<u32> {
        let start = self.i;
        let mut nanos: u32 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            if self.i - start < 9 {
                nanos = nanos * 10 + (c - b'0') as u32;
            }
            self.i += 1;
        }
        let n = self.i - start;
        if n == 0 {
            return None;
        }
        for _ in n..9 {
            nanos *= 10;
        }
        Some(nanos)
    }

    /// `Z`, `±hh`, `±hhmm` or `±hh:mm` as seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        if self.eat(b'Z') || self.eat(b'z') {
            return Some(0);
        }
        let sign = match self.peek()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.i += 1;
        let h = self.digits(2, 2)?;
        let m = if self.eat(b':') {
            self.digits(2, 2)?
        } else {
            self.digits(2, 2).unwrap_or(0)
        };
        if h > 18 || m > 59 {
            return None;
        }
        Some(sign * (h as i64 * 3600 + m as i64 * 60))
    }

    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

/// `yyyy-[M]M-[d]d` as days since the epoch.
pub(crate) fn parse_date(s: &[u8]) -> Option<i32> {
    let mut c = Cur { s, i: 0 };
    let (y, m, d) = date_part(&mut c)?;
    if !c.done() {
        return None;
    }
    i32::try_from(days_from_civil(y, m, d)).ok()
}

fn date_part(c: &mut Cur) -> Option<(i64, u32, u32)> {
    let neg = c.eat(b'-');
    let y = c.digits(4, 4)? as i64;
    let y = if neg { -y } else { y };
    if !c.eat(b'-') {
        return None;
    }
    let m = c.digits(1, 2)?;
    if !c.eat(b'-') {
        return None;
    }
    let d = c.digits(1, 2)?;
    valid_date(y, m, d).then_some((y, m, d))
}

/// The default timestamp forms (see the module docs). A date alone is midnight UTC when
/// `date_only` is allowed.
pub(crate) fn parse_default_timestamp(s: &[u8], date_only: bool) -> Option<(i64, u32)> {
    let mut c = Cur { s, i: 0 };
    let (y, mo, d) = date_part(&mut c)?;
    let days = days_from_civil(y, mo, d);
    if c.done() {
        return date_only.then_some((days * 86_400, 0));
    }
    if !(c.eat(b'T') || c.eat(b' ') || c.eat(b't')) {
        return None;
    }
    let h = c.digits(1, 2)?;
    if !c.eat(b':') {
        return None;
    }
    let mi = c.digits(2, 2)?;
    let (mut sec, mut nanos) = (0, 0);
    if c.eat(b':') {
        sec = c.digits(2, 2)?;
        if c.eat(b'.') || c.eat(b',') {
            nanos = c.fraction()?;
        }
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut offset = 0;
    if !c.done() {
        c.eat(b' ');
        if c.s[c.i..].eq_ignore_ascii_case(b"UTC") || c.s[c.i..].eq_ignore_ascii_case(b"GMT") {
            c.i = c.s.len();
        } else {
            offset = c.offset()?;
        }
        if !c.done() {
            return None;
        }
    }
    let secs = days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + sec as i64 - offset;
    Some((secs, nanos))
}

/// `(seconds, nanos)` from epoch milliseconds.
pub(crate) fn from_millis(ms: i64) -> (i64, u32) {
    from_unit(ms, arrow_schema::TimeUnit::Millisecond)
}

/// `(seconds, nanos)` in `unit`, `None` on overflow.
pub(crate) fn to_unit(secs: i64, nanos: u32, unit: arrow_schema::TimeUnit) -> Option<i64> {
    use arrow_schema::TimeUnit::*;
    match unit {
        Second => Some(secs),
        Millisecond => secs
            .checked_mul(1000)?
            .checked_add((nanos / 1_000_000) as i64),
        Microsecond => secs
            .checked_mul(1_000_000)?
            .checked_add((nanos / 1000) as i64),
        Nanosecond => secs.checked_mul(1_000_000_000)?.checked_add(nanos as i64),
    }
}

/// A value in `unit` as `(seconds, nanos)`, the inverse of [`to_unit`].
pub(crate) fn from_unit(v: i64, unit: arrow_schema::TimeUnit) -> (i64, u32) {
    use arrow_schema::TimeUnit::*;
    let per_second: i64 = match unit {
        Second => 1,
        Millisecond => 1_000,
        Microsecond => 1_000_000,
        Nanosecond => 1_000_000_000,
    };
    (
        v.div_euclid(per_second),
        (v.rem_euclid(per_second) * (1_000_000_000 / per_second)) as u32,
    )
}

/// One element of a compiled Joda-Time pattern.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Lit(String),
    /// `y`/`Y`/`u`: year; `count` digits exactly when followed by another number.
    Year(usize),
    /// `M`: month, numeric (1-2 letters) or by name (3+).
    Month(usize),
    Day(usize),
    /// `H`/`k`: hour of day.
    Hour(usize),
    /// `h`/`K`: hour of half-day, with `a`.
    Hour12(usize),
    Minute(usize),
    Second(usize),
    /// `S`: fraction of second.
    Fraction(usize),
    /// `a`: AM/PM.
    HalfDay,
    /// `Z`: offset `Z`, `±hhmm`, `±hh:mm`.
    Offset,
    /// `z`: `UTC`/`GMT`/`Z`.
    ZoneName,
    /// `E`: day of week name, parsed and ignored.
    DayName,
}

impl Tok {
    fn numeric(&self) -> bool {
        matches!(
            self,
            Tok::Year(_)
                | Tok::Day(_)
                | Tok::Hour(_)
                | Tok::Hour12(_)
                | Tok::Minute(_)
                | Tok::Second(_)
                | Tok::Fraction(_)
        ) || matches!(self, Tok::Month(n) if *n <= 2)
    }
}

/// A HiveJsonSerDe `TimestampFormats` entry, compiled.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TimestampFormat {
    /// `millis`: epoch milliseconds (digits, optionally signed).
    Millis,
    Pattern(Vec<Tok>),
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

impl TimestampFormat {
    /// Compiles a Joda-Time pattern (`yyyy-MM-dd'T'HH:mm:ss.SSSZZ`, `dd/MMM/yyyy:HH:mm:ss Z`,
    /// ...) or `millis`. Fields outside date and time of day (week-based years, eras, time zone
    /// ids other than UTC/GMT) are refused.
    pub(crate) fn compile(pattern: &str) -> Result<Self, String> {
        if pattern == "millis" {
            return Ok(TimestampFormat::Millis);
        }
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        let push_lit = |toks: &mut Vec<Tok>, s: &str| {
            if let Some(Tok::Lit(prev)) = toks.last_mut() {
                prev.push_str(s);
            } else {
                toks.push(Tok::Lit(s.to_owned()));
            }
        };
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                // Quoted literal; '' is a single quote.
                if chars.get(i + 1) == Some(&'\'') {
                    push_lit(&mut toks, "'");
                    i += 2;
                    continue;
                }
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("unterminated quote".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            lit.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            lit.push(ch);
                            i += 1;
                        }
                    }
                }
                push_lit(&mut toks, &lit);
                continue;
            }
            if !c.is_ascii_alphabetic() {
                push_lit(&mut toks, &c.to_string());
                i += 1;
                continue;
            }
            let mut n = 1;
            while chars.get(i + n) == Some(&c) {
                n += 1;
            }
            i += n;
            toks.push(match c {
                'y' | 'Y' | 'u' => Tok::Year(n),
                'M' => Tok::Month(n),
                'd' => Tok::Day(n),
                'H' | 'k' => Tok::Hour(n),
                'h' | 'K' => Tok::Hour12(n),
                'm' => Tok::Minute(n),
                's' => Tok::Second(n),
                'S' => Tok::Fraction(n),
                'a' => Tok::HalfDay,
                'Z' => Tok::Offset,
                'z' => Tok::ZoneName,
                'E' => Tok::DayName,
                other => return Err(format!("unsupported pattern letter '{other}'")),
            });
        }
        if !toks.iter().any(|t| matches!(t, Tok::Year(_))) {
            return Err("a timestamp format needs a year (y)".into());
        }
        Ok(TimestampFormat::Pattern(toks))
    }

    /// Parses `s` completely, `None` when it does not match.
    pub(crate) fn parse(&self, s: &[u8]) -> Option<(i64, u32)> {
        let toks = match self {
            TimestampFormat::Millis => {
                let (neg, digits) = match s.first() {
                    Some(b'-') => (true, &s[1..]),
                    _ => (false, s),
                };
                if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit)
                {
                    return None;
                }
                let mut ms: i64 = 0;
                for d in digits {
                    ms = ms * 10 + (d - b'0') as i64;
                }
                return Some(from_millis(if neg { -ms } else { ms }));
            }
            TimestampFormat::Pattern(t) => t,
        };
        let mut c = Cur { s, i: 0 };
        let (mut y, mut mo, mut d, mut h, mut mi, mut sec, mut nanos) = (1970i64, 1, 1, 0, 0, 0, 0);
        let mut pm: Option<bool> = None;
        let mut h12 = false;
        let mut offset = 0i64;
        for (k, t) in toks.iter().enumerate() {
            let next_numeric = toks.get(k + 1).is_some_and(Tok::numeric);
            // Adjacent numeric fields are fixed width; otherwise a field takes what is there.
            let width = |n: usize, max: usize| {
                if next_numeric {
                    (n.max(1), n.max(1))
                } else {
                    (1, max.max(n))
                }
            };
            match t {
                Tok::Lit(l) => {
                    let lb = l.as_bytes();
                    if !c.s[c.i..].starts_with(lb) {
                        return None;
                    }
                    c.i += lb.len();
                }
                Tok::Year(n) => {
                    let neg = c.eat(b'-');
                    let (lo, hi) = if *n == 2 && next_numeric {
                        (2, 2)
                    } else {
                        width(*n, 9)
                    };
                    let v = c.digits(lo, hi)? as i64;
                    // Joda's two-digit year pivot: 2000-based for `yy`.
                    y = if *n == 2 && v < 100 { 2000 + v } else { v };
                    if neg {
                        y = -y;
                    }
                }
                Tok::Month(n) if *n >= 3 => {
                    mo = name_index(&mut c, &MONTHS, *n == 3)? as u32 + 1;
                }
                Tok::Month(n) => {
                    let (lo, hi) = width(*n, 2);
                    mo = c.digits(lo, hi)?;
                }
                Tok::Day(n) => {
                    let (lo, hi) = width(*n, 2);
                    d = c.digits(lo, hi)?;
                }
                Tok::Hour(n) => {
                    let (lo, hi) = width(*n, 2);
                    h = c.digits(lo, hi)?;
                }
                Tok::Hour12(n) => {
                    let (lo, hi) = width(*n, 2);
                    h = c.digits(lo, hi)?;
                    h12 = true;
                }
                Tok::Minute(n) => {
                    let (lo, hi) = width(*n, 2);
                    mi = c.digits(lo, hi)?;
                }
                Tok::Second(n) => {
                    let (lo, hi) = width(*n, 2);
                    sec = c.digits(lo, hi)?;
                }
                Tok::Fraction(n) => {
                    if next_numeric {
                        let v = c.digits(*n, *n)?;
                        nanos = v * 10u32.pow(9 - (*n).min(9) as u32);
                    } else {
                        nanos = c.fraction()?;
                    }
                }
                Tok::HalfDay => {
                    let rest = &c.s[c.i..];
                    if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(b"AM") {
                        pm = Some(false);
                    } else if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case(b"PM") {
                        pm = Some(true);
                    } else {
                        return None;
                    }
                    c.i += 2;
                }
                Tok::Offset => offset = c.offset()?,
                Tok::ZoneName => {
                    let rest = &c.s[c.i..];
                    if rest.len() >= 3
                        && (rest[..3].eq_ignore_ascii_case(b"UTC")
                            || rest[..3].eq_ignore_ascii_case(b"GMT"))
                    {
                        c.i += 3;
                    } else if c.eat(b'Z') {
                    } else {
                        return None;
                    }
                }
                Tok::DayName => {
                    name_index(&mut c, &DAYS, true)?;
                }
            }
        }
        if !c.done() {
            return None;
        }
        if h12 {
            if !(1..=12).contains(&h) {
                return None;
            }
            h %= 12;
            if pm == Some(true) {
                h += 12;
            }
        } else if let Some(true) = pm
            && h < 12
        {
            h += 12;
        }
        if !valid_date(y, mo, d) || h > 23 || mi > 59 || sec > 59 {
            return None;
        }
        let secs =
            days_from_civil(y, mo, d) * 86_400 + h as i64 * 3600 + mi as i64 * 60 + sec as i64
                - offset;
        Some((secs, nanos))
    }
}

/// A month or day name (full, or its first three letters when `short` allows), ASCII
/// case-insensitive, as its index.
fn name_index(c: &mut Cur, names: &[&str], short: bool) -> Option<usize> {
    let rest = &c.s[c.i..];
    for (i, name) in names.iter().enumerate() {
        let name = name.as_bytes();
        if rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name) {
            c.i += name.len();
            return Some(i);
        }
    }
    if short {
        for (i, name) in names.iter().enumerate() {
            let name = &name.as_bytes()[..3];
            if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(name) {
                c.i += 3;
                return Some(i);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Option<i64> {
        parse_default_timestamp(s.as_bytes(), true)
            .map(|(s, n)| to_unit(s, n, arrow_schema::TimeUnit::Millisecond).unwrap())
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(parse_date(b"2024-02-29"), Some(19_782));
        assert_eq!(parse_date(b"2023-02-29"), None);
        assert_eq!(parse_date(b"2024-2-9"), Some(19_762));
        assert_eq!(parse_date(b"2024-02-09x"), None);
    }

    #[test]
    fn default_forms() {
        let base = 1_709_288_130_000; // 2024-03-01T10:15:30Z
        assert_eq!(ms("2024-03-01T10:15:30Z"), Some(base));
        assert_eq!(ms("2024-03-01T10:15:30"), Some(base));
        assert_eq!(ms("2024-03-01 10:15:30"), Some(base));
        assert_eq!(ms("2024-3-1 10:15:30"), Some(base));
        assert_eq!(ms("2024-03-01T10:15:30.123Z"), Some(base + 123));
        assert_eq!(ms("2024-03-01 10:15:30.123456789"), Some(base + 123));
        assert_eq!(ms("2024-03-01T10:15:30.1+00:00"), Some(base + 100));
        assert_eq!(ms("2024-03-01T12:15:30+02:00"), Some(base));
        assert_eq!(ms("2024-03-01T12:15:30+0200"), Some(base));
        assert_eq!(ms("2024-03-01T05:15:30-05"), Some(base));
        assert_eq!(ms("2024-03-01T10:15Z"), Some(base - 30_000));
        assert_eq!(ms("2024-03-01 10:15:30 UTC"), Some(base));
        assert_eq!(ms("2024-03-01"), Some(base - 36_930_000));
        assert_eq!(ms("1969-12-31T23:59:59.999Z"), Some(-1));
        for bad in [
            "",
            "abc",
            "2024-13-01T00:00:00",
            "2024-03-01T25:00:00",
            "2024-03-01X10:00",
            "2024-03-01T10:15:30Zjunk",
        ] {
            assert_eq!(ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn joda_patterns() {
        let base = 1_709_288_130_000; // 2024-03-01T10:15:30Z
        let p = |f: &str, s: &str| {
            TimestampFormat::compile(f)
                .unwrap()
                .parse(s.as_bytes())
                .map(|(s, n)| to_unit(s, n, arrow_schema::TimeUnit::Millisecond).unwrap())
        };
        assert_eq!(
            p(
                "yyyy-MM-dd'T'HH:mm:ss.SSSZZ",
                "2024-03-01T10:15:30.250+00:00"
            ),
            Some(base + 250)
        );
        assert_eq!(
            p("dd/MMM/yyyy:HH:mm:ss Z", "01/Mar/2024:11:15:30 +0100"),
            Some(base)
        );
        assert_eq!(p("yyyyMMddHHmmss", "20240301101530"), Some(base));
        assert_eq!(
            p("MM/dd/yyyy hh:mm:ss a", "03/01/2024 10:15:30 AM"),
            Some(base)
        );
        assert_eq!(
            p("MM/dd/yyyy hh:mm:ss a", "03/01/2024 10:15:30 PM"),
            Some(base + 12 * 3_600_000)
        );
        assert_eq!(
            p(
                "EEE, dd MMMM yyyy HH:mm:ss z",
                "Fri, 01 March 2024 10:15:30 GMT"
            ),
            Some(base)
        );
        assert_eq!(p("millis", "1709288130000"), Some(base));
        assert_eq!(p("yyyy-MM-dd", "2024-03-01"), Some(base - 36_930_000));
        assert_eq!(p("yyyy-MM-dd", "2024-03-01 10:00"), None);
        assert!(TimestampFormat::compile("xxxx").is_err());
        assert!(TimestampFormat::compile("'unterminated").is_err());
    }
}
