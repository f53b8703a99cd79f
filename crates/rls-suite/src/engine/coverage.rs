//! Policy coverage: for every policy on a spec table, each clause (USING, WITH CHECK) and each
//! top-level branch of it (the arms of a top-level OR or AND, from the parsed tree), which
//! actors it was true for on some seeded row and false for on some seeded row. A clause or
//! branch whose grant or whose denial no actor exercised is **untested**: the matrices would
//! not notice if it changed.
//!
//! How a branch is evaluated: after seeding, every spec table's seeded rows are copied (as the
//! superuser) into a scratch schema readable by `anon` and `authenticated`; then, on the app's
//! connection, in an identity transaction per actor and policy (as the matrices act), the
//! branch is evaluated over that copy, under the table's own name. So the row under test is
//! not filtered by its own table's policies (the copy has none), but every subquery inside the
//! branch reads the real tables with the actor's rights — RLS on other tables applies to it, as
//! it does when Postgres evaluates the policy. The transaction is rolled back; the scratch
//! schema is dropped at the end.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use harness::target::quote_ident;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use super::model::{Actor, BoundSpec, Derived, Error, FiredTrigger, Seeds};
use crate::policy_expr::Expr;
use crate::spec::Unexercised;

const SCRATCH: &str = "insforge_rls_coverage";

/// Coverage of every policy of the spec's tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coverage {
    /// Sorted by table, then policy name.
    pub policies: Vec<PolicyCoverage>,
    /// The seed rows derived from the policies (one column the policies read, set to one value
    /// worth trying), and those the tables refused.
    pub derived: Vec<Derived>,
    /// The spec's `[unexercised]` entries: clauses and branches accepted as untested.
    pub accepted: Vec<Unexercised>,
    /// The trigger functions that ran while each table was seeded.
    pub triggers: Vec<FiredTrigger>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyCoverage {
    pub table: String,
    pub policy: String,
    /// `select`, `insert`, `update`, `delete` or `all`.
    pub command: String,
    pub roles: Vec<String>,
    /// The actors (keys) it applies to, in actor order.
    pub applies_to: Vec<String>,
    pub clauses: Vec<ClauseCoverage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClauseCoverage {
    /// `using` or `check`.
    pub clause: String,
    /// The whole predicate.
    pub whole: BranchCoverage,
    /// `or` / `and` when the predicate's top is one, with one entry per arm.
    pub combinator: Option<String>,
    pub branches: Vec<BranchCoverage>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct BranchCoverage {
    pub expr: String,
    /// No column and no caller: the same for every actor and row (`true`).
    pub constant: bool,
    /// Actors it was true for on some seeded row.
    pub granted: Vec<String>,
    /// Actors it was false (or NULL) for on some seeded row.
    pub refused: Vec<String>,
    /// For an OR arm: actors for whom it was the only true arm on some row (it decided).
    pub decided: Vec<String>,
    /// Actors for whom evaluating it raised an error, with the error.
    pub errors: Vec<(String, String)>,
    /// It names a column of its table (else no seed row can change it).
    pub reads_row: bool,
}

/// One finding: something no actor exercised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untested {
    /// `table.policy using` (and ` · branch N` for an arm).
    pub what: String,
    /// `grant`, `denial` or `anything`.
    pub missing: &'static str,
    /// Who or what would exercise it.
    pub hint: String,
}

impl Untested {
    /// Whether this is (a clause or branch of) `table.policy`: `what` starts with that name,
    /// then a space or the end.
    pub fn is_of(&self, table: &str, policy: &str) -> bool {
        self.what
            .strip_prefix(table)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.strip_prefix(policy))
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    }
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    table: String,
    name: String,
    cmd: String,
    roles: Vec<String>,
    qual: Option<String>,
    check: Option<String>,
}

fn command(cmd: &str) -> &'static str {
    match cmd {
        "r" => "select",
        "a" => "insert",
        "w" => "update",
        "d" => "delete",
        _ => "all",
    }
}

/// Measures the coverage of the seeded database (`admin` a superuser there, `conn` the app's
/// login role; `identities[i]` is `actors[i]`'s).
pub(crate) async fn measure(
    bound: &BoundSpec,
    seeds: &Seeds,
    actors: &[Actor],
    identities: &[harness::DbIdentity],
    conn: &mut PgConnection,
    admin: &mut PgConnection,
) -> Result<Coverage, Error> {
    let started = std::time::Instant::now();
    let schema = &bound.spec().schema;
    let names: Vec<String> = bound
        .table_names()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let sql_err = |context: &'static str| {
        move |source| Error::Sql {
            context: context.into(),
            source,
        }
    };
    let mut tx = admin.begin().await.map_err(sql_err("read the policies"))?;
    sqlx::query("set local search_path = ''")
        .execute(&mut *tx)
        .await
        .map_err(sql_err("read the policies"))?;
    let rows: Vec<PolicyRow> = sqlx::query_as(
        "select c.relname::text as table, p.polname::text as name, p.polcmd::text as cmd, \
                coalesce((select array_agg(name order by name) from (select case r when 0 then 'public' \
                          else pg_get_userbyid(r)::text end as name from unnest(p.polroles) r) s), '{}') as roles, \
                pg_get_expr(p.polqual, p.polrelid) as qual, \
                pg_get_expr(p.polwithcheck, p.polrelid) as check \
         from pg_policy p join pg_class c on c.oid = p.polrelid \
         join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = $1 and c.relname = any($2) order by 1, 2",
    )
    .bind(schema)
    .bind(&names)
    .fetch_all(&mut *tx)
    .await
    .map_err(sql_err("read the policies"))?;
    tx.commit().await.map_err(sql_err("read the policies"))?;

    // The seeded rows, readable without their own table's policies.
    let scratch = quote_ident(SCRATCH);
    let mut setup = format!(
        "drop schema if exists {scratch} cascade; create schema {scratch}; \
         grant usage on schema {scratch} to anon, authenticated;"
    );
    for (ti, table) in bound.tables.iter().enumerate() {
        let _ = write!(
            setup,
            "create table {scratch}.rows_{ti} as select * from {q}; \
             grant select on {scratch}.rows_{ti} to anon, authenticated;",
            q = table.qname
        );
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&mut *admin)
        .await
        .map_err(sql_err("copy the seeded rows for coverage"))?;

    let mut policies = Vec::new();
    let result = async {
        for p in &rows {
            let Some(ti) = bound.tables.iter().position(|t| t.spec.name == p.table) else {
                continue;
            };
            policies.push(policy(bound, seeds, ti, p, actors, identities, conn).await?);
        }
        Ok::<_, Error>(())
    }
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "drop schema if exists {scratch} cascade"
    )))
    .execute(&mut *admin)
    .await
    .map_err(sql_err("drop the coverage copy"))?;
    result?;
    tracing::debug!(policies = policies.len(), took = ?started.elapsed(), "coverage measured");
    Ok(Coverage {
        policies,
        derived: seeds.derived.clone(),
        triggers: seeds.triggers.clone(),
        accepted: bound.spec().unexercised.clone(),
    })
}

async fn policy(
    bound: &BoundSpec,
    seeds: &Seeds,
    ti: usize,
    p: &PolicyRow,
    actors: &[Actor],
    identities: &[harness::DbIdentity],
    conn: &mut PgConnection,
) -> Result<PolicyCoverage, Error> {
    let table = &bound.tables[ti];
    let applies: Vec<usize> = (0..actors.len())
        .filter(|&a| {
            p.roles
                .iter()
                .any(|r| r == "public" || r == actors[a].role())
        })
        .collect();
    let mut clauses = Vec::new();
    for (clause, text) in [("using", &p.qual), ("check", &p.check)] {
        let Some(text) = text else { continue };
        // The whole predicate first, then its arms.
        let parsed = Expr::parse(text).ok();
        let (combinator, arms) = parsed
            .as_ref()
            .map(Expr::branches)
            .unwrap_or((None, Vec::new()));
        let mut exprs = vec![text.clone()];
        for arm in &arms {
            exprs.push(arm.deparse().unwrap_or_else(|_| text.clone()));
        }
        let mut cov: Vec<BranchCoverage> = exprs
            .iter()
            .map(|e| BranchCoverage {
                expr: e.clone(),
                constant: is_constant(e),
                reads_row: Expr::parse(e).map_or(true, |x| {
                    x.references()
                        .columns
                        .iter()
                        .any(|c| table.writable.contains(c))
                }),
                ..Default::default()
            })
            .collect();
        let alias = quote_ident(&table.spec.name);
        let columns: Vec<String> = exprs
            .iter()
            .map(|e| format!("coalesce(({e}), false)"))
            .collect();
        let sql = format!(
            "select {pk}, array[{cols}] from {scratch}.rows_{ti} as {alias}",
            pk = table.pk_expr(&alias),
            cols = columns.join(", "),
            scratch = quote_ident(SCRATCH),
        );
        for &a in &applies {
            let key = &actors[a].key;
            let mut tx = harness::begin_as(conn, &identities[a]).await?;
            let got: Result<Vec<(String, Vec<bool>)>, sqlx::Error> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                    .fetch_all(&mut *tx)
                    .await;
            tx.rollback().await.ok();
            let got = match got {
                Ok(got) => got,
                Err(e) => {
                    let why = e
                        .as_database_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_owned());
                    for c in &mut cov {
                        c.errors.push((key.clone(), why.clone()));
                    }
                    continue;
                }
            };
            // Only the seeded rows (the copy is exactly them, but be explicit).
            let seeded: BTreeSet<&str> = seeds.rows[ti].iter().map(|r| r.pk.as_str()).collect();
            for (pk, values) in got.iter().filter(|(pk, _)| seeded.contains(pk.as_str())) {
                for (i, &v) in values.iter().enumerate() {
                    let c = &mut cov[i];
                    let list = if v { &mut c.granted } else { &mut c.refused };
                    if !list.contains(key) {
                        list.push(key.clone());
                    }
                }
                if combinator == Some("or") {
                    let arms_true: Vec<usize> = (1..values.len()).filter(|&i| values[i]).collect();
                    if let [only] = arms_true.as_slice() {
                        let c = &mut cov[*only];
                        if !c.decided.contains(key) {
                            c.decided.push(key.clone());
                        }
                    }
                }
                let _ = pk;
            }
        }
        // Actor order everywhere (stable output).
        let order = |list: &mut Vec<String>| {
            list.sort_by_key(|k| actors.iter().position(|a| &a.key == k));
        };
        for c in &mut cov {
            order(&mut c.granted);
            order(&mut c.refused);
            order(&mut c.decided);
        }
        let whole = cov.remove(0);
        clauses.push(ClauseCoverage {
            clause: clause.into(),
            whole,
            combinator: combinator.map(str::to_owned),
            branches: cov,
        });
    }
    Ok(PolicyCoverage {
        table: p.table.clone(),
        policy: p.name.clone(),
        command: command(&p.cmd).into(),
        roles: p.roles.clone(),
        applies_to: applies.iter().map(|&a| actors[a].key.clone()).collect(),
        clauses,
    })
}

/// `true`, `false`, `1 = 1`: nothing in it depends on the row or the caller.
fn is_constant(e: &str) -> bool {
    matches!(e.trim(), "true" | "false" | "(true)" | "(false)")
}

impl Coverage {
    /// Every clause and branch whose grant or denial no actor exercised, with a hint.
    pub fn untested(&self) -> Vec<Untested> {
        let mut out = Vec::new();
        for p in &self.policies {
            let name = format!("{}.{}", p.table, p.policy);
            if p.applies_to.is_empty() {
                out.push(Untested {
                    what: name.clone(),
                    missing: "anything",
                    hint: format!(
                        "it is for {}, and the check acts only as anon and authenticated",
                        p.roles.join(", ")
                    ),
                });
                continue;
            }
            for c in &p.clauses {
                let mut check = |b: &BranchCoverage, what: String| {
                    if b.constant {
                        return;
                    }
                    if !b.reads_row && (b.granted.is_empty() || b.refused.is_empty()) {
                        out.push(Untested {
                            what,
                            missing: if b.granted.is_empty() {
                                "grant"
                            } else {
                                "denial"
                            },
                            hint: format!(
                                "it names no column of {}, so no seed row changes it: if it \
                                 does not depend on the caller either (a setting of the \
                                 database), accept it under [unexercised] with the reason",
                                p.table
                            ),
                        });
                        return;
                    }
                    if b.granted.is_empty() {
                        out.push(Untested {
                            what: what.clone(),
                            missing: "grant",
                            hint: format!(
                                "no actor it applies to ({}) passes it on any seeded row of {}: a row it \
                                 grants one of them (for instance one they own, or belong to) would exercise it",
                                p.applies_to.join(", "),
                                p.table
                            ),
                        });
                    }
                    if b.refused.is_empty() {
                        out.push(Untested {
                            what,
                            missing: "denial",
                            hint: format!(
                                "every actor it applies to ({}) passes it on every seeded row of {}: a \
                                 stranger to some row (a user with no rows, `no_claims`) would exercise it",
                                p.applies_to.join(", "),
                                p.table
                            ),
                        });
                    }
                };
                check(&c.whole, format!("{name} {}", c.clause));
                for (i, b) in c.branches.iter().enumerate() {
                    check(b, format!("{name} {} · branch {}", c.clause, i + 1));
                }
            }
        }
        out
    }

    /// The untested clauses and branches no `[unexercised]` entry accepts: each fails the check
    /// (`check::CheckOutcome::exit_code`, 4).
    pub fn unexercised(&self) -> Vec<Untested> {
        self.untested()
            .into_iter()
            .filter(|u| self.acceptance(u).is_none())
            .collect()
    }

    /// The `[unexercised]` entry that accepts `u`, if one does.
    pub fn acceptance(&self, u: &Untested) -> Option<&Unexercised> {
        self.accepted.iter().find(|a| a.matches(&u.what))
    }

    /// `[unexercised]` entries that accept nothing untested (any more).
    pub fn stale(&self) -> Vec<&Unexercised> {
        let untested = self.untested();
        self.accepted
            .iter()
            .filter(|a| !untested.iter().any(|u| a.matches(&u.what)))
            .collect()
    }

    /// One block per policy, one line per clause and branch; then the untested ones.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "policy coverage (per clause and top-level branch: the actors it granted on some seeded row · refused on some seeded row):\n",
        );
        let list = |l: &[String], all: &[String]| -> String {
            if l.is_empty() {
                "nobody".into()
            } else if l == all && l.len() > 1 {
                format!("all {}", l.len())
            } else {
                l.join(" ")
            }
        };
        for p in &self.policies {
            let _ = writeln!(
                out,
                "  {}.{} ({}, to {})",
                p.table,
                p.policy,
                p.command,
                p.roles.join(", ")
            );
            for c in &p.clauses {
                let line = |b: &BranchCoverage| -> String {
                    if b.constant {
                        return format!(
                            "always {}: nothing to exercise",
                            b.expr.trim_matches(['(', ')'])
                        );
                    }
                    let mut s = format!(
                        "grants {} · refuses {}",
                        list(&b.granted, &p.applies_to),
                        list(&b.refused, &p.applies_to)
                    );
                    for (actor, why) in &b.errors {
                        let _ = write!(s, " · ERROR for {actor}: {why}");
                    }
                    s
                };
                if c.whole.constant {
                    let _ = writeln!(out, "    {:<6} {}", c.clause, line(&c.whole));
                    continue;
                }
                let _ = writeln!(
                    out,
                    "    {:<6} {}  {}",
                    c.clause,
                    line(&c.whole),
                    c.whole.expr
                );
                for (i, b) in c.branches.iter().enumerate() {
                    let mut l = line(b);
                    if c.combinator.as_deref() == Some("or") && !b.constant {
                        let _ = write!(
                            l,
                            " · decides alone for {}",
                            list(&b.decided, &p.applies_to)
                        );
                    }
                    let _ = writeln!(
                        out,
                        "      {} {}: {l}  {}",
                        c.combinator.as_deref().unwrap_or(""),
                        i + 1,
                        b.expr
                    );
                }
            }
        }
        if !self.derived.is_empty() {
            out.push_str("seed rows derived from the policies (a copy of the table's first seed row, one column changed):\n");
            for d in &self.derived {
                let _ = write!(out, "  {}.{} = {}", d.table, d.column, d.value);
                match &d.refused {
                    Some(why) => {
                        let _ = writeln!(out, " — refused by the table: {why}");
                    }
                    None => out.push('\n'),
                }
            }
        }
        if !self.triggers.is_empty() {
            out.push_str("triggers that fired while seeding (the seed rows went in as production rows do):\n");
            for f in &self.triggers {
                let _ = writeln!(
                    out,
                    "  {}: {} ×{} (trigger {})",
                    f.table,
                    f.function,
                    f.calls,
                    f.triggers.join(", ")
                );
            }
        }
        let untested = self.untested();
        if untested.is_empty() {
            out.push_str("untested: none\n");
        } else {
            for u in untested {
                match self.acceptance(&u) {
                    Some(a) => {
                        let _ = writeln!(
                            out,
                            "accepted untested {} — no {} ([unexercised], line {}): {}",
                            u.what, u.missing, a.line, a.reason
                        );
                    }
                    None => {
                        let _ = writeln!(out, "UNTESTED {} — no {}: {}", u.what, u.missing, u.hint);
                    }
                }
            }
        }
        for a in self.stale() {
            let _ = writeln!(
                out,
                "stale [unexercised] entry `{}` (line {}): nothing it names is untested any more; remove it",
                a.key, a.line
            );
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let branch = |b: &BranchCoverage| {
            json!({
                "expr": b.expr,
                "constant": b.constant,
                "granted": b.granted,
                "refused": b.refused,
                "decided": b.decided,
                "errors": b.errors.iter().map(|(a, e)| json!({"actor": a, "error": e})).collect::<Vec<_>>(),
            })
        };
        json!({
            "policies": self.policies.iter().map(|p| json!({
                "table": p.table,
                "policy": p.policy,
                "command": p.command,
                "roles": p.roles,
                "applies_to": p.applies_to,
                "clauses": p.clauses.iter().map(|c| json!({
                    "clause": c.clause,
                    "whole": branch(&c.whole),
                    "combinator": c.combinator,
                    "branches": c.branches.iter().map(branch).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "untested": self.untested().iter().map(|u| json!({
                "what": u.what,
                "missing": u.missing,
                "hint": u.hint,
                "accepted": self.acceptance(u).map(|a| a.reason.clone()),
            })).collect::<Vec<_>>(),
            "derived": self.derived.iter().map(|d| json!({
                "table": d.table,
                "column": d.column,
                "value": d.value,
                "refused": d.refused,
            })).collect::<Vec<_>>(),
            "triggers": self.triggers.iter().map(|f| json!({
                "table": f.table,
                "function": f.function,
                "calls": f.calls,
                "triggers": f.triggers,
            })).collect::<Vec<_>>(),
            "stale_unexercised": self.stale().iter().map(|a| a.key.clone()).collect::<Vec<_>>(),
        })
    }
}
