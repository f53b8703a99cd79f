//! The three formats on synthetic cells (no database): valid against their schemas, counting
//! what they should, escaping what they must — and the validators reject a broken document.

use rls_report::{
    Cell, CheckInput, LintFinding, LintInput, LintLevel, Locator, MutantOutcome, MutantResult,
    Probe, TableCells, Untested, Verdict,
};
use serde_json::json;

use crate::util::{assert_valid_junit, assert_valid_sarif, sarif_errors, xmllint_junit};

fn cell(operation: &str, actor: &str, observed: &str, verdict: Verdict) -> Cell {
    Cell {
        operation: operation.into(),
        actor: actor.into(),
        observed: observed.into(),
        verdict,
    }
}

fn input() -> CheckInput {
    CheckInput {
        tables: vec![
            TableCells {
                table: "notes".into(),
                cells: vec![
                    cell("select", "ada", "sees ada:1", Verdict::Ok),
                    cell(
                        "select",
                        "ben",
                        "sees ada:1 ben:1",
                        Verdict::Leak("ben sees a row of ada <&\"|\u{1}>".into()),
                    ),
                    cell(
                        "delete · allowed row",
                        "ada",
                        "0 rows",
                        Verdict::LostAccess("cannot delete a row the spec allows".into()),
                    ),
                    cell("insert · allowed row", "anon", "n/a", Verdict::Ok),
                ],
            },
            TableCells {
                table: "tags".into(),
                cells: vec![cell("select", "ada", "sees ada:1", Verdict::Ok)],
            },
        ],
        actors: vec![
            ("ada".into(), "user_a".into()),
            ("ben".into(), "user_b".into()),
        ],
        probes: vec![Probe {
            suite: "hostile tokens".into(),
            table: Some("notes".into()),
            name: "expired token".into(),
            observed: "status 200 (promised 401)".into(),
            verdict: Verdict::Leak("an expired token reads rows".into()),
        }],
        untested: vec![Untested {
            table: "notes".into(),
            policy: "notes_select".into(),
            what: "notes.notes_select using · branch 2".into(),
            missing: "grant".into(),
            hint: "no actor it applies to passes it".into(),
        }],
        mutants: Some(vec![
            mutant("notes.notes_select.using_true", MutantOutcome::Survived),
            mutant(
                "notes.notes_all.drop_policy",
                MutantOutcome::Killed("[notes] select: leak".into()),
            ),
            mutant(
                "notes.notes_all.check_true",
                MutantOutcome::Equivalent("notes_select grants the same".into()),
            ),
            mutant(
                "notes.table.anon_select",
                MutantOutcome::NotRun("its clone failed".into()),
            ),
        ]),
        lint: None,
        spec: Some("access.toml".into()),
    }
}

fn mutant(id: &str, outcome: MutantOutcome) -> MutantResult {
    MutantResult {
        id: id.into(),
        table: "notes".into(),
        sql: format!("alter policy … -- {id}"),
        outcome,
    }
}

fn locator() -> Locator {
    let mut l = Locator::empty();
    l.add_file(
        "db/migrations/V1__notes.sql",
        true,
        "create table notes (id int);\nalter table notes enable row level security;\n\
         create policy notes_select on notes for select using (true);\n\
         create policy notes_all on notes using (true);\n",
    )
    .unwrap();
    l
}

#[test]
fn junit_has_a_case_per_cell_and_a_failure_per_finding() {
    let xml = rls_report::junit(&input());
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        "{xml}"
    );
    assert!(
        xml.contains(
            // The 6 cells and probes, and the unexercised clause: a failure of its own kind.
            r#"<testsuites name="insforge-rls check" tests="7" failures="4" errors="0" time="0">"#
        ),
        "{xml}"
    );
    assert!(
        xml.contains(
            r#"<testsuite name="notes" tests="4" failures="2" errors="0" skipped="1" time="0">"#
        ),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testsuite name="notes · hostile tokens" tests="1" failures="1""#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testcase classname="notes" name="select · ben" time="0">"#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testsuite name="policy coverage" tests="1" failures="1""#),
        "{xml}"
    );
    assert_eq!(
        xml.matches("<failure type=\"untested\"").count(),
        1,
        "{xml}"
    );
    assert_eq!(xml.matches("<failure type=\"leak\"").count(), 2, "{xml}");
    assert_eq!(
        xml.matches("<failure type=\"lost access\"").count(),
        1,
        "{xml}"
    );
    // Escaped, and the control character XML 1.0 cannot carry replaced.
    assert!(xml.contains("ada &lt;&amp;&quot;|\u{FFFD}&gt;"), "{xml}");
    assert!(xml.contains("observed: sees ada:1 ben:1"), "{xml}");
    assert_valid_junit("junit_has_a_case_per_cell_and_a_failure_per_finding", &xml);
}

#[test]
fn the_junit_validator_rejects_what_the_schema_does_not_allow() {
    // A testsuite without its required `tests` attribute.
    let bad = "<?xml version=\"1.0\"?><testsuites><testsuite name=\"x\" failures=\"0\" errors=\"0\"/></testsuites>";
    match xmllint_junit(bad) {
        None => crate::util::skip(
            "the_junit_validator_rejects_what_the_schema_does_not_allow",
            "xmllint is not installed (Debian: apt-get install libxml2-utils)",
        ),
        Some(result) => assert!(result.is_err(), "xmllint accepted an invalid document"),
    }
}

#[test]
fn check_sarif_is_valid_and_located_at_the_policies_of_the_command() {
    let log = rls_report::sarif_check_value(&input(), &locator());
    assert_valid_sarif(&log);
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "insforge-rls");
    assert_eq!(run["automationDetails"]["id"], "insforge-rls/check/");
    let rule = &run["tool"]["driver"]["rules"][0];
    assert_eq!(rule["id"], "check.leak");
    assert_eq!(rule["properties"]["security-severity"], "9.1");
    assert_eq!(
        run["tool"]["driver"]["rules"][1]["properties"].get("security-severity"),
        None
    );
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "{results:#?}");
    // The select leak: the select policies, the one made last first.
    let leak = &results[0];
    assert_eq!(leak["ruleId"], "check.leak");
    assert_eq!(leak["level"], "error");
    let at = &leak["locations"][0]["physicalLocation"];
    assert_eq!(at["artifactLocation"]["uri"], "db/migrations/V1__notes.sql");
    assert_eq!(at["artifactLocation"]["uriBaseId"], "%SRCROOT%");
    assert_eq!(at["region"]["startLine"], 4);
    assert_eq!(
        leak["relatedLocations"][0]["physicalLocation"]["region"]["startLine"],
        3
    );
    let text = leak["message"]["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "[notes] select: 1 cell leak (policies for select: notes_all, notes_select). \
             select · ben: ben sees a row of ada"
        ),
        "{text}"
    );
    // Lost access on delete: only the FOR ALL policy applies.
    assert_eq!(results[1]["ruleId"], "check.lost_access");
    assert_eq!(results[1]["level"], "warning");
    assert_eq!(
        results[1]["locations"][0]["physicalLocation"]["region"]["startLine"],
        4
    );
    // The hostile token: the table's ENABLE ROW LEVEL SECURITY.
    assert_eq!(
        results[2]["locations"][0]["physicalLocation"]["region"]["startLine"],
        2
    );
    // Untested: a note at the policy.
    assert_eq!(results[3]["ruleId"], "check.untested_policy");
    assert_eq!(results[3]["level"], "note");
    assert_eq!(
        results[3]["locations"][0]["physicalLocation"]["region"]["startLine"],
        3
    );
}

#[test]
fn the_sarif_validator_rejects_what_the_schema_does_not_allow() {
    let mut log = rls_report::sarif_check_value(&input(), &locator());
    log["runs"][0]["results"][0]["level"] = json!("fatal");
    assert!(
        !sarif_errors(&log).is_empty(),
        "a level of \"fatal\" passed"
    );
    let mut log = rls_report::sarif_check_value(&input(), &locator());
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        json!(0);
    assert!(!sarif_errors(&log).is_empty(), "line 0 passed");
}

#[test]
fn lint_sarif_maps_levels_and_places_unlocatable_findings_at_the_first_migration() {
    let finding = |rule: &str, level, object: &str| LintFinding {
        rule: rule.into(),
        level,
        object: object.into(),
        why: "why".into(),
        fix: "fix".into(),
    };
    let input = LintInput {
        findings: vec![
            finding(
                "policy.always_true",
                LintLevel::Error,
                "policy notes_all on public.notes",
            ),
            finding("rls.not_forced", LintLevel::Warn, "public.notes"),
            finding("role.superuser", LintLevel::Info, "role app"),
        ],
        rules: vec![rls_report::LintRule {
            id: "policy.always_true".into(),
            level: LintLevel::Error,
            summary: "USING (true)".into(),
        }],
    };
    let log = rls_report::sarif_lint_value(&input, &locator());
    assert_valid_sarif(&log);
    let run = &log["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["policy.always_true", "rls.not_forced", "role.superuser"]
    );
    let results = run["results"].as_array().unwrap();
    let line =
        |i: usize| results[i]["locations"][0]["physicalLocation"]["region"]["startLine"].clone();
    let levels: Vec<&str> = results
        .iter()
        .map(|r| r["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["error", "warning", "note"]);
    assert_eq!((line(0), line(1), line(2)), (json!(4), json!(2), json!(1)));
    assert_eq!(results[2]["ruleIndex"], 2);
    assert_eq!(
        results[0]["message"]["text"],
        "policy notes_all on public.notes: why Fix: fix"
    );
}

#[test]
fn markdown_has_the_verdict_the_counts_and_only_the_failing_cells() {
    let md = rls_report::markdown(&input());
    assert!(
        md.starts_with(
            "## insforge-rls check: FAILED — 2 leaks, 1 lost access, 1 untested policy clause\n"
        ),
        "{md}"
    );
    assert!(md.contains("| notes | 4 | 1 | 1 | 1 |"), "{md}");
    assert!(md.contains("| tags | 1 | 0 | 0 | 0 |"), "{md}");
    assert!(
        md.contains("| notes | select | ben | **leak**: ben sees a row of ada &lt;&\"\\|\u{1}&gt; | sees ada:1 ben:1 |"),
        "{md}"
    );
    assert!(
        md.contains("| notes | hostile tokens | expired token | **leak**"),
        "{md}"
    );
    assert!(
        !md.contains("| select | ada |"),
        "a passing cell is listed:\n{md}"
    );
    assert!(
        md.contains("<details><summary>1 policy clause no actor exercised</summary>"),
        "{md}"
    );

    let mut clean = input();
    clean.tables.truncate(0);
    clean.probes.clear();
    clean.untested.clear();
    clean.mutants = None;
    let md = rls_report::markdown(&clean);
    assert!(md.starts_with("## insforge-rls check: passed\n"), "{md}");
    // An unexercised clause alone fails the check (exit 4), and the report says so.
    let mut untested = clean.clone();
    untested.untested = input().untested;
    assert!(!untested.passed());
    let md = rls_report::markdown(&untested);
    assert!(
        md.starts_with(
            "## insforge-rls check: FAILED — 0 leaks, 0 lost access, 1 untested policy clause\n"
        ),
        "{md}"
    );
    assert!(!md.contains("Failing cells"), "{md}");

    let lint = rls_report::markdown_lint(&LintInput::default());
    assert_eq!(
        lint,
        "## insforge-rls lint: 0 errors, 0 warnings, 0 info\n\nNo findings.\n"
    );
}

#[test]
fn changes_list_only_the_cells_whose_verdict_or_observation_moved() {
    let before = input();
    let mut after = input();
    // ben's leak fixed, ada's delete now leaks, a cell gone, one new.
    after.tables[0].cells[1] = cell("select", "ben", "sees ben:1", Verdict::Ok);
    after.tables[0].cells[2] = cell(
        "delete · allowed row",
        "ada",
        "deletes ada:1 ben:1",
        Verdict::Leak("ada deletes a row of ben".into()),
    );
    after.tables[1].cells.clear();
    after.tables[1].cells.push(cell(
        "insert · allowed row",
        "ada",
        "inserts 1",
        Verdict::Ok,
    ));
    let md = rls_report::markdown_changes(&before, &after);
    assert!(
        md.starts_with("## insforge-rls check: 4 cells changed\n\nbefore: 2 leaks, 1 lost access; after: 2 leaks, 0 lost access.\n"),
        "{md}"
    );
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| table"))
        .collect();
    assert_eq!(
        rows,
        [
            "| notes | select | ben | **leak**: ben sees a row of ada &lt;&\"\\|\u{1}&gt; (sees ada:1 ben:1) | sees ben:1 |",
            "| notes | delete · allowed row | ada | **lost access**: cannot delete a row the spec allows (0 rows) | **leak**: ada deletes a row of ben (deletes ada:1 ben:1) |",
            "| tags | insert · allowed row | ada | (no such cell) | inserts 1 |",
            "| tags | select | ada | sees ada:1 | (no such cell) |",
        ],
        "{md}"
    );
    let same = rls_report::markdown_changes(&before, &before);
    assert_eq!(
        same,
        "## insforge-rls check: 0 cells changed\n\nbefore: 2 leaks, 1 lost access; after: 2 leaks, 1 lost access.\n"
    );
}

/// A one-cell report as the suite makes it.
fn suite_report(
    observed: &str,
    verdict: rls_suite::engine::Verdict,
) -> rls_suite::engine::CheckReport {
    use rls_suite::engine::{CheckReport, SpecCell, TableMatrix};
    CheckReport {
        tables: vec![TableMatrix {
            table: "notes".into(),
            actors: vec!["ada".into()],
            ops: vec!["delete · allowed row".into()],
            cells: vec![vec![SpecCell {
                text: observed.into(),
                verdict,
            }]],
        }],
        actors: vec![("ada".into(), "user_a".into())],
        hostile: Vec::new(),
        pool: None,
        coverage: None,
        functions: None,
        accept: Vec::new(),
    }
}

#[test]
fn an_http_run_joins_its_tables_and_a_disagreement_fails_the_reports() {
    use rls_suite::engine::Verdict as SuiteVerdict;
    let sql = suite_report("deletes ada:1", SuiteVerdict::Ok);
    let mut http = suite_report(
        "deletes ada:1 ben:1",
        SuiteVerdict::Leak("ada deletes a row of ben".into()),
    );
    http.pool = Some(rls_suite::engine::pool::PoolBleed {
        reads: 40,
        leaks: vec!["bob read alice's row".into()],
        lost: Vec::new(),
    });
    let disagreements = sql.disagreements(&http, ("SQL", "HTTP"));
    assert_eq!(disagreements.len(), 1, "{disagreements:?}");
    let input = CheckInput::from(&sql).with_http(&http, &disagreements);

    let cells = &input.tables[0].cells;
    assert_eq!(input.tables.len(), 1);
    assert_eq!(cells.len(), 2);
    assert_eq!(cells[1].operation, "HTTP · delete · allowed row");
    assert_eq!(cells[1].command(), Some("delete"));
    let d = input.probes.last().unwrap();
    assert_eq!(
        (d.suite.as_str(), d.table.as_deref(), d.name.as_str()),
        ("SQL vs HTTP", Some("notes"), "delete · allowed row · ada")
    );
    assert_eq!(
        (input.leak_count(), input.disagreement_count()),
        (2, 1),
        "the HTTP cell and the pool leak; the disagreement"
    );
    assert!(!input.passed());

    let xml = rls_report::junit(&input);
    assert!(xml.contains("<failure type=\"disagreement\""), "{xml}");
    assert!(
        xml.contains("name=\"HTTP · delete · allowed row · ada\""),
        "{xml}"
    );
    assert_valid_junit(
        "an_http_run_joins_its_tables_and_a_disagreement_fails_the_reports",
        &xml,
    );
    let log = rls_report::sarif_check_value(&input, &locator());
    assert_valid_sarif(&log);
    let rules: Vec<&str> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ruleId"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["check.leak", "check.leak", "check.sql_http_disagreement"]
    );
    let md = rls_report::markdown(&input);
    assert!(
        md.starts_with(
            "## insforge-rls check: FAILED — 2 leaks, 0 lost access, 1 SQL/HTTP disagreement\n"
        ),
        "{md}"
    );
}

/// A function call that returns another user's rows (a SECURITY DEFINER hole) is a leak in
/// every report, like a matrix cell's.
#[test]
fn a_function_leak_fails_every_report() {
    use rls_suite::engine::Verdict as SuiteVerdict;
    use rls_suite::engine::functions::FunctionCalls;
    let mut report = suite_report("deletes ada:1", SuiteVerdict::Ok);
    report.functions = Some(FunctionCalls {
        actors: vec!["ada".into()],
        functions: vec!["all_projects()".into()],
        cells: vec![vec![(
            "returns projects ada:1 ben:1".into(),
            SuiteVerdict::Leak("ada reads a row of ben through all_projects()".into()),
        )]],
        not_called: Vec::new(),
        not_surfaces: Vec::new(),
    });
    let input = CheckInput::from(&report);
    let probe = input
        .probes
        .iter()
        .find(|p| p.suite == "functions")
        .unwrap();
    assert_eq!(probe.name, "all_projects() · ada");
    assert_eq!(input.leak_count(), 1);
    assert!(!input.passed());
    let xml = rls_report::junit(&input);
    assert!(xml.contains("name=\"all_projects() · ada\""), "{xml}");
    assert!(xml.contains("<failure type=\"leak\""), "{xml}");
    assert_valid_junit("a_function_leak_fails_every_report", &xml);
    let log = rls_report::sarif_check_value(&input, &locator());
    assert_valid_sarif(&log);
    assert!(
        log["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ruleId"] == "check.leak"),
        "{log}"
    );
    let md = rls_report::markdown(&input);
    assert!(md.contains("all_projects()"), "{md}");
}
