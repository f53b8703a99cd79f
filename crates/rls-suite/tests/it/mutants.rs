//! Negative controls: each mutant in fixtures/mutants weakens the schema in one plausible way;
//! the todos matrices (the engine's run of fixtures/todos.access.toml in SQL and over HTTP,
//! with the claimless column) must catch every one (a leak) or flag it (lost access). Score
//! must be 100%.

use harness::TestDatabase;
use rls_suite::engine::HttpEndpoint;
use rls_suite::todos::fixtures::{Expect, mutants};
use rls_suite::todos::matrices::{run_http, run_sql};
use sqlx::Connection;

use crate::support::{run_mutants, world};

#[tokio::test]
async fn every_mutant_is_caught_or_flagged() {
    let w = world();
    let list = mutants().unwrap();
    assert!(
        list.len() >= 10,
        "expected the full mutant set, found {}",
        list.len()
    );
    let mut report = Vec::new();
    let mut missed = Vec::new();
    for mutant in &list {
        let db = TestDatabase::create().await.unwrap();
        let mut admin = db.admin_connection().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(mutant.sql.clone()))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("mutant {} does not apply: {e}", mutant.id));
        admin.close().await.unwrap();

        let sql = run_sql(db.admin_target(), db.app_target()).await.unwrap();
        let (app, _) = w.spawn_app(&db, 2).await;
        let endpoint = HttpEndpoint {
            base_url: app.url(),
            secret: w.secret.clone(),
        };
        let http = run_http(db.admin_target(), &endpoint).await.unwrap();
        app.shutdown().await.unwrap();
        let layer = |name: &str, found: Vec<String>| -> Vec<String> {
            found.into_iter().map(|f| format!("{name} {f}")).collect()
        };
        let leaks = [layer("SQL", sql.leaks()), layer("HTTP", http.leaks())].concat();
        let lost = [
            layer("SQL", sql.lost_access()),
            layer("HTTP", http.lost_access()),
        ]
        .concat();
        let caught = match mutant.expect {
            Expect::Leak => !leaks.is_empty(),
            // Lost access must not hide a leak: a deny-all mistake is only a lost function.
            Expect::LostAccess => !lost.is_empty() && leaks.is_empty(),
        };
        // The first finding's cell (layer, table, operation, actor): which of another user's
        // rows a cell names first is not stable from run to run.
        let first = leaks.first().or(lost.first()).map_or_else(
            || "nothing found".to_owned(),
            |f| match f.split_once(": ") {
                Some((cell, what)) => {
                    format!("{cell}: {}", what.split(' ').next().unwrap_or_default())
                }
                None => f.clone(),
            },
        );
        report.push(format!(
            "{:<32} {:<11} {}  {}",
            mutant.id,
            format!("{:?}", mutant.expect),
            if caught { "caught " } else { "MISSED " },
            first
        ));
        if !caught {
            missed.push(format!(
                "{} ({}):\n{}\n{}",
                mutant.id,
                mutant.breaks,
                sql.render(),
                http.render()
            ));
        }
    }
    let score = 100 * (list.len() - missed.len()) / list.len();
    println!(
        "mutation score: {score}% ({} of {})\n{}",
        list.len() - missed.len(),
        list.len(),
        report.join("\n")
    );
    assert!(
        missed.is_empty(),
        "mutants the suite did not catch:\n{}",
        missed.join("\n\n")
    );
    insta::assert_snapshot!(
        "mutation_report",
        format!("mutation score: {score}%\n{}", report.join("\n"))
    );
}

// ---- the generated mutants, judged against the unmutated run ----

use harness::Migrations;
use rls_suite::engine::BoundSpec;
use rls_suite::mutation::{self, MutationReport, Outcome};
use rls_suite::spec::Spec;

fn outcome<'a>(report: &'a MutationReport, id: &str) -> &'a Outcome {
    report
        .results
        .iter()
        .find(|(m, _)| m.id == id)
        .map(|(_, o)| o)
        .unwrap_or_else(|| panic!("no mutant {id}:\n{}", report.render()))
}

/// The team-workspaces example, optionally with `plant` applied; its spec, with `extra`
/// appended; and the generated mutants of `table` (each run on a clone).
async fn example_mutants(
    plant: Option<&str>,
    extra: &str,
    table: &str,
    only: Option<&[&str]>,
) -> MutationReport {
    let root = harness::state::workspace_root();
    let dir = root.join("examples/team-workspaces");
    let migrations = Migrations::from_dir(&dir.join("migrations")).unwrap();
    let db = TestDatabase::migrated(&migrations).await.unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    if let Some(plant) = plant {
        sqlx::raw_sql(sqlx::AssertSqlSafe(plant.to_owned()))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let path = dir.join("access.toml");
    let text = std::fs::read_to_string(&path).unwrap() + extra;
    let spec = Spec::parse(&path, &text).unwrap();
    let bound = BoundSpec::bind(&spec, &mut admin).await.unwrap();
    let list: Vec<_> = mutation::generate(&bound, &mut admin)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.table == table && only.is_none_or(|ids| ids.contains(&m.id.as_str())))
        .collect();
    admin.close().await.unwrap();
    assert!(!list.is_empty());
    run_mutants(&bound, &db, list).await
}

/// A schema that already leaks (team-workspaces with a second SELECT policy on `tasks` open to
/// every signed-in user): its leaks are the baseline, reported once and apart, and kill no
/// mutant. Dropping `tasks_select` now changes no verdict (the planted policy grants every
/// row anyway): it survives — it was "killed" by the planted cells when every finding counted
/// — so the score drops below the clean schema's; every kill is a cell whose verdict differs
/// from the unmutated run's (dropping the planted policy is seen: its leaks are gone); and an
/// `equivalent` mark (a pattern) stays equivalent, while an entry that matches no mutant is
/// reported stale.
#[tokio::test]
async fn findings_the_unmutated_schema_already_has_kill_no_mutant() {
    const PLANT: &str =
        "create policy tasks_select_all on public.tasks for select to authenticated using (true)";
    let clean = example_mutants(None, "", "tasks", None).await;
    let planted = example_mutants(Some(PLANT), "", "tasks", None).await;
    println!("clean:\n{}\nplanted:\n{}", clean.render(), planted.render());
    let score = |r: &MutationReport| r.scores().get("").copied().unwrap_or_default();
    let (ck, cn) = score(&clean);
    let (pk, pn) = score(&planted);
    assert!(clean.baseline.is_empty(), "{:?}", clean.baseline);
    assert_eq!(ck, cn, "{}", clean.render());
    // The planted cells: signed-in non-members read other projects' tasks.
    assert!(
        planted
            .baseline
            .iter()
            .any(|f| f.starts_with("[tasks] select")),
        "{:?}",
        planted.baseline
    );
    assert!(
        planted.render().contains(&format!(
            "baseline: {} findings of the unmutated schema, not counted as kills",
            planted.baseline.len()
        )),
        "{}",
        planted.render()
    );
    assert_eq!(
        *outcome(&planted, "tasks.tasks_select.drop_policy"),
        Outcome::Survived,
        "{}",
        planted.render()
    );
    assert!(
        planted
            .render()
            .contains("SURVIVED tasks.tasks_select.drop_policy"),
        "{}",
        planted.render()
    );
    assert!(
        pk * cn < ck * pn,
        "the score did not drop: {pk} of {pn} against {ck} of {cn}"
    );
    for (m, o) in &planted.results {
        if let Outcome::Killed(by) = o {
            assert!(
                !planted.baseline.contains(by),
                "{} killed by a baseline finding: {by}",
                m.id
            );
        }
    }
    // Killed where a verdict changes: without the planted policy, its leaks are gone.
    assert!(
        matches!(
            outcome(&planted, "tasks.tasks_select_all.drop_policy"),
            Outcome::Killed(by) if by.starts_with("[tasks] select") && by.contains("no longer a leak")
        ),
        "{}",
        planted.render()
    );
    // …and where the mutant adds a leak of its own: anon reads every task.
    assert!(
        matches!(
            outcome(&planted, "tasks.table.anon_select"),
            Outcome::Killed(by) if by.starts_with("[tasks] select") && by.contains("anon")
        ),
        "{}",
        planted.render()
    );

    let marked = example_mutants(
        Some(PLANT),
        "\n[mutants]\nequivalent = { \"tasks.tasks_select.drop_*\" = \"tasks_select_all grants every row\", \"tasks.*.loose_lower\" = \"no caller-id compare on tasks\" }\n",
        "tasks",
        Some(&["tasks.tasks_select.drop_policy"]),
    )
    .await;
    assert_eq!(
        *outcome(&marked, "tasks.tasks_select.drop_policy"),
        Outcome::Equivalent("tasks_select_all grants every row".into()),
        "{}",
        marked.render()
    );
    assert_eq!(marked.stale, ["tasks.*.loose_lower"]);
    assert!(
        marked
            .render()
            .contains("stale equivalent entry tasks.*.loose_lower: it matches no generated mutant"),
        "{}",
        marked.render()
    );
}

/// A hardened schema: functions a role creates are not executable by PUBLIC, and the caller-id
/// function is executable by `anon` and `authenticated` only. The SECURITY DEFINER function a
/// mutant adds gets the caller-id function's grants (without them nobody could call it, and it
/// survived while weakening nothing), and is killed.
#[tokio::test]
async fn a_definer_function_mutant_keeps_the_grants_of_the_apps_functions() {
    let db = TestDatabase::create().await.unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    sqlx::raw_sql(
        "alter default privileges revoke execute on functions from public; \
         revoke all on function public.requesting_user_id() from public; \
         grant execute on function public.requesting_user_id() to anon, authenticated",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let spec =
        Spec::load(&harness::state::workspace_root().join("fixtures/todos.access.toml")).unwrap();
    let bound = BoundSpec::bind(&spec, &mut admin).await.unwrap();
    let list: Vec<_> = mutation::generate(&bound, &mut admin)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.id == "todos.table.definer_function")
        .collect();
    admin.close().await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(
        list[0].sql.contains(
            "; revoke all on function \"public\".\"insforge_rls_mutant_todos_rows\"(text) from public; \
             grant execute on function \"public\".\"insforge_rls_mutant_todos_rows\"(text) to anon, authenticated"
        ),
        "{}",
        list[0].sql
    );
    let report = run_mutants(&bound, &db, list).await;
    assert!(
        matches!(
            outcome(&report, "todos.table.definer_function"),
            Outcome::Killed(by) if by.starts_with("[todos] select via")
        ),
        "{}",
        report.render()
    );
}

/// An equivalent entry whose table part names no table of the spec is refused when the spec
/// is read — `file:line: key: what`, before anything is made.
#[test]
fn an_equivalent_entry_naming_no_table_is_refused_with_its_line() {
    let path = harness::state::workspace_root().join("fixtures/todos.access.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().count() + 3;
    let bad = format!("{text}\n[mutants]\nequivalent = {{ \"todo.*.drop_policy\" = \"typo\" }}\n");
    let err = Spec::parse(&path, &bad).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}:{line}: mutants.equivalent.todo.*.drop_policy: `todo` names no table of this spec",
            path.display()
        )),
        "{err}"
    );
    // A pattern over the tables, and `(functions)`, are accepted.
    let good = format!(
        "{text}\n[mutants]\nequivalent = {{ \"to*.*.drop_policy\" = \"a\", \"(functions).*\" = \"b\" }}\n"
    );
    assert!(Spec::parse(&path, &good).is_ok());
}
