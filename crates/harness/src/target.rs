//! Where a Postgres server is and who to log in as, without ever printing the password.
//! Every connection the harness opens goes through [`PgTarget`].

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::error::{HarnessError, Result};

/// A server address plus credentials and a database name.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl PgTarget {
    /// Parses `postgres://user:password@host:port/database` (percent-encoding allowed).
    pub fn parse(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| HarnessError::BadUrl(e.to_string()))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(HarnessError::BadUrl(format!(
                "scheme `{}` is not postgres:// or postgresql://",
                parsed.scheme()
            )));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let host = parsed
            .host_str()
            .ok_or_else(|| HarnessError::BadUrl("no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let user = decode(parsed.username());
        if user.is_empty() {
            return Err(HarnessError::BadUrl("no user name".into()));
        }
        let database = decode(parsed.path().trim_start_matches('/'));
        Ok(Self {
            host,
            port: parsed.port().unwrap_or(5432),
            user,
            password: parsed.password().map(decode).unwrap_or_default(),
            database: if database.is_empty() {
                "postgres".into()
            } else {
                database
            },
        })
    }

    /// The full URL, password included: for files with mode 0600 and for drivers, never logs.
    pub fn url(&self) -> String {
        let mut url = url::Url::parse("postgres://placeholder/").expect("static URL parses");
        let _ = url.set_host(Some(&self.host));
        let _ = url.set_port(Some(self.port));
        let _ = url.set_username(&self.user);
        if !self.password.is_empty() {
            let _ = url.set_password(Some(&self.password));
        }
        url.set_path(&self.database);
        url.to_string()
    }

    /// The URL with the password replaced: safe for messages and logs.
    pub fn redacted(&self) -> String {
        let pw = if self.password.is_empty() { "" } else { ":***" };
        format!(
            "postgres://{}{pw}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    pub fn with_database(&self, database: &str) -> Self {
        Self {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    pub fn with_login(&self, user: &str, password: &str) -> Self {
        Self {
            user: user.to_owned(),
            password: password.to_owned(),
            ..self.clone()
        }
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(&self.password)
            .database(&self.database)
            .application_name("insforge-rls-harness")
            .disable_statement_logging()
    }

    /// One connection attempt, with the error turned into a message that says what to check.
    pub async fn connect(&self) -> Result<PgConnection> {
        PgConnection::connect_with(&self.connect_options())
            .await
            .map_err(|e| HarnessError::Connect {
                target: self.redacted(),
                reason: short_reason(&e),
            })
    }

    /// Connects, retrying while the server is still starting, for at most `bound`.
    pub async fn connect_within(&self, bound: Duration) -> Result<PgConnection> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(25);
        loop {
            match PgConnection::connect_with(&self.connect_options()).await {
                Ok(mut conn) => {
                    // A server still in its init scripts accepts socket connections only, so
                    // a TCP connection that answers a query means the final server is up.
                    if sqlx::query("select 1").execute(&mut conn).await.is_ok() {
                        return Ok(conn);
                    }
                }
                Err(e) if is_auth_failure(&e) || started.elapsed() >= bound => {
                    return Err(HarnessError::Connect {
                        target: self.redacted(),
                        reason: short_reason(&e),
                    });
                }
                Err(_) => {}
            }
            if started.elapsed() >= bound {
                return Err(HarnessError::Connect {
                    target: self.redacted(),
                    reason: format!("not ready after {} s", bound.as_secs()),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }
}

/// Authentication failures will not fix themselves by waiting.
pub(crate) fn is_auth_failure(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("28P01" | "28000")))
}

pub(crate) fn short_reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// Quotes an SQL identifier (role or database name) for statements that cannot take parameters.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Quotes an SQL string literal for statements that cannot take parameters (e.g. PASSWORD).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips_a_url_with_odd_password() {
        let t = PgTarget::parse("postgres://app:p%40ss%2Fw0rd@127.0.0.1:5433/insforge").unwrap();
        assert_eq!(t.user, "app");
        assert_eq!(t.password, "p@ss/w0rd");
        assert_eq!(t.port, 5433);
        assert_eq!(t.database, "insforge");
        assert_eq!(PgTarget::parse(&t.url()).unwrap(), t);
    }

    #[test]
    fn redaction_hides_the_password() {
        let t = PgTarget::parse("postgresql://app:hunter2hunter2@db:5432/x").unwrap();
        assert!(!t.redacted().contains("hunter2"));
        assert!(!format!("{t:?}").contains("hunter2"));
    }

    #[test]
    fn rejects_other_schemes_and_missing_user() {
        assert!(matches!(
            PgTarget::parse("mysql://a:b@h/d"),
            Err(HarnessError::BadUrl(_))
        ));
        assert!(matches!(
            PgTarget::parse("postgres://h/d"),
            Err(HarnessError::BadUrl(_))
        ));
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
