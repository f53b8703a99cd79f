//! What the policies reveal for seeding: the columns each spec table's policies read (in their
//! own expressions, or in the functions they call), the constants they compare them with, and
//! the values worth a derived seed row of their own.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sqlx::PgConnection;

use crate::engine::model::{Error, sql_err};
use crate::spec::Spec;

/// Per spec table, the columns its policies read — in their own expressions, or in the body of a
/// function a policy of any spec table calls that names the table and the column — with the
/// constants the expressions compare each with. The seeding stage derives rows from them.
#[allow(clippy::type_complexity)]
pub(super) async fn policy_reads(
    spec: &Spec,
    admin: &mut PgConnection,
) -> Result<
    (
        BTreeMap<String, BTreeMap<String, Vec<Value>>>,
        BTreeMap<String, Vec<Vec<(String, Value)>>>,
    ),
    Error,
> {
    let names: Vec<&str> = spec.tables.iter().map(|t| t.name.as_str()).collect();
    let policies: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "select c.relname::text, pg_get_expr(p.polqual, p.polrelid), \
                pg_get_expr(p.polwithcheck, p.polrelid) \
         from pg_policy p join pg_class c on c.oid = p.polrelid \
         join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = $1 and c.relname = any($2)",
    )
    .bind(&spec.schema)
    .bind(&names)
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("read the policies"))?;
    let mut out: BTreeMap<String, BTreeMap<String, Vec<Value>>> = BTreeMap::new();
    let mut combos: BTreeMap<String, Vec<Vec<(String, Value)>>> = BTreeMap::new();
    let mut functions: BTreeSet<Vec<String>> = BTreeSet::new();
    for (table, qual, check) in &policies {
        for text in [qual, check].into_iter().flatten() {
            let Ok(expr) = crate::policy_expr::Expr::parse(text) else {
                continue;
            };
            combos
                .entry(table.clone())
                .or_default()
                .extend(expr.assignments());
            let refs = expr.references();
            let cols = out.entry(table.clone()).or_default();
            for c in refs.columns {
                cols.entry(c).or_default();
            }
            for (c, v) in refs.constants {
                let list = cols.entry(c).or_default();
                if !list.contains(&v) {
                    list.push(v);
                }
            }
            functions.extend(refs.functions);
        }
    }
    // The bodies of the functions the policies call: a table and a column both named there.
    for f in &functions {
        let (schema, name) = match f.as_slice() {
            [name] => (None, name),
            [.., schema, name] => (Some(schema), name),
            [] => continue,
        };
        let bodies: Vec<String> = sqlx::query_scalar(
            "select p.prosrc from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
             where p.proname = $1 and ($2::text is null or n.nspname = $2) \
               and p.prolang in (select oid from pg_language where lanname in ('sql', 'plpgsql'))",
        )
        .bind(name)
        .bind(schema)
        .fetch_all(&mut *admin)
        .await
        .map_err(sql_err("read the policies' functions"))?;
        for body in bodies {
            let words: BTreeSet<String> = body
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect();
            for t in names.iter().filter(|t| words.contains(&t.to_lowercase())) {
                let columns: Vec<String> = sqlx::query_scalar(
                    "select a.attname::text from pg_attribute a join pg_class c on c.oid = a.attrelid \
                     join pg_namespace n on n.oid = c.relnamespace \
                     where n.nspname = $1 and c.relname = $2 and a.attnum > 0 and not a.attisdropped",
                )
                .bind(&spec.schema)
                .bind(t)
                .fetch_all(&mut *admin)
                .await
                .map_err(sql_err("read the catalog"))?;
                let cols = out.entry((*t).to_owned()).or_default();
                for c in columns
                    .into_iter()
                    .filter(|c| words.contains(&c.to_lowercase()))
                {
                    cols.entry(c).or_default();
                }
            }
        }
    }
    Ok((out, combos))
}

/// The values worth a seed row of their own, per column the policies read (see
/// [`policy_reads`]): both booleans, every label of an enum, a timestamp far in the past and
/// one in the future (and `now` — the seeding stage adds it only where nothing sets the
/// column), NULL where the column allows it, and the constants the policies compare it with.
/// Relation columns (the seeding stage sets them) and the row's key are not varied.
pub(super) async fn variants(
    admin: &mut PgConnection,
    schema: &str,
    table: &str,
    read: &BTreeMap<String, Vec<Value>>,
    relation_cols: &[String],
    key: &[String],
) -> Result<Vec<(String, Vec<Value>)>, Error> {
    let columns: Vec<(String, String, bool, Vec<String>, String, bool)> = sqlx::query_as(
        "select a.attname::text, ty.typcategory::text, ty.typtype = 'e', \
                coalesce((select array_agg(e.enumlabel::text order by e.enumsortorder) \
                          from pg_enum e where e.enumtypid = ty.oid), '{}'), \
                ty.typname::text, a.attnotnull or a.attgenerated <> '' or a.attidentity <> '' \
         from pg_attribute a join pg_class c on c.oid = a.attrelid \
         join pg_namespace n on n.oid = c.relnamespace join pg_type ty on ty.oid = a.atttypid \
         where n.nspname = $1 and c.relname = $2 and a.attnum > 0 and not a.attisdropped \
           and a.attgenerated = '' order by a.attnum",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("read the catalog"))?;
    let mut out = Vec::new();
    for (name, category, is_enum, labels, typname, not_null) in columns {
        let Some(constants) = read.get(&name) else {
            continue;
        };
        if relation_cols.contains(&name) || key.contains(&name) {
            continue;
        }
        let mut values: Vec<Value> = Vec::new();
        match (category.as_str(), is_enum) {
            ("B", _) => values.extend([Value::Bool(true), Value::Bool(false)]),
            (_, true) => values.extend(labels.into_iter().map(Value::String)),
            ("D", _) if matches!(typname.as_str(), "timestamptz" | "timestamp" | "date") => {
                values.extend(["now", "epoch", "infinity"].map(|v| Value::String(v.into())));
            }
            _ => {}
        }
        for c in constants {
            if !values.contains(c) {
                values.push(c.clone());
            }
        }
        // And one value none of the constants is: `sharing <> 'private'` grants only a row
        // whose value differs from the one the column defaults to. (A CHECK that refuses it
        // leaves the derived row out, reported, as for any derived value.)
        if !is_enum && let Some(other) = other_than(&category, constants) {
            values.push(other);
        }
        if !not_null {
            values.push(Value::Null);
        }
        if !values.is_empty() {
            out.push((name, values));
        }
    }
    Ok(out)
}

/// A value of a string or number column (`typcategory` `S`/`N`) that none of `constants` is.
fn other_than(category: &str, constants: &[Value]) -> Option<Value> {
    match category {
        "S" => {
            let base = constants.iter().find_map(Value::as_str)?;
            (0..)
                .map(|n| Value::String(format!("{base}-other{n}")))
                .find(|v| !constants.contains(v))
        }
        "N" => {
            let base = constants.iter().find_map(Value::as_i64)?;
            (1..)
                .map(|n| serde_json::json!(base.saturating_add(n)))
                .find(|v| !constants.contains(v))
        }
        _ => None,
    }
}
