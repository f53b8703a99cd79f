//! Time to green: `setup` and `teardown` on throwaway state (docker with a warm image when an
//! engine answers, and the local backend), the per-test database against the bare
//! `CREATE DATABASE … TEMPLATE` limit, and the full `cargo test` after a warm-up build.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use harness::target::quote_ident;
use harness::{BackendChoice, CloneStrategy, DatabaseFactory, PgTarget, SetupOptions, StateDir};
use serde::{Deserialize, Serialize};
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use super::meta::Meta;
use super::progress::{StagePlan, Step};
use super::stats::{Stats, Unit};
use super::{Ctx, Plan, Skipped, Target};

pub const NAME: &str = "time_to_green";

/// Quoted, not measured: what pgsql-test spends per test database on this machine.
pub const PEER: &str = "pgsql-test spends ~170–230 ms per test database on this machine \
     (quoted for comparison, not measured here)";

pub const TARGET_PER_TEST_MS: f64 = 25.0;
pub const TARGET_SETUP_SECS: f64 = 5.0;
pub const TARGET_SUITE_SECS: f64 = 60.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimeToGreen {
    pub meta: Meta,
    pub setup: Vec<SetupFigures>,
    pub clone: Option<CloneFigures>,
    pub suite: Option<SuiteFigures>,
    pub skipped: Vec<Skipped>,
    pub targets: Vec<Target>,
    pub peer: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetupFigures {
    pub backend: String,
    pub image: Option<String>,
    /// A first setup on empty state: server start, migrations, app role, template.
    pub setup_secs: Stats,
    /// Setup again with the server running (nothing to do but check).
    pub again_secs: Stats,
    pub teardown_secs: Stats,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloneFigures {
    pub template_mb: f64,
    pub paths: Vec<ClonePath>,
    /// The path the tests take (`harness::TestDatabase`).
    pub harness_key: String,
    /// The physical limit the harness is compared with.
    pub limit_key: String,
    /// Opening (and closing) one superuser connection, which the per-connection path does
    /// twice.
    #[serde(default)]
    pub connect_ms: Option<Stats>,
    /// The strategy the harness picked on this server.
    #[serde(default)]
    pub harness_strategy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClonePath {
    pub key: String,
    pub label: String,
    pub create_ms: Stats,
    pub drop_ms: Stats,
    /// Create + drop: what one test waits for.
    pub total_ms: Stats,
    /// The harness's drop, which runs in the background on its connection while the next
    /// test goes on: not part of what a test waits for.
    #[serde(default)]
    pub background_drop_ms: Option<Stats>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteFigures {
    pub command: String,
    /// The untimed warm-up build (`cargo test --no-run`), for reference.
    pub build_secs: f64,
    pub wall_secs: Stats,
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    /// Runs whose `cargo test` exited non-zero (their wall time is still reported).
    pub failed_runs: usize,
    pub log: String,
}

pub fn plan(plan: &Plan) -> StagePlan {
    let setups = plan.setup_runs as u64;
    StagePlan {
        name: NAME,
        steps: vec![
            Step::new("setup-docker", setups, 8.0),
            Step::new("setup-local", setups, 3.0),
            Step::new("clone", plan.clone_runs as u64 * 4, 0.06),
            Step::new("suite-build", u64::from(plan.suite_runs > 0), 120.0),
            Step::new("suite-run", plan.suite_runs as u64, 60.0),
        ],
    }
}

pub async fn run(ctx: &Ctx) -> Result<TimeToGreen> {
    let started = Instant::now();
    ctx.progress.stage(NAME);
    let mut skipped = Vec::new();
    let mut setup = Vec::new();

    // Docker first: it is the default backend when an engine answers.
    let image = std::env::var("INSFORGE_RLS_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| harness::backend::docker::DEFAULT_IMAGE.to_owned());
    match docker_ready(&image).await {
        Ok(()) => setup.push(measure_setup(ctx, BackendChoice::Docker, Some(&image)).await?),
        Err(reason) => {
            ctx.progress
                .note(&format!("docker setup skipped: {reason}"));
            skipped.push(Skipped {
                what: "setup/teardown, docker backend".into(),
                reason,
            });
        }
    }
    match harness::backend::local::find_bin_dir() {
        Ok(_) => setup.push(measure_setup(ctx, BackendChoice::Local, None).await?),
        Err(e) => skipped.push(Skipped {
            what: "setup/teardown, local backend".into(),
            reason: e.to_string(),
        }),
    }

    let clone = measure_clone(ctx).await?;

    let suite = if ctx.plan.suite_runs == 0 {
        skipped.push(Skipped {
            what: "full `cargo test` wall time".into(),
            reason: "not run in --quick mode".into(),
        });
        None
    } else {
        match measure_suite(ctx).await {
            Ok(s) => Some(s),
            Err(e) => {
                skipped.push(Skipped {
                    what: "full `cargo test` wall time".into(),
                    reason: format!("{e:#}"),
                });
                None
            }
        }
    };

    let targets = targets(&setup, Some(&clone), suite.as_ref(), &skipped);
    Ok(TimeToGreen {
        meta: ctx.meta(started.elapsed()),
        setup,
        clone: Some(clone),
        suite,
        skipped,
        targets,
        peer: PEER.into(),
    })
}

/// Ok when an engine answers and the image is already on this machine (a warm image).
async fn docker_ready(image: &str) -> std::result::Result<(), String> {
    harness::backend::docker::ping().await.map_err(|e| {
        // The harness's message ends with advice for setup; keep the diagnosis.
        let e = e.to_string();
        let diagnosis = e.split(" — ").next().unwrap_or(&e).to_owned();
        format!("no Docker engine answers ({diagnosis})")
    })?;
    let docker = testcontainers::bollard::Docker::connect_with_defaults()
        .map_err(|e| format!("cannot reach Docker: {e}"))?;
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(testcontainers::bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }) => Err(format!(
            "image {image} is not on this machine, so there is no warm image to measure \
             (pull or build it first: .ci/postgres-image.sh; INSFORGE_RLS_IMAGE picks another)"
        )),
        Err(e) => Err(format!("cannot inspect image {image}: {e}")),
    }
}

async fn measure_setup(
    ctx: &Ctx,
    backend: BackendChoice,
    image: Option<&str>,
) -> Result<SetupFigures> {
    let key = match backend {
        BackendChoice::Docker => "setup-docker",
        _ => "setup-local",
    };
    let runs = ctx.plan.setup_runs;
    let (mut first, mut again, mut down) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let dir_path = ctx.scratch.join(format!("setup-{backend}-{i}"));
        ctx.cleanup.server(&dir_path);
        let dir = StateDir::at(&dir_path);
        let mut opts = SetupOptions {
            backend,
            container_name: Some(format!("insforge-rls-bench-{}", super::suffix())),
            env_export: None,
            ..SetupOptions::default()
        };
        if let Some(image) = image {
            opts.image = image.to_owned();
        }
        let t = Instant::now();
        harness::setup(&dir, &opts)
            .await
            .with_context(|| format!("setup ({backend} backend) failed"))?;
        first.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        harness::setup(&dir, &opts)
            .await
            .with_context(|| format!("setup again ({backend} backend) failed"))?;
        again.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        harness::teardown(&dir)
            .await
            .with_context(|| format!("teardown ({backend} backend) failed"))?;
        down.push(t.elapsed().as_secs_f64());
        ctx.cleanup.remove_server(&dir_path).await?;
        ctx.progress.tick(
            key,
            1,
            &format!(
                "setup {backend} {}/{runs}: {:.2} s, again {:.2} s, teardown {:.2} s",
                i + 1,
                first[i],
                again[i],
                down[i]
            ),
        );
    }
    let stats = |v: &[f64]| Stats::of(v).context("no setup runs");
    Ok(SetupFigures {
        backend: backend.to_string(),
        image: image.map(str::to_owned),
        setup_secs: stats(&first)?,
        again_secs: stats(&again)?,
        teardown_secs: stats(&down)?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClonePathKind {
    /// `harness::TestDatabase`: `CREATE … TEMPLATE` on the process's long-lived connection
    /// (FILE_COPY where fsync is off), the drop queued to run in the background.
    Harness,
    /// The harness before: a new connection for the clone (WAL_LOG) and another for the drop,
    /// which the test waited for.
    PerConnection,
    /// `CREATE DATABASE … TEMPLATE` and `DROP DATABASE` on one already-open connection.
    Bare,
    BareFileCopy,
    /// The bare path into the scratch tablespace, with the harness's strategy: the limit for
    /// what the harness does.
    BareScratch,
}

impl ClonePathKind {
    const ALL: [ClonePathKind; 4] = [
        ClonePathKind::Harness,
        ClonePathKind::PerConnection,
        ClonePathKind::Bare,
        ClonePathKind::BareFileCopy,
    ];

    fn key(self) -> &'static str {
        match self {
            ClonePathKind::Harness => "harness",
            ClonePathKind::PerConnection => "per_connection",
            ClonePathKind::Bare => "bare",
            ClonePathKind::BareFileCopy => "bare_file_copy",
            ClonePathKind::BareScratch => "bare_scratch",
        }
    }

    fn label(self, strategy: CloneStrategy) -> String {
        match self {
            ClonePathKind::Harness => format!(
                "harness (TestDatabase): CREATE … TEMPLATE ({}) on the test process's open \
                 connection; the drop is queued and runs in the background",
                strategy.name()
            ),
            ClonePathKind::PerConnection => "the harness before this change: connect, CREATE … \
                 TEMPLATE (WAL_LOG), connect, DROP … WITH (FORCE), waited for"
                .into(),
            ClonePathKind::Bare => {
                "limit: CREATE … TEMPLATE (WAL_LOG) + DROP on one open connection".into()
            }
            ClonePathKind::BareFileCopy => {
                "limit: CREATE … TEMPLATE STRATEGY FILE_COPY + DROP on one open connection".into()
            }
            ClonePathKind::BareScratch => format!(
                "limit for the harness: CREATE … TEMPLATE ({}) TABLESPACE {} + DROP on one open \
                 connection",
                strategy.name(),
                harness::scratch::SCRATCH_TABLESPACE
            ),
        }
    }

    fn clauses(self, strategy: CloneStrategy) -> String {
        match self {
            ClonePathKind::BareFileCopy => CloneStrategy::FileCopy.clause().into(),
            ClonePathKind::BareScratch => format!(
                "{} tablespace {}",
                strategy.clause(),
                quote_ident(harness::scratch::SCRATCH_TABLESPACE)
            ),
            _ => CloneStrategy::WalLog.clause().into(),
        }
    }
}

async fn exec(conn: &mut PgConnection, sql: String) -> Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(conn)
        .await?;
    Ok(())
}

async fn measure_clone(ctx: &Ctx) -> Result<CloneFigures> {
    let admin = &ctx.state.admin;
    let source = ctx
        .state
        .template
        .as_deref()
        .context("the server from setup has no template database")?;
    // A private copy of the template, so a `cargo test` running elsewhere (which connects to
    // nothing but its clones, yet may clone the same template) never makes us wait.
    let template = format!("insforge_rls_bench_tpl_{}", super::suffix());
    ctx.cleanup.database(admin, &template);
    harness::testing::clone_database(admin, source, &template).await?;
    let mut bare = admin.connect().await?;
    let template_bytes: i64 = sqlx::query_scalar("select pg_database_size($1)")
        .bind(&template)
        .fetch_one(&mut bare)
        .await?;

    let runs = ctx.plan.clone_runs;
    let factory = DatabaseFactory::start(admin.clone())?;
    let harness::factory::CloneSettings {
        strategy,
        tablespace: scratch,
    } = factory.settings().await?;
    let mut kinds = ClonePathKind::ALL.to_vec();
    if scratch.is_some() {
        kinds.push(ClonePathKind::BareScratch);
    }
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); kinds.len()];
    let mut background = Vec::new();
    let mut connects = Vec::new();
    // One untimed round first: the first clone after a checkpoint pays for it (and the
    // factory's first clone sweeps what exited test processes left).
    for i in 0..=runs {
        let t = Instant::now();
        admin.connect().await?.close().await.ok();
        if i > 0 {
            connects.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        for j in 0..kinds.len() {
            let idx = (i + j) % kinds.len();
            let kind = kinds[idx];
            let (create, drop, bg) =
                clone_once(ctx, admin, &factory, &mut bare, &template, kind, strategy).await?;
            if i > 0 {
                samples[idx].0.push(create);
                samples[idx].1.push(drop);
                background.extend(bg);
                ctx.progress.tick(
                    "clone",
                    1,
                    &format!(
                        "per-test database {i}/{runs}: {} create {create:.1} ms + drop {drop:.1} ms",
                        kind.key()
                    ),
                );
            }
        }
    }
    drop(factory);
    bare.close().await.ok();
    ctx.cleanup.drop_database(admin, &template).await?;

    let mut paths = Vec::new();
    for (kind, (create, drop)) in kinds.iter().zip(&samples) {
        let total: Vec<f64> = create.iter().zip(drop).map(|(c, d)| c + d).collect();
        paths.push(ClonePath {
            key: kind.key().into(),
            label: kind.label(strategy),
            create_ms: Stats::of(create).context("no clone samples")?,
            drop_ms: Stats::of(drop).context("no clone samples")?,
            total_ms: Stats::of(&total).context("no clone samples")?,
            background_drop_ms: (*kind == ClonePathKind::Harness)
                .then(|| Stats::of(&background))
                .flatten(),
        });
    }
    // The limit is the bare path doing what the harness does: same strategy, same tablespace.
    let limit = if scratch.is_some() {
        ClonePathKind::BareScratch
    } else if strategy == CloneStrategy::FileCopy {
        ClonePathKind::BareFileCopy
    } else {
        ClonePathKind::Bare
    };
    Ok(CloneFigures {
        template_mb: (template_bytes as f64 / 1048576.0 * 10.0).round() / 10.0,
        paths,
        harness_key: ClonePathKind::Harness.key().into(),
        limit_key: limit.key().into(),
        connect_ms: Stats::of(&connects),
        harness_strategy: Some(strategy.name().into()),
    })
}

/// One create + drop along `kind`'s path: what the test waits for in each (ms), plus the
/// harness's background drop.
async fn clone_once(
    ctx: &Ctx,
    admin: &PgTarget,
    factory: &DatabaseFactory,
    bare: &mut PgConnection,
    template: &str,
    kind: ClonePathKind,
    strategy: CloneStrategy,
) -> Result<(f64, f64, Option<f64>)> {
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    if kind == ClonePathKind::Harness {
        let t = Instant::now();
        let name = factory.create(template).await?;
        let create = ms(t);
        ctx.cleanup.database(admin, &name);
        let t = Instant::now();
        factory.drop_later(&name);
        let drop = ms(t);
        // Untimed for the test, timed for the record; the next path starts on a quiet server.
        let t = Instant::now();
        factory.flush().await?;
        let background = ms(t);
        ctx.cleanup.forget_database(admin, &name);
        return Ok((create, drop, Some(background)));
    }
    let name = format!("insforge_rls_bench_clone_{}", super::suffix());
    ctx.cleanup.database(admin, &name);
    let create_sql = format!(
        "create database {} template {}{}",
        quote_ident(&name),
        quote_ident(template),
        kind.clauses(strategy)
    );
    let drop_sql = format!(
        "drop database if exists {} with (force)",
        quote_ident(&name)
    );
    let (create, drop) = match kind {
        ClonePathKind::PerConnection => {
            let t = Instant::now();
            harness::testing::clone_database(admin, template, &name).await?;
            let create = ms(t);
            let t = Instant::now();
            super::cleanup::drop_database(admin, &name).await?;
            (create, ms(t))
        }
        _ => {
            let t = Instant::now();
            exec(bare, create_sql).await?;
            let create = ms(t);
            let t = Instant::now();
            exec(bare, drop_sql).await?;
            (create, ms(t))
        }
    };
    ctx.cleanup.forget_database(admin, &name);
    Ok((create, drop, None))
}

async fn measure_suite(ctx: &Ctx) -> Result<SuiteFigures> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let logs = ctx.root.join("target").join("bench-logs");
    std::fs::create_dir_all(&logs)?;
    let build_log = logs.join("suite-build.log");
    ctx.progress
        .note("warm-up build: cargo test --no-run (untimed for the target)");
    let t = Instant::now();
    let ok = run_logged(
        &cargo,
        &["test", "--no-run"],
        &ctx.root,
        &build_log,
        Duration::from_secs(45 * 60),
    )
    .await?;
    let build_secs = t.elapsed().as_secs_f64();
    ctx.progress.tick("suite-build", 1, "warm-up build done");
    if !ok {
        anyhow::bail!(
            "the warm-up build `cargo test --no-run` failed (see {})",
            build_log.display()
        );
    }
    let runs = ctx.plan.suite_runs;
    let mut walls = Vec::new();
    let (mut passed, mut failed, mut ignored, mut failed_runs) = (0, 0, 0, 0);
    let mut last_log = build_log.clone();
    for i in 0..runs {
        ctx.progress
            .note(&format!("cargo test, run {}/{runs}", i + 1));
        let log = logs.join(format!("suite-{}.log", i + 1));
        let t = Instant::now();
        let ok = run_logged(
            &cargo,
            &["test"],
            &ctx.root,
            &log,
            Duration::from_secs(20 * 60),
        )
        .await?;
        let wall = t.elapsed().as_secs_f64();
        walls.push(wall);
        let (p, f, ig) = count_tests(&std::fs::read_to_string(&log).unwrap_or_default());
        (passed, failed, ignored) = (p, f, ig);
        if !ok {
            failed_runs += 1;
        }
        last_log = log;
        ctx.progress.tick(
            "suite-run",
            1,
            &format!(
                "cargo test {}/{runs}: {wall:.1} s, {p} passed, {f} failed",
                i + 1
            ),
        );
    }
    Ok(SuiteFigures {
        command: "cargo test".into(),
        build_secs: (build_secs * 10.0).round() / 10.0,
        wall_secs: Stats::of(&walls).context("no suite runs")?,
        passed,
        failed,
        ignored,
        failed_runs,
        log: last_log
            .strip_prefix(&ctx.root)
            .unwrap_or(&last_log)
            .display()
            .to_string(),
    })
}

/// Runs a command with stdout and stderr into `log`, killed after `bound`. Ok(success).
async fn run_logged(
    program: &std::ffi::OsStr,
    args: &[&str],
    cwd: &Path,
    log: &Path,
    bound: Duration,
) -> Result<bool> {
    let file =
        std::fs::File::create(log).with_context(|| format!("cannot write {}", log.display()))?;
    let err = file.try_clone()?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
    match tokio::time::timeout(bound, child.wait()).await {
        Ok(status) => Ok(status?.success()),
        Err(_) => {
            child.kill().await.ok();
            anyhow::bail!(
                "`{} {}` did not finish within {} min (log: {})",
                program.to_string_lossy(),
                args.join(" "),
                bound.as_secs() / 60,
                log.display()
            )
        }
    }
}

/// Sums libtest's `test result:` lines: (passed, failed, ignored).
pub fn count_tests(log: &str) -> (u64, u64, u64) {
    let mut totals = (0, 0, 0);
    for line in log.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        for part in rest.split([';', '.']) {
            let mut words = part.split_whitespace();
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => totals.0 += n,
                "failed" => totals.1 += n,
                "ignored" => totals.2 += n,
                _ => {}
            }
        }
    }
    totals
}

fn targets(
    setup: &[SetupFigures],
    clone: Option<&CloneFigures>,
    suite: Option<&SuiteFigures>,
    skipped: &[Skipped],
) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(clone) = clone {
        let find = |k: &str| clone.paths.iter().find(|p| p.key == k);
        if let (Some(h), Some(limit)) = (find(&clone.harness_key), find(&clone.limit_key)) {
            out.push(Target {
                name: "per-test database (what a test waits for)".into(),
                goal: format!("≤ {TARGET_PER_TEST_MS} ms median"),
                measured: format!(
                    "{} ({:.2}× the bare limit {})",
                    Unit::Ms.fmt(h.total_ms.median),
                    h.total_ms.median / limit.total_ms.median,
                    Unit::Ms.fmt(limit.total_ms.median)
                ),
                met: Some(h.total_ms.median <= TARGET_PER_TEST_MS),
                note: format!(
                    "what a test waits for: create {} + queueing the drop; the drop itself runs \
                     in the background ({}); pgsql-test ~170–230 ms (quoted)",
                    Unit::Ms.fmt(h.create_ms.median),
                    h.background_drop_ms
                        .map_or_else(|| "—".into(), |b| Unit::Ms.fmt(b.median))
                ),
            });
        }
    }
    let docker = setup.iter().find(|s| s.backend == "docker");
    out.push(match docker {
        Some(d) => Target {
            name: "setup with a warm image (docker)".into(),
            goal: format!("≤ {TARGET_SETUP_SECS} s median"),
            measured: Unit::Secs.fmt(d.setup_secs.median),
            met: Some(d.setup_secs.median <= TARGET_SETUP_SECS),
            note: format!("teardown {}", Unit::Secs.fmt(d.teardown_secs.median)),
        },
        None => Target {
            name: "setup with a warm image (docker)".into(),
            goal: format!("≤ {TARGET_SETUP_SECS} s median"),
            measured: "not measured".into(),
            met: None,
            note: skipped
                .iter()
                .find(|s| s.what.contains("docker"))
                .map_or_else(String::new, |s| s.reason.clone()),
        },
    });
    if let Some(l) = setup.iter().find(|s| s.backend == "local") {
        out.push(Target {
            name: "setup, local backend (same bound)".into(),
            goal: format!("≤ {TARGET_SETUP_SECS} s median"),
            measured: Unit::Secs.fmt(l.setup_secs.median),
            met: Some(l.setup_secs.median <= TARGET_SETUP_SECS),
            note: format!("teardown {}", Unit::Secs.fmt(l.teardown_secs.median)),
        });
    }
    out.push(match suite {
        Some(s) => Target {
            name: "full `cargo test` after a warm-up build".into(),
            goal: format!("≤ {TARGET_SUITE_SECS} s median"),
            measured: Unit::Secs.fmt(s.wall_secs.median),
            met: Some(s.wall_secs.median <= TARGET_SUITE_SECS && s.failed_runs == 0),
            note: if s.failed_runs > 0 {
                format!("{} of {} runs failed", s.failed_runs, s.wall_secs.n)
            } else {
                format!("{} tests passed, {} ignored", s.passed, s.ignored)
            },
        },
        None => Target {
            name: "full `cargo test` after a warm-up build".into(),
            goal: format!("≤ {TARGET_SUITE_SECS} s median"),
            measured: "not measured".into(),
            met: None,
            note: skipped
                .iter()
                .find(|s| s.what.contains("cargo test"))
                .map_or_else(String::new, |s| s.reason.clone()),
        },
    });
    out
}

#[cfg(test)]
mod tests {
    use super::count_tests;

    #[test]
    fn sums_libtest_summaries() {
        let log = "running 3 tests\n\
                   test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
                   test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.20s\n";
        assert_eq!(count_tests(log), (8, 2, 1));
        assert_eq!(count_tests("nothing here"), (0, 0, 0));
    }
}
