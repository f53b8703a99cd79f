//! The SQL observer: a cell's `Action` as one statement in an identity transaction
//! (`pg-identity`) on the app's login role — committed when it succeeds, rolled back with its
//! SQLSTATE when it is refused. The opening, the statement and the commit travel as one simple
//! query (one round trip; the binds as literals quoted by `pg-identity`'s one quoter).
//!
//! [`execute_rolled_back`] is the mutants' way: on a superuser's connection inside an open
//! transaction, the cell runs in a savepoint as `authenticated` (or `anon`) with the same
//! claims, its after-image is read as the superuser, and the savepoint is rolled back — one
//! round trip, nothing left behind.

use std::collections::BTreeMap;

use futures_util::TryStreamExt as _;
use harness::DbIdentity;
use harness::identity::{IdentityTx, quote_literal, set_identity_sql};
use harness::target::quote_ident;
use serde_json::{Value, json};
use sqlx::postgres::PgRow;
use sqlx::{Either, PgConnection, Row as _};

use crate::engine::model::{Action, Error, Executed, Table, sql_err};

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

/// A literal for a bind, typed as the bind is when sent apart: text for a string (keys),
/// jsonb for the rest.
fn literal(value: &Value) -> Result<String, Error> {
    let (text, ty) = match value {
        Value::String(s) => (s.clone(), "text"),
        other => (other.to_string(), "jsonb"),
    };
    let quoted = quote_literal(&text).map_err(|source| {
        Error::Harness(harness::HarnessError::Identity(
            harness::identity::IdentityError::Quote {
                what: "bind",
                source,
            },
        ))
    })?;
    Ok(format!("{quoted}::{ty}"))
}

/// `sql` with each `$n` outside quoted text and identifiers replaced by [`literal`] of
/// `binds[n - 1]`.
pub(crate) fn inline(sql: &str, binds: &[Value]) -> Result<String, Error> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut quote: Option<char> = None;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '$') if chars.peek().is_some_and(|(_, d)| d.is_ascii_digit()) => {
                let mut n = 0usize;
                while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
                    n = n * 10 + (d as usize - '0' as usize);
                    chars.next();
                }
                let value = n
                    .checked_sub(1)
                    .and_then(|i| binds.get(i))
                    .unwrap_or(&Value::Null);
                out.push_str(&literal(value)?);
            }
            (None, c) => out.push(c),
        }
    }
    Ok(out)
}

/// What one simple query of several statements returned: per statement (by position) the rows
/// it returned, up to the first error, which is returned with the position of the statement
/// that raised it.
struct Script {
    rows: Vec<Vec<PgRow>>,
    failed: Option<(usize, sqlx::Error)>,
}

impl Script {
    async fn run(conn: &mut PgConnection, sql: String) -> Self {
        let mut rows: Vec<Vec<PgRow>> = vec![Vec::new()];
        let mut stream = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_many(&mut *conn);
        let failed = loop {
            match stream.try_next().await {
                Ok(Some(Either::Left(_))) => rows.push(Vec::new()),
                Ok(Some(Either::Right(row))) => {
                    if let Some(last) = rows.last_mut() {
                        last.push(row);
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some((rows.len() - 1, e)),
            }
        };
        Script { rows, failed }
    }

    fn column<T>(&self, statement: usize) -> Result<Vec<T>, Error>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        self.rows
            .get(statement)
            .into_iter()
            .flatten()
            .map(|r| r.try_get::<T, _>(0))
            .collect::<Result<Vec<T>, _>>()
            .map_err(sql_err("read a cell's rows"))
    }
}

fn refusal(e: &sqlx::Error) -> String {
    e.as_database_error()
        .and_then(|d| d.code())
        .map_or_else(|| "error".to_owned(), |c| c.into_owned())
}

/// The SQLSTATE of a statement cancelled by `statement_timeout`.
pub(crate) const TIMED_OUT: &str = "57014";

pub(crate) async fn execute(
    conn: &mut PgConnection,
    identity: &DbIdentity,
    table: &Table,
    action: &Action,
) -> Result<Executed, Error> {
    let (sql, binds) = statement(table, action);
    let begin = IdentityTx::new(identity)
        .begin_sql()
        .map_err(|e| Error::Harness(harness::HarnessError::Identity(e)))?;
    // `begin; select set_config(…)` (two statements), the statement, `commit`.
    const STATEMENT: usize = 2;
    let script = format!("{begin}; {}; commit", inline(&sql, &binds)?);
    let done = Script::run(conn, script).await;
    match done.failed {
        None => Ok(Executed::Done {
            seen: done.column::<String>(STATEMENT)?,
            refused: None,
        }),
        Some((at, e)) => {
            sqlx::raw_sql("rollback")
                .execute(&mut *conn)
                .await
                .map_err(sql_err("roll back a refused cell"))?;
            match at {
                STATEMENT => Ok(Executed::Done {
                    seen: Vec::new(),
                    refused: Some(refusal(&e)),
                }),
                a if a < STATEMENT => Err(Error::Harness(harness::HarnessError::Sql {
                    context: format!("cannot switch to role {}", identity.role),
                    source: e,
                })),
                _ => Err(sql_err("commit")(e)),
            }
        }
    }
}

/// How [`execute_rolled_back`] carries a cell out.
pub(crate) struct RolledBack<'a> {
    /// The primary key of a seed row removed first (an insert puts it back).
    pub(crate) removed: Option<&'a str>,
    /// Read the table's rows after the statement.
    pub(crate) read_after: bool,
    pub(crate) timeout_ms: u64,
    /// Where the query is written down, as psql would send it.
    pub(crate) record: Option<&'a dyn Fn(String)>,
}

/// A cell carried out and undone inside the open transaction of `conn` (a superuser's): in a
/// savepoint, `removed` (a primary key) deleted first as the superuser, then the statement as
/// `identity` with its claims and `timeout_ms` as its statement timeout (triggers firing as
/// for the app), then — with `read_after` — every row of the table as the superuser sees it,
/// and the savepoint rolled back. One round trip (two when the statement is refused).
/// A statement the timeout cancelled is an error, not a refusal.
pub(crate) async fn execute_rolled_back(
    conn: &mut PgConnection,
    identity: &DbIdentity,
    table: &Table,
    action: &Action,
    how: RolledBack<'_>,
) -> Result<(Executed, Option<BTreeMap<String, Value>>), Error> {
    let RolledBack {
        removed,
        read_after,
        timeout_ms,
        record,
    } = how;
    const UNDO: &str = "rollback to savepoint insforge_rls_cell; \
                        release savepoint insforge_rls_cell";
    let quote = |what: &'static str, text: &str| {
        quote_literal(text).map_err(|source| {
            Error::Harness(harness::HarnessError::Identity(
                harness::identity::IdentityError::Quote { what, source },
            ))
        })
    };
    let (sql, binds) = statement(table, action);
    let pk = table.pk_expr("t");
    let q = &table.qname;
    let mut parts = vec!["savepoint insforge_rls_cell".to_owned()];
    if let Some(key) = removed {
        parts.push(format!(
            "delete from {q} t where {pk} = {}::text",
            quote("key", key)?
        ));
    }
    parts.push("set local session_replication_role = origin".into());
    let claims = match &identity.claims {
        Some(c) => Some(quote("claims", c)?),
        None => None,
    };
    parts.push(set_identity_sql(
        &quote("role", &identity.role)?,
        claims.as_deref(),
        Some(timeout_ms),
    ));
    let at = parts.len();
    parts.push(inline(&sql, &binds)?);
    parts.push("set local role none".into());
    parts.push("set local session_replication_role = replica".into());
    let image_at = parts.len();
    if read_after {
        parts.push(format!("select {pk}, to_jsonb(t) from {q} t"));
    }
    parts.push(UNDO.into());
    if let Some(record) = record {
        // As psql sends it in one query (`\;` joins).
        record(format!("{};", parts.join("\\;\n")));
    }
    let done = Script::run(conn, parts.join(";\n")).await;
    let after = |done: &Script| -> Result<BTreeMap<String, Value>, Error> {
        done.rows
            .get(image_at)
            .into_iter()
            .flatten()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<Value, _>(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(sql_err(format!("read {}", table.spec.name)))
    };
    match done.failed {
        None => Ok((
            Executed::Done {
                seen: done.column::<String>(at)?,
                refused: None,
            },
            read_after.then(|| after(&done)).transpose()?,
        )),
        Some((failed, e)) => {
            if let Some(record) = record {
                record(format!("{UNDO};"));
            }
            sqlx::raw_sql(UNDO)
                .execute(&mut *conn)
                .await
                .map_err(sql_err("roll back a cell"))?;
            let code = refusal(&e);
            if failed == at && code != TIMED_OUT {
                Ok((
                    Executed::Done {
                        seen: Vec::new(),
                        refused: Some(code),
                    },
                    None,
                ))
            } else if failed == at {
                Err(sql_err(format!(
                    "a cell ran past its statement timeout ({timeout_ms} ms)"
                ))(e))
            } else {
                Err(sql_err("carry out a cell in a savepoint")(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::inline;

    #[test]
    fn binds_become_typed_literals_outside_quotes_only() {
        let sql = r#"update "t$1" t set "a" = (jsonb_populate_record(null::"t$1", $1)).a where k = $2 and s = '$1'"#;
        let out = inline(sql, &[json!({"a": "it's"}), json!("[\"k\"]")]).unwrap();
        assert_eq!(
            out,
            r#"update "t$1" t set "a" = (jsonb_populate_record(null::"t$1", '{"a":"it''s"}'::jsonb)).a where k = '["k"]'::text and s = '$1'"#
        );
    }
}
