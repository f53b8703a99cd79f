//! The database the RLS and app benchmarks share: a clone of the migrated template (so it has
//! the project's exact table, index and policies) filled with N todos over U Clerk-shaped user
//! ids, plus `todos_naive` (the same rows, the naive policy, no index) and `todos_v2` (the
//! same rows and index, the project's policy calling the function as V2 wrote it).
//! Dropped at the end.

use std::time::Instant;

use anyhow::{Context as _, Result};
use harness::PgTarget;
use serde::{Deserialize, Serialize};
use sqlx::Connection as _;

use super::progress::{StagePlan, Step};
use super::{Ctx, Plan};

pub const STAGE: &str = "dataset";

/// The naive policy: the function unwrapped (called per row) and no index on `user_id`.
pub const NAIVE_POLICY: &str = "create policy todos_naive_select on public.todos_naive \
     for select to authenticated using (public.requesting_user_id() = user_id)";

/// `public.requesting_user_id()` as V2 wrote it, before V4 made it inlinable: the same body
/// with unqualified names and `SET search_path = ''`, which keeps Postgres from inlining it.
/// Used only in the benchmark database, to show what the function's form costs.
pub const V2_FUNCTION: &str = "create function public.requesting_user_id_v2() \
     returns text language sql stable parallel safe set search_path = '' as $fn$ \
     select nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '') $fn$";

/// The project's policy, calling the V2 form of the function.
pub const V2_POLICY: &str = "create policy todos_v2_select on public.todos_v2 \
     for select to authenticated using (user_id = (select public.requesting_user_id_v2()))";

#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    /// Superuser on the benchmark database (RLS does not apply to it).
    pub admin: PgTarget,
    /// Superuser on the server's own database, for dropping this one.
    pub admin_server: PgTarget,
    /// The app's login role on the benchmark database.
    pub app: PgTarget,
    pub info: DatasetInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub todos: u64,
    pub users: u64,
    pub open_share: f64,
    pub load_secs: f64,
    pub table_mb: f64,
    pub index_mb: f64,
    pub user_id_example: String,
}

/// The Clerk-shaped id of benchmark user `i`: `user_` + 27 characters, like a real one.
pub fn user_id(i: u64) -> String {
    format!("user_2bench{i:021}")
}

/// The same id in SQL, from an integer expression.
pub fn user_id_sql(expr: &str) -> String {
    format!("'user_2bench' || lpad(({expr})::text, 21, '0')")
}

pub fn plan(plan: &Plan) -> StagePlan {
    StagePlan {
        name: STAGE,
        // About 25 s per million rows on the reference machine (insert, index, copy, vacuum).
        steps: vec![Step::new(
            "dataset-load",
            1,
            plan.todos as f64 * 35e-6 + 1.0,
        )],
    }
}

pub async fn create(ctx: &Ctx) -> Result<Dataset> {
    let p = &ctx.progress;
    p.stage(STAGE);
    let plan = &ctx.plan;
    let state = &ctx.state;
    let template = state
        .template
        .as_deref()
        .context("the server from setup has no template database to clone")?;
    let name = format!("insforge_rls_bench_{}", super::suffix());
    ctx.cleanup.database(&state.admin, &name);
    harness::testing::clone_database(&state.admin, template, &name)
        .await
        .context("cannot create the benchmark database")?;
    let admin = state.admin.with_database(&name);
    let app = state.app.with_database(&name);

    p.note(&format!(
        "loading {} todos over {} users into {name}",
        plan.todos, plan.users
    ));
    let started = Instant::now();
    let mut conn = admin.connect().await?;
    // Build the index once after the insert instead of maintaining it row by row; its
    // definition is read back so the rebuilt index is exactly the migration's.
    let index_def: String = sqlx::query_scalar(
        "select pg_get_indexdef('public.todos_user_id_created_at_idx'::regclass)",
    )
    .fetch_one(&mut conn)
    .await
    .context("the migrated todos index is missing")?;
    let load = format!(
        "set maintenance_work_mem = '256MB';
         drop index public.todos_user_id_created_at_idx;
         insert into public.todos (user_id, title, is_complete, created_at)
           select {uid}, 'todo number ' || g, g % 3 = 0,
                  timestamptz '2026-01-01 00:00:00+00' - make_interval(secs => g)
           from generate_series(1, {n}) as g;
         {index_def};
         create table public.todos_naive
           (like public.todos including defaults including constraints);
         insert into public.todos_naive select * from public.todos;
         alter table public.todos_naive enable row level security;
         alter table public.todos_naive force row level security;
         grant select on public.todos_naive to authenticated;
         {NAIVE_POLICY};
         {V2_FUNCTION};
         grant execute on function public.requesting_user_id_v2() to authenticated;
         create table public.todos_v2 (like public.todos including all);
         insert into public.todos_v2 select * from public.todos;
         alter table public.todos_v2 enable row level security;
         alter table public.todos_v2 force row level security;
         grant select on public.todos_v2 to authenticated;
         {V2_POLICY};",
        uid = user_id_sql(&format!("g % {}", plan.users)),
        n = plan.todos,
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(load))
        .execute(&mut conn)
        .await
        .context("cannot load the benchmark data")?;
    for table in ["public.todos", "public.todos_naive", "public.todos_v2"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("vacuum (analyze) {table}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot vacuum {table}"))?;
    }
    let (table_bytes, index_bytes): (i64, i64) =
        sqlx::query_as("select pg_table_size('public.todos'), pg_indexes_size('public.todos')")
            .fetch_one(&mut conn)
            .await?;
    let open: f64 = sqlx::query_scalar(
        "select (count(*) filter (where not is_complete))::float8 / greatest(count(*), 1) from public.todos",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await.ok();
    let load_secs = started.elapsed().as_secs_f64();
    p.tick("dataset-load", 1, "data loaded");
    let mb = |b: i64| (b as f64 / 1048576.0 * 10.0).round() / 10.0;
    Ok(Dataset {
        admin_server: state.admin.clone(),
        admin,
        app,
        info: DatasetInfo {
            todos: plan.todos,
            users: plan.users,
            open_share: (open * 1000.0).round() / 1000.0,
            load_secs: (load_secs * 10.0).round() / 10.0,
            table_mb: mb(table_bytes),
            index_mb: mb(index_bytes),
            user_id_example: user_id(42),
        },
        name,
    })
}
