//! Stage 1, **bind**: the spec against the live catalog. Every table, column and relation the
//! spec names must exist; the rules become one SQL [`Predicate`] per command; the tables are put
//! in seeding (foreign-key) order. Hands a [`BoundSpec`] to the seed stage. Nothing is written.

use std::collections::{BTreeMap, BTreeSet};

use harness::target::quote_ident;
use serde_json::Value;
use sqlx::PgConnection;

use super::model::{BoundSpec, EMAIL, Error, ID, Predicate, ROLE, Reader, Table, sql_err};

mod derive;
use crate::spec::{Command, Rule, Spec, SpecError, TableSpec};
use derive::{policy_reads, variants};

impl BoundSpec {
    /// Checks the spec against the catalog of `admin`'s database (after the migrations) and
    /// orders its tables for seeding. Nothing is written.
    pub async fn bind(spec: &Spec, admin: &mut PgConnection) -> Result<Self, Error> {
        let (reads, combos) = policy_reads(spec, admin).await?;
        let mut tables = Vec::new();
        for t in &spec.tables {
            let read = reads.get(&t.name).cloned().unwrap_or_default();
            let mut table = bind_table(spec, t, &read, admin).await?;
            // A branch's values together, on the columns the seeding varies (so neither a
            // relation nor the key), where it needs more than one.
            let varied: Vec<&String> = table.variants.iter().map(|(c, _)| c).collect();
            for combo in combos.get(&t.name).into_iter().flatten() {
                let combo: Vec<(String, Value)> = combo
                    .iter()
                    .filter(|(c, _)| varied.contains(&c))
                    .cloned()
                    .collect();
                if combo.len() > 1 && !table.combos.contains(&combo) {
                    table.combos.push(combo);
                }
            }
            tables.push(table);
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
}

/// `$1` → the caller's id, `$2` → the role, `$3` → the forwarded email, in a spec's own SQL
/// (not `$10`, `$21`, …).
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$'
            && let Some(&d) = chars.peek()
            && matches!(d, '1' | '2' | '3')
        {
            chars.next();
            if chars.peek().is_some_and(char::is_ascii_digit) {
                out.push('$');
                out.push(d);
            } else {
                out.push_str(match d {
                    '1' => ID,
                    '2' => ROLE,
                    _ => EMAIL,
                });
            }
            continue;
        }
        out.push(c);
    }
    out
}

pub(crate) fn invalid(spec: &Spec, t: &TableSpec, key: &str, message: String) -> Error {
    Error::Spec(SpecError::Invalid {
        path: spec.path.clone(),
        line: t.line_of(key.split('.').next().unwrap_or(key)),
        key: format!("tables.{}.{key}", t.name),
        message,
    })
}

struct Catalog {
    columns: Vec<(String, bool, bool, bool)>, // name, generated, not null, has default
    pk: Vec<String>,
    /// The columns of each unique index (the primary key's included), full (non-partial)
    /// indexes on plain columns only, primary key first.
    unique: Vec<Vec<String>>,
    /// Columns of a text or number type (a seed value there can be made unique).
    derivable: BTreeSet<String>,
}

async fn catalog(
    admin: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Result<Option<Catalog>, Error> {
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
    let unique: Vec<Vec<String>> = sqlx::query_scalar(
        "select array_agg(a.attname::text order by k.n) from pg_index i \
         cross join lateral unnest(i.indkey) with ordinality k(attnum, n) \
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum \
         where i.indrelid = $1 and i.indisunique and i.indpred is null and i.indexprs is null \
         group by i.indexrelid, i.indisprimary order by i.indisprimary desc, i.indexrelid",
    )
    .bind(oid)
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("read the catalog"))?;
    let derivable: BTreeSet<String> = sqlx::query_scalar::<_, String>(
        "select a.attname::text from pg_attribute a join pg_type ty on ty.oid = a.atttypid \
         where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped \
           and ty.typcategory in ('S', 'N')",
    )
    .bind(oid)
    .fetch_all(&mut *admin)
    .await
    .map_err(sql_err("read the catalog"))?
    .into_iter()
    .collect();
    Ok(Some(Catalog {
        columns,
        pk,
        unique,
        derivable,
    }))
}

async fn bind_table(
    spec: &Spec,
    t: &TableSpec,
    read: &BTreeMap<String, Vec<Value>>,
    admin: &mut PgConnection,
) -> Result<Table, Error> {
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
    for row in &t.rows {
        if let Some(col) = row.values.keys().find(|c| !has(c)) {
            return Err(Error::Spec(SpecError::Invalid {
                path: spec.path.clone(),
                line: row.line,
                key: format!("tables.{}.rows", t.name),
                message: format!(
                    "`{}` has no column `{col}` (its columns: {})",
                    t.name,
                    names.join(", ")
                ),
            }));
        }
    }
    // Rows are told apart by the primary key; without one, by the first unique key whose
    // columns are all NOT NULL; without that, by all of their columns.
    let not_null = |c: &String| cat.columns.iter().any(|col| &col.0 == c && col.2);
    let key: Vec<String> = if cat.pk.is_empty() {
        cat.unique
            .iter()
            .find(|u| u.iter().all(not_null))
            .cloned()
            .unwrap_or_else(|| {
                cat.columns
                    .iter()
                    .filter(|c| !c.1)
                    .map(|c| c.0.clone())
                    .collect()
            })
    } else {
        cat.pk.clone()
    };
    // Payload values the catalog demands unique per row: text and number columns of a unique
    // key made of payload columns only (a key with a relation column varies with it already).
    let unique_columns: BTreeSet<String> = cat
        .unique
        .iter()
        .filter(|u| u.iter().all(|c| !relation_cols.contains(c)))
        .flatten()
        .filter(|c| cat.derivable.contains(*c))
        .cloned()
        .collect();
    // Only a table someone may update needs a column to change; where nobody may, the update
    // cells (which must change nothing) write a relation column: another seed row's value
    // there is always one the table accepts.
    let nobody_updates = t.rules.get(&Command::Update).is_none_or(Vec::is_empty);
    let change = match &t.change {
        Some(c) if has(c) => c.clone(),
        Some(c) => return Err(missing("change", c)),
        None => t
            .payload
            .keys()
            .find(|c| !relation_cols.contains(c) && !t.immutable.contains(c))
            .or_else(|| relation_cols.first().filter(|_| nobody_updates))
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
    // Without a primary key a row is known by its key's values: an update that changes one
    // would read as a row deleted and another inserted.
    if cat.pk.is_empty() && !nobody_updates && key.contains(&change) {
        return Err(invalid(
            spec,
            t,
            "change",
            format!(
                "`{}` has no primary key, so the check knows its rows by ({}): set `change` to \
                 a column outside them (or add a primary key)",
                t.name,
                key.join(", ")
            ),
        ));
    }
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
    // The columns the policies read are carried by an insert too: a row derived from them
    // (`personal_account = true`) is inserted as it was seeded, not with the column's default.
    let variants = variants(admin, &spec.schema, &t.name, read, &relation_cols, &key).await?;
    let candidate_columns = writable
        .iter()
        .filter(|c| {
            variants.iter().any(|(v, _)| v == *c)
                || relation_cols.contains(c)
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
    let readers = readers(admin, &spec.schema, &t.name, &key).await?;
    let movable = match (&t.parent, t.immutable_explicit) {
        (Some(p), false) => p.on.iter().map(|(mine, _)| mine.clone()).collect(),
        _ => Vec::new(),
    };
    let role_preds = spec
        .role_cells(t)
        .into_iter()
        .map(|role| {
            let sql = member(spec, t, "t", Some(std::slice::from_ref(&role)), 0);
            (role, Predicate(format!("coalesce({sql}, false)")))
        })
        .collect();
    Ok(Table {
        variants,
        movable,
        role_preds,
        member_user: spec
            .tables
            .iter()
            .filter_map(|o| o.members.as_ref())
            .find(|m| m.table == t.name)
            .map(|m| m.user.clone()),
        combos: Vec::new(),
        readers,
        qname: format!("{}.{}", quote_ident(&spec.schema), quote_ident(&t.name)),
        spec: t.clone(),
        pk: key,
        unique_columns,
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
) -> Result<Vec<Reader>, Error> {
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
        .map(|r| format!("({})", rule_sql(spec, t, r)))
        .collect();
    Predicate(format!("coalesce({}, false)", parts.join(" or ")))
}

/// One rule as SQL over `t`, with the caller's placeholders.
fn rule_sql(spec: &Spec, t: &TableSpec, rule: &Rule) -> String {
    match rule {
        Rule::Anyone => "true".to_owned(),
        Rule::SignedIn => format!("{ROLE} = 'authenticated'"),
        Rule::Owner => format!(
            "t.{} = {ID}",
            quote_ident(t.owner.as_deref().unwrap_or_default())
        ),
        Rule::Member(roles) => member(spec, t, "t", roles.as_deref(), 0),
        Rule::Predicate(sql) => placeholders(sql),
        Rule::Role(role) => format!("{ROLE} = {}", harness::target::quote_literal(role)),
        Rule::Email(pattern) => {
            // The glob as a LIKE pattern: `*` → `%`, LIKE's own wildcards taken literally.
            let like: String = pattern
                .chars()
                .flat_map(|c| match c {
                    '*' => vec!['%'],
                    '%' | '_' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            format!(
                "coalesce({EMAIL} like {}, false)",
                harness::target::quote_literal(&like)
            )
        }
        Rule::All(rules) => {
            let parts: Vec<String> = rules
                .iter()
                .map(|r| format!("coalesce(({}), false)", rule_sql(spec, t, r)))
                .collect();
            parts.join(" and ")
        }
    }
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
) -> Result<(Vec<usize>, Vec<(String, String)>), Error> {
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
                None => Error::Spec(SpecError::Invalid {
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
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_replace_only_the_first_two_parameters() {
        let p = Predicate(placeholders(
            "t.a = $1 and $2 = 'x' and t.b = $10 and '$1x' and t.e = $3 and $31",
        ));
        assert_eq!(
            p.render("a.id", "a.role", "a.email"),
            "t.a = a.id and a.role = 'x' and t.b = $10 and 'a.idx' and t.e = a.email and $31"
        );
    }
}
