//! `fixtures/lint/*.sql`: one small schema per case, on top of the migrated `todos` database,
//! each naming the rule it is about and the level it must be reported at (`none`: not at all).
//! A failing fixture marked `-- fix: yes` must carry a mechanical fix, and applying the fix SQL
//! of that rule's findings must make the rule go quiet. A fixture whose rule is expected below
//! ERROR (or not at all) must raise no ERROR of any rule.

use std::path::PathBuf;

use harness::TestDatabase;
use rls_lint::{Level, Report};

use crate::support::{apply, lint};

#[derive(Debug)]
struct Fixture {
    name: String,
    rule: String,
    expect: Option<Level>,
    fix: bool,
    sql: String,
}

fn header<'a>(sql: &'a str, key: &str) -> Option<&'a str> {
    sql.lines()
        .take_while(|l| l.starts_with("--"))
        .find_map(|l| {
            l.strip_prefix("--")?
                .trim()
                .strip_prefix(key)?
                .strip_prefix(':')
        })
        .map(str::trim)
}

fn fixtures() -> Vec<Fixture> {
    let dir: PathBuf = harness::state::workspace_root().join("fixtures/lint");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let sql = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let rule = header(&sql, "rule")
                .unwrap_or_else(|| panic!("{name}: no `-- rule:` line"))
                .to_owned();
            assert!(
                rls_lint::rule(&rule).is_some(),
                "{name}: unknown rule {rule}"
            );
            let expect = match header(&sql, "expect") {
                Some("none") => None,
                Some(level) => Some(level.parse().unwrap()),
                None => panic!("{name}: no `-- expect:` line"),
            };
            let fix = header(&sql, "fix") == Some("yes");
            Fixture {
                name,
                rule,
                expect,
                fix,
                sql,
            }
        })
        .collect()
}

fn level_of(report: &Report, rule: &str) -> Option<Level> {
    report
        .findings
        .iter()
        .filter(|f| f.rule == rule)
        .map(|f| f.level)
        .max()
}

/// The fix SQL of `rule`'s findings, as `Report::fix_sql` prints it, without the rest.
fn fix_sql_for(report: &Report, rule: &str) -> String {
    let only = Report::new(
        report
            .findings
            .iter()
            .filter(|f| f.rule == rule && f.fix_sql.is_some())
            .cloned()
            .collect(),
    );
    only.fix_sql()
}

#[tokio::test]
async fn every_rule_fixture_is_reported_at_its_level_and_its_fix_silences_it() {
    let list = fixtures();
    assert!(list.len() >= 30, "only {} fixtures", list.len());
    let mut failures = Vec::new();
    for fixture in &list {
        let db = TestDatabase::create().await.unwrap();
        apply(&db, &fixture.sql).await;
        let report = lint(&db).await;
        let got = level_of(&report, &fixture.rule);
        if got != fixture.expect {
            failures.push(format!(
                "{}: {} expected at {:?}, got {:?}\n{}",
                fixture.name,
                fixture.rule,
                fixture.expect,
                got,
                report.render_text()
            ));
            continue;
        }
        // No false ERROR: a fixture whose own rule is below ERROR raises no ERROR at all.
        if fixture.expect != Some(Level::Error) && report.max_level() == Some(Level::Error) {
            failures.push(format!(
                "{}: a fixture expecting no ERROR raises one\n{}",
                fixture.name,
                report.render_text()
            ));
        }
        if fixture.fix {
            let sql = fix_sql_for(&report, &fixture.rule);
            if !sql.lines().any(|l| !l.starts_with("--") && !l.is_empty()) {
                failures.push(format!("{}: no mechanical fix\n{sql}", fixture.name));
                continue;
            }
            apply(&db, &sql).await;
            let after = lint(&db).await;
            if let Some(level) = level_of(&after, &fixture.rule) {
                failures.push(format!(
                    "{}: {} still reported ({level}) after the fix\n{sql}\n{}",
                    fixture.name,
                    fixture.rule,
                    after.render_text()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test]
async fn the_membership_helper_fix_never_switches_it_to_security_invoker() {
    let fixture = fixtures()
        .into_iter()
        .find(|f| f.name == "security_definer.helper_anon.sql")
        .unwrap();
    let db = TestDatabase::create().await.unwrap();
    apply(&db, &fixture.sql).await;
    let report = lint(&db).await;
    let finding = report
        .findings
        .iter()
        .find(|f| f.rule == "function.security_definer")
        .unwrap();
    let sql = &finding.fix_sql.as_ref().unwrap().sql;
    assert!(!sql.contains("INVOKER"), "{sql}");
    assert!(sql.contains("REVOKE EXECUTE"), "{sql}");
    assert!(
        !finding.fix.contains("SECURITY INVOKER;"),
        "{}",
        finding.fix
    );
    // The revoke says that it changes who may call the function.
    assert!(report.fix_sql().contains("-- CHANGES ACCESS: anon"));
}

/// The evidence for `function.caller_id_immutable`: with the caller-id function IMMUTABLE, a
/// reused (generic) plan serves the first caller's id to the second caller; STABLE does not.
#[tokio::test]
async fn an_immutable_caller_id_leaks_through_a_reused_plan_and_stable_does_not() {
    for (volatility, leaks) in [("IMMUTABLE", true), ("STABLE", false)] {
        let db = TestDatabase::create().await.unwrap();
        apply(
            &db,
            &format!(
                "CREATE FUNCTION public.clerk_uid() RETURNS text LANGUAGE sql {volatility}
                   SET search_path = '' AS $$ SELECT nullif(nullif(current_setting(
                   'request.jwt.claims', true), '')::jsonb ->> 'sub', '') $$;
                 CREATE TABLE public.notes (id int PRIMARY KEY, user_id text NOT NULL);
                 INSERT INTO public.notes VALUES (1, 'user_A'), (2, 'user_B');
                 ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;
                 GRANT SELECT ON public.notes TO authenticated;
                 CREATE POLICY notes_select ON public.notes FOR SELECT TO authenticated
                   USING (user_id = (SELECT public.clerk_uid()));"
            ),
        )
        .await;
        let mut conn = db.admin_connection().await.unwrap();
        sqlx::raw_sql(
            "SET plan_cache_mode = force_generic_plan;
             SET ROLE authenticated;
             PREPARE mine AS SELECT string_agg(id::text, ',') FROM public.notes;",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let mut seen = Vec::new();
        for user in ["user_A", "user_B"] {
            sqlx::query("SELECT set_config('request.jwt.claims', $1, false)")
                .bind(format!(r#"{{"sub":"{user}"}}"#))
                .execute(&mut conn)
                .await
                .unwrap();
            let rows: Option<String> = sqlx::query_scalar("EXECUTE mine")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            seen.push(rows);
        }
        let expected_b = if leaks { "1" } else { "2" };
        assert_eq!(
            seen,
            [Some("1".to_owned()), Some(expected_b.to_owned())],
            "{volatility}"
        );
    }
}

/// The whole `--fix-sql` migration of every failing fixture and every mutant is valid SQL that
/// applies in one go, and never raises the lint's error count.
#[tokio::test]
async fn every_fix_sql_migration_applies_and_never_adds_errors() {
    let mut schemas: Vec<(String, String)> = fixtures()
        .into_iter()
        .filter(|f| f.expect.is_some())
        .map(|f| (f.name, f.sql))
        .collect();
    schemas.extend(
        crate::support::mutants()
            .into_iter()
            .map(|m| (format!("mutant {}", m.id), m.sql)),
    );
    for (name, sql) in schemas {
        let db = TestDatabase::create().await.unwrap();
        apply(&db, &sql).await;
        let before = lint(&db).await;
        let migration = before.fix_sql();
        let mut conn = db.admin_connection().await.unwrap();
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(migration.clone()))
            .execute(&mut conn)
            .await
        {
            panic!("{name}: the fix SQL does not apply: {e}\n{migration}");
        }
        let after = lint(&db).await;
        assert!(
            after.summary().error <= before.summary().error,
            "{name}: more errors after the fix\n{migration}\n{}",
            after.render_text()
        );
    }
}

/// Every rule is documented in docs/lint.md and in the crate README.
#[test]
fn every_rule_is_documented() {
    let root = harness::state::workspace_root();
    for doc in ["docs/lint.md", "crates/rls-lint/README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let missing: Vec<&str> = rls_lint::RULES
            .iter()
            .map(|r| r.id)
            .filter(|id| !text.contains(&format!("`{id}`")))
            .collect();
        assert!(missing.is_empty(), "{doc} does not document {missing:?}");
    }
    let reference = std::fs::read_to_string(root.join("docs/lint.md")).unwrap();
    assert!(
        reference.contains(&format!("## Rules ({})", rls_lint::RULES.len())),
        "docs/lint.md's rule count is not {}",
        rls_lint::RULES.len()
    );
}
