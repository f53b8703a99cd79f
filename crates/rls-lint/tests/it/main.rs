//! rls-lint integration tests: one binary, one shared server (from setup, or ephemeral). Every
//! test lints its own database cloned from the migrated template.

#![allow(clippy::unwrap_used)] // Test helpers: a panic is the failure report.

mod bad_schema;
mod baseline;
mod clean;
mod fix_keeps_access;
mod intent;
mod more_rules;
mod mutants;
mod parity;
mod parser_shapes;
mod performance;
mod probes;
mod real_schemas;
mod rule_fixtures;
mod support;
