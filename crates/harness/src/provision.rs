//! `setup`, `teardown` and `status`: start or reuse a server, migrate, create the app role and
//! the template database, and record it all in the state folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::backend::{BackendChoice, StartCx, Started, docker};
use crate::error::{HarnessError, Result};
use crate::migrate::{MigrationReport, Migrations};
use crate::state::{Server, State, StateDir};
use crate::target::{PgTarget, quote_ident};

pub use crate::backend::auto as auto_backend;
pub use crate::backend::docker::default_container_name;

/// Everything `setup` can be told. Defaults match the README.
#[derive(Debug, Clone)]
pub struct SetupOptions {
    pub backend: BackendChoice,
    pub image: String,
    /// Required for the URL backend: a role that can create roles (and ideally databases).
    pub database_url: Option<String>,
    pub jwt_secret: Option<String>,
    /// Local backend: the port to listen on (else a free one).
    pub port: Option<u16>,
    /// The app database on docker/local servers.
    pub database: String,
    pub template: String,
    pub app_role: String,
    /// Container name for the docker backend; default: one per state folder.
    pub container_name: Option<String>,
    /// Also write the env file here (unless a file there was not written by setup).
    pub env_export: Option<PathBuf>,
    pub migrations: Migrations,
}

impl Default for SetupOptions {
    fn default() -> Self {
        Self {
            backend: BackendChoice::Auto,
            image: docker::DEFAULT_IMAGE.into(),
            database_url: None,
            jwt_secret: None,
            port: None,
            database: "insforge".into(),
            template: "insforge_rls_template".into(),
            app_role: "rls_app".into(),
            container_name: None,
            env_export: None,
            migrations: Migrations::embedded(),
        }
    }
}

/// What setup did, for the summary it prints.
#[derive(Debug)]
pub struct SetupReport {
    pub state: State,
    pub reused_server: bool,
    pub migrations: MigrationReport,
    pub template_migrations: Option<MigrationReport>,
    /// Where per-test databases live in memory (see [`crate::scratch`]), when they do.
    pub scratch: Option<PathBuf>,
    pub steps: Vec<(&'static str, Duration)>,
    pub warnings: Vec<String>,
}

/// Setup's steps and how long each took, for its summary.
#[derive(Debug)]
pub(crate) struct Steps(Vec<(&'static str, Duration)>, Instant);

impl Steps {
    fn new() -> Self {
        Self(Vec::new(), Instant::now())
    }
    pub(crate) fn done(&mut self, name: &'static str) {
        self.0.push((name, self.1.elapsed()));
        self.1 = Instant::now();
    }
}

/// Provisions (or reuses) a server and brings it up to date. Safe to run again.
pub async fn setup(dir: &StateDir, opts: &SetupOptions) -> Result<SetupReport> {
    let mut steps = Steps::new();
    let mut warnings = Vec::new();
    let previous = dir.load()?;

    let choice = resolve_backend(opts, previous.as_ref()).await?;
    steps.done("choose backend");

    // 1. A server and a superuser (or the given user) on it, from its backend.
    let backend = choice.backend().ok_or(HarnessError::BackendUnresolved)?;
    let cx = StartCx {
        dir,
        previous: previous.as_ref(),
        opts,
    };
    let Started {
        server,
        admin,
        reused: reused_server,
    } = backend.start(&cx, &mut steps).await?;

    // 2. The app database (a server someone else runs names it in its URL).
    let app_db = if backend.owns_server() {
        ensure_database(&admin, &opts.database).await?;
        opts.database.clone()
    } else {
        admin.database.clone()
    };
    let app_admin = admin.with_database(&app_db);

    // 3. Migrations, then the app role (it needs the roles the first migration makes).
    let migrations = opts.migrations.apply(&app_admin).await?;
    steps.done("migrate");
    let app_password = previous
        .as_ref()
        .filter(|s| s.app.user == opts.app_role)
        .map_or_else(|| crate::random_token(32), |s| s.app.password.clone());
    ensure_app_role(&app_admin, &opts.app_role, &app_password).await?;
    steps.done("app role");

    // 4. The template each test clones.
    let (template, template_migrations) =
        match ensure_template(&admin, &opts.template, &opts.migrations).await {
            Ok(report) => (Some(opts.template.clone()), Some(report)),
            Err(e) if !backend.owns_server() => {
                warnings.push(format!(
                    "no template database, so `cargo test` cannot use this server: {e}"
                ));
                (None, None)
            }
            Err(e) => return Err(e),
        };
    steps.done("template database");

    // 5. Per-test databases in memory, on the servers setup runs.
    let scratch = match backend.scratch_location(dir) {
        Some(location) => match ensure_scratch(&admin, &location).await {
            Ok(made) => made,
            Err(e) => {
                warnings.push(format!(
                    "per-test databases stay on disk (slower): no scratch tablespace: {e}"
                ));
                None
            }
        },
        None => None,
    };
    steps.done("scratch tablespace");

    let jwt_secret = jwt_secret(opts, previous.as_ref());
    let mut state = State {
        format: State::FORMAT,
        server,
        app: app_admin.with_login(&opts.app_role, &app_password),
        admin: app_admin,
        template,
        jwt_secret,
        created_at: previous
            .as_ref()
            .map_or_else(now_rfc3339, |s| s.created_at.clone()),
        env_export: None,
    };
    if let Some(path) = &opts.env_export {
        match dir.export_env(&state, path) {
            Ok(()) => state.env_export = Some(path.clone()),
            Err(e) => warnings.push(e.to_string()),
        }
    }
    dir.save(&state)?;
    steps.done("write state");
    Ok(SetupReport {
        state,
        reused_server,
        migrations,
        template_migrations,
        scratch,
        steps: steps.0,
        warnings,
    })
}

/// Writes a provisional state as soon as a server exists, so a rerun after an interruption
/// reuses it instead of orphaning it.
pub(crate) fn save_early(
    dir: &StateDir,
    previous: Option<&State>,
    server: &Server,
    admin: &PgTarget,
    opts: &SetupOptions,
) -> Result<()> {
    let state = State {
        format: State::FORMAT,
        server: server.clone(),
        admin: admin.clone(),
        app: previous.map_or_else(
            || admin.with_login(&opts.app_role, &crate::random_token(32)),
            |s| s.app.clone(),
        ),
        template: previous.and_then(|s| s.template.clone()),
        jwt_secret: jwt_secret(opts, previous),
        created_at: previous.map_or_else(now_rfc3339, |s| s.created_at.clone()),
        env_export: previous.and_then(|s| s.env_export.clone()),
    };
    dir.save(&state)
}

async fn resolve_backend(opts: &SetupOptions, previous: Option<&State>) -> Result<BackendChoice> {
    let recorded = previous.map(|s| s.server.choice());
    match (opts.backend, recorded) {
        (BackendChoice::Auto, Some(recorded)) => Ok(recorded),
        (wanted, Some(recorded)) if wanted != recorded => {
            Err(HarnessError::BackendSwitch { recorded, wanted })
        }
        (BackendChoice::Auto, None) => crate::backend::auto().await,
        (wanted, _) => Ok(wanted),
    }
}

/// The scratch tablespace, tried twice: once seen failing in a CI run's ephemeral server and
/// passing on every rerun, so a transient failure (its cause was not recorded then; ephemeral
/// servers now print their warnings) does not leave a whole run's clones on disk.
async fn ensure_scratch(admin: &PgTarget, location: &Path) -> Result<Option<PathBuf>> {
    match crate::scratch::ensure(admin, location).await {
        Err(first) => {
            tracing::warn!(error = %first, "scratch tablespace: first attempt failed, retrying");
            crate::scratch::ensure(admin, location).await
        }
        made => made,
    }
}

/// The JWT secret setup records: the one given, else the one a previous setup made (so tokens
/// minted against it stay valid), else a new one. The one rule for both the early and the
/// final state. The secret is passed through as text: checking it (InsForge's 32-character
/// minimum) is `clerk-token`'s job, done by the caller (ARCHITECTURE.md, "harness knows
/// nothing about tokens").
fn jwt_secret(opts: &SetupOptions, previous: Option<&State>) -> String {
    opts.jwt_secret
        .clone()
        .or_else(|| previous.map(|s| s.jwt_secret.clone()))
        .unwrap_or_else(|| crate::random_token(48))
}

async fn ensure_database(admin: &PgTarget, name: &str) -> Result<()> {
    let mut conn = admin.connect().await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .map_err(HarnessError::sql("cannot list databases"))?;
    if !exists {
        let sql = format!("create database {}", quote_ident(name));
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            Ok(_) => {}
            // Another setup made it in the meantime.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
            Err(e) => {
                return Err(HarnessError::sql(format!("cannot create database {name}"))(
                    e,
                ));
            }
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// The app's login role: LOGIN, NOINHERIT, member of anon and authenticated, nothing else —
/// so a request that forgets to switch role has no privileges at all.
async fn ensure_app_role(admin: &PgTarget, role: &str, password: &str) -> Result<()> {
    let mut conn = admin.connect().await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_roles where rolname = $1)")
            .bind(role)
            .fetch_one(&mut conn)
            .await
            .map_err(HarnessError::sql("cannot list roles"))?;
    let ident = quote_ident(role);
    let password = pg_identity::quote_literal(password).map_err(HarnessError::PasswordHasNul)?;
    let verb = if exists { "alter" } else { "create" };
    let sql = format!(
        "{verb} role {ident} login noinherit nosuperuser nocreatedb nocreaterole nobypassrls \
         password {password}; grant anon, authenticated to {ident}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map_err(HarnessError::sql(format!(
            "cannot create or update the app role {role}"
        )))?;
    conn.close().await.ok();
    Ok(())
}

/// Creates (when missing) and migrates the template database, then marks it a template.
async fn ensure_template(
    admin: &PgTarget,
    template: &str,
    migrations: &Migrations,
) -> Result<MigrationReport> {
    ensure_database(admin, template).await?;
    let report = migrations.apply(&admin.with_database(template)).await?;
    let mut conn = admin.connect().await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "alter database {} with is_template true",
        quote_ident(template)
    )))
    .execute(&mut conn)
    .await
    .map_err(HarnessError::sql("cannot mark the template database"))?;
    conn.close().await.ok();
    Ok(report)
}

/// What teardown removed.
#[derive(Debug, Default)]
pub struct TeardownReport {
    pub removed: Vec<String>,
    pub kept: Vec<String>,
}

/// Stops and deletes what setup made, and nothing else.
pub async fn teardown(dir: &StateDir) -> Result<TeardownReport> {
    let Some(state) = dir.load()? else {
        return Ok(TeardownReport {
            removed: vec![],
            kept: vec!["nothing was set up".into()],
        });
    };
    let mut report = state.server.backend().stop(dir, &state).await?;
    dir.forget(state.env_export.as_deref())?;
    if let Some(path) = &state.env_export {
        report.removed.push(format!("env file {}", path.display()));
    }
    report
        .removed
        .push(format!("state in {}", dir.root().display()));
    Ok(report)
}

/// What `status` shows.
#[derive(Debug)]
pub struct Status {
    pub state: State,
    /// The server as its backend sees it (`container … running`, `cluster … on port …`).
    pub server: Option<String>,
    pub reachable: std::result::Result<String, String>,
    pub migrations: Vec<String>,
}

pub async fn status(dir: &StateDir) -> Result<Status> {
    let state = dir.require()?;
    let (reachable, migrations) = match state.app.connect().await {
        Ok(mut conn) => {
            let version: String = sqlx::query_scalar("select current_setting('server_version')")
                .fetch_one(&mut conn)
                .await
                .unwrap_or_default();
            conn.close().await.ok();
            let applied = applied_migrations(&state.admin).await.unwrap_or_default();
            (Ok(format!("PostgreSQL {version}")), applied)
        }
        Err(e) => (Err(e.to_string()), vec![]),
    };
    let server = state.server.backend().status(&state.server).await;
    Ok(Status {
        state,
        server,
        reachable,
        migrations,
    })
}

async fn applied_migrations(admin: &PgTarget) -> Result<Vec<String>> {
    let mut conn = admin.connect().await?;
    let sql = format!(
        "(select version, name from {} order by version) union all \
         (select version, name from {} order by version)",
        crate::migrate::BASE_HISTORY,
        crate::migrate::APP_HISTORY
    );
    let rows: Vec<(i32, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut conn)
        .await
        .map_err(HarnessError::sql("cannot read the migration history"))?;
    Ok(rows
        .into_iter()
        .map(|(v, n)| format!("V{v}__{n}"))
        .collect())
}

fn now_rfc3339() -> String {
    // Seconds since the epoch are enough for a human to tell runs apart.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("unix:{secs}")
}
