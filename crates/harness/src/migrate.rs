//! The schema migrations (`migrations/V{n}__name.sql`), applied through refinery.
//! Applied files are checksummed: an edited one is refused by name, a failing one stops the run.

use std::path::Path;

use refinery::{Migration, Runner};

use crate::error::{HarnessError, Result};
use crate::target::PgTarget;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// Where refinery keeps its history: its own schema, out of PostgREST's `public`, where
/// InsForge's blanket grants would let `anon` rewrite it.
pub const HISTORY_SCHEMA: &str = "insforge_rls";
const HISTORY_TABLE: &str = "insforge_rls.refinery_schema_history";

/// A set of migrations: the ones built into this binary, or a folder read at run time.
#[derive(Debug, Clone)]
pub struct Migrations {
    list: Vec<Migration>,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// File stems applied now, in order (`V3__todos`).
    pub applied: Vec<String>,
    /// How many were already applied before this run.
    pub already_applied: usize,
}

impl Migrations {
    /// The repository's `migrations/` as they were when this crate was built.
    pub fn embedded() -> Self {
        Self {
            list: embedded::migrations::runner().get_migrations().clone(),
        }
    }

    /// Reads `V{n}__name.sql` files from a folder (for `migrate --dir` and fault tests).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let list = refinery::load_sql_migrations(dir)
            .map_err(|e| HarnessError::Migrations(format!("cannot load {}: {e}", dir.display())))?;
        if list.is_empty() {
            return Err(HarnessError::Migrations(format!(
                "no V{{n}}__name.sql files in {}",
                dir.display()
            )));
        }
        Ok(Self { list })
    }

    pub fn names(&self) -> Vec<String> {
        let mut list = self.list.clone();
        list.sort();
        list.iter().map(|m| m.to_string()).collect()
    }

    /// Applies what is new, each file in its own transaction, serialized against concurrent
    /// runs by an advisory lock.
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

        let mut runner = Runner::new(&self.list)
            .set_grouped(false)
            .set_abort_divergent(true)
            .set_abort_missing(true);
        runner.set_migration_table_name(HISTORY_TABLE);
        // The history table appears with the first run.
        let has_history: bool = client
            .query_one(
                &format!("select to_regclass('{HISTORY_TABLE}') is not null"),
                &[],
            )
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| HarnessError::Migrations(pg_reason(&e)))?;
        let applied_before = if has_history {
            runner
                .get_applied_migrations_async(&mut client)
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

        let outcome = runner.run_async(&mut client).await;
        // Session-level lock: released explicitly, and in any case when the client drops.
        let _ = client
            .batch_execute("select pg_advisory_unlock_all()")
            .await;
        match outcome {
            Ok(report) => Ok(MigrationReport {
                applied: report
                    .applied_migrations()
                    .iter()
                    .map(|m| m.to_string())
                    .collect(),
                already_applied: applied_before.len(),
            }),
            Err(e) => Err(map_refinery_error(&e, &pending)),
        }
    }
}

fn map_refinery_error(e: &refinery::Error, pending: &[&Migration]) -> HarnessError {
    use refinery::error::Kind;
    let file = |m: &Migration| format!("migrations/{m}.sql");
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
