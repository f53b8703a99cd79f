//! The reports of a real spec check: examples/team-workspaces as it is (clean), and a copy in a
//! throwaway repository whose second migration drops `tasks_delete` and creates it again for
//! everyone — the check leaks, the lint objects, and every report names that line.

use std::path::{Path, PathBuf};

use harness::{Migrations, TestDatabase};
use rls_report::{CheckInput, LintInput, Locator};
use rls_suite::engine::{self, BoundSpec, RunOptions};
use rls_suite::spec::Spec;
use sqlx::Connection;

use crate::util::{assert_valid_junit, assert_valid_sarif, line_of, root};

fn example() -> PathBuf {
    root().join("examples/team-workspaces")
}

/// A repository root holding the example's migrations under `db/migrations`, plus `extra`.
fn repository(extra: Option<(&str, &str)>) -> (tempfile::TempDir, PathBuf) {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("db/migrations");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(example().join("migrations")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    if let Some((name, sql)) = extra {
        std::fs::write(dir.join(name), sql).unwrap();
    }
    (repo, dir)
}

/// The check's input and the lint's, from one fresh database migrated from `dir`.
async fn run(dir: &Path) -> (CheckInput, LintInput) {
    let spec = Spec::load(&example().join("access.toml")).unwrap();
    let db = TestDatabase::migrated(&Migrations::from_dir(dir).unwrap())
        .await
        .unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    let bound = BoundSpec::bind(&spec, &mut admin).await.unwrap();
    let lint = rls_lint::lint(
        &mut admin,
        &rls_lint::LintOptions {
            app_role: Some(db.app_target().user.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    admin.close().await.unwrap();
    let report = engine::run(
        &bound,
        db.admin_target(),
        db.app_target(),
        RunOptions::default(),
    )
    .await
    .unwrap();
    let mut input = CheckInput::from(&report);
    input.spec = Some("access.toml".into());
    assert_eq!(input.cell_count(), report.cell_count());
    assert_eq!(input.leak_count() > 0, !report.leaks().is_empty());
    (input, LintInput::from(&lint))
}

#[tokio::test]
async fn a_clean_check_gives_passing_reports() {
    let (repo, dir) = repository(None);
    let (input, _) = run(&dir).await;
    assert!(input.passed(), "{}", rls_report::markdown(&input));

    let xml = rls_report::junit(&input);
    assert!(
        // Every cell and every probe (here the example's function calls) is a test case.
        xml.contains(&format!(
            "tests=\"{}\" failures=\"0\"",
            input.cell_count() + input.probes.len()
        )),
        "{xml}"
    );
    assert!(!xml.contains("<failure"), "{xml}");
    assert_valid_junit("a_clean_check_gives_passing_reports", &xml);

    let locator = Locator::scan(repo.path(), &dir).unwrap();
    let log = rls_report::sarif_check_value(&input, &locator);
    assert_valid_sarif(&log);
    assert_eq!(log["runs"][0]["results"], serde_json::json!([]), "{log:#}");

    let md = rls_report::markdown(&input);
    assert!(md.starts_with("## insforge-rls check: passed\n"), "{md}");
    for table in ["profiles", "projects", "project_members", "tasks"] {
        assert!(md.contains(&format!("| {table} | ")), "{md}");
    }
}

const BROKEN: &str = "-- Hand-broken: every signed-in user deletes every task.\n\
drop policy tasks_delete on public.tasks;\n\
\n\
create policy tasks_delete on public.tasks for delete to authenticated\n  using (true);\n";

#[tokio::test]
async fn a_broken_policy_fails_with_reports_that_name_its_migration_line() {
    let (repo, dir) = repository(Some(("V2__everyone_deletes_tasks.sql", BROKEN)));
    let (input, lint) = run(&dir).await;
    assert!(input.leak_count() > 0, "{}", rls_report::markdown(&input));
    let file = dir.join("V2__everyone_deletes_tasks.sql");
    let line = line_of(&file, "create policy tasks_delete");
    let uri = "db/migrations/V2__everyone_deletes_tasks.sql";

    // JUnit: a failure per leak, in the tasks suite, with the cell's detail.
    let xml = rls_report::junit(&input);
    assert_eq!(
        xml.matches("<failure type=\"leak\"").count(),
        input.leak_count(),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase classname=\"tasks\" name=\"delete · "),
        "{xml}"
    );
    assert!(xml.contains("operation: delete · "), "{xml}");
    assert_valid_junit(
        "a_broken_policy_fails_with_reports_that_name_its_migration_line",
        &xml,
    );

    // SARIF of the check: every delete leak at the re-created policy's line.
    let locator = Locator::scan(repo.path(), &dir).unwrap();
    let log = rls_report::sarif_check_value(&input, &locator);
    assert_valid_sarif(&log);
    let results = log["runs"][0]["results"].as_array().unwrap();
    let deletes: Vec<&serde_json::Value> = results
        .iter()
        .filter(|r| {
            r["ruleId"] == "check.leak"
                && r["message"]["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("[tasks] delete"))
        })
        .collect();
    // One result for the table's delete leaks, listing them.
    assert_eq!(deletes.len(), 1, "{log:#}");
    let leaking = input
        .cells()
        .filter(|(t, c)| *t == "tasks" && c.command() == Some("delete") && !c.verdict.is_ok())
        .count();
    let text = deletes[0]["message"]["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "[tasks] delete: {leaking} cells leak (policies for delete: tasks_delete)"
        )),
        "{text}"
    );
    for r in &deletes {
        let at = &r["locations"][0]["physicalLocation"];
        assert_eq!(at["artifactLocation"]["uri"], uri, "{r:#}");
        assert_eq!(at["artifactLocation"]["uriBaseId"], "%SRCROOT%");
        assert_eq!(at["region"]["startLine"], line, "{r:#}");
        assert_eq!(r["level"], "error");
    }

    // SARIF of the lint: the always-true policy at the same line.
    let log = rls_report::sarif_lint_value(&lint, &locator);
    assert_valid_sarif(&log);
    let finding = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["ruleId"] == "policy.always_true"
                && r["message"]["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("policy tasks_delete on public.tasks"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("no policy.always_true on tasks_delete: {log:#}"));
    let at = &finding["locations"][0]["physicalLocation"];
    assert_eq!(at["artifactLocation"]["uri"], uri);
    assert_eq!(at["region"]["startLine"], line);

    // The check's log with the lint it ran: one run, both kinds of rule, still valid.
    let mut both = input.clone();
    both.lint = Some(lint.clone());
    let log = rls_report::sarif_check_value(&both, &locator);
    assert_valid_sarif(&log);
    let results = log["runs"][0]["results"].as_array().unwrap();
    let from_lint = results
        .iter()
        .filter(|r| {
            r["ruleId"]
                .as_str()
                .is_some_and(|id| !id.starts_with("check."))
        })
        .count();
    assert_eq!(from_lint, lint.findings.len(), "{log:#}");
    assert!(
        results.iter().any(|r| r["ruleId"] == "policy.always_true"
            && r["locations"][0]["physicalLocation"]["region"]["startLine"] == line),
        "{log:#}"
    );
    let md = rls_report::markdown(&both);
    assert!(md.contains("\n### insforge-rls lint: "), "{md}");
    assert!(
        md.contains("`policy.always_true` | policy tasks_delete on public.tasks"),
        "{md}"
    );

    // Markdown: failed, the failing delete cells listed.
    let md = rls_report::markdown(&input);
    assert!(md.starts_with("## insforge-rls check: FAILED — "), "{md}");
    assert!(md.contains("| tasks | delete · "), "{md}");
}
