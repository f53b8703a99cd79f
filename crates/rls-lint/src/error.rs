//! Why a lint run could not produce a report. Findings are never errors: these are failures to
//! read the catalog at all.

/// A lint run that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    #[error("cannot connect to the database to lint it")]
    Connect(#[source] sqlx::Error),
    #[error("cannot read {what} from the catalog")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("server_version_num {0} is too old: the linter needs PostgreSQL 14 or newer")]
    UnsupportedServer(i32),
    #[error("invalid lint options: {0}")]
    InvalidOptions(String),
}

impl LintError {
    pub(crate) fn query(what: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { what, source }
    }
}
