//! The project's benchmarks (`cargo xtask bench`) — time to green, the cost of RLS at scale,
//! the sample app's throughput against pgbench, and its schema reload — each figure a median of several runs,
//! each target a ratio measured side by side in the same run.
//!
//! Results go to `<out>/<name>.json`, rendered to `<out>/README.md` with SVG plots. `--quick`
//! (CI) uses smaller data and fewer, shorter runs and writes to `target/bench-quick`.

mod app;
mod cleanup;
mod cpu;
mod dataset;
mod green;
mod meta;
mod plot;
mod progress;
mod reload;
mod report;
mod rls;
mod spec;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use harness::{PgTarget, State, StateDir};
use serde::{Deserialize, Serialize};
use sqlx::Connection as _;

use cleanup::Cleanup;
use progress::{Progress, StagePlan};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Smaller data, fewer and shorter runs (about 2 minutes); for CI and a quick look.
    /// Writes to target/bench-quick unless --out says otherwise.
    #[arg(long)]
    quick: bool,
    /// Folder for the JSON results, README.md and SVG plots
    /// [default: docs/benchmarks; with --quick: target/bench-quick].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Run only these benchmarks (repeatable or comma-separated); the README is rendered
    /// from every result file in the folder.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME")]
    only: Vec<Which>,
    /// Measure nothing: render README.md and the SVGs again from the JSON in the folder.
    #[arg(long)]
    render_only: bool,
}

/// The benchmarks, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Which {
    /// setup/teardown, per-test database, full `cargo test`.
    Green,
    /// RLS cost at scale (1M todos).
    Rls,
    /// App throughput vs pgbench.
    App,
    /// The spec check: the team-workspaces example, growth with generated tables, cost per cell.
    Spec,
    /// The sample app's schema reload (introspect + swap) with 200 tables.
    Reload,
}

/// Sizes and repetitions of one mode.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub setup_runs: usize,
    pub clone_runs: usize,
    pub suite_runs: usize,
    pub todos: u64,
    pub users: u64,
    pub rls_runs: usize,
    pub rls_users_per_run: usize,
    pub naive_samples: usize,
    pub naive_budget: Duration,
    pub naive_timeout: Duration,
    pub app_levels: Vec<usize>,
    pub mix_levels: Vec<usize>,
    pub app_runs: usize,
    pub app_warmup: Duration,
    pub app_duration: Duration,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                setup_runs: 2,
                clone_runs: 10,
                suite_runs: 0,
                todos: 100_000,
                users: 1_000,
                rls_runs: 3,
                rls_users_per_run: 100,
                naive_samples: 5,
                naive_budget: Duration::from_secs(8),
                naive_timeout: Duration::from_secs(5),
                app_levels: vec![1, 4, 16],
                mix_levels: vec![4],
                app_runs: 2,
                app_warmup: Duration::from_millis(500),
                app_duration: Duration::from_secs(2),
            }
        } else {
            Self {
                quick,
                setup_runs: 5,
                clone_runs: 30,
                suite_runs: 3,
                todos: 1_000_000,
                users: 10_000,
                rls_runs: 5,
                rls_users_per_run: 200,
                naive_samples: 7,
                naive_budget: Duration::from_secs(120),
                naive_timeout: Duration::from_secs(60),
                app_levels: vec![1, 4, 16],
                mix_levels: vec![1, 4, 16],
                app_runs: 3,
                app_warmup: Duration::from_secs(1),
                app_duration: Duration::from_secs(5),
            }
        }
    }
}

/// What every stage gets.
#[derive(Debug)]
pub struct Ctx {
    pub root: PathBuf,
    pub state: State,
    pub plan: Plan,
    pub cleanup: Cleanup,
    pub progress: Progress,
    /// A folder of our own under target/ (readable by the `postgres` user) for throwaway state.
    pub scratch: PathBuf,
    pub command: String,
    pub started_at: String,
    pub versions: meta::Versions,
    pub machine: meta::Machine,
    pub commit: Option<String>,
    pub pg_bin: Option<PathBuf>,
}

impl Ctx {
    pub fn meta(&self, took: Duration) -> meta::Meta {
        meta::Meta {
            command: self.command.clone(),
            mode: if self.plan.quick { "quick" } else { "full" }.into(),
            profile: profile().into(),
            started_at: self.started_at.clone(),
            took_secs: (took.as_secs_f64() * 10.0).round() / 10.0,
            machine: self.machine.clone(),
            versions: self.versions.clone(),
            commit: self.commit.clone(),
        }
    }
}

/// A target and whether this run met it. `met: None` means it could not be measured here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub goal: String,
    pub measured: String,
    pub met: Option<bool>,
    pub note: String,
}

/// A measurement that did not run, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub what: String,
    pub reason: String,
}

fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

pub async fn run(args: BenchArgs, root: &Path) -> Result<ExitCode> {
    let out = match &args.out {
        Some(dir) if dir.is_absolute() => dir.clone(),
        Some(dir) => std::env::current_dir()
            .context("cannot read the current folder")?
            .join(dir),
        None if args.quick => root.join("target").join("bench-quick"),
        None => root.join("docs").join("benchmarks"),
    };
    if args.render_only {
        let written = report::render(&out)?;
        for path in written {
            println!("wrote {}", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if cfg!(debug_assertions) && !args.quick {
        return rerun_in_release();
    }
    if args.quick && report::has_full_results(&out) {
        bail!(
            "{} holds full benchmark results; --quick would overwrite them with smaller runs — \
             pick another --out (the default for --quick is target/bench-quick)",
            out.display()
        );
    }

    let selected: Vec<Which> = [
        Which::Green,
        Which::Rls,
        Which::App,
        Which::Spec,
        Which::Reload,
    ]
    .into_iter()
    .filter(|w| args.only.is_empty() || args.only.contains(w))
    .collect();
    let plan = Plan::new(args.quick);
    let state = StateDir::discover().require().context(
        "the benchmarks measure the server that setup made: run `cargo xtask setup` first",
    )?;
    let server_version = server_version(&state.admin).await.with_context(|| {
        format!(
            "the server from setup does not answer at {} — run `cargo xtask setup` again",
            state.admin.redacted()
        )
    })?;
    let pg_bin = harness::backend::local::find_bin_dir().ok();
    let pgbench_version = pg_bin
        .as_ref()
        .and_then(|b| meta::first_line(b.join("pgbench"), &["--version"]))
        .map(|v| v.trim_start_matches("pgbench ").to_owned());
    let command = command_line();
    let machine = meta::Machine::detect();
    let versions = meta::Versions {
        rustc: meta::rustc_version(),
        postgres: server_version,
        pgbench: pgbench_version,
        crate_version: env!("CARGO_PKG_VERSION").into(),
        backend: state.server.kind().into(),
    };
    println!(
        "insforge-rls benchmarks ({} mode, {} build)",
        if plan.quick { "quick" } else { "full" },
        profile()
    );
    println!("  command   {command}");
    println!("  machine   {}", machine.describe());
    println!(
        "  versions  {} · PostgreSQL {} ({} backend) · pgbench {} · crates {}",
        versions.rustc,
        versions.postgres,
        versions.backend,
        versions.pgbench.as_deref().unwrap_or("not found"),
        versions.crate_version
    );
    println!("  server    {}", state.admin.redacted());
    println!("  out       {}", out.display());
    if cfg!(debug_assertions) {
        println!(
            "  note      debug build: figures are not comparable with the published ones \
             (those come from `cargo run --release -p bench`)"
        );
    }

    let scratch = make_scratch(root)?;
    let plans: Vec<StagePlan> = selected
        .iter()
        .flat_map(|w| match w {
            Which::Green => vec![green::plan(&plan)],
            Which::Rls => vec![rls::plan(&plan)],
            Which::App => vec![app::plan(&plan)],
            Which::Spec => vec![spec::plan(&plan)],
            Which::Reload => vec![reload::plan(&plan)],
        })
        .collect();
    let needs_dataset = selected.contains(&Which::Rls) || selected.contains(&Which::App);
    let mut plans = plans;
    if needs_dataset {
        let at = plans
            .iter()
            .position(|p| p.name != green::NAME)
            .unwrap_or(plans.len());
        plans.insert(at, dataset::plan(&plan));
    }
    let ctx = Ctx {
        root: root.to_owned(),
        state,
        plan,
        cleanup: Cleanup::default(),
        progress: Progress::new(plans),
        scratch: scratch.clone(),
        command,
        started_at: meta::now_utc(),
        versions,
        machine,
        commit: meta::commit(root),
        pg_bin,
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let started = Instant::now();
    let outcome = tokio::select! {
        r = run_stages(&ctx, &selected, &out) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    ctx.progress.finish_line();
    eprintln!("bench: cleaning up (databases, throwaway servers)…");
    ctx.cleanup.run().await;
    let _ = std::fs::remove_dir_all(&scratch);
    outcome?;

    let written = report::render(&out)?;
    println!();
    for path in written {
        println!("wrote {}", path.display());
    }
    println!(
        "bench: done in {}",
        stats::eta(started.elapsed().as_secs_f64())
    );
    Ok(ExitCode::SUCCESS)
}

async fn run_stages(ctx: &Ctx, selected: &[Which], out: &Path) -> Result<()> {
    if selected.contains(&Which::Green) {
        let result = green::run(ctx).await?;
        report::print_green(&result);
        report::write_json(out, green::NAME, &result)?;
    }
    if selected.contains(&Which::Spec) {
        let result = spec::run(ctx).await?;
        report::print_spec(&result);
        report::write_json(out, spec::NAME, &result)?;
    }
    if selected.contains(&Which::Reload) {
        let result = reload::run(ctx).await?;
        reload::print(&result);
        report::write_json(out, reload::NAME, &result)?;
    }
    if !(selected.contains(&Which::Rls) || selected.contains(&Which::App)) {
        return Ok(());
    }
    let data = dataset::create(ctx).await?;
    if selected.contains(&Which::Rls) {
        let result = rls::run(ctx, &data).await?;
        report::print_rls(&result);
        report::write_json(out, rls::NAME, &result)?;
    }
    if selected.contains(&Which::App) {
        let result = app::run(ctx, &data).await?;
        report::print_app(&result);
        report::write_json(out, app::NAME, &result)?;
    }
    ctx.progress.note("dropping the benchmark database");
    ctx.cleanup
        .drop_database(&data.admin_server, &data.name)
        .await?;
    Ok(())
}

/// `cargo xtask bench` builds in debug; published figures come from a release build.
fn rerun_in_release() -> Result<ExitCode> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let rest = bench_args();
    println!(
        "bench: full figures are measured on a release build — running \
         `cargo run --release -p bench -- {}`",
        rest.join(" ")
    );
    let status = std::process::Command::new(cargo)
        .args(["run", "--release", "--quiet", "--package", "bench", "--"])
        .args(&rest)
        .status()
        .context("cannot run cargo")?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// The arguments the bench binary was given (what follows `cargo xtask bench`).
fn bench_args() -> Vec<String> {
    std::env::args().skip(1).collect()
}

/// The command as a person would type it to get these figures.
fn command_line() -> String {
    let rest = bench_args();
    let base = if cfg!(debug_assertions) {
        "cargo xtask bench".to_owned()
    } else {
        "cargo run --release -p bench --".to_owned()
    };
    if rest.is_empty() {
        base
    } else {
        format!("{base} {}", rest.join(" "))
    }
}

async fn server_version(admin: &PgTarget) -> Result<String> {
    let mut conn = admin.connect().await?;
    let version: String = sqlx::query_scalar("show server_version")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await.ok();
    Ok(version)
}

/// `target/bench-tmp/run-<random>`, traversable by the `postgres` user the local backend
/// runs as when we are root.
fn make_scratch(root: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let base = root.join("target").join("bench-tmp");
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&base)
        .with_context(|| format!("cannot create a folder in {}", base.display()))?
        .keep();
    for d in [&base, &dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot set permissions on {}", d.display()))?;
    }
    Ok(dir)
}

/// A lowercase random suffix for database and container names.
pub fn suffix() -> String {
    harness::random_token(10).to_ascii_lowercase()
}
