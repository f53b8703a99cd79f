//! Observers carry out a cell's [`Action`] as one actor and report only what the caller got
//! back: the rows it read, or the error it was refused with. What the action changed is read by
//! the engine itself, as a superuser, before and after — so both observers are judged alike.
//!
//! - [`Observer::Sql`]: the identity transaction (`pg-identity`) on the app's login role, one
//!   connection for every cell, as a pool of one.
//! - [`Observer::Http`]: the records API of an InsForge-compatible endpoint (the sample app,
//!   or a deployment), with Clerk-shaped tokens minted with its JWT secret.
//!
//! Neither knows a table name: the bound spec and the catalog give them.

use clerk_token::{ClerkTemplate, Secret};
use harness::DbIdentity;
use harness::target::quote_ident;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};

use super::{AccessError, Action, SeedRow, Table, sql_err};
use crate::SuiteError;
use crate::actors::Actor;
use crate::http::Api;

/// What the caller got back.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Executed {
    /// `seen`: primary keys (as the engine writes them) of the rows a read returned;
    /// `refused`: the error code, if the statement or request failed.
    Done {
        seen: Vec<String>,
        refused: Option<String>,
    },
    /// The observer has no way to carry this action out (the cell's text says why).
    Unsupported(&'static str),
}

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
pub(super) enum Observer {
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
pub(super) fn can_act(http: bool, actor: &Actor) -> bool {
    !http || actor.is_user()
}

impl Observer {
    /// An HTTP observer for `actors` (all users; see [`can_act`]), with hour-long tokens so a
    /// slow endpoint cannot expire them mid-run.
    pub(super) fn http(endpoint: &HttpEndpoint, actors: &[Actor]) -> Result<Self, AccessError> {
        let template = ClerkTemplate::insforge(endpoint.secret.clone()).with_lifetime_secs(3600);
        let authorizations = actors
            .iter()
            .map(|a| match a.clerk_user() {
                Some(user) => template
                    .mint(&user)
                    .map(|t| format!("Bearer {t}"))
                    .map_err(|e| AccessError::Token {
                        actor: a.key.clone(),
                        source: e.into(),
                    }),
                None => Err(AccessError::Suite(SuiteError::Endpoint(format!(
                    "actor {} has no token to send over HTTP",
                    a.key
                )))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Http {
            api: Api::new(&endpoint.base_url)?,
            authorizations,
        })
    }

    pub(super) async fn execute(
        &mut self,
        table: &Table,
        seeds: &[SeedRow],
        actor: usize,
        action: &Action,
    ) -> Result<Executed, AccessError> {
        match self {
            Observer::Sql { conn, identities } => {
                sql(conn, &identities[actor], table, action).await
            }
            Observer::Http {
                api,
                authorizations,
            } => http(api, &authorizations[actor], table, seeds, action).await,
        }
    }

    pub(super) async fn close(self) {
        if let Observer::Sql { conn, .. } = self {
            conn.close().await.ok();
        }
    }
}

/// The statement for an action, with its binds (text for keys, JSON for values).
fn statement(table: &Table, action: &Action) -> (String, Vec<Value>) {
    let q = &table.qname;
    let pk = table.pk_expr("t");
    let assignments = |set: &Value| {
        set.as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .map(|c| {
                let c = quote_ident(c);
                format!("{c} = (jsonb_populate_record(null::{q}, $1)).{c}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match action {
        Action::Select { via: None } => (format!("select {pk} from {q} t"), vec![]),
        // The from-item comes from the catalog, quoted there (see `readers`).
        Action::Select { via: Some(i) } => (
            format!("select {pk} from {} t", table.readers[*i].from),
            vec![],
        ),
        Action::Insert { row } => {
            let cols: Vec<String> = table
                .candidate_columns
                .iter()
                .map(|c| quote_ident(c))
                .collect();
            (
                format!(
                    "insert into {q} ({c}) select {c} from jsonb_populate_record(null::{q}, $1)",
                    c = cols.join(", ")
                ),
                vec![row.clone()],
            )
        }
        Action::Update {
            target: Some(key),
            set,
        } => (
            format!("update {q} t set {} where {pk} = $2", assignments(set)),
            vec![set.clone(), json!(key)],
        ),
        Action::Update { target: None, set } => (
            format!("update {q} set {}", assignments(set)),
            vec![set.clone()],
        ),
        Action::Delete { target: Some(key) } => (
            format!("delete from {q} t where {pk} = $1"),
            vec![json!(key)],
        ),
        Action::Delete { target: None } => (format!("delete from {q}"), vec![]),
    }
}

async fn sql(
    conn: &mut PgConnection,
    identity: &DbIdentity,
    table: &Table,
    action: &Action,
) -> Result<Executed, AccessError> {
    let (sql, binds) = statement(table, action);
    let mut tx = harness::begin_as(conn, identity).await?;
    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
    for b in binds {
        query = match b {
            Value::String(s) => query.bind(s),
            other => query.bind(other),
        };
    }
    let result = query.fetch_all(&mut *tx).await;
    Ok(match result {
        Ok(seen) => {
            tx.commit().await.map_err(sql_err("commit"))?;
            Executed::Done {
                seen,
                refused: None,
            }
        }
        Err(e) => {
            tx.rollback().await.ok();
            Executed::Done {
                seen: Vec::new(),
                refused: Some(
                    e.as_database_error()
                        .and_then(|d| d.code())
                        .map_or_else(|| "error".to_owned(), |c| c.into_owned()),
                ),
            }
        }
    })
}

/// A column name as PostgREST's `select=` takes it: plain when it is a simple lower-case
/// identifier, else in double quotes.
fn select_name(column: &str) -> String {
    let simple = column
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if simple && !column.is_empty() {
        column.to_owned()
    } else {
        format!("\"{}\"", column.replace('"', "\"\""))
    }
}

/// `select=` of the table's primary key columns.
pub(super) fn select_list(table: &Table) -> String {
    let cols: Vec<String> = table.pk.iter().map(|c| select_name(c)).collect();
    format!("select={}", encode(&cols.join(",")))
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `col=eq.value&…` selecting exactly the row whose key (as the engine writes it, a JSON array
/// of the primary key's values) is `key`.
fn key_filter(table: &Table, key: &str) -> Result<String, AccessError> {
    let values: Vec<Value> = serde_json::from_str(key).map_err(|e| {
        AccessError::Suite(SuiteError::Endpoint(format!(
            "internal: a primary key that is not a JSON array ({key}): {e}"
        )))
    })?;
    Ok(table
        .pk
        .iter()
        .zip(values)
        .map(|(col, v)| {
            let op = match v {
                Value::Null => "is.null".to_owned(),
                Value::String(s) => format!("eq.{s}"),
                other => format!("eq.{other}"),
            };
            format!("{}={}", encode(col), encode(&op))
        })
        .collect::<Vec<_>>()
        .join("&"))
}

/// The engine's key for a row the API returned: the seed row whose key values match, else the
/// values themselves.
pub(super) fn key_of(table: &Table, seeds: &[SeedRow], row: &Value) -> String {
    let values = Value::Array(
        table
            .pk
            .iter()
            .map(|c| row.get(c).cloned().unwrap_or(Value::Null))
            .collect(),
    );
    seeds
        .iter()
        .find(|s| serde_json::from_str::<Value>(&s.pk).ok().as_ref() == Some(&values))
        .map_or_else(|| values.to_string(), |s| s.pk.clone())
}

/// The code a refusal carries: PostgREST's `code` (a SQLSTATE such as `42501`, or `PGRST…`),
/// InsForge's `error`, else the HTTP status.
fn refusal_code(reply: &crate::http::Reply) -> String {
    reply
        .body
        .get("code")
        .or_else(|| reply.body.get("error"))
        .and_then(Value::as_str)
        .map_or_else(|| reply.status.as_u16().to_string(), str::to_owned)
}

async fn http(
    api: &Api,
    authorization: &str,
    table: &Table,
    seeds: &[SeedRow],
    action: &Action,
) -> Result<Executed, AccessError> {
    let name = table.spec.name.as_str();
    let (method, resource, query, body) = match action {
        Action::Select { via } => {
            let resource = match via {
                None => name,
                Some(i) => match &table.readers[*i].view {
                    Some(view) => view.as_str(),
                    None => return Ok(Executed::Unsupported("n/a over HTTP (a function)")),
                },
            };
            (Method::GET, resource, select_list(table), None)
        }
        Action::Insert { row } => (Method::POST, name, String::new(), Some(row)),
        Action::Update { target, set } => (
            Method::PATCH,
            name,
            match target {
                Some(key) => key_filter(table, key)?,
                None => String::new(),
            },
            Some(set),
        ),
        Action::Delete { target } => (
            Method::DELETE,
            name,
            match target {
                Some(key) => key_filter(table, key)?,
                None => String::new(),
            },
            None,
        ),
    };
    let reply = api
        .request_with_authorization(
            method,
            resource,
            &query,
            Some(authorization),
            body,
            Some("return=minimal"),
        )
        .await?;
    if !reply.status.is_success() {
        return Ok(Executed::Done {
            seen: Vec::new(),
            refused: Some(refusal_code(&reply)),
        });
    }
    let seen = match action {
        Action::Select { .. } => match reply.body.as_array() {
            Some(rows) => rows.iter().map(|r| key_of(table, seeds, r)).collect(),
            None => {
                return Err(AccessError::Suite(SuiteError::Endpoint(format!(
                    "GET {resource} answered {} with a body that is not a JSON array — not \
                     InsForge's records API?",
                    reply.status
                ))));
            }
        },
        _ => Vec::new(),
    };
    Ok(Executed::Done {
        seen,
        refused: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_names_quote_what_postgrest_would_misread() {
        assert_eq!(select_name("owner_id"), "owner_id");
        assert_eq!(select_name("Owner"), "\"Owner\"");
        assert_eq!(select_name("a\"b c"), "\"a\"\"b c\"");
    }
}
