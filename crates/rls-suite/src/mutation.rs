//! Mutants generated from the live catalog: each policy on a spec table weakened one way at a
//! time (USING → true, WITH CHECK → true, WITH CHECK dropped, the policy dropped), and each
//! table opened up (a permissive `anon` policy per command, RLS not forced with `authenticated`
//! owning the table, RLS disabled). Each mutant gets a clone of the checked database of its
//! own and is judged by the spec's matrices (of the tables whose policies can see the change)
//! and the lint: a mutant is **killed** when either finds something the unmutated schema did
//! not have. A survivor means the checks would not notice that weakening — unless the spec
//! marks it equivalent, with a reason.
//!
//! Clause operators rewrite whole clauses from the catalog (`pg_policy`). Expression operators
//! change a predicate's inside: the `pg_get_expr` text is parsed by Postgres's own parser
//! ([`crate::policy_expr`]), mutated as a tree and deparsed — never edited as text: each
//! correlation of an EXISTS / IN subquery with the outer row dropped in turn, the caller-id
//! expression replaced by a constant or by another claim, the caller id compared loosely
//! (`ILIKE`, `lower() = lower()`, a prefix `LIKE`), AND → OR at the top. A predicate whose
//! parse/deparse round trip changes what Postgres stores is not mutated: its mutants are "not
//! run", with the two texts. Readers and helpers: a SECURITY DEFINER view and function over each
//! table, and `requesting_user_id()` rewritten to cast the claims before guarding `''`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use futures_util::StreamExt as _;
use harness::TestDatabase;
use harness::target::quote_ident;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::access::{self, AccessError, BoundSpec, RunOptions};
use crate::policy_expr::Expr;

/// One generated mutant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutant {
    /// `<table>.<policy or "table">.<operator>`, stable across runs (it names policies, not
    /// positions), so a spec can mark it equivalent.
    pub id: String,
    pub table: String,
    pub operator: &'static str,
    pub sql: String,
    /// Why it cannot be judged, known when it was generated (its predicate does not parse, or
    /// does not survive a parse/deparse round trip): reported as "not run", never applied.
    pub not_run: Option<String>,
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
    /// It could not be judged (it did not apply, or its clone failed): never counted as killed.
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
/// is changed there (the round trips run in a transaction that is rolled back).
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
    let sql_err = |context: &str| {
        let context = context.to_owned();
        move |source| AccessError::Sql { context, source }
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
    let push =
        |out: &mut Vec<Mutant>, table: &str, what: &str, operator: &'static str, sql: String| {
            out.push(Mutant {
                id: format!("{table}.{what}.{operator}"),
                table: table.to_owned(),
                operator,
                sql,
                not_run: None,
            });
        };
    let mut caller_functions: BTreeSet<String> = BTreeSet::new();
    for p in &policies {
        let (t, name) = (q(&p.table), quote_ident(&p.name));
        let is_true = |e: &Option<String>| e.as_deref().map(str::trim) == Some("true");
        if p.qual.is_some() && !is_true(&p.qual) {
            push(
                &mut out,
                &p.table,
                &p.name,
                "using_true",
                format!("alter policy {name} on {t} using (true)"),
            );
        }
        if p.check.is_some() && !is_true(&p.check) {
            push(
                &mut out,
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
                &mut out,
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
            &mut out,
            &p.table,
            &p.name,
            "drop_policy",
            format!("drop policy {name} on {t}"),
        );
        for (clause, keyword, text) in [
            ("using", "using", &p.qual),
            ("check", "with check", &p.check),
        ] {
            let Some(text) = text else { continue };
            let base = format!("{}.{}.{clause}", p.table, p.name);
            let expr = match Expr::parse(text) {
                Ok(expr) => expr,
                Err(e) => {
                    out.push(Mutant {
                        id: format!("{base}.parse"),
                        table: p.table.clone(),
                        operator: "parse",
                        sql: String::new(),
                        not_run: Some(format!(
                            "its {clause} expression `{text}` cannot be mutated: {e}"
                        )),
                    });
                    continue;
                }
            };
            caller_functions.extend(expr.caller_functions().iter().map(|parts| {
                parts
                    .iter()
                    .map(|p| quote_ident(p))
                    .collect::<Vec<_>>()
                    .join(".")
            }));
            let mutants = expr.mutants(&p.table);
            if mutants.is_empty() {
                continue;
            }
            let alter = |e: &str| format!("alter policy {name} on {t} {keyword} ({e})");
            // The unmutated tree, printed and stored again, must read back as it was.
            let trip = match expr.deparse() {
                Ok(again) => round_trip(&mut tx, schema, &alter(&again), p, clause, text).await?,
                Err(e) => Some(e.to_string()),
            };
            for m in mutants {
                let (sql, not_run) = match (&trip, m.expr.deparse()) {
                    (Some(why), _) => (String::new(), Some(why.clone())),
                    (None, Ok(e)) => (alter(&e), None),
                    (None, Err(e)) => (String::new(), Some(format!("the mutant {e}"))),
                };
                out.push(Mutant {
                    id: format!("{base}.{}{}", m.operator, m.occurrence),
                    table: p.table.clone(),
                    operator: m.operator,
                    sql,
                    not_run,
                });
            }
        }
    }
    tx.rollback().await.map_err(sql_err("read the policies"))?;
    for table in &tables {
        let t = q(table);
        for (cmd, clause) in [
            ("select", "using (true)"),
            ("insert", "with check (true)"),
            ("update", "using (true) with check (true)"),
            ("delete", "using (true)"),
        ] {
            push(
                &mut out,
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
            &mut out,
            table,
            "table",
            "no_force_owned",
            format!(
                "alter table {t} owner to authenticated; alter table {t} no force row level security"
            ),
        );
        push(
            &mut out,
            table,
            "table",
            "disable_rls",
            format!("alter table {t} disable row level security"),
        );
        // Readers that run with their owner's rights (the superuser applying the mutant).
        let view = q(&format!("insforge_rls_mutant_{table}_view"));
        push(
            &mut out,
            table,
            "table",
            "definer_view",
            format!(
                "create view {view} as select * from {t}; grant select on {view} to authenticated"
            ),
        );
        let function = q(&format!("insforge_rls_mutant_{table}_rows"));
        push(
            &mut out,
            table,
            "table",
            "definer_function",
            format!(
                "create function {function}(query text) returns setof {t} language sql stable \
                 security definer set search_path = '' as $$ select * from {t} $$"
            ),
        );
    }
    for f in caller_functions {
        // The version the InsForge/Clerk guides publish: casts the claims before guarding ''
        // (a pooled connection reads them back as '' after a transaction that set them).
        let name = f
            .rsplit('.')
            .next()
            .unwrap_or(&f)
            .trim_matches('"')
            .to_owned();
        push(
            &mut out,
            FUNCTIONS,
            &name,
            "cast_before_guard",
            format!(
                "create or replace function {f}() returns text language sql stable \
                 set search_path = '' as $$ \
                 select nullif(current_setting('request.jwt.claims', true)::json ->> 'sub', '')::text $$"
            ),
        );
    }
    Ok(out)
}

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
) -> Result<Option<String>, AccessError> {
    let err = |source| AccessError::Sql {
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
                "its {clause} expression, parsed and printed back, does not apply: {e}"
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
            "its {clause} expression changes in a parse/deparse round trip: `{before}` became `{}`",
            after.unwrap_or_default()
        )),
    })
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
    out.remove(table);
    let known: Vec<&str> = bound.table_names();
    // The mutant's own table first: its matrix is the likeliest to catch it, and a mutant run
    // stops at its first finding.
    Ok(std::iter::once(table.to_owned())
        .chain(out)
        .filter(|t| known.contains(&t.as_str()))
        .collect())
}

/// What the unmutated database looks like to the judges: its lint findings (`rule object`)
/// and its matrices.
#[derive(Debug)]
struct Baseline {
    lint: BTreeSet<String>,
    matrices: access::CheckReport,
}

/// The cells of `seen` (a survivor's matrices) against the unmutated ones.
fn compare(base: &access::CheckReport, seen: &access::CheckReport) -> Unchanged {
    let mut out = Unchanged::default();
    for t in &seen.tables {
        out.tables.push(t.table.clone());
        out.cells += t.cells.iter().map(Vec::len).sum::<usize>();
        let Some(b) = base.table(&t.table) else {
            continue;
        };
        for (oi, op) in t.ops.iter().enumerate() {
            let Some(bo) = b.ops.iter().position(|o| o == op) else {
                continue;
            };
            for (ai, actor) in t.actors.iter().enumerate() {
                let (Some(before), Some(after)) = (
                    b.actors
                        .iter()
                        .position(|a| a == actor)
                        .and_then(|bi| b.cells[bo].get(bi)),
                    t.cells[oi].get(ai),
                ) else {
                    continue;
                };
                if before.text != after.text {
                    out.observed_differently.push(format!(
                        "[{}] {op} · {actor}: {} → {}",
                        t.table, before.text, after.text
                    ));
                }
            }
        }
    }
    out
}

fn lint_keys(report: &rls_lint::Report) -> BTreeSet<String> {
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
        // The unmutated matrices, to tell a survivor's cells apart from them.
        let db = TestDatabase::clone_of(base).await?;
        let matrices = access::run(
            bound,
            db.admin_target(),
            db.app_target(),
            RunOptions {
                skip_coverage: true,
                ..opts.clone()
            },
        )
        .await?;
        drop(db);
        Box::new(Baseline {
            lint: lint_keys(&report),
            matrices,
        })
    };
    let mut unchanged = BTreeMap::new();
    let equivalent = bound.spec().equivalent.clone();
    let mut results: Vec<Option<(Mutant, Outcome)>> = vec![None; mutants.len()];
    // `parallel` mutants at a time, each cloned and judged in one future (the clone of one
    // overlaps the judging of another).
    let (baseline, opts) = (&*baseline, &opts);
    let jobs = mutants
        .into_iter()
        .enumerate()
        .map(|(i, mutant)| async move {
            if let Some(why) = &mutant.not_run {
                let why = why.clone();
                return (i, mutant, (Outcome::NotRun(why), None));
            }
            let cloning = std::time::Instant::now();
            let outcome = match TestDatabase::clone_of(base).await {
                Ok(db) => {
                    tracing::debug!(mutant = %mutant.id, took = ?cloning.elapsed(), "cloned");
                    judge_one(bound, &db, &mutant, opts, lint, baseline).await
                }
                Err(e) => (Outcome::NotRun(format!("the clone failed: {e}")), None),
            };
            (i, mutant, outcome)
        });
    let mut done = futures_util::stream::iter(jobs).buffer_unordered(parallel.max(1));
    while let Some((i, mutant, (outcome, seen))) = done.next().await {
        if let (Outcome::Survived, Some(seen)) = (&outcome, seen) {
            unchanged.insert(mutant.id.clone(), compare(&baseline.matrices, &seen));
        }
        let outcome = match (outcome, equivalent.get(&mutant.id)) {
            (Outcome::Survived, Some(reason)) => Outcome::Equivalent(reason.clone()),
            (o, _) => o,
        };
        results[i] = Some((mutant, outcome));
    }
    Ok(MutationReport {
        results: results.into_iter().flatten().collect(),
        unchanged,
    })
}

async fn judge_one(
    bound: &BoundSpec,
    db: &TestDatabase,
    mutant: &Mutant,
    opts: &RunOptions,
    lint: &rls_lint::LintOptions,
    baseline: &Baseline,
) -> (Outcome, Option<access::CheckReport>) {
    let started = std::time::Instant::now();
    let result: Result<(Outcome, Option<access::CheckReport>), AccessError> = async {
        let mut admin = db.admin_connection().await?;
        // Read before the mutant applies (it may drop the policy).
        let first_command = command_of(bound, mutant, &mut admin).await;
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(mutant.sql.clone()))
            .execute(&mut admin)
            .await
        {
            return Ok((Outcome::NotRun(format!("it does not apply: {e}")), None));
        }
        // Bound again when the mutant adds a reader (a view, a function): it is then probed
        // too. (Nothing else a mutant does changes what binding reads.)
        let rebound = if matches!(mutant.operator, "definer_view" | "definer_function") {
            BoundSpec::bind(bound.spec(), &mut admin).await
        } else {
            Ok(bound.clone())
        };
        let bound = match rebound {
            Ok(b) => b,
            Err(e) => {
                return Ok((
                    Outcome::NotRun(format!("the spec no longer binds: {e}")),
                    None,
                ));
            }
        };
        let tables = if mutant.table == FUNCTIONS {
            None
        } else {
            Some(affected(&bound, &mutant.table, &mut admin).await?)
        };
        let applied = started.elapsed();
        // The matrices first: they are the evidence a team reads. The lint runs only for a
        // mutant they did not catch (a kill is a kill; the lint costs a catalog scan).
        let report = access::run(
            &bound,
            db.admin_target(),
            db.app_target(),
            RunOptions {
                tables,
                skip_coverage: true,
                // Caught is caught: a survivor runs every cell anyway (nothing stops it), and
                // the weakened command's cells run first.
                stop_at_first_finding: true,
                first_command,
                ..opts.clone()
            },
        )
        .await?;
        let judged = started.elapsed();
        tracing::debug!(mutant = %mutant.id, ?applied, matrices = ?(judged - applied), "judged");
        if let Some(first) = report.leaks().first().or(report.lost_access().first()) {
            admin.close().await.ok();
            return Ok((Outcome::Killed(first.clone()), None));
        }
        let lint_report = rls_lint::lint(&mut admin, lint).await?;
        admin.close().await.ok();
        tracing::debug!(mutant = %mutant.id, lint = ?(started.elapsed() - judged), "linted");
        if let Some(new) = lint_keys(&lint_report).difference(&baseline.lint).next() {
            return Ok((Outcome::Killed(format!("lint: {new}")), None));
        }
        Ok((Outcome::Survived, Some(report)))
    }
    .await;
    result.unwrap_or_else(|e| (Outcome::NotRun(e.to_string()), None))
}

/// The command a mutant weakens: its policy's (`<table>.<policy>.<operator>`), or the one an
/// `anon_<command>` opens; `None` for a policy FOR ALL and for table-wide mutants.
async fn command_of(
    bound: &BoundSpec,
    mutant: &Mutant,
    admin: &mut PgConnection,
) -> Option<crate::spec::Command> {
    use crate::spec::Command;
    let by_letter = |c: &str| match c {
        "r" | "select" => Some(Command::Select),
        "a" | "insert" => Some(Command::Insert),
        "w" | "update" => Some(Command::Update),
        "d" | "delete" => Some(Command::Delete),
        _ => None,
    };
    if let Some(cmd) = mutant.operator.strip_prefix("anon_") {
        return by_letter(cmd);
    }
    let policy = mutant.id.split('.').nth(1)?;
    let letter: String = sqlx::query_scalar(
        "select p.polcmd::text from pg_policy p join pg_class c on c.oid = p.polrelid \
         join pg_namespace n on n.oid = c.relnamespace \
         where n.nspname = $1 and c.relname = $2 and p.polname = $3",
    )
    .bind(&bound.spec().schema)
    .bind(&mutant.table)
    .bind(policy)
    .fetch_optional(&mut *admin)
    .await
    .ok()
    .flatten()?;
    by_letter(&letter)
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
                        "SURVIVED {}: no verdict and no lint finding changed\n  {}",
                        m.id, m.sql
                    );
                    if let Some(u) = self.unchanged.get(&m.id) {
                        let _ = writeln!(
                            out,
                            "  {} cells of {} judged as before; {}",
                            u.cells,
                            u.tables.join(", "),
                            if u.observed_differently.is_empty() {
                                "none saw anything different: no operation of the matrices reaches it".to_owned()
                            } else {
                                format!(
                                    "these saw something else and still judged it fine:\n    {}",
                                    u.observed_differently.join("\n    ")
                                )
                            }
                        );
                    }
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
                "unchanged": self.unchanged.get(&m.id).map(|u| json!({
                    "cells": u.cells,
                    "tables": u.tables,
                    "observed_differently": u.observed_differently,
                })),
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
