//! Live verify against the running sample app: clean on the migrations, a leak (exit code 1)
//! on a mutant schema, and no synthetic row left behind either way.

use harness::TestDatabase;
use rls_suite::todos::verify::{VerifyOptions, verify};
use sqlx::Connection;

use crate::support::world;

async fn rows_left(db: &TestDatabase) -> i64 {
    let mut admin = db.admin_connection().await.unwrap();
    let n = sqlx::query_scalar("select count(*) from public.todos")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    n
}

#[tokio::test]
async fn verify_is_clean_on_the_migrations_and_leaves_nothing() {
    let w = world();
    let db = TestDatabase::create().await.unwrap();
    let (app, _) = w.spawn_app(&db, 4).await;
    let opts = VerifyOptions {
        base_url: app.url(),
        secret: w.secret.clone(),
        table: "todos".into(),
    };
    let report = verify(&opts).await.unwrap();
    assert_eq!(report.exit_code(), 0, "{}", report.render());
    assert!(report.leftovers.is_empty());
    assert_eq!(rows_left(&db).await, 0, "synthetic rows removed");
    assert_eq!(
        report.tokens.len(),
        rls_suite::engine::tokens::cases().unwrap().len()
    );
}

#[tokio::test]
async fn verify_reports_a_leak_on_a_mutant_schema() {
    let w = world();
    let db = TestDatabase::create().await.unwrap();
    let mutant = rls_suite::todos::fixtures::mutants()
        .unwrap()
        .into_iter()
        .find(|m| m.id == "update_using_true")
        .unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(mutant.sql))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (app, _) = w.spawn_app(&db, 4).await;
    let opts = VerifyOptions {
        base_url: app.url(),
        secret: w.secret.clone(),
        table: "todos".into(),
    };
    let report = verify(&opts).await.unwrap();
    assert_eq!(report.exit_code(), 1, "{}", report.render());
    assert!(
        report
            .leaks()
            .iter()
            .any(|l| l.contains("update · no filter")),
        "{:#?}",
        report.leaks()
    );
    assert_eq!(rows_left(&db).await, 0);
}
