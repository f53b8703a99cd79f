//! `setup`, `teardown` and `status`: start or reuse a server, migrate, create the app role and
//! the template database, and record it all in the state folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::backend::BackendChoice;
use crate::backend::docker::{self, ContainerSpec};
use crate::backend::local::{self, Cluster, RunAs};
use crate::error::{HarnessError, Result};
use crate::migrate::{MigrationReport, Migrations};
use crate::state::{Server, State, StateDir};
use crate::target::{PgTarget, quote_ident};

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

/// One container per state folder (so per checkout, and apart for tests and CI runs that use
/// their own folder): the name carries a hash of the folder's path.
pub fn default_container_name(dir: &StateDir) -> String {
    let hash = dir
        .root()
        .to_string_lossy()
        .bytes()
        .fold(0xcbf29ce484222325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
    format!("insforge-rls-{:08x}", hash as u32)
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

struct Steps(Vec<(&'static str, Duration)>, Instant);

impl Steps {
    fn new() -> Self {
        Self(Vec::new(), Instant::now())
    }
    fn done(&mut self, name: &'static str) {
        self.0.push((name, self.1.elapsed()));
        self.1 = Instant::now();
    }
}

/// Provisions (or reuses) a server and brings it up to date. Safe to run again.
pub async fn setup(dir: &StateDir, opts: &SetupOptions) -> Result<SetupReport> {
    let mut steps = Steps::new();
    let mut warnings = Vec::new();
    let previous = dir.load()?;

    let backend = resolve_backend(opts, previous.as_ref()).await?;
    steps.done("choose backend");

    // 1. A server and a superuser (or the given user) on it.
    let (server, admin, reused_server) = match backend {
        BackendChoice::Docker => {
            let password = previous
                .as_ref()
                .map_or_else(|| crate::random_token(32), |s| s.admin.password.clone());
            let image = match previous.as_ref().map(|s| &s.server) {
                Some(Server::Docker { image, .. }) => image.clone(),
                _ => opts.image.clone(),
            };
            let was_running = match previous.as_ref().map(|s| &s.server) {
                Some(Server::Docker { container_id, .. }) => {
                    docker::is_running(container_id).await.unwrap_or(false)
                }
                _ => false,
            };
            let container_name = opts
                .container_name
                .clone()
                .unwrap_or_else(|| default_container_name(dir));
            let started = docker::start(&ContainerSpec {
                image: image.clone(),
                name: container_name.clone(),
                superuser_password: password,
            })
            .await?;
            let server = Server::Docker {
                container_id: started.id.clone(),
                container_name: container_name.clone(),
                image,
            };
            // Recorded before waiting, so an interrupted setup finds its container next time.
            save_early(dir, previous.as_ref(), &server, &started.admin, opts)?;
            steps.done("start container");
            match started.admin.connect_within(Duration::from_secs(90)).await {
                Err(HarnessError::Connect { reason, .. })
                    if previous.is_none() && reason.contains("password") =>
                {
                    return Err(HarnessError::OrphanContainer {
                        name: container_name,
                    });
                }
                other => other?.close().await.ok(),
            };
            steps.done("wait for postgres");
            (server, started.admin, was_running)
        }
        BackendChoice::Local => {
            let bin_dir = local::find_bin_dir()?;
            let run_as = RunAs::detect()?;
            let cluster = Cluster::new(dir.local_dir(), bin_dir.clone(), run_as.clone());
            let previous_port = match previous.as_ref().map(|s| &s.server) {
                Some(Server::Local { port, .. }) => Some(*port),
                _ => None,
            };
            let was_running = cluster.running_port().is_some();
            let port = opts.port;
            let admin = tokio::task::spawn_blocking(move || cluster.start(port, previous_port))
                .await
                .map_err(|source| HarnessError::TaskFailed {
                    task: "starting the local cluster",
                    source,
                })??;
            let server = Server::Local {
                data_dir: dir.local_dir().join("pgdata"),
                bin_dir,
                port: admin.port,
                run_as: run_as.map(|u| u.name),
            };
            save_early(dir, previous.as_ref(), &server, &admin, opts)?;
            steps.done("start local cluster");
            admin
                .connect_within(local::START_TIMEOUT)
                .await?
                .close()
                .await
                .ok();
            (server, admin, was_running)
        }
        BackendChoice::Url => {
            let url = opts
                .database_url
                .clone()
                .or_else(|| match previous.as_ref() {
                    Some(State {
                        server: Server::Url,
                        admin,
                        ..
                    }) => Some(admin.url()),
                    _ => None,
                })
                .ok_or(HarnessError::UrlBackendWithoutUrl)?;
            let admin = PgTarget::parse(&url)?;
            admin.connect().await?.close().await.ok();
            steps.done("connect");
            (Server::Url, admin, true)
        }
        BackendChoice::Auto => {
            return Err(HarnessError::BackendUnresolved);
        }
    };

    // 2. The app database (the URL backend's is the given one).
    let app_db = match server {
        Server::Url => admin.database.clone(),
        _ => {
            ensure_database(&admin, &opts.database).await?;
            opts.database.clone()
        }
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
            Err(e) if matches!(server, Server::Url) => {
                warnings.push(format!(
                    "no template database, so `cargo test` cannot use this server: {e}"
                ));
                (None, None)
            }
            Err(e) => return Err(e),
        };
    steps.done("template database");

    // 5. Per-test databases in memory, on the servers setup runs.
    let scratch_location = match &server {
        Server::Local { .. } => Some(crate::scratch::local_location(dir.root())),
        Server::Docker { .. } => Some(PathBuf::from(crate::scratch::CONTAINER_LOCATION)),
        Server::Url => None,
    };
    let scratch = match scratch_location {
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
fn save_early(
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
    let recorded = previous.map(|s| match s.server {
        Server::Docker { .. } => BackendChoice::Docker,
        Server::Local { .. } => BackendChoice::Local,
        Server::Url => BackendChoice::Url,
    });
    match (opts.backend, recorded) {
        (BackendChoice::Auto, Some(recorded)) => Ok(recorded),
        (wanted, Some(recorded)) if wanted != recorded => {
            Err(HarnessError::BackendSwitch { recorded, wanted })
        }
        (BackendChoice::Auto, None) => auto_backend().await,
        (wanted, _) => Ok(wanted),
    }
}

/// Docker when an engine answers, else local binaries, else an error naming both ways out.
pub async fn auto_backend() -> Result<BackendChoice> {
    let docker = match docker::ping().await {
        Ok(()) => return Ok(BackendChoice::Docker),
        Err(e) => e,
    };
    match local::find_bin_dir() {
        Ok(_) => Ok(BackendChoice::Local),
        Err(local) => Err(HarnessError::NoBackend {
            docker: Box::new(docker),
            local: Box::new(local),
        }),
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
    let mut report = TeardownReport::default();
    match &state.server {
        Server::Docker {
            container_id,
            container_name,
            ..
        } => {
            if docker::remove(container_id).await? {
                report.removed.push(format!("container {container_name}"));
            }
        }
        Server::Local {
            bin_dir, run_as, ..
        } => {
            let run_as = run_as.as_deref().map(RunAs::named).transpose()?;
            let cluster = Cluster::new(dir.local_dir(), bin_dir.clone(), run_as);
            tokio::task::spawn_blocking(move || cluster.destroy())
                .await
                .map_err(|source| HarnessError::TaskFailed {
                    task: "removing the local cluster",
                    source,
                })??;
            report
                .removed
                .push(format!("local cluster in {}", dir.local_dir().display()));
            let scratch = crate::scratch::local_location(dir.root());
            if scratch.exists() {
                crate::scratch::remove_local(&scratch)?;
                report
                    .removed
                    .push(format!("scratch tablespace folder {}", scratch.display()));
            }
        }
        Server::Url => {
            let mut conn = state.admin.connect().await?;
            let swept = crate::factory::sweep_orphans(&mut conn, None).await?;
            if swept > 0 {
                report
                    .removed
                    .push(format!("{swept} test databases left by finished test runs"));
            }
            if let Some(template) = &state.template {
                let sql = format!(
                    "alter database {0} with is_template false; drop database if exists {0} with (force)",
                    quote_ident(template)
                );
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .map_err(HarnessError::sql("cannot drop the template database"))?;
                report.removed.push(format!("template database {template}"));
            }
            report.kept.push(format!(
                "database {} with its migrations and role {} (they are the URL owner's)",
                state.admin.database, state.app.user
            ));
        }
    }
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
    Ok(Status {
        state,
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
