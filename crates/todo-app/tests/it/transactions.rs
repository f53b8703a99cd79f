//! The transaction around each request, at the `db` layer: reads cannot write, and whatever a
//! request did to its connection's identity is gone before the next request gets it.

use clerk_token::{ClerkTemplate, ClerkUser, Secret, Verifier};
use harness::TestDatabase;
use sqlx::Connection as _;
use todo_app::auth::Identity;
use todo_app::db::{Access, run_as};
use todo_app::error::ApiError;
use todo_app::sql::Statement;

const INSERT: &str = "with pgrst_source as (insert into public.todos (title) values ('x') \
     returning 1) select null::bigint as total, (select count(*) from pgrst_source) as \
     page_count, null::text as body";

fn identity(user: &str) -> Identity {
    let secret = Secret::generate();
    let token = ClerkTemplate::insforge(secret.clone())
        .mint(&ClerkUser::new(user))
        .unwrap();
    Identity::from_header(Some(&format!("Bearer {token}")), &Verifier::new(secret)).unwrap()
}

fn statement(sql: &str) -> Statement {
    Statement {
        sql: sql.into(),
        binds: vec![],
    }
}

#[tokio::test]
async fn reads_are_read_only_and_leave_no_identity_behind() {
    let db = TestDatabase::create().await.unwrap();
    // One connection, so every call below gets the same one back.
    let pool = db.app_pool(1).await.unwrap();
    let alice = identity("user_2aLiCeAAAAAAAAAAAAAAAAAAAAA");

    let refused = run_as(
        &pool,
        &alice,
        5000,
        Access::ReadOnly,
        statement(INSERT),
        |_| Ok(()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&refused, ApiError::Database(e) if e.code == "25006"),
        "a read-only transaction wrote: {refused:?}"
    );
    let wrote = run_as(
        &pool,
        &alice,
        5000,
        Access::ReadWrite,
        statement(INSERT),
        |_| Ok(()),
    )
    .await
    .unwrap();
    assert_eq!(wrote.page_count, 1);

    let read = run_as(
        &pool,
        &alice,
        5000,
        Access::ReadOnly,
        statement(
            "select null::bigint as total, count(*) as page_count, null::text as body \
               from public.todos",
        ),
        |_| Ok(()),
    )
    .await
    .unwrap();
    assert_eq!(read.page_count, 1);

    // The read's transaction was not committed but dropped: by the time the pool hands the
    // connection out again it is closed, and no role or claims survive it.
    let mut conn = pool.acquire().await.unwrap();
    assert!(
        !conn.is_in_transaction(),
        "the connection came back inside a transaction"
    );
    let (user, claims): (String, Option<String>) = sqlx::query_as(
        "select current_user::text, nullif(current_setting('request.jwt.claims', true), '')",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(user, db.app_target().user);
    assert_eq!(claims, None);
}
