//! Reads the exposed schema from the catalog into a [`Schema`] snapshot and keeps it current,
//! the way PostgREST keeps its schema cache: re-read on `NOTIFY pgrst, 'reload schema'` (or an
//! empty payload) and on SIGUSR1, never per request.
//!
//! The snapshot is immutable and swapped whole ([`SchemaCache`]): a request holds the `Arc` it
//! started with, so a reload never changes a request in flight. The listener has a connection of
//! its own (not one of the request pool's) and reconnects with a bounded backoff; after every
//! (re)connection it reloads, since notifications sent while it was away are lost — PostgREST's
//! `src/PostgREST/Listener.hs` (v12.2.12) does the same. While Postgres is down there is no
//! snapshot: a request then tries one load itself and answers 503 if it fails.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sqlx::PgExecutor;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{Mutex, watch};

use crate::db::DbError;
use crate::schema::{
    Column, ForeignKey, Relation, RelationKind, Returns, Routine, RoutineParam, Schema, Volatility,
};

/// PostgREST's default `db-channel`.
pub const CHANNEL: &str = "pgrst";
/// The payload that asks for a schema reload (an empty payload does too).
pub const RELOAD_PAYLOAD: &str = "reload schema";

const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(8);

/// Every table, partitioned table, foreign table, view and materialized view of one schema
/// (partitions are served through their parent, as PostgREST does), each with its columns in
/// order (`format_type` gives a type that is valid SQL after `::`) and its primary key. One
/// round trip. Privileges are not filtered: PostgREST 12 does not either, and Postgres answers
/// 42501 for a relation the role may not use.
const INTROSPECT: &str = r#"
select r.name, r.is_view, r.column_names, r.column_types, r.primary_key, f.routines,
       fk.foreign_keys
  from (
        -- Foreign keys between relations of the schema, for embedding (PostgREST's
        -- `allM2OandO2ORels`, `SchemaCache.hs`): columns in key order on both sides.
        select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
                 'name', con.conname::text,
                 'child', cc.relname::text,
                 'child_cols', (select pg_catalog.array_agg(a.attname::text order by k.ord)
                                  from unnest(con.conkey) with ordinality as k(attnum, ord)
                                  join pg_catalog.pg_attribute a
                                    on a.attrelid = con.conrelid and a.attnum = k.attnum),
                 'parent', pc.relname::text,
                 'parent_cols', (select pg_catalog.array_agg(a.attname::text order by k.ord)
                                   from unnest(con.confkey) with ordinality as k(attnum, ord)
                                   join pg_catalog.pg_attribute a
                                     on a.attrelid = con.confrelid and a.attnum = k.attnum)
               ) order by con.conname, cc.relname), '[]')::text as foreign_keys
          from pg_catalog.pg_constraint con
          join pg_catalog.pg_class cc on cc.oid = con.conrelid
          join pg_catalog.pg_namespace cn on cn.oid = cc.relnamespace
          join pg_catalog.pg_class pc on pc.oid = con.confrelid
          join pg_catalog.pg_namespace pcn on pcn.oid = pc.relnamespace
         where con.contype = 'f' and cn.nspname = $1 and pcn.nspname = $1
       ) fk
  cross join (
        -- The functions of the schema for `/rpc` (PostgREST's `allFunctions`/`funcsSqlQuery`,
        -- `src/PostgREST/SchemaCache.hs`): plain functions only (no procedures, aggregates or
        -- window functions), every argument with its name ('' when unnamed), `format_type`
        -- and mode; `pronargdefaults` says how many trailing inputs have defaults. As there:
        -- no trigger functions; `character`/`bit` parameters read as their `varying` forms
        -- (a value is not cut to one character); OUT/INOUT/TABLE columns make the result
        -- composite.
        select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
                 'name', p.proname::text,
                 'volatility', p.provolatile::text,
                 'returns_set', p.proretset,
                 'returns_void', p.prorettype = 'pg_catalog.void'::pg_catalog.regtype,
                 'returns_composite', t.typtype = 'c'
                      or coalesce(p.proargmodes::text[] && '{t,b,o}', false),
                 'defaults', p.pronargdefaults,
                 'args', (select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(
                                   'name', coalesce(p.proargnames[a.n], ''),
                                   'type', case a.t
                                             when 'pg_catalog.bpchar'::pg_catalog.regtype then 'character varying'
                                             when 'pg_catalog.bpchar[]'::pg_catalog.regtype then 'character varying[]'
                                             when 'pg_catalog.bit'::pg_catalog.regtype then 'bit varying'
                                             when 'pg_catalog.bit[]'::pg_catalog.regtype then 'bit varying[]'
                                             else pg_catalog.format_type(a.t, null) end,
                                   'mode', coalesce(p.proargmodes[a.n]::text, 'i')) order by a.n), '[]')
                            from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]))
                                 with ordinality as a(t, n))
               ) order by p.proname, p.oid), '[]')::text as routines
          from pg_catalog.pg_proc p
          join pg_catalog.pg_namespace pn on pn.oid = p.pronamespace
          join pg_catalog.pg_type t on t.oid = p.prorettype
         where pn.nspname = $1 and p.prokind = 'f'
           and p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype
       ) f
  left join lateral (
select c.relname::text as name,
       c.relkind in ('v', 'm') as is_view,
       coalesce(cols.names, '{}') as column_names,
       coalesce(cols.types, '{}') as column_types,
       coalesce(pk.names, '{}') as primary_key
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  left join lateral (
        select array_agg(a.attname::text order by a.attnum) as names,
               array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) order by a.attnum) as types
          from pg_catalog.pg_attribute a
         where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
       ) cols on true
  left join lateral (
        select array_agg(a.attname::text order by k.ord) as names
          from pg_catalog.pg_constraint con
         cross join lateral unnest(con.conkey) with ordinality as k(attnum, ord)
          join pg_catalog.pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
         where con.conrelid = c.oid and con.contype = 'p'
       ) pk on true
 where n.nspname = $1
   and c.relkind in ('r', 'p', 'f', 'v', 'm')
   and not c.relispartition

       ) r on true
 order by r.name
"#;

/// Why the catalog could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read schema {schema:?} from the catalog")]
pub struct SchemaError {
    pub schema: String,
    #[source]
    pub source: sqlx::Error,
}

impl From<SchemaError> for DbError {
    fn from(error: SchemaError) -> Self {
        error.source.into()
    }
}

/// One row of [`INTROSPECT`]: name, is a view, column names, column types, primary key (all
/// NULL in the one row of a schema without relations), and the functions as JSON (the same in
/// every row).
type CatalogRow = (
    Option<String>,
    Option<bool>,
    Option<Vec<String>>,
    Option<Vec<String>>,
    Option<Vec<String>>,
    String,
    String,
);

/// One foreign key in the `foreign_keys` JSON of [`INTROSPECT`].
#[derive(Debug, serde::Deserialize)]
struct CatalogForeignKey {
    name: String,
    child: String,
    child_cols: Vec<String>,
    parent: String,
    parent_cols: Vec<String>,
}

/// One function in the `routines` JSON of [`INTROSPECT`].
#[derive(Debug, serde::Deserialize)]
struct CatalogRoutine {
    name: String,
    volatility: String,
    returns_set: bool,
    returns_void: bool,
    returns_composite: bool,
    defaults: usize,
    args: Vec<CatalogArg>,
}

#[derive(Debug, serde::Deserialize)]
struct CatalogArg {
    name: String,
    #[serde(rename = "type")]
    sql_type: String,
    mode: String,
}

impl CatalogRoutine {
    /// The function as the snapshot holds it: input parameters only (`i`, `b`, `v`; OUT and
    /// TABLE columns are the result's), the last `defaults` of them optional.
    /// `None` when PostgREST would not list it as callable: more than one unnamed input, or one
    /// whose type is not `bytea`, `json`, `jsonb`, `text` or `xml` (`callable`, `funcsSqlQuery`).
    fn into_routine(self, exposed: &str) -> Option<Routine> {
        let inputs: Vec<CatalogArg> = self
            .args
            .into_iter()
            .filter(|a| matches!(a.mode.as_str(), "i" | "b" | "v"))
            .collect();
        let mut unnamed = inputs.iter().filter(|a| a.name.is_empty());
        match (unnamed.next(), unnamed.next()) {
            (None, _) => {}
            (Some(one), None)
                if matches!(
                    one.sql_type.as_str(),
                    "bytea" | "json" | "jsonb" | "text" | "xml"
                ) => {}
            _ => return None,
        }
        let required = inputs.len().saturating_sub(self.defaults);
        let params = inputs
            .into_iter()
            .enumerate()
            .map(|(i, a)| RoutineParam::new(a.name, a.sql_type, a.mode == "v", i < required))
            .collect();
        let returns = if self.returns_void {
            Returns::Void
        } else if self.returns_composite {
            Returns::Composite {
                set: self.returns_set,
            }
        } else {
            Returns::Scalar {
                set: self.returns_set,
            }
        };
        let volatility = match self.volatility.as_str() {
            "i" => Volatility::Immutable,
            "s" => Volatility::Stable,
            _ => Volatility::Volatile,
        };
        Some(Routine::new(
            exposed, self.name, params, returns, volatility,
        ))
    }
}

/// Reads `exposed` from the catalog, on a pool or a connection (as whatever role it is).
pub async fn introspect<'c>(db: impl PgExecutor<'c>, exposed: &str) -> Result<Schema, SchemaError> {
    let rows: Vec<CatalogRow> = sqlx::query_as(INTROSPECT)
        .bind(exposed)
        .fetch_all(db)
        .await
        .map_err(|source| SchemaError {
            schema: exposed.to_owned(),
            source,
        })?;
    let decode = |e: serde_json::Error| SchemaError {
        schema: exposed.to_owned(),
        source: sqlx::Error::Decode(Box::new(e)),
    };
    let keys_json = rows.first().map_or("[]", |row| row.6.as_str());
    let foreign_keys: Vec<CatalogForeignKey> = serde_json::from_str(keys_json).map_err(decode)?;
    let foreign_keys: Vec<ForeignKey> = foreign_keys
        .into_iter()
        .map(|k| ForeignKey::new(k.name, k.child, k.child_cols, k.parent, k.parent_cols))
        .collect();
    let routines_json = rows.first().map_or("[]", |row| row.5.as_str());
    let routines: Vec<CatalogRoutine> =
        serde_json::from_str(routines_json).map_err(|e| SchemaError {
            schema: exposed.to_owned(),
            source: sqlx::Error::Decode(Box::new(e)),
        })?;
    let routines: Vec<Routine> = routines
        .into_iter()
        .filter_map(|r| r.into_routine(exposed))
        .collect();
    let relations =
        rows.into_iter()
            .filter_map(|(name, is_view, names, types, primary_key, _, _)| {
                let name = name?;
                let columns = names
                    .unwrap_or_default()
                    .into_iter()
                    .zip(types.unwrap_or_default())
                    .map(|(n, t)| Column::new(n, t))
                    .collect();
                let kind = if is_view == Some(true) {
                    RelationKind::View
                } else {
                    RelationKind::Table
                };
                let primary_key = primary_key.unwrap_or_default();
                let pk: Vec<&str> = primary_key.iter().map(String::as_str).collect();
                Some(Relation::new(exposed, name, kind, columns, &pk))
            });
    Ok(Schema::new(exposed, relations)
        .with_routines(routines)
        .with_foreign_keys(foreign_keys))
}

/// What a watcher can see of the cache: how many snapshots have been loaded, and whether the
/// listener is connected (so a `NOTIFY` sent now will be seen).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchemaStatus {
    pub loads: u64,
    pub listening: bool,
}

/// The current snapshot, swapped whole on reload.
#[derive(Debug)]
pub struct SchemaCache {
    exposed: String,
    current: RwLock<Option<Arc<Schema>>>,
    /// One load at a time, so an older read of the catalog never replaces a newer one.
    loading: Mutex<()>,
    status: watch::Sender<SchemaStatus>,
    /// How long a request waits for a first snapshot (behind a load in progress, or its own).
    load_timeout: Duration,
}

impl SchemaCache {
    pub fn new(exposed: impl Into<String>) -> Self {
        Self {
            exposed: exposed.into(),
            current: RwLock::new(None),
            loading: Mutex::new(()),
            status: watch::Sender::new(SchemaStatus::default()),
            load_timeout: Duration::from_secs(5),
        }
    }

    /// Bounds how long [`SchemaCache::get_or_load`] waits (the app passes its acquire timeout).
    pub fn with_load_timeout(mut self, timeout: Duration) -> Self {
        self.load_timeout = timeout;
        self
    }

    pub fn exposed(&self) -> &str {
        &self.exposed
    }

    /// The snapshot now, if one was ever loaded: one lock and one `Arc` clone.
    pub fn snapshot(&self) -> Option<Arc<Schema>> {
        // A poisoned lock only means a writer panicked between two whole values.
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The snapshot, loading one first if there is none yet (the database was down so far).
    /// Waits at most the load timeout: a load that hangs (a connection that went silent) costs a
    /// request a 503, never a request that never ends.
    pub async fn get_or_load(&self, pool: &PgPool) -> Result<Arc<Schema>, SchemaError> {
        if let Some(schema) = self.snapshot() {
            return Ok(schema);
        }
        let load = async {
            let _one = self.loading.lock().await;
            if let Some(schema) = self.snapshot() {
                return Ok(schema);
            }
            self.load_locked(pool).await
        };
        tokio::time::timeout(self.load_timeout, load)
            .await
            .unwrap_or_else(|_| {
                Err(SchemaError {
                    schema: self.exposed.clone(),
                    // "No connection in time": the request answers 503, as for a busy pool.
                    source: sqlx::Error::PoolTimedOut,
                })
            })
    }

    /// Re-reads the catalog (on a pool or a connection) and swaps the new snapshot in.
    pub async fn reload<'c>(&self, db: impl PgExecutor<'c>) -> Result<Arc<Schema>, SchemaError> {
        let _one = self.loading.lock().await;
        self.load_locked(db).await
    }

    async fn load_locked<'c>(&self, db: impl PgExecutor<'c>) -> Result<Arc<Schema>, SchemaError> {
        let started = Instant::now();
        let schema = Arc::new(introspect(db, &self.exposed).await?);
        match self.current.write() {
            Ok(mut guard) => *guard = Some(schema.clone()),
            Err(poisoned) => *poisoned.into_inner() = Some(schema.clone()),
        }
        self.status.send_modify(|s| s.loads += 1);
        tracing::info!(
            schema = %self.exposed,
            relations = schema.len(),
            functions = schema.routine_count(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "schema cache loaded"
        );
        Ok(schema)
    }

    /// Follows [`SchemaStatus`] changes.
    pub fn watch(&self) -> watch::Receiver<SchemaStatus> {
        self.status.subscribe()
    }

    fn set_listening(&self, listening: bool) {
        self.status.send_if_modified(|s| {
            let changed = s.listening != listening;
            s.listening = listening;
            changed
        });
    }
}

/// Reloads after a failed load, a reconnect or a notification, logging (not returning) failures:
/// the old snapshot stays in use.
async fn reload_logged<'c>(cache: &SchemaCache, db: impl PgExecutor<'c>, why: &'static str) {
    if let Err(error) = cache.reload(db).await {
        tracing::warn!(%error, why, "schema reload failed; keeping the previous snapshot");
    }
}

/// Listens on [`CHANNEL`] until `stop` fires, reloading `cache` on `reload schema` (or an empty
/// payload) and after every (re)connection. `listen_pool` is a pool of its own (one connection),
/// so the listener never takes a request's connection; the introspection runs on the
/// listener's connection too.
pub async fn listen(cache: Arc<SchemaCache>, listen_pool: PgPool, mut stop: watch::Receiver<bool>) {
    let mut delay = FIRST_RETRY;
    loop {
        let session = async {
            let mut listener = PgListener::connect_with(&listen_pool).await?;
            // Reconnection is ours (with a backoff), not sqlx's.
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            // Anything sent while we were not listening is lost: read the catalog now.
            reload_logged(&cache, &mut listener, "listener connected").await;
            cache.set_listening(true);
            tracing::debug!(channel = CHANNEL, "listening for schema reloads");
            loop {
                match listener.try_recv().await? {
                    Some(n) if n.payload().is_empty() || n.payload() == RELOAD_PAYLOAD => {
                        reload_logged(&cache, &mut listener, "notification").await;
                    }
                    // Other payloads (PostgREST's `reload config`) mean nothing here.
                    Some(_) => {}
                    None => return Ok::<(), sqlx::Error>(()),
                }
            }
        };
        let outcome = tokio::select! {
            outcome = session => Some(outcome),
            _ = stop.changed() => None,
        };
        let was_listening = cache.status.borrow().listening;
        cache.set_listening(false);
        if was_listening {
            // It had connected: start the backoff over.
            delay = FIRST_RETRY;
        }
        match outcome {
            None => return,
            Some(Ok(())) => {
                tracing::warn!("schema listener lost its connection; reconnecting");
            }
            Some(Err(error)) => {
                tracing::warn!(%error, retry_in_ms = delay.as_millis(), "schema listener failed");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// Reloads `cache` on every SIGUSR1 until `stop` fires. `signal` is registered by the caller
/// before the app reports itself started, so a signal sent right after start is not lost (nor
/// fatal: SIGUSR1's default action ends the process).
#[cfg(unix)]
pub async fn reload_on_signal(
    cache: Arc<SchemaCache>,
    pool: PgPool,
    mut signal: tokio::signal::unix::Signal,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            received = signal.recv() => {
                if received.is_none() {
                    return;
                }
                reload_logged(&cache, &pool, "SIGUSR1").await;
            }
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Introspection against a real catalog, as the app role.

    use super::*;
    use harness::TestDatabase;

    #[tokio::test]
    async fn introspection_reads_tables_views_types_and_keys_and_reload_swaps_whole() {
        let db = TestDatabase::create().await.unwrap();
        let mut admin = db.admin_connection().await.unwrap();
        sqlx::raw_sql(
            r#"create table public.typed (
                 a int, b varchar(20), c numeric(10,2), gone text, d text[], e timestamptz,
                 primary key (b, a));
               alter table public.typed drop column gone;
               create table public.parted (id int, k int) partition by range (k);
               create table public.parted_1 partition of public.parted for values from (0) to (10);
               create view public."a view" as select a, b from public.typed;
               create schema other; create table other.hidden (id int);
               create function public.f(a int, b text default 'x', out c int, inout d int default 0)
                 language sql stable as $$ select a, d $$;
               create function public.f() returns setof public.typed language sql as $$ select * from public.typed $$;
               create function public.v() returns void language sql immutable as $$ $$;
               create function other.g() returns int language sql as $$ select 1 $$;
               create table public.child (id int, ta int, tb varchar(20),
                 foreign key (tb, ta) references public.typed (b, a));
               create function public.two_unnamed(int, int) returns int language sql as $$ select 1 $$;
               create function public.padded(c character) returns text language sql as $$ select c $$;"#,
        )
        .execute(&mut admin)
        .await
        .unwrap();
        let pool = db.app_pool(2).await.unwrap();
        let cache = SchemaCache::new("public");
        assert!(cache.snapshot().is_none());
        let before = cache.get_or_load(&pool).await.unwrap();

        assert_eq!(
            before.names(),
            ["a view", "child", "parted", "todos", "typed"]
        );
        let typed = before.relation("typed").unwrap();
        let described: Vec<(&str, &str)> = typed
            .column_ids()
            .map(|c| (typed.column(c).name(), typed.column(c).sql_type()))
            .collect();
        assert_eq!(
            described,
            [
                ("a", "integer"),
                ("b", "character varying(20)"),
                ("c", "numeric(10,2)"),
                ("d", "text[]"),
                ("e", "timestamp with time zone"),
            ]
        );
        let pk: Vec<&str> = typed
            .primary_key()
            .iter()
            .map(|&c| typed.column(c).name())
            .collect();
        assert_eq!(pk, ["b", "a"]);
        // Functions: inputs only (IN, INOUT), defaults trailing, shapes and volatility.
        assert!(before.routines("g").is_empty(), "other.g is not exposed");
        assert!(
            before.routines("two_unnamed").is_empty(),
            "not callable by PostgREST"
        );
        assert_eq!(
            before.routines("padded")[0].params()[0].sql_type(),
            "character varying"
        );
        assert_eq!(before.routines("f").len(), 2, "overloads share a name");
        assert!(!before.routines("requesting_user_id").is_empty());
        let f = before.routines("f");
        let (with_args, no_args) = if f[0].params().is_empty() {
            (&f[1], &f[0])
        } else {
            (&f[0], &f[1])
        };
        let params: Vec<(&str, &str, bool)> = with_args
            .params()
            .iter()
            .map(|p| (p.name(), p.sql_type(), p.is_required()))
            .collect();
        assert_eq!(
            params,
            [
                ("a", "integer", true),
                ("b", "text", false),
                ("d", "integer", false)
            ]
        );
        assert_eq!(with_args.returns(), Returns::Composite { set: false });
        assert_eq!(with_args.volatility(), Volatility::Stable);
        assert_eq!(no_args.returns(), Returns::Composite { set: true });
        assert_eq!(no_args.volatility(), Volatility::Volatile);
        let v = &before.routines("v")[0];
        assert_eq!(
            (v.returns(), v.volatility()),
            (Returns::Void, Volatility::Immutable)
        );
        assert_eq!(v.sql(), r#""public"."v""#);

        // Foreign keys, both ways.
        let parted = before.relation("parted").unwrap();
        let typed_rel = before.relation("typed").unwrap();
        assert!(before.relationships(typed_rel, parted).is_empty());
        let child = before.relation("child").unwrap();
        let to_one = before.relationships(child, typed_rel);
        assert_eq!(to_one.len(), 1);
        assert!(to_one[0].to_one);
        let join: Vec<(&str, &str)> = to_one[0]
            .join
            .iter()
            .map(|&(o, t)| (child.column(o).name(), typed_rel.column(t).name()))
            .collect();
        assert_eq!(join, [("tb", "b"), ("ta", "a")], "key order");
        let to_many = before.relationships(typed_rel, child);
        assert!(!to_many[0].to_one);

        let view = before.relation("a view").unwrap();
        assert!(view.is_view() && view.primary_key().is_empty());
        assert_eq!(view.sql(), r#""public"."a view""#);

        // A request in flight holds `before`; a reload swaps a new snapshot in beside it.
        sqlx::raw_sql("create table public.later (id int)")
            .execute(&mut admin)
            .await
            .unwrap();
        assert!(cache.snapshot().unwrap().relation("later").is_none());
        let loads = cache.watch().borrow().loads;
        let after = cache.reload(&pool).await.unwrap();
        assert!(after.relation("later").is_some());
        assert!(before.relation("later").is_none());
        assert!(Arc::ptr_eq(&cache.snapshot().unwrap(), &after));
        assert_eq!(cache.watch().borrow().loads, loads + 1);
    }
}
