//! The spec engine on two schemas: the sample's todos (the same verdicts as the todos matrix)
//! and examples/team-workspaces (intended sharing is not a leak), whose every intended rule,
//! broken by hand, makes the check fail.

use std::path::PathBuf;

use harness::{Migrations, TestDatabase};
use rls_suite::engine::{self, BoundSpec, CheckReport, RunOptions};
use rls_suite::spec::Spec;
use sqlx::Connection;

use crate::support::run_mutants;

fn root() -> PathBuf {
    harness::state::workspace_root()
}

fn example() -> PathBuf {
    root().join("examples/team-workspaces")
}

async fn check(spec: &Spec, db: &TestDatabase) -> CheckReport {
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
}

fn assert_clean(report: &CheckReport) {
    let (leaks, lost) = (report.leaks(), report.lost_access());
    assert!(
        leaks.is_empty() && lost.is_empty(),
        "leaks:\n{}\nlost access:\n{}\n\n{}",
        leaks.join("\n"),
        lost.join("\n"),
        report.render()
    );
}

async fn team_database() -> TestDatabase {
    let migrations = Migrations::from_dir(&example().join("migrations")).unwrap();
    TestDatabase::migrated(&migrations).await.unwrap()
}

#[tokio::test]
async fn team_workspaces_shares_what_its_spec_shares_and_nothing_else() {
    let spec = Spec::load(&example().join("access.toml")).unwrap();
    let db = team_database().await;
    let report = check(&spec, &db).await;
    assert_clean(&report);
    for table in &report.tables {
        insta::assert_snapshot!(format!("team_workspaces_{}", table.table), table.render());
    }
    // Every policy's grant and denial is exercised by some actor on the seeded rows.
    let coverage = report
        .coverage
        .as_ref()
        .expect("a full run measures coverage");
    assert_eq!(coverage.untested(), [], "{}", coverage.render());
    assert_eq!(coverage.policies.len(), 15, "{}", coverage.render());
    insta::assert_snapshot!("team_workspaces_coverage", coverage.render());
}

/// A policy no seeded row passes, and one for a role the check never acts as: both untested,
/// each with what would exercise it.
#[tokio::test]
async fn a_policy_no_actor_exercises_is_reported_untested() {
    let spec = Spec::load(&root().join("fixtures/todos.access.toml")).unwrap();
    let db = TestDatabase::create().await.unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    sqlx::raw_sql(
        "create policy todos_nobody on public.todos for select to authenticated \
           using (user_id = 'user_nobody' or (select public.requesting_user_id()) = 'user_nobody'); \
         create policy todos_admin on public.todos for select to project_admin using (true)",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    let report = check(&spec, &db).await;
    let coverage = report.coverage.unwrap();
    let untested: Vec<(String, &str)> = coverage
        .untested()
        .into_iter()
        .map(|u| (u.what, u.missing))
        .collect();
    assert_eq!(
        untested,
        [
            ("todos.todos_admin".to_owned(), "anything"),
            ("todos.todos_nobody using".to_owned(), "grant"),
            ("todos.todos_nobody using · branch 1".to_owned(), "grant"),
            ("todos.todos_nobody using · branch 2".to_owned(), "grant"),
        ],
        "{}",
        coverage.render()
    );
    let text = coverage.render();
    assert!(
        text.contains("UNTESTED todos.todos_nobody using — no grant: no actor it applies to (alice, bob, mallory"),
        "{text}"
    );
    assert!(
        text.contains("UNTESTED todos.todos_admin — no anything: it is for project_admin"),
        "{text}"
    );
}

/// Each intended rule of the example, broken by hand: the check must fail, and say how.
const BROKEN: &[(&str, &str, &str)] = &[
    (
        "any member deletes tasks",
        "alter policy tasks_delete on public.tasks using (public.project_role(project_id) is not null)",
        "leak",
    ),
    (
        "tasks moved to another project",
        "alter policy tasks_update on public.tasks with check (true)",
        "leak",
    ),
    (
        "any member adds members",
        "alter policy project_members_insert on public.project_members with check (public.project_role(project_id) is not null)",
        "leak",
    ),
    (
        "members read every project",
        "alter policy projects_select on public.projects using (true)",
        "leak",
    ),
    (
        "profiles readable only when signed in",
        "alter policy profiles_select on public.profiles to authenticated",
        "lost",
    ),
    (
        "members lose their projects",
        "alter policy projects_select on public.projects using (owner_id = (select public.requesting_user_id()))",
        "lost",
    ),
    (
        "profile ids compared case-insensitively",
        "alter policy profiles_delete on public.profiles using (lower(user_id) = lower((select public.requesting_user_id())))",
        "leak",
    ),
    (
        "project owners compared by prefix",
        "alter policy projects_select on public.projects using (owner_id like (select public.requesting_user_id()) || '%')",
        "leak",
    ),
    (
        "ids compared as LIKE patterns",
        "alter policy profiles_delete on public.profiles using (user_id like (select public.requesting_user_id()))",
        "leak",
    ),
    (
        "a member makes themselves owner",
        "create policy project_members_update on public.project_members for update to authenticated using (user_id = (select public.requesting_user_id()))",
        "leak",
    ),
];

#[tokio::test]
async fn every_intended_rule_broken_by_hand_fails_the_check() {
    let spec = Spec::load(&example().join("access.toml")).unwrap();
    let mut missed = Vec::new();
    for (name, sql, expect) in BROKEN {
        let db = team_database().await;
        let mut admin = db.admin_connection().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{name}: does not apply: {e}"));
        admin.close().await.unwrap();
        let report = check(&spec, &db).await;
        let (leaks, lost) = (report.leaks(), report.lost_access());
        let caught = match *expect {
            "leak" => !leaks.is_empty(),
            _ => leaks.is_empty() && !lost.is_empty(),
        };
        if !caught {
            missed.push(format!(
                "{name} (expected {expect}): leaks {leaks:?}, lost {lost:?}\n{}",
                report.render()
            ));
        }
    }
    assert!(missed.is_empty(), "not caught:\n{}", missed.join("\n\n"));
}

#[tokio::test]
async fn a_spec_naming_what_the_catalog_lacks_is_refused_by_file_key_and_line() {
    let text = std::fs::read_to_string(example().join("access.toml")).unwrap();
    let db = team_database().await;
    let mut admin = db.admin_connection().await.unwrap();
    let cases = [
        (
            "[tables.tasks]",
            "[tables.taskz]",
            "there is no table `taskz`",
        ),
        (
            "owner = \"owner_id\"",
            "owner = \"owner\"",
            "`projects` has no column `owner`",
        ),
        (
            "payload = { title = \"Matrix task\" }",
            "payload = { titel = \"Matrix task\" }",
            "`tasks` has no column `titel`",
        ),
        (
            "payload = { name = \"Matrix project\" }",
            "payload = { name = \"x\", created_at = \"not a time\" }",
            "the table refuses a seed row",
        ),
    ];
    for (from, to, message) in cases {
        let changed = text.replacen(from, to, 1);
        let path = PathBuf::from("examples/team-workspaces/access.toml");
        let spec = Spec::parse(&path, &changed).unwrap();
        let bound = BoundSpec::bind(&spec, &mut admin).await;
        let err = match bound {
            Err(e) => e.to_string(),
            Ok(bound) => engine::run(
                &bound,
                db.admin_target(),
                db.app_target(),
                RunOptions::default(),
            )
            .await
            .unwrap_err()
            .to_string(),
        };
        assert!(
            err.starts_with("examples/team-workspaces/access.toml:") && err.contains(message),
            "{to}: {err}"
        );
    }
}

/// Hand-written mutants no identity InsForge 2.3 forwards can tell apart: an unguarded cast of
/// the claims breaks only a request that reaches Postgres with no claims at all, which InsForge
/// never sends (every identity it forwards carries `role`; docs/fidelity.md). The lint's
/// `claims.cast_before_guard` names it; the generated-mutants table shows that kill.
const NO_INSFORGE_IDENTITY_TELLS: [&str; 1] = ["unguarded_requesting_user_id"];

/// The hand-written todos mutants (fixtures/mutants), judged by the spec engine alone: each is
/// a leak or lost access there too, as the todos matrices judge it (except those above, which
/// must stay clean: if one is caught, the list is stale).
#[tokio::test]
async fn the_todos_mutants_are_caught_by_the_spec_engine_too() {
    let spec = Spec::load(&root().join("fixtures/todos.access.toml")).unwrap();
    let mut missed = Vec::new();
    let list = rls_suite::todos::fixtures::mutants().unwrap();
    for mutant in &list {
        let db = TestDatabase::create().await.unwrap();
        let mut admin = db.admin_connection().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(mutant.sql.clone()))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let report = check(&spec, &db).await;
        let (leaks, lost) = (report.leaks(), report.lost_access());
        let caught = match mutant.expect {
            rls_suite::todos::fixtures::Expect::Leak => !leaks.is_empty(),
            rls_suite::todos::fixtures::Expect::LostAccess => leaks.is_empty() && !lost.is_empty(),
        };
        if NO_INSFORGE_IDENTITY_TELLS.contains(&mutant.id.as_str()) {
            assert!(
                !caught,
                "{} is caught by the matrices now: drop it from NO_INSFORGE_IDENTITY_TELLS",
                mutant.id
            );
            continue;
        }
        if !caught {
            missed.push(format!(
                "{} ({:?}): leaks {leaks:?}, lost {lost:?}\n{}",
                mutant.id,
                mutant.expect,
                report.render()
            ));
        }
    }
    assert!(list.len() >= 10);
    assert!(missed.is_empty(), "missed:\n{}", missed.join("\n\n"));
}

/// Mutants generated from the catalog of the todos schema: every one is killed by the
/// matrices or the lint, and one that cannot apply is named "not run", never counted.
#[tokio::test]
async fn every_generated_mutant_of_the_todos_schema_is_killed() {
    use rls_suite::mutation::{self, Mutant, Outcome};
    let spec = Spec::load(&root().join("fixtures/todos.access.toml")).unwrap();
    let db = TestDatabase::create().await.unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    let bound = BoundSpec::bind(&spec, &mut admin).await.unwrap();
    let mut list = mutation::generate(&bound, &mut admin).await.unwrap();
    admin.close().await.unwrap();
    assert!(list.len() >= 15, "{list:?}");
    list.push(Mutant {
        id: "todos.broken.sql".into(),
        table: "todos".into(),
        operator: "broken",
        sql: "alter policy no_such_policy on public.todos using (true)".into(),
        not_run: None,
    });
    list.push(Mutant {
        id: "todos.unparsed.using.parse".into(),
        table: "todos".into(),
        operator: "parse",
        sql: String::new(),
        not_run: Some("its using expression cannot be mutated".into()),
    });
    let report = run_mutants(&bound, &db, list).await;
    let not_run: Vec<&str> = report
        .results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::NotRun(_)))
        .map(|(m, _)| m.id.as_str())
        .collect();
    assert_eq!(
        not_run,
        ["todos.broken.sql", "todos.unparsed.using.parse"],
        "{}",
        report.render()
    );
    // No survivor. The one that survived before the judge read refused WHERE-less writes:
    // USING loosened to a case-insensitive compare, WITH CHECK exact — bob (alice's id in lower
    // case) could take alice's todo by writing his own id into it. Two cells now say so:
    // "take over · forbidden row" does exactly that, and alice's WHERE-less update, which now
    // reaches bob's row too and is refused by the check, is lost access.
    let survivors: Vec<&str> = report.survivors().map(|m| m.id.as_str()).collect();
    assert!(survivors.is_empty(), "{}", report.render());
    let killed_by = report
        .results
        .iter()
        .find(|(m, _)| m.id == "todos.todos_update_own.using.loose_lower")
        .map(|(_, o)| format!("{o:?}"));
    assert!(
        killed_by
            .as_deref()
            .is_some_and(|o| o.contains("take over") || o.contains("update · no filter")),
        "{killed_by:?}"
    );

    // Every hand-written kind (fixtures/mutants) has a generated twin, and it is killed.
    let hand_written: Vec<String> = rls_suite::todos::fixtures::mutants()
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    let kinds: Vec<&str> = TWINS.iter().map(|(kind, _)| *kind).collect();
    assert_eq!(
        hand_written, kinds,
        "a hand-written kind without its generated twin"
    );
    let mut lines = Vec::new();
    for (kind, twin) in TWINS {
        let outcome = report
            .results
            .iter()
            .find(|(m, _)| m.id == *twin)
            .map(|(_, o)| o.clone());
        match outcome {
            Some(Outcome::Killed(by)) => {
                // Which cell killed it (the row it names depends on random keys), or the lint.
                let by = if by.starts_with("lint: ") {
                    by.as_str()
                } else {
                    by.split(": ").next().unwrap_or(&by)
                };
                lines.push(format!("{kind:<30} {twin:<50} killed: {by}"));
            }
            other => panic!("{kind}: its twin {twin} is {other:?}\n{}", report.render()),
        }
    }
    insta::assert_snapshot!("todos_hand_written_kinds_generated", lines.join("\n"));
}

/// Each hand-written todos mutant (by file stem) and the generated mutant of the same kind.
const TWINS: &[(&str, &str)] = &[
    ("anon_permissive", "todos.table.anon_select"),
    // Its USING holds for every signed-in user (and it has no check): using_true's kind.
    (
        "clerk_doc_update_policy",
        "todos.todos_update_own.using_true",
    ),
    ("delete_using_true", "todos.todos_delete_own.using_true"),
    ("insert_check_true", "todos.todos_insert_own.check_true"),
    (
        "missing_delete_policy",
        "todos.todos_delete_own.drop_policy",
    ),
    ("not_forced_owner", "todos.table.no_force_owned"),
    ("security_definer_function", "todos.table.definer_function"),
    ("security_definer_view", "todos.table.definer_view"),
    ("select_using_true", "todos.todos_select_own.using_true"),
    (
        "unguarded_requesting_user_id",
        "(functions).requesting_user_id.cast_before_guard",
    ),
    ("update_using_true", "todos.todos_update_own.using_true"),
    (
        "update_without_with_check",
        "todos.todos_update_own.drop_check",
    ),
    // `sid` there, `email` here: the caller's id read from another claim.
    ("wrong_claim", "todos.todos_select_own.using.caller_claim"),
];

/// A second policy that grants the same rows makes dropping either one invisible: both
/// survive, and a spec that marks one equivalent (with its reason) reports it apart.
#[tokio::test]
async fn a_redundant_policy_survives_until_the_spec_marks_it_equivalent() {
    use rls_suite::mutation::{self, Outcome};
    let db = TestDatabase::create().await.unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    sqlx::raw_sql(
        "create policy todos_select_again on public.todos for select to authenticated \
         using (user_id = (select public.requesting_user_id()))",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let text = std::fs::read_to_string(root().join("fixtures/todos.access.toml")).unwrap()
        + "\n[mutants]\nequivalent = { \"todos.todos_select_again.drop_policy\" = \"todos_select_own grants the same rows\" }\n";
    let spec = Spec::parse(&root().join("fixtures/todos.access.toml"), &text).unwrap();
    let bound = BoundSpec::bind(&spec, &mut admin).await.unwrap();
    let list: Vec<_> = mutation::generate(&bound, &mut admin)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.operator == "drop_policy" && m.id.contains("select"))
        .collect();
    admin.close().await.unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let report = run_mutants(&bound, &db, list).await;
    let outcome = |id: &str| {
        report
            .results
            .iter()
            .find(|(m, _)| m.id == id)
            .map(|(_, o)| o.clone())
            .unwrap()
    };
    assert_eq!(
        outcome("todos.todos_select_own.drop_policy"),
        Outcome::Survived,
        "{}",
        report.render()
    );
    assert_eq!(
        outcome("todos.todos_select_again.drop_policy"),
        Outcome::Equivalent("todos_select_own grants the same rows".into())
    );
    let text = report.render();
    assert!(
        text.contains("SURVIVED todos.todos_select_own.drop_policy"),
        "{text}"
    );
    assert!(
        text.contains("drop policy \"todos_select_own\" on \"public\".\"todos\""),
        "{text}"
    );
    assert!(
        text.starts_with("mutation score: 0% (0 of 1 killed"),
        "{text}"
    );
}
