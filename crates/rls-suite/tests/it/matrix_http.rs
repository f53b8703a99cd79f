//! The HTTP access matrix through the sample app (the engine's run of
//! `fixtures/todos.access.toml` over the records API, with its hostile-token table and pool
//! bleed, plus requests with no `Authorization` header), and its agreement with the SQL matrix.
//! Hostile tokens are table-driven from fixtures/tokens.json: each gets the status and body the
//! contract says, no row of anyone else is returned, and a refused token changes nothing.

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
    // The hostile-token table (expired, foreign-secret and sub-less tokens among its cases):
    // every case of fixtures/tokens.json gets the status and error the contract says. That
    // none sees or changes another user's row, and a refused one changes nothing, is its
    // verdicts, counted in `leaks()` above.
    let cases = rls_suite::engine::tokens::cases().unwrap();
    assert_eq!(http.hostile.len(), cases.len());
    let off_contract: Vec<_> = http
        .hostile
        .iter()
        .zip(&cases)
        .filter(|(row, case)| {
            row.case != case.case
                || row.status != case.expect.status
                || case.expect.error.as_deref().is_some_and(|e| e != row.error)
        })
        .map(|(row, case)| {
            format!(
                "{}: got {} {} (expected {:?})",
                row.case, row.status, row.error, case.expect
            )
        })
        .collect();
    assert!(off_contract.is_empty(), "{off_contract:#?}");
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
