//! Running the mutants: each on a clone of the checked database, judged by the spec's matrices
//! (of the tables its change can reach) and then the lint.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt as _;
use harness::TestDatabase;
use sqlx::{Connection, PgConnection};

use super::{FUNCTIONS, Mutant, MutationReport, Outcome, Unchanged};
use crate::engine::model::Verdict;
use crate::engine::run::{Focus, run_focused};
use crate::engine::{self, BoundSpec, RunOptions};

/// The tables whose policies read `table` (through `pg_depend`), with `table` itself: the
/// matrices a mutant of `table` can change. (A SECURITY INVOKER function that reads the table
/// inside another table's policy is not tracked there: such a mutant may survive falsely — it
/// is listed, never hidden.)
async fn affected(
    bound: &BoundSpec,
    table: &str,
    admin: &mut PgConnection,
) -> Result<Vec<String>, engine::Error> {
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
    .map_err(|source| engine::Error::Sql {
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
/// and its matrices, with each cell's verdict kind by `(table, operation, actor)`.
#[derive(Debug)]
struct Baseline {
    lint: BTreeSet<String>,
    matrices: engine::CheckReport,
    verdicts: BTreeMap<CellKey, Kind>,
}

/// A cell of the matrices, as both runs name it: `(table, operation, actor)`.
type CellKey = (String, String, String);

/// What a verdict says, without its text (which names rows by keys that differ per run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ok,
    Leak,
    LostAccess,
}

fn kind(v: &Verdict) -> Kind {
    match v {
        Verdict::Ok => Kind::Ok,
        Verdict::Leak(_) => Kind::Leak,
        Verdict::LostAccess(_) => Kind::LostAccess,
    }
}

/// Every cell of `report` with its verdict.
fn cells(report: &engine::CheckReport) -> impl Iterator<Item = (CellKey, &Verdict)> {
    report.tables.iter().flat_map(|t| {
        t.ops.iter().zip(&t.cells).flat_map(move |(op, row)| {
            t.actors.iter().zip(row).map(move |(actor, cell)| {
                ((t.table.clone(), op.clone(), actor.clone()), &cell.verdict)
            })
        })
    })
}

impl Baseline {
    fn new(lint: BTreeSet<String>, matrices: engine::CheckReport) -> Self {
        let verdicts = cells(&matrices).map(|(k, v)| (k, kind(v))).collect();
        Baseline {
            lint,
            matrices,
            verdicts,
        }
    }

    /// The unmutated schema's own findings in its matrices (leaks, then lost access). None of
    /// them can kill a mutant. (Its lint findings are the check's lint report; a mutant's lint
    /// finding counts only when it is not one of them.)
    fn findings(&self) -> Vec<String> {
        let m = &self.matrices;
        m.leaks().into_iter().chain(m.lost_access()).collect()
    }

    /// The first cell of a mutant's matrices whose verdict differs from the unmutated run's:
    /// what kills the mutant. A new leak comes first, then a new lost access (each in run
    /// order), then a finding of the unmutated run that the mutant made go away. A cell the
    /// unmutated run did not have (a reader the mutant adds) was OK there.
    fn first_difference(&self, seen: &engine::CheckReport) -> Option<String> {
        let before = |key: &CellKey| self.verdicts.get(key).copied().unwrap_or(Kind::Ok);
        let new = |want: Kind| {
            cells(seen).find_map(|(key, v)| {
                (kind(v) == want && before(&key) != want)
                    .then(|| format!("[{}] {}: {}", key.0, key.1, v.why().unwrap_or_default()))
            })
        };
        new(Kind::Leak)
            .or_else(|| new(Kind::LostAccess))
            .or_else(|| {
                cells(seen).find_map(|(key, v)| {
                    let was = before(&key);
                    (kind(v) == Kind::Ok && was != Kind::Ok).then(|| {
                        format!(
                            "[{}] {} · {}: no longer {} (the unmutated run's verdict)",
                            key.0,
                            key.1,
                            key.2,
                            if was == Kind::Leak {
                                "a leak"
                            } else {
                                "lost access"
                            }
                        )
                    })
                })
            })
    }
}

/// The cells of `seen` (a survivor's matrices) against the unmutated ones.
fn compare(base: &engine::CheckReport, seen: &engine::CheckReport) -> Unchanged {
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
) -> Result<MutationReport, engine::Error> {
    let baseline = {
        let mut conn = base.admin_connection().await?;
        let report = rls_lint::lint(&mut conn, lint).await?;
        conn.close().await.ok();
        // The unmutated matrices, to tell a survivor's cells apart from them.
        let db = TestDatabase::clone_of(base).await?;
        let matrices = run_focused(
            bound,
            db.admin_target(),
            db.app_target(),
            opts.clone(),
            &Focus {
                skip_coverage: true,
                ..Focus::default()
            },
        )
        .await?;
        drop(db);
        Box::new(Baseline::new(lint_keys(&report), matrices))
    };
    let mut unchanged = BTreeMap::new();
    let equivalent = super::Equivalent::new(&bound.spec().equivalent);
    let stale = equivalent.stale(mutants.iter().map(|m| m.id.as_str()));
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
        let outcome = match (outcome, equivalent.reason(&mutant.id)) {
            (Outcome::Survived, Some(reason)) => Outcome::Equivalent(reason.to_owned()),
            (o, _) => o,
        };
        results[i] = Some((mutant, outcome));
    }
    Ok(MutationReport {
        results: results.into_iter().flatten().collect(),
        unchanged,
        baseline: baseline.findings(),
        stale,
    })
}

async fn judge_one(
    bound: &BoundSpec,
    db: &TestDatabase,
    mutant: &Mutant,
    opts: &RunOptions,
    lint: &rls_lint::LintOptions,
    baseline: &Baseline,
) -> (Outcome, Option<engine::CheckReport>) {
    let started = std::time::Instant::now();
    let result: Result<(Outcome, Option<engine::CheckReport>), engine::Error> = async {
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
        let rebound = if mutant.kind().is_some_and(super::Operator::adds_reader) {
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
        let report = run_focused(
            &bound,
            db.admin_target(),
            db.app_target(),
            opts.clone(),
            &Focus {
                tables,
                skip_coverage: true,
                // Caught is caught: a survivor runs every cell anyway (nothing stops it), and
                // the weakened command's cells run first. Only where the unmutated run had no
                // finding is the first finding the first cell that differs from it; else
                // every cell runs and is compared.
                stop_at_first_finding: baseline.verdicts.values().all(|k| *k == Kind::Ok),
                first_command,
            },
        )
        .await?;
        let judged = started.elapsed();
        tracing::debug!(mutant = %mutant.id, ?applied, matrices = ?(judged - applied), "judged");
        if let Some(first) = baseline.first_difference(&report) {
            admin.close().await.ok();
            return Ok((Outcome::Killed(first), None));
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
    if let Some(cmd) = mutant.kind().and_then(super::Operator::opens) {
        return Some(cmd);
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
    match letter.as_str() {
        "r" => Some(Command::Select),
        "a" => Some(Command::Insert),
        "w" => Some(Command::Update),
        "d" => Some(Command::Delete),
        _ => None,
    }
}
