//! ARCHITECTURE.md's dependency line is true: the block between its `dependencies:start` and
//! `dependencies:end` markers is exactly what `cargo metadata` says the workspace's crates
//! depend on (normal dependencies between workspace members). On a mismatch the test prints the
//! block to paste.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace root: the folder above this crate's (tests of a binary crate of this
/// workspace; the path is found through cargo, never assumed).
fn workspace_root() -> PathBuf {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo locate-project runs");
    assert!(output.status.success(), "cargo locate-project failed");
    let manifest = String::from_utf8(output.stdout).expect("a UTF-8 path");
    Path::new(manifest.trim())
        .parent()
        .expect("the manifest has a folder")
        .to_path_buf()
}

/// Each workspace crate and the workspace crates it depends on (normal dependencies only).
fn dependency_graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let members: BTreeSet<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("a package name").to_owned();
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null()) // normal, not dev or build
                .filter_map(|d| d["name"].as_str())
                .filter(|d| members.contains(*d))
                .map(str::to_owned)
                .collect();
            (name, deps)
        })
        .collect()
}

/// The block as ARCHITECTURE.md writes it: one line per crate that depends on another
/// workspace crate, `crate → a, b, c`, in name order.
fn render(graph: &BTreeMap<String, BTreeSet<String>>) -> String {
    graph
        .iter()
        .filter(|(_, deps)| !deps.is_empty())
        .map(|(name, deps)| {
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            format!("{name} → {}\n", deps.join(", "))
        })
        .collect()
}

#[test]
fn architecture_md_dependency_lines_match_cargo_metadata() {
    let root = workspace_root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = "<!-- dependencies:start -->\n```\n";
    let end = "```\n<!-- dependencies:end -->";
    let from = doc
        .find(start)
        .expect("ARCHITECTURE.md has a dependencies:start marker")
        + start.len();
    let to = from
        + doc[from..]
            .find(end)
            .expect("and a dependencies:end marker");
    let written = &doc[from..to];
    let actual = render(&dependency_graph(&root));
    assert!(
        written == actual,
        "ARCHITECTURE.md's dependency lines are out of date; paste this between the markers:\n\n{actual}"
    );
}

#[test]
fn the_workspace_has_no_dependency_cycle_and_the_leaves_stay_leaves() {
    let graph = dependency_graph(&workspace_root());
    // ARCHITECTURE.md, "harness knows nothing about tokens" and "todo-app never depends on harness".
    assert!(!graph["harness"].contains("clerk-token"));
    assert!(!graph["todo-app"].contains("harness"));
    // Depth-first search for a cycle.
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(n) {
            return;
        }
        assert!(!path.contains(&n), "dependency cycle: {path:?} → {n}");
        path.push(n);
        for d in &g[n] {
            visit(d, g, path, done);
        }
        path.pop();
        done.insert(n);
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done);
    }
}
