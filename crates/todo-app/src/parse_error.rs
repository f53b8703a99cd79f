//! Why a request could not be understood, shared by the parsers of the query string
//! ([`crate::query_string`]), the `Prefer` header ([`crate::prefer`]) and bodies ([`crate::body`]).

use crate::schema::Relation;

/// Longest piece of client input an error message repeats. Enough to recognise it, bounded so
/// a hostile 60 KiB query string does not come back in the body.
pub(crate) const MAX_ECHO_CHARS: usize = 100;

/// Why a request could not be understood. Each variant is one PostgREST error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// `PGRST100`: a parameter that does not follow the grammar.
    #[error("{message}")]
    Syntax { message: String, details: String },
    /// `42703`: a column the table does not have, in `select`, a filter or `order`. PostgREST 12
    /// does not check these itself: it qualifies the name with the table and Postgres answers
    /// with this message.
    #[error("column {table}.{column} does not exist")]
    UnknownColumn { table: String, column: String },
    /// `PGRST204`: a column the table does not have, in a body or `columns` (PostgREST 12's
    /// `ColumnNotFound`, `src/PostgREST/Error.hs` at v12.2.12).
    #[error("Could not find the '{column}' column of '{table}' in the schema cache")]
    UnknownWriteColumn { table: String, column: String },
    /// `PGRST200`: `select=` embeds a relation with no foreign key to or from this one
    /// (`NoRelBetween`, `src/PostgREST/Error.hs`).
    #[error("Could not find a relationship between '{parent}' and '{child}' in the schema cache")]
    NoRelationship {
        parent: String,
        child: String,
        schema: String,
    },
    /// `PGRST201`: more than one foreign key could serve the embed (`AmbiguousRelBetween`).
    #[error(
        "Could not embed because more than one relationship was found for '{parent}' and '{child}'"
    )]
    AmbiguousRelationship { parent: String, child: String },
    /// `PGRST102`: a body that is not JSON of the expected shape.
    #[error("{message}")]
    InvalidBody {
        message: &'static str,
        details: Option<String>,
    },
}

impl ParseError {
    pub(crate) fn syntax(what: &str, input: &str, details: impl Into<String>) -> Self {
        Self::Syntax {
            message: format!("failed to parse {what} ({})", echo(input)),
            details: details.into(),
        }
    }

    pub(crate) fn unknown_column(relation: &Relation, name: &str) -> Self {
        Self::UnknownColumn {
            table: relation.name().to_owned(),
            column: echo(name),
        }
    }

    pub(crate) fn unknown_write_column(relation: &Relation, name: &str) -> Self {
        Self::UnknownWriteColumn {
            table: relation.name().to_owned(),
            column: echo(name),
        }
    }
}

/// Client text made safe to repeat in an error body: bounded in length. (JSON encoding of the
/// body takes care of quotes and control characters.)
pub fn echo(input: &str) -> String {
    let mut chars = input.chars();
    let mut out: String = chars.by_ref().take(MAX_ECHO_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}
