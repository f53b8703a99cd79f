//! Shared setup: a JWT secret and the sample app spawned against a test database.

use clerk_token::Secret;
use harness::TestDatabase;
use rls_suite::engine::observe::Api;
use rls_suite::engine::{BoundSpec, RunOptions};
use rls_suite::mutation::{self, Mutant, MutationReport};
use todo_app::{AppConfig, RunningApp};

pub struct World {
    pub secret: Secret,
}

pub fn world() -> World {
    World {
        secret: Secret::generate(),
    }
}

impl World {
    /// The sample app on 127.0.0.1:0 against `db`, with at most `pool` connections.
    pub async fn spawn_app(&self, db: &TestDatabase, pool: u32) -> (RunningApp, Api) {
        let mut config = AppConfig::new(db.app_target().url(), self.secret.clone());
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.max_connections = pool;
        let app = todo_app::spawn(config).await.unwrap();
        let api = Api::new(&app.url()).unwrap();
        (app, api)
    }
}

/// What the linter says about `db`: appended to a failing matrix so the message names the
/// broken rule, not just the rows that moved.
pub async fn lint_findings(db: &TestDatabase) -> String {
    let opts = rls_lint::LintOptions {
        app_role: Some(db.app_target().user.clone()),
        ..Default::default()
    };
    match rls_lint::lint_url(&db.admin_target().url(), &opts).await {
        Ok(report) => report.render_text(),
        Err(e) => format!("(lint could not run: {e})"),
    }
}

/// Panics with the report, its findings and the linter's view when anything leaked or was lost.
pub async fn assert_clean(matrix: &rls_suite::engine::CheckReport, db: &TestDatabase) {
    let (leaks, lost) = (matrix.leaks(), matrix.lost_access());
    if !leaks.is_empty() || !lost.is_empty() {
        panic!(
            "the matrix found {} leaks and {} lost-access cells:\n{}\n{}\n\n{}\nrls-lint on this database:\n{}",
            leaks.len(),
            lost.len(),
            leaks.join("\n"),
            lost.join("\n"),
            matrix.render(),
            lint_findings(db).await
        );
    }
}

/// The runtime a model test drives its async steps on (proptest's runner is synchronous).
pub fn model_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs a model test: `cases` random cases of `strategy`, each checked by `case` on `rt`.
/// `source` (the test's `file!()`) turns on proptest's regression file
/// (proptest-regressions/…): a failing case, shrunk, is replayed first on every later run.
pub fn run_model<S: proptest::strategy::Strategy>(
    rt: &tokio::runtime::Runtime,
    source: &'static str,
    cases: u32,
    strategy: &S,
    case: impl AsyncFn(S::Value) -> Result<(), String>,
) {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 256,
        source_file: Some(source),
        ..Config::default()
    });
    let outcome = runner.run(strategy, |value| {
        rt.block_on(case(value)).map_err(TestCaseError::fail)
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// Judges `list` on clones of `db` as a check does: default run options, the lint told the
/// app's login role, two mutants at a time.
pub async fn run_mutants(
    bound: &BoundSpec,
    db: &TestDatabase,
    list: Vec<Mutant>,
) -> MutationReport {
    let lint = rls_lint::LintOptions {
        app_role: Some(db.app_target().user.clone()),
        ..Default::default()
    };
    let jobs = rls_suite::check::MutationOptions::default();
    mutation::run(bound, db, list, RunOptions::default(), &lint, &jobs)
        .await
        .unwrap()
}

/// The whole check of a one-migration schema with `spec` (whose `migrations = "migrations"`),
/// written to a temporary folder as a team's repository holds them.
pub async fn check_schema(migration: &str, spec: &str) -> rls_suite::check::CheckOutcome {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("migrations")).unwrap();
    std::fs::write(dir.path().join("migrations/V1__schema.sql"), migration).unwrap();
    let path = dir.path().join("access.toml");
    std::fs::write(&path, spec).unwrap();
    let subject = rls_suite::check::Subject::load(&path, None).unwrap();
    rls_suite::check::check(&subject, &rls_suite::check::CheckOptions::default())
        .await
        .unwrap_or_else(|e| panic!("the check did not reach a verdict: {e:#}"))
}
