//! The app's configuration: one typed [`AppConfig`], read once at start.
//! Layers, highest first: command-line flags, the environment, the workspace `.env`, defaults.
//!
//! The `.env` file is read into a map, never into the process environment, so loading it has
//! no effect on anything else in the process and the layering is a pure function
//! ([`AppConfig::from_layers`]) that tests can call directly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use clerk_token::{INSFORGE_AUDIENCE, Secret, SecretError};
use pg_identity::{ClaimsForwarding, workspace_root};

pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 5_000;
pub const DEFAULT_ACQUIRE_TIMEOUT_MS: u64 = 5_000;
/// PostgREST's default `db-schemas`, and InsForge's `PGRST_DB_SCHEMA`.
pub const DEFAULT_DB_SCHEMA: &str = "public";

const ENV_DATABASE_URL: &str = "DATABASE_URL";
const ENV_JWT_SECRET: &str = "INSFORGE_JWT_SECRET";
const ENV_BIND: &str = "TODO_APP_BIND";
const ENV_AUDIENCE: &str = "TODO_APP_AUDIENCE";
const ENV_MAX_CONNECTIONS: &str = "TODO_APP_MAX_CONNECTIONS";
const ENV_STATEMENT_TIMEOUT_MS: &str = "TODO_APP_STATEMENT_TIMEOUT_MS";
const ENV_ACQUIRE_TIMEOUT_MS: &str = "TODO_APP_ACQUIRE_TIMEOUT_MS";
const ENV_DEV_SIGN_IN: &str = "TODO_APP_DEV_SIGN_IN";
const ENV_DEV_USERS_FILE: &str = "TODO_APP_DEV_USERS_FILE";
const ENV_CLERK_PUBLISHABLE_KEY: &str = "CLERK_PUBLISHABLE_KEY";
const ENV_DB_SCHEMA: &str = "TODO_APP_DB_SCHEMA";
const ENV_CLAIMS_FORWARDING: &str = "TODO_APP_CLAIMS_FORWARDING";

/// Command-line flags (each also read from its environment variable by clap). Every field is
/// optional here so that the `.env` file can sit between the environment and the defaults.
/// Values are typed by the same parsers clap and the `.env` layer use (`parse_*` below), so a
/// flag, a variable and a line of `.env` follow one rule each.
#[derive(Debug, Default, Parser)]
#[command(
    name = "todo-app",
    version,
    about = "Local stand-in for InsForge's records API (PostgREST wire format) on every table and view of a schema, with a todo page; RLS decides who sees what"
)]
pub struct Cli {
    /// Postgres URL of the app's login role (`cargo xtask setup` writes it to .env).
    #[arg(long, env = ENV_DATABASE_URL, hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// HS256 secret shared with the Clerk `insforge` template (at least 32 characters).
    /// Prefer the environment: command lines are visible to other local users.
    #[arg(long, env = ENV_JWT_SECRET, hide_env_values = true, value_name = "SECRET")]
    pub jwt_secret: Option<String>,
    /// Address to listen on [default: 127.0.0.1:7130].
    #[arg(long, env = ENV_BIND, value_name = "ADDR", value_parser = parse_bind)]
    pub bind: Option<SocketAddr>,
    /// Required `aud` claim; an empty value disables the check [default: insforge-api].
    #[arg(long, env = ENV_AUDIENCE, value_name = "AUD")]
    pub audience: Option<String>,
    /// Most Postgres connections the pool opens [default: 10].
    #[arg(long, env = ENV_MAX_CONNECTIONS, value_name = "N", value_parser = parse_max_connections)]
    pub max_connections: Option<u32>,
    /// `statement_timeout` set for each request, in milliseconds; 0 disables [default: 5000].
    #[arg(long, env = ENV_STATEMENT_TIMEOUT_MS, value_name = "MS", value_parser = parse_millis)]
    pub statement_timeout_ms: Option<u64>,
    /// How long a request waits for a database connection, in milliseconds [default: 5000].
    #[arg(long, env = ENV_ACQUIRE_TIMEOUT_MS, value_name = "MS", value_parser = parse_millis)]
    pub acquire_timeout_ms: Option<u64>,
    /// Local development only: the page offers a picker of local test users and this server
    /// mints their tokens (`GET /dev/users`, `POST /dev/token`). Refused unless --bind is a
    /// loopback address. Takes an optional true/false (also 1/0, yes/no, on/off).
    #[arg(
        long,
        env = ENV_DEV_SIGN_IN,
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = parse_switch
    )]
    pub dev_sign_in: Option<bool>,
    /// Local test users for --dev-sign-in, as `{"users":[{"key","id","email"}]}`
    /// [default: the workspace's fixtures/users.json].
    #[arg(long, env = ENV_DEV_USERS_FILE, value_name = "PATH")]
    pub dev_users_file: Option<String>,
    /// Clerk publishable key (`pk_test_…` / `pk_live_…`): the page signs in with Clerk and asks
    /// it for `insforge` template tokens. Empty: off.
    #[arg(long, env = ENV_CLERK_PUBLISHABLE_KEY, value_name = "KEY")]
    pub clerk_publishable_key: Option<String>,
    /// The schema whose tables and views `/api/database/records/{table}` serves (PostgREST's
    /// `db-schemas`; InsForge exposes `public`) [default: public].
    #[arg(long, env = ENV_DB_SCHEMA, value_name = "SCHEMA", value_parser = parse_db_schema)]
    pub db_schema: Option<String>,
    /// Which claims reach Postgres as `request.jwt.claims`: `insforge` (InsForge ≥ 2.2.5: a
    /// fresh 5-minute identity with sub, email, role, iat, exp) or `all` (InsForge ≤ 2.2.1:
    /// every claim of the token) [default: insforge].
    #[arg(long, env = ENV_CLAIMS_FORWARDING, value_name = "MODE", value_parser = parse_claims_forwarding)]
    pub claims_forwarding: Option<ClaimsForwarding>,
}

/// Why the configuration is unusable. Messages never contain a secret or a password.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{var} is not set: run `cargo xtask setup` (it writes the workspace .env), \
         or set {var} / pass --{flag}"
    )]
    Missing {
        var: &'static str,
        flag: &'static str,
    },
    #[error("{var}: {source}")]
    Secret {
        var: &'static str,
        #[source]
        source: SecretError,
    },
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("cannot read {path}: {reason}")]
    EnvFile { path: PathBuf, reason: String },
    #[error(
        "--dev-sign-in ({ENV_DEV_SIGN_IN}) lets anyone who can reach the app act as a local test \
         user, so it only listens on loopback, not {bind}: use --bind 127.0.0.1:PORT (or \
         [::1]:PORT), or turn dev sign-in off"
    )]
    DevSignInNotLoopback { bind: SocketAddr },
    #[error(
        "--dev-sign-in and --clerk-publishable-key ({ENV_CLERK_PUBLISHABLE_KEY}) are both set: \
         pick one sign-in mode (an empty {ENV_CLERK_PUBLISHABLE_KEY} turns Clerk off)"
    )]
    TwoSignInModes,
    #[error(
        "cannot load the dev sign-in users from {path}: {reason} (pass --dev-users-file or \
         set {ENV_DEV_USERS_FILE})"
    )]
    DevUsers { path: PathBuf, reason: String },
}

/// Everything the app needs to run.
#[derive(Clone)]
pub struct AppConfig {
    /// Contains a password: never log it (the `Debug` impl redacts it).
    pub database_url: String,
    pub jwt_secret: Secret,
    pub bind: SocketAddr,
    /// `None` disables the audience check.
    pub audience: Option<String>,
    pub max_connections: u32,
    /// 0 disables it, as in Postgres.
    pub statement_timeout: Duration,
    pub acquire_timeout: Duration,
    /// How the page signs people in: one mode, so two cannot be on at once.
    pub sign_in: SignInMode,
    /// The schema the records API serves.
    pub db_schema: String,
    /// Which claims reach Postgres.
    pub claims_forwarding: ClaimsForwarding,
    /// Reload the schema on SIGUSR1 (PostgREST's convention). On by default; tests that run
    /// several apps in one process turn it off where another test's signal must not reach.
    pub reload_on_sigusr1: bool,
}

/// How the todo page signs people in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SignInMode {
    /// No sign-in on the page: the API still takes any valid token.
    #[default]
    None,
    /// Local development: serve `/dev/users` and `/dev/token`, minting tokens for the users in
    /// `users_file`; only with a loopback `bind` ([`AppConfig::check`]).
    Dev { users_file: PathBuf },
    /// Sign in with Clerk. The key is public by design (it is sent to every browser): safe to log.
    Clerk { publishable_key: String },
}

impl SignInMode {
    /// Dev sign-in with the workspace's `fixtures/users.json`.
    pub fn dev() -> Self {
        Self::Dev {
            users_file: default_dev_users_file(),
        }
    }

    /// `none`, `dev` or `clerk`, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Dev { .. } => "dev",
            Self::Clerk { .. } => "clerk",
        }
    }
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("jwt_secret", &self.jwt_secret)
            .field("bind", &self.bind)
            .field("audience", &self.audience)
            .field("max_connections", &self.max_connections)
            .field("statement_timeout", &self.statement_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("sign_in", &self.sign_in)
            .field("db_schema", &self.db_schema)
            .field("claims_forwarding", &self.claims_forwarding)
            .field("reload_on_sigusr1", &self.reload_on_sigusr1)
            .finish()
    }
}

/// The URL with any password replaced, for logs; unparsable URLs are hidden entirely.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

impl AppConfig {
    /// The defaults around the two settings that have none.
    pub fn new(database_url: impl Into<String>, jwt_secret: Secret) -> Self {
        Self {
            database_url: database_url.into(),
            jwt_secret,
            bind: SocketAddr::from(([127, 0, 0, 1], 7130)),
            audience: Some(INSFORGE_AUDIENCE.to_owned()),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            statement_timeout: Duration::from_millis(DEFAULT_STATEMENT_TIMEOUT_MS),
            acquire_timeout: Duration::from_millis(DEFAULT_ACQUIRE_TIMEOUT_MS),
            sign_in: SignInMode::None,
            db_schema: DEFAULT_DB_SCHEMA.to_owned(),
            claims_forwarding: ClaimsForwarding::default(),
            reload_on_sigusr1: true,
        }
    }

    /// Refuses combinations that must not run: dev sign-in on a non-loopback address (it
    /// would hand out tokens to the network) and a publishable key that names no Clerk
    /// frontend API. (Both sign-in modes at once cannot be built: [`SignInMode`].) [`AppConfig::from_layers`] and
    /// [`crate::AppState::new`] both call it, so a config built by hand is checked too.
    pub fn check(&self) -> Result<(), ConfigError> {
        match &self.sign_in {
            SignInMode::Dev { .. } if !self.bind.ip().to_canonical().is_loopback() => {
                Err(ConfigError::DevSignInNotLoopback { bind: self.bind })
            }
            SignInMode::Clerk { publishable_key } => {
                crate::page::ClerkFrontend::from_publishable_key(publishable_key).map_err(
                    |reason| ConfigError::Invalid {
                        var: ENV_CLERK_PUBLISHABLE_KEY,
                        reason: reason.to_owned(),
                    },
                )?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Parses the process's arguments and environment and the workspace `.env`. Exits the
    /// process on `--help`, `--version` and bad flags, as clap does.
    pub fn load() -> Result<Self, ConfigError> {
        let cli = Cli::parse();
        let dotenv = match find_env_file() {
            Some(path) => read_env_file(&path)?,
            None => HashMap::new(),
        };
        Self::from_layers(cli, &dotenv)
    }

    /// Combines flags-and-environment (`cli`, as clap filled it) with the `.env` values, then
    /// the defaults.
    pub fn from_layers(cli: Cli, dotenv: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let pick = |value: Option<String>, var: &str| value.or_else(|| dotenv.get(var).cloned());
        let database_url = pick(cli.database_url, ENV_DATABASE_URL)
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Missing {
                var: ENV_DATABASE_URL,
                flag: "database-url",
            })?;
        let secret = pick(cli.jwt_secret, ENV_JWT_SECRET)
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Missing {
                var: ENV_JWT_SECRET,
                flag: "jwt-secret",
            })?;
        let jwt_secret = Secret::new(secret).map_err(|source| ConfigError::Secret {
            var: ENV_JWT_SECRET,
            source,
        })?;

        let mut config = Self::new(database_url, jwt_secret);
        if let Some(bind) = typed(cli.bind, dotenv, ENV_BIND, parse_bind)? {
            config.bind = bind;
        }
        if let Some(audience) = pick(cli.audience, ENV_AUDIENCE) {
            config.audience = (!audience.is_empty()).then_some(audience);
        }
        if let Some(n) = typed(
            cli.max_connections,
            dotenv,
            ENV_MAX_CONNECTIONS,
            parse_max_connections,
        )? {
            config.max_connections = n;
        }
        if let Some(ms) = typed(
            cli.statement_timeout_ms,
            dotenv,
            ENV_STATEMENT_TIMEOUT_MS,
            parse_millis,
        )? {
            config.statement_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = typed(
            cli.acquire_timeout_ms,
            dotenv,
            ENV_ACQUIRE_TIMEOUT_MS,
            parse_millis,
        )? {
            config.acquire_timeout = Duration::from_millis(ms);
        }
        if let Some(schema) = typed(cli.db_schema, dotenv, ENV_DB_SCHEMA, parse_db_schema)? {
            config.db_schema = schema;
        }
        if let Some(mode) = typed(
            cli.claims_forwarding,
            dotenv,
            ENV_CLAIMS_FORWARDING,
            parse_claims_forwarding,
        )? {
            config.claims_forwarding = mode;
        }
        let dev = typed(cli.dev_sign_in, dotenv, ENV_DEV_SIGN_IN, parse_switch)?.unwrap_or(false);
        let clerk = pick(cli.clerk_publishable_key, ENV_CLERK_PUBLISHABLE_KEY)
            .map(|key| key.trim().to_owned())
            .filter(|key| !key.is_empty());
        config.sign_in = match (dev, clerk) {
            (true, Some(_)) => return Err(ConfigError::TwoSignInModes),
            (true, None) => SignInMode::Dev {
                users_file: pick(cli.dev_users_file, ENV_DEV_USERS_FILE)
                    .filter(|p| !p.is_empty())
                    .map_or_else(default_dev_users_file, PathBuf::from),
            },
            (false, Some(publishable_key)) => SignInMode::Clerk { publishable_key },
            (false, None) => SignInMode::None,
        };
        config.check()?;
        Ok(config)
    }
}

/// The workspace's `fixtures/users.json` ([`workspace_root`]), so
/// `cargo run -p todo-app -- --dev-sign-in` works from any folder inside the checkout.
pub fn default_dev_users_file() -> PathBuf {
    workspace_root().join("fixtures/users.json")
}

/// The layer below flags and the environment: `value` as clap parsed it, else the `.env` line
/// for `var` through the same `parse`, its error naming `var`.
fn typed<T>(
    value: Option<T>,
    dotenv: &HashMap<String, String>,
    var: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    match value {
        Some(value) => Ok(Some(value)),
        None => dotenv
            .get(var)
            .map(|raw| parse(raw).map_err(|reason| ConfigError::Invalid { var, reason }))
            .transpose(),
    }
}

/// A switch as people write it in flags and environment files.
fn parse_switch(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("expected true or false (1/0, yes/no, on/off)".into()),
    }
}

fn parse_bind(value: &str) -> Result<SocketAddr, String> {
    value
        .trim()
        .parse()
        .map_err(|e: std::net::AddrParseError| e.to_string())
}

/// A schema name as the catalog spells it (case and all); it is only ever compared with
/// `pg_namespace.nspname` and quoted, so any non-empty name is safe.
fn parse_db_schema(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        Err("must name a schema, as in public".into())
    } else if value.contains('\0') {
        Err("cannot contain a NUL character".into())
    } else {
        Ok(value.to_owned())
    }
}

/// `insforge` (the default: what InsForge ≥ 2.2.5 forwards) or `all` (InsForge ≤ 2.2.1); the
/// same words as `cargo xtask check --claims-forwarding`.
fn parse_claims_forwarding(value: &str) -> Result<ClaimsForwarding, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "insforge" => Ok(ClaimsForwarding::InsForge23),
        "all" => Ok(ClaimsForwarding::All),
        _ => Err("expected insforge (InsForge ≥ 2.2.5) or all (InsForge ≤ 2.2.1)".into()),
    }
}

/// A pool needs at least one connection.
fn parse_max_connections(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Milliseconds; 0 is allowed (for `statement_timeout` it disables the limit, as in Postgres).
fn parse_millis(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse()
        .map_err(|e: std::num::ParseIntError| e.to_string())
}

/// `.env` in the working directory or the nearest ancestor holding one, else the workspace
/// root ([`workspace_root`], so `cargo run -p todo-app` works from any folder inside it).
pub fn find_env_file() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok();
    let from_cwd = cwd
        .iter()
        .flat_map(|d| d.ancestors())
        .map(|d| d.join(".env"))
        .find(|p| p.is_file());
    from_cwd.or_else(|| Some(workspace_root().join(".env")).filter(|p| p.is_file()))
}

/// The `KEY=value` pairs of an env file. A malformed line is reported by number only: its
/// text may be a secret.
pub fn read_env_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let fail = |reason: String| ConfigError::EnvFile {
        path: path.to_owned(),
        reason,
    };
    let iter = dotenvy::from_path_iter(path).map_err(|e| fail(env_error(&e)))?;
    let mut out = HashMap::new();
    for item in iter {
        let (key, value) = item.map_err(|e| fail(env_error(&e)))?;
        out.insert(key, value);
    }
    Ok(out)
}

fn env_error(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(_, index) => format!("malformed line near character {index}"),
        dotenvy::Error::Io(io) => io.to_string(),
        dotenvy::Error::EnvVar(var) => var.to_string(),
        // Unknown future variants might quote the file: say nothing specific.
        _ => "unreadable".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

    fn dotenv(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_fill_what_no_layer_sets() {
        let cfg = AppConfig::from_layers(
            Cli::default(),
            &dotenv(&[
                (ENV_DATABASE_URL, "postgres://a:pw@h/db"),
                (ENV_JWT_SECRET, SECRET),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.bind.to_string(), "127.0.0.1:7130");
        assert_eq!(cfg.audience.as_deref(), Some("insforge-api"));
        assert_eq!(cfg.max_connections, 10);
        assert_eq!(cfg.statement_timeout, Duration::from_secs(5));
        assert_eq!(cfg.database_url, "postgres://a:pw@h/db");
        assert_eq!(cfg.db_schema, "public");
        assert_eq!(cfg.claims_forwarding, ClaimsForwarding::InsForge23);
        assert!(cfg.reload_on_sigusr1);
    }

    #[test]
    fn schema_and_claims_forwarding_from_any_layer() {
        let cli = Cli::try_parse_from([
            "todo-app",
            "--db-schema",
            "api",
            "--claims-forwarding",
            "all",
        ])
        .unwrap();
        let cfg = AppConfig::from_layers(cli, &base()).unwrap();
        assert_eq!(cfg.db_schema, "api");
        assert_eq!(cfg.claims_forwarding, ClaimsForwarding::All);

        let mut file = base();
        file.insert(ENV_DB_SCHEMA.into(), "My Schema".into());
        file.insert(ENV_CLAIMS_FORWARDING.into(), "insforge".into());
        let cfg = AppConfig::from_layers(Cli::default(), &file).unwrap();
        assert_eq!(cfg.db_schema, "My Schema");
        assert_eq!(cfg.claims_forwarding, ClaimsForwarding::InsForge23);

        for (var, bad) in [(ENV_DB_SCHEMA, " "), (ENV_CLAIMS_FORWARDING, "some")] {
            let mut file = base();
            file.insert(var.into(), bad.into());
            let err = AppConfig::from_layers(Cli::default(), &file).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
        let err = Cli::try_parse_from(["todo-app", "--claims-forwarding=none"]).unwrap_err();
        assert!(err.to_string().contains("--claims-forwarding"), "{err}");
    }

    #[test]
    fn flags_and_environment_beat_the_env_file() {
        let cli = Cli::try_parse_from([
            "todo-app",
            "--database-url",
            "postgres://flag@h/db",
            "--jwt-secret",
            SECRET,
            "--bind",
            "127.0.0.1:0",
            "--audience",
            "",
            "--max-connections",
            "3",
            "--statement-timeout-ms",
            "250",
        ])
        .unwrap();
        let file = dotenv(&[
            (ENV_DATABASE_URL, "postgres://file@h/db"),
            (ENV_JWT_SECRET, "file-secret-file-secret-file-secret-42"),
            (ENV_BIND, "0.0.0.0:1"),
            (ENV_MAX_CONNECTIONS, "7"),
        ]);
        let cfg = AppConfig::from_layers(cli, &file).unwrap();
        assert_eq!(cfg.database_url, "postgres://flag@h/db");
        assert_eq!(cfg.bind.port(), 0);
        assert_eq!(cfg.audience, None);
        assert_eq!(cfg.max_connections, 3);
        assert_eq!(cfg.statement_timeout, Duration::from_millis(250));
        assert_eq!(cfg.jwt_secret.expose(), SECRET);
    }

    #[test]
    fn missing_settings_say_how_to_fix_them() {
        let err = AppConfig::from_layers(Cli::default(), &HashMap::new()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("DATABASE_URL") && msg.contains("cargo xtask setup"),
            "{msg}"
        );

        let err = AppConfig::from_layers(
            Cli::default(),
            &dotenv(&[(ENV_DATABASE_URL, "postgres://a@h/db")]),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("INSFORGE_JWT_SECRET") && msg.contains("cargo xtask setup"),
            "{msg}"
        );

        let err = AppConfig::from_layers(
            Cli::default(),
            &dotenv(&[
                (ENV_DATABASE_URL, "postgres://a@h/db"),
                (ENV_JWT_SECRET, "short-secret"),
            ]),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("short-secret"), "{err}");
    }

    #[test]
    fn invalid_values_are_named() {
        let file = dotenv(&[
            (ENV_DATABASE_URL, "postgres://a@h/db"),
            (ENV_JWT_SECRET, SECRET),
            (ENV_MAX_CONNECTIONS, "0"),
        ]);
        let err = AppConfig::from_layers(Cli::default(), &file).unwrap_err();
        assert!(err.to_string().contains(ENV_MAX_CONNECTIONS), "{err}");
        let mut file = file;
        file.insert(ENV_MAX_CONNECTIONS.into(), "2".into());
        file.insert(ENV_BIND.into(), "localhost".into());
        let err = AppConfig::from_layers(Cli::default(), &file).unwrap_err();
        assert!(err.to_string().contains(ENV_BIND), "{err}");
        // Flags (and the environment, through clap) follow the same rules, typed by clap.
        for (flag, value, reason) in [
            ("--max-connections", "0", "must be at least 1"),
            ("--max-connections", "ten", "invalid digit"),
            ("--statement-timeout-ms", "-1", "invalid digit"),
            ("--bind", "localhost", "invalid socket address"),
            ("--dev-sign-in", "maybe", "expected true or false"),
        ] {
            let err = Cli::try_parse_from(["todo-app", &format!("{flag}={value}")]).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(flag) && msg.contains(reason), "{msg}");
        }
        let cli = Cli::try_parse_from(["todo-app", "--statement-timeout-ms", " 0 "]).unwrap();
        assert_eq!(cli.statement_timeout_ms, Some(0));
    }

    fn base() -> HashMap<String, String> {
        dotenv(&[
            (ENV_DATABASE_URL, "postgres://a@h/db"),
            (ENV_JWT_SECRET, SECRET),
        ])
    }

    fn clerk_key() -> String {
        use base64::Engine as _;
        format!(
            "pk_test_{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode("name-12.clerk.accounts.dev$")
        )
    }

    #[test]
    fn dev_sign_in_is_a_switch_from_any_layer() {
        let is_dev = |cfg: &AppConfig| matches!(cfg.sign_in, SignInMode::Dev { .. });
        let cfg = AppConfig::from_layers(Cli::default(), &base()).unwrap();
        assert_eq!(cfg.sign_in, SignInMode::None);

        let cli = Cli::try_parse_from(["todo-app", "--dev-sign-in"]).unwrap();
        let cfg = AppConfig::from_layers(cli, &base()).unwrap();
        assert!(
            matches!(&cfg.sign_in, SignInMode::Dev { users_file } if users_file.ends_with("fixtures/users.json")),
            "{cfg:?}"
        );
        let cli = Cli::try_parse_from(["todo-app", "--dev-sign-in", "--bind", "[::1]:0"]).unwrap();
        assert!(is_dev(&AppConfig::from_layers(cli, &base()).unwrap()));

        let mut file = base();
        file.insert(ENV_DEV_SIGN_IN.into(), "1".into());
        file.insert(ENV_DEV_USERS_FILE.into(), "/tmp/users.json".into());
        let cfg = AppConfig::from_layers(Cli::default(), &file).unwrap();
        assert_eq!(
            cfg.sign_in,
            SignInMode::Dev {
                users_file: PathBuf::from("/tmp/users.json")
            }
        );
        // The flag beats the file, in both directions.
        let cli = Cli::try_parse_from(["todo-app", "--dev-sign-in=false"]).unwrap();
        assert!(!is_dev(&AppConfig::from_layers(cli, &file).unwrap()));

        file.insert(ENV_DEV_SIGN_IN.into(), "maybe".into());
        let err = AppConfig::from_layers(Cli::default(), &file).unwrap_err();
        assert!(err.to_string().contains(ENV_DEV_SIGN_IN), "{err}");
    }

    #[test]
    fn dev_sign_in_is_refused_off_loopback() {
        for bind in ["0.0.0.0:7130", "[::]:7130", "192.0.2.10:80"] {
            let cli = Cli::try_parse_from(["todo-app", "--dev-sign-in", "--bind", bind]).unwrap();
            let err = AppConfig::from_layers(cli, &base()).unwrap_err();
            assert!(
                matches!(err, ConfigError::DevSignInNotLoopback { .. }),
                "{bind}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("loopback") && msg.contains("--bind 127.0.0.1"),
                "{msg}"
            );
            // Without dev sign-in, any address is fine.
            let cli = Cli::try_parse_from(["todo-app", "--bind", bind]).unwrap();
            assert!(AppConfig::from_layers(cli, &base()).is_ok());
        }
        for bind in [
            "127.0.0.1:0",
            "127.8.9.10:1",
            "[::1]:7130",
            "[::ffff:127.0.0.1]:7130",
        ] {
            let mut cfg = AppConfig::from_layers(Cli::default(), &base()).unwrap();
            cfg.bind = bind.parse().unwrap();
            cfg.sign_in = SignInMode::dev();
            assert!(cfg.check().is_ok(), "{bind}");
        }
    }

    #[test]
    fn a_clerk_key_must_name_a_frontend_api_and_excludes_dev_sign_in() {
        let key = clerk_key();
        let cli = Cli::try_parse_from(["todo-app", "--clerk-publishable-key", &key]).unwrap();
        let cfg = AppConfig::from_layers(cli, &base()).unwrap();
        assert_eq!(
            cfg.sign_in,
            SignInMode::Clerk {
                publishable_key: key.clone()
            }
        );

        let cli =
            Cli::try_parse_from(["todo-app", "--clerk-publishable-key", "pk_test_nope"]).unwrap();
        let err = AppConfig::from_layers(cli, &base()).unwrap_err();
        assert!(err.to_string().contains(ENV_CLERK_PUBLISHABLE_KEY), "{err}");

        let cli =
            Cli::try_parse_from(["todo-app", "--dev-sign-in", "--clerk-publishable-key", &key])
                .unwrap();
        let err = AppConfig::from_layers(cli, &base()).unwrap_err();
        assert!(matches!(err, ConfigError::TwoSignInModes), "{err}");
        // An empty key turns Clerk off, so a .env key does not block dev sign-in.
        let mut file = base();
        file.insert(ENV_CLERK_PUBLISHABLE_KEY.into(), key.clone());
        let cli = Cli::try_parse_from(["todo-app", "--dev-sign-in", "--clerk-publishable-key", ""])
            .unwrap();
        let cfg = AppConfig::from_layers(cli, &file).unwrap();
        assert!(matches!(cfg.sign_in, SignInMode::Dev { .. }), "{cfg:?}");
    }

    #[test]
    fn debug_and_redaction_hide_secrets() {
        let cfg = AppConfig::new(
            "postgres://app:hunter2hunter2@db:5432/x",
            Secret::new(SECRET).unwrap(),
        );
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains(SECRET),
            "{shown}"
        );
        assert_eq!(redact_url("not a url hunter2"), "<unparsable URL>");
    }

    #[test]
    fn env_files_are_read_without_touching_the_environment() {
        let dir = std::env::temp_dir().join(format!("todo-app-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(
            &path,
            "# comment\nDATABASE_URL=postgres://x@h/db\nTODO_APP_TEST_ONLY_KEY=1\n",
        )
        .unwrap();
        let map = read_env_file(&path).unwrap();
        assert_eq!(map["DATABASE_URL"], "postgres://x@h/db");
        assert!(std::env::var("TODO_APP_TEST_ONLY_KEY").is_err());
        std::fs::write(&path, "GOOD=1\nthis is 'not valid sup3rsecret\n").unwrap();
        let err = read_env_file(&path).unwrap_err().to_string();
        assert!(!err.contains("sup3rsecret"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
