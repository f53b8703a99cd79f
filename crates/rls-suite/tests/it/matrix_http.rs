//! The HTTP access matrix through the sample app (the engine's run of
//! `fixtures/todos.access.toml` over the records API, with its hostile-token table and pool
//! bleed, plus requests with no `Authorization` header), and its agreement with the SQL matrix.

use harness::TestDatabase;
use rls_suite::engine::HttpEndpoint;
use rls_suite::todos::matrices::{CLAIMLESS, run_http, run_sql};

use crate::support::world;

#[tokio::test]
async fn the_http_matrix_shows_no_leak_and_agrees_with_sql() {
    let w = world();
    let db = TestDatabase::create().await.unwrap();
    let (app, _) = w.spawn_app(&db, 4).await;
    let endpoint = HttpEndpoint {
        base_url: app.url(),
        secret: w.secret.clone(),
    };
    let http = run_http(db.admin_target(), &endpoint).await.unwrap();
    crate::support::assert_clean(&http, &db).await;
    // Expired, foreign-secret and sub-less tokens are rows of the hostile-token table; every
    // one answered as fixtures/tokens.json promises.
    let off_contract: Vec<_> = http
        .hostile
        .iter()
        .filter(|r| r.status != r.contract)
        .map(|r| &r.case)
        .collect();
    assert!(off_contract.is_empty(), "{off_contract:?}");
    assert!(http.table(CLAIMLESS).is_some_and(|t| t.ops.len() == 2));
    insta::assert_snapshot!("http_matrix", http.render());

    let sql = run_sql(db.admin_target(), db.app_target()).await.unwrap();
    let disagreements = sql.disagreements(&http, ("SQL", "HTTP"));
    // The claimless columns differ by design (a session vs. a request without a token).
    let disagreements: Vec<_> = disagreements
        .into_iter()
        .filter(|d| !d.starts_with(&format!("[{CLAIMLESS}]")))
        .collect();
    assert!(
        disagreements.is_empty(),
        "SQL and HTTP disagree:\n{}",
        disagreements.join("\n")
    );
    app.shutdown().await.unwrap();
}
