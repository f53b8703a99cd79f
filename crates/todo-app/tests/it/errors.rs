//! Every error the API answers, with its status and PostgREST-shaped body (snapshotted), and
//! the guarantee that a failed request writes nothing.

use reqwest::Method;
use serde_json::json;

use crate::support::{FullResponse, TestApp, User, user};

/// Asserts status and code, then snapshots status and body under `name`.
fn check(name: &str, reply: &FullResponse, status: u16, code: &str) {
    reply.assert_error(status, code);
    insta::assert_json_snapshot!(name, reply.snapshot());
}

async fn get(app: &TestApp, who: &User, table_and_query: &str) -> FullResponse {
    app.records(Method::GET, table_and_query)
        .signed_in_as(app, who)
        .send()
        .await
}

#[tokio::test]
async fn query_string_errors() {
    let app = TestApp::start().await;
    let alice = user("alice");
    app.post_todo(&alice, "exists").await;

    let cases: &[(&str, &str, u16, &str)] = &[
        ("unknown_table", "users", 404, "42P01"),
        ("schema_qualified_table", "public.todos", 404, "42P01"),
        ("unknown_operator", "todos?title=nope.1", 400, "PGRST100"),
        (
            "filter_without_operator",
            "todos?title=milk",
            400,
            "PGRST100",
        ),
        ("bad_in_list", "todos?title=in.a,b", 400, "PGRST100"),
        (
            "bad_is_value",
            "todos?is_complete=is.maybe",
            400,
            "PGRST100",
        ),
        (
            "bad_order_direction",
            "todos?order=title.up",
            400,
            "PGRST100",
        ),
        ("negative_limit", "todos?limit=-1", 400, "PGRST100"),
        ("negative_offset", "todos?offset=-10", 400, "PGRST100"),
        ("duplicate_limit", "todos?limit=1&limit=2", 400, "PGRST100"),
        (
            "or_tree_not_closed",
            "todos?or=(title.eq.a,and(id.is.null)",
            400,
            "PGRST100",
        ),
        (
            "or_tree_unknown_column",
            "todos?or=(title.eq.a,owner.eq.x)",
            400,
            "42703",
        ),
        ("unknown_filter_column", "todos?owner=eq.x", 400, "42703"),
        (
            "unknown_select_column",
            "todos?select=title,secret",
            400,
            "42703",
        ),
        (
            "unknown_order_column",
            "todos?order=priority.desc",
            400,
            "42703",
        ),
        (
            "quote_escaping_column",
            "todos?title%22;drop%20table%20todos;--=eq.1",
            400,
            "42703",
        ),
        (
            "select_alias_unsupported",
            "todos?select=t:title",
            400,
            "PGRST100",
        ),
        ("invalid_uuid", "todos?id=eq.not-a-uuid", 400, "22P02"),
        ("invalid_uuid_in_list", "todos?id=in.(x)", 400, "22P02"),
        (
            "invalid_boolean",
            "todos?is_complete=eq.maybe",
            400,
            "22P02",
        ),
        (
            "invalid_timestamp",
            "todos?created_at=gt.yesterday-ish",
            400,
            "22007",
        ),
        ("like_on_a_uuid", "todos?id=like.abc*", 400, "42883"),
    ];
    for (name, path, status, code) in cases {
        let reply = get(&app, &alice, path).await;
        check(name, &reply, *status, code);
    }
    assert_eq!(app.list(&alice, "").await.len(), 1);
}

#[tokio::test]
async fn constraint_errors_write_nothing() {
    let app = TestApp::start().await;
    let alice = user("alice");

    // With RLS on the table, Postgres leaves out the "Failing row contains …" detail: an error
    // never shows a row the caller could not read.
    let reply = app.post(&alice, &json!({ "title": "" })).await;
    check("empty_title", &reply, 400, "23514");
    assert_eq!(reply.json()["details"], serde_json::Value::Null);
    let reply = app.post(&alice, &json!({ "title": "x".repeat(501) })).await;
    check("title_too_long", &reply, 400, "23514");
    let reply = app.post(&alice, &json!({ "title": null })).await;
    check("null_title", &reply, 400, "23502");
    let reply = app.post(&alice, &json!({ "is_complete": true })).await;
    check("missing_title", &reply, 400, "23502");
    let reply = app
        .post(&alice, &json!({ "title": "t", "id": "not-a-uuid" }))
        .await;
    check("invalid_uuid_in_body", &reply, 400, "22P02");
    let reply = app
        .post(&alice, &json!({ "title": "t", "is_complete": "maybe" }))
        .await;
    check("invalid_boolean_in_body", &reply, 400, "22P02");

    // A batch with one bad row in the middle: the good rows around it are not written either.
    let reply = app
        .post(
            &alice,
            &json!([{ "title": "good" }, { "title": "" }, { "title": "also good" }]),
        )
        .await;
    reply.assert_error(400, "23514");
    assert_eq!(app.all_rows().await, []);

    let id = "7d0f6d4e-8c1a-4c55-9d2e-0d7c2b0a9f11";
    let first = app
        .post(&alice, &json!({ "id": id, "title": "first" }))
        .await;
    assert_eq!(first.status, 201);
    let reply = app
        .post(&alice, &json!({ "id": id, "title": "again" }))
        .await;
    check("duplicate_id", &reply, 409, "23505");

    // An update that breaks a row fails as a whole.
    app.post_todo(&alice, "second").await;
    let reply = app.patch(&alice, "", &json!({ "title": "" })).await;
    check("patch_empty_title", &reply, 400, "23514");
    let mut titles: Vec<_> = app.all_rows().await.into_iter().map(|r| r.1).collect();
    titles.sort();
    assert_eq!(titles, ["first", "second"]);
}

#[tokio::test]
async fn body_errors() {
    let app = TestApp::start().await;
    let alice = user("alice");
    let post = |body: String, content_type: &'static str| {
        app.records(Method::POST, "todos")
            .signed_in_as(&app, &alice)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let json = "application/json";

    let reply = post(r#"{"title":"x","owner":"y"}"#.into(), json).await;
    check("unknown_body_column", &reply, 400, "PGRST204");
    let reply = post(r#"{"title\";drop table todos;--":"x"}"#.into(), json).await;
    check("hostile_body_column", &reply, 400, "PGRST204");
    let reply = post(r#"{"title":"#.into(), json).await;
    check("malformed_json", &reply, 400, "PGRST102");
    let reply = post(String::new(), json).await;
    check("empty_body", &reply, 400, "PGRST102");
    let reply = post("42".into(), json).await;
    check("body_not_an_object", &reply, 400, "PGRST102");
    let reply = post(r#"[{"title":"a"},{"is_complete":true}]"#.into(), json).await;
    check("mismatched_keys", &reply, 400, "PGRST102");
    let reply = post(r#"{"title":"x"}"#.into(), "text/plain").await;
    check("unsupported_content_type", &reply, 415, "PGRST107");

    let huge = format!(r#"{{"title":"{}"}}"#, "x".repeat(1024 * 1024));
    let reply = post(huge, json).await;
    check("body_too_large", &reply, 413, "APP413");

    let reply = app
        .records(Method::PATCH, "todos")
        .signed_in_as(&app, &alice)
        .json(&json!([{ "title": "x" }]))
        .send()
        .await;
    check("patch_with_array", &reply, 400, "PGRST102");
    let reply = app
        .records(Method::DELETE, "todos?limit=1")
        .signed_in_as(&app, &alice)
        .send()
        .await;
    check("limit_on_delete", &reply, 400, "PGRST100");
    assert_eq!(app.all_rows().await, []);
}

#[tokio::test]
async fn routes_and_methods() {
    let app = TestApp::start().await;
    let alice = user("alice");
    let reply = app
        .records(Method::PUT, "todos")
        .signed_in_as(&app, &alice)
        .send()
        .await;
    check("method_not_allowed", &reply, 405, "APP405");
    let reply = app.call(Method::GET, "/api/database/tables").send().await;
    check("route_not_found", &reply, 404, "APP404");
    let reply = app
        .records(Method::GET, "%FF%FE")
        .signed_in_as(&app, &alice)
        .send()
        .await;
    reply.assert_error(404, "APP404");
    let reply = app.call(Method::POST, "/health").send().await;
    reply.assert_error(405, "APP405");
}

#[tokio::test]
async fn a_statement_timeout_is_a_500_and_the_app_carries_on() {
    let app =
        TestApp::start_with(|c| c.statement_timeout = std::time::Duration::from_millis(300)).await;
    let alice = user("alice");

    // A superuser holds a lock the app's statement must wait for, past its timeout.
    let mut admin = app.db.admin_connection().await.unwrap();
    sqlx::raw_sql("begin; lock table public.todos in access exclusive mode")
        .execute(&mut admin)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let reply = app.get(&alice, "").await;
    check("statement_timeout", &reply, 500, "57014");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    sqlx::raw_sql("rollback").execute(&mut admin).await.unwrap();

    assert_eq!(app.list(&alice, "").await, []);
}
