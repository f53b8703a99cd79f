//! The RLS verification suite: the evidence a team reads before it trusts its Clerk + InsForge
//! setup — access matrices in SQL and over HTTP, judged as leaks or lost access.
//!
//! [`engine`] is the spec-driven check, one module per stage; [`todos`] holds the todos
//! sample's fixed layers, built on it; [`mutation`] weakens policies and runs the engine on
//! each mutant; [`check`] is the whole check as one call.

pub mod check;
pub mod engine;
pub mod mutation;
pub mod policy_expr;
pub mod spec;
pub mod todos;
