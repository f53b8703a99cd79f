//! `/api/database/rpc/{fn}` as InsForge 2.3 forwards it and PostgREST 12.2 answers: functions
//! chosen by their arguments' keys (`findProc`, `Plan.hs`), results shaped by their return
//! type (`asJsonF`, `SqlFragment.hs`), run as the caller so RLS applies inside the function,
//! and PostgREST's errors for unknown functions and arguments (`NoRpc`, `Error.hs`).

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{FullResponse, TestApp, User, user};

const WORLD: &str = r#"
create table public.notes (
  id    bigint generated always as identity primary key,
  owner text   not null default public.requesting_user_id(),
  body  text   not null
);
alter table public.notes enable row level security;
alter table public.notes force row level security;
create policy notes_own on public.notes for all to authenticated
  using (owner = (select public.requesting_user_id()))
  with check (owner = (select public.requesting_user_id()));

create function public.add_numbers(a int, b int default 10) returns int
  language sql immutable as $$ select a + b $$;
create function public.add_note(note text) returns void
  language sql volatile as $$ insert into public.notes (body) values (note) $$;
create function public.note_bodies() returns setof text
  language sql stable as $$ select body from public.notes order by id $$;
create function public.my_notes(min_id bigint default 0) returns setof public.notes
  language sql stable as $$ select * from public.notes where id >= min_id order by id $$;
create function public.first_note() returns public.notes
  language sql stable as $$ select * from public.notes order by id limit 1 $$;
create function public.note_table() returns table (n_body text, n_len int)
  language sql stable as $$ select body, length(body) from public.notes order by id $$;
create function public.fail(why text) returns int
  language plpgsql as $$ begin raise exception '%', why; end $$;
-- Names and parameters that are SQL, Unicode and quotes: only ever quoted identifiers.
create function public."sum; drop table public.notes; --"("a""b" int, "émoji 🦀" int) returns int
  language sql immutable as $$ select $1 + $2 $$;
-- The classic hole: SECURITY DEFINER runs as its owner, past RLS.
create function public.every_note() returns setof public.notes
  language sql stable security definer set search_path = '' as $$ select * from public.notes order by id $$;
"#;

async fn world() -> (TestApp, User, User) {
    let app = TestApp::start().await;
    app.admin_sql(WORLD).await;
    app.notify_reload().await;
    (app, user("alice"), user("bob"))
}

async fn post(app: &TestApp, who: &User, function: &str, body: &Value) -> FullResponse {
    app.call(Method::POST, &format!("/api/database/rpc/{function}"))
        .signed_in_as(app, who)
        .json(body)
        .send()
        .await
}

async fn get(app: &TestApp, who: &User, function_and_query: &str) -> FullResponse {
    app.call(
        Method::GET,
        &format!("/api/database/rpc/{function_and_query}"),
    )
    .signed_in_as(app, who)
    .send()
    .await
}

#[tokio::test]
async fn calls_run_as_the_caller_and_are_shaped_by_return_type() {
    let (app, alice, bob) = world().await;
    // void: 204 without a body; the insert runs as the caller (owner defaults to her id).
    for (who, note) in [(&alice, "alice 1"), (&alice, "alice 2"), (&bob, "bob 1")] {
        let reply = post(&app, who, "add_note", &json!({ "note": note })).await;
        assert_eq!(reply.status, 204, "{}", reply.text);
        assert_eq!(reply.text, "");
    }
    // A scalar: the JSON value itself.
    let reply = post(&app, &alice, "add_numbers", &json!({ "a": 1 })).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "11"));
    assert_eq!(reply.header("content-range"), Some("0-0/*"));
    assert_eq!(
        post(&app, &alice, "add_numbers", &json!({ "a": 1, "b": 2 }))
            .await
            .text,
        "3"
    );
    // GET takes text arguments from the query string.
    let reply = get(&app, &alice, "add_numbers?a=4&b=5").await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "9"));
    // setof scalar: an array; RLS applies inside an invoker's function.
    let reply = post(&app, &alice, "note_bodies", &json!({})).await;
    assert_eq!(reply.json(), json!(["alice 1", "alice 2"]));
    assert_eq!(reply.header("content-range"), Some("0-1/*"));
    assert_eq!(
        get(&app, &bob, "note_bodies").await.json(),
        json!(["bob 1"])
    );
    // setof a table's rows: an array of objects with the table's keys.
    let reply = get(&app, &alice, "my_notes").await;
    let rows = reply.json();
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");
    assert_eq!(rows[0]["body"], "alice 1");
    assert_eq!(rows[0]["owner"], alice.id.as_str());
    let first_id = rows[1]["id"].as_i64().unwrap();
    let reply = post(&app, &alice, "my_notes", &json!({ "min_id": first_id })).await;
    assert_eq!(reply.json().as_array().map(Vec::len), Some(1));
    // One composite: an object, not an array.
    let reply = post(&app, &bob, "first_note", &json!({})).await;
    assert_eq!(reply.json()["body"], "bob 1");
    // returns table (…): an array of objects with the OUT columns.
    let reply = post(&app, &alice, "note_table", &json!({})).await;
    assert_eq!(
        reply.json(),
        json!([{"n_body": "alice 1", "n_len": 7}, {"n_body": "alice 2", "n_len": 7}])
    );
    // An empty body is no arguments.
    let reply = app
        .call(Method::POST, "/api/database/rpc/note_bodies")
        .signed_in_as(&app, &bob)
        .send()
        .await;
    assert_eq!(reply.json(), json!(["bob 1"]));
    // SECURITY DEFINER runs past RLS, exactly as on InsForge: the stand-in does not hide
    // the hole that the HTTP checks exist to find.
    let reply = post(&app, &alice, "every_note", &json!({})).await;
    assert_eq!(reply.json().as_array().map(Vec::len), Some(3));
    // Identifiers from the catalog, whatever they hold.
    let reply = post(
        &app,
        &alice,
        "sum%3B%20drop%20table%20public.notes%3B%20--",
        &json!({ "a\"b": 1, "émoji 🦀": 2 }),
    )
    .await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "3"));
    // Values that look like SQL are values.
    let hostile = "'); drop table public.notes; --";
    let reply = post(&app, &bob, "add_note", &json!({ "note": hostile })).await;
    assert_eq!(reply.status, 204);
    assert_eq!(
        get(&app, &bob, "note_bodies").await.json(),
        json!(["bob 1", hostile])
    );
}

#[tokio::test]
async fn writes_need_post_on_a_volatile_function() {
    let (app, alice, _) = world().await;
    // A GET runs read-only (PostgREST's txMode): Postgres's 25006, which PostgREST maps to 405.
    get(&app, &alice, "add_note?note=x")
        .await
        .assert_error(405, "25006");
    assert_eq!(get(&app, &alice, "note_bodies").await.json(), json!([]));
}

#[tokio::test]
async fn unknown_functions_and_arguments_are_postgrest_errors() {
    let (app, alice, _) = world().await;
    let reply = post(&app, &alice, "nope", &json!({ "b": 1, "a": 2 })).await;
    reply.assert_error(404, "PGRST202");
    assert_eq!(
        reply.json(),
        json!({
            "code": "PGRST202",
            "details": "Searched for the function public.nope with parameters a, b or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
            "hint": null,
            "message": "Could not find the function public.nope(a, b) in the schema cache",
        })
    );
    let reply = get(&app, &alice, "add_numbers").await;
    reply.assert_error(404, "PGRST202");
    assert_eq!(
        reply.json()["details"],
        "Searched for the function public.add_numbers without parameters, but no matches were found in the schema cache."
    );
    assert_eq!(
        reply.json()["message"],
        "Could not find the function public.add_numbers without parameters in the schema cache"
    );
    // An unknown key, or a required one missing: no function matches.
    post(&app, &alice, "add_numbers", &json!({ "a": 1, "c": 2 }))
        .await
        .assert_error(404, "PGRST202");
    post(&app, &alice, "add_numbers", &json!({ "b": 1 }))
        .await
        .assert_error(404, "PGRST202");
    // A value its parameter's type refuses, and an exception the function raises: Postgres's.
    post(&app, &alice, "add_numbers", &json!({ "a": "x" }))
        .await
        .assert_error(400, "22P02");
    let reply = post(&app, &alice, "fail", &json!({ "why": "no way" })).await;
    reply.assert_error(400, "P0001");
    assert_eq!(reply.json()["message"], "no way");
    // Not an object, not JSON.
    post(&app, &alice, "add_numbers", &json!([1]))
        .await
        .assert_error(400, "PGRST102");
    // Filters or shaping of the result are not supported here: said, not ignored.
    get(&app, &alice, "my_notes?id=eq.1")
        .await
        .assert_error(400, "PGRST100");
    // InsForge refuses a name with a quote before PostgREST (`validateFunctionName`).
    let reply = post(&app, &alice, "a%22b", &json!({})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({
            "error": "DATABASE_VALIDATION_ERROR",
            "message": "Invalid function name: cannot contain quotes or control characters",
            "statusCode": 400,
            "nextActions": "The function name cannot contain double quotes or control characters (tabs, newlines, etc.)",
        })
    );
    // No token: nothing, not even whether the function exists.
    let reply = app
        .call(Method::POST, "/api/database/rpc/add_numbers")
        .json(&json!({ "a": 1 }))
        .send()
        .await;
    assert_eq!(reply.status, 401);
    // Other methods.
    let reply = app
        .call(Method::DELETE, "/api/database/rpc/add_numbers")
        .signed_in_as(&app, &alice)
        .send()
        .await;
    assert_eq!(reply.status, 405);
}
