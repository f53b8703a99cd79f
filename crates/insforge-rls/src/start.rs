//! The one CLI start-up: the environment file, logging to stderr, the async runtime, and the
//! exit code of an error — shared by `insforge-rls`, `cargo xtask` and the bench binary.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

/// Reads `env_file` (a variable already set always wins; a missing file is fine) and starts
/// logging to stderr: the first of `log_vars` that is set and valid, else warnings only.
/// Colours only on a terminal, so logs piped to a file or CI stay plain text. Call first in
/// `main`, before the flags are parsed (clap reads the environment the file may fill).
pub fn init(env_file: Option<&Path>, log_vars: &[&str]) {
    if let Some(path) = env_file {
        let _ = dotenvy::from_path(path);
    }
    let filter = log_vars
        .iter()
        .find_map(|key| std::env::var(key).ok().filter(|v| !v.trim().is_empty()))
        .and_then(|directives| tracing_subscriber::EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

/// The variable the harness reads for the state folder (setup's state, ephemeral servers).
pub use harness::state::STATE_DIR_ENV;

/// Runs `main` to completion on a new multi-thread runtime: its exit code, or `error: …`
/// with the whole cause chain and exit 1. `state_dir`, when given, is where this process's
/// shared server lives (setup's state, or where an ephemeral one is made).
pub fn run(
    state_dir: Option<&Path>,
    main: impl Future<Output = anyhow::Result<ExitCode>>,
) -> ExitCode {
    if let Some(dir) = state_dir
        && let Err(other) = harness::state::use_process_state_dir(dir)
    {
        eprintln!(
            "error: the state folder is already {}, not {}",
            other.display(),
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
