//! The ported real schemas (`examples/real/*`) and `examples/team-workspaces`, each migrated
//! into a fresh database: the lint raises exactly the ERRORs their READMEs explain (the "Lint"
//! section), so a new false ERROR fails here.

use harness::{Migrations, TestDatabase};
use rls_lint::{Level, LintOptions};
use rls_suite::spec::Spec;
use sqlx::Connection;

/// Lints the migrations of `examples/<dir>` (`public` and the schema its spec names) and
/// returns its ERROR `(rule, object)` pairs, sorted, printing every finding for the failure
/// report.
async fn errors(dir: &str) -> Vec<(String, String)> {
    let root = harness::state::workspace_root().join("examples").join(dir);
    let spec = Spec::load(&root.join("access.toml")).unwrap();
    let migrations = Migrations::from_dir(&root.join("migrations")).unwrap();
    let db = TestDatabase::migrated(&migrations).await.unwrap();
    let mut schemas = vec!["public".to_owned()];
    if spec.schema != "public" {
        schemas.push(spec.schema.clone());
    }
    let options = LintOptions {
        schemas,
        ..LintOptions::default()
    };
    let mut conn = db.admin_connection().await.unwrap();
    let report = rls_lint::lint(&mut conn, &options).await.unwrap();
    conn.close().await.ok();
    eprintln!("== {dir}\n{}", report.render_text());
    let mut pairs: Vec<(String, String)> = report
        .findings
        .iter()
        .filter(|f| f.level == Level::Error)
        .map(|f| (f.rule.to_owned(), f.object.clone()))
        .collect();
    pairs.sort();
    pairs.dedup();
    pairs
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list
        .iter()
        .map(|(r, o)| ((*r).to_owned(), (*o).to_owned()))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn basejump_raises_only_the_errors_its_readme_explains() {
    assert_eq!(
        errors("real/basejump").await,
        pairs(&[(
            "policy.not_owner_scoped",
            "policy Team accounts can be created by any user on basejump.accounts",
        )])
    );
}

#[tokio::test]
async fn figma_clone_raises_only_the_errors_its_readme_explains() {
    assert_eq!(errors("real/figma-clone").await, pairs(&[]));
}

#[tokio::test]
async fn slack_clone_raises_only_the_errors_its_readme_explains() {
    assert_eq!(
        errors("real/slack-clone").await,
        pairs(&[(
            "function.security_definer",
            "function public.authorize(requested_permission public.app_permission, user_id text)",
        )])
    );
}

#[tokio::test]
async fn team_workspaces_raises_no_error() {
    assert_eq!(errors("team-workspaces").await, pairs(&[]));
}
