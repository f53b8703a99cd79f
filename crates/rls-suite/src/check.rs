//! The whole check as one call: a team's migrations applied to a fresh database, the access
//! spec bound to its catalog, the matrices (and, when asked, the same matrices over HTTP), the
//! lint, and the mutants generated from the catalog. The command line prints a
//! [`CheckOutcome`]; the benchmarks time one.
//!
//! ```text
//! Subject (spec + migrations) ─▶ fresh database ─▶ bind ─▶ matrices ─▶ [HTTP] ─▶ lint ─▶ [mutants]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::{HarnessError, Migrations, PgTarget, TestDatabase};

use crate::engine::coverage::Coverage;
use crate::engine::model::actor::ClaimsForwarding;
use crate::engine::{self, BoundSpec, CheckReport, RunOptions};
use crate::mutation::MutationReport;
use crate::spec::{Command, Rule, Spec, SpecError};

/// Why a check could not run (as opposed to what it found). Every variant that has a cause
/// keeps it as its `source`; the contexts read as the command line has always printed them.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The spec file does not hold (its message names the file, key and line).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Neither setup's server nor an ephemeral one could be reached or started.
    #[error("no server to check on")]
    NoServer(#[source] HarnessError),
    #[error("applying the migrations to a fresh database")]
    FreshDatabase(#[source] HarnessError),
    /// A migrations folder that is not one, a clone or connection that failed.
    #[error(transparent)]
    Harness(#[from] HarnessError),
    #[error(transparent)]
    Access(#[from] engine::Error),
    #[error(transparent)]
    Lint(#[from] rls_lint::LintError),
    #[error("starting the sample app for --http")]
    StartApp(#[source] todo_app::StartError),
    #[error("stopping the sample app")]
    StopApp(#[source] todo_app::StartError),
    #[error("connecting to the endpoint's database")]
    EndpointDatabase(#[source] HarnessError),
}

/// What is checked: the access spec and the migrations that make the schema it speaks of.
#[derive(Debug)]
pub struct Subject {
    pub spec: Spec,
    pub migrations: Migrations,
}

impl Subject {
    /// Loads `spec` and its migrations: `migrations` when given (a folder relative to where the
    /// command runs), else the spec's own `migrations` key (relative to the spec file; the
    /// parser resolves it), else the sample app's todos. Everything the files alone can tell is
    /// refused here, before anything is made.
    pub fn load(spec: &Path, migrations: Option<&Path>) -> Result<Self, CheckError> {
        let spec = Spec::load(spec)?;
        let dir: Option<PathBuf> = migrations
            .map(Path::to_path_buf)
            .or(spec.migrations.clone());
        let migrations = match dir {
            Some(dir) => Migrations::from_dir(&dir)?,
            None => Migrations::embedded(),
        };
        Ok(Self { spec, migrations })
    }
}

/// How a check runs.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Which claims reach Postgres (InsForge ≥ 2.2.5 forwards sub, email and role; ≤ 2.2.1
    /// every claim).
    pub forwarding: ClaimsForwarding,
    /// Also run the matrices over HTTP: the sample app serves the check's database and every
    /// cell goes through the records API; where SQL and HTTP disagree, the outcome says so.
    pub http: bool,
    /// Run the mutants generated from the catalog; `None` skips them.
    pub mutation: Option<MutationOptions>,
}

/// The mutants' own settings.
#[derive(Debug, Clone)]
pub struct MutationOptions {
    /// How many mutants are judged at once.
    pub jobs: usize,
}

impl Default for MutationOptions {
    fn default() -> Self {
        Self { jobs: 2 }
    }
}

/// What a check found.
#[derive(Debug)]
pub struct CheckOutcome {
    /// The SQL matrices (with the policy coverage).
    pub report: CheckReport,
    /// With [`CheckOptions::http`]: the matrices over the records API.
    pub http: Option<HttpOutcome>,
    pub lint: rls_lint::Report,
    pub mutants: Option<MutationReport>,
    /// Every migration applied to the fresh database, base first.
    pub migrations: Vec<String>,
    pub timings: Timings,
}

/// The matrices over HTTP, and where they differ from SQL's.
#[derive(Debug)]
pub struct HttpOutcome {
    pub report: CheckReport,
    pub disagreements_with_sql: Vec<String>,
}

/// Where a check's time went.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// From the fresh database to the end of the last stage: migrations, bind, matrices, HTTP,
    /// lint and mutants; the server's start and the databases' removal are not in it.
    pub pipeline: Duration,
    /// The SQL matrices alone (seeding, planning, every cell).
    pub matrices: Duration,
    pub http: Option<Duration>,
    pub lint: Duration,
    /// The mutation run (baseline, clones, judging); generating the mutants is not in it.
    pub mutation: Option<Duration>,
}

impl CheckOutcome {
    /// The policy coverage of the SQL matrices.
    pub fn coverage(&self) -> Option<&Coverage> {
        self.report.coverage.as_ref()
    }

    /// Every leak, SQL's then HTTP's (prefixed `HTTP `).
    pub fn leaks(&self) -> Vec<String> {
        let mut leaks = self.report.leaks();
        if let Some(http) = &self.http {
            leaks.extend(http.report.leaks().into_iter().map(|l| format!("HTTP {l}")));
        }
        leaks
    }

    /// Every lost access, SQL's then HTTP's (prefixed `HTTP `).
    pub fn lost_access(&self) -> Vec<String> {
        let mut lost = self.report.lost_access();
        if let Some(http) = &self.http {
            lost.extend(
                http.report
                    .lost_access()
                    .into_iter()
                    .map(|l| format!("HTTP {l}")),
            );
        }
        lost
    }

    /// Where SQL and HTTP disagree (empty without HTTP).
    pub fn disagreements(&self) -> &[String] {
        self.http
            .as_ref()
            .map_or(&[][..], |h| h.disagreements_with_sql.as_slice())
    }

    /// 0 clean; 1 a leak, a disagreement between SQL and HTTP, or a lint finding at or above
    /// `deny_lint`; 3 lost access without any of those.
    pub fn exit_code(&self, deny_lint: Option<rls_lint::Level>) -> u8 {
        let lint_fails = deny_lint.is_some_and(|level| self.lint.exit_code(level) != 0);
        if !self.leaks().is_empty() || lint_fails || !self.disagreements().is_empty() {
            1
        } else if !self.lost_access().is_empty() {
            3
        } else {
            0
        }
    }
}

/// Runs the whole check of `subject` on a fresh database of the server the process uses
/// (setup's, else an ephemeral one, see [`harness::shared_state`]); every database it makes is
/// removed before it returns.
pub async fn check(subject: &Subject, opts: &CheckOptions) -> Result<CheckOutcome, CheckError> {
    let state = harness::shared_state()
        .await
        .map_err(CheckError::NoServer)?;
    let started = Instant::now();
    let db = TestDatabase::migrated(&subject.migrations)
        .await
        .map_err(CheckError::FreshDatabase)?;
    // The mutants are cloned from this copy, made before anything is seeded.
    let pristine = match &opts.mutation {
        Some(_) => Some(TestDatabase::clone_of(&db).await?),
        None => None,
    };
    let result = stages(subject, opts, state, &db, pristine.as_ref(), started).await;
    drop(db);
    drop(pristine);
    harness::testing::flush_drops().await.ok();
    let (report, http, lint, mutants, timings) = result?;
    Ok(CheckOutcome {
        report,
        http,
        lint,
        mutants,
        migrations: subject.migrations.names(),
        timings,
    })
}

type Stages = (
    CheckReport,
    Option<HttpOutcome>,
    rls_lint::Report,
    Option<MutationReport>,
    Timings,
);

async fn stages(
    subject: &Subject,
    opts: &CheckOptions,
    state: &harness::State,
    db: &TestDatabase,
    pristine: Option<&TestDatabase>,
    started: Instant,
) -> Result<Stages, CheckError> {
    let spec = &subject.spec;
    let mut timings = Timings::default();
    let mut admin = db.admin_connection().await?;
    let bound = BoundSpec::bind(spec, &mut admin).await?;
    let run_opts = RunOptions {
        forwarding: opts.forwarding,
        ..RunOptions::default()
    };
    let t = Instant::now();
    let report = engine::run(&bound, db.admin_target(), db.app_target(), run_opts.clone()).await?;
    timings.matrices = t.elapsed();
    let http = if opts.http {
        let t = Instant::now();
        let http = over_http(&bound, db, &run_opts).await?;
        timings.http = Some(t.elapsed());
        let disagreements_with_sql = report.disagreements(&http, ("SQL", "HTTP"));
        Some(HttpOutcome {
            report: http,
            disagreements_with_sql,
        })
    } else {
        None
    };
    let lint_opts = rls_lint::LintOptions {
        schemas: vec![spec.schema.clone()],
        app_role: Some(state.app.user.clone()),
        intent: lint_intent(spec),
        ..Default::default()
    };
    let t = Instant::now();
    let lint = rls_lint::lint(&mut admin, &lint_opts).await?;
    timings.lint = t.elapsed();
    let mutants = match (pristine, &opts.mutation) {
        (Some(pristine), Some(mutation)) => {
            let list = crate::mutation::generate(&bound, &mut admin).await?;
            let t = Instant::now();
            let run =
                crate::mutation::run(&bound, pristine, list, run_opts, &lint_opts, mutation.jobs)
                    .await?;
            timings.mutation = Some(t.elapsed());
            Some(run)
        }
        _ => None,
    };
    timings.pipeline = started.elapsed();
    Ok((report, http, lint, mutants, timings))
}

/// The matrices over HTTP: the sample app, in process on a free loopback port, serving the
/// check's database with a secret of its own, stopped afterwards.
async fn over_http(
    bound: &BoundSpec,
    db: &TestDatabase,
    opts: &RunOptions,
) -> Result<CheckReport, CheckError> {
    let secret = clerk_token::Secret::generate();
    let mut config = todo_app::AppConfig::new(db.app_target().url(), secret.clone());
    config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // The app forwards claims as the SQL run does, and exposes the spec's schema.
    config.claims_forwarding = opts.forwarding;
    config.db_schema.clone_from(&bound.spec().schema);
    // A small pool: every connection serves many identities in turn (the pool-bleed run).
    config.max_connections = 2;
    let app = todo_app::spawn(config)
        .await
        .map_err(CheckError::StartApp)?;
    let endpoint = engine::HttpEndpoint {
        base_url: app.url(),
        secret,
    };
    let report = engine::run_via(
        bound,
        db.admin_target(),
        engine::Via::Http(&endpoint),
        opts.clone(),
    )
    .await;
    app.shutdown().await.map_err(CheckError::StopApp)?;
    Ok(report?)
}

/// The spec's matrices over HTTP against `endpoint` (a live deployment), seeding and
/// observing through `admin` (the endpoint's database), on tables that must start empty and
/// are left so.
pub async fn verify_spec(
    spec: &Spec,
    admin: &PgTarget,
    endpoint: &engine::HttpEndpoint,
) -> Result<CheckReport, CheckError> {
    let mut conn = admin
        .connect()
        .await
        .map_err(CheckError::EndpointDatabase)?;
    let bound = BoundSpec::bind(spec, &mut conn).await?;
    drop(conn);
    let opts = RunOptions {
        refuse_existing_rows: true,
        ..RunOptions::default()
    };
    Ok(engine::run_via(&bound, admin, engine::Via::Http(endpoint), opts).await?)
}

/// What the spec tells the lint: each table's owner column, and reads it declares public.
pub fn lint_intent(spec: &Spec) -> BTreeMap<String, rls_lint::TableIntent> {
    spec.tables
        .iter()
        .map(|t| {
            let select = t.rules.get(&Command::Select).map_or(&[][..], Vec::as_slice);
            let public_read = if select.contains(&Rule::Anyone) {
                Some(rls_lint::PublicRead::Anyone)
            } else if select.contains(&Rule::SignedIn) {
                Some(rls_lint::PublicRead::SignedIn)
            } else {
                None
            };
            (
                format!("{}.{}", spec.schema, t.name),
                rls_lint::TableIntent {
                    owner_column: t.owner.clone(),
                    public_read,
                },
            )
        })
        .collect()
}
