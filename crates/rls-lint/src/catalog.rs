//! Reads everything the rules look at from the system catalogs, in one read-only snapshot, into
//! plain structs. No rule talks to the database: they all run on this [`Catalog`].

use std::collections::{BTreeMap, HashMap};

use sqlx::postgres::PgConnection;
use sqlx::{Connection, FromRow};

use crate::error::LintError;
use crate::options::LintOptions;

/// A command a policy or privilege is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Command {
    Select,
    Insert,
    Update,
    Delete,
    All,
}

impl Command {
    fn from_polcmd(code: &str) -> Self {
        match code {
            "r" => Self::Select,
            "a" => Self::Insert,
            "w" => Self::Update,
            "d" => Self::Delete,
            _ => Self::All,
        }
    }

    pub(crate) fn sql(self) -> &'static str {
        match self {
            Self::Select => "SELECT",
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::All => "ALL",
        }
    }

    /// Whether a policy for `self` also governs `command`.
    pub(crate) fn covers(self, command: Self) -> bool {
        self == command || self == Self::All
    }

    pub(crate) const EACH: [Self; 4] = [Self::Select, Self::Insert, Self::Update, Self::Delete];
}

/// A role the rules care about (the app's login role or an exposed role).
#[derive(Debug, Clone)]
pub(crate) struct Role {
    pub superuser: bool,
    pub bypassrls: bool,
    /// Other roles it can become with SET ROLE, with their attributes.
    pub can_become: Vec<(String, bool, bool)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Relation {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    /// `r` table, `p` partitioned table, `v` view, `m` materialized view, `f` foreign table.
    pub kind: char,
    pub owner: String,
    pub owner_bypasses: bool,
    pub rls: bool,
    pub force: bool,
    pub options: Vec<String>,
    /// `(role, privilege)` for the exposed roles, only for relations in checked schemas.
    pub grants: Vec<(String, Command)>,
    /// The app role and exposed roles that can become the owner.
    pub owner_reachable_by: Vec<String>,
    /// The extension the relation belongs to (PostGIS' `spatial_ref_sys`, say).
    pub extension: Option<String>,
    pub checked: bool,
}

impl Relation {
    pub(crate) fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub(crate) fn is_table(&self) -> bool {
        matches!(self.kind, 'r' | 'p')
    }

    pub(crate) fn can(&self, role: &str, command: Command) -> bool {
        self.grants.iter().any(|(r, c)| r == role && *c == command)
    }

    /// The boolean value of a reloption such as `security_invoker`.
    pub(crate) fn option_enabled(&self, name: &str) -> bool {
        self.options.iter().any(|o| {
            o.split_once('=').is_some_and(|(k, v)| {
                k.eq_ignore_ascii_case(name)
                    && matches!(v.to_ascii_lowercase().as_str(), "true" | "on" | "yes" | "1")
            })
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub attnum: i16,
    /// The base type (domains resolved), as `regtype` prints it: `uuid`, `text`.
    pub base_type: String,
    pub default: Option<String>,
    pub not_null: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Index {
    /// The index's name, schema-qualified.
    pub name: String,
    /// Attribute number of the leading key column; 0 for an expression.
    pub first_attnum: i16,
    /// Attribute numbers of every key column (0 for an expression).
    pub keys: Vec<i16>,
    pub unique: bool,
    pub primary: bool,
    /// A partial index (`WHERE …`).
    pub partial: bool,
}

/// A foreign key of a checked table.
#[derive(Debug, Clone)]
pub(crate) struct ForeignKey {
    pub name: String,
    pub parent_oid: i64,
    /// Attribute numbers of the referencing columns.
    pub columns: Vec<i16>,
}

/// A user trigger on a checked table.
#[derive(Debug, Clone)]
pub(crate) struct Trigger {
    pub name: String,
    /// `schema.name` of the trigger function.
    pub function_schema: String,
    pub function_name: String,
    pub before: bool,
    pub for_each_row: bool,
    pub on_update: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub table_oid: i64,
    pub name: String,
    pub command: Command,
    pub permissive: bool,
    /// Exposed roles the policy applies to (directly, through `PUBLIC`, or by inheritance).
    pub applies_to: Vec<String>,
    pub using: Option<String>,
    pub check: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Function {
    pub schema: String,
    pub name: String,
    pub identity_args: String,
    /// Arguments a caller must pass (those without defaults).
    pub required_args: i16,
    pub language: String,
    pub security_definer: bool,
    /// `i` immutable, `s` stable, `v` volatile.
    pub volatility: char,
    pub leakproof: bool,
    pub config: Vec<String>,
    pub owner: String,
    pub owner_bypasses: bool,
    pub returns: String,
    pub body: String,
    pub from_extension: bool,
    pub executable_by: Vec<String>,
    pub checked: bool,
}

impl Function {
    pub(crate) fn signature(&self) -> String {
        format!("{}.{}({})", self.schema, self.name, self.identity_args)
    }

    /// The schemas named by a `SET search_path` on the function, when it has one.
    pub(crate) fn search_path(&self) -> Option<Vec<String>> {
        self.config.iter().find_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            key.eq_ignore_ascii_case("search_path").then(|| {
                value
                    .split(',')
                    .map(|s| s.trim().trim_matches('"').to_owned())
                    .filter(|s| !s.is_empty() && s != "$user")
                    .collect()
            })
        })
    }
}

/// Everything the rules read, from one snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    /// Checked schemas that exist.
    pub schemas: Vec<String>,
    pub missing_schemas: Vec<String>,
    /// Configured roles (app and exposed) that exist, by name.
    pub roles: BTreeMap<String, Role>,
    pub missing_roles: Vec<String>,
    pub relations: Vec<Relation>,
    pub columns: HashMap<i64, Vec<Column>>,
    pub indexes: HashMap<i64, Vec<Index>>,
    pub triggers: HashMap<i64, Vec<Trigger>>,
    pub foreign_keys: HashMap<i64, Vec<ForeignKey>>,
    pub policies: Vec<Policy>,
    pub functions: Vec<Function>,
    /// View or materialized view → relations its rewrite rule reads.
    pub view_reads: HashMap<i64, Vec<i64>>,
}

/// Opens a read-only snapshot (a savepoint when the caller is already in a transaction), with
/// `search_path` emptied so `pg_get_expr` schema-qualifies every non-catalog name, and reads.
pub(crate) async fn load(
    conn: &mut PgConnection,
    options: &LintOptions,
) -> Result<Catalog, LintError> {
    let mut tx = if conn.is_in_transaction() {
        conn.begin().await
    } else {
        conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
    }
    .map_err(LintError::query("begin a read-only snapshot"))?;
    sqlx::query("select set_config('search_path', '', true)")
        .execute(&mut *tx)
        .await
        .map_err(LintError::query("empty search_path"))?;
    let catalog = read(&mut tx, options).await;
    // Nothing was written; rolling back also restores the caller's search_path.
    tx.rollback()
        .await
        .map_err(LintError::query("end the snapshot"))?;
    catalog
}

async fn read(conn: &mut PgConnection, options: &LintOptions) -> Result<Catalog, LintError> {
    let version: i32 = sqlx::query_scalar("select current_setting('server_version_num')::int4")
        .fetch_one(&mut *conn)
        .await
        .map_err(LintError::query("server version"))?;
    if version < 140_000 {
        return Err(LintError::UnsupportedServer(version));
    }
    // PostgreSQL 16 split membership from the right to SET ROLE.
    let become_privilege = if version >= 160_000 { "SET" } else { "MEMBER" };

    let existing_schemas: Vec<String> = sqlx::query_scalar(
        "select nspname::text from pg_namespace where nspname = any($1) order by 1",
    )
    .bind(&options.schemas)
    .fetch_all(&mut *conn)
    .await
    .map_err(LintError::query("schemas"))?;
    let missing_schemas = options
        .schemas
        .iter()
        .filter(|s| !existing_schemas.contains(s))
        .cloned()
        .collect();

    let configured: Vec<String> = options.configured_roles();
    let roles = read_roles(conn, &configured, become_privilege).await?;
    let missing_roles = configured
        .iter()
        .filter(|r| !roles.contains_key(*r))
        .cloned()
        .collect();
    let exposed: Vec<String> = options
        .exposed_roles
        .iter()
        .filter(|r| roles.contains_key(*r))
        .cloned()
        .collect();
    let known: Vec<String> = roles.keys().cloned().collect();

    let relations =
        read_relations(conn, &existing_schemas, &exposed, &known, become_privilege).await?;
    let columns = read_columns(conn, &existing_schemas).await?;
    let indexes = read_indexes(conn, &existing_schemas).await?;
    let triggers = read_triggers(conn, &existing_schemas).await?;
    let foreign_keys = read_foreign_keys(conn, &existing_schemas).await?;
    let policies = read_policies(conn, &existing_schemas, &exposed).await?;
    let functions = read_functions(conn, &existing_schemas, &exposed).await?;
    let view_reads = read_view_reads(conn).await?;

    Ok(Catalog {
        schemas: existing_schemas,
        missing_schemas,
        roles,
        missing_roles,
        relations,
        columns,
        indexes,
        triggers,
        foreign_keys,
        policies,
        functions,
        view_reads,
    })
}

#[derive(FromRow)]
struct RoleRow {
    name: String,
    superuser: bool,
    bypassrls: bool,
}

#[derive(FromRow)]
struct BecomeRow {
    member: String,
    target: String,
    superuser: bool,
    bypassrls: bool,
}

async fn read_roles(
    conn: &mut PgConnection,
    names: &[String],
    become_privilege: &str,
) -> Result<BTreeMap<String, Role>, LintError> {
    let rows: Vec<RoleRow> = sqlx::query_as(
        "select rolname::text as name, rolsuper as superuser, rolbypassrls as bypassrls
           from pg_roles where rolname = any($1)",
    )
    .bind(names)
    .fetch_all(&mut *conn)
    .await
    .map_err(LintError::query("roles"))?;
    // pg_has_role follows pg_auth_members transitively, which a recursive CTE would redo.
    let become_rows: Vec<BecomeRow> = sqlx::query_as(
        "select m.rolname::text as member, r.rolname::text as target,
                r.rolsuper as superuser, r.rolbypassrls as bypassrls
           from pg_roles m
           join pg_roles r on r.oid <> m.oid
          where m.rolname = any($1) and pg_has_role(m.oid, r.oid, $2)
          order by 1, 2",
    )
    .bind(names)
    .bind(become_privilege)
    .fetch_all(&mut *conn)
    .await
    .map_err(LintError::query("role memberships"))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let can_become = become_rows
                .iter()
                .filter(|b| b.member == row.name)
                .map(|b| (b.target.clone(), b.superuser, b.bypassrls))
                .collect();
            (
                row.name,
                Role {
                    superuser: row.superuser,
                    bypassrls: row.bypassrls,
                    can_become,
                },
            )
        })
        .collect())
}

#[derive(FromRow)]
struct RelationRow {
    oid: i64,
    schema: String,
    name: String,
    kind: String,
    owner: String,
    owner_bypasses: bool,
    rls: bool,
    force: bool,
    options: Vec<String>,
    grants: Vec<String>,
    owner_reachable_by: Vec<String>,
    extension: Option<String>,
    checked: bool,
}

/// System schemas never hold the project's objects.
const USER_SCHEMAS: &str =
    "n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_%'";

async fn read_relations(
    conn: &mut PgConnection,
    schemas: &[String],
    exposed: &[String],
    known_roles: &[String],
    become_privilege: &str,
) -> Result<Vec<Relation>, LintError> {
    let sql = format!(
        "select c.oid::int8 as oid, n.nspname::text as schema, c.relname::text as name,
                c.relkind::text as kind, o.rolname::text as owner,
                (o.rolsuper or o.rolbypassrls) as owner_bypasses,
                c.relrowsecurity as rls, c.relforcerowsecurity as force,
                coalesce(c.reloptions, '{{}}')::text[] as options,
                case when n.nspname = any($1) then array(
                  select e || ':' || p
                    from unnest($2::text[]) e
                   cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p
                   where case when p = 'DELETE' then has_table_privilege(e, c.oid, p)
                              else has_any_column_privilege(e, c.oid, p) end
                   order by 1)
                else '{{}}'::text[] end as grants,
                array(select k from unnest($3::text[]) k
                       where pg_has_role(k, c.relowner, $4) order by 1) as owner_reachable_by,
                (select e.extname::text from pg_depend d join pg_extension e on e.oid = d.refobjid
                  where d.classid = 'pg_class'::regclass and d.objid = c.oid
                    and d.refclassid = 'pg_extension'::regclass and d.deptype = 'e'
                  limit 1) as extension,
                n.nspname = any($1) as checked
           from pg_class c
           join pg_namespace n on n.oid = c.relnamespace
           join pg_roles o on o.oid = c.relowner
          where c.relkind in ('r', 'p', 'v', 'm', 'f') and {USER_SCHEMAS}
          order by 2, 3"
    );
    let rows: Vec<RelationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(schemas)
        .bind(exposed)
        .bind(known_roles)
        .bind(become_privilege)
        .fetch_all(&mut *conn)
        .await
        .map_err(LintError::query("relations"))?;
    Ok(rows
        .into_iter()
        .map(|r| Relation {
            oid: r.oid,
            schema: r.schema,
            name: r.name,
            kind: r.kind.chars().next().unwrap_or('r'),
            owner: r.owner,
            owner_bypasses: r.owner_bypasses,
            rls: r.rls,
            force: r.force,
            options: r.options,
            grants: r
                .grants
                .iter()
                .filter_map(|g| {
                    let (role, privilege) = g.rsplit_once(':')?;
                    let command = match privilege {
                        "SELECT" => Command::Select,
                        "INSERT" => Command::Insert,
                        "UPDATE" => Command::Update,
                        _ => Command::Delete,
                    };
                    Some((role.to_owned(), command))
                })
                .collect(),
            owner_reachable_by: r.owner_reachable_by,
            extension: r.extension,
            checked: r.checked,
        })
        .collect())
}

#[derive(FromRow)]
struct ColumnRow {
    table_oid: i64,
    name: String,
    attnum: i16,
    base_type: String,
    default_expr: Option<String>,
    not_null: bool,
}

async fn read_columns(
    conn: &mut PgConnection,
    schemas: &[String],
) -> Result<HashMap<i64, Vec<Column>>, LintError> {
    let rows: Vec<ColumnRow> = sqlx::query_as(
        "select a.attrelid::int8 as table_oid, a.attname::text as name, a.attnum,
                (case when t.typtype = 'd' then t.typbasetype else t.oid end)::regtype::text as base_type,
                pg_get_expr(d.adbin, d.adrelid) as default_expr, a.attnotnull as not_null
           from pg_attribute a
           join pg_class c on c.oid = a.attrelid
           join pg_namespace n on n.oid = c.relnamespace
           join pg_type t on t.oid = a.atttypid
           left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
          where n.nspname = any($1) and c.relkind in ('r', 'p')
            and a.attnum > 0 and not a.attisdropped
          order by 1, 3",
    )
    .bind(schemas)
    .fetch_all(&mut *conn)
    .await
    .map_err(LintError::query("columns"))?;
    let mut columns: HashMap<i64, Vec<Column>> = HashMap::new();
    for row in rows {
        columns.entry(row.table_oid).or_default().push(Column {
            name: row.name,
            attnum: row.attnum,
            base_type: row.base_type,
            default: row.default_expr,
            not_null: row.not_null,
        });
    }
    Ok(columns)
}

#[derive(FromRow)]
struct IndexRow {
    table_oid: i64,
    name: String,
    keys: Vec<i16>,
    unique: bool,
    primary: bool,
    partial: bool,
}

async fn read_indexes(
    conn: &mut PgConnection,
    schemas: &[String],
) -> Result<HashMap<i64, Vec<Index>>, LintError> {
    // int2vector subscripts start at 0: indkey[0] is the leading key column.
    let rows: Vec<IndexRow> = sqlx::query_as(
        "select i.indrelid::int8 as table_oid, i.indexrelid::regclass::text as name,
                coalesce((select array_agg(k::int2 order by o) from unnest(i.indkey::int2[])
                   with ordinality as u(k, o) where o <= i.indnkeyatts), '{}') as keys,
                i.indisunique as unique, i.indisprimary as primary,
                i.indpred is not null as partial
           from pg_index i
           join pg_class c on c.oid = i.indrelid
           join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = any($1)",
    )
    .bind(schemas)
    .fetch_all(&mut *conn)
    .await
    .map_err(LintError::query("indexes"))?;
    let mut indexes: HashMap<i64, Vec<Index>> = HashMap::new();
    for row in rows {
        indexes.entry(row.table_oid).or_default().push(Index {
            name: row.name,
            first_attnum: row.keys.first().copied().unwrap_or(0),
            keys: row.keys,
            unique: row.unique,
            primary: row.primary,
            partial: row.partial,
        });
    }
    Ok(indexes)
}

#[derive(FromRow)]
struct ForeignKeyRow {
    table_oid: i64,
    name: String,
    parent_oid: i64,
    columns: Vec<i16>,
}

async fn read_foreign_keys(
    conn: &mut PgConnection,
    schemas: &[String],
) -> Result<HashMap<i64, Vec<ForeignKey>>, LintError> {
    let rows: Vec<ForeignKeyRow> = sqlx::query_as(
        "select k.conrelid::int8 as table_oid, k.conname::text as name,
                k.confrelid::int8 as parent_oid, k.conkey::int2[] as columns
           from pg_constraint k
           join pg_class c on c.oid = k.conrelid
           join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = any($1) and k.contype = 'f'
          order by 1, 2",
    )
    .bind(schemas)
    .fetch_all(&mut *conn)
    .await
    .map_err(LintError::query("foreign keys"))?;
    let mut keys: HashMap<i64, Vec<ForeignKey>> = HashMap::new();
    for row in rows {
        keys.entry(row.table_oid).or_default().push(ForeignKey {
            name: row.name,
            parent_oid: row.parent_oid,
            columns: row.columns,
        });
    }
    Ok(keys)
}

#[derive(FromRow)]
struct TriggerRow {
    table_oid: i64,
    name: String,
    function_schema: String,
    function_name: String,
    kind: i16,
}

async fn read_triggers(
    conn: &mut PgConnection,
    schemas: &[String],
) -> Result<HashMap<i64, Vec<Trigger>>, LintError> {
    let rows: Vec<TriggerRow> = sqlx::query_as(
        "select t.tgrelid::int8 as table_oid, t.tgname::text as name,
                fn.nspname::text as function_schema, f.proname::text as function_name,
                t.tgtype::int2 as kind
           from pg_trigger t
           join pg_class c on c.oid = t.tgrelid
           join pg_namespace n on n.oid = c.relnamespace
           join pg_proc f on f.oid = t.tgfoid
           join pg_namespace fn on fn.oid = f.pronamespace
          where n.nspname = any($1) and not t.tgisinternal
          order by 1, 2",
    )
    .bind(schemas)
    .fetch_all(&mut *conn)
    .await
    .map_err(LintError::query("triggers"))?;
    let mut triggers: HashMap<i64, Vec<Trigger>> = HashMap::new();
    for row in rows {
        // tgtype bits (pg_trigger.h): 0 row, 1 before, 2 insert, 3 delete, 4 update.
        triggers.entry(row.table_oid).or_default().push(Trigger {
            name: row.name,
            function_schema: row.function_schema,
            function_name: row.function_name,
            for_each_row: row.kind & 1 != 0,
            before: row.kind & 2 != 0,
            on_update: row.kind & 16 != 0,
        });
    }
    Ok(triggers)
}

#[derive(FromRow)]
struct PolicyRow {
    table_oid: i64,
    name: String,
    command: String,
    permissive: bool,
    applies_to: Vec<String>,
    using_expr: Option<String>,
    check_expr: Option<String>,
}

async fn read_policies(
    conn: &mut PgConnection,
    schemas: &[String],
    exposed: &[String],
) -> Result<Vec<Policy>, LintError> {
    // Role 0 in polroles is PUBLIC. A policy applies to a role that has the privileges of one
    // of its roles (USAGE: membership with INHERIT), as the executor checks it.
    let rows: Vec<PolicyRow> = sqlx::query_as(
        "select p.polrelid::int8 as table_oid, p.polname::text as name, p.polcmd::text as command,
                p.polpermissive as permissive,
                array(select e from unnest($2::text[]) e
                       where 0 = any(p.polroles)
                          or exists (select 1 from unnest(p.polroles) r
                                      where r <> 0 and pg_has_role(e, r, 'USAGE'))
                       order by 1) as applies_to,
                pg_get_expr(p.polqual, p.polrelid) as using_expr,
                pg_get_expr(p.polwithcheck, p.polrelid) as check_expr
           from pg_policy p
           join pg_class c on c.oid = p.polrelid
           join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = any($1)
          order by n.nspname, c.relname, p.polname",
    )
    .bind(schemas)
    .bind(exposed)
    .fetch_all(&mut *conn)
    .await
    .map_err(LintError::query("policies"))?;
    Ok(rows
        .into_iter()
        .map(|r| Policy {
            table_oid: r.table_oid,
            name: r.name,
            command: Command::from_polcmd(&r.command),
            permissive: r.permissive,
            applies_to: r.applies_to,
            using: r.using_expr,
            check: r.check_expr,
        })
        .collect())
}

#[derive(FromRow)]
struct FunctionRow {
    schema: String,
    name: String,
    identity_args: String,
    required_args: i16,
    language: String,
    security_definer: bool,
    volatility: String,
    leakproof: bool,
    config: Vec<String>,
    owner: String,
    owner_bypasses: bool,
    returns: String,
    body: Option<String>,
    from_extension: bool,
    executable_by: Vec<String>,
    checked: bool,
}

async fn read_functions(
    conn: &mut PgConnection,
    schemas: &[String],
    exposed: &[String],
) -> Result<Vec<Function>, LintError> {
    // A `BEGIN ATOMIC` body lives in prosqlbody, with prosrc empty: the definition has it.
    let sql = format!(
        "select n.nspname::text as schema, p.proname::text as name,
                pg_get_function_identity_arguments(p.oid) as identity_args,
                (p.pronargs - p.pronargdefaults)::int2 as required_args,
                l.lanname::text as language, p.prosecdef as security_definer,
                p.provolatile::text as volatility, p.proleakproof as leakproof,
                coalesce(p.proconfig, '{{}}')::text[] as config,
                o.rolname::text as owner, (o.rolsuper or o.rolbypassrls) as owner_bypasses,
                p.prorettype::regtype::text as returns,
                case when p.prosqlbody is not null then pg_get_functiondef(p.oid) else p.prosrc end as body,
                exists (select 1 from pg_depend d
                         where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                           and d.deptype = 'e') as from_extension,
                case when n.nspname = any($1) then array(
                  select e from unnest($2::text[]) e
                   where has_function_privilege(e, p.oid, 'EXECUTE') order by 1)
                else '{{}}'::text[] end as executable_by,
                n.nspname = any($1) as checked
           from pg_proc p
           join pg_namespace n on n.oid = p.pronamespace
           join pg_language l on l.oid = p.prolang
           join pg_roles o on o.oid = p.proowner
          where p.prokind in ('f', 'p') and {USER_SCHEMAS}
          order by 2, 3, 4"
    );
    let rows: Vec<FunctionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(schemas)
        .bind(exposed)
        .fetch_all(&mut *conn)
        .await
        .map_err(LintError::query("functions"))?;
    Ok(rows
        .into_iter()
        .map(|r| Function {
            schema: r.schema,
            name: r.name,
            identity_args: r.identity_args,
            required_args: r.required_args,
            language: r.language,
            security_definer: r.security_definer,
            volatility: r.volatility.chars().next().unwrap_or('v'),
            leakproof: r.leakproof,
            config: r.config,
            owner: r.owner,
            owner_bypasses: r.owner_bypasses,
            returns: r.returns,
            body: r.body.unwrap_or_default(),
            from_extension: r.from_extension,
            executable_by: r.executable_by,
            checked: r.checked,
        })
        .collect())
}

#[derive(FromRow)]
struct ViewReadRow {
    view_oid: i64,
    relation_oid: i64,
}

async fn read_view_reads(conn: &mut PgConnection) -> Result<HashMap<i64, Vec<i64>>, LintError> {
    // A view's rewrite rule depends on every relation it reads.
    let rows: Vec<ViewReadRow> = sqlx::query_as(
        "select distinct rw.ev_class::int8 as view_oid, d.refobjid::int8 as relation_oid
           from pg_rewrite rw
           join pg_class v on v.oid = rw.ev_class and v.relkind in ('v', 'm')
           join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = rw.oid
          where d.refclassid = 'pg_class'::regclass and d.refobjid <> rw.ev_class
          order by 1, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(LintError::query("view dependencies"))?;
    let mut reads: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in rows {
        reads
            .entry(row.view_oid)
            .or_default()
            .push(row.relation_oid);
    }
    Ok(reads)
}
