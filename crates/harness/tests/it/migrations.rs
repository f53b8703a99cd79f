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
            assert_eq!(
                file,
                &dir.path().join("V2__broken.sql").display().to_string()
            );
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
async fn a_teams_set_keeps_its_own_history_beside_the_base() {
    let s = scratch().await;
    let dir = tempfile::tempdir().unwrap();
    // Version 1 and 4 exist in the base too: the histories never clash.
    write(
        dir.path(),
        "V1__notes.sql",
        "create table public.notes (id int);",
    );
    write(
        dir.path(),
        "V4__more.sql",
        "create table public.more (id int);",
    );
    let set = Migrations::from_dir(dir.path()).unwrap();
    let report = set.apply(&s.target).await.unwrap();
    assert_eq!(
        report.applied,
        [
            "V1__insforge_roles",
            "V2__requesting_user_id",
            "V4__inlinable_requesting_user_id",
            "V1__notes",
            "V4__more"
        ]
    );
    assert_eq!(tables(&s.target).await, ["more", "notes"]);
    let mut c = s.target.connect().await.unwrap();
    let app: Vec<String> =
        sqlx::query_scalar("select name::text from insforge_rls.app_history order by version")
            .fetch_all(&mut c)
            .await
            .unwrap();
    assert_eq!(app, ["notes", "more"]);
    // The sample's set on the same database is another set: refused by name, with the way out.
    let err = Migrations::embedded().apply(&s.target).await.unwrap_err();
    assert!(
        matches!(&err, HarnessError::MigrationMissing { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--migrations"), "{err}");
}

#[tokio::test]
async fn a_folder_that_is_not_one_is_refused_before_anything_runs() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = Migrations::from_dir(file.path()).unwrap_err();
    assert!(
        err.to_string().contains("is not a folder of migrations"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    let err = Migrations::from_dir(empty.path()).unwrap_err();
    assert!(err.to_string().contains("no V{n}__name.sql files"), "{err}");
}

#[tokio::test]
async fn a_database_with_the_single_history_of_earlier_setups_is_carried_over() {
    let s = scratch().await;
    Migrations::embedded().apply(&s.target).await.unwrap();
    // Make it look as an earlier setup left it: one history with all four files.
    let mut c = s.target.connect().await.unwrap();
    sqlx::raw_sql(
        "create table insforge_rls.refinery_schema_history (like insforge_rls.base_history including all); \
         insert into insforge_rls.refinery_schema_history \
           select * from insforge_rls.base_history union all select * from insforge_rls.app_history; \
         drop table insforge_rls.base_history, insforge_rls.app_history;",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let report = Migrations::embedded().apply(&s.target).await.unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(report.already_applied, 4);
    let legacy: bool =
        sqlx::query_scalar("select to_regclass('insforge_rls.refinery_schema_history') is null")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert!(legacy, "the single history is gone once carried over");
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
        matches!(&err, HarnessError::MigrationChanged { file } if *file == dir.path().join("V1__one.sql").display().to_string()),
        "{err:?}"
    );
    assert_eq!(
        tables(&s.target).await,
        ["one"],
        "nothing applied after the refusal"
    );
}
