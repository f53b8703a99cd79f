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
pub const STATE_DIR_ENV: &str = "INSFORGE_RLS_STATE_DIR";

/// Runs `main` to completion on a new multi-thread runtime: its exit code, or `error: …`
/// with the whole cause chain and exit 1. `state_dir`, when given, is where this process's
/// shared server lives (setup's state, or where an ephemeral one is made).
pub fn run(
    state_dir: Option<&Path>,
    main: impl Future<Output = anyhow::Result<ExitCode>>,
) -> ExitCode {
    if let Some(dir) = state_dir {
        export_state_dir(dir);
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

/// Points this process's shared server at `dir`: the harness reads [`STATE_DIR_ENV`]. Only
/// called by [`run`] before the runtime starts, while the process has one thread (setting the
/// environment is only sound then).
#[allow(unsafe_code)]
fn export_state_dir(dir: &Path) {
    // SAFETY: called from `main` before the runtime (or any other thread) exists, so no thread
    // can be reading the environment at the same time.
    unsafe { std::env::set_var(STATE_DIR_ENV, dir) }
}
