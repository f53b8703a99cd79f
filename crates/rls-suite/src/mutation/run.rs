//! Running the mutants: each applied in a savepoint of a seeded session (one transaction on a
//! database of its own, never committed), judged there by the spec's matrices (of the tables
//! its change can reach) and then the lint, and rolled back.

use std::collections::{BTreeMap, BTreeSet};

use harness::TestDatabase;
use sqlx::{Connection, PgConnection};

use super::{FUNCTIONS, Mutant, MutationReport, Outcome, Unchanged};
use crate::check::MutationOptions;
use crate::engine::model::Verdict;
use crate::engine::run::{Focus, Seeded};
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

/// The savepoint a mutant's change and run live in, rolled back after it.
const MUTANT: &str = "insforge_rls_mutant";

/// Whether code the superuser runs while seeding or computing the expectations can see the
/// policies: a SECURITY DEFINER function or a view owned by a role that does not bypass RLS.
/// Without one, a policy or table mutant cannot change the seeds or the expectations (a
/// superuser bypasses RLS), so they are made once per session and reused.
async fn superuser_sees_policies(conn: &mut PgConnection) -> Result<bool, engine::Error> {
    sqlx::query_scalar(
        "select exists (select from pg_proc p join pg_roles r on r.oid = p.proowner \
                        where p.prosecdef and not (r.rolsuper or r.rolbypassrls)) \
             or exists (select from pg_class c join pg_roles r on r.oid = c.relowner \
                        where c.relkind in ('v', 'm') and not (r.rolsuper or r.rolbypassrls))",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|source| engine::Error::Sql {
        context: "read who owns the functions and views".into(),
        source,
    })
}

/// Runs `sql` (savepoint commands) on `conn`.
async fn savepoint(conn: &mut PgConnection, sql: &str) -> Result<(), engine::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|source| engine::Error::Sql {
            context: format!("{sql} (a mutant's savepoint)"),
            source,
        })
}

/// A mutant's outcome, with a survivor's matrices.
type Judged = (Outcome, Option<engine::CheckReport>);

/// What the workers share: the mutants, the next one to take, the outcomes, the baseline.
struct Shared<'a> {
    bound: &'a BoundSpec,
    mutants: &'a [Mutant],
    next: std::sync::atomic::AtomicUsize,
    outcomes: std::sync::Mutex<Vec<Option<Judged>>>,
    baseline: tokio::sync::OnceCell<Baseline>,
    opts: &'a RunOptions,
    lint: &'a rls_lint::LintOptions,
}

impl Shared<'_> {
    /// The next mutant to judge (those known not to run are settled on the way).
    fn take(&self) -> Option<usize> {
        loop {
            let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mutant = self.mutants.get(i)?;
            match &mutant.not_run {
                Some(why) => self.settle(i, Outcome::NotRun(why.clone()), None),
                None => return Some(i),
            }
        }
    }

    fn settle(&self, i: usize, outcome: Outcome, seen: Option<engine::CheckReport>) {
        if let Ok(mut all) = self.outcomes.lock()
            && let Some(slot) = all.get_mut(i)
        {
            *slot = Some((outcome, seen));
        }
    }
}

/// Runs every mutant of `mutants` against `base` (which nobody may be connected to), with
/// `mutation.jobs` sessions at a time: each a superuser connection to a database of its own
/// (`base` itself, then clones of it made before anyone connects), seeded once inside one
/// transaction that is never committed. A mutant is applied in a savepoint, judged there
/// (each cell in a savepoint of its own, as its actor) and rolled back. The unmutated run that
/// kills are judged against is made the same way, in the first session that gets to it. `lint`
/// are the lint options of the check.
pub async fn run(
    bound: &BoundSpec,
    base: &TestDatabase,
    mutants: Vec<Mutant>,
    opts: RunOptions,
    lint: &rls_lint::LintOptions,
    mutation: &MutationOptions,
) -> Result<MutationReport, engine::Error> {
    let runnable = mutants.iter().filter(|m| m.not_run.is_none()).count();
    let jobs = mutation.jobs.clamp(1, runnable.max(1));
    let mut clones = Vec::new();
    for _ in 1..jobs {
        clones.push(TestDatabase::clone_of(base).await?);
    }
    let targets: Vec<&harness::PgTarget> = std::iter::once(base)
        .chain(&clones)
        .map(TestDatabase::admin_target)
        .collect();
    let shared = Shared {
        bound,
        mutants: &mutants,
        next: std::sync::atomic::AtomicUsize::new(0),
        outcomes: std::sync::Mutex::new(vec![None; mutants.len()]),
        baseline: tokio::sync::OnceCell::new(),
        opts: &opts,
        lint,
    };
    let workers = targets.iter().map(|t| worker(&shared, t));
    let failures: Vec<Option<engine::Error>> = futures_util::future::join_all(workers).await;
    drop(clones);
    let Some(baseline) = shared.baseline.get() else {
        // No session got as far as the unmutated run: nothing can be judged.
        return Err(failures
            .into_iter()
            .flatten()
            .next()
            .unwrap_or_else(|| engine::Error::Sql {
                context: "judge the mutants".into(),
                source: sqlx::Error::Protocol("no session ran".into()),
            }));
    };
    let why_not = failures
        .iter()
        .flatten()
        .next()
        .map_or_else(|| "no session judged it".to_owned(), ToString::to_string);
    let outcomes = shared.outcomes.into_inner().unwrap_or_default();
    let mut unchanged = BTreeMap::new();
    let equivalent = super::Equivalent::new(&bound.spec().equivalent);
    let stale = equivalent.stale(mutants.iter().map(|m| m.id.as_str()));
    let mut results = Vec::with_capacity(mutants.len());
    for (mutant, done) in mutants.into_iter().zip(outcomes) {
        let (outcome, seen) = done.unwrap_or_else(|| (Outcome::NotRun(why_not.clone()), None));
        if let (Outcome::Survived, Some(seen)) = (&outcome, seen) {
            unchanged.insert(mutant.id.clone(), compare(&baseline.matrices, &seen));
        }
        let outcome = match (outcome, equivalent.reason(&mutant.id)) {
            (Outcome::Survived, Some(reason)) => Outcome::Equivalent(reason.to_owned()),
            (o, _) => o,
        };
        results.push((mutant, outcome));
    }
    Ok(MutationReport {
        results,
        unchanged,
        baseline: baseline.findings(),
        stale,
    })
}

/// How many times a session is opened again after its transaction broke.
const REOPEN: usize = 2;

/// One session: judges mutants taken from `shared` until none is left. Returns why it stopped
/// early, if it did (the mutants it could not take are left to the other sessions).
async fn worker(shared: &Shared<'_>, target: &harness::PgTarget) -> Option<engine::Error> {
    let mut last = None;
    for _ in 0..=REOPEN {
        match session(shared, target).await {
            Ok(()) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "a mutant session broke; opening another");
                last = Some(e);
            }
        }
        if shared.next.load(std::sync::atomic::Ordering::Relaxed) >= shared.mutants.len() {
            break;
        }
    }
    last
}

async fn session(shared: &Shared<'_>, target: &harness::PgTarget) -> Result<(), engine::Error> {
    let bound = shared.bound;
    let started = std::time::Instant::now();
    let mut conn = target.connect().await?;
    let sql_err = |context: &'static str| {
        move |source| engine::Error::Sql {
            context: context.into(),
            source,
        }
    };
    let mut tx = conn
        .begin()
        .await
        .map_err(sql_err("begin a mutant session"))?;
    let reseed_all = superuser_sees_policies(&mut tx).await?;
    let mut seeded = Seeded::seed(bound, &mut tx, shared.opts).await?;
    let record = shared.opts.record.as_ref();
    let baseline = shared
        .baseline
        .get_or_try_init(|| baseline(bound, &mut seeded, &mut tx, shared.lint, record))
        .await?;
    if !seeded.remembers() {
        savepoint(&mut tx, &format!("savepoint {MUTANT}")).await?;
        let kept = seeded.remember(bound, &mut tx).await;
        savepoint(
            &mut tx,
            &format!("rollback to savepoint {MUTANT}; release savepoint {MUTANT}"),
        )
        .await?;
        kept?;
    }
    tracing::debug!(took = ?started.elapsed(), "mutant session seeded");
    while let Some(i) = shared.take() {
        let mutant = &shared.mutants[i];
        let began = std::time::Instant::now();
        if let Some(record) = record {
            record.push(format!(
                "-- insforge-rls: mutant {}\nsavepoint {MUTANT};\n{};",
                mutant.id, mutant.sql
            ));
        }
        savepoint(&mut tx, &format!("savepoint {MUTANT}")).await?;
        let judged = judge_one(
            bound,
            &mut seeded,
            &mut tx,
            mutant,
            shared.lint,
            baseline,
            reseed_all,
        )
        .await;
        // Nothing of the mutant survives it; a transaction that cannot get back to the
        // savepoint is broken, and the session with it.
        let undo = format!("rollback to savepoint {MUTANT}; release savepoint {MUTANT}");
        if let Some(record) = record {
            record.push(format!("{undo};"));
        }
        let undone = savepoint(&mut tx, &undo).await;
        let (outcome, seen) = judged.unwrap_or_else(|e| (Outcome::NotRun(e.to_string()), None));
        tracing::debug!(mutant = %mutant.id, took = ?began.elapsed(), "judged");
        shared.settle(i, outcome, seen);
        undone?;
    }
    tx.rollback()
        .await
        .map_err(sql_err("end a mutant session"))?;
    conn.close().await.ok();
    Ok(())
}

/// The unmutated run, made as every mutant's is (in a savepoint of a seeded session), keeping
/// the expectations for the mutants of that session.
async fn baseline(
    bound: &BoundSpec,
    seeded: &mut Seeded,
    conn: &mut PgConnection,
    lint: &rls_lint::LintOptions,
    record: Option<&engine::run::Recorder>,
) -> Result<Baseline, engine::Error> {
    if let Some(record) = record {
        record.push(format!("-- insforge-rls: baseline\nsavepoint {MUTANT};"));
    }
    savepoint(conn, &format!("savepoint {MUTANT}")).await?;
    let made = async {
        let report = rls_lint::lint(&mut *conn, lint).await?;
        let matrices = seeded
            .run(
                bound,
                conn,
                &Focus {
                    skip_coverage: true,
                    ..Focus::default()
                },
                false,
                true,
            )
            .await?;
        Ok::<_, engine::Error>(Baseline::new(lint_keys(&report), matrices))
    }
    .await;
    let undo = format!("rollback to savepoint {MUTANT}; release savepoint {MUTANT}");
    if let Some(record) = record {
        record.push(format!("{undo};\n-- insforge-rls: end of baseline"));
    }
    savepoint(conn, &undo).await?;
    made
}

/// Applies `mutant` in the open savepoint of `conn` and judges it there (the caller rolls
/// it back).
async fn judge_one(
    bound: &BoundSpec,
    seeded: &mut Seeded,
    conn: &mut PgConnection,
    mutant: &Mutant,
    lint: &rls_lint::LintOptions,
    baseline: &Baseline,
    reseed_all: bool,
) -> Result<(Outcome, Option<engine::CheckReport>), engine::Error> {
    let started = std::time::Instant::now();
    // Read before the mutant applies (it may drop the policy).
    let first_command = command_of(bound, mutant, conn).await;
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(mutant.sql.clone()))
        .execute(&mut *conn)
        .await
    {
        return Ok((Outcome::NotRun(format!("it does not apply: {e}")), None));
    }
    // Bound again when the mutant adds a reader (a view, a function): it is then probed
    // too. (Nothing else a mutant does changes what binding reads.)
    let rebound = if mutant.kind().is_some_and(super::Operator::adds_reader) {
        BoundSpec::bind(bound.spec(), conn).await
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
        Some(affected(&bound, &mutant.table, conn).await?)
    };
    let applied = started.elapsed();
    let focus = Focus {
        tables,
        skip_coverage: true,
        // Caught is caught: a survivor runs every cell anyway (nothing stops it), and the
        // weakened command's cells run first. Only where the unmutated run had no finding
        // is the first finding the first cell that differs from it; else every cell runs
        // and is compared.
        stop_at_first_finding: baseline.verdicts.values().all(|k| *k == Kind::Ok),
        first_command,
    };
    // The seeds and expectations made once are this mutant's own unless it may change what
    // the superuser computes them from: a function (defaults and triggers call it), an
    // operator this run does not know, or a schema whose superuser code sees policies.
    let reuse = !reseed_all
        && mutant
            .kind()
            .is_some_and(|k| k.family() != super::Family::Function);
    // The matrices first: they are the evidence a team reads. The lint runs only for a
    // mutant they did not catch (a kill is a kill; the lint costs a catalog scan).
    let report = if reuse {
        seeded.run(&bound, conn, &focus, true, false).await?
    } else {
        let mut own = seeded.reseeded(&bound, conn).await?;
        own.run(&bound, conn, &focus, false, false).await?
    };
    let judged = started.elapsed();
    tracing::debug!(mutant = %mutant.id, ?applied, matrices = ?(judged - applied), reuse, "judged");
    if let Some(first) = baseline.first_difference(&report) {
        return Ok((Outcome::Killed(first), None));
    }
    let lint_report = rls_lint::lint(&mut *conn, lint).await?;
    tracing::debug!(mutant = %mutant.id, lint = ?(started.elapsed() - judged), "linted");
    if let Some(new) = lint_keys(&lint_report).difference(&baseline.lint).next() {
        return Ok((Outcome::Killed(format!("lint: {new}")), None));
    }
    Ok((Outcome::Survived, Some(report)))
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
