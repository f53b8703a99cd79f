//! The harness as another project uses it (docs/testing.md, "From your own Rust tests"): a database of
//! its own with the team's migrations, seeded as a superuser, read as a Clerk user through the
//! app's login role. docs/testing.md shows this test's body.

use harness::{DbIdentity, Migrations, TestDatabase, begin_as};

#[tokio::test]
async fn a_team_test_clones_a_database_acts_as_a_clerk_user_and_asserts() {
    let folder = harness::state::workspace_root().join("examples/team-workspaces/migrations");
    // --- as in docs/testing.md ---
    let db = TestDatabase::migrated(&Migrations::from_dir(&folder).unwrap())
        .await
        .unwrap();
    let mut admin = db.admin_connection().await.unwrap(); // superuser: seeding only
    sqlx::query("insert into projects (owner_id, name) values ('user_2ada', 'Ada''s'), ('user_2ben', 'Ben''s')")
        .execute(&mut admin)
        .await
        .unwrap();
    let mut app = db.app_connection().await.unwrap(); // the app's role: RLS applies
    let ada = DbIdentity::authenticated(
        &serde_json::json!({ "sub": "user_2ada", "role": "authenticated" }),
    );
    let mut tx = begin_as(&mut app, &ada).await.unwrap();
    let names: Vec<String> = sqlx::query_scalar("select name from projects")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(names, ["Ada's"]);
    // --- end ---
}
