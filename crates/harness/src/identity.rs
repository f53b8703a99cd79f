//! An identity session: one transaction on the app's login role with `role` and
//! `request.jwt.claims` set transaction-locally, exactly as PostgREST does per request.
//!
//! The statements are `pg-identity`'s, the same the app runs (ARCHITECTURE.md, "Identity is
//! transaction-local and set in one place"); this module only keeps the harness's names.

use sqlx::Transaction;
use sqlx::postgres::{PgConnection, Postgres};

use crate::error::{HarnessError, Result};

pub use pg_identity::{
    ClaimsForwarding, DbIdentity, IdentityError, IdentityTx, quote_literal, set_identity_sql,
};

/// Begins a transaction and switches identity inside it, in one round trip. Everything is
/// `is_local`, so the connection carries no identity once the transaction ends, commit or
/// rollback.
pub async fn begin_as<'c>(
    conn: &'c mut PgConnection,
    identity: &DbIdentity,
) -> Result<Transaction<'c, Postgres>> {
    pg_identity::begin_as(conn, pg_identity::IdentityTx::new(identity))
        .await
        .map_err(|e| match e {
            pg_identity::IdentityError::Begin { role, source } => HarnessError::Sql {
                context: format!("cannot switch to role {role}"),
                source,
            },
            quote @ pg_identity::IdentityError::Quote { .. } => HarnessError::Identity(quote),
        })
}
