//! Shared test support: the mutant fixtures with their parsed headers, applying SQL as the
//! superuser, and linting a test database with the default options.

use harness::TestDatabase;
use rls_lint::{LintOptions, Report};
use sqlx::Connection;

pub use rls_suite::todos::fixtures::{Expect, Mutant};

/// Every `fixtures/mutants/*.sql` (parsed by the suite's own reader), each of whose `lint`
/// rules must exist in this linter.
pub fn mutants() -> Vec<Mutant> {
    let list = rls_suite::todos::fixtures::mutants().unwrap();
    assert!(
        list.len() >= 11,
        "expected at least 11 mutants, found {}",
        list.len()
    );
    for m in &list {
        assert!(!m.lint.is_empty(), "{}: empty `lint`", m.id);
        for rule in &m.lint {
            assert!(
                rls_lint::rule(rule).is_some(),
                "{}: unknown rule id {rule}",
                m.id
            );
        }
    }
    list
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
