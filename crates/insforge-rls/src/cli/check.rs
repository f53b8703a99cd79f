//! `check`: a team's schema and access spec, checked on a fresh database — the spec's matrices
//! and the lint (the pipeline is [`rls_suite::check`]). Exit status: 0 clean, 1 a leak (or a
//! lint finding at `--deny-lint`), 3 lost access without a leak, 2 could not run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use rls_suite::check::{CheckOptions, CheckOutcome, MutationOptions, Subject};
use rls_suite::engine::model::actor::ClaimsForwarding;
use serde_json::json;

use super::Context;
use super::report::{Output, write_or_print};

/// How `check` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
    /// JUnit XML: a test case per table × operation × actor cell.
    Junit,
    /// SARIF 2.1.0: each finding at the migration line that made the policy or table.
    Sarif,
    /// Markdown, e.g. for `$GITHUB_STEP_SUMMARY`.
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The access spec (TOML): who should see and change what [default: ./insforge-rls.toml,
    /// else ./access.toml].
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Your migrations folder (V1__name.sql, …), applied after the base; default: the spec's
    /// `migrations` key, else the sample app's todos.
    #[arg(long, env = harness::migrate::MIGRATIONS_ENV)]
    migrations: Option<PathBuf>,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    format: CheckFormat,
    /// Write the report (in --format) to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also write a JUnit XML report to FILE (whatever --format is; written when the check
    /// ran, clean or not).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Also write a SARIF 2.1.0 report to FILE, located in the migrations (paths relative to
    /// their repository's root).
    #[arg(long, value_name = "FILE")]
    sarif: Option<PathBuf>,
    /// Also write a markdown report to FILE.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Which claims reach Postgres: `insforge` (InsForge ≥ 2.2.5: sub, email, role) or `all`
    /// (InsForge ≤ 2.2.1 forwarded every claim of the token).
    #[arg(long, value_enum, default_value_t = Forwarding::Insforge)]
    claims_forwarding: Forwarding,
    /// Skip the mutants generated from the catalog (each policy weakened one way at a time,
    /// each judged in a savepoint of one seeded session by the matrices and the lint).
    #[arg(long)]
    no_mutants: bool,
    /// How many mutants run at once.
    #[arg(long, default_value_t = 2)]
    mutant_jobs: usize,
    /// Also fail (exit 1) on lint findings at or above this level (error, warn, info). By
    /// default the lint is advice (it reads the spec's intent: a declared public read is not a
    /// finding) and the matrices decide.
    #[arg(long)]
    deny_lint: Option<rls_lint::Level>,
    /// Also run the matrices over HTTP: the sample app serves the check's database and every
    /// cell goes through the records API, plus the hostile-token table; where SQL and HTTP
    /// disagree, the check says so (and fails).
    #[arg(long)]
    http: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Forwarding {
    Insforge,
    All,
}

impl CheckArgs {
    fn options(&self) -> CheckOptions {
        CheckOptions {
            forwarding: match self.claims_forwarding {
                Forwarding::Insforge => ClaimsForwarding::InsForge23,
                Forwarding::All => ClaimsForwarding::All,
            },
            http: self.http,
            mutation: (!self.no_mutants).then_some(MutationOptions {
                jobs: self.mutant_jobs,
            }),
        }
    }
}

pub(super) async fn run(_ctx: &Context, args: CheckArgs) -> Result<ExitCode> {
    let started = Instant::now();
    // A spec that is not there is a bad input (exit 2), as is everything the files alone can
    // tell: both are refused before anything is made.
    let spec = super::find_spec(args.spec.as_deref())?;
    let (outcome, migrations_dir) = match Subject::load(&spec, args.migrations.as_deref()) {
        Ok(subject) => (
            rls_suite::check::check(&subject, &args.options()).await,
            Some(subject.migrations.app_origin().to_path_buf()),
        ),
        Err(e) => (Err(e), None),
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("error: check could not run: {:#}", anyhow::Error::from(e));
            return Ok(ExitCode::from(2));
        }
    };
    let took_ms = started.elapsed().as_millis();
    let code = outcome.exit_code(args.deny_lint);
    let reports = Reports::new(&spec, &outcome, migrations_dir.as_deref());
    let extra = [
        (CheckFormat::Junit, &args.junit),
        (CheckFormat::Sarif, &args.sarif),
        (CheckFormat::Markdown, &args.markdown),
    ];
    let mut outputs: Vec<Output> = extra
        .into_iter()
        .filter_map(|(format, file)| Some((format, file.clone()?)))
        .map(|(format, file)| Output {
            file: Some(file),
            text: reports.render(format, took_ms, code),
        })
        .collect();
    outputs.push(Output {
        file: args.output.clone(),
        text: reports.render(args.format, took_ms, code),
    });
    // A report that cannot be written means the run cannot be trusted by what reads it: exit 2,
    // never the verdict's 0, 1 or 3.
    if let Err(e) = write_or_print(&outputs) {
        eprintln!("error: {e:#}");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::from(code))
}

/// What every format is written from: the outcome, and for SARIF where each object was made.
struct Reports<'a> {
    spec: &'a Path,
    outcome: &'a CheckOutcome,
    input: rls_report::CheckInput,
    locator: rls_report::Locator,
}

impl<'a> Reports<'a> {
    fn new(spec: &'a Path, outcome: &'a CheckOutcome, migrations: Option<&Path>) -> Self {
        let mut input =
            rls_report::CheckInput::from(&outcome.report).with_lint(&outcome.lint_for_check());
        if let Some(m) = &outcome.mutants {
            input = input.with_mutants(m);
        }
        if let Some(http) = &outcome.http {
            input = input.with_http(&http.report, &http.disagreements_with_sql);
        }
        input.spec = Some(spec.to_path_buf());
        Self {
            spec,
            outcome,
            input,
            locator: locator_for(migrations),
        }
    }

    fn render(&self, format: CheckFormat, took_ms: u128, code: u8) -> String {
        match format {
            CheckFormat::Json => format!("{:#}\n", to_json(self.spec, self.outcome, code)),
            CheckFormat::Text => render_text(self.spec, self.outcome, took_ms, code),
            CheckFormat::Junit => rls_report::junit(&self.input),
            CheckFormat::Sarif => rls_report::sarif_check(&self.input, &self.locator),
            CheckFormat::Markdown => rls_report::markdown(&self.input),
        }
    }
}

/// Where the migrations of `dir` made each object, relative to the repository holding them; a
/// folder that is not there (the embedded sample) or cannot be read locates nothing (said).
pub(super) fn locator_for(dir: Option<&Path>) -> rls_report::Locator {
    let Some(dir) = dir.filter(|d| d.is_dir()) else {
        return rls_report::Locator::empty();
    };
    let root = rls_report::Locator::repository_root(dir);
    rls_report::Locator::scan(&root, dir).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "SARIF locations: the migrations could not be read");
        rls_report::Locator::empty()
    })
}

fn to_json(spec: &Path, o: &CheckOutcome, code: u8) -> serde_json::Value {
    json!({
        "spec": spec.display().to_string(),
        "migrations": o.migrations,
        "matrices": o.report.to_json(),
        "coverage": o.coverage().map(rls_suite::engine::coverage::Coverage::to_json),
        // The lint as the check reads it (a finding the matrices contradict is an info note
        // carrying the evidence); `lint_contradicted` lists those with the level they were linted at.
        "lint": serde_json::from_str::<serde_json::Value>(&o.lint_for_check().render_json())
            .unwrap_or_default(),
        "lint_contradicted": o.contradicted.iter().map(|c| json!({
            "rule": c.rule,
            "object": c.object,
            "level": c.level,
            "evidence": c.evidence,
        })).collect::<Vec<_>>(),
        "mutants": o.mutants.as_ref().map(rls_suite::mutation::MutationReport::to_json),
        "http": o.http.as_ref().map(|http| json!({
            "matrices": http.report.to_json(),
            "disagreements_with_sql": http.disagreements_with_sql,
        })),
        "exit": code,
    })
}

fn render_text(spec: &Path, o: &CheckOutcome, took_ms: u128, code: u8) -> String {
    let mut out = String::new();
    let (leaks, lost, disagree) = (o.leaks(), o.lost_access(), o.disagreements());
    let _ = writeln!(
        out,
        "insforge-rls check: {} ({} tables, {} cells, {} ms)",
        spec.display(),
        o.report.tables.len(),
        o.report.cell_count(),
        took_ms
    );
    let _ = writeln!(out, "migrations: {}", o.migrations.join(", "));
    out.push('\n');
    out.push_str(&o.report.render());
    if let Some(c) = o.coverage() {
        out.push_str(&c.render());
        out.push('\n');
    }
    if let Some(http) = &o.http {
        let _ = writeln!(
            out,
            "over HTTP (the sample app's records API on the same database):"
        );
        out.push_str(&http.report.render());
    }
    if let Some(m) = &o.mutants {
        out.push_str(&m.render());
        out.push('\n');
    }
    let _ = writeln!(out, "lint:");
    for line in o.lint_for_check().render_text().lines() {
        let _ = writeln!(out, "  {line}");
    }
    for c in &o.contradicted {
        let _ = writeln!(
            out,
            "  NOTE {} {} (linted {}): {}",
            c.rule, c.object, c.level, c.evidence
        );
    }
    out.push('\n');
    for l in &leaks {
        let _ = writeln!(out, "LEAK {l}");
    }
    for l in &lost {
        let _ = writeln!(out, "LOST {l}");
    }
    for l in disagree {
        let _ = writeln!(out, "DIFF {l}");
    }
    let _ = writeln!(
        out,
        "{} leaks, {} lost access — {}",
        leaks.len(),
        lost.len(),
        match code {
            0 => "clean",
            1 if leaks.is_empty() && !disagree.is_empty() => {
                "FAILED: SQL and HTTP disagree (the records API does not pass the caller on as Postgres expects)"
            }
            1 => "FAILED: someone can do more than the spec allows",
            4 => "FAILED: a policy clause or branch no cell exercised (UNTESTED above)",
            _ => "FAILED: someone can do less than the spec allows",
        }
    );
    out
}
