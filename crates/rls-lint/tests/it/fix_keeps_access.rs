//! `--fix-sql` never changes who sees what without saying so: on the todos schema degraded in
//! ways whose fixes are access-neutral (no FORCE, no owner index, a bare caller-id call, an
//! UPDATE policy without WITH CHECK), and on examples/team-workspaces as it is, the spec check's
//! matrices are the same before and after the whole fix migration, and the fixed rules go quiet.

use std::path::PathBuf;

use harness::{Migrations, TestDatabase};
use rls_suite::engine::{self, BoundSpec, RunOptions};
use rls_suite::spec::Spec;
use sqlx::Connection;

use crate::support::{apply, lint};

fn root() -> PathBuf {
    harness::state::workspace_root()
}

/// The spec check's matrices, rendered.
async fn matrices(spec: &Spec, db: &TestDatabase) -> String {
    let mut admin = db.admin_connection().await.unwrap();
    let bound = BoundSpec::bind(spec, &mut admin).await.unwrap();
    admin.close().await.unwrap();
    engine::run(
        &bound,
        db.admin_target(),
        db.app_target(),
        RunOptions::default(),
    )
    .await
    .unwrap()
    .render()
}

const DEGRADE_TODOS: &str = "
    ALTER TABLE public.todos NO FORCE ROW LEVEL SECURITY;
    DROP INDEX public.todos_user_id_created_at_idx;
    ALTER POLICY todos_select_own ON public.todos USING (user_id = public.requesting_user_id());
    DROP POLICY todos_update_own ON public.todos;
    CREATE POLICY todos_update_own ON public.todos FOR UPDATE TO authenticated
      USING (user_id = (SELECT public.requesting_user_id()));";

#[tokio::test]
async fn the_todos_fixes_keep_the_matrices_and_silence_their_rules() {
    let spec = Spec::load(&root().join("fixtures/todos.access.toml")).unwrap();
    let unfixed = TestDatabase::create().await.unwrap();
    apply(&unfixed, DEGRADE_TODOS).await;
    let fixed = TestDatabase::create().await.unwrap();
    apply(&fixed, DEGRADE_TODOS).await;

    let report = lint(&fixed).await;
    let rules: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
    for rule in [
        "rls.not_forced",
        "owner_column.unindexed",
        "policy.unwrapped_call",
        "policy.missing_with_check",
    ] {
        assert!(
            rules.contains(&rule),
            "{rule} not reported\n{}",
            report.render_text()
        );
    }
    let migration = report.fix_sql();
    apply(&fixed, &migration).await;
    let after = lint(&fixed).await;
    assert!(
        after.findings.is_empty(),
        "{migration}\n{}",
        after.render_text()
    );

    assert_eq!(
        matrices(&spec, &unfixed).await,
        matrices(&spec, &fixed).await,
        "the fix changed who sees what:\n{migration}"
    );
}

#[tokio::test]
async fn the_team_workspaces_fixes_keep_its_spec_check_as_it_was() {
    let dir = root().join("examples/team-workspaces");
    let spec = Spec::load(&dir.join("access.toml")).unwrap();
    let migrations = Migrations::from_dir(&dir.join("migrations")).unwrap();
    let unfixed = TestDatabase::migrated(&migrations).await.unwrap();
    let fixed = TestDatabase::migrated(&migrations).await.unwrap();

    let report = lint(&fixed).await;
    assert_eq!(report.summary().error, 0, "{}", report.render_text());
    let migration = report.fix_sql();
    assert!(
        migration.contains("ALTER TABLE public.project_members ALTER COLUMN user_id SET DEFAULT"),
        "{migration}"
    );
    apply(&fixed, &migration).await;
    assert!(
        !lint(&fixed)
            .await
            .findings
            .iter()
            .any(|f| f.rule == "owner_column.default"),
        "{migration}"
    );
    assert_eq!(
        matrices(&spec, &unfixed).await,
        matrices(&spec, &fixed).await,
        "the fix changed who sees what:\n{migration}"
    );
}
