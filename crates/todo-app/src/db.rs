//! Runs one statement as the caller, the way PostgREST does: one transaction on the app's login
//! role, with `role`, `request.jwt.claims` and `statement_timeout` set transaction-locally.
//!
//! The role is always `authenticated`: [`Identity`] admits no other.
//! The app never filters by user itself; RLS in Postgres decides. Anything that fails before
//! the commit rolls the whole transaction back, so a failed request writes nothing.

use sqlx::postgres::{PgPool, Postgres};
use sqlx::{AssertSqlSafe, Row, Transaction};

use crate::auth::Identity;
use crate::error::ApiError;
use crate::sql::{Bind, Statement};

/// The one row every statement returns (see [`crate::sql`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub total: Option<i64>,
    pub page_count: i64,
    pub body: Option<String>,
}

/// What a request's transaction may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A read (GET, HEAD): `BEGIN READ ONLY`, as PostgREST does, so not even a volatile
    /// function can write. Nothing to commit: the transaction is rolled back, and that
    /// `ROLLBACK` travels with the check the pool makes when the connection comes back
    /// instead of costing a round trip of its own.
    ReadOnly,
    /// A write: committed, and the commit awaited before the response.
    ReadWrite,
}

/// Switches identity, runs `statement`, lets `check` veto the result, and commits.
///
/// `check` runs inside the transaction: an error from it rolls back what the statement did
/// (PostgREST does the same when, say, a singular response finds two rows).
pub async fn run_as(
    pool: &PgPool,
    identity: &Identity,
    statement_timeout_ms: u128,
    access: Access,
    statement: Statement,
    check: impl FnOnce(&Outcome) -> Result<(), ApiError>,
) -> Result<Outcome, ApiError> {
    let mut tx = begin_as(pool, identity, statement_timeout_ms, access).await?;

    let mut query = sqlx::query(AssertSqlSafe(statement.sql));
    for bind in statement.binds {
        query = match bind {
            Bind::Text(v) => query.bind(v),
            Bind::TextArray(v) => query.bind(v),
            Bind::BigInt(v) => query.bind(v),
        };
    }
    let row = query.fetch_one(&mut *tx).await?;
    let outcome = Outcome {
        total: row.try_get("total")?,
        page_count: row.try_get("page_count")?,
        body: row.try_get("body")?,
    };
    check(&outcome)?;
    match access {
        // Dropping a transaction queues its ROLLBACK on the connection (sqlx), and the pool
        // sends it with the liveness check it runs on every returned connection.
        Access::ReadOnly => drop(tx),
        Access::ReadWrite => tx.commit().await?,
    }
    Ok(outcome)
}

/// Opens the caller's transaction in one round trip: `BEGIN` and the identity travel together
/// as one simple query (sqlx's `begin_with`), so the statement is the second round trip and
/// `COMMIT` the third. All three settings are `is_local`: they end with the transaction,
/// commit or rollback, so a pooled connection never carries one caller's identity into the
/// next request.
///
/// The pool does not ping a connection before handing it out (sqlx pings it when it comes
/// back); a connection that died while idle — the server restarted — fails here, before any
/// statement ran, and the transaction is retried on another, at most once per pooled
/// connection plus one.
async fn begin_as(
    pool: &PgPool,
    identity: &Identity,
    statement_timeout_ms: u128,
    access: Access,
) -> Result<Transaction<'static, Postgres>, ApiError> {
    let claims = sql_literal(identity.claims_json()).ok_or(ApiError::Internal)?;
    let mode = match access {
        Access::ReadOnly => " read only",
        Access::ReadWrite => "",
    };
    let begin = format!(
        "begin{mode}; select set_config('role', 'authenticated', true), \
         set_config('request.jwt.claims', {claims}, true), \
         set_config('statement_timeout', '{statement_timeout_ms}', true)"
    );
    let attempts = pool.options().get_max_connections() + 1;
    let mut attempt = 1;
    loop {
        match pool.begin_with(AssertSqlSafe(begin.clone())).await {
            Err(e) if attempt < attempts && stale_connection(&e) => {
                tracing::debug!(error = %e, attempt, "pooled connection was dead; retrying");
                attempt += 1;
            }
            other => return Ok(other?),
        }
    }
}

/// Whether `error` says the connection itself is gone (the server restarted or closed an idle
/// session), rather than that a statement failed.
fn stale_connection(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// `s` as a Postgres string literal, as libpq's `PQescapeLiteral` writes it: quotes doubled
/// and, when there is a backslash, the `E''` form with backslashes doubled — correct whatever
/// `standard_conforming_strings` says. `None` for a NUL, which no Postgres text can hold.
///
/// Used only for the claims in [`begin_as`]: a value that must travel in the simple query
/// protocol, which has no parameters.
pub fn sql_literal(s: &str) -> Option<String> {
    if s.contains('\0') {
        return None;
    }
    let mut out = String::with_capacity(s.len() + 3);
    if s.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Some(out)
}

/// `select 1` on the pool: is a connection to a live server available right now?
pub async fn ping(pool: &PgPool) -> Result<(), ApiError> {
    sqlx::query("select 1").execute(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sql_literal;

    #[test]
    fn literals_are_quoted_like_libpq() {
        assert_eq!(sql_literal("plain").as_deref(), Some("'plain'"));
        assert_eq!(sql_literal("it's").as_deref(), Some("'it''s'"));
        assert_eq!(sql_literal(r"a\b'c").as_deref(), Some(r"E'a\\b''c'"));
        assert_eq!(sql_literal("").as_deref(), Some("''"));
        assert_eq!(sql_literal("nul\0byte"), None);
    }
}
