//! `select=*,tasks(*)` and `select=*,project:projects(name)`: embedded resources one level deep
//! along foreign keys, both ways, as PostgREST 12.2 builds them (a to-many embed is an array, a
//! to-one an object or null), with RLS applying to every embedded table — an embed never shows
//! a row its table's policies hide. No relationship: PostgREST's `PGRST200`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{FullResponse, TestApp, User, user};

const WORLD: &str = r#"
create table public.projects (
  id    bigint primary key,
  owner text not null default public.requesting_user_id(),
  name  text not null
);
create table public.tasks (
  id         bigint primary key,
  owner      text not null default public.requesting_user_id(),
  project_id bigint references public.projects (id),
  title      text not null
);
create table public.loose (id int primary key);
alter table public.projects enable row level security;
alter table public.projects force row level security;
alter table public.tasks enable row level security;
alter table public.tasks force row level security;
create policy own on public.projects for all to authenticated
  using (owner = (select public.requesting_user_id()))
  with check (owner = (select public.requesting_user_id()));
create policy own on public.tasks for all to authenticated
  using (owner = (select public.requesting_user_id()))
  with check (owner = (select public.requesting_user_id()));
"#;

async fn world() -> (TestApp, User, User) {
    let app = TestApp::start().await;
    let (alice, bob) = (user("alice"), user("bob"));
    app.admin_sql(WORLD).await;
    app.admin_sql(&format!(
        "insert into public.projects values (1, '{a}', 'alpha'), (2, '{b}', 'beta');
         insert into public.tasks values
           (10, '{a}', 1, 'a1'), (11, '{a}', 1, 'a2'), (12, '{b}', 1, 'bob in alpha'),
           (13, '{b}', 2, 'b1'), (14, '{a}', null, 'orphan');",
        a = alice.id,
        b = bob.id
    ))
    .await;
    app.notify_reload().await;
    (app, alice, bob)
}

async fn get(app: &TestApp, who: &User, table_and_query: &str) -> FullResponse {
    app.records(Method::GET, table_and_query)
        .signed_in_as(app, who)
        .send()
        .await
}

#[tokio::test]
async fn embeds_both_ways_through_rls() {
    let (app, alice, bob) = world().await;
    // To-many: Alice's project with her tasks only — Bob's task in her project stays hidden.
    let reply = get(&app, &alice, "projects?select=id,name,tasks(id,title)").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.text,
        r#"[{"id":1,"name":"alpha","tasks":[{"id": 10, "title": "a1"}, {"id": 11, "title": "a2"}]}]"#,
        "embeds are jsonb, as PostgREST casts them"
    );
    // `*` inside and outside; keys in table order, the embed last.
    let reply = get(&app, &bob, "projects?select=*,tasks(*)").await;
    assert_eq!(
        reply.json(),
        json!([{"id": 2, "owner": bob.id, "name": "beta",
                "tasks": [{"id": 13, "owner": bob.id, "project_id": 2, "title": "b1"}]}])
    );
    // To-one with an alias: an object, or null when the parent is not visible (or absent).
    let reply = get(
        &app,
        &alice,
        "tasks?select=title,project:projects(name)&order=id",
    )
    .await;
    assert_eq!(
        reply.json(),
        json!([{"title": "a1", "project": {"name": "alpha"}},
               {"title": "a2", "project": {"name": "alpha"}},
               {"title": "orphan", "project": null}])
    );
    let reply = get(&app, &bob, "tasks?select=title,projects(name)&order=id").await;
    assert_eq!(
        reply.json(),
        json!([{"title": "bob in alpha", "projects": null}, {"title": "b1", "projects": {"name": "beta"}}]),
        "a parent row is never shown through a child"
    );
    // No columns, only the embed; an empty to-many is [].
    app.admin_sql(&format!(
        "insert into public.projects values (3, '{}', 'empty')",
        alice.id
    ))
    .await;
    let reply = get(&app, &alice, "projects?select=tasks(id)&id=eq.3").await;
    assert_eq!(reply.text, r#"[{"tasks":[]}]"#);
    // A hostile alias is only ever a JSON key.
    let reply = get(
        &app,
        &alice,
        "tasks?select=id,x%27;--%20drop%20%F0%9F%A6%80:projects(name)&id=eq.10",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let row: &Value = &reply.json()[0];
    assert_eq!(row["x';-- drop 🦀"]["name"], "alpha", "{row}");
}

#[tokio::test]
async fn embedding_without_a_relationship_is_pgrst200() {
    let (app, alice, _) = world().await;
    let reply = get(&app, &alice, "projects?select=*,loose(*)").await;
    reply.assert_error(400, "PGRST200");
    assert_eq!(
        reply.json(),
        json!({
            "code": "PGRST200",
            "details": "Searched for a foreign key relationship between 'projects' and 'loose' in the schema 'public', but no matches were found.",
            "hint": null,
            "message": "Could not find a relationship between 'projects' and 'loose' in the schema cache",
        })
    );
    get(&app, &alice, "projects?select=*,nothing(*)")
        .await
        .assert_error(400, "PGRST200");
    // One level only, and no hints.
    get(&app, &alice, "projects?select=*,tasks(*,projects(*))")
        .await
        .assert_error(400, "PGRST100");
    get(&app, &alice, "projects?select=*,tasks!fk(*)")
        .await
        .assert_error(400, "PGRST100");
    get(&app, &alice, "projects?select=*,tasks(nope)")
        .await
        .assert_error(400, "42703");
}
