//! The bench binary: `cargo xtask bench ARGS` runs `cargo run -p bench -- ARGS`.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask bench",
    about = "Run the benchmarks (time to green, RLS at scale, app vs pgbench) and write \
             docs/benchmarks/ (JSON, README.md, SVG plots); `--quick` for CI"
)]
struct Cli {
    #[command(flatten)]
    args: bench::BenchArgs,
}

fn main() -> ExitCode {
    // As in xtask (the same start-up): flags > environment > the workspace's .env > defaults.
    let root = harness::state::workspace_root();
    insforge_rls::start::init(Some(&root.join(".env")), &["XTASK_LOG", "RUST_LOG"]);
    let cli = Cli::parse();
    insforge_rls::start::run(None, bench::run(cli.args, &root))
}
