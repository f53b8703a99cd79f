//! Mutants generated from the live catalog: each policy on a spec table weakened one way at a
//! time (USING → true, WITH CHECK → true, WITH CHECK dropped, the policy dropped), and each
//! table opened up (a permissive `anon` policy per command, RLS not forced with `authenticated`
//! owning the table, RLS disabled). Each mutant gets a clone of the checked database of its
//! own and is judged by the spec's matrices (of the tables whose policies can see the change)
//! and the lint: a mutant is **killed** when either finds something the unmutated schema did
//! not have. A survivor means the checks would not notice that weakening — unless the spec
//! marks it equivalent, with a reason.
//!
//! The operators rewrite whole clauses from the catalog (`pg_policy`), never the text inside
//! an expression; operators that need to change an expression's inside (correlations, the
//! caller-id expression, AND → OR) are not generated yet.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use harness::TestDatabase;
use harness::target::quote_ident;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::access::{self, AccessError, BoundSpec, RunOptions};

/// One generated mutant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutant {
    /// `<table>.<policy or "table">.<operator>`, stable across runs (it names policies, not
    /// positions), so a spec can mark it equivalent.
    pub id: String,
    pub table: String,
    pub operator: &'static str,
    pub sql: String,
}

/// What became of one mutant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The first finding that noticed it.
    Killed(String),
    Survived,
    /// A survivor the spec marks equivalent, with its reason.
    Equivalent(String),
    /// It could not be judged (it did not apply, or its clone failed): never counted as killed.
    NotRun(String),
}

/// Every mutant's outcome.
#[derive(Debug, Clone)]
pub struct MutationReport {
    pub results: Vec<(Mutant, Outcome)>,
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

/// Generates the mutants of every spec table from the catalog `admin` is connected to.
pub async fn generate(
    bound: &BoundSpec,
    admin: &mut PgConnection,
) -> Result<Vec<Mutant>, AccessError> {
    let schema = &bound.spec().schema;
    let tables: Vec<String> = bound
        .table_names()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let policies: Vec<PolicyRow> =
        sqlx::query_as(
            "select c.relname::text as table, p.polname::text as name, p.polcmd::text as cmd, \
                    p.polpermissive as permissive, \
                    coalesce((select array_agg(case r when 0 then 'public' else quote_ident(pg_get_userbyid(r)) end \
                              order by r) from unnest(p.polroles) r), '{}') as roles, \
                    pg_get_expr(p.polqual, p.polrelid) as qual, \
                    pg_get_expr(p.polwithcheck, p.polrelid) as check \
             from pg_policy p join pg_class c on c.oid = p.polrelid \
             join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = $1 and c.relname = any($2) order by 1, 2",
        )
        .bind(schema)
        .bind(&tables)
        .fetch_all(&mut *admin)
        .await
        .map_err(|source| AccessError::Sql {
            context: "read the policies".into(),
            source,
        })?;
    let q = |t: &str| format!("{}.{}", quote_ident(schema), quote_ident(t));
    let mut out = Vec::new();
    let mut push = |table: &str, what: &str, operator: &'static str, sql: String| {
        out.push(Mutant {
            id: format!("{table}.{what}.{operator}"),
            table: table.to_owned(),
            operator,
            sql,
        });
    };
    for p in policies {
        let (t, name) = (q(&p.table), quote_ident(&p.name));
        let is_true = |e: &Option<String>| e.as_deref().map(str::trim) == Some("true");
        if p.qual.is_some() && !is_true(&p.qual) {
            push(
                &p.table,
                &p.name,
                "using_true",
                format!("alter policy {name} on {t} using (true)"),
            );
        }
        if p.check.is_some() && !is_true(&p.check) {
            push(
                &p.table,
                &p.name,
                "check_true",
                format!("alter policy {name} on {t} with check (true)"),
            );
        }
        if let (Some(qual), Some(_), "w" | "*") = (&p.qual, &p.check, p.cmd.as_str()) {
            // Postgres then reuses USING as the check: the mutant is the policy as it would be
            // written without one (the expressions are the catalog's own, unchanged).
            let cmd = if p.cmd == "w" { "update" } else { "all" };
            push(
                &p.table,
                &p.name,
                "drop_check",
                format!(
                    "drop policy {name} on {t}; create policy {name} on {t} as {} for {cmd} to {} using ({qual})",
                    if p.permissive {
                        "permissive"
                    } else {
                        "restrictive"
                    },
                    p.roles.join(", ")
                ),
            );
        }
        push(
            &p.table,
            &p.name,
            "drop_policy",
            format!("drop policy {name} on {t}"),
        );
    }
    for table in &tables {
        let t = q(table);
        for (cmd, clause) in [
            ("select", "using (true)"),
            ("insert", "with check (true)"),
            ("update", "using (true) with check (true)"),
            ("delete", "using (true)"),
        ] {
            push(
                table,
                "table",
                match cmd {
                    "select" => "anon_select",
                    "insert" => "anon_insert",
                    "update" => "anon_update",
                    _ => "anon_delete",
                },
                format!(
                    "create policy insforge_rls_mutant_anon on {t} as permissive for {cmd} to anon {clause}"
                ),
            );
        }
        push(
            table,
            "table",
            "no_force_owned",
            format!(
                "alter table {t} owner to authenticated; alter table {t} no force row level security"
            ),
        );
        push(
            table,
            "table",
            "disable_rls",
            format!("alter table {t} disable row level security"),
        );
    }
    Ok(out)
}

/// The tables whose policies read `table` (through `pg_depend`), with `table` itself: the
/// matrices a mutant of `table` can change. (A SECURITY INVOKER function that reads the table
/// inside another table's policy is not tracked there: such a mutant may survive falsely — it
/// is listed, never hidden.)
async fn affected(
    bound: &BoundSpec,
    table: &str,
    admin: &mut PgConnection,
) -> Result<Vec<String>, AccessError> {
    let schema = &bound.spec().schema;
    let mut out: BTreeSet<String> = sqlx::query_scalar(
        "select distinct c.relname::text from pg_depend d \
         join pg_policy p on d.classid = 'pg_policy'::regclass and d.objid = p.oid \
         join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace \
         join pg_class r on r.oid = d.refobjid join pg_namespace rn on rn.oid = r.relnamespace \
         where n.nspname = $1 and rn.nspname = $1 and r.relname = $2",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *admin)
    .await
    .map_err(|source| AccessError::Sql {
        context: "read policy dependencies".into(),
        source,
    })?
    .into_iter()
    .collect();
    out.insert(table.to_owned());
    let known: Vec<&str> = bound.table_names();
    Ok(out
        .into_iter()
        .filter(|t| known.contains(&t.as_str()))
        .collect())
}

/// What the unmutated database looks like to the judges: its lint findings (`rule object`).
pub type Baseline = BTreeSet<String>;

fn lint_keys(report: &rls_lint::Report) -> Baseline {
    report
        .findings
        .iter()
        .filter(|f| f.level >= rls_lint::Level::Warn)
        .map(|f| format!("{} {}", f.rule, f.object))
        .collect()
}

/// Runs every mutant against clones of `base` (which nobody may be connected to), `parallel` at
/// a time. `lint` are the lint options of the check; the baseline is computed here.
pub async fn run(
    bound: &BoundSpec,
    base: &TestDatabase,
    mutants: Vec<Mutant>,
    opts: RunOptions,
    lint: &rls_lint::LintOptions,
    parallel: usize,
) -> Result<MutationReport, AccessError> {
    let baseline = {
        let mut conn = base.admin_connection().await?;
        let report = rls_lint::lint(&mut conn, lint).await?;
        conn.close().await.ok();
        Arc::new(lint_keys(&report))
    };
    let bound = Arc::new(bound.clone());
    let lint = Arc::new(lint.clone());
    let equivalent = bound.spec().equivalent.clone();
    let mut results: Vec<Option<(Mutant, Outcome)>> = vec![None; mutants.len()];
    let mut set = tokio::task::JoinSet::new();
    let mut queue = mutants.into_iter().enumerate();
    loop {
        while set.len() < parallel.max(1) {
            let Some((i, mutant)) = queue.next() else {
                break;
            };
            let db = match TestDatabase::clone_of(base).await {
                Ok(db) => db,
                Err(e) => {
                    results[i] = Some((mutant, Outcome::NotRun(format!("the clone failed: {e}"))));
                    continue;
                }
            };
            let (bound, lint, baseline, opts) =
                (bound.clone(), lint.clone(), baseline.clone(), opts.clone());
            set.spawn(async move {
                let outcome = judge_one(&bound, &db, &mutant, &opts, &lint, &baseline).await;
                (i, mutant, outcome)
            });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        match joined {
            Ok((i, mutant, outcome)) => {
                let outcome = match (outcome, equivalent.get(&mutant.id)) {
                    (Outcome::Survived, Some(reason)) => Outcome::Equivalent(reason.clone()),
                    (o, _) => o,
                };
                results[i] = Some((mutant, outcome));
            }
            Err(e) => return Err(AccessError::Task(e)),
        }
    }
    Ok(MutationReport {
        results: results.into_iter().flatten().collect(),
    })
}

async fn judge_one(
    bound: &BoundSpec,
    db: &TestDatabase,
    mutant: &Mutant,
    opts: &RunOptions,
    lint: &rls_lint::LintOptions,
    baseline: &Baseline,
) -> Outcome {
    let result: Result<Outcome, AccessError> = async {
        let mut admin = db.admin_connection().await?;
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(mutant.sql.clone()))
            .execute(&mut admin)
            .await
        {
            return Ok(Outcome::NotRun(format!("it does not apply: {e}")));
        }
        let tables = affected(bound, &mutant.table, &mut admin).await?;
        let lint_report = rls_lint::lint(&mut admin, lint).await?;
        admin.close().await.ok();
        let report = access::run(
            bound,
            db.admin_target(),
            db.app_target(),
            RunOptions {
                tables: Some(tables),
                ..opts.clone()
            },
        )
        .await?;
        if let Some(first) = report.leaks().first().or(report.lost_access().first()) {
            return Ok(Outcome::Killed(first.clone()));
        }
        if let Some(new) = lint_keys(&lint_report).difference(baseline).next() {
            return Ok(Outcome::Killed(format!("lint: {new}")));
        }
        Ok(Outcome::Survived)
    }
    .await;
    result.unwrap_or_else(|e| Outcome::NotRun(e.to_string()))
}

impl MutationReport {
    /// (killed, judged) per table, and overall under the key `""`. Equivalent and not-run
    /// mutants are not judged.
    pub fn scores(&self) -> BTreeMap<String, (usize, usize)> {
        let mut by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (m, o) in &self.results {
            let judged = matches!(o, Outcome::Killed(_) | Outcome::Survived);
            let killed = matches!(o, Outcome::Killed(_));
            for key in [m.table.as_str(), ""] {
                let e = by.entry(key.to_owned()).or_default();
                e.0 += usize::from(killed);
                e.1 += usize::from(judged);
            }
        }
        by
    }

    pub fn survivors(&self) -> impl Iterator<Item = &Mutant> {
        self.results
            .iter()
            .filter(|(_, o)| *o == Outcome::Survived)
            .map(|(m, _)| m)
    }

    /// The score line, each survivor with its SQL, the equivalent ones with their reasons and
    /// the ones that did not run, with why.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let scores = self.scores();
        let pct = |(k, n): (usize, usize)| {
            if n == 0 {
                100.0
            } else {
                100.0 * k as f64 / n as f64
            }
        };
        let overall = scores.get("").copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "mutation score: {:.0}% ({} of {} killed; {} mutants generated)",
            pct(overall),
            overall.0,
            overall.1,
            self.results.len()
        );
        for (table, s) in scores.iter().filter(|(k, _)| !k.is_empty()) {
            let _ = writeln!(out, "  {table:<24} {:>4.0}% ({} of {})", pct(*s), s.0, s.1);
        }
        for (m, o) in &self.results {
            match o {
                Outcome::Survived => {
                    let _ = writeln!(
                        out,
                        "SURVIVED {}: no matrix cell and no lint finding changed\n  {}",
                        m.id, m.sql
                    );
                }
                Outcome::Equivalent(reason) => {
                    let _ = writeln!(out, "equivalent {} — {reason}", m.id);
                }
                Outcome::NotRun(why) => {
                    let _ = writeln!(out, "NOT RUN {} — {why}", m.id);
                }
                Outcome::Killed(_) => {}
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        let scores = self.scores();
        json!({
            "score": scores.get("").map(|(k, n)| json!({"killed": k, "judged": n})),
            "tables": scores.iter().filter(|(k, _)| !k.is_empty())
                .map(|(t, (k, n))| json!({"table": t, "killed": k, "judged": n}))
                .collect::<Vec<_>>(),
            "mutants": self.results.iter().map(|(m, o)| json!({
                "id": m.id,
                "table": m.table,
                "operator": m.operator,
                "sql": m.sql,
                "outcome": match o {
                    Outcome::Killed(by) => json!({"killed": by}),
                    Outcome::Survived => json!("survived"),
                    Outcome::Equivalent(r) => json!({"equivalent": r}),
                    Outcome::NotRun(why) => json!({"not_run": why}),
                },
            })).collect::<Vec<_>>(),
        })
    }
}
