//! The command layer: the user-facing commands (clap definitions and their handlers) that the
//! installed `insforge-rls` and the workspace's `cargo xtask` both run. Where a binary differs
//! (its name in messages, where relative defaults and the state folder live, how `app` runs)
//! is its [`Context`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use harness::{BackendChoice, Migrations, PgTarget, SetupOptions, StateDir};

mod check;
mod commands;
mod report;

pub use check::{CheckArgs, CheckFormat};

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Where setup keeps its state (and where a command that needs a server and finds no setup
    /// makes an ephemeral one) [insforge-rls: ./.insforge-rls; cargo xtask: target/insforge-rls].
    #[arg(
        long,
        global = true,
        env = crate::start::STATE_DIR_ENV,
        value_name = "DIR"
    )]
    pub state_dir: Option<PathBuf>,
}

/// The user-facing commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start (or reuse) Postgres, apply the migrations, create the app role and test template.
    #[command(
        after_help = "Example:\n  insforge-rls setup --backend local --migrations migrations"
    )]
    Setup(SetupArgs),
    /// Stop and delete what setup made, and nothing else.
    #[command(after_help = "Example:\n  insforge-rls teardown")]
    Teardown,
    /// Show what setup made and whether it answers.
    #[command(after_help = "Example:\n  insforge-rls status")]
    Status,
    /// Apply the migrations to a database (default: the one from setup, and its template).
    #[command(after_help = "Example:\n  insforge-rls migrate --migrations migrations")]
    Migrate(MigrateArgs),
    /// Print a Clerk-shaped `insforge` template token signed with the JWT secret from setup.
    #[command(
        after_help = "Example:\n  insforge-rls token --user user_2abc --email ada@example.com --ttl 300"
    )]
    Token(TokenArgs),
    /// Statically check the live catalog's RLS setup (policies, functions, roles, grants).
    #[command(
        after_help = "Examples:\n  insforge-rls lint --database-url postgres://postgres@127.0.0.1:5432/app --format json\n  \
         insforge-rls lint --baseline lint-baseline.toml --format sarif --output lint.sarif\n  \
         insforge-rls lint --fix-sql > migrations/V9__lint_fixes.sql"
    )]
    Lint(LintArgs),
    /// Check your own schema against your access spec on a fresh database: the spec's access
    /// matrices for every table, and the lint. Exit 0 clean, 1 leak, 3 lost access, 2 not run.
    #[command(after_help = "Examples:\n  insforge-rls check                      \
         # ./insforge-rls.toml or ./access.toml, its migrations\n  \
         insforge-rls check --spec access.toml --migrations db/migrations --no-mutants --format json")]
    Check(CheckArgs),
    /// Run the HTTP access matrix and token checks against a live InsForge-compatible endpoint.
    #[command(
        after_help = "Examples:\n  insforge-rls verify --base-url https://<project>.insforge.app\n  \
         insforge-rls verify --base-url http://127.0.0.1:7130 --spec access.toml"
    )]
    Verify(VerifyArgs),
    /// Run the sample app (a local stand-in for InsForge's records API) on the database from
    /// setup; its own flags follow, e.g. `app --dev-sign-in`.
    #[command(
        after_help = "Example:\n  insforge-rls app --dev-sign-in --bind 127.0.0.1:7130\n\
         The app's own flags: insforge-rls app -- --help"
    )]
    App {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// How `verify` prints its report. New formats are new variants (and a writer for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// How `lint` prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LintFormat {
    Text,
    Json,
    /// SARIF 2.1.0, each finding at the migration line that made its object (with the
    /// migrations folder of --migrations or the spec).
    Sarif,
    /// Markdown, e.g. for `$GITHUB_STEP_SUMMARY`.
    Markdown,
}

/// How `app` runs the sample app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppRunner {
    /// In this process (the installed command).
    InProcess,
    /// `cargo run -p todo-app -- ARGS` (the workspace: `cargo xtask setup` never compiles it).
    CargoRun,
}

/// What differs between the binaries that run these commands.
#[derive(Debug, Clone)]
pub struct Context {
    /// How the binary is invoked, for messages (`insforge-rls`, `cargo xtask`).
    pub program: &'static str,
    /// Where setup's relative `--env-file` resolves.
    pub root: PathBuf,
    pub state: StateDir,
    /// The env file setup also writes when `--env-file` is not given.
    pub env_file: Option<PathBuf>,
    /// What setup suggests next.
    pub next_after_setup: &'static str,
    pub app: AppRunner,
}

/// The state folder of a team's repository: `--state-dir` / `INSFORGE_RLS_STATE_DIR`, else
/// `.insforge-rls` in the current folder.
pub const TEAM_STATE_DIR: &str = ".insforge-rls";

impl Context {
    /// The installed command, run from a team's repository: everything relative to the
    /// current folder, state in `./.insforge-rls`, nothing read from this workspace.
    pub fn team_repo(global: &Global) -> Self {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Self {
            program: "insforge-rls",
            state: StateDir::at(
                global
                    .state_dir
                    .clone()
                    .unwrap_or_else(|| cwd.join(TEAM_STATE_DIR)),
            ),
            root: cwd,
            env_file: None,
            next_after_setup: "insforge-rls check",
            app: AppRunner::InProcess,
        }
    }

    /// `cargo xtask` in this workspace: state in `target/insforge-rls`, setup also writes the
    /// workspace's `.env`.
    pub fn workspace(root: PathBuf, global: &Global) -> Self {
        Self {
            program: "cargo xtask",
            state: global
                .state_dir
                .clone()
                .map_or_else(StateDir::discover, StateDir::at),
            env_file: Some(root.join(".env")),
            root,
            next_after_setup: "cargo test",
            app: AppRunner::CargoRun,
        }
    }
}

/// An input the command was given that cannot be used (a spec not found, a migration that
/// cannot be read): exit 2, as for a bad flag.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct InputError(pub anyhow::Error);

/// Runs `command`; an [`InputError`] is reported here with exit 2, any other error is returned.
pub async fn run(command: Command, ctx: &Context) -> Result<ExitCode> {
    let result = match command {
        Command::Setup(args) => commands::setup(ctx, args).await,
        Command::Teardown => commands::teardown(ctx).await,
        Command::Status => commands::status(ctx).await,
        Command::Migrate(args) => commands::migrate(ctx, args).await,
        Command::Token(args) => commands::token(ctx, args),
        Command::Lint(args) => commands::lint(ctx, args).await,
        Command::Check(args) => check::run(ctx, args).await,
        Command::Verify(args) => commands::verify(ctx, args).await,
        Command::App { args } => match ctx.app {
            AppRunner::CargoRun => cargo_run("todo-app", &args),
            AppRunner::InProcess => commands::app_in_process(ctx, args).await,
        },
    };
    match result {
        Err(e) if e.downcast_ref::<InputError>().is_some() => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(2))
        }
        other => other,
    }
}

/// The spec to use: `given`, else `./insforge-rls.toml`, else `./access.toml`.
pub fn find_spec(given: Option<&Path>) -> Result<PathBuf, InputError> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let looked = ["insforge-rls.toml", "access.toml"];
    if let Some(found) = looked.iter().map(Path::new).find(|p| p.is_file()) {
        return Ok(found.to_path_buf());
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    Err(InputError(anyhow::anyhow!(
        "no access spec: looked for {} and {} — pass --spec FILE",
        cwd.join(looked[0]).display(),
        cwd.join(looked[1]).display()
    )))
}

/// `dir` (relative to where the command runs), else the `migrations` key of the spec found in
/// the current folder, else the sample app's todos. A folder that cannot be read is an
/// [`InputError`].
fn migrations_from(dir: Option<&Path>) -> Result<Migrations> {
    let dir = match dir {
        Some(dir) => Some(dir.to_path_buf()),
        None => find_spec(None)
            .ok()
            .and_then(|spec| rls_suite::spec::Spec::load(&spec).ok())
            .and_then(|spec| spec.migrations),
    };
    Ok(match dir {
        Some(dir) => Migrations::from_dir(&dir).map_err(|e| InputError(e.into()))?,
        None => Migrations::embedded(),
    })
}

/// `cargo run -p <package> -- ARGS`: the app and the benchmarks are their own binaries, so
/// `cargo xtask setup` never compiles them. The child's exit code is passed on.
pub fn cargo_run(package: &str, args: &[String]) -> Result<ExitCode> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // The child finds this process's state folder (`--state-dir`) through the environment.
    let status = std::process::Command::new(cargo)
        .args(["run", "--quiet", "--package", package, "--"])
        .args(args)
        .env(
            harness::state::STATE_DIR_ENV,
            harness::StateDir::discover().root(),
        )
        .status()
        .context("cannot run cargo")?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Database to check (default: the one from setup).
    #[arg(long, env = "INSFORGE_RLS_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Schemas the API exposes (repeatable).
    #[arg(long = "schema", default_value = "public")]
    schemas: Vec<String>,
    /// How to print the findings.
    #[arg(long, value_enum, default_value_t = LintFormat::Text)]
    format: LintFormat,
    /// Write the findings (in --format) to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The migrations folder SARIF locates each finding in [default: the spec's `migrations`
    /// key].
    #[arg(long, value_name = "DIR")]
    migrations: Option<PathBuf>,
    /// Print a migration with the mechanical fixes of the findings (instead of the report).
    #[arg(long)]
    fix_sql: bool,
    /// Findings this file lists (rule, object, reason) are accepted: reported apart, never
    /// failing the run; entries that match nothing are named as stale.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Write every finding of this run to FILE as a baseline (then edit each reason).
    #[arg(long, value_name = "FILE")]
    write_baseline: Option<PathBuf>,
    /// Exit 1 when a finding is at or above this level: error, warn or info.
    #[arg(long, default_value = "warn")]
    deny: rls_lint::Level,
    /// The app's login role (checked for superuser, BYPASSRLS, ownership); `none` skips it.
    /// Default: the role from setup, else rls_app.
    #[arg(long)]
    app_role: Option<String>,
    /// Your access spec: reads it declares public are not findings, and fixes name each
    /// table's owner column [default: ./insforge-rls.toml, else ./access.toml, when there].
    #[arg(long)]
    spec: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
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
    /// observe and remove its rows; refuses tables that already hold rows [default:
    /// ./insforge-rls.toml, else ./access.toml, when there].
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// With --spec: a superuser (or table owner) URL of the database the endpoint serves
    /// [default: the database setup made, which `app` serves].
    #[arg(
        long,
        env = "INSFORGE_RLS_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,
    /// With --spec: how to print the report.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
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
pub struct SetupArgs {
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
    /// Also write the settings to this env file (skipped if a file there was not written by
    /// setup) [cargo xtask: the workspace's .env; insforge-rls: none, the state folder's `env`
    /// file has them].
    #[arg(long)]
    env_file: Option<PathBuf>,
    /// Your own migrations (a folder of V1__name.sql, … files), applied after this project's
    /// base (InsForge roles, requesting_user_id()) with a history of their own; default: the
    /// `migrations` key of ./insforge-rls.toml or ./access.toml, else the sample app's todos.
    #[arg(long, env = harness::migrate::MIGRATIONS_ENV)]
    migrations: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Database to migrate, as a role that owns the schema.
    #[arg(long, env = "INSFORGE_RLS_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Your own migrations folder, applied after the base (default: as for setup).
    #[arg(long, alias = "dir", env = harness::migrate::MIGRATIONS_ENV)]
    migrations: Option<PathBuf>,
}

/// What setup made, as `status` and `migrate` need it.
fn targets_of(state: &harness::State) -> Vec<PgTarget> {
    let mut t = vec![state.admin.clone()];
    if let Some(template) = &state.template {
        t.push(state.admin.with_database(template));
    }
    t
}

fn setup_options(ctx: &Context, args: SetupArgs) -> Result<SetupOptions> {
    // Refused before anything starts; InsForge's minimum is clerk-token's rule.
    if let Some(secret) = &args.jwt_secret {
        clerk_token::Secret::new(secret.as_str())?;
    }
    let env_export = args
        .env_file
        .or_else(|| ctx.env_file.clone())
        .map(|p| if p.is_absolute() { p } else { ctx.root.join(p) });
    Ok(SetupOptions {
        backend: args.backend,
        image: args.image,
        database_url: args.database_url,
        jwt_secret: args.jwt_secret,
        port: args.port,
        app_role: args.app_role,
        env_export,
        migrations: migrations_from(args.migrations.as_deref())?,
        ..SetupOptions::default()
    })
}
