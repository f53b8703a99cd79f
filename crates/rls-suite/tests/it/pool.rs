//! Pool identity bleed: many users interleaved through a deliberately small pool. No response
//! may ever carry another user's row, and a connection an identity used carries none after.

use std::collections::HashMap;
use std::sync::Arc;

use clerk_token::{ClerkTemplate, ClerkUser};
use harness::{DbIdentity, TestDatabase, begin_as};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::support::world;

const USERS: usize = 8;
const ROWS_EACH: usize = 3;
const REQUESTS: usize = 240;

/// Seeds `ROWS_EACH` rows for each of `USERS` fresh Clerk ids; returns the ids.
async fn seed_users(db: &TestDatabase) -> Vec<String> {
    let ids: Vec<String> = (0..USERS)
        .map(|_| clerk_token::new_user_id().into_string())
        .collect();
    let mut admin = db.admin_connection().await.unwrap();
    for id in &ids {
        for n in 0..ROWS_EACH {
            sqlx::query("insert into public.todos (user_id, title) values ($1, $2)")
                .bind(id)
                .bind(format!("{id} #{n}"))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
    ids
}

#[tokio::test]
async fn interleaved_users_through_a_pool_of_two_never_see_each_others_rows() {
    let w = world();
    let db = TestDatabase::create().await.unwrap();
    let ids = seed_users(&db).await;
    let (app, api) = w.spawn_app(&db, 2).await;
    let template = ClerkTemplate::insforge(w.secret.clone());
    let tokens: Vec<String> = ids
        .iter()
        .map(|id| template.mint(&ClerkUser::new(id.clone())).unwrap())
        .collect();
    let api = Arc::new(api);

    let mut set = JoinSet::new();
    for n in 0..REQUESTS {
        let who = n % (USERS + 1);
        let (client, token, id) = (api.clone(), tokens.get(who).cloned(), ids.get(who).cloned());
        set.spawn(async move {
            // Every ninth request carries no token at all, right after users' requests.
            let reply = client
                .request(
                    Method::GET,
                    "todos",
                    "select=user_id,title",
                    token.as_deref(),
                    None,
                )
                .await
                .unwrap();
            (id, reply)
        });
        // Writes interleave with the reads, through the same two connections.
        if n % 5 == 0 && who < USERS {
            let (client, token) = (api.clone(), tokens[who].clone());
            let title = format!("{} extra {n}", ids[who]);
            set.spawn(async move {
                let reply = client
                    .request(
                        Method::POST,
                        "todos",
                        "",
                        Some(&token),
                        Some(&json!({ "title": title })),
                    )
                    .await
                    .unwrap();
                (None, reply)
            });
        }
    }
    let mut seen_per_user: HashMap<String, usize> = HashMap::new();
    while let Some(done) = set.join_next().await {
        let (requester, reply) = done.unwrap();
        match requester {
            Some(id) => {
                assert_eq!(reply.status, 200, "{:?}", reply.body);
                let rows = reply.body.as_array().unwrap();
                assert!(rows.len() >= ROWS_EACH, "{id} lost rows: {rows:?}");
                for row in rows {
                    assert_eq!(
                        row["user_id"],
                        Value::String(id.clone()),
                        "{id} was handed another user's row"
                    );
                    assert!(row["title"].as_str().unwrap().starts_with(&id));
                }
                *seen_per_user.entry(id).or_default() += 1;
            }
            // No token: refused before any connection is used.
            None if reply.status == 401 => {
                assert_eq!(reply.body["error"], "AUTH_INVALID_CREDENTIALS")
            }
            None => assert_eq!(reply.status, 201, "{:?}", reply.body),
        }
    }
    assert_eq!(seen_per_user.len(), USERS, "every user was served");
    drop(app);
}

#[tokio::test]
async fn a_pooled_connection_carries_no_identity_after_a_transaction() {
    let db = TestDatabase::create().await.unwrap();
    let ids = seed_users(&db).await;
    let pool = db.app_pool(2).await.unwrap();
    let app_role = db.app_target().user.clone();
    let mut set = JoinSet::new();
    for n in 0..REQUESTS {
        let (pool, app_role) = (pool.clone(), app_role.clone());
        // Every ninth transaction has no claims, on a connection a user has just used.
        let user = ids.get(n % (USERS + 1)).cloned();
        set.spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            let who = match &user {
                Some(id) => DbIdentity::authenticated(&json!({ "sub": id, "role": "authenticated" })),
                None => DbIdentity::authenticated_without_claims(),
            };
            let mut tx = begin_as(&mut conn, &who).await.unwrap();
            let owners: Vec<String> = sqlx::query_scalar("select user_id from public.todos").fetch_all(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
            match &user {
                Some(id) => {
                    assert_eq!(owners.len(), ROWS_EACH);
                    assert!(owners.iter().all(|o| o == id), "{id} saw {owners:?}");
                }
                None => assert!(owners.is_empty(), "no claims saw {owners:?}"),
            }
            // Same connection, after the transaction: no role, no claims, no user.
            let (role, claims, uid): (String, Option<String>, Option<String>) = sqlx::query_as(
                "select current_user::text, current_setting('request.jwt.claims', true), public.requesting_user_id()",
            )
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            assert_eq!(role, app_role);
            assert!(claims.as_deref().is_none_or(str::is_empty), "claims linger: {claims:?}");
            assert_eq!(uid, None);
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}
