//! App throughput: authenticated "list my todos" (and a 90/10 list/insert mix) through the
//! sample app, spawned in-process with a pool as large as the concurrency, driven by a bounded
//! keep-alive HTTP client; against `pgbench -M prepared` running the app's own transaction
//! (identity switch + the exact SQL the app generates) at the same concurrency, same database,
//! same role. Both are timed over the same window after the same warm-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use pg_identity::{Access, quote_literal_for_pgbench};
use rand::{RngExt as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use todo_app::Bind;

use super::cpu::Cpu;
use super::dataset::{self, Dataset, DatasetInfo};
use super::meta::Meta;
use super::progress::{StagePlan, Step};
use super::stats::{Stats, Unit, quantile};
use super::{Ctx, Plan, Skipped, Target};

pub const NAME: &str = "app_throughput";
pub const TARGET_RATIO: f64 = 0.6;
pub const TARGET_USERS: usize = 4;

/// The app's "list my todos, newest first" request.
pub const LIST_QUERY: &str = "order=created_at.desc&limit=20";
const INSERT_BODY: &str = r#"{"title":"bench todo"}"#;
/// Share of inserts in the write mix, in percent.
const INSERT_PERCENT: u32 = 10;
/// At most this many distinct users take part (split evenly between the concurrent users).
const USER_POOL: usize = 2048;
/// Every worker stops after this many requests even if its time is not up.
const MAX_REQUESTS_PER_WORKER: u64 = 2_000_000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const STATEMENT_TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppThroughput {
    pub meta: Meta,
    pub dataset: DatasetInfo,
    pub runs: usize,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub user_pool: usize,
    pub app_requests: Vec<String>,
    pub pgbench_command: Option<String>,
    pub pgbench_scripts: Vec<Script>,
    pub rows: Vec<LoadRow>,
    pub skipped: Vec<Skipped>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Script {
    pub workload: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadRow {
    pub workload: String,
    pub users: usize,
    pub app: Side,
    pub pgbench: Option<Side>,
    /// Per run: app req/s ÷ pgbench transactions/s.
    pub ratio: Option<Stats>,
}

/// One side's figures over the runs: each run's req/s, p50 and p99.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Side {
    pub rps: Stats,
    pub p50_ms: Stats,
    pub p99_ms: Stats,
    pub completed: u64,
    pub errors: u64,
    /// CPU per request (µs) of the client side: the xtask process (app and load generator)
    /// for the app, the pgbench process for pgbench. Over the whole run, warm-up included.
    #[serde(default)]
    pub cpu_client_us: Option<Stats>,
    /// CPU per request (µs) of the server's postgres processes (local backend only).
    #[serde(default)]
    pub cpu_postgres_us: Option<Stats>,
    /// App side only: the load generator's share of `cpu_client_us` (its own thread).
    #[serde(default)]
    pub cpu_loadgen_us: Option<Stats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    List,
    Mix,
}

impl Workload {
    fn key(self) -> &'static str {
        match self {
            Workload::List => "list",
            Workload::Mix => "mix",
        }
    }
}

/// One timed run of either side.
#[derive(Debug, Clone)]
struct RunResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    completed: u64,
    errors: u64,
    first_error: Option<String>,
    /// Successful requests over the whole run, warm-up included (the CPU denominators).
    all_ok: u64,
    cpu_client_us: Option<f64>,
    cpu_postgres_us: Option<f64>,
    cpu_loadgen_us: Option<f64>,
}

impl RunResult {
    fn with_cpu(mut self, before: Cpu, after: Cpu, client: fn(&Cpu) -> f64) -> Self {
        let n = self.all_ok.max(1) as f64;
        self.cpu_client_us = Some((client(&after) - client(&before)) / n * 1e6);
        self.cpu_postgres_us = after
            .postgres
            .zip(before.postgres)
            .map(|(a, b)| (a - b) / n * 1e6);
        self
    }
}

fn workloads_at(plan: &Plan, users: usize) -> Vec<Workload> {
    let mut w = vec![Workload::List];
    if plan.mix_levels.contains(&users) {
        w.push(Workload::Mix);
    }
    w
}

fn pgbench_secs(plan: &Plan) -> u64 {
    (plan.app_warmup + plan.app_duration).as_secs_f64().ceil() as u64 + 1
}

pub fn plan(plan: &Plan) -> StagePlan {
    let pairs: usize = plan
        .app_levels
        .iter()
        .map(|&c| workloads_at(plan, c).len())
        .sum();
    let app = (plan.app_warmup + plan.app_duration).as_secs_f64() + 0.2;
    let pg = pgbench_secs(plan) as f64 + 0.3;
    let diagnostic = usize::from(plan.app_levels.contains(&TARGET_USERS));
    StagePlan {
        name: NAME,
        steps: vec![Step::new(
            "app-run",
            ((pairs * 2 + diagnostic) * plan.app_runs) as u64,
            (app + pg) / 2.0,
        )],
    }
}

pub async fn run(ctx: &Ctx, ds: &Dataset) -> Result<AppThroughput> {
    let started = Instant::now();
    let p = &ctx.progress;
    p.stage(NAME);
    let plan = &ctx.plan;
    let mut skipped = Vec::new();
    let mut notes = Vec::new();
    let pgbench = match &ctx.pg_bin {
        Some(bin) if bin.join("pgbench").is_file() => Some(bin.join("pgbench")),
        _ => {
            skipped.push(Skipped {
                what: "pgbench side of every comparison".into(),
                reason: "no pgbench found (PostgreSQL client binaries: pg_config --bindir, \
                         INSFORGE_RLS_PG_BINDIR)"
                    .into(),
            });
            None
        }
    };
    let postmaster = match &ctx.state.server {
        harness::Server::Local { data_dir, .. } => super::cpu::postmaster_pid(data_dir),
        _ => None,
    };
    let (verifier, template) = super::rls::token_kit(ctx)?;
    let secret = clerk_token::Secret::new(ctx.state.jwt_secret.clone())?;
    let user_pool = USER_POOL.min(plan.users as usize);

    // The claims the app would set, split around the user id so pgbench can splice its own.
    let probe = dataset::user_id(0);
    let claims = super::rls::claims_for(&verifier, &template, &probe)?;
    let (claims_prefix, claims_suffix) = claims
        .split_once(&probe)
        .context("the claims do not contain the user id")?;
    // The app's schema snapshot, read once as the app role (the app reads it at start and on
    // reload, never per request): the pgbench side plans against the same catalog.
    let schema = {
        let mut conn = ds.app.connect().await?;
        todo_app::introspect(&mut conn, "public")
            .await
            .context("cannot read the benchmark database's schema")?
    };
    let list_sql = app_sql(&schema, Workload::List)?;
    let insert_sql = app_sql(&schema, Workload::Mix)?;
    let script_dir = ctx.scratch.join("pgbench");
    std::fs::create_dir_all(&script_dir)?;

    let mut rows = Vec::new();
    let mut scripts: Vec<Script> = Vec::new();
    let mut pgbench_command = None;
    for &users in &plan.app_levels {
        let slice = user_pool / users;
        let tokens: Arc<Vec<String>> = Arc::new(
            (0..users * slice)
                .map(|i| template.mint(&clerk_token::ClerkUser::new(dataset::user_id(i as u64))))
                .collect::<Result<_, _>>()?,
        );
        let mut config = todo_app::AppConfig::new(ds.app.url(), secret.clone());
        config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        config.max_connections = u32::try_from(users)?;
        config.statement_timeout = Duration::from_millis(STATEMENT_TIMEOUT_MS);
        let app = todo_app::spawn(config)
            .await
            .context("cannot start the sample app")?;
        let base = app.url();

        for workload in workloads_at(plan, users) {
            let script = pgbench_script(
                workload,
                users,
                slice,
                claims_prefix,
                claims_suffix,
                &list_sql,
                &insert_sql,
            )?;
            let script_path = script_dir.join(format!("{}-{users}.sql", workload.key()));
            std::fs::write(&script_path, &script)?;
            if !scripts.iter().any(|s| s.workload == workload.key()) {
                scripts.push(Script {
                    workload: workload.key().into(),
                    text: script_for_docs(&script, users, slice),
                });
            }
            let mut app_runs = Vec::new();
            let mut pg_runs = Vec::new();
            let sides = 2;
            for run in 0..plan.app_runs {
                // Rotate which side goes first, so drift in the machine hits all of them.
                for step in 0..sides {
                    let side = (step + run) % sides;
                    if side == 1 {
                        if let Some(bin) = &pgbench {
                            let before = Cpu::now(postmaster);
                            let (r, cmd) =
                                load_pgbench(ctx, ds, bin, &script_path, users, plan).await?;
                            // Its backends exit when it does; let the postmaster reap them
                            // so their CPU time is counted (in its children's times).
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            let r = r.with_cpu(before, Cpu::now(postmaster), |c| c.children);
                            pgbench_command.get_or_insert(cmd);
                            p.tick(
                                "app-run",
                                1,
                                &format!(
                                    "pgbench {} ×{users} run {}/{}: {:.0} tx/s",
                                    workload.key(),
                                    run + 1,
                                    plan.app_runs,
                                    r.rps
                                ),
                            );
                            pg_runs.push(r);
                        } else {
                            p.tick("app-run", 1, "pgbench skipped");
                        }
                        continue;
                    }
                    let (url, what) = (base.as_str(), "app");
                    let before = Cpu::now(postmaster);
                    let (r, loadgen_secs) = load_app_thread(
                        url.to_owned(),
                        Arc::clone(&tokens),
                        users,
                        slice,
                        workload,
                        plan.app_warmup,
                        plan.app_duration,
                    )
                    .await?;
                    let mut r = r.with_cpu(before, Cpu::now(postmaster), |c| c.ours);
                    r.cpu_loadgen_us = Some(loadgen_secs / r.all_ok.max(1) as f64 * 1e6);
                    p.tick(
                        "app-run",
                        1,
                        &format!(
                            "{what} {} ×{users} run {}/{}: {:.0} req/s",
                            workload.key(),
                            run + 1,
                            plan.app_runs,
                            r.rps
                        ),
                    );
                    app_runs.push(r);
                }
            }
            for (side, runs) in [("app", &app_runs), ("pgbench", &pg_runs)] {
                if let Some(e) = runs.iter().find_map(|r| r.first_error.clone()) {
                    let errors: u64 = runs.iter().map(|r| r.errors).sum();
                    notes.push(format!(
                        "{side} {} ×{users}: {errors} failed requests, first: {e}",
                        workload.key()
                    ));
                }
            }
            let ratio = run_ratios(&app_runs, &pg_runs);
            rows.push(LoadRow {
                workload: workload.key().into(),
                users,
                app: side_of(&app_runs).context("no app runs")?,
                pgbench: side_of(&pg_runs),
                ratio,
            });
        }
        app.shutdown()
            .await
            .context("the sample app did not stop cleanly")?;
    }

    let targets = targets(&rows, pgbench.is_some());
    Ok(AppThroughput {
        meta: ctx.meta(started.elapsed()),
        dataset: ds.info.clone(),
        runs: plan.app_runs,
        warmup_secs: plan.app_warmup.as_secs_f64(),
        duration_secs: plan.app_duration.as_secs_f64(),
        user_pool,
        app_requests: vec![
            format!("GET /api/database/records/todos?{LIST_QUERY} (Authorization: Bearer <token>)"),
            format!(
                "mix: {}% POST /api/database/records/todos {INSERT_BODY} (Prefer: return=minimal, the default)",
                INSERT_PERCENT
            ),
        ],
        pgbench_command,
        pgbench_scripts: scripts,
        rows,
        skipped,
        targets,
        notes,
    })
}

fn side_of(runs: &[RunResult]) -> Option<Side> {
    let col = |f: fn(&RunResult) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    let opt = |f: fn(&RunResult) -> Option<f64>| {
        Stats::of(&runs.iter().filter_map(f).collect::<Vec<f64>>())
    };
    Some(Side {
        rps: Stats::of(&col(|r| r.rps))?,
        p50_ms: Stats::of(&col(|r| r.p50_ms))?,
        p99_ms: Stats::of(&col(|r| r.p99_ms))?,
        completed: runs.iter().map(|r| r.completed).sum(),
        errors: runs.iter().map(|r| r.errors).sum(),
        cpu_client_us: opt(|r| r.cpu_client_us),
        cpu_postgres_us: opt(|r| r.cpu_postgres_us),
        cpu_loadgen_us: opt(|r| r.cpu_loadgen_us),
    })
}

fn targets(rows: &[LoadRow], have_pgbench: bool) -> Vec<Target> {
    let mut out = Vec::new();
    for workload in ["list", "mix"] {
        let Some(row) = rows
            .iter()
            .find(|r| r.workload == workload && r.users == TARGET_USERS)
        else {
            continue;
        };
        let name = format!("app {workload} at {TARGET_USERS} users vs pgbench");
        let goal = format!("≥ {TARGET_RATIO}× pgbench");
        out.push(match (&row.ratio, &row.pgbench) {
            (Some(ratio), Some(pg)) => Target {
                name,
                goal,
                measured: format!(
                    "{} ({} vs {})",
                    Unit::Ratio.fmt(ratio.median),
                    Unit::PerSec.fmt(row.app.rps.median),
                    Unit::PerSec.fmt(pg.rps.median)
                ),
                met: Some(ratio.median >= TARGET_RATIO),
                note: if workload == "list" {
                    "the stated target".into()
                } else {
                    "same bound, for information".into()
                },
            },
            _ => Target {
                name,
                goal,
                measured: "not measured".into(),
                met: None,
                note: if have_pgbench {
                    String::new()
                } else {
                    "pgbench not found".into()
                },
            },
        });
    }
    out
}

/// The exact SQL the app runs for the workload's request (`todo_app::plan_request`, the path
/// the handlers take), with its values inlined as literals (pgbench then prepares it once,
/// like the app's statement cache), and the access mode its transaction opens with.
fn app_sql(schema: &todo_app::Schema, workload: Workload) -> Result<(String, Access)> {
    let (statement, access) = match workload {
        Workload::List => todo_app::plan_request(schema, "todos", Some(LIST_QUERY), None),
        Workload::Mix => {
            todo_app::plan_request(schema, "todos", None, Some(INSERT_BODY.as_bytes()))
        }
    }
    .map_err(|e| anyhow::anyhow!("the app refuses the benchmark's request: {e:?}"))?;
    let mut text = statement.sql;
    // Highest first, so `$1` never eats the start of `$10`.
    for (i, bind) in statement.binds.iter().enumerate().rev() {
        let literal = match bind {
            Bind::Text(Some(v)) => quote_literal_for_pgbench(v)?,
            Bind::Text(None) => "NULL".into(),
            Bind::BigInt(v) => v.to_string(),
            Bind::TextArray(items) => format!(
                "ARRAY[{}]::text[]",
                items
                    .iter()
                    .map(|v| quote_literal_for_pgbench(v))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(", ")
            ),
        };
        text = text.replace(&format!("${}", i + 1), &literal);
    }
    Ok((text, access))
}

/// One request's transaction as pgbench lines, the same statements the app sends (`BEGIN READ
/// ONLY` for a read, the identity switch, the statement, then `COMMIT`, or `ROLLBACK` for a
/// read). The app sends `BEGIN` and the switch as one simple query; `pgbench -M prepared`
/// refuses compound statements, so here they are two.
fn transaction_lines(claims: &str, sql: &str, access: Access) -> Result<String> {
    let role = quote_literal_for_pgbench("authenticated")?;
    Ok(format!(
        "{};\n{};\n{sql};\n{};\n",
        access.begin().to_uppercase(),
        pg_identity::set_identity_sql(&role, Some(claims), Some(STATEMENT_TIMEOUT_MS)),
        access.end().to_uppercase(),
    ))
}

/// The app's transaction as a pgbench script: client `c` of `users` acts as a random one of
/// its own `slice` users (ids `c + users × r`), exactly as the Rust load generator does.
fn pgbench_script(
    workload: Workload,
    users: usize,
    slice: usize,
    claims_prefix: &str,
    claims_suffix: &str,
    list: &(String, Access),
    insert: &(String, Access),
) -> Result<String> {
    let claims = format!(
        "{} || {} || {}",
        quote_literal_for_pgbench(claims_prefix)?,
        dataset::user_id_sql(":u"),
        quote_literal_for_pgbench(claims_suffix)?
    );
    let list = transaction_lines(&claims, &list.0, list.1)?;
    let mut s = String::new();
    s.push_str(&format!("\\set r random(0, {})\n", slice.saturating_sub(1)));
    s.push_str(&format!("\\set u :client_id + {users} * :r\n"));
    match workload {
        Workload::List => s.push_str(&list),
        Workload::Mix => {
            let insert = transaction_lines(&claims, &insert.0, insert.1)?;
            s.push_str("\\set p random(1, 100)\n");
            s.push_str(&format!(
                "\\if :p <= {INSERT_PERCENT}\n{insert}\\else\n{list}\\endif\n"
            ));
        }
    }
    Ok(s)
}

/// The script as shown in the docs: the concurrency-specific numbers named.
fn script_for_docs(script: &str, users: usize, slice: usize) -> String {
    script
        .replace(
            &format!("random(0, {})", slice.saturating_sub(1)),
            "random(0, SLICE - 1)",
        )
        .replace(&format!(":client_id + {users} *"), ":client_id + CLIENTS *")
}

/// Runs the load generator on a thread of its own with a single-threaded runtime — like an
/// external client, off the app's worker threads — and returns that thread's CPU seconds.
async fn load_app_thread(
    base: String,
    tokens: Arc<Vec<String>>,
    users: usize,
    slice: usize,
    workload: Workload,
    warmup: Duration,
    duration: Duration,
) -> Result<(RunResult, f64)> {
    tokio::task::spawn_blocking(move || -> Result<(RunResult, f64)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let before = super::cpu::thread_seconds();
        let result = runtime.block_on(load_app(
            &base, &tokens, users, slice, workload, warmup, duration,
        ))?;
        drop(runtime);
        Ok((result, super::cpu::thread_seconds() - before))
    })
    .await
    .context("the load generator thread panicked")?
}

type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// One keep-alive HTTP/1.1 connection on hyper's connection-level client: no pool, no
/// redirects, no per-request timer — the load generator's own cost per request stays small next
/// to what it measures (on the other side pgbench is a lean C client).
async fn connect(addr: &str) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes the connection.
        let _ = connection.await;
    });
    Ok(sender)
}

/// One request on `sender`: Ok when it answered 2xx, else what went wrong.
async fn send(
    sender: &mut Sender,
    request: hyper::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<(), String> {
    use http_body_util::BodyExt as _;
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    }
}

/// Drives the app with `users` concurrent clients for warm-up + duration; counts the requests
/// that completed inside the timed window.
async fn load_app(
    base: &str,
    tokens: &Arc<Vec<String>>,
    users: usize,
    slice: usize,
    workload: Workload,
    warmup: Duration,
    duration: Duration,
) -> Result<RunResult> {
    use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
    let start = Instant::now();
    let from = start + warmup;
    let until = from + duration;
    let addr = Arc::new(
        base.strip_prefix("http://")
            .context("the app's URL is not http://")?
            .trim_end_matches('/')
            .to_owned(),
    );
    let host = HeaderValue::from_str(&addr)?;
    let list_path = format!("/api/database/records/todos?{LIST_QUERY}");
    let post_path = "/api/database/records/todos";
    let bearer: Arc<Vec<HeaderValue>> = Arc::new(
        tokens
            .iter()
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .collect::<Result<_, _>>()?,
    );
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..users {
        let bearer = Arc::clone(&bearer);
        let (addr, host, list_path) = (Arc::clone(&addr), host.clone(), list_path.clone());
        set.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(0xa11ce + worker as u64);
            let mut latencies_us: Vec<f64> = Vec::new();
            let mut errors = 0_u64;
            let mut first_error = None;
            let mut all_ok = 0_u64;
            let mut sender: Option<Sender> = None;
            for _ in 0..MAX_REQUESTS_PER_WORKER {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                let token = &bearer[worker + users * rng.random_range(0..slice)];
                let insert = workload == Workload::Mix && rng.random_range(0..100) < INSERT_PERCENT;
                let builder = hyper::Request::builder()
                    .header(HOST, host.clone())
                    .header(AUTHORIZATION, token.clone());
                let request = if insert {
                    builder
                        .method(hyper::Method::POST)
                        .uri(post_path)
                        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                        .body(http_body_util::Full::new(bytes::Bytes::from_static(
                            INSERT_BODY.as_bytes(),
                        )))
                } else {
                    builder
                        .method(hyper::Method::GET)
                        .uri(list_path.as_str())
                        .body(http_body_util::Full::default())
                };
                let outcome = match request {
                    Err(e) => Err(e.to_string()),
                    Ok(request) => {
                        let attempt = async {
                            if sender.is_none() {
                                sender = Some(connect(&addr).await.map_err(|e| e.to_string())?);
                            }
                            match sender.as_mut() {
                                Some(s) => send(s, request).await,
                                None => Err("no connection".to_owned()),
                            }
                        };
                        match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
                            Ok(r) => r,
                            Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
                        }
                    }
                };
                if outcome.is_err() {
                    // A broken or timed-out connection is not reused.
                    sender = None;
                }
                let done = Instant::now();
                all_ok += u64::from(outcome.is_ok());
                if done < from || done > until {
                    continue;
                }
                match outcome {
                    Ok(()) => latencies_us.push(done.duration_since(sent).as_secs_f64() * 1e6),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies_us, errors, first_error, all_ok)
        });
    }
    let bound = warmup + duration + REQUEST_TIMEOUT + Duration::from_secs(5);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut all_ok = 0;
    let joined = tokio::time::timeout(bound, async {
        while let Some(r) = set.join_next().await {
            let (l, e, f, a) = r.context("a load worker panicked")?;
            latencies.extend(l);
            errors += e;
            all_ok += a;
            if first_error.is_none() {
                first_error = f;
            }
        }
        anyhow::Ok(())
    })
    .await;
    match joined {
        Ok(r) => r?,
        Err(_) => bail!(
            "the load generator did not stop within {} s",
            bound.as_secs()
        ),
    }
    Ok(summarize(latencies, errors, first_error, duration, all_ok))
}

fn summarize(
    latencies_us: Vec<f64>,
    errors: u64,
    first_error: Option<String>,
    window: Duration,
    all_ok: u64,
) -> RunResult {
    RunResult {
        all_ok,
        cpu_client_us: None,
        cpu_postgres_us: None,
        cpu_loadgen_us: None,
        rps: latencies_us.len() as f64 / window.as_secs_f64(),
        p50_ms: quantile(&latencies_us, 0.5).unwrap_or(f64::NAN) / 1000.0,
        p99_ms: quantile(&latencies_us, 0.99).unwrap_or(f64::NAN) / 1000.0,
        completed: latencies_us.len() as u64,
        errors,
        first_error,
    }
}

/// Runs pgbench with a per-transaction log and reads the same window the app gets from it.
async fn load_pgbench(
    ctx: &Ctx,
    ds: &Dataset,
    bin: &Path,
    script: &Path,
    clients: usize,
    plan: &Plan,
) -> Result<(RunResult, String)> {
    let secs = pgbench_secs(plan);
    let threads = clients.min(ctx.machine.cores.max(1));
    let logs = tempfile::Builder::new()
        .prefix("pgbench-log-")
        .tempdir_in(&ctx.scratch)?;
    let prefix = logs.path().join("tx");
    let target = &ds.app;
    let args: Vec<String> = vec![
        "--no-vacuum".into(),
        "--protocol=prepared".into(),
        format!("--client={clients}"),
        format!("--jobs={threads}"),
        format!("--time={secs}"),
        format!("--file={}", script.display()),
        "--log".into(),
        format!("--log-prefix={}", prefix.display()),
        format!("--host={}", target.host),
        format!("--port={}", target.port),
        format!("--username={}", target.user),
        target.database.clone(),
    ];
    let shown = format!(
        "PGPASSWORD=*** pgbench --no-vacuum --protocol=prepared --client=C --jobs={} --time={secs} \
         --file=<script> --log --host={} --port={} --username={} <bench database>",
        if clients > 1 {
            "min(C, cores)".to_owned()
        } else {
            "1".to_owned()
        },
        target.host,
        target.port,
        target.user
    );
    let child = tokio::process::Command::new(bin)
        .args(&args)
        .env("PGPASSWORD", &target.password)
        .env("PGAPPNAME", "insforge-rls-bench")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run pgbench")?;
    let bound = Duration::from_secs(secs + 60);
    let output = match tokio::time::timeout(bound, child.wait_with_output()).await {
        Ok(out) => out?,
        Err(_) => bail!("pgbench did not finish within {} s", bound.as_secs()),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        bail!(
            "pgbench failed ({}): {} (script {})",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
            script.display()
        );
    }
    let result = read_pgbench_logs(logs.path(), plan.app_warmup, plan.app_duration)?;
    Ok((result, shown))
}

/// pgbench's per-transaction log: `client tx latency_us script epoch_s epoch_us [lag…]`, the
/// epoch being when the transaction ended. The timed window starts `warmup` after the first
/// transaction ended.
fn read_pgbench_logs(dir: &Path, warmup: Duration, duration: Duration) -> Result<RunResult> {
    let mut done: Vec<(i128, Option<f64>)> = Vec::new();
    let files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if files.is_empty() {
        bail!("pgbench wrote no transaction log in {}", dir.display());
    }
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 {
                continue;
            }
            let (Ok(s), Ok(us)) = (f[4].parse::<i128>(), f[5].parse::<i128>()) else {
                continue;
            };
            let latency = f[2].parse::<f64>().ok();
            done.push((s * 1_000_000 + us, latency));
        }
    }
    let first = done
        .iter()
        .map(|d| d.0)
        .min()
        .context("pgbench logged no transaction")?;
    let from = first + warmup.as_micros() as i128;
    let until = from + duration.as_micros() as i128;
    let last = done.iter().map(|d| d.0).max().unwrap_or(first);
    if last < until {
        bail!(
            "pgbench stopped {:.1} s before the end of the timed window",
            (until - last) as f64 / 1e6
        );
    }
    let all_ok = done.iter().filter(|d| d.1.is_some()).count() as u64;
    let mut latencies = Vec::new();
    let mut errors = 0;
    for (at, latency) in done {
        if at < from || at > until {
            continue;
        }
        match latency {
            Some(l) => latencies.push(l),
            None => errors += 1,
        }
    }
    let first_error = (errors > 0).then(|| format!("{errors} failed or skipped transactions"));
    Ok(summarize(latencies, errors, first_error, duration, all_ok))
}

/// Per-run ratios of `runs` to the pgbench runs beside them; `None` when either side is empty.
fn run_ratios(runs: &[RunResult], pg_runs: &[RunResult]) -> Option<Stats> {
    let ratios: Vec<f64> = runs
        .iter()
        .zip(pg_runs)
        .map(|(a, g)| a.rps / g.rps)
        .collect();
    Stats::of(&ratios)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `public.todos` as `migrations/todos` creates it (what `introspect` reads at run time).
    fn todos_schema() -> todo_app::Schema {
        use todo_app::{Column, Relation, RelationKind};
        let columns = [
            ("id", "uuid"),
            ("user_id", "text"),
            ("title", "text"),
            ("is_complete", "boolean"),
            ("created_at", "timestamp with time zone"),
        ]
        .into_iter()
        .map(|(name, ty)| Column::new(name, ty))
        .collect();
        let todos = Relation::new("public", "todos", RelationKind::Table, columns, &["id"]);
        todo_app::Schema::new("public", [todos])
    }

    #[test]
    fn the_app_sql_has_no_parameters_left() {
        let schema = todos_schema();
        for w in [Workload::List, Workload::Mix] {
            let (sql, _) = app_sql(&schema, w).expect("builds");
            assert!(!sql.contains("$1"), "{sql}");
        }
        let (list, access) = app_sql(&schema, Workload::List).expect("builds");
        assert!(list.contains("limit 20::bigint"));
        assert_eq!(access, Access::ReadOnly);
        assert_eq!(
            app_sql(&schema, Workload::Mix).expect("builds").1,
            Access::ReadWrite
        );
    }

    #[test]
    fn scripts_use_the_clients_own_users() {
        let s = pgbench_script(
            Workload::Mix,
            4,
            512,
            "{\"sub\":\"",
            "\"}",
            &("SELECT 1".into(), Access::ReadOnly),
            &("SELECT 2".into(), Access::ReadWrite),
        )
        .expect("builds");
        assert!(s.contains("\\set r random(0, 511)"), "{s}");
        assert!(s.contains("\\set u :client_id + 4 * :r"), "{s}");
        assert!(
            s.contains(
                "\\if :p <= 10\nBEGIN;\nselect set_config('role', E'authenticated', true), "
            ),
            "{s}"
        );
        assert!(
            s.contains("\nSELECT 2;\nCOMMIT;\n\\else\nBEGIN READ ONLY;\nselect "),
            "{s}"
        );
        assert!(s.contains("\nSELECT 1;\nROLLBACK;\n\\endif"), "{s}");
        assert!(!s.contains("\"sub\":"), "colons are escaped: {s}");
    }

    #[test]
    fn pgbench_logs_are_windowed() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Ends at t = 0 s, 0.5 s, 1.0 s, …, 4.0 s after 1000 s; one failure at 2.0 s.
        let mut text = String::new();
        for i in 0..=8 {
            let t = 1000 * 1_000_000 + i * 500_000;
            let lat = if i == 4 {
                "failed".to_owned()
            } else {
                format!("{}", 1000 + i)
            };
            text.push_str(&format!(
                "0 {i} {lat} 0 {} {}\n",
                t / 1_000_000,
                t % 1_000_000
            ));
        }
        std::fs::write(dir.path().join("tx.123"), text).expect("write");
        let r = read_pgbench_logs(dir.path(), Duration::from_secs(1), Duration::from_secs(2))
            .expect("reads");
        // Window [1.0 s, 3.0 s]: ends at 1.0, 1.5, 2.5, 3.0 succeed, 2.0 failed.
        assert_eq!(r.completed, 4);
        assert_eq!(r.errors, 1);
        assert!((r.rps - 2.0).abs() < 1e-9);
    }
}
