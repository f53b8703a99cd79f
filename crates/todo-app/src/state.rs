//! Shared per-process state: the bounded connection pool, the token verifier, the timeouts.
//! Cheap to clone (one `Arc`); nothing in it caches whether the database is up.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use clerk_token::Verifier;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::config::{AppConfig, ConfigError};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    verifier: Verifier,
    statement_timeout: Duration,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("pool_size", &self.inner.pool.size())
            .field("verifier", &self.inner.verifier)
            .field("statement_timeout", &self.inner.statement_timeout)
            .finish()
    }
}

impl AppState {
    /// A lazy pool: nothing connects until the first request, so the app starts (and answers
    /// 503) while Postgres is down, and picks it up when it comes back. Idle connections are
    /// pinged before reuse (sqlx's default), so ones a restarted server dropped are replaced.
    pub fn new(config: &AppConfig) -> Result<Self, ConfigError> {
        let options = PgConnectOptions::from_str(&config.database_url)
            .map_err(|e| ConfigError::Invalid {
                var: "DATABASE_URL",
                // sqlx's parse errors describe the problem, not the URL.
                reason: e.to_string(),
            })?
            .application_name("todo-app")
            // Statements are logged by our own trace spans; sqlx's would be noise.
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .test_before_acquire(true)
            .connect_lazy_with(options);
        let verifier = match &config.audience {
            Some(aud) => Verifier::new(config.jwt_secret.clone()).with_audience(aud.clone()),
            None => Verifier::new(config.jwt_secret.clone()).without_audience(),
        };
        Ok(Self::from_parts(pool, verifier, config.statement_timeout))
    }

    /// Assembles a state from ready parts (e.g. a pool a test already opened).
    pub fn from_parts(pool: PgPool, verifier: Verifier, statement_timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                verifier,
                statement_timeout,
            }),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    pub fn statement_timeout(&self) -> Duration {
        self.inner.statement_timeout
    }
}
