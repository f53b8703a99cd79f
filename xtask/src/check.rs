//! `cargo xtask check --spec FILE`: a team's schema and access spec, checked on a fresh
//! database — the spec's matrices and the lint. Exit status: 0 clean, 1 a leak (or a lint
//! finding at `--deny-lint`), 3 lost access without a leak, 2 could not run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, Result};
use harness::{Migrations, TestDatabase};
use rls_suite::access::{self, BoundSpec, CheckReport, RunOptions};
use rls_suite::actors::ClaimsForwarding;
use rls_suite::spec::{Command, Rule, Spec};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The access spec (TOML): who should see and change what.
    #[arg(long)]
    spec: PathBuf,
    /// Your migrations folder (V1__name.sql, …), applied after the base; default: the spec's
    /// `migrations` key, else the sample app's todos.
    #[arg(long, env = harness::migrate::MIGRATIONS_ENV)]
    migrations: Option<PathBuf>,
    /// text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
    /// Which claims reach Postgres: `insforge` (InsForge ≥ 2.2.5: sub, email, role) or `all`
    /// (InsForge ≤ 2.2.1 forwarded every claim of the token).
    #[arg(long, default_value = "insforge", value_parser = ["insforge", "all"])]
    claims_forwarding: String,
    /// Skip the mutants generated from the catalog (each policy weakened one way at a time,
    /// each judged on a clone by the matrices and the lint).
    #[arg(long)]
    no_mutants: bool,
    /// How many mutants run at once.
    #[arg(long, default_value_t = 2)]
    mutant_jobs: usize,
    /// Also fail (exit 1) on lint findings at or above this level (error, warn, info). By
    /// default the lint is advice (it reads the spec's intent: a declared public read is not a
    /// finding) and the matrices decide.
    #[arg(long)]
    deny_lint: Option<rls_lint::Level>,
    /// Also run the matrices over HTTP: the sample app serves the check's database and every
    /// cell goes through the records API, plus the hostile-token table; where SQL and HTTP
    /// disagree, the check says so (and fails).
    #[arg(long)]
    http: bool,
}

/// What a run found, and the exit status it maps to.
struct Outcome {
    report: CheckReport,
    /// `--http`: the matrices over the records API, and where they differ from SQL's.
    http: Option<(CheckReport, Vec<String>)>,
    mutants: Option<rls_suite::mutation::MutationReport>,
    lint: rls_lint::Report,
    migrations: Vec<String>,
    took_ms: u128,
}

pub async fn run(args: CheckArgs) -> Result<ExitCode> {
    match check(&args).await {
        Ok(outcome) => {
            let lint_fails = args
                .deny_lint
                .is_some_and(|level| outcome.lint.exit_code(level) != 0);
            let (mut leaks, mut lost) = (outcome.report.leaks(), outcome.report.lost_access());
            let mut disagree = Vec::new();
            if let Some((http, diff)) = &outcome.http {
                leaks.extend(http.leaks().into_iter().map(|l| format!("HTTP {l}")));
                lost.extend(http.lost_access().into_iter().map(|l| format!("HTTP {l}")));
                disagree.clone_from(diff);
            }
            let code: u8 = if !leaks.is_empty() || lint_fails || !disagree.is_empty() {
                1
            } else if !lost.is_empty() {
                3
            } else {
                0
            };
            if args.format == "json" {
                let value = json!({
                    "spec": args.spec.display().to_string(),
                    "migrations": outcome.migrations,
                    "matrices": outcome.report.to_json(),
                    "coverage": outcome.report.coverage.as_ref().map(rls_suite::coverage::Coverage::to_json),
                    "lint": serde_json::from_str::<serde_json::Value>(&outcome.lint.render_json())
                        .unwrap_or_default(),
                    "mutants": outcome.mutants.as_ref().map(rls_suite::mutation::MutationReport::to_json),
                    "http": outcome.http.as_ref().map(|(http, diff)| json!({
                        "matrices": http.to_json(),
                        "disagreements_with_sql": diff,
                    })),
                    "exit": code,
                });
                println!("{value:#}");
            } else {
                print_text(&args, &outcome, (&leaks, &lost, &disagree), code);
            }
            Ok(ExitCode::from(code))
        }
        Err(e) => {
            eprintln!("error: check could not run: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn print_text(
    args: &CheckArgs,
    o: &Outcome,
    (leaks, lost, disagree): (&[String], &[String], &[String]),
    code: u8,
) {
    println!(
        "insforge-rls check: {} ({} tables, {} cells, {} ms)",
        args.spec.display(),
        o.report.tables.len(),
        o.report.cell_count(),
        o.took_ms
    );
    println!("migrations: {}", o.migrations.join(", "));
    println!();
    print!("{}", o.report.render());
    if let Some(c) = &o.report.coverage {
        print!("{}", c.render());
        println!();
    }
    if let Some((http, _)) = &o.http {
        println!("over HTTP (the sample app's records API on the same database):");
        print!("{}", http.render());
    }
    if let Some(m) = &o.mutants {
        print!("{}", m.render());
        println!();
    }
    println!("lint:");
    for line in o.lint.render_text().lines() {
        println!("  {line}");
    }
    println!();
    for l in leaks {
        println!("LEAK {l}");
    }
    for l in lost {
        println!("LOST {l}");
    }
    for l in disagree {
        println!("DIFF {l}");
    }
    println!(
        "{} leaks, {} lost access — {}",
        leaks.len(),
        lost.len(),
        match code {
            0 => "clean",
            1 if leaks.is_empty() && !disagree.is_empty() => {
                "FAILED: SQL and HTTP disagree (the records API does not pass the caller on as Postgres expects)"
            }
            1 => "FAILED: someone can do more than the spec allows",
            _ => "FAILED: someone can do less than the spec allows",
        }
    );
}

/// A folder relative to where the command runs; the spec's own `migrations` key is relative
/// to the spec file (the parser resolves it).
fn migrations(args: &CheckArgs, spec: &Spec) -> Result<Migrations> {
    let dir: Option<&Path> = args.migrations.as_deref().or(spec.migrations.as_deref());
    Ok(match dir {
        Some(dir) => Migrations::from_dir(dir)?,
        None => Migrations::embedded(),
    })
}

async fn check(args: &CheckArgs) -> Result<Outcome> {
    let started = Instant::now();
    // Everything the file alone can tell, before anything is made.
    let spec = Spec::load(&args.spec)?;
    let migrations = migrations(args, &spec)?;
    let state = harness::shared_state()
        .await
        .context("no server to check on")?;
    let db = TestDatabase::migrated(&migrations)
        .await
        .context("applying the migrations to a fresh database")?;
    // The mutants are cloned from this copy, made before anything is seeded.
    let pristine = if args.no_mutants {
        None
    } else {
        Some(TestDatabase::clone_of(&db).await?)
    };
    let result = async {
        let mut admin = db.admin_connection().await?;
        let bound = BoundSpec::bind(&spec, &mut admin).await?;
        let opts = RunOptions {
            forwarding: if args.claims_forwarding == "all" {
                ClaimsForwarding::All
            } else {
                ClaimsForwarding::InsForge23
            },
            ..RunOptions::default()
        };
        let report = access::run(&bound, db.admin_target(), db.app_target(), opts.clone()).await?;
        let http = if args.http {
            let http = over_http(&bound, &db, &opts).await?;
            let diff = report.disagreements(&http, ("SQL", "HTTP"));
            Some((http, diff))
        } else {
            None
        };
        let lint_opts = rls_lint::LintOptions {
            schemas: vec![spec.schema.clone()],
            app_role: Some(state.app.user.clone()),
            intent: lint_intent(&spec),
            ..Default::default()
        };
        let lint = rls_lint::lint(&mut admin, &lint_opts).await?;
        let mutants = match &pristine {
            Some(pristine) => {
                let list = rls_suite::mutation::generate(&bound, &mut admin).await?;
                Some(
                    rls_suite::mutation::run(
                        &bound,
                        pristine,
                        list,
                        opts,
                        &lint_opts,
                        args.mutant_jobs,
                    )
                    .await?,
                )
            }
            None => None,
        };
        anyhow::Ok((report, http, lint, mutants))
    }
    .await;
    drop(db);
    drop(pristine);
    harness::testing::flush_drops().await.ok();
    let (report, http, lint, mutants) = result?;
    Ok(Outcome {
        report,
        http,
        mutants,
        lint,
        migrations: migrations.names(),
        took_ms: started.elapsed().as_millis(),
    })
}

/// The matrices over HTTP: the sample app, in process on a free loopback port, serving the
/// check's database with a secret of its own, stopped afterwards.
async fn over_http(bound: &BoundSpec, db: &TestDatabase, opts: &RunOptions) -> Result<CheckReport> {
    let secret = clerk_token::Secret::generate();
    let mut config = todo_app::AppConfig::new(db.app_target().url(), secret.clone());
    config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // The app forwards claims as the SQL run does, and exposes the spec's schema.
    config.claims_forwarding = opts.forwarding;
    config.db_schema.clone_from(&bound.spec().schema);
    // A small pool: every connection serves many identities in turn (the pool-bleed run).
    config.max_connections = 2;
    let app = todo_app::spawn(config)
        .await
        .context("starting the sample app for --http")?;
    let endpoint = access::HttpEndpoint {
        base_url: app.url(),
        secret,
    };
    let report = access::run_via(
        bound,
        db.admin_target(),
        access::Via::Http(&endpoint),
        opts.clone(),
    )
    .await;
    app.shutdown().await.context("stopping the sample app")?;
    Ok(report?)
}

/// `verify --spec`: the spec's matrices over HTTP against `endpoint`, seeding and observing
/// through `admin` (the endpoint's database), on tables that must start empty and are left so.
pub async fn verify_spec(
    spec: &Path,
    admin: &harness::PgTarget,
    endpoint: &access::HttpEndpoint,
) -> Result<CheckReport> {
    let spec = Spec::load(spec)?;
    let mut conn = admin
        .connect()
        .await
        .context("connecting to the endpoint's database")?;
    let bound = BoundSpec::bind(&spec, &mut conn).await?;
    drop(conn);
    let opts = RunOptions {
        refuse_existing_rows: true,
        ..RunOptions::default()
    };
    Ok(access::run_via(&bound, admin, access::Via::Http(endpoint), opts).await?)
}

/// What the spec tells the lint: each table's owner column, and reads it declares public.
pub fn lint_intent(spec: &Spec) -> std::collections::BTreeMap<String, rls_lint::TableIntent> {
    spec.tables
        .iter()
        .map(|t| {
            let select = t.rules.get(&Command::Select).map_or(&[][..], Vec::as_slice);
            let public_read = if select.contains(&Rule::Anyone) {
                Some(rls_lint::PublicRead::Anyone)
            } else if select.contains(&Rule::SignedIn) {
                Some(rls_lint::PublicRead::SignedIn)
            } else {
                None
            };
            (
                format!("{}.{}", spec.schema, t.name),
                rls_lint::TableIntent {
                    owner_column: t.owner.clone(),
                    public_read,
                },
            )
        })
        .collect()
}
