//! Clerk object ids (`user_…`, `sess_…`, `org_…`): a prefix, `_`, and a 27-character base62
//! KSUID body. Tests need realistic ids so that code never gets away with assuming UUIDs.

use std::fmt;

/// Characters in the base62 body after `prefix_`.
pub const CLERK_ID_BODY_LEN: usize = 27;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Which generation of ids to imitate: the first body character is `2` for ids created before
/// 2025 and `3` since (it is the high part of the KSUID timestamp). Code must accept both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClerkIdEra {
    /// Body starts with `2`, e.g. `user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr`.
    Legacy,
    /// Body starts with `3` (ids created since 2025).
    #[default]
    Current,
}

impl ClerkIdEra {
    /// The leading body character of ids from this era.
    pub fn digit(self) -> char {
        match self {
            Self::Legacy => '2',
            Self::Current => '3',
        }
    }
}

/// A syntactically valid Clerk id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClerkId(String);

/// Why a string is not a Clerk id. The offending value is not echoed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClerkIdError {
    /// No `_` separating prefix and body.
    #[error("Clerk id has no `prefix_` part")]
    MissingPrefix,
    /// The prefix is empty or not lowercase ASCII letters/underscores.
    #[error("Clerk id prefix must be non-empty lowercase ASCII letters")]
    BadPrefix,
    /// The body is not 27 characters long.
    #[error("Clerk id body must be exactly 27 characters")]
    BadLength,
    /// The body has a character outside `[0-9A-Za-z]`.
    #[error("Clerk id body must be base62 ([0-9A-Za-z])")]
    NotBase62,
}

impl ClerkId {
    /// A new random id `prefix_3…` (current era).
    pub fn generate(prefix: &str) -> Self {
        Self::generate_in_era(prefix, ClerkIdEra::Current)
    }

    /// A new random id whose body starts with `era`'s digit.
    pub fn generate_in_era(prefix: &str, era: ClerkIdEra) -> Self {
        let mut s = String::with_capacity(prefix.len() + 1 + CLERK_ID_BODY_LEN);
        s.push_str(prefix);
        s.push('_');
        s.push(era.digit());
        s.push_str(&random_base62(CLERK_ID_BODY_LEN - 1));
        Self(s)
    }

    /// Checks `s` has the shape `prefix_` + 27 base62 characters (any leading digit).
    pub fn parse(s: &str) -> Result<Self, ClerkIdError> {
        // The body is base62, so the last `_` is the separator even in prefixes like `org_inv`.
        let (prefix, body) = s.rsplit_once('_').ok_or(ClerkIdError::MissingPrefix)?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(ClerkIdError::BadPrefix);
        }
        if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ClerkIdError::NotBase62);
        }
        if body.len() != CLERK_ID_BODY_LEN {
            return Err(ClerkIdError::BadLength);
        }
        Ok(Self(s.to_owned()))
    }

    /// The whole id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the final `_`, e.g. `user`.
    pub fn prefix(&self) -> &str {
        self.0.rsplit_once('_').map_or("", |(p, _)| p)
    }

    /// The 27-character base62 body.
    pub fn body(&self) -> &str {
        self.0.rsplit_once('_').map_or("", |(_, b)| b)
    }

    /// The era its leading digit indicates, if it is `2` or `3`.
    pub fn era(&self) -> Option<ClerkIdEra> {
        match self.body().as_bytes().first() {
            Some(b'2') => Some(ClerkIdEra::Legacy),
            Some(b'3') => Some(ClerkIdEra::Current),
            _ => None,
        }
    }

    /// The id as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ClerkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ClerkId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<ClerkId> for String {
    fn from(id: ClerkId) -> Self {
        id.0
    }
}

/// A new current-era user id, `user_3…`.
pub fn new_user_id() -> ClerkId {
    ClerkId::generate("user")
}

/// A new current-era session id, `sess_3…`.
pub fn new_session_id() -> ClerkId {
    ClerkId::generate("sess")
}

/// A new current-era organization id, `org_3…`.
pub fn new_org_id() -> ClerkId {
    ClerkId::generate("org")
}

/// `n` uniformly random base62 characters from the thread-local CSPRNG.
pub(crate) fn random_base62(n: usize) -> String {
    (0..n)
        .map(|_| char::from(BASE62[rand::random_range(0..BASE62.len())]))
        .collect()
}

/// `n_bytes` random bytes as lowercase hex (`2 * n_bytes` characters).
pub(crate) fn random_hex(n_bytes: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = vec![0u8; n_bytes];
    rand::fill(bytes.as_mut_slice());
    let mut out = String::with_capacity(n_bytes * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn assert_shape(id: &ClerkId, prefix: &str, digit: char) {
        let s = id.as_str();
        let body = s
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('_'))
            .unwrap_or_else(|| panic!("{s} lacks prefix {prefix}_"));
        assert_eq!(body.len(), 27, "{s}");
        assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
        assert_eq!(body.chars().next(), Some(digit), "{s}");
        assert_eq!(id.prefix(), prefix);
        assert_eq!(id.body(), body);
        assert_eq!(ClerkId::parse(s).as_ref(), Ok(id));
    }

    #[test]
    fn generated_ids_have_clerk_shape() {
        assert_shape(&ClerkId::generate("user"), "user", '3');
        assert_shape(
            &ClerkId::generate_in_era("user", ClerkIdEra::Legacy),
            "user",
            '2',
        );
        assert_shape(&new_user_id(), "user", '3');
        assert_shape(&new_session_id(), "sess", '3');
        assert_shape(&new_org_id(), "org", '3');
        assert_eq!(new_user_id().era(), Some(ClerkIdEra::Current));
        assert_eq!(
            ClerkId::generate_in_era("x", ClerkIdEra::Legacy).era(),
            Some(ClerkIdEra::Legacy)
        );
    }

    #[test]
    fn ids_are_random() {
        assert_ne!(new_user_id(), new_user_id());
    }

    #[test]
    fn parse_accepts_the_documented_example_and_other_digits() {
        let id = ClerkId::parse("user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr").unwrap();
        assert_eq!(id.era(), Some(ClerkIdEra::Legacy));
        // Never assume a digit: a future era still parses.
        let id = ClerkId::parse("org_4aaaaaaaaaaaaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(id.era(), None);
        assert_eq!(
            ClerkId::parse("org_inv_2aaaaaaaaaaaaaaaaaaaaaaaaaa")
                .unwrap()
                .prefix(),
            "org_inv"
        );
    }

    #[test]
    fn parse_rejects_non_ids() {
        assert_eq!(
            ClerkId::parse("2GIpXOEpVyJw51rkZn9Kmnc6Sxr"),
            Err(ClerkIdError::MissingPrefix)
        );
        assert_eq!(
            ClerkId::parse("_2GIpXOEpVyJw51rkZn9Kmnc6Sxr"),
            Err(ClerkIdError::BadPrefix)
        );
        assert_eq!(
            ClerkId::parse("User_2GIpXOEpVyJw51rkZn9Kmnc6Sxr"),
            Err(ClerkIdError::BadPrefix)
        );
        assert_eq!(
            ClerkId::parse("user_2GIpXOEpVyJw51rkZn9Kmnc6Sx"),
            Err(ClerkIdError::BadLength)
        );
        assert_eq!(
            ClerkId::parse("user_2GIpXOEpVyJw51rkZn9Kmnc6Sx-"),
            Err(ClerkIdError::NotBase62)
        );
        assert_eq!(
            ClerkId::parse("user_6f1c0a3e-8d6b-4f6e-9a53-0c2b7d9b1e55"),
            Err(ClerkIdError::NotBase62)
        );
    }

    #[test]
    fn random_hex_shape() {
        let h = random_hex(10);
        assert_eq!(h.len(), 20);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn base62_uses_whole_alphabet() {
        // 62 * 40 draws: every symbol should show up; a biased or truncated alphabet would not.
        let s = random_base62(62 * 40);
        for c in BASE62.iter() {
            assert!(s.as_bytes().contains(c), "missing {}", char::from(*c));
        }
    }
}
