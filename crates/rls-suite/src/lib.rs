//! The RLS verification suite: the evidence a team reads before it trusts its Clerk + InsForge
//! setup — access matrices in SQL and over HTTP, judged as leaks or lost access.
//!
//! [`engine`] is the spec-driven check, one module per stage; [`todos`] holds the todos
//! sample's fixed layers, built on it; [`mutation`] weakens policies and runs the engine on
//! each mutant. The other top-level modules are facades kept for code written before the split
//! (each item says where it moved).

pub mod check;
pub mod engine;
pub mod mutation;
pub mod policy_expr;
pub mod spec;
pub mod todos;

// ---- facades: moved items under their old paths ----
pub mod access;

/// Moved to [`engine::model::actor`].
pub mod actors {
    pub use crate::engine::model::actor::*;
}
/// Moved to [`engine::coverage`].
pub mod coverage {
    pub use crate::engine::coverage::*;
}
/// Moved to [`todos::fixtures`].
pub mod fixtures {
    pub use crate::todos::fixtures::*;
}
/// Moved to [`todos::http`]; `Api` and `Reply` to [`engine::observe::http`].
pub mod http {
    pub use crate::todos::http::*;
}
/// Moved to [`todos::matrix`]; `Verdict` to [`engine::model`].
pub mod matrix {
    pub use crate::todos::matrix::*;
}
/// Moved to [`todos::sql`].
pub mod todos_sql {
    pub use crate::todos::sql::*;
}
/// Moved to [`engine::tokens`].
pub mod tokens {
    pub use crate::engine::tokens::*;
}
/// Moved to [`todos::verify`].
pub mod verify {
    pub use crate::todos::verify::*;
}

/// Moved to [`engine::Error`] (one error type for the suite).
pub use engine::Error as SuiteError;
/// Moved to [`todos::Identities`].
pub use todos::Identities;
