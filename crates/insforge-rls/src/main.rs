//! `insforge-rls`: check a team's own schema and access spec from the team's repository.
//! Paths are relative to the current folder; the spec is `--spec`, else `./insforge-rls.toml`,
//! else `./access.toml`; setup's state (and any ephemeral server) lives in `./.insforge-rls`
//! (or `--state-dir` / `INSFORGE_RLS_STATE_DIR`).

use std::process::ExitCode;

use clap::Parser;
use insforge_rls::cli::{self, Context, Global};
use insforge_rls::start;

#[derive(Debug, Parser)]
#[command(
    name = "insforge-rls",
    version,
    about = "Prove a Clerk + InsForge app keeps every user's rows their own",
    after_help = "Example, in your repository (migrations/ and access.toml):\n  insforge-rls check"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: cli::Command,
}

fn main() -> ExitCode {
    // Nothing read from a workspace: flags > environment > defaults. INSFORGE_RLS_LOG, else
    // RUST_LOG, else warnings only.
    start::init(None, &["INSFORGE_RLS_LOG", "RUST_LOG"]);
    let cli = Cli::parse();
    let ctx = Context::team_repo(&cli.global);
    let state_dir = ctx.state.root().to_path_buf();
    start::run(Some(&state_dir), async move {
        cli::run(cli.command, &ctx).await
    })
}
