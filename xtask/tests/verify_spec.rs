//! `cargo xtask verify --spec` and `cargo xtask check --http`: a spec's matrices through the
//! records API — of the sample app serving a test database here, as of any InsForge-compatible
//! endpoint whose database the command can reach.

#![allow(clippy::unwrap_used)] // Test helpers: a panic is the failure report.

use std::path::{Path, PathBuf};

use clerk_token::Secret;
use harness::TestDatabase;
use sqlx::Connection;

fn todos_spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/todos.access.toml")
        .canonicalize()
        .unwrap()
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn xtask(args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env_remove("INSFORGE_RLS_MIGRATIONS")
        .env_remove("INSFORGE_RLS_DATABASE_URL")
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn rows(db: &TestDatabase) -> i64 {
    let mut admin = db.admin_connection().await.unwrap();
    let n = sqlx::query_scalar("select count(*) from public.todos")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_spec_runs_every_table_over_http_and_removes_its_rows() {
    let db = TestDatabase::create().await.unwrap();
    let secret = Secret::generate();
    let mut config = todo_app::AppConfig::new(db.app_target().url(), secret.clone());
    config.bind = "127.0.0.1:0".parse().unwrap();
    let app = todo_app::spawn(config).await.unwrap();
    let spec = todos_spec();
    let admin_url = db.admin_target().url();
    let base = app.url();
    let args = [
        "verify",
        "--base-url",
        base.as_str(),
        "--jwt-secret",
        secret.expose(),
        "--spec",
        spec.to_str().unwrap(),
        "--database-url",
        admin_url.as_str(),
    ];

    let clean = xtask(&args).await;
    assert_eq!(clean.code, Some(0), "{}\n{}", clean.stdout, clean.stderr);
    assert!(clean.stdout.contains("| todos "), "{}", clean.stdout);
    assert!(
        clean.stdout.contains("sub is SQL injection"),
        "{}",
        clean.stdout
    );
    assert!(
        clean
            .stdout
            .contains("0 leaks, 0 lost access; the synthetic rows were removed"),
        "{}",
        clean.stdout
    );
    assert_eq!(rows(&db).await, 0, "verify left rows behind");

    // A table with rows of its own is never rewritten: exit 2, with the reason.
    let mut admin = db.admin_connection().await.unwrap();
    sqlx::query("insert into public.todos (user_id, title) values ('user_2real', 'real data')")
        .execute(&mut admin)
        .await
        .unwrap();
    let refused = xtask(&args).await;
    assert_eq!(
        refused.code,
        Some(2),
        "{}\n{}",
        refused.stdout,
        refused.stderr
    );
    assert!(
        refused.stderr.contains("`todos` already has rows"),
        "{}",
        refused.stderr
    );
    assert_eq!(rows(&db).await, 1, "the real row must survive");

    // A policy that lets anyone read every row: a leak over HTTP, exit 1.
    sqlx::raw_sql(
        "delete from public.todos; \
         alter policy todos_select_own on public.todos using (true);",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    let leak = xtask(&args).await;
    assert_eq!(leak.code, Some(1), "{}\n{}", leak.stdout, leak.stderr);
    assert!(
        leak.stdout.contains("LEAK [todos] select"),
        "{}",
        leak.stdout
    );
    assert_eq!(rows(&db).await, 0);
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_http_serves_the_check_database_and_agrees_with_sql() {
    let spec = todos_spec();
    let run = xtask(&[
        "check",
        "--spec",
        spec.to_str().unwrap(),
        "--http",
        "--no-mutants",
    ])
    .await;
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("over HTTP"), "{}", run.stdout);
    assert!(
        run.stdout.contains("two spaces after Bearer"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("DIFF "), "{}", run.stdout);
}
