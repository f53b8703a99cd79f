//! The first isolation checks, in SQL, as the app's login role with `authenticated` switched
//! in — never as the owner or a superuser, which RLS would not bind.

use harness::{DbIdentity, TestDatabase, begin_as};
use sqlx::{Connection, PgConnection, Row};

use crate::support::{User, user};

async fn seed(db: &TestDatabase, rows: &[(&User, &str)]) {
    let mut admin = db.admin_connection().await.unwrap();
    for (owner, title) in rows {
        sqlx::query("insert into public.todos (user_id, title) values ($1, $2)")
            .bind(&owner.id)
            .bind(title)
            .execute(&mut admin)
            .await
            .unwrap();
    }
    admin.close().await.unwrap();
}

async fn visible_titles(conn: &mut PgConnection, who: &DbIdentity) -> Vec<String> {
    let mut tx = begin_as(conn, who).await.unwrap();
    let titles = sqlx::query_scalar("select title from public.todos order by title")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    titles
}

#[tokio::test]
async fn each_user_sees_and_changes_only_their_own_todos() {
    let db = TestDatabase::create().await.unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    seed(
        &db,
        &[(&alice, "alice-1"), (&alice, "alice-2"), (&bob, "bob-1")],
    )
    .await;
    let (as_alice, as_bob) = (
        DbIdentity::authenticated(&alice.claims()),
        DbIdentity::authenticated(&bob.claims()),
    );
    let mut conn = db.app_connection().await.unwrap();

    assert_eq!(
        visible_titles(&mut conn, &as_alice).await,
        ["alice-1", "alice-2"]
    );
    assert_eq!(visible_titles(&mut conn, &as_bob).await, ["bob-1"]);

    // Bob's UPDATE and DELETE without any filter touch only his row: 1 row each.
    let mut tx = begin_as(&mut conn, &as_bob).await.unwrap();
    let updated = sqlx::query("update public.todos set is_complete = true")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1);
    let deleted = sqlx::query("delete from public.todos")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    tx.commit().await.unwrap();

    // Alice's rows are untouched.
    let mut admin = db.admin_connection().await.unwrap();
    let rows = sqlx::query("select title, is_complete from public.todos order by title")
        .fetch_all(&mut admin)
        .await
        .unwrap();
    let rows: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        rows,
        [("alice-1".to_owned(), false), ("alice-2".to_owned(), false)]
    );
}

#[tokio::test]
async fn a_user_cannot_insert_for_or_hand_a_row_to_another() {
    let db = TestDatabase::create().await.unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    let as_alice = DbIdentity::authenticated(&alice.claims());
    let mut conn = db.app_connection().await.unwrap();

    // Omitting user_id: the default fills in the caller.
    let mut tx = begin_as(&mut conn, &as_alice).await.unwrap();
    let owner: String =
        sqlx::query_scalar("insert into public.todos (title) values ('mine') returning user_id")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(owner, alice.id);

    // Naming Bob as the owner: WITH CHECK refuses (42501).
    let mut tx = begin_as(&mut conn, &as_alice).await.unwrap();
    let err = sqlx::query("insert into public.todos (user_id, title) values ($1, 'for bob')")
        .bind(&bob.id)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    tx.rollback().await.unwrap();

    // Handing her own row to Bob by UPDATE: WITH CHECK refuses.
    let mut tx = begin_as(&mut conn, &as_alice).await.unwrap();
    let err = sqlx::query("update public.todos set user_id = $1")
        .bind(&bob.id)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    tx.rollback().await.unwrap();

    let mut admin = db.admin_connection().await.unwrap();
    let owners: Vec<String> = sqlx::query_scalar("select user_id from public.todos")
        .fetch_all(&mut admin)
        .await
        .unwrap();
    assert_eq!(owners, std::slice::from_ref(&alice.id));
}

#[tokio::test]
async fn no_claims_anon_and_the_bare_app_role_see_nothing() {
    let db = TestDatabase::create().await.unwrap();
    let alice = user("alice");
    seed(&db, &[(&alice, "alice-1")]).await;
    let mut conn = db.app_connection().await.unwrap();

    assert!(
        visible_titles(&mut conn, &DbIdentity::authenticated_without_claims())
            .await
            .is_empty()
    );
    assert!(
        visible_titles(&mut conn, &DbIdentity::anon())
            .await
            .is_empty()
    );

    // anon has no policy at all: its writes affect nothing or are refused.
    let mut tx = begin_as(&mut conn, &DbIdentity::anon()).await.unwrap();
    let n = sqlx::query("delete from public.todos")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 0);
    let err = sqlx::query("insert into public.todos (user_id, title) values ('x', 'y')")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"));
    tx.rollback().await.unwrap();

    // Forgetting the role switch fails closed: the login role has no privileges of its own.
    let err = sqlx::query("select count(*) from public.todos")
        .fetch_one(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
}

#[tokio::test]
async fn a_connection_reused_after_an_identity_carries_none() {
    let db = TestDatabase::create().await.unwrap();
    let alice = user("alice");
    seed(&db, &[(&alice, "alice-1")]).await;
    let mut conn = db.app_connection().await.unwrap();
    assert_eq!(
        visible_titles(&mut conn, &DbIdentity::authenticated(&alice.claims())).await,
        ["alice-1"]
    );

    // The setting reads back as '' (not NULL) now; requesting_user_id() must say NULL, not fail.
    let (raw, id, role): (Option<String>, Option<String>, String) = sqlx::query_as(
        "select current_setting('request.jwt.claims', true), public.requesting_user_id(), current_user::text",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(raw.as_deref(), Some(""));
    assert_eq!(id, None);
    assert_eq!(role, db.app_target().user);

    // Switching role again without claims sees nothing of Alice's.
    assert!(
        visible_titles(&mut conn, &DbIdentity::authenticated_without_claims())
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn awkward_ids_are_data_not_sql() {
    let db = TestDatabase::create().await.unwrap();
    let (alice, mallory) = (user("alice"), user("mallory"));
    seed(&db, &[(&alice, "alice-1"), (&mallory, "mallory-1")]).await;
    let mut conn = db.app_connection().await.unwrap();
    assert_eq!(
        visible_titles(&mut conn, &DbIdentity::authenticated(&mallory.claims())).await,
        ["mallory-1"]
    );

    // An empty sub means nobody, not "the rows whose owner is ''".
    seed(
        &db,
        &[(
            &User {
                id: String::new(),
                email: None,
            },
            "ownerless",
        )],
    )
    .await;
    let empty =
        DbIdentity::authenticated(&serde_json::json!({ "sub": "", "role": "authenticated" }));
    assert!(visible_titles(&mut conn, &empty).await.is_empty());
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|db| db.code())
        .map(|c| c.into_owned())
}

/// The policies' `(select requesting_user_id())` is inlined: the plan evaluates the function's
/// body, not a call to it. A SET clause (or any unqualified rewrite that gains one) turns it
/// back into a per-statement function call that costs more than the index scan it feeds.
#[tokio::test]
async fn requesting_user_id_is_inlined_into_the_policies() {
    let db = TestDatabase::create().await.unwrap();
    let mut conn = db.app_connection().await.unwrap();
    let alice = user("alice");
    let mut tx = begin_as(&mut conn, &DbIdentity::authenticated(&alice.claims()))
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "explain (verbose, costs off) select * from public.todos order by created_at desc limit 20",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("current_setting('request.jwt.claims'")
            && !plan.contains("requesting_user_id"),
        "requesting_user_id() is not inlined:\n{plan}"
    );
    assert!(plan.contains("Index Cond: (todos.user_id = $0)"), "{plan}");
    // And it still answers as V2 did, guard included.
    let me: Option<String> = sqlx::query_scalar("select public.requesting_user_id()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(me.as_deref(), Some(alice.id.as_str()));
    tx.rollback().await.unwrap();
    let pooled: Option<String> = sqlx::query_scalar("select public.requesting_user_id()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(pooled, None, "'' after a transaction must mean nobody");
}
