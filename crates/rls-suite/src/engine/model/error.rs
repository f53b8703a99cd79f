//! The suite's one error type: why a run could not happen (as opposed to what it found). Every
//! variant that has a cause keeps it as its `source`.

use crate::spec::SpecError;

use super::actor::IdentityError;

/// Why a check, a matrix or a verification could not run (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    /// An actor whose claims could not be made.
    #[error("cannot mint a token for {actor}: {source}")]
    Token {
        actor: String,
        #[source]
        source: IdentityError,
    },
    #[error(transparent)]
    Harness(#[from] harness::HarnessError),
    #[error("the lint could not run: {0}")]
    Lint(#[from] rls_lint::LintError),
    #[error("a mutant's task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(
        "`{table}` already has rows: the run seeds its own and restores whole tables between \
         cells, so it only runs where the spec's tables are empty (a fresh or staging database, \
         an InsForge branch) — never against production data"
    )]
    NotEmpty { table: String },
    /// A fixture file that does not hold (a bad case, an unknown user).
    #[error("fixture {path}: {message}")]
    Fixture {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot read fixture {path}: {source}")]
    FixtureRead {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("fixture {path} is not valid JSON: {source}")]
    FixtureJson {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Users(#[from] clerk_token::UsersFileError),
    #[error("cannot mint a token: {0}")]
    Mint(#[from] clerk_token::MintError),
    #[error("cannot verify a minted token: {0}")]
    Verify(#[from] clerk_token::TokenError),
    /// A request that did not get an answer; `detail` spells out the cause chain.
    #[error("{context}: {detail}")]
    Http {
        context: String,
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    /// An endpoint that answered, but not as InsForge's records API does.
    #[error("{0}")]
    Endpoint(String),
}

/// The server's message for a database error, else the driver's.
pub(crate) fn db_message(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(db) => format!(
            "{} (SQLSTATE {})",
            db.message(),
            db.code().unwrap_or_default()
        ),
        None => e.to_string(),
    }
}

/// Wraps a driver error with what the suite was doing.
pub(crate) fn sql_err(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    let context = context.into();
    move |source| Error::Sql { context, source }
}
