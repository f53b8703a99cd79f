//! Dev sign-in: `GET /dev/users` lists local test users and `POST /dev/token` mints one's
//! Clerk-shaped `insforge` token on the server, so the page works without a Clerk account.
//!
//! Anyone who can call `/dev/token` can act as any listed user, so it is fenced in:
//!
//! - the routes exist only with `--dev-sign-in` (otherwise 404), and the app refuses to start
//!   with it unless it listens on loopback ([`crate::AppConfig::check`]);
//! - both answer only a loopback `Host` (`localhost`, `127.x`, `[::1]`): a site whose DNS name
//!   is re-pointed at 127.0.0.1 ("DNS rebinding") sends its own name and is refused;
//! - `POST /dev/token` wants `Content-Type: application/json` and, when the browser sends an
//!   `Origin`, the page's own: a cross-site form cannot send JSON, and a cross-site `fetch`
//!   of JSON needs a CORS preflight that this app never approves.
//!
//! Tokens are minted exactly as Clerk's `insforge` template would (HS256 with the app's
//! secret, `role: authenticated`, `aud: insforge-api`, Clerk's 60 s lifetime). They are never
//! logged; only the user's key is.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clerk_token::{ClerkTemplate, ClerkUser, Secret};
use serde::Deserialize;
use serde_json::json;

use crate::config::ConfigError;
use crate::error::ApiError;
use crate::parse_error::ParseError;

/// Most users a users file may list: it feeds a picker, not a directory.
const MAX_USERS: usize = 100;

/// A local test user, as `fixtures/users.json` lists it (read by `clerk-token`, the file's one
/// reader): `key` is shown in the picker and sent to `/dev/token`, `id` is the token's `sub`.
pub type DevUser = clerk_token::KnownUser;

/// The users and the template their tokens are minted with.
#[derive(Debug, Clone)]
pub struct DevSignIn {
    users: Vec<DevUser>,
    template: ClerkTemplate,
}

impl DevSignIn {
    /// Reads `{"users":[{"key","id","email"}]}` from `path` (other fields are ignored).
    pub fn load(path: &Path, secret: Secret) -> Result<Self, ConfigError> {
        let fail = |reason: String| ConfigError::DevUsers {
            path: path.to_owned(),
            reason,
        };
        let users = clerk_token::read_users(path).map_err(|e| {
            // The cause's text, as the configuration error is reported on one line.
            match std::error::Error::source(&e) {
                Some(cause) => fail(cause.to_string()),
                None => fail(e.to_string()),
            }
        })?;
        Self::new(users, secret).map_err(fail)
    }

    /// Checks the list: 1 to 100 users, non-empty unique keys, non-empty ids.
    pub fn new(users: Vec<DevUser>, secret: Secret) -> Result<Self, String> {
        if users.is_empty() || users.len() > MAX_USERS {
            return Err(format!(
                "expected 1 to {MAX_USERS} users, found {}",
                users.len()
            ));
        }
        for (i, user) in users.iter().enumerate() {
            if user.key.trim().is_empty() || user.id.is_empty() {
                return Err(format!("user #{} has an empty key or id", i + 1));
            }
            if users[..i].iter().any(|u| u.key == user.key) {
                return Err(format!("the key {:?} is listed twice", user.key));
            }
        }
        Ok(Self {
            users,
            template: ClerkTemplate::insforge(secret),
        })
    }

    pub fn users(&self) -> &[DevUser] {
        &self.users
    }

    pub fn user(&self, key: &str) -> Option<&DevUser> {
        self.users.iter().find(|u| u.key == key)
    }

    /// A fresh `insforge` template token for `user`.
    pub fn mint(&self, user: &DevUser) -> Result<String, ApiError> {
        let mut clerk = ClerkUser::new(user.id.clone());
        if let Some(email) = &user.email {
            clerk = clerk.with_email(email.clone());
        }
        self.template.mint(&clerk).map_err(|e| {
            tracing::error!(reason = e.code(), "cannot mint a dev token");
            ApiError::Internal
        })
    }

    /// Seconds a minted token lives.
    pub fn lifetime_secs(&self) -> u32 {
        self.template.lifetime_secs()
    }
}

/// Is `host` (a `Host` header value, with or without port) this machine's loopback?
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // `[::1]:port`; an unclosed bracket names nothing.
        rest.split_once(']').map_or("", |(name, _port)| name)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    let name = name.to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The guard both endpoints share (see the module docs). Returns the `Host` it accepted.
fn local_only(headers: &HeaderMap) -> Result<&str, ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| is_loopback_host(h))
        .ok_or_else(|| {
            tracing::debug!(reason = "host_not_loopback", "dev sign-in refused");
            ApiError::DevNotLocal
        })?;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let same = origin
            .to_str()
            .is_ok_and(|o| o.strip_prefix("http://") == Some(host));
        if !same {
            tracing::debug!(reason = "cross_origin", "dev sign-in refused");
            return Err(ApiError::DevNotLocal);
        }
    }
    Ok(host)
}

fn dev(state: Option<Arc<DevSignIn>>) -> Result<Arc<DevSignIn>, ApiError> {
    // The routes are only mounted with dev sign-in on; this is belt and braces.
    state.ok_or(ApiError::RouteNotFound)
}

fn no_store_json(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            ),
            // A token must not be kept by any cache.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// `GET /dev/users`: `{"users":[{"key","id","email"}]}`.
pub async fn users(
    State(state): State<Option<Arc<DevSignIn>>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let dev = dev(state)?;
    local_only(&headers)?;
    let body = json!({ "users": dev.users() });
    Ok(no_store_json(StatusCode::OK, body.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    user: String,
}

/// `POST /dev/token {"user":"alice"}`: `{"token","expires_in","user"}`.
pub async fn token(
    State(state): State<Option<Arc<DevSignIn>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let dev = dev(state)?;
    local_only(&headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or(""))
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType(content_type.to_owned()));
    }
    let bytes = body.map_err(|_| ApiError::BodyUnreadable)?;
    let invalid = |details: String| {
        ApiError::Parse(ParseError::InvalidBody {
            message: "Expected {\"user\":\"<key>\"}",
            details: Some(details),
        })
    };
    // An object, not just anything serde maps onto the struct (it would take `["alice"]`).
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    if !value.is_object() {
        return Err(invalid("the body is not a JSON object".into()));
    }
    let request: TokenRequest =
        serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    let user = dev
        .user(&request.user)
        .ok_or_else(|| ApiError::UnknownDevUser {
            key: request.user.clone(),
            known: dev.users().iter().map(|u| u.key.clone()).collect(),
        })?;
    let token = dev.mint(user)?;
    tracing::info!(user = %user.key, "dev token minted");
    let body = json!({
        "token": token,
        "expires_in": dev.lifetime_secs(),
        "user": user,
    });
    Ok(no_store_json(StatusCode::OK, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(key: &str) -> DevUser {
        DevUser {
            key: key.into(),
            id: format!("user_{key}"),
            email: None,
        }
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:7130",
            "LOCALHOST:1",
            "app.localhost:80",
            "127.0.0.1",
            "127.0.0.1:7130",
            "127.1.2.3:9",
            "[::1]:7130",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "example.com",
            "localhost.example.com:7130",
            "10.0.0.1:7130",
            "0.0.0.0:7130",
            "[::]:7130",
            "127.0.0.1.nip.io",
            "[::1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn user_lists_are_checked() {
        let secret = Secret::generate();
        assert!(DevSignIn::new(vec![], secret.clone()).is_err());
        assert!(DevSignIn::new(vec![user("a"), user("a")], secret.clone()).is_err());
        assert!(DevSignIn::new(vec![user(" ")], secret.clone()).is_err());
        let dev = DevSignIn::new(vec![user("a"), user("b")], secret).unwrap();
        assert_eq!(dev.user("b").map(|u| u.id.as_str()), Some("user_b"));
        assert!(dev.user("c").is_none());
    }

    #[test]
    fn minted_tokens_verify_as_the_user() {
        let secret = Secret::generate();
        let dev = DevSignIn::new(
            vec![DevUser {
                email: Some("a@example.com".into()),
                ..user("a")
            }],
            secret.clone(),
        )
        .unwrap();
        let token = dev.mint(&dev.users()[0]).unwrap();
        let identity = clerk_token::Verifier::new(secret).verify(&token).unwrap();
        assert_eq!(identity.sub, "user_a");
        assert_eq!(identity.role, "authenticated");
        assert_eq!(dev.lifetime_secs(), 60);
    }

    #[test]
    fn the_workspace_fixtures_load() {
        let path = crate::config::default_dev_users_file();
        let dev = DevSignIn::load(&path, Secret::generate()).unwrap();
        assert!(dev.user("alice").is_some() && dev.user("bob").is_some());
        let err = DevSignIn::load(Path::new("/nonexistent/users.json"), Secret::generate())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/nonexistent/users.json") && err.contains("--dev-users-file"),
            "{err}"
        );
    }
}
