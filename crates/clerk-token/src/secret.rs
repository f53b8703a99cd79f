//! The HS256 signing key shared by Clerk's template and InsForge (`JWT_SECRET`).
//! It never prints itself, and it refuses keys shorter than InsForge's 32-character minimum.

use std::fmt;
use std::str::FromStr;

/// InsForge refuses to start with a `JWT_SECRET` shorter than this many characters.
pub const MIN_SECRET_CHARS: usize = 32;

/// Length of the secrets made by [`Secret::generate`].
const GENERATED_SECRET_CHARS: usize = 48;

/// An HS256 key as InsForge accepts it (at least [`MIN_SECRET_CHARS`] characters).
///
/// `Debug` prints `Secret(<redacted>)` and there is no `Display`, so a secret cannot end up in a
/// log by accident; use [`Secret::expose`] where the raw value is really needed.
#[derive(Clone)]
pub struct Secret(String);

/// Why a string was refused as a [`Secret`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Shorter than InsForge's minimum. Only the length is reported, never the value.
    #[error(
        "JWT secret is too short: {len} characters, InsForge requires at least {min} \
         (generate one with Secret::generate or `openssl rand -base64 36`)"
    )]
    TooShort {
        /// Characters in the refused value.
        len: usize,
        /// The required minimum ([`MIN_SECRET_CHARS`]).
        min: usize,
    },
}

impl Secret {
    /// Wraps `value`, refusing it when it has fewer than [`MIN_SECRET_CHARS`] characters.
    pub fn new(value: impl Into<String>) -> Result<Self, SecretError> {
        let value = value.into();
        // Characters, not bytes: InsForge checks a JavaScript string's length.
        let len = value.chars().count();
        if len < MIN_SECRET_CHARS {
            return Err(SecretError::TooShort {
                len,
                min: MIN_SECRET_CHARS,
            });
        }
        Ok(Self(value))
    }

    /// A fresh random 48-character alphanumeric secret (about 285 bits of entropy).
    pub fn generate() -> Self {
        Self(crate::id::random_base62(GENERATED_SECRET_CHARS))
    }

    /// The raw secret, e.g. to hand to InsForge or PostgREST as `JWT_SECRET`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key bytes HMAC uses (the UTF-8 of the string, as InsForge and Clerk use it).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl FromStr for Secret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    #[test]
    fn short_secret_is_refused_without_echoing_it() {
        let err = Secret::new("too-short-but-very-secret").unwrap_err();
        assert_eq!(err, SecretError::TooShort { len: 25, min: 32 });
        let msg = err.to_string();
        assert!(msg.contains("at least 32"), "{msg}");
        assert!(!msg.contains("very-secret"), "{msg}");
    }

    #[test]
    fn exactly_32_characters_is_enough() {
        let s = "a".repeat(32);
        assert_eq!(Secret::new(s.as_str()).map(|x| x.expose().len()), Ok(32));
        assert!(Secret::new("a".repeat(31)).is_err());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // 16 two-byte characters: 32 bytes but only 16 characters.
        assert!(Secret::new("é".repeat(16)).is_err());
        assert!(Secret::new("é".repeat(32)).is_ok());
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("0123456789abcdef0123456789abcdef-XYZ").unwrap();
        let dbg = format!("{s:?} {:?}", Some(&s));
        assert!(!dbg.contains("XYZ"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn generated_secrets_are_48_alphanumerics_and_differ() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_eq!(a.expose().len(), 48);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose(), b.expose());
        assert!(Secret::new(a.expose()).is_ok());
    }

    #[test]
    fn from_str_validates() {
        assert!("short".parse::<Secret>().is_err());
        assert!("x".repeat(40).parse::<Secret>().is_ok());
    }
}
