//! `cargo run -p todo-app`: reads the configuration, serves the API and the todo page on
//! 127.0.0.1:7130 by default, and shuts down gracefully on Ctrl-C or SIGTERM.
//!
//! `cargo run -p todo-app -- --dev-sign-in` adds a local-user picker to the page (loopback only).

use std::process::ExitCode;

use todo_app::{AppConfig, AppState, StartError};
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

async fn run(config: AppConfig) -> Result<(), StartError> {
    let state = AppState::new(&config)?;
    let listener = todo_app::bind(&config).await?;
    // The address the OS gave, not the one asked for: with `--bind 127.0.0.1:0` it has the port.
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.bind,
        source,
    })?;
    let sign_in = if config.dev_sign_in {
        "dev"
    } else if config.clerk_publishable_key.is_some() {
        "clerk"
    } else {
        "none"
    };
    tracing::info!(
        %addr,
        url = %format!("http://{addr}/"),
        sign_in,
        database = %todo_app::config::redact_url(&config.database_url),
        "todo-app listening: open the url in a browser"
    );
    if config.dev_sign_in {
        tracing::warn!(
            users = %config.dev_users_file.display(),
            "dev sign-in is on: any program on this machine can act as those users; for local \
             development only"
        );
    }
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
