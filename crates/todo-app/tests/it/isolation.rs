//! Two users through the HTTP API: neither sees nor changes the other's rows, even with no
//! filter at all — the app adds none, so this is RLS at work.

use serde_json::json;

use crate::support::{TestApp, user};

#[tokio::test]
async fn users_never_see_each_others_rows() {
    let app = TestApp::start().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let a = app.post_todo(&alice, "alice's").await;
    let b = app.post_todo(&bob, "bob's").await;

    assert_eq!(app.list(&alice, "").await, std::slice::from_ref(&a));
    assert_eq!(app.list(&bob, "").await, std::slice::from_ref(&b));
    // Asking for the other's row by id, or by owner, finds nothing.
    assert_eq!(app.list(&alice, &format!("id=eq.{}", b.id)).await, []);
    assert_eq!(app.list(&alice, "user_id=neq.nobody").await, [a]);
    let reply = app
        .records(reqwest::Method::GET, "todos")
        .signed_in_as(&app, &bob)
        .prefer("count=exact")
        .send()
        .await;
    assert_eq!(reply.header("content-range"), Some("0-0/1"));
}

#[tokio::test]
async fn patch_and_delete_without_filters_touch_only_the_callers_rows() {
    let app = TestApp::start().await;
    let (alice, bob) = (user("alice"), user("bob"));
    app.post_todo(&alice, "a1").await;
    app.post_todo(&alice, "a2").await;
    app.post_todo(&bob, "b1").await;

    let reply = app.patch(&alice, "", &json!({ "is_complete": true })).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.todos().len(), 2);
    assert_eq!(
        app.all_rows().await,
        [
            (alice.id.clone(), "a1".into(), true),
            (alice.id.clone(), "a2".into(), true),
            (bob.id.clone(), "b1".into(), false),
        ]
    );

    let reply = app.delete(&alice, "").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.todos().len(), 2);
    assert_eq!(app.all_rows().await, [(bob.id.clone(), "b1".into(), false)]);
}

#[tokio::test]
async fn another_users_row_by_id_is_untouchable() {
    let app = TestApp::start().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let b = app.post_todo(&bob, "bob's").await;
    let by_id = format!("id=eq.{}", b.id);

    let reply = app
        .patch(&alice, &by_id, &json!({ "title": "mine now" }))
        .await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "[]"));
    let reply = app.delete(&alice, &by_id).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "[]"));
    assert_eq!(
        app.all_rows().await,
        [(bob.id.clone(), "bob's".into(), false)]
    );
}

#[tokio::test]
async fn handing_a_row_to_another_user_is_forbidden_and_changes_nothing() {
    let app = TestApp::start().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let a = app.post_todo(&alice, "alice's").await;

    let reply = app
        .patch(
            &alice,
            &format!("id=eq.{}", a.id),
            &json!({ "user_id": bob.id }),
        )
        .await;
    reply.assert_error(403, "42501");
    insta::assert_json_snapshot!("patch_user_id_to_other_user", reply.snapshot());

    // Without a filter too: the WITH CHECK failure aborts the whole statement.
    app.post_todo(&alice, "second").await;
    let reply = app.patch(&alice, "", &json!({ "user_id": bob.id })).await;
    reply.assert_error(403, "42501");
    assert!(
        app.all_rows()
            .await
            .iter()
            .all(|(owner, ..)| *owner == alice.id)
    );
    assert!(app.list(&bob, "").await.is_empty());
}

#[tokio::test]
async fn inserting_as_another_user_is_forbidden_and_writes_nothing() {
    let app = TestApp::start().await;
    let (alice, bob) = (user("alice"), user("bob"));

    let reply = app
        .post(&alice, &json!({ "title": "planted", "user_id": bob.id }))
        .await;
    reply.assert_error(403, "42501");
    insta::assert_json_snapshot!("insert_as_other_user", reply.snapshot());

    // One bad row in a batch: nothing from the batch is written.
    let reply = app
        .post(
            &alice,
            &json!([
                { "title": "fine", "user_id": alice.id },
                { "title": "planted", "user_id": bob.id },
            ]),
        )
        .await;
    reply.assert_error(403, "42501");
    assert_eq!(app.all_rows().await, []);
}

#[tokio::test]
async fn a_hostile_subject_is_only_data() {
    let app = TestApp::start().await;
    let (mallory, alice) = (user("mallory"), user("alice"));
    app.post_todo(&alice, "alice's").await;

    let m = app.post_todo(&mallory, "mallory's").await;
    assert_eq!(m.user_id, mallory.id);
    assert_eq!(app.list(&mallory, "").await, [m]);
    let reply = app.delete(&mallory, "").await;
    assert_eq!(reply.todos().len(), 1);
    assert_eq!(
        app.all_rows().await,
        [(alice.id.clone(), "alice's".into(), false)]
    );
}
