//! `cargo xtask …`: the project's command line — provision, migrate, inspect and tear down
//! the Postgres that the RLS checks run against.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use harness::{BackendChoice, Migrations, PgTarget, SetupOptions, StateDir};

mod check;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    version,
    about = "Prove a Clerk + InsForge app keeps every user's rows their own"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start (or reuse) Postgres, apply the migrations, create the app role and test template.
    Setup(SetupArgs),
    /// Stop and delete what setup made, and nothing else.
    Teardown,
    /// Show what setup made and whether it answers.
    Status,
    /// Apply the migrations to a database (default: the one from setup, and its template).
    Migrate(MigrateArgs),
    /// Print a Clerk-shaped `insforge` template token signed with the JWT secret from setup.
    Token(TokenArgs),
    /// Statically check the live catalog's RLS setup (policies, functions, roles, grants).
    Lint(LintArgs),
    /// Check your own schema against your access spec on a fresh database: the spec's access
    /// matrices for every table, and the lint. Exit 0 clean, 1 leak, 3 lost access, 2 not run.
    Check(check::CheckArgs),
    /// Run the HTTP access matrix and token checks against a live InsForge-compatible endpoint.
    Verify(VerifyArgs),
    /// Run the sample app (`cargo run -p todo-app -- ARGS`), e.g. `cargo xtask app --dev-sign-in`.
    App {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the benchmarks (time to green, RLS at scale, app vs pgbench) and write
    /// docs/benchmarks/ (JSON, README.md, SVG plots); `--quick` for CI.
    /// Runs `cargo run -p bench -- ARGS`; `cargo xtask bench --help` lists them.
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct LintArgs {
    /// Database to check (default: the one from setup).
    #[arg(long, env = "INSFORGE_RLS_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Schemas the API exposes (repeatable).
    #[arg(long = "schema", default_value = "public")]
    schemas: Vec<String>,
    /// How to print the findings.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit 1 when a finding is at or above this level: error, warn or info.
    #[arg(long, default_value = "warn")]
    deny: rls_lint::Level,
    /// The app's login role (checked for superuser, BYPASSRLS, ownership); `none` skips it.
    /// Default: the role from setup, else rls_app.
    #[arg(long)]
    app_role: Option<String>,
    /// Your access spec: reads it declares public are not findings, and fixes name each
    /// table's owner column.
    #[arg(long)]
    spec: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The endpoint, e.g. http://127.0.0.1:7130 or https://<project>.insforge.app
    #[arg(long)]
    base_url: String,
    /// The project's JWT secret (default: the one from setup).
    #[arg(long, env = "INSFORGE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// The table to probe: it must accept {"title": …} with user_id defaulting to the caller.
    #[arg(long, default_value = "todos")]
    table: String,
    /// An access spec: run its matrices for every table over HTTP, and the hostile-token table,
    /// instead of the todos probe. Needs the endpoint's database (--database-url) to seed,
    /// observe and remove its rows; refuses tables that already hold rows.
    #[arg(long, value_name = "FILE")]
    spec: Option<std::path::PathBuf>,
    /// With --spec: a superuser (or table owner) URL of the database the endpoint serves
    /// [default: the database `cargo xtask setup` made, which `cargo xtask app` serves].
    #[arg(
        long,
        env = "INSFORGE_RLS_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,
    /// With --spec: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The Clerk user id (`sub`); a new `user_3…` id when left out.
    #[arg(long)]
    user: Option<String>,
    /// Adds an `email` claim.
    #[arg(long)]
    email: Option<String>,
    /// Lifetime in seconds (Clerk's default is 60).
    #[arg(long, default_value_t = 60)]
    ttl: u32,
    /// Extra claims as a JSON object, merged in (reserved Clerk claims are refused).
    #[arg(long)]
    claims: Option<String>,
    /// Sign with this secret instead of the one from setup.
    #[arg(long, env = "INSFORGE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
}

#[derive(Debug, clap::Args)]
struct SetupArgs {
    /// auto (docker if an engine answers, else local), docker, local, or url.
    #[arg(long, env = "INSFORGE_RLS_BACKEND", default_value = "auto")]
    backend: BackendChoice,
    /// Postgres image for the docker backend.
    #[arg(long, env = "INSFORGE_RLS_IMAGE", default_value = harness::backend::docker::DEFAULT_IMAGE)]
    image: String,
    /// An existing database for the url backend (a role that can create roles and databases).
    #[arg(long, env = "INSFORGE_RLS_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The InsForge project's JWT secret (≥ 32 characters); generated when left out.
    #[arg(long, env = "INSFORGE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Local backend: listen on this port instead of a free one.
    #[arg(long, env = "INSFORGE_RLS_PORT")]
    port: Option<u16>,
    /// The app's login role.
    #[arg(long, env = "INSFORGE_RLS_APP_ROLE", default_value = "rls_app")]
    app_role: String,
    /// Also write the settings to this env file (skipped if a file there was not written by setup).
    #[arg(long, default_value = ".env")]
    env_file: PathBuf,
    /// Your own migrations (a folder of V1__name.sql, … files), applied after this project's
    /// base (InsForge roles, requesting_user_id()) with a history of their own; default: the
    /// sample app's todos.
    #[arg(long, env = harness::migrate::MIGRATIONS_ENV)]
    migrations: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct MigrateArgs {
    /// Database to migrate, as a role that owns the schema.
    #[arg(long, env = "INSFORGE_RLS_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Your own migrations folder, applied after the base (default: the sample app's todos).
    #[arg(long, alias = "dir", env = harness::migrate::MIGRATIONS_ENV)]
    migrations: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Layering: flags > environment > the workspace's .env > defaults. dotenvy never
    // overrides a variable that is already set.
    let root = harness::state::workspace_root();
    let _ = dotenvy::from_path(root.join(".env"));
    // XTASK_LOG, else the usual RUST_LOG, else warnings only. Colours only on a terminal, so
    // logs piped to a file or CI stay plain text.
    let filter = ["XTASK_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|key| std::env::var(key).ok().filter(|v| !v.trim().is_empty()))
        .and_then(|directives| tracing_subscriber::EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, root)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, root: PathBuf) -> Result<ExitCode> {
    let dir = StateDir::discover();
    match cli.command {
        Cmd::Setup(args) => setup(&dir, &root, args).await,
        Cmd::Teardown => teardown(&dir).await,
        Cmd::Status => status(&dir).await,
        Cmd::Migrate(args) => migrate(&dir, args).await,
        Cmd::Token(args) => token(&dir, args),
        Cmd::Lint(args) => lint(&dir, args).await,
        Cmd::Check(args) => check::run(args).await,
        Cmd::Verify(args) => verify(&dir, args).await,
        Cmd::App { args } => cargo_run("todo-app", &args),
        Cmd::Bench { args } => cargo_run("bench", &args),
    }
}

async fn setup(dir: &StateDir, root: &Path, args: SetupArgs) -> Result<ExitCode> {
    // Refused before anything starts; InsForge's minimum is clerk-token's rule.
    if let Some(secret) = &args.jwt_secret {
        clerk_token::Secret::new(secret.as_str())?;
    }
    let opts = SetupOptions {
        backend: args.backend,
        image: args.image,
        database_url: args.database_url,
        jwt_secret: args.jwt_secret,
        port: args.port,
        app_role: args.app_role,
        env_export: Some(if args.env_file.is_absolute() {
            args.env_file
        } else {
            root.join(args.env_file)
        }),
        migrations: migrations_from(args.migrations.as_deref())?,
        ..SetupOptions::default()
    };
    let started = std::time::Instant::now();
    let report = harness::setup(dir, &opts).await.context("setup failed")?;
    let state = &report.state;
    println!(
        "insforge-rls: {} backend, {}",
        state.server.kind(),
        if report.reused_server {
            "server reused"
        } else {
            "server started"
        }
    );
    match &state.server {
        harness::Server::Docker {
            container_name,
            image,
            ..
        } => println!("  container   {container_name} ({image})"),
        harness::Server::Local { data_dir, .. } => println!("  cluster     {}", data_dir.display()),
        harness::Server::Url => {}
    }
    println!("  database    {}", state.admin.redacted());
    println!(
        "  app role    {} (LOGIN NOINHERIT, member of anon and authenticated, no privileges of its own)",
        state.app.user
    );
    println!("  migrations  {}", describe(&report.migrations));
    match (&state.template, &report.template_migrations) {
        (Some(t), Some(m)) => println!("  template    {t} ({})", describe(m)),
        _ => println!("  template    none"),
    }
    if let Some(scratch) = &report.scratch {
        println!(
            "  scratch     tablespace {} on {} (per-test databases in memory)",
            harness::scratch::SCRATCH_TABLESPACE,
            scratch.display()
        );
    }
    println!("  state       {}", dir.env_file().display());
    if let Some(path) = &state.env_export {
        println!(
            "  env file    {} (DATABASE_URL, INSFORGE_JWT_SECRET, …)",
            path.display()
        );
    }
    for warning in &report.warnings {
        println!("  warning     {warning}");
    }
    println!("  lint        {}", setup_lint_summary(state).await);
    let steps: Vec<String> = report
        .steps
        .iter()
        .map(|(name, d)| format!("{name} {}", ms(*d)))
        .collect();
    println!(
        "  took        {} ({})",
        ms(started.elapsed()),
        steps.join(" · ")
    );
    println!("next: cargo test");
    Ok(ExitCode::SUCCESS)
}

/// A team's folder (relative to where the command runs), else the sample app's set.
fn migrations_from(dir: Option<&Path>) -> Result<Migrations> {
    Ok(match dir {
        Some(dir) => Migrations::from_dir(dir)?,
        None => Migrations::embedded(),
    })
}

fn describe(m: &harness::MigrationReport) -> String {
    if m.applied.is_empty() {
        format!("up to date ({} applied before)", m.already_applied)
    } else {
        format!(
            "applied {} ({} before)",
            m.applied.join(", "),
            m.already_applied
        )
    }
}

fn ms(d: Duration) -> String {
    if d.as_millis() >= 1000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

async fn teardown(dir: &StateDir) -> Result<ExitCode> {
    let report = harness::teardown(dir).await.context("teardown failed")?;
    for r in &report.removed {
        println!("removed {r}");
    }
    for k in &report.kept {
        println!("kept    {k}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(dir: &StateDir) -> Result<ExitCode> {
    let status = harness::status(dir).await?;
    let s = &status.state;
    println!("backend     {}", s.server.kind());
    println!("database    {}", s.admin.redacted());
    println!("app role    {}", s.app.user);
    println!("template    {}", s.template.as_deref().unwrap_or("none"));
    match &status.reachable {
        Ok(version) => {
            println!("server      answering ({version})");
            println!("migrations  {}", status.migrations.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("server      NOT answering: {e}");
            println!("            run `cargo xtask setup` to start it again");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn migrate(dir: &StateDir, args: MigrateArgs) -> Result<ExitCode> {
    let migrations = migrations_from(args.migrations.as_deref())?;
    let targets: Vec<PgTarget> = match args.database_url {
        Some(url) => vec![PgTarget::parse(&url)?],
        None => {
            let state = dir.require()?;
            let mut t = vec![state.admin.clone()];
            if let Some(template) = &state.template {
                t.push(state.admin.with_database(template));
            }
            t
        }
    };
    for target in targets {
        let report = migrations
            .apply(&target)
            .await
            .with_context(|| format!("migrating {}", target.redacted()))?;
        println!("{}: {}", target.redacted(), describe(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn token(dir: &StateDir, args: TokenArgs) -> Result<ExitCode> {
    // Layering as everywhere: --jwt-secret / INSFORGE_JWT_SECRET, else the secret from setup.
    let secret = match (dir.load()?, args.jwt_secret) {
        (Some(state), None) => state.jwt_secret,
        (_, Some(secret)) => secret,
        (None, None) => anyhow::bail!(
            "no JWT secret: run `cargo xtask setup` first, or pass --jwt-secret / INSFORGE_JWT_SECRET"
        ),
    };
    let secret = clerk_token::Secret::new(secret)?;
    let mut user = match args.user {
        Some(id) => clerk_token::ClerkUser::new(id),
        None => {
            let user = clerk_token::ClerkUser::generate();
            eprintln!("user: {}", user.id);
            user
        }
    };
    if let Some(email) = args.email {
        user = user.with_email(email);
    }
    if let Some(claims) = args.claims {
        let claims: serde_json::Value =
            serde_json::from_str(&claims).context("--claims is not JSON")?;
        let serde_json::Value::Object(map) = claims else {
            anyhow::bail!("--claims must be a JSON object, e.g. '{{\"org_id\":\"org_2…\"}}'");
        };
        for (name, value) in map {
            user = user.with_claim(name, value);
        }
    }
    let template = clerk_token::ClerkTemplate::insforge(secret).with_lifetime_secs(args.ttl);
    println!("{}", template.mint(&user)?);
    Ok(ExitCode::SUCCESS)
}

/// A one-line lint verdict for setup's summary; setup never fails on it.
async fn setup_lint_summary(state: &harness::State) -> String {
    let opts = rls_lint::LintOptions {
        app_role: Some(state.app.user.clone()),
        ..Default::default()
    };
    match rls_lint::lint_url(&state.admin.url(), &opts).await {
        Ok(report) => {
            let s = report.summary();
            if s.error + s.warn + s.info == 0 {
                "clean".to_owned()
            } else {
                format!(
                    "{} errors, {} warnings, {} notes — run `cargo xtask lint` for details",
                    s.error, s.warn, s.info
                )
            }
        }
        Err(e) => format!("not run: {e}"),
    }
}

async fn lint(dir: &StateDir, args: LintArgs) -> Result<ExitCode> {
    let state = dir.load()?;
    let url = match (&args.database_url, &state) {
        (Some(url), _) => url.clone(),
        (None, Some(state)) => state.admin.url(),
        (None, None) => anyhow::bail!(
            "nothing to lint: pass --database-url (or INSFORGE_RLS_DATABASE_URL), or run `cargo xtask setup` first"
        ),
    };
    let app_role = match args.app_role.as_deref() {
        Some("none") => None,
        Some(role) => Some(role.to_owned()),
        None => Some(state.map_or_else(|| "rls_app".to_owned(), |s| s.app.user)),
    };
    let intent = match &args.spec {
        Some(path) => check::lint_intent(&rls_suite::spec::Spec::load(path)?),
        None => Default::default(),
    };
    let opts = rls_lint::LintOptions {
        schemas: args.schemas,
        app_role,
        intent,
        ..Default::default()
    };
    let report = rls_lint::lint_url(&url, &opts).await?;
    match args.format {
        Format::Json => println!("{}", report.render_json()),
        Format::Text => print!("{}", report.render_text()),
    }
    Ok(ExitCode::from(
        u8::try_from(report.exit_code(args.deny)).unwrap_or(1),
    ))
}

async fn verify(dir: &StateDir, args: VerifyArgs) -> Result<ExitCode> {
    let state = dir.load()?;
    let secret = match (args.jwt_secret.clone(), &state) {
        (Some(secret), _) => secret,
        (None, Some(state)) => state.jwt_secret.clone(),
        (None, None) => anyhow::bail!(
            "no JWT secret: pass --jwt-secret (the InsForge project's JWT_SECRET) or run `cargo xtask setup` first"
        ),
    };
    if let Some(spec) = &args.spec {
        let admin = match (&args.database_url, &state) {
            (Some(url), _) => harness::PgTarget::parse(url)?,
            (None, Some(state)) => state.admin.clone(),
            (None, None) => anyhow::bail!(
                "verify --spec needs the endpoint's database to seed and observe its rows: pass \
                 --database-url (a superuser or the tables' owner) or run `cargo xtask setup` first"
            ),
        };
        let endpoint = rls_suite::access::HttpEndpoint {
            base_url: args.base_url.clone(),
            secret: clerk_token::Secret::new(secret)?,
        };
        return match check::verify_spec(spec, &admin, &endpoint).await {
            Ok(report) => {
                let (leaks, lost) = (report.leaks(), report.lost_access());
                let code: u8 = if !leaks.is_empty() {
                    1
                } else if !lost.is_empty() {
                    3
                } else {
                    0
                };
                if args.format == "json" {
                    println!("{:#}", report.to_json());
                } else {
                    println!("verify {} against {}", spec.display(), args.base_url);
                    println!();
                    print!("{}", report.render());
                    for l in &leaks {
                        println!("LEAK {l}");
                    }
                    for l in &lost {
                        println!("LOST {l}");
                    }
                    println!(
                        "{} leaks, {} lost access; the synthetic rows were removed",
                        leaks.len(),
                        lost.len()
                    );
                }
                Ok(ExitCode::from(code))
            }
            Err(e) => {
                eprintln!("error: verify could not run: {e:#}");
                Ok(ExitCode::from(2))
            }
        };
    }
    let opts = rls_suite::verify::VerifyOptions {
        base_url: args.base_url,
        secret: clerk_token::Secret::new(secret)?,
        table: args.table,
    };
    match rls_suite::verify::verify(&opts).await {
        Ok(report) => {
            print!("{}", report.render());
            Ok(ExitCode::from(report.exit_code()))
        }
        // 1 means "leak": a run that could not happen says so with its own code.
        Err(e) => {
            eprintln!("error: verify could not run: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

/// `cargo run -p <package> -- ARGS`: the app and the benchmarks are their own binaries, so
/// `cargo xtask setup` never compiles them. The child's exit code is passed on.
fn cargo_run(package: &str, args: &[String]) -> Result<ExitCode> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args(["run", "--quiet", "--package", package, "--"])
        .args(args)
        .status()
        .context("cannot run cargo")?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
