//! The locator on folders: refinery's numeric version order, files it refuses, and this
//! repository's own migrations.

use rls_report::{LocateError, Locator};

use crate::util::root;

#[test]
fn versions_are_ordered_as_numbers_so_v10_re_creates_after_v2() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("migrations");
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    std::fs::write(
        dir.join("V2__notes.sql"),
        "create table notes (id int);\ncreate policy read on notes for select using (true);\n",
    )
    .unwrap();
    // In a sub-folder, as refinery also finds it; its name sorts before V2's.
    std::fs::write(
        dir.join("nested/V10__tighten.sql"),
        "drop policy read on notes;\n\n\ncreate policy read on notes for select using (false);\n",
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "create table ignored (id int);").unwrap();
    let l = Locator::scan(repo.path(), &dir).unwrap();
    let at = l.policy("notes", "read").unwrap();
    assert_eq!(
        (at.uri.as_str(), at.line),
        ("migrations/nested/V10__tighten.sql", 4)
    );
    assert!(at.relative);
    assert_eq!(l.table("ignored"), None);
    assert_eq!(l.fallback().unwrap().uri, "migrations/V2__notes.sql");

    // Not under the root: the absolute path, not marked relative.
    let elsewhere = tempfile::tempdir().unwrap();
    let l = Locator::scan(elsewhere.path(), &dir).unwrap();
    let at = l.table("notes").unwrap();
    assert!(
        !at.relative && at.uri.ends_with("V2__notes.sql") && at.uri.starts_with('/'),
        "{at:?}"
    );
}

#[test]
fn a_migration_that_cannot_be_read_or_a_missing_folder_is_named() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("V1__latin1.sql"),
        b"-- caf\xe9\ncreate table t (id int);\n",
    )
    .unwrap();
    let err = Locator::scan(repo.path(), &dir).unwrap_err();
    assert!(matches!(err, LocateError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("V1__latin1.sql"), "{err}");

    let missing = repo.path().join("nowhere");
    let err = Locator::scan(repo.path(), &missing).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");

    std::fs::write(dir.join("V1__latin1.sql"), "select 'unterminated;\n").unwrap();
    let err = Locator::scan(repo.path(), &dir).unwrap_err();
    assert!(matches!(err, LocateError::Tokenize { .. }), "{err:?}");
    assert!(err.to_string().contains("V1__latin1.sql"), "{err}");
}

#[test]
fn this_repositorys_todos_migration_is_located() {
    let dir = root().join("migrations/todos");
    let l = Locator::scan(&root(), &dir).unwrap();
    let text = std::fs::read_to_string(dir.join("V3__todos.sql")).unwrap();
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.to_lowercase().contains(needle))
            .map(|i| i as u64 + 1)
    };
    let table = l.table("public.todos").unwrap();
    assert_eq!(table.uri, "migrations/todos/V3__todos.sql");
    assert_eq!(Some(table.line), line_of("create table"));
    let policies = l.policy_names("todos");
    assert!(!policies.is_empty(), "no policy found in V3__todos.sql");
    for p in &policies {
        let at = l.policy("todos", p).unwrap();
        assert_eq!(Some(at.line), line_of(&format!("create policy {p}")), "{p}");
    }
}

#[test]
fn the_repository_root_is_the_closest_folder_with_git() {
    let repo = tempfile::tempdir().unwrap();
    let dir = repo.path().join("app/db/migrations");
    std::fs::create_dir_all(&dir).unwrap();
    let canonical = |p: &std::path::Path| p.canonicalize().unwrap();
    // No repository: the folder itself.
    assert_eq!(Locator::repository_root(&dir), canonical(&dir));
    std::fs::create_dir(repo.path().join(".git")).unwrap();
    assert_eq!(Locator::repository_root(&dir), canonical(repo.path()));
    // A worktree's `.git` is a file.
    std::fs::write(repo.path().join("app/.git"), "gitdir: elsewhere").unwrap();
    assert_eq!(
        Locator::repository_root(&dir),
        canonical(&repo.path().join("app"))
    );
}
