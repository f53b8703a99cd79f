//! The todos sample's own layers, built on the engine (never the other way round): the fixed
//! access matrix over `public.todos` in SQL ([`sql`]) and over HTTP ([`http`]), the live
//! `verify` of an endpoint ([`verify`]), and the data they read from `fixtures/` ([`fixtures`]:
//! users, seed todos, the hand-written policy mutants).

pub mod fixtures;
pub mod http;
pub mod matrix;
pub mod sql;
pub mod verify;

use clerk_token::{ClerkTemplate, ClerkUser, Secret};

use crate::engine::Error;

/// The claims the database gets for users A and B: minted as Clerk's `insforge` template would
/// and passed through InsForge-style verification, so they are exactly what a request carries.
#[derive(Debug, Clone)]
pub struct Identities {
    pub a_claims: String,
    pub b_claims: String,
}

impl Identities {
    pub fn mint(secret: &Secret, fixtures: &fixtures::Fixtures) -> Result<Self, Error> {
        let template = ClerkTemplate::insforge(secret.clone());
        let verifier = template.verifier();
        let claims = |key: &str| -> Result<String, Error> {
            let user = fixtures.user(key)?;
            let mut clerk = ClerkUser::new(user.id.clone());
            if let Some(email) = &user.email {
                clerk = clerk.with_email(email.clone());
            }
            let token = template.mint(&clerk)?;
            let identity = verifier.verify(&token)?;
            Ok(identity.claims_json())
        };
        Ok(Self {
            a_claims: claims("alice")?,
            b_claims: claims("bob")?,
        })
    }
}
