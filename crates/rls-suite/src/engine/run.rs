//! The driver: one run carries every bound table through the stages — `seed`
//! once, then per table `expect`, and per operation and actor
//! `plan` → [`observe`](super::observe) → `judge` →
//! [`report`](super::report) — restoring the seeds after each cell that wrote, and clearing them
//! at the end whatever happened. Over HTTP it adds the hostile-token table and the pool bleed;
//! in SQL, the policy coverage.

use std::collections::BTreeMap;

use harness::PgTarget;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

use super::coverage;
use super::expect::expected;
use super::hostile;
use super::judge::judge;
use super::model::{
    Actor, Allowed, BoundSpec, ClaimsForwarding, Error, Observed, Op, Seeds, Table, Verdict, actor,
    sql_err,
};
use super::observe::{Executed, HttpEndpoint, Observer, can_act};
use super::plan::plan;
use super::pool;
use super::report::{CheckReport, SpecCell, TableMatrix, describe};
use super::seed::{clear, images, keep_seeds, refuse_existing_rows, remove, restore, seed};
use crate::spec::Command;

/// Options of a run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub forwarding: ClaimsForwarding,
    /// The database is not the run's own (`verify` against a deployment): refuse to start when
    /// a spec table already has rows, because restoring between cells rewrites whole tables.
    /// A check's fresh database is its own, and rows its migrations inserted are replaced.
    pub refuse_existing_rows: bool,
}

/// What a mutant's run narrows itself to; the default is the whole run (every table, every
/// cell, with the policy coverage), which is what [`run`] and [`run_via`] do.
#[derive(Debug, Clone, Default)]
pub struct Focus {
    /// Only these tables' matrices, in this order (every table is still seeded); `None`: all,
    /// in seeding order.
    pub tables: Option<Vec<String>>,
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
) -> Result<CheckReport, Error> {
    run_via(bound, admin, Via::Sql(app), opts).await
}

/// [`run`], narrowed to `focus` (a mutant's run).
pub async fn run_focused(
    bound: &BoundSpec,
    admin: &PgTarget,
    app: &PgTarget,
    opts: RunOptions,
    focus: &Focus,
) -> Result<CheckReport, Error> {
    drive(bound, admin, Via::Sql(app), opts, focus).await
}

/// How a run's cells are carried out.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// Identity transactions on the app's login role.
    Sql(&'a PgTarget),
    /// The records API of an endpoint serving this database (the sample app, or an InsForge
    /// deployment whose database `admin` reaches). Only the Clerk users act over HTTP: the
    /// built-in `no_claims` and `anon` actors are refused before Postgres there (the
    /// [`hostile`] token table checks what such requests get).
    Http(&'a HttpEndpoint),
}

/// Runs the matrices of every spec table, carried out `via` SQL or HTTP, seeding, observing
/// and restoring through `admin` (a superuser of the database the cells reach).
pub async fn run_via(
    bound: &BoundSpec,
    admin: &PgTarget,
    via: Via<'_>,
    opts: RunOptions,
) -> Result<CheckReport, Error> {
    drive(bound, admin, via, opts, &Focus::default()).await
}

async fn drive(
    bound: &BoundSpec,
    admin: &PgTarget,
    via: Via<'_>,
    opts: RunOptions,
    focus: &Focus,
) -> Result<CheckReport, Error> {
    let entered = std::time::Instant::now();
    let http = matches!(via, Via::Http(_));
    let all_actors = actor::actors(&bound.spec);
    let users: Vec<&Actor> = all_actors.iter().filter(|a| a.is_user()).collect();
    let actors: Vec<Actor> = all_actors
        .iter()
        .filter(|a| can_act(http, a))
        .cloned()
        .collect();
    let mut observer = match via {
        Via::Sql(app) => {
            let template = actor::template();
            let identities = actors
                .iter()
                .map(|a| {
                    a.db_identity(&template, opts.forwarding)
                        .map_err(|source| Error::Token {
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
        functions: None,
        accept: bound.spec.accept.clone(),
    };
    // Every actor's allowed rows per table (by position), for the token and pool tables.
    let mut allowed_all: Vec<(usize, Vec<Allowed>)> = Vec::new();
    let result = async {
        // The tables asked for, in the order asked (a mutant's own table first), else all.
        let order: Vec<usize> = match &focus.tables {
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
            if let Some(first) = focus.first_command {
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
                    found = focus.stop_at_first_finding && cell.verdict != Verdict::Ok;
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
        // The function cells (SQL and HTTP) and the HTTP-only upsert/embed rows: whole runs
        // only, never a mutant's (engine/functions.rs, engine/surfaces.rs).
        if focus.tables.is_none() && !focus.skip_coverage {
            report.functions = super::functions::run(
                bound,
                &seeds,
                &actors,
                &allowed_all,
                &mut observer,
                &mut admin,
                opts.refuse_existing_rows,
            )
            .await?;
            super::surfaces::run(
                bound,
                &seeds,
                &actors,
                &allowed_all,
                &observer,
                &mut admin,
                &mut report.tables,
            )
            .await?;
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
        if !focus.skip_coverage
            && let Observer::Sql { conn, identities } = &mut observer
        {
            report.coverage = Some(
                coverage::measure(bound, &seeds, &actors, identities, conn, &mut admin).await?,
            );
        }
        Ok::<_, Error>(())
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

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_cell(
    table: &Table,
    ti: usize,
    seeds: &Seeds,
    allowed: &Allowed,
    actor: (usize, &Actor),
    op: &Op,
    observer: &mut Observer,
    admin: &mut PgConnection,
    bound: &BoundSpec,
) -> Result<SpecCell, Error> {
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
