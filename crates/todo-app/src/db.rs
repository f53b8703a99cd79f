//! Runs one statement as the caller, the way PostgREST does: one transaction on the app's login
//! role, opened by `pg-identity` (ARCHITECTURE.md, "Identity is transaction-local and set in one
//! place") with `role`, `request.jwt.claims` and `statement_timeout` set transaction-locally.
//!
//! The role is always `authenticated`: the caller's [`DbIdentity`] comes from
//! [`crate::auth::Identity`], which admits no other. This module takes it as pg-identity's
//! type, so it never reaches back up to the HTTP edge (`auth` → `error` → `db`).
//! The app never filters by user itself; RLS in Postgres decides. Anything that fails before
//! the commit rolls the whole transaction back, so a failed request writes nothing.
//! Failures are a [`DbError`]; the HTTP edge (`error.rs`) decides what the client sees.

use pg_identity::{DbIdentity, IdentityError, IdentityTx};
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Row};

pub use pg_identity::Access;

use crate::statement::{Bind, Statement};

/// The one row every statement returns (see [`crate::statement`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub total: Option<i64>,
    pub page_count: i64,
    pub body: Option<String>,
}

/// How many rows the request insists on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Any,
    /// `Accept: application/vnd.pgrst.object+json`: exactly one, else nothing is kept.
    ExactlyOne,
}

/// A Postgres error as the client may see it: SQLSTATE, message, detail and hint — never the
/// query, position or context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgError {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

/// Why a statement did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Postgres raised an error for the statement (or the identity switch).
    #[error("database error {}", .0.code)]
    Statement(PgError),
    /// Postgres cannot be reached, or no connection became free in time.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// [`Expect::ExactlyOne`] and another number of rows; rolled back.
    #[error("singular response requested but {rows} rows matched")]
    NotSingular { rows: i64 },
    /// The claims could not be sent (a NUL in them).
    #[error("cannot open the caller's transaction")]
    Identity(#[source] IdentityError),
    /// The driver failed in a way that is not the request's fault.
    #[error("unexpected database driver error")]
    Driver(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Database(db) => {
                let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                if is_connection_failure(&code) {
                    tracing::warn!(sqlstate = %code, "database unavailable");
                    return Self::Unavailable(sqlx::Error::Database(db));
                }
                Self::Statement(PgError {
                    message: db.message().to_owned(),
                    detail: pg.and_then(|e| e.detail()).map(str::to_owned),
                    hint: pg.and_then(|e| e.hint()).map(str::to_owned),
                    code,
                })
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => {
                // sqlx's messages name the failure, not the server or its credentials.
                tracing::warn!(error = %error, "database unavailable");
                Self::Unavailable(error)
            }
            other => {
                tracing::error!(error = %other, "unexpected database driver error");
                Self::Driver(other)
            }
        }
    }
}

impl From<IdentityError> for DbError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Begin { source, .. } => source.into(),
            quote @ IdentityError::Quote { .. } => {
                tracing::error!(error = %quote, "claims cannot be sent to Postgres");
                Self::Identity(quote)
            }
        }
    }
}

/// SQLSTATEs that mean "no usable database" rather than "your request is wrong": connection
/// exceptions (08), a login refused (28: the app's own credentials), a missing database
/// (3D000), too many connections (53300) and a server shutting down (57P01–57P03).
fn is_connection_failure(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("28")
        || matches!(code, "3D000" | "53300" | "57P01" | "57P02" | "57P03")
}

/// Switches identity, runs `statement`, checks the row count against `expect`, and ends the
/// transaction: a write is committed (and the commit awaited before the response); a read
/// (`Access::ReadOnly`) has nothing to commit and is rolled back — dropping it queues the
/// `ROLLBACK` on the connection (sqlx), and it travels with the check the pool makes when the
/// connection comes back instead of costing a round trip of its own.
pub async fn run_as(
    pool: &PgPool,
    identity: &DbIdentity,
    statement_timeout_ms: u64,
    access: Access,
    statement: Statement,
    expect: Expect,
) -> Result<Outcome, DbError> {
    let opening = IdentityTx::new(identity)
        .access(access)
        .statement_timeout_ms(statement_timeout_ms);
    let mut tx = pg_identity::begin_pooled(pool, opening).await?;

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
    // Inside the transaction: a refusal rolls back what the statement did (PostgREST does the
    // same when a singular response finds two rows).
    if expect == Expect::ExactlyOne && outcome.page_count != 1 {
        return Err(DbError::NotSingular {
            rows: outcome.page_count,
        });
    }
    match access {
        Access::ReadOnly => drop(tx),
        Access::ReadWrite => tx.commit().await?,
    }
    Ok(outcome)
}

/// `select 1` on the pool: is a connection to a live server available right now?
pub async fn ping(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("select 1").execute(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The transaction around each request: reads cannot write, and whatever a request did to
    //! its connection's identity is gone before the next request gets it.

    use super::*;
    use harness::TestDatabase;
    use sqlx::Connection as _;

    const INSERT: &str = "with pgrst_source as (insert into public.todos (title) values ('x') \
         returning 1) select null::bigint as total, (select count(*) from pgrst_source) as \
         page_count, null::text as body";

    /// What `auth::Identity` hands this module for a verified token of `user`.
    fn identity(user: &str) -> DbIdentity {
        DbIdentity::authenticated(&serde_json::json!({ "sub": user, "role": "authenticated" }))
    }

    fn statement(sql: &str) -> Statement {
        Statement {
            sql: sql.into(),
            binds: vec![],
        }
    }

    #[tokio::test]
    async fn reads_are_read_only_and_leave_no_identity_behind() {
        let db = TestDatabase::create().await.unwrap();
        // One connection, so every call below gets the same one back.
        let pool = db.app_pool(1).await.unwrap();
        let alice = identity("user_2aLiCeAAAAAAAAAAAAAAAAAAAAA");

        let refused = run_as(
            &pool,
            &alice,
            5000,
            Access::ReadOnly,
            statement(INSERT),
            Expect::Any,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&refused, DbError::Statement(e) if e.code == "25006"),
            "a read-only transaction wrote: {refused:?}"
        );
        let wrote = run_as(
            &pool,
            &alice,
            5000,
            Access::ReadWrite,
            statement(INSERT),
            Expect::Any,
        )
        .await
        .unwrap();
        assert_eq!(wrote.page_count, 1);

        let read = run_as(
            &pool,
            &alice,
            5000,
            Access::ReadOnly,
            statement(
                "select null::bigint as total, count(*) as page_count, null::text as body \
                   from public.todos",
            ),
            Expect::Any,
        )
        .await
        .unwrap();
        assert_eq!(read.page_count, 1);

        // The read's transaction was not committed but dropped: by the time the pool hands the
        // connection out again it is closed, and no role or claims survive it.
        let mut conn = pool.acquire().await.unwrap();
        assert!(
            !conn.is_in_transaction(),
            "the connection came back inside a transaction"
        );
        let (user, claims): (String, Option<String>) = sqlx::query_as(
            "select current_user::text, nullif(current_setting('request.jwt.claims', true), '')",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(user, db.app_target().user);
        assert_eq!(claims, None);
    }

    #[test]
    fn connection_failures_are_unavailable() {
        for code in [
            "08006", "08001", "28P01", "28000", "3D000", "53300", "57P01",
        ] {
            assert!(is_connection_failure(code), "{code}");
        }
        for code in ["57014", "42501", "22P02", "23505"] {
            assert!(!is_connection_failure(code), "{code}");
        }
    }
}
