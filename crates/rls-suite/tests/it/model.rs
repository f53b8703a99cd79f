//! Model-based test: random sequences of operations by random users (some in concurrent
//! batches) over HTTP, checked after every step against an in-memory model of who owns what.
//! Failing cases shrink, and proptest persists them under proptest-regressions/.

use std::collections::BTreeMap;
use std::sync::Arc;

use clerk_token::{ClerkTemplate, ClerkUser};
use harness::TestDatabase;
use proptest::prelude::*;
use reqwest::Method;
use rls_suite::engine::observe::{Api, Reply};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::{model_runtime, run_model, world};

const USERS: usize = 3;
const REPRESENTATION: Option<&str> = Some("return=representation");

#[derive(Debug, Clone)]
enum Step {
    Create {
        user: usize,
        title: String,
    },
    List {
        user: usize,
    },
    Update {
        user: usize,
        pick: usize,
        title: String,
    },
    Delete {
        user: usize,
        pick: usize,
    },
    UpdateAll {
        user: usize,
        title: String,
    },
    DeleteAll {
        user: usize,
    },
}

impl Step {
    fn user(&self) -> usize {
        match self {
            Step::Create { user, .. }
            | Step::List { user }
            | Step::Update { user, .. }
            | Step::Delete { user, .. }
            | Step::UpdateAll { user, .. }
            | Step::DeleteAll { user } => *user,
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    let user = 0..USERS;
    let title = "[a-z]{1,8}";
    prop_oneof![
        3 => (user.clone(), title).prop_map(|(user, title)| Step::Create { user, title }),
        2 => user.clone().prop_map(|user| Step::List { user }),
        2 => (user.clone(), any::<usize>(), title).prop_map(|(user, pick, title)| Step::Update { user, pick, title }),
        2 => (user.clone(), any::<usize>()).prop_map(|(user, pick)| Step::Delete { user, pick }),
        1 => (user.clone(), title).prop_map(|(user, title)| Step::UpdateAll { user, title }),
        1 => user.prop_map(|user| Step::DeleteAll { user }),
    ]
}

/// One step alone, or a batch run concurrently (one step per user, so the model's order of
/// application cannot matter when every user touches only their own rows).
fn batch() -> impl Strategy<Value = Vec<Step>> {
    prop_oneof![
        3 => step().prop_map(|s| vec![s]),
        1 => prop::collection::vec(step(), 2..=USERS).prop_map(|steps| {
            let mut seen = [false; USERS];
            steps.into_iter().filter(|s| !std::mem::replace(&mut seen[s.user()], true)).collect()
        }),
    ]
}

/// id → (owner index, title), ordered for stable picks.
type Model = BTreeMap<String, (usize, String)>;

struct Env {
    api: Arc<Api>,
    tokens: Vec<String>,
    ids: Vec<String>,
    db: TestDatabase,
}

fn rows(reply: &Reply) -> Vec<(String, String, String)> {
    reply
        .body
        .as_array()
        .map(|rows| {
            let mut out: Vec<(String, String, String)> = rows
                .iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                    (s("id"), s("user_id"), s("title"))
                })
                .collect();
            out.sort();
            out
        })
        .unwrap_or_default()
}

fn expected(
    model: &Model,
    ids: &[String],
    pick: impl Fn(&String, &(usize, String)) -> bool,
    title: Option<&str>,
) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = model
        .iter()
        .filter(|(id, row)| pick(id, row))
        .map(|(id, (owner, t))| {
            (
                id.clone(),
                ids[*owner].clone(),
                title.unwrap_or(t).to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Sends one step; checks its answer against the model as it was; returns the model change.
async fn run_step(
    env: &Env,
    model: &Model,
    step: &Step,
) -> Result<Vec<(String, Option<(usize, String)>)>, String> {
    let user = step.user();
    let token = Some(env.tokens[user].as_str());
    let pick_id = |pick: usize| model.keys().nth(pick % model.len().max(1)).cloned();
    let send = |method: Method, query: String, body: Option<Value>| {
        let api = env.api.clone();
        let authorization = token.map(|t| format!("Bearer {t}"));
        async move {
            api.request_with_authorization(
                method,
                "todos",
                &query,
                authorization.as_deref(),
                body.as_ref(),
                REPRESENTATION,
            )
            .await
            .map_err(|e| e.to_string())
        }
    };
    let send_minimal = |method: Method, body: Option<Value>| {
        let api = env.api.clone();
        async move {
            api.request(method, "todos", "", token, body.as_ref())
                .await
                .map_err(|e| e.to_string())
        }
    };
    let check = |what: &str, reply: &Reply, want: &[(String, String, String)]| {
        let got = rows(reply);
        if !reply.status.is_success() || got != want {
            Err(format!(
                "{what} by user {user}: {} {got:?}, model says {want:?}",
                reply.status
            ))
        } else {
            Ok(())
        }
    };
    match step {
        Step::Create { title, .. } => {
            let reply = send(Method::POST, String::new(), Some(json!({ "title": title }))).await?;
            let got = rows(&reply);
            match got.as_slice() {
                [(id, owner, t)]
                    if reply.status == 201 && owner == &env.ids[user] && t == title =>
                {
                    Ok(vec![(id.clone(), Some((user, title.clone())))])
                }
                _ => Err(format!("create by user {user}: {} {got:?}", reply.status)),
            }
        }
        Step::List { .. } => {
            let reply = send(Method::GET, "select=id,user_id,title".into(), None).await?;
            check(
                "list",
                &reply,
                &expected(model, &env.ids, |_, (o, _)| *o == user, None),
            )?;
            Ok(vec![])
        }
        Step::Update { pick, title, .. } => {
            let Some(target) = pick_id(*pick) else {
                return Ok(vec![]);
            };
            let reply = send(
                Method::PATCH,
                format!("id=eq.{target}&select=id,user_id,title"),
                Some(json!({ "title": title })),
            )
            .await?;
            let want = expected(
                model,
                &env.ids,
                |id, (o, _)| *id == target && *o == user,
                Some(title),
            );
            check("update", &reply, &want)?;
            Ok(want
                .into_iter()
                .map(|(id, _, t)| (id, Some((user, t))))
                .collect())
        }
        Step::Delete { pick, .. } => {
            let Some(target) = pick_id(*pick) else {
                return Ok(vec![]);
            };
            let reply = send(
                Method::DELETE,
                format!("id=eq.{target}&select=id,user_id,title"),
                None,
            )
            .await?;
            let want = expected(
                model,
                &env.ids,
                |id, (o, _)| *id == target && *o == user,
                None,
            );
            check("delete", &reply, &want)?;
            Ok(want.into_iter().map(|(id, _, _)| (id, None)).collect())
        }
        // No filter and no representation: nothing but the command's own policy limits these
        // (RETURNING would add the SELECT policy and hide a broken UPDATE/DELETE policy). The
        // database check after the batch tells whether only the caller's rows changed.
        Step::UpdateAll { title, .. } => {
            let reply = send_minimal(Method::PATCH, Some(json!({ "title": title }))).await?;
            if reply.status != 204 {
                return Err(format!(
                    "unfiltered update by user {user}: {} {:?}",
                    reply.status, reply.body
                ));
            }
            let want = expected(model, &env.ids, |_, (o, _)| *o == user, Some(title));
            Ok(want
                .into_iter()
                .map(|(id, _, t)| (id, Some((user, t))))
                .collect())
        }
        Step::DeleteAll { .. } => {
            let reply = send_minimal(Method::DELETE, None).await?;
            if reply.status != 204 {
                return Err(format!(
                    "unfiltered delete by user {user}: {} {:?}",
                    reply.status, reply.body
                ));
            }
            let want = expected(model, &env.ids, |_, (o, _)| *o == user, None);
            Ok(want.into_iter().map(|(id, _, _)| (id, None)).collect())
        }
    }
}

/// The whole table as a superuser sees it, in model form: nothing lost, nothing phantom.
async fn database_state(env: &Env) -> Result<Model, String> {
    let mut admin = env.db.admin_connection().await.map_err(|e| e.to_string())?;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("select id::text, user_id, title from public.todos")
            .fetch_all(&mut admin)
            .await
            .map_err(|e| e.to_string())?;
    admin.close().await.ok();
    rows.into_iter()
        .map(|(id, owner, title)| {
            let o = env
                .ids
                .iter()
                .position(|u| *u == owner)
                .ok_or_else(|| format!("row {id} has a stranger's owner {owner}"))?;
            Ok((id, (o, title)))
        })
        .collect()
}

async fn run_case(env: &Env, batches: &[Vec<Step>]) -> Result<(), String> {
    let mut admin = env.db.admin_connection().await.map_err(|e| e.to_string())?;
    sqlx::query("delete from public.todos")
        .execute(&mut admin)
        .await
        .map_err(|e| e.to_string())?;
    admin.close().await.ok();
    let mut model = Model::new();
    for batch in batches {
        let results = futures_join(env, &model, batch).await;
        for result in results {
            for (id, change) in result? {
                match change {
                    Some(row) => model.insert(id, row),
                    None => model.remove(&id),
                };
            }
        }
        let actual = database_state(env).await?;
        if actual != model {
            return Err(format!(
                "after {batch:?}: the database holds {actual:?}, the acknowledged writes say {model:?}"
            ));
        }
    }
    Ok(())
}

async fn futures_join(
    env: &Env,
    model: &Model,
    batch: &[Step],
) -> Vec<Result<Vec<(String, Option<(usize, String)>)>, String>> {
    let mut handles = Vec::new();
    for step in batch {
        handles.push(run_step(env, model, step));
    }
    let mut out = Vec::new();
    // Polled together so the requests really overlap on the app's small pool.
    let joined = join_all(handles).await;
    out.extend(joined);
    out
}

async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

#[test]
fn random_operations_by_random_users_match_the_ownership_model() {
    let rt = model_runtime();
    let w = world();
    let (env, _app) = rt.block_on(async {
        let db = TestDatabase::create().await.unwrap();
        let (app, api) = w.spawn_app(&db, 2).await;
        // Long-lived tokens: a shrinking run can outlast Clerk's default 60 s.
        let template = ClerkTemplate::insforge(w.secret.clone()).with_lifetime_secs(3600);
        let ids: Vec<String> = (0..USERS)
            .map(|_| clerk_token::new_user_id().into_string())
            .collect();
        let tokens = ids
            .iter()
            .map(|id| template.mint(&ClerkUser::new(id.clone())).unwrap())
            .collect();
        (
            Env {
                api: Arc::new(api),
                tokens,
                ids,
                db,
            },
            app,
        )
    });
    run_model(
        &rt,
        file!(),
        24,
        &prop::collection::vec(batch(), 1..24),
        async |batches| run_case(&env, &batches).await,
    );
}
