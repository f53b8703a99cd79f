//! The SQL access matrix on the project's own migrations: no leak, no lost access, and the
//! whole table snapshotted so any policy change is a reviewable diff.

use harness::TestDatabase;

use crate::support::world;

#[tokio::test]
async fn the_sql_matrix_of_the_migrations_shows_no_leak_and_no_lost_access() {
    let w = world();
    let db = TestDatabase::create().await.unwrap();
    let matrix =
        rls_suite::todos::sql::run(db.admin_target(), db.app_target(), &w.fixtures, &w.ids)
            .await
            .unwrap();
    crate::support::assert_clean(&matrix, &db).await;
    insta::assert_snapshot!("sql_matrix", matrix.render());
}
