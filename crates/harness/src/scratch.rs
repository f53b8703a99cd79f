//! A tablespace in memory for per-test databases, on the servers setup runs (docker, local).
//!
//! `CREATE DATABASE` creates and opens some 300 files per clone; on a busy or slow disk those
//! metadata operations, not the copying, decide how long a test waits (measured here: 55–165 ms
//! per clone on disk, 11–19 ms into `/dev/shm`). Test databases are thrown away within seconds,
//! so they need no durability: setup puts a tablespace on the server's `/dev/shm` and the
//! factory clones into it. The template, the app database and the migrations stay on disk.
//!
//! The server creates the directory itself (`COPY … TO PROGRAM 'mkdir …'`, as the database's OS
//! user, which must own it), so the same SQL serves a local cluster and a container. Memory is
//! lost on reboot or container restart: setup finds the directory gone and makes it again.
//! Without a usable `/dev/shm` there is no scratch tablespace and clones stay on disk.

use std::path::{Path, PathBuf};

use sqlx::Connection;

use crate::error::{HarnessError, Result};
use crate::target::{PgTarget, quote_ident};

/// The tablespace per-test databases are cloned into, when setup made one.
pub const SCRATCH_TABLESPACE: &str = "insforge_rls_scratch";

/// Where a local cluster's scratch tablespace lives: one folder per state folder.
pub fn local_location(state_root: &Path) -> PathBuf {
    let root = state_root
        .canonicalize()
        .unwrap_or_else(|_| state_root.to_path_buf());
    PathBuf::from(format!(
        "/dev/shm/insforge-rls-{:016x}",
        fnv1a(root.to_string_lossy().as_bytes())
    ))
}

/// Inside a container (its own `/dev/shm`).
pub const CONTAINER_LOCATION: &str = "/dev/shm/insforge-rls-scratch";

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Makes sure the scratch tablespace exists at `location` and its directory is there (again,
/// after a reboot). Returns the location, or `None` when the server has no `/dev/shm`.
pub async fn ensure(admin: &PgTarget, location: &Path) -> Result<Option<PathBuf>> {
    let location_text = location
        .to_str()
        .filter(|l| l.starts_with("/dev/shm/") && is_plain(l))
        .ok_or_else(|| HarnessError::ScratchPath {
            path: location.to_path_buf(),
            problem: "is not a plain /dev/shm path",
        })?;
    let mut conn = admin.connect().await?;
    let result = ensure_on(&mut conn, location_text).await;
    conn.close().await.ok();
    result.map(|made| made.then(|| location.to_path_buf()))
}

async fn ensure_on(conn: &mut sqlx::PgConnection, location: &str) -> Result<bool> {
    let err = |what: &'static str| HarnessError::sql(format!("scratch tablespace: {what}"));
    let shm: bool =
        sqlx::query_scalar("select coalesce((pg_stat_file('/dev/shm', true)).isdir, false)")
            .fetch_one(&mut *conn)
            .await
            .map_err(err("look for /dev/shm"))?;
    let existing: Option<String> = sqlx::query_scalar(
        "select pg_tablespace_location(oid) from pg_tablespace where spcname = $1",
    )
    .bind(SCRATCH_TABLESPACE)
    .fetch_optional(&mut *conn)
    .await
    .map_err(err("look it up"))?;
    if !shm && existing.is_none() {
        return Ok(false);
    }
    // The folder Postgres keeps inside a tablespace: PG_<major>_<catalog version>.
    let version_dir: String = sqlx::query_scalar(
        "select 'PG_' || (current_setting('server_version_num')::int / 10000) || '_' \
                || catalog_version_no from pg_control_system()",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(err("read the catalog version"))?;
    match existing {
        Some(at) => {
            let present: bool =
                sqlx::query_scalar("select coalesce((pg_stat_file($1, true)).isdir, false)")
                    .bind(format!("{at}/{version_dir}"))
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(err("check its folder"))?;
            if !present {
                // Memory was cleared (reboot, container restart). Databases that lived there
                // are gone with it; recreate the folders so new clones work again.
                mkdir_on_server(conn, &format!("{at}/{version_dir}")).await?;
                tracing::info!(location = %at, "scratch tablespace folder recreated");
            }
            Ok(true)
        }
        None => {
            // The name is ours; anything there is left from a server that was deleted
            // without teardown, and CREATE TABLESPACE wants an empty folder.
            run_on_server(conn, "rm -rf", location).await?;
            mkdir_on_server(conn, location).await?;
            let sql = format!(
                "create tablespace {} location '{location}'",
                quote_ident(SCRATCH_TABLESPACE)
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
                .map_err(err("create it"))?;
            Ok(true)
        }
    }
}

/// `mkdir -p` run by the server as its own OS user (so the folder is the server's).
async fn mkdir_on_server(conn: &mut sqlx::PgConnection, path: &str) -> Result<()> {
    run_on_server(conn, "mkdir -p -m 700", path).await
}

/// Letters, digits, `/`, `-` and `_` only: safe inside an SQL literal and a shell command.
fn is_plain(path: &str) -> bool {
    path.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-_".contains(c))
}

/// `command path` in a shell run by the server as its own OS user.
async fn run_on_server(conn: &mut sqlx::PgConnection, command: &str, path: &str) -> Result<()> {
    // Also a location read back from the catalog: checked here, where it meets the shell.
    if !is_plain(path) {
        return Err(HarnessError::ScratchPath {
            path: path.into(),
            problem: "has unexpected characters",
        });
    }
    let sql = format!("copy (select 1) to program '{command} {path}'");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(HarnessError::sql(format!(
            "scratch tablespace: {command} {path}"
        )))?;
    Ok(())
}

/// Removes a local scratch folder (teardown); a missing one is fine.
pub fn remove_local(location: &Path) -> Result<()> {
    match std::fs::remove_dir_all(location) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(HarnessError::io(
            "cannot remove the scratch tablespace folder",
            location,
        )(e)),
    }
}
