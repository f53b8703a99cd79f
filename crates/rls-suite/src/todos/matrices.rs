//! The todos matrices, in SQL and over HTTP: the engine's run of `fixtures/todos.access.toml`
//! (the same binding, seeding, judging and rendering as any team's spec), plus the one column
//! the engine has no actor for: a caller with no claims at all.
//!
//! The engine's `no_claims` carries `{"role": "authenticated"}`, as every identity InsForge
//! forwards does (docs/fidelity.md). A session with no `request.jwt.claims` at all (a job, a
//! gateway that forwards nothing) and a request with no `Authorization` header are probed here,
//! and judged by the engine's stages: what the spec allows them is the engine's `expect` for a
//! caller with no identity, the verdict the engine's `judge` on the rows they read or removed
//! (a 401 read as `api_only` reads it: a request that reached no row). The column is one more
//! engine [`TableMatrix`] appended to the run's [`CheckReport`], so `leaks()`, `lost_access()` and
//! `render()` count it.

use std::path::PathBuf;

use harness::{DbIdentity, PgTarget, begin_as};
use reqwest::Method;
use sqlx::{Connection, PgConnection};

use super::fixtures::Fixtures;
use crate::engine::api_only::as_judged;
use crate::engine::expect::expected;
use crate::engine::judge::judge;
use crate::engine::model::{Actor, ActorKind, Observed, Op, SeedRow, Seeds, field};
use crate::engine::observe::Api;
use crate::engine::observe::http::key_of;
use crate::engine::report::{SpecCell, TableMatrix};
use crate::engine::seed::images;
use crate::engine::{self, BoundSpec, CheckReport, Error, HttpEndpoint, RunOptions, Verdict, Via};
use crate::spec::Spec;
use uuid::Uuid;

/// The `[table]` name of the claimless matrix in findings and renders.
pub const CLAIMLESS: &str = "no claims at all";

/// `fixtures/todos.access.toml` of this workspace.
pub fn spec_path() -> PathBuf {
    super::fixtures::dir().join("todos.access.toml")
}

/// The todos spec, bound to the catalog `admin` (a superuser) reaches.
pub async fn bind(admin: &PgTarget) -> Result<BoundSpec, Error> {
    let spec = Spec::load(&spec_path())?;
    let mut conn = admin.connect().await?;
    let bound = BoundSpec::bind(&spec, &mut conn).await;
    conn.close().await.ok();
    bound
}

/// The SQL matrix: the engine's run on the app's login role `app`, then the claimless column.
pub async fn run_sql(admin: &PgTarget, app: &PgTarget) -> Result<CheckReport, Error> {
    let bound = bind(admin).await?;
    let claimless = claimless_sql(&bound, admin, app).await?;
    let mut report = engine::run(&bound, admin, app, RunOptions::default()).await?;
    report.tables.push(claimless);
    Ok(report)
}

/// The HTTP matrix: the engine's run through `endpoint` (seeded and observed through `admin`),
/// then the requests with no `Authorization` header.
pub async fn run_http(admin: &PgTarget, endpoint: &HttpEndpoint) -> Result<CheckReport, Error> {
    let bound = bind(admin).await?;
    let claimless = claimless_http(&bound, admin, &endpoint.base_url).await?;
    let mut report =
        engine::run_via(&bound, admin, Via::Http(endpoint), RunOptions::default()).await?;
    report.tables.push(claimless);
    Ok(report)
}

fn sql_err(context: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |source| Error::Sql {
        context: context.to_owned(),
        source,
    }
}

/// The table the fixtures' seed todos go into: the sample's own.
const TABLE: &str = "todos";
const QUALIFIED: &str = "public.todos";

/// Inserts `fixtures/todos.json` as a superuser (so RLS does not apply) for the claimless
/// probes: a policy is only evaluated on rows, and the engine's run leaves its tables as it
/// found them. Returns the ids, for [`unseed`].
async fn seed(admin: &mut PgConnection) -> Result<Vec<Uuid>, Error> {
    let fixtures = Fixtures::load()?;
    let mut ids = Vec::with_capacity(fixtures.todos.len());
    for todo in &fixtures.todos {
        let user = fixtures.user(&todo.owner)?;
        let id: Uuid = sqlx::query_scalar(
            "insert into public.todos (user_id, title, is_complete) values ($1, $2, $3) returning id",
        )
        .bind(&user.id)
        .bind(&todo.title)
        .bind(todo.is_complete)
        .fetch_one(&mut *admin)
        .await
        .map_err(sql_err("seed todos"))?;
        ids.push(id);
    }
    Ok(ids)
}

async fn unseed(admin: &mut PgConnection, ids: &[Uuid]) -> Result<(), Error> {
    sqlx::query("delete from public.todos where id = any($1)")
        .bind(ids)
        .execute(&mut *admin)
        .await
        .map_err(sql_err("remove seeded todos"))?;
    Ok(())
}

async fn count(admin: &mut PgConnection, qualified: &str) -> Result<i64, Error> {
    // `qualified` is a constant.
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from {qualified}"
    )))
    .fetch_one(&mut *admin)
    .await
    .map_err(sql_err("count rows"))
}

/// The seeded todos as the engine judges them: the table bound to the catalog, its rows (tagged
/// with the fixture user who owns them) and what the spec allows `who`, a caller with no
/// identity (the engine's `expect` stage).
struct Judging<'a> {
    bound: &'a BoundSpec,
    ti: usize,
    seeds: Seeds,
    allowed: crate::engine::model::Allowed,
    who: Actor,
}

impl<'a> Judging<'a> {
    async fn new(
        bound: &'a BoundSpec,
        admin: &mut PgConnection,
        who: Actor,
    ) -> Result<Self, Error> {
        let ti = bound
            .index(TABLE)
            .ok_or_else(|| Error::Endpoint(format!("the todos spec has no table {TABLE}")))?;
        let table = &bound.tables[ti];
        let fixtures = Fixtures::load()?;
        let owner = table.spec.owner.as_deref().unwrap_or_default();
        let rows: Vec<SeedRow> = images(table, admin)
            .await?
            .into_iter()
            .map(|(pk, image)| {
                let id = field(&image, owner).as_str().unwrap_or_default();
                let tag = fixtures
                    .users
                    .iter()
                    .find(|u| u.id == id)
                    .map_or_else(|| "?".to_owned(), |u| u.key.clone());
                SeedRow { pk, image, tag }
            })
            .collect();
        let allowed = expected(table, &rows, std::slice::from_ref(&who), admin)
            .await?
            .remove(0);
        let mut all = vec![Vec::new(); bound.tables.len()];
        all[ti] = rows;
        Ok(Self {
            bound,
            ti,
            seeds: Seeds {
                rows: all,
                derived: Vec::new(),
                triggers: Vec::new(),
            },
            allowed,
            who,
        })
    }

    fn table(&self) -> &crate::engine::model::Table {
        &self.bound.tables[self.ti]
    }

    /// The engine's verdict on a select (`write` false) or an unfiltered delete that read or
    /// removed the rows `keys` (the engine's keys), refused with `refused` (HTTP `status`, 0 in
    /// SQL).
    fn verdict(
        &self,
        write: bool,
        keys: Vec<String>,
        refused: Option<String>,
        status: u16,
    ) -> Verdict {
        let (op, o) = if write {
            (
                Op::DeleteUnfiltered,
                Observed {
                    deleted: keys,
                    refused,
                    ..Observed::default()
                },
            )
        } else {
            (
                Op::Select,
                Observed {
                    seen: keys,
                    refused,
                    ..Observed::default()
                },
            )
        };
        judge(
            self.table(),
            &self.seeds,
            self.ti,
            &self.allowed,
            &self.who,
            &op,
            None,
            &as_judged(o, status),
        )
    }
}

fn text(seen: usize, of: i64, refused: Option<&str>, write: bool) -> String {
    match (refused, write) {
        (Some(code), _) => format!("refused {code}"),
        (None, false) if seen == 0 => format!("sees none of {of}"),
        (None, false) => format!("sees {seen} of {of}"),
        (None, true) if seen == 0 => "0 rows".to_owned(),
        (None, true) => format!("deletes {seen}"),
    }
}

const SELECT: &str = "select";
const DELETE: &str = "delete · no filter";

/// `claimless`: `authenticated` with no claims, on a connection of the login role that served a signed-in
/// caller first: a select and an unfiltered delete (rolled back) on the seeded todos.
async fn claimless_sql(
    bound: &BoundSpec,
    admin: &PgTarget,
    app: &PgTarget,
) -> Result<TableMatrix, Error> {
    const WHO: &str = "claimless";
    let mut admin = admin.connect().await?;
    let mut conn = app.connect().await?;
    // A pooled connection has served a signed-in caller before: once a transaction set
    // `request.jwt.claims`, the setting reads back as '' (not NULL) after it.
    let signed_in = DbIdentity::raw("authenticated", Some(r#"{"role":"authenticated"}"#));
    begin_as(&mut conn, &signed_in)
        .await?
        .commit()
        .await
        .map_err(sql_err("commit"))?;
    let mut ops = Vec::new();
    let mut cells = Vec::new();
    let seeded = seed(&mut admin).await?;
    let (name, qualified) = (TABLE, QUALIFIED);
    let of = count(&mut admin, qualified).await?;
    let judging = Judging::new(
        bound,
        &mut admin,
        Actor {
            key: WHO.into(),
            kind: ActorKind::Claimless,
        },
    )
    .await?;
    let who = judging
        .who
        .db_identity(&crate::engine::model::actor::template(), Default::default())
        .map_err(|source| Error::Token {
            actor: WHO.into(),
            source,
        })?;
    let key = judging.table().pk_expr("t");
    for (op, sql) in [
        (SELECT, format!("select {key} from {qualified} t")),
        (DELETE, format!("delete from {qualified} t returning {key}")),
    ] {
        let write = op == DELETE;
        let mut tx = begin_as(&mut conn, &who).await?;
        // `sql` is one of the two statements above, over a constant table and its bound key.
        let result: Result<Vec<String>, _> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await;
        tx.rollback().await.ok();
        let (keys, refused) = match result {
            Ok(keys) => (keys, None),
            Err(e) => (
                Vec::new(),
                Some(
                    e.as_database_error()
                        .and_then(|d| d.code())
                        .map_or_else(|| "error".to_owned(), |c| c.into_owned()),
                ),
            ),
        };
        let n = keys.len();
        let verdict = judging.verdict(write, keys, refused.clone(), 0);
        ops.push(format!("{op} {name}"));
        cells.push(vec![SpecCell {
            text: text(n, of, refused.as_deref(), write),
            verdict,
        }]);
    }
    conn.close().await.ok();
    unseed(&mut admin, &seeded).await?;
    admin.close().await.ok();
    Ok(TableMatrix {
        table: CLAIMLESS.to_owned(),
        actors: vec![WHO.to_owned()],
        ops,
        cells,
    })
}

/// `tokenless`: requests with no `Authorization` header: a read and an unfiltered DELETE asking for the
/// deleted rows back, on the seeded todos.
async fn claimless_http(
    bound: &BoundSpec,
    admin: &PgTarget,
    base_url: &str,
) -> Result<TableMatrix, Error> {
    const WHO: &str = "tokenless";
    let api = Api::new(base_url)?;
    let mut admin = admin.connect().await?;
    let mut ops = Vec::new();
    let mut cells = Vec::new();
    let seeded = seed(&mut admin).await?;
    let (name, qualified) = (TABLE, QUALIFIED);
    let of = count(&mut admin, qualified).await?;
    let judging = Judging::new(
        bound,
        &mut admin,
        Actor {
            key: WHO.into(),
            kind: ActorKind::Tokenless,
        },
    )
    .await?;
    let rows = &judging.seeds.rows[judging.ti];
    for (op, method, prefer) in [
        (SELECT, Method::GET, None),
        (DELETE, Method::DELETE, Some("return=representation")),
    ] {
        let write = op == DELETE;
        let query = if write { "" } else { "select=*" };
        let reply = api
            .request_with_authorization(method, name, query, None, None, prefer)
            .await?;
        let refused = (!reply.status.is_success()).then(|| reply.refusal());
        let mut keys: Vec<String> = match refused {
            Some(_) => Vec::new(),
            None => reply
                .body
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| key_of(judging.table(), rows, r))
                .collect(),
        };
        if write {
            // A delete that answered nothing back yet removed rows is still a leak.
            let after = images(judging.table(), &mut admin).await?;
            for r in rows {
                if !after.contains_key(&r.pk) && !keys.contains(&r.pk) {
                    keys.push(r.pk.clone());
                }
            }
        }
        let n = keys.len();
        let verdict = judging.verdict(write, keys, refused.clone(), reply.status.as_u16());
        ops.push(format!("{op} {name}"));
        cells.push(vec![SpecCell {
            text: text(n, of, refused.as_deref(), write),
            verdict,
        }]);
    }
    unseed(&mut admin, &seeded).await?;
    admin.close().await.ok();
    Ok(TableMatrix {
        table: CLAIMLESS.to_owned(),
        actors: vec![WHO.to_owned()],
        ops,
        cells,
    })
}
