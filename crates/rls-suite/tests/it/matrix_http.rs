//! The HTTP access matrix through the sample app, and its agreement with the SQL matrix.

use harness::TestDatabase;

use crate::support::world;

#[tokio::test]
async fn the_http_matrix_shows_no_leak_and_agrees_with_sql() {
    let w = world();
    let db = TestDatabase::create().await.unwrap();
    let (app, api) = w.spawn_app(&db, 4).await;
    let http = rls_suite::todos::http::run_with_database(
        &api,
        &w.tokens(),
        db.admin_target(),
        &w.fixtures,
    )
    .await
    .unwrap();
    crate::support::assert_clean(&http, &db).await;
    insta::assert_snapshot!("http_matrix", http.render());

    let sql = rls_suite::todos::sql::run(db.admin_target(), db.app_target(), &w.fixtures, &w.ids)
        .await
        .unwrap();
    let disagreements = rls_suite::todos::http::disagreements(&sql, &http);
    assert!(
        disagreements.is_empty(),
        "SQL and HTTP disagree:\n{}",
        disagreements.join("\n")
    );
    drop(app);
}
