//! The HTTP matrices' upsert and embed rows: on the example they agree with the spec (see the
//! `team_workspaces_http_*` snapshots); on a hand-broken copy whose UPDATE policy on projects
//! only checks the new row, the upsert onto another user's project takes it over and fails.

use std::path::PathBuf;

use rls_suite::check::{self, CheckOptions, Subject};

fn example(dir: &str) -> PathBuf {
    harness::state::workspace_root()
        .join("examples/team-workspaces")
        .join(dir)
        .join("access.toml")
}

#[tokio::test]
async fn an_upsert_that_takes_over_another_users_row_fails_the_check() {
    let subject = Subject::load(&example("broken-upsert"), None).unwrap();
    let opts = CheckOptions {
        http: true,
        ..CheckOptions::default()
    };
    let outcome = check::check(&subject, &opts).await.unwrap();
    let http = &outcome.http.as_ref().unwrap().report;
    let projects = http.table("projects").unwrap();
    let row = projects
        .ops
        .iter()
        .position(|op| op == "upsert · forbidden row")
        .unwrap_or_else(|| panic!("no upsert row:\n{}", projects.render()));
    let ada = projects.actors.iter().position(|a| a == "ada").unwrap();
    let cell = &projects.cells[row][ada];
    assert!(
        matches!(&cell.verdict, rls_suite::engine::Verdict::Leak(why)
            if why.starts_with("ada updates a row of ")),
        "{}",
        projects.render()
    );
    // The owner column moved to the caller: a takeover.
    assert!(cell.text.starts_with("moves "), "{}", cell.text);
    assert!(
        outcome
            .leaks()
            .iter()
            .any(|l| l.starts_with("HTTP [projects] upsert · forbidden row: ada updates a row of")),
        "{:?}",
        outcome.leaks()
    );
    // The HTTP-only rows are no disagreement with SQL, which has no such rows.
    assert!(
        outcome.disagreements().is_empty(),
        "{:?}",
        outcome.disagreements()
    );
    assert_eq!(outcome.exit_code(None), 1);
}

#[tokio::test]
async fn the_example_runs_upsert_and_embed_rows_over_http_without_a_finding() {
    let subject = Subject::load(&example(""), None).unwrap();
    let opts = CheckOptions {
        http: true,
        ..CheckOptions::default()
    };
    let outcome = check::check(&subject, &opts).await.unwrap();
    let http = &outcome.http.as_ref().unwrap().report;
    // Every table has the upsert rows; every table with a foreign key to or from another spec
    // table has an embed row per relationship (derived from the catalog, here 2 ways × 2 keys).
    let embeds: usize = http
        .tables
        .iter()
        .map(|t| t.ops.iter().filter(|op| op.starts_with("embed ")).count())
        .sum();
    assert_eq!(embeds, 4, "{}", http.render());
    for t in &http.tables {
        assert!(
            t.ops.iter().any(|op| op == "upsert · new key"),
            "{}",
            t.render()
        );
    }
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
    // The SQL matrices are as they were: the new rows are HTTP's.
    assert!(outcome.report.tables.iter().all(|t| {
        t.ops
            .iter()
            .all(|op| !op.starts_with("upsert") && !op.starts_with("embed"))
    }));
}

/// A ported real schema over HTTP, with its function, upserts and embeds: clean, and in
/// agreement with SQL (its `canvas_objects.object` is `jsonb`, which a PATCH must write as
/// PostgREST does).
#[tokio::test]
async fn figma_clone_over_http_is_clean_with_every_surface() {
    let spec = harness::state::workspace_root().join("examples/real/figma-clone/access.toml");
    let subject = Subject::load(&spec, None).unwrap();
    let opts = CheckOptions {
        http: true,
        ..CheckOptions::default()
    };
    let outcome = check::check(&subject, &opts).await.unwrap();
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
    let http = &outcome.http.as_ref().unwrap().report;
    assert!(
        http.functions
            .as_ref()
            .is_some_and(|f| f.functions.iter().any(|l| l == "create_new_project()"))
    );
}
