//! The lint's findings on every schema the repository holds, pinned as `(level, rule, object)`
//! lines: each `fixtures/lint/*.sql` and `fixtures/mutants/*.sql` on the migrated `todos`
//! database, the three ported real schemas and `examples/team-workspaces`. Written when the
//! lint still read SQL with its hand tokenizer, it showed the move to `sqlparser` changed no
//! finding; any later change in what the lint reports on these schemas shows here in review.
//!
//! Also measures what the parser reads: every policy expression of those databases, as
//! `pg_get_expr` prints it, must parse as one expression (the lint's reading of it depends on it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use harness::{Migrations, TestDatabase};
use rls_lint::{LintOptions, Report};
use rls_suite::spec::Spec;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlx::Connection;

use crate::support::{apply, mutants};

fn lines(corpus: &str, report: &Report, out: &mut String, detail: &mut String) {
    for f in &report.findings {
        detail.push_str(&format!(
            "{corpus}  {} {}  {}\n  why: {}\n  fix: {}\n  sql: {:?}\n",
            f.level, f.rule, f.object, f.why, f.fix, f.fix_sql
        ));
    }
    let mut found: Vec<String> = report
        .findings
        .iter()
        .map(|f| format!("{corpus}  {} {}  {}", f.level, f.rule, f.object))
        .collect();
    found.sort();
    found.dedup();
    if found.is_empty() {
        found.push(format!("{corpus}  (no findings)"));
    }
    for line in found {
        out.push_str(&line);
        out.push('\n');
    }
}

/// The texts the lint reads: policy expressions (as `pg_get_expr` prints them) and the bodies
/// of the schemas' SQL and PL/pgSQL functions, by kind.
#[derive(Default)]
struct Texts {
    policies: BTreeSet<String>,
    defaults: BTreeSet<String>,
    bodies: BTreeMap<String, BTreeSet<String>>,
}

impl Texts {
    /// Adds the texts of `db`; returns its policy expressions the parser refuses.
    async fn add(&mut self, db: &TestDatabase) -> Vec<String> {
        let mut conn = db.admin_connection().await.unwrap();
        let texts: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
            "select pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid) \
             from pg_policy",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let policies: Vec<String> = texts
            .into_iter()
            .flat_map(|(u, c)| [u, c])
            .flatten()
            .collect();
        let refused = policies
            .iter()
            .filter(|t| !parses_as_expression(t))
            .cloned()
            .collect();
        self.policies.extend(policies);
        let defaults: Vec<(String,)> =
            sqlx::query_as("select pg_get_expr(adbin, adrelid) from pg_attrdef")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        self.defaults.extend(defaults.into_iter().map(|(d,)| d));
        let bodies: Vec<(String, String)> = sqlx::query_as(
            "select l.lanname::text, p.prosrc from pg_proc p \
             join pg_language l on l.oid = p.prolang \
             join pg_namespace n on n.oid = p.pronamespace \
             where l.lanname in ('sql', 'plpgsql') \
             and n.nspname not in ('pg_catalog', 'information_schema')",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        conn.close().await.ok();
        for (language, body) in bodies {
            self.bodies.entry(language).or_default().insert(body);
        }
        refused
    }
}

fn parses_as_expression(text: &str) -> bool {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| {
            p.parse_expr()?;
            p.expect_token(&sqlparser::tokenizer::Token::EOF)
        })
        .is_ok()
}

fn parses_as_statements(text: &str) -> bool {
    Parser::parse_sql(&PostgreSqlDialect {}, text).is_ok()
}

async fn lint(db: &TestDatabase, options: &LintOptions) -> Report {
    let mut conn = db.admin_connection().await.unwrap();
    let report = rls_lint::lint(&mut conn, options).await.unwrap();
    conn.close().await.ok();
    report
}

#[tokio::test]
async fn findings_on_every_schema_of_the_repository() {
    let root = harness::state::workspace_root();
    let mut out = String::new();
    // Every finding whole (why, fix, fix SQL), written where RLS_LINT_PARITY_DUMP says, to
    // compare two versions of the lint word for word.
    let mut detail = String::new();
    let mut texts = Texts::default();

    let dir: PathBuf = root.join("fixtures/lint");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    paths.sort();
    let mut corpora = 0;
    for path in paths {
        let db = TestDatabase::create().await.unwrap();
        apply(&db, &std::fs::read_to_string(&path).unwrap()).await;
        let name = format!("lint/{}", path.file_name().unwrap().to_string_lossy());
        lines(
            &name,
            &lint(&db, &LintOptions::default()).await,
            &mut out,
            &mut detail,
        );
        // Only the fixture about it holds a policy the parser refuses.
        let refused = texts.add(&db).await;
        assert_eq!(
            refused.is_empty(),
            name != "lint/policy.unparsed.bad.sql",
            "{name}: {refused:?}"
        );
        corpora += 1;
    }
    for mutant in mutants() {
        let db = TestDatabase::create().await.unwrap();
        apply(&db, &mutant.sql).await;
        let name = format!("mutants/{}", mutant.id);
        lines(
            &name,
            &lint(&db, &LintOptions::default()).await,
            &mut out,
            &mut detail,
        );
        let refused = texts.add(&db).await;
        assert!(refused.is_empty(), "{refused:?}");
        corpora += 1;
    }
    for example in [
        "real/basejump",
        "real/figma-clone",
        "real/slack-clone",
        "team-workspaces",
    ] {
        let dir = root.join("examples").join(example);
        let spec = Spec::load(&dir.join("access.toml")).unwrap();
        let migrations = Migrations::from_dir(&dir.join("migrations")).unwrap();
        let db = TestDatabase::migrated(&migrations).await.unwrap();
        let mut schemas = vec!["public".to_owned()];
        if spec.schema != "public" {
            schemas.push(spec.schema.clone());
        }
        let options = LintOptions {
            schemas,
            ..LintOptions::default()
        };
        lines(example, &lint(&db, &options).await, &mut out, &mut detail);
        let refused = texts.add(&db).await;
        assert!(refused.is_empty(), "{refused:?}");
        corpora += 1;
    }
    let refused: Vec<&String> = texts
        .policies
        .iter()
        .filter(|t| !parses_as_expression(t))
        .collect();
    eprintln!(
        "{corpora} schemas; distinct policy expressions sqlparser reads: {} of {} (refused: \
         {refused:?})",
        texts.policies.len() - refused.len(),
        texts.policies.len()
    );
    let refused_defaults: Vec<&String> = texts
        .defaults
        .iter()
        .filter(|t| !parses_as_expression(t))
        .collect();
    eprintln!(
        "distinct column defaults sqlparser reads: {} of {} (refused: {refused_defaults:?})",
        texts.defaults.len() - refused_defaults.len(),
        texts.defaults.len()
    );
    assert!(refused_defaults.is_empty(), "{refused_defaults:#?}");
    for (language, bodies) in &texts.bodies {
        let parsed = bodies.iter().filter(|b| parses_as_statements(b)).count();
        eprintln!(
            "distinct {language} function bodies sqlparser reads: {parsed} of {}",
            bodies.len()
        );
    }
    if let Ok(path) = std::env::var("RLS_LINT_PARITY_DUMP") {
        std::fs::write(&path, &detail).unwrap();
        let policies: Vec<&str> = texts.policies.iter().map(String::as_str).collect();
        std::fs::write(format!("{path}.policies"), policies.join("\n")).unwrap();
    }
    assert!(corpora >= 60, "only {corpora} schemas");
    assert_eq!(refused.len(), 1, "{refused:#?}");
    insta::assert_snapshot!("findings_by_schema", out);
}
