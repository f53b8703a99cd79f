//! todo-app integration tests: the app on 127.0.0.1:0 against a fresh database per test,
//! driven over HTTP with Clerk-shaped tokens, so they read as the API's specification.

#![allow(clippy::unwrap_used)] // Test helpers: a panic is the failure report.

mod auth;
mod claims;
mod crud;
mod dev_sign_in;
mod embed;
mod errors;
mod isolation;
mod ops;
mod page;
mod querying;
mod rpc;
mod support;
mod tables;
mod upsert;
