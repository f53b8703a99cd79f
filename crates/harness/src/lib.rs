//! Provision InsForge-flavoured Postgres (docker | local | url), migrate it with refinery, and
//! give tests per-test databases and identity sessions on the app's role.
//!
//! The harness knows nothing about tokens: identities arrive as a role plus claims JSON.

pub mod backend;
pub mod error;
pub mod factory;
mod guardian;
pub mod identity;
pub mod migrate;
pub mod provision;
pub mod scratch;
pub mod state;
pub mod target;
pub mod testing;

pub use backend::BackendChoice;
pub use error::{HarnessError, Result};
pub use factory::{CloneSettings, CloneStrategy, DatabaseFactory};
pub use identity::{ClaimsForwarding, DbIdentity, begin_as};
pub use migrate::{MigrationReport, Migrations};
pub use provision::{SetupOptions, SetupReport, setup, status, teardown};
pub use state::{Server, State, StateDir};
pub use target::PgTarget;
pub use testing::{TestDatabase, shared_state};

use rand::RngExt as _;

/// A random alphanumeric string, for passwords and secrets.
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// A random lowercase string, for database and container names.
pub(crate) fn random_lower(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
