//! `cargo xtask check --spec` as a team runs it: clean on the example, exit 1 on a hand-broken
//! copy, exit 2 with the file and line on a spec that does not hold, nothing made.

#![allow(clippy::unwrap_used)] // Test helpers: a panic is the failure report.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/team-workspaces")
        .canonicalize()
        .unwrap()
}

/// Runs `xtask check` on the server the test run uses (setup's, or its own ephemeral one).
fn check(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("check")
        .args(args)
        .env_remove("INSFORGE_RLS_MIGRATIONS")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn copy_example(to: &Path) {
    fs::create_dir_all(to.join("migrations")).unwrap();
    fs::copy(example().join("access.toml"), to.join("access.toml")).unwrap();
    for entry in fs::read_dir(example().join("migrations")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join("migrations").join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_example_is_clean_and_a_hand_broken_copy_is_a_leak() {
    let spec = example().join("access.toml");
    let (code, out, err) = check(&["--spec", spec.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("0 leaks, 0 lost access — clean"), "{out}");
    assert!(out.contains("| tasks "), "{out}");
    // Every mutant generated from the example's catalog is killed (docs/mutation.md): the
    // last two to fall, USING loosened to a case-insensitive compare on the UPDATE policies,
    // are caught by "take over · forbidden row" and by a refused WHERE-less update.
    assert!(
        out.contains("mutation score: 100% (123 of 123 killed"),
        "{out}"
    );
    assert!(!out.contains("SURVIVED "), "{out}");
    // Every policy's grant and denial is exercised.
    assert!(
        out.contains("policy coverage (") && out.contains("untested: none"),
        "{out}"
    );

    let copy = tempfile::tempdir().unwrap();
    copy_example(copy.path());
    let migration = copy.path().join("migrations/V1__workspaces.sql");
    let sql = fs::read_to_string(&migration).unwrap().replace(
        "using (public.project_role(project_id) = 'owner');",
        "using (public.project_role(project_id) is not null);",
    );
    fs::write(&migration, sql).unwrap();
    let spec = copy.path().join("access.toml");
    let (code, out, err) = check(&[
        "--spec",
        spec.to_str().unwrap(),
        "--format",
        "json",
        "--no-mutants",
    ]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["coverage"]["untested"],
        serde_json::json!([]),
        "{out}"
    );
    assert_eq!(report["coverage"]["policies"].as_array().unwrap().len(), 15);
    let leaks = report["matrices"]["leaks"].as_array().unwrap();
    assert!(
        leaks
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("[tasks] delete")),
        "{leaks:?}"
    );
}

#[test]
fn a_spec_that_does_not_hold_exits_2_naming_file_key_and_line() {
    let copy = tempfile::tempdir().unwrap();
    copy_example(copy.path());
    let spec = copy.path().join("access.toml");
    let text = fs::read_to_string(&spec).unwrap();
    fs::write(
        &spec,
        text.replace("delete = \"member:owner\"", "delete = \"member:admin\""),
    )
    .unwrap();
    let (code, out, err) = check(&["--spec", spec.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains(&format!("{}:", spec.display()))
            && err.contains("tables.tasks.delete: role `admin`"),
        "{err}"
    );

    // Against the catalog: a column the table does not have.
    fs::write(
        &spec,
        text.replace("owner = \"created_by\"", "owner = \"author\""),
    )
    .unwrap();
    let (code, _, err) = check(&["--spec", spec.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tables.tasks.owner: `tasks` has no column `author`"),
        "{err}"
    );

    // A migrations folder that is not one.
    let (code, _, err) = check(&[
        "--spec",
        example().join("access.toml").to_str().unwrap(),
        "--migrations",
        spec.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not a folder of migrations"), "{err}");
}
