//! The `Expression` of `GetPartitions`: a SQL-like predicate over partition keys, e.g.
//! `year = '2024' AND month IN ('01', '02')`.
//!
//! Supported (a subset of Glue's language, enough for Athena/Spark/Trino partition pruning):
//! `AND`, `OR`, `NOT`, parentheses; comparisons `=`, `==`, `<>`, `!=`, `<`, `<=`, `>`, `>=`;
//! `[NOT] IN (...)`, `[NOT] BETWEEN a AND b`, `[NOT] LIKE 'pat%_'`, `IS [NOT] NULL`. Operands
//! are partition keys (bare, `` `quoted` `` or `"quoted"`, case-insensitive), `'string'`
//! literals (`''` escapes a quote) and numbers. Comparisons involving a key of a numeric Hive
//! type compare numerically when both sides are numbers, otherwise as strings (so dates in ISO
//! form compare correctly). Values are never NULL, so `IS NULL` is false.
//!
//! Not supported: functions, arithmetic, `CAST`; they are rejected with `InvalidInput` rather
//! than ignored, so a filter is never silently widened.

use std::cmp::Ordering;

use crate::model::Column;
use crate::{CatalogError, Result};

/// A parsed partition predicate, bound to a table's partition keys.
#[derive(Clone, Debug)]
pub struct PartitionExpr {
    root: Option<Node>,
    /// Per partition key: whether its Hive type is numeric.
    numeric: Vec<bool>,
}

#[derive(Clone, Debug)]
enum Operand {
    /// Index of the partition key.
    Key(usize),
    Literal(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Cmp(Operand, CmpOp, Operand),
    In(Operand, Vec<Operand>, bool),
    Between(Operand, Operand, Operand, bool),
    Like(Operand, Operand, bool),
    /// `IS [NOT] NULL`; partition values are never NULL, so only the negation matters.
    IsNull(bool),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Quoted(String),
    Str(String),
    Num(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

/// Deepest nesting of parentheses/NOT accepted.
const MAX_DEPTH: usize = 64;

impl PartitionExpr {
    /// Parses `expr` against the partition `keys`; an empty expression matches everything.
    pub fn parse(expr: &str, keys: &[Column]) -> Result<Self> {
        let numeric = keys
            .iter()
            .map(|k| k.hive_type().map(|t| t.is_numeric()).unwrap_or(false))
            .collect();
        if expr.trim().is_empty() {
            return Ok(Self {
                root: None,
                numeric,
            });
        }
        let toks = tokenize(expr)?;
        let mut p = Parser {
            expr,
            toks,
            pos: 0,
            keys,
        };
        let root = p.or(0)?;
        if p.pos < p.toks.len() {
            return Err(p.error("unexpected token"));
        }
        Ok(Self {
            root: Some(root),
            numeric,
        })
    }

    /// Whether a partition with these values (one per key, in key order) matches.
    pub fn matches(&self, values: &[String]) -> bool {
        self.root
            .as_ref()
            .is_none_or(|n| eval(n, values, &self.numeric))
    }
}

fn invalid(expr: &str, what: &str) -> CatalogError {
    CatalogError::InvalidInput(format!("Unsupported expression '{expr}': {what}."))
}

fn tokenize(expr: &str) -> Result<Vec<(usize, Tok)>> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '\'' | '`' | '"' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(invalid(expr, "unterminated quoted text")),
                        Some(&q) if q == quote && chars.get(i + 1) == Some(&quote) => {
                            s.push(quote);
                            i += 2;
                        }
                        Some(&q) if q == quote => {
                            i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                if quote == '\'' {
                    Tok::Str(s)
                } else {
                    Tok::Quoted(s)
                }
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => ("=", 2),
                    ('=', _) => ("=", 1),
                    ('!', Some('=')) => ("<>", 2),
                    ('<', Some('>')) => ("<>", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('<', _) => ("<", 1),
                    ('>', Some('=')) => (">=", 2),
                    ('>', _) => (">", 1),
                    _ => return Err(invalid(expr, &format!("unexpected '{c}'"))),
                };
                i += len;
                Tok::Op(op)
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                i += 1;
                while chars
                    .get(i)
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '.')
                {
                    i += 1;
                }
                Tok::Num(chars[start..i].iter().collect())
            }
            c if c.is_alphabetic() || c == '_' => {
                while chars
                    .get(i)
                    .is_some_and(|d| d.is_alphanumeric() || *d == '_')
                {
                    i += 1;
                }
                Tok::Ident(chars[start..i].iter().collect())
            }
            other => return Err(invalid(expr, &format!("unexpected '{other}'"))),
        };
        out.push((start, tok));
    }
    Ok(out)
}

struct Parser<'a> {
    expr: &'a str,
    toks: Vec<(usize, Tok)>,
    pos: usize,
    keys: &'a [Column],
}

impl Parser<'_> {
    fn error(&self, what: &str) -> CatalogError {
        match self.toks.get(self.pos) {
            Some((at, _)) => invalid(self.expr, &format!("{what} at position {at}")),
            None => invalid(self.expr, &format!("{what} at the end")),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if let Some(Tok::Ident(s)) = self.peek()
            && s.eq_ignore_ascii_case(kw)
        {
            self.pos += 1;
            return true;
        }
        false
    }

    fn expect(&mut self, tok: &Tok, what: &str) -> Result<()> {
        if self.peek() == Some(tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected {what}")))
        }
    }

    fn or(&mut self, depth: usize) -> Result<Node> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        let mut left = self.and(depth)?;
        while self.keyword("OR") {
            left = Node::Or(Box::new(left), Box::new(self.and(depth)?));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Node> {
        let mut left = self.not(depth)?;
        while self.keyword("AND") {
            left = Node::And(Box::new(left), Box::new(self.not(depth)?));
        }
        Ok(left)
    }

    fn not(&mut self, depth: usize) -> Result<Node> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        if self.keyword("NOT") {
            return Ok(Node::Not(Box::new(self.not(depth + 1)?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let inner = self.or(depth + 1)?;
            self.expect(&Tok::RParen, "')'")?;
            return Ok(inner);
        }
        self.predicate()
    }

    fn operand(&mut self) -> Result<Operand> {
        let tok = self.peek().cloned();
        let op = match tok {
            Some(Tok::Str(s)) | Some(Tok::Num(s)) => Operand::Literal(s),
            Some(Tok::Ident(name)) | Some(Tok::Quoted(name)) => {
                match self
                    .keys
                    .iter()
                    .position(|k| k.name.eq_ignore_ascii_case(&name))
                {
                    Some(i) => Operand::Key(i),
                    None => {
                        return Err(self.error(&format!("'{name}' is not a partition key")));
                    }
                }
            }
            _ => return Err(self.error("expected a partition key or a literal")),
        };
        self.pos += 1;
        Ok(op)
    }

    fn predicate(&mut self) -> Result<Node> {
        let left = self.operand()?;
        if self.keyword("IS") {
            let negated = self.keyword("NOT");
            if !self.keyword("NULL") {
                return Err(self.error("expected NULL"));
            }
            let _ = left;
            return Ok(Node::IsNull(negated));
        }
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            self.expect(&Tok::LParen, "'('")?;
            let mut list = vec![self.operand()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                list.push(self.operand()?);
            }
            self.expect(&Tok::RParen, "')'")?;
            return Ok(Node::In(left, list, negated));
        }
        if self.keyword("BETWEEN") {
            let lo = self.operand()?;
            if !self.keyword("AND") {
                return Err(self.error("expected AND"));
            }
            let hi = self.operand()?;
            return Ok(Node::Between(left, lo, hi, negated));
        }
        if self.keyword("LIKE") {
            let pattern = self.operand()?;
            return Ok(Node::Like(left, pattern, negated));
        }
        if negated {
            return Err(self.error("expected IN, BETWEEN or LIKE"));
        }
        let op = match self.peek() {
            Some(Tok::Op(op)) => match *op {
                "=" => CmpOp::Eq,
                "<>" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            },
            _ => return Err(self.error("expected a comparison")),
        };
        self.pos += 1;
        let right = self.operand()?;
        Ok(Node::Cmp(left, op, right))
    }
}

fn value<'a>(op: &'a Operand, values: &'a [String]) -> &'a str {
    match op {
        Operand::Key(i) => values.get(*i).map(String::as_str).unwrap_or(""),
        Operand::Literal(s) => s,
    }
}

fn is_numeric(op: &Operand, numeric: &[bool]) -> bool {
    matches!(op, Operand::Key(i) if numeric.get(*i).copied().unwrap_or(false))
}

/// Numeric comparison when `numeric` and both sides are numbers, else by string.
fn compare(a: &str, b: &str, numeric: bool) -> Ordering {
    if numeric {
        let (ta, tb) = (a.trim(), b.trim());
        if let (Ok(x), Ok(y)) = (ta.parse::<i128>(), tb.parse::<i128>()) {
            return x.cmp(&y);
        }
        if let (Ok(x), Ok(y)) = (ta.parse::<f64>(), tb.parse::<f64>())
            && let Some(o) = x.partial_cmp(&y)
        {
            return o;
        }
    }
    a.cmp(b)
}

fn eval(node: &Node, values: &[String], numeric: &[bool]) -> bool {
    let cmp = |a: &Operand, b: &Operand| {
        compare(
            value(a, values),
            value(b, values),
            is_numeric(a, numeric) || is_numeric(b, numeric),
        )
    };
    match node {
        Node::And(a, b) => eval(a, values, numeric) && eval(b, values, numeric),
        Node::Or(a, b) => eval(a, values, numeric) || eval(b, values, numeric),
        Node::Not(a) => !eval(a, values, numeric),
        Node::Cmp(a, op, b) => {
            let o = cmp(a, b);
            match op {
                CmpOp::Eq => o == Ordering::Equal,
                CmpOp::Ne => o != Ordering::Equal,
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Le => o != Ordering::Greater,
                CmpOp::Gt => o == Ordering::Greater,
                CmpOp::Ge => o != Ordering::Less,
            }
        }
        Node::In(a, list, negated) => list.iter().any(|b| cmp(a, b) == Ordering::Equal) != *negated,
        Node::Between(a, lo, hi, negated) => {
            (cmp(a, lo) != Ordering::Less && cmp(a, hi) != Ordering::Greater) != *negated
        }
        Node::Like(a, pattern, negated) => {
            like(value(a, values), value(pattern, values)) != *negated
        }
        Node::IsNull(negated) => *negated,
    }
}

/// SQL `LIKE`: `%` any run, `_` any one character.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Classic greedy matcher with backtracking to the last `%`.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<Column> {
        vec![
            Column::new("year", "int"),
            Column::new("month", "string"),
            Column::new("Region", "string"),
        ]
    }

    fn m(expr: &str, values: [&str; 3]) -> bool {
        let keys = keys();
        let e = PartitionExpr::parse(expr, &keys).unwrap();
        let values: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        e.matches(&values)
    }

    #[test]
    fn comparisons_and_logic() {
        let v = ["2024", "03", "eu"];
        assert!(m("", v));
        assert!(m("year = '2024'", v));
        assert!(m("year = 2024", v));
        assert!(m("YEAR == 2024 and month = '03'", v));
        assert!(!m("year = '2024' AND month = '04'", v));
        assert!(m("year = '2023' OR month = '03'", v));
        assert!(m("NOT (month = '04')", v));
        assert!(m("year > 999", v)); // numeric, not string, comparison for an int key
        assert!(m(
            "year >= 2024 and year <= 2024 and year <> 2023 and year != 2025",
            v
        ));
        assert!(m("month < '10'", v)); // string comparison for a string key
        assert!(m("month IN ('01', '03')", v));
        assert!(m("month NOT IN ('01', '02')", v));
        assert!(m("year BETWEEN 2000 AND 2030", v));
        assert!(!m("year NOT BETWEEN 2000 AND 2030", v));
        assert!(m(
            "region LIKE 'e%' and `region` like '_u' and \"Region\" not like 'x%'",
            v
        ));
        assert!(m("(year = 1 or year = 2024) and (month = '03')", v));
        assert!(!m("region IS NULL", v));
        assert!(m("region IS NOT NULL", v));
        assert!(m("month = '0''3' or month = '03'", v));
    }

    #[test]
    fn errors() {
        let keys = keys();
        for bad in [
            "day = '1'",
            "year =",
            "year = '1",
            "(year = 1",
            "year = 1 garbage",
            "year + 1 = 2",
            "upper(month) = 'A'",
            "year NOT = 1",
        ] {
            assert!(
                matches!(
                    PartitionExpr::parse(bad, &keys),
                    Err(CatalogError::InvalidInput(_))
                ),
                "{bad}"
            );
        }
        let deep = "(".repeat(200) + "year = 1" + &")".repeat(200);
        assert!(PartitionExpr::parse(&deep, &keys).is_err());
    }

    #[test]
    fn like_patterns() {
        assert!(like("abc", "a%"));
        assert!(like("abc", "%c"));
        assert!(like("abc", "%b%"));
        assert!(like("abc", "a_c"));
        assert!(!like("abc", "a_"));
        assert!(like("", "%"));
        assert!(like("aXbXc", "a%b%c"));
        assert!(!like("ab", "a%c"));
    }
}
