//! `check`: a team's schema and access spec, checked on a fresh database — the spec's matrices
//! and the lint (the pipeline is [`rls_suite::check`]). Exit status: 0 clean, 1 a leak (or a
//! lint finding at `--deny-lint`), 3 lost access without a leak, 2 could not run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use rls_suite::actors::ClaimsForwarding;
use rls_suite::check::{CheckOptions, CheckOutcome, MutationOptions, Subject};
use serde_json::json;

use super::{Context, Format};

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
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Which claims reach Postgres: `insforge` (InsForge ≥ 2.2.5: sub, email, role) or `all`
    /// (InsForge ≤ 2.2.1 forwarded every claim of the token).
    #[arg(long, value_enum, default_value_t = Forwarding::Insforge)]
    claims_forwarding: Forwarding,
    /// Skip the mutants generated from the catalog (each policy weakened one way at a time,
    /// each judged on a clone by the matrices and the lint).
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
    let outcome = match Subject::load(&spec, args.migrations.as_deref()) {
        Ok(subject) => rls_suite::check::check(&subject, &args.options()).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(outcome) => {
            let took_ms = started.elapsed().as_millis();
            let code = outcome.exit_code(args.deny_lint);
            match args.format {
                Format::Json => println!("{:#}", to_json(&spec, &outcome, code)),
                Format::Text => print_text(&spec, &outcome, took_ms, code),
            }
            Ok(ExitCode::from(code))
        }
        Err(e) => {
            eprintln!("error: check could not run: {:#}", anyhow::Error::from(e));
            Ok(ExitCode::from(2))
        }
    }
}

fn to_json(spec: &Path, o: &CheckOutcome, code: u8) -> serde_json::Value {
    json!({
        "spec": spec.display().to_string(),
        "migrations": o.migrations,
        "matrices": o.report.to_json(),
        "coverage": o.coverage().map(rls_suite::coverage::Coverage::to_json),
        "lint": serde_json::from_str::<serde_json::Value>(&o.lint.render_json())
            .unwrap_or_default(),
        "mutants": o.mutants.as_ref().map(rls_suite::mutation::MutationReport::to_json),
        "http": o.http.as_ref().map(|http| json!({
            "matrices": http.report.to_json(),
            "disagreements_with_sql": http.disagreements_with_sql,
        })),
        "exit": code,
    })
}

fn print_text(spec: &Path, o: &CheckOutcome, took_ms: u128, code: u8) {
    let (leaks, lost, disagree) = (o.leaks(), o.lost_access(), o.disagreements());
    println!(
        "insforge-rls check: {} ({} tables, {} cells, {} ms)",
        spec.display(),
        o.report.tables.len(),
        o.report.cell_count(),
        took_ms
    );
    println!("migrations: {}", o.migrations.join(", "));
    println!();
    print!("{}", o.report.render());
    if let Some(c) = o.coverage() {
        print!("{}", c.render());
        println!();
    }
    if let Some(http) = &o.http {
        println!("over HTTP (the sample app's records API on the same database):");
        print!("{}", http.report.render());
    }
    if let Some(m) = &o.mutants {
        print!("{}", m.render());
        println!();
    }
    println!("lint:");
    for line in o.lint.render_text().lines() {
        println!("  {line}");
    }
    println!();
    for l in &leaks {
        println!("LEAK {l}");
    }
    for l in &lost {
        println!("LOST {l}");
    }
    for l in disagree {
        println!("DIFF {l}");
    }
    println!(
        "{} leaks, {} lost access — {}",
        leaks.len(),
        lost.len(),
        match code {
            0 => "clean",
            1 if leaks.is_empty() && !disagree.is_empty() => {
                "FAILED: SQL and HTTP disagree (the records API does not pass the caller on as Postgres expects)"
            }
            1 => "FAILED: someone can do more than the spec allows",
            _ => "FAILED: someone can do less than the spec allows",
        }
    );
}
