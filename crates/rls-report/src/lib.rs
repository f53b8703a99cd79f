//! Reports CI understands, written from a spec check or a lint run: JUnit XML (a test case per
//! table × operation × actor cell), SARIF 2.1.0 (each finding at the migration line that made
//! the policy, table or function) and markdown (for `$GITHUB_STEP_SUMMARY`).
//!
//! ```no_run
//! # fn run(report: &rls_suite::engine::CheckReport) -> Result<(), rls_report::LocateError> {
//! let input = rls_report::CheckInput::from(report);
//! let root = rls_report::Locator::repository_root("migrations".as_ref());
//! let locator = rls_report::Locator::scan(&root, "migrations".as_ref())?;
//! std::fs::write("check.sarif", rls_report::sarif_check(&input, &locator)).ok();
//! std::fs::write("check.xml", rls_report::junit(&input)).ok();
//! print!("{}", rls_report::markdown(&input));
//! # Ok(()) }
//! ```
//!
//! The inputs are this crate's own plain types ([`CheckInput`], [`LintInput`]); only their
//! `From` conversions know the suite's and the lint's report types.

mod input;
mod junit;
mod locate;
mod markdown;
mod sarif;

pub use input::{
    Cell, CheckInput, LintFinding, LintInput, LintLevel, LintRule, MutantOutcome, MutantResult,
    Probe, TableCells, Untested, Verdict, mutation_score,
};
pub use junit::junit;
pub use locate::{LocateError, Located, Locator};
pub use markdown::{markdown, markdown_changes, markdown_lint};
pub use sarif::{SARIF_SCHEMA, sarif_check, sarif_check_value, sarif_lint, sarif_lint_value};
