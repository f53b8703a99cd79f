//! The schema migrations, applied through refinery in two sets, each with its own history:
//! this project's **base** (`migrations/base/`: InsForge's roles, `requesting_user_id()`), then
//! the **app's own** set — the sample app's `migrations/todos/`, or a team's folder of plain SQL
//! files (what they paste into InsForge's SQL editor). Versions never clash between the sets.
//! Applied files are checksummed: an edited one is refused by name, a failing one stops the run.

use std::path::{Path, PathBuf};

use refinery::{Migration, Runner};

use crate::error::{HarnessError, Result};
use crate::target::PgTarget;

mod embedded_base {
    refinery::embed_migrations!("../../migrations/base");
}

mod embedded_todos {
    refinery::embed_migrations!("../../migrations/todos");
}

/// Where refinery keeps its histories: their own schema, out of PostgREST's `public`, where
/// InsForge's blanket grants would let `anon` rewrite them.
pub const HISTORY_SCHEMA: &str = "insforge_rls";
/// The base set's history.
pub const BASE_HISTORY: &str = "insforge_rls.base_history";
/// The app's (sample or team) set's history.
pub const APP_HISTORY: &str = "insforge_rls.app_history";
/// The single history of setups made before the two sets existed; carried over on first use.
const LEGACY_HISTORY: &str = "insforge_rls.refinery_schema_history";

/// The environment variable naming a team's migrations folder (same as `setup --migrations`).
pub const MIGRATIONS_ENV: &str = "INSFORGE_RLS_MIGRATIONS";

/// One set of migrations with its own history table.
#[derive(Debug, Clone)]
struct MigrationSet {
    /// Folder the files are named from in messages (`migrations/base`, or the team's folder).
    origin: PathBuf,
    history: &'static str,
    list: Vec<Migration>,
}

/// What setup applies: the base set, then the app's own set.
#[derive(Debug, Clone)]
pub struct Migrations {
    base: MigrationSet,
    app: MigrationSet,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// File stems applied now, in order, base first (`V3__todos`).
    pub applied: Vec<String>,
    /// How many were already applied before this run (both sets).
    pub already_applied: usize,
}

impl Migrations {
    /// The base and the sample app's `todos` set, as they were when this crate was built.
    pub fn embedded() -> Self {
        Self {
            base: Self::base(),
            app: MigrationSet {
                origin: PathBuf::from("migrations/todos"),
                history: APP_HISTORY,
                list: embedded_todos::migrations::runner()
                    .get_migrations()
                    .clone(),
            },
        }
    }

    fn base() -> MigrationSet {
        MigrationSet {
            origin: PathBuf::from("migrations/base"),
            history: BASE_HISTORY,
            list: embedded_base::migrations::runner().get_migrations().clone(),
        }
    }

    /// The base, then a team's own `V{n}__name.sql` files read from `dir` at run time.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(HarnessError::Migrations(format!(
                "{} is not a folder of migrations — give the folder that holds your \
                 V1__name.sql, V2__name.sql, … files",
                dir.display()
            )));
        }
        let list = refinery::load_sql_migrations(dir)
            .map_err(|e| HarnessError::Migrations(format!("cannot load {}: {e}", dir.display())))?;
        if list.is_empty() {
            return Err(HarnessError::Migrations(format!(
                "no V{{n}}__name.sql files in {} — name your migrations V1__create_notes.sql, \
                 V2__…, as refinery (and this tool) expects",
                dir.display()
            )));
        }
        Ok(Self {
            base: Self::base(),
            app: MigrationSet {
                origin: dir.to_path_buf(),
                history: APP_HISTORY,
                list,
            },
        })
    }

    /// The team's folder from `INSFORGE_RLS_MIGRATIONS` (relative to `root`), else the embedded
    /// sample set.
    pub fn from_env(root: &Path) -> Result<Self> {
        match std::env::var_os(MIGRATIONS_ENV) {
            Some(dir) if !dir.is_empty() => Self::from_dir(&root.join(dir)),
            _ => Ok(Self::embedded()),
        }
    }

    /// The app set's folder (`migrations/todos` for the sample).
    pub fn app_origin(&self) -> &Path {
        &self.app.origin
    }

    /// Every file stem, base first, each set in version order.
    pub fn names(&self) -> Vec<String> {
        [&self.base, &self.app]
            .into_iter()
            .flat_map(|set| {
                let mut list = set.list.clone();
                list.sort();
                list.into_iter().map(|m| m.to_string())
            })
            .collect()
    }

    /// Applies what is new, the base then the app's set, each file in its own transaction,
    /// serialized against concurrent runs by an advisory lock.
    pub async fn apply(&self, target: &PgTarget) -> Result<MigrationReport> {
        let mut client = connect(target).await?;
        let lock = "select pg_advisory_lock(hashtext('insforge-rls migrations'))";
        client
            .batch_execute(&format!(
                "{lock}; create schema if not exists {HISTORY_SCHEMA}; \
                 revoke all on schema {HISTORY_SCHEMA} from public"
            ))
            .await
            .map_err(|e| HarnessError::Migrations(pg_reason(&e)))?;
        let mut outcome = carry_over_legacy_history(&mut client, &self.base).await;
        let mut report = MigrationReport::default();
        for set in [&self.base, &self.app] {
            if outcome.is_err() {
                break;
            }
            outcome = set.apply(&mut client).await.map(|r| {
                report.applied.extend(r.applied);
                report.already_applied += r.already_applied;
            });
        }
        // Session-level lock: released explicitly, and in any case when the client drops.
        let _ = client
            .batch_execute("select pg_advisory_unlock_all()")
            .await;
        outcome.map(|()| report)
    }
}

impl MigrationSet {
    async fn apply(&self, client: &mut tokio_postgres::Client) -> Result<MigrationReport> {
        let mut runner = Runner::new(&self.list)
            .set_grouped(false)
            .set_abort_divergent(true)
            .set_abort_missing(true);
        runner.set_migration_table_name(self.history);
        // The history table appears with the first run.
        let applied_before = if table_exists(client, self.history).await? {
            runner
                .get_applied_migrations_async(client)
                .await
                .map_err(|e| HarnessError::Migrations(e.to_string()))?
        } else {
            Vec::new()
        };
        let mut pending: Vec<&Migration> = self
            .list
            .iter()
            .filter(|m| !applied_before.iter().any(|a| a.version() == m.version()))
            .collect();
        pending.sort();
        match runner.run_async(client).await {
            Ok(report) => Ok(MigrationReport {
                applied: report
                    .applied_migrations()
                    .iter()
                    .map(|m| m.to_string())
                    .collect(),
                already_applied: applied_before.len(),
            }),
            Err(e) => Err(map_refinery_error(&e, &pending, &self.origin)),
        }
    }
}

async fn table_exists(client: &tokio_postgres::Client, table: &str) -> Result<bool> {
    client
        .query_one("select to_regclass($1) is not null", &[&table])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| HarnessError::Migrations(pg_reason(&e)))
}

/// A database set up before the two sets existed has one history for everything: its base
/// rows move to the base history and the rest (the sample's `V3__todos`) to the app's, with the
/// same versions and checksums, so nothing is applied twice. Runs once, in one transaction.
async fn carry_over_legacy_history(
    client: &mut tokio_postgres::Client,
    base: &MigrationSet,
) -> Result<()> {
    if !table_exists(client, LEGACY_HISTORY).await?
        || table_exists(client, BASE_HISTORY).await?
        || table_exists(client, APP_HISTORY).await?
    {
        return Ok(());
    }
    let base_versions: Vec<i32> = base.list.iter().map(|m| m.version()).collect();
    let tx = client
        .transaction()
        .await
        .map_err(|e| HarnessError::Migrations(pg_reason(&e)))?;
    for (table, keep) in [(BASE_HISTORY, "= any($1)"), (APP_HISTORY, "<> all($1)")] {
        let sql = format!(
            "create table {table} (like {LEGACY_HISTORY} including all); \
             insert into {table} select * from {LEGACY_HISTORY} where version {keep}"
        );
        // Two statements: the DDL in simple protocol, the copy with the bound versions.
        let (ddl, copy) = sql.split_once("; ").unwrap_or((&sql, ""));
        tx.batch_execute(ddl)
            .await
            .and(tx.execute(copy, &[&base_versions]).await.map(|_| ()))
            .map_err(|e| HarnessError::Migrations(pg_reason(&e)))?;
    }
    tx.batch_execute(&format!("drop table {LEGACY_HISTORY}"))
        .await
        .map_err(|e| HarnessError::Migrations(pg_reason(&e)))?;
    tx.commit()
        .await
        .map_err(|e| HarnessError::Migrations(pg_reason(&e)))?;
    tracing::info!("carried the single migration history over to the base and app histories");
    Ok(())
}

fn map_refinery_error(e: &refinery::Error, pending: &[&Migration], origin: &Path) -> HarnessError {
    use refinery::error::Kind;
    let file = |m: &Migration| origin.join(format!("{m}.sql")).display().to_string();
    match e.kind() {
        Kind::DivergentVersion(_, on_disk) => HarnessError::MigrationChanged {
            file: file(on_disk),
        },
        Kind::MissingVersion(applied) => HarnessError::MigrationMissing {
            file: file(applied),
        },
        Kind::Connection(_, source) => {
            let done = e.report().map_or(0, |r| r.applied_migrations().len());
            let reason = source
                .downcast_ref::<tokio_postgres::Error>()
                .map_or_else(|| source.to_string(), pg_reason);
            match pending.get(done) {
                Some(m) => HarnessError::MigrationFailed {
                    file: file(m),
                    reason,
                },
                None => HarnessError::Migrations(reason),
            }
        }
        other => HarnessError::Migrations(other.to_string()),
    }
}

/// The server's message, code and position (when it gave one), without driver noise.
fn pg_reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(tokio_postgres::error::ErrorPosition::Original(pos)) = db.position() {
                s.push_str(&format!(" at character {pos}"));
            }
            s
        }
        None => e.to_string(),
    }
}

/// TLS as the target's URL asks (see [`PgTarget::connect_tokio_postgres`]).
async fn connect(target: &PgTarget) -> Result<tokio_postgres::Client> {
    target.connect_tokio_postgres("insforge-rls-migrate").await
}
