//! Operations: `/health`, request ids, graceful shutdown, and a database that is unreachable,
//! goes away or comes back (503 in PostgREST's shape, recovery without a restart).

use std::time::{Duration, Instant};

use clerk_token::{ClerkTemplate, ClerkUser, Secret};
use harness::TestDatabase;
use reqwest::Method;
use todo_app::AppConfig;

use crate::support::{Proxy, TestApp, user};

/// How long a request may take when the database is down: the pool's acquire timeout in
/// these tests plus generous slack for a loaded machine. The timeout also bounds opening a
/// connection while the database is up (scram in a debug build, with the app's schema listener
/// connecting at the same moment): 300 ms was too tight for that on a loaded 2-core machine.
const DOWN_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
const DOWN_BOUND: Duration = Duration::from_secs(5);

#[tokio::test]
async fn health_is_ok_when_the_database_answers() {
    let app = TestApp::start().await;
    let reply = app.call(Method::GET, "/health").send().await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn request_ids_are_generated_or_echoed() {
    let app = TestApp::start().await;
    let reply = app.call(Method::GET, "/health").send().await;
    let generated = reply.header("x-request-id").unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a uuid: {generated}");

    let reply = app
        .call(Method::GET, "/health")
        .header("x-request-id", "trace-me-42")
        .send()
        .await;
    assert_eq!(reply.header("x-request-id"), Some("trace-me-42"));

    // Error responses carry it too.
    let reply = app
        .records(Method::GET, "todos")
        .header("x-request-id", "no-token-here")
        .send()
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("x-request-id"), Some("no-token-here"));
}

#[tokio::test]
async fn an_unreachable_database_is_a_quick_503() {
    // A port nothing listens on: bind one, note it, close it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let secret = Secret::generate();
    let mut config = AppConfig::new(
        format!("postgres://todo_app:secret-password@127.0.0.1:{port}/nowhere"),
        secret.clone(),
    );
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.acquire_timeout = DOWN_ACQUIRE_TIMEOUT;
    let app = todo_app::spawn(config).await.unwrap();
    let client = crate::support::http_client();
    let token = ClerkTemplate::insforge(secret)
        .mint(&ClerkUser::new(user("alice").id))
        .unwrap();

    let started = Instant::now();
    let response = client
        .get(format!("{}/api/database/records/todos", app.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    insta::assert_json_snapshot!("database_unavailable", body);
    let text = body.to_string();
    assert!(!text.contains("secret-password") && !text.contains(&port.to_string()));

    let response = client
        .get(format!("{}/health", app.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "PGRST000");
    assert!(started.elapsed() < DOWN_BOUND, "{:?}", started.elapsed());

    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_app_recovers_when_the_database_comes_back() {
    let db = TestDatabase::create().await.unwrap();
    let (mut proxy, url) = Proxy::in_front_of(&db).await;
    let app = TestApp::start_on(db, url, |c| c.acquire_timeout = DOWN_ACQUIRE_TIMEOUT).await;
    let alice = user("alice");

    app.post_todo(&alice, "before the outage").await;
    assert_eq!(app.call(Method::GET, "/health").send().await.status, 200);

    proxy.cut().await;
    let started = Instant::now();
    let reply = app.get(&alice, "").await;
    reply.assert_error(503, "PGRST000");
    let reply = app.call(Method::GET, "/health").send().await;
    reply.assert_error(503, "PGRST000");
    assert!(started.elapsed() < DOWN_BOUND, "{:?}", started.elapsed());

    proxy.restore().await;
    // The pool reconnects on demand; allow a few tries in case a dead connection is handed
    // out once more before being noticed, but no restart and no sleeping.
    let mut recovered = None;
    for _ in 0..5 {
        let reply = app.get(&alice, "").await;
        if reply.status == 200 {
            recovered = Some(reply);
            break;
        }
        reply.assert_error(503, "PGRST000");
    }
    let reply = recovered.expect("the app recovers once the database is back");
    assert_eq!(reply.todos()[0].title, "before the outage");
    assert_eq!(app.call(Method::GET, "/health").send().await.status, 200);
}

#[tokio::test]
async fn shutdown_is_graceful_and_frees_the_port() {
    let app = TestApp::start().await;
    let addr = app.app.addr;
    let TestApp { app: running, .. } = app;
    running.shutdown().await.unwrap();
    let after = crate::support::http_client()
        .get(format!("http://{addr}/health"))
        .send()
        .await;
    assert!(after.is_err(), "still serving after shutdown");
}

/// The pool does not ping before each acquire: a connection the server closed while it sat
/// idle is found out when the transaction begins, and the request runs on a fresh one.
#[tokio::test]
async fn connections_the_server_closed_while_idle_cost_no_request() {
    let app = TestApp::start().await;
    let alice = user("alice");
    app.post_todo(&alice, "kept").await;
    // Fill the pool with idle connections.
    let (a, b, c, d) = tokio::join!(
        app.get(&alice, ""),
        app.get(&alice, ""),
        app.get(&alice, ""),
        app.get(&alice, "")
    );
    assert!([a, b, c, d].iter().all(|r| r.status == 200));

    let mut admin = app.db.admin_connection().await.unwrap();
    let app_role = &app.db.app_target().user;
    let killed: i64 = sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity \
          where datname = current_database() and usename = $1) t",
    )
    .bind(app_role)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(killed >= 1, "no idle app connection to close");
    let started = Instant::now();
    loop {
        let left: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = current_database() and usename = $1",
        )
        .bind(app_role)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(started.elapsed() < DOWN_BOUND, "backends did not exit");
        tokio::task::yield_now().await;
    }

    for _ in 0..6 {
        let reply = app.get(&alice, "").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.todos()[0].title, "kept");
    }
}

/// Waits (bounded) until the schema listener's state is `listening`.
async fn listener_is(app: &TestApp, listening: bool) {
    let mut status = app.app.schema_status();
    tokio::time::timeout(
        crate::support::RELOAD_BOUND,
        status.wait_for(|s| s.listening == listening),
    )
    .await
    .unwrap_or_else(|_| panic!("the schema listener never became listening={listening}"))
    .unwrap();
}

#[tokio::test]
async fn the_schema_loads_when_the_database_comes_up_and_the_listener_reconnects() {
    let db = TestDatabase::create().await.unwrap();
    let (mut proxy, url) = Proxy::in_front_of(&db).await;
    // Down before the app starts: it starts anyway, with no schema, and answers 503.
    proxy.cut().await;
    let app = TestApp::start_on(db, url, |c| c.acquire_timeout = DOWN_ACQUIRE_TIMEOUT).await;
    let alice = user("alice");
    app.get(&alice, "").await.assert_error(503, "PGRST000");
    assert!(app.app.schema().is_none());

    // Back: the listener connects and loads the schema, with no request needed.
    proxy.restore().await;
    listener_is(&app, true).await;
    assert!(app.app.schema().unwrap().relation("todos").is_some());
    assert_eq!(app.list(&alice, "").await, []);

    // Its connection drops: it notices, reconnects with its backoff, and reloads (notifications
    // sent while it was away are lost, so it reads the catalog again).
    let loads = app.app.schema_status().borrow().loads;
    proxy.cut().await;
    listener_is(&app, false).await;
    app.admin_sql("create table public.while_away (id int primary key)")
        .await;
    proxy.restore().await;
    listener_is(&app, true).await;
    app.reloaded_since(loads).await;
    let reply = app
        .records(Method::GET, "while_away")
        .signed_in_as(&app, &alice)
        .send()
        .await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "[]"));
}
