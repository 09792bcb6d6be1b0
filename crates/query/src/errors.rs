//! Turning DataFusion and catalog failures into [`QueryError`]s.
//!
//! Invariants: a message never contains a `Debug` dump, a backtrace or DataFusion's "please
//! file a bug" boilerplate; parse errors lose sqlparser's "at Line: X, Column: Y" suffix, which
//! becomes the [`Position`]; an error this crate raised inside DataFusion (wrapped as
//! `DataFusionError::External(QueryError)`) comes back out unchanged.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
use lakehose_catalog::CatalogError;

use crate::{Position, QueryError};

/// A user error raised inside DataFusion (planning or scanning).
pub(crate) fn user_df(message: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(QueryError::user(message)))
}

/// A catalog failure: the user's fault unless the storage failed.
pub(crate) fn from_catalog(e: CatalogError) -> QueryError {
    match e {
        CatalogError::Io(m) => QueryError::Internal(format!("catalog storage failed: {m}")),
        other => QueryError::user(other.message()),
    }
}

/// A DataFusion failure, classified.
#[derive(Debug)]
pub(crate) struct Classified {
    pub error: QueryError,
    /// `catalog.database.table` when the failure is a table that does not exist.
    pub missing_table: Option<String>,
}

/// Splits sqlparser's `... at Line: X, Column: Y` into the message and the position.
pub(crate) fn split_position(message: &str) -> (String, Option<Position>) {
    let Some(at) = message.rfind(" at Line: ") else {
        return (message.to_string(), None);
    };
    let tail = &message[at + " at Line: ".len()..];
    let mut parts = tail.splitn(2, ", Column: ");
    let line = parts.next().and_then(|l| l.trim().parse::<u64>().ok());
    let column = parts.next().and_then(|c| {
        c.trim()
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse::<u64>()
            .ok()
    });
    match (line, column) {
        (Some(line), Some(column)) => (message[..at].to_string(), Some(Position { line, column })),
        _ => (message.to_string(), None),
    }
}

/// Fragments that only appear in `Debug` dumps of sqlparser / DataFusion structures.
const DEBUG_MARKERS: &[&str] = &[
    "Ident {",
    "Span(",
    "Location(",
    "quote_style",
    "BinaryOp {",
    "Identifier(",
    "CompoundIdentifier(",
    "Value(",
    "Function(Function",
    "Expr::",
];

/// A DataFusion message without any `Debug` dump of a syntax tree it quotes: the text is cut
/// before the dump (at the last `: ` before it).
pub(crate) fn sanitize(message: &str) -> String {
    let first = DEBUG_MARKERS.iter().filter_map(|m| message.find(m)).min();
    let Some(at) = first else {
        return message.trim().to_string();
    };
    let head = &message[..at];
    let cut = head.rfind(": ").unwrap_or(at);
    message[..cut].trim_end_matches([' ', ':', ',']).to_string()
}

/// Classifies a DataFusion error.
pub(crate) fn from_datafusion(e: &DataFusionError) -> Classified {
    // An error of ours, passed through DataFusion.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(q) = err.downcast_ref::<QueryError>() {
            return Classified {
                error: q.clone(),
                missing_table: None,
            };
        }
        cur = err.source();
    }

    let position = e
        .diagnostic()
        .and_then(|d| d.span)
        .filter(|s| s.start.line > 0)
        .map(|s| Position {
            line: s.start.line,
            column: s.start.column,
        });
    let root = e.find_root();
    let user = |message: String, position: Option<Position>| Classified {
        error: QueryError::User {
            message: sanitize(&message),
            position,
        },
        missing_table: None,
    };
    match root {
        DataFusionError::SQL(pe, _) => {
            let text = match pe.as_ref() {
                ParserError::TokenizerError(s) | ParserError::ParserError(s) => s.clone(),
                ParserError::RecursionLimitExceeded => "the statement nests too deeply".into(),
            };
            let (message, pos) = split_position(&text);
            user(format!("Syntax error: {message}"), pos.or(position))
        }
        DataFusionError::Plan(m) => {
            if let Some(name) = m
                .strip_prefix("table '")
                .and_then(|r| r.strip_suffix("' not found"))
            {
                return Classified {
                    error: QueryError::User {
                        message: format!("Table '{name}' does not exist"),
                        position,
                    },
                    missing_table: Some(name.to_string()),
                };
            }
            user(m.clone(), position)
        }
        DataFusionError::SchemaError(se, _) => user(se.to_string(), position),
        DataFusionError::NotImplemented(m) => user(format!("Not supported: {m}"), position),
        DataFusionError::Configuration(m) => user(m.clone(), position),
        DataFusionError::Execution(m) => user(m.clone(), position),
        DataFusionError::ResourcesExhausted(m) => {
            user(format!("Query exhausted resources: {m}"), position)
        }
        DataFusionError::ArrowError(ae, _) => match ae.as_ref() {
            ArrowError::DivideByZero
            | ArrowError::CastError(_)
            | ArrowError::ParseError(_)
            | ArrowError::InvalidArgumentError(_)
            | ArrowError::ComputeError(_)
            | ArrowError::ArithmeticOverflow(_)
            | ArrowError::JsonError(_)
            | ArrowError::CsvError(_) => user(ae.to_string(), position),
            other => Classified {
                error: QueryError::Internal(other.to_string()),
                missing_table: None,
            },
        },
        DataFusionError::Internal(m) => Classified {
            error: QueryError::Internal(format!("internal error: {m}")),
            missing_table: None,
        },
        other => Classified {
            error: QueryError::Internal(other.message().into_owned()),
            missing_table: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_split_off() {
        let (m, p) =
            split_position("Expected: an SQL statement, found: SELEC at Line: 2, Column: 7");
        assert_eq!(m, "Expected: an SQL statement, found: SELEC");
        assert_eq!(p, Some(Position { line: 2, column: 7 }));
        let (m, p) = split_position("no position");
        assert_eq!((m.as_str(), p), ("no position", None));
    }

    #[test]
    fn debug_dumps_are_cut() {
        assert_eq!(
            sanitize(
                "Dot access not supported for non-string expr: Identifier(Ident { value: \"tags\" })"
            ),
            "Dot access not supported for non-string expr"
        );
        assert_eq!(sanitize("plain message"), "plain message");
    }

    #[test]
    fn our_errors_pass_through() {
        let e =
            DataFusionError::Context("ctx".into(), Box::new(user_df("Table 'x' has no location")));
        let c = from_datafusion(&e);
        assert_eq!(c.error, QueryError::user("Table 'x' has no location"));
    }

    #[test]
    fn missing_tables_are_recognised() {
        let e = DataFusionError::Plan("table 'awsdatacatalog.db.t' not found".into());
        let c = from_datafusion(&e);
        assert_eq!(c.missing_table.as_deref(), Some("awsdatacatalog.db.t"));
    }
}
