//! The todos matrices, in SQL and over HTTP: the engine's run of `fixtures/todos.access.toml`
//! (the same binding, seeding, judging and rendering as any team's spec), plus the one column
//! the engine has no actor for: a caller with no claims at all.
//!
//! The engine's `no_claims` carries `{"role": "authenticated"}`, as every identity InsForge
//! forwards does (docs/fidelity.md). A session with no `request.jwt.claims` at all (a job, a
//! gateway that forwards nothing) and a request with no `Authorization` header are probed here,
//! judged with the engine's [`Verdict`] and reported as one more engine [`TableMatrix`]
//! appended to the run's [`CheckReport`], so `leaks()`, `lost_access()` and `render()` count it.

use std::path::PathBuf;

use harness::{DbIdentity, PgTarget, begin_as};
use reqwest::Method;
use sqlx::{Connection, PgConnection};

use super::fixtures::Fixtures;
use crate::engine::observe::Api;
use crate::engine::report::{SpecCell, TableMatrix};
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
    let claimless = claimless_sql(admin, app).await?;
    let bound = bind(admin).await?;
    let mut report = engine::run(&bound, admin, app, RunOptions::default()).await?;
    report.tables.push(claimless);
    Ok(report)
}

/// The HTTP matrix: the engine's run through `endpoint` (seeded and observed through `admin`),
/// then the requests with no `Authorization` header.
pub async fn run_http(admin: &PgTarget, endpoint: &HttpEndpoint) -> Result<CheckReport, Error> {
    let claimless = claimless_http(admin, &endpoint.base_url).await?;
    let bound = bind(admin).await?;
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

/// Judges a claimless read: any row is a leak (the caller owns none); an error is lost access
/// (nobody's rows is an empty answer) unless it is a 401, the API turning the caller away.
fn judge_read(who: &str, table: &str, seen: usize, refused: Option<&str>) -> Verdict {
    match refused {
        Some(code) if !code.starts_with("401") => {
            Verdict::LostAccess(format!("{who} gets an error ({code}) instead of a result"))
        }
        Some(_) => Verdict::Ok,
        None if seen > 0 => Verdict::Leak(format!("{who} sees {seen} rows of {table}")),
        None => Verdict::Ok,
    }
}

/// Judges a claimless unfiltered write: any row changed is a leak; a refusal is fine.
fn judge_write(who: &str, table: &str, changed: usize) -> Verdict {
    if changed > 0 {
        Verdict::Leak(format!("{who} deletes {changed} rows of {table}"))
    } else {
        Verdict::Ok
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
async fn claimless_sql(admin: &PgTarget, app: &PgTarget) -> Result<TableMatrix, Error> {
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
    let who = DbIdentity::authenticated_without_claims();
    let mut ops = Vec::new();
    let mut cells = Vec::new();
    let seeded = seed(&mut admin).await?;
    let (name, qualified) = (TABLE, QUALIFIED);
    let of = count(&mut admin, qualified).await?;
    for (op, sql) in [
        (SELECT, format!("select 1 from {qualified}")),
        (DELETE, format!("delete from {qualified}")),
    ] {
        let write = op == DELETE;
        let mut tx = begin_as(&mut conn, &who).await?;
        // `sql` is one of the two constant statements above.
        let result = if write {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map(|done| usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
        } else {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *tx)
                .await
                .map(|rows| rows.len())
        };
        tx.rollback().await.ok();
        let (n, refused) = match result {
            Ok(n) => (n, None),
            Err(e) => (
                0,
                Some(
                    e.as_database_error()
                        .and_then(|d| d.code())
                        .map_or_else(|| "error".to_owned(), |c| c.into_owned()),
                ),
            ),
        };
        let verdict = if write {
            judge_write(WHO, name, n)
        } else {
            judge_read(WHO, name, n, refused.as_deref())
        };
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
async fn claimless_http(admin: &PgTarget, base_url: &str) -> Result<TableMatrix, Error> {
    const WHO: &str = "tokenless";
    let api = Api::new(base_url)?;
    let mut admin = admin.connect().await?;
    let mut ops = Vec::new();
    let mut cells = Vec::new();
    let seeded = seed(&mut admin).await?;
    let (name, qualified) = (TABLE, QUALIFIED);
    let of = count(&mut admin, qualified).await?;
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
        let n = if refused.is_some() {
            0
        } else {
            reply.body.as_array().map_or(0, Vec::len)
        };
        let after = if write {
            count(&mut admin, qualified).await?
        } else {
            of
        };
        // A delete that answered nothing back yet removed rows is still a leak.
        let n = n.max(usize::try_from(of - after).unwrap_or(0));
        let verdict = if write {
            judge_write(WHO, name, n)
        } else {
            judge_read(WHO, name, n, refused.as_deref())
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimless_read_tells_leaks_from_lost_access() {
        assert!(matches!(
            judge_read("x", "todos", 1, None),
            Verdict::Leak(_)
        ));
        assert!(matches!(
            judge_read("x", "todos", 0, Some("22P02")),
            Verdict::LostAccess(_)
        ));
        assert_eq!(
            judge_read("x", "todos", 0, Some("401 AUTH_UNAUTHORIZED")),
            Verdict::Ok
        );
        assert_eq!(judge_read("x", "todos", 0, None), Verdict::Ok);
        assert!(matches!(judge_write("x", "todos", 2), Verdict::Leak(_)));
        assert_eq!(judge_write("x", "todos", 0), Verdict::Ok);
    }
}
