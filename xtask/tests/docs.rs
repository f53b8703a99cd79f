//! The README is the front door and docs/ the manual: every relative link in them leads to a
//! file of this repository, and the README stays short.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    // xtask sits one folder below the workspace root (a test of this workspace's own binary).
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent folder")
        .to_path_buf()
}

/// Every `](target)` of a Markdown text whose target is a relative path (no scheme, no
/// in-page anchor), without its `#fragment`.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        let path = target.split('#').next().unwrap_or_default();
        if !path.is_empty()
            && !path.contains("://")
            && !path.starts_with("mailto:")
            && !path.contains(' ')
        {
            links.push(path.to_owned());
        }
    }
    links
}

#[test]
fn every_relative_link_in_the_readme_and_docs_resolves() {
    let root = workspace_root();
    let mut pages = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/") {
        let path = entry.expect("a docs entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("a readable page");
        let folder = page.parent().expect("a page has a folder");
        for link in relative_links(&text) {
            if !folder.join(&link).exists() {
                broken.push(format!(
                    "{}: {link}",
                    page.strip_prefix(&root).unwrap_or(page).display()
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to nothing:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_readme_is_a_front_door_not_a_manual() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines; move reference material to docs/"
    );
    // The psql recipe .ci/run executes stays between its markers.
    assert!(
        readme.contains("<!-- psql-recipe:start -->")
            && readme.contains("<!-- psql-recipe:end -->")
    );
}
