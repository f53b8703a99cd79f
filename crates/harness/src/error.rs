//! Every way provisioning can fail, each with what happened and what to do next.
//! Messages never carry a password, a secret or a full connection URL with credentials.

use std::path::PathBuf;

use crate::backend::BackendChoice;

/// Result alias for the harness.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

/// What went wrong while provisioning, migrating or opening a test database.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "Docker is not reachable at {endpoint} ({reason}) — start the Docker engine, \
         or run with --backend local (PostgreSQL binaries) or --backend url --database-url …"
    )]
    DockerUnreachable { endpoint: String, reason: String },

    #[error(
        "image `{image}` is not on this machine and could not be pulled ({reason}) — \
         pull or build it first (this repository's .ci/postgres-image.sh builds one from Debian \
         packages), pass another with --image / INSFORGE_RLS_IMAGE, or run with --backend local"
    )]
    ImageUnavailable { image: String, reason: String },

    #[error("the Postgres container could not be started: {reason}")]
    Container { reason: String },

    #[error(
        "a container named `{name}` from an earlier setup exists, but its state file is gone, so \
         its password is unknown — remove it with `docker rm -f {name}` (its data is lost) and \
         run setup again"
    )]
    OrphanContainer { name: String },

    #[error(
        "no PostgreSQL server binaries found ({searched}) — install them \
         (Debian: `apt-get install postgresql-15`), point INSFORGE_RLS_PG_BINDIR at the folder \
         holding `initdb` and `postgres`, or run with --backend docker"
    )]
    NoPostgresBinaries { searched: String },

    #[error(
        "initdb refuses to run as root and this machine has no `postgres` user to run the server \
         as — create one (`useradd --system --home-dir /var/lib/postgresql postgres`), run setup \
         as a normal user, or use --backend docker"
    )]
    NoPostgresUser,

    #[error(
        "the `{user}` user, which runs the local server, cannot reach the state folder {state} \
         (a folder above it is private to its owner), and {problem} — point \
         INSFORGE_RLS_STATE_DIR at a folder `{user}` can reach (every folder above it searchable: \
         `chmod o+x` on each), or use --backend docker"
    )]
    StateUnreachable {
        state: PathBuf,
        user: String,
        problem: String,
    },

    #[error(
        "port {port} on 127.0.0.1 is already in use — stop what listens there, choose another \
         with --port, or leave --port out to pick a free one"
    )]
    PortInUse { port: u16 },

    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },

    #[error(
        "cannot connect to the database at {target}: {reason} — check that the server is \
         running and the URL (host, port, user, password, database) is right"
    )]
    Connect { target: String, reason: String },

    #[error(
        "the database URL is not valid: {0} — expected postgres://user:password@host:port/database"
    )]
    BadUrl(String),

    #[error(
        "migration `{file}` has already been applied, but the file has changed since — \
         never edit an applied migration: restore the file and add a new V{{n}}__name.sql instead \
         (or `cargo xtask teardown` and set up afresh)"
    )]
    MigrationChanged { file: String },

    #[error(
        "migration `{file}` failed: {reason} — nothing after it was applied; fix the file and \
         run again"
    )]
    MigrationFailed { file: String, reason: String },

    #[error(
        "the database has migration `{file}` applied that is not in this set — was it set up \
         with another migrations folder? Pass the same `--migrations` (INSFORGE_RLS_MIGRATIONS) \
         as then, or start afresh with `cargo xtask teardown`"
    )]
    MigrationMissing { file: String },

    #[error("migrations could not run: {0}")]
    Migrations(String),

    #[error("{context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("{context} ({path}): {source}")]
    Io {
        context: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("state file {path} is unreadable: {reason} — fix or delete it, then run setup again")]
    BadState { path: PathBuf, reason: String },

    #[error("nothing is set up here ({path} is missing) — run `cargo xtask setup` first")]
    NotSetUp { path: PathBuf },

    #[error(
        "{path} exists and was not written by `cargo xtask setup`, so it is left alone — \
         the settings are in {state_env} instead"
    )]
    WontClobber { path: PathBuf, state_env: PathBuf },

    #[error(
        "--backend url needs --database-url (or INSFORGE_RLS_DATABASE_URL) — pass the admin URL \
         of the server to use"
    )]
    UrlBackendWithoutUrl,

    #[error(
        "this checkout is already set up with the {recorded} backend — run `cargo xtask teardown` \
         before switching to {wanted}"
    )]
    BackendSwitch {
        recorded: BackendChoice,
        wanted: BackendChoice,
    },

    #[error(
        "no backend is available: {docker}; and {local}. Start Docker, install PostgreSQL, \
         or pass --backend url --database-url postgres://…"
    )]
    NoBackend {
        #[source]
        docker: Box<HarnessError>,
        local: Box<HarnessError>,
    },

    /// A bug: setup resolves `auto` before it starts a backend.
    #[error("the backend was not resolved before setup started it — this is a bug in the harness")]
    BackendUnresolved,

    /// A blocking task (starting or removing a local cluster) panicked or was cancelled.
    #[error("{task} did not finish — this is a bug in the harness: {source}")]
    TaskFailed {
        task: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },

    /// The test database factory's runtime or thread could not be started.
    #[error("cannot start {what}: {source} — the system may be out of threads or memory")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "the test database factory's thread has stopped — an earlier error in this test run \
         (above) says why"
    )]
    FactoryStopped,

    #[error("test database owner id already in use; try again")]
    OwnerIdInUse,

    #[error("scratch path {path} {problem}")]
    ScratchPath {
        path: PathBuf,
        problem: &'static str,
    },

    #[error(
        "the app role's password contains a NUL character, which Postgres cannot store — choose another password"
    )]
    PasswordHasNul(#[source] pg_identity::NulInText),

    #[error(
        "the server from setup has no template database (the URL's role cannot create \
         databases) — give setup a role with CREATEDB, or set up another backend"
    )]
    NoTemplate,

    #[error(
        "the server from `cargo xtask setup` is not answering: run setup again (it restarts a \
         stopped server) or `cargo xtask teardown`: {0}"
    )]
    SetupServerDown(#[source] Box<HarnessError>),

    #[error("INSFORGE_RLS_BACKEND: {0}")]
    BadBackend(String),

    #[error(
        "tests cannot make an ephemeral server with the url backend — run `cargo xtask setup \
         --backend url --database-url …` first"
    )]
    EphemeralUrl,

    #[error(
        "the local cluster already runs on port {running}; `cargo xtask teardown` first to move \
         it to {wanted}"
    )]
    PortMove { running: u16, wanted: u16 },

    #[error(
        "the local server could not bind any of the free ports it found on 127.0.0.1 ({0:?}): \
         something takes ports as fast as they are found — pass --port"
    )]
    PortsRaced(Vec<u16>),

    #[error("cannot find a free port on 127.0.0.1: {0}")]
    NoFreePort(#[source] std::io::Error),

    #[error("the state does not serialize: {0}")]
    StateSerialize(#[source] serde_json::Error),

    /// An identity session could not be opened before reaching the server.
    #[error("cannot open an identity session")]
    Identity(#[source] pg_identity::IdentityError),
}

impl HarnessError {
    pub(crate) fn sql(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let context = context.into();
        move |source| HarnessError::Sql { context, source }
    }

    pub(crate) fn io(
        context: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        let path = path.into();
        move |source| HarnessError::Io {
            context,
            path,
            source,
        }
    }
}
