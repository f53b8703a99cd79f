//! `cargo run -p todo-app`: reads the configuration, serves on 127.0.0.1:7130 by default, and
//! shuts down gracefully on Ctrl-C or SIGTERM.

use std::process::ExitCode;

use todo_app::{AppConfig, AppState};
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
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "todo-app stopped with an error");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: AppConfig) -> Result<(), todo_app::StartError> {
    let state = AppState::new(&config)?;
    let listener = todo_app::bind(&config).await?;
    tracing::info!(
        addr = %config.bind,
        database = %todo_app::config::redact_url(&config.database_url),
        "todo-app listening"
    );
    // Not fatal: the pool is lazy and /health reports 503 until the database answers.
    if let Err(e) = todo_app::db::ping(state.pool()).await {
        tracing::warn!(error = %e, "database not reachable yet; serving 503 until it is");
    }
    todo_app::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("todo-app stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
