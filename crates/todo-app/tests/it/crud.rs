//! One user creating, reading, updating and deleting todos through the records API, with
//! PostgREST's `Prefer: return=…` semantics and status codes.

use reqwest::Method;
use serde_json::json;

use crate::support::{TestApp, user};

#[tokio::test]
async fn create_read_update_delete_one_todo() {
    let app = TestApp::start().await;
    let alice = user("alice");

    let created = app.post_todo(&alice, "buy milk").await;
    assert_eq!(created.title, "buy milk");
    assert_eq!(
        created.user_id, alice.id,
        "user_id defaults to the token's sub"
    );
    assert!(!created.is_complete);
    assert_eq!(created.id.len(), 36, "a uuid: {}", created.id);

    assert_eq!(app.list(&alice, "").await, std::slice::from_ref(&created));
    assert_eq!(
        app.list(&alice, &format!("id=eq.{}", created.id)).await,
        std::slice::from_ref(&created)
    );

    let patched = app
        .patch(
            &alice,
            &format!("id=eq.{}", created.id),
            &json!({ "is_complete": true, "title": "buy oat milk" }),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    let patched = patched.todos();
    assert_eq!(patched.len(), 1);
    assert!(patched[0].is_complete);
    assert_eq!(patched[0].title, "buy oat milk");
    assert_eq!(patched[0].created_at, created.created_at);

    let deleted = app.delete(&alice, &format!("id=eq.{}", created.id)).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.todos(), patched);
    assert_eq!(app.list(&alice, "").await, []);
    assert_eq!(app.all_rows().await, []);
}

#[tokio::test]
async fn return_minimal_is_the_default_and_inserts_answer_an_empty_array() {
    let app = TestApp::start().await;
    let alice = user("alice");

    for prefer in [None, Some("return=minimal")] {
        let mut call = app
            .records(Method::POST, "todos")
            .signed_in_as(&app, &alice)
            .json(&json!({ "title": "quiet" }));
        if let Some(prefer) = prefer {
            call = call.prefer(prefer);
        }
        let reply = call.send().await;
        // PostgREST sends an empty body; InsForge turns it into `[]`, which is what the
        // InsForge SDK's `insert()` without `.select()` then returns as `data`.
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (201, "[]"),
            "{prefer:?}"
        );
        assert_eq!(
            reply.header("content-type"),
            Some("application/json; charset=utf-8")
        );
    }

    let reply = app
        .records(Method::PATCH, "todos?title=eq.quiet")
        .signed_in_as(&app, &alice)
        .json(&json!({ "is_complete": true }))
        .send()
        .await;
    assert_eq!((reply.status, reply.text.as_str()), (204, ""));
    assert!(app.list(&alice, "").await.iter().all(|t| t.is_complete));

    let reply = app
        .records(Method::DELETE, "todos?title=eq.quiet")
        .signed_in_as(&app, &alice)
        .prefer("return=minimal")
        .send()
        .await;
    assert_eq!((reply.status, reply.text.as_str()), (204, ""));
    assert_eq!(app.list(&alice, "").await, []);
}

#[tokio::test]
async fn posting_an_array_inserts_every_row() {
    let app = TestApp::start().await;
    let alice = user("alice");

    let reply = app
        .post(
            &alice,
            &json!([
                { "title": "one", "is_complete": false },
                { "title": "two", "is_complete": true },
                { "title": "three", "is_complete": false },
            ]),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let rows = reply.todos();
    assert_eq!(
        rows.iter().map(|t| t.title.as_str()).collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    assert!(rows.iter().all(|t| t.user_id == alice.id));

    // postgrest-js sends `columns` for arrays: keys outside it are ignored.
    let reply = app
        .records(Method::POST, "todos?columns=%22title%22")
        .signed_in_as(&app, &alice)
        .prefer("return=representation")
        .json(&json!([{ "title": "four", "ignored": 1 }, { "title": "five" }]))
        .send()
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.todos().len(), 2);

    // An empty array inserts nothing, successfully.
    let reply = app.post(&alice, &json!([])).await;
    assert_eq!((reply.status, reply.json()), (201, json!([])));
    assert_eq!(app.all_rows().await.len(), 5);
}

#[tokio::test]
async fn select_applies_to_returned_rows_and_an_empty_patch_changes_nothing() {
    let app = TestApp::start().await;
    let alice = user("alice");

    let reply = app
        .records(Method::POST, "todos?select=title,is_complete")
        .signed_in_as(&app, &alice)
        .prefer("return=representation")
        .json(&json!({ "title": "only two keys" }))
        .send()
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(
        reply.json(),
        json!([{ "title": "only two keys", "is_complete": false }])
    );

    let reply = app.patch(&alice, "", &json!({})).await;
    assert_eq!((reply.status, reply.json()), (200, json!([])));
    assert_eq!(app.list(&alice, "").await.len(), 1);
}

#[tokio::test]
async fn singular_responses_need_exactly_one_row_and_roll_back_otherwise() {
    let app = TestApp::start().await;
    let alice = user("alice");
    let milk = app.post_todo(&alice, "milk").await;
    app.post_todo(&alice, "eggs").await;

    let reply = app
        .records(Method::GET, &format!("todos?id=eq.{}", milk.id))
        .signed_in_as(&app, &alice)
        .header("accept", "application/vnd.pgrst.object+json")
        .send()
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["title"], "milk");
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/vnd.pgrst.object+json")
    );

    // Two rows would change: 406, and the update is rolled back.
    let reply = app
        .records(Method::PATCH, "todos")
        .signed_in_as(&app, &alice)
        .header("accept", "application/vnd.pgrst.object+json")
        .prefer("return=representation")
        .json(&json!({ "is_complete": true }))
        .send()
        .await;
    reply.assert_error(406, "PGRST116");
    assert!(app.list(&alice, "").await.iter().all(|t| !t.is_complete));
}
