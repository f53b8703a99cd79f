//! `POST` with `Prefer: resolution=merge-duplicates|ignore-duplicates` and `on_conflict=`, as
//! PostgREST 12.2 writes it (`INSERT … ON CONFLICT (…) DO UPDATE SET … / DO NOTHING`,
//! `mutatePlanToQuery`, `QueryBuilder.hs`) and Postgres 15 + RLS judge it: an upsert onto
//! another user's row is refused, never a takeover.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{FullResponse, TestApp, User, user};

async fn upsert(
    app: &TestApp,
    who: &User,
    query: &str,
    prefer: &str,
    body: &Value,
) -> FullResponse {
    app.records(Method::POST, &format!("todos{query}"))
        .signed_in_as(app, who)
        .prefer(prefer)
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn merge_duplicates_updates_own_rows_and_inserts_new_ones() {
    let app = TestApp::start().await;
    let alice = user("alice");
    let mine = app.post_todo(&alice, "first").await;

    let reply = upsert(
        &app,
        &alice,
        "",
        "resolution=merge-duplicates,return=representation",
        &json!([{ "id": mine.id, "title": "renamed" }]),
    )
    .await;
    assert_eq!(reply.status, 200, "only updated: {}", reply.text);
    assert_eq!(reply.json()[0]["title"], "renamed");
    assert_eq!(
        reply.header("preference-applied"),
        Some("resolution=merge-duplicates, return=representation")
    );
    // A new key inserts: 201. Columns not sent keep their values on update.
    let reply = upsert(
        &app,
        &alice,
        "",
        "resolution=merge-duplicates",
        &json!([
            { "id": mine.id, "title": "again" },
            { "id": "00000000-0000-4000-8000-000000000001", "title": "new" }
        ]),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.text, "[]");
    let rows = app.list(&alice, "order=title").await;
    let titles: Vec<&str> = rows.iter().map(|t| t.title.as_str()).collect();
    assert_eq!(titles, ["again", "new"]);
    assert_eq!(rows[0].created_at, mine.created_at);
}

#[tokio::test]
async fn an_upsert_onto_another_users_row_is_refused() {
    let app = TestApp::start().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let hers = app.post_todo(&alice, "alice's").await;

    // ON CONFLICT DO UPDATE: the existing row fails the UPDATE policy's USING, and Postgres 15
    // raises 42501 (PostgREST: 403 for an authenticated role).
    let reply = upsert(
        &app,
        &bob,
        "",
        "resolution=merge-duplicates",
        &json!({ "id": hers.id, "title": "taken over" }),
    )
    .await;
    reply.assert_error(403, "42501");
    assert_eq!(
        reply.json()["message"],
        "new row violates row-level security policy (USING expression) for table \"todos\""
    );
    // DO NOTHING: the conflict is skipped, nothing written.
    let reply = upsert(
        &app,
        &bob,
        "?on_conflict=id",
        "resolution=ignore-duplicates,return=representation",
        &json!({ "id": hers.id, "title": "taken over" }),
    )
    .await;
    assert_eq!((reply.status, reply.text.as_str()), (201, "[]"));
    let all = app.all_rows().await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, alice.id);
    assert_eq!(all[0].1, "alice's");
    assert!(app.list(&bob, "").await.is_empty());
}

#[tokio::test]
async fn conflict_targets_must_be_unique_keys() {
    let app = TestApp::start().await;
    let alice = user("alice");
    app.post_todo(&alice, "x").await;
    // No unique index on title: Postgres's 42P10, which PostgREST maps to 400.
    upsert(
        &app,
        &alice,
        "?on_conflict=title",
        "resolution=merge-duplicates",
        &json!({ "title": "x" }),
    )
    .await
    .assert_error(400, "42P10");
    upsert(
        &app,
        &alice,
        "?on_conflict=nope",
        "resolution=merge-duplicates",
        &json!({ "title": "x" }),
    )
    .await
    .assert_error(400, "42703");
    // Without resolution, on_conflict changes nothing: a plain insert.
    let reply = upsert(
        &app,
        &alice,
        "?on_conflict=id",
        "return=minimal",
        &json!({ "title": "y" }),
    )
    .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.header("preference-applied"), Some("return=minimal"));
}
