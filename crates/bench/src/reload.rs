//! Schema reload: how long the sample app takes to re-read a schema of 200 tables from the
//! catalog and swap the new snapshot in (`todo_app::SchemaCache::reload`, what `NOTIFY pgrst,
//! 'reload schema'` and SIGUSR1 run), as the app's login role on a scratch database.

use std::time::Instant;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;

use super::meta::Meta;
use super::progress::{StagePlan, Step};
use super::stats::{Stats, Unit, quantile};
use super::{Ctx, Plan, Target};

pub const NAME: &str = "schema_reload";
const STAGE: &str = "schema reload";
/// Tables in the scratch schema (plus the template's `todos`).
pub const TABLES: usize = 200;
/// The target for one reload of 200 tables.
pub const TARGET_MS: f64 = 100.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaReload {
    pub meta: Meta,
    pub tables: usize,
    /// Relations the snapshot held (the generated tables and the template's).
    pub relations: usize,
    pub columns_per_table: usize,
    pub runs: usize,
    pub reload_ms: Stats,
    pub p95_ms: f64,
    pub targets: Vec<Target>,
}

fn runs(plan: &Plan) -> usize {
    if plan.quick { 20 } else { 100 }
}

pub fn plan(plan: &Plan) -> StagePlan {
    StagePlan {
        name: STAGE,
        steps: vec![
            Step::new("reload-setup", 1, 3.0),
            Step::new("reload", runs(plan) as u64, 0.05),
        ],
    }
}

/// Ten columns of the usual kinds, a primary key, a foreign key to the previous table every
/// tenth table, RLS on with a policy: what a team's schema looks like to the catalog.
fn tables_sql() -> String {
    let mut sql = String::new();
    for i in 0..TABLES {
        sql.push_str(&format!(
            "create table public.bench_t{i:03} (
               id uuid primary key default gen_random_uuid(),
               owner text not null default public.requesting_user_id(),
               title text, body varchar(200), amount numeric(12,2), n int, done boolean,
               tags text[], meta jsonb, created_at timestamptz not null default now());
             alter table public.bench_t{i:03} enable row level security;
             create policy own on public.bench_t{i:03} for all to authenticated
               using (owner = (select public.requesting_user_id()));\n"
        ));
        if i % 10 == 9 {
            sql.push_str(&format!(
                "alter table public.bench_t{i:03} add column parent uuid references public.bench_t{:03} (id);\n",
                i - 1
            ));
        }
    }
    sql
}

pub async fn run(ctx: &Ctx) -> Result<SchemaReload> {
    let started = Instant::now();
    let p = &ctx.progress;
    p.stage(STAGE);
    let state = &ctx.state;
    let template = state
        .template
        .as_deref()
        .context("the server from setup has no template database to clone")?;
    let name = format!("insforge_rls_reload_{}", super::suffix());
    ctx.cleanup.database(&state.admin, &name);
    harness::testing::clone_database(&state.admin, template, &name)
        .await
        .context("cannot create the scratch database")?;
    let mut admin = state.admin.with_database(&name).connect().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(tables_sql()))
        .execute(&mut admin)
        .await
        .context("cannot create the benchmark tables")?;
    drop(admin);
    p.tick(
        "reload-setup",
        1,
        &format!("{TABLES} tables created in {name}"),
    );

    // As the app: its login role, a warm connection (the app reloads on a live connection).
    let app = state.app.with_database(&name);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(app.connect_options())
        .await
        .context("cannot connect as the app's role")?;
    let cache = todo_app::SchemaCache::new("public");
    let first = cache.reload(&pool).await?;
    let relations = first.len();
    let columns_per_table = first
        .relation("bench_t000")
        .map(|r| r.column_ids().count())
        .unwrap_or(0);

    let n = runs(&ctx.plan);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let schema = cache.reload(&pool).await?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            schema.len() == relations,
            "the schema changed during the benchmark"
        );
        p.tick("reload", 1, "reload");
    }
    pool.close().await;
    ctx.progress.note("dropping the scratch database");
    ctx.cleanup.drop_database(&state.admin, &name).await?;

    let reload_ms = Stats::of(&samples).context("no reload was measured")?;
    let p95_ms = quantile(&samples, 0.95).unwrap_or(f64::NAN);
    let targets = vec![Target {
        name: format!("schema reload, {TABLES} tables"),
        goal: format!("≤ {TARGET_MS:.0} ms (p95)"),
        measured: format!(
            "median {}, p95 {}",
            Unit::Ms.fmt(reload_ms.median),
            Unit::Ms.fmt(p95_ms)
        ),
        met: Some(p95_ms <= TARGET_MS),
        note: "introspect (one catalog query) + swap, as the app's role, warm connection".into(),
    }];
    Ok(SchemaReload {
        meta: ctx.meta(started.elapsed()),
        tables: TABLES,
        relations,
        columns_per_table,
        runs: n,
        reload_ms,
        p95_ms,
        targets,
    })
}

/// The README section: what was measured, and the figures.
pub fn markdown(r: &SchemaReload) -> String {
    format!(
        "## Schema reload\n\nThe sample app re-reading the catalog and swapping its snapshot (what \
         `NOTIFY pgrst, 'reload schema'` and SIGUSR1 run), as its login role, with {} generated \
         tables ({} relations, {} columns each) — {} runs.\n\n| | median (range) | p95 |\n|---|---|---|\n\
         | reload | {} | {} |\n",
        r.tables,
        r.relations,
        r.columns_per_table,
        r.runs,
        r.reload_ms.show(Unit::Ms),
        Unit::Ms.fmt(r.p95_ms),
    )
}

pub fn print(r: &SchemaReload) {
    println!();
    println!(
        "Schema reload ({} tables, {} relations, {} columns each)",
        r.tables, r.relations, r.columns_per_table
    );
    println!("  reload      {}", r.reload_ms.show(Unit::Ms));
    println!("  p95         {}", Unit::Ms.fmt(r.p95_ms));
    for t in &r.targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        };
        println!(
            "  target      {}: {} — {} ({verdict})",
            t.name, t.goal, t.measured
        );
    }
}
