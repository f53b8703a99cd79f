//! The check weighs the lint against the matrices: a lint finding that claims a cross-user leak
//! through commands whose every cell was checked without a leak is shown as a note carrying
//! that evidence (and does not fail `--deny-lint`); where the matrices show the leak, it stays
//! an ERROR. Basejump's `policy.not_owner_scoped` on its insert policy (any signed-in user
//! creates an account naming any primary owner) is the case: its spec says so on purpose.

use std::path::{Path, PathBuf};

use rls_lint::Level;
use rls_suite::check::{self, CheckOptions, CheckOutcome, Subject};

const RULE: &str = "policy.not_owner_scoped";
const OBJECT: &str = "policy Team accounts can be created by any user on basejump.accounts";

fn basejump() -> PathBuf {
    harness::state::workspace_root().join("examples/real/basejump")
}

async fn run(spec: &Path) -> CheckOutcome {
    let migrations = basejump().join("migrations");
    let subject = Subject::load(spec, Some(&migrations)).unwrap();
    check::check(&subject, &CheckOptions::default())
        .await
        .unwrap()
}

fn level_for_check(outcome: &CheckOutcome) -> (Level, String) {
    let lint = outcome.lint_for_check();
    let f = lint
        .findings
        .iter()
        .find(|f| f.rule == RULE && f.object == OBJECT)
        .unwrap_or_else(|| panic!("no {RULE} on {OBJECT}: {}", lint.render_text()));
    (f.level, f.why.clone())
}

#[tokio::test]
async fn a_lint_error_the_matrices_contradict_is_a_note_with_the_evidence() {
    let outcome = run(&basejump().join("access.toml")).await;
    assert!(outcome.leaks().is_empty(), "{:?}", outcome.leaks());
    // The raw lint is untouched: still the ERROR `insforge-rls lint` prints.
    assert!(
        outcome
            .lint
            .findings
            .iter()
            .any(|f| f.rule == RULE && f.object == OBJECT && f.level == Level::Error)
    );
    let c = outcome
        .contradicted
        .iter()
        .find(|c| c.rule == RULE && c.object == OBJECT)
        .unwrap_or_else(|| panic!("not contradicted: {:?}", outcome.contradicted));
    assert_eq!(c.level, Level::Error);
    assert!(
        c.evidence
            .starts_with("contradicted by the matrices: [accounts] insert — ")
            && c.evidence.ends_with(" cells, 0 leaks"),
        "{}",
        c.evidence
    );
    let (level, why) = level_for_check(&outcome);
    assert_eq!(level, Level::Info);
    assert!(why.contains(&c.evidence), "{why}");
    // Basejump's only ERROR is this one: the check does not fail on it at --deny-lint error.
    assert_eq!(outcome.exit_code(Some(Level::Error)), 0);
}

#[tokio::test]
async fn a_lint_error_the_matrices_confirm_stays_an_error() {
    // Hand-broken: the spec keeps each account's creation to its primary owner, so the same
    // policy (any user creates an account owned by another) is a leak in [accounts] insert.
    let text = std::fs::read_to_string(basejump().join("access.toml")).unwrap();
    let from = "insert = \"team_account\"";
    assert!(text.contains(from));
    let dir = std::env::temp_dir().join(format!(
        "insforge-rls-lint-evidence-{}",
        harness::random_token(12)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("access.toml");
    std::fs::write(&spec, text.replacen(from, "insert = \"owner\"", 1)).unwrap();
    let outcome = run(&spec).await;
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        outcome
            .leaks()
            .iter()
            .any(|l| l.contains("[accounts] insert")),
        "{:?}",
        outcome.leaks()
    );
    assert!(
        !outcome.contradicted.iter().any(|c| c.object == OBJECT),
        "{:?}",
        outcome.contradicted
    );
    assert_eq!(level_for_check(&outcome).0, Level::Error);
    assert_eq!(outcome.exit_code(None), 1);
}
