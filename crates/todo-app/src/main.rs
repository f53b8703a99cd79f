//! `cargo run -p todo-app`: reads the configuration, serves the API and the todo page on
//! 127.0.0.1:7130 by default, and shuts down gracefully on Ctrl-C or SIGTERM.
//!
//! `cargo run -p todo-app -- --dev-sign-in` adds a local-user picker to the page (loopback only).

use std::process::ExitCode;

use todo_app::{AppConfig, StartError};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info")),
        )
        .init();

    // Read before the runtime starts: configuration is settled once, single-threaded.
    let config = match AppConfig::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("todo-app: {e}");
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("todo-app: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(todo_app::run(config, todo_app::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        // A setting (or the dev users file) is unusable: same report as a bad flag.
        Err(StartError::Config(e)) => {
            eprintln!("todo-app: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            tracing::error!(error = %e, "todo-app stopped with an error");
            ExitCode::FAILURE
        }
    }
}
