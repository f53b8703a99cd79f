//! The [`Identity`] extractor: verifies `Authorization: Bearer …` as InsForge does and hands
//! the handler who the database should believe is asking.
//!
//! Differences from InsForge 2.3.x, on purpose:
//!
//! - only the `authenticated` role is served. InsForge treats a signed `role: project_admin`
//!   as an admin that **bypasses RLS**, and opaque `anon_…` / `ik_…` keys as anonymous or
//!   admin callers. This app has no admin surface, so any other role gets 403 and opaque keys
//!   are invalid tokens (401): RLS always applies;
//! - by default `aud` must be `insforge-api` (the `insforge` template sets it; InsForge does not
//!   check it). `--audience ""` turns the check off.
//!
//! What reaches Postgres as `request.jwt.claims` follows [`ClaimsForwarding`] (pg-identity, the
//! one owner of that list): by default what InsForge ≥ 2.2.5 hands PostgREST — it re-signs the
//! caller as a fresh 5-minute token with `sub`, `email` and `role`
//! (`PostgrestProxyService.forwardAsUser`, `TokenManager.generatePostgrestUserToken`, InsForge
//! v2.3.1), so `iat` is the time of the request and `exp` 300 s later, whatever the Clerk token
//! said. `--claims-forwarding all` forwards every claim of the token, as InsForge ≤ 2.2.1 did.
//!
//! Failure bodies never say which check failed; the reason is logged at debug level by its
//! stable code, never with the token.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use clerk_token::{BearerError, parse_bearer};
use pg_identity::ClaimsForwarding;
use serde_json::{Map, Value};

use crate::AppState;
use crate::error::ApiError;

/// The only role this app lets through to the database.
pub const ALLOWED_ROLE: &str = "authenticated";

/// Lifetime of the token InsForge mints for PostgREST (`expiresIn: '5m'`).
pub const FORWARDED_TOKEN_SECS: u64 = 300;

/// The claims Postgres sees for a verified token's `claims`, at `now` (seconds since the epoch).
pub fn forwarded_claims(
    forwarding: ClaimsForwarding,
    claims: Map<String, Value>,
    now: u64,
) -> Map<String, Value> {
    let mut kept = forwarding.apply(claims);
    if forwarding == ClaimsForwarding::InsForge23 {
        // InsForge's token is new: its own iat/exp, not the Clerk token's.
        kept.insert("iat".into(), Value::from(now));
        kept.insert("exp".into(), Value::from(now + FORWARDED_TOKEN_SECS));
    }
    kept
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A verified caller with the `authenticated` role.
#[derive(Clone)]
pub struct Identity {
    sub: String,
    /// Role `authenticated` and the token's claims, as the database will be told.
    db: pg_identity::DbIdentity,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Claims may hold an email address: keep them out of debug output.
        f.debug_struct("Identity")
            .field("sub", &self.sub)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The token's `sub` (a Clerk user id).
    #[cfg(test)]
    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// All claims as JSON, as `request.jwt.claims` will hold them.
    #[cfg(test)]
    pub fn claims_json(&self) -> &str {
        self.db.claims.as_deref().unwrap_or_default()
    }

    /// Who the database should believe is asking.
    pub(crate) fn db(&self) -> &pg_identity::DbIdentity {
        &self.db
    }

    /// Checks an `Authorization` header value with `verifier`; the claims Postgres will see are
    /// those `forwarding` keeps.
    pub fn from_header(
        value: Option<&str>,
        verifier: &clerk_token::Verifier,
        forwarding: ClaimsForwarding,
    ) -> Result<Self, ApiError> {
        let Some(value) = value else {
            tracing::debug!(reason = "missing_authorization", "request refused");
            return Err(ApiError::MissingToken);
        };
        let token = parse_bearer(value).map_err(|e| {
            tracing::debug!(reason = e.code(), "request refused");
            match e {
                // InsForge answers "No token provided" whenever there is no Bearer token.
                BearerError::Empty | BearerError::NotBearer | BearerError::MissingToken => {
                    ApiError::MissingToken
                }
                BearerError::InvalidToken => ApiError::InvalidToken,
            }
        })?;
        let identity = verifier.verify(token).map_err(|e| {
            tracing::debug!(reason = e.code(), "token refused");
            ApiError::InvalidToken
        })?;
        if identity.role != ALLOWED_ROLE {
            tracing::debug!(reason = "role_not_allowed", "request refused");
            return Err(ApiError::RoleNotAllowed);
        }
        let claims = forwarded_claims(forwarding, identity.claims, unix_now());
        Ok(Self {
            db: pg_identity::DbIdentity::authenticated(&Value::Object(claims)),
            sub: identity.sub,
        })
    }
}

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let mut values = parts.headers.get_all(AUTHORIZATION).iter();
        let first = values.next();
        if values.next().is_some() {
            // Two credentials: which one is meant is ambiguous, so neither is used.
            tracing::debug!(reason = "repeated_authorization", "request refused");
            return Err(ApiError::InvalidToken);
        }
        let value = match first {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                tracing::debug!(reason = "non_ascii_authorization", "request refused");
                ApiError::InvalidToken
            })?),
        };
        Self::from_header(value, state.verifier(), state.forwarding())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clerk_token::{ClerkTemplate, ClerkUser, Secret, Verifier};
    use serde_json::json;

    fn setup() -> (ClerkTemplate, Verifier) {
        let secret = Secret::generate();
        (
            ClerkTemplate::insforge(secret.clone()),
            Verifier::new(secret),
        )
    }

    #[test]
    fn accepts_an_insforge_template_token() {
        let (template, verifier) = setup();
        let token = template.mint(&ClerkUser::new("user_2abc")).unwrap();
        let id = Identity::from_header(
            Some(&format!("Bearer {token}")),
            &verifier,
            ClaimsForwarding::All,
        )
        .unwrap();
        assert_eq!(id.sub(), "user_2abc");
        let claims: serde_json::Value = serde_json::from_str(id.claims_json()).unwrap();
        assert_eq!(claims["role"], "authenticated");
        assert_eq!(claims["aud"], "insforge-api");
        assert!(!format!("{id:?}").contains("role"));
    }

    #[test]
    fn by_default_postgres_sees_what_insforge_23_forwards() {
        let (template, verifier) = setup();
        let mut user = ClerkUser::new("user_2abc");
        user.email = Some("a@example.com".into());
        user.extra_claims.insert("org_id".into(), json!("org_1"));
        let token = template.mint(&user).unwrap();
        let before = unix_now();
        let id = Identity::from_header(
            Some(&format!("Bearer {token}")),
            &verifier,
            ClaimsForwarding::default(),
        )
        .unwrap();
        let claims: serde_json::Map<String, Value> =
            serde_json::from_str(id.claims_json()).unwrap();
        let mut keys: Vec<&str> = claims.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["email", "exp", "iat", "role", "sub"]);
        assert_eq!(claims["email"], "a@example.com");
        let iat = claims["iat"].as_u64().unwrap();
        assert!(iat >= before && iat <= unix_now(), "{iat}");
        assert_eq!(claims["exp"].as_u64().unwrap(), iat + FORWARDED_TOKEN_SECS);
    }

    #[test]
    fn forwarding_keeps_exactly_the_shared_list() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"sub":"u","role":"authenticated","iat":1,"exp":61,"nbf":0,"aud":"insforge-api","azp":"http://x","org_id":"o"}"#,
        )
        .unwrap();
        let kept = forwarded_claims(ClaimsForwarding::InsForge23, claims.clone(), 1000);
        assert_eq!(
            Value::Object(kept),
            json!({"sub":"u","role":"authenticated","iat":1000,"exp":1300})
        );
        assert_eq!(
            forwarded_claims(ClaimsForwarding::All, claims.clone(), 1000),
            claims
        );
    }

    #[test]
    fn refusals() {
        let (template, verifier) = setup();
        let user = ClerkUser::new("user_2abc");
        let check = |header: Option<&str>| {
            Identity::from_header(header, &verifier, ClaimsForwarding::default()).unwrap_err()
        };
        assert!(matches!(check(None), ApiError::MissingToken));
        assert!(matches!(check(Some("")), ApiError::MissingToken));
        assert!(matches!(
            check(Some("Basic dXNlcg==")),
            ApiError::MissingToken
        ));
        assert!(matches!(check(Some("Bearer ")), ApiError::MissingToken));
        assert!(matches!(check(Some("Bearer a b")), ApiError::InvalidToken));
        assert!(matches!(
            check(Some("Bearer x.y.z")),
            ApiError::InvalidToken
        ));
        assert!(matches!(
            check(Some("Bearer anon_abc")),
            ApiError::InvalidToken
        ));

        let other = ClerkTemplate::insforge(Secret::generate())
            .mint(&user)
            .unwrap();
        assert!(matches!(
            check(Some(&format!("Bearer {other}"))),
            ApiError::InvalidToken
        ));
        for role in ["project_admin", "anon", "service_role"] {
            let mut overrides = serde_json::Map::new();
            overrides.insert("role".into(), json!(role));
            let token = template.mint_with_overrides(&user, overrides).unwrap();
            assert!(
                matches!(
                    check(Some(&format!("Bearer {token}"))),
                    ApiError::RoleNotAllowed
                ),
                "{role}"
            );
        }
    }
}
