//! Per-test databases on one long-lived admin connection.
//!
//! A test waits only for its `CREATE DATABASE … TEMPLATE`: the factory keeps one superuser
//! connection open for the whole process (no connect per clone), and a dropped database is
//! removed in the background on that connection while the next test runs.
//!
//! The connection lives on a thread of its own with its own runtime: each `#[tokio::test]` has
//! a runtime that ends with the test, and a socket opened on one runtime dies with it.
//!
//! Nothing is lost when the process exits before its last drops ran. Every database carries
//! the factory's owner id (`rls_test_<owner>_<random>`), and the factory's session holds a
//! Postgres advisory lock on that id for as long as the process lives. The next factory to
//! connect drops the databases of owners whose lock is free — a process that has exited —
//! and never those of a live test process, even one on another machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use tokio::sync::{mpsc, oneshot};

use crate::error::{HarnessError, Result};
use crate::target::{PgTarget, quote_ident};

/// First half of the advisory lock key every factory takes (the owner id is the second).
const LOCK_CLASS: i32 = 0x5253_4c54; // "RSLT"

/// The prefix of every database a factory makes.
pub const TEST_DATABASE_PREFIX: &str = "rls_test_";

/// How a template is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloneStrategy {
    /// PostgreSQL's default since 15: copy block by block through the WAL.
    WalLog,
    /// Copy the files after a checkpoint: faster for a small template when the server runs
    /// with `fsync=off` (a test server), slower on a production-like one.
    FileCopy,
    /// Before PostgreSQL 15 there is no choice (and no STRATEGY clause).
    ServerDefault,
}

impl CloneStrategy {
    /// The `STRATEGY` clause for `CREATE DATABASE` (empty before PostgreSQL 15).
    pub fn clause(self) -> &'static str {
        match self {
            CloneStrategy::WalLog => " strategy wal_log",
            CloneStrategy::FileCopy => " strategy file_copy",
            CloneStrategy::ServerDefault => "",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            CloneStrategy::WalLog => "WAL_LOG",
            CloneStrategy::FileCopy => "FILE_COPY",
            CloneStrategy::ServerDefault => "server default",
        }
    }
}

enum Job {
    Create {
        template: String,
        reply: oneshot::Sender<Result<String>>,
    },
    Drop {
        name: String,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
    Settings {
        reply: oneshot::Sender<Result<CloneSettings>>,
    },
}

/// How a factory clones on its server (it connects to find out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneSettings {
    pub strategy: CloneStrategy,
    /// The in-memory tablespace setup made (see [`crate::scratch`]); `None`: the default, on
    /// disk.
    pub tablespace: Option<String>,
}

/// Clones and drops databases on one server for the life of the process (or of the value).
#[derive(Debug, Clone)]
pub struct DatabaseFactory {
    jobs: mpsc::UnboundedSender<Job>,
    alive: Arc<AtomicBool>,
}

impl DatabaseFactory {
    /// Starts the factory's thread. It connects as `admin` on first use; when every clone of
    /// the value is gone it finishes the queued drops and stops.
    pub fn start(admin: PgTarget) -> Result<Self> {
        let (jobs, queue) = mpsc::unbounded_channel();
        let alive = Arc::new(AtomicBool::new(true));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| HarnessError::Spawn {
                what: "the test database factory's runtime",
                source,
            })?;
        let flag = alive.clone();
        std::thread::Builder::new()
            .name("harness-database-factory".into())
            .spawn(move || {
                runtime.block_on(Worker::new(admin).run(queue));
                flag.store(false, Ordering::SeqCst);
            })
            .map_err(|source| HarnessError::Spawn {
                what: "the test database factory's thread",
                source,
            })?;
        Ok(Self { jobs, alive })
    }

    /// Clones `template` into a new database and returns its name.
    pub async fn create(&self, template: &str) -> Result<String> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Create {
            template: template.to_owned(),
            reply,
        })?;
        answer.await.map_err(|_| gone())?
    }

    /// Queues `name` to be dropped (forcefully) and returns at once.
    pub fn drop_later(&self, name: &str) {
        // A factory that is gone has nothing left to run it on; the next one sweeps it.
        let _ = self.send(Job::Drop { name: name.into() });
    }

    /// Waits until every drop queued before this call has run.
    pub async fn flush(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Flush { reply })?;
        answer.await.map_err(|_| gone())
    }

    /// The strategy and tablespace this factory clones with (it connects to find out).
    pub async fn settings(&self) -> Result<CloneSettings> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Settings { reply })?;
        answer.await.map_err(|_| gone())?
    }

    fn send(&self, job: Job) -> Result<()> {
        if !self.alive.load(Ordering::SeqCst) {
            return Err(gone());
        }
        self.jobs.send(job).map_err(|_| gone())
    }
}

fn gone() -> HarnessError {
    HarnessError::FactoryStopped
}

struct Session {
    conn: PgConnection,
    strategy: CloneStrategy,
    /// The in-memory tablespace setup made (see [`crate::scratch`]), while it works.
    tablespace: Option<String>,
}

impl Session {
    fn settings(&self) -> CloneSettings {
        CloneSettings {
            strategy: self.strategy,
            tablespace: self.tablespace.clone(),
        }
    }
}

struct Worker {
    admin: PgTarget,
    owner: u32,
    session: Option<Session>,
    swept: bool,
}

impl Worker {
    fn new(admin: PgTarget) -> Self {
        Self {
            admin,
            owner: rand::random(),
            session: None,
            swept: false,
        }
    }

    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = queue.recv().await {
            match job {
                Job::Create { template, reply } => {
                    let made = self.create(&template).await;
                    let _ = reply.send(made);
                    // Orphans are swept after the first answer, so no test waits for them.
                    if !self.swept && self.session.is_some() {
                        self.swept = true;
                        self.sweep().await;
                    }
                }
                Job::Drop { name } => self.drop_database(&name).await,
                Job::Flush { reply } => {
                    let _ = reply.send(());
                }
                Job::Settings { reply } => {
                    let settings = self.session().await.map(|s| s.settings());
                    let _ = reply.send(settings);
                }
            }
        }
        if let Some(session) = self.session.take() {
            session.conn.close().await.ok();
        }
    }

    /// The open session, (re)connecting and taking the owner lock first when there is none.
    async fn session(&mut self) -> Result<&mut Session> {
        let session = if let Some(session) = self.session.take() {
            session
        } else {
            let mut conn = self.admin.connect().await?;
            let owner_key = i32::from_ne_bytes(self.owner.to_ne_bytes());
            let (locked, version, fsync, tablespace): (bool, i32, String, Option<String>) =
                sqlx::query_as(
                    "select pg_try_advisory_lock($1, $2), \
                            current_setting('server_version_num')::int, \
                            current_setting('fsync'), \
                            (select spcname::text from pg_tablespace where spcname = $3)",
                )
                .bind(LOCK_CLASS)
                .bind(owner_key)
                .bind(crate::scratch::SCRATCH_TABLESPACE)
                .fetch_one(&mut conn)
                .await
                .map_err(HarnessError::sql(
                    "cannot take the test database owner lock",
                ))?;
            if !locked {
                // Another live process drew the same id: take a new one.
                self.owner = rand::random();
                conn.close().await.ok();
                return Err(HarnessError::OwnerIdInUse);
            }
            let strategy = if version < 150_000 {
                CloneStrategy::ServerDefault
            } else if fsync == "off" {
                CloneStrategy::FileCopy
            } else {
                CloneStrategy::WalLog
            };
            tracing::debug!(
                strategy = strategy.name(),
                tablespace = tablespace.as_deref().unwrap_or("default"),
                "test database factory connected"
            );
            Session {
                conn,
                strategy,
                tablespace,
            }
        };
        Ok(self.session.insert(session))
    }

    async fn create(&mut self, template: &str) -> Result<String> {
        let mut last = None;
        // One retry on a fresh session: a server restart or an idle timeout breaks the old one.
        for _ in 0..2 {
            let name = format!(
                "{TEST_DATABASE_PREFIX}{:08x}_{}",
                self.owner,
                crate::random_lower(8)
            );
            let session = match self.session().await {
                Ok(s) => s,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let sql = format!(
                "create database {} template {}{}",
                quote_ident(&name),
                quote_ident(template),
                session.strategy.clause()
            );
            let attempt = match session.tablespace.clone() {
                Some(space) => {
                    let in_memory = format!("{sql} tablespace {}", quote_ident(&space));
                    match create_retrying(&mut session.conn, &in_memory).await {
                        // Its folder gone (reboot) or full: disk for the rest of this process.
                        Err(sqlx::Error::Database(e)) => {
                            tracing::warn!(
                                tablespace = %space,
                                error = %e,
                                "cannot clone into the scratch tablespace; using disk (run \
                                 `cargo xtask setup` to repair it)"
                            );
                            session.tablespace = None;
                            create_retrying(&mut session.conn, &sql).await
                        }
                        other => other,
                    }
                }
                None => create_retrying(&mut session.conn, &sql).await,
            };
            match attempt {
                Ok(()) => return Ok(name),
                Err(e) => {
                    let broken = !matches!(&e, sqlx::Error::Database(_));
                    let err = HarnessError::sql(format!("cannot clone {template} into {name}"))(e);
                    if !broken {
                        return Err(err);
                    }
                    self.session = None;
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(gone))
    }

    async fn drop_database(&mut self, name: &str) {
        let sql = drop_sql(name);
        let result = match self.session().await {
            Ok(session) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut session.conn)
                .await
                .map(drop),
            Err(e) => {
                tracing::warn!(database = %name, error = %e, "could not drop test database");
                return;
            }
        };
        if let Err(error) = result {
            if !matches!(&error, sqlx::Error::Database(_)) {
                self.session = None;
            }
            // The next factory's sweep removes it once this process has exited.
            tracing::warn!(database = %name, %error, "could not drop test database");
        }
    }

    async fn sweep(&mut self) {
        let owner = self.owner;
        let Ok(session) = self.session().await else {
            return;
        };
        match sweep_orphans(&mut session.conn, Some(owner)).await {
            Ok(0) => {}
            Ok(dropped) => {
                tracing::info!(
                    dropped,
                    "dropped test databases left by exited test processes"
                );
            }
            Err(e) => tracing::warn!(error = %e, "could not sweep old test databases"),
        }
    }
}

/// Drops the test databases whose factory's process has exited (its owner lock is free),
/// except `mine`'s; returns how many it dropped. Databases of live test processes, on this
/// machine or another, are left alone.
pub async fn sweep_orphans(conn: &mut PgConnection, mine: Option<u32>) -> Result<usize> {
    let pattern = format!("^{TEST_DATABASE_PREFIX}([0-9a-f]{{8}})_[a-z0-9]+$");
    let found: Vec<(String, String)> = sqlx::query_as(
        "select datname::text, (regexp_match(datname, $1))[1] \
           from pg_database where datname ~ $1 order by 1",
    )
    .bind(&pattern)
    .fetch_all(&mut *conn)
    .await
    .map_err(HarnessError::sql("cannot list test databases"))?;
    let mine = mine.map(|m| format!("{m:08x}"));
    let mut owners: Vec<&str> = found
        .iter()
        .map(|(_, o)| o.as_str())
        .filter(|o| mine.as_deref() != Some(*o))
        .collect();
    owners.dedup();
    let mut dropped = 0usize;
    for owner in owners {
        let Ok(id) = u32::from_str_radix(owner, 16) else {
            continue;
        };
        let key = i32::from_ne_bytes(id.to_ne_bytes());
        let free: bool = sqlx::query_scalar("select pg_try_advisory_lock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(key)
            .fetch_one(&mut *conn)
            .await
            .map_err(HarnessError::sql("cannot check a test database owner"))?;
        if !free {
            continue;
        }
        for (name, _) in found.iter().filter(|(_, o)| o == owner) {
            let sql = drop_sql(name);
            match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
            {
                Ok(_) => dropped += 1,
                Err(e) => {
                    tracing::warn!(database = %name, error = %e, "could not drop old test database")
                }
            }
        }
        sqlx::query("select pg_advisory_unlock($1, $2)")
            .bind(LOCK_CLASS)
            .bind(key)
            .execute(&mut *conn)
            .await
            .map_err(HarnessError::sql("cannot release a test database owner"))?;
    }
    Ok(dropped)
}

/// A forced `DROP DATABASE` of `name` (its open connections are terminated).
fn drop_sql(name: &str) -> String {
    format!("drop database if exists {} with (force)", quote_ident(name))
}

/// Runs `CREATE DATABASE`, retrying while something still holds the template open.
pub(crate) async fn create_retrying(
    conn: &mut PgConnection,
    sql: &str,
) -> std::result::Result<(), sqlx::Error> {
    let started = Instant::now();
    loop {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *conn)
            .await
        {
            Ok(_) => return Ok(()),
            // 55006: "source database is being accessed by other users" — a just-closed
            // connection may take a moment to go away.
            Err(sqlx::Error::Database(db))
                if db.code().as_deref() == Some("55006")
                    && started.elapsed() < Duration::from_secs(10) =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
