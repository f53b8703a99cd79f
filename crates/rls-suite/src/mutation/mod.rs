//! Mutants generated from the live catalog: each policy on a spec table weakened one way at a
//! time (USING → true, WITH CHECK → true, WITH CHECK dropped, the policy dropped), and each
//! table opened up (a permissive `anon` policy per command, RLS not forced with `authenticated`
//! owning the table, RLS disabled). Each mutant is applied in a savepoint of a seeded session
//! (one transaction on a database of its own, never committed; see [`run()`]), judged there by
//! the spec's matrices (of the tables whose policies can see the change) and the lint, and
//! rolled back: a mutant is **killed** when either finds something the unmutated schema, run
//! the same way, did not have. A survivor means the checks would not notice that weakening — unless the spec
//! marks it equivalent, with a reason.
//!
//! The operators are a type ([`Operator`], one variant per operator with its doc line), and
//! each family has its generator: clause operators (`clause.rs`) rewrite whole clauses from the catalog
//! (`pg_policy`); expression operators (`expression.rs`) change a predicate's inside — the `pg_get_expr` text
//! is parsed ([`crate::policy_expr`], sqlparser's PostgreSQL dialect), mutated as a tree and
//! printed back, never edited as text: each correlation of an EXISTS / IN subquery with the
//! outer row dropped in turn, the caller-id expression replaced by a constant or by another
//! claim, the caller id compared loosely (`ILIKE`, `lower() = lower()`, a prefix `LIKE`), AND →
//! OR at the top. A predicate the parser refuses, or whose round trip (parsed, printed, stored
//! as the policy, read back with `pg_get_expr`) changes what Postgres stores, is not mutated:
//! its mutants are "not run", with the texts. table operators (`table.rs`) open a table up and add
//! readers that run with their owner's rights (a SECURITY DEFINER view and function over
//! each table); the function operator rewrites `requesting_user_id()` to cast the claims
//! before guarding `''`.

mod clause;
mod equivalent;
mod expression;
mod operator;
mod report;
mod run;
mod table;

use std::collections::{BTreeMap, BTreeSet};

use harness::target::quote_ident;
use sqlx::{Connection, PgConnection};

use crate::engine::{self, BoundSpec};
use crate::policy_expr::Expr;

pub use equivalent::{Equivalent, entry_error as equivalent_entry_error};
pub use operator::{Family, Operator};
pub use run::run;

/// One generated mutant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutant {
    /// `<table>.<policy or "table">.<operator>`, stable across runs (it names policies, not
    /// positions), so a spec can mark it equivalent.
    pub id: String,
    pub table: String,
    /// Its operator's [`Operator::name`] (`parse` for a predicate that cannot be parsed).
    pub operator: &'static str,
    pub sql: String,
    /// Why it cannot be judged, known when it was generated (its predicate does not parse, or
    /// does not survive a parse/deparse round trip): reported as "not run", never applied.
    pub not_run: Option<String>,
}

impl Mutant {
    /// The mutant `<table>.<what>.<operator>`.
    fn new(table: &str, what: &str, operator: Operator, sql: String) -> Self {
        Mutant {
            id: format!("{table}.{what}.{operator}"),
            table: table.to_owned(),
            operator: operator.name(),
            sql,
            not_run: None,
        }
    }

    /// Its operator (`None` for the `parse` placeholder of a predicate that cannot be parsed,
    /// or a hand-made mutant).
    pub fn kind(&self) -> Option<Operator> {
        Operator::from_name(self.operator)
    }
}

/// The `table` of mutants that change a function every table's policies may call: they are
/// judged by every matrix.
pub const FUNCTIONS: &str = "(functions)";

/// What became of one mutant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The first finding that noticed it.
    Killed(String),
    Survived,
    /// A survivor the spec marks equivalent, with its reason.
    Equivalent(String),
    /// It could not be judged (it did not apply, a cell ran past its statement timeout, its
    /// session broke): never counted as killed.
    NotRun(String),
}

/// Every mutant's outcome.
#[derive(Debug, Clone)]
pub struct MutationReport {
    pub results: Vec<(Mutant, Outcome)>,
    /// For each survivor and equivalent (by id): the cells the matrices judged, and those among
    /// them whose observation changed without changing their verdict
    /// (`[table] operation · actor: before → after`).
    pub unchanged: BTreeMap<String, Unchanged>,
    /// The unmutated schema's own findings (its matrices' leaks and lost access, then its
    /// lint findings as `lint: rule object`): reported once, apart, and never a kill — a
    /// mutant is killed only by a cell whose verdict differs from the unmutated run's.
    pub baseline: Vec<String>,
    /// The spec's `[mutants] equivalent` entries that matched no mutant of the run.
    pub stale: Vec<String>,
}

/// What the matrices saw of a mutant that no verdict noticed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unchanged {
    /// How many cells were judged (every one with its unmutated verdict).
    pub cells: usize,
    /// The tables whose matrices ran.
    pub tables: Vec<String>,
    /// Cells that saw something else and still judged it fine.
    pub observed_differently: Vec<String>,
}

/// A policy as the catalog has it.
#[derive(sqlx::FromRow)]
struct PolicyRow {
    table: String,
    name: String,
    cmd: String,
    permissive: bool,
    roles: Vec<String>,
    qual: Option<String>,
    check: Option<String>,
}

/// Generates the mutants of every spec table from the catalog `admin` is connected to. Nothing
/// is changed there (the round trips run in a transaction that is rolled back). The order:
/// per policy its clause operators then its expression operators, per table its table
/// operators, then the function operators.
pub async fn generate(
    bound: &BoundSpec,
    admin: &mut PgConnection,
) -> Result<Vec<Mutant>, engine::Error> {
    let schema = &bound.spec().schema;
    let tables: Vec<String> = bound
        .table_names()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let sql_err = |context: &str| {
        let context = context.to_owned();
        move |source| engine::Error::Sql { context, source }
    };
    let mut tx = admin.begin().await.map_err(sql_err("read the policies"))?;
    // Every name schema-qualified (but pg_catalog's): the text means the same on any
    // search_path, and the mutants built from it too.
    sqlx::query("set local search_path = ''")
        .execute(&mut *tx)
        .await
        .map_err(sql_err("read the policies"))?;
    let policies: Vec<PolicyRow> = sqlx::query_as(POLICIES)
        .bind(schema)
        .bind(&tables)
        .fetch_all(&mut *tx)
        .await
        .map_err(sql_err("read the policies"))?;
    let q = |t: &str| format!("{}.{}", quote_ident(schema), quote_ident(t));
    let mut out = Vec::new();
    let mut caller_functions: BTreeSet<String> = BTreeSet::new();
    for p in &policies {
        let t = q(&p.table);
        for (operator, sql) in clause::mutants(p, &t) {
            out.push(Mutant::new(&p.table, &p.name, operator, sql));
        }
        for (clause, text) in [("using", &p.qual), ("check", &p.check)] {
            let Some(text) = text else { continue };
            out.extend(
                expression_mutants(&mut tx, schema, p, &t, clause, text, &mut caller_functions)
                    .await?,
            );
        }
    }
    // The EXECUTE grants a function the app adds gets: those of the caller-id function its
    // policies call (a hardened schema revokes PUBLIC's default one), else the default.
    let mut grantees: Option<Vec<String>> = None;
    if let Some(f) = caller_functions.iter().next() {
        grantees = sqlx::query_scalar(EXECUTE_GRANTEES)
            .bind(format!("{f}()"))
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql_err("read the caller-id function's grants"))?;
    }
    let grantees = grantees.unwrap_or_else(|| vec!["public".to_owned()]);
    tx.rollback().await.map_err(sql_err("read the policies"))?;
    for table in &tables {
        for (operator, sql) in table::mutants(schema, table, &grantees) {
            out.push(Mutant::new(table, "table", operator, sql));
        }
    }
    for f in caller_functions {
        let (name, operator, sql) = table::function_mutant(&f);
        out.push(Mutant::new(FUNCTIONS, &name, operator, sql));
    }
    Ok(out)
}

/// The expression mutants of one clause (`using` or `check`, whose `pg_get_expr` is `text`)
/// of policy `p` on the qualified table `t`; the caller-id functions it calls are added to
/// `caller_functions`. A text the parser refuses is one "not run" mutant (`….parse`); a text
/// whose round trip (parsed, printed, stored, read back) changes makes every mutant of the
/// clause "not run", with the texts.
async fn expression_mutants(
    tx: &mut PgConnection,
    schema: &str,
    p: &PolicyRow,
    t: &str,
    clause: &str,
    text: &str,
    caller_functions: &mut BTreeSet<String>,
) -> Result<Vec<Mutant>, engine::Error> {
    let base = format!("{}.{}.{clause}", p.table, p.name);
    let expr = match Expr::parse(text) {
        Ok(expr) => expr,
        Err(e) => {
            return Ok(vec![Mutant {
                id: format!("{base}.parse"),
                table: p.table.clone(),
                operator: "parse",
                sql: String::new(),
                not_run: Some(format!(
                    "its {clause} expression `{text}` cannot be mutated: {e}"
                )),
            }]);
        }
    };
    caller_functions.extend(expr.caller_functions().iter().map(|parts| {
        parts
            .iter()
            .map(|p| quote_ident(p))
            .collect::<Vec<_>>()
            .join(".")
    }));
    let mutants = expression::mutants(&expr, &p.table);
    if mutants.is_empty() {
        return Ok(Vec::new());
    }
    let keyword = if clause == "using" {
        "using"
    } else {
        "with check"
    };
    let name = quote_ident(&p.name);
    let alter = |e: &str| format!("alter policy {name} on {t} {keyword} ({e})");
    // The unmutated tree, printed and stored again, must read back as it was.
    let trip = match expr.deparse() {
        Ok(again) => round_trip(tx, schema, &alter(&again), p, clause, text, &again).await?,
        Err(e) => Some(format!("its {clause} expression `{text}`: {e}")),
    };
    Ok(mutants
        .into_iter()
        .map(|m| {
            let (sql, not_run) = match (&trip, m.expr.deparse()) {
                (Some(why), _) => (String::new(), Some(why.clone())),
                (None, Ok(e)) => (alter(&e), None),
                (None, Err(e)) => (String::new(), Some(format!("the mutant: {e}"))),
            };
            Mutant {
                id: format!("{base}.{}{}", m.operator.name(), m.occurrence),
                table: p.table.clone(),
                operator: m.operator.name(),
                sql,
                not_run,
            }
        })
        .collect())
}

/// The roles that may execute the function `$1` (`schema.name()`, quoted): from its ACL, or
/// the default ACL when it has none; `public` for PUBLIC.
const EXECUTE_GRANTEES: &str = "select array(select case when a.grantee = 0 then 'public' \
        else quote_ident(pg_get_userbyid(a.grantee)) end \
   from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a \
   where a.privilege_type = 'EXECUTE' and a.grantee <> p.proowner order by 1)::text[] \
 from pg_proc p where p.oid = to_regprocedure($1)";

const POLICIES: &str = "select c.relname::text as table, p.polname::text as name, p.polcmd::text as cmd, \
        p.polpermissive as permissive, \
        coalesce((select array_agg(case r when 0 then 'public' else quote_ident(pg_get_userbyid(r)) end \
                  order by r) from unnest(p.polroles) r), '{}') as roles, \
        pg_get_expr(p.polqual, p.polrelid) as qual, \
        pg_get_expr(p.polwithcheck, p.polrelid) as check \
 from pg_policy p join pg_class c on c.oid = p.polrelid \
 join pg_namespace n on n.oid = c.relnamespace \
 where n.nspname = $1 and c.relname = any($2) order by 1, 2";

/// Stores the unmutated tree's SQL in place of the clause (inside a savepoint that is rolled
/// back) and compares what Postgres then prints with what it printed before: `Some(why)` when
/// the round trip changed the expression.
async fn round_trip(
    tx: &mut PgConnection,
    schema: &str,
    alter: &str,
    p: &PolicyRow,
    clause: &str,
    before: &str,
    printed: &str,
) -> Result<Option<String>, engine::Error> {
    let err = |source| engine::Error::Sql {
        context: format!("round-trip policy {}", p.name),
        source,
    };
    sqlx::query("savepoint insforge_rls_round_trip")
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    let applied = sqlx::raw_sql(sqlx::AssertSqlSafe(alter.to_owned()))
        .execute(&mut *tx)
        .await;
    let after: Option<String> = match applied {
        Ok(_) => sqlx::query_scalar(
            "select pg_get_expr(case $3 when 'using' then p.polqual else p.polwithcheck end, p.polrelid) \
             from pg_policy p join pg_class c on c.oid = p.polrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = $4 and c.relname = $1 and p.polname = $2",
        )
        .bind(&p.table)
        .bind(&p.name)
        .bind(clause)
        .bind(schema)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?
        .flatten(),
        Err(e) => {
            sqlx::query("rollback to savepoint insforge_rls_round_trip")
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            return Ok(Some(format!(
                "its {clause} expression `{before}`, parsed and printed back as `{printed}`, \
                 does not apply: {e}"
            )));
        }
    };
    sqlx::query("rollback to savepoint insforge_rls_round_trip")
        .execute(&mut *tx)
        .await
        .map_err(err)?;
    Ok(match after {
        Some(after) if after == before => None,
        after => Some(format!(
            "its {clause} expression changes in a parse/print round trip: `{before}`, printed \
             as `{printed}`, is stored as `{}`",
            after.unwrap_or_default()
        )),
    })
}
