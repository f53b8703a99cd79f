//! Behavioural probes, run as the app's role exactly as PostgREST would (role and claims set
//! transaction-locally): does a schema leak rows between users, or cost users their own rows?
//! They back the `expect` header of every mutant with evidence, so a mutant cannot claim a
//! leak Postgres does not actually allow.

use harness::{DbIdentity, TestDatabase, begin_as};
use serde_json::json;
use sqlx::postgres::PgConnection;

use crate::support::{Expect, apply, mutants};

const ALICE: &str = "user_2GIpXOEpVyJw51rkZn9Kmnc6Sxr";
const BOB: &str = "user_3AbCdEfGhIjKlMnOpQrStUvWxYz";

fn alice() -> DbIdentity {
    DbIdentity::authenticated(&json!({ "sub": ALICE, "role": "authenticated" }))
}

/// What the probes saw: the names of the probes that showed a leak or a loss.
#[derive(Debug, Default)]
struct Observed {
    leaks: Vec<&'static str>,
    lost: Vec<&'static str>,
}

/// One statement in its own transaction as `identity`, rolled back: the row count it returned
/// (for a `count(*)` query) or affected.
async fn run(conn: &mut PgConnection, identity: &DbIdentity, sql: &str) -> Result<i64, String> {
    let mut tx = begin_as(conn, identity).await.map_err(|e| e.to_string())?;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    let result = if sql.0.trim_start().starts_with("select") {
        sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut *tx).await
    } else {
        sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .map(|done| i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
    };
    tx.rollback().await.ok();
    result.map_err(|e| e.to_string())
}

async fn exists(db: &TestDatabase, sql: &str) -> bool {
    let mut conn = db.admin_connection().await.unwrap();
    sqlx::query_scalar::<_, bool>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

async fn observe(db: &TestDatabase) -> Observed {
    apply(
        db,
        &format!(
            "insert into public.todos (user_id, title) values ('{ALICE}', 'alice todo'), ('{BOB}', 'bob todo')"
        ),
    )
    .await;
    let mut conn = db.app_connection().await.unwrap();
    let mut seen = Observed::default();
    let a = alice();
    let others = format!("user_id <> '{ALICE}'");

    // Each probe leaks when its statement succeeds on at least `rows` rows.
    let leak_probes: Vec<(&'static str, DbIdentity, String, i64)> = vec![
        (
            "reads another user's todos",
            a.clone(),
            format!("select count(*) from public.todos where {others}"),
            1,
        ),
        (
            "anonymous request reads todos",
            DbIdentity::anon(),
            "select count(*) from public.todos".into(),
            1,
        ),
        (
            "inserts a todo owned by another user",
            a.clone(),
            format!("insert into public.todos (user_id, title) values ('{BOB}', 'planted')"),
            1,
        ),
        (
            "hands own todos to another user (UPDATE without WHERE)",
            a.clone(),
            format!("update public.todos set user_id = '{BOB}'"),
            1,
        ),
        (
            "rewrites other users' todos (UPDATE without WHERE)",
            a.clone(),
            "update public.todos set title = 'overwritten'".into(),
            2,
        ),
        (
            "deletes other users' todos (DELETE without WHERE)",
            a.clone(),
            "delete from public.todos".into(),
            2,
        ),
    ];
    for (name, identity, sql, rows) in leak_probes {
        if matches!(run(&mut conn, &identity, &sql).await, Ok(n) if n >= rows) {
            seen.leaks.push(name);
        }
    }
    if exists(
        db,
        "select to_regclass('public.todos_overview') is not null",
    )
    .await
    {
        let sql = format!("select count(*) from public.todos_overview where {others}");
        if matches!(run(&mut conn, &a, &sql).await, Ok(n) if n > 0) {
            seen.leaks
                .push("reads another user's todos through public.todos_overview");
        }
    }
    if exists(
        db,
        "select to_regprocedure('public.search_todos(text)') is not null",
    )
    .await
    {
        let sql = format!("select count(*) from public.search_todos('') where {others}");
        if matches!(run(&mut conn, &DbIdentity::anon(), &sql).await, Ok(n) if n > 0) {
            seen.leaks
                .push("reads other users' todos through public.search_todos()");
        }
    }

    let own = format!("user_id = '{ALICE}'");
    let access_probes: Vec<(&'static str, String)> = vec![
        (
            "cannot read own todos",
            format!("select count(*) from public.todos where {own}"),
        ),
        (
            "cannot add a todo",
            "insert into public.todos (title) values ('mine')".into(),
        ),
        (
            "cannot update own todo",
            format!("update public.todos set title = 'renamed' where {own}"),
        ),
        (
            "cannot delete own todo",
            format!("delete from public.todos where {own}"),
        ),
    ];
    for (name, sql) in access_probes {
        if run(&mut conn, &a, &sql).await != Ok(1) {
            seen.lost.push(name);
        }
    }
    // This connection has served requests with claims, so the setting now reads back as ''.
    let reused = run(
        &mut conn,
        &DbIdentity::authenticated_without_claims(),
        "select count(*) from public.todos",
    )
    .await;
    if reused.is_err() {
        seen.lost.push("errors on a reused pooled connection");
    }
    seen
}

#[tokio::test]
async fn the_migrated_schema_neither_leaks_nor_loses_access() {
    let db = TestDatabase::create().await.unwrap();
    let seen = observe(&db).await;
    assert!(seen.leaks.is_empty() && seen.lost.is_empty(), "{seen:#?}");
}

#[tokio::test]
async fn every_mutant_behaves_as_its_header_says() {
    let mut failures = Vec::new();
    for mutant in mutants() {
        let db = TestDatabase::create().await.unwrap();
        apply(&db, &mutant.sql).await;
        let seen = observe(&db).await;
        let holds = match mutant.expect {
            Expect::Leak => !seen.leaks.is_empty(),
            Expect::LostAccess => !seen.lost.is_empty() && seen.leaks.is_empty(),
        };
        println!("{:<30} {:?}: {seen:?}", mutant.id, mutant.expect);
        if !holds {
            failures.push(format!(
                "{} expects {:?} but saw {seen:?}",
                mutant.id, mutant.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
