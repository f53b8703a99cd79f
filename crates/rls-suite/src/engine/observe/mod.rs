//! Observers carry out a cell's `Action` as one actor and report only what the caller got
//! back: the rows it read, or the error it was refused with. What the action changed is read by
//! the engine itself, as a superuser, before and after — so both observers are judged alike.
//!
//! - `Observer::Sql`: the identity transaction (`pg-identity`) on the app's login role, one
//!   connection for every cell, as a pool of one.
//! - `Observer::Http`: the records API of an InsForge-compatible endpoint (the sample app,
//!   or a deployment), with Clerk-shaped tokens minted with its JWT secret.
//!
//! [`sql`] and [`http`] hold the two; neither knows a table name: the bound spec and the catalog give them.

use clerk_token::{ClerkTemplate, Secret};
use harness::DbIdentity;
use sqlx::{Connection as _, PgConnection};

pub(crate) use super::model::Executed;
use super::model::{Action, Actor, Error, SeedRow, Table};

pub mod http;
pub mod sql;

pub use http::{Api, Reply};

/// An InsForge-compatible endpoint: its base URL and the JWT secret its tokens are signed with.
#[derive(Clone)]
pub struct HttpEndpoint {
    pub base_url: String,
    pub secret: Secret,
}

impl std::fmt::Debug for HttpEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEndpoint")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Who carries out the cells of a run.
pub(crate) enum Observer {
    Sql {
        conn: PgConnection,
        /// Per actor (by position), what the database is told.
        identities: Vec<DbIdentity>,
    },
    Http {
        api: Api,
        /// Per actor (by position), the `Authorization` header value.
        authorizations: Vec<String>,
    },
}

/// Actors an observer can act as: over HTTP only Clerk users — a request without a token, or
/// with one that has no `sub`, is refused before Postgres (InsForge: 401), which the hostile
/// token table checks instead.
pub(crate) fn can_act(http: bool, actor: &Actor) -> bool {
    !http || actor.is_user()
}

impl Observer {
    /// An HTTP observer for `actors` (all users; see [`can_act`]), with hour-long tokens so a
    /// slow endpoint cannot expire them mid-run.
    pub(crate) fn http(endpoint: &HttpEndpoint, actors: &[Actor]) -> Result<Self, Error> {
        let template = ClerkTemplate::insforge(endpoint.secret.clone()).with_lifetime_secs(3600);
        let authorizations = actors
            .iter()
            .map(|a| match a.clerk_user() {
                Some(user) => template
                    .mint(&user)
                    .map(|t| format!("Bearer {t}"))
                    .map_err(|e| Error::Token {
                        actor: a.key.clone(),
                        source: e.into(),
                    }),
                None => Err(Error::Endpoint(format!(
                    "actor {} has no token to send over HTTP",
                    a.key
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Http {
            api: Api::new(&endpoint.base_url)?,
            authorizations,
        })
    }

    pub(crate) async fn execute(
        &mut self,
        table: &Table,
        seeds: &[SeedRow],
        actor: usize,
        action: &Action,
    ) -> Result<Executed, Error> {
        match self {
            Observer::Sql { conn, identities } => {
                sql::execute(conn, &identities[actor], table, action).await
            }
            Observer::Http {
                api,
                authorizations,
            } => http::execute(api, &authorizations[actor], table, seeds, action).await,
        }
    }

    pub(crate) async fn close(self) {
        if let Observer::Sql { conn, .. } = self {
            conn.close().await.ok();
        }
    }
}
