//! Stage 2, **seed**: rows for every actor in every bound table, inserted as a superuser with
//! the tables' triggers and defaults applying (unless a table opts out), in seeding order; kept in the database so a cell's writes can be undone in one
//! round trip ([`restore`]). Hands the [`Seeds`] to the expect stage. Also the superuser's other
//! row work: reading a table's images, removing one row, clearing the seeds at the end.

use std::collections::BTreeMap;

use harness::target::quote_ident;
use serde_json::{Map, Value, json};
use sqlx::{Connection, PgConnection};

use super::bind::invalid;
use super::model::{
    Actor, BoundSpec, Derived, Error, FiredTrigger, SeedRow, Seeds, Table, db_message, field,
    sql_err,
};
use crate::spec::{Spec, TableSpec};

/// Inserts rows for every actor in every table, as a superuser, in seeding order. Each table's
/// triggers fire (a trigger-set `created_at` is set, as in production) unless its spec says
/// `triggers = false`; payload values in a unique key are made unique per row.
pub(crate) async fn seed(
    bound: &BoundSpec,
    users: &[&Actor],
    admin: &mut PgConnection,
) -> Result<Seeds, Error> {
    let spec = &bound.spec;
    let user_of = |id: &Value| users.iter().position(|u| Some(u.id()) == Some(id.as_str()));
    let mut rows: Vec<Vec<SeedRow>> = vec![Vec::new(); bound.tables.len()];
    let mut derived: Vec<Derived> = Vec::new();
    let mut tx = admin.begin().await.map_err(sql_err("begin seeding"))?;
    // Rows the migrations put in a spec table (reference data, a welcome post) are replaced:
    // the check knows every row it judges. (`verify` refuses tables that hold rows before
    // this point.)
    clear(bound, &mut tx).await?;
    // Count the calls of trigger functions in this transaction, to report which fired.
    sqlx::query("set local track_functions = 'all'")
        .execute(&mut *tx)
        .await
        .map_err(sql_err("prepare seeding"))?;
    let mut triggers: Vec<FiredTrigger> = Vec::new();
    let mut calls_before = trigger_calls(&mut tx).await?;
    for (ti, table) in bound.tables.iter().enumerate() {
        let t = &table.spec;
        // (values, tag) for each row to insert.
        let mut planned: Vec<(Map<String, Value>, usize)> = Vec::new();
        let granted_by = spec
            .tables
            .iter()
            .find(|o| o.members.as_ref().is_some_and(|m| m.table == t.name));
        if let Some(owner_table) = granted_by {
            let m = owner_table.members.as_ref().expect("checked above");
            let pi = bound.index(&owner_table.name).expect("bound");
            let roles: Vec<Option<String>> = match &m.role {
                Some((_, roles)) => roles.iter().cloned().map(Some).collect(),
                None => vec![None, None],
            };
            for p in &rows[pi] {
                let o = users.iter().position(|u| u.key == p.tag).unwrap_or(0);
                for (k, role) in roles.iter().enumerate() {
                    let u = (o + k) % users.len();
                    let mut values = Map::new();
                    for (theirs, mine) in &m.on {
                        values.insert(theirs.clone(), field(&p.image, mine).clone());
                    }
                    values.insert(m.user.clone(), json!(users[u].id()));
                    if let (Some((col, _)), Some(role)) = (&m.role, role) {
                        values.insert(col.clone(), json!(role));
                    }
                    if let Some(owner) = &t.owner {
                        values.insert(owner.clone(), json!(users[u].id()));
                    }
                    planned.push((values, u));
                }
            }
        } else if let Some(p) = &t.parent {
            let pi = bound.index(&p.table).expect("bound");
            for prow in &rows[pi] {
                let mut members = members_of(bound, &rows, pi, prow, users);
                if members.is_empty() {
                    members.push(users.iter().position(|u| u.key == prow.tag).unwrap_or(0));
                }
                if t.owner.is_none() {
                    members.truncate(1);
                }
                for u in members {
                    let mut values = Map::new();
                    for (mine, theirs) in &p.on {
                        values.insert(mine.clone(), field(&prow.image, theirs).clone());
                    }
                    if let Some(owner) = &t.owner {
                        values.insert(owner.clone(), json!(users[u].id()));
                    }
                    planned.push((values, u));
                }
            }
        } else {
            for (u, user) in users.iter().enumerate() {
                let mut values = Map::new();
                if let Some(owner) = &t.owner {
                    values.insert(owner.clone(), json!(user.id()));
                }
                planned.push((values, u));
            }
        }
        // A shape the spec declares: rows for some users only (`seed_for`).
        if let Some(only) = &t.seed_for {
            planned.retain(|(_, u)| only.contains(&users[*u].key));
        }
        // The table's triggers and defaults apply, as in production, unless the spec opts out.
        sqlx::query(if t.triggers {
            "set local session_replication_role = origin"
        } else {
            "set local session_replication_role = replica"
        })
        .execute(&mut *tx)
        .await
        .map_err(sql_err("prepare seeding"))?;
        // Rows derived from the policies: a copy of the table's first seed row with one column
        // the policies read set to one value worth trying (see `Table::variants`), where no
        // seed row has it yet.
        let template = planned.first().cloned();
        // The rows the spec declares (`[[tables.<t>.rows]]`): a copy of the user's first seed
        // row with the declared values set.
        let mut declared: Vec<(Map<String, Value>, usize, usize)> = Vec::new();
        for d in &t.rows {
            let Some((values, u)) = planned.iter().find(|(_, u)| users[*u].key == d.user) else {
                continue;
            };
            let mut values = values.clone();
            values.extend(d.values.clone());
            declared.push((values, *u, d.line));
        }
        for (n, (mut values, u)) in planned.into_iter().enumerate() {
            fill_payload(t, table, &mut values, n);
            let row = insert_row(&mut tx, table, &values)
                .await
                .map_err(|e| refused(spec, t, n, users[u], &values, &e))?;
            rows[ti].push(SeedRow {
                pk: row.0,
                image: row.1,
                tag: users[u].key.clone(),
            });
        }
        for (mut values, u, line) in declared {
            let n = rows[ti].len();
            fill_payload(t, table, &mut values, n);
            match try_insert(&mut tx, table, &values).await? {
                Ok(row) => rows[ti].push(SeedRow {
                    pk: row.0,
                    image: row.1,
                    tag: users[u].key.clone(),
                }),
                Err(why) => {
                    return Err(Error::Spec(crate::spec::SpecError::Invalid {
                        path: spec.path.clone(),
                        line,
                        key: format!("tables.{}.rows", t.name),
                        message: format!(
                            "the table refuses this declared row (for {}) {}: {why}; give it \
                             `values` this table accepts",
                            users[u].key,
                            Value::Object(values)
                        ),
                    }));
                }
            }
        }
        let base = rows[ti].len();
        if let Some((template, u)) = template {
            // One column at a time, then each policy branch's values together.
            let mut wanted: Vec<Vec<(String, Value)>> = Vec::new();
            for (col, values) in &table.variants {
                for v in values {
                    let taken = rows[ti][..base].iter().any(|r| field(&r.image, col) == v);
                    // `now` is what a default or trigger usually sets already.
                    let set = v.as_str() == Some("now")
                        && rows[ti][..base]
                            .iter()
                            .all(|r| !field(&r.image, col).is_null());
                    if !(taken || set) {
                        wanted.push(vec![(col.clone(), v.clone())]);
                    }
                }
            }
            wanted.extend(table.combos.iter().cloned());
            for set in wanted {
                let holds = |r: &SeedRow| set.iter().all(|(c, v)| field(&r.image, c) == v);
                if set.len() > 1 && rows[ti].iter().any(holds) {
                    continue;
                }
                let n = rows[ti].len();
                let mut values = template.clone();
                for (c, v) in &set {
                    values.insert(c.clone(), v.clone());
                }
                fill_payload(t, table, &mut values, n);
                // The table may refuse the copy for a value that goes with the old one (a
                // CHECK that wants `slug` NULL on a personal account): then without each
                // payload value in turn, so its default or NULL applies.
                let mut attempts = vec![values.clone()];
                attempts.extend(
                    t.payload
                        .keys()
                        .filter(|k| !set.iter().any(|(c, _)| c == *k))
                        .map(|k| {
                            let mut fewer = values.clone();
                            fewer.remove(k);
                            fewer
                        }),
                );
                let mut first_refusal = None;
                let mut inserted = None;
                for attempt in &attempts {
                    match try_insert(&mut tx, table, attempt).await? {
                        Ok(row) => {
                            inserted = Some(row);
                            break;
                        }
                        Err(why) => {
                            first_refusal.get_or_insert(why);
                        }
                    }
                }
                let refused = match inserted {
                    Some(row) => {
                        rows[ti].push(SeedRow {
                            pk: row.0,
                            image: row.1,
                            tag: users[u].key.clone(),
                        });
                        None
                    }
                    None => first_refusal,
                };
                let (column, value) = match set.as_slice() {
                    [(c, v)] => (c.clone(), v.clone()),
                    _ => (
                        set.iter()
                            .map(|(c, _)| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        Value::Array(set.iter().map(|(_, v)| v.clone()).collect()),
                    ),
                };
                derived.push(Derived {
                    table: t.name.clone(),
                    column,
                    value,
                    refused,
                });
            }
        }
        let calls = trigger_calls(&mut tx).await?;
        for (function, (triggers_of, n)) in &calls {
            let before = calls_before.get(function).map_or(0, |b| b.1);
            if *n > before {
                triggers.push(FiredTrigger {
                    table: t.name.clone(),
                    triggers: triggers_of.clone(),
                    function: function.clone(),
                    calls: n - before,
                });
            }
        }
        calls_before = calls;
        // The check seeds every spec table itself and restores exactly what it seeded: a row
        // this table's triggers added to a spec table would read as a cell's own write.
        for (oi, other) in bound.tables.iter().enumerate() {
            let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "select count(*) from {}",
                other.qname
            )))
            .fetch_one(&mut *tx)
            .await
            .map_err(sql_err(format!("count the seeds of {}", other.spec.name)))?;
            let seeded = i64::try_from(rows[oi].len()).unwrap_or(i64::MAX);
            if count != seeded {
                return Err(invalid(
                    spec,
                    t,
                    "triggers",
                    format!(
                        "seeding `{}` left {count} rows in `{}` where the check put {seeded}: a \
                         trigger of `{}` adds rows to a spec table; set `tables.{}.triggers = \
                         false` (the check seeds `{}` itself)",
                        t.name, other.spec.name, t.name, t.name, other.spec.name
                    ),
                ));
            }
        }
    }
    tx.commit().await.map_err(sql_err("commit the seeds"))?;
    // Owners by column win over the seeding context (a row's owner column is its truth).
    for (ti, table) in bound.tables.iter().enumerate() {
        if let Some(owner) = &table.spec.owner {
            for r in &mut rows[ti] {
                if let Some(u) = user_of(field(&r.image, owner)) {
                    r.tag = users[u].key.clone();
                }
            }
        }
    }
    Ok(Seeds {
        rows,
        derived,
        triggers,
    })
}

/// Per trigger function of the database (`schema.name`): the triggers that call it (`table.trigger`)
/// and how often this transaction called it so far (`track_functions` is on).
async fn trigger_calls(
    tx: &mut PgConnection,
) -> Result<BTreeMap<String, (Vec<String>, i64)>, Error> {
    let rows: Vec<(String, Vec<String>, i64)> = sqlx::query_as(
        "select f.oid::regproc::text, \
                array_agg(c.relname::text || '.' || t.tgname::text order by c.relname, t.tgname), \
                coalesce(pg_stat_get_xact_function_calls(f.oid), 0) \
         from pg_trigger t join pg_class c on c.oid = t.tgrelid \
         join pg_proc f on f.oid = t.tgfoid \
         where not t.tgisinternal group by f.oid",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(sql_err("read the triggers' calls"))?;
    Ok(rows
        .into_iter()
        .map(|(function, triggers, calls)| (function, (triggers, calls)))
        .collect())
}

/// The spec's payload values a seed row lacks, each made its own where a unique key needs it.
fn fill_payload(t: &TableSpec, table: &Table, values: &mut Map<String, Value>, n: usize) {
    for (k, v) in &t.payload {
        values
            .entry(k.clone())
            .or_insert_with(|| own_value(v, n, table.unique_columns.contains(k)));
    }
}

/// [`insert_row`] inside a savepoint: a refusal (the database's message) leaves the seeding
/// transaction as it was.
async fn try_insert(
    tx: &mut PgConnection,
    table: &Table,
    values: &Map<String, Value>,
) -> Result<Result<(String, Value), String>, Error> {
    let step = |sql: &'static str| sqlx::query(sql);
    step("savepoint derived_seed")
        .execute(&mut *tx)
        .await
        .map_err(sql_err("seed a derived row"))?;
    match insert_row(tx, table, values).await {
        Ok(row) => {
            step("release savepoint derived_seed")
                .execute(&mut *tx)
                .await
                .map_err(sql_err("seed a derived row"))?;
            Ok(Ok(row))
        }
        Err(e) => {
            step("rollback to savepoint derived_seed")
                .execute(&mut *tx)
                .await
                .map_err(sql_err("seed a derived row"))?;
            Ok(Err(db_message(&e)))
        }
    }
}

/// Inserts one seed row as the superuser: its key (as text) and its image.
async fn insert_row(
    tx: &mut PgConnection,
    table: &Table,
    values: &Map<String, Value>,
) -> Result<(String, Value), sqlx::Error> {
    let cols: Vec<String> = values.keys().map(|c| quote_ident(c)).collect();
    let sql = format!(
        "insert into {q} as t ({c}) select {c} from jsonb_populate_record(null::{q}, $1) \
         returning {pk}, to_jsonb(t)",
        q = table.qname,
        c = cols.join(", "),
        pk = table.pk_expr("t"),
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Value::Object(values.clone()))
        .fetch_one(&mut *tx)
        .await
}

/// A payload value for the `n`-th seed row of a table: the spec's own, made unique per row
/// (a number appended to text) where a unique key covers the column; the first row keeps it.
fn own_value(v: &Value, n: usize, unique: bool) -> Value {
    match v {
        Value::String(s) if unique && n > 0 => Value::String(format!("{s}{n}")),
        Value::Number(x) if unique && n > 0 => x
            .as_i64()
            .and_then(|i| i.checked_add(i64::try_from(n).ok()?))
            .map_or_else(|| v.clone(), |i| json!(i)),
        _ => v.clone(),
    }
}

/// A seed row the table refused: which row, which constraint, and the spec key that fixes it.
fn refused(
    spec: &Spec,
    t: &TableSpec,
    n: usize,
    user: &Actor,
    values: &Map<String, Value>,
    e: &sqlx::Error,
) -> Error {
    let db = e.as_database_error();
    let code = db.and_then(|d| d.code()).unwrap_or_default();
    let constraint = db
        .and_then(|d| d.constraint())
        .map(|c| format!(" (constraint `{c}`)"))
        .unwrap_or_default();
    let (key, fix) = match &*code {
        // A trigger or function raised: it may not run outside production.
        c if c.starts_with("P0") || c == "39000" => (
            "triggers",
            format!(
                "set `tables.{}.triggers = false` if this trigger cannot run in a test",
                t.name
            ),
        ),
        "23503" => (
            "parent",
            format!(
                "name the referenced table as `tables.{}.parent` (or `members`)",
                t.name
            ),
        ),
        _ => (
            "payload",
            format!("give `tables.{}.payload` values this table accepts", t.name),
        ),
    };
    invalid(
        spec,
        t,
        key,
        format!(
            "the table refuses a seed row (row {} of the table, for {}) {}: {}{constraint}; {fix}",
            n + 1,
            user.key,
            Value::Object(values.clone()),
            db_message(e)
        ),
    )
}

/// The users who are members of a seeded row of table `ti`, through its members or parent.
fn members_of(
    bound: &BoundSpec,
    rows: &[Vec<SeedRow>],
    ti: usize,
    row: &SeedRow,
    users: &[&Actor],
) -> Vec<usize> {
    let t = &bound.tables[ti].spec;
    if let Some(m) = &t.members {
        let Some(mi) = bound.index(&m.table) else {
            return Vec::new();
        };
        return rows[mi]
            .iter()
            .filter(|mr| {
                m.on.iter()
                    .all(|(theirs, mine)| field(&mr.image, theirs) == field(&row.image, mine))
            })
            .filter_map(|mr| {
                users
                    .iter()
                    .position(|u| Some(u.id()) == Some(field(&mr.image, &m.user).as_str()))
            })
            .collect();
    }
    if let Some(p) = &t.parent
        && let Some(pi) = bound.index(&p.table)
        && let Some(prow) = rows[pi].iter().find(|pr| {
            p.on.iter()
                .all(|(mine, theirs)| field(&pr.image, theirs) == field(&row.image, mine))
        })
    {
        return members_of(bound, rows, pi, prow, users);
    }
    Vec::new()
}

/// Where the seeded rows are kept in the checked database, and the function that puts them
/// back in one round trip (the check runs on a database of its own, which it owns).
const RESTORE_SETUP: &str = "
create table if not exists insforge_rls.check_seeds (
  position int primary key, tbl regclass not null, cols text not null, images jsonb not null);
truncate insforge_rls.check_seeds;
create or replace function insforge_rls.check_restore(tables int[]) returns void
language plpgsql set session_replication_role = replica as $fn$
declare r record;
begin
  for r in select * from insforge_rls.check_seeds where position = any(tables) order by position desc loop
    execute format('delete from %s', r.tbl);
  end loop;
  for r in select * from insforge_rls.check_seeds where position = any(tables) order by position loop
    execute format('insert into %s (%s) overriding system value select %s
                    from jsonb_populate_recordset(null::%s, $1)', r.tbl, r.cols, r.cols, r.tbl)
      using r.images;
  end loop;
end $fn$;
revoke all on function insforge_rls.check_restore(int[]) from public;
";

/// Records the seeded rows for [`restore`].
pub(crate) async fn keep_seeds(
    bound: &BoundSpec,
    seeds: &Seeds,
    admin: &mut PgConnection,
) -> Result<(), Error> {
    sqlx::raw_sql(RESTORE_SETUP)
        .execute(&mut *admin)
        .await
        .map_err(sql_err("keep the seeds"))?;
    for (ti, table) in bound.tables.iter().enumerate() {
        let images: Vec<Value> = seeds.rows[ti].iter().map(|r| r.image.clone()).collect();
        sqlx::query(
            "insert into insforge_rls.check_seeds (position, tbl, cols, images) \
             values ($1, $2::regclass, $3, $4)",
        )
        .bind(i32::try_from(ti).unwrap_or(i32::MAX))
        .bind(&table.qname)
        .bind(table.column_list())
        .bind(Value::Array(images))
        .execute(&mut *admin)
        .await
        .map_err(sql_err("keep the seeds"))?;
    }
    Ok(())
}

/// Puts `tables` (positions) back to the seeded rows, exactly (same keys, same values).
pub(crate) async fn restore(admin: &mut PgConnection, tables: &[i32]) -> Result<(), Error> {
    sqlx::query("select insforge_rls.check_restore($1)")
        .bind(tables)
        .execute(&mut *admin)
        .await
        .map_err(sql_err("restore the seeds"))?;
    Ok(())
}

/// Every row of a table as a superuser sees it: primary key → image.
pub(crate) async fn images(
    table: &Table,
    admin: &mut PgConnection,
) -> Result<BTreeMap<String, Value>, Error> {
    let sql = format!(
        "select {}, to_jsonb(t) from {} t",
        table.pk_expr("t"),
        table.qname
    );
    let rows: Vec<(String, Value)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *admin)
        .await
        .map_err(sql_err(format!("read {}", table.spec.name)))?;
    Ok(rows.into_iter().collect())
}

/// Removes one row as the superuser (whose session runs with triggers off: no cascades; the
/// restore puts it back).
pub(crate) async fn remove(table: &Table, pk: &str, conn: &mut PgConnection) -> Result<(), Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "delete from {} t where {} = $1",
        table.qname,
        table.pk_expr("t")
    )))
    .bind(pk)
    .execute(&mut *conn)
    .await
    .map_err(sql_err("remove a row"))?;
    Ok(())
}

/// An insert like a seed row: its relation and payload columns, defaults for the rest.
pub(crate) fn candidate(table: &Table, row: &SeedRow) -> Value {
    Value::Object(
        table
            .candidate_columns
            .iter()
            .map(|c| (c.clone(), field(&row.image, c).clone()))
            .collect(),
    )
}

/// Refuses a database whose spec tables hold rows the run did not put there.
pub(crate) async fn refuse_existing_rows(
    bound: &BoundSpec,
    admin: &mut PgConnection,
) -> Result<(), Error> {
    for table in &bound.tables {
        let some: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select exists (select from {})",
            table.qname
        )))
        .fetch_one(&mut *admin)
        .await
        .map_err(sql_err(format!("read {}", table.spec.name)))?;
        if some {
            return Err(Error::NotEmpty {
                table: table.spec.name.clone(),
            });
        }
    }
    Ok(())
}

/// Removes every row of the spec tables (children first), as the superuser with triggers off.
pub(crate) async fn clear(bound: &BoundSpec, admin: &mut PgConnection) -> Result<(), Error> {
    for table in bound.tables.iter().rev() {
        sqlx::query(sqlx::AssertSqlSafe(format!("delete from {}", table.qname)))
            .execute(&mut *admin)
            .await
            .map_err(sql_err(format!("remove the seeds of {}", table.spec.name)))?;
    }
    Ok(())
}
