//! The spec-driven check: binds an access spec to the live catalog, seeds rows for every actor
//! in every table (in foreign-key order), derives what every actor × operation × row *should*
//! do from the spec, observes what *does* happen in identity transactions on the app's login
//! role, and judges the difference: a **leak** is more than the spec allows, **lost access** less.
//!
//! Nothing here knows a table name: the spec names them, the catalog describes them.

use std::collections::{BTreeMap, BTreeSet};

use harness::PgTarget;
use harness::target::quote_ident;
use serde_json::{Map, Value, json};
use sqlx::{Connection, PgConnection};

use crate::actors::{Actor, ClaimsForwarding};
use crate::matrix::Verdict;
use crate::spec::{Command, Rule, Spec, SpecError, TableSpec};

mod hostile;
mod observe;
mod pool;

pub use hostile::HostileRow;
pub use observe::HttpEndpoint;
use observe::{Executed, Observer};
pub use pool::PoolBleed;

/// Why a check could not run (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("{context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot mint a token for {actor}: {source}")]
    Token {
        actor: String,
        #[source]
        source: crate::actors::IdentityError,
    },
    #[error(transparent)]
    Harness(#[from] harness::HarnessError),
    #[error("the lint could not run: {0}")]
    Lint(#[from] rls_lint::LintError),
    #[error("a mutant's task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(
        "`{table}` already has rows: the run seeds its own and restores whole tables between \
         cells, so it only runs where the spec's tables are empty (a fresh or staging database, \
         an InsForge branch) — never against production data"
    )]
    NotEmpty { table: String },
    /// Over HTTP: an endpoint that did not answer, or not as the records API does.
    #[error(transparent)]
    Suite(#[from] crate::SuiteError),
}

/// The server's message for a database error, else the driver's.
fn db_message(e: &sqlx::Error) -> String {
    match e.as_database_error() {
        Some(db) => format!(
            "{} (SQLSTATE {})",
            db.message(),
            db.code().unwrap_or_default()
        ),
        None => e.to_string(),
    }
}

fn sql_err(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> AccessError {
    let context = context.into();
    move |source| AccessError::Sql { context, source }
}

const ID: &str = "\u{0}ID\u{0}";
const ROLE: &str = "\u{0}ROLE\u{0}";

/// A predicate over the row `t` with placeholders for the caller's id and role.
#[derive(Debug, Clone)]
struct Predicate(String);

impl Predicate {
    fn render(&self, id: &str, role: &str) -> String {
        self.0.replace(ID, id).replace(ROLE, role)
    }
}

/// `$1` → the caller's id, `$2` → the role, in a spec's own SQL (not `$10`, `$21`, …).
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$'
            && let Some(&d) = chars.peek()
            && (d == '1' || d == '2')
        {
            chars.next();
            if chars.peek().is_some_and(char::is_ascii_digit) {
                out.push('$');
                out.push(d);
            } else {
                out.push_str(if d == '1' { ID } else { ROLE });
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// One spec table bound to its catalog entry.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) spec: TableSpec,
    /// `"schema"."name"`.
    pub(crate) qname: String,
    pk: Vec<String>,
    /// Columns that can be written (not generated), in catalog order.
    writable: Vec<String>,
    preds: BTreeMap<Command, Predicate>,
    change: String,
    /// Columns copied from a seed row into an insert candidate (relations, payload, no default).
    candidate_columns: Vec<String>,
    /// Other ways `authenticated` can read this table's rows: views that carry its primary key,
    /// and set-returning functions of its row type taking only text (called with `''`).
    readers: Vec<Reader>,
}

impl Table {
    pub(crate) fn pk_expr(&self, alias: &str) -> String {
        let cols: Vec<String> = self
            .pk
            .iter()
            .map(|c| format!("{alias}.{}", quote_ident(c)))
            .collect();
        format!("jsonb_build_array({})::text", cols.join(", "))
    }

    fn column_list(&self) -> String {
        self.writable
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A view or function that reads a spec table's rows.
#[derive(Debug, Clone)]
struct Reader {
    /// As a from-item, quoted by the catalog: `"public"."todos_overview"`,
    /// `"public"."search_todos"('')`.
    from: String,
    /// A view's own name, which the records API serves; `None` for a function (the records
    /// API has no route that lists a function's rows the same way).
    view: Option<String>,
}

/// The spec's tables, bound and in seeding (foreign-key) order.
#[derive(Debug, Clone)]
pub struct BoundSpec {
    spec: Spec,
    pub(crate) tables: Vec<Table>,
    /// Per table (by position), the tables a write to it can change: itself and, through
    /// foreign keys (cascades), the tables that reference it, transitively. Only those are
    /// restored after a cell, so a check's cost grows with its tables, not their square.
    touched: Vec<Vec<i32>>,
}

impl BoundSpec {
    /// Checks the spec against the catalog of `admin`'s database (after the migrations) and
    /// orders its tables for seeding. Nothing is written.
    pub async fn bind(spec: &Spec, admin: &mut PgConnection) -> Result<Self, AccessError> {
        let mut tables = Vec::new();
        for t in &spec.tables {
            tables.push(bind_table(spec, t, admin).await?);
        }
        // Membership tables must be described too: their rows are seeded and checked.
        for t in &spec.tables {
            if let Some(m) = &t.members
                && spec.table(&m.table).is_none()
            {
                return Err(invalid(
                    spec,
                    t,
                    "members.table",
                    format!(
                        "the membership table `{}` must be described too, under [tables.{}] \
                         (its rows are seeded, and its own access is checked)",
                        m.table, m.table
                    ),
                ));
            }
        }
        let (order, fks) = seed_order(spec, &tables, admin).await?;
        let tables: Vec<Table> = order.into_iter().map(|i| tables[i].clone()).collect();
        let position = |name: &str| tables.iter().position(|t| t.spec.name == name);
        let touched = (0..tables.len())
            .map(|start| {
                let mut seen = BTreeSet::from([start]);
                let mut stack = vec![start];
                while let Some(t) = stack.pop() {
                    for (child, target) in &fks {
                        if position(target) == Some(t)
                            && let Some(c) = position(child)
                            && seen.insert(c)
                        {
                            stack.push(c);
                        }
                    }
                }
                seen.into_iter()
                    .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
                    .collect()
            })
            .collect();
        Ok(Self {
            spec: spec.clone(),
            tables,
            touched,
        })
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Table names in seeding order.
    pub fn table_names(&self) -> Vec<&str> {
        self.tables.iter().map(|t| t.spec.name.as_str()).collect()
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.spec.name == name)
    }
}

fn invalid(spec: &Spec, t: &TableSpec, key: &str, message: String) -> AccessError {
    AccessError::Spec(SpecError::Invalid {
        path: spec.path.clone(),
        line: t.line_of(key.split('.').next().unwrap_or(key)),
        key: format!("tables.{}.{key}", t.name),
        message,
    })
}

struct Catalog {
    columns: Vec<(String, bool, bool, bool)>, // name, generated, not null, has default
    pk: Vec<String>,
}

async fn catalog(
    admin: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<Option<Catalog>, AccessError> {
    let oid: Option<sqlx::postgres::types::Oid> = sqlx::query_scalar(
        "select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')",
    )
    .bind(schema)
    .bind(table)
    .fetch_optional(&mut *admin)
    .await
    .map_err(sql_err("read the catalog"))?;
    let Some(oid) = oid else { return Ok(None) };
    let columns: Vec<(String, bool, bool, bool)> = sqlx::query_as(
        "select attname::text, attgenerated <> '', attnotnull, atthasdef or attidentity <> '' \
         from pg_attribute where attrelid = $1 and attnum > 0 and not attisdropped order by attnum",
    )
    .bind(oid)
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("read the catalog"))?;
    let pk: Vec<String> = sqlx::query_scalar(
        "select a.attname::text from pg_index i \
         cross join lateral unnest(i.indkey) with ordinality k(attnum, n) \
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum \
         where i.indrelid = $1 and i.indisprimary order by k.n",
    )
    .bind(oid)
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("read the catalog"))?;
    Ok(Some(Catalog { columns, pk }))
}

async fn bind_table(
    spec: &Spec,
    t: &TableSpec,
    admin: &mut PgConnection,
) -> Result<Table, AccessError> {
    let cat = catalog(admin, &spec.schema, &t.name).await?.ok_or_else(|| {
        invalid(
            spec,
            t,
            "",
            format!(
                "there is no table `{}` in schema `{}` after the migrations — check the name, or \
                 the migrations folder",
                t.name, spec.schema
            ),
        )
    })?;
    let names: Vec<&str> = cat.columns.iter().map(|c| c.0.as_str()).collect();
    let has = |c: &str| names.contains(&c);
    let missing = |key: &str, col: &str| {
        invalid(
            spec,
            t,
            key,
            format!(
                "`{}` has no column `{col}` (its columns: {})",
                t.name,
                names.join(", ")
            ),
        )
    };
    let mut relation_cols: Vec<String> = Vec::new();
    if let Some(o) = &t.owner {
        if !has(o) {
            return Err(missing("owner", o));
        }
        relation_cols.push(o.clone());
    }
    if let Some(p) = &t.parent {
        let parent = spec
            .table(&p.table)
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let pcat = catalog(admin, &spec.schema, &parent).await?;
        for (mine, theirs) in &p.on {
            if !has(mine) {
                return Err(missing("parent.on", mine));
            }
            if !pcat
                .as_ref()
                .is_some_and(|c| c.columns.iter().any(|col| &col.0 == theirs))
            {
                return Err(invalid(
                    spec,
                    t,
                    "parent.on",
                    format!("the parent `{parent}` has no column `{theirs}`"),
                ));
            }
            relation_cols.push(mine.clone());
        }
    }
    if let Some(m) = &t.members {
        let mcat = catalog(admin, &spec.schema, &m.table)
            .await?
            .ok_or_else(|| {
                invalid(
                    spec,
                    t,
                    "members.table",
                    format!(
                        "there is no membership table `{}` in `{}`",
                        m.table, spec.schema
                    ),
                )
            })?;
        let mhas = |c: &str| mcat.columns.iter().any(|col| col.0 == c);
        for (theirs, mine) in &m.on {
            if !has(mine) {
                return Err(missing("members.on", mine));
            }
            if !mhas(theirs) {
                return Err(invalid(
                    spec,
                    t,
                    "members.on",
                    format!(
                        "the membership table `{}` has no column `{theirs}`",
                        m.table
                    ),
                ));
            }
        }
        for col in std::iter::once(&m.user).chain(m.role.as_ref().map(|r| &r.0)) {
            if !mhas(col) {
                return Err(invalid(
                    spec,
                    t,
                    "members",
                    format!("the membership table `{}` has no column `{col}`", m.table),
                ));
            }
        }
    }
    // A membership table's own relation columns are what its seed rows are made of.
    for other in &spec.tables {
        if let Some(m) = &other.members
            && m.table == t.name
        {
            relation_cols.extend(m.on.iter().map(|(c, _)| c.clone()));
            relation_cols.push(m.user.clone());
            relation_cols.extend(m.role.iter().map(|r| r.0.clone()));
        }
    }
    for col in t.payload.keys() {
        if !has(col) {
            return Err(missing("payload", col));
        }
    }
    for col in &t.immutable {
        if !has(col) {
            return Err(missing("immutable", col));
        }
    }
    if cat.pk.is_empty() {
        return Err(invalid(
            spec,
            t,
            "",
            format!(
                "`{}` has no primary key: the check tells rows apart by it (as PostgREST does \
                 for updates) — add one",
                t.name
            ),
        ));
    }
    let change = match &t.change {
        Some(c) if has(c) => c.clone(),
        Some(c) => return Err(missing("change", c)),
        None => t
            .payload
            .keys()
            .find(|c| !relation_cols.contains(c) && !t.immutable.contains(c))
            .cloned()
            .ok_or_else(|| {
                invalid(
                    spec,
                    t,
                    "payload",
                    "name a column that `update` may change: put one in `payload` (e.g. \
                     `title = \"…\"`), or set `change`"
                        .into(),
                )
            })?,
    };
    // Every NOT NULL column without a default must come from the payload or a relation.
    let uncovered: Vec<&str> = cat
        .columns
        .iter()
        .filter(|(name, generated, not_null, has_default)| {
            *not_null
                && !*generated
                && !*has_default
                && !t.payload.contains_key(name)
                && !relation_cols.contains(name)
        })
        .map(|c| c.0.as_str())
        .collect();
    if !uncovered.is_empty() {
        return Err(invalid(
            spec,
            t,
            "payload",
            format!(
                "a valid insert needs {}: add {} to `payload`",
                uncovered.join(", "),
                if uncovered.len() == 1 { "it" } else { "them" }
            ),
        ));
    }
    let defaulted: BTreeSet<String> = cat
        .columns
        .iter()
        .filter(|c| c.3)
        .map(|c| c.0.clone())
        .collect();
    let writable: Vec<String> = cat
        .columns
        .iter()
        .filter(|c| !c.1)
        .map(|c| c.0.clone())
        .collect();
    let candidate_columns = writable
        .iter()
        .filter(|c| {
            relation_cols.contains(c)
                || t.payload.contains_key(*c)
                || t.immutable.contains(c)
                || !defaulted.contains(*c)
        })
        .cloned()
        .collect();
    let preds = Command::ALL
        .into_iter()
        .map(|c| (c, compile(spec, t, &t.rules[&c])))
        .collect();
    let readers = readers(admin, &spec.schema, &t.name, &cat.pk).await?;
    Ok(Table {
        readers,
        qname: format!("{}.{}", quote_ident(&spec.schema), quote_ident(&t.name)),
        spec: t.clone(),
        pk: cat.pk,
        writable,
        preds,
        change,
        candidate_columns,
    })
}

/// Views over the table (through `pg_depend`) that expose all of its primary key, and
/// set-returning functions of its row type whose arguments are all text, that `authenticated`
/// may use.
async fn readers(
    admin: &mut PgConnection,
    schema: &str,
    table: &str,
    pk: &[String],
) -> Result<Vec<Reader>, AccessError> {
    let views: Vec<(String, String)> = sqlx::query_as(
        "select distinct quote_ident(vn.nspname) || '.' || quote_ident(v.relname), v.relname::text \
         from pg_depend d join pg_rewrite r on r.oid = d.objid \
         join pg_class v on v.oid = r.ev_class join pg_namespace vn on vn.oid = v.relnamespace \
         join pg_class t on t.oid = d.refobjid join pg_namespace tn on tn.oid = t.relnamespace \
         where tn.nspname = $1 and t.relname = $2 and v.oid <> t.oid and v.relkind in ('v', 'm') \
           and vn.nspname = $1 \
           and has_table_privilege('authenticated', v.oid, 'SELECT') \
           and (select count(*) from pg_attribute a where a.attrelid = v.oid \
                and a.attname = any($3) and not a.attisdropped) = cardinality($3) \
         order by 1",
    )
    .bind(schema)
    .bind(table)
    .bind(pk)
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("list views"))?;
    let functions: Vec<String> = sqlx::query_scalar(
        "select quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || \
                array_to_string(array_fill(quote_literal(''), array[p.pronargs::int]), ', ') || ')' \
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace \
         join pg_type ty on ty.oid = p.prorettype join pg_class c on c.oid = ty.typrelid \
         join pg_namespace cn on cn.oid = c.relnamespace \
         where n.nspname = $1 and cn.nspname = $1 and c.relname = $2 and p.proretset \
           and p.prokind = 'f' and has_function_privilege('authenticated', p.oid, 'EXECUTE') \
           and not exists (select 1 from unnest(p.proargtypes) a where a <> 'text'::regtype) \
         order by 1",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("list functions"))?;
    let mut out: Vec<Reader> = views
        .into_iter()
        .map(|(from, name)| Reader {
            from,
            view: Some(name),
        })
        .collect();
    out.extend(
        functions
            .into_iter()
            .map(|from| Reader { from, view: None }),
    );
    Ok(out)
}

/// The rules of one command as one SQL predicate over `t`.
fn compile(spec: &Spec, t: &TableSpec, rules: &[Rule]) -> Predicate {
    if rules.is_empty() {
        return Predicate("false".into());
    }
    let parts: Vec<String> = rules
        .iter()
        .map(|r| match r {
            Rule::Anyone => "true".to_owned(),
            Rule::SignedIn => format!("{ROLE} = 'authenticated'"),
            Rule::Owner => format!(
                "t.{} = {ID}",
                quote_ident(t.owner.as_deref().unwrap_or_default())
            ),
            Rule::Member(roles) => member(spec, t, "t", roles.as_deref(), 0),
            Rule::Predicate(sql) => placeholders(sql),
        })
        .map(|p| format!("({p})"))
        .collect();
    Predicate(format!("coalesce({}, false)", parts.join(" or ")))
}

/// `alias` (a row of `t`) has the caller as a member, through `t`'s members or its parent's.
fn member(
    spec: &Spec,
    t: &TableSpec,
    alias: &str,
    roles: Option<&[String]>,
    depth: usize,
) -> String {
    let schema = quote_ident(&spec.schema);
    if let Some(m) = &t.members {
        let m_alias = format!("m{depth}");
        let mut conds: Vec<String> =
            m.on.iter()
                .map(|(theirs, mine)| {
                    format!(
                        "{m_alias}.{} = {alias}.{}",
                        quote_ident(theirs),
                        quote_ident(mine)
                    )
                })
                .collect();
        conds.push(format!("{m_alias}.{} = {ID}", quote_ident(&m.user)));
        if let (Some(roles), Some((col, _))) = (roles, &m.role) {
            let list: Vec<String> = roles
                .iter()
                .map(|r| harness::target::quote_literal(r))
                .collect();
            conds.push(format!(
                "{m_alias}.{}::text in ({})",
                quote_ident(col),
                list.join(", ")
            ));
        }
        return format!(
            "exists (select 1 from {schema}.{} {m_alias} where {})",
            quote_ident(&m.table),
            conds.join(" and ")
        );
    }
    let (Some(p), true) = (&t.parent, depth < 16) else {
        return "false".into();
    };
    let Some(parent) = spec.table(&p.table) else {
        return "false".into();
    };
    let p_alias = format!("p{depth}");
    let conds: Vec<String> =
        p.on.iter()
            .map(|(mine, theirs)| {
                format!(
                    "{p_alias}.{} = {alias}.{}",
                    quote_ident(theirs),
                    quote_ident(mine)
                )
            })
            .collect();
    format!(
        "exists (select 1 from {schema}.{} {p_alias} where {} and {})",
        quote_ident(&parent.name),
        conds.join(" and "),
        member(spec, parent, &p_alias, roles, depth + 1)
    )
}

/// Parents before children: the spec's parents, membership tables after the table they grant,
/// and the catalog's foreign keys among the spec's tables. A cycle is an error.
#[allow(clippy::type_complexity)]
async fn seed_order(
    spec: &Spec,
    tables: &[Table],
    admin: &mut PgConnection,
) -> Result<(Vec<usize>, Vec<(String, String)>), AccessError> {
    let fks: Vec<(String, String)> = sqlx::query_as(
        "select c.relname::text, f.relname::text from pg_constraint k \
         join pg_class c on c.oid = k.conrelid join pg_class f on f.oid = k.confrelid \
         join pg_namespace n on n.oid = c.relnamespace \
         where k.contype = 'f' and n.nspname = $1 and k.conrelid <> k.confrelid",
    )
    .bind(&spec.schema)
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("read foreign keys"))?;
    let idx = |name: &str| tables.iter().position(|t| t.spec.name == name);
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); tables.len()];
    for (i, t) in tables.iter().enumerate() {
        if let Some(p) = t.spec.parent.as_ref().and_then(|p| idx(&p.table)) {
            deps[i].insert(p);
        }
        if let Some(m) = t.spec.members.as_ref().and_then(|m| idx(&m.table))
            && m != i
        {
            deps[m].insert(i);
        }
        for (child, target) in &fks {
            if child == &t.spec.name
                && let Some(j) = idx(target)
            {
                deps[i].insert(j);
            }
        }
    }
    let mut order = Vec::new();
    let mut done = vec![false; tables.len()];
    while order.len() < tables.len() {
        let next = (0..tables.len()).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
        let Some(i) = next else {
            let stuck: Vec<&str> = (0..tables.len())
                .filter(|&i| !done[i])
                .map(|i| tables[i].spec.name.as_str())
                .collect();
            let first = tables
                .iter()
                .find(|t| !done[idx(&t.spec.name).unwrap_or(0)]);
            return Err(match first {
                Some(t) => invalid(
                    spec,
                    &t.spec,
                    "",
                    format!(
                        "these tables depend on each other in a cycle (parents, memberships or \
                         foreign keys), so no seeding order exists: {}",
                        stuck.join(", ")
                    ),
                ),
                None => AccessError::Spec(SpecError::Invalid {
                    path: spec.path.clone(),
                    line: 1,
                    key: "tables".into(),
                    message: "a cycle among the tables".into(),
                }),
            });
        };
        done[i] = true;
        order.push(i);
    }
    Ok((order, fks))
}

// ---- seeds ----

/// One seeded row: its primary key (as text), its image, and the actor it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct SeedRow {
    pub(crate) pk: String,
    image: Value,
    tag: String,
}

/// The seeded state: rows per table (in seeding order), restorable exactly.
#[derive(Debug, Clone)]
pub(crate) struct Seeds {
    pub(crate) rows: Vec<Vec<SeedRow>>,
}

impl Seeds {
    fn tag_of(&self, table: usize, pk: &str) -> Option<&str> {
        self.rows[table]
            .iter()
            .find(|r| r.pk == pk)
            .map(|r| r.tag.as_str())
    }
}

fn field<'a>(row: &'a Value, col: &str) -> &'a Value {
    row.get(col).unwrap_or(&Value::Null)
}

/// Inserts rows for every actor in every table, as a superuser with triggers off (so an app's
/// own triggers neither add rows nor refuse them), in seeding order.
async fn seed(
    bound: &BoundSpec,
    users: &[&Actor],
    admin: &mut PgConnection,
) -> Result<Seeds, AccessError> {
    let spec = &bound.spec;
    let user_of = |id: &Value| users.iter().position(|u| Some(u.id()) == Some(id.as_str()));
    let mut rows: Vec<Vec<SeedRow>> = vec![Vec::new(); bound.tables.len()];
    let mut tx = admin.begin().await.map_err(sql_err("begin seeding"))?;
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
        for (mut values, u) in planned {
            for (k, v) in &t.payload {
                values.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let cols: Vec<String> = values.keys().map(|c| quote_ident(c)).collect();
            let sql = format!(
                "insert into {q} as t ({c}) select {c} from jsonb_populate_record(null::{q}, $1) \
                 returning {pk}, to_jsonb(t)",
                q = table.qname,
                c = cols.join(", "),
                pk = table.pk_expr("t"),
            );
            let row: (String, Value) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(Value::Object(values.clone()))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| {
                    invalid(
                        spec,
                        t,
                        "payload",
                        format!(
                            "the table refuses a seed row {}: {}",
                            Value::Object(values),
                            db_message(&e)
                        ),
                    )
                })?;
            rows[ti].push(SeedRow {
                pk: row.0,
                image: row.1,
                tag: users[u].key.clone(),
            });
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
    Ok(Seeds { rows })
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
async fn keep_seeds(
    bound: &BoundSpec,
    seeds: &Seeds,
    admin: &mut PgConnection,
) -> Result<(), AccessError> {
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
async fn restore(admin: &mut PgConnection, tables: &[i32]) -> Result<(), AccessError> {
    sqlx::query("select insforge_rls.check_restore($1)")
        .bind(tables)
        .execute(&mut *admin)
        .await
        .map_err(sql_err("restore the seeds"))?;
    Ok(())
}

/// Every row of a table as a superuser sees it: primary key → image.
async fn images(
    table: &Table,
    admin: &mut PgConnection,
) -> Result<BTreeMap<String, Value>, AccessError> {
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

// ---- what should happen ----

/// Which seeded rows (by primary key) each actor may select, update and delete, and which seed
/// rows each actor may insert again (after it is removed).
#[derive(Debug, Clone, Default)]
struct Allowed {
    select: BTreeSet<String>,
    update: BTreeSet<String>,
    delete: BTreeSet<String>,
    insert: BTreeSet<String>,
}

async fn expected(
    table: &Table,
    seeds: &[SeedRow],
    actors: &[Actor],
    admin: &mut PgConnection,
) -> Result<Vec<Allowed>, AccessError> {
    let ids: Vec<Option<String>> = actors.iter().map(|a| a.id().map(str::to_owned)).collect();
    let roles: Vec<&str> = actors.iter().map(|a| a.role()).collect();
    let p = |c: Command| table.preds[&c].render("a.id", "a.role");
    let sql = format!(
        "select a.n::int4 - 1, {pk}, {s}, {u}, {d} \
         from unnest($1::text[], $2::text[]) with ordinality a(id, role, n) cross join {q} t",
        pk = table.pk_expr("t"),
        s = p(Command::Select),
        u = p(Command::Update),
        d = p(Command::Delete),
        q = table.qname,
    );
    let rows: Vec<(i32, String, bool, bool, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&ids)
        .bind(&roles)
        .fetch_all(&mut *admin)
        .await
        .map_err(|e| predicate_err(table, e))?;
    let mut out = vec![Allowed::default(); actors.len()];
    for (n, pk, s, u, d) in rows {
        let a = &mut out[usize::try_from(n).unwrap_or(0)];
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
        "select a.n::int4 - 1, {ins} from unnest($1::text[], $2::text[]) with ordinality a(id, role, n) \
         cross join jsonb_populate_record(null::{q}, $3) t",
        ins = p(Command::Insert),
        q = table.qname,
    );
    for row in seeds {
        let mut tx = admin.begin().await.map_err(sql_err("plan inserts"))?;
        remove(table, &row.pk, &mut tx).await?;
        let ok: Vec<(i32, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(&ids)
            .bind(&roles)
            .bind(candidate(table, row))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| predicate_err(table, e))?;
        tx.rollback().await.map_err(sql_err("plan inserts"))?;
        for (n, allowed) in ok {
            if allowed {
                out[usize::try_from(n).unwrap_or(0)]
                    .insert
                    .insert(row.pk.clone());
            }
        }
    }
    Ok(out)
}

fn predicate_err(table: &Table, e: sqlx::Error) -> AccessError {
    AccessError::Spec(SpecError::Invalid {
        path: std::path::PathBuf::new(),
        line: table.spec.line,
        key: format!("tables.{}", table.spec.name),
        message: format!(
            "the spec's rules do not evaluate as SQL: {}",
            db_message(&e)
        ),
    })
}

/// Removes one row as the superuser (whose session runs with triggers off: no cascades; the
/// restore puts it back).
async fn remove(table: &Table, pk: &str, conn: &mut PgConnection) -> Result<(), AccessError> {
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
fn candidate(table: &Table, row: &SeedRow) -> Value {
    Value::Object(
        table
            .candidate_columns
            .iter()
            .map(|c| (c.clone(), field(&row.image, c).clone()))
            .collect(),
    )
}

// ---- the operations ----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Select,
    /// A select through a view or function that reads the table (by position in `readers`).
    SelectVia(usize),
    InsertAllowed,
    InsertForbidden,
    UpdateAllowed,
    UpdateForbidden,
    /// Set the owner column of a row the caller may not update to the caller's own id: a
    /// USING that matches too much lets a caller take other users' rows even when WITH CHECK
    /// holds them to their own id.
    TakeOver,
    UpdateUnfiltered,
    HandOver(String),
    HandOverUnfiltered(String),
    DeleteAllowed,
    DeleteForbidden,
    DeleteUnfiltered,
}

impl Op {
    fn all(table: &Table) -> Vec<Op> {
        let mut ops = vec![Op::Select];
        ops.extend((0..table.readers.len()).map(Op::SelectVia));
        ops.extend([
            Op::InsertAllowed,
            Op::InsertForbidden,
            Op::UpdateAllowed,
            Op::UpdateForbidden,
        ]);
        if table.spec.owner.is_some() {
            ops.push(Op::TakeOver);
        }
        ops.push(Op::UpdateUnfiltered);
        for col in &table.spec.immutable {
            ops.push(Op::HandOver(col.clone()));
            ops.push(Op::HandOverUnfiltered(col.clone()));
        }
        ops.extend([Op::DeleteAllowed, Op::DeleteForbidden, Op::DeleteUnfiltered]);
        ops
    }

    /// The command whose policies decide the operation.
    fn command(&self) -> Command {
        match self {
            Op::Select | Op::SelectVia(_) => Command::Select,
            Op::InsertAllowed | Op::InsertForbidden => Command::Insert,
            Op::UpdateAllowed
            | Op::UpdateForbidden
            | Op::TakeOver
            | Op::UpdateUnfiltered
            | Op::HandOver(_)
            | Op::HandOverUnfiltered(_) => Command::Update,
            Op::DeleteAllowed | Op::DeleteForbidden | Op::DeleteUnfiltered => Command::Delete,
        }
    }

    fn is_select(&self) -> bool {
        matches!(self, Op::Select | Op::SelectVia(_))
    }

    fn label(&self, table: &Table) -> String {
        match self {
            Op::Select => "select".into(),
            Op::SelectVia(i) => format!("select via {}", table.readers[*i].from),
            Op::InsertAllowed => "insert · allowed row".into(),
            Op::InsertForbidden => "insert · forbidden row".into(),
            Op::UpdateAllowed => "update · allowed row".into(),
            Op::UpdateForbidden => "update · forbidden row".into(),
            Op::TakeOver => "take over · forbidden row".into(),
            Op::UpdateUnfiltered => "update · no filter".into(),
            Op::HandOver(c) => format!("hand over {c} · own row"),
            Op::HandOverUnfiltered(c) => format!("hand over {c} · no filter"),
            Op::DeleteAllowed => "delete · allowed row".into(),
            Op::DeleteForbidden => "delete · forbidden row".into(),
            Op::DeleteUnfiltered => "delete · no filter".into(),
        }
    }
}

/// What one operation did, as a superuser saw the table before and after.
#[derive(Debug, Clone, Default)]
struct Observed {
    seen: Vec<String>,
    inserted: Vec<Value>,
    /// (primary key, old image, new image).
    updated: Vec<(String, Value, Value)>,
    deleted: Vec<String>,
    refused: Option<String>,
}

/// One judged cell.
#[derive(Debug, Clone)]
pub struct SpecCell {
    pub text: String,
    pub verdict: Verdict,
}

/// The matrix of one spec table.
#[derive(Debug, Clone)]
pub struct TableMatrix {
    pub table: String,
    pub actors: Vec<String>,
    pub ops: Vec<String>,
    /// `cells[op][actor]`.
    pub cells: Vec<Vec<SpecCell>>,
}

/// Every table's matrix.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub tables: Vec<TableMatrix>,
    /// `key = id` for each actor, for reading the matrices.
    pub actors: Vec<(String, String)>,
    /// Over HTTP: the hostile-token table on every table (empty in SQL).
    pub hostile: Vec<HostileRow>,
    /// Over HTTP: every user reading every table at once through the endpoint's pool.
    pub pool: Option<PoolBleed>,
    /// Policy coverage over the seeded rows (`None` when the run skipped it, and over HTTP).
    pub coverage: Option<crate::coverage::Coverage>,
}

/// Options of a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub forwarding: ClaimsForwarding,
    /// Only these tables' matrices, in this order (every table is still seeded); `None`: all,
    /// in seeding order.
    pub tables: Option<Vec<String>>,
    /// The database is not the run's own (`verify` against a deployment): refuse to start when
    /// a spec table already has rows, because restoring between cells rewrites whole tables.
    /// A check's fresh database is its own, and rows its migrations inserted are replaced.
    pub refuse_existing_rows: bool,
    /// Skip the policy coverage (mutant runs do not report it).
    pub skip_coverage: bool,
    /// Stop at the first cell that is not OK (a mutant run only needs to know it was caught);
    /// the report then holds the matrices up to that cell.
    pub stop_at_first_finding: bool,
    /// Run this command's operations first in each matrix (the command a mutant weakens).
    pub first_command: Option<Command>,
}

/// Runs the SQL matrices of every spec table against one database: `admin` a superuser there,
/// `app` the app's login role (no privileges until it switches role, as in production).
pub async fn run(
    bound: &BoundSpec,
    admin: &PgTarget,
    app: &PgTarget,
    opts: RunOptions,
) -> Result<CheckReport, AccessError> {
    run_via(bound, admin, Via::Sql(app), opts).await
}

/// How a run's cells are carried out.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// Identity transactions on the app's login role.
    Sql(&'a PgTarget),
    /// The records API of an endpoint serving this database (the sample app, or an InsForge
    /// deployment whose database `admin` reaches). Only the Clerk users act over HTTP: the
    /// built-in `no_claims` and `anon` actors are refused before Postgres there (see
    /// [`crate::spec_http`]'s token table for what such requests get).
    Http(&'a HttpEndpoint),
}

/// Runs the matrices of every spec table, carried out `via` SQL or HTTP, seeding, observing
/// and restoring through `admin` (a superuser of the database the cells reach).
pub async fn run_via(
    bound: &BoundSpec,
    admin: &PgTarget,
    via: Via<'_>,
    opts: RunOptions,
) -> Result<CheckReport, AccessError> {
    let entered = std::time::Instant::now();
    let http = matches!(via, Via::Http(_));
    let all_actors = crate::actors::actors(&bound.spec);
    let users: Vec<&Actor> = all_actors.iter().filter(|a| a.is_user()).collect();
    let actors: Vec<Actor> = all_actors
        .iter()
        .filter(|a| observe::can_act(http, a))
        .cloned()
        .collect();
    let mut observer = match via {
        Via::Sql(app) => {
            let template = crate::actors::template();
            let identities = actors
                .iter()
                .map(|a| {
                    a.db_identity(&template, opts.forwarding)
                        .map_err(|source| AccessError::Token {
                            actor: a.key.clone(),
                            source,
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            // One connection for every cell, as a pool of one: each cell after the first runs
            // on a connection an earlier identity used.
            Observer::Sql {
                conn: app.connect().await?,
                identities,
            }
        }
        Via::Http(endpoint) => Observer::http(endpoint, &actors)?,
    };
    let mut admin = admin.connect().await?;
    // Seeding, removing and restoring as the superuser skip triggers and foreign-key checks:
    // an app's own triggers neither add rows nor refuse them, and nothing cascades.
    sqlx::query("set session_replication_role = replica")
        .execute(&mut admin)
        .await
        .map_err(sql_err("prepare the superuser session"))?;
    tracing::debug!(took = ?entered.elapsed(), "connected");
    if opts.refuse_existing_rows {
        refuse_existing_rows(bound, &mut admin).await?;
    }
    let started = std::time::Instant::now();
    let seeds = seed(bound, &users, &mut admin).await?;
    tracing::debug!(took = ?started.elapsed(), "seeded");
    keep_seeds(bound, &seeds, &mut admin).await?;
    tracing::debug!(took = ?started.elapsed(), "seeds kept");
    let mut report = CheckReport {
        tables: Vec::new(),
        actors: actors
            .iter()
            .map(|a| (a.key.clone(), a.id().unwrap_or("-").to_owned()))
            .collect(),
        hostile: Vec::new(),
        pool: None,
        coverage: None,
    };
    // Every actor's allowed rows per table (by position), for the token and pool tables.
    let mut allowed_all: Vec<(usize, Vec<Allowed>)> = Vec::new();
    let result = async {
        // The tables asked for, in the order asked (a mutant's own table first), else all.
        let order: Vec<usize> = match &opts.tables {
            Some(only) => only.iter().filter_map(|name| bound.index(name)).collect(),
            None => (0..bound.tables.len()).collect(),
        };
        for ti in order {
            let table = &bound.tables[ti];
            let planned = std::time::Instant::now();
            let allowed = expected(table, &seeds.rows[ti], &actors, &mut admin).await?;
            tracing::debug!(table = %table.spec.name, took = ?planned.elapsed(), "planned");
            allowed_all.push((ti, allowed.clone()));
            let mut ops = Op::all(table);
            if let Some(first) = opts.first_command {
                // A stable sort: the command's operations first, each group in its own order.
                ops.sort_by_key(|op| op.command() != first);
            }
            let mut cells = Vec::new();
            let mut found = false;
            'ops: for op in &ops {
                let mut row = Vec::new();
                for (ai, actor) in actors.iter().enumerate() {
                    let cell = run_cell(
                        table,
                        ti,
                        &seeds,
                        &allowed[ai],
                        (ai, actor),
                        op,
                        &mut observer,
                        &mut admin,
                        bound,
                    )
                    .await?;
                    found = opts.stop_at_first_finding && cell.verdict != Verdict::Ok;
                    row.push(cell);
                    if found {
                        cells.push(row);
                        break 'ops;
                    }
                }
                cells.push(row);
            }
            tracing::debug!(table = %table.spec.name, took = ?planned.elapsed(), "matrix done");
            report.tables.push(TableMatrix {
                table: table.spec.name.clone(),
                actors: actors.iter().map(|a| a.key.clone()).collect(),
                ops: ops
                    .iter()
                    .take(cells.len())
                    .map(|op| op.label(table))
                    .collect(),
                cells,
            });
            if found {
                break;
            }
        }
        if let (Via::Http(endpoint), [a, b, ..]) = (via, users.as_slice())
            && let Some(b_id) = b.id()
        {
            let victims = hostile::Victims { a, b_id };
            let allowed_a: Vec<(usize, Allowed)> = allowed_all
                .iter()
                .filter_map(|(ti, all)| all.first().map(|a| (*ti, a.clone())))
                .collect();
            report.hostile =
                hostile::run(bound, &seeds, endpoint, &victims, &allowed_a, &mut admin).await?;
            if let Observer::Http { authorizations, .. } = &observer {
                let keys: Vec<String> = actors.iter().map(|a| a.key.clone()).collect();
                report.pool = Some(
                    pool::run(bound, &seeds, endpoint, &allowed_all, authorizations, &keys).await?,
                );
            }
        }
        if !opts.skip_coverage
            && let Observer::Sql { conn, identities } = &mut observer
        {
            report.coverage = Some(
                crate::coverage::measure(bound, &seeds, &actors, identities, conn, &mut admin)
                    .await?,
            );
        }
        Ok::<_, AccessError>(())
    }
    .await;
    observer.close().await;
    // Whatever happened, the seeds go: the tables are left empty, as a run finds them.
    let cleared = clear(bound, &mut admin).await;
    admin.close().await.ok();
    result?;
    cleared?;
    Ok(report)
}

/// Refuses a database whose spec tables hold rows the run did not put there.
async fn refuse_existing_rows(
    bound: &BoundSpec,
    admin: &mut PgConnection,
) -> Result<(), AccessError> {
    for table in &bound.tables {
        let some: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "select exists (select from {})",
            table.qname
        )))
        .fetch_one(&mut *admin)
        .await
        .map_err(sql_err(format!("read {}", table.spec.name)))?;
        if some {
            return Err(AccessError::NotEmpty {
                table: table.spec.name.clone(),
            });
        }
    }
    Ok(())
}

/// Removes every row of the spec tables (children first), as the superuser with triggers off.
async fn clear(bound: &BoundSpec, admin: &mut PgConnection) -> Result<(), AccessError> {
    for table in bound.tables.iter().rev() {
        sqlx::query(sqlx::AssertSqlSafe(format!("delete from {}", table.qname)))
            .execute(&mut *admin)
            .await
            .map_err(sql_err(format!("remove the seeds of {}", table.spec.name)))?;
    }
    Ok(())
}

/// The row an operation aims at: one the actor may (or may not) do `command` to. Forbidden
/// rows the actor can see come first: being able to read a row but not change it is the case
/// that tells a policy apart from a missing one.
fn pick<'a>(
    seeds: &'a [SeedRow],
    allowed: &Allowed,
    set: &BTreeSet<String>,
    want: bool,
) -> Option<&'a SeedRow> {
    let matches = |r: &&SeedRow| set.contains(&r.pk) == want;
    seeds
        .iter()
        .filter(matches)
        .find(|r| allowed.select.contains(&r.pk))
        .or_else(|| seeds.iter().find(matches))
}

/// A value for the change column that differs from the row's: another seed row's value when
/// there is one (a member's `role` becomes `owner`), else a mutation of its own.
fn changed(rows: &[SeedRow], column: &str, value: &Value) -> Value {
    if let Some(other) = rows
        .iter()
        .map(|r| field(&r.image, column))
        .find(|v| !v.is_null() && *v != value)
    {
        return other.clone();
    }
    match value {
        Value::String(s) => Value::String(format!("{s} · changed")),
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => json!(n.as_f64().unwrap_or(0.0) + 1.0),
        _ => json!("changed"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_cell(
    table: &Table,
    ti: usize,
    seeds: &Seeds,
    allowed: &Allowed,
    actor: (usize, &Actor),
    op: &Op,
    observer: &mut Observer,
    admin: &mut PgConnection,
    bound: &BoundSpec,
) -> Result<SpecCell, AccessError> {
    let (ai, actor) = actor;
    let rows = &seeds.rows[ti];
    let Some(plan) = plan(table, rows, allowed, op, actor.id()) else {
        return Ok(SpecCell {
            text: "n/a".into(),
            verdict: Verdict::Ok,
        });
    };

    let mut before: BTreeMap<String, Value> = rows
        .iter()
        .map(|r| (r.pk.clone(), r.image.clone()))
        .collect();
    if let Some(r) = plan.removed {
        remove(table, &r.pk, admin).await?;
        before.remove(&r.pk);
    }

    let mut o = Observed::default();
    match observer.execute(table, rows, ai, &plan.action).await? {
        Executed::Done { seen, refused } => {
            if op.is_select() {
                o.seen = seen;
            }
            o.refused = refused;
        }
        Executed::Unsupported(why) => {
            if plan.removed.is_some() {
                restore(admin, &bound.touched[ti]).await?;
            }
            return Ok(SpecCell {
                text: why.into(),
                verdict: Verdict::Ok,
            });
        }
    }
    let dirty = plan.removed.is_some() || (!op.is_select() && o.refused.is_none());
    if dirty {
        let after = images(table, admin).await?;
        for (k, v) in &after {
            match before.get(k) {
                None => o.inserted.push(v.clone()),
                Some(old) if old != v => o.updated.push((k.clone(), old.clone(), v.clone())),
                Some(_) => {}
            }
        }
        o.deleted = before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .cloned()
            .collect();
        let changed = plan.removed.is_some()
            || !o.inserted.is_empty()
            || !o.updated.is_empty()
            || !o.deleted.is_empty();
        if changed {
            restore(admin, &bound.touched[ti]).await?;
        }
    }
    let verdict = judge(table, seeds, ti, allowed, actor, op, plan.expect_row, &o);
    Ok(SpecCell {
        text: describe(table, seeds, ti, op, &o, &bound.spec),
        verdict,
    })
}

/// What a cell asks for, whoever carries it out: the identity transaction in SQL, or the
/// records API over HTTP ([`observe`]).
#[derive(Debug, Clone, PartialEq)]
enum Action {
    /// The primary keys of every row the caller can read: through the table itself (`None`)
    /// or through one of its readers (by position).
    Select { via: Option<usize> },
    /// One row like a seed row (relations, payload; defaults for the rest).
    Insert { row: Value },
    /// Sets the columns of `set` (an object) on the row with primary key `target`, or on every
    /// row (`None`: no filter at all, as a client that forgot one would send it).
    Update { target: Option<String>, set: Value },
    /// Deletes the row `target`, or every row (`None`).
    Delete { target: Option<String> },
}

/// A cell's action, what the spec expects of the row it aims at (`Some(true)`: it may), and
/// the seed row removed first (an insert re-inserts it).
struct Plan<'a> {
    action: Action,
    expect_row: Option<bool>,
    removed: Option<&'a SeedRow>,
}

/// The action for `op`, or `None` when no seed row fits it (the cell is "n/a").
fn plan<'a>(
    table: &Table,
    rows: &'a [SeedRow],
    allowed: &Allowed,
    op: &Op,
    caller: Option<&str>,
) -> Option<Plan<'a>> {
    let change = |r: &SeedRow| json!({ &table.change: changed(rows, &table.change, field(&r.image, &table.change)) });
    let plain = |action| Plan {
        action,
        expect_row: None,
        removed: None,
    };
    Some(match op {
        Op::Select => plain(Action::Select { via: None }),
        Op::SelectVia(i) => plain(Action::Select { via: Some(*i) }),
        Op::InsertAllowed | Op::InsertForbidden => {
            let want = *op == Op::InsertAllowed;
            let r = pick(rows, allowed, &allowed.insert, want)?;
            Plan {
                action: Action::Insert {
                    row: candidate(table, r),
                },
                expect_row: Some(want),
                removed: Some(r),
            }
        }
        Op::UpdateAllowed | Op::UpdateForbidden => {
            let want = *op == Op::UpdateAllowed;
            let r = pick(rows, allowed, &allowed.update, want)?;
            Plan {
                action: Action::Update {
                    target: Some(r.pk.clone()),
                    set: change(r),
                },
                expect_row: Some(want),
                removed: None,
            }
        }
        Op::TakeOver => {
            let (owner, me) = (table.spec.owner.as_ref()?, caller?);
            let r = pick(rows, allowed, &allowed.update, false)?;
            Plan {
                action: Action::Update {
                    target: Some(r.pk.clone()),
                    set: json!({ owner: me }),
                },
                expect_row: Some(false),
                removed: None,
            }
        }
        Op::UpdateUnfiltered => plain(Action::Update {
            target: None,
            set: change(rows.first()?),
        }),
        Op::HandOver(col) | Op::HandOverUnfiltered(col) => {
            // Someone else's value for the column: from a row this actor may not update.
            let own = pick(rows, allowed, &allowed.update, true)?;
            let value = rows
                .iter()
                .filter(|r| !allowed.update.contains(&r.pk))
                .map(|r| field(&r.image, col))
                .find(|v| *v != field(&own.image, col))?;
            Plan {
                action: Action::Update {
                    target: matches!(op, Op::HandOver(_)).then(|| own.pk.clone()),
                    set: json!({ col: value }),
                },
                expect_row: Some(false),
                removed: None,
            }
        }
        Op::DeleteAllowed | Op::DeleteForbidden => {
            let want = *op == Op::DeleteAllowed;
            let r = pick(rows, allowed, &allowed.delete, want)?;
            Plan {
                action: Action::Delete {
                    target: Some(r.pk.clone()),
                },
                expect_row: Some(want),
                removed: None,
            }
        }
        Op::DeleteUnfiltered => plain(Action::Delete { target: None }),
    })
}

fn tag(seeds: &Seeds, ti: usize, pk: &str) -> String {
    seeds.tag_of(ti, pk).unwrap_or("?").to_owned()
}

fn counts(tags: impl Iterator<Item = String>) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for t in tags {
        *by.entry(t).or_default() += 1;
    }
    by.iter()
        .map(|(t, n)| format!("{t}:{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn moved_columns(table: &Table, old: &Value, new: &Value) -> Vec<String> {
    table
        .spec
        .immutable
        .iter()
        .filter(|c| field(old, c) != field(new, c))
        .cloned()
        .collect()
}

fn describe(table: &Table, seeds: &Seeds, ti: usize, op: &Op, o: &Observed, spec: &Spec) -> String {
    let _ = spec;
    if let Some(code) = &o.refused {
        return format!("refused {code}");
    }
    let mut parts = Vec::new();
    if op.is_select() {
        parts.push(if o.seen.is_empty() {
            "sees none".to_owned()
        } else {
            format!(
                "sees {}",
                counts(o.seen.iter().map(|pk| tag(seeds, ti, pk)))
            )
        });
    }
    if !o.inserted.is_empty() {
        parts.push(format!("inserts {}", o.inserted.len()));
    }
    let (moved, kept): (Vec<_>, Vec<_>) = o
        .updated
        .iter()
        .partition(|(_, old, new)| !moved_columns(table, old, new).is_empty());
    if !kept.is_empty() {
        parts.push(format!(
            "updates {}",
            counts(kept.iter().map(|(pk, _, _)| tag(seeds, ti, pk)))
        ));
    }
    if !moved.is_empty() {
        parts.push(format!(
            "moves {}",
            counts(moved.iter().map(|(pk, _, _)| tag(seeds, ti, pk)))
        ));
    }
    if !o.deleted.is_empty() {
        parts.push(format!(
            "deletes {}",
            counts(o.deleted.iter().map(|pk| tag(seeds, ti, pk)))
        ));
    }
    if parts.is_empty() {
        "0 rows".into()
    } else {
        parts.join(", ")
    }
}

#[allow(clippy::too_many_arguments)]
fn judge(
    table: &Table,
    seeds: &Seeds,
    ti: usize,
    allowed: &Allowed,
    actor: &Actor,
    op: &Op,
    expect_row: Option<bool>,
    o: &Observed,
) -> Verdict {
    let who = &actor.key;
    let of = |pk: &str| tag(seeds, ti, pk);
    if let Some(pk) = o.seen.iter().find(|pk| !allowed.select.contains(*pk)) {
        return Verdict::Leak(format!(
            "{who} sees a row of {} the spec does not show them",
            of(pk)
        ));
    }
    if !o.inserted.is_empty() && expect_row != Some(true) {
        return Verdict::Leak(format!("{who} inserts a row the spec forbids them"));
    }
    if o.inserted.len() > 1 {
        return Verdict::Leak(format!(
            "{who} inserts {} rows with one statement",
            o.inserted.len()
        ));
    }
    for (pk, old, new) in &o.updated {
        if !allowed.update.contains(pk) {
            return Verdict::Leak(format!(
                "{who} updates a row of {} the spec forbids them",
                of(pk)
            ));
        }
        let moved = moved_columns(table, old, new);
        if !moved.is_empty() {
            return Verdict::Leak(format!(
                "{who} re-assigns {} of a row of {}",
                moved.join(", "),
                of(pk)
            ));
        }
    }
    if let Some(pk) = o.deleted.iter().find(|pk| !allowed.delete.contains(*pk)) {
        return Verdict::Leak(format!(
            "{who} deletes a row of {} the spec forbids them",
            of(pk)
        ));
    }
    let lost = |what: String| Verdict::LostAccess(format!("{who} {what}"));
    if let Some(code) = &o.refused {
        // A read is never an error for someone the spec shows rows to, and never anything but
        // a privilege error for anyone (a claims reader that throws is broken for everyone).
        let expected_something = match op {
            Op::Select => !allowed.select.is_empty() || code != "42501",
            // A reader may show less than the table, or be refused: only more is a finding.
            Op::SelectVia(_) => false,
            // A statement with no filter reaches exactly the caller's rows under correct
            // policies, and each of those passes WITH CHECK: refusing it means the USING
            // clause let in a row the check then rejects (a USING looser than the spec).
            Op::UpdateUnfiltered => !allowed.update.is_empty(),
            Op::DeleteUnfiltered => !allowed.delete.is_empty(),
            _ => expect_row == Some(true),
        };
        return if expected_something {
            lost(format!("gets an error ({code}) where the spec allows it"))
        } else {
            Verdict::Ok
        };
    }
    match op {
        Op::Select => match allowed.select.iter().find(|pk| !o.seen.contains(*pk)) {
            Some(pk) => lost(format!(
                "cannot see a row of {} the spec shows them",
                of(pk)
            )),
            None => Verdict::Ok,
        },
        Op::InsertAllowed if o.inserted.is_empty() => {
            lost("cannot insert a row the spec allows".into())
        }
        Op::UpdateAllowed if o.updated.is_empty() => {
            lost("cannot update a row the spec allows".into())
        }
        Op::DeleteAllowed if o.deleted.is_empty() => {
            lost("cannot delete a row the spec allows".into())
        }
        Op::UpdateUnfiltered => {
            let done: BTreeSet<&String> = o.updated.iter().map(|(pk, _, _)| pk).collect();
            match allowed.update.iter().find(|pk| !done.contains(pk)) {
                Some(pk) => lost(format!("cannot update a row of {} the spec allows", of(pk))),
                None => Verdict::Ok,
            }
        }
        Op::DeleteUnfiltered => match allowed.delete.iter().find(|pk| !o.deleted.contains(*pk)) {
            Some(pk) => lost(format!("cannot delete a row of {} the spec allows", of(pk))),
            None => Verdict::Ok,
        },
        _ => Verdict::Ok,
    }
}

impl TableMatrix {
    pub fn leaks(&self) -> Vec<String> {
        self.findings(|v| matches!(v, Verdict::Leak(_)))
    }

    pub fn lost_access(&self) -> Vec<String> {
        self.findings(|v| matches!(v, Verdict::LostAccess(_)))
    }

    fn findings(&self, pick: impl Fn(&Verdict) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        for (op, row) in self.ops.iter().zip(&self.cells) {
            for cell in row {
                if let (true, Verdict::Leak(why) | Verdict::LostAccess(why)) =
                    (pick(&cell.verdict), &cell.verdict)
                {
                    out.push(format!("[{}] {op}: {why}", self.table));
                }
            }
        }
        out
    }

    /// Operations down, actors across; a verdict other than OK is marked.
    pub fn render(&self) -> String {
        let mut header = vec![self.table.clone()];
        header.extend(self.actors.iter().cloned());
        let mut rows = vec![header];
        for (op, cells) in self.ops.iter().zip(&self.cells) {
            let mut row = vec![op.clone()];
            row.extend(
                cells
                    .iter()
                    .map(|c| format!("{}{}", crate::matrix::mark(&c.verdict), c.text)),
            );
            rows.push(row);
        }
        crate::matrix::render_table(&rows)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "table": self.table,
            "actors": self.actors,
            "cells": self.ops.iter().zip(&self.cells).map(|(op, row)| json!({
                "operation": op,
                "results": self.actors.iter().zip(row).map(|(a, c)| json!({
                    "actor": a,
                    "observed": c.text,
                    "verdict": match &c.verdict {
                        Verdict::Ok => json!("ok"),
                        Verdict::Leak(why) => json!({"leak": why}),
                        Verdict::LostAccess(why) => json!({"lost_access": why}),
                    },
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

impl CheckReport {
    fn hostile_leaks(&self) -> impl Iterator<Item = String> + '_ {
        self.hostile.iter().filter_map(|r| match &r.verdict {
            Verdict::Leak(why) => Some(format!("[{}] token \"{}\": {why}", r.table, r.case)),
            _ => None,
        })
    }

    /// Where two runs of the same spec (SQL and HTTP, say) observed different things, over the
    /// tables, operations and actors both have: `[table] op · actor: SQL "…" vs HTTP "…"`.
    /// A cell one observer cannot carry out (a function over HTTP) is not compared.
    pub fn disagreements(&self, other: &CheckReport, names: (&str, &str)) -> Vec<String> {
        let mut out = Vec::new();
        for mine in &self.tables {
            let Some(theirs) = other.table(&mine.table) else {
                continue;
            };
            for (op, row) in mine.ops.iter().zip(&mine.cells) {
                let Some(oi) = theirs.ops.iter().position(|o| o == op) else {
                    continue;
                };
                for (actor, cell) in mine.actors.iter().zip(row) {
                    let Some(ai) = theirs.actors.iter().position(|a| a == actor) else {
                        continue;
                    };
                    let other_cell = &theirs.cells[oi][ai];
                    let unsupported = |c: &SpecCell| c.text.starts_with("n/a over");
                    if unsupported(cell) || unsupported(other_cell) {
                        continue;
                    }
                    if cell.text != other_cell.text
                        || std::mem::discriminant(&cell.verdict)
                            != std::mem::discriminant(&other_cell.verdict)
                    {
                        out.push(format!(
                            "[{}] {op} · {actor}: {} {:?} vs {} {:?}",
                            mine.table, names.0, cell.text, names.1, other_cell.text
                        ));
                    }
                }
            }
        }
        out
    }

    pub fn leaks(&self) -> Vec<String> {
        self.tables
            .iter()
            .flat_map(TableMatrix::leaks)
            .chain(self.hostile_leaks())
            .chain(self.pool.iter().flat_map(|p| p.leaks.iter().cloned()))
            .collect()
    }

    pub fn lost_access(&self) -> Vec<String> {
        self.tables
            .iter()
            .flat_map(TableMatrix::lost_access)
            .chain(self.pool.iter().flat_map(|p| p.lost.iter().cloned()))
            .collect()
    }

    pub fn cell_count(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.cells.iter().map(Vec::len).sum::<usize>())
            .sum()
    }

    pub fn table(&self, name: &str) -> Option<&TableMatrix> {
        self.tables.iter().find(|t| t.table == name)
    }

    /// Every matrix, the actors' ids, and the findings.
    pub fn render(&self) -> String {
        let mut out = String::from("actors: ");
        out.push_str(
            &self
                .actors
                .iter()
                .map(|(k, id)| format!("{k} = {id:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push_str("\n\n");
        for t in &self.tables {
            out.push_str(&t.render());
            out.push('\n');
        }
        if !self.hostile.is_empty() {
            out.push_str(&hostile::render(&self.hostile));
            out.push('\n');
        }
        if let Some(pool) = &self.pool {
            out.push_str(&pool.render());
            out.push('\n');
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "actors": self.actors.iter().map(|(k, id)| json!({"key": k, "id": id})).collect::<Vec<_>>(),
            "tables": self.tables.iter().map(TableMatrix::to_json).collect::<Vec<_>>(),
            "leaks": self.leaks(),
            "lost_access": self.lost_access(),
            "cells": self.cell_count(),
            "pool_bleed": self.pool.as_ref().map(|p| json!({
                "reads": p.reads, "leaks": p.leaks, "lost": p.lost,
            })),
            "hostile_tokens": self.hostile.iter().map(|r| json!({
                "table": r.table,
                "case": r.case,
                "status": r.status,
                "error": r.error,
                "contract_status": r.contract,
                "observed": r.observed,
                "leak": match &r.verdict { Verdict::Leak(why) => Some(why), _ => None },
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_replace_only_the_first_two_parameters() {
        let p = Predicate(placeholders(
            "t.a = $1 and $2 = 'x' and t.b = $10 and '$1x'",
        ));
        assert_eq!(
            p.render("a.id", "a.role"),
            "t.a = a.id and a.role = 'x' and t.b = $10 and 'a.idx'"
        );
    }
}
