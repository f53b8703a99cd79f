//! A facade over [`crate::engine`], kept so code written against `rls_suite::access` compiles
//! while the engine's stages settle. Every item here moved; each says where.

/// Moved to [`crate::engine::hostile::HostileRow`].
pub use crate::engine::hostile::HostileRow;
/// Moved to [`crate::engine::model::BoundSpec`] (built by `engine::bind`).
pub use crate::engine::model::BoundSpec;
/// Moved to [`crate::engine::model::Error`] (the suite's one error type).
pub use crate::engine::model::Error as AccessError;
/// Moved to [`crate::engine::model::Seeds`].
#[allow(unused_imports)]
pub(crate) use crate::engine::model::{Seeds, Table};
/// Moved to [`crate::engine::observe::HttpEndpoint`].
pub use crate::engine::observe::HttpEndpoint;
/// Moved to [`crate::engine::pool::PoolBleed`].
pub use crate::engine::pool::PoolBleed;
/// Moved to [`crate::engine::report`].
pub use crate::engine::report::{CheckReport, SpecCell, TableMatrix};
/// Moved to [`crate::engine::run()`], [`crate::engine::run_via`] and the `engine::run` module.
pub use crate::engine::run::{RunOptions, Via, run, run_via};
