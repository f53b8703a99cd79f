//! Low-level token assembly for negative tests: any header bytes, any payload bytes, signed with
//! HS256 under a real secret. Nothing here is used by verification; it exists to build attacks.
//!
//! Prefer [`crate::ClerkTemplate`] for tokens a real Clerk would issue; use this module when a
//! test needs a token Clerk would never issue (a lying `alg`, duplicate keys, a non-JSON part).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;

/// Re-exported so callers of [`sign_parts_with`] need no direct `jsonwebtoken` dependency.
pub use jsonwebtoken::Algorithm;

use crate::{MintError, Secret};

/// The exact header bytes a Clerk HS256 template token carries.
pub const CLERK_HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// base64url without padding, the encoding of every JWS compact part.
pub fn b64url(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `b64url(header).b64url(payload).HS256-signature`, whatever the header claims its `alg` is.
///
/// Handy for "header says RS256 but the signature is HS256" style tests.
pub fn sign_hs256_raw(
    secret: &Secret,
    header_json: impl AsRef<[u8]>,
    payload_json: impl AsRef<[u8]>,
) -> Result<String, MintError> {
    sign_parts(secret, &b64url(header_json), &b64url(payload_json))
}

/// Signs already-encoded parts: `header_part.payload_part.signature`. The parts are used
/// verbatim, so they may be deliberately invalid base64url.
pub fn sign_parts(
    secret: &Secret,
    header_part: &str,
    payload_part: &str,
) -> Result<String, MintError> {
    sign_parts_with(Algorithm::HS256, secret, header_part, payload_part)
}

/// Like [`sign_parts`] but with another HMAC algorithm (HS384/HS512) for algorithm tests.
pub fn sign_parts_with(
    alg: Algorithm,
    secret: &Secret,
    header_part: &str,
    payload_part: &str,
) -> Result<String, MintError> {
    let message = format!("{header_part}.{payload_part}");
    let key = EncodingKey::from_secret(secret.as_bytes());
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg)
        // jsonwebtoken's messages describe the failure, never the key.
        .map_err(|e| MintError::Signing(e.to_string()))?;
    Ok(format!("{message}.{signature}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    #[test]
    fn signature_matches_jsonwebtoken_encode() {
        let secret = Secret::new("k".repeat(32)).unwrap();
        let ours = sign_hs256_raw(&secret, CLERK_HEADER_JSON, r#"{"sub":"x"}"#).unwrap();
        let header = jsonwebtoken::Header::new(Algorithm::HS256);
        let theirs = jsonwebtoken::encode(
            &header,
            &serde_json::json!({"sub":"x"}),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        // Different header byte order, so compare by verifying each with jsonwebtoken.
        for token in [ours, theirs] {
            let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
            v.required_spec_claims.clear();
            v.validate_exp = false;
            let data = jsonwebtoken::decode::<serde_json::Value>(
                &token,
                &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
                &v,
            )
            .unwrap();
            assert_eq!(data.claims["sub"], "x");
        }
    }
}
