//! The todos sample's own layers, built on the engine (never the other way round): the todos
//! matrices in SQL and over HTTP ([`matrices`]: the engine's run of `fixtures/todos.access.toml`
//! plus a caller with no claims at all), the live `verify` of an endpoint without a database
//! ([`verify`]: the engine run through the records API only, `engine::api_only`),
//! and the data they read from `fixtures/` ([`fixtures`]: users, seed todos, the hand-written
//! policy mutants).

pub mod fixtures;
pub mod matrices;
pub mod verify;
