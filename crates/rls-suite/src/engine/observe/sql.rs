//! The SQL observer: a cell's `Action` as one statement in an identity transaction
//! (`pg-identity`) on the app's login role — committed when it succeeds, rolled back with its
//! SQLSTATE when it is refused.

use harness::DbIdentity;
use harness::target::quote_ident;
use serde_json::{Value, json};
use sqlx::PgConnection;

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

pub(crate) async fn execute(
    conn: &mut PgConnection,
    identity: &DbIdentity,
    table: &Table,
    action: &Action,
) -> Result<Executed, Error> {
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
