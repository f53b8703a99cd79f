//! The RLS verification suite, one integration binary: access matrices, negative controls.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

mod accept;
mod derived_values;
mod evidence;
mod expr_mutants;
mod functions;
mod hollow_evidence;
mod layering;
mod lint_evidence;
mod matrix_http;
mod matrix_sql;
mod migration_rows;
mod model;
mod model_tasks;
mod mutant_isolation;
mod mutants;
mod pool;
mod real_schemas;
mod roles;
mod rules;
mod spec_check;
mod spec_http;
mod support;
mod surfaces;
mod verify;
