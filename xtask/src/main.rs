//! `cargo xtask …`: the contributors' alias over the installable command's layer
//! (`insforge_rls::cli`: setup, teardown, status, migrate, token, lint, check, verify, app),
//! run from this workspace (state in `target/insforge-rls`, the workspace's `.env`), plus the
//! workspace-only commands (`bench`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use insforge_rls::cli::{self, Context, Global};
use insforge_rls::start;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    version,
    about = "Prove a Clerk + InsForge app keeps every user's rows their own"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    #[command(flatten)]
    User(cli::Command),
    /// Run the benchmarks (time to green, RLS at scale, app vs pgbench) and write
    /// docs/benchmarks/ (JSON, README.md, SVG plots); `--quick` for CI.
    /// Runs `cargo run -p bench -- ARGS`; `cargo xtask bench --help` lists them.
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    // Layering: flags > environment > the workspace's .env > defaults. XTASK_LOG, else the
    // usual RUST_LOG, else warnings only.
    let root = harness::state::workspace_root();
    start::init(Some(&root.join(".env")), &["XTASK_LOG", "RUST_LOG"]);
    let cli = Cli::parse();
    let ctx = Context::workspace(root, &cli.global);
    let state_dir = ctx.state.root().to_path_buf();
    start::run(Some(&state_dir), async move {
        match cli.command {
            Cmd::User(command) => cli::run(command, &ctx).await,
            Cmd::Bench { args } => cli::cargo_run("bench", &args),
        }
    })
}
