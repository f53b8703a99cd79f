//! The function cells: every function of the spec's schema that `anon` or `authenticated` may
//! execute (and every one `[functions]` names) called once per actor — in SQL as the caller in
//! its identity transaction, over HTTP at `/api/database/rpc/<fn>` — and judged by its effect
//! on every spec table: the seeded rows it **returns** must be rows the caller may select, the
//! rows it **writes** rows the caller may insert, update or delete. A `SECURITY DEFINER`
//! function that hands any caller every project is a leak here, whatever the table matrices say.
//!
//! Arguments come from the spec (`args`, `from`), else from the seeded rows: a column of the
//! argument's type named like it, the table the name speaks of (`project` → `projects`' key), or
//! the only seeded column of that type — a row the caller may *not* select when there is one
//! (a hole shows on another user's row). A function it cannot call (a trigger function, the
//! caller-id function, an argument it cannot fill, a `record` without columns) is listed as
//! not called with the reason, never skipped silently.
//!
//! Returned rows are matched to seeded rows by their key: an object carrying every key column
//! of a spec table with a seeded row's values (only that table when the function returns its
//! row type), a bare text value equal to a seeded single-column key (an actor's id is never a
//! row). Integer keys are matched only by column name.

use std::collections::{BTreeMap, BTreeSet};

use harness::target::quote_ident;
use serde_json::{Map, Value};
use sqlx::PgConnection;

use super::expect::may_insert;
use super::judge::moved_columns;
use super::model::{Actor, Allowed, BoundSpec, Error, Seeds, Table, Verdict, field, sql_err};
use super::observe::{Observer, http};
use super::seed::{images, remove, restore};
use crate::policy_expr;
use crate::spec::{Command, FunctionSpec};

/// What a function's result looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Void,
    Scalar,
    /// A composite, a set, or a table.
    Rows,
}

/// Where an argument's value comes from.
#[derive(Debug, Clone)]
enum Source {
    Literal(Value),
    /// A column of a spec table's seeded rows (table position, column).
    Column(usize, String),
}

/// One function the run calls.
#[derive(Debug, Clone)]
struct Callable {
    /// `name(identity arguments)`: the row label.
    label: String,
    name: String,
    qname: String,
    /// Input parameters given: (name, type as `regtype` prints it, source).
    args: Vec<(String, String, Source)>,
    volatile: bool,
    shape: Shape,
    /// The spec table whose row type it returns.
    row_table: Option<usize>,
    spec: Option<FunctionSpec>,
}

/// The function cells of a run: one row per function, one cell per actor, and the functions
/// not called with the reason.
#[derive(Debug, Clone, Default)]
pub struct FunctionCalls {
    pub actors: Vec<String>,
    /// Row labels: `name(arguments)`.
    pub functions: Vec<String>,
    /// `cells[function][actor]`: (what the call did, the verdict).
    pub cells: Vec<Vec<(String, Verdict)>>,
    /// Functions callers may execute that were not called: `name(arguments): why`.
    pub not_called: Vec<String>,
    /// Functions that are no surface of their own, listed with why: trigger functions (Postgres
    /// refuses to call them outside a trigger), the caller-id function (it returns the caller's
    /// own id), an extension's functions.
    pub not_surfaces: Vec<String>,
}

/// One catalog row of `pg_proc`, as listed below.
type ProcRow = (
    String,
    String,
    String,
    bool,
    String,
    String,
    String,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    i32,
    bool,
    Option<String>,
);

const LIST: &str = "\
select p.proname::text, pg_get_function_identity_arguments(p.oid), p.provolatile::text, \
       p.proretset, p.prorettype::regtype::text, t.typtype::text, \
       coalesce(case when cn.nspname = $1 then c.relname::text end, ''), \
       coalesce(p.proargmodes::text[], array_fill('i'::text, array[p.pronargs::int])), \
       coalesce(p.proargnames, '{}'::text[]), \
       array(select u.x::regtype::text from \
             unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) with ordinality u(x, n) \
             order by u.n), \
       p.pronargdefaults::int4, \
       coalesce((select bool_or(has_function_privilege(r.oid, p.oid, 'EXECUTE')) \
                 from pg_roles r where r.rolname in ('anon', 'authenticated')), false), \
       (select e.extname::text from pg_depend d join pg_extension e on e.oid = d.refobjid \
        where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e' limit 1) \
from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
join pg_type t on t.oid = p.prorettype \
left join pg_class c on c.oid = t.typrelid left join pg_namespace cn on cn.oid = c.relnamespace \
where n.nspname = $1 and p.prokind = 'f' \
order by 1, 2";

/// Lists the functions to call (and the ones it will not call, with why).
async fn callables(
    bound: &BoundSpec,
    admin: &mut PgConnection,
    not_our_database: bool,
) -> Result<(Vec<Callable>, Vec<String>, Vec<String>), Error> {
    let schema = &bound.spec.schema;
    let rows: Vec<ProcRow> = sqlx::query_as(LIST)
        .bind(schema)
        .fetch_all(&mut *admin)
        .await
        .map_err(sql_err("list the schema's functions"))?;
    let names: Vec<&str> = bound.tables.iter().map(|t| t.spec.name.as_str()).collect();
    let types: Vec<(String, String, String)> = sqlx::query_as(
        "select c.relname::text, a.attname::text, a.atttypid::regtype::text \
         from pg_attribute a join pg_class c on c.oid = a.attrelid \
         join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = $1 and c.relname = any($2) and a.attnum > 0 and not a.attisdropped \
         order by c.relname, a.attnum",
    )
    .bind(schema)
    .bind(&names)
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("read the spec tables' column types"))?;
    // Every enum type's first label, by the type's name as `regtype` prints it.
    let enums: BTreeMap<String, String> = sqlx::query_as::<_, (String, String)>(
        "select e.enumtypid::regtype::text, \
                (array_agg(e.enumlabel::text order by e.enumsortorder))[1] \
         from pg_enum e group by e.enumtypid",
    )
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("read the enum types"))?
    .into_iter()
    .collect();
    // Spec table columns by type, in seeding order.
    let mut columns: Vec<(usize, String, String)> = Vec::new();
    for (ti, t) in bound.tables.iter().enumerate() {
        for (rel, col, ty) in &types {
            if *rel == t.spec.name {
                columns.push((ti, col.clone(), ty.clone()));
            }
        }
    }
    let mut out = Vec::new();
    let mut not_called = Vec::new();
    let mut not_surfaces = Vec::new();
    let mut extensions: BTreeMap<String, usize> = BTreeMap::new();
    let mut declared_seen = BTreeSet::new();
    for row in rows {
        let (name, identity, volatility, retset, rettype, typtype, reltable) =
            (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
        let (modes, argnames, argtypes, ndefaults, executable, extension) =
            (row.7, row.8, row.9, row.10, row.11, row.12);
        let declared = bound.spec.functions.iter().find(|f| f.name == name);
        if declared.is_some() {
            declared_seen.insert(name.clone());
        }
        if !executable && declared.is_none() {
            continue;
        }
        let label = format!("{name}({identity})");
        if let Some(ext) = extension {
            *extensions.entry(ext).or_default() += 1;
            continue;
        }
        let mut skip = |why: String| not_called.push(format!("{label}: {why}"));
        if let Some(why) = declared.and_then(|f| f.skip.clone()) {
            skip(format!("skipped by the spec ({why})"));
            continue;
        }
        if rettype == "trigger" || rettype == "event_trigger" {
            not_surfaces.push(format!("{label}: a trigger function"));
            continue;
        }
        if not_our_database && volatility == "v" && declared.is_none() {
            skip(
                "volatile and not in [functions]: the database is not the run's own (a \
                 deployment), where a call may write outside the spec tables — declare it to \
                 call it"
                    .into(),
            );
            continue;
        }
        let inputs: Vec<(String, String)> = modes
            .iter()
            .enumerate()
            .filter(|(_, m)| matches!(m.as_str(), "i" | "b" | "v"))
            .map(|(i, _)| {
                (
                    argnames.get(i).cloned().unwrap_or_default(),
                    argtypes.get(i).cloned().unwrap_or_default(),
                )
            })
            .collect();
        let has_out = modes.iter().any(|m| matches!(m.as_str(), "o" | "b" | "t"));
        if inputs.is_empty() && is_caller_id(schema, &name) {
            not_surfaces.push(format!(
                "{label}: the caller-id function (its result is the caller's own id)"
            ));
            continue;
        }
        if rettype == "record" && !has_out {
            skip("returns `record` without column names".into());
            continue;
        }
        if inputs.iter().any(|(n, _)| n.is_empty()) {
            skip("an unnamed argument (RPC passes arguments by name)".into());
            continue;
        }
        let required = inputs
            .len()
            .saturating_sub(usize::try_from(ndefaults).unwrap_or(0));
        let mut args = Vec::new();
        let mut unfilled = None;
        for (i, (arg, ty)) in inputs.iter().enumerate() {
            match fill(bound, declared, &columns, &enums, arg, ty) {
                Ok(source) => args.push((arg.clone(), ty.clone(), source)),
                Err(_) if i >= required => {}
                Err(why) => {
                    unfilled = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = unfilled {
            skip(why);
            continue;
        }
        let shape = if rettype == "void" {
            Shape::Void
        } else if retset || typtype == "c" || rettype == "record" {
            Shape::Rows
        } else {
            Shape::Scalar
        };
        out.push(Callable {
            label,
            qname: format!("{}.{}", quote_ident(schema), quote_ident(&name)),
            name,
            args,
            volatile: volatility == "v",
            shape,
            row_table: (!reltable.is_empty())
                .then(|| bound.index(&reltable))
                .flatten(),
            spec: declared.cloned(),
        });
    }
    for (ext, n) in extensions {
        not_surfaces.push(format!(
            "{n} function(s) of the extension {ext}: not the app's own"
        ));
    }
    if let Some(f) = bound
        .spec
        .functions
        .iter()
        .find(|f| !declared_seen.contains(&f.name))
    {
        return Err(Error::Spec(crate::spec::SpecError::Invalid {
            path: bound.spec.path.clone(),
            line: f.line,
            key: format!("functions.{}", f.name),
            message: format!("no function of schema `{}` is named so", bound.spec.schema),
        }));
    }
    Ok((out, not_called, not_surfaces))
}

/// Whether `schema.name()` is the caller's id as the policy parser reads one.
fn is_caller_id(schema: &str, name: &str) -> bool {
    policy_expr::Expr::parse(&format!("{}.{}()", quote_ident(schema), quote_ident(name)))
        .is_ok_and(|e| policy_expr::is_caller_id(&e.0))
}

/// Where argument `arg` of type `ty` comes from, or why it cannot be filled.
fn fill(
    bound: &BoundSpec,
    declared: Option<&FunctionSpec>,
    columns: &[(usize, String, String)],
    enums: &BTreeMap<String, String>,
    arg: &str,
    ty: &str,
) -> Result<Source, String> {
    if let Some(f) = declared {
        if let Some(v) = f.args.get(arg) {
            return Ok(Source::Literal(v.clone()));
        }
        if let Some((_, (table, col))) = f.from.iter().find(|(a, _)| a == arg) {
            let ti = bound
                .index(table)
                .ok_or_else(|| format!("`from` names `{table}`, which is not bound"))?;
            if !columns.iter().any(|(t, c, _)| *t == ti && c == col) {
                return Err(format!("`from` names `{table}.{col}`, which is no column"));
            }
            return Ok(Source::Column(ti, col.clone()));
        }
    }
    let typed: Vec<&(usize, String, String)> = columns.iter().filter(|(_, _, t)| t == ty).collect();
    if let Some((ti, col, _)) = typed.iter().find(|(_, c, _)| c == arg) {
        return Ok(Source::Column(*ti, col.clone()));
    }
    let stem = ["p_", "in_", "arg_", "_"]
        .iter()
        .find_map(|p| arg.strip_prefix(p))
        .unwrap_or(arg);
    let stem = stem.strip_suffix("_id").unwrap_or(stem);
    for (ti, table) in bound.tables.iter().enumerate() {
        let name = table.spec.name.as_str();
        let speaks_of = [stem.to_owned(), format!("{stem}s"), format!("{stem}es")]
            .iter()
            .any(|s| s == name);
        if let ([key], true) = (table.pk.as_slice(), speaks_of)
            && typed.iter().any(|(t, c, _)| *t == ti && c == key)
        {
            return Ok(Source::Column(ti, key.clone()));
        }
    }
    if let [(ti, col, _)] = typed.as_slice() {
        return Ok(Source::Column(*ti, col.clone()));
    }
    // An enum no seeded column holds: its first label.
    if let (true, Some(label)) = (typed.is_empty(), enums.get(ty)) {
        return Ok(Source::Literal(Value::String(label.clone())));
    }
    Err(format!(
        "cannot fill `{arg} {ty}` from the seeded rows ({} seeded columns of that type; \
         give it in [functions.<name>] `args` or `from`)",
        typed.len()
    ))
}

/// The arguments of one call as `actor` (by position): a seeded row the actor may not select
/// when the table has one, else its first row.
fn arguments(
    c: &Callable,
    seeds: &Seeds,
    allowed: &[(usize, Vec<Allowed>)],
    ai: usize,
) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (arg, _, source) in &c.args {
        let value = match source {
            Source::Literal(v) => v.clone(),
            Source::Column(ti, col) => {
                let rows = &seeds.rows[*ti];
                let visible = allowed
                    .iter()
                    .find(|(t, _)| t == ti)
                    .and_then(|(_, all)| all.get(ai))
                    .map(|a| &a.select);
                let row = rows
                    .iter()
                    .find(|r| visible.is_some_and(|v| !v.contains(&r.pk)))
                    .or_else(|| rows.first())?;
                field(&row.image, col).clone()
            }
        };
        out.insert(arg.clone(), value);
    }
    Some(out)
}

/// The SQL of a call: the arguments read from one JSON object (`$1`) by name and type, as
/// PostgREST reads an RPC body (`json_to_record`), the result as JSON values.
fn statement(c: &Callable) -> String {
    let defs: Vec<String> = c
        .args
        .iter()
        .map(|(a, ty, _)| format!("{} {ty}", quote_ident(a)))
        .collect();
    let named: Vec<String> = c
        .args
        .iter()
        .map(|(a, _, _)| format!("{q} => a.{q}", q = quote_ident(a)))
        .collect();
    let call = format!("{}({})", c.qname, named.join(", "));
    let source = if c.args.is_empty() {
        String::new()
    } else {
        format!("jsonb_to_record($1) as a({})", defs.join(", "))
    };
    let from = |more: &str| match (source.is_empty(), more.is_empty()) {
        (true, true) => String::new(),
        (true, false) => format!(" from {more}"),
        (false, true) => format!(" from {source}"),
        (false, false) => format!(" from {source}, {more}"),
    };
    match c.shape {
        Shape::Void => format!("select null::jsonb from (select {call}{}) v", from("")),
        Shape::Scalar => format!("select to_jsonb({call}){}", from("")),
        Shape::Rows => format!("select to_jsonb(r){}", from(&format!("lateral {call} r"))),
    }
}

/// A row a call inserted, judged as the tables stood right after the call.
#[derive(Debug)]
struct Inserted {
    /// The spec's insert rule lets the caller insert it (judged with the row itself removed, as
    /// the expect stage judges an insert).
    by_rule: bool,
    /// Other actors whose select rule shows them the row.
    seen_by_others: Vec<String>,
}

/// What one call did, before judging.
#[derive(Debug, Default)]
struct Effect {
    refused: Option<String>,
    /// Per spec table (by position), the seeded keys among the returned values.
    returned: BTreeMap<usize, BTreeSet<String>>,
    /// Per table: inserted rows, (key, old, new) updated, deleted keys.
    inserted: BTreeMap<usize, Vec<Inserted>>,
    updated: BTreeMap<usize, Vec<(String, Value, Value)>>,
    deleted: BTreeMap<usize, Vec<String>>,
}

async fn call(
    c: &Callable,
    args: &Map<String, Value>,
    ai: usize,
    observer: &mut Observer,
) -> Result<Result<Vec<Value>, String>, Error> {
    match observer {
        Observer::Sql { conn, identities } => {
            let sql = statement(c);
            let mut tx = harness::begin_as(conn, &identities[ai]).await?;
            let mut query = sqlx::query_scalar::<_, Option<Value>>(sqlx::AssertSqlSafe(sql));
            if !c.args.is_empty() {
                query = query.bind(Value::Object(args.clone()));
            }
            let result = query.fetch_all(&mut *tx).await;
            Ok(match result {
                Ok(values) => {
                    tx.commit().await.map_err(sql_err("commit a call"))?;
                    Ok(if c.shape == Shape::Void {
                        Vec::new()
                    } else {
                        values.into_iter().flatten().collect()
                    })
                }
                Err(e) => {
                    tx.rollback().await.ok();
                    Err(e
                        .as_database_error()
                        .and_then(|d| d.code())
                        .map_or_else(|| "error".to_owned(), |c| c.into_owned()))
                }
            })
        }
        Observer::Http {
            api,
            authorizations,
        } => {
            let reply = api
                .rpc(&c.name, &authorizations[ai], &Value::Object(args.clone()))
                .await?;
            if !reply.status.is_success() {
                return Ok(Err(http::refusal_code(&reply)));
            }
            Ok(Ok(match reply.body {
                Value::Null => Vec::new(),
                Value::Array(items) if c.shape != Shape::Scalar => items,
                other => vec![other],
            }))
        }
    }
}

/// The seeded rows among a call's returned values (see the module's doc).
fn returned(
    bound: &BoundSpec,
    seeds: &Seeds,
    actor_ids: &BTreeSet<String>,
    c: &Callable,
    values: &[Value],
) -> BTreeMap<usize, BTreeSet<String>> {
    let mut out: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    // Values to match: the returned ones and, inside them, every array element and every
    // object or array an object holds (a `json` result nests rows: `{"projects": [{…}]}`);
    // a text value only where it stands alone or in an array, never as an object's field
    // (a task's `project_id` does not return the project).
    let mut stack: Vec<(&Value, bool)> = values.iter().map(|v| (v, true)).collect();
    while let Some((value, alone)) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, true))),
            Value::Object(obj) => stack.extend(
                obj.values()
                    .filter(|v| v.is_array() || v.is_object())
                    .map(|v| (v, false)),
            ),
            _ => {}
        }
        for (ti, table) in bound.tables.iter().enumerate() {
            if c.row_table.is_some_and(|rt| rt != ti) {
                continue;
            }
            for row in &seeds.rows[ti] {
                let hit = match value {
                    Value::Object(obj) => table
                        .pk
                        .iter()
                        .all(|k| obj.get(k).is_some_and(|v| v == field(&row.image, k))),
                    Value::String(s) if alone && !actor_ids.contains(s) => {
                        matches!(table.pk.as_slice(), [k] if field(&row.image, k) == value)
                    }
                    _ => false,
                };
                if hit {
                    out.entry(ti).or_default().insert(row.pk.clone());
                }
            }
        }
    }
    out
}

/// An inserted row (key `pk`, `image`), as the tables stand after the call: whether the
/// caller's insert rule allows it with the row itself removed, and which other actors see it.
async fn judge_insert(
    table: &Table,
    pk: &str,
    image: &Value,
    (actors, ai): (&[Actor], usize),
    admin: &mut PgConnection,
) -> Result<Inserted, Error> {
    let actor = &actors[ai];
    let others: Vec<&Actor> = actors
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != ai)
        .map(|(_, a)| a)
        .collect();
    let seen_sql = format!(
        "select a.key from unnest($1::text[], $2::text[], $3::text[], $5::text[]) \
         a(key, id, role, email) cross join {q} t where {pk} = $4 and coalesce(({sel}), false)",
        q = table.qname,
        pk = table.pk_expr("t"),
        sel = table.preds[&Command::Select].render("a.id", "a.role", "a.email"),
    );
    let seen_by_others: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(seen_sql))
        .bind(others.iter().map(|a| a.key.clone()).collect::<Vec<_>>())
        .bind(
            others
                .iter()
                .map(|a| a.id().map(str::to_owned))
                .collect::<Vec<_>>(),
        )
        .bind(others.iter().map(|a| a.role()).collect::<Vec<_>>())
        .bind(pk)
        .bind(others.iter().map(|a| a.email()).collect::<Vec<_>>())
        .fetch_all(&mut *admin)
        .await
        .map_err(sql_err("judge a call's insert"))?;
    let mut tx = sqlx::Connection::begin(&mut *admin)
        .await
        .map_err(sql_err("judge a call's insert"))?;
    remove(table, pk, &mut tx).await?;
    let by_rule = may_insert(table, actor, image, &mut tx).await?;
    tx.rollback()
        .await
        .map_err(sql_err("judge a call's insert"))?;
    Ok(Inserted {
        by_rule,
        seen_by_others,
    })
}

/// Runs the function cells: `allowed` holds every table's allowed rows per actor (by position
/// in `actors`), the tables are at their seeds and are left so. `not_our_database` (`verify`
/// against a deployment): volatile functions the spec does not name are not called.
pub(crate) async fn run(
    bound: &BoundSpec,
    seeds: &Seeds,
    actors: &[Actor],
    allowed: &[(usize, Vec<Allowed>)],
    observer: &mut Observer,
    admin: &mut PgConnection,
    not_our_database: bool,
) -> Result<Option<FunctionCalls>, Error> {
    let started = std::time::Instant::now();
    let (list, not_called, not_surfaces) = callables(bound, admin, not_our_database).await?;
    if list.is_empty() && not_called.is_empty() && not_surfaces.is_empty() {
        return Ok(None);
    }
    let actor_ids: BTreeSet<String> = actors
        .iter()
        .filter_map(|a| a.id().map(str::to_owned))
        .collect();
    let mut report = FunctionCalls {
        actors: actors.iter().map(|a| a.key.clone()).collect(),
        not_called,
        not_surfaces,
        ..FunctionCalls::default()
    };
    for c in &list {
        let mut row = Vec::new();
        for (ai, actor) in actors.iter().enumerate() {
            let Some(args) = arguments(c, seeds, allowed, ai) else {
                row.push((
                    "n/a (no seeded row to take arguments from)".into(),
                    Verdict::Ok,
                ));
                continue;
            };
            let mut effect = Effect::default();
            match call(c, &args, ai, observer).await? {
                Ok(values) => effect.returned = returned(bound, seeds, &actor_ids, c, &values),
                Err(code) => effect.refused = Some(code),
            }
            if c.volatile && effect.refused.is_none() {
                writes(bound, seeds, (actors, ai), &mut effect, admin).await?;
            }
            let verdict = judge(bound, seeds, allowed, c, actor, ai, &effect)?;
            row.push((describe(bound, seeds, &effect), verdict));
        }
        report.functions.push(c.label.clone());
        report.cells.push(row);
    }
    tracing::debug!(took = ?started.elapsed(), functions = list.len(), "function cells done");
    Ok(Some(report))
}

/// What a volatile call changed in the spec tables (read as the superuser), restoring them.
async fn writes(
    bound: &BoundSpec,
    seeds: &Seeds,
    (actors, ai): (&[Actor], usize),
    effect: &mut Effect,
    admin: &mut PgConnection,
) -> Result<(), Error> {
    let mut touched: BTreeSet<i32> = BTreeSet::new();
    for (ti, table) in bound.tables.iter().enumerate() {
        let after = images(table, admin).await?;
        let before: BTreeMap<&String, &Value> =
            seeds.rows[ti].iter().map(|r| (&r.pk, &r.image)).collect();
        let mut changed = false;
        for (k, v) in &after {
            match before.get(k) {
                None => {
                    let judged = judge_insert(table, k, v, (actors, ai), admin).await?;
                    effect.inserted.entry(ti).or_default().push(judged);
                    changed = true;
                }
                Some(old) if *old != v => {
                    effect.updated.entry(ti).or_default().push((
                        k.clone(),
                        (*old).clone(),
                        v.clone(),
                    ));
                    changed = true;
                }
                Some(_) => {}
            }
        }
        for k in before.keys() {
            if !after.contains_key(*k) {
                effect.deleted.entry(ti).or_default().push((*k).clone());
                changed = true;
            }
        }
        if changed {
            touched.extend(bound.touched[ti].iter().copied());
        }
    }
    if !touched.is_empty() {
        restore(admin, &touched.into_iter().collect::<Vec<_>>()).await?;
    }
    Ok(())
}

fn judge(
    bound: &BoundSpec,
    seeds: &Seeds,
    allowed: &[(usize, Vec<Allowed>)],
    c: &Callable,
    actor: &Actor,
    ai: usize,
    e: &Effect,
) -> Result<Verdict, Error> {
    let who = &actor.key;
    let callers = c.spec.as_ref().and_then(|f| f.call.as_ref());
    let may_call = callers.map(|cl| cl.allows(&actor.key, actor.role()));
    if let Some(code) = &e.refused {
        return Ok(if may_call == Some(true) {
            Verdict::LostAccess(format!(
                "{who} gets an error ({code}) calling {} where the spec lets them",
                c.name
            ))
        } else {
            Verdict::Ok
        });
    }
    if may_call == Some(false) {
        return Ok(Verdict::Leak(format!(
            "{who} calls {}, which the spec does not let them",
            c.name
        )));
    }
    let rules = |ti: usize| {
        allowed
            .iter()
            .find(|(t, _)| *t == ti)
            .and_then(|(_, all)| all.get(ai))
    };
    let name = |ti: usize| bound.tables[ti].spec.name.as_str();
    // Whose rows (tags, sorted) among `keys` the rules do not grant.
    let owners = |ti: usize,
                  keys: &mut dyn Iterator<Item = &String>,
                  ok: &dyn Fn(&Allowed, &String) -> bool| {
        let tags: BTreeSet<String> = keys
            .filter(|pk| !rules(ti).is_some_and(|a| ok(a, pk)))
            .map(|pk| seeds.tag(ti, pk))
            .collect();
        (!tags.is_empty()).then(|| tags.into_iter().collect::<Vec<_>>().join(", "))
    };
    for (ti, keys) in &e.returned {
        if let Some(of) = owners(*ti, &mut keys.iter(), &|a, pk| a.select.contains(pk)) {
            return Ok(Verdict::Leak(format!(
                "{} returns {who} rows of {of} in {} the spec does not show them",
                c.name,
                name(*ti)
            )));
        }
    }
    for (ti, rows) in &e.updated {
        let mut keys = rows.iter().map(|(pk, _, _)| pk);
        if let Some(of) = owners(*ti, &mut keys, &|a, pk| a.update.contains(pk)) {
            return Ok(Verdict::Leak(format!(
                "{} updates for {who} rows of {of} in {} the spec forbids them",
                c.name,
                name(*ti)
            )));
        }
        for (pk, old, new) in rows {
            let moved = moved_columns(&bound.tables[*ti], old, new);
            if !moved.is_empty() {
                return Ok(Verdict::Leak(format!(
                    "{} re-assigns {} of a row of {} in {} for {who}",
                    c.name,
                    moved.join(", "),
                    seeds.tag(*ti, pk),
                    name(*ti)
                )));
            }
        }
    }
    for (ti, keys) in &e.deleted {
        if let Some(of) = owners(*ti, &mut keys.iter(), &|a, pk| a.delete.contains(pk)) {
            return Ok(Verdict::Leak(format!(
                "{} deletes for {who} rows of {of} in {} the spec forbids them",
                c.name,
                name(*ti)
            )));
        }
    }
    let creates = |ti: usize| {
        c.spec
            .as_ref()
            .is_some_and(|f| f.creates.iter().any(|t| t == name(ti)))
    };
    for (ti, rows) in &e.inserted {
        for row in rows.iter().filter(|r| !r.by_rule) {
            if !creates(*ti) {
                return Ok(Verdict::Leak(format!(
                    "{} inserts for {who} a row into {} the spec forbids them",
                    c.name,
                    name(*ti)
                )));
            }
            if !row.seen_by_others.is_empty() {
                return Ok(Verdict::Leak(format!(
                    "{} inserts for {who} a row into {} that {} can see (`creates` allows \
                     only the caller's own rows)",
                    c.name,
                    name(*ti),
                    row.seen_by_others.join(", ")
                )));
            }
        }
    }
    Ok(Verdict::Ok)
}

/// What a call did, in words: `returns projects ada:1 ben:2`, `deletes tasks ben:1`,
/// `refused 42501`, `0 rows`.
fn describe(bound: &BoundSpec, seeds: &Seeds, e: &Effect) -> String {
    if let Some(code) = &e.refused {
        return format!("refused {code}");
    }
    let counts = |ti: usize, keys: &mut dyn Iterator<Item = &String>| {
        let mut by: BTreeMap<String, usize> = BTreeMap::new();
        for k in keys {
            *by.entry(seeds.tag(ti, k)).or_default() += 1;
        }
        let tags: Vec<String> = by.iter().map(|(t, n)| format!("{t}:{n}")).collect();
        format!("{} {}", bound.tables[ti].spec.name, tags.join(" "))
    };
    let mut parts = Vec::new();
    for (ti, keys) in &e.returned {
        parts.push(format!("returns {}", counts(*ti, &mut keys.iter())));
    }
    for (ti, rows) in &e.inserted {
        parts.push(format!(
            "inserts {} {}",
            bound.tables[*ti].spec.name,
            rows.len()
        ));
    }
    for (ti, rows) in &e.updated {
        parts.push(format!(
            "updates {}",
            counts(*ti, &mut rows.iter().map(|(k, _, _)| k))
        ));
    }
    for (ti, keys) in &e.deleted {
        parts.push(format!("deletes {}", counts(*ti, &mut keys.iter())));
    }
    if parts.is_empty() {
        "returns no seeded row".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callable(shape: Shape, args: &[(&str, &str)]) -> Callable {
        Callable {
            label: "f".into(),
            name: "f".into(),
            qname: "\"public\".\"f\"".into(),
            args: args
                .iter()
                .map(|(a, t)| {
                    (
                        (*a).to_owned(),
                        (*t).to_owned(),
                        Source::Literal(Value::Null),
                    )
                })
                .collect(),
            volatile: false,
            shape,
            row_table: None,
            spec: None,
        }
    }

    #[test]
    fn a_call_reads_its_arguments_by_name_and_type_from_one_json_object() {
        let c = callable(Shape::Rows, &[("project", "uuid"), ("Note", "text")]);
        assert_eq!(
            statement(&c),
            "select to_jsonb(r) from jsonb_to_record($1) as a(\"project\" uuid, \"Note\" text), \
             lateral \"public\".\"f\"(\"project\" => a.\"project\", \"Note\" => a.\"Note\") r"
        );
        assert_eq!(
            statement(&callable(Shape::Scalar, &[])),
            "select to_jsonb(\"public\".\"f\"())"
        );
        assert_eq!(
            statement(&callable(Shape::Void, &[("n", "int4")])),
            "select null::jsonb from (select \"public\".\"f\"(\"n\" => a.\"n\") from \
             jsonb_to_record($1) as a(\"n\" int4)) v"
        );
    }

    #[test]
    fn the_caller_id_function_is_read_as_the_policy_parser_reads_it() {
        assert!(is_caller_id("public", "requesting_user_id"));
        assert!(!is_caller_id("public", "project_role"));
    }
}
