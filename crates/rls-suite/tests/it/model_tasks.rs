//! Model-based test on a membership-shared table: examples/team-workspaces' `tasks`, through
//! the sample app's records API. Random sequences of creates, lists, updates, moves between
//! projects and deletes by random users are checked, after every step, against an in-memory
//! model of the example's rules: a project's members read and write its tasks, only its owners
//! delete them, and a task never moves into a project its mover is not a member of.

use std::collections::BTreeMap;
use std::sync::Arc;

use clerk_token::{ClerkTemplate, ClerkUser};
use harness::{Migrations, TestDatabase};
use proptest::prelude::*;
use reqwest::Method;
use rls_suite::engine::observe::{Api, Reply};
use serde_json::json;
use sqlx::Connection;

use crate::support::{model_runtime, run_model, world};

const USERS: usize = 3;
const PROJECTS: usize = 2;
const REPRESENTATION: Option<&str> = Some("return=representation");

/// Who is what in each project: `ROLES[project][user]`. Ada owns P0 (Ben a member), Cy owns
/// P1 (Ada a member); Ben is a stranger to P1, Cy to P0.
const ROLES: [[Option<&str>; USERS]; PROJECTS] = [
    [Some("owner"), Some("member"), None],
    [Some("member"), None, Some("owner")],
];

fn member(user: usize, project: usize) -> bool {
    ROLES[project][user].is_some()
}

fn owner(user: usize, project: usize) -> bool {
    ROLES[project][user] == Some("owner")
}

#[derive(Debug, Clone)]
enum Step {
    Create {
        user: usize,
        project: usize,
        title: String,
    },
    List {
        user: usize,
    },
    Rename {
        user: usize,
        pick: usize,
        title: String,
    },
    Move {
        user: usize,
        pick: usize,
        project: usize,
    },
    Delete {
        user: usize,
        pick: usize,
    },
    RenameAll {
        user: usize,
        title: String,
    },
    DeleteAll {
        user: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let user = 0..USERS;
    let project = 0..PROJECTS;
    let title = "[a-z]{1,8}";
    prop_oneof![
        3 => (user.clone(), project.clone(), title).prop_map(|(user, project, title)| Step::Create { user, project, title }),
        2 => user.clone().prop_map(|user| Step::List { user }),
        2 => (user.clone(), any::<usize>(), title).prop_map(|(user, pick, title)| Step::Rename { user, pick, title }),
        2 => (user.clone(), any::<usize>(), project).prop_map(|(user, pick, project)| Step::Move { user, pick, project }),
        2 => (user.clone(), any::<usize>()).prop_map(|(user, pick)| Step::Delete { user, pick }),
        1 => (user.clone(), title).prop_map(|(user, title)| Step::RenameAll { user, title }),
        1 => user.prop_map(|user| Step::DeleteAll { user }),
    ]
}

/// A task as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Task {
    project: usize,
    created_by: usize,
    title: String,
}

/// id → task, ordered for stable picks.
type Model = BTreeMap<String, Task>;

struct Env {
    api: Arc<Api>,
    tokens: Vec<String>,
    users: Vec<String>,
    projects: Vec<String>,
    db: TestDatabase,
}

impl Env {
    fn auth(&self, user: usize) -> String {
        format!("Bearer {}", self.tokens[user])
    }

    async fn call(
        &self,
        method: Method,
        user: usize,
        query: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, String> {
        self.api
            .request_with_authorization(
                method,
                "tasks",
                query,
                Some(&self.auth(user)),
                body,
                REPRESENTATION,
            )
            .await
            .map_err(|e| e.to_string())
    }

    /// The rows of a reply, in model form, sorted by id.
    fn tasks(&self, reply: &Reply) -> Result<Vec<(String, Task)>, String> {
        let rows = reply
            .body
            .as_array()
            .ok_or_else(|| format!("not an array: {} {}", reply.status, reply.body))?;
        let mut out = Vec::new();
        for r in rows {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            let project = self
                .projects
                .iter()
                .position(|p| *p == s("project_id"))
                .ok_or_else(|| format!("a task of an unknown project: {r}"))?;
            let created_by = self
                .users
                .iter()
                .position(|u| *u == s("created_by"))
                .ok_or_else(|| format!("a task of an unknown creator: {r}"))?;
            out.push((
                s("id"),
                Task {
                    project,
                    created_by,
                    title: s("title"),
                },
            ));
        }
        out.sort();
        Ok(out)
    }
}

fn pick(model: &Model, pick: usize) -> Option<(String, Task)> {
    if model.is_empty() {
        return None;
    }
    model
        .iter()
        .nth(pick % model.len())
        .map(|(id, t)| (id.clone(), t.clone()))
}

fn check(what: &str, got: &[(String, Task)], want: &[(String, Task)]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: the API answered {got:?}, the model says {want:?}"
        ))
    }
}

fn refused(what: &str, reply: &Reply, status: u16, code: &str) -> Result<(), String> {
    if reply.status.as_u16() == status && reply.body["code"] == code {
        Ok(())
    } else {
        Err(format!(
            "{what}: expected {status} {code}, got {} {}",
            reply.status, reply.body
        ))
    }
}

/// Runs one step, checks its answer against the model, and applies its effect to the model.
async fn run_step(env: &Env, model: &mut Model, step: &Step) -> Result<(), String> {
    let what = format!("{step:?}");
    let visible = |user: usize, model: &Model| -> Vec<(String, Task)> {
        model
            .iter()
            .filter(|(_, t)| member(user, t.project))
            .map(|(id, t)| (id.clone(), t.clone()))
            .collect()
    };
    match step {
        Step::Create {
            user,
            project,
            title,
        } => {
            let body = json!({ "project_id": env.projects[*project], "title": title });
            let reply = env.call(Method::POST, *user, "", Some(&body)).await?;
            if !member(*user, *project) {
                return refused(&what, &reply, 403, "42501");
            }
            let rows = env.tasks(&reply)?;
            let [(id, task)] = rows.as_slice() else {
                return Err(format!("{what}: expected one row back, got {rows:?}"));
            };
            let want = Task {
                project: *project,
                created_by: *user,
                title: title.clone(),
            };
            if *task != want {
                return Err(format!("{what}: created {task:?}, expected {want:?}"));
            }
            model.insert(id.clone(), want);
        }
        Step::List { user } => {
            let reply = env.call(Method::GET, *user, "select=*", None).await?;
            check(&what, &env.tasks(&reply)?, &visible(*user, model))?;
        }
        Step::Rename {
            user,
            pick: p,
            title,
        } => {
            let Some((id, task)) = pick(model, *p) else {
                return Ok(());
            };
            let query = format!("id=eq.{id}");
            let reply = env
                .call(
                    Method::PATCH,
                    *user,
                    &query,
                    Some(&json!({ "title": title })),
                )
                .await?;
            let mut want = Vec::new();
            if member(*user, task.project) {
                let renamed = Task {
                    title: title.clone(),
                    ..task
                };
                model.insert(id.clone(), renamed.clone());
                want.push((id, renamed));
            }
            check(&what, &env.tasks(&reply)?, &want)?;
        }
        Step::Move {
            user,
            pick: p,
            project,
        } => {
            let Some((id, task)) = pick(model, *p) else {
                return Ok(());
            };
            let query = format!("id=eq.{id}");
            let body = json!({ "project_id": env.projects[*project] });
            let reply = env.call(Method::PATCH, *user, &query, Some(&body)).await?;
            if !member(*user, task.project) {
                // Not theirs to see: the row is filtered out, nothing happens.
                check(&what, &env.tasks(&reply)?, &[])?;
            } else if !member(*user, *project) {
                // WITH CHECK: a task never lands in a project its mover is not in.
                refused(&what, &reply, 403, "42501")?;
            } else {
                let moved = Task {
                    project: *project,
                    ..task
                };
                model.insert(id.clone(), moved.clone());
                check(&what, &env.tasks(&reply)?, &[(id, moved)])?;
            }
        }
        Step::Delete { user, pick: p } => {
            let Some((id, task)) = pick(model, *p) else {
                return Ok(());
            };
            let reply = env
                .call(Method::DELETE, *user, &format!("id=eq.{id}"), None)
                .await?;
            let mut want = Vec::new();
            if owner(*user, task.project) {
                model.remove(&id);
                want.push((id, task));
            }
            check(&what, &env.tasks(&reply)?, &want)?;
        }
        Step::RenameAll { user, title } => {
            let reply = env
                .call(Method::PATCH, *user, "", Some(&json!({ "title": title })))
                .await?;
            let mut want = Vec::new();
            for (id, t) in model.iter_mut() {
                if member(*user, t.project) {
                    t.title.clone_from(title);
                    want.push((id.clone(), t.clone()));
                }
            }
            check(&what, &env.tasks(&reply)?, &want)?;
        }
        Step::DeleteAll { user } => {
            let reply = env.call(Method::DELETE, *user, "", None).await?;
            let want: Vec<(String, Task)> = model
                .iter()
                .filter(|(_, t)| owner(*user, t.project))
                .map(|(id, t)| (id.clone(), t.clone()))
                .collect();
            for (id, _) in &want {
                model.remove(id);
            }
            check(&what, &env.tasks(&reply)?, &want)?;
        }
    }
    Ok(())
}

/// The table as a superuser sees it, in model form.
async fn database_state(env: &Env) -> Result<Model, String> {
    let mut admin = env.db.admin_connection().await.map_err(|e| e.to_string())?;
    let rows: Vec<(String, String, String, String)> =
        sqlx::query_as("select id::text, project_id::text, created_by, title from public.tasks")
            .fetch_all(&mut admin)
            .await
            .map_err(|e| e.to_string())?;
    admin.close().await.ok();
    rows.into_iter()
        .map(|(id, project, created_by, title)| {
            let project = env
                .projects
                .iter()
                .position(|p| *p == project)
                .ok_or_else(|| format!("task {id} in a stranger's project"))?;
            let created_by = env
                .users
                .iter()
                .position(|u| *u == created_by)
                .ok_or_else(|| format!("task {id} by a stranger"))?;
            Ok((
                id,
                Task {
                    project,
                    created_by,
                    title,
                },
            ))
        })
        .collect()
}

async fn run_case(env: &Env, steps: &[Step]) -> Result<(), String> {
    let mut admin = env.db.admin_connection().await.map_err(|e| e.to_string())?;
    sqlx::query("delete from public.tasks")
        .execute(&mut admin)
        .await
        .map_err(|e| e.to_string())?;
    admin.close().await.ok();
    let mut model = Model::new();
    for step in steps {
        run_step(env, &mut model, step).await?;
        let actual = database_state(env).await?;
        if actual != model {
            return Err(format!(
                "after {step:?}: the database holds {actual:?}, the model says {model:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn random_operations_on_shared_tasks_match_the_membership_model() {
    let rt = model_runtime();
    let w = world();
    let (env, _app) = rt.block_on(async {
        let root = harness::state::workspace_root();
        let migrations =
            Migrations::from_dir(&root.join("examples/team-workspaces/migrations")).unwrap();
        let db = TestDatabase::migrated(&migrations).await.unwrap();
        let users: Vec<String> = (0..USERS)
            .map(|_| clerk_token::new_user_id().into_string())
            .collect();
        let mut admin = db.admin_connection().await.unwrap();
        let mut projects = Vec::new();
        for (p, roles) in ROLES.iter().enumerate() {
            let owner = roles.iter().position(|r| *r == Some("owner")).unwrap();
            let id: String = sqlx::query_scalar(
                "insert into public.projects (owner_id, name) values ($1, $2) returning id::text",
            )
            .bind(&users[owner])
            .bind(format!("P{p}"))
            .fetch_one(&mut admin)
            .await
            .unwrap();
            for (u, role) in roles.iter().enumerate() {
                if let Some(role) = role {
                    sqlx::query(
                        "insert into public.project_members (project_id, user_id, role) \
                         values ($1::uuid, $2, $3)",
                    )
                    .bind(&id)
                    .bind(&users[u])
                    .bind(role)
                    .execute(&mut admin)
                    .await
                    .unwrap();
                }
            }
            projects.push(id);
        }
        admin.close().await.unwrap();
        let (app, api) = w.spawn_app(&db, 2).await;
        let template = ClerkTemplate::insforge(w.secret.clone()).with_lifetime_secs(3600);
        let tokens = users
            .iter()
            .map(|id| template.mint(&ClerkUser::new(id.clone())).unwrap())
            .collect();
        (
            Env {
                api: Arc::new(api),
                tokens,
                users,
                projects,
                db,
            },
            app,
        )
    });
    run_model(
        &rt,
        file!(),
        16,
        &prop::collection::vec(step(), 1..24),
        async |steps| run_case(&env, &steps).await,
    );
}
