//! The todos sample's own layers, built on the engine (never the other way round): the fixed
//! access matrix over `public.todos` in SQL ([`sql`]) and over HTTP ([`http`]), the live
//! `verify` of an endpoint ([`verify`]), and the data they read from `fixtures/` ([`fixtures`]:
//! users, seed todos, the hand-written policy mutants).

pub mod fixtures;
pub mod http;
pub mod matrix;
pub mod sql;
pub mod verify;

pub use sql::Identities;
