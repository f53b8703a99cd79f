//! Verifying a bearer JWT the way InsForge 2.3.x does (HS256 with `JWT_SECRET`, `exp`/`nbf`
//! with 0 s leeway, `sub` required, `role` defaulting to `authenticated`), but stricter on shape.
//!
//! Order of checks, cheapest and least trusting first:
//!
//! 1. size (more than [`DEFAULT_MAX_TOKEN_BYTES`] by default → [`TokenError::TooLarge`],
//!    before any decoding);
//! 2. exactly three `.`-separated parts, each strict base64url without padding;
//! 3. header: a JSON object, no repeated keys, `alg` exactly `"HS256"` (so `none`, `HS384`,
//!    `HS512`, `RS256`… are refused before any key is used: no algorithm confusion). Other
//!    header fields (`typ`, `kid`, anything) are ignored;
//! 4. HMAC-SHA256 signature over the first two parts, with the secret (constant-time compare);
//! 5. payload: a JSON object with no key repeated at any depth;
//! 6. claims: `exp` (required, numeric), `nbf` (optional, numeric), `iat` (optional, numeric),
//!    `sub`, `role`, `aud` (only when an audience is configured), `email`.
//!
//! Time rules, as InsForge's `jsonwebtoken` applies them, with `now` in whole seconds:
//! expired when `now >= exp + leeway`; not yet valid when `nbf > now + leeway`.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::clock::{Clock, SystemClock};
use crate::json::{StrictJsonError, parse_object};
use crate::secret::Secret;

/// Largest token accepted by default. Clerk template tokens are well under 2 KiB; 8 KiB is also
/// Node's default limit for a whole header block.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The `aud` the `insforge` template sets and the default expected audience.
pub const INSFORGE_AUDIENCE: &str = "insforge-api";
/// The role InsForge assumes when a token has no `role` claim.
pub const DEFAULT_ROLE: &str = "authenticated";

/// Longest token-supplied text (an `alg`, a claim name) an error message will repeat.
const MAX_ECHO_CHARS: usize = 32;

/// Every way a token can be refused.
///
/// Display messages never contain the token or the secret; the few variants that carry text
/// from the token (an algorithm name, a claim name) keep it short and printable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than the verifier's limit; nothing was decoded.
    #[error("token is too large: {len} bytes, the limit is {max}")]
    TooLarge {
        /// Bytes in the token.
        len: usize,
        /// The verifier's limit.
        max: usize,
    },
    /// Not a well-formed JWS compact token; the reason is fixed text.
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// The header repeats a field (two `alg`s: which one is meant is ambiguous).
    #[error("token header repeats the field {0:?}")]
    DuplicateHeaderField(String),
    /// The header's `alg` is not `HS256`.
    #[error("token algorithm {0:?} is not accepted: only HS256 is")]
    UnsupportedAlgorithm(String),
    /// The HMAC does not match: wrong secret, or the token was altered.
    #[error("token signature is invalid")]
    BadSignature,
    /// The payload repeats a claim, at any depth.
    #[error("token payload repeats the claim {0:?}")]
    DuplicateClaim(String),
    /// No `exp` claim.
    #[error("token has no expiry (exp)")]
    MissingExpiry,
    /// `now >= exp + leeway`.
    #[error("token has expired")]
    Expired,
    /// `nbf > now + leeway`.
    #[error("token is not valid yet (nbf is in the future)")]
    NotYetValid,
    /// `sub` is absent or `null`.
    #[error("token has no subject (sub)")]
    MissingSubject,
    /// `sub` is present but not a non-empty string.
    #[error("token subject (sub) must be a non-empty string")]
    InvalidSubject,
    /// `role` is present but not a non-empty string.
    #[error("token role must be a non-empty string")]
    InvalidRole,
    /// An audience is configured and `aud` does not contain it (or is absent).
    #[error("token audience (aud) does not include the expected audience")]
    WrongAudience,
    /// A claim has the wrong JSON type (`exp`, `nbf`, `iat` not numbers; `aud` not a string or
    /// array of strings; `email` not a string).
    #[error("token claim {0:?} has the wrong type")]
    InvalidClaim(&'static str),
}

impl TokenError {
    /// Stable machine-readable name of the failure, for HTTP layers and snapshots.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed(_) => "malformed",
            Self::DuplicateHeaderField(_) => "duplicate_header_field",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::BadSignature => "bad_signature",
            Self::DuplicateClaim(_) => "duplicate_claim",
            Self::MissingExpiry => "missing_exp",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingSubject => "missing_subject",
            Self::InvalidSubject => "invalid_subject",
            Self::InvalidRole => "invalid_role",
            Self::WrongAudience => "wrong_audience",
            Self::InvalidClaim(_) => "invalid_claim",
        }
    }
}

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The `sub` claim (a Clerk user id: a string, not a UUID).
    pub sub: String,
    /// The `role` claim, or [`DEFAULT_ROLE`] when the token had none. Not restricted here:
    /// deciding what `project_admin` or an unknown role may do is the caller's job.
    pub role: String,
    /// The `email` claim, when present and not `null`.
    pub email: Option<String>,
    /// All claims as received, plus `role` when it was absent: what PostgREST puts in
    /// `request.jwt.claims`.
    pub claims: Map<String, Value>,
}

impl Identity {
    /// The claims as compact JSON, ready for `set_config('request.jwt.claims', …, true)`.
    pub fn claims_json(&self) -> String {
        // Display of a Value is its JSON and, unlike serde_json::to_string, cannot fail.
        Value::Object(self.claims.clone()).to_string()
    }
}

/// Checks bearer tokens like InsForge does; see the module docs for the exact rules.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    leeway_secs: u32,
    audience: Option<String>,
    max_token_bytes: usize,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("key", &"<redacted>")
            .field("leeway_secs", &self.leeway_secs)
            .field("audience", &self.audience)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("clock", &self.clock)
            .finish()
    }
}

impl Verifier {
    /// A verifier with InsForge's settings: leeway 0 s, audience `insforge-api`, the system clock,
    /// tokens up to [`DEFAULT_MAX_TOKEN_BYTES`].
    pub fn new(secret: Secret) -> Self {
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            leeway_secs: 0,
            audience: Some(INSFORGE_AUDIENCE.to_owned()),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            clock: Arc::new(SystemClock),
        }
    }

    /// Seconds of tolerance on `exp` and `nbf` (InsForge: 0, PostgREST: 30).
    pub fn with_leeway_secs(mut self, secs: u32) -> Self {
        self.leeway_secs = secs;
        self
    }

    /// Requires `aud` to equal (or, as an array, contain) `audience`, and to be present.
    /// An empty string disables the check, like [`Verifier::without_audience`].
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        self.audience = (!audience.is_empty()).then_some(audience);
        self
    }

    /// Ignores `aud` entirely, which is what InsForge itself does.
    pub fn without_audience(mut self) -> Self {
        self.audience = None;
        self
    }

    /// Refuses tokens longer than `max` bytes before decoding them.
    pub fn with_max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max;
        self
    }

    /// The clock `exp`/`nbf` are compared against.
    pub fn with_clock(self, clock: impl Clock + 'static) -> Self {
        self.with_shared_clock(Arc::new(clock))
    }

    /// Like [`Verifier::with_clock`] for an already shared clock.
    pub fn with_shared_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configured leeway in seconds.
    pub fn leeway_secs(&self) -> u32 {
        self.leeway_secs
    }

    /// The expected audience, if the check is on.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The size limit in bytes.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// Verifies `token` (without the `Bearer ` prefix; see [`crate::parse_bearer`]).
    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: self.max_token_bytes,
            });
        }

        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated parts"));
        };
        let header_bytes = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| TokenError::Malformed("header is not base64url"))?;
        let payload_bytes = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
        URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| TokenError::Malformed("signature is not base64url"))?;

        let header = parse_object(&header_bytes).map_err(|e| match e {
            StrictJsonError::DuplicateKey(k) => TokenError::DuplicateHeaderField(echo(&k)),
            StrictJsonError::Syntax | StrictJsonError::NotObject => {
                TokenError::Malformed("header is not a JSON object")
            }
        })?;
        match header.get("alg") {
            Some(Value::String(alg)) if alg == "HS256" => {}
            Some(Value::String(alg)) => return Err(TokenError::UnsupportedAlgorithm(echo(alg))),
            _ => return Err(TokenError::Malformed("header has no string alg")),
        }

        // The MAC covers the parts exactly as transmitted, not a re-encoding of what we parsed.
        let signed = &token[..header_b64.len() + 1 + payload_b64.len()];
        match jsonwebtoken::crypto::verify(
            signature_b64,
            signed.as_bytes(),
            &self.key,
            Algorithm::HS256,
        ) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Err(TokenError::BadSignature),
        }

        let mut claims = parse_object(&payload_bytes).map_err(|e| match e {
            StrictJsonError::DuplicateKey(k) => TokenError::DuplicateClaim(echo(&k)),
            StrictJsonError::Syntax | StrictJsonError::NotObject => {
                TokenError::Malformed("payload is not a JSON object")
            }
        })?;

        self.check_times(&claims)?;

        let sub = match claims.get("sub") {
            None | Some(Value::Null) => return Err(TokenError::MissingSubject),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(TokenError::InvalidSubject),
        };

        let role = match claims.get("role") {
            None => {
                claims.insert("role".into(), Value::from(DEFAULT_ROLE));
                DEFAULT_ROLE.to_owned()
            }
            Some(Value::String(r)) if !r.is_empty() => r.clone(),
            Some(_) => return Err(TokenError::InvalidRole),
        };

        if let Some(expected) = &self.audience {
            check_audience(claims.get("aud"), expected)?;
        }

        let email = match claims.get("email") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => Some(e.clone()),
            Some(_) => return Err(TokenError::InvalidClaim("email")),
        };

        Ok(Identity {
            sub,
            role,
            email,
            claims,
        })
    }

    fn check_times(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        // f64 like JavaScript: NumericDate may be fractional, and i64 seconds fit exactly.
        let now = self.clock.now() as f64;
        let leeway = f64::from(self.leeway_secs);

        let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingExpiry)?;
        if now >= exp + leeway {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = numeric_date(claims, "nbf")?
            && nbf > now + leeway
        {
            return Err(TokenError::NotYetValid);
        }
        // Only the type: InsForge does not reject future iat, and Clerk's iat is its "now".
        numeric_date(claims, "iat")?;
        Ok(())
    }
}

fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(TokenError::InvalidClaim(name)),
        Some(_) => Err(TokenError::InvalidClaim(name)),
    }
}

fn check_audience(aud: Option<&Value>, expected: &str) -> Result<(), TokenError> {
    match aud {
        // With an audience configured, a token that names none was not meant for us.
        None | Some(Value::Null) => Err(TokenError::WrongAudience),
        Some(Value::String(a)) if a == expected => Ok(()),
        Some(Value::String(_)) => Err(TokenError::WrongAudience),
        Some(Value::Array(items)) => {
            let mut found = false;
            for item in items {
                match item {
                    Value::String(a) => found |= a == expected,
                    _ => return Err(TokenError::InvalidClaim("aud")),
                }
            }
            if found {
                Ok(())
            } else {
                Err(TokenError::WrongAudience)
            }
        }
        Some(_) => Err(TokenError::InvalidClaim("aud")),
    }
}

/// Token-supplied text made safe to repeat in an error: short, printable ASCII only, so a
/// crafted claim name can neither smuggle a token into logs nor forge log lines.
fn echo(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_ECHO_CHARS)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().count() > MAX_ECHO_CHARS {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    #[test]
    fn echo_sanitizes_and_truncates() {
        assert_eq!(echo("HS256"), "HS256");
        assert_eq!(echo("a\nb\u{1b}c\u{e9}"), "a?b?c?");
        let long = "x".repeat(100);
        assert_eq!(echo(&long), format!("{}...", "x".repeat(32)));
    }

    #[test]
    fn every_code_is_distinct_snake_case() {
        let all = [
            TokenError::TooLarge { len: 1, max: 0 },
            TokenError::Malformed("x"),
            TokenError::DuplicateHeaderField("alg".into()),
            TokenError::UnsupportedAlgorithm("none".into()),
            TokenError::BadSignature,
            TokenError::DuplicateClaim("sub".into()),
            TokenError::MissingExpiry,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::MissingSubject,
            TokenError::InvalidSubject,
            TokenError::InvalidRole,
            TokenError::WrongAudience,
            TokenError::InvalidClaim("exp"),
        ];
        let mut codes: Vec<_> = all.iter().map(TokenError::code).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
