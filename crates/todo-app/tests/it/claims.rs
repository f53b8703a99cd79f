//! What RLS sees in `request.jwt.claims`: by default what InsForge ≥ 2.2.5 forwards (a fresh
//! 5-minute identity with `sub`, `email`, `role`), so a policy on a custom claim loses every
//! user's access, as it does in production; `--claims-forwarding all` (InsForge ≤ 2.2.1)
//! forwards every claim and the same policy works. Run as the app role with `authenticated`.

use std::time::{SystemTime, UNIX_EPOCH};

use clerk_token::ClerkUser;
use reqwest::Method;
use serde_json::{Value, json};
use todo_app::ClaimsForwarding;

use crate::support::{FullResponse, TestApp, user};

/// Rows per Clerk organization, visible by the `org_id` claim; and a view of the claims.
const WORLD: &str = r#"
create table public.org_docs (
  id     int  primary key,
  org_id text not null,
  title  text not null
);
alter table public.org_docs enable row level security;
alter table public.org_docs force row level security;
create policy org_docs_by_claim on public.org_docs for select to authenticated
  using (org_id = (select current_setting('request.jwt.claims', true)::jsonb ->> 'org_id'));
insert into public.org_docs values (1, 'org_a', 'for org a'), (2, 'org_b', 'for org b');
create view public.my_claims as
  select nullif(current_setting('request.jwt.claims', true), '')::jsonb as claims;
"#;

async fn start(forwarding: ClaimsForwarding) -> TestApp {
    let app = TestApp::start_with(|c| c.claims_forwarding = forwarding).await;
    app.admin_sql(WORLD).await;
    app.notify_reload().await;
    app
}

/// Ada of `org_a`, with her email, as the `insforge` template would mint her token.
fn ada_token(app: &TestApp) -> String {
    let mut ada = ClerkUser::new(user("alice").id);
    ada.email = Some("ada@example.com".into());
    ada.extra_claims.insert("org_id".into(), json!("org_a"));
    app.template.mint(&ada).unwrap()
}

async fn get(app: &TestApp, token: &str, path: &str) -> FullResponse {
    let reply = app.records(Method::GET, path).bearer(token).send().await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn by_default_a_custom_claim_policy_sees_nothing_as_behind_insforge_23() {
    let app = start(ClaimsForwarding::default()).await;
    let token = ada_token(&app);
    assert_eq!(get(&app, &token, "org_docs").await.json(), json!([]));

    let before = now();
    let rows = get(&app, &token, "my_claims").await.json();
    let claims = rows[0]["claims"].as_object().unwrap().clone();
    let mut keys: Vec<&str> = claims.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = ClaimsForwarding::INSFORGE_23_CLAIMS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(claims["sub"], user("alice").id.as_str());
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["role"], "authenticated");
    // InsForge's own token: issued now, five minutes long (the Clerk token lives 60 s).
    let iat = claims["iat"].as_u64().unwrap();
    assert!(
        iat + 5 >= before && iat <= now(),
        "iat {iat}, now {}",
        now()
    );
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 300);
}

#[tokio::test]
async fn with_all_claims_forwarded_the_policy_sees_the_users_org() {
    let app = start(ClaimsForwarding::All).await;
    let token = ada_token(&app);
    assert_eq!(
        get(&app, &token, "org_docs").await.json(),
        json!([{"id": 1, "org_id": "org_a", "title": "for org a"}])
    );
    let rows = get(&app, &token, "my_claims").await.json();
    let claims = &rows[0]["claims"];
    assert_eq!(claims["org_id"], "org_a");
    assert_eq!(claims["aud"], "insforge-api");
    // The Clerk token's own times, not InsForge's.
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 60, "{claims}");
    // Still no one else's org.
    let mut bob = ClerkUser::new(user("bob").id);
    bob.extra_claims.insert("org_id".into(), json!("org_b"));
    let bob = app.template.mint(&bob).unwrap();
    let rows: Value = get(&app, &bob, "org_docs").await.json();
    assert_eq!(
        rows,
        json!([{"id": 2, "org_id": "org_b", "title": "for org b"}])
    );
}
