//! The SQL access matrix on the project's own migrations: the engine's run of
//! `fixtures/todos.access.toml` plus a session with no claims at all — no leak, no lost access,
//! and the whole report snapshotted so any policy change is a reviewable diff.

use harness::TestDatabase;

#[tokio::test]
async fn the_sql_matrix_of_the_migrations_shows_no_leak_and_no_lost_access() {
    let db = TestDatabase::create().await.unwrap();
    let report = rls_suite::todos::matrices::run_sql(db.admin_target(), db.app_target())
        .await
        .unwrap();
    crate::support::assert_clean(&report, &db).await;
    // Every engine actor (the three users, the look-alikes, no_claims, anon) and the claimless
    // column, each on every operation.
    assert!(report.table("todos").is_some_and(|t| t.actors.len() == 8));
    assert!(
        report
            .table(rls_suite::todos::matrices::CLAIMLESS)
            .is_some_and(|t| t.ops.len() == 2)
    );
    insta::assert_snapshot!("sql_matrix", report.render());
}
