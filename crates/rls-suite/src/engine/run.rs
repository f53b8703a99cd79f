//! The driver: one run carries every bound table through the stages — `seed`
//! once, then per table `expect`, and per operation and actor
//! `plan` → [`observe`](super::observe) → `judge` →
//! [`report`](super::report) — restoring the seeds after each cell that wrote, and clearing them
//! at the end whatever happened. Over HTTP it adds the hostile-token table and the pool bleed;
//! in SQL, the policy coverage.

use std::collections::BTreeMap;

use harness::{DbIdentity, PgTarget};
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
use super::observe::sql::{RolledBack, execute_rolled_back};
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
    /// The statement timeout of each cell of a run held in one transaction ([`Seeded`], the
    /// mutants' runs): a change that makes a policy loop costs at most this per cell. `None`:
    /// [`DEFAULT_CELL_TIMEOUT`].
    pub cell_timeout: Option<std::time::Duration>,
    /// Where a run held in one transaction writes down the SQL it sends for its seeds and
    /// cells, as psql would send it (the benchmark replays it as the floor).
    pub record: Option<Recorder>,
}

/// SQL written down as it is sent, in order (see [`RunOptions::record`]).
#[derive(Debug, Clone, Default)]
pub struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Recorder {
    pub fn push(&self, sql: String) {
        if let Ok(mut all) = self.0.lock() {
            all.push(sql);
        }
    }

    /// Everything written down so far, emptied.
    pub fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut all| std::mem::take(&mut *all))
            .unwrap_or_default()
    }
}

/// The statement timeout of a cell held in one transaction, unless [`RunOptions`] say.
pub const DEFAULT_CELL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

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
    let result = async {
        let mut cells = Cells::Committed {
            observer: &mut observer,
            admin: &mut admin,
        };
        // Every actor's allowed rows per table (by position), for the token and pool tables.
        let (tables, allowed_all) =
            matrices(bound, &seeds, &actors, focus, &mut cells, &mut |_| None).await?;
        report.tables = tables;
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

/// A seeded database held in one open transaction: the mutants' way (`mutation::run`). The
/// seeds go in once, inside the transaction of the caller's superuser connection; every run
/// after that carries each cell out in a savepoint, as its actor (`authenticated` or `anon`
/// with the claims a request carries, switched as `pg-identity` switches them, a statement
/// timeout of its own), reads what changed as the superuser and rolls the savepoint back. The
/// caller wraps its change (a mutant's DDL) and a run in a savepoint of its own and rolls that
/// back too, so nothing of one survives into the next, and nothing is ever committed.
#[derive(Debug, Clone)]
pub struct Seeded {
    seeds: Seeds,
    actors: Vec<Actor>,
    identities: Vec<DbIdentity>,
    timeout_ms: u64,
    record: Option<Recorder>,
    /// Per table (by position): what the spec allows each actor, as the unmutated catalog
    /// gave it (filled by a run with `remember`).
    allowed: Vec<Option<Vec<Allowed>>>,
}

impl Seeded {
    /// Seeds every spec table inside the open transaction of `conn` (a superuser's), which
    /// then runs with triggers off for the superuser's own row work (removing, reading).
    pub async fn seed(
        bound: &BoundSpec,
        conn: &mut PgConnection,
        opts: &RunOptions,
    ) -> Result<Self, Error> {
        let cell_timeout = opts.cell_timeout.unwrap_or(DEFAULT_CELL_TIMEOUT);
        let all_actors = actor::actors(&bound.spec);
        let users: Vec<&Actor> = all_actors.iter().filter(|a| a.is_user()).collect();
        let template = actor::template();
        let identities = all_actors
            .iter()
            .map(|a| {
                a.db_identity(&template, opts.forwarding)
                    .map_err(|source| Error::Token {
                        actor: a.key.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let seeds = Self::seed_rows(bound, &users, conn).await?;
        let seeded = Seeded {
            seeds,
            actors: all_actors.clone(),
            identities,
            timeout_ms: u64::try_from(cell_timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            record: opts.record.clone(),
            allowed: vec![None; bound.tables.len()],
        };
        if let Some(record) = &seeded.record {
            record.push(seeded.seeds_sql(bound));
        }
        Ok(seeded)
    }

    async fn seed_rows(
        bound: &BoundSpec,
        users: &[&Actor],
        conn: &mut PgConnection,
    ) -> Result<Seeds, Error> {
        let replica = "set local session_replication_role = replica";
        sqlx::query(replica)
            .execute(&mut *conn)
            .await
            .map_err(sql_err("prepare the superuser session"))?;
        let seeds = seed(bound, users, conn).await?;
        sqlx::query(replica)
            .execute(&mut *conn)
            .await
            .map_err(sql_err("prepare the superuser session"))?;
        Ok(seeds)
    }

    /// The same actors and identities over seeds made again (inside the caller's savepoint,
    /// after its change): for a change that may alter what seeding itself does (a function
    /// that defaults or triggers call). Nothing is reused from the unmutated runs.
    pub async fn reseeded(
        &self,
        bound: &BoundSpec,
        conn: &mut PgConnection,
    ) -> Result<Self, Error> {
        sqlx::query("set local session_replication_role = replica")
            .execute(&mut *conn)
            .await
            .map_err(sql_err("prepare the superuser session"))?;
        clear(bound, conn).await?;
        let users: Vec<&Actor> = self.actors.iter().filter(|a| a.is_user()).collect();
        let seeds = Self::seed_rows(bound, &users, conn).await?;
        let seeded = Seeded {
            seeds,
            actors: self.actors.clone(),
            identities: self.identities.clone(),
            timeout_ms: self.timeout_ms,
            record: self.record.clone(),
            allowed: vec![None; bound.tables.len()],
        };
        if let Some(record) = &seeded.record {
            record.push(format!(
                "{};\n{}",
                bound
                    .tables
                    .iter()
                    .rev()
                    .map(|t| format!("delete from {}", t.qname))
                    .collect::<Vec<_>>()
                    .join(";\n"),
                seeded.seeds_sql(bound)
            ));
        }
        Ok(seeded)
    }

    /// The seeded rows as SQL that puts them in again exactly (same keys, same values), as
    /// the superuser with triggers off.
    fn seeds_sql(&self, bound: &BoundSpec) -> String {
        let mut sql = String::from("set local session_replication_role = replica;\n");
        for (ti, table) in bound.tables.iter().enumerate() {
            let images: Vec<Value> = self.seeds.rows[ti]
                .iter()
                .map(|r| r.image.clone())
                .collect();
            let images = Value::Array(images).to_string();
            let Ok(images) = harness::identity::quote_literal(&images) else {
                continue;
            };
            sql.push_str(&format!(
                "insert into {q} ({c}) overriding system value select {c} \
                 from jsonb_populate_recordset(null::{q}, {images}::jsonb);\n",
                q = table.qname,
                c = table.column_list(),
            ));
        }
        sql
    }

    /// Whether every table's expectations are kept (see [`Seeded::run`]).
    pub fn remembers(&self) -> bool {
        self.allowed.iter().all(Option::is_some)
    }

    /// Computes and keeps every table's expectations without running a cell (what a run
    /// with `remember` keeps), on the catalog `conn` sees.
    pub async fn remember(
        &mut self,
        bound: &BoundSpec,
        conn: &mut PgConnection,
    ) -> Result<(), Error> {
        for (ti, table) in bound.tables.iter().enumerate() {
            if self.allowed[ti].is_none() {
                self.allowed[ti] =
                    Some(expected(table, &self.seeds.rows[ti], &self.actors, &mut *conn).await?);
            }
        }
        Ok(())
    }

    /// The SQL matrices `focus` asks for (never the coverage), every cell rolled back. With
    /// `reuse`, a table's expectations come from an earlier run with `remember` when it has
    /// them (sound only where the change cannot alter what the superuser computes them from);
    /// with `remember`, the ones computed here are kept for later runs.
    pub async fn run(
        &mut self,
        bound: &BoundSpec,
        conn: &mut PgConnection,
        focus: &Focus,
        reuse: bool,
        remember: bool,
    ) -> Result<CheckReport, Error> {
        let mut cells = Cells::RolledBack {
            conn,
            identities: &self.identities,
            timeout_ms: self.timeout_ms,
            record: self.record.as_ref(),
        };
        let cache = &self.allowed;
        let (tables, allowed) = matrices(
            bound,
            &self.seeds,
            &self.actors,
            focus,
            &mut cells,
            &mut |ti| cache.get(ti).cloned().flatten().filter(|_| reuse),
        )
        .await?;
        if remember {
            for (ti, a) in allowed {
                if let Some(slot) = self.allowed.get_mut(ti) {
                    *slot = Some(a);
                }
            }
        }
        Ok(CheckReport {
            tables,
            actors: self
                .actors
                .iter()
                .map(|a| (a.key.clone(), a.id().unwrap_or("-").to_owned()))
                .collect(),
            hostile: Vec::new(),
            pool: None,
            coverage: None,
            functions: None,
            accept: bound.spec.accept.clone(),
        })
    }
}

/// How a run's cells are carried out and undone.
pub(crate) enum Cells<'a> {
    /// The observer acts (on its own connection, committing); `admin` removes, reads what
    /// changed and restores the seeds, committing too.
    Committed {
        observer: &'a mut Observer,
        admin: &'a mut PgConnection,
    },
    /// Everything inside the open transaction of `conn`, a superuser's: each cell in a
    /// savepoint, as its actor's identity (`identities`, by actor position), rolled back.
    RolledBack {
        conn: &'a mut PgConnection,
        identities: &'a [DbIdentity],
        timeout_ms: u64,
        record: Option<&'a Recorder>,
    },
}

impl Cells<'_> {
    /// The superuser's connection.
    fn admin(&mut self) -> &mut PgConnection {
        match self {
            Cells::Committed { admin, .. } => admin,
            Cells::RolledBack { conn, .. } => conn,
        }
    }
}

/// The matrices of the tables `focus` asks for (all, in seeding order, by default), with every
/// actor's allowed rows per table (by position) — from `known` when it has them, else
/// computed.
async fn matrices(
    bound: &BoundSpec,
    seeds: &Seeds,
    actors: &[Actor],
    focus: &Focus,
    cells: &mut Cells<'_>,
    known: &mut dyn FnMut(usize) -> Option<Vec<Allowed>>,
) -> Result<(Vec<TableMatrix>, Vec<(usize, Vec<Allowed>)>), Error> {
    let mut out = Vec::new();
    let mut allowed_all = Vec::new();
    // The tables asked for, in the order asked (a mutant's own table first), else all.
    let order: Vec<usize> = match &focus.tables {
        Some(only) => only.iter().filter_map(|name| bound.index(name)).collect(),
        None => (0..bound.tables.len()).collect(),
    };
    for ti in order {
        let table = &bound.tables[ti];
        let planned = std::time::Instant::now();
        let allowed = match known(ti) {
            Some(known) => known,
            None => expected(table, &seeds.rows[ti], actors, cells.admin()).await?,
        };
        tracing::debug!(table = %table.spec.name, took = ?planned.elapsed(), "planned");
        allowed_all.push((ti, allowed.clone()));
        let mut ops = Op::all(table);
        if let Some(first) = focus.first_command {
            // A stable sort: the command's operations first, each group in its own order.
            ops.sort_by_key(|op| op.command() != first);
        }
        let mut grid = Vec::new();
        let mut found = false;
        'ops: for op in &ops {
            let mut row = Vec::new();
            for (ai, actor) in actors.iter().enumerate() {
                let cell = run_cell(
                    table,
                    ti,
                    seeds,
                    &allowed[ai],
                    (ai, actor),
                    op,
                    cells,
                    bound,
                )
                .await?;
                found = focus.stop_at_first_finding && cell.verdict != Verdict::Ok;
                row.push(cell);
                if found {
                    grid.push(row);
                    break 'ops;
                }
            }
            grid.push(row);
        }
        tracing::debug!(table = %table.spec.name, took = ?planned.elapsed(), "matrix done");
        out.push(TableMatrix {
            table: table.spec.name.clone(),
            actors: actors.iter().map(|a| a.key.clone()).collect(),
            ops: ops
                .iter()
                .take(grid.len())
                .map(|op| op.label(table))
                .collect(),
            cells: grid,
        });
        if found {
            break;
        }
    }
    Ok((out, allowed_all))
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_cell(
    table: &Table,
    ti: usize,
    seeds: &Seeds,
    allowed: &Allowed,
    actor: (usize, &Actor),
    op: &Op,
    cells: &mut Cells<'_>,
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
        before.remove(&r.pk);
    }

    let mut o = Observed::default();
    let executed = match cells {
        Cells::Committed { observer, admin } => {
            if let Some(r) = plan.removed {
                remove(table, &r.pk, admin).await?;
            }
            let executed = observer.execute(table, rows, ai, &plan.action).await?;
            if let Executed::Unsupported(why) = executed {
                if plan.removed.is_some() {
                    restore(admin, &bound.touched[ti]).await?;
                }
                return Ok(SpecCell {
                    text: why.into(),
                    verdict: Verdict::Ok,
                });
            }
            let refused = matches!(
                &executed,
                Executed::Done {
                    refused: Some(_),
                    ..
                }
            );
            let dirty = plan.removed.is_some() || (!op.is_select() && !refused);
            let after = if dirty {
                Some(images(table, admin).await?)
            } else {
                None
            };
            let changed = after.as_ref().is_some_and(|after| {
                plan.removed.is_some() || after.len() != before.len() || after != &before
            });
            if changed {
                restore(admin, &bound.touched[ti]).await?;
            }
            (executed, after)
        }
        Cells::RolledBack {
            conn,
            identities,
            timeout_ms,
            record,
        } => {
            // Undone by the savepoint: nothing to restore.
            let push = record.map(|r| move |sql: String| r.push(sql));
            let how = RolledBack {
                removed: plan.removed.map(|r| r.pk.as_str()),
                read_after: plan.removed.is_some() || !op.is_select(),
                timeout_ms: *timeout_ms,
                record: push.as_ref().map(|p| p as &dyn Fn(String)),
            };
            execute_rolled_back(conn, &identities[ai], table, &plan.action, how).await?
        }
    };
    match executed.0 {
        Executed::Done { seen, refused } => {
            if op.is_select() {
                o.seen = seen;
            }
            o.refused = refused;
        }
        Executed::Unsupported(why) => {
            return Ok(SpecCell {
                text: why.into(),
                verdict: Verdict::Ok,
            });
        }
    }
    // What changed, as the superuser saw it (a refused statement changed nothing).
    if let Some(after) = executed
        .1
        .filter(|_| o.refused.is_none() || plan.removed.is_some())
    {
        o.record_changes(&before, &after);
    }
    let verdict = judge(table, seeds, ti, allowed, actor, op, plan.expect_row, &o);
    Ok(SpecCell {
        text: describe(table, seeds, ti, op, &o, &bound.spec),
        verdict,
    })
}
