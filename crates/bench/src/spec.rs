//! Spec check figures: the whole `examples/team-workspaces` check (fresh database, migrations,
//! matrices, lint), the engine's time per table at 1, 10 and 50 generated tables (so the
//! growth is visible), the verdict cost per matrix cell, the check with every mutant
//! generated from the example's catalog (mutants per second), the mutants' growth at 100, 300
//! and 1,000 mutants of generated tables, and **the floor** side by side: the statements the
//! verdicts need, written down as the engine sends them (seeds, then per cell one query) and
//! replayed by psql on an open connection — no judging, no Rust — against which the engine's
//! per-cell and per-mutant costs are ratios.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context as _, Result};
use harness::TestDatabase;
use rls_suite::check::{self, CheckOptions, MutationOptions, Subject};
use rls_suite::engine::run::{Focus, Recorder, Seeded};
use rls_suite::engine::{BoundSpec, RunOptions};
use rls_suite::mutation;
use serde::{Deserialize, Serialize};
use sqlx::Connection as _;

use super::meta::Meta;
use super::progress::{StagePlan, Step};
use super::stats::{Stats, Unit};
use super::{Ctx, Plan, Target};

pub const NAME: &str = "spec_check";
pub const TARGET_CELL_MS: f64 = 0.5;
/// A cell's cost at most this many times the floor's.
pub const TARGET_FLOOR_RATIO: f64 = 2.0;
pub const TARGET_EXAMPLE_SECS: f64 = 3.0;
/// The example's whole check with every generated mutant (issue 22).
pub const TARGET_MUTANTS_SECS: f64 = 2.0;
pub const TARGET_MUTANTS_PER_SEC: f64 = 100.0;
/// Mutants judged at once (as `cargo xtask check` does by default).
pub const MUTANT_JOBS: usize = 2;
/// Growth counts as linear while a table at the largest size costs at most this much more
/// than at the middle one.
pub const LINEAR_SLACK: f64 = 1.5;
pub const PEER: &str = "before the spec engine the todos SQL matrix took ~7 ms per cell (0.31 s \
     for ~44 cells); rls-policy-tester spends ~1.7 ms per check on this machine (quoted)";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpecCheck {
    pub meta: Meta,
    pub example: ExampleFigures,
    pub growth: Vec<GrowthPoint>,
    /// Absent in results written before the mutants were measured.
    #[serde(default)]
    pub mutants: Option<MutantFigures>,
    /// Absent in results written before the floor was measured.
    #[serde(default)]
    pub floor: Option<FloorFigures>,
    #[serde(default)]
    pub mutant_growth: Vec<MutantGrowthPoint>,
    /// The spread over the runs with every mutant (`mutants` is the median run).
    #[serde(default)]
    pub mutant_runs: Option<MutantSpread>,
    pub targets: Vec<Target>,
    pub peer: String,
}

/// The example's check as `cargo xtask check` runs it, minus process start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExampleFigures {
    pub tables: usize,
    pub cells: usize,
    /// Fresh database + migrations + bind + matrices + lint.
    pub wall_secs: Stats,
    /// The matrices alone (seeding, planning, every cell).
    pub matrices_secs: Stats,
    pub per_cell_ms: Stats,
}

/// The example's check with every generated mutant, once (a run takes tens of seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MutantFigures {
    pub generated: usize,
    pub judged: usize,
    pub killed: usize,
    pub not_run: usize,
    /// Parallel mutant jobs.
    pub jobs: usize,
    /// Fresh database + migrations + matrices + coverage + lint + every mutant.
    pub wall_secs: f64,
    /// The mutation run alone (baseline, clones, judging).
    pub mutation_secs: f64,
    pub per_second: f64,
}

/// The engine against the floor on the example: the same statements, the same transaction
/// shape (one seeded transaction, one query per cell), replayed by psql.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FloorFigures {
    /// Cells of the unmutated run (every table).
    pub cells: usize,
    pub mutants: usize,
    /// The replay, per cell (less the seeds alone).
    pub floor_cell_ms: Stats,
    /// The engine's unmutated run in one transaction (plans, the statements, judging), per
    /// cell; the expectations are apart.
    pub engine_cell_ms: Stats,
    /// The expectations of every table (the spec's rules evaluated as SQL per actor and row),
    /// once per session: not per cell.
    #[serde(default)]
    pub expectations_ms: Option<Stats>,
    /// The replay, per mutant: its savepoint, DDL, the cells the engine ran for it, the rollback.
    pub floor_mutant_ms: Stats,
    /// The engine's mutation run, one session (baseline and seeding included), per mutant.
    pub engine_mutant_ms: Stats,
}

/// The example's check with every mutant, over several runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MutantSpread {
    pub wall_secs: Stats,
    pub mutation_secs: Stats,
    pub per_second: Stats,
}

/// The mutation run on a generated schema cut to `mutants` mutants (one session per job).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MutantGrowthPoint {
    pub tables: usize,
    pub mutants: usize,
    pub jobs: usize,
    pub secs: Stats,
    pub per_second: f64,
}

/// The engine on `tables` generated owner-scoped tables.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrowthPoint {
    pub tables: usize,
    pub cells: usize,
    pub matrices_secs: Stats,
    pub per_table_ms: Stats,
    pub per_cell_ms: Stats,
}

fn sizes(plan: &Plan) -> (usize, Vec<usize>) {
    if plan.quick {
        (2, vec![1, 10, 50])
    } else {
        (5, vec![1, 10, 50])
    }
}

/// Mutant counts of the growth runs (300 and 1,000 only in full mode: CI's quick run, in a
/// debug build, stays as short as it was before the floor and the growth were measured).
fn mutant_sizes(plan: &Plan) -> Vec<usize> {
    if plan.quick {
        vec![100]
    } else {
        vec![100, 300, 1000]
    }
}

/// Repetitions of the runs with mutants (the example's check, the floor, the growth).
fn mutant_runs(plan: &Plan) -> usize {
    if plan.quick { 1 } else { 5 }
}

pub fn plan(plan: &Plan) -> StagePlan {
    let (runs, growth) = sizes(plan);
    StagePlan {
        name: NAME,
        steps: vec![
            Step::new("spec-example", runs as u64, 2.0),
            Step::new("spec-growth", (runs * growth.len()) as u64, 3.0),
            Step::new("spec-mutants", mutant_runs(plan) as u64, 3.0),
            Step::new("spec-floor", 1, 5.0),
            Step::new("spec-mutant-growth", mutant_sizes(plan).len() as u64, 5.0),
        ],
    }
}

pub async fn run(ctx: &Ctx) -> Result<SpecCheck> {
    let started = Instant::now();
    ctx.progress.stage(NAME);
    let (runs, growth_sizes) = sizes(&ctx.plan);

    // Every figure is a run of the check itself (`rls_suite::check`, as `cargo xtask check`
    // runs it), read from its own stage timings.
    let example_dir = ctx.root.join("examples/team-workspaces");
    let example = Subject::load(
        &example_dir.join("access.toml"),
        Some(&example_dir.join("migrations")),
    )?;
    let (mut wall, mut matrices, mut per_cell) = (Vec::new(), Vec::new(), Vec::new());
    let mut shape = (0, 0);
    for _ in 0..runs {
        let outcome = check::check(&example, &CheckOptions::default()).await?;
        let report = &outcome.report;
        anyhow::ensure!(
            report.leaks().is_empty() && report.lost_access().is_empty(),
            "the example's check is not clean: {:?}",
            report.leaks()
        );
        let engine = outcome.timings.matrices.as_secs_f64();
        wall.push(outcome.timings.pipeline.as_secs_f64());
        shape = (report.tables.len(), report.cell_count());
        matrices.push(engine);
        per_cell.push(engine * 1000.0 / report.cell_count().max(1) as f64);
        ctx.progress
            .tick("spec-example", 1, "team-workspaces check");
    }
    let figures = ExampleFigures {
        tables: shape.0,
        cells: shape.1,
        wall_secs: stats(&wall)?,
        matrices_secs: stats(&matrices)?,
        per_cell_ms: stats(&per_cell)?,
    };

    let mut growth = Vec::new();
    for &n in &growth_sizes {
        let dir = ctx.scratch.join(format!("spec-growth-{n}"));
        let spec_path = generate(&dir, n)?;
        let subject = Subject::load(&spec_path, Some(&dir.join("migrations")))?;
        let (mut secs, mut per_table, mut per_cell) = (Vec::new(), Vec::new(), Vec::new());
        let mut cells = 0;
        for _ in 0..runs {
            let outcome = check::check(&subject, &CheckOptions::default()).await?;
            let took = outcome.timings.matrices.as_secs_f64();
            cells = outcome.report.cell_count();
            secs.push(took);
            per_table.push(took * 1000.0 / n as f64);
            per_cell.push(took * 1000.0 / cells.max(1) as f64);
            ctx.progress
                .tick("spec-growth", 1, &format!("{n} generated tables"));
        }
        growth.push(GrowthPoint {
            tables: n,
            cells,
            matrices_secs: stats(&secs)?,
            per_table_ms: stats(&per_table)?,
            per_cell_ms: stats(&per_cell)?,
        });
    }

    let mut runs_of_mutants = Vec::new();
    let runs = mutant_runs(&ctx.plan);
    for _ in 0..runs {
        runs_of_mutants.push(mutants(&example).await?);
        ctx.progress
            .tick("spec-mutants", 1, "team-workspaces with every mutant");
    }
    let spread = MutantSpread {
        wall_secs: stats(
            &runs_of_mutants
                .iter()
                .map(|m| m.wall_secs)
                .collect::<Vec<_>>(),
        )?,
        mutation_secs: stats(
            &runs_of_mutants
                .iter()
                .map(|m| m.mutation_secs)
                .collect::<Vec<_>>(),
        )?,
        per_second: stats(
            &runs_of_mutants
                .iter()
                .map(|m| m.per_second)
                .collect::<Vec<_>>(),
        )?,
    };
    let mutants = median_run(runs_of_mutants).context("no mutant run")?;

    let floor = match floor(ctx, &example, runs).await {
        Ok(f) => Some(f),
        Err(e) => {
            println!("  the floor was not measured: {e:#}");
            None
        }
    };
    ctx.progress
        .tick("spec-floor", 1, "the floor, replayed by psql");

    let mut mutant_growth = Vec::new();
    for n in mutant_sizes(&ctx.plan) {
        mutant_growth.push(mutant_growth_point(ctx, n, runs.min(3)).await?);
        ctx.progress
            .tick("spec-mutant-growth", 1, &format!("{n} generated mutants"));
    }

    let mut targets = targets(&figures, &growth);
    targets.push(Target {
        name: "the example's check with every generated mutant".into(),
        goal: format!("≤ {TARGET_MUTANTS_SECS} s wall (after build), median"),
        measured: Unit::Secs.fmt(spread.wall_secs.median),
        met: Some(spread.wall_secs.median <= TARGET_MUTANTS_SECS),
        note: format!(
            "{}; {} mutants ({} judged, {} killed, {} not run), {} at a time",
            spread.wall_secs.show_range(Unit::Secs),
            mutants.generated,
            mutants.judged,
            mutants.killed,
            mutants.not_run,
            mutants.jobs,
        ),
    });
    targets.push(Target {
        name: "mutants per second (team-workspaces)".into(),
        goal: format!("≥ {TARGET_MUTANTS_PER_SEC} /s"),
        measured: format!("{:.0} /s median", spread.per_second.median),
        met: Some(spread.per_second.median >= TARGET_MUTANTS_PER_SEC),
        note: format!(
            "{:.0}–{:.0} /s over {runs} runs; mutation run {} (sessions seeded, baseline, every \
             mutant)",
            spread.per_second.min,
            spread.per_second.max,
            spread.mutation_secs.show_range(Unit::Secs)
        ),
    });
    if let Some(f) = &floor {
        targets.extend(floor_targets(&figures, f));
    }
    Ok(SpecCheck {
        meta: ctx.meta(started.elapsed()),
        example: figures,
        growth,
        mutants: Some(mutants),
        floor,
        mutant_growth,
        mutant_runs: Some(spread),
        targets,
        peer: PEER.into(),
    })
}

/// The example's check as `cargo xtask check` runs it with its mutants (minus process start).
async fn mutants(example: &Subject) -> Result<MutantFigures> {
    let opts = CheckOptions {
        mutation: Some(MutationOptions { jobs: MUTANT_JOBS }),
        ..CheckOptions::default()
    };
    let outcome = check::check(example, &opts).await?;
    anyhow::ensure!(outcome.report.leaks().is_empty(), "the example leaks");
    let run = outcome
        .mutants
        .as_ref()
        .context("the check ran no mutants")?;
    let mutation_secs = outcome.timings.mutation.unwrap_or_default().as_secs_f64();
    let (killed, judged) = run.scores().get("").copied().unwrap_or_default();
    let not_run = run
        .results
        .iter()
        .filter(|(_, o)| matches!(o, rls_suite::mutation::Outcome::NotRun(_)))
        .count();
    Ok(MutantFigures {
        generated: run.results.len(),
        judged,
        killed,
        not_run,
        jobs: MUTANT_JOBS,
        wall_secs: outcome.timings.pipeline.as_secs_f64(),
        mutation_secs,
        per_second: run.results.len() as f64 / mutation_secs.max(f64::EPSILON),
    })
}

/// The run with the median whole-check time.
fn median_run(mut runs: Vec<MutantFigures>) -> Option<MutantFigures> {
    runs.sort_by(|a, b| a.wall_secs.total_cmp(&b.wall_secs));
    let mid = runs.len() / 2;
    runs.into_iter().nth(mid)
}

/// The example's statements, recorded as the engine sends them, replayed by psql: the
/// unmutated run's cells (one query each), then every mutant (one session, no judging).
async fn floor(ctx: &Ctx, example: &Subject, reps: usize) -> Result<FloorFigures> {
    // psql, not pgbench: a refused cell is an error, after which pgbench stops its client
    // while psql goes on (the next query rolls the savepoint back, as the engine does).
    let psql = ctx
        .pg_bin
        .as_ref()
        .map(|b| b.join("psql"))
        .filter(|p| p.is_file())
        .context("no psql found (PostgreSQL client binaries)")?;
    let db = TestDatabase::migrated(&example.migrations).await?;
    let mut admin = db.admin_connection().await?;
    let bound = BoundSpec::bind(&example.spec, &mut admin).await?;
    let list = mutation::generate(&bound, &mut admin).await?;
    let mutants = list.len();

    // The engine's unmutated run in one transaction, recorded.
    let (mut engine_cell, mut cells, mut cells_sql) = (Vec::new(), 0, Vec::new());
    let mut expect_ms = Vec::new();
    for _ in 0..reps {
        let record = Recorder::default();
        let opts = RunOptions {
            record: Some(record.clone()),
            ..RunOptions::default()
        };
        let mut tx = admin.begin().await?;
        let mut seeded = Seeded::seed(&bound, &mut tx, &opts).await?;
        // The expectations first, timed apart: they are the spec's side (what each actor
        // may do, evaluated as SQL), not the cells' statements the floor replays.
        let t = Instant::now();
        seeded.remember(&bound, &mut tx).await?;
        let expecting = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let focus = Focus {
            skip_coverage: true,
            ..Focus::default()
        };
        let report = seeded.run(&bound, &mut tx, &focus, true, false).await?;
        let took = t.elapsed().as_secs_f64();
        tx.rollback().await?;
        cells = report.cell_count();
        engine_cell.push(took * 1000.0 / cells.max(1) as f64);
        expect_ms.push(expecting * 1000.0);
        cells_sql = record.take();
    }
    admin.close().await.ok();

    // The mutation run, one session, recorded.
    let record = Recorder::default();
    let opts = RunOptions {
        record: Some(record.clone()),
        ..RunOptions::default()
    };
    let lint = rls_lint::LintOptions {
        schemas: vec![example.spec.schema.clone()],
        app_role: Some(db.app_target().user.clone()),
        intent: check::lint_intent(&example.spec),
        ..Default::default()
    };
    let mut engine_mutant = Vec::new();
    for _ in 0..reps {
        record.take();
        let t = Instant::now();
        mutation::run(
            &bound,
            &db,
            list.clone(),
            opts.clone(),
            &lint,
            &MutationOptions { jobs: 1 },
        )
        .await?;
        engine_mutant.push(t.elapsed().as_secs_f64() * 1000.0 / mutants.max(1) as f64);
    }
    let mutants_sql = record.take();

    let dir = ctx.scratch.join("spec-floor");
    std::fs::create_dir_all(&dir)?;
    let script = |name: &str, parts: &[&[String]]| -> Result<std::path::PathBuf> {
        let path = dir.join(name);
        let mut text = String::from("begin;\n");
        for part in parts {
            for sql in *part {
                text.push_str(sql);
                text.push('\n');
            }
        }
        text.push_str("rollback;\n");
        std::fs::write(&path, text)?;
        Ok(path)
    };
    // Seeds are the first entry of each recording; the baseline's entries in the mutation
    // run are left out of the mutants' replay.
    let (seeds, cells_only) = cells_sql.split_first().context("nothing recorded")?;
    let (mseeds, mrest) = mutants_sql.split_first().context("nothing recorded")?;
    let end = mrest
        .iter()
        .position(|s| s.contains("-- insforge-rls: end of baseline"))
        .map_or(0, |i| i + 1);
    let mutant_part = &mrest[end..];
    let seeds_only = script("seeds.sql", &[std::slice::from_ref(seeds)])?;
    let with_cells = script("cells.sql", &[std::slice::from_ref(seeds), cells_only])?;
    let mseeds_only = script("mutant-seeds.sql", &[std::slice::from_ref(mseeds)])?;
    let with_mutants = script("mutants.sql", &[std::slice::from_ref(mseeds), mutant_part])?;
    let target = db.admin_target();
    let port = target.port.to_string();
    let time = |file: &std::path::Path| -> Result<f64> {
        let t = Instant::now();
        // The password goes by environment, never on the command line.
        let status = std::process::Command::new(&psql)
            // Unaligned, no headers, the rows thrown away: as little client work as psql does.
            .args(["-X", "-q", "-A", "-t", "-o", "/dev/null", "-f"])
            .arg(file)
            .args([
                "-h",
                &target.host,
                "-p",
                &port,
                "-U",
                &target.user,
                &target.database,
            ])
            .env("PGPASSWORD", &target.password)
            .env("PGSSLMODE", target.ssl_mode.as_str())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .context("cannot run psql")?;
        anyhow::ensure!(status.success(), "psql failed on {}", file.display());
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    };
    let (mut floor_cell, mut floor_mutant) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let base = time(&seeds_only)?;
        floor_cell.push((time(&with_cells)? - base) / cells.max(1) as f64);
        let base = time(&mseeds_only)?;
        floor_mutant.push((time(&with_mutants)? - base) / mutants.max(1) as f64);
    }
    drop(db);
    Ok(FloorFigures {
        cells,
        mutants,
        floor_cell_ms: stats(&floor_cell)?,
        engine_cell_ms: stats(&engine_cell)?,
        expectations_ms: Some(stats(&expect_ms)?),
        floor_mutant_ms: stats(&floor_mutant)?,
        engine_mutant_ms: stats(&engine_mutant)?,
    })
}

/// The mutation run (as a check runs it: two sessions) on generated tables, cut to `n`
/// mutants.
async fn mutant_growth_point(ctx: &Ctx, n: usize, reps: usize) -> Result<MutantGrowthPoint> {
    // Mutants per generated table: two tables' less one's (the function mutants are shared).
    let mut counts = Vec::new();
    for tables in [1, 2] {
        let (db, bound) = generated_db(ctx, tables).await?;
        let mut admin = db.admin_connection().await?;
        counts.push(mutation::generate(&bound, &mut admin).await?.len());
        admin.close().await.ok();
    }
    let per_table = counts[1].saturating_sub(counts[0]).max(1);
    let tables = n.div_ceil(per_table);
    let (db, bound) = generated_db(ctx, tables).await?;
    let mut admin = db.admin_connection().await?;
    let mut list = mutation::generate(&bound, &mut admin).await?;
    admin.close().await.ok();
    list.truncate(n);
    let lint = rls_lint::LintOptions {
        schemas: vec![bound.spec().schema.clone()],
        app_role: Some(db.app_target().user.clone()),
        intent: check::lint_intent(bound.spec()),
        ..Default::default()
    };
    let mut secs = Vec::new();
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let run = mutation::run(
            &bound,
            &db,
            list.clone(),
            RunOptions::default(),
            &lint,
            &MutationOptions { jobs: MUTANT_JOBS },
        )
        .await?;
        secs.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(run.results.len() == list.len(), "mutants went missing");
    }
    let secs = stats(&secs)?;
    Ok(MutantGrowthPoint {
        tables,
        mutants: list.len(),
        jobs: MUTANT_JOBS,
        per_second: list.len() as f64 / secs.median.max(f64::EPSILON),
        secs,
    })
}

/// A migrated database of `n` generated tables and its spec, bound.
async fn generated_db(ctx: &Ctx, n: usize) -> Result<(TestDatabase, BoundSpec)> {
    let dir = ctx.scratch.join(format!("spec-growth-{n}"));
    let spec_path = generate(&dir, n)?;
    let subject = Subject::load(&spec_path, Some(&dir.join("migrations")))?;
    let db = TestDatabase::migrated(&subject.migrations).await?;
    let mut admin = db.admin_connection().await?;
    let bound = BoundSpec::bind(&subject.spec, &mut admin).await?;
    admin.close().await.ok();
    Ok((db, bound))
}

fn floor_targets(example: &ExampleFigures, f: &FloorFigures) -> Vec<Target> {
    let cell_ratio = example.per_cell_ms.median / f.floor_cell_ms.median.max(f64::EPSILON);
    let tx_ratio = f.engine_cell_ms.median / f.floor_cell_ms.median.max(f64::EPSILON);
    let mutant_ratio = f.engine_mutant_ms.median / f.floor_mutant_ms.median.max(f64::EPSILON);
    vec![
        Target {
            name: "a cell against the floor (team-workspaces)".into(),
            goal: format!("≤ {TARGET_FLOOR_RATIO}× the floor"),
            measured: format!(
                "{tx_ratio:.2}× in one transaction ({} vs floor {}); the check's matrices {cell_ratio:.2}×",
                Unit::Ms.fmt(f.engine_cell_ms.median),
                Unit::Ms.fmt(f.floor_cell_ms.median)
            ),
            met: Some(tx_ratio <= TARGET_FLOOR_RATIO),
            note: format!(
                "floor: psql replaying the {} cells' statements (one query per cell) on an open \
                 connection in one transaction; the check's own matrices run on the app's role \
                 and commit, so they also pay the superuser's after-image and restore round trips",
                f.cells
            ),
        },
        Target {
            name: "a mutant against the floor (team-workspaces)".into(),
            goal: "reported".into(),
            measured: format!(
                "{mutant_ratio:.2}× ({} vs floor {})",
                Unit::Ms.fmt(f.engine_mutant_ms.median),
                Unit::Ms.fmt(f.floor_mutant_ms.median)
            ),
            met: None,
            note: format!(
                "{} mutants, one session: the engine's figure also holds seeding, the baseline, \
                 reading the policy's command and dependencies, and rebinding for a new reader",
                f.mutants
            ),
        },
    ]
}

fn stats(samples: &[f64]) -> Result<Stats> {
    Stats::of(samples).context("no samples")
}

/// Writes `n` owner-scoped tables (four policies each, an index on the owner) and their spec
/// into `dir`; returns the spec's path.
fn generate(dir: &std::path::Path, n: usize) -> Result<std::path::PathBuf> {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations)
        .with_context(|| format!("cannot create {}", migrations.display()))?;
    let mut sql = String::new();
    let mut spec = String::from("[actors.ada]\n[actors.ben]\n[actors.cy]\n");
    for i in 0..n {
        let t = format!("gen_{i:03}");
        let _ = write!(
            sql,
            "create table public.{t} (id uuid primary key default gen_random_uuid(), \
             owner_id text not null default public.requesting_user_id(), title text not null);\n\
             create index on public.{t} (owner_id);\n\
             alter table public.{t} enable row level security;\n\
             alter table public.{t} force row level security;\n\
             create policy {t}_s on public.{t} for select to authenticated using (owner_id = (select public.requesting_user_id()));\n\
             create policy {t}_i on public.{t} for insert to authenticated with check (owner_id = (select public.requesting_user_id()));\n\
             create policy {t}_u on public.{t} for update to authenticated using (owner_id = (select public.requesting_user_id())) with check (owner_id = (select public.requesting_user_id()));\n\
             create policy {t}_d on public.{t} for delete to authenticated using (owner_id = (select public.requesting_user_id()));\n"
        );
        let _ = write!(
            spec,
            "[tables.{t}]\nowner = \"owner_id\"\npayload = {{ title = \"t\" }}\nselect = \"owner\"\n\
             insert = \"owner\"\nupdate = \"owner\"\ndelete = \"owner\"\n"
        );
    }
    std::fs::write(migrations.join("V1__generated.sql"), sql)?;
    let path = dir.join("access.toml");
    std::fs::write(&path, spec)?;
    Ok(path)
}

fn targets(example: &ExampleFigures, growth: &[GrowthPoint]) -> Vec<Target> {
    let mut out = vec![
        Target {
            name: "verdict cost per matrix cell (team-workspaces)".into(),
            goal: format!("≤ {TARGET_CELL_MS} ms median"),
            measured: Unit::Ms.fmt(example.per_cell_ms.median),
            met: Some(example.per_cell_ms.median <= TARGET_CELL_MS),
            note: format!("{} cells over {} tables", example.cells, example.tables),
        },
        Target {
            name: "the example's whole check".into(),
            goal: format!("≤ {TARGET_EXAMPLE_SECS} s median"),
            measured: Unit::Secs.fmt(example.wall_secs.median),
            met: Some(example.wall_secs.median <= TARGET_EXAMPLE_SECS),
            note: format!(
                "matrices {} of it; the rest is the fresh database, migrations and lint",
                Unit::Secs.fmt(example.matrices_secs.median)
            ),
        },
    ];
    if let (Some(mid), Some(last)) = (growth.get(growth.len().saturating_sub(2)), growth.last()) {
        let ratio = last.per_table_ms.median / mid.per_table_ms.median;
        out.push(Target {
            name: "growth linear in tables".into(),
            goal: format!(
                "per table at {} ≤ {LINEAR_SLACK}× per table at {}",
                last.tables, mid.tables
            ),
            measured: format!(
                "{:.2}× ({} vs {})",
                ratio,
                Unit::Ms.fmt(last.per_table_ms.median),
                Unit::Ms.fmt(mid.per_table_ms.median)
            ),
            met: Some(ratio <= LINEAR_SLACK),
            note: growth
                .iter()
                .map(|g| {
                    format!(
                        "{} tables: {}",
                        g.tables,
                        Unit::Secs.fmt(g.matrices_secs.median)
                    )
                })
                .collect::<Vec<_>>()
                .join(" · "),
        });
    }
    out
}

pub fn markdown(s: &SpecCheck) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "The `examples/team-workspaces` check ({} tables, {} cells): whole check {}, matrices {}, \
         {} per cell.\n",
        s.example.tables,
        s.example.cells,
        s.example.wall_secs.show(Unit::Secs),
        s.example.matrices_secs.show(Unit::Secs),
        s.example.per_cell_ms.show(Unit::Ms)
    );
    let _ = writeln!(
        md,
        "| generated tables | cells | matrices | per table | per cell |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for g in &s.growth {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            g.tables,
            g.cells,
            g.matrices_secs.show(Unit::Secs),
            g.per_table_ms.show(Unit::Ms),
            g.per_cell_ms.show(Unit::Ms)
        );
    }
    if let Some(m) = &s.mutants {
        let _ = writeln!(
            md,
            "\nWith every generated mutant ({} generated, {} judged, {} killed, {} not run; {} at a \
             time): whole check {}, mutation run {}, {:.1} mutants/s.",
            m.generated,
            m.judged,
            m.killed,
            m.not_run,
            m.jobs,
            Unit::Secs.fmt(m.wall_secs),
            Unit::Secs.fmt(m.mutation_secs),
            m.per_second
        );
        if let Some(r) = &s.mutant_runs {
            let _ = writeln!(
                md,
                "Over {} runs: whole check {}, mutation run {}.",
                r.wall_secs.n,
                r.wall_secs.show_range(Unit::Secs),
                r.mutation_secs.show_range(Unit::Secs)
            );
        }
    }
    if let Some(f) = &s.floor {
        let _ = writeln!(
            md,
            "\nThe floor, side by side ({} cells, {} mutants; a client replaying the statements the \
             engine sent, one query per cell, in one transaction): per cell {} against the \
             engine's {} in the same shape ({:.2}×; the expectations, once per session, {} \
             apart) and the check's matrices' {}; per mutant {} against the engine's {} \
             ({:.2}×, one session).",
            f.cells,
            f.mutants,
            f.floor_cell_ms.show(Unit::Ms),
            f.engine_cell_ms.show(Unit::Ms),
            f.engine_cell_ms.median / f.floor_cell_ms.median.max(f64::EPSILON),
            f.expectations_ms
                .map_or_else(|| "not measured".to_owned(), |e| e.show(Unit::Ms)),
            Unit::Ms.fmt(s.example.per_cell_ms.median),
            f.floor_mutant_ms.show(Unit::Ms),
            f.engine_mutant_ms.show(Unit::Ms),
            f.engine_mutant_ms.median / f.floor_mutant_ms.median.max(f64::EPSILON),
        );
    }
    if !s.mutant_growth.is_empty() {
        let _ = writeln!(
            md,
            "\n| mutants | generated tables | sessions | mutation run | mutants/s |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|");
        for g in &s.mutant_growth {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.0} |",
                g.mutants,
                g.tables,
                g.jobs,
                g.secs.show_range(Unit::Secs),
                g.per_second
            );
        }
    }
    let _ = writeln!(md, "\nPeer: {}.", s.peer);
    md
}
