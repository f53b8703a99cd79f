//! The function cells: every function callers may execute, called once per actor in SQL and
//! over HTTP (`/api/database/rpc/<fn>`) and judged by what it returns and writes on every spec
//! table. The example's own function is judged OK; a hand-broken copy with `SECURITY DEFINER`
//! functions that hand out other users' rows fails, in SQL and over HTTP alike.

use std::path::PathBuf;

use rls_suite::check::{self, CheckOptions, CheckOutcome, Subject};

fn example(dir: &str) -> PathBuf {
    harness::state::workspace_root()
        .join("examples/team-workspaces")
        .join(dir)
        .join("access.toml")
}

async fn check_http(spec: PathBuf) -> CheckOutcome {
    let subject = Subject::load(&spec, None).unwrap();
    let opts = CheckOptions {
        http: true,
        ..CheckOptions::default()
    };
    check::check(&subject, &opts).await.unwrap()
}

#[tokio::test]
async fn the_examples_own_function_is_called_by_everyone_and_judged_ok() {
    let outcome = check_http(example("")).await;
    let sql = outcome
        .report
        .functions
        .as_ref()
        .expect("function cells in SQL");
    let row = sql
        .functions
        .iter()
        .position(|f| f == "project_role(project uuid)")
        .unwrap_or_else(|| panic!("project_role not called:\n{}", sql.render()));
    // Every actor called it (anon is refused: it may not execute it).
    assert_eq!(sql.cells[row].len(), outcome.report.actors.len());
    let anon = sql.actors.iter().position(|a| a == "anon").unwrap();
    assert_eq!(sql.cells[row][anon].0, "refused 42501", "{}", sql.render());
    // The caller-id function is named as not called, never silently left out.
    assert!(
        sql.not_surfaces
            .iter()
            .any(|l| l.starts_with("requesting_user_id(): the caller-id function")),
        "{:?}",
        sql.not_surfaces
    );
    let http = outcome.http.as_ref().unwrap().report.functions.as_ref();
    assert!(http.is_some_and(|h| h.functions.contains(&sql.functions[row])));
    assert!(outcome.leaks().is_empty(), "{:?}", outcome.leaks());
    assert!(
        outcome.lost_access().is_empty(),
        "{:?}",
        outcome.lost_access()
    );
    assert!(
        outcome.disagreements().is_empty(),
        "{:?}",
        outcome.disagreements()
    );
}

#[tokio::test]
async fn definer_functions_that_hand_out_rows_leak_in_sql_and_over_http() {
    let outcome = check_http(example("broken-definer")).await;
    let leaks = outcome.leaks();
    for (surface, prefix) in [("SQL", "[functions]"), ("HTTP", "HTTP [functions]")] {
        for what in [
            "project_overview(): project_overview returns ada rows of ben, cy, lookalike-wildcard \
             in projects the spec does not show them",
            "get_task(task uuid): get_task returns ada rows of ben in tasks",
            "rename_project(project uuid, new_name text): rename_project updates for ada rows \
             of ben in projects the spec forbids them",
            "join_project(project uuid): join_project inserts for ada a row into \
             project_members that ben",
            "dashboard(): dashboard returns ada rows of ",
        ] {
            assert!(
                leaks
                    .iter()
                    .any(|l| l.starts_with(&format!("{prefix} {what}"))),
                "{surface} misses `{what}`:\n{}",
                leaks.join("\n")
            );
        }
    }
    // Making the caller's own project and membership, as `creates` allows, is no finding.
    assert!(
        !leaks.iter().any(|l| l.contains("create_project")),
        "{}",
        leaks.join("\n")
    );
    let sql = outcome.report.functions.as_ref().unwrap();
    let row = sql
        .functions
        .iter()
        .position(|f| f == "create_project(project_name text)")
        .unwrap();
    assert_eq!(
        sql.cells[row][0].0,
        "inserts projects 1, inserts project_members 1"
    );
    // anon may not call it, as the spec says (`call = "signed_in"`): refused, and OK.
    let anon = sql.actors.iter().position(|a| a == "anon").unwrap();
    assert_eq!(sql.cells[row][anon].0, "refused 42501");
    // The table matrices are as clean as the unbroken example's: only the function cells see
    // the hole.
    assert!(
        leaks.iter().all(|l| l.contains("[functions]")),
        "{}",
        leaks.join("\n")
    );
    assert!(
        outcome.disagreements().is_empty(),
        "{:?}",
        outcome.disagreements()
    );
    assert_eq!(outcome.exit_code(None), 1);
}

/// Against a database that is not the run's own (`verify`), a volatile function the spec does
/// not name is listed as not called: it might write where the run cannot restore.
#[tokio::test]
async fn a_deployments_undeclared_volatile_functions_are_not_called() {
    use harness::{Migrations, TestDatabase};
    use rls_suite::engine::{self, BoundSpec, RunOptions};
    use rls_suite::spec::Spec;

    let dir = harness::state::workspace_root().join("examples/team-workspaces/broken-definer");
    let migrations = Migrations::from_dir(&dir.join("migrations")).unwrap();
    let db = TestDatabase::migrated(&migrations).await.unwrap();
    // The spec without its [functions] entries: every function of the copy is undeclared.
    let text = std::fs::read_to_string(dir.join("access.toml")).unwrap();
    let text = &text[..text.find("[functions.").unwrap()];
    let spec = Spec::parse(&dir.join("access.toml"), text).unwrap();
    let mut admin = db.admin_connection().await.unwrap();
    let bound = BoundSpec::bind(&spec, &mut admin).await.unwrap();
    drop(admin);
    let opts = RunOptions {
        refuse_existing_rows: true,
        ..RunOptions::default()
    };
    let report = engine::run(&bound, db.admin_target(), db.app_target(), opts)
        .await
        .unwrap();
    let f = report.functions.as_ref().unwrap();
    for name in ["rename_project(", "join_project(", "create_project("] {
        assert!(
            f.not_called
                .iter()
                .any(|l| l.starts_with(name) && l.contains("volatile and not in [functions]")),
            "{name}: {:?}",
            f.not_called
        );
        assert!(!f.functions.iter().any(|l| l.starts_with(name)));
    }
    // Stable ones are still called, and still caught.
    assert!(f.functions.iter().any(|l| l == "project_overview()"));
    assert!(
        report
            .leaks()
            .iter()
            .any(|l| l.starts_with("[functions] project_overview()")),
        "{:?}",
        report.leaks()
    );
}
