//! Migration faults: an edited applied file is refused by name; a failing file stops the run
//! with nothing after it applied and nothing of it left behind.

use std::fs;
use std::path::Path;

use harness::{HarnessError, Migrations, PgTarget, TestDatabase};
use sqlx::Connection;

/// An empty database (from template0) on the shared server, dropped with the guard.
struct Scratch {
    target: PgTarget,
    // Reuses TestDatabase's drop-on-exit by borrowing its server; the scratch is separate.
    _db: TestDatabase,
}

async fn scratch() -> Scratch {
    let db = TestDatabase::create().await.unwrap();
    let name = format!("{}_scratch", db.name());
    let mut admin = db.admin_connection().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "create database \"{name}\" template template0"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    Scratch {
        target: db.admin_target().with_database(&name),
        _db: db,
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let target = self.target.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut c = target.with_database("postgres").connect().await.unwrap();
                let sql = format!(
                    "drop database if exists \"{}\" with (force)",
                    target.database
                );
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .unwrap();
            })
        })
        .join();
    }
}

fn write(dir: &Path, name: &str, sql: &str) {
    fs::write(dir.join(name), sql).unwrap();
}

async fn tables(target: &PgTarget) -> Vec<String> {
    let mut c = target.connect().await.unwrap();
    sqlx::query_scalar(
        "select tablename::text from pg_tables where schemaname = 'public' order by 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_embedded_migrations_apply_once_then_are_up_to_date() {
    let s = scratch().await;
    let first = Migrations::embedded().apply(&s.target).await.unwrap();
    assert_eq!(first.applied, Migrations::embedded().names());
    let again = Migrations::embedded().apply(&s.target).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.already_applied, first.applied.len());
    assert_eq!(tables(&s.target).await, ["todos"]);
}

#[tokio::test]
async fn a_failing_migration_stops_the_run_and_names_its_file() {
    let s = scratch().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "V1__one.sql",
        "create table public.one (id int);",
    );
    // The first statement would succeed; the transaction must take it back.
    write(
        dir.path(),
        "V2__broken.sql",
        "create table public.two (id int);\nselect * from no_such_table;",
    );
    write(
        dir.path(),
        "V3__three.sql",
        "create table public.three (id int);",
    );

    let err = Migrations::from_dir(dir.path())
        .unwrap()
        .apply(&s.target)
        .await
        .unwrap_err();
    match &err {
        HarnessError::MigrationFailed { file, reason } => {
            assert_eq!(file, "migrations/V2__broken.sql");
            assert!(reason.contains("no_such_table"), "{reason}");
        }
        other => panic!("expected MigrationFailed, got {other:?}"),
    }
    assert!(err.to_string().contains("nothing after it was applied"));
    assert_eq!(
        tables(&s.target).await,
        ["one"],
        "V1 kept, V2 rolled back, V3 never run"
    );

    // Fixed, the run picks up where it stopped.
    write(
        dir.path(),
        "V2__broken.sql",
        "create table public.two (id int);",
    );
    let report = Migrations::from_dir(dir.path())
        .unwrap()
        .apply(&s.target)
        .await
        .unwrap();
    assert_eq!(report.applied, ["V2__broken", "V3__three"]);
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused_by_name() {
    let s = scratch().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "V1__one.sql",
        "create table public.one (id int);",
    );
    Migrations::from_dir(dir.path())
        .unwrap()
        .apply(&s.target)
        .await
        .unwrap();

    write(
        dir.path(),
        "V1__one.sql",
        "create table public.one (id bigint);",
    );
    write(
        dir.path(),
        "V2__two.sql",
        "create table public.two (id int);",
    );
    let err = Migrations::from_dir(dir.path())
        .unwrap()
        .apply(&s.target)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HarnessError::MigrationChanged { file } if file == "migrations/V1__one.sql"),
        "{err:?}"
    );
    assert_eq!(
        tables(&s.target).await,
        ["one"],
        "nothing applied after the refusal"
    );
}
