//! The per-test database factory: clones on one long-lived connection, drops in the
//! background, and sweeps what exited test processes left — never a live process's databases.

use std::time::{Duration, Instant};

use harness::{CloneStrategy, DatabaseFactory, PgTarget, shared_state};
use sqlx::{Connection, PgConnection};

async fn admin() -> (PgTarget, String) {
    let state = shared_state().await.unwrap();
    (state.admin.clone(), state.template.clone().unwrap())
}

async fn exists(conn: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar("select exists (select from pg_database where datname = $1)")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Polls (bounded) until `name` exists or not, as wanted; returns whether it got there.
async fn settles(conn: &mut PgConnection, name: &str, want: bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if exists(conn, name).await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn clones_the_template_and_drops_in_the_background() {
    let (admin, template) = admin().await;
    let factory = DatabaseFactory::start(admin.clone()).unwrap();
    let name = factory.create(&template).await.unwrap();
    assert!(
        name.starts_with(harness::factory::TEST_DATABASE_PREFIX),
        "{name}"
    );

    let mut conn = admin.connect().await.unwrap();
    assert!(exists(&mut conn, &name).await);
    // The clone carries the migrations.
    let mut db = admin.with_database(&name).connect().await.unwrap();
    let todos: i64 = sqlx::query_scalar("select count(*) from public.todos")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(todos, 0);

    // A connection left open does not stop the drop (WITH (FORCE)).
    factory.drop_later(&name);
    factory.flush().await.unwrap();
    assert!(!exists(&mut conn, &name).await, "{name} was not dropped");
    assert!(db.ping().await.is_err(), "the drop left a connection alive");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn uses_file_copy_where_checkpoints_are_cheap() {
    let (admin, _) = admin().await;
    let factory = DatabaseFactory::start(admin.clone()).unwrap();
    let mut conn = admin.connect().await.unwrap();
    let (version, fsync): (i32, String) = sqlx::query_as(
        "select current_setting('server_version_num')::int, current_setting('fsync')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let expected = match (version >= 150_000, fsync.as_str()) {
        (false, _) => CloneStrategy::ServerDefault,
        (true, "off") => CloneStrategy::FileCopy,
        (true, _) => CloneStrategy::WalLog,
    };
    assert_eq!(factory.settings().await.unwrap().strategy, expected);
}

#[tokio::test]
async fn sweeps_what_exited_processes_left_and_nothing_of_live_ones() {
    let (admin, template) = admin().await;
    let mut conn = admin.connect().await.unwrap();

    // A "process" that exits without dropping its database: its factory's session ends.
    let gone = DatabaseFactory::start(admin.clone()).unwrap();
    let orphan = gone.create(&template).await.unwrap();
    drop(gone);
    // A live one keeps its database, though it is not the sweeper's.
    let live = DatabaseFactory::start(admin.clone()).unwrap();
    let kept = live.create(&template).await.unwrap();

    // The next factory sweeps right after its first clone.
    let next = DatabaseFactory::start(admin.clone()).unwrap();
    let own = next.create(&template).await.unwrap();
    // The gone factory's thread closes its session asynchronously: poll until its lock is
    // free, sweeping each time with a fresh factory.
    let started = Instant::now();
    while exists(&mut conn, &orphan).await && started.elapsed() < Duration::from_secs(10) {
        let again = DatabaseFactory::start(admin.clone()).unwrap();
        let name = again.create(&template).await.unwrap();
        again.drop_later(&name);
        again.flush().await.unwrap();
    }
    next.flush().await.unwrap();
    assert!(
        settles(&mut conn, &orphan, false).await,
        "the exited factory's database {orphan} was not swept"
    );
    assert!(
        exists(&mut conn, &kept).await,
        "a live factory's database was swept"
    );
    assert!(exists(&mut conn, &own).await, "the sweeper dropped its own");

    for (factory, name) in [(&live, &kept), (&next, &own)] {
        factory.drop_later(name);
        factory.flush().await.unwrap();
    }
    assert!(!exists(&mut conn, &kept).await && !exists(&mut conn, &own).await);
    conn.close().await.unwrap();
}

#[tokio::test]
async fn clones_into_the_scratch_tablespace_when_setup_made_one() {
    let (admin, template) = admin().await;
    let mut conn = admin.connect().await.unwrap();
    let scratch: Option<String> =
        sqlx::query_scalar("select spcname::text from pg_tablespace where spcname = $1")
            .bind(harness::scratch::SCRATCH_TABLESPACE)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
    let factory = DatabaseFactory::start(admin.clone()).unwrap();
    let name = factory.create(&template).await.unwrap();
    assert_eq!(factory.settings().await.unwrap().tablespace, scratch);
    let space: String = sqlx::query_scalar(
        "select t.spcname::text from pg_database d join pg_tablespace t on t.oid = d.dattablespace \
          where d.datname = $1",
    )
    .bind(&name)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(space, scratch.as_deref().unwrap_or("pg_default"));
    // Setup makes one on the servers it runs (docker, local) where /dev/shm exists.
    let state = shared_state().await.unwrap();
    if !matches!(state.server, harness::Server::Url) && std::path::Path::new("/dev/shm").is_dir() {
        assert!(scratch.is_some(), "setup made no scratch tablespace");
    }
    factory.drop_later(&name);
    factory.flush().await.unwrap();
    conn.close().await.unwrap();
}
