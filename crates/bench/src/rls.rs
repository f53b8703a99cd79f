//! RLS cost at scale: "list my todos" and "count my open todos" for many different users,
//! (a) as `authenticated` through the project's policies in an identity transaction — the real
//! path; (b) the limit: the same query with an explicit `WHERE user_id = $1` as a superuser
//! (RLS bypassed), same table and index; (c) the naive policy form on `todos_naive`; and, as a
//! diagnostic, (d) the project's policy calling an inlinable copy of the function.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use pg_identity::{Access, DbIdentity, IdentityTx, quote_literal};
use rand::SeedableRng as _;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Connection as _, Row as _};

use super::dataset::{self, Dataset, DatasetInfo};
use super::meta::Meta;
use super::progress::{StagePlan, Step};
use super::stats::{Stats, Unit};
use super::{Ctx, Plan, Target};

pub const NAME: &str = "rls_at_scale";

/// Latency ratio RLS / limit: ≤ 1.11× is ≥ 0.9× the limit's throughput.
pub const TARGET_RATIO: f64 = 1.0 / 0.9;

const COLUMNS: &str = "id, user_id, title, is_complete, created_at";
const WARMUP_USERS: usize = 10;
/// Variant indexes in the timed loop.
const RLS: usize = 0;
const LIMIT: usize = 1;
const V2_FORM: usize = 2;

pub const PROJECT_POLICY: &str = "create policy todos_select_own on public.todos \
     for select to authenticated using (user_id = (select public.requesting_user_id()))";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RlsAtScale {
    pub meta: Meta,
    pub dataset: DatasetInfo,
    pub runs: usize,
    pub users_per_run: usize,
    pub queries: Vec<QueryFigures>,
    /// The whole identity transaction around the RLS list query (begin read only with the
    /// identity, query, rollback): three round trips where the limit needs one.
    pub identity_tx_ms: Stats,
    pub project_policy: String,
    pub naive_policy: String,
    #[serde(default)]
    pub v2_function: String,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryFigures {
    pub key: String,
    pub title: String,
    pub variants: Vec<VariantFigures>,
    /// Per run: median RLS latency / median limit latency.
    pub ratio_rls: Stats,
    /// Per run: the V2-form variant's median / the limit's.
    #[serde(default)]
    pub ratio_v2: Option<Stats>,
    /// Per naive sample: its latency / the median limit latency.
    pub ratio_naive: Option<Stats>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantFigures {
    pub key: String,
    pub label: String,
    pub sql: String,
    pub latency_ms: Option<Stats>,
    pub plan: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryKind {
    List,
    Count,
}

impl QueryKind {
    fn key(self) -> &'static str {
        match self {
            QueryKind::List => "list",
            QueryKind::Count => "count",
        }
    }

    fn title(self) -> &'static str {
        match self {
            QueryKind::List => "list my todos, newest first (limit 20)",
            QueryKind::Count => "count my open todos",
        }
    }

    /// Through RLS: no user in the query at all.
    fn rls_sql(self, table: &str) -> String {
        match self {
            QueryKind::List => {
                format!("select {COLUMNS} from public.{table} order by created_at desc limit 20")
            }
            QueryKind::Count => {
                format!("select count(*) from public.{table} where not is_complete")
            }
        }
    }

    fn limit_sql(self) -> String {
        match self {
            QueryKind::List => format!(
                "select {COLUMNS} from public.todos where user_id = $1 order by created_at desc limit 20"
            ),
            QueryKind::Count => {
                "select count(*) from public.todos where user_id = $1 and not is_complete".into()
            }
        }
    }
}

/// What a query returned, to check that all three variants agree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Row count and the first row's id: enough to tell two lists apart.
    Rows(usize, Option<String>),
    Count(i64),
}

fn answer(kind: QueryKind, rows: &[PgRow]) -> Result<Answer> {
    Ok(match kind {
        QueryKind::List => {
            let first = match rows.first() {
                Some(row) => Some(row.try_get::<sqlx::types::Uuid, _>("id")?.to_string()),
                None => None,
            };
            Answer::Rows(rows.len(), first)
        }
        QueryKind::Count => Answer::Count(
            rows.first()
                .context("count returned no row")?
                .try_get::<i64, _>(0)?,
        ),
    })
}

pub fn plan(plan: &Plan) -> StagePlan {
    let per_naive = plan.todos as f64 * 2e-6;
    StagePlan {
        name: NAME,
        steps: vec![
            Step::new(
                "rls-user",
                (plan.rls_runs * (plan.rls_users_per_run + WARMUP_USERS)) as u64,
                0.006,
            ),
            Step::new(
                "rls-naive",
                plan.naive_samples as u64 * 2,
                per_naive.min(plan.naive_timeout.as_secs_f64()),
            ),
            Step::new("rls-explain", 1, per_naive * 4.0 + 0.5),
        ],
    }
}

/// Claims exactly as the app sets them: a minted `insforge` template token, verified.
pub fn claims_for(
    verifier: &clerk_token::Verifier,
    template: &clerk_token::ClerkTemplate,
    user: &str,
) -> Result<String> {
    let token = template.mint(&clerk_token::ClerkUser::new(user))?;
    Ok(verifier.verify(&token)?.claims_json())
}

pub fn token_kit(ctx: &Ctx) -> Result<(clerk_token::Verifier, clerk_token::ClerkTemplate)> {
    let secret = clerk_token::Secret::new(ctx.state.jwt_secret.clone())?;
    Ok((
        clerk_token::Verifier::new(secret.clone()),
        clerk_token::ClerkTemplate::insforge(secret).with_lifetime_secs(3600),
    ))
}

struct Conns {
    app: PgConnection,
    admin: PgConnection,
}

/// The real path: an identity transaction on the app role. (statement ms, transaction ms).
async fn run_rls(
    conn: &mut PgConnection,
    claims: &str,
    sql: &str,
    kind: QueryKind,
    timeout: Option<Duration>,
) -> Result<(f64, f64, Answer)> {
    let t0 = Instant::now();
    let mut tx = begin_identity(conn, claims, timeout).await?;
    let t1 = Instant::now();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *tx)
        .await?;
    let stmt = t1.elapsed().as_secs_f64() * 1000.0;
    tx.rollback().await?;
    let total = t0.elapsed().as_secs_f64() * 1000.0;
    Ok((stmt, total, answer(kind, &rows)?))
}

/// The limit: the explicit filter as a superuser, one statement.
async fn run_limit(
    conn: &mut PgConnection,
    user: &str,
    sql: &str,
    kind: QueryKind,
) -> Result<(f64, Answer)> {
    let t = Instant::now();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(user)
        .fetch_all(&mut *conn)
        .await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    Ok((ms, answer(kind, &rows)?))
}

pub async fn run(ctx: &Ctx, ds: &Dataset) -> Result<RlsAtScale> {
    let started = Instant::now();
    let p = &ctx.progress;
    p.stage(NAME);
    let plan = &ctx.plan;
    let (verifier, template) = token_kit(ctx)?;
    let mut conns = Conns {
        app: ds.app.connect().await?,
        admin: ds.admin.connect().await?,
    };
    let kinds = [QueryKind::List, QueryKind::Count];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x05ee_db0b);

    // [kind][variant]: every timed sample; per-run ratios to the limit for RLS and the V2 form.
    let mut samples: [[Vec<f64>; 3]; 2] = Default::default();
    let mut ratios: [[Vec<f64>; 3]; 2] = Default::default();
    let mut tx_ms = Vec::new();
    let k = plan.rls_users_per_run.min(plan.users as usize);
    for run in 0..plan.rls_runs {
        let sample = rand::seq::index::sample(&mut rng, plan.users as usize, k + WARMUP_USERS);
        let mut this: [[Vec<f64>; 3]; 2] = Default::default();
        for (j, u) in sample.iter().enumerate() {
            let user = dataset::user_id(u as u64);
            let claims = claims_for(&verifier, &template, &user)?;
            // Pass 0 reads this user's rows through every variant untimed and checks that
            // they agree: the tables together exceed shared_buffers, and whichever variant
            // ran first would otherwise pay for bringing the pages in. Pass 1 is timed, six
            // measurements in an order rotated per user.
            for pass in 0..2 {
                let timed = pass == 1 && j >= WARMUP_USERS;
                for step in 0..6 {
                    let op = (step + j) % 6;
                    let ki = op / 3;
                    let kind = kinds[ki];
                    let vi = op % 3;
                    let ms = match vi {
                        LIMIT => {
                            run_limit(&mut conns.admin, &user, &kind.limit_sql(), kind)
                                .await?
                                .0
                        }
                        _ => {
                            let table = if vi == RLS { "todos" } else { "todos_v2" };
                            let (ms, tx, got) =
                                run_rls(&mut conns.app, &claims, &kind.rls_sql(table), kind, None)
                                    .await?;
                            if pass == 0 {
                                let (_, want) =
                                    run_limit(&mut conns.admin, &user, &kind.limit_sql(), kind)
                                        .await?;
                                check(&got, &want, kind, table, &user)?;
                            }
                            if timed && vi == RLS && kind == QueryKind::List {
                                tx_ms.push(tx);
                            }
                            ms
                        }
                    };
                    if timed {
                        this[ki][vi].push(ms);
                    }
                }
            }
            p.tick(
                "rls-user",
                1,
                &format!(
                    "RLS vs limit, run {}/{}, user {}/{}",
                    run + 1,
                    plan.rls_runs,
                    j + 1,
                    k + WARMUP_USERS
                ),
            );
        }
        for ki in 0..2 {
            let limit = Stats::of(&this[ki][LIMIT]).context("no limit samples")?;
            for vi in [RLS, V2_FORM] {
                let s = Stats::of(&this[ki][vi]).context("no RLS samples")?;
                ratios[ki][vi].push(s.median / limit.median);
            }
            for vi in 0..3 {
                let run_samples = std::mem::take(&mut this[ki][vi]);
                samples[ki][vi].extend(run_samples);
            }
        }
    }

    // The naive form: a few users, bounded in count, time and per statement.
    let mut naive_ms: [Vec<f64>; 2] = Default::default();
    let mut notes = Vec::new();
    let naive_started = Instant::now();
    let naive_users = rand::seq::index::sample(&mut rng, plan.users as usize, plan.naive_samples);
    'naive: for (j, u) in naive_users.iter().enumerate() {
        let user = dataset::user_id(u as u64);
        let claims = claims_for(&verifier, &template, &user)?;
        for (ki, kind) in kinds.iter().enumerate() {
            if naive_started.elapsed() > plan.naive_budget && j > 0 {
                notes.push(format!(
                    "the naive form stopped after {} users: its time budget of {} s was spent",
                    j,
                    plan.naive_budget.as_secs()
                ));
                break 'naive;
            }
            match run_rls(
                &mut conns.app,
                &claims,
                &kind.rls_sql("todos_naive"),
                *kind,
                Some(plan.naive_timeout),
            )
            .await
            {
                Ok((ms, _, got)) => {
                    let (_, want) =
                        run_limit(&mut conns.admin, &user, &kind.limit_sql(), *kind).await?;
                    check(&got, &want, *kind, "naive", &user)?;
                    naive_ms[ki].push(ms);
                }
                Err(e) => {
                    notes.push(format!(
                        "a naive {} query was cancelled at the {} s statement timeout: {e:#}",
                        kind.key(),
                        plan.naive_timeout.as_secs()
                    ));
                    break 'naive;
                }
            }
            p.tick(
                "rls-naive",
                1,
                &format!(
                    "naive policy, {} {}/{}",
                    kind.key(),
                    j + 1,
                    plan.naive_samples
                ),
            );
        }
    }

    // Plans for one user, after everything is warm.
    p.note("EXPLAIN (ANALYZE, BUFFERS) of each variant, after one untimed read of each");
    let user = dataset::user_id(42 % plan.users);
    let claims = claims_for(&verifier, &template, &user)?;
    // This user's rows through every variant once first, so no plan shows another's reads.
    for kind in kinds {
        for table in ["todos", "todos_v2", "todos_naive"] {
            let timeout = (table == "todos_naive").then_some(plan.naive_timeout);
            run_rls(&mut conns.app, &claims, &kind.rls_sql(table), kind, timeout).await?;
        }
        run_limit(&mut conns.admin, &user, &kind.limit_sql(), kind).await?;
    }
    let mut queries = Vec::new();
    for (ki, kind) in kinds.iter().enumerate() {
        let rls_plan = explain_as(&mut conns.app, &claims, &kind.rls_sql("todos"), None).await?;
        let v2_plan = explain_as(&mut conns.app, &claims, &kind.rls_sql("todos_v2"), None).await?;
        let limit_sql = kind.limit_sql();
        let limit_plan = explain(
            &mut conns.admin,
            &limit_sql.replace("$1", &quote_literal(&user)?),
        )
        .await?;
        let naive_plan = explain_as(
            &mut conns.app,
            &claims,
            &kind.rls_sql("todos_naive"),
            Some(plan.naive_timeout),
        )
        .await
        .unwrap_or_else(|e| format!("(not available: {e:#})"));
        let limit_stats = Stats::of(&samples[ki][LIMIT]).context("no limit samples")?;
        let ratio_naive: Vec<f64> = naive_ms[ki]
            .iter()
            .map(|v| v / limit_stats.median)
            .collect();
        queries.push(QueryFigures {
            key: kind.key().into(),
            title: kind.title().into(),
            variants: vec![
                VariantFigures {
                    key: "rls".into(),
                    label: "RLS: authenticated, project policy (identity transaction)".into(),
                    sql: kind.rls_sql("todos"),
                    latency_ms: Stats::of(&samples[ki][RLS]),
                    plan: rls_plan,
                },
                VariantFigures {
                    key: "limit".into(),
                    label: "limit: explicit WHERE user_id = $1, superuser (RLS bypassed)".into(),
                    sql: limit_sql,
                    latency_ms: Some(limit_stats),
                    plan: limit_plan,
                },
                VariantFigures {
                    key: "v2".into(),
                    label: "RLS, same policy calling requesting_user_id() as V2 wrote it \
                            (SET search_path, not inlinable; diagnostic)"
                        .into(),
                    sql: kind.rls_sql("todos_v2"),
                    latency_ms: Stats::of(&samples[ki][V2_FORM]),
                    plan: v2_plan,
                },
                VariantFigures {
                    key: "naive".into(),
                    label: "naive policy: requesting_user_id() = user_id unwrapped, no index"
                        .into(),
                    sql: kind.rls_sql("todos_naive"),
                    latency_ms: Stats::of(&naive_ms[ki]),
                    plan: naive_plan,
                },
            ],
            ratio_rls: Stats::of(&ratios[ki][RLS]).context("no ratios")?,
            ratio_v2: Stats::of(&ratios[ki][V2_FORM]),
            ratio_naive: Stats::of(&ratio_naive),
        });
    }
    p.tick("rls-explain", 1, "plans captured");
    conns.app.close().await.ok();
    conns.admin.close().await.ok();

    let identity_tx_ms = Stats::of(&tx_ms).context("no transaction samples")?;
    let targets = queries
        .iter()
        .map(|q| {
            let find = |k: &str| {
                q.variants
                    .iter()
                    .find(|v| v.key == k)
                    .and_then(|v| v.latency_ms)
            };
            let (rls, limit) = (find("rls"), find("limit"));
            let met = q.ratio_rls.median <= TARGET_RATIO;
            Target {
                name: format!("RLS {} vs the limit", q.key),
                goal: "≥ 0.9× the limit's throughput (latency ≤ 1.11×)".into(),
                measured: format!(
                    "{} latency ({} vs {}), i.e. {:.2}× throughput",
                    Unit::Ratio.fmt(q.ratio_rls.median),
                    rls.map_or_else(|| "-".into(), |s| Unit::Ms.fmt(s.median)),
                    limit.map_or_else(|| "-".into(), |s| Unit::Ms.fmt(s.median)),
                    1.0 / q.ratio_rls.median
                ),
                met: Some(met),
                note: if q.key == "list" {
                    "the stated target".into()
                } else {
                    "same bound, for information".into()
                },
            }
        })
        .collect();
    Ok(RlsAtScale {
        meta: ctx.meta(started.elapsed()),
        dataset: ds.info.clone(),
        runs: plan.rls_runs,
        users_per_run: k,
        queries,
        identity_tx_ms,
        project_policy: PROJECT_POLICY.into(),
        naive_policy: dataset::NAIVE_POLICY.into(),
        v2_function: dataset::V2_FUNCTION.into(),
        targets,
        notes,
    })
}

fn check(got: &Answer, want: &Answer, kind: QueryKind, what: &str, user: &str) -> Result<()> {
    if got != want {
        bail!(
            "{what} {} for {user} returned {got:?}, but the explicit filter returns {want:?}: \
             the variants do not measure the same thing",
            kind.key()
        );
    }
    Ok(())
}

async fn explain(conn: &mut PgConnection, sql: &str) -> Result<String> {
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "explain (analyze, buffers) {sql}"
    )))
    .fetch_all(conn)
    .await?;
    Ok(lines.join("\n"))
}

async fn explain_as(
    conn: &mut PgConnection,
    claims: &str,
    sql: &str,
    timeout: Option<Duration>,
) -> Result<String> {
    let mut tx = begin_identity(conn, claims, timeout).await?;
    let text = explain(&mut tx, sql).await?;
    tx.rollback().await?;
    Ok(text)
}

/// The real path's identity switch, the app's own (`pg-identity`): a read-only transaction
/// with role, claims and a statement timeout, all transaction-local, opened in one round trip.
async fn begin_identity<'c>(
    conn: &'c mut PgConnection,
    claims: &str,
    timeout: Option<Duration>,
) -> Result<sqlx::Transaction<'c, sqlx::Postgres>> {
    let identity = DbIdentity::authenticated_json(claims);
    let mut opening = IdentityTx::new(&identity).access(Access::ReadOnly);
    if let Some(t) = timeout {
        opening = opening.statement_timeout_ms(u64::try_from(t.as_millis())?);
    }
    Ok(pg_identity::begin_as(conn, opening).await?)
}
