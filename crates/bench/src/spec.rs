//! Spec check figures: the whole `examples/team-workspaces` check (fresh database, migrations,
//! matrices, lint), the engine's time per table at 1, 10 and 50 generated tables (so the
//! growth is visible), the verdict cost per matrix cell, and the check with every mutant
//! generated from the example's catalog (mutants per second).

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context as _, Result};
use rls_suite::check::{self, CheckOptions, MutationOptions, Subject};
use serde::{Deserialize, Serialize};

use super::meta::Meta;
use super::progress::{StagePlan, Step};
use super::stats::{Stats, Unit};
use super::{Ctx, Plan, Target};

pub const NAME: &str = "spec_check";
pub const TARGET_CELL_MS: f64 = 1.0;
pub const TARGET_EXAMPLE_SECS: f64 = 3.0;
/// The example's whole check with every generated mutant (issue 14).
pub const TARGET_MUTANTS_SECS: f64 = 15.0;
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

pub fn plan(plan: &Plan) -> StagePlan {
    let (runs, growth) = sizes(plan);
    StagePlan {
        name: NAME,
        steps: vec![
            Step::new("spec-example", runs as u64, 2.0),
            Step::new("spec-growth", (runs * growth.len()) as u64, 3.0),
            Step::new("spec-mutants", 1, 90.0),
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

    let mutants = mutants(&example).await?;
    ctx.progress
        .tick("spec-mutants", 1, "team-workspaces with every mutant");
    let mut targets = targets(&figures, &growth);
    targets.push(Target {
        name: "the example's check with every generated mutant".into(),
        goal: format!("≤ {TARGET_MUTANTS_SECS} s wall (after build)"),
        measured: Unit::Secs.fmt(mutants.wall_secs),
        met: Some(mutants.wall_secs <= TARGET_MUTANTS_SECS),
        note: format!(
            "{} mutants ({} judged, {} killed, {} not run), {} at a time: {:.1} mutants/s",
            mutants.generated,
            mutants.judged,
            mutants.killed,
            mutants.not_run,
            mutants.jobs,
            mutants.per_second
        ),
    });
    Ok(SpecCheck {
        meta: ctx.meta(started.elapsed()),
        example: figures,
        growth,
        mutants: Some(mutants),
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
    }
    let _ = writeln!(md, "\nPeer: {}.", s.peer);
    md
}
