//! Static Row Level Security linter for a live Postgres catalog, tuned for Clerk + InsForge:
//! reads tables, policies, functions, roles, grants and views, and reports what lets one user
//! reach another's rows (or lose their own), with why and how to fix it.
//!
//! ```no_run
//! # async fn run(conn: &mut sqlx::PgConnection) -> Result<(), rls_lint::LintError> {
//! let report = rls_lint::lint(conn, &rls_lint::LintOptions::default()).await?;
//! print!("{}", report.render_text());
//! std::process::exit(report.exit_code(rls_lint::Level::Warn));
//! # }
//! ```
//!
//! The linter only reads: it runs in a read-only transaction (a savepoint if the connection is
//! already in one) and rolls it back. It needs a role that can read the catalogs and call
//! `has_table_privilege`/`pg_has_role` for the configured roles; a superuser or the database
//! owner works. Rule ids and levels are listed in [`RULES`]; the JSON shape is documented on
//! [`Report::render_json`] and, with the heuristics and their blind spots, in the crate README.

mod analysis;
mod baseline;
mod catalog;
mod checks;
mod error;
mod expr;
mod options;
mod report;
mod rules;
mod sql;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

pub use baseline::{Baseline, BaselineEntry, BaselineError};
pub use error::LintError;
pub use options::{LintOptions, PublicRead, TableIntent};
pub use report::{Finding, FixSql, JSON_FORMAT, Level, Report, Summary, UnknownLevel};
pub use rules::{RULES, Rule, rule};

/// Lints the catalog `conn` is connected to.
pub async fn lint(conn: &mut PgConnection, options: &LintOptions) -> Result<Report, LintError> {
    options.validate()?;
    let catalog = catalog::load(conn, options).await?;
    let report = checks::run(&catalog, options);
    Ok(match &options.baseline {
        Some(baseline) => baseline.apply(report),
        None => report,
    })
}

/// Connects to `database_url`, lints, and disconnects: the entry point for `cargo xtask lint`.
pub async fn lint_url(database_url: &str, options: &LintOptions) -> Result<Report, LintError> {
    let mut conn = PgConnection::connect(database_url)
        .await
        .map_err(LintError::Connect)?;
    let report = lint(&mut conn, options).await;
    // The report is complete whether or not the goodbye reaches the server.
    conn.close().await.ok();
    report
}
