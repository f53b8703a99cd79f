//! The todo page over HTTP: the files compiled into the binary, the Content-Security-Policy
//! for each sign-in mode, and `/config.json`, which tells the page how to sign in.

use base64::Engine as _;
use reqwest::Method;
use serde_json::json;

use crate::support::TestApp;

const STRICT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; require-trusted-types-for 'script'; \
    trusted-types 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn clerk_key(host: &str) -> String {
    format!(
        "pk_test_{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("{host}$"))
    )
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_a_strict_policy() {
    let app = TestApp::start().await;

    let page = app.call(Method::GET, "/").send().await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("content-security-policy"), Some(STRICT_CSP));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    for handle in [
        "data-testid=\"todo-list\"",
        "data-testid=\"dev-user\"",
        "data-testid=\"sign-out\"",
        "<label for=\"new-title\">New todo</label>",
        "role=\"alert\"",
        "<script type=\"module\" src=\"/app.js\"></script>",
    ] {
        assert!(page.text.contains(handle), "the page lacks {handle}");
    }

    for (path, content_type, marker) in [
        (
            "/app.js",
            "text/javascript; charset=utf-8",
            "/api/database/records/todos",
        ),
        ("/app.css", "text/css; charset=utf-8", ":root"),
        ("/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let reply = app.call(Method::GET, path).send().await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert!(reply.text.contains(marker), "{path}");
    }
    // The script asks Clerk for the `insforge` template token, as the integration requires.
    let script = app.call(Method::GET, "/app.js").send().await;
    assert!(script.text.contains("getToken({ template: 'insforge' })"));

    let config = app.call(Method::GET, "/config.json").send().await;
    assert_eq!(
        (config.status, config.json()),
        (200, json!({ "signIn": "none" }))
    );

    let reply = app.call(Method::POST, "/").send().await;
    reply.assert_error(405, "APP405");
    let reply = app.call(Method::HEAD, "/").send().await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn dev_sign_in_mode_is_announced_to_the_page() {
    let app = TestApp::start_with(|c| c.sign_in = todo_app::SignInMode::dev()).await;
    let config = app.call(Method::GET, "/config.json").send().await;
    assert_eq!(config.json(), json!({ "signIn": "dev" }));
    let page = app.call(Method::GET, "/").send().await;
    assert_eq!(page.header("content-security-policy"), Some(STRICT_CSP));
}

#[tokio::test]
async fn a_clerk_key_adds_its_frontend_api_and_nothing_else() {
    let key = clerk_key("name-12.clerk.accounts.dev");
    let app = TestApp::start_with(|c| {
        c.sign_in = todo_app::SignInMode::Clerk {
            publishable_key: key.clone(),
        }
    })
    .await;

    let config = app.call(Method::GET, "/config.json").send().await;
    assert_eq!(
        config.json(),
        json!({
            "signIn": "clerk",
            "clerk": {
                "publishableKey": key,
                "scriptUrl": "https://name-12.clerk.accounts.dev/npm/@clerk/clerk-js@5/dist/clerk.browser.js",
            },
        })
    );
    let page = app.call(Method::GET, "/").send().await;
    let csp = page.header("content-security-policy").unwrap();
    assert_eq!(
        csp,
        "default-src 'none'; \
         script-src 'self' https://name-12.clerk.accounts.dev https://challenges.cloudflare.com; \
         style-src 'self' 'unsafe-inline'; img-src 'self' https://img.clerk.com; \
         connect-src 'self' https://name-12.clerk.accounts.dev; worker-src 'self' blob:; \
         frame-src https://challenges.cloudflare.com; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    );
    // Clerk mode has no dev routes.
    let reply = app.call(Method::GET, "/dev/users").send().await;
    reply.assert_error(404, "APP404");
}
