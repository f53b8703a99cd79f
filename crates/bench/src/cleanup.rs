//! Everything the benchmarks create is registered here the moment it exists and removed at
//! the end — also after an error or Ctrl-C — so a run leaves no database or server behind.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use harness::target::quote_ident;
use harness::{PgTarget, StateDir};
use sqlx::Connection as _;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// A database on the developer's server, dropped with `(force)`.
    Database { admin: PgTarget, name: String },
    /// A throwaway state folder whose server `harness::teardown` removes, then the folder.
    Server(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct Cleanup(Arc<Mutex<Vec<Item>>>);

impl Cleanup {
    fn items(&self) -> std::sync::MutexGuard<'_, Vec<Item>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn database(&self, admin: &PgTarget, name: &str) {
        self.items().push(Item::Database {
            admin: admin.clone(),
            name: name.to_owned(),
        });
    }

    pub fn server(&self, state_dir: &std::path::Path) {
        self.items().push(Item::Server(state_dir.to_owned()));
    }

    fn forget(&self, item: &Item) {
        self.items().retain(|i| i != item);
    }

    /// A registered database that is gone already.
    pub fn forget_database(&self, admin: &PgTarget, name: &str) {
        self.forget(&Item::Database {
            admin: admin.clone(),
            name: name.to_owned(),
        });
    }

    /// Drops a registered database now.
    pub async fn drop_database(&self, admin: &PgTarget, name: &str) -> anyhow::Result<()> {
        drop_database(admin, name).await?;
        self.forget(&Item::Database {
            admin: admin.clone(),
            name: name.to_owned(),
        });
        Ok(())
    }

    /// Tears down a registered throwaway server now and deletes its folder.
    pub async fn remove_server(&self, state_dir: &std::path::Path) -> anyhow::Result<()> {
        remove_server(state_dir).await?;
        self.forget(&Item::Server(state_dir.to_owned()));
        Ok(())
    }

    /// Removes whatever is still registered, newest first; failures are logged, not fatal.
    pub async fn run(&self) {
        let items: Vec<Item> = std::mem::take(&mut *self.items());
        for item in items.into_iter().rev() {
            let result = match &item {
                Item::Database { admin, name } => drop_database(admin, name).await,
                Item::Server(dir) => remove_server(dir).await,
            };
            if let Err(e) = result {
                tracing::warn!(?item, error = %format!("{e:#}"), "bench cleanup failed");
                eprintln!("warning: could not clean up after the benchmark: {e:#}");
            }
        }
    }
}

pub async fn drop_database(admin: &PgTarget, name: &str) -> anyhow::Result<()> {
    let mut conn = admin.connect().await?;
    let sql = format!("drop database if exists {} with (force)", quote_ident(name));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await?;
    conn.close().await.ok();
    Ok(())
}

async fn remove_server(dir: &std::path::Path) -> anyhow::Result<()> {
    let state_dir = StateDir::at(dir);
    if state_dir.load()?.is_some() {
        harness::teardown(&state_dir).await?;
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
