//! The RLS verification suite, one integration binary: access matrices, negative controls.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod accept;
mod expr_mutants;
mod layering;
mod lint_evidence;
mod matrix_http;
mod matrix_sql;
mod model;
mod model_tasks;
mod mutant_isolation;
mod mutants;
mod pool;
mod real_schemas;
mod spec_check;
mod spec_http;
mod support;
mod tokens;
mod verify;
