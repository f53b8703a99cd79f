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
    #[error("reading the policies' commands from the catalog")]
    Policies(#[source] sqlx::Error),
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
    /// The lint as it ran (what `insforge-rls lint` prints); the check's outputs read
    /// [`CheckOutcome::lint_for_check`], which lowers the [`CheckOutcome::contradicted`] ones.
    pub lint: rls_lint::Report,
    /// Lint findings (ERROR or WARN) the matrices contradict: see [`contradicted`].
    pub contradicted: Vec<Contradicted>,
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
    /// The mutation run (the seeded sessions, the baseline, judging); generating the mutants
    /// is not in it.
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

    /// The lint as the check shows it: each finding the matrices contradict is a note
    /// ([`rls_lint::Level::Info`], SARIF `note`) whose `why` ends with the evidence; every
    /// other finding, the baselined ones and the stale entries as the lint gave them.
    pub fn lint_for_check(&self) -> rls_lint::Report {
        let findings = self.lint.findings.iter().cloned().map(|mut f| {
            if let Some(c) = self
                .contradicted
                .iter()
                .find(|c| c.rule == f.rule && c.object == f.object && c.level == f.level)
            {
                f.level = rls_lint::Level::Info;
                f.why = format!("{} [{} as linted; {}]", f.why, c.level, c.evidence);
            }
            f
        });
        let mut report = rls_lint::Report::new(findings.collect());
        report.baselined.clone_from(&self.lint.baselined);
        report.stale.clone_from(&self.lint.stale);
        report
    }

    /// The policy clauses and branches no cell exercised that the spec does not accept
    /// (`[unexercised]`): the evidence is incomplete (see [`Coverage::unexercised`]).
    pub fn unexercised(&self) -> Vec<crate::engine::coverage::Untested> {
        self.coverage()
            .map(Coverage::unexercised)
            .unwrap_or_default()
    }

    /// 0 clean; 1 a leak, a disagreement between SQL and HTTP, or a lint finding at or above
    /// `deny_lint` that the matrices do not contradict; 3 lost access without any of those;
    /// 4 none of those, but a policy clause or branch no cell exercised (and the spec does not
    /// accept as such): a green that is not evidence. (2 is the command line's: could not run.)
    pub fn exit_code(&self, deny_lint: Option<rls_lint::Level>) -> u8 {
        let lint_fails = deny_lint.is_some_and(|level| self.lint_for_check().exit_code(level) != 0);
        if !self.leaks().is_empty() || lint_fails || !self.disagreements().is_empty() {
            1
        } else if !self.lost_access().is_empty() {
            3
        } else if !self.unexercised().is_empty() {
            4
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
    // The mutants' seeded sessions run on this copy (and clones of it), made before anything
    // is seeded.
    let pristine = match &opts.mutation {
        Some(_) => Some(TestDatabase::clone_of(&db).await?),
        None => None,
    };
    let result = stages(subject, opts, state, &db, pristine.as_ref(), started).await;
    drop(db);
    drop(pristine);
    harness::testing::flush_drops().await.ok();
    let (report, http, lint, policies, mutants, timings) = result?;
    let contradicted = contradicted(
        &lint,
        &policies,
        &subject.spec.schema,
        &report,
        http.as_ref().map(|h| &h.report),
    );
    Ok(CheckOutcome {
        report,
        http,
        lint,
        contradicted,
        mutants,
        migrations: subject.migrations.names(),
        timings,
    })
}

type Stages = (
    CheckReport,
    Option<HttpOutcome>,
    rls_lint::Report,
    PolicyCommands,
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
    let policies = policy_commands(&mut admin, &spec.schema).await?;
    let mutants = match (pristine, &opts.mutation) {
        (Some(pristine), Some(mutation)) => {
            let list = crate::mutation::generate(&bound, &mut admin).await?;
            let t = Instant::now();
            let run = crate::mutation::run(&bound, pristine, list, run_opts, &lint_opts, mutation)
                .await?;
            timings.mutation = Some(t.elapsed());
            Some(run)
        }
        _ => None,
    };
    timings.pipeline = started.elapsed();
    Ok((report, http, lint, policies, mutants, timings))
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

/// A lint finding the matrices contradict: it claims users reach each other's rows through
/// commands whose every matrix cell (SQL, and HTTP when run) was checked without a leak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contradicted {
    pub rule: &'static str,
    pub object: String,
    /// The level the lint gave it.
    pub level: rls_lint::Level,
    /// E.g. `contradicted by the matrices: [accounts] insert — 12 cells, 0 leaks`.
    pub evidence: String,
}

/// Each policy's commands, by `(schema.table, policy name)`, as the catalog has them.
pub type PolicyCommands = BTreeMap<(String, String), Vec<Command>>;

async fn policy_commands(
    admin: &mut sqlx::PgConnection,
    schema: &str,
) -> Result<PolicyCommands, CheckError> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "select schemaname::text, tablename::text, policyname::text, cmd \
         from pg_catalog.pg_policies where schemaname = $1",
    )
    .bind(schema)
    .fetch_all(&mut *admin)
    .await
    .map_err(CheckError::Policies)?;
    Ok(rows
        .into_iter()
        .map(|(schema, table, policy, cmd)| {
            let commands = match cmd.as_str() {
                "SELECT" => vec![Command::Select],
                "INSERT" => vec![Command::Insert],
                "UPDATE" => vec![Command::Update],
                "DELETE" => vec![Command::Delete],
                _ => Command::ALL.to_vec(),
            };
            ((format!("{schema}.{table}"), policy), commands)
        })
        .collect())
}

/// The commands a policy finding speaks of, given the policy's own: only the rules that claim
/// a cross-user leak through the policy. Every other rule (a table's RLS state, a function such
/// as `function.security_definer`, performance, style) is never contradicted.
fn commands_spoken_of(rule: &str, policy: &[Command]) -> Vec<Command> {
    let writes = |c: &&Command| matches!(c, Command::Insert | Command::Update);
    match rule {
        "policy.always_true" | "policy.not_owner_scoped" | "policy.anon_permissive" => {
            policy.to_vec()
        }
        "policy.missing_with_check" | "policy.check_weaker_than_using" => {
            policy.iter().filter(writes).copied().collect()
        }
        _ => Vec::new(),
    }
}

/// The command of a matrix row, from its operation's label (`insert · allowed row`,
/// `take over · forbidden row`, `hand over owner · no filter`, `select via …`).
fn command_of(operation: &str) -> Option<Command> {
    let starts = |p: &str| operation.starts_with(p);
    if starts("select") {
        Some(Command::Select)
    } else if starts("insert") {
        Some(Command::Insert)
    } else if starts("update") || starts("take over") || starts("hand over") {
        Some(Command::Update)
    } else if starts("delete") {
        Some(Command::Delete)
    } else {
        None
    }
}

/// `(cells, leaks)` of `table`'s rows for `command` in `report`.
fn tally(report: &CheckReport, table: &str, command: Command) -> (usize, usize) {
    let Some(matrix) = report.table(table) else {
        return (0, 0);
    };
    matrix
        .ops
        .iter()
        .zip(&matrix.cells)
        .filter(|(op, _)| command_of(op) == Some(command))
        .flat_map(|(_, row)| row)
        .fold((0, 0), |(cells, leaks), cell| {
            let leak = matches!(cell.verdict, engine::model::Verdict::Leak(_));
            (cells + 1, leaks + usize::from(leak))
        })
}

/// The ERROR and WARN findings on a policy of a spec table that claim a cross-user leak
/// through commands (see [`commands_spoken_of`]) whose matrices, SQL's and (when run) HTTP's,
/// have cells and not one leak: the spec's intent for them was checked and held. A finding on
/// an object the spec does not cover, or on a command with a leak or no cell, is kept.
/// Whether the policy coverage of `report` shows `table.policy` (or one of its clauses or
/// branches) granting no actor anything on any seeded row.
fn never_granted(report: &CheckReport, table: &str, policy: &str) -> bool {
    let Some(coverage) = &report.coverage else {
        return false;
    };
    coverage
        .untested()
        .iter()
        .any(|u| u.is_of(table, policy) && matches!(u.missing, "grant" | "anything"))
}

pub fn contradicted(
    lint: &rls_lint::Report,
    policies: &PolicyCommands,
    schema: &str,
    sql: &CheckReport,
    http: Option<&CheckReport>,
) -> Vec<Contradicted> {
    lint.at_or_above(rls_lint::Level::Warn)
        .filter_map(|f| {
            let (policy, qualified) = f.object.strip_prefix("policy ")?.rsplit_once(" on ")?;
            let table = qualified.strip_prefix(schema)?.strip_prefix('.')?;
            sql.table(table)?;
            let own = policies.get(&(qualified.to_owned(), policy.to_owned()))?;
            // Cells say nothing about a policy that granted nobody anything on the seeded
            // rows: its finding stands until a row exercises it.
            if never_granted(sql, table, policy) {
                return None;
            }
            let commands = commands_spoken_of(f.rule, own);
            if commands.is_empty() {
                return None;
            }
            let mut parts = Vec::new();
            for command in commands {
                let (mut cells, mut leaks) = tally(sql, table, command);
                if let Some(http) = http {
                    let (c, l) = tally(http, table, command);
                    cells += c;
                    leaks += l;
                }
                if cells == 0 || leaks > 0 {
                    return None;
                }
                parts.push(format!("[{table}] {command} — {cells} cells, 0 leaks"));
            }
            Some(Contradicted {
                rule: f.rule,
                object: f.object.clone(),
                level: f.level,
                evidence: format!("contradicted by the matrices: {}", parts.join("; ")),
            })
        })
        .collect()
}
