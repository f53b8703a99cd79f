//! A local stand-in for InsForge's records API (PostgREST 12's wire format) on every table
//! and view of the exposed schema (default `public`) — filters with `or`/`and` trees, upserts,
//! embedded resources — and for its `/api/database/rpc/<fn>` calls to the schema's functions
//! ([`rpc`]), letting Postgres Row Level Security decide who sees what. `docs/fidelity.md` says, per behaviour, what InsForge 2.3 does and
//! what this app does.
//!
//! `GET /` serves a todo page (static files compiled in, strict CSP) that signs in with Clerk
//! or, for local development, with `--dev-sign-in` ([`dev`]) and calls the same API on `todos`.
//!
//! The tables, views, columns, types, foreign keys and functions come from the catalog
//! ([`catalog`]) into an immutable
//! snapshot ([`schema`]), re-read on `NOTIFY pgrst, 'reload schema'` and on SIGUSR1 as
//! PostgREST does, never per request. Each request is verified ([`Identity`], claims
//! forwarded as InsForge 2.3 does by default), parsed ([`query_string`], [`prefer`], [`body`])
//! against its table in the snapshot, turned into one SQL statement whose identifiers all come
//! from the snapshot with every value bound ([`statement`]), and run in one transaction as the
//! `authenticated` role with the forwarded claims ([`db`]). The app never filters by user: the
//! policies do.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = todo_app::AppConfig::load()?;
//! let app = todo_app::spawn(config).await?;
//! println!("listening on http://{}", app.addr);
//! app.shutdown().await?;
//! # Ok(()) }
//! ```

mod auth;
mod body;
mod catalog;
mod config;
mod db;
mod dev;
mod error;
mod page;
mod parse_error;
mod prefer;
mod query_string;
mod routes;
mod rpc;
mod schema;
mod state;
mod statement;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub use catalog::{SchemaCache, SchemaError, SchemaStatus, introspect};
pub use config::{AppConfig, Cli, ConfigError, SignInMode};
pub use error::ApiError;
pub use pg_identity::{Access, ClaimsForwarding};
pub use schema::{
    Column, Relation, RelationKind, Returns, Routine, RoutineParam, Schema, Volatility,
};
pub use statement::{Bind, Statement};

use state::AppState;

/// Why the app could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("the server task panicked or was cancelled")]
    Task,
    #[error("cannot install the SIGUSR1 handler (schema reload): {0}")]
    Signal(#[source] std::io::Error),
}

/// Longest request id the logs repeat; a client may send any `x-request-id`.
const MAX_LOGGED_REQUEST_ID: usize = 128;

/// All routes, with request ids, request logs and the body limit.
fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let records = get(routes::get_records)
        .post(routes::post_records)
        .patch(routes::patch_records)
        .delete(routes::delete_records);
    let mut router = Router::new()
        .route("/api/database/records/{table}", records)
        .route(
            "/api/database/rpc/{function}",
            get(rpc::get_rpc).post(rpc::post_rpc),
        )
        .route("/health", get(routes::health))
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .route("/favicon.svg", get(page::favicon))
        .route("/config.json", get(page::config));
    // Without --dev-sign-in these routes do not exist at all: a plain 404, like any other path.
    if state.dev_sign_in() {
        router = router
            .route("/dev/users", get(dev::users))
            .route("/dev/token", post(dev::token));
    }
    router
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(routes::BODY_LIMIT_BYTES))
        // Layers run outermost-last: the id is set before the trace span reads it, and copied
        // onto the response on the way out.
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // One line per request at info: status and latency, inside the span above.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// The span every request's logs sit in: method, path and request id. Never headers (the
/// `Authorization` header is a credential) and never the query string (it holds user data).
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(MAX_LOGGED_REQUEST_ID).collect::<String>())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
    )
}

/// What keeps the schema current while the app serves: the `NOTIFY` listener, and the SIGUSR1
/// handler when configured.
struct Reloaders {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Reloaders {
    /// Starts them. The signal handler is registered here, before the app says it is listening,
    /// so SIGUSR1 sent after start reloads rather than ends the process.
    fn start(state: &AppState, on_sigusr1: bool) -> Result<Self, StartError> {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(catalog::listen(
            state.schema().clone(),
            state.listen_pool().clone(),
            stopped.clone(),
        ))];
        #[cfg(unix)]
        if on_sigusr1 {
            use tokio::signal::unix::{SignalKind, signal};
            let sigusr1 = signal(SignalKind::user_defined1()).map_err(StartError::Signal)?;
            tasks.push(tokio::spawn(catalog::reload_on_signal(
                state.schema().clone(),
                state.pool().clone(),
                sigusr1,
                stopped,
            )));
        }
        #[cfg(not(unix))]
        let _ = (on_sigusr1, stopped);
        Ok(Self { stop, tasks })
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Serves `state` on `listener` until `shutdown` resolves, then finishes in-flight requests,
/// stops the reloaders and closes the pools.
async fn serve(
    listener: TcpListener,
    state: AppState,
    reloaders: Reloaders,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let pool = state.pool().clone();
    let listen_pool = state.listen_pool().clone();
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    reloaders.stop().await;
    listen_pool.close().await;
    pool.close().await;
    result.map_err(StartError::Serve)
}

/// Checks `config`, builds the state, binds `config.bind` (use `127.0.0.1:0` for a free
/// port) and starts the schema reloaders. The address returned is the one the OS gave: with
/// port 0 it has the real port.
async fn start(
    config: &AppConfig,
) -> Result<(AppState, Reloaders, TcpListener, SocketAddr), StartError> {
    let state = AppState::new(config)?;
    let bind_error = |source| StartError::Bind {
        addr: config.bind,
        source,
    };
    let listener = TcpListener::bind(config.bind).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let reloaders = Reloaders::start(&state, config.reload_on_sigusr1)?;
    Ok((state, reloaders, listener, addr))
}

/// A server running in a background task. Dropping it starts a graceful shutdown;
/// [`RunningApp::shutdown`] also waits for it to finish.
#[derive(Debug)]
pub struct RunningApp {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), StartError>>>,
    schema: std::sync::Arc<SchemaCache>,
}

impl RunningApp {
    /// Follows the schema cache: how many snapshots were loaded, and whether the `NOTIFY`
    /// listener is connected (a `NOTIFY pgrst` sent after that is seen).
    pub fn schema_status(&self) -> watch::Receiver<SchemaStatus> {
        self.schema.watch()
    }

    /// The schema snapshot requests use now (`None` before the first load).
    pub fn schema(&self) -> Option<std::sync::Arc<Schema>> {
        self.schema.snapshot()
    }

    /// `http://127.0.0.1:port`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests finish, closes the pool.
    pub async fn shutdown(mut self) -> Result<(), StartError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|_| StartError::Task)?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        // The task watches the receiver: sending (or dropping the sender) starts the graceful
        // shutdown; the task then finishes on its own.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// What the app runs for a `GET` (`insert_body: None`) or a `POST` of `insert_body` on `table`
/// of `schema` (a snapshot from [`introspect`]) with this query string: the statement, its
/// values, and whether its transaction may write. The benchmark hands exactly this to pgbench,
/// so both sides run the same SQL.
pub fn plan_request(
    schema: &Schema,
    table: &str,
    query: Option<&str>,
    insert_body: Option<&[u8]>,
) -> Result<(Statement, Access), ApiError> {
    let planned = routes::plan_request(schema, table, query, insert_body)?;
    Ok((planned.statement, planned.access))
}

/// Serves `config` until `shutdown` resolves (the binary passes Ctrl-C / SIGTERM): binds,
/// says where it listens, and finishes in-flight requests before it returns.
pub async fn run(
    config: AppConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let (state, reloaders, listener, addr) = start(&config).await?;
    tracing::info!(
        %addr,
        url = %format!("http://{addr}/"),
        sign_in = config.sign_in.name(),
        database = %config::redact_url(&config.database_url),
        "todo-app listening: open the url in a browser"
    );
    if let SignInMode::Dev { users_file } = &config.sign_in {
        tracing::warn!(
            users = %users_file.display(),
            "dev sign-in is on: any program on this machine can act as those users; for local \
             development only"
        );
    }
    // Not fatal: the pool is lazy and /health reports 503 until the database answers.
    if let Err(e) = db::ping(state.pool()).await {
        tracing::warn!(error = %e, "database not reachable yet; serving 503 until it is");
    }
    serve(listener, state, reloaders, shutdown).await?;
    tracing::info!("todo-app stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM: the `shutdown` the binary (and `insforge-rls app`) pass to
/// [`run`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}

/// Starts the app in a background task on `config.bind`.
pub async fn spawn(config: AppConfig) -> Result<RunningApp, StartError> {
    let (state, reloaders, listener, addr) = start(&config).await?;
    let schema = state.schema().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state, reloaders, async move {
        let _ = stopped.await;
    }));
    tracing::info!(%addr, "todo-app listening");
    Ok(RunningApp {
        addr,
        stop: Some(stop),
        task: Some(task),
        schema,
    })
}
