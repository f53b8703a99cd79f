//! The identity transaction — the one place that opens a transaction as a Clerk identity
//! (ARCHITECTURE.md, "Identity is transaction-local and set in one place").
//!
//! PostgREST, per request, begins a transaction and sets `role` and `request.jwt.claims` with
//! `set_config(…, true)`: transaction-local, so they end with the transaction, commit or
//! rollback, and a pooled connection never carries one caller's identity into the next.
//! This crate writes those statements once ([`IdentityTx::begin_sql`]) and runs them
//! ([`begin_as`], [`begin_pooled`]); the app, the harness's identity sessions, the RLS
//! benchmark and the pgbench script all use it. It knows nothing about tokens: the claims
//! arrive as JSON text.
//!
//! `BEGIN` and the identity travel together as one simple query, which has no parameters, so
//! values go in as literals quoted by [`quote_literal`], the workspace's one SQL-literal
//! quoter (ARCHITECTURE.md, "No client text becomes SQL"); names go in through [`quote_ident`],
//! its one identifier quoter. [`workspace_root`] finds the Cargo workspace at run time for the
//! tools that keep files there (it lives here because they all depend on this crate).

mod forwarding;
mod ident;
mod literal;
mod workspace;

use sqlx::postgres::{PgConnection, PgPool, Postgres};
use sqlx::{AssertSqlSafe, Connection as _, Transaction};

pub use forwarding::ClaimsForwarding;
pub use ident::quote_ident;
pub use literal::{NulInText, quote_literal, quote_literal_for_pgbench};
pub use workspace::{workspace_above, workspace_root};

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
            role: AUTHENTICATED.into(),
            claims: Some(claims.to_string()),
        }
    }

    /// A signed-in user whose claims are already JSON text.
    pub fn authenticated_json(claims: impl Into<String>) -> Self {
        Self {
            role: AUTHENTICATED.into(),
            claims: Some(claims.into()),
        }
    }

    /// A signed-in role with no claims at all.
    pub fn authenticated_without_claims() -> Self {
        Self {
            role: AUTHENTICATED.into(),
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

const AUTHENTICATED: &str = "authenticated";

/// What the transaction may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// A read: `BEGIN READ ONLY`, as PostgREST does for GET/HEAD, so not even a volatile
    /// function can write; nothing to commit, so it ends with `ROLLBACK`.
    ReadOnly,
    /// A write (or a session that may write): `BEGIN`, ended by `COMMIT`.
    #[default]
    ReadWrite,
}

impl Access {
    /// The statement that opens the transaction.
    pub fn begin(self) -> &'static str {
        match self {
            Self::ReadOnly => "begin read only",
            Self::ReadWrite => "begin",
        }
    }

    /// The statement that ends it when all went well.
    pub fn end(self) -> &'static str {
        match self {
            Self::ReadOnly => "rollback",
            Self::ReadWrite => "commit",
        }
    }
}

/// A transaction to open as `identity`: access mode and an optional statement timeout.
#[derive(Debug, Clone, Copy)]
pub struct IdentityTx<'a> {
    pub identity: &'a DbIdentity,
    pub access: Access,
    /// `statement_timeout` for this transaction only; `None` keeps the session's.
    pub statement_timeout_ms: Option<u64>,
}

impl<'a> IdentityTx<'a> {
    /// A read-write transaction with no timeout of its own.
    pub fn new(identity: &'a DbIdentity) -> Self {
        Self {
            identity,
            access: Access::ReadWrite,
            statement_timeout_ms: None,
        }
    }

    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    pub fn statement_timeout_ms(mut self, ms: u64) -> Self {
        self.statement_timeout_ms = Some(ms);
        self
    }

    /// `BEGIN …; SELECT set_config(…)`: the whole opening as one simple query.
    pub fn begin_sql(&self) -> Result<String, IdentityError> {
        let role = quote_literal(&self.identity.role).map_err(|source| IdentityError::Quote {
            what: "role",
            source,
        })?;
        let claims = match &self.identity.claims {
            Some(claims) => Some(
                quote_literal(claims).map_err(|source| IdentityError::Quote {
                    what: "claims",
                    source,
                })?,
            ),
            None => None,
        };
        Ok(format!(
            "{}; {}",
            self.access.begin(),
            set_identity_sql(&role, claims.as_deref(), self.statement_timeout_ms)
        ))
    }
}

/// The identity switch as one `SELECT`, from SQL expressions: `role` and `claims` are
/// literals (from [`quote_literal`]) or, for a pgbench script, expressions built from them.
/// `None` claims leave `request.jwt.claims` untouched.
pub fn set_identity_sql(
    role: &str,
    claims: Option<&str>,
    statement_timeout_ms: Option<u64>,
) -> String {
    let mut sql = format!("select set_config('role', {role}, true)");
    if let Some(claims) = claims {
        sql.push_str(&format!(
            ", set_config('request.jwt.claims', {claims}, true)"
        ));
    }
    if let Some(ms) = statement_timeout_ms {
        sql.push_str(&format!(", set_config('statement_timeout', '{ms}', true)"));
    }
    sql
}

/// Why an identity transaction did not open.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the {what} cannot be sent to Postgres")]
    Quote {
        what: &'static str,
        #[source]
        source: NulInText,
    },
    #[error("cannot begin a transaction as role {role}")]
    Begin {
        role: String,
        #[source]
        source: sqlx::Error,
    },
}

impl IdentityError {
    /// The database error underneath, if the server (or the connection) refused.
    pub fn sqlx(&self) -> Option<&sqlx::Error> {
        match self {
            Self::Begin { source, .. } => Some(source),
            Self::Quote { .. } => None,
        }
    }
}

/// Opens `tx` on `conn` in one round trip. If the identity switch fails, the `BEGIN` is rolled
/// back before this returns (sqlx), so the connection is left outside any transaction.
pub async fn begin_as<'c>(
    conn: &'c mut PgConnection,
    tx: IdentityTx<'_>,
) -> Result<Transaction<'c, Postgres>, IdentityError> {
    let sql = tx.begin_sql()?;
    conn.begin_with(AssertSqlSafe(sql))
        .await
        .map_err(|source| IdentityError::Begin {
            role: tx.identity.role.clone(),
            source,
        })
}

/// Opens `tx` on a connection from `pool`, in one round trip.
///
/// A pool that does not ping connections before handing them out can hand out one that died
/// while idle (the server restarted): that fails here, before any statement ran, so the
/// transaction is retried on another, at most once per pooled connection plus one.
pub async fn begin_pooled(
    pool: &PgPool,
    tx: IdentityTx<'_>,
) -> Result<Transaction<'static, Postgres>, IdentityError> {
    let sql = tx.begin_sql()?;
    let attempts = pool.options().get_max_connections() + 1;
    let mut attempt = 1;
    loop {
        match pool.begin_with(AssertSqlSafe(sql.clone())).await {
            Err(e) if attempt < attempts && stale_connection(&e) => {
                tracing::debug!(error = %e, attempt, "pooled connection was dead; retrying");
                attempt += 1;
            }
            other => {
                return other.map_err(|source| IdentityError::Begin {
                    role: tx.identity.role.clone(),
                    source,
                });
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opening_is_one_simple_query() {
        let alice = DbIdentity::authenticated_json(r#"{"sub":"it's"}"#);
        let sql = IdentityTx::new(&alice)
            .access(Access::ReadOnly)
            .statement_timeout_ms(5000)
            .begin_sql()
            .unwrap();
        assert_eq!(
            sql,
            "begin read only; select set_config('role', 'authenticated', true), \
             set_config('request.jwt.claims', '{\"sub\":\"it''s\"}', true), \
             set_config('statement_timeout', '5000', true)"
        );
        let anon = DbIdentity::anon();
        assert_eq!(
            IdentityTx::new(&anon).begin_sql().unwrap(),
            "begin; select set_config('role', 'anon', true)"
        );
    }

    #[test]
    fn a_nul_is_refused_before_anything_is_sent() {
        let bad = DbIdentity::raw("authenticated", Some("{\"sub\":\"a\0b\"}"));
        let err = IdentityTx::new(&bad).begin_sql().unwrap_err();
        assert!(
            matches!(err, IdentityError::Quote { what: "claims", .. }),
            "{err:?}"
        );
    }
}
