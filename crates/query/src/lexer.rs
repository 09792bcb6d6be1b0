//! A small SQL tokenizer and token cursor for the statements this crate parses itself (Athena
//! DDL, `SHOW`, `DESCRIBE`) and for classifying a statement before it goes to DataFusion.
//!
//! Invariants: every token carries its byte range in the source and its 1-based line and
//! column (in characters), so every parse error can point at the offending token; the
//! tokenizer never panics on any input (unterminated strings and comments are user errors).

use crate::{Position, QueryError};

/// The kind and text of one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A bare word: keyword or unquoted identifier (as written).
    Word(String),
    /// A `` `quoted` `` or `"quoted"` identifier (unescaped).
    Quoted(String),
    /// A `'string'` literal (unescaped, Hive backslash escapes applied).
    Str(String),
    /// A number as written.
    Num(String),
    /// Any other single character.
    Sym(char),
}

/// A token with its place in the source.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset after the last character.
    pub end: usize,
    pub pos: Position,
}

/// Splits `sql` into tokens, skipping whitespace and `--` / `/* */` comments.
pub(crate) fn tokenize(sql: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<(usize, char)> = sql.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let (mut line, mut col) = (1u64, 1u64);
    // Advances over chars[i], tracking line and column.
    macro_rules! bump {
        () => {{
            if chars[i].1 == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    let byte_at = |i: usize| chars.get(i).map_or(sql.len(), |c| c.0);
    while i < chars.len() {
        let c = chars[i].1;
        let pos = Position { line, column: col };
        let start = chars[i].0;
        if c.is_whitespace() {
            bump!();
            continue;
        }
        if c == '-' && chars.get(i + 1).map(|c| c.1) == Some('-') {
            while i < chars.len() && chars[i].1 != '\n' {
                bump!();
            }
            continue;
        }
        if c == '/' && chars.get(i + 1).map(|c| c.1) == Some('*') {
            bump!();
            bump!();
            loop {
                if i >= chars.len() {
                    return Err(user_at("Unterminated comment", pos));
                }
                if chars[i].1 == '*' && chars.get(i + 1).map(|c| c.1) == Some('/') {
                    bump!();
                    bump!();
                    break;
                }
                bump!();
            }
            continue;
        }
        let tok = if c.is_alphanumeric() || c == '_' || c == '$' {
            let is_num = c.is_ascii_digit();
            while i < chars.len() {
                let d = chars[i].1;
                let ok = d.is_alphanumeric()
                    || d == '_'
                    || d == '$'
                    || (is_num
                        && d == '.'
                        && chars.get(i + 1).is_some_and(|n| n.1.is_ascii_digit()));
                if !ok {
                    break;
                }
                bump!();
            }
            let text = sql[start..byte_at(i)].to_string();
            if is_num && text.chars().all(|d| d.is_ascii_digit() || d == '.') {
                Tok::Num(text)
            } else {
                Tok::Word(text)
            }
        } else if c == '`' || c == '"' {
            bump!();
            let mut s = String::new();
            loop {
                if i >= chars.len() {
                    return Err(user_at("Unterminated quoted identifier", pos));
                }
                let d = chars[i].1;
                if d == c {
                    if chars.get(i + 1).map(|x| x.1) == Some(c) {
                        s.push(c);
                        bump!();
                        bump!();
                        continue;
                    }
                    bump!();
                    break;
                }
                s.push(d);
                bump!();
            }
            Tok::Quoted(s)
        } else if c == '\'' {
            bump!();
            let mut s = String::new();
            loop {
                if i >= chars.len() {
                    return Err(user_at("Unterminated string literal", pos));
                }
                let d = chars[i].1;
                if d == '\'' {
                    if chars.get(i + 1).map(|x| x.1) == Some('\'') {
                        s.push('\'');
                        bump!();
                        bump!();
                        continue;
                    }
                    bump!();
                    break;
                }
                if d == '\\' && i + 1 < chars.len() {
                    bump!();
                    let e = chars[i].1;
                    match e {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        '0'..='7' => {
                            // Octal escape (Hive's '\001'): up to three digits.
                            let mut v = 0u32;
                            let mut n = 0;
                            while n < 3 && i < chars.len() && ('0'..='7').contains(&chars[i].1) {
                                v = v * 8 + chars[i].1.to_digit(8).unwrap_or(0);
                                bump!();
                                n += 1;
                            }
                            s.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                            continue;
                        }
                        'u' => {
                            let hex: String = chars[i + 1..]
                                .iter()
                                .take(4)
                                .map(|c| c.1)
                                .take_while(|c| c.is_ascii_hexdigit())
                                .collect();
                            if hex.len() == 4 {
                                bump!();
                                for _ in 0..4 {
                                    bump!();
                                }
                                let v = u32::from_str_radix(&hex, 16).unwrap_or(0xfffd);
                                s.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                                continue;
                            }
                            s.push('u');
                        }
                        other => s.push(other),
                    }
                    bump!();
                    continue;
                }
                s.push(d);
                bump!();
            }
            Tok::Str(s)
        } else {
            bump!();
            Tok::Sym(c)
        };
        out.push(Token {
            tok,
            start,
            end: byte_at(i),
            pos,
        });
    }
    Ok(out)
}

/// A user error at `pos`.
pub(crate) fn user_at(message: impl Into<String>, pos: Position) -> QueryError {
    QueryError::User {
        message: message.into(),
        position: Some(pos),
    }
}

/// A cursor over the tokens of one statement.
pub(crate) struct Cursor<'a> {
    pub sql: &'a str,
    pub toks: Vec<Token>,
    pub i: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(sql: &'a str) -> Result<Self, QueryError> {
        let mut toks = tokenize(sql)?;
        // Trailing semicolons end the statement.
        while toks.last().is_some_and(|t| t.tok == Tok::Sym(';')) {
            toks.pop();
        }
        Ok(Cursor { sql, toks, i: 0 })
    }

    pub fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }

    pub fn peek_at(&self, n: usize) -> Option<&Token> {
        self.toks.get(self.i + n)
    }

    /// Whether the token `n` ahead is the keyword `kw` (case-insensitive).
    pub fn is_kw_at(&self, n: usize, kw: &str) -> bool {
        matches!(self.peek_at(n), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(kw))
    }

    pub fn is_kw(&self, kw: &str) -> bool {
        self.is_kw_at(0, kw)
    }

    pub fn is_sym(&self, c: char) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Sym(s), .. }) if *s == c)
    }

    pub fn at_end(&self) -> bool {
        self.i >= self.toks.len()
    }

    /// Where the next token is (or the end of the text).
    pub fn here(&self) -> Position {
        match self.peek() {
            Some(t) => t.pos,
            None => end_position(self.sql),
        }
    }

    /// A user error at the next token.
    pub fn error(&self, message: impl Into<String>) -> QueryError {
        user_at(message, self.here())
    }

    /// "Expected X, found Y" at the next token.
    pub fn expected(&self, what: &str) -> QueryError {
        let found = match self.peek() {
            Some(t) => format!("'{}'", &self.sql[t.start..t.end]),
            None => "end of statement".to_string(),
        };
        self.error(format!("Expected {what}, found {found}"))
    }

    pub fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Consumes the keywords `kws` in sequence if they are all next.
    pub fn eat_kws(&mut self, kws: &[&str]) -> bool {
        if kws.iter().enumerate().all(|(n, k)| self.is_kw_at(n, k)) {
            self.i += kws.len();
            true
        } else {
            false
        }
    }

    pub fn expect_kw(&mut self, kw: &str) -> Result<(), QueryError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.expected(kw))
        }
    }

    pub fn eat_sym(&mut self, c: char) -> bool {
        if self.is_sym(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    pub fn expect_sym(&mut self, c: char) -> Result<(), QueryError> {
        if self.eat_sym(c) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{c}'")))
        }
    }

    /// An identifier (bare or quoted) and where it is.
    pub fn ident(&mut self) -> Result<(String, Position), QueryError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w) | Tok::Quoted(w),
                pos,
                ..
            }) => {
                let out = (w.clone(), *pos);
                self.i += 1;
                Ok(out)
            }
            _ => Err(self.expected("an identifier")),
        }
    }

    /// A string literal.
    pub fn string(&mut self) -> Result<String, QueryError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Str(s), ..
            }) => {
                let s = s.clone();
                self.i += 1;
                Ok(s)
            }
            _ => Err(self.expected("a string literal")),
        }
    }

    /// `[catalog.][db.]name` with the catalog (if any) checked to be `awsdatacatalog`.
    pub fn table_name(&mut self) -> Result<TableName, QueryError> {
        let (first, pos) = self.ident()?;
        let mut parts = vec![first];
        while self.eat_sym('.') {
            parts.push(self.ident()?.0);
        }
        let name = match parts.len() {
            1 => TableName {
                database: None,
                name: parts.remove(0),
                pos,
            },
            2 => {
                let name = parts.remove(1);
                TableName {
                    database: Some(parts.remove(0)),
                    name,
                    pos,
                }
            }
            3 => {
                if !parts[0].eq_ignore_ascii_case(crate::catalog::CATALOG_NAME) {
                    return Err(user_at(
                        format!("Catalog '{}' does not exist", parts[0]),
                        pos,
                    ));
                }
                let name = parts.remove(2);
                TableName {
                    database: Some(parts.remove(1)),
                    name,
                    pos,
                }
            }
            _ => return Err(user_at("Too many parts in the table name", pos)),
        };
        Ok(name)
    }

    /// Fails unless every token has been consumed.
    pub fn expect_end(&self) -> Result<(), QueryError> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.expected("end of statement"))
        }
    }
}

/// A table reference written in a statement.
#[derive(Debug, Clone)]
pub(crate) struct TableName {
    pub database: Option<String>,
    pub name: String,
    pub pos: Position,
}

impl TableName {
    /// The lower-cased database (the default one when not written) and table names.
    pub fn resolve(&self, default_db: &str) -> (String, String) {
        (
            self.database
                .as_deref()
                .unwrap_or(default_db)
                .to_lowercase(),
            self.name.to_lowercase(),
        )
    }
}

/// The position just after the last character of `sql`.
pub(crate) fn end_position(sql: &str) -> Position {
    let mut line = 1;
    let mut column = 1;
    for c in sql.chars() {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Position { line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_positions() {
        let t = tokenize("CREATE  `a b`\n ( x 'it''s\\t' 1.5 ) -- c\n/* d */ y").unwrap();
        let kinds: Vec<_> = t.iter().map(|t| t.tok.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                Tok::Word("CREATE".into()),
                Tok::Quoted("a b".into()),
                Tok::Sym('('),
                Tok::Word("x".into()),
                Tok::Str("it's\t".into()),
                Tok::Num("1.5".into()),
                Tok::Sym(')'),
                Tok::Word("y".into()),
            ]
        );
        assert_eq!(t[2].pos, Position { line: 2, column: 2 });
        assert_eq!(t[7].pos, Position { line: 3, column: 9 });
    }

    #[test]
    fn escapes() {
        let t = tokenize(r"'\001' '\u0002' '\\'").unwrap();
        assert_eq!(t[0].tok, Tok::Str("\u{1}".into()));
        assert_eq!(t[1].tok, Tok::Str("\u{2}".into()));
        assert_eq!(t[2].tok, Tok::Str("\\".into()));
    }

    #[test]
    fn unterminated() {
        assert!(matches!(
            tokenize("select 'abc"),
            Err(QueryError::User {
                position: Some(Position { line: 1, column: 8 }),
                ..
            })
        ));
        assert!(tokenize("/* x").is_err());
        assert!(tokenize("`x").is_err());
    }
}
