//! Every mutant is reported with the rules its header names; the full rule × mutant table and
//! one JSON report are snapshotted, so any change in what the linter says shows in review.

use harness::TestDatabase;

use crate::support::{apply, lint, mutants, rule_levels};

#[tokio::test]
async fn every_mutant_is_reported_with_the_rules_its_header_names() {
    let mut table = String::new();
    let mut failures = Vec::new();
    for mutant in mutants() {
        let db = TestDatabase::create().await.unwrap();
        apply(&db, &mutant.sql).await;
        let report = lint(&db).await;
        for finding in &report.findings {
            assert!(
                rls_lint::rule(finding.rule).is_some(),
                "undocumented rule {}",
                finding.rule
            );
        }
        for rule in &mutant.lint {
            if !report.findings.iter().any(|f| f.rule == rule) {
                failures.push(format!(
                    "{}: {rule} not reported\n{}",
                    mutant.id,
                    report.render_text()
                ));
            }
        }
        println!("== {}\n{}", mutant.id, report.render_text());
        table.push_str(&format!(
            "{:<30} {}\n",
            mutant.id,
            rule_levels(&report).join(" ")
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    insta::assert_snapshot!("rule_by_mutant", table);
}

#[tokio::test]
async fn json_report_shape() {
    let db = TestDatabase::create().await.unwrap();
    let mutant = mutants()
        .into_iter()
        .find(|m| m.id == "clerk_doc_update_policy")
        .unwrap();
    apply(&db, &mutant.sql).await;
    let report = lint(&db).await;
    insta::assert_json_snapshot!("clerk_doc_update_policy_json", report);
    let text = report.render_text();
    assert!(
        text.contains("ERROR  policy.missing_with_check  policy todos_update_own on public.todos"),
        "{text}"
    );
}
