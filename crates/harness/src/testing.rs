//! Test support: the server tests share (from `setup`, or an ephemeral one made on first use
//! and cleaned up at exit) and a fresh database per test, cloned from the migrated template.

#[cfg(feature = "test-pki")]
pub mod pki;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use tokio::sync::OnceCell;

use crate::backend::BackendChoice;
use crate::error::{HarnessError, Result};
use crate::factory::{DatabaseFactory, create_retrying};
use crate::guardian::ProcessId;
use crate::provision::{SetupOptions, setup};
use crate::state::{State, StateDir};
use crate::target::{PgTarget, quote_ident};

static SHARED: OnceCell<State> = OnceCell::const_new();

/// The server every test in this process uses: the one `cargo xtask setup` recorded, or — when
/// nothing is set up — an ephemeral one (backend from `INSFORGE_RLS_BACKEND`, default auto).
/// Under nextest (one process per test) every process of a run shares one server, made by the
/// first and removed once the run has ended; under `cargo test` a process has its own, removed
/// when it exits.
pub async fn shared_state() -> Result<&'static State> {
    SHARED.get_or_try_init(init_shared).await
}

async fn init_shared() -> Result<State> {
    let dir = StateDir::discover();
    if let Some(state) = dir.load()? {
        if state.template.is_none() {
            return Err(HarnessError::NoTemplate);
        }
        state
            .admin
            .connect()
            .await
            .map_err(|e| HarnessError::SetupServerDown(Box::new(e)))?;
        return Ok(state);
    }

    let backend = match std::env::var("INSFORGE_RLS_BACKEND") {
        Ok(b) if !b.is_empty() => b.parse().map_err(HarnessError::BadBackend)?,
        _ => BackendChoice::Auto,
    };
    if backend == BackendChoice::Url {
        return Err(HarnessError::EphemeralUrl);
    }
    match NextestRun::current() {
        Some(run) => run.shared_server(&dir, backend).await,
        None => {
            let suffix = format!("{}-{}", std::process::id(), crate::random_lower(6));
            let eph = StateDir::at(dir.root().join(format!("ephemeral-{suffix}")));
            eph.create()?;
            let opts = ephemeral_options(backend, &suffix).await?;
            // The guardian is watching before anything exists, so no exit path leaks a server.
            let leftovers = backend_of(&opts)?.leftovers(&eph, &opts)?;
            crate::guardian::watch(eph.root(), &leftovers)?;
            tracing::info!(backend = %opts.backend, "no setup found: starting an ephemeral server for this test process");
            Ok(reported(setup(&eph, &opts).await?))
        }
    }
}

/// An ephemeral server's state, its setup warnings written to stderr (the test harness shows
/// them with a failing test's output): a degraded server should say why.
fn reported(report: crate::SetupReport) -> crate::State {
    for warning in &report.warnings {
        eprintln!("insforge-rls (ephemeral server): {warning}");
        tracing::warn!(%warning, "ephemeral server set up with a warning");
    }
    report.state
}

/// Setup options for an ephemeral server, its backend resolved (`auto` asks Docker).
async fn ephemeral_options(backend: BackendChoice, suffix: &str) -> Result<SetupOptions> {
    let mut opts = SetupOptions {
        backend,
        container_name: Some(format!("insforge-rls-test-{suffix}")),
        // A team's own migrations (INSFORGE_RLS_MIGRATIONS), as `setup --migrations` takes them.
        migrations: crate::migrate::Migrations::from_env(&crate::state::workspace_root())?,
        ..Default::default()
    };
    if let Ok(image) = std::env::var("INSFORGE_RLS_IMAGE")
        && !image.is_empty()
    {
        opts.image = image;
    }
    opts.backend = match backend {
        BackendChoice::Auto => crate::backend::auto().await?,
        other => other,
    };
    Ok(opts)
}

/// The backend `opts` names, resolved (setup options for an ephemeral server always are).
fn backend_of(opts: &SetupOptions) -> Result<&'static dyn crate::backend::Backend> {
    opts.backend
        .backend()
        .ok_or(HarnessError::BackendUnresolved)
}

/// The nextest run this process is a test of: nextest runs each test in a process of its own,
/// all children of one runner, and names the run in `NEXTEST_RUN_ID`.
#[derive(Debug)]
struct NextestRun {
    id: String,
    runner: ProcessId,
}

/// Beside the run's state: held while a process makes (or looks for) the run's server.
const RUN_LOCK: &str = "lock";
/// Written once the run's server is migrated and recorded; its absence means "not yet".
const RUN_READY: &str = "ready";
/// Written once a guardian watches the run's runner.
const RUN_GUARDED: &str = "guarded";

impl NextestRun {
    fn current() -> Option<NextestRun> {
        let id = std::env::var("NEXTEST_RUN_ID").ok()?;
        // A folder name: keep what a UUID is made of.
        let id: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if id.is_empty() {
            return None;
        }
        let runner = ProcessId::ancestor_named("cargo-nextest")?;
        Some(NextestRun { id, runner })
    }

    /// The run's server: made by the first process to get here (the others wait on a file
    /// lock and then use it), removed by a guardian once the runner has exited. A process that
    /// died while making it leaves no `ready` mark; the next one finishes the job (setup is
    /// safe to run again).
    async fn shared_server(&self, dir: &StateDir, backend: BackendChoice) -> Result<State> {
        // Short: the cluster's socket path must fit in 107 bytes (a run id is a UUID; its
        // first 13 characters tell runs apart).
        let short = self.id.get(..13).unwrap_or(&self.id);
        let eph = StateDir::at(dir.root().join(format!("nextest-{short}")));
        eph.create()?;
        let lock_path = eph.root().join(RUN_LOCK);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(HarnessError::io(
                "cannot open the run's lock file",
                &lock_path,
            ))?;
        // Released when `lock` is dropped, or by the kernel when this process dies.
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|source| HarnessError::TaskFailed {
                task: "waiting for the run's lock",
                source,
            })?
            .map_err(HarnessError::io(
                "cannot lock the run's lock file",
                &lock_path,
            ))?;
        if eph.root().join(RUN_READY).is_file()
            && let Some(state) = eph.load()?
        {
            drop(lock);
            return Ok(state);
        }
        let suffix = format!("run-{short}");
        let opts = ephemeral_options(backend, &suffix).await?;
        let guarded = eph.root().join(RUN_GUARDED);
        if !guarded.is_file() {
            let leftovers = backend_of(&opts)?.leftovers(&eph, &opts)?;
            crate::guardian::watch_process(eph.root(), &leftovers, &self.runner)?;
            crate::state::write_private(&guarded, self.runner.pid.to_string().as_bytes())?;
        }
        tracing::info!(backend = %opts.backend, run = %self.id, "no setup found: starting one ephemeral server for this nextest run");
        let state = reported(setup(&eph, &opts).await?);
        crate::state::write_private(&eph.root().join(RUN_READY), b"")?;
        drop(lock);
        Ok(state)
    }
}

/// The factory every [`TestDatabase`] in this process comes from.
static FACTORY: OnceLock<DatabaseFactory> = OnceLock::new();

fn factory(state: &State) -> Result<&'static DatabaseFactory> {
    if let Some(f) = FACTORY.get() {
        return Ok(f);
    }
    let started = DatabaseFactory::start(state.admin.clone())?;
    Ok(FACTORY.get_or_init(|| started))
}

/// A database of its own for one test, cloned from the template on the process's long-lived
/// admin connection. Dropping the value queues a forced `DROP DATABASE` and returns at once;
/// databases a process did not get to drop before exiting are removed by the next test run
/// (see [`DatabaseFactory`]) or by `cargo xtask teardown`.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    admin: PgTarget,
    app: PgTarget,
}

impl TestDatabase {
    /// Clones the template into a fresh database.
    pub async fn create() -> Result<Self> {
        let state = shared_state().await?;
        let template = state.template.as_deref().ok_or(HarnessError::NoTemplate)?;
        let name = factory(state)?.create(template).await?;
        Ok(Self {
            admin: state.admin.with_database(&name),
            app: state.app.with_database(&name),
            name,
        })
    }

    /// An empty database (a clone of `template0`) on the shared server, for migrations other
    /// than the template's: a team's own set, applied by the caller.
    pub async fn empty() -> Result<Self> {
        Self::from_template("template0").await
    }

    /// A copy of another test database (nobody may be connected to it meanwhile): one
    /// migrated, seeded or mutated database cloned many times.
    pub async fn clone_of(other: &TestDatabase) -> Result<Self> {
        Self::from_template(&other.name).await
    }

    async fn from_template(template: &str) -> Result<Self> {
        let state = shared_state().await?;
        let name = factory(state)?.create(template).await?;
        Ok(Self {
            admin: state.admin.with_database(&name),
            app: state.app.with_database(&name),
            name,
        })
    }

    /// An empty database with the base and then `migrations` applied (a team's own set).
    pub async fn migrated(migrations: &crate::migrate::Migrations) -> Result<Self> {
        let db = Self::empty().await?;
        migrations.apply(&db.admin).await?;
        Ok(db)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The app's login role on this database (no privileges until it switches role).
    pub fn app_target(&self) -> &PgTarget {
        &self.app
    }

    /// A superuser on this database: for seeding and inspection, never for identity checks.
    pub fn admin_target(&self) -> &PgTarget {
        &self.admin
    }

    pub async fn app_connection(&self) -> Result<PgConnection> {
        self.app.connect().await
    }

    pub async fn admin_connection(&self) -> Result<PgConnection> {
        self.admin.connect().await
    }

    /// A pool on the app role with at most `max` connections.
    pub async fn app_pool(&self, max: u32) -> Result<PgPool> {
        PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(self.app.connect_options())
            .await
            .map_err(HarnessError::sql(format!(
                "cannot open a pool on {}",
                self.app.redacted()
            )))
    }
}

/// Waits until every database this process dropped is gone: for a command that exits right
/// after (a test process leaves it to the background and the next run's sweep).
pub async fn flush_drops() -> Result<()> {
    match FACTORY.get() {
        Some(factory) => factory.flush().await,
        None => Ok(()),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(factory) = FACTORY.get() {
            factory.drop_later(&self.name);
        }
    }
}

/// `CREATE DATABASE … TEMPLATE` on a connection of its own, retried while something still
/// holds the template open. For one-off copies; tests use [`TestDatabase`].
pub async fn clone_database(admin: &PgTarget, template: &str, name: &str) -> Result<Duration> {
    let mut conn = admin.connect().await?;
    let sql = format!(
        "create database {} template {}",
        quote_ident(name),
        quote_ident(template)
    );
    let started = Instant::now();
    create_retrying(&mut conn, &sql)
        .await
        .map_err(HarnessError::sql(format!(
            "cannot clone {template} into {name}"
        )))?;
    let took = started.elapsed();
    conn.close().await.ok();
    Ok(took)
}

/// Whether the shared server is an ephemeral one test processes made: where it is (its
/// container's or cluster folder's name, [`crate::backend::Server::describe`]) carries the names given above —
/// a moved cluster's folder keeps its state folder's ([`crate::backend::local::moved_cluster_dir`]).
pub fn is_ephemeral(state: &State) -> bool {
    state.server.describe().is_some_and(|place| {
        ["insforge-rls-test-", "/ephemeral-", "/nextest-"]
            .iter()
            .any(|mark| place.contains(mark))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Server;

    #[test]
    fn ephemeral_servers_are_told_apart_by_where_they_are() {
        let admin = PgTarget::new("127.0.0.1", 5999, "postgres", "pw", "insforge");
        let state = |server| State {
            format: State::FORMAT,
            server,
            app: admin.with_login("rls_app", "pw"),
            admin: admin.clone(),
            template: None,
            jwt_secret: String::new(),
            created_at: String::new(),
            env_export: None,
        };
        let docker = |name: &str| Server::Docker {
            container_id: "id".into(),
            container_name: name.into(),
            image: "postgres:15".into(),
        };
        let local = |data_dir: &str| Server::Local {
            data_dir: data_dir.into(),
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            port: 5999,
            run_as: None,
        };
        for ephemeral in [
            docker("insforge-rls-test-123-abcdef"),
            local("/w/target/insforge-rls/ephemeral-123-abcdef/local/pgdata"),
            local("/w/target/insforge-rls/nextest-0a1b2c3d-4e5f/local/pgdata"),
            local("/var/lib/postgresql/insforge-rls/ephemeral-123-abcdef-0123456789abcdef/pgdata"),
        ] {
            assert!(is_ephemeral(&state(ephemeral.clone())), "{ephemeral:?}");
        }
        for kept in [
            docker("insforge-rls-1234abcd"),
            local("/w/target/insforge-rls/local/pgdata"),
            Server::Url,
        ] {
            assert!(!is_ephemeral(&state(kept.clone())), "{kept:?}");
        }
    }
}
