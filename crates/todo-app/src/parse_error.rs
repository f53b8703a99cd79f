//! Why a request could not be understood, shared by the parsers of the query string
//! ([`crate::query_string`]), the `Prefer` header ([`crate::prefer`]) and bodies ([`crate::body`]).

/// Longest piece of client input an error message repeats. Enough to recognise it, bounded so
/// a hostile 60 KiB query string does not come back in the body.
pub(crate) const MAX_ECHO_CHARS: usize = 100;

/// Why a request could not be understood. Each variant is one PostgREST error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// `PGRST100`: a parameter that does not follow the grammar.
    #[error("{message}")]
    Syntax { message: String, details: String },
    /// `42703`: a column the table does not have, in `select`, a filter or `order`.
    #[error("column todos.{0} does not exist")]
    UnknownColumn(String),
    /// `PGRST204`: a column the table does not have, in a body or `columns`.
    #[error("Could not find the '{0}' column of 'todos' in the schema cache")]
    UnknownWriteColumn(String),
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

    pub(crate) fn unknown_column(name: &str) -> Self {
        Self::UnknownColumn(echo(name))
    }

    pub(crate) fn unknown_write_column(name: &str) -> Self {
        Self::UnknownWriteColumn(echo(name))
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
