//! Shared setup: fixtures, a JWT secret, the identities minted from them, and the sample app
//! spawned against a test database.

use clerk_token::{ClerkUser, Secret};
use harness::TestDatabase;
use rls_suite::Identities;
use rls_suite::fixtures::Fixtures;
use rls_suite::http::{Api, Tokens};
use todo_app::{AppConfig, RunningApp};

pub struct World {
    pub fixtures: Fixtures,
    pub secret: Secret,
    pub ids: Identities,
}

pub fn world() -> World {
    let fixtures = Fixtures::load().unwrap();
    let secret = Secret::generate();
    let ids = Identities::mint(&secret, &fixtures).unwrap();
    World {
        fixtures,
        secret,
        ids,
    }
}

impl World {
    pub fn clerk_user(&self, key: &str) -> ClerkUser {
        let user = self.fixtures.user(key).unwrap();
        let mut clerk = ClerkUser::new(user.id.clone());
        if let Some(email) = &user.email {
            clerk = clerk.with_email(email.clone());
        }
        clerk
    }

    pub fn tokens(&self) -> Tokens {
        Tokens::mint(
            &self.secret,
            &self.clerk_user("alice"),
            &self.clerk_user("bob"),
        )
        .unwrap()
    }

    /// The sample app on 127.0.0.1:0 against `db`, with at most `pool` connections.
    pub async fn spawn_app(&self, db: &TestDatabase, pool: u32) -> (RunningApp, Api) {
        let mut config = AppConfig::new(db.app_target().url(), self.secret.clone());
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.max_connections = pool;
        let app = todo_app::spawn(config).await.unwrap();
        let api = Api::new(&app.url()).unwrap();
        (app, api)
    }
}
