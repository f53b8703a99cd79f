//! Harness integration tests: one binary, one shared server (from setup, or ephemeral).

#![allow(clippy::unwrap_used)] // Test helpers: a panic is the failure report.

mod factory;
mod isolation;
mod library_use;
mod local_ports;
mod local_private;
mod migrations;
mod support;
mod tls;
