//! Any table and view of the exposed schema, read from the catalog: served without a restart
//! after `NOTIFY pgrst` or SIGUSR1, hostile identifiers (in the catalog and in requests), a
//! schema that is not exposed, a schema that changed under a snapshot, views without a
//! primary key. Errors are PostgREST's (or InsForge's, where InsForge answers first); never a
//! row of anyone else.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{FullResponse, TestApp, User, user};

/// A table with an owner column and a policy per user, a view over it without a primary key,
/// a view that cannot be written, and a table in a schema that is not exposed.
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
create view public.note_bodies with (security_invoker = true) as
  select owner, body from public.notes;
create view public.note_counts with (security_invoker = true) as
  select owner, count(*) as n from public.notes group by owner;

create schema private;
grant usage on schema private to authenticated;
create table private.secrets (id int primary key, secret text);
grant select, insert, update, delete on private.secrets to authenticated;
insert into private.secrets values (1, 'hidden');
"#;

/// Spaces, Unicode, SQL and a quote in identifiers the catalog really holds.
const HOSTILE_TABLE: &str = "tâche ✓; drop table public.todos; --";
const HOSTILE_WORLD: &str = r#"
create table public."tâche ✓; drop table public.todos; --" (
  id                         bigint generated always as identity primary key,
  owner                      text not null default public.requesting_user_id(),
  "Mixed Case"               text,
  "a""b"                     text,
  "x; drop table todos; --"  int,
  "émoji 🦀"                 boolean not null default false
);
alter table public."tâche ✓; drop table public.todos; --" enable row level security;
alter table public."tâche ✓; drop table public.todos; --" force row level security;
create policy own on public."tâche ✓; drop table public.todos; --" for all to authenticated
  using (owner = (select public.requesting_user_id()))
  with check (owner = (select public.requesting_user_id()));
create table public."we""ird" (id int primary key);
"#;

/// Percent-encodes every byte but ASCII letters and digits: a path segment or query part.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn start_with_world(extra: &str) -> TestApp {
    let db = harness::TestDatabase::create().await.unwrap();
    let url = db.app_target().url();
    let app = TestApp::start_on(db, url, |_| {}).await;
    app.admin_sql(WORLD).await;
    if !extra.is_empty() {
        app.admin_sql(extra).await;
    }
    // The app may have loaded the catalog before the world existed.
    app.notify_reload().await;
    app
}

async fn call(
    app: &TestApp,
    who: &User,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> FullResponse {
    let mut call = app
        .records(method, path)
        .signed_in_as(app, who)
        .prefer("return=representation");
    if let Some(body) = body {
        call = call.json(&body);
    }
    call.send().await
}

fn ok(reply: &FullResponse) -> Value {
    assert!(
        (200..300).contains(&reply.status),
        "{} {}",
        reply.status,
        reply.text
    );
    reply.json()
}

fn owners(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["owner"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn any_table_is_served_and_rls_still_decides() {
    let app = start_with_world("").await;
    let (alice, bob) = (user("alice"), user("bob"));

    let made = ok(&call(
        &app,
        &alice,
        Method::POST,
        "notes",
        Some(json!({"body": "a1"})),
    )
    .await);
    assert_eq!(made[0]["owner"], alice.id.as_str());
    assert_eq!(made[0]["body"], "a1");
    ok(&call(
        &app,
        &bob,
        Method::POST,
        "notes",
        Some(json!([{"body": "b1"}, {"body": "b2"}])),
    )
    .await);

    let mine = ok(&call(
        &app,
        &alice,
        Method::GET,
        "notes?select=body,owner&order=id",
        None,
    )
    .await);
    assert_eq!(mine, json!([{"body": "a1", "owner": alice.id}]));
    let theirs = ok(&call(&app, &bob, Method::GET, "notes?order=body.desc", None).await);
    assert_eq!(owners(&theirs), [bob.id.clone(), bob.id.clone()]);
    assert_eq!(theirs[0]["body"], "b2");

    // Bob cannot touch Alice's row by id, with or without a filter.
    let id = made[0]["id"].as_i64().unwrap();
    let touched = ok(&call(
        &app,
        &bob,
        Method::PATCH,
        &format!("notes?id=eq.{id}"),
        Some(json!({"body": "x"})),
    )
    .await);
    assert_eq!(touched, json!([]));
    let deleted = ok(&call(&app, &bob, Method::DELETE, "notes?body=like.*", None).await);
    assert_eq!(owners(&deleted), [bob.id.clone(), bob.id.clone()]);
    let still = ok(&call(&app, &alice, Method::GET, "notes", None).await);
    assert_eq!(still[0]["body"], "a1");

    // As InsForge: `""` for a column that is not text-like is dropped, so the default applies;
    // for a text column it is a value.
    let made = ok(&call(
        &app,
        &alice,
        Method::POST,
        "notes",
        Some(json!({"id": "", "body": ""})),
    )
    .await);
    assert_eq!(made[0]["body"], "");
    assert!(made[0]["id"].is_i64(), "{made}");
    ok(&call(&app, &alice, Method::DELETE, "notes?body=eq.", None).await);

    // Types come from the catalog: a bad bigint is Postgres's 22P02, a 400.
    call(&app, &alice, Method::GET, "notes?id=eq.nope", None)
        .await
        .assert_error(400, "22P02");
    // Unknown columns name the real table.
    let reply = call(&app, &alice, Method::GET, "notes?select=secret", None).await;
    reply.assert_error(400, "42703");
    assert_eq!(
        reply.json()["message"],
        "column notes.secret does not exist"
    );
    let reply = call(
        &app,
        &alice,
        Method::POST,
        "notes",
        Some(json!({"secret": 1})),
    )
    .await;
    reply.assert_error(400, "PGRST204");
    assert_eq!(
        reply.json()["message"],
        "Could not find the 'secret' column of 'notes' in the schema cache"
    );
}

#[tokio::test]
async fn a_table_made_after_start_is_served_after_notify_pgrst() {
    let app = TestApp::start().await;
    let alice = user("alice");
    let loads = app.listening().await;
    app.admin_sql(WORLD).await;
    // Not per request: until the reload, the snapshot has no `notes`.
    call(&app, &alice, Method::GET, "notes", None)
        .await
        .assert_error(404, "42P01");
    app.admin_sql("notify pgrst, 'reload schema'").await;
    app.reloaded_since(loads).await;
    assert_eq!(
        ok(&call(&app, &alice, Method::GET, "notes", None).await),
        json!([])
    );

    // An empty payload reloads too (PostgREST's Listener.hs); another payload does not.
    app.admin_sql("create table public.later (id int primary key)")
        .await;
    let loads = app.listening().await;
    app.admin_sql("notify pgrst, 'reload config'; notify pgrst")
        .await;
    app.reloaded_since(loads).await;
    assert_eq!(
        ok(&call(&app, &alice, Method::GET, "later", None).await),
        json!([])
    );
    assert_eq!(app.app.schema_status().borrow().loads, loads + 1);
}

#[cfg(unix)]
#[tokio::test]
async fn a_table_made_after_start_is_served_after_sigusr1() {
    let app = TestApp::start_with(|c| c.reload_on_sigusr1 = true).await;
    let alice = user("alice");
    let loads = app.listening().await;
    app.admin_sql(WORLD).await;
    call(&app, &alice, Method::GET, "notes", None)
        .await
        .assert_error(404, "42P01");
    // The app installed the handler when it started, so this reloads rather than kills us.
    nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGUSR1).unwrap();
    app.reloaded_since(loads).await;
    assert_eq!(
        ok(&call(&app, &alice, Method::GET, "notes", None).await),
        json!([])
    );
}

#[tokio::test]
async fn hostile_identifiers_in_the_catalog_are_quoted_never_run() {
    let app = start_with_world(HOSTILE_WORLD).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let table = enc(HOSTILE_TABLE);

    let row = json!({
        "Mixed Case": "hi",
        "a\"b": "quote",
        "x; drop table todos; --": 7,
        "émoji 🦀": true
    });
    let made = ok(&call(&app, &alice, Method::POST, &table, Some(row.clone())).await);
    assert_eq!(made[0]["a\"b"], "quote");
    assert_eq!(made[0]["owner"], alice.id.as_str());
    ok(&call(
        &app,
        &bob,
        Method::POST,
        &table,
        Some(json!({"Mixed Case": "bob's"})),
    )
    .await);

    // select, filter and order by every hostile column, quoted as PostgREST quotes.
    let query = format!(
        "{table}?select={}&{}=eq.7&{}=is.true&order={}",
        enc(r#"Mixed Case,"a\"b","x; drop table todos; --""#),
        enc("x; drop table todos; --"),
        enc("émoji 🦀"),
        enc(r#""émoji 🦀".desc,Mixed Case"#),
    );
    let rows = ok(&call(&app, &alice, Method::GET, &query, None).await);
    assert_eq!(
        rows,
        json!([{"Mixed Case": "hi", "a\"b": "quote", "x; drop table todos; --": 7}])
    );
    let patched = ok(&call(
        &app,
        &alice,
        Method::PATCH,
        &format!("{table}?{}=eq.quote", enc("a\"b")),
        Some(json!({"x; drop table todos; --": 8})),
    )
    .await);
    assert_eq!(patched[0]["x; drop table todos; --"], 8);
    // Bob sees his row only, and his filter on Alice's value finds nothing.
    let bobs = ok(&call(&app, &bob, Method::GET, &table, None).await);
    assert_eq!(owners(&bobs), [bob.id.as_str()]);
    let none = ok(&call(
        &app,
        &bob,
        Method::DELETE,
        &format!("{table}?{}=eq.quote", enc("a\"b")),
        None,
    )
    .await);
    assert_eq!(none, json!([]));

    // The SQL in the names never ran: todos is still there.
    assert_eq!(
        ok(&call(&app, &alice, Method::GET, "todos", None).await),
        json!([])
    );

    // InsForge refuses a table name with a quote before PostgREST sees it, even a real one.
    let reply = call(&app, &alice, Method::GET, &enc("we\"ird"), None).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.json(),
        json!({
            "error": "DATABASE_VALIDATION_ERROR",
            "message": "Invalid table name: cannot contain quotes or control characters",
            "statusCode": 400,
            "nextActions": "The table name cannot contain double quotes or control characters (tabs, newlines, etc.)"
        })
    );
}

#[tokio::test]
async fn hostile_table_and_column_names_in_requests() {
    let app = start_with_world("").await;
    let alice = user("alice");
    app.post_todo(&alice, "mine").await;

    for (name, status) in [
        ("todos\"; drop table public.todos; --", 400),
        ("todos\n", 400),
        (" ", 400),
        ("todos; drop table public.todos; --", 404),
        ("TODOS", 404),
        ("tödös ✓", 404),
        ("public.todos", 404),
        ("pg_catalog.pg_authid", 404),
        ("../todos", 404),
    ] {
        let reply = call(&app, &alice, Method::GET, &enc(name), None).await;
        assert_eq!(reply.status, status, "{name:?}: {}", reply.text);
        if status == 404 {
            reply.assert_error(404, "42P01");
            assert_eq!(
                reply.json()["message"],
                format!("relation \"public.{name}\" does not exist")
            );
        } else {
            assert_eq!(
                reply.json()["error"],
                "DATABASE_VALIDATION_ERROR",
                "{name:?}"
            );
        }
    }
    for column in [
        "title\"; drop table todos; --",
        "TITLE",
        "tïtle",
        "title --",
    ] {
        let select = format!(
            "todos?select={}",
            enc(&format!("\"{}\"", column.replace('"', "\\\"")))
        );
        call(&app, &alice, Method::GET, &select, None)
            .await
            .assert_error(400, "42703");
        let filter = format!("todos?{}=eq.x", enc(column));
        call(&app, &alice, Method::GET, &filter, None)
            .await
            .assert_error(400, "42703");
        call(
            &app,
            &alice,
            Method::POST,
            "todos",
            Some(json!({ column: "x" })),
        )
        .await
        .assert_error(400, "PGRST204");
    }
    assert_eq!(app.list(&alice, "").await.len(), 1);
}

#[tokio::test]
async fn a_table_in_a_schema_that_is_not_exposed_is_not_found() {
    let app = start_with_world("").await;
    let alice = user("alice");
    for path in ["secrets", "private.secrets"] {
        let reply = call(&app, &alice, Method::GET, path, None).await;
        reply.assert_error(404, "42P01");
        assert_eq!(
            reply.json()["message"],
            format!("relation \"public.{path}\" does not exist")
        );
        // A write naming columns: PostgREST 12.2's schema-cache NotFound, an empty object.
        let reply = call(&app, &alice, Method::POST, path, Some(json!({"id": 2}))).await;
        assert_eq!((reply.status, reply.json()), (404, json!({})), "{path}");
        let reply = call(
            &app,
            &alice,
            Method::PATCH,
            path,
            Some(json!({"secret": "x"})),
        )
        .await;
        assert_eq!((reply.status, reply.json()), (404, json!({})), "{path}");
        call(&app, &alice, Method::DELETE, path, None)
            .await
            .assert_error(404, "42P01");
    }
    // Exposing it is configuration, not a request: an app on `private` serves it.
    let db = harness::TestDatabase::create().await.unwrap();
    let url = db.app_target().url();
    let private = TestApp::start_on(db, url, |c| c.db_schema = "private".into()).await;
    private.admin_sql(WORLD).await;
    private.notify_reload().await;
    let rows = ok(&call(&private, &alice, Method::GET, "secrets", None).await);
    assert_eq!(rows, json!([{"id": 1, "secret": "hidden"}]));
    call(&private, &alice, Method::GET, "todos", None)
        .await
        .assert_error(404, "42P01");
}

#[tokio::test]
async fn a_schema_changed_under_the_snapshot_is_a_4xx_until_the_reload() {
    let app = start_with_world("").await;
    let alice = user("alice");
    ok(&call(
        &app,
        &alice,
        Method::POST,
        "notes",
        Some(json!({"body": "a1"})),
    )
    .await);

    // Changed in the database, not yet reloaded: the old snapshot still names `body`.
    app.admin_sql(
        "drop view public.note_bodies; drop view public.note_counts; \
         alter table public.notes drop column body",
    )
    .await;
    let reply = call(&app, &alice, Method::GET, "notes", None).await;
    reply.assert_error(400, "42703");
    call(
        &app,
        &alice,
        Method::PATCH,
        "notes",
        Some(json!({"body": "x"})),
    )
    .await
    .assert_error(400, "42703");
    let reply = call(&app, &alice, Method::GET, "note_bodies", None).await;
    reply.assert_error(404, "42P01");

    app.notify_reload().await;
    let rows = ok(&call(&app, &alice, Method::GET, "notes?select=owner", None).await);
    assert_eq!(owners(&rows), [alice.id.as_str()]);
    call(&app, &alice, Method::GET, "notes?select=body", None)
        .await
        .assert_error(400, "42703");
    call(
        &app,
        &alice,
        Method::POST,
        "notes",
        Some(json!({"body": "x"})),
    )
    .await
    .assert_error(400, "PGRST204");
    call(&app, &alice, Method::GET, "note_bodies", None)
        .await
        .assert_error(404, "42P01");

    // A table dropped under the snapshot: Postgres's 42P01, as PostgREST's would be.
    app.admin_sql("drop table public.notes").await;
    call(&app, &alice, Method::GET, "notes", None)
        .await
        .assert_error(404, "42P01");
}

#[tokio::test]
async fn a_view_without_a_primary_key_reads_and_writes_through_rls() {
    let app = start_with_world("").await;
    let (alice, bob) = (user("alice"), user("bob"));
    ok(&call(
        &app,
        &alice,
        Method::POST,
        "notes",
        Some(json!({"body": "a1"})),
    )
    .await);
    ok(&call(
        &app,
        &bob,
        Method::POST,
        "notes",
        Some(json!({"body": "b1"})),
    )
    .await);
    let snapshot = app.app.schema().unwrap();
    let view = snapshot.relation("note_bodies").unwrap();
    assert!(view.is_view() && view.primary_key().is_empty());

    let rows = ok(&call(&app, &alice, Method::GET, "note_bodies", None).await);
    assert_eq!(rows, json!([{"owner": alice.id, "body": "a1"}]));
    // Writes with filters go to Postgres (an auto-updatable view): only the caller's rows.
    let changed = ok(&call(
        &app,
        &bob,
        Method::PATCH,
        "note_bodies?body=like.*1",
        Some(json!({"body": "b2"})),
    )
    .await);
    assert_eq!(changed, json!([{"owner": bob.id, "body": "b2"}]));
    let gone = ok(&call(&app, &alice, Method::DELETE, "note_bodies?body=eq.b2", None).await);
    assert_eq!(gone, json!([]));
    let made = ok(&call(
        &app,
        &alice,
        Method::POST,
        "note_bodies",
        Some(json!({"body": "a2"})),
    )
    .await);
    assert_eq!(made, json!([{"owner": alice.id, "body": "a2"}]));

    // A view Postgres cannot write answers what PostgREST 12 answers for it: 55000, which it
    // maps to 500 (pgErrorStatus, Error.hs at v12.2.12), in its error shape, changing nothing.
    let counts = ok(&call(&app, &alice, Method::GET, "note_counts", None).await);
    assert_eq!(counts, json!([{"owner": alice.id, "n": 2}]));
    let reply = call(
        &app,
        &alice,
        Method::PATCH,
        "note_counts?n=eq.2",
        Some(json!({"n": 0})),
    )
    .await;
    reply.assert_error(500, "55000");
    let all = ok(&call(&app, &bob, Method::GET, "notes", None).await);
    assert_eq!(all, json!([{"id": 2, "owner": bob.id, "body": "b2"}]));
}
