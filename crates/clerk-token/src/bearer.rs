//! Extracting the token from an `Authorization` header value.
//! One strict, documented rule so the HTTP layer and the tests agree on what "a bearer token" is.
//!
//! The rule (RFC 6750 §2.1, `credentials = "Bearer" 1*SP b64token`, plus what PostgREST does):
//!
//! - Leading and trailing spaces/tabs around the whole value are ignored (HTTP parsers strip
//!   that optional whitespace anyway).
//! - The scheme is `Bearer`, compared case-insensitively (`bearer`, `BEARER` are fine: auth
//!   schemes are case-insensitive per RFC 9110, and PostgREST accepts them). InsForge's Express
//!   code happens to expect exactly `Bearer `; every client sends that spelling.
//! - One or more spaces (not tabs) separate scheme and token, as RFC 6750's `1*SP` allows.
//! - The token is non-empty and made only of RFC 6750 `b64token` characters
//!   (`A-Z a-z 0-9 - . _ ~ + /`, then optional trailing `=`). So `Bearer a b`, `Bearer a,b`
//!   and tokens with control characters are refused rather than partially used.
//!
//! The token is returned as given: opaque InsForge keys (`anon_…`, `ik_…`) pass this check
//! too, and telling them apart from JWTs is the caller's job.

/// Why an `Authorization` value yields no bearer token. Messages never echo the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// The header value is empty or only whitespace.
    #[error("authorization header is empty")]
    Empty,
    /// The scheme is not `Bearer` (e.g. `Basic …`, or a bare token without a scheme).
    #[error("authorization scheme is not Bearer")]
    NotBearer,
    /// `Bearer` with no token after it.
    #[error("bearer token is missing")]
    MissingToken,
    /// The token contains characters a bearer token cannot have (spaces, commas, controls…).
    #[error("bearer token contains invalid characters")]
    InvalidToken,
}

impl BearerError {
    /// Stable machine-readable name of the failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_authorization",
            Self::NotBearer => "not_bearer",
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token_characters",
        }
    }
}

/// Returns the token in an `Authorization` header value, by the rule in this module's docs.
///
/// ```
/// use clerk_token::{parse_bearer, BearerError};
/// assert_eq!(parse_bearer("Bearer abc.def.ghi"), Ok("abc.def.ghi"));
/// assert_eq!(parse_bearer("bearer  abc"), Ok("abc"));
/// assert_eq!(parse_bearer("Basic dXNlcjpwdw=="), Err(BearerError::NotBearer));
/// assert_eq!(parse_bearer("Bearer "), Err(BearerError::MissingToken));
/// ```
pub fn parse_bearer(header_value: &str) -> Result<&str, BearerError> {
    let value = header_value.trim_matches([' ', '\t']);
    if value.is_empty() {
        return Err(BearerError::Empty);
    }
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err(if value.eq_ignore_ascii_case("bearer") {
            BearerError::MissingToken
        } else {
            BearerError::NotBearer
        });
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(BearerError::NotBearer);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(BearerError::MissingToken);
    }
    if !is_b64token(token) {
        return Err(BearerError::InvalidToken);
    }
    Ok(token)
}

/// RFC 6750 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
        for header in [
            format!("Bearer {jwt}"),
            format!("bearer {jwt}"),
            format!("BEARER {jwt}"),
            format!("BeArEr {jwt}"),
            format!("Bearer   {jwt}"),
            format!("  Bearer {jwt}  "),
            format!("\tBearer {jwt}\t"),
        ] {
            assert_eq!(parse_bearer(&header), Ok(jwt), "{header:?}");
        }
        assert_eq!(parse_bearer("Bearer anon_abc123"), Ok("anon_abc123"));
        assert_eq!(parse_bearer("Bearer ik_0123"), Ok("ik_0123"));
        assert_eq!(parse_bearer("Bearer a+b/c=="), Ok("a+b/c=="));
        assert_eq!(parse_bearer("Bearer ~-._"), Ok("~-._"));
    }

    #[test]
    fn refused_forms() {
        let cases: &[(&str, BearerError)] = &[
            ("", BearerError::Empty),
            ("   ", BearerError::Empty),
            ("\t", BearerError::Empty),
            ("Bearer", BearerError::MissingToken),
            ("bearer", BearerError::MissingToken),
            ("Bearer ", BearerError::MissingToken),
            ("Bearer      ", BearerError::MissingToken),
            ("Basic dXNlcjpwYXNz", BearerError::NotBearer),
            ("Token abc", BearerError::NotBearer),
            ("abc.def.ghi", BearerError::NotBearer),
            ("Bearerabc", BearerError::NotBearer),
            ("Bearer\tabc", BearerError::NotBearer),
            ("Bearer: abc", BearerError::NotBearer),
            ("Bearer a b", BearerError::InvalidToken),
            ("Bearer a,b", BearerError::InvalidToken),
            ("Bearer a\tb", BearerError::InvalidToken),
            ("Bearer abc\n", BearerError::InvalidToken),
            ("Bearer ===", BearerError::InvalidToken),
            ("Bearer a=b", BearerError::InvalidToken),
            ("Bearer \"abc\"", BearerError::InvalidToken),
            ("Bearer tökén", BearerError::InvalidToken),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_bearer(header), Err(*expected), "{header:?}");
        }
    }

    #[test]
    fn codes_and_messages_are_stable_and_do_not_echo() {
        let err = parse_bearer("Basic c2VjcmV0").unwrap_err();
        assert_eq!(err.code(), "not_bearer");
        assert!(!err.to_string().contains("c2VjcmV0"));
    }
}
