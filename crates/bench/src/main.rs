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
    // As in xtask: flags > environment > the workspace's .env > defaults.
    let root = harness::state::workspace_root();
    let _ = dotenvy::from_path(root.join(".env"));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("XTASK_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(cli.args, &root)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
