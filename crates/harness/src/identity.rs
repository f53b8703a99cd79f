//! An identity session: one transaction on the app's login role with `role` and
//! `request.jwt.claims` set transaction-locally, exactly as PostgREST does per request.

use sqlx::postgres::{PgConnection, Postgres};
use sqlx::{Connection, Transaction};

use crate::error::{HarnessError, Result};

/// Who the database should believe is asking: a role plus the token's claims as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbIdentity {
    pub role: String,
    /// The claims JSON as PostgREST would set it; `None` leaves the setting untouched.
    pub claims: Option<String>,
}

impl DbIdentity {
    /// A signed-in user: role `authenticated` with these claims (must include `sub`).
    pub fn authenticated(claims: &serde_json::Value) -> Self {
        Self {
            role: "authenticated".into(),
            claims: Some(claims.to_string()),
        }
    }

    /// A signed-in role with no claims at all.
    pub fn authenticated_without_claims() -> Self {
        Self {
            role: "authenticated".into(),
            claims: None,
        }
    }

    /// A request without a token.
    pub fn anon() -> Self {
        Self {
            role: "anon".into(),
            claims: None,
        }
    }

    /// Any role and raw claims text, for hostile cases.
    pub fn raw(role: &str, claims: Option<&str>) -> Self {
        Self {
            role: role.into(),
            claims: claims.map(str::to_owned),
        }
    }
}

/// Begins a transaction and switches identity inside it. Everything is `is_local`, so the
/// connection carries no identity once the transaction ends, commit or rollback.
pub async fn begin_as<'c>(
    conn: &'c mut PgConnection,
    identity: &DbIdentity,
) -> Result<Transaction<'c, Postgres>> {
    let mut tx = conn
        .begin()
        .await
        .map_err(HarnessError::sql("cannot begin a transaction"))?;
    sqlx::query(
        "select set_config('role', $1, true), \
                case when $2::text is null then null else set_config('request.jwt.claims', $2, true) end",
    )
    .bind(&identity.role)
    .bind(identity.claims.as_deref())
    .execute(&mut *tx)
    .await
    .map_err(HarnessError::sql(format!("cannot switch to role {}", identity.role)))?;
    Ok(tx)
}
