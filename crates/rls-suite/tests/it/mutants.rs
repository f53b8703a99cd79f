//! Negative controls: each mutant in fixtures/mutants weakens the schema in one plausible way;
//! the matrix must catch every one (a leak) or flag it (lost access). Score must be 100%.

use harness::TestDatabase;
use rls_suite::fixtures::{Expect, mutants};
use sqlx::Connection;

use crate::support::world;

#[tokio::test]
async fn every_mutant_is_caught_or_flagged() {
    let w = world();
    let list = mutants().unwrap();
    assert!(
        list.len() >= 10,
        "expected the full mutant set, found {}",
        list.len()
    );
    let mut report = Vec::new();
    let mut missed = Vec::new();
    for mutant in &list {
        let db = TestDatabase::create().await.unwrap();
        let mut admin = db.admin_connection().await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(mutant.sql.clone()))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("mutant {} does not apply: {e}", mutant.id));
        admin.close().await.unwrap();

        let sql =
            rls_suite::todos_sql::run(db.admin_target(), db.app_target(), &w.fixtures, &w.ids)
                .await
                .unwrap();
        let (app, api) = w.spawn_app(&db, 2).await;
        let http =
            rls_suite::http::run_with_database(&api, &w.tokens(), db.admin_target(), &w.fixtures)
                .await
                .unwrap();
        drop(app);
        let leaks = [sql.leaks(), http.leaks()].concat();
        let lost = [sql.lost_access(), http.lost_access()].concat();
        let caught = match mutant.expect {
            Expect::Leak => !leaks.is_empty(),
            // Lost access must not hide a leak: a deny-all mistake is only a lost function.
            Expect::LostAccess => !lost.is_empty() && leaks.is_empty(),
        };
        let first = leaks
            .first()
            .or(lost.first())
            .cloned()
            .unwrap_or_else(|| "nothing found".into());
        report.push(format!(
            "{:<32} {:<11} {}  {}",
            mutant.id,
            format!("{:?}", mutant.expect),
            if caught { "caught " } else { "MISSED " },
            first
        ));
        if !caught {
            missed.push(format!(
                "{} ({}):\n{}\n{}",
                mutant.id,
                mutant.breaks,
                sql.render(),
                http.render()
            ));
        }
    }
    let score = 100 * (list.len() - missed.len()) / list.len();
    println!(
        "mutation score: {score}% ({} of {})\n{}",
        list.len() - missed.len(),
        list.len(),
        report.join("\n")
    );
    assert!(
        missed.is_empty(),
        "mutants the suite did not catch:\n{}",
        missed.join("\n\n")
    );
    insta::assert_snapshot!(
        "mutation_report",
        format!("mutation score: {score}%\n{}", report.join("\n"))
    );
}
