//! Harness integration tests: one binary, one shared server (from setup, or ephemeral).

mod isolation;
mod migrations;
mod support;
