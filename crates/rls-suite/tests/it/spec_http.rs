//! The spec engine over HTTP: the same cells carried out through the records API of the sample
//! app serving the check's database, judged alike, and in agreement with the SQL matrices.

use std::path::PathBuf;

use harness::{Migrations, TestDatabase};
use rls_suite::engine::{self, BoundSpec, CheckReport, HttpEndpoint, RunOptions, Via};
use rls_suite::spec::Spec;
use sqlx::Connection;

use crate::support::world;

fn root() -> PathBuf {
    harness::state::workspace_root()
}

/// The SQL run, then the HTTP run through the sample app, on the same database.
async fn both(spec: &Spec, db: &TestDatabase) -> (CheckReport, CheckReport) {
    let mut admin = db.admin_connection().await.unwrap();
    let bound = BoundSpec::bind(spec, &mut admin).await.unwrap();
    admin.close().await.unwrap();
    let sql = engine::run(
        &bound,
        db.admin_target(),
        db.app_target(),
        RunOptions::default(),
    )
    .await
    .unwrap();
    let w = world();
    // A pool of two: every connection serves many identities in turn.
    let (app, _) = w.spawn_app(db, 2).await;
    let endpoint = HttpEndpoint {
        base_url: app.url(),
        secret: w.secret.clone(),
    };
    let http = engine::run_via(
        &bound,
        db.admin_target(),
        Via::Http(&endpoint),
        RunOptions::default(),
    )
    .await
    .unwrap();
    app.shutdown().await.unwrap();
    (sql, http)
}

fn assert_agree(sql: &CheckReport, http: &CheckReport) {
    let diff = sql.disagreements(http, ("SQL", "HTTP"));
    assert!(
        diff.is_empty(),
        "SQL and HTTP disagree:\n{}\n\nHTTP:\n{}",
        diff.join("\n"),
        http.render()
    );
}

#[tokio::test]
async fn the_todos_spec_over_http_agrees_with_sql() {
    let spec = Spec::load(&root().join("fixtures/todos.access.toml")).unwrap();
    let db = TestDatabase::create().await.unwrap();
    let (sql, http) = both(&spec, &db).await;
    assert!(http.leaks().is_empty(), "{}", http.render());
    assert!(http.lost_access().is_empty(), "{}", http.render());
    // Over HTTP only the Clerk users act; every cell they share with SQL says the same.
    assert!(
        !http
            .actors
            .iter()
            .any(|(k, _)| k == "anon" || k == "no_claims")
    );
    // HTTP has SQL's rows, then its own (upserts, embeds: `engine::surfaces`).
    let sql_ops = &sql.tables[0].ops;
    assert_eq!(&http.tables[0].ops[..sql_ops.len()], sql_ops.as_slice());
    assert!(
        http.tables[0].ops[sql_ops.len()..]
            .iter()
            .all(|op| op.starts_with("upsert · ") || op.starts_with("embed ")),
        "{:?}",
        http.tables[0].ops
    );
    assert_agree(&sql, &http);
    // The hostile-token table: every case answered as the contract says, nothing leaked.
    assert_eq!(
        http.hostile.len(),
        rls_suite::engine::tokens::cases().unwrap().len()
    );
    let off_contract: Vec<_> = http
        .hostile
        .iter()
        .filter(|r| r.status != r.contract)
        .map(|r| &r.case)
        .collect();
    assert!(off_contract.is_empty(), "{off_contract:?}");
    let pool = http.pool.as_ref().unwrap();
    assert!(pool.reads >= 6 * 4, "{pool:?}");
    insta::assert_snapshot!("todos_spec_matrix_http", http.render());
}

#[tokio::test]
async fn a_policy_broken_by_hand_leaks_over_http_too() {
    let spec = Spec::load(&root().join("fixtures/todos.access.toml")).unwrap();
    let db = TestDatabase::create().await.unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    sqlx::raw_sql(
        "alter policy todos_update_own on public.todos with check (true); \
         alter policy todos_select_own on public.todos using (true);",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    let (sql, http) = both(&spec, &db).await;
    let leaks = http.leaks();
    assert!(
        leaks.iter().any(|l| l.contains("sees a row of")),
        "{leaks:?}"
    );
    assert!(
        leaks.iter().any(|l| l.contains("re-assigns user_id")),
        "{leaks:?}"
    );
    // A well-formed token of user A now reads everyone's rows: the token table says so too.
    assert!(
        leaks
            .iter()
            .any(|l| l.contains("token \"well-formed (control)\": reads a row of")),
        "{leaks:?}"
    );
    assert_agree(&sql, &http);
}

#[tokio::test]
async fn team_workspaces_over_http_agrees_with_sql() {
    let spec = Spec::load(&root().join("examples/team-workspaces/access.toml")).unwrap();
    let migrations =
        Migrations::from_dir(&root().join("examples/team-workspaces/migrations")).unwrap();
    let db = TestDatabase::migrated(&migrations).await.unwrap();
    let (sql, http) = both(&spec, &db).await;
    assert!(http.leaks().is_empty(), "{}", http.render());
    assert!(http.lost_access().is_empty(), "{}", http.render());
    assert_agree(&sql, &http);
    for table in &http.tables {
        insta::assert_snapshot!(
            format!("team_workspaces_http_{}", table.table),
            table.render()
        );
    }
}
