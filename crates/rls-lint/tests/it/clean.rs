//! The project's own migrations are the reference: they must lint without a single finding,
//! and linting must not disturb the connection it was given.

use harness::TestDatabase;
use rls_lint::{Level, LintOptions};
use sqlx::Connection;

use crate::support::lint;

#[tokio::test]
async fn the_migrated_schema_lints_clean() {
    let db = TestDatabase::create().await.unwrap();
    let report = lint(&db).await;
    assert!(report.findings.is_empty(), "{}", report.render_text());
    assert_eq!(report.exit_code(Level::Info), 0);
    assert_eq!(report.render_text(), "rls-lint: no findings\n");
}

#[tokio::test]
async fn linting_inside_a_transaction_leaves_it_as_it_was() {
    let db = TestDatabase::create().await.unwrap();
    let mut conn = db.admin_connection().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("create table public.scratch (id int)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let report = rls_lint::lint(&mut tx, &LintOptions::default())
        .await
        .unwrap();
    // The uncommitted table is visible to the lint, which reports it.
    assert!(
        report.findings.iter().any(|f| f.object == "public.scratch"),
        "{}",
        report.render_text()
    );
    let path: String = sqlx::query_scalar("select current_setting('search_path')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(
        path.contains("public"),
        "search_path not restored: {path:?}"
    );
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn unknown_schemas_and_roles_are_reported_as_info() {
    let db = TestDatabase::create().await.unwrap();
    let mut conn = db.admin_connection().await.unwrap();
    let options = LintOptions {
        schemas: vec!["public".into(), "nowhere".into()],
        app_role: Some("no_such_app_role".into()),
        ..LintOptions::default()
    };
    let report = rls_lint::lint(&mut conn, &options).await.unwrap();
    let seen: Vec<(&str, &str, Level)> = report
        .findings
        .iter()
        .map(|f| (f.rule, f.object.as_str(), f.level))
        .collect();
    assert_eq!(
        seen,
        [
            ("options.unknown_role", "role no_such_app_role", Level::Info),
            ("options.unknown_schema", "schema nowhere", Level::Info),
        ]
    );
    assert!(
        rls_lint::lint(
            &mut conn,
            &LintOptions {
                schemas: vec![],
                ..LintOptions::default()
            }
        )
        .await
        .is_err()
    );
}
