//! Which of a verified token's claims reach Postgres as `request.jwt.claims`.
//!
//! InsForge ≥ 2.2.5 re-signs the caller's identity before it calls PostgREST and keeps only
//! `sub`, `email` and `role` (plus the new token's own `iat` and `exp`); up to 2.2.1 every
//! claim of the token was forwarded. The sample app, the spec engine and the lint's
//! unavailable-claim rule all read this one definition, so they cannot disagree.

use serde_json::{Map, Value};

/// How an InsForge version forwards claims to Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClaimsForwarding {
    /// InsForge ≥ 2.2.5 (2.3.x): only [`ClaimsForwarding::INSFORGE_23_CLAIMS`].
    #[default]
    InsForge23,
    /// InsForge ≤ 2.2.1: every claim of the token.
    All,
}

impl ClaimsForwarding {
    /// The claims InsForge 2.3 puts in the token it hands PostgREST.
    pub const INSFORGE_23_CLAIMS: [&'static str; 5] = ["sub", "email", "role", "iat", "exp"];

    /// The claims Postgres will see of `claims`.
    pub fn apply(self, mut claims: Map<String, Value>) -> Map<String, Value> {
        if self == ClaimsForwarding::InsForge23 {
            claims.retain(|k, _| Self::INSFORGE_23_CLAIMS.contains(&k.as_str()));
        }
        claims
    }

    /// Whether a policy may rely on `claim` being present.
    pub fn forwards(self, claim: &str) -> bool {
        self == ClaimsForwarding::All || Self::INSFORGE_23_CLAIMS.contains(&claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insforge_23_keeps_five_claims_and_all_keeps_everything() {
        let claims: Map<String, Value> = serde_json::from_str(
            r#"{"sub":"user_1","email":"a@b","role":"authenticated","iat":1,"exp":2,"aud":"insforge-api","org_id":"org_1"}"#,
        )
        .unwrap();
        let kept = ClaimsForwarding::InsForge23.apply(claims.clone());
        let mut keys: Vec<&str> = kept.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["email", "exp", "iat", "role", "sub"]);
        assert_eq!(ClaimsForwarding::All.apply(claims.clone()), claims);
        assert!(!ClaimsForwarding::InsForge23.forwards("org_id"));
        assert!(ClaimsForwarding::All.forwards("org_id"));
    }
}
