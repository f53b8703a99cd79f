//! The RLS verification suite: the evidence a team reads before it trusts its Clerk + InsForge
//! setup — access matrices in SQL and over HTTP, judged as leaks or lost access.

pub mod access;
pub mod actors;
pub mod check;
pub mod coverage;
pub mod fixtures;
pub mod http;
pub mod matrix;
pub mod mutation;
pub mod policy_expr;
pub mod spec;
pub mod todos_sql;
pub mod tokens;
pub mod verify;

use clerk_token::{ClerkTemplate, ClerkUser, Secret};

/// Why the suite could not run (as opposed to what it found). Every variant that has a cause
/// keeps it as its `source`.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A fixture file that does not hold (a bad case, an unknown user).
    #[error("fixture {path}: {message}")]
    Fixture {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot read fixture {path}: {source}")]
    FixtureRead {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("fixture {path} is not valid JSON: {source}")]
    FixtureJson {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{context}: {source}")]
    Sql {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Users(#[from] clerk_token::UsersFileError),
    #[error(transparent)]
    Harness(#[from] harness::HarnessError),
    #[error("cannot mint a token: {0}")]
    Token(#[from] clerk_token::MintError),
    #[error("cannot verify a minted token: {0}")]
    Verify(#[from] clerk_token::TokenError),
    /// A request that did not get an answer; `detail` spells out the cause chain.
    #[error("{context}: {detail}")]
    Http {
        context: String,
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    /// An endpoint that answered, but not as InsForge's records API does.
    #[error("{0}")]
    Endpoint(String),
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
