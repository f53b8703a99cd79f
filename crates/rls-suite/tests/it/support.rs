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

/// What the linter says about `db`: appended to a failing matrix so the message names the
/// broken rule, not just the rows that moved.
pub async fn lint_findings(db: &TestDatabase) -> String {
    let opts = rls_lint::LintOptions {
        app_role: Some(db.app_target().user.clone()),
        ..Default::default()
    };
    match rls_lint::lint_url(&db.admin_target().url(), &opts).await {
        Ok(report) => report.render_text(),
        Err(e) => format!("(lint could not run: {e})"),
    }
}

/// Panics with the matrix, its findings and the linter's view when anything leaked or was lost.
pub async fn assert_clean(matrix: &rls_suite::matrix::AccessMatrix, db: &TestDatabase) {
    let (leaks, lost) = (matrix.leaks(), matrix.lost_access());
    if !leaks.is_empty() || !lost.is_empty() {
        panic!(
            "the {} matrix found {} leaks and {} lost-access cells:\n{}\n{}\n\n{}\nrls-lint on this database:\n{}",
            matrix.layer,
            leaks.len(),
            lost.len(),
            leaks.join("\n"),
            lost.join("\n"),
            matrix.render(),
            lint_findings(db).await
        );
    }
}
