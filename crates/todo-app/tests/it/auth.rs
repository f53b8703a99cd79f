//! Who may call the records API: InsForge's 401 bodies for missing and invalid tokens, 403 for
//! roles other than `authenticated`, and bodies that never echo the token.

use clerk_token::{ClerkTemplate, ClerkUser, FixedClock, Secret, forge};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::support::{FullResponse, TestApp, logs, user};

fn assert_insforge_error(reply: &FullResponse, status: u16, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["statusCode"], status, "{body}");
}

async fn with_header(app: &TestApp, value: &str) -> FullResponse {
    app.records(Method::GET, "todos")
        .header("authorization", value)
        .send()
        .await
}

async fn with_token(app: &TestApp, token: &str) -> FullResponse {
    let reply = app.records(Method::GET, "todos").bearer(token).send().await;
    assert!(!reply.text.contains(token), "the body echoes the token");
    reply
}

fn overrides(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[tokio::test]
async fn no_token_is_401_no_token_provided() {
    let app = TestApp::start().await;
    let reply = app.records(Method::GET, "todos").send().await;
    assert_insforge_error(&reply, 401, "AUTH_INVALID_CREDENTIALS");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    insta::assert_json_snapshot!("no_token", reply.snapshot());

    for header in ["", "Basic YWxpY2U6cHc=", "Bearer", "Bearer   "] {
        let reply = with_header(&app, header).await;
        assert_insforge_error(&reply, 401, "AUTH_INVALID_CREDENTIALS");
    }
    // Auth comes first: an unauthenticated caller cannot probe which tables exist, and a
    // write without a token is refused before its body is looked at.
    let reply = app.records(Method::GET, "secrets").send().await;
    assert_insforge_error(&reply, 401, "AUTH_INVALID_CREDENTIALS");
    let reply = app
        .records(Method::POST, "todos")
        .json(&json!({ "title": "anonymous" }))
        .send()
        .await;
    assert_insforge_error(&reply, 401, "AUTH_INVALID_CREDENTIALS");
    assert_eq!(app.all_rows().await, []);
}

#[tokio::test]
async fn bad_expired_or_forged_tokens_are_401_invalid_token() {
    let app = TestApp::start().await;
    let alice = ClerkUser::new(user("alice").id);

    let reply = with_token(&app, "not.a.jwt").await;
    assert_insforge_error(&reply, 401, "AUTH_UNAUTHORIZED");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    insta::assert_json_snapshot!("invalid_token", reply.snapshot());

    let good = app.template.mint(&alice).unwrap();
    let mut tokens = vec![
        // Signed with another secret.
        ClerkTemplate::insforge(Secret::generate())
            .mint(&alice)
            .unwrap(),
        // Expired an hour ago (issued by a clock an hour behind).
        app.template
            .clone()
            .with_clock(FixedClock::new(app.template.now() - 3600))
            .mint(&alice)
            .unwrap(),
        // Not valid for another hour.
        app.template
            .clone()
            .with_clock(FixedClock::new(app.template.now() + 3600))
            .mint(&alice)
            .unwrap(),
        // Meant for another audience.
        app.template
            .mint_with_overrides(&alice, overrides(&[("aud", json!("other-api"))]))
            .unwrap(),
        // No subject.
        app.template
            .mint_with_overrides(&alice, overrides(&[("sub", Value::Null)]))
            .unwrap(),
        // An opaque InsForge anon key is not a user token here.
        "anon_0123456789abcdef".to_owned(),
    ];
    // The good token with its payload swapped for one naming someone else.
    let parts: Vec<&str> = good.split('.').collect();
    let payload = forge::b64url(
        json!({ "sub": user("bob").id, "role": "authenticated", "aud": "insforge-api", "exp": 9_999_999_999_i64 })
            .to_string(),
    );
    tokens.push(format!("{}.{payload}.{}", parts[0], parts[2]));
    // `alg: none`.
    tokens.push(format!(
        "{}.{payload}.",
        forge::b64url(r#"{"alg":"none","typ":"JWT"}"#)
    ));

    for (i, token) in tokens.iter().enumerate() {
        let reply = with_token(&app, token).await;
        assert_insforge_error(&reply, 401, "AUTH_UNAUTHORIZED");
        assert_eq!(reply.json()["message"], "Invalid token", "token #{i}");
    }
    assert_eq!(with_token(&app, &good).await.status, 200);
}

#[tokio::test]
async fn roles_other_than_authenticated_are_403() {
    let app = TestApp::start().await;
    let alice = ClerkUser::new(user("alice").id);
    for role in ["project_admin", "anon", "service_role", "postgres"] {
        let token = app
            .template
            .mint_with_overrides(&alice, overrides(&[("role", json!(role))]))
            .unwrap();
        let reply = with_token(&app, &token).await;
        assert_insforge_error(&reply, 403, "AUTH_FORBIDDEN");
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains("role not allowed"), "{message}");
        if role == "project_admin" {
            insta::assert_json_snapshot!("role_not_allowed", reply.snapshot());
        }
    }
    // A token without `role` is `authenticated`, as InsForge assumes.
    let mut claims = app.template.claims_for(&alice).unwrap();
    claims.remove("role");
    let token = app.template.sign_claims(&Value::Object(claims)).unwrap();
    assert_eq!(with_token(&app, &token).await.status, 200);
}

#[tokio::test]
async fn logs_name_the_reason_but_never_the_token() {
    let app = TestApp::start().await;
    let alice = ClerkUser::new(user("alice").id);
    let good = app.template.mint(&alice).unwrap();
    let forged = ClerkTemplate::insforge(Secret::generate())
        .mint(&alice)
        .unwrap();
    assert_eq!(with_token(&app, &good).await.status, 200);
    assert_eq!(with_token(&app, &forged).await.status, 401);

    // The log sink holds every test's logs so far: none may carry any credential.
    let text = logs();
    assert!(
        text.contains("bad_signature"),
        "the reason is logged:\n{text}"
    );
    assert!(
        text.contains("/api/database/records/todos"),
        "requests are logged:\n{text}"
    );
    for credential in [&good, &forged, app.template.secret().expose()] {
        let signature = credential.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "a credential reached the logs");
    }
    // No `Authorization` value either. The sink also holds other tests' logs, where a refused
    // `Basic …` header is logged by its reason code `not_bearer`: that code is not a header.
    let lower = text.to_ascii_lowercase().replace("not_bearer", "");
    assert!(!lower.contains("bearer"), "{text}");
}
