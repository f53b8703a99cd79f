//! `insforge-rls`: the command a team installs to check its own schema and access spec from
//! its own repository. [`cli`] is the command layer (clap definitions and handlers) that both
//! the installed binary and the workspace's `cargo xtask` alias run; [`start`] is the start-up
//! every binary of the workspace shares (environment file, logging, runtime, exit code).

pub mod cli;
pub mod start;
