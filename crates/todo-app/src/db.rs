//! Runs one statement as the caller, the way PostgREST does: one transaction on the app's login
//! role, with `role`, `request.jwt.claims` and `statement_timeout` set transaction-locally.
//!
//! The role is always `authenticated`: [`Identity`] admits no other.
//! The app never filters by user itself; RLS in Postgres decides. Anything that fails before
//! the commit rolls the whole transaction back, so a failed request writes nothing.

use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Row};

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

/// Switches identity, runs `statement`, lets `check` veto the result, and commits.
///
/// `check` runs inside the transaction: an error from it rolls back what the statement did
/// (PostgREST does the same when, say, a singular response finds two rows).
pub async fn run_as(
    pool: &PgPool,
    identity: &Identity,
    statement_timeout_ms: u128,
    statement: Statement,
    check: impl FnOnce(&Outcome) -> Result<(), ApiError>,
) -> Result<Outcome, ApiError> {
    let mut tx = pool.begin().await?;
    // All three are `is_local`: they end with the transaction, commit or rollback, so a
    // pooled connection never carries one caller's identity into the next request.
    sqlx::query(
        "select set_config('role', 'authenticated', true), \
                set_config('request.jwt.claims', $1, true), \
                set_config('statement_timeout', $2, true)",
    )
    .bind(identity.claims_json())
    .bind(statement_timeout_ms.to_string())
    .execute(&mut *tx)
    .await?;

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
    tx.commit().await?;
    Ok(outcome)
}

/// `select 1` on the pool: is a connection to a live server available right now?
pub async fn ping(pool: &PgPool) -> Result<(), ApiError> {
    sqlx::query("select 1").execute(pool).await?;
    Ok(())
}
