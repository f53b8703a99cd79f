//! The spec-driven check, organised as the path its data takes. It binds an access spec to the
//! live catalog, seeds rows for every actor in every table (in foreign-key order), derives what
//! every actor × operation × row *should* do from the spec, observes what *does* happen (in
//! identity transactions on the app's login role, or through the records API), and judges the
//! difference: a **leak** is more than the spec allows, **lost access** less.
//!
//! ```text
//! Spec ─▶ bind ─▶ BoundSpec ─▶ seed ─▶ Seeds ─▶ expect ─▶ Allowed ─▶ plan ─▶ Plan/Action
//!      ─▶ observe (sql | http) ─▶ Executed → Observed ─▶ judge ─▶ Verdict ─▶ report ─▶ CheckReport
//! ```
//!
//! [`model`] holds the values that flow; each stage module takes the previous stage's output
//! and imports only earlier stages. [`mod@run`] drives them; [`hostile`], [`pool`] (over HTTP) and
//! [`coverage`] (in SQL) are the run's extra observations, judged where they are observed.
//!
//! Nothing here knows a table name: the spec names them, the catalog describes them. Nothing
//! here knows the todos sample's layers either: those ([`crate::todos`]) depend on the engine.

pub mod model;

pub mod api_only;
pub(crate) mod bind;
pub mod coverage;
pub(crate) mod expect;
pub mod functions;
pub mod hostile;
pub(crate) mod judge;
pub mod observe;
pub(crate) mod plan;
pub mod pool;
pub mod report;
pub mod run;
pub(crate) mod seed;
pub(crate) mod surfaces;
pub mod tokens;

pub use model::{BoundSpec, Error, Verdict};
pub use observe::HttpEndpoint;
pub use report::{CheckReport, SpecCell, TableMatrix};
pub use run::{RunOptions, Via, run, run_via};
