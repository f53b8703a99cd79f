//! Stage 3, **expect**: what the spec says every actor may do to every seeded row — the bound
//! rules evaluated as SQL over the seeded table, per actor (and, for inserts, each seed row as a
//! candidate with that row removed). Hands one [`Allowed`] per actor to the plan stage.

use serde_json::Value;
use sqlx::{Connection, PgConnection};

use super::model::{Actor, Allowed, Error, SeedRow, Table, db_message, hand_over, sql_err};
use super::seed::{candidate, remove};
use crate::spec::{Command, SpecError};

pub(crate) async fn expected(
    table: &Table,
    seeds: &[SeedRow],
    actors: &[Actor],
    admin: &mut PgConnection,
) -> Result<Vec<Allowed>, Error> {
    let ids: Vec<Option<String>> = actors.iter().map(|a| a.id().map(str::to_owned)).collect();
    let roles: Vec<&str> = actors.iter().map(|a| a.role()).collect();
    let emails: Vec<Option<&str>> = actors.iter().map(|a| a.email()).collect();
    let p = |c: Command| table.preds[&c].render("a.id", "a.role", "a.email");
    // Per role the table's write cells try one at a time: whether the actor holds it on the
    // row's granting row.
    let as_role: Vec<String> = table
        .role_preds
        .iter()
        .map(|(_, pred)| pred.render("a.id", "a.role", "a.email"))
        .collect();
    let sql = format!(
        "select a.n::int4 - 1, {pk}, {s}, {u}, {d}, array[{r}]::bool[] \
         from unnest($1::text[], $2::text[], $3::text[]) with ordinality a(id, role, email, n) \
         cross join {q} t",
        pk = table.pk_expr("t"),
        s = p(Command::Select),
        u = p(Command::Update),
        d = p(Command::Delete),
        r = as_role.join(", "),
        q = table.qname,
    );
    let rows: Vec<(i32, String, bool, bool, bool, Vec<bool>)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(&ids)
            .bind(&roles)
            .bind(&emails)
            .fetch_all(&mut *admin)
            .await
            .map_err(|e| predicate_err(table, e))?;
    let mut out = vec![Allowed::default(); actors.len()];
    for (n, pk, s, u, d, r) in rows {
        let a = &mut out[usize::try_from(n).unwrap_or(0)];
        for ((role, _), holds) in table.role_preds.iter().zip(r) {
            if holds {
                a.as_role
                    .entry(role.clone())
                    .or_default()
                    .insert(pk.clone());
            }
        }
        if s {
            a.select.insert(pk.clone());
        }
        if u {
            a.update.insert(pk.clone());
        }
        if d {
            a.delete.insert(pk);
        }
    }
    // Inserts: each seed row as a candidate, judged with that row removed (it is re-inserted).
    let sql = format!(
        "select a.n::int4 - 1, {ins} \
         from unnest($1::text[], $2::text[], $4::text[]) with ordinality a(id, role, email, n) \
         cross join jsonb_populate_record(null::{q}, $3) t",
        ins = p(Command::Insert),
        q = table.qname,
    );
    let as_self_sql = table.spec.owner.as_ref().map(|owner| {
        format!(
            "select a.n::int4 - 1, a.id is not null and {ins} \
             from unnest($1::text[], $2::text[], $4::text[]) with ordinality a(id, role, email, n) \
             cross join lateral jsonb_populate_record(null::{q}, \
               $3 || jsonb_build_object({col}::text, a.id)) t",
            ins = p(Command::Insert),
            q = table.qname,
            col = harness::target::quote_literal(owner),
        )
    });
    for row in seeds {
        let mut tx = admin.begin().await.map_err(sql_err("plan inserts"))?;
        remove(table, &row.pk, &mut tx).await?;
        let ok: Vec<(i32, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(&ids)
            .bind(&roles)
            .bind(candidate(table, row))
            .bind(&emails)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| predicate_err(table, e))?;
        // The same row under each actor's own id (one dimension at a time: the owner column
        // alone changed).
        let as_self: Vec<(i32, bool)> = match &as_self_sql {
            Some(sql) => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(&ids)
                .bind(&roles)
                .bind(candidate(table, row))
                .bind(&emails)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| predicate_err(table, e))?,
            None => Vec::new(),
        };
        tx.rollback().await.map_err(sql_err("plan inserts"))?;
        for (n, allowed) in as_self {
            if allowed {
                out[usize::try_from(n).unwrap_or(0)]
                    .insert_as_self
                    .insert(row.pk.clone());
            }
        }
        for (n, allowed) in ok {
            if allowed {
                out[usize::try_from(n).unwrap_or(0)]
                    .insert
                    .insert(row.pk.clone());
            }
        }
    }
    // Moves to another parent (a parent column immutable only by default): allowed where the
    // moved row is one the actor may insert.
    if !table.movable.is_empty() {
        let sql = format!(
            "select {ins} from (select $1::text as id, $2::text as role, $3::text as email) a \
             cross join jsonb_populate_record(null::{q}, $4) t",
            ins = p(Command::Insert),
            q = table.qname,
        );
        for (ai, allowed) in out.iter_mut().enumerate() {
            for col in &table.movable {
                let Some((own, value)) = hand_over(seeds, allowed, col) else {
                    continue;
                };
                let mut moved = candidate(table, own);
                moved[col.as_str()] = value.clone();
                let ok: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(ids[ai].as_deref())
                    .bind(roles[ai])
                    .bind(emails[ai])
                    .bind(moved)
                    .fetch_one(&mut *admin)
                    .await
                    .map_err(|e| predicate_err(table, e))?;
                if ok {
                    allowed.may_move.insert(col.clone());
                }
            }
        }
    }
    Ok(out)
}

fn predicate_err(table: &Table, e: sqlx::Error) -> Error {
    Error::Spec(SpecError::Invalid {
        path: std::path::PathBuf::new(),
        line: table.spec.line,
        key: format!("tables.{}", table.spec.name),
        message: format!(
            "the spec's rules do not evaluate as SQL: {}",
            db_message(&e)
        ),
    })
}

/// Whether `actor` may insert `row` into `table`, as the spec's insert rule says.
pub(crate) async fn may_insert(
    table: &Table,
    actor: &Actor,
    row: &Value,
    admin: &mut PgConnection,
) -> Result<bool, Error> {
    let sql = format!(
        "select coalesce(({}), false) from (select $1::text as id, $2::text as role, \
         $4::text as email) a, jsonb_populate_record(null::{}, $3) t",
        table.preds[&Command::Insert].render("a.id", "a.role", "a.email"),
        table.qname
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(actor.id())
        .bind(actor.role())
        .bind(row)
        .bind(actor.email())
        .fetch_one(&mut *admin)
        .await
        .map_err(sql_err("judge a row against the insert rule"))
}
