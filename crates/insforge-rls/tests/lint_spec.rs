//! `insforge-rls lint --spec FILE` lints the spec's schema along with the `--schema` ones:
//! basejump keeps its tables in `basejump`, and without its spec the lint sees none of them.

#![allow(clippy::unwrap_used)] // Test helpers: a panic is the failure report.

use std::path::Path;
use std::process::Command;

use harness::{Migrations, TestDatabase};

/// `insforge-rls lint ARGS --format json` in `dir` against `url`: the objects it reports.
fn objects(dir: &Path, url: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_insforge-rls"))
        .arg("lint")
        .args([
            "--database-url",
            url,
            "--app-role",
            "none",
            "--format",
            "json",
        ])
        .args(args)
        .current_dir(dir)
        .env_remove("INSFORGE_RLS_STATE_DIR")
        .env_remove("INSFORGE_RLS_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["object"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn lint_with_a_spec_lints_the_spec_schema() {
    let basejump = harness::state::workspace_root().join("examples/real/basejump");
    let migrations = Migrations::from_dir(&basejump.join("migrations")).unwrap();
    let db = TestDatabase::migrated(&migrations).await.unwrap();
    let url = db.admin_target().url();
    // A folder without a spec of its own, so only --spec names one.
    let dir = tempfile::tempdir().unwrap();
    let in_basejump = |objects: &[String]| objects.iter().any(|o| o.contains(" basejump."));

    let without = objects(dir.path(), &url, &[]);
    assert!(!in_basejump(&without), "{without:#?}");
    let spec = basejump.join("access.toml");
    let with = objects(dir.path(), &url, &["--spec", spec.to_str().unwrap()]);
    assert!(
        with.iter()
            .any(|o| o == "policy Team accounts can be created by any user on basejump.accounts"),
        "{with:#?}"
    );
    // --schema basejump as well is the same run, not the schema twice.
    let both = objects(
        dir.path(),
        &url,
        &[
            "--spec",
            spec.to_str().unwrap(),
            "--schema",
            "public",
            "--schema",
            "basejump",
        ],
    );
    assert_eq!(with, both);
}
