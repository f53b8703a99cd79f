//! Shared test support: the mutant fixtures with their parsed headers, applying SQL as the
//! superuser, and linting a test database with the default options.

use std::path::{Path, PathBuf};

use harness::TestDatabase;
use rls_lint::{LintOptions, Report};
use sqlx::Connection;

/// What a mutant's header promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Leak,
    LostAccess,
}

#[derive(Debug, Clone)]
pub struct Mutant {
    pub id: String,
    pub expect: Expect,
    pub lint: Vec<String>,
    pub sql: String,
}

pub fn mutants_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mutants")
}

/// Every `fixtures/mutants/*.sql`, sorted by id; panics on a malformed header.
pub fn mutants() -> Vec<Mutant> {
    let mut list: Vec<Mutant> = std::fs::read_dir(mutants_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .map(|path| parse_mutant(&path))
        .collect();
    list.sort_by(|a, b| a.id.cmp(&b.id));
    assert!(
        list.len() >= 11,
        "expected at least 11 mutants, found {}",
        list.len()
    );
    list
}

fn parse_mutant(path: &Path) -> Mutant {
    let sql = std::fs::read_to_string(path).unwrap();
    let header = |key: &str| -> String {
        sql.lines()
            .take(4)
            .find_map(|line| line.strip_prefix(&format!("-- {key}:")))
            .unwrap_or_else(|| panic!("{}: no `-- {key}:` in the first four lines", path.display()))
            .trim()
            .to_owned()
    };
    let id = header("mutant");
    assert_eq!(
        Some(id.as_str()),
        path.file_stem().and_then(|s| s.to_str()),
        "{}: the mutant id must be the file stem",
        path.display()
    );
    assert!(!header("breaks").is_empty(), "{id}: empty `breaks`");
    let expect = match header("expect").as_str() {
        "leak" => Expect::Leak,
        "lost_access" => Expect::LostAccess,
        other => panic!("{id}: expect must be leak or lost_access, not {other:?}"),
    };
    let lint: Vec<String> = header("lint")
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    assert!(!lint.is_empty(), "{id}: empty `lint`");
    for rule in &lint {
        assert!(
            rls_lint::rule(rule).is_some(),
            "{id}: unknown rule id {rule}"
        );
    }
    Mutant {
        id,
        expect,
        lint,
        sql,
    }
}

/// Runs SQL (several statements allowed) as the superuser.
pub async fn apply(db: &TestDatabase, sql: &str) {
    let mut conn = db.admin_connection().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("applying SQL failed: {e}\n{sql}"));
    conn.close().await.ok();
}

/// Lints the database as the superuser, with the default options.
pub async fn lint(db: &TestDatabase) -> Report {
    let mut conn = db.admin_connection().await.unwrap();
    let report = rls_lint::lint(&mut conn, &LintOptions::default())
        .await
        .unwrap();
    conn.close().await.ok();
    report
}

/// `level rule` pairs, sorted and deduplicated, for compact assertions and snapshots.
pub fn rule_levels(report: &Report) -> Vec<String> {
    let mut pairs: Vec<String> = report
        .findings
        .iter()
        .map(|f| format!("{}:{}", f.rule, f.level))
        .collect();
    pairs.sort();
    pairs.dedup();
    pairs
}
