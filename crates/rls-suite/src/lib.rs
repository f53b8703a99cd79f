//! The RLS verification suite: the evidence a team reads before it trusts its Clerk + InsForge
//! setup — access matrices in SQL and over HTTP, judged as leaks or lost access.

pub mod access;
pub mod actors;
pub mod fixtures;
pub mod http;
pub mod matrix;
pub mod spec;
pub mod sql;
pub mod tokens;
pub mod verify;

use clerk_token::{ClerkTemplate, ClerkUser, Secret};

/// Why the suite could not run (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("fixture problem: {0}")]
    Fixture(String),
    #[error("database: {0}")]
    Sql(String),
    #[error("token: {0}")]
    Token(String),
    #[error("http: {0}")]
    Http(String),
}

/// The claims the database gets for users A and B: minted as Clerk's `insforge` template would
/// and passed through InsForge-style verification, so they are exactly what a request carries.
#[derive(Debug, Clone)]
pub struct Identities {
    pub a_claims: String,
    pub b_claims: String,
}

impl Identities {
    pub fn mint(secret: &Secret, fixtures: &fixtures::Fixtures) -> Result<Self, SuiteError> {
        let template = ClerkTemplate::insforge(secret.clone());
        let verifier = template.verifier();
        let claims = |key: &str| -> Result<String, SuiteError> {
            let user = fixtures.user(key)?;
            let mut clerk = ClerkUser::new(user.id.clone());
            if let Some(email) = &user.email {
                clerk = clerk.with_email(email.clone());
            }
            let token = template
                .mint(&clerk)
                .map_err(|e| SuiteError::Token(e.to_string()))?;
            let identity = verifier
                .verify(&token)
                .map_err(|e| SuiteError::Token(e.to_string()))?;
            Ok(identity.claims_json())
        };
        Ok(Self {
            a_claims: claims("alice")?,
            b_claims: claims("bob")?,
        })
    }
}
