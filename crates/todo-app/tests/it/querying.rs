//! `select`, filters, `order`, `limit`/`offset` and `count=exact` as PostgREST defines them,
//! over seeded rows for two users (the other user's rows must never appear).

use reqwest::Method;

use crate::support::{TestApp, User, user};

/// Alice's rows, oldest first, plus one of Bob's with a clashing title.
async fn seeded() -> (TestApp, User) {
    let app = TestApp::start().await;
    let (alice, bob) = (user("alice"), user("bob"));
    app.seed(&[
        (&alice, "buy milk", false, "2024-01-01T10:00:00Z"),
        (&alice, "Buy BREAD", true, "2024-01-02T10:00:00Z"),
        (&alice, "walk the dog", false, "2024-01-03T10:00:00Z"),
        (&alice, "it's; -- done", true, "2024-01-04T10:00:00Z"),
        (&alice, "a,b", false, "2024-01-05T10:00:00Z"),
        (&bob, "buy milk", false, "2024-01-01T10:00:00Z"),
    ])
    .await;
    (app, alice)
}

async fn titles(app: &TestApp, who: &User, query: &str) -> Vec<String> {
    app.list(who, query)
        .await
        .into_iter()
        .map(|t| t.title)
        .collect()
}

#[tokio::test]
async fn select_returns_only_the_named_columns_in_order() {
    let (app, alice) = seeded().await;
    let reply = app
        .get(&alice, "select=title,is_complete&order=created_at&limit=1")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text, r#"[{"title":"buy milk","is_complete":false}]"#);
    let reply = app.get(&alice, "select=*&limit=1").await;
    let keys: Vec<_> = reply.json()[0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys.len(), 5);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn comparison_and_is_filters() {
    let (app, alice) = seeded().await;
    let t = |q: &'static str| titles(&app, &alice, q);
    assert_eq!(t("title=eq.buy milk").await, ["buy milk"]);
    assert_eq!(t("title=neq.buy milk").await.len(), 4);
    assert_eq!(t("title=not.eq.buy milk").await.len(), 4);
    assert_eq!(
        t("is_complete=is.true&order=created_at").await,
        ["Buy BREAD", "it's; -- done"]
    );
    assert_eq!(t("is_complete=not.is.true").await.len(), 3);
    assert_eq!(t("is_complete=eq.false").await.len(), 3);
    assert_eq!(t("is_complete=is.null").await.len(), 0);
    assert_eq!(t("is_complete=not.is.null").await.len(), 5);
    assert_eq!(t("created_at=gt.2024-01-02T10:00:00Z").await.len(), 3);
    assert_eq!(t("created_at=gte.2024-01-02T10:00:00Z").await.len(), 4);
    assert_eq!(t("created_at=lt.2024-01-02T10:00:00Z").await, ["buy milk"]);
    assert_eq!(t("created_at=lte.2024-01-02T10:00:00Z").await.len(), 2);
    // The same column twice: both filters apply.
    assert_eq!(
        t("created_at=gte.2024-01-02&created_at=lt.2024-01-04&order=created_at").await,
        ["Buy BREAD", "walk the dog"]
    );
    // Quotes, semicolons and comment markers are just characters of the value.
    assert_eq!(t("title=eq.it's;%20--%20done").await, ["it's; -- done"]);
    assert_eq!(t("title=eq.").await.len(), 0);
}

#[tokio::test]
async fn like_ilike_and_in_filters() {
    let (app, alice) = seeded().await;
    let t = |q: &'static str| titles(&app, &alice, q);
    assert_eq!(t("title=like.*milk*").await, ["buy milk"]);
    assert_eq!(
        t("title=like.buy*").await,
        ["buy milk"],
        "like is case-sensitive"
    );
    assert_eq!(
        t("title=ilike.buy*&order=created_at").await,
        ["buy milk", "Buy BREAD"]
    );
    assert_eq!(t("title=not.ilike.buy*").await.len(), 3);
    assert_eq!(
        t("title=like.walk_the_dog").await,
        ["walk the dog"],
        "_ is a wildcard"
    );
    assert_eq!(
        t("title=in.(buy milk,walk the dog)&order=title").await,
        ["buy milk", "walk the dog"]
    );
    assert_eq!(t("title=in.(%22a,b%22)").await, ["a,b"]);
    assert_eq!(t("title=not.in.(%22a,b%22,buy milk)").await.len(), 3);
    assert_eq!(t("title=in.()").await.len(), 0);

    let all = app.list(&alice, "order=created_at").await;
    let ids = format!("id=in.({},{})", all[0].id, all[2].id);
    assert_eq!(
        titles(&app, &alice, &format!("{ids}&order=created_at")).await,
        ["buy milk", "walk the dog"]
    );
}

#[tokio::test]
async fn ordering_by_one_or_several_columns() {
    let (app, alice) = seeded().await;
    let t = |q: &'static str| titles(&app, &alice, q);
    assert_eq!(
        t("order=created_at.desc").await,
        [
            "a,b",
            "it's; -- done",
            "walk the dog",
            "Buy BREAD",
            "buy milk"
        ]
    );
    assert_eq!(
        t("order=is_complete.desc,created_at.asc").await,
        [
            "Buy BREAD",
            "it's; -- done",
            "buy milk",
            "walk the dog",
            "a,b"
        ]
    );
    assert_eq!(
        t("order=is_complete.asc.nullsfirst,created_at.desc.nullslast").await,
        [
            "a,b",
            "walk the dog",
            "buy milk",
            "it's; -- done",
            "Buy BREAD"
        ]
    );
}

#[tokio::test]
async fn limit_and_offset_page_through_rows() {
    let (app, alice) = seeded().await;
    let t = |q: &'static str| titles(&app, &alice, q);
    assert_eq!(
        t("order=created_at&limit=2").await,
        ["buy milk", "Buy BREAD"]
    );
    assert_eq!(
        t("order=created_at&limit=2&offset=2").await,
        ["walk the dog", "it's; -- done"]
    );
    assert_eq!(t("order=created_at&offset=4").await, ["a,b"]);
    assert_eq!(t("limit=0").await.len(), 0);
    assert_eq!(t("limit=99999999999999999999999").await.len(), 5);
    assert_eq!(t("offset=100").await.len(), 0);

    let reply = app.get(&alice, "order=created_at&limit=2&offset=1").await;
    assert_eq!(reply.header("content-range"), Some("1-2/*"));
    let reply = app.get(&alice, "offset=100").await;
    assert_eq!(reply.header("content-range"), Some("*/*"));
}

#[tokio::test]
async fn exact_counts_fill_content_range() {
    let (app, alice) = seeded().await;
    let counted = |query: &'static str| {
        app.records(Method::GET, &format!("todos?{query}"))
            .signed_in_as(&app, &alice)
            .prefer("count=exact")
            .send()
    };

    let reply = counted("").await;
    assert_eq!(
        (reply.status, reply.header("content-range")),
        (200, Some("0-4/5"))
    );
    assert_eq!(reply.header("preference-applied"), Some("count=exact"));

    // A partial page is 206 Partial Content, as PostgREST answers.
    let reply = counted("order=created_at&limit=2&offset=2").await;
    assert_eq!(
        (reply.status, reply.header("content-range")),
        (206, Some("2-3/5"))
    );
    assert_eq!(reply.todos().len(), 2);

    let reply = counted("is_complete=is.true").await;
    assert_eq!(reply.header("content-range"), Some("0-1/2"));

    let reply = counted("title=eq.nothing").await;
    assert_eq!(
        (reply.status, reply.header("content-range")),
        (200, Some("*/0"))
    );
    assert_eq!(reply.text, "[]");

    let reply = counted("offset=5").await;
    assert_eq!(
        (reply.status, reply.header("content-range")),
        (206, Some("*/5"))
    );

    let reply = counted("offset=6").await;
    reply.assert_error(416, "PGRST103");
    insta::assert_json_snapshot!("offset_past_the_end_with_count", reply.snapshot());

    // Mutations count what they touched.
    let reply = app
        .records(Method::PATCH, "todos?is_complete=is.false")
        .signed_in_as(&app, &alice)
        .prefer("count=exact")
        .json(&serde_json::json!({ "is_complete": true }))
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.header("content-range")),
        (204, Some("0-2/3"))
    );
}

/// `or=`/`and=` trees as PostgREST 12.2 evaluates them (`pLogicTree`, `QueryParams.hs`;
/// `pgFmtLogicTree`, `SqlFragment.hs`), over RLS: Bob's "buy milk" never appears, however
/// wide the `or`.
#[tokio::test]
async fn or_and_trees_nest_and_negate_under_rls() {
    let (app, alice) = seeded().await;
    let t = |q: &'static str| titles(&app, &alice, q);
    assert_eq!(
        t("or=(title.eq.buy milk,title.eq.walk the dog)&order=created_at").await,
        ["buy milk", "walk the dog"],
        "Bob's \"buy milk\" stays his"
    );
    assert_eq!(t("or=(title.like.*,id.is.null)").await.len(), 5);
    assert_eq!(
        t("or=(title.eq.a,and(is_complete.is.true,created_at.gt.2024-01-03))&order=created_at")
            .await,
        ["it's; -- done"]
    );
    assert_eq!(
        t("or=(title.eq.%22a,b%22,title.ilike.*bread*)&order=created_at").await,
        ["Buy BREAD", "a,b"]
    );
    // `not.` on the tree, on a nested tree and on a leaf.
    assert_eq!(
        t("not.or=(is_complete.is.true,title.eq.%22a,b%22)&order=created_at").await,
        ["buy milk", "walk the dog"]
    );
    assert_eq!(
        t("or=(title.not.ilike.*buy*,not.and(is_complete.is.false,title.neq.Buy BREAD))&order=created_at")
            .await,
        ["Buy BREAD", "walk the dog", "it's; -- done", "a,b"]
    );
    // A tree ANDs with plain filters and with other trees.
    assert_eq!(
        t("or=(title.eq.buy milk,title.eq.walk the dog)&is_complete=is.false&and=(created_at.gt.2024-01-02)")
            .await,
        ["walk the dog"]
    );
    // Values that look like SQL are values.
    assert_eq!(
        t("or=(title.eq.%22it's;%20--%20done%22,title.eq.x)").await,
        ["it's; -- done"]
    );
    // The same tree filters writes: Alice deletes her two rows named so; Bob's stays.
    let reply = app
        .delete(&alice, "or=(title.eq.buy milk,title.eq.walk the dog)")
        .await;
    assert!(reply.status == 204 || reply.status == 200, "{}", reply.text);
    assert_eq!(app.list(&alice, "").await.len(), 3);
    let rows = app.all_rows().await;
    assert!(
        rows.iter().any(|(_, title, _)| title == "buy milk"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn bad_or_and_trees_are_postgrest_errors() {
    let (app, alice) = seeded().await;
    for query in [
        "or=()",
        "or=(title.eq.a",
        "or=(title.nope.a)",
        "or=(xor(title.eq.a))",
        "and=(title)",
        "todos.or=(title.eq.a)",
    ] {
        app.get(&alice, query).await.assert_error(400, "PGRST100");
    }
    // An unknown column reaches Postgres in PostgREST, which answers 42703.
    app.get(&alice, "or=(nope.eq.1,title.eq.a)")
        .await
        .assert_error(400, "42703");
    // A value the column's type refuses: Postgres's 22P02, as PostgREST shows it.
    app.get(&alice, "or=(id.eq.not-a-uuid)")
        .await
        .assert_error(400, "22P02");
}
