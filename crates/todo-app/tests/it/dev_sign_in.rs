//! Dev sign-in over HTTP: with `--dev-sign-in`, `/dev/users` lists the fixture users and
//! `/dev/token` mints tokens the records API accepts; without it those routes do not exist;
//! and the app (library and binary) refuses to start with it off loopback.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clerk_token::Secret;
use reqwest::Method;
use serde_json::{Value, json};
use todo_app::{AppConfig, ConfigError, SignInMode, StartError};

use crate::support::{FullResponse, TestApp, logs, user};

async fn dev_app() -> TestApp {
    TestApp::start_with(|c| c.sign_in = SignInMode::dev()).await
}

async fn mint(app: &TestApp, body: &Value) -> FullResponse {
    app.call(Method::POST, "/dev/token").json(body).send().await
}

#[tokio::test]
async fn without_dev_sign_in_the_dev_routes_do_not_exist() {
    let app = TestApp::start().await;
    let reply = app.call(Method::GET, "/dev/users").send().await;
    reply.assert_error(404, "APP404");
    let reply = mint(&app, &json!({ "user": "alice" })).await;
    reply.assert_error(404, "APP404");
    assert!(!reply.text.contains("eyJ"), "no token without dev sign-in");
}

#[tokio::test]
async fn dev_tokens_act_as_the_chosen_user_and_nobody_else() {
    let app = dev_app().await;

    let reply = app.call(Method::GET, "/dev/users").send().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let users = reply.json();
    let keys: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["alice", "bob", "mallory"]);
    assert_eq!(users["users"][0]["id"], user("alice").id);

    let mut tokens = Vec::new();
    for key in ["alice", "bob", "mallory"] {
        let reply = mint(&app, &json!({ "user": key })).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let body = reply.json();
        assert_eq!(body["expires_in"], 60, "Clerk's default lifetime");
        assert_eq!(body["user"]["id"], user(key).id);
        tokens.push((user(key), body["token"].as_str().unwrap().to_owned()));
    }

    // Each token writes and reads as its own user only, even mallory's hostile id.
    for (owner, token) in &tokens {
        let reply = app
            .records(Method::POST, "todos")
            .bearer(token)
            .prefer("return=representation")
            .json(&json!({ "title": format!("dev todo of {}", owner.id) }))
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        assert_eq!(reply.todos()[0].user_id, owner.id);
    }
    for (owner, token) in &tokens {
        let reply = app.records(Method::GET, "todos").bearer(token).send().await;
        let seen: Vec<String> = reply.todos().into_iter().map(|t| t.user_id).collect();
        assert_eq!(seen, std::slice::from_ref(&owner.id));
    }
    let mut expected: Vec<(String, String, bool)> = tokens
        .iter()
        .map(|(u, _)| (u.id.clone(), format!("dev todo of {}", u.id), false))
        .collect();
    expected.sort();
    assert_eq!(app.all_rows().await, expected);

    // Minting is logged by user key; the token never is.
    let logged = logs();
    assert!(logged.contains("dev token minted"), "{logged}");
    for (_, token) in &tokens {
        assert!(!logged.contains(token.as_str()));
    }
}

#[tokio::test]
async fn dev_token_requests_are_checked() {
    let app = dev_app().await;
    let origin = app.app.url();

    let reply = mint(&app, &json!({ "user": "carol" })).await;
    reply.assert_error(400, "APP400");
    assert_eq!(reply.json()["details"], "known users: alice, bob, mallory");
    let reply = mint(&app, &json!({ "user": "alice", "role": "project_admin" })).await;
    reply.assert_error(400, "PGRST102");
    let reply = mint(&app, &json!(["alice"])).await;
    reply.assert_error(400, "PGRST102");
    let reply = app
        .call(Method::POST, "/dev/token")
        .header("content-type", "text/plain")
        .body(r#"{"user":"alice"}"#)
        .send()
        .await;
    reply.assert_error(415, "PGRST107");
    let reply = app
        .call(Method::POST, "/dev/token")
        .body(r#"{"user":"alice"}"#)
        .send()
        .await;
    reply.assert_error(415, "PGRST107");

    // Only same-origin requests to a loopback host: not a rebound DNS name, not another site.
    for path in ["/dev/users", "/dev/token"] {
        let method = if path == "/dev/users" {
            Method::GET
        } else {
            Method::POST
        };
        let reply = app
            .call(method.clone(), path)
            .header("host", "todo.attacker.example")
            .json(&json!({ "user": "alice" }))
            .send()
            .await;
        reply.assert_error(403, "APP403");
        let reply = app
            .call(method, path)
            .header("origin", "http://todo.attacker.example")
            .json(&json!({ "user": "alice" }))
            .send()
            .await;
        reply.assert_error(403, "APP403");
    }
    let reply = app
        .call(Method::POST, "/dev/token")
        .header("origin", &origin)
        .json(&json!({ "user": "alice" }))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let port = app.app.addr.port();
    let reply = app
        .call(Method::GET, "/dev/users")
        .header("host", &format!("localhost:{port}"))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let reply = app.call(Method::GET, "/dev/token").send().await;
    reply.assert_error(405, "APP405");
    let reply = app.call(Method::POST, "/dev/users").send().await;
    reply.assert_error(405, "APP405");
}

#[tokio::test]
async fn the_library_refuses_dev_sign_in_off_loopback_before_listening() {
    for bind in ["0.0.0.0:0", "[::]:0"] {
        let mut config = AppConfig::new("postgres://nobody@127.0.0.1:1/none", Secret::generate());
        config.bind = bind.parse().unwrap();
        config.sign_in = SignInMode::dev();
        let err = todo_app::spawn(config).await.unwrap_err();
        assert!(
            matches!(
                err,
                StartError::Config(ConfigError::DevSignInNotLoopback { .. })
            ),
            "{bind}: {err}"
        );
    }
    let mut config = AppConfig::new("postgres://nobody@127.0.0.1:1/none", Secret::generate());
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.sign_in = SignInMode::Dev {
        users_file: "/nonexistent/users.json".into(),
    };
    let err = todo_app::spawn(config).await.unwrap_err();
    assert!(
        matches!(err, StartError::Config(ConfigError::DevUsers { .. })),
        "{err}"
    );
}

/// Runs the app binary with `args` and a throwaway database URL and secret (it must exit
/// before connecting), bounded in time.
fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_todo-app"))
        .args(args)
        .env("DATABASE_URL", "postgres://nobody:pw@127.0.0.1:1/none")
        .env("INSFORGE_JWT_SECRET", Secret::generate().expose())
        .env_remove("CLERK_PUBLISHABLE_KEY")
        .env_remove("TODO_APP_DEV_SIGN_IN")
        .env_remove("TODO_APP_BIND")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("todo-app {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
    }
    (status.code(), stderr)
}

#[test]
fn the_binary_refuses_dev_sign_in_off_loopback_with_a_clear_error() {
    let (code, stderr) = run_binary(&["--dev-sign-in", "--bind", "0.0.0.0:7130"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--dev-sign-in")
            && stderr.contains("only listens on loopback, not 0.0.0.0:7130")
            && stderr.contains("--bind 127.0.0.1:PORT"),
        "{stderr}"
    );

    let (code, stderr) = run_binary(&[
        "--dev-sign-in",
        "--bind",
        "127.0.0.1:0",
        "--dev-users-file",
        "/nonexistent/users.json",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot load the dev sign-in users from /nonexistent/users.json"),
        "{stderr}"
    );
}
