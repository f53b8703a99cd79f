//! Who acts in a spec check: the spec's Clerk users, look-alike users that defeat loose id
//! comparisons, and the built-in `no_claims` and `anon` actors.
//!
//! The users' ids are chosen so that any way of comparing ids other than exact equality on the
//! whole id merges two actors or hands one actor another's rows: a case-insensitive compare
//! merges `base` and `lower`; a prefix compare (`like id || '%'`, `starts_with`, `left`) lets
//! `base` own `longer`'s rows; `like` with the caller's id as the pattern (`_` is a wildcard)
//! lets `base` see `wildcard`'s rows, as does a compare that skips the `user_` prefix; `trim`
//! or a `char(n)` column merges `base` and `padded`.

use clerk_token::{ClerkTemplate, ClerkUser, MintError, Secret, TokenError};
use harness::DbIdentity;
use serde_json::{Map, Value};

use crate::spec::Spec;

/// The look-alike ids, in the order spec users without an `id` take them.
pub const LOOKALIKE_IDS: [(&str, &str); 5] = [
    ("base", "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr"),
    ("lower", "user_2gipxoepvyjw51rkzn9kmnc6sxr"),
    ("longer", "user_2GIpXOEpVyJw51rkZn9Kmnc6SxrQ"),
    ("wildcard", "userX2GIpXOEpVyJw51rkZn9Kmnc6Sxr"),
    ("padded", "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr "),
];

pub use harness::ClaimsForwarding;

/// Why an actor's claims could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot mint the token: {0}")]
    Mint(#[from] MintError),
    #[error("the minted token does not verify: {0}")]
    Verify(#[from] TokenError),
}

/// What kind of actor.
#[derive(Debug, Clone, PartialEq)]
pub enum ActorKind {
    /// A Clerk user: signed in as `authenticated` with a `sub`.
    User {
        id: String,
        email: Option<String>,
        claims: Map<String, Value>,
    },
    /// `authenticated` without a `sub` (nor an email): claims `{"role": "authenticated"}`.
    /// InsForge 2.3 answers 401 to a token without `sub`, so this identity reaches Postgres
    /// only past InsForge (a job, another gateway): a defence-in-depth probe.
    NoClaims,
    /// The anon key: the `anon` role, no claims.
    Anon,
    /// `authenticated` with no `request.jwt.claims` at all (not even `role`): a job, or a
    /// gateway that forwards nothing. On a pooled connection that served a signed-in caller
    /// first, the setting reads back as `''`, which a claims reader must survive. Not among a
    /// spec's [`actors`]: the todos matrices probe it (`todos::matrices`).
    Claimless,
    /// A request with no `Authorization` header at all: over HTTP it must be turned away before
    /// the database (InsForge: 401); were it let through, Postgres would see the `anon` role.
    /// Not among a spec's [`actors`]: the todos matrices and `verify` probe it.
    Tokenless,
}

/// One column of the matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct Actor {
    /// The spec's name (`ada`), `lookalike-lower`, `no_claims` or `anon`.
    pub key: String,
    pub kind: ActorKind,
}

impl Actor {
    /// The Clerk id the database sees, if any.
    pub fn id(&self) -> Option<&str> {
        match &self.kind {
            ActorKind::User { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The `email` claim the database sees (InsForge 2.3 forwards it), if any.
    pub fn email(&self) -> Option<&str> {
        match &self.kind {
            ActorKind::User { email, .. } => email.as_deref(),
            _ => None,
        }
    }

    /// The role the database switches to.
    pub fn role(&self) -> &'static str {
        match self.kind {
            ActorKind::Anon | ActorKind::Tokenless => "anon",
            _ => "authenticated",
        }
    }

    pub fn is_user(&self) -> bool {
        matches!(self.kind, ActorKind::User { .. })
    }

    /// The identity a request carries to Postgres: a user's claims are minted as Clerk's
    /// `insforge` template would, verified as InsForge does, then forwarded as `forwarding` says.
    pub fn db_identity(
        &self,
        template: &ClerkTemplate,
        forwarding: ClaimsForwarding,
    ) -> Result<DbIdentity, IdentityError> {
        Ok(match self.clerk_user() {
            Some(user) => {
                let token = template.mint(&user)?;
                let identity = template.verifier().verify(&token)?;
                let claims = Value::Object(forwarding.apply(identity.claims.clone()));
                DbIdentity::raw("authenticated", Some(&claims.to_string()))
            }
            // InsForge 2.3 always forwards `role` (a token without one is `authenticated`), so
            // the built-ins carry it too: a policy on `auth.role()` sees what it would in
            // production (docs/fidelity.md).
            None if self.kind == ActorKind::NoClaims => {
                DbIdentity::raw("authenticated", Some(r#"{"role":"authenticated"}"#))
            }
            None if self.kind == ActorKind::Claimless => DbIdentity::authenticated_without_claims(),
            // The anon key reaches Postgres as `anon` with no `sub` (facts.md §10); which
            // claims, if any, InsForge sets for it is not recorded: none, as before.
            None => DbIdentity::anon(),
        })
    }

    /// A Clerk user's token contents (id, email, extra claims); `None` for the built-ins.
    pub fn clerk_user(&self) -> Option<ClerkUser> {
        let ActorKind::User { id, email, claims } = &self.kind else {
            return None;
        };
        let mut user = ClerkUser::new(id.clone());
        if let Some(email) = email {
            user = user.with_email(email.clone());
        }
        for (k, v) in claims {
            user = user.with_claim(k.clone(), v.clone());
        }
        Some(user)
    }
}

/// The actors of a spec: its users (with look-alike ids unless pinned), the look-alikes no
/// user took, then `no_claims` and `anon`.
pub fn actors(spec: &Spec) -> Vec<Actor> {
    let pinned: Vec<&str> = spec.users.iter().filter_map(|u| u.id.as_deref()).collect();
    let mut free = LOOKALIKE_IDS
        .iter()
        .filter(|(_, id)| !pinned.contains(id))
        .copied()
        .collect::<Vec<_>>()
        .into_iter();
    let mut out = Vec::new();
    for user in &spec.users {
        let id = match &user.id {
            Some(id) => id.clone(),
            None => match free.next() {
                Some((_, id)) => id.to_owned(),
                None => clerk_token::new_user_id().into_string(),
            },
        };
        out.push(Actor {
            key: user.key.clone(),
            kind: ActorKind::User {
                id,
                email: user.email.clone(),
                claims: user.claims.clone(),
            },
        });
    }
    for (name, id) in free {
        out.push(Actor {
            key: format!("lookalike-{name}"),
            kind: ActorKind::User {
                id: id.to_owned(),
                email: None,
                claims: Map::new(),
            },
        });
    }
    out.push(Actor {
        key: "no_claims".into(),
        kind: ActorKind::NoClaims,
    });
    out.push(Actor {
        key: "anon".into(),
        kind: ActorKind::Anon,
    });
    out
}

/// A fresh template with a random secret: the SQL layer only needs the claims a verified token
/// carries, never the secret itself.
pub fn template() -> ClerkTemplate {
    ClerkTemplate::insforge(Secret::generate())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loose_comparison_merges_two_lookalikes() {
        let ids: Vec<&str> = LOOKALIKE_IDS.iter().map(|(_, id)| *id).collect();
        let distinct = |f: &dyn Fn(&str, &str) -> bool| {
            ids.iter()
                .enumerate()
                .any(|(i, a)| ids.iter().enumerate().any(|(j, b)| i != j && f(a, b)))
        };
        // Exact equality tells them all apart.
        assert!(!distinct(&|a, b| a == b));
        assert!(distinct(&|a, b| a.to_lowercase() == b.to_lowercase()));
        assert!(distinct(&|a, b| b.starts_with(a)));
        assert!(distinct(&|a, b| a.trim() == b.trim()));
        assert!(distinct(&|a, b| a.get(5..) == b.get(5..)));
        // `b like a`: `_` in a matches any one character of b.
        assert!(distinct(&|a, b| {
            a.len() == b.len() && a.chars().zip(b.chars()).all(|(p, c)| p == '_' || p == c)
        }));
    }

    #[test]
    fn users_take_lookalike_ids_and_the_rest_become_bystanders() {
        let spec = Spec::parse(
            std::path::Path::new("a.toml"),
            "[actors.ada]\n[actors.ben]\nid = \"user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr\"\n[tables.a]\nowner = \"o\"\n",
        )
        .unwrap();
        let actors = actors(&spec);
        let keys: Vec<&str> = actors.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ada",
                "ben",
                "lookalike-longer",
                "lookalike-wildcard",
                "lookalike-padded",
                "no_claims",
                "anon"
            ]
        );
        assert_eq!(actors[0].id(), Some(LOOKALIKE_IDS[1].1));
        assert_eq!(actors[1].id(), Some(LOOKALIKE_IDS[0].1));
    }

    #[test]
    fn built_in_actors_carry_the_role_claim_insforge_forwards() {
        let t = template();
        let actor = Actor {
            key: "no_claims".into(),
            kind: ActorKind::NoClaims,
        };
        let identity = actor.db_identity(&t, ClaimsForwarding::InsForge23).unwrap();
        assert_eq!(identity.role, "authenticated");
        let claims: Map<String, Value> =
            serde_json::from_str(identity.claims.as_deref().unwrap()).unwrap();
        assert_eq!(claims.get("role"), Some(&Value::from("authenticated")));
        assert!(!claims.contains_key("sub"), "a built-in actor has no sub");
        let anon = Actor {
            key: "anon".into(),
            kind: ActorKind::Anon,
        };
        let identity = anon.db_identity(&t, ClaimsForwarding::InsForge23).unwrap();
        assert_eq!(identity.role, "anon");
    }

    #[test]
    fn claimless_has_no_claims_and_tokenless_is_anon() {
        let t = template();
        let claimless = Actor {
            key: "claimless".into(),
            kind: ActorKind::Claimless,
        };
        let identity = claimless
            .db_identity(&t, ClaimsForwarding::InsForge23)
            .unwrap();
        assert_eq!(identity.role, "authenticated");
        assert_eq!(identity.claims, None);
        let tokenless = Actor {
            key: "tokenless".into(),
            kind: ActorKind::Tokenless,
        };
        assert_eq!(tokenless.role(), "anon");
        assert_eq!(tokenless.id(), None);
        assert!(!tokenless.is_user() && !claimless.is_user());
    }

    #[test]
    fn insforge_23_forwards_only_sub_email_and_role() {
        let actor = Actor {
            key: "ada".into(),
            kind: ActorKind::User {
                id: "user_2x".into(),
                email: Some("ada@example.com".into()),
                claims: Map::from_iter([("org_id".to_owned(), Value::from("org_1"))]),
            },
        };
        let t = template();
        let forwarded = actor.db_identity(&t, ClaimsForwarding::InsForge23).unwrap();
        let claims: Map<String, Value> =
            serde_json::from_str(forwarded.claims.as_deref().unwrap()).unwrap();
        let mut keys: Vec<&str> = claims.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["email", "exp", "iat", "role", "sub"]);
        let all = actor.db_identity(&t, ClaimsForwarding::All).unwrap();
        assert!(all.claims.unwrap().contains("org_1"));
    }
}
