//! Shared setup: fixtures, a JWT secret, and the identities minted from them.

use clerk_token::Secret;
use rls_suite::Identities;
use rls_suite::fixtures::Fixtures;

pub struct World {
    pub fixtures: Fixtures,
    pub ids: Identities,
}

pub fn world() -> World {
    let fixtures = Fixtures::load().unwrap();
    let secret = Secret::generate();
    let ids = Identities::mint(&secret, &fixtures).unwrap();
    World { fixtures, ids }
}
