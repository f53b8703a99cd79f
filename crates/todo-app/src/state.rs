//! Shared per-process state: the bounded connection pool, the schema cache, the token
//! verifier, the claims forwarding, the timeouts. Cheap to clone (one `Arc`); nothing in it
//! caches whether the database is up.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use clerk_token::Verifier;
use pg_identity::ClaimsForwarding;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::catalog::SchemaCache;
use crate::config::{AppConfig, ConfigError, SignInMode};
use crate::dev::DevSignIn;
use crate::page::{ClerkFrontend, Page, SignIn};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// One connection, for the schema listener alone (it holds it for as long as it listens).
    listen_pool: PgPool,
    schema: Arc<SchemaCache>,
    verifier: Verifier,
    forwarding: ClaimsForwarding,
    statement_timeout: Duration,
    page: Arc<Page>,
    /// `Some` only with `--dev-sign-in`: the `/dev/*` routes exist only then.
    dev: Option<Arc<DevSignIn>>,
}

// The page and dev handlers take only their part of the state, so `page` and `dev` never
// name `AppState` (no import loop with this module).
impl FromRef<AppState> for Arc<Page> {
    fn from_ref(state: &AppState) -> Self {
        state.inner.page.clone()
    }
}

impl FromRef<AppState> for Option<Arc<DevSignIn>> {
    fn from_ref(state: &AppState) -> Self {
        state.inner.dev.clone()
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("pool_size", &self.inner.pool.size())
            .field("schema", &self.inner.schema.exposed())
            .field("verifier", &self.inner.verifier)
            .field("forwarding", &self.inner.forwarding)
            .field("statement_timeout", &self.inner.statement_timeout)
            .field("page", &self.inner.page)
            .field("dev_sign_in", &self.inner.dev.is_some())
            .finish()
    }
}

impl AppState {
    /// A lazy pool: nothing connects until the first request, so the app starts (and answers
    /// 503) while Postgres is down, and picks it up when it comes back. Idle connections are
    /// pinged before reuse (sqlx's default), so ones a restarted server dropped are replaced.
    ///
    /// Also checks the configuration ([`AppConfig::check`]) and loads the dev sign-in users,
    /// so every way of starting the app refuses what `check` refuses.
    pub fn new(config: &AppConfig) -> Result<Self, ConfigError> {
        config.check()?;
        let (sign_in, dev) = match &config.sign_in {
            SignInMode::Dev { users_file } => {
                let dev = DevSignIn::load(users_file, config.jwt_secret.clone())?;
                (SignIn::Dev, Some(dev))
            }
            SignInMode::Clerk { publishable_key } => {
                let clerk =
                    ClerkFrontend::from_publishable_key(publishable_key).map_err(|reason| {
                        ConfigError::Invalid {
                            var: "CLERK_PUBLISHABLE_KEY",
                            reason: reason.to_owned(),
                        }
                    })?;
                (SignIn::Clerk(clerk), None)
            }
            SignInMode::None => (SignIn::None, None),
        };
        let options = PgConnectOptions::from_str(&config.database_url)
            .map_err(|e| ConfigError::Invalid {
                var: "DATABASE_URL",
                // sqlx's parse errors describe the problem, not the URL.
                reason: e.to_string(),
            })?
            .application_name("todo-app")
            // Statements are logged by our own trace spans; sqlx's would be noise.
            .disable_statement_logging();
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options.clone());
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            // No ping before each acquire (one round trip per request): a connection that
            // died idle is noticed when the transaction begins, and retried (see db.rs).
            .test_before_acquire(false)
            .connect_lazy_with(options);
        let verifier = match &config.audience {
            Some(aud) => Verifier::new(config.jwt_secret.clone()).with_audience(aud.clone()),
            None => Verifier::new(config.jwt_secret.clone()).without_audience(),
        };
        Ok(Self::assemble(Inner {
            pool,
            listen_pool,
            schema: Arc::new(
                SchemaCache::new(config.db_schema.clone())
                    .with_load_timeout(config.acquire_timeout),
            ),
            verifier,
            forwarding: config.claims_forwarding,
            statement_timeout: config.statement_timeout,
            page: Arc::new(Page::new(&sign_in)),
            dev: dev.map(Arc::new),
        }))
    }

    fn assemble(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn listen_pool(&self) -> &PgPool {
        &self.inner.listen_pool
    }

    pub fn schema(&self) -> &Arc<SchemaCache> {
        &self.inner.schema
    }

    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    pub fn forwarding(&self) -> ClaimsForwarding {
        self.inner.forwarding
    }

    pub fn statement_timeout(&self) -> Duration {
        self.inner.statement_timeout
    }

    /// Whether dev sign-in is on (its routes are mounted only then).
    pub fn dev_sign_in(&self) -> bool {
        self.inner.dev.is_some()
    }
}
