//! `--baseline` / `--write-baseline` on a real catalog: a written baseline silences exactly the
//! findings it was written from, a new finding still fails, and a fixed one leaves a stale
//! entry behind.

use harness::TestDatabase;
use rls_lint::{Baseline, Level, LintOptions, Report};

use crate::support::apply;

async fn lint_with(db: &TestDatabase, options: &LintOptions) -> Report {
    let mut conn = db.admin_connection().await.unwrap();
    rls_lint::lint(&mut conn, options).await.unwrap()
}

#[tokio::test]
async fn only_new_findings_fail_and_fixed_ones_leave_stale_entries() {
    let db = TestDatabase::create().await.unwrap();
    apply(
        &db,
        "ALTER TABLE public.todos NO FORCE ROW LEVEL SECURITY;
         CREATE FUNCTION public.loose() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;",
    )
    .await;
    let first = lint_with(&db, &LintOptions::default()).await;
    assert_eq!(first.findings.len(), 2, "{}", first.render_text());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rls-lint-baseline.toml");
    Baseline::from_report(&first, "accepted for the test")
        .write(&path)
        .unwrap();
    let options = LintOptions {
        baseline: Some(Baseline::load(&path).unwrap()),
        ..LintOptions::default()
    };

    let same = lint_with(&db, &options).await;
    assert!(same.findings.is_empty(), "{}", same.render_text());
    assert_eq!(same.baselined.len(), 2);
    assert!(same.stale.is_empty());
    assert_eq!(same.exit_code(Level::Info), 0);

    // Fix one known finding, add a new one.
    apply(
        &db,
        "ALTER TABLE public.todos FORCE ROW LEVEL SECURITY;
         ALTER FUNCTION public.requesting_user_id() IMMUTABLE;",
    )
    .await;
    let later = lint_with(&db, &options).await;
    let new: Vec<&str> = later.findings.iter().map(|f| f.rule).collect();
    assert_eq!(
        new,
        ["function.caller_id_immutable"],
        "{}",
        later.render_text()
    );
    assert_eq!(later.exit_code(Level::Warn), 1);
    let stale: Vec<(&str, &str)> = later
        .stale
        .iter()
        .map(|e| (e.rule.as_str(), e.object.as_str()))
        .collect();
    assert_eq!(stale, [("rls.not_forced", "public.todos")]);
    assert!(
        later
            .render_text()
            .contains("stale baseline entry: rls.not_forced on public.todos")
    );
    let json: serde_json::Value = serde_json::from_str(&later.render_json()).unwrap();
    assert_eq!(json["stale"][0]["rule"], "rls.not_forced");
    assert_eq!(json["baselined"][0]["rule"], "function.search_path");
}
